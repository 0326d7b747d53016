//! The harness: point it at a supervision tree, and it breaks the tree on purpose under a
//! seed, checks the invariants on every run, and shrinks any failure to a minimal case.
//!
//! A [`Target`] is the system under test: how to start it, the workload operations it
//! understands, and the application invariants it promises on top of the harness's own
//! ([`invariants`](super::invariants)). A [`Case`] is data: the target's setup, a list of
//! [steps](Step) (workload operations, [faults](Fault) and pauses) and a seed for the
//! simulator's background scheduling and message delays. [`run_case`] runs one case;
//! [`Harness`] generates cases with proptest, shrinks the first failure, saves it in `corpus/`
//! and panics with what to do next, which is how a user's `cargo test` runs it:
//!
//! ```
//! # #[cfg(madsim)] {
//! use otpsim::sim::harness::{Harness, Target};
//! use otpsim::sim::invariants::Violation;
//! use otpsim::sim::harness::proptest::prelude::*;
//! use otpsim::supervisor::{self, ChildSpec, Flags, Start, Started, SupervisorSpec};
//! use otpsim::{ExitReason, Pid, Process};
//!
//! /// Two idle workers under a one_for_one supervisor; no workload of its own.
//! struct Pair;
//!
//! fn idle(id: &str) -> ChildSpec {
//!     ChildSpec::worker(id, Start::new(|p| {
//!         let pid = p.spawn_link(|q| async move { q.recv().await; ExitReason::Normal });
//!         Box::pin(async move { Ok(Started::Pid(pid)) })
//!     }))
//! }
//!
//! impl Target for Pair {
//!     type Setup = ();
//!     type Op = ();
//!     type State = ();
//!     fn name(&self) -> String { "pair".into() }
//!     fn setups(&self) -> BoxedStrategy<()> { Just(()).boxed() }
//!     fn ops(&self) -> BoxedStrategy<()> { Just(()).boxed() }
//!     async fn start(&self, _: &(), p: &Process) -> Result<(Pid, ()), String> {
//!         let flags = Flags::elixir(supervisor::Strategy::OneForOne);
//!         let spec = SupervisorSpec::new(flags).child(idle("a")).child(idle("b"));
//!         let sup = supervisor::start_link(p, spec).await.map_err(|e| e.to_string())?;
//!         Ok((sup.pid(), ()))
//!     }
//! }
//!
//! let report = Harness::new(Pair).cases(50).corpus(None).run();
//! assert_eq!(report.failure, None);
//! # }
//! ```
//!
//! `otpsim::sim::harness::proptest` is the proptest this crate uses, for the strategies of
//! a target without a dependency of its own. The environment variable `OTPSIM_CASES` overrides the number of cases and
//! `OTPSIM_SEED` the generator's seed (`random` picks one and prints it).

mod case;

pub use proptest;

pub use case::{case_strategy, Case, CrashReason, Delays, Family, Fault, Step};

use super::corpus::{self, CorpusFile};
use super::invariants::{self, CheckOptions, Invariant, Violation};
use super::Sim;
use crate::process::{ExitReason, Msg, Process};
use crate::rt::{Duration, SeededConfig};
use crate::term::Pid;
use crate::trace::{EventKind, FaultKind, ReportContext, SupEvent, Trace};
use proptest::strategy::{BoxedStrategy, Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use serde::{de::DeserializeOwned, Serialize};
use std::fmt::Debug;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

/// A system the harness can break: how to start it, its workload, its own invariants.
///
/// Like [`GenServer`](crate::server::GenServer)'s callbacks, the methods that act on the
/// running system are `async fn`s in an implementation.
pub trait Target: Send + Sync + 'static {
    /// What varies between cases besides the workload (a generated tree, a pool size; `()`
    /// for a fixed system).
    type Setup: Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static;
    /// One workload operation.
    type Op: Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static;
    /// What the workload needs between operations (handles, a model of the expected state).
    type State: Send + 'static;

    /// The name cases and corpus files know the target by.
    fn name(&self) -> String;

    /// Generates setups.
    fn setups(&self) -> BoxedStrategy<Self::Setup>;

    /// Generates workload operations. They do not depend on the setup, so that a failing
    /// case shrinks its setup and its steps independently; an operation that refers to a
    /// part of the system picks it by index modulo what is there, as faults pick victims.
    fn ops(&self) -> BoxedStrategy<Self::Op>;

    /// Starts the system from the harness's driver process; returns the root of the tree
    /// (faults hit it and what descends from it) and the workload's state.
    fn start(
        &self,
        setup: &Self::Setup,
        p: &Process,
    ) -> impl Future<Output = Result<(Pid, Self::State), String>> + Send;

    /// Runs one workload operation from the driver; an `Err` is an application invariant
    /// the operation found broken. The default does nothing (a target whose workload is the
    /// faults alone).
    fn apply(
        &self,
        state: &mut Self::State,
        op: &Self::Op,
        p: &Process,
    ) -> impl Future<Output = Result<(), Violation>> + Send {
        let _ = (state, op, p);
        async { Ok(()) }
    }

    /// The application's invariants at rest, after the faults stopped and the tree had
    /// [`settle`](Target::settle) time to recover. The default checks nothing.
    fn check(
        &self,
        state: &mut Self::State,
        p: &Process,
    ) -> impl Future<Output = Result<(), Violation>> + Send {
        let _ = (state, p);
        async { Ok(()) }
    }

    /// How long the tree gets to recover after the last step (simulated time; default 30 s,
    /// enough for any restart window of up to 10 s to drain twice).
    fn settle(&self, setup: &Self::Setup) -> Duration {
        let _ = setup;
        Duration::from_secs(30)
    }
}

