//! The cluster invariants (docs/cluster-invariants.md), read from a cluster run's trace: what a
//! distributed supervisor or registry must keep, whatever the network and the nodes did.
//!
//! The checker reads the library's [`DistEvent`]s, the processes' exits and the cluster's own
//! events. An instance of a name lives from its `managed ... start` until its process exits or
//! its node crashes (a crash ends every process of that incarnation, without exit events). The
//! at-rest rules apply from the harness's `at rest` event (after its final heal and the
//! target's quiet period); a trace without one is checked only by the rules that hold always.
//! A call is overdue when a later event is past its timeout, so a scenario that ends while
//! a call hangs should end with `at rest` (`ClusterCtl::at_rest`), as the harness does.
//!
//! | invariant | rule |
//! | --- | --- |
//! | I1 [`OneInstance`](Invariant::OneInstance) | at most one live instance per name: always ([`Consistency::Cp`]) or at rest ([`Consistency::Ap`]); in CP, an instance on a paused node is fenced when its name starts elsewhere, and must act on nothing once its node resumes |
//! | I2 [`NoLostChildren`](Invariant::NoLostChildren) | at rest, every desired name has a live instance |
//! | I3 [`RegistryAgreement`](Invariant::RegistryAgreement) | at rest, every live node's registry maps each name to its live instance |
//! | I4 [`NoDanglingEntries`](Invariant::NoDanglingEntries) | a lookup never answers an instance its node has seen die (its `DOWN`, or its node's `nodedown`); at rest, no live node's registry maps a name to a dead instance |
//! | I5 [`RegistrationFidelity`](Invariant::RegistrationFidelity) | at rest, every live instance is registered under its name in some live node's registry (no orphan that nothing can find or stop) |
//! | I6 [`Handoff`](Invariant::Handoff) | a handoff's state is delivered at most once, to an instance that starts after the old one stopped, never after the handoff was aborted; exactly once when no fault came after it began |
//! | I7 [`ConflictResolution`](Invariant::ConflictResolution) | a conflict's loser hands its state to the winner: one winner per name per heal (a winner that loses in turn, or ends, hands the name on), never twice for one loser |
//! | I8 [`RestartIntensity`](Invariant::RestartIntensity) | a desired name is not restarted after crashes more often than its intensity allows, wherever it runs |
//! | I9 [`BoundedProgress`](Invariant::BoundedProgress) | every API call returns within its timeout (its node's pauses not counted), unless its caller's node crashes first |
//! | I10 [`MembershipAgreement`](Invariant::MembershipAgreement) | at rest, every live node that keeps a membership counts exactly the live nodes that do; in CP, a name's starts that carry an ownership epoch never go back to an older one, and one epoch's are on one node |
//! | S1 [`MessageRouting`](Invariant::MessageRouting) | a message sent by name is handled at most once, in its sender's order, never by an instance whose state has moved on; one sent during a move is not lost |
//! | S2 [`Placement`](Invariant::Placement) | at rest, with a placement rule given ([`check_placed`]), every live instance runs on the node the rule names over the live members |
//! | S3 [`NoResurrection`](Invariant::NoResurrection) | a name whose child was terminated does not start again unless started again |
//! | S4 [`GroupMembership`](Invariant::GroupMembership) | at rest, every live node's registry counts a desired name in each group it joined, whatever restarts and moves came since (CP: every live node's process groups list its live instance there, and nothing else) |
//!
//! ```
//! use otpsim::sim::cluster_invariants::{check, Consistency};
//! use otpsim::sim::invariants::Invariant;
//! use otpsim::trace::{ClusterEvent, DistEvent, EventKind, Trace};
//! use otpsim::Pid;
//! let (a, b) = (Pid::new(1, 0, 3), Pid::new(2, 0, 3));
//! let start = |pid| EventKind::Dist(DistEvent::Start { name: "k1".into(), pid, epoch: None });
//! let mut trace = Trace::default();
//! trace.push(10, start(a));
//! trace.push(20, EventKind::Cluster(ClusterEvent::Partition { side: vec![1], one_way: false }));
//! trace.push(30, start(b));
//! trace.push(40, EventKind::Cluster(ClusterEvent::Heal));
//! trace.push(90, EventKind::Cluster(ClusterEvent::AtRest));
//! // Two instances during the partition are allowed in AP mode, not at rest.
//! let violation = check(&trace, Consistency::Ap).unwrap_err();
//! assert_eq!(violation.invariant, Invariant::OneInstance);
//! assert_eq!(violation.subject, "k1");
//! // The evidence: both starts, and the moment the system was at rest.
//! assert_eq!(violation.evidence.len(), 3);
//! ```
//!
//! One checker walks the trace once and keeps every invariant's state side by side (they share the
//! instances, calls and moves it tracks), so the rules are one file (hence its length); their unit
//! traces are in `cluster_invariants/tests.rs`.

use super::invariants::{Invariant, Violation};
use crate::term::Pid;
use crate::trace::{ClusterEvent, DistEvent, EventKind, HandoffPhase, NameChange, Trace};
use std::collections::{BTreeMap, BTreeSet};

/// When two instances of a name may run at once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Consistency {
    /// Never (a CP design: a minority stops before the majority takes over).
    #[default]
    Cp,
    /// During faults and until the system is at rest (Swarm's, Horde's: both sides of a
    /// partition run one).
    Ap,
}

/// madsim advances the clock by a few microseconds per scheduling step, so "within the
/// timeout" means within this much after it.
const SLACK_US: u64 = 1000;

/// Where a system places a name among the live members (its ring, its shard table), for S2:
/// the node, or none.
pub type Placement = fn(&str, &BTreeSet<u16>) -> Option<u16>;

/// Checks `trace`; the first violation found, with the events that show it.
pub fn check(trace: &Trace, consistency: Consistency) -> Result<(), Violation> {
    check_placed(trace, consistency, None)
}

/// [`check`], and S2 with `placement`: at rest, every live instance runs where `placement`
/// puts its name over the live members (the nodes that keep a membership and are up).
pub fn check_placed(
    trace: &Trace,
    consistency: Consistency,
    placement: Option<Placement>,
) -> Result<(), Violation> {
    let mut c = Checker {
        consistency,
        placement,
        ..Checker::default()
    };
    c.run(trace).map_err(|v| v.with_evidence(trace))
}

