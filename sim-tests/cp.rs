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
