//! Shrinking a failing case: proptest's simplification of the value, then what proptest
//! cannot do: the case's delays made explicit and shrunk one by one.
//!
//! proptest shrinks a case as a value: fewer steps, simpler faults, delays off, a smaller seed.
//! But the seed draws every delay of the run at once, so it can only keep them all or lose
//! them all: a failure that needs one late signal keeps its seed and its whole stream. Here
//! the run's delays become data ([`Hold`]s, each naming one signal by its sender, receiver and
//! rank in the pair), then the holds, the steps and the seed shrink in turn until none of them
//! moves, each candidate kept only if it breaks the same invariant:
//!
//! 1. the delays drawn from the seed become the schedule of exactly the signals they held
//!    (the same run, [`Sim::with_schedule`]);
//! 2. the seed goes to 0. The seed is madsim's scheduling, which stays a seed: which of two
//!    ready processes runs first is not a choice this crate can write down. When seed 0 orders
//!    them so that the case passes, delays are searched for that order them as the failing
//!    seed did (processes only meet through signals, and holding the right one orders them):
//!    runs at seed 0 with delays drawn from other streams, the first that fails giving its
//!    delays as the schedule;
//! 3. the holds, then the steps, are reduced by delta debugging ([`ddmin`]); then each step
//!    is tried away again with a short search for delays (removing a step changes how seed
//!    0 orders what follows), and with the victims of the faults after it retargeted
//!    (removing a step can rename a process a fault picks);
//! 4. each hold moves to an earlier signal of its pair, each pause and each hold's length
//!    halves, while the case still fails.

use super::{run_case_in, Case, Delays, Hold, Step, Target};
use crate::sim::invariants::Invariant;
use crate::sim::Sim;
use proptest::strategy::ValueTree;
use std::sync::Arc;

/// How many runs the shrinking may spend after proptest's.
const BUDGET: usize = 1500;

/// The delays searched at seed 0, tried in turn with streams 1, 2, ... up to [`SEARCH`]:
/// many short ones, some long ones, a few very long ones.
const SEARCH_DELAYS: [Delays; 3] = [
    Delays {
        percent: 30,
        max_ms: 5,
    },
    Delays {
        percent: 10,
        max_ms: 50,
    },
    Delays {
        percent: 50,
        max_ms: 20,
    },
];

/// How many runs a search for delays may take: when seed 0 first replaces the case's seed,
/// and when a step's removal leaves a case that seed 0 orders otherwise.
const SEARCH: u64 = 96;
const SEARCH_STEP: u64 = 12;

/// The victim numbers a fault is retargeted to when a removed step renamed its victim.
const VICTIMS: u16 = 16;

/// How many runs proptest's simplification of the generated value may take.
const SIMPLIFY_BUDGET: usize = 1000;

/// The smallest case found from the failing case `tree` generated that still breaks
/// `invariant`: proptest's simplification of the value first (a smaller setup, simpler
/// operations and faults; within [`SIMPLIFY_BUDGET`] runs), then the passes above (within
/// [`BUDGET`]).
pub(super) fn minimise<T: Target>(
    target: &Arc<T>,
    tree: impl ValueTree<Value = Case<T::Setup, T::Op>>,
    invariant: &Invariant,
) -> Case<T::Setup, T::Op> {
    let mut shrinker = Shrinker {
        target,
        invariant,
        runs: 0,
    };
    let mut case = shrinker.simplify(tree);
    shrinker.runs = 0;
    if case.delays.is_some() {
        case = shrinker.explicit(&case, case.sim()).unwrap_or(case);
    }
    loop {
        let before = (case.seed, case.schedule.clone(), steps_json(&case));
        if case.seed != 0 {
            let plain = Case {
                seed: 0,
                ..case.clone()
            };
            if let Some(plain) = shrinker.fails_or_search(plain, SEARCH) {
                case = plain;
            }
        }
        case.schedule = ddmin(std::mem::take(&mut case.schedule), |holds| {
            shrinker.fails(&Case {
                schedule: holds.to_vec(),
                ..case.clone()
            })
        });
        let all: Vec<usize> = (0..case.steps.len()).collect();
        let kept = ddmin(all, |kept| shrinker.fails(&only_steps(&case, kept)));
        case = only_steps(&case, &kept);
        // A step whose removal changes how seed 0 orders the rest: removed if some delays
        // order it as before.
        for i in (0..case.steps.len()).rev() {
            let kept: Vec<usize> = (0..case.steps.len()).filter(|&k| k != i).collect();
            if let Some(shorter) = shrinker.fails_or_search(only_steps(&case, &kept), SEARCH_STEP) {
                case = shorter;
            }
        }
        // A step whose removal renames the victim of a later fault (a process without a tree
        // path is named by its place among its unnamed siblings): removed if another victim
        // number hits what the fault hit.
        for i in (0..case.steps.len()).rev() {
            let kept: Vec<usize> = (0..case.steps.len()).filter(|&k| k != i).collect();
            let shorter = only_steps(&case, &kept);
            if let Some(shorter) = shrinker.retarget(shorter, i) {
                case = shorter;
            }
        }
        shrinker.lower(&mut case, |case, i| match case.schedule.get_mut(i) {
            Some(hold) if hold.nth > 1 => {
                hold.nth -= 1;
                true
            }
            _ => false,
        });
        shrinker.lower(&mut case, |case, i| match case.steps.get_mut(i) {
            Some(Step::Wait(ms)) if *ms > 0 => {
                *ms /= 2;
                true
            }
            _ => false,
        });
        shrinker.lower(&mut case, |case, i| match case.schedule.get_mut(i) {
            Some(hold) if hold.us > 1 => {
                hold.us /= 2;
                true
            }
            _ => false,
        });
        let moved =
            (case.seed, &case.schedule, steps_json(&case)) != (before.0, &before.1, before.2);
        if !moved || shrinker.runs >= BUDGET {
            return case;
        }
    }
}

