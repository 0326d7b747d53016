//! The simulation harness: seeded runs, their reports, and the determinism check.
//!
//! A run is a pure function of its case: the root process's body, the seed (which fixes
//! madsim's scheduling and the [`SeededChoices`] stream) and the fault settings. [`Sim::run`]
//! executes one; [`Sim::check_determinism`] executes it again on the same thread and on a
//! fresh thread and names the first event where the traces differ.
//!
//! ```
//! use otpsim::sim::Sim;
//! use otpsim::ExitReason;
//! let report = Sim::new(3).run(|p| async move {
//!     let child = p.spawn_link(|_| async { ExitReason::error("boom") });
//!     p.trap_exit(true);
//!     let _ = p.recv().await;
//!     p.note(format!("child {child} is gone"));
//! });
//! assert_eq!(report.failure(), None);
//! assert!(report.trace.lines().iter().any(|l| l.contains("is gone")));
//! ```

#[cfg(feature = "harness")]
pub mod campaign;
pub mod cluster;
#[cfg(feature = "harness")]
pub mod cluster_graph;
#[cfg(feature = "harness")]
pub mod cluster_harness;
pub mod cluster_invariants;
pub mod conform;
pub mod corpus;
#[cfg(feature = "harness")]
pub mod faults;
pub mod graph;
#[cfg(feature = "harness")]
pub mod harness;
pub mod index;
pub mod invariants;
pub mod page;
#[cfg(feature = "harness")]
pub mod tree;
mod watchdog;
pub mod why;

use crate::process::{ExitReason, Halt, IntoExitReason, Node, NodeConfig, Process};
use crate::rt::{self, Duration, Hold, ScheduledChoices, SeededChoices, SeededConfig};
use crate::term::Pid;
use crate::trace::FaultKind;
use crate::trace::{Divergence, Trace};
use std::future::Future;
use std::sync::PoisonError;

/// Names `pid` by a tree path in the run's trace from now on (`root/sub/a`); `supervisor`:
/// its exit prints as `sup_exit`. Supervisors name their children themselves; this is for the
/// processes a test starts by hand. Does nothing when the node does not record a trace.
///
/// ```
/// use otpsim::sim::{label, Sim};
/// let report = Sim::new(0).run(|p| async move {
///     let worker = p.spawn(|q| async move { q.recv().await; });
///     label(p.node(), worker, "root/worker", false);
///     p.exit(worker, otpsim::ExitReason::Kill);
/// });
/// assert!(report.trace.lines().contains(&"exit root/worker reason=killed".to_string()));
/// ```
pub fn label(node: &Node, pid: Pid, path: impl Into<String>, supervisor: bool) {
    node.label(pid, path, supervisor);
}

/// Makes `pid` exit with `reason` at once, as if it had crashed by itself, and records the
/// injected fault: what the harness's crash faults do, for a test that injects one by hand.
/// Does nothing to a dead process.
pub fn crash(node: &Node, pid: Pid, reason: ExitReason, fault: FaultKind) {
    node.inject_exit(pid, reason, fault);
}

/// The live processes that descend from `root` through a chain of live parents (what it
/// spawned, what those spawned, ...), `root` excluded, in pid order: what a fault can hit.
pub fn descendants(node: &Node, root: Pid) -> Vec<Pid> {
    node.descendants(root)
}

/// What a simulated entry point (the [`harness`], [`Sim::check_determinism`],
/// campaigns, corpus replay) says in a native build, at once and without writing anything:
/// natively the clock is real and the executor's order is not fixed by a seed, so a case
/// neither repeats nor shrinks, and a "failure" would be an artefact of the build.
///
/// ```
/// use otpsim::sim::NotSimulated;
/// let result = NotSimulated::check("Harness::run");
/// assert_eq!(result.is_ok(), otpsim::rt::SIMULATED);
/// let message = NotSimulated { entry: "Harness::run" }.to_string();
/// assert!(message.contains(r#"rustflags = ["--cfg", "madsim"]"#));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "otpsim: {entry} needs the simulator, but this crate was built natively (on real tokio), \
     where runs are neither seeded nor repeatable. Build it under madsim: add to the crate's \
     .cargo/config.toml\n\n[build]\nrustflags = [\"--cfg\", \"madsim\"]\n\
     rustdocflags = [\"--cfg\", \"madsim\"]\n\n(otpsim's README, \"Use it in your crate\")"
)]
pub struct NotSimulated {
    /// The entry point that was called.
    pub entry: &'static str,
}

