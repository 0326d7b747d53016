//! The planted cluster bugs (`sim-tests/planted/cluster.rs`) under the cluster harness:
//! each found within 2,000 cases and shrunk to at most 3 steps; the fixed twins pass.
#![cfg(madsim)]
use crate::planted::cluster::{Books, Cron, Singleton, StaleCache};
use otpsim::sim::cluster_harness::{
    ClusterFamily, ClusterHarness, ClusterHarnessReport, ClusterStep, ClusterTarget,
};

/// The harness for a planted system: every family but process faults (the systems are
/// deliberately unsupervised, so a killed process stays dead, which is not their flaw).
fn harness<T: ClusterTarget>(target: T, cases: u64) -> ClusterHarness<T> {
    let families: Vec<ClusterFamily> = ClusterFamily::ALL
        .into_iter()
        .filter(|f| *f != ClusterFamily::Process)
        .collect();
    ClusterHarness::new(target).families(&families).cases(cases)
}

fn found(report: &ClusterHarnessReport, name: &str) {
    let failure = report.failure.as_ref().unwrap_or_else(|| {
        panic!("{name}: not found in {} cases", report.cases);
    });
    println!(
        "{name}: found at case {} (seed {}), shrunk to {:?}: {}",
        failure.found_at_case, failure.seed, failure.case, failure.message
    );
    assert!(
        failure.found_at_case <= 2000,
        "{name}: found at {}",
        failure.found_at_case
    );
    assert!(
        failure.case.steps.len() <= 3,
        "{name}: shrunk to {} steps: {:?}",
        failure.case.steps.len(),
        failure.case
    );
}

/// Issue 18, planted bug (a): two copies of a singleton after a partition heals.
#[test]
fn a_singleton_that_fails_over_on_noconnection_is_found_and_shrunk() {
    let report = harness(Singleton { buggy: true }, 2000).run();
    found(&report, "singleton");
    let message = &report.failure.as_ref().unwrap().message;
    assert!(message.starts_with("2 instances"), "{message}");
}

/// Issue 18, planted bug (b): requests lost to a remote pid of an old incarnation.
#[test]
fn a_cache_of_a_remote_pid_across_a_restart_is_found_and_shrunk() {
    let report = harness(StaleCache { buggy: true }, 2000).run();
    found(&report, "stale-cache");
    let message = &report.failure.as_ref().unwrap().message;
    assert!(message.starts_with("requests lost"), "{message}");
}

/// Issue 18, planted bug (c): `nodedown` taken as ordered after the node's last message.
#[test]
fn books_closed_at_nodedown_are_found_and_shrunk() {
    let report = harness(Books { buggy: true }, 2000).run();
    found(&report, "books");
    let message = &report.failure.as_ref().unwrap().message;
    assert!(message.starts_with("items lost"), "{message}");
}

/// Planted bug (d): a periodic job waiting on the wall clock stalls when NTP steps it back
/// (docs/architecture.md, "Time"); found by the clock-jump family.
#[test]
fn a_job_scheduled_on_the_wall_clock_is_found_and_shrunk() {
    let report = harness(Cron { buggy: true }, 2000).run();
    found(&report, "cron");
    let failure = report.failure.as_ref().unwrap();
    assert!(
        failure.message.starts_with("the job stalled"),
        "{}",
        failure.message
    );
    assert!(
        matches!(
            failure.case.steps[..],
            [(_, ClusterStep::ClockJump { ms, .. })] if ms < 0
        ),
        "{:?}",
        failure.case
    );
}

/// The same systems without their flaws pass (10,000 cases each in the closing check of
/// issue 18; `cargo test` runs 200).
#[test]
fn the_fixed_twins_pass() {
    for report in [
        harness(Singleton { buggy: false }, 200).run(),
        harness(StaleCache { buggy: false }, 200).run(),
        harness(Books { buggy: false }, 200).run(),
        harness(Cron { buggy: false }, 200).run(),
    ] {
        assert_eq!(report.failure, None);
    }
}