/// The outcome of one case.
#[derive(Clone, Debug)]
pub struct CaseReport {
    /// The first broken invariant, if any.
    pub violation: Option<Violation>,
    /// The run's trace.
    pub trace: Trace,
}

/// Runs one case and checks every invariant: the run itself (livelock, time limit), the
/// harness's trace invariants, and the target's application invariants.
pub fn run_case<T: Target>(target: &Arc<T>, case: &Case<T::Setup, T::Op>) -> CaseReport {
    let outcome: Arc<Mutex<Driven>> = Arc::default();
    let (t, c, sink) = (target.clone(), case.clone(), outcome.clone());
    let sim = Sim::new(case.seed).with_faults(case.sim_faults());
    let report = sim.run(move |p| async move {
        let result = drive(&*t, &c, &p).await;
        *sink.lock().unwrap_or_else(PoisonError::into_inner) = result;
    });
    let driven = std::mem::take(&mut *outcome.lock().unwrap_or_else(PoisonError::into_inner));
    let run_failure = report
        .failure()
        .map(|f| Violation::new(Invariant::Run, "run", f));
    let options = CheckOptions {
        exact_timing: case.delays.is_none(),
        at_rest: run_failure.is_none() && driven.settled.is_some(),
        rest_at: driven.settled,
        root: driven.root,
    };
    // The run ends with the driver (the first process): what the halting node does after
    // that (processes linked to the driver reacting to its exit) is not part of the case.
    let end = report
        .trace
        .events()
        .iter()
        .position(|e| matches!(e.kind, EventKind::Exit { pid, .. } if pid == Pid::from_raw(1)))
        .unwrap_or(report.trace.len());
    let violation = run_failure
        .or_else(|| invariants::check(&report.trace.prefix(end), &options).err())
        .or(driven.violation);
    CaseReport {
        violation,
        trace: report.trace,
    }
}

/// Runs a case twice and compares the traces; the first divergence is a violation.
pub fn check_determinism<T: Target>(target: &Arc<T>, case: &Case<T::Setup, T::Op>) -> CaseReport {
    let first = run_case(target, case);
    let (t, c) = (target.clone(), case.clone());
    #[allow(clippy::disallowed_methods)] // a fresh thread, outside the simulation
    let again = std::thread::spawn(move || run_case(&t, &c))
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    match first.trace.first_divergence(&again.trace) {
        Some(d) => CaseReport {
            violation: Some(Violation::new(
                Invariant::Determinism,
                "run",
                format!("a rerun on a fresh thread differs: {d}"),
            )),
            trace: first.trace,
        },
        None => first,
    }
}

/// What the driver process saw.
#[derive(Default)]
struct Driven {
    /// The root of the tree, once started.
    root: Option<Pid>,
    /// The application invariant found broken, if any.
    violation: Option<Violation>,
    /// The run went through every step and let the tree settle (a violation found by an
    /// operation ends it before): the trace's length at that moment, when the end state is
    /// judged (the application's own check runs after it).
    settled: Option<usize>,
}