impl NotSimulated {
    /// `Err` in a native build.
    pub fn check(entry: &'static str) -> Result<(), NotSimulated> {
        if rt::SIMULATED {
            Ok(())
        } else {
            Err(NotSimulated { entry })
        }
    }

    /// Panics with the error in a native build: for the entry points whose callers are
    /// tests (a panic is how a `#[test]` reports).
    pub(crate) fn require(entry: &'static str) {
        if let Err(e) = NotSimulated::check(entry) {
            panic!("{e}");
        }
    }
}

/// Settings of a simulated run.
#[derive(Clone, Debug)]
pub struct Sim {
    /// The seed: madsim's scheduling, and the choice points' stream.
    pub seed: u64,
    /// Which disturbances the choice points inject.
    pub faults: SeededConfig,
    /// Signals held back on purpose, whatever the faults draw (see [`Hold`]).
    pub schedule: Vec<Hold>,
    /// The seed of the choice points' stream, when it is not [`seed`](Sim::seed): other
    /// delays over the same scheduling.
    pub stream: Option<u64>,
    /// Halt as a livelock after this many process steps.
    pub step_budget: u64,
    /// Give up (and report) when the root has not exited after this much simulated time.
    pub time_limit: Duration,
    /// Halt from outside the simulation after this much wall-clock time.
    pub wall_limit: std::time::Duration,
}

/// What a simulated run produced.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// The seed it ran with.
    pub seed: u64,
    /// Everything that happened.
    pub trace: Trace,
    /// The root process's exit reason (`None` if it did not exit).
    pub root_exit: Option<ExitReason>,
    /// Why the node halted early, if it did.
    pub halt: Option<Halt>,
    /// Whether the root was still running at the time limit.
    pub timed_out: bool,
    /// Every signal the run held back, in the order they were sent: its delays as data (a
    /// [`Sim::with_schedule`] of them, without the faults' delays, replays the run).
    pub held: Vec<Hold>,
}

impl RunReport {
    /// What went wrong with the run itself, if anything: a livelock, the watchdog, the time
    /// limit, or a panic of the root process (an assertion of a test written inside the
    /// simulated root fails that way).
    ///
    /// ```
    /// use otpsim::sim::Sim;
    /// let report = Sim::new(0).run(|_p| async move { assert_eq!(1 + 1, 3, "arithmetic") });
    /// let failure = report.failure().expect("the root panicked");
    /// assert!(failure.contains("arithmetic"), "{failure}");
    /// ```
    pub fn failure(&self) -> Option<String> {
        match (&self.halt, self.timed_out, &self.root_exit) {
            (Some(halt), _, _) => Some(halt.to_string()),
            (None, true, _) => Some("the root process did not exit within the time limit".into()),
            (None, false, Some(ExitReason::Panic(message))) => {
                Some(format!("the root process panicked: {message}"))
            }
            (None, false, _) => None,
        }
    }
}

/// How a determinism check failed.
#[derive(Clone, Debug, thiserror::Error)]
#[error("seed {seed}: the {rerun} rerun differs from the first run; {divergence}")]
pub struct Nondeterminism {
    /// The seed.
    pub seed: u64,
    /// `same-thread` or `fresh-thread`.
    pub rerun: &'static str,
    /// Where the traces part.
    pub divergence: Divergence,
}

impl Sim {
    /// A run with seed `seed`, no injected faults, a budget of 10 million steps, 10 minutes of
    /// simulated time and 60 s of wall-clock time.
    pub fn new(seed: u64) -> Sim {
        Sim {
            seed,
            faults: SeededConfig::default(),
            schedule: Vec::new(),
            stream: None,
            step_budget: 10_000_000,
            time_limit: Duration::from_secs(600),
            wall_limit: std::time::Duration::from_secs(60),
        }
    }

    /// The same settings with other faults.
    pub fn with_faults(mut self, faults: SeededConfig) -> Sim {
        self.faults = faults;
        self
    }