/// The 10,000-case run of the fixed twins (`cargo test -- --ignored
/// the_fixed_twins_pass_10000`: about 5 minutes).
#[test]
#[ignore]
fn the_fixed_twins_pass_10000() {
    let a = harness(Singleton { buggy: false }, 10_000).run();
    assert_eq!(a.failure, None);
    let c = harness(Books { buggy: false }, 10_000).run();
    assert_eq!(c.failure, None);
    let b = harness(StaleCache { buggy: false }, 10_000).run();
    assert_eq!(b.failure, None);
    let d = harness(Cron { buggy: false }, 10_000).run();
    assert_eq!(d.failure, None);
}

/// The process family reaches inside a node (issue 18: "the existing families keep working
/// inside each node"): a worker nobody restarts is lost to a crash, a kill or an exit signal
/// of it alone, which only that family causes here.
#[test]
fn process_faults_inside_a_node_find_an_unsupervised_worker() {
    use otpsim::sim::cluster::ClusterCtl;
    use otpsim::Node;
    struct Unsupervised;
    impl ClusterTarget for Unsupervised {
        type Op = ();

        fn name(&self) -> String {
            "unsupervised".into()
        }
        fn boot(&self, k: u16, node: &Node, _: bool) {
            if k == 2 {
                node.spawn(|p| async move {
                    p.register("svc").unwrap();
                    p.receive(|_| false).await;
                });
            }
        }
        async fn check(&self, ctl: &ClusterCtl) -> Result<(), String> {
            match ctl.node(2).whereis("svc") {
                Some(_) => Ok(()),
                None => Err("svc is gone".into()),
            }
        }
    }
    let report = ClusterHarness::new(Unsupervised)
        .families(&[ClusterFamily::Process])
        .cases(200)
        .run();
    let failure = report.failure.expect("a process fault ends the worker");
    assert!(
        matches!(failure.case.steps[..], [(_, ClusterStep::Process { .. })]),
        "{:?}",
        failure.case
    );
}

