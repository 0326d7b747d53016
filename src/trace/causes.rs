//! Why each event happened, read off the trace alone: an exit is caused by the fault, the
//! exit signal or the `DOWN` that reached the process last; a signal by its sender's exit (or
//! by the supervisor's decision that sent it); a supervisor's restart by the exit it took; a
//! delayed delivery also by the delay that held it. Chains of causes lead from an injected
//! fault to what it broke.
//!
//! ```
//! use otpsim::trace::{EventKind, FaultKind, SignalOutcome, Trace};
//! use otpsim::term::{Pid, Term};
//! let (a, b) = (Pid::from_raw(2), Pid::from_raw(3));
//! let mut t = Trace::default();
//! t.push(0, EventKind::Link { from: a, to: b });
//! t.push(10, EventKind::Fault { pid: a, fault: FaultKind::Kill });
//! t.push(10, EventKind::Exit { pid: a, reason: Term::atom("killed") });
//! let signal = EventKind::Signal {
//!     from: a,
//!     to: b,
//!     reason: Term::atom("killed"),
//!     outcome: SignalOutcome::Killed,
//! };
//! t.push(12, signal);
//! t.push(12, EventKind::Exit { pid: b, reason: Term::atom("killed") });
//! // b's exit goes back, through a's exit signal and a's exit, to the fault.
//! assert_eq!(t.chain(&[4]), [1, 2, 3, 4]);
//! assert_eq!(t.effects(&[1]), [1, 2, 3, 4]);
//! ```

use super::{EventKind, FaultKind, ReportContext, SignalOutcome, SupEvent, Trace};
use crate::term::{Pid, Term};
use rustc_hash::FxHashMap;

/// Slack for a held signal's delivery after its delay (madsim advances the clock by a few
/// microseconds per scheduling step).
const DELIVERY_SLACK_US: u64 = 1_000;

impl Trace {
    /// For each event, the earlier events that caused it (none for an injected fault, a
    /// first start, or bookkeeping), in index order.
    pub fn causes(&self) -> Vec<Vec<usize>> {
        let mut reader = Reader::default();
        self.events()
            .iter()
            .enumerate()
            .map(|(i, e)| reader.read(i, e.at_us, &e.kind))
            .collect()
    }

    /// The events that led to the `anchors`: their causes, the causes of those, and so on,
    /// with the anchors themselves, in trace order. An injected fault starts a chain.
    pub fn chain(&self, anchors: &[usize]) -> Vec<usize> {
        let causes = self.causes();
        let mut seen = vec![false; self.len()];
        let mut stack: Vec<usize> = anchors
            .iter()
            .copied()
            .filter(|&i| i < self.len())
            .collect();
        while let Some(i) = stack.pop() {
            if !std::mem::replace(&mut seen[i], true) {
                stack.extend(&causes[i]);
            }
        }
        (0..self.len()).filter(|&i| seen[i]).collect()
    }

    /// What the `roots` led to: the roots and every later event whose chain of causes
    /// reaches one of them, in trace order.
    pub fn effects(&self, roots: &[usize]) -> Vec<usize> {
        let causes = self.causes();
        let mut reached = vec![false; self.len()];
        for &r in roots.iter().filter(|&&r| r < self.len()) {
            reached[r] = true;
        }
        for i in 0..self.len() {
            if !reached[i] && causes[i].iter().any(|&c| reached[c]) {
                reached[i] = true;
            }
        }
        (0..self.len()).filter(|&i| reached[i]).collect()
    }
}

