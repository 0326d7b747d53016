//! The harness over a cluster: a distributed system (a [`ClusterTarget`]) under generated
//! cluster faults (node crashes, silent crashes, power failures, restarts, pauses, partitions
//! both ways and one way, heals, slow links, clock jumps, and clock drift per node), each case
//! enabling a random subset of the [`ClusterFamily`]s, with a final "heal all" (paused nodes resume,
//! partitions end, crashed nodes restart; slow links have ended by then) and the target's quiet
//! period before its at-rest check. A failing case is shrunk (fewer steps, shorter pauses,
//! slow links and jumps, no drift, seed 0) and can be saved as JSON and replayed.
//!
//! Faults name their node by a key, mapped to a node by rendezvous hashing over the nodes the
//! target lets faults hit: a case keeps its faults on the same nodes when other steps go.
//! As with [`Harness`](super::harness::Harness), `OTPSIM_CASES` overrides the number of cases
//! and `OTPSIM_SEED` the first seed (`random` picks one and prints it).
//!
//! ```
//! # #[cfg(madsim)] {
//! use otpsim::sim::cluster::ClusterCtl;
//! use otpsim::sim::cluster_harness::{ClusterHarness, ClusterTarget};
//! use otpsim::Node;
//!
//! /// A process on node 2 that node 1 expects to find after every fault: it is not
//! /// restarted with its node, so the harness finds a case where it is gone.
//! struct Fragile;
//!
//! impl ClusterTarget for Fragile {
//!     type Op = ();
//!
//!     fn name(&self) -> String {
//!         "fragile".into()
//!     }
//!     fn boot(&self, k: u16, node: &Node, first: bool) {
//!         if k == 2 && first {
//!             node.spawn(|p| async move {
//!                 p.register("svc").unwrap();
//!                 p.receive(|_| false).await;
//!             });
//!         }
//!     }
//!     async fn check(&self, ctl: &ClusterCtl) -> Result<(), String> {
//!         match ctl.node(2).whereis("svc") {
//!             Some(_) => Ok(()),
//!             None => Err("svc is gone".into()),
//!         }
//!     }
//! }
//!
//! let report = ClusterHarness::new(Fragile).cases(200).run();
//! let failure = report.failure.expect("a crash or restart of node 2 loses it");
//! assert_eq!(failure.case.steps.len(), 1);
//! # }
//! ```
//!
//! The cluster case (its steps and their generation), the driver that applies them to a
//! `ClusterSim`, and the shrinker that edits them share the step type at every line, so they are
//! kept in one file (hence its length); `sim::harness` is the single-node counterpart.

use super::cluster::{ClusterCtl, ClusterReport, ClusterSim};
use super::cluster_invariants::{self, Consistency};
use super::corpus::CorpusFile;
use super::faults::{CrashReason, Fault, StopHow};
use super::harness::{env_cases, env_seed, AnyTarget, CaseReport, Failure, HarnessReport, Tally};
use super::invariants::{Invariant, KnownFlaw, Violation};
use crate::process::Node;
use crate::rt::Duration;
use crate::trace::Trace;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

/// A distributed system for the cluster harness.
pub trait ClusterTarget: Send + Sync + 'static {
    /// Its name (in reports and corpus files).
    fn name(&self) -> String;

    /// How many nodes it runs on (3).
    fn nodes(&self) -> u16 {
        3
    }

    /// The nodes faults may hit (all of them).
    fn faulty(&self, nodes: u16) -> Vec<u16> {
        (1..=nodes).collect()
    }

    /// One operation of its workload: a case step like a fault, drawn by
    /// [`op`](ClusterTarget::op), run by [`apply`](ClusterTarget::apply), and dropped by
    /// shrinking like one (`()` for a target without a workload of steps).
    type Op: Clone
        + std::fmt::Debug
        + PartialEq
        + Serialize
        + DeserializeOwned
        + Send
        + Sync
        + 'static;

    /// Starts what runs on node `k`: at the start (`first`) and after each restart of it.
    fn boot(&self, k: u16, node: &Node, first: bool);

    /// A random operation, from `draw(n)` (a number below `n`); `None` (the default): the
    /// target has no workload of steps.
    fn op(&self, draw: &mut dyn FnMut(u64) -> u64) -> Option<Self::Op> {
        let _ = draw;
        None
    }

    /// Runs `op`, from the scenario's side (`ctl.on(k, ..)` runs a body on node `k`). It runs
    /// beside the faults and the other operations, not before them.
    fn apply(&self, ctl: &ClusterCtl, op: &Self::Op) -> impl Future<Output = ()> + Send {
        let _ = (ctl, op);
        async {}
    }

    /// How long it runs under faults before the final heal (8 s).
    fn run_for(&self) -> Duration {
        Duration::from_secs(8)
    }

    /// How long after the final heal it has to settle before the check (6 s: more than
    /// `net_ticktime`).
    fn quiet(&self) -> Duration {
        Duration::from_secs(6)
    }

    /// The at-rest check, in the simulation, after the quiet period.
    fn check(&self, ctl: &ClusterCtl) -> impl Future<Output = Result<(), String>> + Send;

    /// The fault families its cases draw from (all of them): a target can leave out what
    /// it does not claim to survive.
    fn families(&self) -> Vec<ClusterFamily> {
        ClusterFamily::ALL.to_vec()
    }

    /// When it may run two instances of a name (for the cluster invariants, which read what
    /// its distributed supervisors and registries record): never ([`Consistency::Cp`]).
    fn consistency(&self) -> Consistency {
        Consistency::Cp
    }

    /// Where it places a name among the live members, for the placement check (S2): none,
    /// the default, leaves placement unchecked.
    fn placement(&self) -> Option<cluster_invariants::Placement> {
        None
    }

    /// The documented flaw of the system it models that `violation` (of a run whose trace
    /// is `trace`) is an instance of, if any (none, the default: every failure is a
    /// regression). A model of a flawed system, such as Swarm's, names its flaws here, and
    /// campaigns report them apart from regressions and shrink them only when asked for the
    /// target by name.
    fn known_flaw(&self, violation: &Violation, trace: &Trace) -> Option<&'static KnownFlaw> {
        let _ = (violation, trace);
        None
    }
}