/// The runs of one shrinking.
struct Shrinker<'a, T: Target> {
    target: &'a Arc<T>,
    invariant: &'a Invariant,
    runs: usize,
}

impl<T: Target> Shrinker<'_, T> {
    /// proptest's shrinking of a generated value (its `ValueTree`: simplify while the case
    /// fails, complicate when it passes), run here rather than by proptest's runner so that
    /// it stops quietly at its budget; the simplest failing value.
    fn simplify(
        &mut self,
        mut tree: impl ValueTree<Value = Case<T::Setup, T::Op>>,
    ) -> Case<T::Setup, T::Op> {
        let mut simplest = tree.current();
        if !tree.simplify() {
            return simplest;
        }
        for _ in 0..SIMPLIFY_BUDGET {
            let candidate = tree.current();
            let moved = if self.fails(&candidate) {
                simplest = candidate;
                tree.simplify()
            } else {
                tree.complicate()
            };
            if !moved {
                break;
            }
        }
        simplest
    }

    /// Runs `candidate` in `sim`; the signals it held if it broke the invariant.
    fn fails_in(&mut self, candidate: &Case<T::Setup, T::Op>, sim: Sim) -> Option<Vec<Hold>> {
        if self.runs >= BUDGET {
            return None;
        }
        self.runs += 1;
        let report = run_case_in(self.target, candidate, sim);
        let same = report
            .violation
            .is_some_and(|v| v.invariant == *self.invariant);
        same.then_some(report.held)
    }

    /// Whether `candidate` breaks the invariant.
    fn fails(&mut self, candidate: &Case<T::Setup, T::Op>) -> bool {
        self.fails_in(candidate, candidate.sim()).is_some()
    }

    /// `case` run in `sim` with the signals it held as its schedule and no delays drawn, if
    /// it breaks the invariant that way (it is the same run).
    fn explicit(
        &mut self,
        case: &Case<T::Setup, T::Op>,
        sim: Sim,
    ) -> Option<Case<T::Setup, T::Op>> {
        let held = self.fails_in(case, sim)?;
        let explicit = Case {
            delays: None,
            schedule: held,
            ..case.clone()
        };
        self.fails(&explicit).then_some(explicit)
    }

    /// `candidate` if it breaks the invariant; else the first of `streams` runs with delays
    /// drawn (over its own holds) that does, with those delays as its schedule.
    fn fails_or_search(
        &mut self,
        candidate: Case<T::Setup, T::Op>,
        streams: u64,
    ) -> Option<Case<T::Setup, T::Op>> {
        if self.fails(&candidate) {
            return Some(candidate);
        }
        (1..=streams).find_map(|stream| {
            let delays = SEARCH_DELAYS[stream as usize % SEARCH_DELAYS.len()];
            let sim = Sim {
                faults: delays.config(),
                stream: Some(stream),
                ..candidate.sim()
            };
            self.explicit(&candidate, sim)
        })
    }

    /// `candidate` with the victim of one of its faults from step `from` on set to a number
    /// under [`VICTIMS`], the first that breaks the invariant.
    fn retarget(
        &mut self,
        candidate: Case<T::Setup, T::Op>,
        from: usize,
    ) -> Option<Case<T::Setup, T::Op>> {
        let faults: Vec<usize> = (from..candidate.steps.len())
            .filter(|&j| matches!(candidate.steps[j], Step::Fault(_)))
            .collect();
        for j in faults {
            for victim in 0..VICTIMS {
                let mut retargeted = candidate.clone();
                if let Step::Fault(fault) = &mut retargeted.steps[j] {
                    *fault.victim_mut() = victim;
                }
                if self.fails(&retargeted) {
                    return Some(retargeted);
                }
            }
        }
        None
    }

    /// Applies `lower` to each index in turn (a step's or a hold's) for as long as it
    /// changes something (it says whether it did) and the case still fails.
    fn lower(
        &mut self,
        case: &mut Case<T::Setup, T::Op>,
        lower: impl Fn(&mut Case<T::Setup, T::Op>, usize) -> bool,
    ) {
        for i in 0..case.steps.len().max(case.schedule.len()) {
            loop {
                let mut lowered = case.clone();
                if !lower(&mut lowered, i) || !self.fails(&lowered) {
                    break;
                }
                *case = lowered;
            }
        }
    }
}

