//! The harness: point it at a supervision tree, and it breaks the tree on purpose under a
//! seed, checks the invariants on every run, and shrinks any failure to a minimal case.
//!
//! A [`Target`] is the system under test: how to start it, the workload operations it
//! understands, and the application invariants it promises on top of the harness's own
//! ([its invariants](super::invariants)). A [`Case`] is data: the target's setup, a list of
//! [steps](Step) (workload operations, [faults](Fault) and pauses) and a seed for the
//! simulator's background scheduling and message delays. [`run_case`] runs one case;
//! [`Harness`] generates cases with proptest, shrinks the first failure, saves it in `corpus/`
//! and panics with what to do next, which is how a user's `cargo test` runs it:
//!
//! ```
//! # #[cfg(madsim)] {
//! use otpsim::sim::harness::{Domain, Harness, Target, Workload};
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
//!     fn workload(&self, _: Domain) -> Workload<()> { Workload::new() }
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
//!
//! This file holds the `Target` API, `run_case` and the `Harness` that generates, shrinks and saves
//! cases, with their reports and their doc examples (hence its length); cases, shrinking and
//! workloads are in the files beside it.

mod case;

pub use proptest;

mod erased;
mod shrink;
mod workload;

pub use case::{case_strategy, Case, Mix, Step};
pub(crate) use erased::generator;
pub use erased::AnyTarget;
pub use workload::{Domain, Workload};
// What a target's code uses of the faults and of the trace index, at hand where it is written.
pub use crate::rt::Hold;
pub use crate::sim::faults::{CrashReason, Delays, Family, Fault, StopHow};
pub use crate::sim::index::{
    delays_injected, faults_within, gave_up, injected_faults, only_children_hit,
};

use super::corpus::{self, CorpusFile};
use super::invariants::{self, CheckOptions, Invariant, Violation};
use super::page;
use super::Sim;
use crate::process::{Msg, Process};
use crate::rt::Duration;
use crate::term::Pid;
use crate::trace::{EventKind, Trace};
use proptest::strategy::BoxedStrategy;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::Config;
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

    /// The workload: the target's kinds of operation over a `domain` of keys, names or
    /// clients (each case uses a random subset of the kinds and a small random domain: see
    /// [`Workload`]). Operations do not depend on the setup, so that a failing case shrinks
    /// its setup and its steps independently; an operation that refers to a part of the
    /// system picks it by index modulo what is there, as faults pick victims.
    fn workload(&self, domain: Domain) -> Workload<Self::Op>;

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
    /// The signals the run held back (see [`Case::schedule`]).
    pub held: Vec<Hold>,
    /// What the case injected and checked.
    pub tally: Tally,
}

/// What cases injected and checked: faults by family (as the trace records them: a storm
/// counts each crash), the cluster's faults by kind (node crashes, restarts, partitions,
/// heals), and invariant checks (each event the trace invariants judged, each operation
/// whose answer the target checked, each final check).
///
/// ```
/// use otpsim::sim::harness::{Family, Tally};
/// let mut total = Tally::default();
/// total.add(&Tally { faults: [(Family::Kill, 2)].into(), checks: 10, ..Tally::default() });
/// let more = [(Family::Kill, 1), (Family::Delay, 4)].into();
/// total.add(&Tally { faults: more, checks: 5, ..Tally::default() });
/// assert_eq!(total.faults[&Family::Kill], 3);
/// assert_eq!(total.checks, 15);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    /// Faults injected, by family.
    pub faults: std::collections::BTreeMap<Family, u64>,
    /// Faults of the cluster, by kind (`node_crash`, `node_restart`, `partition`, `heal`).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub cluster_faults: std::collections::BTreeMap<&'static str, u64>,
    /// Invariant checks made.
    pub checks: u64,
    /// Cluster runs by how long they took to settle after the final heal
    /// ([`converged_after`](crate::sim::cluster_invariants::converged_after)), in ms rounded
    /// up to a tenth of a second.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub converged_ms: std::collections::BTreeMap<u64, u64>,
}

