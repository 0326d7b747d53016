//! The CP supervisor's cluster registry (`DistRef::register`, docs/cp.md "Registry"): unique
//! names registered by users, committed by the group, found from every node, and held under
//! the registered process's node's lease.

use otpsim::cluster::cp::lease;
use otpsim::cluster::cp::supervisor::{self, DistConfig, DistError, DistRef};
use otpsim::rt::Duration;
use otpsim::server::{self, GenServer, Init, StartError, StartOptions};
use otpsim::sim::cluster::{ClusterCtl, ClusterReport, ClusterSim};
use otpsim::sim::cluster_invariants::{check, Consistency};
use otpsim::{ExitReason, Pid, Process};

fn config() -> DistConfig {
    DistConfig::new("app", [1, 2, 3])
}

fn dist() -> DistRef {
    config().handle()
}

/// Three nodes running the supervisor, given 3 s to elect and assign, then `scenario`.
fn cluster(
    seed: u64,
    scenario: impl FnOnce(ClusterCtl) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
        + Send
        + 'static,
) -> ClusterReport {
    let report = ClusterSim::new(seed).nodes(3).run(move |ctl| async move {
        for k in 1..=3 {
            supervisor::boot(&ctl.node(k), config()).unwrap();
        }
        ctl.sleep(Duration::from_secs(3)).await;
        scenario(ctl).await;
    });
    assert_eq!(report.failure(), None);
    check(&report.trace, Consistency::Cp).unwrap();
    report
}

/// A process on node `k` that waits for ever.
fn idle(ctl: &ClusterCtl, k: u16) -> Pid {
    ctl.node(k).spawn(|p| async move {
        std::future::pending::<()>().await;
        drop(p);
    })
}

async fn register(ctl: &ClusterCtl, k: u16, name: &'static str, pid: Pid) -> Result<(), DistError> {
    ctl.on(
        k,
        move |p| async move { dist().register(&p, name, pid).await },
    )
    .await
    .expect("its node runs")
}

async fn whereis(ctl: &ClusterCtl, k: u16, name: &'static str) -> Option<Pid> {
    ctl.on(
        k,
        move |p| async move { dist().whereis_name(&p, name).await },
    )
    .await
    .expect("its node runs")
}

async fn authoritative(ctl: &ClusterCtl, k: u16, name: &'static str) -> Option<Pid> {
    ctl.on(k, move |p| async move {
        dist().whereis_name_authoritative(&p, name).await
    })
    .await
    .expect("its node runs")
}

/// A name goes to the first registration the group commits, from any node for a process of
/// any node, and every node finds it; `unregister` frees it (docs/cp.md, "Registry").
#[test]
fn a_name_is_registered_once_and_found_from_every_node() {
    cluster(31, |ctl| {
        Box::pin(async move {
            let (first, second) = (idle(&ctl, 2), idle(&ctl, 3));
            assert_eq!(register(&ctl, 1, "db", first).await, Ok(()));
            assert_eq!(
                register(&ctl, 1, "db", first).await,
                Ok(()),
                "again: the same"
            );
            let taken = register(&ctl, 3, "db", second).await;
            assert_eq!(taken, Err(DistError::AlreadyRegistered(first)));
            ctl.sleep(Duration::from_millis(100)).await;
            for k in 1..=3 {
                assert_eq!(whereis(&ctl, k, "db").await, Some(first), "from n{k}");
                assert_eq!(authoritative(&ctl, k, "db").await, Some(first), "from n{k}");
            }
            let unregister = |k| ctl.on(k, |p| async move { dist().unregister(&p, "db").await });
            assert_eq!(unregister(2).await, Some(Ok(())));
            assert_eq!(unregister(1).await, Some(Err(DistError::NotFound)));
            assert_eq!(authoritative(&ctl, 3, "db").await, None);
            assert_eq!(register(&ctl, 3, "db", second).await, Ok(()));
            // Unregistered, the first process runs on: the name was all it lost.
            assert!(ctl.node(2).is_alive(first));
        })
    });
}

