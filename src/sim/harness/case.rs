//! Cases as data: the steps, the faults, and the proptest strategies that generate them.

use super::{Domain, Target};
use crate::rt::{Hold, SeededConfig};
use crate::sim::faults::{fault_strategy, Delays, Family, Fault};
use crate::sim::Sim;
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
    /// Signals held back on purpose, whatever the delays draw: the delays a failing case
    /// needs, made explicit when it is shrunk so that they shrink one by one (see
    /// [`Hold`]; a hold's `step` is 0 for the target's start, `i + 1` for `steps[i]`, and
    /// `steps.len() + 1` for the settling). Empty in generated cases.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schedule: Vec<Hold>,
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

/// Cases of `target` with up to `max_steps` steps, explored by swarm testing: each case
/// switches on a random subset of `families` (some cases see only delays, some only kills,
/// some nothing), of the target's kinds of operation over a small domain (see
/// [`Workload`](super::Workload)), and a [`Mix`] of operations, faults and pauses.
///
/// The setup and the steps are independent parts of a tuple, so shrinking simplifies each
/// while keeping the other: it drops children from a generated tree with the same faults,
/// simplifies faults and operations, turns delays off and takes the seed towards 0 (the
/// harness then shrinks further: see `shrink.rs`).
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
        Mix::strategy(max_steps),
    );
    let workload_of = target.clone();
    let body = on.prop_flat_map(move |(on, size, chosen, mix)| {
        let ops = workload_of.workload(Domain::of(size)).only(&chosen);
        let wait = || (0u32..3000).prop_map(Step::Wait).boxed();
        let mut steps: Vec<(u32, BoxedStrategy<Step<T::Op>>)> = vec![];
        if mix.waits > 0 {
            steps.push((mix.waits, wait()));
        }
        if let Some(ops) = ops {
            steps.push((Mix::OPS, ops.prop_map(Step::Op).boxed()));
        }
        if let Some(fault) = fault_strategy(&on) {
            steps.push((mix.faults, fault.prop_map(Step::Fault).boxed()));
        }
        if steps.is_empty() {
            steps.push((1, wait()));
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
            proptest::collection::vec(step, 0..=mix.len),
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

/// How a case's steps are drawn: how many, and how often a step is a fault or a pause
/// against an operation.
///
/// A flaw that needs operations in a particular order and then one fault is found by a case
/// with many operations and a fault or two, not by one where every other step is a fault or
/// a pause (faults also restart what the order built, and too many make a supervisor give
/// up); a flaw in recovery wants the opposite. So the mix is drawn per case, like the
/// families: pauses weigh 0, 1 or 4 and faults 1, 2, 4 or 8 against operations' 8, and the
/// length is mostly over half the most (the harness removes what a failure does not need).
#[derive(Clone, Copy, Debug)]
pub struct Mix {
    /// The weight of a pause.
    pub waits: u32,
    /// The weight of a fault.
    pub faults: u32,
    /// How many steps.
    pub len: usize,
}

impl Mix {
    /// The weight of an operation.
    pub const OPS: u32 = 8;

    fn strategy(max_steps: usize) -> impl Strategy<Value = Mix> {
        (
            prop_oneof![Just(0u32), Just(1), Just(4)],
            prop_oneof![Just(1u32), Just(2), Just(4), Just(8)],
            prop_oneof![
                0..=max_steps / 6,
                max_steps / 6..=max_steps / 3,
                max_steps / 3..=max_steps * 2 / 3,
                max_steps * 2 / 3..=max_steps,
            ],
        )
            .prop_map(|(waits, faults, len)| Mix { waits, faults, len })
    }
}

impl<S, O> Case<S, O> {
    /// The simulator's settings for this case: its seed, its delays, its held signals.
    pub fn sim(&self) -> Sim {
        Sim::new(self.seed)
            .with_faults(self.sim_faults())
            .with_schedule(self.schedule.clone())
    }

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
        self.delays.map(Delays::config).unwrap_or_default()
    }
}
