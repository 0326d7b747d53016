//! Cases as data: the steps, the faults, and the proptest strategies that generate them.

use super::{Domain, Target};
use crate::rt::{Duration, SeededConfig};
use crate::sim::faults::{fault_strategy, Delays, Family, Fault};
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
    /// Signals held back on purpose, before any the delays draw: the choices a failing case
    /// needs, made explicit when it is shrunk so that they shrink one by one (see
    /// [`Hold`]). Empty in generated cases.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schedule: Vec<Hold>,
}

/// A signal held back: the `nth` signal (from 1) that process `from` sends process `to` is
/// delivered `us` microseconds late (FIFO per pair is kept: later signals of the pair wait
/// behind it). Processes are named by their pids' numbers, which a replay hands out again in
/// the same order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Hold {
    /// The sender's pid number.
    pub from: u64,
    /// The receiver's pid number.
    pub to: u64,
    /// Which of the pair's signals (from 1).
    pub nth: u32,
    /// How long it is held, in microseconds.
    pub us: u32,
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
    let kinds = target.workload(Domain::of(1)).len();
    let on = (
        proptest::sample::subsequence(families.to_vec(), 0..=families.len()),
        Domain::sizes(),
        proptest::sample::subsequence((0..kinds).collect::<Vec<_>>(), kinds.min(1)..=kinds),
    );
    let workload_of = target.clone();
    let body = on.prop_flat_map(move |(on, size, chosen)| {
        let ops = workload_of.workload(Domain::of(size)).only(&chosen);
        let wait = || (0u32..3000).prop_map(Step::Wait).boxed();
        let mut steps: Vec<(u32, BoxedStrategy<Step<T::Op>>)> = vec![(2, wait())];
        if let Some(ops) = ops {
            steps.push((4, ops.prop_map(Step::Op).boxed()));
        }
        if let Some(fault) = fault_strategy(&on) {
            steps.push((3, fault.prop_map(Step::Fault).boxed()));
        }
        let step = proptest::strategy::Union::new_weighted(steps);
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
            schedule: Vec::new(),
        })
        .boxed()
}

impl<S, O> Case<S, O> {
    /// A case of `setup` and `steps` at seed 0, without delays or held signals.
    ///
    /// ```
    /// use otpsim::sim::harness::{Case, Step};
    /// let case: Case<(), ()> = Case::new((), vec![Step::Op(()), Step::Wait(10)]);
    /// assert_eq!((case.seed, case.delays, case.schedule.len()), (0, None, 0));
    /// ```
    pub fn new(setup: S, steps: Vec<Step<O>>) -> Case<S, O> {
        Case {
            setup,
            steps,
            seed: 0,
            delays: None,
            schedule: Vec::new(),
        }
    }

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