/// The driver process: starts the target, runs the steps, lets the tree settle, checks the
/// application.
async fn drive<T: Target>(target: &T, case: &Case<T::Setup, T::Op>, p: &Process) -> Driven {
    p.trap_exit(true);
    p.node().label(p.pid(), "harness", false);
    let (root, mut state) = match target.start(&case.setup, p).await {
        Ok(started) => started,
        Err(e) => {
            let v = Violation::new(Invariant::App("start".into()), "start", e);
            return Driven {
                violation: Some(v),
                ..Driven::default()
            };
        }
    };
    if p.node().path_of(root).is_none() {
        p.node().label(root, "root", true);
    }
    for step in &case.steps {
        let result = match step {
            Step::Op(op) => target.apply(&mut state, op, p).await,
            Step::Fault(fault) => {
                inject(fault, root, p).await;
                Ok(())
            }
            Step::Wait(ms) => {
                p.sleep(Duration::from_millis(u64::from(*ms))).await;
                Ok(())
            }
        };
        // The root's exit signal (it is linked to the driver) is not the workload's business.
        while p
            .try_receive(|m| matches!(m, Msg::Exit { .. }))
            .await
            .is_some()
        {}
        if let Err(v) = result {
            return Driven {
                root: Some(root),
                violation: Some(v),
                settled: None,
            };
        }
    }
    p.sleep(target.settle(&case.setup)).await;
    let settled = p.node().with_trace(Trace::len);
    let verdict = target.check(&mut state, p).await.err();
    // The run ends here: the tree must not see its parent's exit (the node halts next).
    p.unlink(root);
    Driven {
        root: Some(root),
        violation: verdict,
        settled: Some(settled),
    }
}

/// Injects one fault into the tree under `root`.
async fn inject(fault: &Fault, root: Pid, p: &Process) {
    let node = p.node();
    let pick_from = |victim: u16, candidates: Vec<Pid>| pick_victim(node, victim, candidates);
    let pick = |victim: u16| pick_from(victim, node.descendants(root));
    // A supervisor does not crash by itself (OTP's supervisor has no bug to crash of), nor
    // does a library process (a registry partition); what reaches them from outside are
    // kills and exit signals, which the other faults send.
    let pick_worker = |victim: u16| {
        let library = node.with_trace(library_processes);
        let workers = node.descendants(root);
        pick_from(
            victim,
            workers
                .into_iter()
                .filter(|p| !library.contains(p))
                .collect(),
        )
    };
    match *fault {
        Fault::Crash { victim, reason } => {
            if let Some(pid) = pick_worker(victim) {
                let reason = reason.exit_reason();
                node.inject_exit(pid, reason.clone(), FaultKind::Crash(reason.to_term()));
            }
        }
        Fault::Kill { victim } => {
            if let Some(pid) = pick(victim) {
                node.record(EventKind::Fault {
                    pid,
                    fault: FaultKind::Kill,
                });
                p.exit(pid, ExitReason::Kill);
            }
        }
        Fault::Signal { victim, reason } => {
            if let Some(pid) = pick(victim) {
                let reason = reason.exit_reason();
                node.record(EventKind::Fault {
                    pid,
                    fault: FaultKind::StrangerSignal(reason.to_term()),
                });
                let stranger = node.spawn(move |q| async move { q.exit(pid, reason) });
                let _ = node.wait_exit(stranger).await;
            }
        }
        Fault::Storm { victim, over } => {
            let Some(pid) = pick_worker(victim) else {
                return;
            };
            storm(pid, over, p).await;
        }
    }
}

/// The faults injected so far in the run `p` belongs to, in order: the process each hit and
/// what it was (message delays included), for application invariants that depend on them.
pub fn injected_faults(p: &Process) -> Vec<(Pid, FaultKind)> {
    p.node().with_trace(|trace| {
        trace
            .events()
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Fault { pid, fault } => Some((*pid, fault.clone())),
                _ => None,
            })
            .collect()
    })
}

/// Whether a message has been delayed so far in the run `p` belongs to: until then, signals
/// arrive in the order they were sent, whoever sent them.
pub fn delays_injected(p: &Process) -> bool {
    p.node().with_trace(|trace| {
        trace
            .events()
            .iter()
            .any(|e| matches!(&e.kind, EventKind::Fault { fault, .. } if fault.is_delay()))
    })
}