/// A step of a generated case: a cluster fault (`key` picks its node by rendezvous
/// hashing), or an operation of the target's workload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClusterStep<O = ()> {
    /// The node crashes (its peers see it at once).
    Crash {
        /// Picks the node.
        key: u64,
    },
    /// The node is lost silently (its peers find out by ticks).
    CrashSilently {
        /// Picks the node.
        key: u64,
    },
    /// The node's host loses power: a silent crash, and its disk loses what it did not sync.
    PowerFail {
        /// Picks the node.
        key: u64,
    },
    /// The node restarts with a new creation.
    Restart {
        /// Picks the node.
        key: u64,
    },
    /// The node stops for `ms` milliseconds.
    Pause {
        /// Picks the node.
        key: u64,
        /// How long.
        ms: u64,
    },
    /// Nothing gets between the node and the others.
    Partition {
        /// Picks the node.
        key: u64,
    },
    /// Nothing gets from the node to the others; the other way is open.
    PartitionOneWay {
        /// Picks the node.
        key: u64,
    },
    /// Every partition ends.
    Heal,
    /// For `for_ms`, signals between two nodes take `ms` longer.
    SlowLink {
        /// Picks one node.
        key: u64,
        /// Picks the other, among the rest.
        other: u64,
        /// The added latency.
        ms: u64,
        /// For how long.
        for_ms: u64,
    },
    /// The node's wall clock is stepped by `ms` (forward if positive).
    ClockJump {
        /// Picks the node.
        key: u64,
        /// The step.
        ms: i64,
    },
    /// A fault of one process on the node, as the single-node harness injects them (a crash,
    /// a kill, a stranger's exit signal, a crash storm, a graceful restart), its victim
    /// picked among the node's processes by their tree paths.
    Process {
        /// Picks the node.
        key: u64,
        /// The fault.
        fault: Fault,
    },
    /// An operation of the target's workload ([`ClusterTarget::Op`]).
    Op(O),
}

/// A family of cluster faults. Each case enables a random subset of the families its
/// harness allows (swarm testing: a case with few families goes deeper into each).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClusterFamily {
    /// [`ClusterStep::Process`]: the single-node harness's faults, inside one node.
    Process,
    /// [`ClusterStep::Crash`].
    Crash,
    /// [`ClusterStep::CrashSilently`].
    CrashSilently,
    /// [`ClusterStep::PowerFail`].
    PowerFail,
    /// [`ClusterStep::Restart`].
    Restart,
    /// [`ClusterStep::Pause`].
    Pause,
    /// [`ClusterStep::Partition`] (and [`ClusterStep::Heal`]).
    Partition,
    /// [`ClusterStep::PartitionOneWay`] (and [`ClusterStep::Heal`]).
    PartitionOneWay,
    /// [`ClusterStep::SlowLink`].
    SlowLink,
    /// [`ClusterStep::ClockJump`].
    ClockJump,
    /// The nodes' clock drifts ([`ClusterCase::drift_ppm`]).
    Drift,
}

