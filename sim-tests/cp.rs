//! The CP supervisor's consensus (`otpsim::cluster::cp::consensus`, docs/cp.md "Consensus"):
//! a Raft group of three nodes elects a leader, commits on every node, keeps what it
//! acknowledged through restarts and power failures, stops committing on a minority side, and
//! runs the same way for the same seed.

use otpsim::cluster::cp::consensus::{self, ConsensusError, RaftConfig, Replicated, Role};
use otpsim::rt::Duration;
use otpsim::sim::cluster::{ClusterCtl, ClusterReport, ClusterSim};
use otpsim::{ExitReason, Term};

/// A replicated list of numbers.
#[derive(Default)]
struct Numbers(Vec<u64>);

impl Replicated for Numbers {
    type Command = u64;
    type Output = usize;
    type Query = ();
    type Answer = Vec<u64>;

    fn apply(&mut self, _: u64, n: u64) -> usize {
        self.0.push(n);
        self.0.len()
    }

    fn query(&self, _: ()) -> Vec<u64> {
        self.0.clone()
    }
}

const GROUP: &str = "numbers";
const WAIT: Duration = Duration::from_secs(5);

/// Starts the group's server on node `k` (at the first boot and after a restart).
fn boot(ctl: &ClusterCtl, k: u16) {
    let config = RaftConfig::new(GROUP, [1, 2, 3]);
    ctl.node(k)
        .spawn(move |p| consensus::serve(p, config, Numbers::default()));
}

fn cluster(
    seed: u64,
    scenario: impl FnOnce(ClusterCtl) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
        + Send
        + 'static,
) -> ClusterReport {
    let report = ClusterSim::new(seed).nodes(3).run(move |ctl| async move {
        for k in 1..=3 {
            boot(&ctl, k);
        }
        scenario(ctl).await;
    });
    assert_eq!(report.failure(), None);
    report
}

async fn propose(ctl: &ClusterCtl, via: u16, n: u64) -> Result<(u64, usize), ConsensusError> {
    ctl.on(via, move |p| async move {
        consensus::propose::<Numbers>(&p, GROUP, via, n, WAIT).await
    })
    .await
    .expect("its node runs")
}

async fn numbers(ctl: &ClusterCtl, k: u16) -> Result<Vec<u64>, ConsensusError> {
    ctl.on(k, move |p| async move {
        consensus::query::<Numbers>(&p, GROUP, k, (), WAIT).await
    })
    .await
    .expect("its node runs")
}

async fn leader(ctl: &ClusterCtl, k: u16) -> Option<u16> {
    ctl.on(k, move |p| async move {
        consensus::status::<Numbers>(&p, GROUP, k, WAIT).await
    })
    .await
    .and_then(Result::ok)
    .and_then(|s| s.leader)
}

/// Raft's safety and liveness with a stable network: one leader (the voter with the shortest
/// election timeout), proposals through any node reach it, and every node applies the same
/// commands in the same order.
#[test]
fn a_group_elects_a_leader_and_every_node_applies_the_same_commands() {
    cluster(1, |ctl| {
        Box::pin(async move {
            ctl.sleep(Duration::from_secs(3)).await;
            for k in 1..=3 {
                assert_eq!(leader(&ctl, k).await, Some(1), "n{k} knows the leader");
            }
            // Through a follower (redirected to the leader) and through the leader.
            assert_eq!(propose(&ctl, 3, 10).await.map(|(_, len)| len), Ok(1));
            assert_eq!(propose(&ctl, 1, 20).await.map(|(_, len)| len), Ok(2));
            ctl.sleep(Duration::from_secs(1)).await;
            for k in 1..=3 {
                assert_eq!(numbers(&ctl, k).await, Ok(vec![10, 20]), "n{k}");
            }
        })
    });
}

/// A node that crashes and boots again reads its log back from its disk: cut off from the
/// others, it still applies what it knew committed.
#[test]
fn a_restarted_node_reads_its_log_back_from_its_disk() {
    cluster(2, |ctl| {
        Box::pin(async move {
            ctl.sleep(Duration::from_secs(3)).await;
            for n in [1, 2, 3] {
                propose(&ctl, 1, n).await.expect("committed");
            }
            ctl.sleep(Duration::from_secs(1)).await;
            ctl.partition(&[3]);
            ctl.restart(3);
            boot(&ctl, 3);
            ctl.sleep(Duration::from_millis(100)).await;
            assert_eq!(numbers(&ctl, 3).await, Ok(vec![1, 2, 3]));
        })
    });
}

/// What the group acknowledged survives a power failure of the majority that acknowledged
/// it: nothing is acknowledged before it is synced on a majority's disks.
#[test]
fn acknowledged_commands_survive_a_majority_losing_power() {
    cluster(3, |ctl| {
        Box::pin(async move {
            ctl.sleep(Duration::from_secs(3)).await;
            // Nodes 1 and 2 commit without node 3, then lose power at once.
            ctl.partition(&[3]);
            for n in [7, 8] {
                propose(&ctl, 2, n).await.expect("committed");
            }
            ctl.power_fail(1);
            ctl.power_fail(2);
            ctl.sleep(Duration::from_secs(1)).await;
            for k in [1, 2] {
                ctl.restart(k);
                boot(&ctl, k);
            }
            ctl.heal();
            ctl.sleep(Duration::from_secs(5)).await;
            assert_eq!(propose(&ctl, 3, 9).await.map(|(_, len)| len), Ok(3));
            ctl.sleep(Duration::from_secs(1)).await;
            for k in 1..=3 {
                assert_eq!(numbers(&ctl, k).await, Ok(vec![7, 8, 9]), "n{k}");
            }
        })
    });
}

/// A leader cut off from the majority steps down (check-quorum) and commits nothing; the
/// majority elects another and goes on; after the heal the old leader follows and catches up,
/// without deposing anyone (pre-vote).
#[test]
fn a_minority_side_commits_nothing_and_the_majority_goes_on() {
    cluster(4, |ctl| {
        Box::pin(async move {
            ctl.sleep(Duration::from_secs(3)).await;
            assert_eq!(leader(&ctl, 2).await, Some(1));
            ctl.partition(&[1]);
            ctl.sleep(Duration::from_secs(4)).await;
            let alone = ctl
                .on(1, |p| async move {
                    consensus::status::<Numbers>(&p, GROUP, 1, WAIT).await
                })
                .await
                .and_then(Result::ok)
                .expect("n1 answers");
            assert_ne!(
                alone.role,
                Role::Leader,
                "a leader without a majority steps down"
            );
            assert!(
                propose(&ctl, 1, 1).await.is_err(),
                "the minority commits nothing"
            );
            let new_leader = leader(&ctl, 2).await.expect("the majority has a leader");
            assert_ne!(new_leader, 1);
            assert_eq!(propose(&ctl, 3, 2).await.map(|(_, len)| len), Ok(1));
            ctl.heal();
            ctl.sleep(Duration::from_secs(3)).await;
            assert_eq!(
                leader(&ctl, 1).await,
                Some(new_leader),
                "no election after the heal"
            );
            assert_eq!(numbers(&ctl, 1).await, Ok(vec![2]));
        })
    });
}