/// A case's steps as data, to compare (operations need not be comparable).
fn steps_json<S, O: serde::Serialize>(case: &Case<S, O>) -> serde_json::Value {
    serde_json::to_value(&case.steps).unwrap_or_default()
}

/// The case with only the steps at `kept` (in order), its holds moved with their steps (those
/// of the removed steps dropped).
fn only_steps<S: Clone, O: Clone>(case: &Case<S, O>, kept: &[usize]) -> Case<S, O> {
    let last = case.steps.len() as u32 + 1;
    let step_of = |step: u32| match step {
        0 => Some(0),
        s if s == last => Some(kept.len() as u32 + 1),
        s => kept
            .iter()
            .position(|&k| k as u32 + 1 == s)
            .map(|i| i as u32 + 1),
    };
    Case {
        steps: kept.iter().map(|&k| case.steps[k].clone()).collect(),
        schedule: case
            .schedule
            .iter()
            .filter_map(|h| step_of(h.step).map(|step| Hold { step, ..*h }))
            .collect(),
        ..case.clone()
    }
}

/// Delta debugging (Zeller's ddmin): a smallest sub-list of `items` for which `fails` holds,
/// given that it holds for `items`: removes ever smaller chunks while what is left still
/// fails, down to single items. Order is kept (tests below).
///
pub(super) fn ddmin<X: Clone>(items: Vec<X>, mut fails: impl FnMut(&[X]) -> bool) -> Vec<X> {
    if items.is_empty() || fails(&[]) {
        return Vec::new();
    }
    let mut items = items;
    let mut parts = 2;
    while items.len() >= 2 {
        let chunk = items.len().div_ceil(parts);
        let reduced = (0..items.len()).step_by(chunk).find_map(|start| {
            let mut rest = items.clone();
            rest.drain(start..(start + chunk).min(items.len()));
            fails(&rest).then_some(rest)
        });
        match reduced {
            Some(rest) => {
                items = rest;
                parts = (parts - 1).max(2);
            }
            None if parts >= items.len() => break,
            None => parts = (parts * 2).min(items.len()),
        }
    }
    items
}

#[cfg(test)]
mod tests {
    use super::ddmin;

    /// ddmin keeps exactly the items a failure needs, in order, whatever their number.
    #[test]
    fn ddmin_keeps_what_the_failure_needs() {
        let needs = |wanted: Vec<u32>| move |xs: &[u32]| wanted.iter().all(|w| xs.contains(w));
        assert_eq!(ddmin((0..10).collect(), needs(vec![3, 7])), [3, 7]);
        assert_eq!(ddmin((0..100).collect(), needs(vec![99])), [99]);
        assert_eq!(ddmin((0..5).collect(), needs(vec![])), Vec::<u32>::new());
        assert_eq!(ddmin((0..6).collect(), needs(vec![0, 2, 5])), [0, 2, 5]);
        assert_eq!(ddmin(vec![4], needs(vec![4])), [4]);
    }

    /// A failure that needs two items together, and not either alone, keeps both.
    #[test]
    fn ddmin_keeps_a_pair_that_only_fails_together() {
        let mut calls = 0;
        let kept = ddmin((0..64).collect(), |xs: &[u32]| {
            calls += 1;
            xs.contains(&10) && xs.contains(&50)
        });
        assert_eq!(kept, [10, 50]);
        assert!(calls < 64, "{calls} runs");
    }
}