impl ClusterFamily {
    /// Every family.
    pub const ALL: [ClusterFamily; 11] = [
        ClusterFamily::Process,
        ClusterFamily::Crash,
        ClusterFamily::CrashSilently,
        ClusterFamily::PowerFail,
        ClusterFamily::Restart,
        ClusterFamily::Pause,
        ClusterFamily::Partition,
        ClusterFamily::PartitionOneWay,
        ClusterFamily::SlowLink,
        ClusterFamily::ClockJump,
        ClusterFamily::Drift,
    ];
}

/// A case: the run's seed, its nodes' clocks, and its timed faults and operations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterCase<O = ()> {
    /// Madsim's scheduling and the switch's latencies.
    pub seed: u64,
    /// Nodes `1..=nodes`.
    pub nodes: u16,
    /// Each node's clock drift in parts per million, from node 1 (missing: 0).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift_ppm: Vec<i32>,
    /// `(at_ms, step)`, in time order.
    pub steps: Vec<(u64, ClusterStep<O>)>,
}

/// The node of `faulty` that `key` picks: the one with the highest hash of (key, node), so
/// that a key keeps its node whatever else the case holds.
pub fn rendezvous(key: u64, faulty: &[u16]) -> Option<u16> {
    faulty
        .iter()
        .copied()
        .max_by_key(|&k| crate::hash::stable_hash(&(key, k)))
}

impl<O> ClusterCase<O> {
    /// The case of `seed` for a target with `nodes` nodes running for `run_for`: up to four
    /// faults of a random subset of `families`, and clock drifts if that subset has
    /// [`ClusterFamily::Drift`].
    pub fn generate(
        seed: u64,
        nodes: u16,
        run_for: Duration,
        families: &[ClusterFamily],
    ) -> ClusterCase<O> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x0068_6172_6e65_7373);
        let mut below = |n: u64| rng.next_u64() % n.max(1);
        let enabled: Vec<ClusterFamily> = loop {
            let mask = below(1 << families.len());
            let on: Vec<ClusterFamily> = families
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, f)| *f)
                .collect();
            if !on.is_empty() || families.is_empty() {
                break on;
            }
        };
        let drift_ppm = if enabled.contains(&ClusterFamily::Drift) {
            const DRIFTS: [i32; 7] = [0, 1_000, -1_000, 10_000, -10_000, 50_000, -50_000];
            (0..nodes)
                .map(|_| DRIFTS[below(DRIFTS.len() as u64) as usize])
                .collect()
        } else {
            Vec::new()
        };
        let faults: Vec<ClusterFamily> = enabled
            .into_iter()
            .filter(|f| *f != ClusterFamily::Drift)
            .collect();
        let window = run_for.as_millis() as u64;
        let count = if faults.is_empty() { 0 } else { below(5) };
        // Half the faults come within 3 s after the one before: bugs that depend on a
        // sequence (a crash during a pause, a restart during a handoff) need faults close
        // together, which uniform times over the whole window seldom give.
        let mut last: Option<u64> = None;
        let mut steps: Vec<(u64, ClusterStep<O>)> = (0..count)
            .map(|_| {
                let at = match last {
                    Some(t) if below(2) == 0 => (t + below(3000)).min(window.saturating_sub(1)),
                    _ => below(window),
                };
                last = Some(at);
                let key = below(u64::MAX);
                let family = faults[below(faults.len() as u64) as usize];
                let step = match family {
                    ClusterFamily::Crash => ClusterStep::Crash { key },
                    ClusterFamily::CrashSilently => ClusterStep::CrashSilently { key },
                    ClusterFamily::PowerFail => ClusterStep::PowerFail { key },
                    ClusterFamily::Restart => ClusterStep::Restart { key },
                    ClusterFamily::Pause => ClusterStep::Pause {
                        key,
                        ms: 100 + below(6000),
                    },
                    // A partition is healed half the time before the final heal.
                    ClusterFamily::Partition | ClusterFamily::PartitionOneWay if below(2) == 0 => {
                        ClusterStep::Heal
                    }
                    ClusterFamily::Partition => ClusterStep::Partition { key },
                    ClusterFamily::PartitionOneWay => ClusterStep::PartitionOneWay { key },
                    ClusterFamily::SlowLink => ClusterStep::SlowLink {
                        key,
                        other: below(u64::MAX),
                        ms: 10 + below(2000),
                        for_ms: 100 + below(6000),
                    },
                    ClusterFamily::ClockJump => ClusterStep::ClockJump {
                        key,
                        ms: (below(240_001) as i64 - 120_000),
                    },
                    ClusterFamily::Process | ClusterFamily::Drift => {
                        const REASONS: [CrashReason; 5] = [
                            CrashReason::Panic,
                            CrashReason::Error,
                            CrashReason::Normal,
                            CrashReason::Shutdown,
                            CrashReason::ShutdownWith,
                        ];
                        let victim = below(1 << 16) as u16;
                        let reason = REASONS[below(5) as usize];
                        let fault = match below(5) {
                            0 => Fault::Crash { victim, reason },
                            1 => Fault::Kill { victim },
                            2 => Fault::Signal { victim, reason },
                            3 => Fault::Storm {
                                victim,
                                over: below(2) == 0,
                            },
                            _ => Fault::Stop {
                                victim,
                                how: if below(2) == 0 {
                                    StopHow::Cycle
                                } else {
                                    StopHow::Stop
                                },
                            },
                        };
                        ClusterStep::Process { key, fault }
                    }
                };
                (at, step)
            })
            .collect();
        steps.sort_by_key(|(at, _)| *at);
        ClusterCase {
            seed,
            nodes,
            drift_ppm,
            steps,
        }
    }

    /// Runs the case against `target`: its report, and its verdict: the run's own failure, a
    /// cluster invariant's violation, or the target's at-rest check's.
    pub fn run<T: ClusterTarget<Op = O>>(
        &self,
        target: &Arc<T>,
    ) -> (ClusterReport, Result<(), Violation>)
    where
        O: Clone + Send + Sync + 'static,
    {
        let verdict = Arc::new(Mutex::new(Err("the check did not run".to_string())));
        let (case, t, v) = (self.clone(), target.clone(), verdict.clone());
        let mut sim = ClusterSim::new(self.seed)
            .nodes(self.nodes)
            .check_nodes(true);
        for (i, ppm) in self.drift_ppm.iter().enumerate() {
            sim = sim.drift(i as u16 + 1, *ppm);
        }
        let report = sim.run(move |ctl| drive(case, t, ctl, v));
        let checked = std::mem::replace(
            &mut *verdict.lock().unwrap_or_else(PoisonError::into_inner),
            Ok(()),
        );
        let verdict = match (report.failure(), &report.node_violation) {
            (Some(failure), _) => Err(Violation::new(Invariant::Run, "run", failure)),
            (None, Some((k, violation))) => Err(Violation {
                subject: format!("n{k}: {}", violation.subject),
                ..violation.clone()
            }),
            // Only a cluster invariant's violation may be a known flaw of the system: a
            // failed run, a node's own invariant or the target's check never is.
            (None, None) => cluster_invariants::check_placed(
                &report.trace,
                target.consistency(),
                target.placement(),
            )
            .map_err(|mut v| {
                v.known = target.known_flaw(&v, &report.trace);
                v
            })
            .and_then(|()| checked.map_err(|m| Violation::app(&target.name(), m))),
        };
        (report, verdict)
    }
}