/// The group runs the same way for the same seed, although raft-rs draws its election
/// timeouts from a generator the simulator cannot seed (docs/cp.md, "Determinism").
#[test]
fn a_group_under_faults_runs_the_same_for_the_same_seed() {
    let run = || {
        cluster(5, |ctl| {
            Box::pin(async move {
                ctl.sleep(Duration::from_secs(2)).await;
                let _ = propose(&ctl, 2, 1).await;
                ctl.partition(&[1]);
                ctl.sleep(Duration::from_secs(3)).await;
                let _ = propose(&ctl, 3, 2).await;
                ctl.heal();
                ctl.crash(2);
                ctl.sleep(Duration::from_secs(3)).await;
                let _ = propose(&ctl, 1, 3).await;
            })
        })
        .trace
    };
    let (a, b) = (run(), run());
    assert_eq!(a.first_divergence(&b), None);
}

/// A disk whose Raft files cannot be read back stops the server at its start with a reason
/// that names the file, instead of a panic or a node that forgets what it promised.
#[test]
fn a_corrupt_log_stops_the_server_with_its_reason() {
    ClusterSim::new(6).nodes(1).run(|ctl| async move {
        ctl.disk(1)
            .write("numbers.entries", b"\x09\x00\x00\x00garbage");
        let config = RaftConfig::new(GROUP, [1]);
        let node = ctl.node(1);
        let pid = node.spawn(move |p| consensus::serve(p, config, Numbers::default()));
        let reason = node.wait_exit(pid).await.expect("it exits");
        let ExitReason::Other(Term::Tuple(items)) = &reason else {
            panic!("{reason:?}");
        };
        assert_eq!(
            items[..2],
            [Term::atom("raft_failed"), Term::atom("corrupt_log")]
        );
        assert!(
            items[2].to_string().contains("numbers.entries"),
            "{reason:?}"
        );
    });
}

mod supervisor {
    //! The CP distributed supervisor (`otpsim::cluster::cp::supervisor`, docs/cp.md
    //! "Ownership" and "Leases"): a committed shard table, and leases that let the majority
    //! give a lost node's shards to the others.

    use otpsim::cluster::cp::consensus;
    use otpsim::cluster::cp::control::{Answer, Control, Query};
    use otpsim::cluster::cp::handoff;
    use otpsim::cluster::cp::supervisor::{self, DistConfig, DistError, DistRef, Mode};
    use otpsim::rt::Duration;
    use otpsim::sim::cluster::{ClusterCtl, ClusterReport, ClusterSim};
    use otpsim::sim::cluster_invariants::{check, Consistency};
    use otpsim::systems::swarm::{Bump, Counter};
    use otpsim::trace::{DistEvent, EventKind, Trace};
    use otpsim::{Pid, Term};

    pub(super) fn config() -> DistConfig {
        DistConfig::new("devices", [1, 2, 3])
            .message::<u32>("u32")
            .message::<Bump>("bump")
    }

    /// Boots node `k`: a worker that waits, one that crashes 100 ms after each start, and
    /// the supervisor, in `mode`.
    fn boot(ctl: &ClusterCtl, k: u16, mode: Mode) {
        let node = ctl.node(k);
        node.register_start("device", |p, _| async move {
            let _ = p.recv().await;
        });
        // Traps exits, so that an exit signal is only a message to it.
        node.register_start("stubborn", |p, _| async move {
            p.trap_exit(true);
            std::future::pending::<()>().await;
        });
        node.register_start("flaky", |p, _| async move {
            p.sleep(Duration::from_millis(100)).await;
            otpsim::ExitReason::error("flaky")
        });
        // Counts the `u32`s and `Bump`s it is sent, and moves with its count.
        node.register_start("counter", |p, _| handoff::serve(p, Counter(0)));
        supervisor::boot(&node, DistConfig { mode, ..config() }).unwrap();
    }

    /// Boots every node.
    fn boot_all(ctl: &ClusterCtl, mode: Mode) {
        for k in 1..=3 {
            boot(ctl, k, mode);
        }
    }

    /// Sends `msg` to `name` by name from node `k`.
    pub(super) async fn send<T>(
        ctl: &ClusterCtl,
        k: u16,
        name: &'static str,
        msg: T,
    ) -> Result<Pid, DistError>
    where
        T: serde::Serialize + Send + 'static,
    {
        let dsup = config().handle();
        ctl.on(k, move |p| async move { dsup.send(&p, name, msg).await })
            .await
            .expect("its node runs")
    }

    /// The count of the counter `name`, asked from node `k` (none if it does not run).
    pub(super) async fn count(ctl: &ClusterCtl, k: u16, name: &'static str) -> Option<i64> {
        let pid = whereis(ctl, k, name).await?;
        ctl.on(k, move |p| async move {
            let request = Term::atom("count");
            let call = otpsim::cluster::handoff::Call {
                request,
                reply: p.pid(),
                tag: 7,
            };
            p.send(pid, call);
            let is_reply = |m: &otpsim::Msg| m.is::<otpsim::cluster::handoff::CallReply>();
            let reply = p.receive_timeout(is_reply, Duration::from_secs(1)).await?;
            match reply.downcast::<otpsim::cluster::handoff::CallReply>() {
                Ok(otpsim::cluster::handoff::CallReply {
                    reply: Term::Int(n),
                    ..
                }) => Some(n),
                _ => None,
            }
        })
        .await
        .flatten()
    }