/// A registered process that ends is unregistered by its node's name server, and found by
/// no node from then on; a name server never answers a process whose `DOWN` it saw, even
/// before the unregistration is applied (docs/cp.md, "Registry"; I4).
#[test]
fn a_registered_process_that_ends_loses_its_name() {
    cluster(32, |ctl| {
        Box::pin(async move {
            let pid = idle(&ctl, 2);
            assert_eq!(register(&ctl, 3, "db", pid).await, Ok(()));
            ctl.sleep(Duration::from_millis(100)).await;
            assert_eq!(whereis(&ctl, 1, "db").await, Some(pid));
            ctl.node(2).exit(pid, ExitReason::Kill);
            // Its own node's server saw its `DOWN` at once.
            assert_eq!(whereis(&ctl, 2, "db").await, None);
            ctl.sleep(Duration::from_millis(200)).await;
            for k in 1..=3 {
                assert_eq!(whereis(&ctl, k, "db").await, None, "from n{k}");
            }
            assert_eq!(authoritative(&ctl, 1, "db").await, None, "unregistered");
            let next = idle(&ctl, 1);
            assert_eq!(register(&ctl, 1, "db", next).await, Ok(()));
        })
    });
}

/// A server that does nothing.
struct Store;

impl GenServer for Store {
    type Arg = ();
    type Call = ();
    type Reply = ();
    type Cast = ();
    type Cont = ();
    async fn init(_: (), _: &Process) -> Init<Self> {
        Init::Ok(Store)
    }
}

async fn start_store(ctl: &ClusterCtl, k: u16) -> Result<Pid, StartError> {
    ctl.on(k, |p| async move {
        let options = StartOptions::default().via(dist().via("store"));
        let started = server::start_with::<Store>(&p, (), options).await;
        started.map(|s| s.pid())
    })
    .await
    .expect("its node runs")
}

/// A server started under a cluster via name registers itself before its `init`; a second
/// start anywhere is `AlreadyStarted` with the first; once the first is killed, a start on
/// its node at once (before its node's server has unregistered it) registers the new one
/// (OTP's `{via, Module, Name}`: `gen.erl` registers in the new process, docs/cp.md
/// "Registry").
#[test]
fn a_server_started_under_a_cluster_via_name_is_unique_and_can_start_again() {
    cluster(33, |ctl| {
        Box::pin(async move {
            let store = start_store(&ctl, 2).await.expect("started");
            let again = start_store(&ctl, 1).await;
            assert_eq!(again, Err(StartError::AlreadyStarted(store)));
            let via = dist().via("store");
            let found = ctl.on(3, move |p| async move { via.whereis(&p).await });
            assert_eq!(found.await, Some(Some(store)));
            ctl.node(2).exit(store, ExitReason::Kill);
            let next = start_store(&ctl, 2).await.expect("started again");
            assert_ne!(next, store);
            ctl.sleep(Duration::from_millis(100)).await;
            assert_eq!(whereis(&ctl, 1, "store").await, Some(next));
        })
    });
}

/// A node cut off from the majority stops its registered processes when its lease lapses
/// (`{shutdown, lease_lost}`), before the majority commits it down and drops their names,
/// even one whose registration it had not applied yet;
/// the name can then go to another process, and never has two live holders; the minority
/// can register nothing, and a process whose registration it asked for is held under the
/// lease all the same, since the registration may commit (docs/cp.md, "Registry" and
/// "Leases").
#[test]
fn a_minority_node_stops_its_registered_processes_before_their_names_go() {
    cluster(34, |ctl| {
        Box::pin(async move {
            let cut = idle(&ctl, 3);
            // Cut off as soon as node 1 is told: node 3 may not have applied the registration,
            // but its name server held the process before it proposed it.
            assert_eq!(register(&ctl, 1, "db", cut).await, Ok(()));
            let reason = std::sync::Arc::new(std::sync::Mutex::new(None));
            let seen = reason.clone();
            ctl.node(3).spawn(move |p| async move {
                p.monitor(cut);
                if let otpsim::Msg::Down { reason, .. } = p.recv().await {
                    *seen.lock().unwrap() = Some(reason);
                }
            });
            ctl.partition(&[3]);
            let lost = idle(&ctl, 3);
            assert_eq!(
                register(&ctl, 3, "lost", lost).await,
                Err(DistError::Unavailable)
            );
            ctl.sleep(Duration::from_secs(6)).await;
            let stopped = reason.lock().unwrap().clone();
            assert_eq!(stopped, Some(lease::lease_lost()), "stopped with its lease");
            // Its registration's fate was unknown to node 3: held all the same, and stopped.
            assert!(
                !ctl.node(3).is_alive(lost),
                "held while its registration was asked"
            );
            assert_eq!(
                authoritative(&ctl, 1, "db").await,
                None,
                "dropped with its node"
            );
            let next = idle(&ctl, 2);
            assert_eq!(register(&ctl, 1, "db", next).await, Ok(()));
            ctl.heal();
            ctl.sleep(Duration::from_secs(2)).await;
            assert_eq!(
                whereis(&ctl, 3, "db").await,
                Some(next),
                "learnt at the heal"
            );
        })
    });
}