/// What the pass over the trace remembers, per process.
#[derive(Default)]
struct Reader {
    /// Each process's exit.
    exit: FxHashMap<Pid, usize>,
    /// The latest fault, signal, `DOWN` or give-up report that reached a process; with a
    /// reason when it causes the process's exit only with that reason (a trapped signal or a
    /// `DOWN` is a message: the process decides, and it ends for that reason if for it).
    hit: FxHashMap<Pid, (usize, Option<Term>)>,
    /// The latest decision of a supervisor (an exit taken, a restart, stopping).
    decision: FxHashMap<Pid, usize>,
    /// A supervisor's `Stopping`.
    stopping: FxHashMap<Pid, usize>,
    /// A supervisor's restart not yet followed by the child's start.
    restarting: FxHashMap<Pid, usize>,
    /// A child's latest exit signal to its supervisor, by (child, supervisor).
    signalled: FxHashMap<(Pid, Pid), usize>,
    /// Each supervisor's exit taken, by (supervisor, child).
    taken: FxHashMap<(Pid, Pid), usize>,
    /// A fault that sends its victim an exit signal (a kill, a stranger's signal, a
    /// supervisor's `terminate_child`), until the signal arrives.
    aimed: FxHashMap<Pid, usize>,
    /// Signals held back, by (sender, receiver): the delay fault and when it ends.
    held: FxHashMap<(Pid, Pid), (usize, u64)>,
}

impl Reader {
    fn read(&mut self, i: usize, at_us: u64, kind: &EventKind) -> Vec<usize> {
        let mut causes = Vec::new();
        match kind {
            EventKind::Fault { pid, fault } => match fault {
                FaultKind::Delay { from, delay } => {
                    let until = at_us + delay.as_micros() as u64 + DELIVERY_SLACK_US;
                    self.held.insert((*from, *pid), (i, until));
                }
                FaultKind::Kill | FaultKind::StrangerSignal(_) | FaultKind::RestartChild => {
                    self.aimed.insert(*pid, i);
                    self.hit.insert(*pid, (i, None));
                }
                _ => {
                    self.hit.insert(*pid, (i, None));
                }
            },
            EventKind::Exit { pid, reason } => {
                let hit = self.hit.get(pid).and_then(|(hit, only)| match only {
                    Some(only) if only != reason => None,
                    _ => Some(*hit),
                });
                causes.extend(self.stopping.get(pid).copied().or(hit));
                self.exit.insert(*pid, i);
                self.aimed.remove(pid);
            }
            EventKind::Signal {
                from,
                to,
                reason,
                outcome,
            } => {
                match self.aimed.remove(to) {
                    Some(fault) => causes.push(fault),
                    None => causes.extend(self.sent_by(*from)),
                }
                causes.extend(self.delivery(*from, *to, at_us));
                match outcome {
                    SignalOutcome::Killed => {
                        self.hit.insert(*to, (i, None));
                    }
                    SignalOutcome::Trapped => {
                        self.hit.insert(*to, (i, Some(reason.clone())));
                    }
                    SignalOutcome::Ignored => {}
                }
                self.signalled.insert((*from, *to), i);
            }
            EventKind::Down {
                watcher,
                target,
                reason,
            } => {
                causes.extend(self.exit.get(target));
                causes.extend(self.delivery(*target, *watcher, at_us));
                self.hit.insert(*watcher, (i, Some(reason.clone())));
            }
            EventKind::Spawn {
                parent: Some(parent),
                ..
            } => causes.extend(self.restarting.get(parent)),
            EventKind::Unregister { pid, .. } | EventKind::RegistryEntry { pid, .. } => {
                causes.extend(self.exit.get(pid));
            }
            EventKind::Report {
                supervisor,
                context,
                ..
            } => {
                causes.extend(self.decision.get(supervisor));
                if *context == ReportContext::Shutdown {
                    self.hit.insert(*supervisor, (i, None));
                }
            }
            EventKind::Supervision { sup, what } => {
                causes.extend(self.supervision(i, *sup, what));
            }
            _ => {}
        }
        causes.sort_unstable();
        causes.dedup();
        causes
    }

    /// What made a process send an exit signal: its exit (a link), or the supervisor's
    /// decision (a child terminated), whichever came last.
    fn sent_by(&self, from: Pid) -> Option<usize> {
        let exit = self.exit.get(&from).copied();
        let decision = self.decision.get(&from).copied();
        exit.max(decision)
    }