/// How many faults injected so far in the run `p` belongs to (message delays aside) hit a
/// process at tree path `path` or below it, in any incarnation: what a subtree had to take.
/// A process is known by the path it is given at any time (a restarted supervisor's children
/// are named once it is), or, never named, by its nearest named ancestor's.
pub fn faults_within(p: &Process, path: &str) -> usize {
    let below = format!("{path}/");
    p.node().with_trace(|trace| {
        let mut labels = std::collections::BTreeMap::new();
        let mut parents = std::collections::BTreeMap::new();
        for e in trace.events() {
            match &e.kind {
                EventKind::Spawn { pid, parent, .. } => {
                    parents.insert(*pid, *parent);
                }
                EventKind::Label { pid, path: p, .. } => {
                    labels.insert(*pid, p.clone());
                }
                _ => {}
            }
        }
        let within = |pid: Pid| {
            let mut at = Some(pid);
            while let Some(q) = at.filter(|q| !labels.contains_key(q)) {
                at = parents.get(&q).copied().flatten();
            }
            let label = at.and_then(|q| labels.get(&q));
            label.is_some_and(|l| l == path || l.starts_with(&below))
        };
        trace
            .events()
            .iter()
            .filter(|e| match &e.kind {
                EventKind::Fault { fault, .. } if fault.is_delay() => false,
                EventKind::Fault { pid, .. } => within(*pid),
                _ => false,
            })
            .count()
    })
}

/// Whether the supervisor at tree path `path` (any incarnation) gave up so far in the run
/// `p` belongs to: exceeded its restart intensity and shut down.
pub fn gave_up(p: &Process, path: &str) -> bool {
    p.node().with_trace(|trace| {
        let mut labels = std::collections::BTreeMap::new();
        trace.events().iter().any(|e| match &e.kind {
            EventKind::Label { pid, path: p, .. } => {
                labels.insert(*pid, p.clone());
                false
            }
            EventKind::Report {
                supervisor,
                context,
                reason,
                ..
            } => {
                *context == ReportContext::Shutdown
                    && reason.is_atom("reached_max_restart_intensity")
                    && labels.get(supervisor).is_some_and(|l| l == path)
            }
            _ => false,
        })
    })
}

/// Whether every fault injected so far in the run `p` belongs to (message delays aside,
/// which kill nothing) hit a child of the process labelled `path`, in any of its
/// incarnations: for invariants of the form "losing these processes costs nothing else".
///
/// ```
/// # #[cfg(madsim)] {
/// use otpsim::sim::harness::only_children_hit;
/// use otpsim::trace::FaultKind;
/// let report = otpsim::sim::Sim::new(0).run(|p| async move {
///     p.node().label(p.pid(), "pool", true);
///     let worker = p.spawn(|q| async move { q.recv().await; });
///     assert!(only_children_hit(&p, "pool")); // nothing hit yet
///     p.node().inject_exit(worker, otpsim::ExitReason::Kill, FaultKind::Kill);
///     assert!(only_children_hit(&p, "pool"));
///     p.node().inject_exit(p.spawn(|q| async move { q.recv().await; }), otpsim::ExitReason::Kill, FaultKind::Kill);
///     assert!(only_children_hit(&p, "pool")); // also a child of the labelled process
/// });
/// assert_eq!(report.failure(), None);
/// # }
/// ```
pub fn only_children_hit(p: &Process, path: &str) -> bool {
    p.node().with_trace(|trace| {
        let mut parents = std::collections::BTreeMap::new();
        let mut labelled = std::collections::BTreeSet::new();
        for e in trace.events() {
            match &e.kind {
                EventKind::Spawn { pid, parent, .. } => {
                    parents.insert(*pid, *parent);
                }
                EventKind::Label { pid, path: p, .. } if p == path => {
                    labelled.insert(*pid);
                }
                EventKind::Fault { fault, .. } if fault.is_delay() => {}
                EventKind::Fault { pid, .. } => {
                    let parent = parents.get(pid).copied().flatten();
                    if !parent.is_some_and(|parent| labelled.contains(&parent)) {
                        return false;
                    }
                }
                _ => {}
            }
        }
        true
    })
}