/// How long after the final heal a cluster run took to settle: from the last `heal` before
/// the `at rest` event to the last change the system made to its names before it (an
/// instance started or ended, a registry changed; zero if none). `None` for a trace without
/// both events. A measure, not an invariant: the harness asserts convergence at rest, this
/// says how much of the quiet period it needed.
///
/// ```
/// use otpsim::sim::cluster_invariants::converged_after;
/// use otpsim::trace::{ClusterEvent, DistEvent, EventKind, Trace};
/// use otpsim::rt::Duration;
/// use otpsim::Pid;
/// let mut trace = Trace::default();
/// trace.push(1_000, EventKind::Cluster(ClusterEvent::Heal));
/// let pid = Pid::new(2, 0, 3);
/// trace.push(2_500, EventKind::Dist(DistEvent::Start { name: "k1".into(), pid, epoch: None }));
/// trace.push(9_000, EventKind::Cluster(ClusterEvent::AtRest));
/// assert_eq!(converged_after(&trace), Some(Duration::from_micros(1_500)));
/// ```
pub fn converged_after(trace: &Trace) -> Option<std::time::Duration> {
    let events = trace.events();
    let rest = events
        .iter()
        .position(|e| matches!(e.kind, EventKind::Cluster(ClusterEvent::AtRest)))?;
    let heal = events[..rest]
        .iter()
        .rposition(|e| matches!(e.kind, EventKind::Cluster(ClusterEvent::Heal)))?;
    let mut managed: BTreeSet<Pid> = BTreeSet::new();
    let mut last = events[heal].at_us;
    for (i, e) in events[..rest].iter().enumerate() {
        let change = match &e.kind {
            EventKind::Dist(DistEvent::Start { pid, .. }) => {
                managed.insert(*pid);
                true
            }
            EventKind::Dist(DistEvent::View { .. }) => true,
            EventKind::Exit { pid, .. } => managed.remove(pid),
            _ => false,
        };
        if change && i > heal {
            last = e.at_us;
        }
    }
    Some(std::time::Duration::from_micros(
        last.saturating_sub(events[heal].at_us),
    ))
}

#[derive(Default)]
struct Checker {
    consistency: Consistency,
    placement: Option<Placement>,
    /// Live instances per name, with the index of their start event.
    live: BTreeMap<String, BTreeMap<Pid, usize>>,
    /// Every live instance's name.
    names: BTreeMap<Pid, String>,
    /// Desired names, with the event that made them so; terminated ones; and instances
    /// started after their name was terminated (its termination's event, the start's),
    /// resurrected unless, while they still run, a start returns that desires the name again
    /// (it may be the start of that very instance: a start returns after its instance
    /// started).
    desired: BTreeMap<String, usize>,
    /// When each desired name became desired, in µs.
    desired_at_us: BTreeMap<String, u64>,
    terminated: BTreeMap<String, usize>,
    resurrected: BTreeMap<String, (Pid, usize, usize)>,
    /// Each node's registry: name -> (instance, the event that set it); the nodes that ever
    /// recorded a view are those whose registry the at-rest rules judge.
    views: BTreeMap<u16, BTreeMap<String, (Pid, usize)>>,
    /// Nodes that are down, and those paused.
    down: BTreeSet<u16>,
    paused: BTreeSet<u16>,
    /// Each node's time spent paused (microseconds), and since when it is paused now: a
    /// call's deadline moves by the time its caller's node stood still.
    pause_us: BTreeMap<u16, (u64, Option<u64>)>,
    /// CP: instances whose name started elsewhere while their node was paused (they can do
    /// nothing then), with that start's event: no longer counted by I1, and they must act on
    /// nothing once their node resumes, until they stop.
    fenced: BTreeMap<Pid, usize>,
    /// When each node last resumed, in µs.
    resumed_at: BTreeMap<u16, u64>,
    /// The groups each name joined (with the event), and each node's registry's groups of
    /// each name.
    joined: BTreeMap<String, BTreeMap<String, usize>>,
    groups: BTreeMap<u16, BTreeMap<String, (BTreeSet<String>, usize)>>,
    /// CP: the process groups scope each grouped name's instances join, and the groups the
    /// cluster wants it in (with the event); and each node's scopes that started since its
    /// last restart: group -> (its members, the event that listed them).
    grouped: BTreeMap<String, (String, BTreeMap<String, usize>)>,
    group_views: BTreeMap<(u16, String), GroupView>,
    /// Each node's view of the members, with the event that set it (since its last restart).
    members: BTreeMap<u16, (BTreeSet<u16>, usize)>,
    /// CP: the latest ownership epoch each name started under, with the node that started it
    /// there and the event.
    epochs: BTreeMap<String, (u64, u16, usize)>,
    /// Dead instances, with their end's event.
    dead: BTreeMap<Pid, usize>,
    /// Every instance's start event.
    started: BTreeMap<Pid, usize>,
    /// Per node, what its processes have heard die: an instance (its `DOWN`), or a whole
    /// node (a `nodedown`), each time with the event and whether its registry was holding
    /// calls then; and the nodes whose registry holds calls (`Serving`).
    seen_dead: BTreeMap<u16, BTreeMap<Pid, Vec<(usize, bool)>>>,
    seen_down: BTreeMap<u16, BTreeMap<u16, Vec<(usize, bool)>>>,
    holding: BTreeSet<u16>,
    /// The end of each name's last instance.
    last_end: BTreeMap<String, usize>,
    /// Each name's restart intensity (restarts, seconds), its restarts after crashes (when,
    /// and the event), and whether its last instance crashed.
    intensity: BTreeMap<String, (u32, u32)>,
    restarts: BTreeMap<String, Vec<(u64, usize)>>,
    crashed: BTreeSet<String>,
    /// Handoffs: their begin, and their deliveries.
    handoffs: BTreeMap<u64, Handoff>,
    /// The winner of each name's conflict since the last heal (or resume); the losers whose
    /// state was delivered; and the losers that gave their state, with the event (AP mode's
    /// `lost`).
    conflicts: BTreeMap<String, Pid>,
    resolved_losers: BTreeSet<Pid>,
    lost: BTreeMap<Pid, (String, usize)>,
    /// Calls without a return, by id: (the caller's node, when, timeout, event, the node's
    /// time paused then). A crash of the node ends them: their caller is gone.
    calls: BTreeMap<u64, (u16, u64, u64, usize, u64)>,
    /// Every call's event.
    asked: BTreeMap<u64, usize>,
    /// Whether any fault happened; the last event that may have lost a message in flight
    /// (any fault, a process fault, a resume, a connection lost to the tick); and the last
    /// that wiped a node's memory (a crash, a restart, a power failure).
    faulted: bool,
    last_fault: Option<usize>,
    last_amnesia: Option<usize>,
    /// S1: messages sent by name (sender, number) with their name and event; those not yet
    /// handled, per instance they went to; those handled, with the event; per sender and
    /// name, the send event of the latest message handled, and the handling event.
    sent: BTreeMap<(Pid, u64), (String, usize)>,
    unhandled: BTreeMap<Pid, Vec<(Pid, u64, usize)>>,
    handled: BTreeMap<(Pid, u64), usize>,
    /// Messages handled before their send was recorded: the instance, and the event.
    handled_early: BTreeMap<(Pid, u64), (Pid, usize)>,
    handled_upto: BTreeMap<(Pid, String), (usize, usize)>,
    /// S1: names moving (handoff id -> the name, its begin event, the nodes it moves
    /// between); instances a handoff began from (its begin event); instances whose state was
    /// sent to a successor (the event).
    moving: BTreeMap<u64, (String, usize, [u16; 2])>,
    moved: BTreeMap<Pid, usize>,
    handed: BTreeMap<Pid, usize>,
    at_rest: Option<usize>,
    /// The cluster registry (CP): each name's holders that still run, with the event that
    /// registered them; each holder's names; and holders whose name was registered again
    /// while their node was paused (fenced: they must stop once it resumes), with the name
    /// and that event.
    holders: BTreeMap<String, BTreeMap<Pid, usize>>,
    held_by: BTreeMap<Pid, BTreeSet<String>>,
    fenced_holders: BTreeMap<Pid, (String, usize)>,
    /// The registry's changes recorded so far, by log position and name (a `Down` drops
    /// several names at one position).
    name_log: BTreeSet<(u64, String)>,
    /// Holders whose name went with their node while they still ran, with the name, the
    /// event and when: a violation unless, within that very microsecond, they ended (the
    /// merged trace may put their node's crash after the drop).
    dropped_running: BTreeMap<Pid, (String, [usize; 2], u64)>,
    /// Every process that exited, and each node's current creation: a registration committed
    /// after its process ended (it was asked before) gives the name to no process that runs.
    exited: BTreeSet<Pid>,
    creation: BTreeMap<u16, u16>,
}

