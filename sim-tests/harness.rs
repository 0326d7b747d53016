//! The harness (`sim::harness`) on the built-in generated trees and on users' own trees with
//! planted bugs: it must pass the correct trees and find, shrink and save the bugs.
//!
//! The harness on the targets of its planted bugs: each target, its bug switch and its tests sit
//! together (hence the file's length).
#![cfg(madsim)]

use otpsim::sim::harness::{Domain, Harness, Target, Workload};
use otpsim::sim::invariants::{Invariant, Violation};
use otpsim::sim::tree::Tree;
use otpsim::supervisor::dynamic::{self, DynamicOptions, DynamicSupervisorRef};
use otpsim::supervisor::{
    self, ChildSpec, Flags, Start, Started, Strategy as SupStrategy, SupervisorSpec,
};
use otpsim::{ExitReason, Msg, Pid, Process};
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

/// A KV store's bucket registry (issue 5, planted bug (a) and its fix): buckets are started
/// by the registry under a dynamic supervisor; the registry monitors them. The buggy variant
/// links to them instead, so one bucket's crash takes the registry (and every name) down.
///
/// Planted bug (b): buckets are `permanent` under the dynamic supervisor, so a crashed bucket
/// comes back as a process the registry never hears of (a leak).
///
/// Planted bug (c): the registry is started before the bucket supervisor it calls (under
/// rest_for_one) and keeps the one it found first, so when the bucket supervisor restarts,
/// the registry keeps calling the dead one: it is not restarted with it, since it comes
/// first. (The other variants look the supervisor up by its name at every creation.)
#[derive(Clone, Copy, Default)]
struct Kv {
    links_buckets: bool,
    permanent_buckets: bool,
    registry_first: bool,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
enum KvOp {
    /// Create bucket n (if absent).
    Create(u8),
    /// Ask the registry how many buckets it knows.
    Count,
}

struct KvState {
    registry: Pid,
}

struct Create(u8, Pid);
struct Created(bool);
struct Count(Pid);

/// The campaign of a planted bug found it, as a violation of the application invariant
/// `invariant`, and shrank it to at most 3 operations and faults (waits aside); the minimal
/// case.
fn found_and_shrunk(
    report: otpsim::sim::harness::HarnessReport,
    invariant: &str,
) -> otpsim::sim::harness::Failure {
    let failure = report.failure.expect("the planted bug is found");
    assert_eq!(
        failure.violation.invariant,
        Invariant::App(invariant.into()),
        "{failure}"
    );
    let steps = failure.case["steps"].as_array().expect("steps");
    let ops_and_faults = steps.iter().filter(|s| s.get("wait").is_none()).count();
    assert!(ops_and_faults <= 3, "not shrunk: {failure}");
    failure
}

async fn idle(q: Process) -> ExitReason {
    loop {
        q.recv().await;
    }
}

/// The bucket registry: looks the bucket supervisor up by its name at every creation (one
/// kept from the first use would be dead after an operator restarted the supervisor alone;
/// planted bug (c) keeps it), and stops the buckets of an earlier registry when it starts (a
/// registry restarted alone would leave them running, nameless).
async fn registry(p: Process, kv: Kv) -> ExitReason {
    let mut names: std::collections::BTreeMap<u8, Pid> = Default::default();
    let mut kept: Option<DynamicSupervisorRef> = None;
    if let Some(buckets) = p.whereis("buckets").map(DynamicSupervisorRef::from_pid) {
        for orphan in buckets.which_children(&p).await.unwrap_or_default() {
            if let supervisor::ChildState::Running(bucket) = orphan.state {
                let _ = buckets.terminate_child(&p, bucket).await;
            }
        }
    }
    loop {
        match p.recv().await {
            Msg::Down { pid, .. } => names.retain(|_, b| *b != pid),
            msg => {
                if let Some(Create(n, from)) = msg.downcast_ref::<Create>() {
                    let found = || p.whereis("buckets").map(DynamicSupervisorRef::from_pid);
                    let buckets = if kv.registry_first {
                        if kept.is_none() {
                            kept = found();
                        }
                        kept
                    } else {
                        found()
                    };
                    let mut ok = names.contains_key(n);
                    if let (false, Some(buckets)) = (ok, &buckets) {
                        let spec = ChildSpec::worker(
                            "bucket",
                            Start::new(|p| {
                                let pid = p.spawn_link(idle);
                                Box::pin(async move { Ok(Started::Pid(pid)) })
                            }),
                        )
                        .restart(if kv.permanent_buckets {
                            supervisor::Restart::Permanent
                        } else {
                            supervisor::Restart::Temporary
                        });
                        if let Ok(Started::Pid(bucket)) = buckets.start_child(&p, spec).await {
                            if kv.links_buckets {
                                let _ = p.link(bucket);
                            } else {
                                p.monitor(bucket);
                            }
                            names.insert(*n, bucket);
                            ok = true;
                        }
                    }
                    p.send(*from, Created(ok));
                } else if let Some(Count(from)) = msg.downcast_ref::<Count>() {
                    p.send(*from, names.len());
                }
            }
        }
    }
}

impl Target for Kv {
    type Setup = ();
    type Op = KvOp;
    type State = KvState;