/// The candidate a fault's `victim` number picks: the one whose name scores highest with it
/// (rendezvous hashing). Removing other candidates never changes the pick, so a case keeps
/// hitting the same process while shrinking removes the rest of the tree. A candidate is
/// named by its tree path, or (unnamed, like a dynamic supervisor's children) by its
/// parent's name and its place among its unnamed siblings.
fn pick_victim(node: &crate::process::Node, victim: u16, candidates: Vec<Pid>) -> Option<Pid> {
    let mut unnamed: std::collections::BTreeMap<Option<Pid>, usize> = Default::default();
    let mut best: Option<(u64, String, Pid)> = None;
    for pid in candidates {
        let name = match node.path_of(pid) {
            Some(path) => path,
            None => {
                let parent = node.parent_of(pid);
                let k = unnamed.entry(parent).or_default();
                *k += 1;
                let parent_name = parent.and_then(|q| node.path_of(q));
                format!("{}/#{k}", parent_name.unwrap_or_else(|| "?".into()))
            }
        };
        let mut h = crate::hash::Fnv1a::default();
        h.write_bytes(&victim.to_le_bytes());
        h.write_bytes(name.as_bytes());
        let mut h = h.value();
        // Finish the mix, so that nearby names and numbers score far apart.
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        if best
            .as_ref()
            .is_none_or(|(bh, bn, _)| (h, &name) > (*bh, bn))
        {
            best = Some((h, name, pid));
        }
    }
    best.map(|(_, _, pid)| pid)
}

/// The processes of library code a trace has seen start: supervisors (static and dynamic)
/// and the processes that say they are [library code](EventKind::Library).
fn library_processes(trace: &Trace) -> std::collections::BTreeSet<Pid> {
    trace
        .events()
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Supervision {
                sup,
                what: SupEvent::Init { .. },
            } => Some(*sup),
            EventKind::Library { pid, .. } => Some(*pid),
            _ => None,
        })
        .collect()
}

/// Crashes `victim` (and each of its replacements) as many times as its supervisor's
/// intensity allows (`over`: once more), spread over one period.
async fn storm(victim: Pid, over: bool, p: &Process) {
    let node = p.node();
    let sup = node.parent_of(victim);
    let flags = sup.and_then(|sup| {
        node.with_trace(|trace| {
            trace.events().iter().rev().find_map(|e| match &e.kind {
                EventKind::Supervision {
                    sup: s,
                    what:
                        SupEvent::Init {
                            intensity, period, ..
                        },
                } if *s == sup => Some((*intensity, *period)),
                _ => None,
            })
        })
    });
    let (intensity, period) = flags.unwrap_or((3, 5));
    let crashes = (intensity + u64::from(over)).clamp(1, 50);
    let gap = Duration::from_millis(period * 1000 / (crashes + 1));
    let path = node.path_of(victim);
    let library = node.with_trace(library_processes);
    let mut current = Some(victim);
    for n in 0..crashes {
        if let Some(pid) = current {
            node.inject_exit(
                pid,
                ExitReason::error("storm"),
                FaultKind::StormCrash {
                    n: n + 1,
                    of: crashes,
                },
            );
        }
        p.sleep(gap).await;
        // The victim's replacement: the same tree path, or the newest child of its supervisor.
        current = match (&path, sup) {
            (Some(path), _) => node.find_path(path),
            (None, Some(sup)) => node
                .descendants(sup)
                .into_iter()
                .rev()
                .find(|pid| node.parent_of(*pid) == Some(sup) && !library.contains(pid)),
            (None, None) => None,
        };
    }
}

/// How a harness campaign ended.
#[derive(Clone, Debug)]
pub struct HarnessReport {
    /// Cases run, up to and including the first failing one (shrinking is not counted).
    pub cases: u64,
    /// The minimal failing case, if one was found, with its violation.
    pub failure: Option<Failure>,
    /// The target's corpus files that no longer do what they record (see
    /// [`replay_corpus`]), one line each.
    pub regressions: Vec<String>,
}

/// A minimised failing case.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    /// What it broke.
    pub violation: Violation,
    /// The minimal case, as JSON.
    pub case: serde_json::Value,
    /// Where it was saved, if it was.
    pub saved: Option<PathBuf>,
    /// The generator seed that found it.
    pub seed: u64,
    /// The case at which the failure was first found (from 1; shrinking not counted).
    pub found_at_case: u64,
    /// Wall-clock time from the campaign's first case to that case's end.
    pub found_after: std::time::Duration,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}", self.violation)?;
        writeln!(
            f,
            "found at case {} after {:.2}s; minimal case (generator seed {}):",
            self.found_at_case,
            self.found_after.as_secs_f64(),
            self.seed
        )?;
        writeln!(
            f,
            "{}",
            serde_json::to_string_pretty(&self.case).unwrap_or_default()
        )?;
        if let Some(path) = &self.saved {
            writeln!(
                f,
                "saved as {} (see its timeline: cargo run -- replay {0})",
                path.display()
            )?;
        }
        Ok(())
    }
}

