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
//! | I1 [`OneInstance`](Invariant::OneInstance) | at most one live instance per name: always ([`Consistency::Cp`]) or at rest ([`Consistency::Ap`]) |
//! | I2 [`NoLostChildren`](Invariant::NoLostChildren) | at rest, every desired name has a live instance |
//! | I3 [`RegistryAgreement`](Invariant::RegistryAgreement) | at rest, every live node's registry maps each name to its live instance |
//! | I4 [`NoDanglingEntries`](Invariant::NoDanglingEntries) | a lookup never answers an instance its node has seen die (its `DOWN`, or its node's `nodedown`); at rest, no live node's registry maps a name to a dead instance |
//! | I5 [`RegistrationFidelity`](Invariant::RegistrationFidelity) | at rest, every live instance is registered under its name in some live node's registry (no orphan that nothing can find or stop) |
//! | I6 [`Handoff`](Invariant::Handoff) | a handoff's state is delivered at most once, to an instance that starts after the old one stopped; exactly once in a run without faults |
//! | I7 [`ConflictResolution`](Invariant::ConflictResolution) | a conflict's loser hands its state to the winner, once per name per heal |
//! | I8 [`RestartIntensity`](Invariant::RestartIntensity) | a desired name is not restarted after crashes more often than its intensity allows, wherever it runs |
//! | I9 [`BoundedProgress`](Invariant::BoundedProgress) | every API call returns within its timeout |
//! | I10 [`MembershipAgreement`](Invariant::MembershipAgreement) | at rest, every live node that keeps a membership counts exactly the live nodes that do |
//! | S1 [`MessageRouting`](Invariant::MessageRouting) | a message sent by name is handled at most once, in its sender's order, never by an instance whose state has moved on; one sent during a move is not lost |
//! | S2 [`Placement`](Invariant::Placement) | at rest, with a placement rule given ([`check_placed`]), every live instance runs on the node the rule names over the live members |
//! | S3 [`NoResurrection`](Invariant::NoResurrection) | a name whose child was terminated does not start again unless started again |
//! | S4 [`GroupMembership`](Invariant::GroupMembership) | at rest, every live node's registry counts a desired name in each group it joined, whatever restarts and moves came since |
//!
//! ```
//! use otpsim::sim::cluster_invariants::{check, Consistency};
//! use otpsim::sim::invariants::Invariant;
//! use otpsim::trace::{ClusterEvent, DistEvent, EventKind, Trace};
//! use otpsim::Pid;
//! let (a, b) = (Pid::new(1, 0, 3), Pid::new(2, 0, 3));
//! let start = |pid| EventKind::Dist(DistEvent::Start { name: "k1".into(), pid });
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

use super::invariants::{Invariant, Violation};
use crate::term::Pid;
use crate::trace::{ClusterEvent, DistEvent, EventKind, HandoffPhase, Trace};
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
    terminated: BTreeMap<String, usize>,
    resurrected: BTreeMap<String, (Pid, usize, usize)>,
    /// Each node's registry: name -> (instance, the event that set it); the nodes that ever
    /// recorded a view are those whose registry the at-rest rules judge.
    views: BTreeMap<u16, BTreeMap<String, (Pid, usize)>>,
    /// Nodes that are down.
    down: BTreeSet<u16>,
    /// The groups each name joined (with the event), and each node's registry's groups of
    /// each name.
    joined: BTreeMap<String, BTreeMap<String, usize>>,
    groups: BTreeMap<u16, BTreeMap<String, (BTreeSet<String>, usize)>>,
    /// Each node's view of the members, with the event that set it (since its last restart).
    members: BTreeMap<u16, (BTreeSet<u16>, usize)>,
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
    /// Conflicts per name since the last heal.
    conflicts: BTreeMap<String, usize>,
    /// Calls without a return: (node, when, timeout, event).
    calls: BTreeMap<u64, (u64, u64, usize)>,
    /// Every call's event.
    asked: BTreeMap<u64, usize>,
    /// Whether any fault happened; the last event that may have lost a message in flight
    /// (any fault, a process fault, a resume, a connection lost to the tick).
    faulted: bool,
    last_fault: Option<usize>,
    /// S1: messages sent by name (sender, number) with their name and event; those not yet
    /// handled, per instance they went to; those handled, with the event; per sender and
    /// name, the send event of the latest message handled, and the handling event.
    sent: BTreeMap<(Pid, u64), (String, usize)>,
    unhandled: BTreeMap<Pid, Vec<(Pid, u64, usize)>>,
    handled: BTreeMap<(Pid, u64), usize>,
    handled_upto: BTreeMap<(Pid, String), (usize, usize)>,
    /// S1: names moving (handoff id -> the name, its begin event, the nodes it moves
    /// between); instances a handoff began from (its begin event); instances whose state was
    /// sent to a successor (the event).
    moving: BTreeMap<u64, (String, usize, [u16; 2])>,
    moved: BTreeMap<Pid, usize>,
    handed: BTreeMap<Pid, usize>,
    at_rest: Option<usize>,
}