    fn name(&self) -> String {
        match *self {
            Kv {
                links_buckets: true,
                ..
            } => "kv-linked",
            Kv {
                permanent_buckets: true,
                ..
            } => "kv-permanent-buckets",
            Kv {
                registry_first: true,
                ..
            } => "kv-registry-first",
            _ => "kv",
        }
        .into()
    }

    fn setups(&self) -> BoxedStrategy<()> {
        Just(()).boxed()
    }

    fn workload(&self, domain: Domain) -> Workload<KvOp> {
        Workload::new()
            .kind("create", 1, domain.pick().prop_map(KvOp::Create))
            .kind("count", 1, Just(KvOp::Count))
    }

    async fn start(&self, _: &(), p: &Process) -> Result<(Pid, KvState), String> {
        let kv = *self;
        let dsup = ChildSpec::supervisor(
            "buckets",
            Start::new(|p| {
                Box::pin(async move {
                    let sup = dynamic::start_with(
                        p,
                        |_| dynamic::DynamicInit::Ok(DynamicOptions::default()),
                        otpsim::server::StartOptions::linked().named("buckets"),
                    )
                    .await
                    .map_err(|e| e.reason().to_term())?;
                    Ok(Started::Pid(sup.pid()))
                })
            }),
        );
        let reg = ChildSpec::worker(
            "registry",
            Start::new(move |p| {
                let pid = p.spawn_link(move |q| async move {
                    q.register("kv_registry").expect("free name");
                    registry(q, kv).await
                });
                Box::pin(async move { Ok(Started::Pid(pid)) })
            }),
        );
        let spec = if kv.registry_first {
            SupervisorSpec::new(Flags::elixir(SupStrategy::RestForOne))
                .child(reg)
                .child(dsup)
        } else {
            SupervisorSpec::new(Flags::elixir(SupStrategy::OneForAll))
                .child(dsup)
                .child(reg)
        };
        let sup = supervisor::start_link(p, spec)
            .await
            .map_err(|e| e.to_string())?;
        Ok((
            sup.pid(),
            KvState {
                registry: Pid::from_raw(0),
            },
        ))
    }

    async fn apply(&self, state: &mut KvState, op: &KvOp, p: &Process) -> Result<(), Violation> {
        let Some(reg) = p.node().whereis("kv_registry") else {
            return Ok(());
        };
        state.registry = reg;
        match op {
            KvOp::Create(n) => p.send(reg, Create(*n, p.pid())),
            KvOp::Count => p.send(reg, Count(p.pid())),
        }
        let _ = p
            .receive_timeout(
                |m| m.downcast_ref::<Created>().is_some() || m.downcast_ref::<usize>().is_some(),
                otpsim::rt::Duration::from_secs(1),
            )
            .await;
        Ok(())
    }