/// A node's process groups scope as the trace shows it: group -> (its members, the event
/// that listed them).
type GroupView = BTreeMap<String, (Vec<Pid>, usize)>;

#[derive(Default)]
struct Handoff {
    begin: Option<(Pid, usize)>,
    delivered: Vec<usize>,
    ended: bool,
    /// The event that aborted it, if any.
    aborted: Option<usize>,
    /// The name moved.
    name: String,
}

type Found = Box<Violation>;

fn found(invariant: Invariant, subject: &str, message: String, events: Vec<usize>) -> Found {
    Box::new(Violation {
        events: events.into(),
        ..Violation::new(invariant, subject, message)
    })
}

impl Checker {
    fn run(&mut self, trace: &Trace) -> Result<(), Found> {
        let mut last_at = 0;
        for (i, e) in trace.events().iter().enumerate() {
            self.overdue(e.at_us)?;
            self.still_running(i, e.at_us)?;
            last_at = e.at_us;
            match &e.kind {
                EventKind::Exit { pid, reason } => {
                    self.exited.insert(*pid);
                    let reason = crate::ExitReason::from_term(reason.clone());
                    let crashed = !reason.is_normal() && !reason.is_shutdown();
                    // A fenced instance is no longer its name's: its crash restarts nothing.
                    if let Some(name) = self.names.get(pid) {
                        if crashed && !self.fenced.contains_key(pid) {
                            self.crashed.insert(name.clone());
                        }
                    }
                    if !crashed {
                        self.left_by_move(*pid, i)?;
                    }
                    self.end(*pid, i);
                }
                EventKind::Down {
                    watcher, target, ..
                } => {
                    let holding = self.holding.contains(&watcher.node());
                    let seen = self.seen_dead.entry(watcher.node()).or_default();
                    seen.entry(*target).or_default().push((i, holding));
                }
                EventKind::NodeDown { watcher, node } => {
                    let holding = self.holding.contains(&watcher.node());
                    let seen = self.seen_down.entry(watcher.node()).or_default();
                    seen.entry(*node).or_default().push((i, holding));
                }
                EventKind::Fault { .. } => self.last_fault = Some(i),
                EventKind::Cluster(c) => self.cluster(i, e.at_us, c)?,
                EventKind::Dist(d) => self.dist(i, e.at_us, d)?,
                _ => {}
            }
        }
        let earliest = self.resurrected.iter().min_by_key(|(_, (_, _, i))| *i);
        if let Some((name, &(pid, t, i))) = earliest {
            return Err(found(
                Invariant::NoResurrection,
                name,
                format!("{pid} started after the name was terminated, and no start asked for it"),
                vec![t, i],
            ));
        }
        if self.at_rest.is_some() {
            self.at_rest_rules()?;
        }
        self.overdue(last_at)?;
        let last = trace.events().len().saturating_sub(1);
        self.still_running(last, u64::MAX)?;
        Ok(())
    }

    /// An instance, or a process registered under a name, ends.
    fn end(&mut self, pid: Pid, i: usize) {
        if let Some(names) = self.held_by.remove(&pid) {
            for name in names {
                if let Some(holders) = self.holders.get_mut(&name) {
                    holders.remove(&pid);
                }
            }
            self.dead.insert(pid, i);
        }
        self.fenced_holders.remove(&pid);
        if let Some(name) = self.names.remove(&pid) {
            if let Some(set) = self.live.get_mut(&name) {
                set.remove(&pid);
            }
            self.dead.insert(pid, i);
            self.last_end.insert(name, i);
        }
        self.fenced.remove(&pid);
    }