async fn drive<T: ClusterTarget>(
    case: ClusterCase<T::Op>,
    target: Arc<T>,
    ctl: ClusterCtl,
    verdict: Arc<Mutex<Result<(), String>>>,
) {
    let faulty = target.faulty(case.nodes);
    for k in 1..=case.nodes {
        target.boot(k, &ctl.node(k), true);
    }
    let start = crate::rt::now();
    // The steps, and the end of each pause that ends before the run does, in time order.
    let mut timeline: Vec<(u64, usize, bool)> = Vec::new();
    for (i, (at, step)) in case.steps.iter().enumerate() {
        timeline.push((*at, i, false));
        if let ClusterStep::Pause { ms, .. } = step {
            timeline.push((at + ms, i, true));
        }
    }
    timeline.sort_by_key(|(at, i, end)| (*at, *end, *i));
    let run_for = target.run_for().as_millis() as u64;
    let mut down: BTreeSet<u16> = BTreeSet::new();
    // The pause in effect on each paused node (its step), so that only its own end resumes it.
    let mut pauses: std::collections::BTreeMap<u16, usize> = std::collections::BTreeMap::new();
    for (at, i, end) in timeline {
        if at >= run_for {
            break;
        }
        crate::rt::sleep_until(start + Duration::from_millis(at)).await;
        let (_, step) = &case.steps[i];
        let node = |key: &u64| rendezvous(*key, &faulty);
        if end {
            if let ClusterStep::Pause { key, .. } = step {
                if let Some(k) = node(key).filter(|k| pauses.get(k) == Some(&i)) {
                    ctl.resume(k);
                    pauses.remove(&k);
                }
            }
            continue;
        }
        match step {
            ClusterStep::Crash { key }
            | ClusterStep::CrashSilently { key }
            | ClusterStep::PowerFail { key } => {
                if let Some(k) = node(key) {
                    match step {
                        ClusterStep::Crash { .. } => ctl.crash(k),
                        ClusterStep::CrashSilently { .. } => ctl.crash_silently(k),
                        _ => ctl.power_fail(k),
                    }
                    down.insert(k);
                    pauses.remove(&k);
                }
            }
            ClusterStep::Restart { key } => {
                if let Some(k) = node(key) {
                    ctl.restart(k);
                    down.remove(&k);
                    pauses.remove(&k);
                    target.boot(k, &ctl.node(k), false);
                }
            }
            ClusterStep::Pause { key, .. } => {
                if let Some(k) = node(key).filter(|k| !down.contains(k)) {
                    ctl.pause(k);
                    pauses.insert(k, i);
                }
            }
            ClusterStep::Partition { key } => {
                if let Some(k) = node(key) {
                    ctl.partition(&[k]);
                }
            }
            ClusterStep::PartitionOneWay { key } => {
                if let Some(k) = node(key) {
                    ctl.partition_one_way(&[k]);
                }
            }
            ClusterStep::Heal => ctl.heal(),
            ClusterStep::SlowLink {
                key,
                other,
                ms,
                for_ms,
            } => {
                if let Some(a) = node(key) {
                    let rest: Vec<u16> = (1..=case.nodes).filter(|k| *k != a).collect();
                    if let Some(b) = rendezvous(*other, &rest) {
                        // It ends with the faults, before the final heal.
                        let for_ms = (*for_ms).min(run_for - at);
                        let (extra, window) =
                            (Duration::from_millis(*ms), Duration::from_millis(for_ms));
                        ctl.slow_link(a, b, extra, window);
                    }
                }
            }
            ClusterStep::ClockJump { key, ms } => {
                if let Some(k) = node(key) {
                    ctl.jump_clock(k, *ms);
                }
            }
            ClusterStep::Op(op) => {
                let (target, ctl, op) = (target.clone(), ctl.clone(), op.clone());
                crate::rt::spawn(async move { target.apply(&ctl, &op).await });
            }
            ClusterStep::Process { key, fault } => {
                if let Some(k) = node(key).filter(|k| !down.contains(k) && !pauses.contains_key(k))
                {
                    let fault = *fault;
                    // Injected from a process of its own on that node, as the single-node
                    // harness does from its driver.
                    ctl.on(k, move |p| async move {
                        crate::sim::faults::inject(&fault, None, &p).await;
                    })
                    .await;
                }
            }
        }
    }
    crate::rt::sleep_until(start + target.run_for()).await;
    // Heal all: paused nodes resume, partitions end, crashed nodes restart.
    for k in pauses.into_keys() {
        ctl.resume(k);
    }
    ctl.heal();
    for k in down {
        ctl.restart(k);
        target.boot(k, &ctl.node(k), false);
    }
    ctl.sleep(target.quiet()).await;
    ctl.at_rest();
    let result = target.check(&ctl).await;
    *verdict.lock().unwrap_or_else(PoisonError::into_inner) = result;
}