    /// Names of node `k`'s shards at the start (shard i goes to the (i % 3)th voter).
    pub(super) fn owned_names(k: u16) -> Vec<&'static str> {
        let shards = config().shards;
        let names = ["d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7", "d8", "d9"];
        let mine = names
            .into_iter()
            .filter(|n| otpsim::cluster::cp::control::shard_of(n, shards) % 3 == k - 1);
        mine.take(2).collect()
    }

    /// A scenario run on a booted cluster.
    pub(super) type Scenario = Box<
        dyn FnOnce(ClusterCtl) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
            + Send,
    >;

    /// A cluster of three nodes booted, once the first leader has assigned the shard table,
    /// running `scenario`.
    pub(super) fn cluster(
        seed: u64,
        scenario: impl FnOnce(ClusterCtl) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
            + Send
            + 'static,
    ) -> ClusterReport {
        cluster_in(seed, Mode::Cp, Box::new(scenario))
    }

    /// [`cluster`], with the supervisor in `mode`.
    pub(super) fn cluster_in(seed: u64, mode: Mode, scenario: Scenario) -> ClusterReport {
        let report = ClusterSim::new(seed).nodes(3).run(move |ctl| async move {
            boot_all(&ctl, mode);
            // The first leader is elected and assigns the shard table.
            ctl.sleep(Duration::from_secs(3)).await;
            scenario(ctl).await;
        });
        assert_eq!(report.failure(), None);
        report
    }

    pub(super) async fn start(
        ctl: &ClusterCtl,
        k: u16,
        name: &'static str,
        start: &'static str,
    ) -> Result<Pid, DistError> {
        let dsup: DistRef = config().handle();
        ctl.on(k, move |p| async move {
            dsup.start_child(&p, name, start, Term::atom("nil")).await
        })
        .await
        .expect("its node runs")
    }

    pub(super) async fn whereis(ctl: &ClusterCtl, k: u16, name: &'static str) -> Option<Pid> {
        let dsup = config().handle();
        ctl.on(k, move |p| async move { dsup.whereis(&p, name).await })
            .await
            .flatten()
    }

    pub(super) fn starts(trace: &Trace, name: &str) -> Vec<Pid> {
        trace
            .events()
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Dist(DistEvent::Start { name: n, pid, .. }) if n == name => Some(*pid),
                _ => None,
            })
            .collect()
    }

    /// A child started from any node runs once, on its shard's owner, every node finds the
    /// same pid, and a second start of the name answers `AlreadyStarted` with it.
    #[test]
    fn a_child_started_from_any_node_runs_once_and_every_node_finds_it() {
        let report = cluster(11, |ctl| {
            Box::pin(async move {
                let mut pids = Vec::new();
                for (k, name) in [(1, "a"), (2, "b"), (3, "c")] {
                    pids.push((name, start(&ctl, k, name, "device").await.expect("started")));
                }
                for &(name, pid) in &pids {
                    for k in 1..=3 {
                        assert_eq!(whereis(&ctl, k, name).await, Some(pid), "n{k} finds {name}");
                    }
                    assert_eq!(
                        start(&ctl, 3, name, "device").await,
                        Err(DistError::AlreadyStarted(pid))
                    );
                }
            })
        });
        for name in ["a", "b", "c"] {
            assert_eq!(starts(&report.trace, name).len(), 1, "{name} started once");
        }
        check(&report.trace, Consistency::Cp).unwrap();
    }

    /// Cache-first lookups (docs/cp.md, "Lookups"): every node's cache hears of each
    /// instance its owner starts, so `whereis` answers at once, where
    /// `whereis_authoritative` makes a round trip to the owner; a cache forgets an instance
    /// at its `DOWN` and hears of its successor; a restarted node's cache asks the others
    /// what they run. Every lookup is judged by I4 (never an instance the node saw die).
    #[test]
    fn whereis_reads_the_nodes_cache_and_whereis_authoritative_asks_the_owner() {
        async fn timed(ctl: &ClusterCtl, k: u16, cached: bool) -> (Option<Pid>, Duration) {
            let dsup = config().handle();
            ctl.on(k, move |p| async move {
                let t = p.now();
                let pid = if cached {
                    dsup.whereis(&p, "a").await
                } else {
                    dsup.whereis_authoritative(&p, "a").await
                };
                (pid, p.now() - t)
            })
            .await
            .expect("its node runs")
        }
        let report = cluster(21, |ctl| {
            Box::pin(async move {
                let pid = start(&ctl, 1, "a", "device").await.expect("started");
                ctl.sleep(Duration::from_millis(50)).await;
                let away = (1..=3).find(|&k| k != pid.node()).unwrap();
                // Local messages take nothing but scheduling; one between nodes at least
                // the simulated network's latency.
                let local = Duration::from_micros(10);
                let (cached, took) = timed(&ctl, away, true).await;
                assert_eq!(cached, Some(pid));
                assert!(took < local, "from the cache: {took:?}");
                let (asked, took) = timed(&ctl, away, false).await;
                assert_eq!(asked, Some(pid));
                assert!(took > local * 10, "a round trip: {took:?}");
                // Killed: restarted in place, and the cache follows.
                ctl.node(pid.node()).exit(pid, otpsim::ExitReason::Kill);
                ctl.sleep(Duration::from_secs(1)).await;
                let (next, took) = timed(&ctl, away, true).await;
                assert!(next.is_some_and(|n| n != pid), "{next:?}");
                assert!(took < local, "from the cache: {took:?}");
                // A node restarted: its cache learns what the others run.
                ctl.crash(away);
                ctl.restart(away);
                boot(&ctl, away, Mode::Cp);
                ctl.sleep(Duration::from_secs(3)).await;
                let (again, took) = timed(&ctl, away, true).await;
                assert_eq!(again, next);
                assert!(took < local, "from the cache: {took:?}");
            })
        });
        check(&report.trace, Consistency::Cp).unwrap();
    }

    /// A crashing child is restarted in place by its owner until it exceeds its intensity (3
    /// restarts in 5 s, OTP's default), then given up: no longer desired (docs/cp.md; I8).
    #[test]
    fn a_crashing_child_restarts_in_place_until_its_intensity() {
        let report = cluster(12, |ctl| {
            Box::pin(async move {
                start(&ctl, 2, "f", "flaky").await.expect("started");
                ctl.sleep(Duration::from_secs(5)).await;
                assert_eq!(whereis(&ctl, 1, "f").await, None);
            })
        });
        let pids = starts(&report.trace, "f");
        assert_eq!(pids.len(), 4, "the start and 3 restarts: {pids:?}");
        let home = pids[0].node();
        assert!(pids.iter().all(|p| p.node() == home), "in place: {pids:?}");
        // Given up: no longer desired, so no invariant expects it to run.
        let given_up = report.trace.events().iter().any(|e| {
            matches!(&e.kind, EventKind::Dist(DistEvent::Desired { name, on: false }) if name == "f")
        });
        assert!(given_up, "given up");
        check(&report.trace, Consistency::Cp).unwrap();
    }

    /// A node's children stop with it and, when it boots again before the leader commits it
    /// down (a lease and the fencing margin, 4 s), run again there: it reads the desired
    /// children back from its log. Nobody else starts them meanwhile (one instance, always).
    #[test]
    fn a_node_back_within_its_lease_runs_its_children_again() {
        let report = cluster(13, |ctl| {
            Box::pin(async move {
                let pid = start(&ctl, 1, "a", "device").await.expect("started");
                let home = pid.node();
                let other = if home == 1 { 2 } else { 1 };
                // Not in the microsecond of the start: the merged trace orders a node's events
                // and the cluster's of the same microsecond by source, not by cause.
                ctl.sleep(Duration::from_millis(100)).await;
                ctl.crash(home);
                ctl.sleep(Duration::from_secs(2)).await;
                assert_eq!(
                    whereis(&ctl, other, "a").await,
                    None,
                    "no instance elsewhere"
                );
                ctl.restart(home);
                boot(&ctl, home, Mode::Cp);
                ctl.sleep(Duration::from_secs(3)).await;
                let again = whereis(&ctl, other, "a").await.expect("runs again");
                assert_eq!(again.node(), home);
                assert_ne!(again, pid);
            })
        });
        check(&report.trace, Consistency::Cp).unwrap();
    }

    /// A name of node `k`'s shards at the start (shard i goes to the (i % 3)th voter).
    fn owned_by(k: u16) -> &'static str {
        let shards = config().shards;
        ["d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7"]
            .into_iter()
            .find(|n| otpsim::cluster::cp::control::shard_of(n, shards) % 3 == k - 1)
            .expect("a name of node k")
    }

    /// A start function registered on the caller's node but not on the child's owner is a
    /// typed error naming the owner (the bad input: a template not registered on
    /// every node), and the child is not desired afterwards: a second start is not
    /// `AlreadyStarted`.
    #[test]
    fn a_start_function_missing_on_the_owner_is_a_typed_error() {
        let report = cluster(19, |ctl| {
            Box::pin(async move {
                for k in 1..=2 {
                    ctl.node(k).register_start("rare", |p, _| async move {
                        let _ = p.recv().await;
                    });
                }
                let name = owned_by(3);
                let missing = DistError::StartMissingOn {
                    start: "rare".into(),
                    node: 3,
                };
                assert_eq!(start(&ctl, 1, name, "rare").await, Err(missing.clone()));
                ctl.sleep(Duration::from_secs(1)).await;
                assert_eq!(start(&ctl, 2, name, "rare").await, Err(missing));
                assert_eq!(whereis(&ctl, 1, name).await, None);
            })
        });
        check(&report.trace, Consistency::Cp).unwrap();
    }

    pub(super) fn exits(trace: &Trace, pid: Pid) -> Vec<(u64, Term)> {
        trace
            .events()
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Exit { pid: p, reason } if *p == pid => Some((e.at_us, reason.clone())),
                _ => None,
            })
            .collect()
    }

    pub(super) fn start_at(trace: &Trace, pid: Pid) -> u64 {
        trace
            .events()
            .iter()
            .find(|e| matches!(&e.kind, EventKind::Dist(DistEvent::Start { pid: p, .. }) if *p == pid))
            .map(|e| e.at_us)
            .expect("started")
    }

    /// A node that stays down loses its shards: once the leader has granted it nothing for a
    /// lease and the fencing margin (4 s), it commits the node down, and the node's children
    /// start on the survivors, found there from every node (docs/cp.md "Leases"; I2).
    #[test]
    fn a_lost_nodes_children_come_back_on_the_survivors() {
        let report = cluster(16, |ctl| {
            Box::pin(async move {
                let pid = start(&ctl, 1, "a", "device").await.expect("started");
                let home = pid.node();
                ctl.sleep(Duration::from_millis(100)).await;
                ctl.crash(home);
                ctl.sleep(Duration::from_secs(8)).await;
                let survivors: Vec<u16> = (1..=3).filter(|&k| k != home).collect();
                let again = whereis(&ctl, survivors[0], "a").await.expect("runs again");
                assert_ne!(again.node(), home);
                assert_eq!(whereis(&ctl, survivors[1], "a").await, Some(again));
            })
        });
        let pids = starts(&report.trace, "a");
        assert_eq!(pids.len(), 2, "{pids:?}");
        let crashed = report
            .trace
            .events()
            .iter()
            .find(|e| {
                matches!(
                    e.kind,
                    EventKind::Cluster(otpsim::trace::ClusterEvent::Crash { .. })
                )
            })
            .map(|e| e.at_us)
            .unwrap();
        let lease_and_margin = 4_000_000;
        assert!(start_at(&report.trace, pids[1]) > crashed + lease_and_margin);
        check(&report.trace, Consistency::Cp).unwrap();
    }

    /// An owner cut off from the majority, running one child from `start`: the majority
    /// starts the child elsewhere; after the heal the old owner is up again (not put down
    /// over and over: its lease renews), and its shards move back to it, the child with them
    /// (docs/cp.md "Handoff"). Returns the report and the child's first two pids.
    fn cut_off_owner(seed: u64, start_fn: &'static str) -> (ClusterReport, Pid, Pid) {
        let report = cluster(seed, move |ctl| {
            Box::pin(async move {
                let pid = start(&ctl, 1, "a", start_fn).await.expect("started");
                let home = pid.node();
                ctl.sleep(Duration::from_millis(100)).await;
                ctl.partition(&[home]);
                ctl.sleep(Duration::from_secs(8)).await;
                let other = if home == 1 { 2 } else { 1 };
                let again = whereis(&ctl, other, "a").await.expect("runs elsewhere");
                assert_ne!(again.node(), home);
                ctl.heal();
                // Up again within a renewal, then the move back: at most the handoff
                // timeout (2 s) for a child that does not answer.
                ctl.sleep(Duration::from_secs(5)).await;
                let back = whereis(&ctl, other, "a").await.expect("runs at home again");
                assert_eq!(back.node(), home);
                assert_eq!(whereis(&ctl, home, "a").await, Some(back));
                // The old owner is up again, and the leader granted it a lease within a
                // renewal or two.
                let group = config().raft.name;
                let (ages, members) = ctl
                    .on(other, move |p| async move {
                        let wait = Duration::from_secs(1);
                        let leader = consensus::status::<Control>(&p, &group, other, wait)
                            .await
                            .unwrap()
                            .leader
                            .expect("a leader");
                        let status = consensus::status::<Control>(&p, &group, leader, wait).await;
                        let members = Query::Members;
                        let members =
                            consensus::query::<Control>(&p, &group, leader, members, wait);
                        (status.unwrap().lease_ages_ms, members.await.unwrap())
                    })
                    .await
                    .unwrap();
                let Answer::Members { down, .. } = members else {
                    panic!("{members:?}")
                };
                assert!(!down.contains(&home), "n{home} is up again: {down:?}");
                assert!(ages[&home] < 2_000, "n{home} renews: {ages:?}");
            })
        });
        let pids = starts(&report.trace, "a");
        assert_eq!(pids.len(), 3, "{pids:?}");
        (report, pids[0], pids[1])
    }

    /// A child run by `handoff::serve` under a lease (`handoff::Fence`, which the supervisor
    /// sends each child it starts in CP mode) acts on nothing once the lease lapsed: it stops
    /// `{shutdown, lease_lost}`, as the enforcer would stop it. A node paused past its lease
    /// may run its children before its enforcer at the resume; this keeps them from handling
    /// what waited in their mailboxes (I1: a fenced instance acts on nothing once its node
    /// resumes; docs/cp.md "Leases").
    #[test]
    fn a_child_acts_on_nothing_once_its_lease_lapsed() {
        let report = ClusterSim::new(5).nodes(1).run(|ctl| async move {
            ctl.on(1, |p| async move {
                let lease = otpsim::cluster::cp::lease::Lease::default();
                lease.renewed(p.now() + Duration::from_secs(1));
                let child = p.spawn(|c| handoff::serve(c, Counter(0)));
                p.send(child, handoff::Fence(lease));
                p.send(
                    child,
                    Bump {
                        from: p.pid(),
                        seq: 0,
                    },
                );
                p.sleep(Duration::from_secs(2)).await;
                p.send(
                    child,
                    Bump {
                        from: p.pid(),
                        seq: 1,
                    },
                );
                p.sleep(Duration::from_millis(100)).await;
            })
            .await;
        });
        assert_eq!(report.failure(), None);
        let handled: Vec<u64> = report
            .trace
            .events()
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Dist(DistEvent::Handled { seq, .. }) => Some(*seq),
                _ => None,
            })
            .collect();
        assert_eq!(handled, vec![0], "handled under the lease only");
        let lease_lost = Term::tuple([Term::atom("shutdown"), Term::atom("lease_lost")]);
        let ended: Vec<Term> = report
            .trace
            .events()
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Exit { reason, .. } => Some(reason.clone()),
                _ => None,
            })
            .collect();
        assert!(ended.contains(&lease_lost), "{ended:?}");
    }

    /// An owner cut off from the majority stops its children when its lease runs out,
    /// `{shutdown, lease_lost}`, before the majority starts them elsewhere; after the heal it
    /// asks for leases again and owns nothing (one instance, always: I1, docs/cp.md "Leases").
    #[test]
    fn a_cut_off_owner_stops_its_children_before_they_start_elsewhere() {
        let (report, old, new) = cut_off_owner(17, "device");
        let lost = exits(&report.trace, old);
        let lease_lost = Term::tuple([Term::atom("shutdown"), Term::atom("lease_lost")]);
        assert_eq!(lost.len(), 1);
        assert_eq!(lost[0].1, lease_lost);
        assert!(lost[0].0 < start_at(&report.trace, new), "stopped first");
        check(&report.trace, Consistency::Cp).unwrap();
    }

    /// A child that traps exits is stopped all the same when the lease lapses (`kill` right
    /// after `{shutdown, lease_lost}`): it cannot outlive its owner's lease.
    #[test]
    fn a_child_that_traps_exits_cannot_outlive_the_lease() {
        let (report, old, new) = cut_off_owner(20, "stubborn");
        let lost = exits(&report.trace, old);
        assert_eq!(lost.len(), 1);
        assert_eq!(lost[0].1, Term::atom("killed"));
        assert!(lost[0].0 < start_at(&report.trace, new), "stopped first");
        check(&report.trace, Consistency::Cp).unwrap();
    }

    /// The drift sweep (docs/cp.md, "Leases"): the owner of a child, its clock slow by
    /// `drift_ppm`, is cut off from the majority. It counts its lease as `lease -
    /// drift_margin` on its own clock; the leader commits it down `lease + fencing_margin`
    /// after its last grant on an accurate clock. Below the band `(drift_margin +
    /// fencing_margin) / (lease + fencing_margin)` the owner has stopped before the child
    /// starts elsewhere; well beyond it, the two run at once and the checker reports it
    /// (I1). Returns whether every invariant held.
    fn lease_holds_with_drift(drift_ppm: i32) -> bool {
        let mut config = config();
        config.lease = Duration::from_secs(10);
        config.drift_margin = Duration::from_millis(250);
        config.fencing_margin = Duration::from_millis(250);
        let name = owned_by(3);
        let booted = config.clone();
        let report = ClusterSim::new(18)
            .nodes(3)
            .drift(3, drift_ppm)
            .run(move |ctl| async move {
                for k in 1..=3 {
                    let node = ctl.node(k);
                    node.register_start("device", |p, _| async move {
                        let _ = p.recv().await;
                    });
                    supervisor::boot(&node, booted.clone()).unwrap();
                }
                ctl.sleep(Duration::from_secs(3)).await;
                let dsup = booted.handle();
                let started = ctl
                    .on(1, move |p| async move {
                        dsup.start_child(&p, name, "device", Term::atom("nil"))
                            .await
                    })
                    .await
                    .unwrap();
                assert_eq!(started.map(|p| p.node()), Ok(3));
                ctl.sleep(Duration::from_millis(100)).await;
                ctl.partition(&[3]);
                ctl.sleep(Duration::from_secs(16)).await;
            });
        assert_eq!(report.failure(), None);
        match check(&report.trace, Consistency::Cp) {
            Ok(()) => true,
            Err(v) => {
                assert_eq!(v.invariant, otpsim::sim::invariants::Invariant::OneInstance);
                false
            }
        }
    }

    /// The sweep, 0 to 10% slow in steps of 1% (the table in docs/cp.md comes from
    /// `cargo test --test sim -- drift_band --nocapture`): inside the band (4.9%
    /// with these settings) every run holds; beyond it every run breaks, as the leader commits
    /// the owner down at the first moment its margins allow.
    #[test]
    fn a_lease_holds_within_its_drift_band_and_breaks_beyond_it() {
        let band_ppm = 1_000_000 * (250 + 250) / (10_000 + 250);
        for ppm in (0..=10).map(|i| -10_000 * i) {
            let held = lease_holds_with_drift(ppm);
            let verdict = if held { "holds" } else { "I1 broken" };
            println!("drift_band: owner's clock {ppm:+} ppm: {verdict}");
            assert_eq!(
                held,
                ppm.abs() <= band_ppm,
                "{ppm} ppm, band {band_ppm} ppm"
            );
        }
    }

    /// A node cut off from the majority cannot start children (CP): its callers get
    /// `Unavailable`; the majority starts them.
    #[test]
    fn a_minority_side_answers_unavailable() {
        cluster(14, |ctl| {
            Box::pin(async move {
                ctl.partition(&[3]);
                ctl.sleep(Duration::from_secs(2)).await;
                assert_eq!(
                    start(&ctl, 3, "m", "device").await,
                    Err(DistError::Unavailable)
                );
                assert!(start(&ctl, 2, "n", "device").await.is_ok());
            })
        });
    }

    /// `terminate_child` stops the child and forgets it; a second one finds nothing; a start
    /// function not registered is a typed error.
    #[test]
    fn terminate_child_stops_it_for_good_and_bad_input_is_typed() {
        let report = cluster(15, |ctl| {
            Box::pin(async move {
                start(&ctl, 1, "t", "device").await.expect("started");
                let dsup = config().handle();
                let (first, second) = ctl
                    .on(2, move |p| async move {
                        (
                            dsup.terminate_child(&p, "t").await,
                            dsup.terminate_child(&p, "t").await,
                        )
                    })
                    .await
                    .unwrap();
                assert_eq!((first, second), (Ok(()), Err(DistError::NotFound)));
                ctl.sleep(Duration::from_secs(1)).await;
                assert_eq!(whereis(&ctl, 3, "t").await, None);
                assert_eq!(
                    start(&ctl, 1, "u", "nonesuch").await,
                    Err(DistError::UnknownStart("nonesuch".into()))
                );
            })
        });
        assert_eq!(starts(&report.trace, "t").len(), 1, "not restarted");
        check(&report.trace, Consistency::Cp).unwrap();
    }
}