    fn cluster(&mut self, i: usize, at: u64, c: &ClusterEvent) -> Result<(), Found> {
        if c.fault_kind().is_some() {
            self.faulted = true;
        }
        if !matches!(c, ClusterEvent::AtRest) {
            self.last_fault = Some(i);
        }
        if matches!(
            c,
            ClusterEvent::Crash { .. }
                | ClusterEvent::Restart { .. }
                | ClusterEvent::PowerFail { .. }
        ) {
            self.last_amnesia = Some(i);
        }
        match c {
            ClusterEvent::Pause { node } => {
                self.paused.insert(*node);
                let pause = self.pause_us.entry(*node).or_default();
                pause.1 = pause.1.or(Some(at));
            }
            ClusterEvent::Resume { node } => {
                // A resume ends a split as a heal does: the paused node's instances meet the
                // others again.
                self.conflicts.clear();
                self.paused.remove(node);
                let pause = self.pause_us.entry(*node).or_default();
                if let Some(since) = pause.1.take() {
                    pause.0 += at.saturating_sub(since);
                }
                self.resumed_at.insert(*node, at);
            }
            ClusterEvent::Crash { node, .. } => {
                self.down.insert(*node);
                self.paused.remove(node);
                self.pause_us.remove(node);
                self.calls.retain(|_, (caller, ..)| caller != node);
                self.moving.retain(|_, (_, _, nodes)| !nodes.contains(node));
                let gone: Vec<Pid> = self
                    .names
                    .keys()
                    .chain(self.held_by.keys())
                    .copied()
                    .filter(|p| p.node() == *node)
                    .collect();
                for pid in gone {
                    self.end(pid, i);
                }
            }
            ClusterEvent::Restart { node, creation } => {
                self.down.remove(node);
                self.creation.insert(*node, *creation);
                // The new incarnation starts with an empty registry of its own, and has no
                // view of the members until it records one.
                if let Some(view) = self.views.get_mut(node) {
                    view.clear();
                }
                self.groups.remove(node);
                self.group_views.retain(|(k, _), _| k != node);
                self.members.remove(node);
                // Nor has it heard anything die (I4 judges what a node's lookups knew).
                self.seen_dead.remove(node);
                self.seen_down.remove(node);
                self.holding.remove(node);
            }
            ClusterEvent::Heal => self.conflicts.clear(),
            ClusterEvent::AtRest => {
                self.at_rest = Some(i);
                // A fenced instance must stop once its node resumes (the final heal resumes
                // every node).
                if let Some((&pid, &successor)) = self.fenced.iter().next() {
                    let name = self.names.get(&pid).cloned().unwrap_or_default();
                    return Err(found(
                        Invariant::OneInstance,
                        &name,
                        format!(
                            "{pid} still runs at rest, fenced since another instance started \
                             while its node was paused"
                        ),
                        vec![successor, i],
                    ));
                }
                if let Some((&pid, (name, registered))) = self.fenced_holders.iter().next() {
                    return Err(found(
                        Invariant::OneInstance,
                        name,
                        format!(
                            "{pid} still runs at rest, fenced since the name was registered to \
                             another process while its node was paused"
                        ),
                        vec![*registered, i],
                    ));
                }
                if self.consistency == Consistency::Ap {
                    let names: Vec<String> = self.live.keys().cloned().collect();
                    for name in names {
                        self.one_instance(&name, i)?;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Whether `pid` runs, as far as the trace has said: it has not exited, and its node has
    /// not crashed since it was spawned.
    fn runs(&self, pid: Pid) -> bool {
        let node = pid.node();
        !self.exited.contains(&pid)
            && !self.down.contains(&node)
            && self
                .creation
                .get(&node)
                .is_none_or(|&c| pid.creation() >= c)
    }

    /// Whether `node` is paused, or resumed in this very microsecond (the merged trace orders
    /// one microsecond's events by source, not by cause: nothing of it has run yet).
    fn frozen(&self, node: u16, at: u64) -> bool {
        self.paused.contains(&node) || self.resumed_at.get(&node) == Some(&at)
    }

    /// The pids among `of`'s keys whose node is [frozen](Self::frozen) at `at`.
    fn frozen_of<V>(&self, of: Option<&BTreeMap<Pid, V>>, at: u64) -> Vec<Pid> {
        let pids = of.into_iter().flat_map(|m| m.keys().copied());
        pids.filter(|p| self.frozen(p.node(), at)).collect()
    }

    /// I1 in the cluster registry, at event `i`: `name` is given to `pid`, taken back, or
    /// dropped with `pid`'s node. No two processes that run hold a name at once, and a holder
    /// whose name went with its node has ended (its lease lapsed first); one whose node is
    /// paused then is fenced, and must not run at rest.
    fn registered(
        &mut self,
        i: usize,
        at: u64,
        name: &str,
        pid: Pid,
        change: NameChange,
    ) -> Result<(), Found> {
        let held = self
            .holders
            .get_mut(name)
            .and_then(|holders| holders.remove(&pid));
        if let Some(names) = self.held_by.get_mut(&pid) {
            names.remove(name);
        }
        let (runs, frozen) = (self.runs(pid), self.frozen(pid.node(), at));
        match change {
            NameChange::Off => return Ok(()),
            NameChange::Dropped if !runs => return Ok(()),
            NameChange::Dropped if frozen => {
                self.fenced_holders.insert(pid, (name.to_string(), i));
                return Ok(());
            }
            NameChange::Dropped => {
                let first = held.unwrap_or(i);
                self.dropped_running
                    .insert(pid, (name.to_string(), [first, i], at));
                return Ok(());
            }
            NameChange::On if !runs => return Ok(()),
            NameChange::On => {}
        }
        let frozen = self.frozen_of(self.holders.get(name), at);
        let holders = self.holders.entry(name.to_string()).or_default();
        for old in frozen {
            holders.remove(&old);
            self.fenced_holders.insert(old, (name.to_string(), i));
        }
        holders.insert(pid, held.unwrap_or(i));
        self.held_by
            .entry(pid)
            .or_default()
            .insert(name.to_string());
        if holders.len() > 1 {
            let events: Vec<usize> = holders.values().copied().collect();
            let pids: Vec<String> = holders.keys().map(|p| p.to_string()).collect();
            return Err(found(
                Invariant::OneInstance,
                name,
                format!(
                    "{} processes that run are registered under the name: {}",
                    holders.len(),
                    pids.join(", ")
                ),
                events,
            ));
        }
        Ok(())
    }

    /// I1 for `name`, after event `i`.
    fn one_instance(&self, name: &str, i: usize) -> Result<(), Found> {
        let live = &self.live[name];
        if live.len() > 1 {
            let mut events: Vec<usize> = live.values().copied().collect();
            if !events.contains(&i) {
                events.push(i);
            }
            let pids: Vec<String> = live.keys().map(|p| p.to_string()).collect();
            let when = if self.at_rest.is_some() && self.consistency == Consistency::Ap {
                " at rest"
            } else {
                ""
            };
            return Err(found(
                Invariant::OneInstance,
                name,
                format!("{} live instances{when}: {}", live.len(), pids.join(", ")),
                events,
            ));
        }
        Ok(())
    }

    fn dist(&mut self, i: usize, at: u64, d: &DistEvent) -> Result<(), Found> {
        match d {
            DistEvent::Start { name, pid, epoch } => {
                if let (Some(epoch), Consistency::Cp) = (*epoch, self.consistency) {
                    self.owned_at(name, pid.node(), epoch, i)?;
                }
                if let Some(&t) = self.terminated.get(name) {
                    if !self.desired.contains_key(name) {
                        self.resurrected.entry(name.clone()).or_insert((*pid, t, i));
                    }
                }
                if self.crashed.remove(name) && self.desired.contains_key(name) {
                    self.restarted(name, at, i)?;
                }
                self.moving.retain(|_, (n, ..)| n != name);
                let frozen = self.frozen_of(self.live.get(name), at);
                let live = self.live.entry(name.clone()).or_default();
                if self.consistency == Consistency::Cp {
                    for old in frozen {
                        live.remove(&old);
                        self.fenced.insert(old, i);
                    }
                }
                live.insert(*pid, i);
                self.names.insert(*pid, name.clone());
                self.started.insert(*pid, i);
                if self.consistency == Consistency::Cp || self.at_rest.is_some() {
                    self.one_instance(name, i)?;
                }
            }
            DistEvent::Registered {
                name,
                pid,
                change,
                index,
            } => {
                // A log position two leaders applied in turn is recorded twice.
                if self.name_log.insert((*index, name.clone())) {
                    self.registered(i, at, name, *pid, *change)?;
                }
            }
            DistEvent::Desired { name, on: true } => {
                self.desired.insert(name.clone(), i);
                self.desired_at_us.insert(name.clone(), at);
                self.terminated.remove(name);
                // A new child: an instance of the old desire that crashes after the give-up
                // (fenced on a paused node) is no crash of this one (docs/cp.md, "Restarts
                // in place, counted by the group").
                self.crashed.remove(name);
                let names = &self.names;
                if self
                    .resurrected
                    .get(name)
                    .is_some_and(|(pid, ..)| names.contains_key(pid))
                {
                    self.resurrected.remove(name);
                }
            }
            DistEvent::Desired { name, on: false } => {
                self.desired.remove(name);
                self.desired_at_us.remove(name);
                // A name wanted again later is a new child: its restarts count afresh (a
                // supervisor that gave up on it, or a terminate_child, ended the old one).
                self.restarts.remove(name);
                self.crashed.remove(name);
                self.moving.retain(|_, (n, ..)| n != name);
                self.joined.remove(name);
                self.grouped.remove(name);
                self.terminated.insert(name.clone(), i);
            }
            DistEvent::Intensity {
                name,
                max_restarts,
                max_seconds,
            } => {
                self.intensity
                    .insert(name.clone(), (*max_restarts, *max_seconds));
            }
            DistEvent::Members { node, members } => {
                let members = members.iter().copied().collect();
                self.members.insert(*node, (members, i));
            }
            // A join of an instance already dead (a stale entry) binds no later one.
            DistEvent::Joined { name, group, pid } if !self.dead.contains_key(pid) => {
                self.joined
                    .entry(name.clone())
                    .or_default()
                    .insert(group.clone(), i);
            }
            DistEvent::Joined { .. } => {}
            DistEvent::Left { name, group, pid } if !self.dead.contains_key(pid) => {
                if let Some(groups) = self.joined.get_mut(name) {
                    groups.remove(group);
                }
            }
            DistEvent::Left { .. } => {}
            DistEvent::Sent {
                from,
                seq,
                name,
                to,
                made_us,
            } => self.sent(i, (*from, *seq), name, *to, *made_us)?,
            DistEvent::Handled { pid, from, seq } => {
                if let Some(&successor) = self.fenced.get(pid) {
                    let name = self.names.get(pid).cloned().unwrap_or_default();
                    return Err(found(
                        Invariant::OneInstance,
                        &name,
                        format!(
                            "{pid} handled a message after another instance started while its \
                             node was paused: it acted on ownership it no longer held"
                        ),
                        vec![successor, i],
                    ));
                }
                self.handled(i, *pid, *from, *seq)?
            }
            DistEvent::Grouped {
                scope,
                name,
                group,
                member,
            } => {
                let (in_scope, groups) = self.grouped.entry(name.clone()).or_default();
                in_scope.clone_from(scope);
                if *member {
                    groups.insert(group.clone(), i);
                } else {
                    groups.remove(group);
                }
            }
            DistEvent::GroupsStarted { node, scope } => {
                self.group_views
                    .insert((*node, scope.clone()), BTreeMap::new());
            }
            DistEvent::GroupMembers {
                node,
                scope,
                group,
                members,
            } => {
                let view = self.group_views.entry((*node, scope.clone())).or_default();
                view.insert(group.clone(), (members.clone(), i));
            }
            DistEvent::Groups { node, name, groups } => {
                let groups = groups.iter().cloned().collect();
                let view = self.groups.entry(*node).or_default();
                view.insert(name.clone(), (groups, i));
            }
            DistEvent::Serving { node, on: true } => {
                self.holding.remove(node);
            }
            DistEvent::Serving { node, on: false } => {
                self.holding.insert(*node);
            }
            DistEvent::Lookup {
                node,
                name,
                pid: Some(pid),
                call,
            } => {
                let asked = self.asked.get(call).copied().unwrap_or(i);
                self.lookup(i, asked, *node, name, *pid)?;
            }
            DistEvent::Lookup { pid: None, .. } => {}
            DistEvent::View { node, name, pid } => {
                let view = self.views.entry(*node).or_default();
                match pid {
                    Some(pid) => view.insert(name.clone(), (*pid, i)),
                    None => view.remove(name),
                };
                if pid.is_none() {
                    if let Some(groups) = self.groups.get_mut(node) {
                        groups.remove(name);
                    }
                }
            }
            DistEvent::Handoff { id, name, phase } => self.handoff(i, *id, name, phase)?,
            DistEvent::Conflict {
                name,
                winner,
                loser,
                state_delivered,
            } => {
                if *state_delivered && !self.resolved_losers.insert(*loser) {
                    return Err(found(
                        Invariant::ConflictResolution,
                        name,
                        format!("{loser}'s state delivered twice ({winner} the second time)"),
                        vec![i],
                    ));
                }
                // One winner per name and heal: every node picks the same. A winner that
                // loses in turn hands on what it won (the CP supervisor in AP mode gives its
                // instance the states it won before it loses): the new winner is the name's.
                // So does one that ended: the states of later losers go to the name's next
                // instance (owed on its node, or passed on to the name's next owner).
                let first = *self.conflicts.entry(name.clone()).or_insert(*winner);
                if first != *winner && (first == *loser || self.dead.contains_key(&first)) {
                    self.conflicts.insert(name.clone(), *winner);
                } else if first != *winner {
                    return Err(found(
                        Invariant::ConflictResolution,
                        name,
                        format!(
                            "a second winner for the name since the last heal ({loser} lost to \
                             {winner}, after a loser to {first})"
                        ),
                        vec![i],
                    ));
                }
                if !state_delivered {
                    return Err(found(
                        Invariant::ConflictResolution,
                        name,
                        format!("{loser} lost to {winner} and its state was dropped, not resolved"),
                        vec![i],
                    ));
                }
            }
            DistEvent::Lost { name, loser } => {
                self.lost.insert(*loser, (name.clone(), i));
            }
            DistEvent::Call {
                id,
                node,
                timeout_ms,
                ..
            } => {
                self.asked.insert(*id, i);
                // A call of a node that crashed in the same microsecond (the merged trace puts
                // the crash first) ended with it.
                if !self.down.contains(node) {
                    let paused = self.paused_us(*node, at);
                    self.calls.insert(*id, (*node, at, *timeout_ms, i, paused));
                }
            }
            DistEvent::Return { id, .. } => {
                if let Some((node, made, timeout_ms, call, paused)) = self.calls.remove(id) {
                    let stood_still = self.paused_us(node, at) - paused;
                    if at > made + timeout_ms * 1000 + SLACK_US + stood_still {
                        return Err(late(call, i, at - made, timeout_ms));
                    }
                }
            }
        }
        Ok(())
    }

    /// I10's fencing clause, CP: `node` starts `name` under ownership `epoch` (event `i`). A
    /// name's starts never go back to an older epoch (a node that does acts on stale
    /// ownership: its lease lapsed, or it did not confirm its view), and one epoch's starts
    /// are all on one node (no two nodes own a shard at one epoch).
    fn owned_at(&mut self, name: &str, node: u16, epoch: u64, i: usize) -> Result<(), Found> {
        match self.epochs.get(name) {
            Some(&(last, _, at)) if epoch < last => Err(found(
                Invariant::MembershipAgreement,
                name,
                format!("n{node} started {name} at epoch {epoch}, after its start at epoch {last}: stale ownership"),
                vec![at, i],
            )),
            Some(&(last, by, at)) if epoch == last && by != node => Err(found(
                Invariant::MembershipAgreement,
                name,
                format!("n{by} and n{node} both started {name} at epoch {epoch}: one epoch has one owner"),
                vec![at, i],
            )),
            _ => {
                self.epochs.insert(name.to_string(), (epoch, node, i));
                Ok(())
            }
        }
    }

    /// I4 always: node `node`'s lookup of `name`, asked at event `asked`, answered `pid`
    /// (event `i`); dangling if `pid` had died and the node had heard it die (a `DOWN` of
    /// it, or a `nodedown` of its node, after the death) where its registry had taken the
    /// news before it answered: before the lookup was asked, or while the registry was
    /// holding calls (the lookup waited behind the news).
    fn lookup(&self, i: usize, asked: usize, node: u16, name: &str, pid: Pid) -> Result<(), Found> {
        let Some(&died) = self.dead.get(&pid) else {
            return Ok(());
        };
        let heard = |seen: Option<&Vec<(usize, bool)>>| {
            let mut seen = seen.into_iter().flatten();
            seen.find(|&&(at, holding)| at > died && (at < asked || holding))
                .map(|&(at, _)| at)
        };
        let down = heard(self.seen_dead.get(&node).and_then(|s| s.get(&pid)));
        let node_down = heard(self.seen_down.get(&node).and_then(|s| s.get(&pid.node())));
        match down.or(node_down) {
            Some(seen) => Err(found(
                Invariant::NoDanglingEntries,
                name,
                format!("n{node}'s lookup answered {pid}, which it had seen die"),
                vec![died, seen, i],
            )),
            None => Ok(()),
        }
    }

    /// I8: `name` restarts after a crash, at `at` (event `i`).
    fn restarted(&mut self, name: &str, at: u64, i: usize) -> Result<(), Found> {
        let Some(&(max_restarts, max_seconds)) = self.intensity.get(name) else {
            return Ok(());
        };
        let restarts = self.restarts.entry(name.to_string()).or_default();
        restarts.push((at, i));
        let window = u64::from(max_seconds) * 1_000_000;
        restarts.retain(|(t, _)| t + window > at);
        if restarts.len() > max_restarts as usize {
            return Err(found(
                Invariant::RestartIntensity,
                name,
                format!(
                    "restarted {} times after crashes within {max_seconds} s, past its \
                     intensity of {max_restarts}, and nothing gave up",
                    restarts.len()
                ),
                restarts.iter().map(|(_, e)| *e).collect(),
            ));
        }
        Ok(())
    }

    fn handoff(
        &mut self,
        i: usize,
        id: u64,
        name: &str,
        phase: &HandoffPhase,
    ) -> Result<(), Found> {
        let h = self.handoffs.entry(id).or_default();
        match phase {
            HandoffPhase::Begin { from, to } => {
                h.begin = Some((*from, i));
                h.name = name.to_string();
                let nodes = [from.node(), *to];
                self.moving.insert(id, (name.to_string(), i, nodes));
                self.moved.insert(*from, i);
            }
            HandoffPhase::StateSent => {
                if let Some((from, _)) = h.begin {
                    self.handed.insert(from, i);
                }
            }
            HandoffPhase::Aborted { .. } => {
                h.ended = true;
                h.aborted = Some(i);
                self.moving.remove(&id);
                // The old instance may run on (an `ignore`, a timeout): no move of it.
                if let Some((from, _)) = h.begin {
                    self.moved.remove(&from);
                }
            }
            HandoffPhase::Delivered { pid } => {
                self.moving.remove(&id);
                h.delivered.push(i);
                h.ended = true;
                if let Some(aborted) = h.aborted {
                    return Err(found(
                        Invariant::Handoff,
                        name,
                        format!("handoff #{id}'s state delivered to {pid} after it was aborted"),
                        vec![aborted, i],
                    ));
                }
                if h.delivered.len() > 1 {
                    return Err(found(
                        Invariant::Handoff,
                        name,
                        format!(
                            "handoff #{id}'s state delivered {} times",
                            h.delivered.len()
                        ),
                        h.delivered.clone(),
                    ));
                }
                if let Some((from, begin)) = h.begin {
                    if self.names.contains_key(&from) {
                        return Err(found(
                            Invariant::Handoff,
                            name,
                            format!("{pid} got handoff #{id}'s state while {from} still runs"),
                            vec![begin, i],
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// S1: `from` sent its message `seq` to `name` (event `i`, the send made at `made_us`),
    /// to instance `to` or, with none registered, nowhere: lost, if the name was moving
    /// then, and desired when the send was made (a "none" answered before it was desired
    /// may come back late, over a slow link, while the name moves).
    fn sent(
        &mut self,
        i: usize,
        (from, seq): (Pid, u64),
        name: &str,
        to: Option<Pid>,
        made_us: Option<u64>,
    ) -> Result<(), Found> {
        self.sent.insert((from, seq), (name.to_string(), i));
        // Handled before its sender recorded the send (a send answered once delivered):
        // judged now.
        if let Some((pid, handled)) = self.handled_early.remove(&(from, seq)) {
            return self.handled(handled, pid, from, seq);
        }
        match to {
            Some(pid) => {
                self.unhandled.entry(pid).or_default().push((from, seq, i));
                Ok(())
            }
            // A move that a fault may have cut short (its nodes lost, a message dropped) is
            // judged by I2 and I6, not here.
            None if made_us
                .is_some_and(|m| self.desired_at_us.get(name).is_none_or(|&since| since > m)) =>
            {
                Ok(())
            }
            None => match self.moving.values().find(|(n, ..)| n == name) {
                Some(&(_, begin, _)) if self.last_fault.is_none_or(|f| f < begin) => Err(found(
                    Invariant::MessageRouting,
                    name,
                    format!(
                        "{from}'s message #{seq} found no instance while the name moved, \
                         and nothing kept it: lost in the move"
                    ),
                    vec![begin, i],
                )),
                _ => Ok(()),
            },
        }
    }

    /// S1: instance `pid` handled `from`'s message `seq` (event `i`): not twice, not after
    /// a later message of the same sender to the same name, not after its state went to a
    /// successor (its effect would be lost).
    fn handled(&mut self, i: usize, pid: Pid, from: Pid, seq: u64) -> Result<(), Found> {
        if let Some(list) = self.unhandled.get_mut(&pid) {
            list.retain(|&(f, s, _)| (f, s) != (from, seq));
        }
        let Some((name, sent)) = self.sent.get(&(from, seq)).cloned() else {
            // Judged when its send is recorded, if ever (a send whose fate its sender does
            // not know is not); twice is twice either way.
            if let Some((_, first)) = self.handled_early.insert((from, seq), (pid, i)) {
                let message = format!("{from}'s message #{seq} handled twice");
                return Err(found(
                    Invariant::MessageRouting,
                    "",
                    message,
                    vec![first, i],
                ));
            }
            return Ok(());
        };
        let violation = |message: String, events: Vec<usize>| {
            Err(found(Invariant::MessageRouting, &name, message, events))
        };
        if let Some(&first) = self.handled.get(&(from, seq)) {
            let message = format!("{from}'s message #{seq} handled twice");
            return violation(message, vec![sent, first, i]);
        }
        self.handled.insert((from, seq), i);
        if let Some(&handed) = self.handed.get(&pid).filter(|&&h| h < i) {
            let message = format!(
                "{pid} handled {from}'s message #{seq} after its state went to its \
                 successor: its effect is lost"
            );
            return violation(message, vec![handed, i]);
        }
        let upto = self.handled_upto.entry((from, name.clone())).or_default();
        if upto.0 > sent {
            let message =
                format!("{from}'s message #{seq} handled after a later one of the same sender");
            return violation(message, vec![upto.0, sent, upto.1, i]);
        }
        *upto = (sent, i);
        Ok(())
    }

    /// S1: `pid`, from which a handoff began, stopped (event `i`, not a crash): a message
    /// sent to it that it did not handle, with no fault since it was sent, is lost in the
    /// move.
    fn left_by_move(&mut self, pid: Pid, i: usize) -> Result<(), Found> {
        let unhandled = self.unhandled.remove(&pid).unwrap_or_default();
        let Some(&begin) = self.moved.get(&pid) else {
            return Ok(());
        };
        let after_faults = |sent: usize| self.last_fault.is_none_or(|f| f < sent);
        match unhandled
            .into_iter()
            .find(|&(_, _, sent)| after_faults(sent))
        {
            Some((from, seq, sent)) => {
                let name = self.sent[&(from, seq)].0.clone();
                Err(found(
                    Invariant::MessageRouting,
                    &name,
                    format!(
                        "{from}'s message #{seq} went to {pid}, which moved away without \
                         handling it: lost in the move"
                    ),
                    vec![begin, sent, i],
                ))
            }
            None => Ok(()),
        }
    }

    /// How long node `node` has stood still (paused) by `now`, in microseconds.
    fn paused_us(&self, node: u16, now: u64) -> u64 {
        let (total, since) = self.pause_us.get(&node).copied().unwrap_or_default();
        total + since.map_or(0, |since| now.saturating_sub(since))
    }

    /// I9: a call older than its timeout at `now` without a return, not counting the time
    /// its caller's node stood still.
    /// I1 in the registry: a holder whose name went with its node, and that still runs after
    /// that microsecond (event `i`, at `now`), outlived its lease.
    fn still_running(&mut self, i: usize, now: u64) -> Result<(), Found> {
        let due: Vec<Pid> = self
            .dropped_running
            .iter()
            .filter(|(_, (.., at))| *at < now)
            .map(|(&pid, _)| pid)
            .collect();
        for pid in due {
            if let Some((name, [registered, dropped], _)) = self.dropped_running.remove(&pid) {
                if self.runs(pid) {
                    return Err(found(
                        Invariant::OneInstance,
                        &name,
                        format!(
                            "{pid} still runs after its name went with its node (committed down)"
                        ),
                        vec![registered, dropped, i],
                    ));
                }
            }
        }
        Ok(())
    }

    fn overdue(&self, now: u64) -> Result<(), Found> {
        for &(node, made, timeout_ms, call, paused) in self.calls.values() {
            let stood_still = self.paused_us(node, now) - paused;
            if now > made + timeout_ms * 1000 + SLACK_US + stood_still {
                return Err(found(
                    Invariant::BoundedProgress,
                    "api",
                    format!(
                        "a call made {} ms ago has not returned within its {timeout_ms} ms",
                        (now - made) / 1000
                    ),
                    vec![call],
                ));
            }
        }
        Ok(())
    }

    /// I2, I3, I4 and I6's exactly-once, at the end of a run that came to rest.
    fn at_rest_rules(&self) -> Result<(), Found> {
        for (name, &why) in &self.desired {
            if self.live.get(name).is_none_or(|l| l.is_empty()) {
                let mut events = vec![why];
                events.extend(self.last_end.get(name).copied());
                return Err(found(
                    Invariant::NoLostChildren,
                    name,
                    "desired, and no instance runs at rest".into(),
                    events,
                ));
            }
        }
        self.no_orphans()?;
        for (node, view) in &self.views {
            if self.down.contains(node) {
                continue;
            }
            for (name, (pid, set)) in view {
                if let Some(&died) = self.dead.get(pid) {
                    return Err(found(
                        Invariant::NoDanglingEntries,
                        name,
                        format!("n{node}'s registry maps it to {pid}, which is dead"),
                        vec![*set, died],
                    ));
                }
                let live = self.live.get(name);
                if !live.is_some_and(|l| l.contains_key(pid)) {
                    let mut events = vec![*set];
                    events.extend(live.and_then(|l| l.values().next().copied()));
                    return Err(found(
                        Invariant::RegistryAgreement,
                        name,
                        format!("n{node}'s registry maps it to {pid}, not to its live instance"),
                        events,
                    ));
                }
            }
            for (name, live) in &self.live {
                if let (Some((pid, start)), None) = (live.iter().next(), view.get(name)) {
                    return Err(found(
                        Invariant::RegistryAgreement,
                        name,
                        format!("n{node}'s registry does not have it, while {pid} runs"),
                        vec![*start],
                    ));
                }
            }
        }
        self.membership()?;
        self.placed()?;
        self.group_membership()?;
        self.group_members()?;
        // I7, exactly once unless a node forgot: a loser that gave its state has had it
        // delivered by the time the cluster is at rest, unless its name is no longer desired
        // or a node lost its memory since (crashed, restarted or lost power: the state may
        // have been held there). Partitions, pauses, slow links and clocks do not excuse it.
        for (loser, (name, lost)) in &self.lost {
            let remembered = self.last_amnesia.is_none_or(|f| f < *lost);
            // Desired since before the loss: a name terminated and started again is a new
            // child, which the old one's state does not reach.
            let desired = self.desired.get(name).is_some_and(|&d| d < *lost);
            if remembered && desired && !self.resolved_losers.contains(loser) {
                return Err(found(
                    Invariant::ConflictResolution,
                    name,
                    format!(
                        "{loser} lost a conflict and gave its state, which never reached the \
                         winner, and no node lost its memory after"
                    ),
                    vec![*lost],
                ));
            }
        }
        // Exactly once when nothing failed: a handoff begun after the last fault (or in a run
        // without any) ends by the time the cluster is at rest.
        for (id, h) in &self.handoffs {
            let Some((from, begin)) = h.begin else {
                continue;
            };
            let unfaulted = !self.faulted || self.last_fault.is_none_or(|f| f < begin);
            if unfaulted && !h.ended {
                return Err(found(
                    Invariant::Handoff,
                    &h.name,
                    format!(
                        "handoff #{id} of {from} never delivered its state, and no fault \
                         came after it began"
                    ),
                    vec![begin],
                ));
            }
        }
        Ok(())
    }
}

impl Checker {
    /// The nodes that keep a membership and are up.
    fn live_members(&self) -> BTreeSet<u16> {
        let up = |k: &u16| !self.down.contains(k);
        self.members.keys().copied().filter(up).collect()
    }

    /// S2 at rest: every live instance runs where the placement puts its name.
    fn placed(&self) -> Result<(), Found> {
        let (Some(placement), members) = (self.placement, self.live_members()) else {
            return Ok(());
        };
        if members.is_empty() {
            return Ok(());
        }
        for (name, live) in &self.live {
            let Some(home) = placement(name, &members) else {
                continue;
            };
            if let Some((pid, &start)) = live.iter().find(|(p, _)| p.node() != home) {
                return Err(found(
                    Invariant::Placement,
                    name,
                    format!(
                        "{pid} runs at rest on n{}, and its place is n{home}",
                        pid.node()
                    ),
                    vec![start],
                ));
            }
        }
        Ok(())
    }

    /// I5 at rest: every live instance is in some live node's registry (when registries are
    /// recorded at all).
    fn no_orphans(&self) -> Result<(), Found> {
        if self.views.is_empty() {
            return Ok(());
        }
        for (name, live) in &self.live {
            for (pid, &start) in live {
                let registered = self.views.iter().any(|(node, view)| {
                    !self.down.contains(node) && view.get(name).is_some_and(|(p, _)| p == pid)
                });
                if !registered {
                    return Err(found(
                        Invariant::RegistrationFidelity,
                        name,
                        format!("{pid} runs at rest, and no live registry has it"),
                        vec![start],
                    ));
                }
            }
        }
        Ok(())
    }

    /// S4 at rest: every live node whose registry has a desired name counts it in each group
    /// it joined.
    fn group_membership(&self) -> Result<(), Found> {
        for (name, joined) in &self.joined {
            if !self.desired.contains_key(name) {
                continue;
            }
            for (node, view) in &self.views {
                if self.down.contains(node) || !view.contains_key(name) {
                    continue;
                }
                let has = self.groups.get(node).and_then(|g| g.get(name));
                for (group, &join) in joined {
                    if !has.is_some_and(|(g, _)| g.contains(group)) {
                        let mut events = vec![join];
                        events.extend(has.map(|(_, set)| *set));
                        events.push(view[name].1);
                        return Err(found(
                            Invariant::GroupMembership,
                            name,
                            format!(
                                "n{node}'s registry has it in no group {group}, which it joined"
                            ),
                            events,
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// S4 at rest, CP: every live node's process groups scope (one that started since the
    /// node's last restart) lists the live instance of each desired name grouped in that
    /// scope once in each group the cluster wants it in, and lists no other process there.
    fn group_members(&self) -> Result<(), Found> {
        let judged: BTreeSet<&String> = self.grouped.values().map(|(scope, _)| scope).collect();
        let views = self
            .group_views
            .iter()
            .filter(|((k, scope), _)| !self.down.contains(k) && judged.contains(scope));
        for ((node, scope), view) in views {
            for (name, (in_scope, groups)) in &self.grouped {
                let live = self.live.get(name).and_then(|l| l.iter().next());
                let (Some((&pid, &start)), true) = (live, self.desired.contains_key(name)) else {
                    continue;
                };
                if in_scope != scope {
                    continue;
                }
                for (group, &joined) in groups {
                    let listed = view.get(group);
                    let times = listed.map_or(0, |(m, _)| m.iter().filter(|&&x| x == pid).count());
                    if times != 1 {
                        let mut events = vec![joined, start];
                        events.extend(listed.map(|(_, set)| *set));
                        return Err(found(
                            Invariant::GroupMembership,
                            name,
                            format!(
                                "n{node}'s process groups list {pid} {times} times in {group}, \
                                 which {name} joined"
                            ),
                            events,
                        ));
                    }
                }
            }
            for (group, (members, set)) in view {
                for pid in members {
                    let name = self.names.get(pid);
                    let wanted = name
                        .and_then(|n| self.grouped.get(n))
                        .is_some_and(|(s, g)| s == scope && g.contains_key(group));
                    if !wanted {
                        let subject = name.cloned().unwrap_or_else(|| pid.to_string());
                        return Err(found(
                            Invariant::GroupMembership,
                            &subject,
                            format!(
                                "n{node}'s process groups list {pid} in {group} at rest, and no \
                                 live instance of a name in that group is {pid}"
                            ),
                            vec![*set],
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// I10 at rest: the live nodes that keep a membership all count exactly themselves.
    fn membership(&self) -> Result<(), Found> {
        let live = self.live_members();
        for k in &live {
            let (seen, set) = &self.members[k];
            if *seen != live {
                let show = |s: &BTreeSet<u16>| {
                    let names: Vec<String> = s.iter().map(|k| format!("n{k}")).collect();
                    names.join(",")
                };
                return Err(found(
                    Invariant::MembershipAgreement,
                    &format!("n{k}"),
                    format!(
                        "n{k} counts {} as the members at rest, while {} are live",
                        show(seen),
                        show(&live)
                    ),
                    vec![*set],
                ));
            }
        }
        Ok(())
    }
}

fn late(call: usize, ret: usize, took_us: u64, timeout_ms: u64) -> Found {
    found(
        Invariant::BoundedProgress,
        "api",
        format!(
            "a call returned after {} ms, past its {timeout_ms} ms",
            took_us / 1000
        ),
        vec![call, ret],
    )
}

#[cfg(test)]
mod tests;
