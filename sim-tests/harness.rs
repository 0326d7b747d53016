//! The harness (`sim::harness`) on the built-in generated trees and on users' own trees with
//! planted bugs: it must pass the correct trees and find, shrink and save the bugs.
//!
//! The planted bugs' systems are in `planted/` (shared with the hunt benchmark); their
//! tests are here.
#![cfg(madsim)]

use crate::planted::{
    self, cache::Cache, dispatch::Dispatch, idle, kv::Kv, named::Named, names::Names,
};
use otpsim::sim::harness::{Domain, Harness, Target, Workload};
use otpsim::sim::invariants::{Invariant, Violation};
use otpsim::sim::tree::Tree;
use otpsim::supervisor::{self, Flags, Strategy as SupStrategy, SupervisorSpec};
use otpsim::{Pid, Process};
use proptest::prelude::*;

/// Generated trees (every strategy, restart type, shutdown, intensity, dynamic supervisors,
/// a registry, start failures, slow and hung shutdowns) under every fault family keep every
/// invariant (docs/behaviours.md §C-§G, §J, §L as `sim::invariants` reads them).
#[test]
fn generated_trees_keep_every_invariant() {
    let report = Harness::new(Tree).cases(10_000).corpus(None).run();
    if let Some(f) = report.failure {
        panic!("{f}");
    }
}

/// The planted bug `name` ([`planted::BUGS`]): its campaign from generator seed 0 finds it
/// within 2,000 cases, as a violation of its application invariant, and shrinks it to seed 0
/// and the operations and faults it needs (waits aside); the minimal case.
pub fn found_and_shrunk(name: &str) -> otpsim::sim::harness::Failure {
    let bug = planted::BUGS
        .iter()
        .find(|b| b.name == name)
        .expect("a planted bug");
    let failure = (bug.hunt)(0, 2000)
        .failure
        .expect("the planted bug is found");
    let expected = Invariant::App(bug.invariants[0].into());
    assert_eq!(failure.violation.invariant, expected, "{failure}");
    let steps = failure.case["steps"].as_array().expect("steps");
    let ops_and_faults = steps.iter().filter(|s| s.get("wait").is_none()).count();
    assert!(ops_and_faults <= bug.needs_steps, "not shrunk: {failure}");
    assert_eq!(failure.case["seed"], 0, "{failure}");
    failure
}

/// The correct design passes 10,000 cases with every fault family.
#[test]
fn a_kv_registry_that_monitors_its_buckets_passes() {
    Harness::new(Kv::default())
        .cases(10_000)
        .corpus(None)
        .check();
}

/// Planted bug (a): found, shrunk, saved in the corpus, and replayed from it.
#[test]
fn a_kv_registry_linked_to_its_buckets_is_found_and_shrunk() {
    let failure = found_and_shrunk("kv-linked (a)");
    let dir = std::env::temp_dir().join("otpsim-harness-kv-linked");
    let _ = std::fs::remove_dir_all(&dir);
    let file =
        otpsim::sim::corpus::CorpusFile::failure("kv-linked", failure.case, &failure.violation);
    let saved = otpsim::sim::corpus::save(&dir, &file).expect("saved in the corpus");
    let file = otpsim::sim::corpus::load(&saved).expect("a valid corpus file");
    let targets: Vec<std::sync::Arc<dyn otpsim::sim::harness::AnyTarget>> =
        vec![std::sync::Arc::new(Kv {
            links_buckets: true,
            ..Kv::default()
        })];
    otpsim::sim::corpus::replay_file(&file, &targets).expect("the saved case reproduces");
}