    /// App invariant: a bucket's crash never takes the registry down. When every fault of
    /// the run hit a bucket, the registry must still be the one the workload last used.
    async fn check(&self, state: &mut KvState, p: &Process) -> Result<(), Violation> {
        let only_buckets_hit = otpsim::sim::harness::only_children_hit(p, "buckets");
        let now = p.node().whereis("kv_registry");
        // At rest, creating a new bucket works.
        if let Some(reg) = now {
            p.send(reg, Create(200, p.pid()));
            let reply = p
                .receive_timeout(
                    |m| m.downcast_ref::<Created>().is_some(),
                    otpsim::rt::Duration::from_secs(1),
                )
                .await;
            if !reply.is_some_and(|m| m.downcast_ref::<Created>().is_some_and(|c| c.0)) {
                return Err(Violation::app(
                    "create_works_at_rest",
                    "the registry could not create a bucket after the tree settled",
                ));
            }
        }
        // No bucket is alive that the registry does not know.
        if let (Some(reg), Some(dsup)) = (now, p.node().whereis("buckets")) {
            p.send(reg, Count(p.pid()));
            let known = p
                .receive_timeout(
                    |m| m.downcast_ref::<usize>().is_some(),
                    otpsim::rt::Duration::from_secs(1),
                )
                .await
                .and_then(|m| m.downcast_ref::<usize>().copied());
            let live = otpsim::sim::descendants(p.node(), dsup).len();
            if known.is_some_and(|known| known != live) {
                return Err(Violation::app(
                    "no_unknown_buckets",
                    format!("{live} bucket(s) alive, the registry knows {known:?}"),
                ));
            }
        }
        if only_buckets_hit && state.registry != Pid::from_raw(0) && now != Some(state.registry) {
            return Err(Violation::app(
                "registry_survives_bucket_crashes",
                "only buckets crashed, yet the registry is not the one it was",
            ));
        }
        Ok(())
    }
}

/// The correct design passes 10,000 cases with every fault family.
#[test]
fn a_kv_registry_that_monitors_its_buckets_passes() {
    Harness::new(Kv::default())
        .cases(10_000)
        .corpus(None)
        .check();
}

/// Planted bug (a): found, and shrunk to at most 3 operations and faults.
#[test]
fn a_kv_registry_linked_to_its_buckets_is_found_and_shrunk() {
    let dir = std::env::temp_dir().join("otpsim-harness-kv-linked");
    let _ = std::fs::remove_dir_all(&dir);
    let report = Harness::new(Kv {
        links_buckets: true,
        ..Kv::default()
    })
    .families(&[
        otpsim::sim::harness::Family::Crash,
        otpsim::sim::harness::Family::Delay,
    ])
    .cases(2000)
    .corpus(Some(dir.clone()))
    .run();
    let failure = found_and_shrunk(report, "registry_survives_bucket_crashes");
    assert_eq!(failure.case["seed"], 0, "{failure}");
    let saved = failure.saved.expect("saved in the corpus");
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
    use otpsim::sim::harness::AnyTarget;
    use std::sync::Arc;
    let mut targets = otpsim::targets();
    for kv in [
        Kv::default(),
        Kv {
            links_buckets: true,
            ..Kv::default()
        },
        Kv {
            permanent_buckets: true,
            ..Kv::default()
        },
        Kv {
            registry_first: true,
            ..Kv::default()
        },
    ] {
        targets.push(Arc::new(kv) as Arc<dyn AnyTarget>);
    }
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

/// Planted bug (b): found, and shrunk to at most 3 operations and faults.
#[test]
fn permanent_buckets_nobody_tracks_are_found_and_shrunk() {
    let report = Harness::new(Kv {
        permanent_buckets: true,
        ..Kv::default()
    })
    .families(&[
        otpsim::sim::harness::Family::Crash,
        otpsim::sim::harness::Family::Kill,
    ])
    .cases(2000)
    .corpus(None)
    .run();
    found_and_shrunk(report, "no_unknown_buckets");
}

/// A server that registers a unique name in its init (issue 5, planted bug (e) and its fix).
/// The buggy variant checks `lookup` before registering: right after a crash the registry may
/// still list the dead owner (its partition has not processed the `EXIT` yet), so the
/// restart refuses to start, every retry counts, and the supervisor gives up on one crash.
/// The fixed variant calls `register`, which takes over a dead owner's key (docs/behaviours.md item 90).
#[derive(Clone, Copy)]
struct Named {
    check_then_register: bool,
}

impl Target for Named {
    type Setup = ();
    type Op = ();
    type State = otpsim::registry::Registry<String, ()>;

    fn name(&self) -> String {
        if self.check_then_register {
            "named-racy"
        } else {
            "named"
        }
        .into()
    }

    fn setups(&self) -> BoxedStrategy<()> {
        Just(()).boxed()
    }

    fn workload(&self, _: Domain) -> Workload<()> {
        Workload::new().kind("call", 1, Just(()))
    }

    async fn start(&self, _: &(), p: &Process) -> Result<(Pid, Self::State), String> {
        let racy = self.check_then_register;
        use otpsim::registry::{Keys, Registry, RegistryOptions};
        let registry = Registry::<String, ()>::start_link(p, RegistryOptions::new(Keys::Unique))
            .await
            .map_err(|e| e.to_string())?;
        let reg = registry.clone();
        let server = ChildSpec::worker(
            "server",
            Start::new(move |p| {
                let reg = reg.clone();
                Box::pin(async move {
                    if racy && !reg.lookup(&"server".to_string()).is_empty() {
                        return Err(otpsim::Term::atom("already_registered"));
                    }
                    let pid = p.spawn_link(move |q| async move {
                        match reg.register(&q, "server".to_string(), ()) {
                            Ok(_) => idle(q).await,
                            Err(_) => ExitReason::error("already_registered"),
                        }
                    });
                    Ok(Started::Pid(pid))
                })
            }),
        );
        let spec = SupervisorSpec::new(Flags::elixir(SupStrategy::OneForOne)).child(server);
        let sup = supervisor::start_link(p, spec)
            .await
            .map_err(|e| e.to_string())?;
        Ok((sup.pid(), registry))
    }

    /// App invariant: after fewer faults than the intensity allows, the name resolves.
    async fn check(&self, registry: &mut Self::State, p: &Process) -> Result<(), Violation> {
        let faults = otpsim::sim::harness::injected_faults(p).len();
        if faults < 3 && registry.whereis_name(&"server".to_string()).is_none() {
            return Err(Violation::app(
                "name_survives_a_crash",
                format!("after {faults} fault(s) the name `server` resolves to nothing"),
            ));
        }
        Ok(())
    }
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

/// Planted bug (e): found, and shrunk to at most 3 operations and faults.
#[test]
fn a_restart_racing_the_old_owners_cleanup_is_found_and_shrunk() {
    let report = Harness::new(Named {
        check_then_register: true,
    })
    .families(&[
        otpsim::sim::harness::Family::Crash,
        otpsim::sim::harness::Family::Delay,
    ])
    .cases(2000)
    .corpus(None)
    .run();
    found_and_shrunk(report, "name_survives_a_crash");
}

/// Planted bug (c): found, and shrunk to at most 3 operations and faults.
#[test]
fn a_registry_started_before_the_supervisor_it_calls_is_found_and_shrunk() {
    let report = Harness::new(Kv {
        registry_first: true,
        ..Kv::default()
    })
    // The faults of the bug's shape (a graceful restart of the registry alone breaks this
    // design in another way first).
    .families(&crate::common::NO_STOPS)
    .cases(2000)
    .corpus(None)
    .run();
    found_and_shrunk(report, "create_works_at_rest");
}

/// A find-or-start cache (issue 5, planted bug (d) and its fix): one `Store` server per
/// name, started on demand under a DynamicSupervisor with a via name in a registry; the
/// cache looks the name up and calls the server. Between the lookup and the call the server
/// may die: `lookup` even returns a dead pid until its partition has cleaned up (docs/behaviours.md item
/// 90). The buggy cache trusts the pid it looked up and fails the request; the fixed one
/// takes `noproc` (or an exit during the call) as "that server is gone" and retries through
/// `start_child`, which starts a new one or names the live one.
#[derive(Clone, Copy)]
struct Cache {
    trusts_lookup: bool,
}

/// One named store: holds the values put in it.
struct Store(Vec<u32>);

impl otpsim::server::GenServer for Store {
    type Arg = ();
    type Call = u32;
    type Reply = usize;
    type Cast = ();
    type Cont = ();

    async fn init(_: (), _p: &Process) -> otpsim::server::Init<Self> {
        otpsim::server::Init::Ok(Store(Vec::new()))
    }

    async fn handle_call(
        &mut self,
        value: u32,
        _from: otpsim::server::From<usize>,
        _p: &Process,
    ) -> otpsim::server::CallReply<Self> {
        self.0.push(value);
        otpsim::server::CallReply::Reply(self.0.len())
    }
}

/// A request to the cache: put `value` in the store called `name`, answer to `from`.
struct Put {
    name: u8,
    value: u32,
    from: Pid,
}

/// The cache's answer: whether the value reached a live store.
struct Stored(bool);

type Names = otpsim::registry::Registry<String, ()>;

/// The cache's find-or-start: the store's pid (from `lookup` if `look_up`), started under
/// `stores` if the name is free. `start_child` is the authority: it takes over a dead
/// owner's name, or says which live process holds it (`already_started`).
async fn find_or_start(
    p: &Process,
    names: &Names,
    stores: DynamicSupervisorRef,
    name: &str,
    look_up: bool,
) -> Option<Pid> {
    let found = names
        .lookup(&name.to_string())
        .first()
        .map(|&(pid, ())| pid);
    if let Some(pid) = found.filter(|_| look_up) {
        return Some(pid);
    }
    let via = otpsim::server::StartOptions::default().via(names.via(name.to_string()));
    let spec =
        ChildSpec::server_with::<Store>("store", (), via).restart(supervisor::Restart::Temporary);
    match stores.start_child(p, spec).await {
        Ok(started) => started.pid(),
        Err(e) => e.already_started(),
    }
}

async fn cache(p: Process, names: Names, stores: DynamicSupervisorRef, cache: Cache) -> ExitReason {
    loop {
        let msg = p.recv().await;
        let Ok(Put { name, value, from }) = msg.downcast::<Put>() else {
            continue;
        };
        let name = format!("store{name}");
        let attempts = if cache.trusts_lookup { 1 } else { 3 };
        let mut stored = false;
        for attempt in 0..attempts {
            // A retry does not look up again: `lookup` may still show the dead pid.
            let Some(pid) = find_or_start(&p, &names, stores, &name, attempt == 0).await else {
                break;
            };
            match otpsim::server::ServerRef::<Store>::from_pid(pid)
                .call(&p, value)
                .await
            {
                Ok(_) => {
                    stored = true;
                    break;
                }
                // The store died since the lookup: find or start it again.
                Err(otpsim::server::CallError::Noproc | otpsim::server::CallError::Exit(_)) => {}
                Err(otpsim::server::CallError::Timeout) => break,
            }
        }
        p.send(from, Stored(stored));
    }
}

impl Target for Cache {
    type Setup = ();
    type Op = (u8, u32);
    type State = ();

    fn name(&self) -> String {
        if self.trusts_lookup {
            "cache-trusts-lookup"
        } else {
            "cache"
        }
        .into()
    }

    fn setups(&self) -> BoxedStrategy<()> {
        Just(()).boxed()
    }

    /// Put a value in one of two stores.
    fn workload(&self, domain: Domain) -> Workload<(u8, u32)> {
        Workload::new().kind("put", 1, (domain.pick(), any::<u32>()))
    }

    async fn start(&self, _: &(), p: &Process) -> Result<(Pid, ()), String> {
        let config = *self;
        use otpsim::registry::{Keys, RegistryOptions};
        // The registry belongs to the driver, outside the tree the faults hit.
        let names = Names::start_link(p, RegistryOptions::new(Keys::Unique))
            .await
            .map_err(|e| e.to_string())?;
        let stores = ChildSpec::supervisor(
            "stores",
            Start::new(|p| {
                Box::pin(async move {
                    let options = otpsim::server::StartOptions::linked().named("stores");
                    let sup = dynamic::start_with(
                        p,
                        |_| dynamic::DynamicInit::Ok(DynamicOptions::default()),
                        options,
                    )
                    .await
                    .map_err(|e| e.reason().to_term())?;
                    Ok(Started::Pid(sup.pid()))
                })
            }),
        );
        let the_cache = ChildSpec::worker(
            "cache",
            Start::new(move |p| {
                let names = names.clone();
                let Some(stores) = p.whereis("stores").map(DynamicSupervisorRef::from_pid) else {
                    return Box::pin(async { Err(otpsim::Term::atom("no_stores")) });
                };
                let pid = p.spawn_link(move |q| async move {
                    q.register("cache").expect("free name");
                    cache(q, names, stores, config).await
                });
                Box::pin(async move { Ok(Started::Pid(pid)) })
            }),
        );
        let spec = SupervisorSpec::new(Flags::elixir(SupStrategy::OneForAll))
            .child(stores)
            .child(the_cache);
        let sup = supervisor::start_link(p, spec)
            .await
            .map_err(|e| e.to_string())?;
        Ok((sup.pid(), ()))
    }

    /// App invariant: while only stores are hit, every put reaches a live store.
    async fn apply(
        &self,
        _: &mut (),
        &(name, value): &(u8, u32),
        p: &Process,
    ) -> Result<(), Violation> {
        let Some(cache) = p.whereis("cache") else {
            return Ok(());
        };
        p.send(
            cache,
            Put {
                name,
                value,
                from: p.pid(),
            },
        );
        let reply = p
            .receive_timeout(|m| m.is::<Stored>(), otpsim::rt::Duration::from_secs(10))
            .await
            .and_then(|m| m.downcast::<Stored>().ok());
        if !reply.is_some_and(|s| s.0) && otpsim::sim::harness::only_children_hit(p, "stores") {
            return Err(Violation::app(
                "puts_reach_a_live_store",
                format!("store{name} did not take a value; only stores were hit"),
            ));
        }
        Ok(())
    }
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

/// Planted bug (d): found, and shrunk to at most 3 operations and faults.
#[test]
fn a_cache_that_trusts_its_lookup_is_found_and_shrunk() {
    let report = Harness::new(Cache {
        trusts_lookup: true,
    })
    .cases(2000)
    .corpus(None)
    .run();
    found_and_shrunk(report, "puts_reach_a_live_store");
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
