//! Cases as data: the steps, the faults, and the proptest strategies that generate them.

use super::Target;
use crate::process::ExitReason;
use crate::term::Term;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One generated case of a target: everything a run depends on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Case<S, O> {
    /// The target's setup.
    pub setup: S,
    /// What happens, in order, from the driver process.
    pub steps: Vec<Step<O>>,
    /// madsim's scheduling and the delay stream.
    pub seed: u64,
    /// Message delays, if that fault family is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delays: Option<Delays>,
}

/// One step of a case.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step<O> {
    /// A workload operation of the target.
    Op(O),
    /// An injected fault.
    Fault(Fault),
    /// Let simulated time pass (milliseconds).
    Wait(u32),
}

/// A fault. `victim` picks a live process of the tree (not the root) by rendezvous hashing
/// over their tree paths: the same number keeps picking the same process when the rest of the
/// tree changes (which is what lets a case shrink). A tree with no such process makes the
/// fault a no-op.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// The process exits with `reason` by itself, at once (a panic, an error, ...).
    Crash {
        /// Which process.
        victim: u16,
        /// How it ends.
        reason: CrashReason,
    },
    /// `exit(Pid, kill)` from outside.
    Kill {
        /// Which process.
        victim: u16,
    },
    /// `exit(Pid, Reason)` from a process that is neither its parent nor linked to it.
    Signal {
        /// Which process.
        victim: u16,
        /// The signal's reason.
        reason: CrashReason,
    },
    /// The process and each replacement crash as often as its supervisor's intensity allows
    /// within one period, and once more if `over`.
    Storm {
        /// Which process.
        victim: u16,
        /// One crash more than the intensity allows.
        over: bool,
    },
}

/// An exit reason a fault uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrashReason {
    /// A panic: `{panic, "injected"}`.
    Panic,
    /// An error: the atom `injected` (any reason but `normal`, `shutdown` and
    /// `{shutdown, _}` is one).
    Error,
    /// `normal`.
    Normal,
    /// `shutdown`.
    Shutdown,
    /// `{shutdown, injected}`.
    ShutdownWith,
}

impl CrashReason {
    /// The exit reason.
    pub fn exit_reason(self) -> ExitReason {
        match self {
            CrashReason::Panic => ExitReason::Panic("injected".into()),
            CrashReason::Error => ExitReason::error("injected"),
            CrashReason::Normal => ExitReason::Normal,
            CrashReason::Shutdown => ExitReason::Shutdown,
            CrashReason::ShutdownWith => ExitReason::ShutdownWith(Term::atom("injected")),
        }
    }
}

/// Message delays: `percent` of all signals are held up to `max_ms` (FIFO per
/// sender-receiver pair is kept; different senders interleave).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delays {
    /// How many signals in a hundred are delayed.
    pub percent: u8,
    /// The longest delay.
    pub max_ms: u16,
}

/// A family of faults, switched on per case (swarm testing).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// [`Fault::Crash`].
    Crash,
    /// [`Fault::Kill`].
    Kill,
    /// [`Fault::Signal`].
    Signal,
    /// [`Fault::Storm`].
    Storm,
    /// [`Delays`].
    Delay,
}

impl Family {
    /// Every family.
    pub const ALL: [Family; 5] = [
        Family::Crash,
        Family::Kill,
        Family::Signal,
        Family::Storm,
        Family::Delay,
    ];

    /// The family's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Family::Crash => "crash",
            Family::Kill => "kill",
            Family::Signal => "signal",
            Family::Storm => "storm",
            Family::Delay => "delay",
        }
    }

    /// The family called `name`.
    pub fn parse(name: &str) -> Option<Family> {
        Family::ALL.into_iter().find(|f| f.name() == name)
    }
}

fn reason() -> impl Strategy<Value = CrashReason> {
    prop_oneof![
        3 => Just(CrashReason::Error),
        2 => Just(CrashReason::Panic),
        1 => Just(CrashReason::Normal),
        1 => Just(CrashReason::Shutdown),
        1 => Just(CrashReason::ShutdownWith),
    ]
}

/// Faults of the given families (none: no fault at all).
pub fn fault_strategy(families: &[Family]) -> Option<BoxedStrategy<Fault>> {
    let victim = || any::<u16>();
    let mut options: Vec<BoxedStrategy<Fault>> = Vec::new();
    for family in families {
        options.push(match family {
            Family::Crash => (victim(), reason())
                .prop_map(|(victim, reason)| Fault::Crash { victim, reason })
                .boxed(),
            Family::Kill => victim().prop_map(|victim| Fault::Kill { victim }).boxed(),
            Family::Signal => (victim(), reason())
                .prop_map(|(victim, reason)| Fault::Signal { victim, reason })
                .boxed(),
            Family::Storm => (victim(), any::<bool>())
                .prop_map(|(victim, over)| Fault::Storm { victim, over })
                .boxed(),
            Family::Delay => continue,
        });
    }
    (!options.is_empty()).then(|| proptest::strategy::Union::new(options).boxed())
}

/// Cases of `target` with up to `max_steps` steps. Each case switches on a random subset of
/// `families` (swarm testing): some cases see only delays, some only kills, some nothing.
///
/// The setup and the steps are independent parts of a tuple, so shrinking simplifies each
/// while keeping the other: it drops children from a generated tree with the same faults,
/// then removes steps, simplifies faults and operations, turns delays off and takes the seed
/// towards 0.
pub fn case_strategy<T: Target>(
    target: &Arc<T>,
    max_steps: usize,
    families: &[Family],
) -> BoxedStrategy<Case<T::Setup, T::Op>> {
    let op = target.ops();
    let on = proptest::sample::subsequence(families.to_vec(), 0..=families.len());
    let body = on.prop_flat_map(move |on| {
        let op = op.clone();
        let step = match fault_strategy(&on) {
            Some(fault) => prop_oneof![
                4 => op.prop_map(Step::Op),
                3 => fault.prop_map(Step::Fault),
                2 => (0u32..3000).prop_map(Step::Wait),
            ]
            .boxed(),
            None => prop_oneof![
                4 => op.prop_map(Step::Op),
                2 => (0u32..3000).prop_map(Step::Wait),
            ]
            .boxed(),
        };
        let delays = if on.contains(&Family::Delay) {
            proptest::option::of(
                (1u8..=50, 1u16..=50).prop_map(|(percent, max_ms)| Delays { percent, max_ms }),
            )
            .boxed()
        } else {
            Just(None).boxed()
        };
        (
            proptest::collection::vec(step, 0..=max_steps),
            any::<u64>(),
            delays,
        )
    });
    (target.setups(), body)
        .prop_map(|(setup, (steps, seed, delays))| Case {
            setup,
            steps,
            seed,
            delays,
        })
        .boxed()
}
