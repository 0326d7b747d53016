//! Cases as data: the steps, the faults, and the proptest strategies that generate them.

use super::Target;
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