impl Tally {
    /// The faults `trace` records, and `checks`.
    pub fn of(trace: &Trace, checks: u64) -> Tally {
        let mut tally = Tally {
            checks,
            ..Tally::default()
        };
        for e in trace.events() {
            match &e.kind {
                EventKind::Fault { fault, .. } => {
                    *tally.faults.entry(Family::of(fault)).or_default() += 1;
                }
                EventKind::Cluster(event) => {
                    if let Some(kind) = event.fault_kind() {
                        *tally.cluster_faults.entry(kind).or_default() += 1;
                    }
                }
                _ => {}
            }
        }
        if let Some(after) = crate::sim::cluster_invariants::converged_after(trace) {
            let ms = (after.as_micros() as u64).div_ceil(100_000) * 100;
            tally.converged_ms.insert(ms, 1);
        }
        tally
    }

    /// The `q`th quantile (0 to 1) of [`converged_ms`](Tally::converged_ms), in ms: none
    /// before any cluster run settled.
    ///
    /// ```
    /// use otpsim::sim::harness::Tally;
    /// let tally = Tally { converged_ms: [(100, 8), (900, 1), (2500, 1)].into(), ..Tally::default() };
    /// assert_eq!(tally.converged_quantile(0.5), Some(100));
    /// assert_eq!(tally.converged_quantile(0.9), Some(900));
    /// assert_eq!(tally.converged_quantile(1.0), Some(2500));
    /// assert_eq!(Tally::default().converged_quantile(0.5), None);
    /// ```
    pub fn converged_quantile(&self, q: f64) -> Option<u64> {
        let total: u64 = self.converged_ms.values().sum();
        let rank = ((total as f64 * q).ceil() as u64).clamp(1, total.max(1));
        let mut seen = 0;
        for (&ms, &n) in &self.converged_ms {
            seen += n;
            if seen >= rank {
                return Some(ms);
            }
        }
        None
    }

    /// Adds `other` to this.
    pub fn add(&mut self, other: &Tally) {
        for (family, n) in &other.faults {
            *self.faults.entry(*family).or_default() += n;
        }
        for (kind, n) in &other.cluster_faults {
            *self.cluster_faults.entry(kind).or_default() += n;
        }
        self.checks += other.checks;
        for (ms, n) in &other.converged_ms {
            *self.converged_ms.entry(*ms).or_default() += n;
        }
    }
}

/// Runs one case and checks every invariant: the run itself (livelock, time limit), the
/// harness's trace invariants, and the target's application invariants.
///
/// # Panics
///
/// In a native build, with [`NotSimulated`](crate::sim::NotSimulated).
pub fn run_case<T: Target>(target: &Arc<T>, case: &Case<T::Setup, T::Op>) -> CaseReport {
    crate::sim::NotSimulated::require("run_case");
    run_case_in(target, case, case.sim())
}