    /// The delay that held a delivery from `from` to `to`, if one ended about now.
    fn delivery(&mut self, from: Pid, to: Pid, at_us: u64) -> Option<usize> {
        match self.held.get(&(from, to)) {
            Some(&(fault, until)) if at_us <= until => {
                self.held.remove(&(from, to));
                Some(fault)
            }
            _ => None,
        }
    }

    fn supervision(&mut self, i: usize, sup: Pid, what: &SupEvent) -> Option<usize> {
        let cause = match what {
            SupEvent::Exited { pid, .. } => {
                let signal = self.signalled.get(&(*pid, sup)).copied();
                let cause = signal.max(self.exit.get(pid).copied());
                self.taken.insert((sup, *pid), i);
                cause
            }
            SupEvent::Restart { pid, .. } => {
                let taken = pid.and_then(|pid| self.taken.get(&(sup, pid)).copied());
                let cause = taken.or_else(|| self.decision.get(&sup).copied());
                self.restarting.insert(sup, i);
                cause
            }
            SupEvent::Started { .. } | SupEvent::Ignored { .. } => self.restarting.remove(&sup),
            SupEvent::Stopping => {
                self.stopping.insert(sup, i);
                self.hit.get(&sup).map(|(hit, _)| *hit)
            }
            SupEvent::Init { .. } | SupEvent::RetryDropped { .. } => None,
        };
        if !matches!(what, SupEvent::Init { .. }) {
            self.decision.insert(sup, i);
        }
        cause
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::SpawnTie;

    /// A supervisor takes its child's exit, counts a restart and starts it again: the new
    /// child's start goes back to the fault, through the supervisor's decisions.
    #[test]
    fn a_restart_goes_back_to_the_fault_that_ended_the_child() {
        let (sup, child, again) = (Pid::from_raw(1), Pid::from_raw(2), Pid::from_raw(3));
        let id: std::sync::Arc<str> = "a".into();
        let mut t = Trace::default();
        let fault = FaultKind::Crash(Term::atom("boom"));
        t.push(0, EventKind::Fault { pid: child, fault });
        t.push(
            0,
            EventKind::Exit {
                pid: child,
                reason: Term::atom("boom"),
            },
        );
        let signal = EventKind::Signal {
            from: child,
            to: sup,
            reason: Term::atom("boom"),
            outcome: SignalOutcome::Trapped,
        };
        t.push(1, signal);
        let exited = SupEvent::Exited {
            pid: child,
            reason: Term::atom("boom"),
        };
        t.push(2, EventKind::Supervision { sup, what: exited });
        let restart = SupEvent::Restart {
            pid: Some(child),
            id: id.clone(),
        };
        t.push(2, EventKind::Supervision { sup, what: restart });
        let spawn = EventKind::Spawn {
            pid: again,
            parent: Some(sup),
            tie: SpawnTie::Link,
        };
        t.push(3, spawn);
        t.push(
            4,
            EventKind::Note {
                pid: sup,
                text: "unrelated".into(),
            },
        );
        assert_eq!(t.chain(&[5]), [0, 1, 2, 3, 4, 5]);
        assert_eq!(t.effects(&[0]), [0, 1, 2, 3, 4, 5]);
        assert!(t.causes()[6].is_empty());
    }

    /// A delayed `DOWN` has two causes: the exit it reports and the delay that held it.
    #[test]
    fn a_held_delivery_is_caused_by_its_delay_too() {
        let (a, b) = (Pid::from_raw(1), Pid::from_raw(2));
        let mut t = Trace::default();
        let delay = FaultKind::Delay {
            from: a,
            delay: std::time::Duration::from_millis(5),
        };
        t.push(
            0,
            EventKind::Exit {
                pid: a,
                reason: Term::atom("normal"),
            },
        );
        t.push(
            0,
            EventKind::Fault {
                pid: b,
                fault: delay,
            },
        );
        t.push(
            5_000,
            EventKind::Down {
                watcher: b,
                target: a,
                reason: Term::atom("normal"),
            },
        );
        assert_eq!(t.causes()[2], [0, 1]);
    }
}