/// Every file in `corpus/` parses, names a known target and still does what it says (breaks
/// its invariant, or passes, with its trace hash if it pins one); a file that no longer
/// parses fails naming the file and field. `OTPSIM_UPDATE=1` rewrites the expectations.
#[test]
fn every_corpus_file_replays_as_recorded() {
    use otpsim::sim::corpus::{replay_corpus, update_requested};
    let targets = planted::corpus_targets();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    assert!(
        otpsim::sim::corpus::files(&dir).len() >= 2,
        "the corpus holds its golden and regression cases"
    );
    let problems = replay_corpus(&dir, &targets, true, update_requested());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A user's saved failure is replayed by their harness test before any new case: it keeps
/// failing while the bug is there, and once the bug is fixed the test says so (and
/// `OTPSIM_UPDATE=1` would keep the case as a regression).
#[test]
fn a_harness_replays_its_targets_saved_cases_first() {
    let dir = std::env::temp_dir().join("otpsim-harness-replays-first");
    let _ = std::fs::remove_dir_all(&dir);
    let buggy = Kv {
        links_buckets: true,
        ..Kv::default()
    };
    let found = Harness::new(buggy)
        .families(&[otpsim::sim::harness::Family::Crash])
        .cases(2000)
        .corpus(Some(dir.clone()))
        .run();
    let saved = found.failure.expect("the planted bug is found").saved;
    let saved = saved.expect("saved in the corpus");
    // Its page beside it (issue 21): the run drawn, failing as the file says.
    let page = std::fs::read_to_string(saved.with_extension("html")).expect("a page beside it");
    assert!(page.contains("registry_survives_bucket_crashes"));
    // Still buggy: the saved case replays as recorded, no regression.
    let again = Harness::new(buggy).cases(0).corpus(Some(dir.clone())).run();
    assert_eq!(again.regressions, Vec::<String>::new());
    // "Fixed": point the saved case at the correct design (same name, same case).
    let mut file = otpsim::sim::corpus::load(&saved).unwrap();
    file.target = Kv::default().name();
    otpsim::sim::corpus::write(&saved, &file).unwrap();
    let fixed = Harness::new(Kv::default())
        .cases(0)
        .corpus(Some(dir.clone()))
        .run();
    assert_eq!(fixed.regressions.len(), 1, "{:?}", fixed.regressions);
    assert!(
        fixed.regressions[0]
            .contains("expected a violation of app:registry_survives_bucket_crashes, got none"),
        "{:?}",
        fixed.regressions
    );
}

/// The golden cases (one per strategy, a dynamic supervisor, a registry: `corpus/tree-golden-*`)
/// keep their canonical traces, as insta snapshots in `sim-tests/snapshots/`: a change to
/// the runtime that changes one shows up as a reviewable diff (`cargo insta review`, or
/// `INSTA_UPDATE=always`), and `OTPSIM_UPDATE=1` then re-pins the files' trace hashes.
#[test]
fn golden_cases_keep_their_traces() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let targets = otpsim::targets();
    let mut goldens = 0;
    for path in otpsim::sim::corpus::files(&dir) {
        let stem = path.file_stem().unwrap_or_default().to_string_lossy();
        let Some(name) = stem.strip_prefix("tree-golden-") else {
            continue;
        };
        let file = otpsim::sim::corpus::load(&path).expect("a valid corpus file");
        let tree = targets.iter().find(|t| t.name() == file.target).unwrap();
        let report = tree.clone().replay(&file.case).expect("the case parses");
        assert_eq!(report.violation, None, "{}", path.display());
        insta::with_settings!({ description => file.description.clone(), omit_expression => true }, {
            insta::assert_snapshot!(format!("golden_{name}"), report.trace.timeline().join("\n"));
        });
        goldens += 1;
    }
    assert!(
        goldens >= 5,
        "one golden case per strategy, a dynamic one, a registry one"
    );
}