/// A node that crashes and boots again before it is committed down unregisters the
/// processes of its previous life (docs/cp.md, "Registry").
#[test]
fn a_restarted_node_unregisters_the_names_of_its_previous_life() {
    cluster(35, |ctl| {
        Box::pin(async move {
            let old = idle(&ctl, 3);
            assert_eq!(register(&ctl, 3, "db", old).await, Ok(()));
            ctl.crash(3);
            ctl.restart(3);
            supervisor::boot(&ctl.node(3), config()).unwrap();
            ctl.sleep(Duration::from_secs(2)).await;
            assert_eq!(authoritative(&ctl, 1, "db").await, None);
            assert_eq!(whereis(&ctl, 2, "db").await, None);
        })
    });
}

/// A child of the supervisor that registers itself is held under its node's lease twice, as a
/// child and as a registered process: unregistered, it is still stopped when its node's lease
/// lapses, before the majority starts it elsewhere (I1; docs/cp.md, "Registry").
#[test]
fn an_unregistered_child_is_still_stopped_with_its_lease() {
    cluster(36, |ctl| {
        Box::pin(async move {
            for k in 1..=3 {
                ctl.node(k).register_start("self-named", |p, _| async move {
                    let _ = dist().register(&p, "me", p.pid()).await;
                    let _ = p.recv().await;
                });
            }
            let child = ctl
                .on(1, |p| async move {
                    let nil = otpsim::Term::atom("nil");
                    dist().start_child(&p, "c", "self-named", nil).await
                })
                .await
                .expect("its node runs")
                .expect("started");
            ctl.sleep(Duration::from_millis(200)).await;
            assert_eq!(whereis(&ctl, 2, "me").await, Some(child));
            let unregistered = ctl.on(2, |p| async move { dist().unregister(&p, "me").await });
            assert_eq!(unregistered.await, Some(Ok(())));
            ctl.sleep(Duration::from_millis(200)).await;
            ctl.partition(&[child.node()]);
            ctl.sleep(Duration::from_secs(8)).await;
            assert!(
                !ctl.node(child.node()).is_alive(child),
                "stopped with its lease"
            );
            ctl.heal();
            ctl.sleep(Duration::from_secs(3)).await;
        })
    });
}

/// A name server cut off from a node names none of its registered processes meanwhile (their
/// `DOWN` was `noconnection`), and names them again once the node, connected again, says they
/// still run; one that ended meanwhile stays unnamed (docs/cp.md, "Registry"; I4, and
/// `corpus/cp-registry-named-again-before-its-node-says-it-runs.json`).
#[test]
fn a_name_server_cut_off_names_a_process_again_once_its_node_says_it_runs() {
    cluster(37, |ctl| {
        Box::pin(async move {
            let (stays, ends) = (idle(&ctl, 3), idle(&ctl, 3));
            assert_eq!(register(&ctl, 3, "stays", stays).await, Ok(()));
            assert_eq!(register(&ctl, 3, "ends", ends).await, Ok(()));
            ctl.sleep(Duration::from_millis(100)).await;
            assert_eq!(whereis(&ctl, 1, "stays").await, Some(stays));
            ctl.disconnect(1, 3);
            ctl.sleep(Duration::from_millis(10)).await;
            assert_eq!(whereis(&ctl, 1, "stays").await, None, "cut off");
            ctl.node(3).exit(ends, ExitReason::Kill);
            assert!(ctl.connect(1, 3));
            ctl.sleep(Duration::from_millis(100)).await;
            assert_eq!(whereis(&ctl, 1, "stays").await, Some(stays), "named again");
            assert_eq!(whereis(&ctl, 1, "ends").await, None);
        })
    });
}