/// The steps of a generated case at most, unless [`Harness::max_steps`] says otherwise.
const MAX_STEPS: usize = 12;

/// Runs generated cases of a target inside `cargo test`: the builder of a campaign.
pub struct Harness<T: Target> {
    target: Arc<T>,
    cases: u32,
    seed: u64,
    max_steps: usize,
    families: Vec<Family>,
    corpus: Option<PathBuf>,
    replay_corpus: bool,
    determinism_every: u32,
}

impl<T: Target> Harness<T> {
    /// A campaign of 256 cases with every fault family, generator seed 0, replaying the
    /// target's files in `corpus/` first and saving failures there (or whatever
    /// `OTPSIM_CASES` / `OTPSIM_SEED` / `OTPSIM_UPDATE` say).
    pub fn new(target: T) -> Harness<T> {
        let mut harness = Harness::of(Arc::new(target));
        harness.cases = env_cases().unwrap_or(256);
        harness.seed = env_seed().unwrap_or(0);
        harness.replay_corpus = true;
        harness
    }

    /// A campaign of one case generated from `seed`, ignoring the environment (what a CLI
    /// campaign runs per seed).
    fn of(target: Arc<T>) -> Harness<T> {
        Harness {
            target,
            cases: 1,
            seed: 0,
            max_steps: MAX_STEPS,
            families: Family::ALL.to_vec(),
            corpus: Some(PathBuf::from("corpus")),
            replay_corpus: false,
            determinism_every: 50,
        }
    }

    /// Runs `n` cases (unless `OTPSIM_CASES` says otherwise).
    pub fn cases(mut self, n: u32) -> Self {
        self.cases = env_cases().unwrap_or(n);
        self
    }