/// A malformed corpus file gets an error naming the file and the field.
#[test]
fn a_malformed_corpus_file_is_named_with_its_field() {
    let path = std::path::Path::new("corpus/broken.json");
    let e = otpsim::sim::corpus::CorpusFile::parse(path, r#"{"schema": 1, "target": "tree"}"#)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("corpus/broken.json") && e.contains("description"),
        "{e}"
    );
    let e = otpsim::sim::corpus::CorpusFile::parse(path, r#"{"schema": "one"}"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("field `schema`"), "{e}");
}

/// Planted bug (b): found and shrunk.
#[test]
fn permanent_buckets_nobody_tracks_are_found_and_shrunk() {
    found_and_shrunk("kv-permanent-buckets (b)");
}

/// The fixed design passes 10,000 cases with every fault family.
#[test]
fn a_server_that_registers_in_init_survives_crashes() {
    Harness::new(Named {
        check_then_register: false,
    })
    .cases(10_000)
    .corpus(None)
    .check();
}

/// Planted bug (e): found and shrunk.
#[test]
fn a_restart_racing_the_old_owners_cleanup_is_found_and_shrunk() {
    found_and_shrunk("named-racy (e)");
}

/// Planted bug (c): found and shrunk.
#[test]
fn a_registry_started_before_the_supervisor_it_calls_is_found_and_shrunk() {
    found_and_shrunk("kv-registry-first (c)");
}

/// The fixed cache passes 10,000 cases with every fault family.
#[test]
fn a_cache_that_finds_or_starts_again_after_a_death_passes() {
    Harness::new(Cache {
        trusts_lookup: false,
    })
    .cases(10_000)
    .corpus(None)
    .check();
}

/// Planted bug (d): found and shrunk.
#[test]
fn a_cache_that_trusts_its_lookup_is_found_and_shrunk() {
    found_and_shrunk("cache-trusts-lookup (d)");
}

/// A name server that demonitors what it unregisters passes 10,000 cases with every fault
/// family.
#[test]
fn a_name_server_that_demonitors_on_unregister_passes() {
    Harness::new(Names {
        forgets_demonitor: false,
    })
    .cases(10_000)
    .corpus(None)
    .check();
}

/// A name server that forgets to demonitor on unregister (issue 17): found, although it
/// needs four steps in one order (register, unregister, another client registers the key,
/// the first dies), and shrunk to exactly those.
#[test]
fn a_name_server_that_forgets_to_demonitor_is_found_and_shrunk() {
    found_and_shrunk("names-forget-demonitor");
}

/// A dispatcher that calls its workers and acknowledges what they answered passes 10,000
/// cases with every fault family.
#[test]
fn a_dispatcher_that_waits_for_its_workers_passes() {
    Harness::new(Dispatch { acks_casts: false })
        .cases(10_000)
        .corpus(None)
        .check();
}

/// A dispatcher that acknowledges a job it cast to a pid it just looked up (issue 17): found,
/// and shrunk to seed 0 with the signals it needs late held one by one.
#[test]
fn a_dispatcher_that_acks_its_casts_is_found_and_shrunk() {
    found_and_shrunk("dispatch-acks-casts");
}

/// The tree generator produces every kind of node and every workload operation the issue
/// lists (workers, nested and dynamic supervisors, servers, task supervisors; start and
/// terminate child, calls and casts, tasks, lookups), and registries: a strategy that lost
/// one would leave it untested.
#[test]
fn the_tree_generator_covers_every_kind_and_operation() {
    use otpsim::sim::harness::{case_strategy, Family, Step};
    use otpsim::sim::tree::{Kind, TreeOp, TreeSpec};
    use proptest::strategy::ValueTree;
    fn kinds(tree: &TreeSpec, seen: &mut std::collections::BTreeSet<String>) {
        let strategy = serde_json::to_value(tree.strategy).expect("a strategy serialises");
        seen.insert(format!("strategy:{}", strategy.as_str().unwrap_or("?")));
        for child in &tree.children {
            match &child.kind {
                Kind::Worker(_) => seen.insert("worker".into()),
                Kind::Server(_) => seen.insert("server".into()),
                Kind::Tasks => seen.insert("tasks".into()),
                Kind::Supervisor(t) => {
                    kinds(t, seen);
                    seen.insert("supervisor".into())
                }
            };
        }
    }
    let strategy = case_strategy(&std::sync::Arc::new(Tree), 12, &Family::ALL);
    let mut runner = crate::common::seeded_runner(1);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..500 {
        let case = strategy.new_tree(&mut runner).unwrap().current();
        kinds(&case.setup.root, &mut seen);
        if case.setup.registry {
            seen.insert("registry".into());
        }
        for step in &case.steps {
            if let Step::Op(op) = step {
                seen.insert(
                    match op {
                        TreeOp::StartChild { .. } => "start_child",
                        TreeOp::TerminateChild { .. } => "terminate_child",
                        TreeOp::RestartChild { .. } => "restart_child",
                        TreeOp::Call { cast: false, .. } => "call",
                        TreeOp::Call { cast: true, .. } => "cast",
                        TreeOp::Async { .. } => "async",
                        TreeOp::Lookup { .. } => "lookup",
                    }
                    .into(),
                );
            }
        }
    }
    let expected = [
        "async",
        "call",
        "cast",
        "lookup",
        "registry",
        "restart_child",
        "server",
        "start_child",
        "strategy:dynamic",
        "strategy:one_for_all",
        "strategy:one_for_one",
        "strategy:rest_for_one",
        "supervisor",
        "tasks",
        "terminate_child",
        "worker",
    ];
    let missing: Vec<&str> = expected
        .into_iter()
        .filter(|k| !seen.contains(*k))
        .collect();
    assert!(missing.is_empty(), "never generated: {missing:?}");
}

/// A target whose at-rest check itself calls the system: here it registers a process that
/// dies at once, so the run ends with that death's registry cleanup still pending. The
/// harness judges the end state when the tree came to rest, before the check's own activity.
#[derive(Clone, Copy)]
struct BusyCheck;

impl Target for BusyCheck {
    type Setup = ();
    type Op = ();
    type State = otpsim::registry::Registry<String, ()>;

    fn name(&self) -> String {
        "busy-check".into()
    }

    fn setups(&self) -> BoxedStrategy<()> {
        Just(()).boxed()
    }

    fn workload(&self, _: Domain) -> Workload<()> {
        Workload::new().kind("call", 1, Just(()))
    }

    async fn start(&self, _: &(), p: &Process) -> Result<(Pid, Self::State), String> {
        use otpsim::registry::{Keys, Registry, RegistryOptions};
        let names = Registry::new(RegistryOptions::new(Keys::Unique));
        let spec = SupervisorSpec::new(Flags::elixir(SupStrategy::OneForOne))
            .child(names.child_spec("names"));
        let sup = supervisor::start_link(p, spec)
            .await
            .map_err(|e| e.to_string())?;
        Ok((sup.pid(), names))
    }

    async fn check(&self, names: &mut Self::State, p: &Process) -> Result<(), Violation> {
        let names = names.clone();
        let brief = p.spawn(move |q| async move {
            let _ = names.register(&q, "brief".to_string(), ());
        });
        let _ = p.node().wait_exit(brief).await;
        Ok(())
    }
}

#[test]
fn the_end_state_is_judged_before_the_applications_own_check() {
    Harness::new(BusyCheck).cases(100).corpus(None).check();
}

/// A generated tree's permanent worker that starts at once, stops at once (within a 500 ms
/// shutdown) and does not trap exits; with `register`, it registers its tree path in the
/// tree's registry.
fn plain_worker(id: Option<u16>, register: bool) -> otpsim::sim::tree::NodeSpec {
    use otpsim::sim::tree::{Kind, NodeSpec, StartAction, WorkerSpec};
    use otpsim::supervisor::{Restart, Shutdown};
    NodeSpec {
        id,
        restart: Restart::Permanent,
        shutdown: Shutdown::Timeout(500),
        kind: Kind::Worker(WorkerSpec {
            trap_exit: false,
            stop_ms: Some(0),
            starts: vec![StartAction::Ok],
            register,
        }),
    }
}

/// A fault keeps hitting the same process when other parts of the tree go: what lets a
/// failing tree shrink (faults pick by rendezvous hashing over tree paths, and generated
/// children keep their ids when a sibling is removed).
#[test]
fn a_fault_hits_the_same_process_when_the_rest_of_the_tree_shrinks() {
    use otpsim::sim::harness::{run_case, Case, Fault, Step};
    use otpsim::sim::tree::{TreeSetup, TreeSpec, TreeStrategy};
    let case = |ids: &[u16], victim: u16| {
        let setup = TreeSetup {
            root: TreeSpec {
                strategy: TreeStrategy::OneForOne,
                intensity: 3,
                period: 5,
                children: ids
                    .iter()
                    .map(|&id| plain_worker(Some(id), false))
                    .collect(),
            },
            registry: false,
        };
        Case::new(setup, vec![Step::Fault(Fault::Kill { victim })])
    };
    let hit = |ids: &[u16], victim: u16| {
        let report = run_case(&std::sync::Arc::new(Tree), &case(ids, victim));
        let lines = report.trace.lines();
        let fault = lines.iter().find(|l| l.starts_with("fault ")).cloned();
        fault.expect("the fault hit something")
    };
    let all = [11, 22, 33, 44, 55];
    for victim in 0..20 {
        let before = hit(&all, victim);
        // Remove every child but the one hit: the same child is hit.
        let kept: Vec<u16> = all
            .iter()
            .copied()
            .filter(|id| before.contains(&format!("root/c{id} ")))
            .collect();
        assert_eq!(kept.len(), 1, "{before}");
        assert_eq!(hit(&kept, victim), before, "victim {victim}");
        // And removing any other single child changes nothing either.
        for gone in all.iter().filter(|id| **id != kept[0]) {
            let rest: Vec<u16> = all.iter().copied().filter(|id| id != gone).collect();
            assert_eq!(
                hit(&rest, victim),
                before,
                "victim {victim} without c{gone}"
            );
        }
    }
}

/// Crash faults never go into library processes (supervisors, registry partitions: OTP and
/// Elixir code that does not fail by itself); kills reach them like any other process.
#[test]
fn crash_faults_spare_library_processes_and_kills_do_not() {
    use otpsim::sim::harness::{run_case, Case, CrashReason, Fault, Step};
    use otpsim::sim::tree::{TreeSetup, TreeSpec, TreeStrategy};
    let setup = TreeSetup {
        root: TreeSpec {
            strategy: TreeStrategy::OneForOne,
            intensity: 100,
            period: 5,
            children: vec![plain_worker(None, true)],
        },
        registry: true,
    };
    let faults_on_partitions = |fault: fn(u16) -> Fault| {
        (0..64u16)
            .filter(|&victim| {
                let case = Case::new(setup.clone(), vec![Step::Fault(fault(victim))]);
                let report = run_case(&std::sync::Arc::new(Tree), &case);
                assert_eq!(report.violation, None, "victim {victim}");
                report
                    .trace
                    .lines()
                    .iter()
                    .any(|l| l.starts_with("fault root/registry/partition_0 "))
            })
            .count()
    };
    let crash = |victim| Fault::Crash {
        victim,
        reason: CrashReason::Normal,
    };
    assert_eq!(faults_on_partitions(crash), 0, "a crash hit a partition");
    let kill = |victim| Fault::Kill { victim };
    assert!(faults_on_partitions(kill) > 0, "kills reach partitions too");
}

/// A target whose fifth run fails, and no other: the failure cannot be shrunk or replayed,
/// which is all the better to count with.
struct FailsAtRun {
    runs: std::sync::atomic::AtomicU64,
}

impl Target for FailsAtRun {
    type Setup = ();
    type Op = ();
    type State = ();

    fn name(&self) -> String {
        "fails-at-run".into()
    }

    fn setups(&self) -> BoxedStrategy<()> {
        Just(()).boxed()
    }

    fn workload(&self, _: Domain) -> Workload<()> {
        Workload::new()
    }

    async fn start(&self, _: &(), p: &Process) -> Result<(Pid, ()), String> {
        let run = 1 + self.runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if run == 5 {
            return Err("the fifth run fails".into());
        }
        Ok((p.spawn(idle), ()))
    }
}

/// `HarnessReport::cases` counts the cases up to the first failing one, not the runs of
/// shrinking (a campaign that failed at case 5 once reported its whole budget), and the
/// failure says where and when it was found.
#[test]
fn a_campaign_reports_the_case_at_which_it_first_failed() {
    let target = FailsAtRun {
        runs: Default::default(),
    };
    let report = Harness::new(target)
        .cases(2000)
        .determinism_every(0)
        .corpus(None)
        .run();
    assert_eq!(report.cases, 5);
    let failure = report.failure.expect("the fifth run fails");
    assert_eq!(failure.found_at_case, 5);
    assert!(failure.found_after > std::time::Duration::ZERO);
}