    /// The same settings with signals held back on purpose.
    ///
    /// ```
    /// use otpsim::rt::{Duration, Hold, SeededConfig};
    /// use otpsim::sim::Sim;
    /// use otpsim::ExitReason;
    /// // A run whose delays come from the seed...
    /// let faults = SeededConfig {
    ///     delay_probability: 0.5,
    ///     max_delay: Duration::from_millis(20),
    ///     ..SeededConfig::default()
    /// };
    /// let body = |p: otpsim::Process| async move {
    ///     let echo = p.spawn(|q| async move {
    ///         while let Some(m) = q.recv().await.downcast::<otpsim::Pid>().ok() {
    ///             q.send(m, ());
    ///         }
    ///         ExitReason::Normal
    ///     });
    ///     for _ in 0..10 {
    ///         p.send(echo, p.pid());
    ///         let _ = p.recv().await;
    ///     }
    /// };
    /// let seeded = Sim::new(9).with_faults(faults).run(body);
    /// assert!(!seeded.held.is_empty());
    /// // ... replays the same with those delays as a schedule (in the simulation: natively,
    /// // the executor's own order is not fixed by a seed).
    /// let scheduled = Sim::new(9).with_schedule(seeded.held.clone()).run(body);
    /// if otpsim::rt::SIMULATED {
    ///     assert_eq!(scheduled.trace.first_divergence(&seeded.trace), None);
    /// }
    /// ```
    pub fn with_schedule(mut self, holds: Vec<Hold>) -> Sim {
        self.schedule = holds;
        self
    }

    /// The same settings with another step budget.
    pub fn with_step_budget(mut self, budget: u64) -> Sim {
        self.step_budget = budget;
        self
    }

    /// Runs `root` as the root process of a fresh simulated node until it exits (the rest of
    /// the node is then halted), or until the node halts or the time limit passes.
    pub fn run<F, Fut>(&self, root: F) -> RunReport
    where
        F: FnOnce(Process) -> Fut + Send + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: IntoExitReason,
    {
        let guard = watchdog::arm(self.wall_limit);
        let seeded = SeededChoices::new(self.stream.unwrap_or(self.seed), self.faults);
        let choices = ScheduledChoices::new(seeded, &self.schedule);
        let held = choices.log();
        let config = NodeConfig {
            trace: true,
            step_budget: Some(self.step_budget),
            quiet_panics: true,
            choices: Box::new(choices),
            watchdog: Some(guard.flag()),
            ..NodeConfig::default()
        };
        let (seed, time_limit) = (self.seed, self.time_limit);
        let slack = Duration::from_secs(60);
        rt::block_on_limited(seed, Some(time_limit + slack), async move {
            let node = Node::with_config(config);
            let root_pid = node.spawn(root);
            let waited = rt::timeout(time_limit, node.wait_exit(root_pid)).await;
            let trace = node.take_trace();
            let halt = node.halted();
            node.halt();
            // Let every halted task run once so that nothing is left pending (and leaked).
            rt::sleep(Duration::from_millis(1)).await;
            let held = std::mem::take(&mut *held.lock().unwrap_or_else(PoisonError::into_inner));
            RunReport {
                seed,
                trace,
                timed_out: waited.is_none(),
                root_exit: waited.flatten(),
                halt,
                held,
            }
        })
    }

    /// Runs the case three times (first, again on this thread, once on a fresh thread) and
    /// returns the first run's report if all three traces are identical.
    ///
    /// # Panics
    ///
    /// In a native build, with [`NotSimulated`]: natively the clock is real and runs differ.
    pub fn check_determinism<F, Fut>(&self, root: F) -> Result<RunReport, Box<Nondeterminism>>
    where
        F: FnOnce(Process) -> Fut + Clone + Send + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: IntoExitReason,
    {
        NotSimulated::require("Sim::check_determinism");
        let first = self.run(root.clone());
        let again = self.run(root.clone());
        let sim = self.clone();
        #[allow(clippy::disallowed_methods)] // a fresh thread, outside the simulation
        let fresh = std::thread::spawn(move || sim.run(root))
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        for (rerun, other) in [("same-thread", &again), ("fresh-thread", &fresh)] {
            if let Some(divergence) = first.trace.first_divergence(&other.trace) {
                return Err(Box::new(Nondeterminism {
                    seed: self.seed,
                    rerun,
                    divergence,
                }));
            }
        }
        Ok(first)
    }
}