    /// Seeds the case generator (unless `OTPSIM_SEED` says otherwise).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = env_seed().unwrap_or(seed);
        self
    }

    /// At most this many steps per case.
    pub fn max_steps(mut self, n: usize) -> Self {
        self.max_steps = n;
        self
    }

    /// Only these fault families (swarm testing picks a subset of them per case).
    pub fn families(mut self, families: &[Family]) -> Self {
        self.families = families.to_vec();
        self
    }

    /// Where the target's saved cases are replayed from and a minimised failure is saved
    /// (`None`: neither).
    pub fn corpus(mut self, dir: Option<PathBuf>) -> Self {
        self.corpus = dir;
        self
    }

    /// Replays every n-th case on a fresh thread to check determinism (0: never; failing
    /// cases are always checked).
    pub fn determinism_every(mut self, n: u32) -> Self {
        self.determinism_every = n;
        self
    }

    /// Replays the target's corpus files, then runs the campaign; stops at the first
    /// failure, shrunk to a minimal case and saved.
    pub fn run(&self) -> HarnessReport {
        let regressions = match (&self.corpus, self.replay_corpus) {
            (Some(dir), true) => {
                let target: Arc<dyn AnyTarget> = self.target.clone();
                replay_corpus(dir, &[target], false, update_requested())
            }
            _ => Vec::new(),
        };
        let strategy = case_strategy(&self.target, self.max_steps, &self.families);
        let config = Config {
            cases: self.cases,
            failure_persistence: None,
            max_shrink_iters: 4096,
            max_global_rejects: 0,
            ..Config::default()
        };
        let mut runner = generator(config, self.seed);
        #[allow(clippy::disallowed_methods)] // the campaign's wall time, outside the simulations
        let began = std::time::Instant::now();
        // Runs so far (shrinking included), and the first failing run with its wall time.
        let runs = std::cell::Cell::new(0u64);
        let first_failure = std::cell::Cell::new(None);
        let every = u64::from(self.determinism_every);
        let result = runner.run(&strategy, |case| {
            let n = runs.get();
            runs.set(n + 1);
            let report = if every > 0 && n.is_multiple_of(every) {
                check_determinism(&self.target, &case)
            } else {
                run_case(&self.target, &case)
            };
            match report.violation {
                Some(v) => {
                    if first_failure.get().is_none() {
                        first_failure.set(Some((n + 1, began.elapsed())));
                    }
                    Err(TestCaseError::fail(
                        serde_json::to_string(&v).unwrap_or_default(),
                    ))
                }
                None => Ok(()),
            }
        });
        let (found_at_case, found_after) = first_failure.get().unwrap_or_default();
        let cases = match first_failure.get() {
            Some((at, _)) => at,
            None => u64::from(self.cases).min(runs.get()),
        };
        let failure = match result {
            Ok(()) => None,
            Err(TestError::Abort(why)) => Some(Failure {
                violation: Violation::new(Invariant::Run, "harness", why.to_string()),
                case: serde_json::Value::Null,
                saved: None,
                seed: self.seed,
                found_at_case,
                found_after,
            }),
            Err(TestError::Fail(_, mut case)) => {
                // Seed 0 when the failure does not depend on the background scheduling.
                let plain = Case {
                    seed: 0,
                    ..case.clone()
                };
                if run_case(&self.target, &plain).violation.is_some() {
                    case = plain;
                }
                // The minimal case: confirm it (and its determinism) once more.
                let report = check_determinism(&self.target, &case);
                let violation = report.violation.unwrap_or_else(|| {
                    Violation::new(
                        Invariant::Run,
                        "harness",
                        "the minimal case passed when rerun",
                    )
                });
                let json = serde_json::to_value(&case).unwrap_or_default();
                let saved = self.corpus.as_ref().and_then(|dir| {
                    let file = CorpusFile::failure(&self.target.name(), json.clone(), &violation);
                    corpus::save(dir, &file).ok()
                });
                Some(Failure {
                    violation,
                    case: json,
                    saved,
                    seed: self.seed,
                    found_at_case,
                    found_after,
                })
            }
        };
        HarnessReport {
            cases,
            failure,
            regressions,
        }
    }

    /// [`run`](Harness::run), panicking with the minimal failing case, its violation and
    /// the corpus file when one is found: the form for a `#[test]`.
    pub fn check(&self) {
        let report = self.run();
        if !report.regressions.is_empty() {
            panic!(
                "otpsim harness, target {}: saved cases no longer do what they record:\n{}\n\
                 (a fixed bug? `OTPSIM_UPDATE=1 cargo test` keeps them as regressions)",
                self.target.name(),
                report.regressions.join("\n")
            );
        }
        if let Some(failure) = report.failure {
            panic!(
                "otpsim harness, target {}: {failure}\nrerun with OTPSIM_SEED={}",
                self.target.name(),
                failure.seed
            );
        }
    }
}

fn env_cases() -> Option<u32> {
    std::env::var("OTPSIM_CASES").ok()?.parse().ok()
}

fn env_seed() -> Option<u64> {
    let value = std::env::var("OTPSIM_SEED").ok()?;
    if value == "random" {
        #[allow(clippy::disallowed_methods)] // harness code, outside any simulation
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        eprintln!("otpsim harness: OTPSIM_SEED=random picked {seed}");
        return Some(seed);
    }
    value.parse().ok()
}

impl<S, O> Case<S, O> {
    /// The simulator's fault settings for this case's delays.
    pub fn sim_faults(&self) -> SeededConfig {
        match self.delays {
            None => SeededConfig::default(),
            Some(d) => SeededConfig {
                delay_probability: f64::from(d.percent.min(100)) / 100.0,
                max_delay: Duration::from_millis(u64::from(d.max_ms)),
                ..SeededConfig::default()
            },
        }
    }
}

/// A target with its types erased, for the CLI and the corpus: every [`Target`] is one, in
/// an `Arc`.
///
/// ```
/// use std::sync::Arc;
/// use otpsim::sim::harness::AnyTarget;
/// let targets: Vec<Arc<dyn AnyTarget>> = vec![Arc::new(otpsim::sim::tree::Tree)];
/// assert_eq!(targets[0].name(), "tree");
/// ```
pub trait AnyTarget: Send + Sync {
    /// The target's name.
    fn name(&self) -> String;

    /// Generates the case of `seed`, runs it (checking determinism if `determinism`), and on a
    /// failure shrinks it and saves it in `corpus` (if given).
    fn fuzz_seed(
        self: Arc<Self>,
        seed: u64,
        families: &[Family],
        determinism: bool,
        corpus: Option<PathBuf>,
    ) -> Option<Failure>;

    /// Runs a case given as JSON (a corpus file's `case`); `Err` if it does not parse.
    fn replay(self: Arc<Self>, case: &serde_json::Value) -> Result<CaseReport, String>;