/// Every case of Swarm's known flaws kept in `corpus/` runs on the CP supervisor as it is (the
/// same operations and faults) and breaks no invariant there: seed 003 without Swarm's
/// failures (docs/cp.md, "The `cp` target").
#[test]
fn every_swarm_flaw_in_the_corpus_passes_on_cp() {
    // The rows of `otpsim compare --on cp`.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let rows = otpsim::sim::corpus::side_by_side(&dir, "swarm", "cp", &otpsim::targets()).unwrap();
    assert_eq!(rows.len(), crate::common::swarm_corpus_files().len());
    assert!(rows.len() >= 17, "{rows:?}");
    for row in rows {
        assert!(row.own.is_some(), "{row:?} passes on swarm");
        assert_eq!(row.other, None, "{row:?}");
    }
}

mod handoff {
    //! Planned moves (docs/cp.md "Handoff"; SWARM.md §4.2 item 8, I6 and S1): a shard goes
    //! back to its first owner once that is up again, and a node that leaves hands its
    //! children over; each child moves with its state, delivered once, after its predecessor
    //! stopped, and messages sent by name meanwhile reach one instance, once, in order.

    use super::supervisor::{cluster, config, count, owned_names, send, start, starts, whereis};
    use otpsim::cluster::cp::consensus;
    use otpsim::cluster::cp::control::{Answer, Control, Query};
    use otpsim::cluster::cp::supervisor::DistError;
    use otpsim::rt::Duration;
    use otpsim::sim::cluster::ClusterCtl;
    use otpsim::sim::cluster_invariants::{check, Consistency};
    use otpsim::systems::swarm::Bump;
    use otpsim::trace::{DistEvent, EventKind, HandoffPhase, Trace};
    use otpsim::Pid;