/// A minimised failing case.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterFailure<O = ()> {
    /// What the minimal case breaks.
    pub violation: Violation,
    /// The violation's message (what the check or the invariant said).
    pub message: String,
    /// The minimal case.
    pub case: ClusterCase<O>,
    /// The generator seed that found it.
    pub seed: u64,
    /// The case at which it was found (from 1).
    pub found_at_case: u64,
    /// Where it was saved (a campaign with a corpus).
    pub saved: Option<PathBuf>,
}

impl<O: Serialize> ClusterFailure<O> {
    /// The failure as a corpus file of `target`.
    pub fn to_corpus(&self, target: &str) -> CorpusFile {
        let case = serde_json::to_value(&self.case).unwrap_or_default();
        CorpusFile::failure(target, case, &self.violation)
    }
}

/// What a cluster campaign found.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterHarnessReport<O = ()> {
    /// Cases run, up to and including the first failing one (corpus replays not counted).
    pub cases: u64,
    /// The minimal failing case, if one was found.
    pub failure: Option<ClusterFailure<O>>,
    /// Corpus files of the target that no longer do what they say, one line each.
    pub regressions: Vec<String>,
}

/// Runs generated cases of a [`ClusterTarget`] (every 50th twice, to check that it
/// replays identically), and shrinks the first failure; with a corpus, replays the target's
/// saved cases first and saves the minimal failure there.
pub struct ClusterHarness<T: ClusterTarget> {
    target: Arc<T>,
    cases: u64,
    first_seed: u64,
    families: Vec<ClusterFamily>,
    corpus: Option<PathBuf>,
}

impl<T: ClusterTarget> ClusterHarness<T> {
    /// 1,000 cases from seed 0 (unless `OTPSIM_CASES` / `OTPSIM_SEED` say otherwise), no
    /// corpus.
    pub fn new(target: T) -> ClusterHarness<T> {
        ClusterHarness::of(Arc::new(target))
    }