/// [`run_case`] with the simulator's settings `sim` (the case's own, or other delays).
fn run_case_in<T: Target>(target: &Arc<T>, case: &Case<T::Setup, T::Op>, sim: Sim) -> CaseReport {
    let outcome: Arc<Mutex<Driven>> = Arc::default();
    let (t, c, sink) = (target.clone(), case.clone(), outcome.clone());
    let exact_timing = sim.faults.delay_probability == 0.0 && sim.schedule.is_empty();
    let report = sim.run(move |p| async move {
        let result = drive(&*t, &c, &p).await;
        *sink.lock().unwrap_or_else(PoisonError::into_inner) = result;
    });
    let driven = std::mem::take(&mut *outcome.lock().unwrap_or_else(PoisonError::into_inner));
    let run_failure = report
        .failure()
        .map(|f| Violation::new(Invariant::Run, "run", f));
    let options = CheckOptions {
        exact_timing,
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
    let judged = if run_failure.is_none() { end as u64 } else { 0 };
    let violation = run_failure
        .or_else(|| invariants::check(&report.trace.prefix(end), &options).err())
        .or(driven.violation);
    CaseReport {
        violation,
        tally: Tally::of(&report.trace, judged + driven.checks),
        trace: report.trace,
        held: report.held,
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
            held: first.held,
            tally: first.tally,
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
    /// The application's checks made: operations applied (each checks its answer) and the
    /// final check.
    checks: u64,
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
    // Schedules name signals by step (see `Hold`): the start is step 0, the case's steps
    // follow, then the settling.
    let mut checks = 0;
    for (i, step) in case.steps.iter().enumerate() {
        p.node().enter_step(i as u32 + 1);
        let result = match step {
            Step::Op(op) => {
                checks += 1;
                target.apply(&mut state, op, p).await
            }
            Step::Fault(fault) => {
                crate::sim::faults::inject(fault, Some(root), p).await;
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
                checks,
            };
        }
    }
    p.node().enter_step(case.steps.len() as u32 + 1);
    p.sleep(target.settle(&case.setup)).await;
    let settled = p.node().with_trace(Trace::len);
    let verdict = target.check(&mut state, p).await.err();
    // The run ends here: the tree must not see its parent's exit (the node halts next).
    p.unlink(root);
    Driven {
        root: Some(root),
        violation: verdict,
        settled: Some(settled),
        checks: checks + 1,
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
    /// [`replay_corpus`](crate::sim::corpus::replay_corpus)), one line each.
    pub regressions: Vec<String>,
    /// What the cases run injected and checked (shrinking is not counted).
    pub tally: Tally,
}

impl HarnessReport {
    /// The report of a campaign of one case, with no corpus (a target whose seed is one
    /// case: `cluster-graph`, a cluster target).
    pub fn of_one_case(failure: Option<Failure>, tally: Tally) -> HarnessReport {
        HarnessReport {
            cases: 1,
            failure,
            regressions: Vec::new(),
            tally,
        }
    }
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
const MAX_STEPS: usize = 128;

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
    ///
    /// # Panics
    ///
    /// At once in a native build, with [`NotSimulated`](crate::sim::NotSimulated) (nothing
    /// is run and nothing is written to the corpus).
    pub fn run(&self) -> HarnessReport {
        crate::sim::NotSimulated::require("the otpsim harness");
        let regressions = match (&self.corpus, self.replay_corpus) {
            (Some(dir), true) => {
                let target: Arc<dyn AnyTarget> = self.target.clone();
                corpus::replay_corpus(dir, &[target], false, corpus::update_requested())
            }
            _ => Vec::new(),
        };
        let strategy = case_strategy(&self.target, self.max_steps, &self.families);
        let mut generator = generator(Config::default(), self.seed);
        #[allow(clippy::disallowed_methods)] // the campaign's wall time, outside the simulations
        let began = std::time::Instant::now();
        let every = u64::from(self.determinism_every);
        let mut cases = 0;
        let mut failure = None;
        let mut tally = Tally::default();
        while cases < u64::from(self.cases) {
            let tree = match strategy.new_tree(&mut generator) {
                Ok(tree) => tree,
                Err(why) => {
                    failure = Some(Failure {
                        violation: Violation::new(Invariant::Run, "harness", why.to_string()),
                        case: serde_json::Value::Null,
                        saved: None,
                        seed: self.seed,
                        found_at_case: cases + 1,
                        found_after: began.elapsed(),
                    });
                    break;
                }
            };
            let report = if every > 0 && cases.is_multiple_of(every) {
                check_determinism(&self.target, &tree.current())
            } else {
                run_case(&self.target, &tree.current())
            };
            cases += 1;
            tally.add(&report.tally);
            if let Some(v) = report.violation {
                let found_after = began.elapsed();
                let case = shrink::minimise(&self.target, tree, &v.invariant);
                failure = Some(self.confirm(case, cases, found_after));
                break;
            }
        }
        HarnessReport {
            cases,
            failure,
            regressions,
            tally,
        }
    }

    /// The minimal case, confirmed (and its determinism) once more, saved in the corpus.
    fn confirm(
        &self,
        case: Case<T::Setup, T::Op>,
        found_at_case: u64,
        found_after: std::time::Duration,
    ) -> Failure {
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
            let saved = corpus::save(dir, &file).ok()?;
            // The failure as a picture, beside it (not needed to replay: best effort).
            let title = format!("{}: {}", file.target, file.description);
            let _ = page::write(
                &saved.with_extension("html"),
                &title,
                &report.trace,
                Some(&violation),
            );
            Some(saved)
        });
        Failure {
            violation,
            case: json,
            saved,
            seed: self.seed,
            found_at_case,
            found_after,
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

pub(crate) fn env_cases() -> Option<u32> {
    std::env::var("OTPSIM_CASES").ok()?.parse().ok()
}

pub(crate) fn env_seed() -> Option<u64> {
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
