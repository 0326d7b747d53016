//! What the harness and application invariants ask of a run's trace while it runs (which
//! faults were injected and where, which supervisor gave up, which processes are library
//! code), answered from one index of the trace that is brought up to date as events come:
//! each event is read once per run, however many questions are asked.
//!
//! ```
//! # #[cfg(madsim)] {
//! use otpsim::sim::index::{faults_within, injected_faults};
//! use otpsim::trace::FaultKind;
//! let report = otpsim::sim::Sim::new(0).run(|p| async move {
//!     otpsim::sim::label(p.node(), p.pid(), "root", true);
//!     let worker = p.spawn(|q| async move { q.recv().await; });
//!     otpsim::sim::label(p.node(), worker, "root/w", false);
//!     otpsim::sim::crash(p.node(), worker, otpsim::ExitReason::Kill, FaultKind::Kill);
//!     assert_eq!(injected_faults(&p), vec![(worker, FaultKind::Kill)]);
//!     assert_eq!(faults_within(&p, "root"), 1);
//!     assert_eq!(faults_within(&p, "root/other"), 0);
//! });
//! assert_eq!(report.failure(), None);
//! # }
//! ```

use crate::process::{Node, Process};
use crate::term::Pid;
use crate::trace::vocab::Restart;
use crate::trace::{EventKind, FaultKind, ReportContext, SupEvent, SupervisorKind, Trace};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// An injected fault, with what its victim's parent was called when it hit.
#[derive(Clone, Debug)]
struct FaultRec {
    pid: Pid,
    kind: FaultKind,
    /// The labels the victim's parent had had by then.
    parent_labels: Vec<String>,
}

/// The index of a run's trace (see the module documentation).
#[derive(Default)]
pub struct TraceIndex {
    /// Events read so far.
    read: usize,
    /// Each process's latest label.
    labels: BTreeMap<Pid, String>,
    /// Every label each process has had, in order.
    label_history: BTreeMap<Pid, Vec<String>>,
    parents: BTreeMap<Pid, Option<Pid>>,
    faults: Vec<FaultRec>,
    /// Supervisors (static and dynamic), with their latest flags.
    supervisors: BTreeMap<Pid, (SupervisorKind, u64, u64)>,
    /// Processes of library code that say so (registry partitions).
    library: BTreeSet<Pid>,
    /// Each supervised child's supervisor, id and restart type.
    children: BTreeMap<Pid, (Pid, Arc<str>, Restart)>,
    /// The labels supervisors had when they gave up (exceeded their intensity).
    gave_up: BTreeSet<String>,
}

impl TraceIndex {
    /// Reads the events of `trace` that came since the last call.
    fn catch_up(&mut self, trace: &Trace) {
        for e in &trace.events()[self.read.min(trace.len())..] {
            self.read_event(&e.kind);
        }
        self.read = trace.len();
    }

    fn read_event(&mut self, kind: &EventKind) {
        match kind {
            EventKind::Spawn { pid, parent, .. } => {
                self.parents.insert(*pid, *parent);
            }
            EventKind::Label { pid, path, .. } => {
                self.labels.insert(*pid, path.clone());
                self.label_history
                    .entry(*pid)
                    .or_default()
                    .push(path.clone());
            }
            EventKind::Fault { pid, fault } => {
                let parent = self.parents.get(pid).copied().flatten();
                let parent_labels = parent
                    .and_then(|q| self.label_history.get(&q).cloned())
                    .unwrap_or_default();
                self.faults.push(FaultRec {
                    pid: *pid,
                    kind: fault.clone(),
                    parent_labels,
                });
            }
            EventKind::Library { pid, .. } => {
                self.library.insert(*pid);
            }
            EventKind::Supervision { sup, what } => match what {
                SupEvent::Init {
                    kind,
                    intensity,
                    period,
                } => {
                    self.supervisors.insert(*sup, (*kind, *intensity, *period));
                }
                SupEvent::Started {
                    pid, id, restart, ..
                } => {
                    self.children.insert(*pid, (*sup, id.clone(), *restart));
                }
                _ => {}
            },
            EventKind::Report {
                supervisor,
                context: ReportContext::Shutdown,
                reason,
                ..
            } if reason.is_atom("reached_max_restart_intensity") => {
                if let Some(label) = self.labels.get(supervisor) {
                    self.gave_up.insert(label.clone());
                }
            }
            _ => {}
        }
    }

    /// Whether `pid` is library code: a supervisor, or a process that says it is one.
    pub fn is_library(&self, pid: Pid) -> bool {
        self.supervisors.contains_key(&pid) || self.library.contains(&pid)
    }

    /// The library processes seen so far (see [`is_library`](Self::is_library)).
    pub fn library(&self) -> BTreeSet<Pid> {
        let supervisors = self.supervisors.keys().copied();
        supervisors.chain(self.library.iter().copied()).collect()
    }