    /// The same, for a shared target.
    pub fn of(target: Arc<T>) -> ClusterHarness<T> {
        ClusterHarness {
            families: target.families(),
            target,
            cases: env_cases().map_or(1000, u64::from),
            first_seed: env_seed().unwrap_or(0),
            corpus: None,
        }
    }

    /// Only these fault families (each case enables a random subset of them; the target's
    /// [`families`](ClusterTarget::families) unless set).
    pub fn families(mut self, families: &[ClusterFamily]) -> ClusterHarness<T> {
        self.families = families.to_vec();
        self
    }

    /// The same with `n` cases (unless `OTPSIM_CASES` says otherwise).
    pub fn cases(mut self, n: u64) -> ClusterHarness<T> {
        self.cases = env_cases().map_or(n, u64::from);
        self
    }

    /// The same from another first seed (unless `OTPSIM_SEED` says otherwise).
    pub fn first_seed(mut self, seed: u64) -> ClusterHarness<T> {
        self.first_seed = env_seed().unwrap_or(seed);
        self
    }

    /// Where the target's saved cases are replayed from and a minimal failure is saved
    /// (`None`: neither), as [`Harness::corpus`](super::harness::Harness::corpus).
    pub fn corpus(mut self, dir: Option<PathBuf>) -> ClusterHarness<T> {
        self.corpus = dir;
        self
    }

    /// Runs the campaign: the corpus's cases of the target, then the generated ones.
    pub fn run(&self) -> ClusterHarnessReport<T::Op> {
        let regressions = match &self.corpus {
            Some(dir) => {
                let me: Arc<dyn AnyTarget> = Arc::new(AsTarget(self.target.clone()));
                super::corpus::replay_corpus(dir, &[me], false, false)
            }
            None => Vec::new(),
        };
        for i in 0..self.cases {
            let seed = self.first_seed + i;
            let case = self.generate(seed);
            if let Err(violation) = self.verdict(&case, i % 50 == 0) {
                // A determinism failure is not the target's: it is reported as found.
                let (case, violation) = if violation.invariant == Invariant::Determinism {
                    (case, violation)
                } else {
                    self.shrink(case, violation)
                };
                let mut failure = ClusterFailure {
                    message: violation.message.clone(),
                    violation,
                    case,
                    seed,
                    found_at_case: i + 1,
                    saved: None,
                };
                let file = failure.to_corpus(&self.target.name());
                failure.saved = self
                    .corpus
                    .as_ref()
                    .and_then(|dir| super::corpus::save(dir, &file).ok());
                return ClusterHarnessReport {
                    cases: i + 1,
                    failure: Some(failure),
                    regressions,
                };
            }
        }
        ClusterHarnessReport {
            cases: self.cases,
            failure: None,
            regressions,
        }
    }