    /// The handoffs of `name`: how many began, and the instances their state reached.
    fn handoffs(trace: &Trace, name: &str) -> (usize, Vec<Pid>) {
        let (mut begun, mut delivered) = (0, Vec::new());
        for e in trace.events() {
            if let EventKind::Dist(DistEvent::Handoff { name: n, phase, .. }) = &e.kind {
                match phase {
                    HandoffPhase::Begin { .. } if n == name => begun += 1,
                    HandoffPhase::Delivered { pid } if n == name => delivered.push(*pid),
                    _ => {}
                }
            }
        }
        (begun, delivered)
    }

    /// A node lost for longer than its lease has its shards given to the others, its child
    /// restarted there afresh (crash semantics: the state died with the node's lease); once it
    /// is up again, the shard goes back to it, and the child with the count it had reached.
    #[test]
    fn a_shard_given_back_to_its_first_owner_moves_with_its_childrens_state() {
        let name = owned_names(3)[0];
        let report = cluster(21, move |ctl| {
            Box::pin(async move {
                let first = start(&ctl, 1, name, "counter").await.expect("started");
                assert_eq!(first.node(), 3);
                ctl.sleep(Duration::from_millis(100)).await;
                ctl.partition(&[3]);
                ctl.sleep(Duration::from_secs(8)).await;
                let elsewhere = whereis(&ctl, 1, name).await.expect("runs on the majority");
                assert_ne!(elsewhere.node(), 3);
                for _ in 0..5 {
                    send(&ctl, 1, name, 1u32).await.expect("delivered");
                }
                assert_eq!(count(&ctl, 1, name).await, Some(5));
                ctl.heal();
                ctl.sleep(Duration::from_secs(5)).await;
                let back = whereis(&ctl, 2, name)
                    .await
                    .expect("runs at its first owner");
                assert_eq!(back.node(), 3);
                assert_eq!(
                    count(&ctl, 2, name).await,
                    Some(5),
                    "its count moved with it"
                );
            })
        });
        let pids = starts(&report.trace, name);
        assert_eq!(pids.len(), 3, "{pids:?}");
        assert_eq!(handoffs(&report.trace, name), (1, vec![pids[2]]));
        check(&report.trace, Consistency::Cp).unwrap();
    }