    /// The [trace hash](Trace::hash) of the case generated from `seed` with every fault
    /// family, run once (what `otpsim digest` folds).
    fn trace_hash(self: Arc<Self>, seed: u64) -> Result<u64, String>;
}

impl<T: Target> AnyTarget for T {
    fn name(&self) -> String {
        Target::name(self)
    }

    fn fuzz_seed(
        self: Arc<Self>,
        seed: u64,
        families: &[Family],
        determinism: bool,
        corpus: Option<PathBuf>,
    ) -> Option<Failure> {
        let mut harness = Harness::of(self).families(families).corpus(corpus);
        harness.seed = seed;
        harness.determinism_every = u32::from(determinism);
        harness.run().failure
    }

    fn replay(self: Arc<Self>, case: &serde_json::Value) -> Result<CaseReport, String> {
        let case: Case<T::Setup, T::Op> =
            serde_json::from_value(case.clone()).map_err(|e| format!("field `case`: {e}"))?;
        Ok(check_determinism(&self, &case))
    }

    fn trace_hash(self: Arc<Self>, seed: u64) -> Result<u64, String> {
        let strategy = case_strategy(&self, MAX_STEPS, &Family::ALL);
        let mut runner = generator(Config::default(), seed);
        let case = strategy.new_tree(&mut runner).map_err(|e| e.to_string())?;
        Ok(run_case(&self, &case.current()).trace.hash())
    }
}

/// The case generator of seed `seed`.
fn generator(config: Config, seed: u64) -> TestRunner {
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    )
}

/// Replays a corpus file against the target it names and checks its expected outcome;
/// `Err` says what differs.
pub fn replay_file(
    file: &CorpusFile,
    targets: &[Arc<dyn AnyTarget>],
) -> Result<CaseReport, String> {
    let report = replay_unchecked(file, targets)?;
    file.expect
        .check(report.violation.as_ref(), report.trace.hash())?;
    Ok(report)
}

fn replay_unchecked(
    file: &CorpusFile,
    targets: &[Arc<dyn AnyTarget>],
) -> Result<CaseReport, String> {
    let target = targets
        .iter()
        .find(|t| t.name() == file.target)
        .ok_or_else(|| {
            let known: Vec<String> = targets.iter().map(|t| t.name()).collect();
            format!(
                "field `target`: unknown target `{}` (known: {})",
                file.target,
                known.join(", ")
            )
        })?;
    target.clone().replay(&file.case)
}

/// Replays the corpus files of `dir` whose target is one of `targets` (every file, if
/// `all_targets`: then an unknown target is a problem too). Returns the problems, one line
/// each naming the file: a file that does not parse, or that no longer does what it records.
///
/// With `update`, a file that no longer does what it records is rewritten to expect what it
/// does now (a golden file keeps a pinned trace hash) and reported on stderr instead.
pub fn replay_corpus(
    dir: &std::path::Path,
    targets: &[Arc<dyn AnyTarget>],
    all_targets: bool,
    update: bool,
) -> Vec<String> {
    let mut problems = Vec::new();
    for path in corpus::files(dir) {
        let file = match corpus::load(&path) {
            Ok(file) => file,
            Err(e) => {
                problems.push(e.to_string());
                continue;
            }
        };
        if !all_targets && !targets.iter().any(|t| t.name() == file.target) {
            continue;
        }
        let outcome = replay_unchecked(&file, targets).and_then(|report| {
            let hash = report.trace.hash();
            let violation = report.violation.as_ref();
            match file.expect.check(violation, hash) {
                Ok(()) => Ok(()),
                Err(differs) if update => {
                    let expect = file.expect.renewed(violation, hash);
                    let updated = CorpusFile { expect, ..file };
                    corpus::write(&path, &updated).map_err(|e| e.to_string())?;
                    eprintln!("otpsim: updated {} ({differs})", path.display());
                    Ok(())
                }
                Err(differs) => Err(differs),
            }
        });
        if let Err(e) = outcome {
            problems.push(format!("{}: {e}", path.display()));
        }
    }
    problems
}

/// Whether `OTPSIM_UPDATE` asks corpus replays to rewrite expectations.
pub fn update_requested() -> bool {
    std::env::var("OTPSIM_UPDATE").is_ok_and(|v| !v.is_empty() && v != "0")
}