    /// The case of `seed`: faults of the harness's families, and operations of the target's
    /// workload (up to twelve, from a stream of their own, so that the faults of a seed do not
    /// depend on the workload).
    pub fn generate(&self, seed: u64) -> ClusterCase<T::Op> {
        let t = &self.target;
        let mut case = ClusterCase::generate(seed, t.nodes(), t.run_for(), &self.families);
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x776f_726b_6c6f_6164);
        let mut draw = |n: u64| rng.next_u64() % n.max(1);
        let window = t.run_for().as_millis() as u64;
        // As with faults, half the operations come within a second after the one before:
        // races between operations (a crash and a join of one name) need them close.
        let mut last: Option<u64> = None;
        for _ in 0..draw(13) {
            let at = match last {
                Some(prev) if draw(2) == 0 => (prev + draw(1000)).min(window.saturating_sub(1)),
                _ => draw(window),
            };
            last = Some(at);
            if let Some(op) = t.op(&mut draw) {
                case.steps.push((at, ClusterStep::Op(op)));
            }
        }
        // Stable: at one instant, faults before operations.
        case.steps.sort_by_key(|(at, _)| *at);
        case
    }

    /// What `case` breaks, if anything; run twice if `twice`, to check that it replays
    /// identically.
    fn verdict(&self, case: &ClusterCase<T::Op>, twice: bool) -> Result<(), Violation> {
        let (report, verdict) = case.run(&self.target);
        if twice {
            self.replays(case, &report)?;
        }
        verdict
    }

    /// Whether `case` runs again exactly as it did in `report` (whatever its verdict: a
    /// failure must replay too); a [`Determinism`](Invariant::Determinism) violation if not.
    fn replays(&self, case: &ClusterCase<T::Op>, report: &ClusterReport) -> Result<(), Violation> {
        let (again, _) = case.run(&self.target);
        match report.trace.first_divergence(&again.trace) {
            Some(d) => Err(Violation::new(Invariant::Determinism, "run", d.to_string())),
            None => Ok(()),
        }
    }

    /// What `case` breaks, if it breaks it the same way as `like` (the same invariant, and
    /// the same words whatever the numbers): a shrink must not drift to another bug.
    fn fails(&self, case: &ClusterCase<T::Op>, like: &Violation) -> Option<Violation> {
        let kind = |v: &Violation| -> (Invariant, Option<&KnownFlaw>, String) {
            let words: String = v.message.chars().filter(|c| !c.is_ascii_digit()).collect();
            let words = words
                .split_whitespace()
                .take(4)
                .collect::<Vec<_>>()
                .join(" ");
            (v.invariant.clone(), v.known, words)
        };
        case.run(&self.target)
            .1
            .err()
            .filter(|v| kind(v) == kind(like))
    }

    /// Whether `case` fails like `like` with its own seed or, since a removed step moves the
    /// schedule of everything after it and a failure that depends on the schedule may then
    /// need another, with one of the first eight seeds (left in `case`); each run spends one
    /// of `budget`.
    fn fails_on_some_seed(
        &self,
        case: &mut ClusterCase<T::Op>,
        like: &Violation,
        budget: &mut u32,
    ) -> Option<Violation> {
        let own = case.seed;
        for seed in std::iter::once(own).chain((0..8).filter(|&s| s != own)) {
            if *budget == 0 {
                break;
            }
            *budget -= 1;
            case.seed = seed;
            if let Some(m) = self.fails(case, like) {
                return Some(m);
            }
        }
        case.seed = own;
        None
    }

    /// A smaller case that still fails the same way: fewer steps (one at a time, then two
    /// together), shorter pauses, slow links and clock jumps, no drift, seed 0.
    fn shrink(
        &self,
        mut case: ClusterCase<T::Op>,
        mut message: Violation,
    ) -> (ClusterCase<T::Op>, Violation) {
        let mut budget: u32 = 300;
        let mut better = true;
        while better && budget > 0 {
            better = false;
            let mut i = 0;
            while i < case.steps.len() && budget > 0 {
                let mut smaller = case.clone();
                smaller.steps.remove(i);
                match self.fails_on_some_seed(&mut smaller, &message, &mut budget) {
                    Some(m) => {
                        (case, message, better) = (smaller, m, true);
                    }
                    None => i += 1,
                }
            }
            // Steps that only matter together (a crash and the restart after it) go in pairs,
            // at the case's own seed (trying others too would spend the budget on pairs).
            'pairs: for i in 0..case.steps.len() {
                for j in i + 1..case.steps.len() {
                    if better || budget == 0 {
                        break 'pairs;
                    }
                    let mut smaller = case.clone();
                    smaller.steps.remove(j);
                    smaller.steps.remove(i);
                    budget -= 1;
                    if let Some(m) = self.fails(&smaller, &message) {
                        (case, message, better) = (smaller, m, true);
                    }
                }
            }
            for i in 0..case.steps.len() {
                if budget == 0 {
                    break;
                }
                let Some(smaller_step) = halved(&case.steps[i].1) else {
                    continue;
                };
                let mut smaller = case.clone();
                smaller.steps[i].1 = smaller_step;
                budget -= 1;
                if let Some(m) = self.fails(&smaller, &message) {
                    (case, message, better) = (smaller, m, true);
                }
            }
            for i in 0..case.drift_ppm.len() {
                if case.drift_ppm[i] != 0 && budget > 0 {
                    let mut smaller = case.clone();
                    smaller.drift_ppm[i] = 0;
                    if smaller.drift_ppm.iter().all(|d| *d == 0) {
                        smaller.drift_ppm.clear();
                    }
                    budget -= 1;
                    if let Some(m) = self.fails(&smaller, &message) {
                        (case, message, better) = (smaller, m, true);
                        break;
                    }
                }
            }
            if case.seed != 0 && budget > 0 {
                let smaller = ClusterCase {
                    seed: 0,
                    ..case.clone()
                };
                budget -= 1;
                if let Some(m) = self.fails(&smaller, &message) {
                    (case, message, better) = (smaller, m, true);
                }
            }
        }
        (case, message)
    }
}

/// The same step, half as long or as far (`None`: it is as small as it gets).
fn halved<O: Clone>(step: &ClusterStep<O>) -> Option<ClusterStep<O>> {
    let mut step = step.clone();
    match &mut step {
        ClusterStep::Pause { ms, .. } if *ms > 100 => *ms /= 2,
        ClusterStep::SlowLink { ms, for_ms, .. } if *for_ms > 100 || *ms > 10 => {
            (*ms, *for_ms) = ((*ms / 2).max(10), (*for_ms / 2).max(100));
        }
        ClusterStep::ClockJump { ms, .. } if ms.abs() > 1000 => *ms /= 2,
        _ => return None,
    }
    Some(step)
}