    /// The shards a node owns, as node `k` sees them.
    async fn shards_of(ctl: &ClusterCtl, k: u16, node: u16) -> Vec<(u16, u64)> {
        let group = config().raft.name;
        let query = Query::Shards(node);
        let wait = Duration::from_secs(1);
        let answer = ctl
            .on(k, move |p| async move {
                consensus::query::<Control>(&p, &group, k, query, wait).await
            })
            .await
            .expect("its node runs");
        match answer {
            Ok(Answer::Shards(shards)) => shards,
            other => panic!("{other:?}"),
        }
    }

    /// A node that leaves hands its children to the others, each with its count, and owns
    /// nothing once `leave` returns; when it joins again its shards come back, the children
    /// with them. No child is restarted as after a crash, and each state is delivered once
    /// per move (I6).
    #[test]
    fn a_node_that_leaves_hands_its_children_over_and_takes_them_back_when_it_joins() {
        let names = owned_names(3);
        let report = cluster(22, move |ctl| {
            Box::pin(async move {
                for (i, name) in names.iter().enumerate() {
                    let pid = start(&ctl, 1, name, "counter").await.expect("started");
                    assert_eq!(pid.node(), 3);
                    for _ in 0..=i {
                        send(&ctl, 2, name, 1u32).await.expect("delivered");
                    }
                }
                let dsup = config().handle();
                let left = ctl.on(1, move |p| async move { dsup.leave(&p, 3).await });
                assert_eq!(left.await, Some(Ok(())));
                assert_eq!(shards_of(&ctl, 1, 3).await, vec![]);
                for (i, name) in names.iter().enumerate() {
                    let now = whereis(&ctl, 3, name).await.expect("runs");
                    assert_ne!(now.node(), 3);
                    assert_eq!(count(&ctl, 3, name).await, Some(i as i64 + 1));
                }
                let dsup = config().handle();
                let joined = ctl.on(2, move |p| async move { dsup.join(&p, 3).await });
                assert_eq!(joined.await, Some(Ok(())));
                ctl.sleep(Duration::from_secs(2)).await;
                for (i, name) in names.iter().enumerate() {
                    let now = whereis(&ctl, 1, name).await.expect("runs");
                    assert_eq!(now.node(), 3);
                    assert_eq!(count(&ctl, 1, name).await, Some(i as i64 + 1));
                }
            })
        });
        for name in owned_names(3) {
            let pids = starts(&report.trace, name);
            assert_eq!(pids.len(), 3, "{name}: {pids:?}");
            assert_eq!(handoffs(&report.trace, name), (2, vec![pids[1], pids[2]]));
        }
        let granted = report.trace.events().iter().any(|e| {
            matches!(
                &e.kind,
                EventKind::Dist(DistEvent::Desired { on: false, .. })
            )
        });
        assert!(!granted, "nothing given up");
        check(&report.trace, Consistency::Cp).unwrap();
    }