/// A cluster target is one of `otpsim`'s targets through `AsTarget` (issue 19, item 2): a
/// failing seed is shrunk and saved in the corpus, the saved file replays with the violation
/// it records, and a harness with that corpus replays it before its own cases.
#[test]
fn a_cluster_failure_is_saved_in_the_corpus_and_replays() {
    use otpsim::sim::cluster_harness::AsTarget;
    use otpsim::sim::corpus;
    use otpsim::sim::harness::AnyTarget;
    use std::sync::Arc;
    let dir = std::env::temp_dir().join(format!("otpsim-cluster-corpus-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let target: Arc<dyn AnyTarget> = Arc::new(AsTarget::new(Cron { buggy: true }));
    let failure = (0..50)
        .find_map(|seed| {
            let report = target
                .clone()
                .fuzz_seed(seed, &[], false, Some(dir.clone()), &|_| false);
            report.failure
        })
        .expect("a backward clock jump within 50 seeds");
    let saved = failure.saved.expect("saved in the corpus");
    let file = corpus::load(&saved).unwrap();
    assert_eq!(file.target, "cron-buggy");
    let replayed = corpus::replay_file(&file, std::slice::from_ref(&target)).unwrap();
    assert_eq!(
        replayed.violation.map(|v| v.invariant),
        Some(failure.violation.invariant)
    );
    let regressions = corpus::replay_corpus(&dir, &[target], false, false);
    assert_eq!(regressions, Vec::<String>::new());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Supervised clients of a service on another node (as in `examples/cluster.rs`) under every
/// node and network family: each dies of `noconnection` when its link to the service is cut
/// and its supervisor restarts it, and each node incarnation's own trace keeps the
/// single-node invariants (restart types, intensity, order, orphans: `ClusterSim::check_nodes`,
/// on in the harness).
#[test]
fn supervised_clients_of_a_remote_service_keep_every_invariant() {
    use otpsim::sim::cluster::ClusterCtl;
    use otpsim::supervisor::{self, ChildSpec, Flags, Start, Started, Strategy, SupervisorSpec};
    use otpsim::{ExitReason, Node, Pid};
    struct Clients;
    struct Hello(Pid);
    impl ClusterTarget for Clients {
        type Op = ();

        fn name(&self) -> String {
            "clients".into()
        }
        fn boot(&self, k: u16, node: &Node, _: bool) {
            if k == 1 {
                node.spawn(|p| async move {
                    p.register("work").unwrap();
                    loop {
                        if let Ok(Hello(client)) = p.recv().await.downcast::<Hello>() {
                            let _ = p.link(client);
                        }
                    }
                    #[allow(unreachable_code)]
                    ()
                });
                return;
            }
            node.spawn(|p| async move {
                let client = ChildSpec::worker(
                    "client",
                    Start::new(|p| {
                        let pid = p.spawn_link(|q| async move {
                            q.register("client").unwrap();
                            q.send_named("work", 1, Hello(q.pid()));
                            q.receive(|_| false).await;
                            ExitReason::Normal
                        });
                        Box::pin(async move { Ok(Started::Pid(pid)) })
                    }),
                );
                let flags = Flags {
                    intensity: 1000,
                    ..Flags::elixir(Strategy::OneForOne)
                };
                let sup = supervisor::start_link(&p, SupervisorSpec::new(flags).child(client));
                let sup = sup.await.expect("the tree starts");
                p.node()
                    .wait_exit(sup.pid())
                    .await
                    .unwrap_or(ExitReason::Normal)
            });
        }
        async fn check(&self, ctl: &ClusterCtl) -> Result<(), String> {
            for k in 2..=3 {
                if ctl.node(k).whereis("client").is_none() {
                    return Err(format!("no client on n{k}"));
                }
            }
            Ok(())
        }
    }
    let report = harness(Clients, 300).run();
    assert_eq!(report.failure, None);
}

/// A target's workload is case steps (`ClusterTarget::Op`): drawn by the target, applied
/// beside the faults, and shrunk away like them. Here the only way to fail is an operation:
/// one that stops the service on node 2, among others that stop nothing.
#[test]
fn workload_operations_are_steps_that_shrink() {
    use otpsim::sim::cluster::ClusterCtl;
    use otpsim::{ExitReason, Node};
    #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Stop(u16);
    struct Service;
    impl ClusterTarget for Service {
        type Op = Stop;
        fn name(&self) -> String {
            "service".into()
        }
        fn families(&self) -> Vec<ClusterFamily> {
            Vec::new()
        }
        fn boot(&self, k: u16, node: &Node, _: bool) {
            node.spawn(move |p| async move {
                p.register("svc").unwrap();
                p.receive(|_| false).await;
            });
            let _ = k;
        }
        fn op(&self, draw: &mut dyn FnMut(u64) -> u64) -> Option<Stop> {
            Some(Stop(1 + draw(3) as u16))
        }
        async fn apply(&self, ctl: &ClusterCtl, op: &Stop) {
            // Stopping node 2's service is the bug; the others are stopped and started.
            let Stop(k) = *op;
            ctl.on(k, move |p| async move {
                if let Some(svc) = p.whereis("svc") {
                    p.exit(svc, ExitReason::Kill);
                }
                if k != 2 {
                    p.node().spawn(|q| async move {
                        let _ = q.register("svc");
                        q.receive(|_| false).await;
                    });
                }
            })
            .await;
        }
        async fn check(&self, ctl: &ClusterCtl) -> Result<(), String> {
            match ctl.node(2).whereis("svc") {
                Some(_) => Ok(()),
                None => Err("svc is gone from n2".into()),
            }
        }
    }
    let report = ClusterHarness::new(Service).cases(100).run();
    let failure = report.failure.expect("an operation stops node 2's service");
    assert!(
        matches!(failure.case.steps[..], [(_, ClusterStep::Op(Stop(2)))]),
        "{:?}",
        failure.case
    );
}