    /// Whether `pid` says it is library code that no one stops by hand (a registry
    /// partition); supervisors are not.
    pub fn is_internal(&self, pid: Pid) -> bool {
        self.library.contains(&pid)
    }

    /// The kind and flags (intensity, period) of the supervisor `sup`.
    pub fn supervisor(&self, sup: Pid) -> Option<(SupervisorKind, u64, u64)> {
        self.supervisors.get(&sup).copied()
    }

    /// The supervisor of `child` and the id it knows it by.
    pub fn supervisor_of(&self, child: Pid) -> Option<(Pid, Arc<str>)> {
        let (sup, id, _) = self.children.get(&child)?;
        Some((*sup, id.clone()))
    }

    /// The restart type of the supervised child `child`.
    pub fn restart_of(&self, child: Pid) -> Option<Restart> {
        self.children.get(&child).map(|(_, _, restart)| *restart)
    }

    /// Whether `pid`, or its nearest labelled ancestor, is labelled `path` or below it.
    fn within(&self, pid: Pid, path: &str) -> bool {
        let mut at = Some(pid);
        while let Some(q) = at.filter(|q| !self.labels.contains_key(q)) {
            at = self.parents.get(&q).copied().flatten();
        }
        let label = at.and_then(|q| self.labels.get(&q));
        label.is_some_and(|l| {
            l == path || (l.starts_with(path) && l.as_bytes().get(path.len()) == Some(&b'/'))
        })
    }
}

/// Runs `f` on the index of the run `node` belongs to, brought up to date.
pub fn with_index<R>(node: &Node, f: impl FnOnce(&TraceIndex) -> R) -> R {
    node.with_trace_and(|trace, index: &mut TraceIndex| {
        index.catch_up(trace);
        f(index)
    })
}

/// The faults injected so far in the run `p` belongs to, in order: the process each hit and
/// what it was (message delays included), for application invariants that depend on them.
pub fn injected_faults(p: &Process) -> Vec<(Pid, FaultKind)> {
    with_index(p.node(), |index| {
        index
            .faults
            .iter()
            .map(|f| (f.pid, f.kind.clone()))
            .collect()
    })
}

/// Whether a message has been delayed so far in the run `p` belongs to: until then, signals
/// arrive in the order they were sent, whoever sent them.
pub fn delays_injected(p: &Process) -> bool {
    with_index(p.node(), |index| {
        index.faults.iter().any(|f| f.kind.is_delay())
    })
}

/// How many faults injected so far in the run `p` belongs to (message delays aside) hit a
/// process at tree path `path` or below it, in any incarnation: what a subtree had to take.
/// A process is known by the path it is given at any time (a restarted supervisor's children
/// are named once it is), or, never named, by its nearest named ancestor's.
pub fn faults_within(p: &Process, path: &str) -> usize {
    with_index(p.node(), |index| {
        let hits = index.faults.iter().filter(|f| !f.kind.is_delay());
        hits.filter(|f| index.within(f.pid, path)).count()
    })
}

/// Whether the supervisor at tree path `path` (any incarnation) gave up so far in the run
/// `p` belongs to: exceeded its restart intensity and shut down.
pub fn gave_up(p: &Process, path: &str) -> bool {
    with_index(p.node(), |index| index.gave_up.contains(path))
}

/// Whether every fault injected so far in the run `p` belongs to (message delays aside,
/// which kill nothing) hit a child of the process labelled `path`, in any of its
/// incarnations: for invariants of the form "losing these processes costs nothing else".
///
/// ```
/// # #[cfg(madsim)] {
/// use otpsim::sim::index::only_children_hit;
/// use otpsim::trace::FaultKind;
/// let report = otpsim::sim::Sim::new(0).run(|p| async move {
///     otpsim::sim::label(p.node(), p.pid(), "pool", true);
///     let worker = p.spawn(|q| async move { q.recv().await; });
///     assert!(only_children_hit(&p, "pool")); // nothing hit yet
///     otpsim::sim::crash(p.node(), worker, otpsim::ExitReason::Kill, FaultKind::Kill);
///     assert!(only_children_hit(&p, "pool"));
///     let stranger = p.node().spawn(|q| async move { q.recv().await; });
///     otpsim::sim::crash(p.node(), stranger, otpsim::ExitReason::Kill, FaultKind::Kill);
///     assert!(!only_children_hit(&p, "pool")); // not a child of the pool
/// });
/// assert_eq!(report.failure(), None);
/// # }
/// ```
pub fn only_children_hit(p: &Process, path: &str) -> bool {
    with_index(p.node(), |index| {
        let hits = index.faults.iter().filter(|f| !f.kind.is_delay());
        hits.into_iter()
            .all(|f| f.parent_labels.iter().any(|label| label == path))
    })
}