    /// A sender's messages by name while the child's node leaves: each handled once, in the
    /// order sent, by the old instance before it handed its count over or by the new one
    /// after (S1, as Akka's sharding buffers during a handoff); the count adds up.
    #[test]
    fn messages_sent_by_name_during_a_move_are_handled_once_in_order() {
        let name = owned_names(3)[0];
        let sent = 40;
        let report = cluster(23, move |ctl| {
            Box::pin(async move {
                start(&ctl, 1, name, "counter").await.expect("started");
                let dsup = config().handle();
                ctl.node(1).spawn(move |p| async move {
                    for seq in 0..sent {
                        let bump = Bump { from: p.pid(), seq };
                        dsup.send(&p, name, bump).await.expect("delivered");
                        p.sleep(Duration::from_millis(20)).await;
                    }
                });
                ctl.sleep(Duration::from_millis(300)).await;
                let dsup = config().handle();
                let left = ctl.on(2, move |p| async move { dsup.leave(&p, 3).await });
                assert_eq!(left.await, Some(Ok(())));
                ctl.sleep(Duration::from_secs(2)).await;
                assert_eq!(count(&ctl, 2, name).await, Some(sent as i64));
            })
        });
        let handled: Vec<(Pid, u64)> = report
            .trace
            .events()
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Dist(DistEvent::Handled { pid, seq, .. }) => Some((*pid, *seq)),
                _ => None,
            })
            .collect();
        let seqs: Vec<u64> = handled.iter().map(|&(_, seq)| seq).collect();
        assert_eq!(seqs, (0..sent).collect::<Vec<_>>(), "once each, in order");
        let instances: std::collections::BTreeSet<Pid> = handled.iter().map(|&(p, _)| p).collect();
        assert_eq!(
            instances.len(),
            2,
            "before and after the move: {instances:?}"
        );
        check(&report.trace, Consistency::Cp).unwrap();
    }

    /// Bad input to `send` gets a typed error: a message type the supervisor does not route
    /// (its codec names it: the "unregistered codec"), and a name no child has.
    #[test]
    fn sending_an_unregistered_type_or_to_no_child_is_a_typed_error() {
        cluster(24, |ctl| {
            Box::pin(async move {
                let name = owned_names(2)[0];
                start(&ctl, 1, name, "counter").await.expect("started");
                match send(&ctl, 1, name, 2.5f64).await {
                    Err(DistError::Codec(why)) => assert!(why.contains("f64"), "{why}"),
                    other => panic!("{other:?}"),
                }
                assert_eq!(
                    send(&ctl, 3, "nobody", 1u32).await,
                    Err(DistError::NotFound)
                );
            })
        });
    }

    /// Two names of one shard of node 3's.
    fn same_shard_of_3() -> (&'static str, &'static str) {
        let shards = config().shards;
        let names: Vec<&'static str> = (0..200)
            .map(|i| &*Box::leak(format!("s{i}").into_boxed_str()))
            .collect();
        let shard = |n: &str| otpsim::cluster::cp::control::shard_of(n, shards);
        for (i, a) in names.iter().enumerate() {
            if shard(a) % 3 != 2 {
                continue;
            }
            if let Some(b) = names[i + 1..].iter().find(|b| shard(b) == shard(a)) {
                return (a, b);
            }
        }
        panic!("no two names of one shard");
    }

    /// A child that does not answer for its state is killed after the handoff timeout (2 s)
    /// and restarts on the target as after a crash; meanwhile a child started in the same
    /// shard, in transit, is started by the target once the move completes, and its caller
    /// told its pid (its wait routed on from the old owner, not left to time out).
    #[test]
    fn a_start_during_a_move_runs_on_the_target_and_a_silent_child_is_killed() {
        let (silent, late) = same_shard_of_3();
        let report = cluster(25, move |ctl| {
            Box::pin(async move {
                let pid = start(&ctl, 1, silent, "stubborn").await.expect("started");
                assert_eq!(pid.node(), 3);
                let dsup = config().handle();
                ctl.node(1).spawn(move |p| async move {
                    let _ = dsup.leave(&p, 3).await;
                });
                ctl.sleep(Duration::from_millis(500)).await;
                let started = start(&ctl, 2, late, "counter").await.expect("started");
                assert_ne!(started.node(), 3);
                ctl.sleep(Duration::from_secs(3)).await;
                assert_eq!(whereis(&ctl, 1, late).await, Some(started));
                let moved = whereis(&ctl, 1, silent).await.expect("runs on the target");
                assert_eq!(moved.node(), started.node());
            })
        });
        let pids = starts(&report.trace, silent);
        assert_eq!(pids.len(), 2, "{pids:?}");
        let begin = report.trace.events().iter().find_map(|e| match &e.kind {
            EventKind::Dist(DistEvent::Handoff {
                name,
                phase: HandoffPhase::Begin { .. },
                ..
            }) if name == silent => Some(e.at_us),
            _ => None,
        });
        let killed = report.trace.events().iter().find_map(|e| match &e.kind {
            EventKind::Exit { pid, reason } if *pid == pids[0] => Some((e.at_us, reason.clone())),
            _ => None,
        });
        let (at, reason) = killed.expect("the silent child exited");
        assert_eq!(reason, otpsim::Term::atom("killed"));
        assert!(at >= begin.expect("a handoff began") + 2_000_000);
        assert_eq!(handoffs(&report.trace, late), (0, vec![]));
        check(&report.trace, Consistency::Cp).unwrap();
    }
}

mod groups {
    //! Groups of supervised children (docs/cp.md "Groups"; S4 of docs/cluster-invariants.md,
    //! which Swarm breaks): a child's groups are committed with it, so whichever node runs
    //! it joins each instance to them, across crashes and moves, and every node lists it
    //! (Erlang's `pg`, `otpsim::cluster::Groups`).

    use super::supervisor::{cluster, config, start, whereis};
    use otpsim::cluster::cp::consensus;
    use otpsim::cluster::cp::control::Control;
    use otpsim::cluster::cp::supervisor::DistError;
    use otpsim::rt::Duration;
    use otpsim::sim::cluster::ClusterCtl;
    use otpsim::sim::cluster_invariants::{check, Consistency};
    use otpsim::Pid;

    async fn members(ctl: &ClusterCtl, k: u16, group: &'static str) -> Vec<Pid> {
        let dsup = config().handle();
        ctl.on(k, move |p| async move { dsup.members(&p, group).await })
            .await
            .expect("its node runs")
            .expect("its supervisor runs")
    }

    async fn group(
        ctl: &ClusterCtl,
        k: u16,
        name: &'static str,
        member: bool,
    ) -> Result<(), DistError> {
        let dsup = config().handle();
        ctl.on(k, move |p| async move {
            match member {
                true => dsup.join_group(&p, name, "g").await,
                false => dsup.leave_group(&p, name, "g").await,
            }
        })
        .await
        .expect("its node runs")
    }

    /// Every node lists `pid` as the one member of `g`, or none.
    async fn listed_everywhere(ctl: &ClusterCtl, pid: Option<Pid>) {
        for k in 1..=3 {
            assert_eq!(members(ctl, k, "g").await, Vec::from_iter(pid), "n{k}");
        }
    }

    /// pg sees only connected nodes, and Raft's traffic goes through the leader, so two
    /// followers whose connection went would never talk again, each missing the other's
    /// members: the supervisors keep every voter connected (`Process::connect_node`, as
    /// `global`'s `connect_all` keeps an Erlang cluster meshed). The harness found the
    /// missing mesh (S4, 32 of 3,000 cases).
    #[test]
    fn the_supervisors_connect_two_followers_again() {
        let report = cluster(25, |ctl| {
            Box::pin(async move {
                let status = ctl
                    .on(1, |p| async move {
                        let raft = config().raft.name;
                        consensus::status::<Control>(&p, &raft, 1, Duration::from_secs(5)).await
                    })
                    .await
                    .and_then(Result::ok);
                let leader = status.and_then(|s| s.leader).expect("a leader");
                let followers: Vec<u16> = (1..=3).filter(|&k| k != leader).collect();
                let (a, b) = (followers[0], followers[1]);
                assert!(
                    ctl.connected(a).contains(&b),
                    "the supervisors meshed the voters"
                );
                ctl.disconnect(a, b);
                assert!(!ctl.connected(a).contains(&b));
                ctl.sleep(Duration::from_secs(1)).await;
                assert!(
                    ctl.connected(a).contains(&b),
                    "n{a} and n{b} connected again"
                );
            })
        });
        check(&report.trace, Consistency::Cp).unwrap();
    }