/// A [`ClusterTarget`] as one of `otpsim`'s targets: `otpsim fuzz` (a seed is one generated
/// case, shrunk and saved in the corpus when it fails), `otpsim replay`, `otpsim digest`, and
/// the corpus that `cargo test` replays.
///
/// ```
/// # #[cfg(madsim)] {
/// use otpsim::sim::cluster::ClusterCtl;
/// use otpsim::sim::cluster_harness::{AsTarget, ClusterTarget};
/// use otpsim::sim::harness::AnyTarget;
/// use otpsim::Node;
/// use std::sync::Arc;
///
/// struct Quiet;
/// impl ClusterTarget for Quiet {
///     type Op = ();
///     fn name(&self) -> String {
///         "quiet".into()
///     }
///     fn boot(&self, _: u16, _: &Node, _: bool) {}
///     async fn check(&self, _: &ClusterCtl) -> Result<(), String> {
///         Ok(())
///     }
/// }
/// let target: Arc<dyn AnyTarget> = Arc::new(AsTarget::new(Quiet));
/// let report = target.fuzz_seed(7, &[], true, None, &|_| false);
/// assert_eq!((report.cases, report.failure), (1, None));
/// # }
/// ```
pub struct AsTarget<T: ClusterTarget>(Arc<T>);

impl<T: ClusterTarget> AsTarget<T> {
    /// The target, for `otpsim`'s list.
    pub fn new(target: T) -> AsTarget<T> {
        AsTarget(Arc::new(target))
    }

    /// A harness of one case, `seed`, whatever the environment says.
    fn harness(&self, seed: u64, corpus: Option<PathBuf>) -> ClusterHarness<T> {
        ClusterHarness {
            target: self.0.clone(),
            cases: 1,
            first_seed: seed,
            families: self.0.families(),
            corpus,
        }
    }
}

impl<T: ClusterTarget> AnyTarget for AsTarget<T> {
    fn name(&self) -> String {
        self.0.name()
    }

    fn fuzz_seed(
        self: Arc<Self>,
        seed: u64,
        _: &[super::faults::Family],
        determinism: bool,
        corpus: Option<PathBuf>,
        shrink_known: &dyn Fn(&str) -> bool,
    ) -> HarnessReport {
        let harness = self.harness(seed, corpus);
        let case = harness.generate(seed);
        let (report, verdict) = case.run(&self.0);
        // A case picked for the determinism check is replayed whatever its verdict: a known
        // flaw must replay too, and a run that does not is the finding.
        let replayed = match determinism {
            true => harness.replays(&case, &report),
            false => Ok(()),
        };
        let verdict = replayed.and(verdict);
        let failure = verdict.err().map(|violation| {
            if violation
                .known
                .is_some_and(|k| !shrink_known(&k.to_string()))
            {
                return Failure {
                    case: serde_json::to_value(&case).unwrap_or_default(),
                    violation,
                    seed,
                    found_at_case: 1,
                    found_after: std::time::Duration::ZERO,
                    saved: None,
                };
            }
            let (case, violation) = match violation.invariant {
                Invariant::Determinism => (case, violation),
                _ => harness.shrink(case, violation),
            };
            let failure = ClusterFailure {
                message: violation.message.clone(),
                violation,
                case,
                seed,
                found_at_case: 1,
                saved: None,
            };
            let file = failure.to_corpus(&self.0.name());
            Failure {
                saved: harness
                    .corpus
                    .as_ref()
                    .and_then(|dir| super::corpus::save(dir, &file).ok()),
                violation: failure.violation,
                case: file.case,
                seed,
                found_at_case: 1,
                found_after: std::time::Duration::ZERO,
            }
        });
        HarnessReport::of_one_case(failure, Tally::of(&report.trace, 1))
    }

    fn replay(self: Arc<Self>, case: &serde_json::Value) -> Result<CaseReport, String> {
        super::NotSimulated::check("a corpus replay").map_err(|e| e.to_string())?;
        let case: ClusterCase<T::Op> =
            serde_json::from_value(case.clone()).map_err(|e| format!("field `case`: {e}"))?;
        let (report, verdict) = case.run(&self.0);
        Ok(CaseReport {
            violation: verdict.err(),
            tally: Tally::of(&report.trace, 1),
            trace: report.trace,
            held: Vec::new(),
        })
    }

    fn trace_hash(self: Arc<Self>, seed: u64) -> Result<u64, String> {
        super::NotSimulated::check("a digest").map_err(|e| e.to_string())?;
        let case = self.harness(seed, None).generate(seed);
        Ok(case.run(&self.0).0.trace.hash())
    }
}