#[derive(Default)]
struct Handoff {
    begin: Option<(Pid, usize)>,
    delivered: Vec<usize>,
    ended: bool,
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
            last_at = e.at_us;
            match &e.kind {
                EventKind::Exit { pid, reason } => {
                    let reason = crate::ExitReason::from_term(reason.clone());
                    let crashed = !reason.is_normal() && !reason.is_shutdown();
                    if let Some(name) = self.names.get(pid) {
                        if crashed {
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
                EventKind::Cluster(c) => self.cluster(i, c)?,
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
        Ok(())
    }

    /// An instance ends.
    fn end(&mut self, pid: Pid, i: usize) {
        if let Some(name) = self.names.remove(&pid) {
            if let Some(set) = self.live.get_mut(&name) {
                set.remove(&pid);
            }
            self.dead.insert(pid, i);
            self.last_end.insert(name, i);
        }
    }

    fn cluster(&mut self, i: usize, c: &ClusterEvent) -> Result<(), Found> {
        if c.fault_kind().is_some() {
            self.faulted = true;
        }
        if !matches!(c, ClusterEvent::AtRest) {
            self.last_fault = Some(i);
        }
        match c {
            ClusterEvent::Crash { node, .. } => {
                self.down.insert(*node);
                self.moving.retain(|_, (_, _, nodes)| !nodes.contains(node));
                let gone: Vec<Pid> = self
                    .names
                    .keys()
                    .copied()
                    .filter(|p| p.node() == *node)
                    .collect();
                for pid in gone {
                    self.end(pid, i);
                }
            }
            ClusterEvent::Restart { node, .. } => {
                self.down.remove(node);
                // The new incarnation starts with an empty registry of its own, and has no
                // view of the members until it records one.
                if let Some(view) = self.views.get_mut(node) {
                    view.clear();
                }
                self.groups.remove(node);
                self.members.remove(node);
            }
            ClusterEvent::Heal => self.conflicts.clear(),
            ClusterEvent::AtRest => {
                self.at_rest = Some(i);
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
            DistEvent::Start { name, pid } => {
                if let Some(&t) = self.terminated.get(name) {
                    if !self.desired.contains_key(name) {
                        self.resurrected.entry(name.clone()).or_insert((*pid, t, i));
                    }
                }
                if self.crashed.remove(name) && self.desired.contains_key(name) {
                    self.restarted(name, at, i)?;
                }
                self.moving.retain(|_, (n, ..)| n != name);
                self.live.entry(name.clone()).or_default().insert(*pid, i);
                self.names.insert(*pid, name.clone());
                self.started.insert(*pid, i);
                if self.consistency == Consistency::Cp || self.at_rest.is_some() {
                    self.one_instance(name, i)?;
                }
            }
            DistEvent::Desired { name, on: true } => {
                self.desired.insert(name.clone(), i);
                self.terminated.remove(name);
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
                self.moving.retain(|_, (n, ..)| n != name);
                self.joined.remove(name);
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
            } => self.sent(i, *from, *seq, name, *to)?,
            DistEvent::Handled { pid, from, seq } => self.handled(i, *pid, *from, *seq)?,
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
                let count = self.conflicts.entry(name.clone()).or_default();
                *count += 1;
                if *count > 1 {
                    return Err(found(
                        Invariant::ConflictResolution,
                        name,
                        format!("a second conflict for the name since the last heal ({loser} lost to {winner})"),
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
            DistEvent::Call { id, timeout_ms, .. } => {
                self.asked.insert(*id, i);
                self.calls.insert(*id, (at, *timeout_ms, i));
            }
            DistEvent::Return { id, .. } => {
                if let Some((made, timeout_ms, call)) = self.calls.remove(id) {
                    if at > made + timeout_ms * 1000 + SLACK_US {
                        return Err(late(call, i, at - made, timeout_ms));
                    }
                }
            }
        }
        Ok(())
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

    /// S1: `from` sent its message `seq` to `name` (event `i`), to instance `to` or, with
    /// none registered, nowhere: lost, if the name was moving then.
    fn sent(
        &mut self,
        i: usize,
        from: Pid,
        seq: u64,
        name: &str,
        to: Option<Pid>,
    ) -> Result<(), Found> {
        self.sent.insert((from, seq), (name.to_string(), i));
        match to {
            Some(pid) => {
                self.unhandled.entry(pid).or_default().push((from, seq, i));
                Ok(())
            }
            // A move that a fault may have cut short (its nodes lost, a message dropped) is
            // judged by I2 and I6, not here.
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
        if let Some(&handed) = self.handed.get(&pid) {
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

    /// I9: a call older than its timeout at `now` without a return.
    fn overdue(&self, now: u64) -> Result<(), Found> {
        for (made, timeout_ms, call) in self.calls.values() {
            if now > made + timeout_ms * 1000 + SLACK_US {
                return Err(found(
                    Invariant::BoundedProgress,
                    "api",
                    format!(
                        "a call made {} ms ago has not returned within its {timeout_ms} ms",
                        (now - made) / 1000
                    ),
                    vec![*call],
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
        if !self.faulted {
            for (id, h) in &self.handoffs {
                if let (Some((from, begin)), false) = (h.begin, h.ended) {
                    return Err(found(
                        Invariant::Handoff,
                        &self.names.get(&from).cloned().unwrap_or_default(),
                        format!("handoff #{id} of {from} never delivered its state, in a run without faults"),
                        vec![begin],
                    ));
                }
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
mod tests {
    //! One trace that keeps each invariant and one that breaks it (docs/cluster-invariants.md).
    use super::*;

    const K: &str = "k1";

    fn a() -> Pid {
        Pid::new(1, 0, 3)
    }
    fn b() -> Pid {
        Pid::new(2, 0, 4)
    }

    /// A trace built event by event, one millisecond apart.
    #[derive(Default)]
    struct T(Trace);

    impl T {
        fn dist(mut self, d: DistEvent) -> T {
            let at = self.0.len() as u64 * 1000;
            self.0.push(at, EventKind::Dist(d));
            self
        }
        fn at(mut self, at_ms: u64, kind: EventKind) -> T {
            self.0.push(at_ms * 1000, kind);
            self
        }
        fn cluster(self, c: ClusterEvent) -> T {
            let at = self.0.len() as u64;
            self.at(at, EventKind::Cluster(c))
        }
        fn start(self, pid: Pid) -> T {
            self.dist(DistEvent::Start {
                name: K.into(),
                pid,
            })
        }
        fn desired(self, on: bool) -> T {
            self.dist(DistEvent::Desired { name: K.into(), on })
        }
        fn view(self, node: u16, pid: Option<Pid>) -> T {
            self.dist(DistEvent::View {
                node,
                name: K.into(),
                pid,
            })
        }
        fn exit(self, pid: Pid) -> T {
            let at = self.0.len() as u64;
            let reason = crate::term::Term::atom("shutdown");
            self.at(at, EventKind::Exit { pid, reason })
        }
        fn rest(self) -> T {
            self.cluster(ClusterEvent::AtRest)
        }
        fn check(&self, consistency: Consistency) -> Result<(), Invariant> {
            check(&self.0, consistency).map_err(|v| {
                assert!(!v.evidence.is_empty(), "{v}: no evidence");
                v.invariant
            })
        }
    }

    fn split() -> ClusterEvent {
        ClusterEvent::Partition {
            side: vec![1],
            one_way: false,
        }
    }

    #[test]
    fn i1_one_instance_always_in_cp_and_at_rest_in_ap() {
        let healed = T::default()
            .start(a())
            .cluster(split())
            .start(b())
            .cluster(ClusterEvent::Heal)
            .exit(a())
            .rest();
        assert_eq!(healed.check(Consistency::Ap), Ok(()));
        assert_eq!(healed.check(Consistency::Cp), Err(Invariant::OneInstance));
        let duplicate = T::default().start(a()).start(b()).rest();
        assert_eq!(
            duplicate.check(Consistency::Ap),
            Err(Invariant::OneInstance)
        );
        let later = T::default().rest().start(a()).start(b());
        assert_eq!(later.check(Consistency::Ap), Err(Invariant::OneInstance));
    }

    #[test]
    fn a_node_crash_ends_its_instances() {
        let t = T::default()
            .start(b())
            .cluster(ClusterEvent::Crash {
                node: 2,
                silent: false,
            })
            .start(a());
        assert_eq!(t.check(Consistency::Cp), Ok(()));
    }

    #[test]
    fn i2_a_desired_name_runs_at_rest() {
        let kept = T::default()
            .desired(true)
            .start(a())
            .exit(a())
            .start(b())
            .view(1, Some(b()))
            .view(2, Some(b()))
            .rest();
        assert_eq!(kept.check(Consistency::Cp), Ok(()));
        let lost = T::default().desired(true).start(a()).exit(a()).rest();
        assert_eq!(lost.check(Consistency::Cp), Err(Invariant::NoLostChildren));
        let stopped = T::default()
            .desired(true)
            .start(a())
            .desired(false)
            .exit(a())
            .rest();
        assert_eq!(stopped.check(Consistency::Cp), Ok(()));
    }

    #[test]
    fn i3_every_live_node_maps_the_name_to_its_instance() {
        let agreed = T::default()
            .start(a())
            .view(1, Some(a()))
            .view(2, Some(a()))
            .rest();
        assert_eq!(agreed.check(Consistency::Cp), Ok(()));
        let missing = T::default()
            .start(a())
            .view(1, Some(a()))
            .view(2, None)
            .rest();
        assert_eq!(
            missing.check(Consistency::Cp),
            Err(Invariant::RegistryAgreement)
        );
        // A node that is down at rest has no say.
        let down = T::default()
            .start(a())
            .view(1, Some(a()))
            .view(3, None)
            .cluster(ClusterEvent::Crash {
                node: 3,
                silent: true,
            })
            .rest();
        assert_eq!(down.check(Consistency::Cp), Ok(()));
    }

    #[test]
    fn i4_no_registry_maps_a_name_to_a_dead_instance() {
        let cleaned = T::default()
            .start(a())
            .view(2, Some(a()))
            .exit(a())
            .view(2, None)
            .rest();
        assert_eq!(cleaned.check(Consistency::Cp), Ok(()));
        let dangling = T::default().start(a()).view(2, Some(a())).exit(a()).rest();
        assert_eq!(
            dangling.check(Consistency::Cp),
            Err(Invariant::NoDanglingEntries)
        );
    }

    fn handoff(phase: HandoffPhase) -> DistEvent {
        DistEvent::Handoff {
            id: 1,
            name: K.into(),
            phase,
        }
    }

    fn lookup(node: u16, pid: Pid) -> DistEvent {
        DistEvent::Lookup {
            node,
            name: K.into(),
            pid: Some(pid),
            call: 7,
        }
    }

    #[test]
    fn i4_a_lookup_never_answers_an_instance_its_node_saw_die() {
        // docs/cluster-invariants.md I4: n2 saw a's DOWN, or n1 go down with a on it.
        let reason = crate::term::Term::atom("noconnection");
        let down = EventKind::Down {
            watcher: Pid::new(2, 0, 1),
            target: a(),
            reason,
        };
        let nodedown = EventKind::NodeDown {
            watcher: Pid::new(2, 0, 1),
            node: 1,
        };
        let crash = ClusterEvent::Crash {
            node: 1,
            silent: false,
        };
        let after_down = T::default()
            .start(a())
            .cluster(crash.clone())
            .at(2, down)
            .dist(lookup(2, a()));
        assert_eq!(
            after_down.check(Consistency::Ap),
            Err(Invariant::NoDanglingEntries)
        );
        let after_nodedown = T::default()
            .start(a())
            .cluster(crash.clone())
            .at(2, nodedown.clone())
            .dist(lookup(2, a()));
        assert_eq!(
            after_nodedown.check(Consistency::Ap),
            Err(Invariant::NoDanglingEntries)
        );
        // Before its node heard of it, a stale answer is allowed; so is a live instance.
        let unaware = T::default().start(a()).cluster(crash).dist(lookup(2, a()));
        assert_eq!(unaware.check(Consistency::Ap), Ok(()));
        let alive = T::default().start(a()).dist(lookup(2, a()));
        assert_eq!(alive.check(Consistency::Ap), Ok(()));
        // Asked before the news came: a registry that answers in order may answer stale,
        // unless it was holding calls when the news came (the lookup waited behind it).
        let asked = |t: T| {
            t.dist(DistEvent::Call {
                id: 7,
                node: 2,
                what: "whereis k1".into(),
                timeout_ms: 5000,
            })
        };
        let crash = ClusterEvent::Crash {
            node: 1,
            silent: false,
        };
        let queued = asked(T::default().start(a()))
            .cluster(crash.clone())
            .at(3, nodedown.clone())
            .dist(lookup(2, a()));
        assert_eq!(queued.check(Consistency::Ap), Ok(()));
        let held = asked(T::default().start(a()))
            .dist(DistEvent::Serving { node: 2, on: false })
            .cluster(crash)
            .at(4, nodedown)
            .dist(lookup(2, a()));
        assert_eq!(
            held.check(Consistency::Ap),
            Err(Invariant::NoDanglingEntries)
        );
    }

    #[test]
    fn i5_every_live_instance_is_registered_somewhere_at_rest() {
        // docs/cluster-invariants.md I5: registered, fine; in no registry, an orphan (which
        // I5 names before I3 sees the registries disagree); no registries, not judged.
        let registered = T::default().start(a()).view(1, Some(a())).rest();
        assert_eq!(registered.check(Consistency::Ap), Ok(()));
        let orphan = T::default()
            .start(a())
            .view(1, Some(a()))
            .view(1, None)
            .rest();
        assert_eq!(
            orphan.check(Consistency::Ap),
            Err(Invariant::RegistrationFidelity)
        );
        let unrecorded = T::default().start(a()).rest();
        assert_eq!(unrecorded.check(Consistency::Ap), Ok(()));
    }

    /// S1 (docs/cluster-invariants.md): a message sent by name is handled once, in its
    /// sender's order, and a move loses none, neither one sent to the old instance nor one
    /// sent while no instance was registered.
    #[test]
    fn s1_messages_sent_by_name_survive_a_move_once_and_in_order() {
        let client = Pid::new(3, 0, 9);
        let sent = |seq, to| DistEvent::Sent {
            from: client,
            seq,
            name: K.into(),
            to,
        };
        let handled = |pid, seq| DistEvent::Handled {
            pid,
            from: client,
            seq,
        };
        let begin = HandoffPhase::Begin { from: a(), to: 2 };
        let moved = |t: T| {
            t.exit(a())
                .start(b())
                .dist(handoff(HandoffPhase::Delivered { pid: b() }))
        };
        let good = moved(
            T::default()
                .start(a())
                .dist(sent(0, Some(a())))
                .dist(handled(a(), 0))
                .dist(handoff(begin.clone()))
                .dist(handoff(HandoffPhase::StateSent)),
        )
        .dist(sent(1, Some(b())))
        .dist(handled(b(), 1))
        .rest();
        assert_eq!(good.check(Consistency::Cp), Ok(()));
        let lost_in_mailbox = T::default()
            .start(a())
            .dist(handoff(begin.clone()))
            .dist(sent(0, Some(a())));
        assert_eq!(
            moved(lost_in_mailbox).check(Consistency::Cp),
            Err(Invariant::MessageRouting)
        );
        let dropped = T::default()
            .start(a())
            .dist(handoff(begin.clone()))
            .exit(a())
            .dist(sent(0, None));
        assert_eq!(
            dropped.check(Consistency::Cp),
            Err(Invariant::MessageRouting)
        );
        let after_state = T::default()
            .start(a())
            .dist(sent(0, Some(a())))
            .dist(handoff(begin.clone()))
            .dist(handoff(HandoffPhase::StateSent))
            .dist(handled(a(), 0));
        assert_eq!(
            after_state.check(Consistency::Cp),
            Err(Invariant::MessageRouting)
        );
        let twice = T::default()
            .start(a())
            .dist(sent(0, Some(a())))
            .dist(handled(a(), 0))
            .dist(handled(a(), 0));
        assert_eq!(twice.check(Consistency::Cp), Err(Invariant::MessageRouting));
        let reordered = T::default()
            .start(a())
            .start(b())
            .dist(sent(0, Some(a())))
            .dist(sent(1, Some(b())))
            .dist(handled(b(), 1))
            .dist(handled(a(), 0));
        assert_eq!(
            reordered.check(Consistency::Ap),
            Err(Invariant::MessageRouting)
        );
        // A crash loses its mailbox, as in Erlang; a fault after the send may lose the
        // message on the way: neither is a routing failure.
        let crashed = T::default().start(a()).dist(sent(0, Some(a()))).at(
            10,
            EventKind::Exit {
                pid: a(),
                reason: crate::term::Term::atom("boom"),
            },
        );
        assert_eq!(crashed.check(Consistency::Cp), Ok(()));
        let faulted = T::default()
            .start(a())
            .dist(handoff(begin.clone()))
            .dist(sent(0, Some(a())))
            .cluster(split());
        assert_eq!(moved(faulted).check(Consistency::Ap), Ok(()));
        // A move cut short by a fault (its target lost) is I2's and I6's to judge; an
        // aborted one moved nothing.
        let cut_short = T::default()
            .start(a())
            .dist(handoff(begin.clone()))
            .exit(a())
            .cluster(ClusterEvent::Crash {
                node: 2,
                silent: false,
            })
            .dist(sent(0, None));
        assert_eq!(cut_short.check(Consistency::Ap), Ok(()));
        let aborted = T::default()
            .start(a())
            .dist(handoff(begin))
            .dist(handoff(HandoffPhase::Aborted {
                why: "ignore".into(),
            }))
            .dist(sent(0, Some(a())))
            .exit(a());
        assert_eq!(aborted.check(Consistency::Ap), Ok(()));
    }

    #[test]
    fn i6_a_handoff_delivers_once_to_an_instance_after_the_old_one() {
        let begin = HandoffPhase::Begin { from: a(), to: 2 };
        let delivered = HandoffPhase::Delivered { pid: b() };
        let good = T::default()
            .start(a())
            .dist(handoff(begin.clone()))
            .exit(a())
            .dist(handoff(HandoffPhase::StateSent))
            .start(b())
            .dist(handoff(delivered.clone()))
            .rest();
        assert_eq!(good.check(Consistency::Cp), Ok(()));
        let overlap = T::default()
            .start(a())
            .dist(handoff(begin.clone()))
            .dist(handoff(delivered.clone()));
        assert_eq!(overlap.check(Consistency::Ap), Err(Invariant::Handoff));
        let twice = T::default()
            .dist(handoff(begin.clone()))
            .dist(handoff(delivered.clone()))
            .dist(handoff(delivered));
        assert_eq!(twice.check(Consistency::Ap), Err(Invariant::Handoff));
        let lost = T::default()
            .start(a())
            .dist(handoff(begin.clone()))
            .exit(a())
            .rest();
        assert_eq!(lost.check(Consistency::Ap), Err(Invariant::Handoff));
        // With a fault in the run, a handoff may end without delivery (I2 then judges).
        let faulted = T::default()
            .start(a())
            .dist(handoff(begin))
            .exit(a())
            .cluster(ClusterEvent::Crash {
                node: 2,
                silent: false,
            })
            .rest();
        assert_eq!(faulted.check(Consistency::Ap), Ok(()));
    }

    fn conflict(state_delivered: bool) -> DistEvent {
        DistEvent::Conflict {
            name: K.into(),
            winner: a(),
            loser: b(),
            state_delivered,
        }
    }

    #[test]
    fn i7_a_conflict_hands_the_losers_state_over_once_per_heal() {
        let resolved = T::default()
            .dist(conflict(true))
            .cluster(ClusterEvent::Heal)
            .dist(conflict(true));
        assert_eq!(resolved.check(Consistency::Ap), Ok(()));
        let dropped = T::default().dist(conflict(false));
        assert_eq!(
            dropped.check(Consistency::Ap),
            Err(Invariant::ConflictResolution)
        );
        let twice = T::default().dist(conflict(true)).dist(conflict(true));
        assert_eq!(
            twice.check(Consistency::Ap),
            Err(Invariant::ConflictResolution)
        );
    }

    fn call(timeout_ms: u64) -> DistEvent {
        DistEvent::Call {
            id: 7,
            node: 1,
            what: "whereis k1".into(),
            timeout_ms,
        }
    }

    /// The instance `n` of the name on node 1, for a crash loop.
    fn nth(n: u32) -> Pid {
        Pid::new(1, 0, u64::from(10 + n))
    }

    /// `name` runs and crashes `crashes` times in a row, `gap_ms` apart, under an intensity
    /// of 3 in 5 s.
    fn crash_loop(crashes: u32, gap_ms: u64) -> T {
        let mut t = T::default().desired(true).dist(DistEvent::Intensity {
            name: K.into(),
            max_restarts: 3,
            max_seconds: 5,
        });
        let mut at = 10;
        for n in 0..=crashes {
            let start = DistEvent::Start {
                name: K.into(),
                pid: nth(n),
            };
            t = t.at(at, EventKind::Dist(start));
            if n < crashes {
                let reason = crate::term::Term::atom("boom");
                t = t.at(
                    at + 1,
                    EventKind::Exit {
                        pid: nth(n),
                        reason,
                    },
                );
            }
            at += gap_ms;
        }
        t
    }

    #[test]
    fn i8_crash_restarts_stay_within_the_names_intensity_across_nodes() {
        // docs/cluster-invariants.md I8: three restarts in 5 s are allowed, a fourth is a
        // crash loop nothing stops (swarm_dynamic_supervisor's crash path counts none).
        assert_eq!(crash_loop(3, 100).check(Consistency::Ap), Ok(()));
        assert_eq!(
            crash_loop(4, 100).check(Consistency::Ap),
            Err(Invariant::RestartIntensity)
        );
        // Spread out, as many as it likes.
        assert_eq!(crash_loop(8, 2000).check(Consistency::Ap), Ok(()));
        // A shutdown is not a crash, and a name nobody asked for is not judged.
        let shut = T::default()
            .desired(true)
            .dist(DistEvent::Intensity {
                name: K.into(),
                max_restarts: 0,
                max_seconds: 5,
            })
            .start(a())
            .exit(a())
            .start(b());
        assert_eq!(shut.check(Consistency::Ap), Ok(()));
    }

    fn members(node: u16, members: &[u16]) -> DistEvent {
        DistEvent::Members {
            node,
            members: members.to_vec(),
        }
    }

    #[test]
    fn i10_live_nodes_agree_on_the_members_at_rest() {
        // docs/cluster-invariants.md I10: every node counts the live ones, a crashed node
        // is left out, and a restarted one counts again from what it records.
        let agreed = T::default()
            .dist(members(1, &[1, 2]))
            .dist(members(2, &[1, 2]))
            .rest();
        assert_eq!(agreed.check(Consistency::Ap), Ok(()));
        let split = T::default()
            .dist(members(1, &[1, 2]))
            .dist(members(2, &[2]))
            .rest();
        assert_eq!(
            split.check(Consistency::Ap),
            Err(Invariant::MembershipAgreement)
        );
        let crashed = T::default()
            .dist(members(1, &[1, 2, 3]))
            .dist(members(2, &[1, 2, 3]))
            .dist(members(3, &[1, 2, 3]))
            .cluster(ClusterEvent::Crash {
                node: 3,
                silent: false,
            })
            .dist(members(1, &[1, 2]))
            .dist(members(2, &[1, 2]))
            .rest();
        assert_eq!(crashed.check(Consistency::Ap), Ok(()));
        let stale = T::default()
            .dist(members(1, &[1, 2]))
            .dist(members(2, &[1, 2]))
            .cluster(ClusterEvent::Restart {
                node: 2,
                creation: 1,
            })
            .dist(members(2, &[2]))
            .rest();
        assert_eq!(
            stale.check(Consistency::Ap),
            Err(Invariant::MembershipAgreement)
        );
    }

    #[test]
    fn s4_a_name_keeps_its_groups_across_restarts_at_rest() {
        // docs/cluster-invariants.md S4 (bitwalker/swarm#26): k1 joined g; after a restart,
        // a registry that counts the new instance in g keeps it, one that does not breaks it.
        let groups = |node: u16, groups: &[&str]| DistEvent::Groups {
            node,
            name: K.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        };
        let joined = DistEvent::Joined {
            name: K.into(),
            group: "g".into(),
            pid: a(),
        };
        let kept = T::default()
            .desired(true)
            .start(a())
            .view(1, Some(a()))
            .dist(joined.clone())
            .dist(groups(1, &["g"]))
            .exit(a())
            .start(b())
            .view(1, Some(b()))
            .rest();
        assert_eq!(kept.check(Consistency::Ap), Ok(()));
        let lost = T::default()
            .desired(true)
            .start(a())
            .view(1, Some(a()))
            .dist(joined)
            .dist(groups(1, &["g"]))
            .exit(a())
            .view(1, None)
            .start(b())
            .view(1, Some(b()))
            .rest();
        assert_eq!(lost.check(Consistency::Ap), Err(Invariant::GroupMembership));
        // A join taken on a stale entry of a dead instance binds no later one.
        let stale = T::default()
            .desired(true)
            .start(a())
            .exit(a())
            .dist(DistEvent::Joined {
                name: K.into(),
                group: "g".into(),
                pid: a(),
            })
            .start(b())
            .view(1, Some(b()))
            .rest();
        assert_eq!(stale.check(Consistency::Ap), Ok(()));
    }

    #[test]
    fn i9_every_call_returns_within_its_timeout() {
        let ret = || DistEvent::Return {
            id: 7,
            result: "undefined".into(),
        };
        let prompt = T::default().dist(call(5)).dist(ret());
        assert_eq!(prompt.check(Consistency::Ap), Ok(()));
        let late = T::default().dist(call(5)).at(20, EventKind::Dist(ret()));
        assert_eq!(late.check(Consistency::Ap), Err(Invariant::BoundedProgress));
        let hung = T::default()
            .dist(call(5))
            .at(20, EventKind::Line("later".into()));
        assert_eq!(hung.check(Consistency::Ap), Err(Invariant::BoundedProgress));
    }

    #[test]
    fn s2_every_instance_runs_where_its_placement_puts_it_at_rest() {
        // docs/cluster-invariants.md S2: with node 2 the place of every name, an instance on
        // node 1 is misplaced at rest; without a placement rule nothing is judged.
        fn on_two(_: &str, members: &BTreeSet<u16>) -> Option<u16> {
            members.contains(&2).then_some(2)
        }
        let members = |node| DistEvent::Members {
            node,
            members: vec![1, 2],
        };
        let t = |pid| {
            T::default()
                .dist(members(1))
                .dist(members(2))
                .start(pid)
                .view(1, Some(pid))
                .view(2, Some(pid))
                .rest()
        };
        assert_eq!(
            check_placed(&t(b()).0, Consistency::Ap, Some(on_two)),
            Ok(())
        );
        let misplaced = check_placed(&t(a()).0, Consistency::Ap, Some(on_two));
        assert_eq!(
            misplaced.map_err(|v| v.invariant),
            Err(Invariant::Placement)
        );
        assert_eq!(t(a()).check(Consistency::Ap), Ok(()));
    }

    #[test]
    fn s3_a_terminated_name_does_not_start_again_unless_started_again() {
        let restarted = T::default()
            .desired(true)
            .start(a())
            .desired(false)
            .exit(a())
            .desired(true)
            .start(b());
        assert_eq!(restarted.check(Consistency::Cp), Ok(()));
        // A start records the name desired when it returns, after its instance started.
        let started_again = T::default()
            .desired(true)
            .start(a())
            .desired(false)
            .exit(a())
            .start(b())
            .desired(true);
        assert_eq!(started_again.check(Consistency::Cp), Ok(()));
        // A start after the resurrected instance ended does not excuse it.
        let excused_late = T::default()
            .desired(true)
            .start(a())
            .desired(false)
            .exit(a())
            .start(b())
            .exit(b())
            .desired(true);
        assert_eq!(
            excused_late.check(Consistency::Cp),
            Err(Invariant::NoResurrection)
        );
        let resurrected = T::default()
            .desired(true)
            .start(a())
            .desired(false)
            .exit(a())
            .start(b());
        assert_eq!(
            resurrected.check(Consistency::Cp),
            Err(Invariant::NoResurrection)
        );
    }
}