    /// pg's table dies with its scope: a supervisor whose node's scope died starts a new
    /// one (empty), and every child it runs joins its groups there again, so every node
    /// lists them once more (docs/cp.md "Groups"; S4).
    #[test]
    fn a_dead_scope_is_started_again_and_the_children_join_it() {
        let report = cluster(24, |ctl| {
            Box::pin(async move {
                let pid = start(&ctl, 1, "a", "device").await.expect("started");
                group(&ctl, 2, "a", true).await.expect("joined");
                ctl.sleep(Duration::from_millis(100)).await;
                listed_everywhere(&ctl, Some(pid)).await;
                let node = ctl.node(pid.node());
                let scope = config().groups_scope();
                let first = node.whereis(&scope).expect("the scope runs");
                node.exit(first, otpsim::ExitReason::Kill);
                ctl.sleep(Duration::from_secs(1)).await;
                let second = node.whereis(&scope).expect("started again");
                assert_ne!(second, first);
                listed_everywhere(&ctl, Some(pid)).await;
                ctl.at_rest();
            })
        });
        check(&report.trace, Consistency::Cp).unwrap();
    }

    /// A child joined to a group is listed by every node; its restarted instance and the
    /// instance the majority starts when its owner is cut off join it too, as does the one
    /// moved back home after the heal; `leave_group` takes it out, and a name no child has
    /// is `NotFound`.
    #[test]
    fn a_child_stays_in_its_group_across_restarts_and_moves() {
        let report = cluster(23, |ctl| {
            Box::pin(async move {
                let first = start(&ctl, 1, "a", "device").await.expect("started");
                let home = first.node();
                group(&ctl, 2, "a", true).await.expect("joined");
                assert_eq!(
                    group(&ctl, 2, "nobody", true).await,
                    Err(DistError::NotFound)
                );
                ctl.sleep(Duration::from_millis(100)).await;
                listed_everywhere(&ctl, Some(first)).await;
                // It exits: restarted in place, and its new instance is in the group.
                ctl.node(home).send(first, ());
                ctl.sleep(Duration::from_secs(2)).await;
                let again = whereis(&ctl, home, "a").await.expect("restarted");
                assert_ne!(again, first);
                listed_everywhere(&ctl, Some(again)).await;
                // Its owner cut off: it runs on the majority side, in the group there.
                ctl.partition(&[home]);
                ctl.sleep(Duration::from_secs(8)).await;
                let other = if home == 1 { 2 } else { 1 };
                let moved = whereis(&ctl, other, "a").await.expect("runs elsewhere");
                for k in (1..=3).filter(|&k| k != home) {
                    assert_eq!(members(&ctl, k, "g").await, vec![moved], "n{k}");
                }
                // Healed, moved back home with the group, seen by every node again.
                ctl.heal();
                ctl.sleep(Duration::from_secs(5)).await;
                let back = whereis(&ctl, other, "a").await.expect("runs at home");
                assert_eq!(back.node(), home);
                listed_everywhere(&ctl, Some(back)).await;
                // It leaves the group: listed nowhere, and it keeps running.
                group(&ctl, 3, "a", false).await.expect("left");
                ctl.sleep(Duration::from_millis(100)).await;
                listed_everywhere(&ctl, None).await;
                assert_eq!(whereis(&ctl, 3, "a").await, Some(back));
                // In again, and S4 judged at rest.
                group(&ctl, 1, "a", true).await.expect("joined");
                ctl.sleep(Duration::from_millis(100)).await;
                listed_everywhere(&ctl, Some(back)).await;
                ctl.at_rest();
            })
        });
        check(&report.trace, Consistency::Cp).unwrap();
    }
}

mod ap {
    //! The supervisor in AP mode (`Mode::Ap`, docs/cp.md "AP mode"; SWARM.md §4.2 item 9):
    //! each side of a partition keeps its children, and at the heal every conflict's loser
    //! hands its state to the winner, once, and stops (I7).

    use super::supervisor::{cluster_in, count, exits, send, start, starts, whereis};
    use otpsim::cluster::cp::supervisor::Mode;
    use otpsim::rt::Duration;
    use otpsim::sim::cluster_invariants::{check, Consistency};
    use otpsim::trace::{DistEvent, EventKind, Trace};
    use otpsim::{Pid, Term};

    /// Every conflict of the trace: (name, winner, loser, state delivered).
    fn conflicts(trace: &Trace) -> Vec<(String, Pid, Pid, bool)> {
        trace
            .events()
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Dist(DistEvent::Conflict {
                    name,
                    winner,
                    loser,
                    state_delivered,
                }) => Some((name.clone(), *winner, *loser, *state_delivered)),
                _ => None,
            })
            .collect()
    }

    /// An owner cut off from the majority keeps its counter, and the majority starts another;
    /// each counts what its side sends. At the heal the old owner's instance loses: its count
    /// goes to the winner, which adds it (`resolve_conflict`), and it stops with `shutdown`.
    /// The shard then moves home with the sum. One conflict, with the state (I7).
    #[test]
    fn each_side_keeps_its_child_and_the_heal_gives_the_losers_state_to_the_winner() {
        let report = cluster_in(
            31,
            Mode::Ap,
            Box::new(|ctl| {
                Box::pin(async move {
                    let old = start(&ctl, 1, "a", "counter").await.expect("started");
                    let home = old.node();
                    let other = if home == 1 { 2 } else { 1 };
                    send(&ctl, home, "a", 1u32).await.expect("delivered");
                    ctl.partition(&[home]);
                    ctl.sleep(Duration::from_secs(8)).await;
                    // Both sides run it: the cut-off owner its old instance, past its lease.
                    assert_eq!(whereis(&ctl, home, "a").await, Some(old));
                    let new = whereis(&ctl, other, "a").await.expect("runs elsewhere");
                    assert_ne!(new.node(), home);
                    for _ in 0..3 {
                        assert_eq!(send(&ctl, other, "a", 1u32).await, Ok(new));
                    }
                    assert_eq!(send(&ctl, home, "a", 1u32).await, Ok(old));
                    assert_eq!(count(&ctl, home, "a").await, Some(2));
                    assert_eq!(count(&ctl, other, "a").await, Some(3));
                    ctl.heal();
                    // Caught up, the loser's state given, and the shard moved home.
                    ctl.sleep(Duration::from_secs(8)).await;
                    let back = whereis(&ctl, other, "a").await.expect("runs");
                    assert_eq!(back.node(), home);
                    assert_eq!(whereis(&ctl, home, "a").await, Some(back));
                    assert_eq!(
                        count(&ctl, home, "a").await,
                        Some(5),
                        "nothing counted is lost"
                    );
                })
            }),
        );
        let pids = starts(&report.trace, "a");
        assert_eq!(pids.len(), 3, "{pids:?}");
        let found = conflicts(&report.trace);
        assert_eq!(found, vec![("a".to_string(), pids[1], pids[0], true)]);
        let stopped = exits(&report.trace, pids[0]);
        assert_eq!(stopped.len(), 1);
        assert_eq!(stopped[0].1, Term::atom("shutdown"));
        check(&report.trace, Consistency::Ap).unwrap();
    }
}
