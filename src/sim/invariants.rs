//! The invariants every simulated run is checked against, read from its trace.
//!
//! The supervisors record their bookkeeping ([`SupEvent`]): their flags, each child's spec,
//! the moment they take a child's exit and the moment they count a restart. The checker
//! replays OTP's rules over those records and the runtime's own events (spawns, exits, exit
//! signals) and reports the first place they disagree:
//!
//! * **restart types** (docs/behaviours.md §C): a child's exit is followed by a restart exactly when its
//!   restart type and exit reason call for one;
//! * **restart intensity** (docs/behaviours.md §D): with OTP's list of whole-second stamps (not the
//!   supervisor's own bucketed window), the supervisor gives up exactly at the restart that
//!   exceeds its intensity, and never restarts anything afterwards;
//! * **restart order** (docs/behaviours.md §E): a one_for_all / rest_for_one group is terminated in reverse
//!   start order and started again in start order, and nothing of it starts before all of it
//!   is down;
//! * **shutdown** (docs/behaviours.md §G): children exit before their supervisor, in reverse start order;
//!   `brutal_kill` children get `kill` at once, timeout children `kill` at the timeout (to
//!   the millisecond; checked when the run has no message delays, which shift arrivals);
//! * **no orphans**: no process outlives an ancestor of the supervision tree;
//! * **registry**: a unique key never has two live holders; at the end no key names a dead
//!   process of a live registry;
//! * **liveness** (at the end of a run, after the faults stopped): no supervisor is still in
//!   the middle of restarting a child.
//!
//! ```
//! use otpsim::sim::invariants::check;
//! use otpsim::sim::Sim;
//! use otpsim::supervisor::{self, ChildSpec, Flags, Start, Started, Strategy, SupervisorSpec};
//!
//! let report = Sim::new(1).run(|p| async move {
//!     let worker = ChildSpec::worker("w", Start::new(|p| {
//!         let pid = p.spawn_link(|q| async move { q.recv().await; });
//!         Box::pin(async move { Ok(Started::Pid(pid)) })
//!     }));
//!     let sup = supervisor::start_link(&p, SupervisorSpec::new(Flags::new(Strategy::OneForOne)).child(worker))
//!         .await
//!         .unwrap();
//!     let supervisor::ChildState::Running(child) = sup.which_children(&p).await.unwrap()[0].state else {
//!         panic!("not running")
//!     };
//!     p.exit(child, otpsim::ExitReason::Kill);
//!     otpsim::rt::sleep(otpsim::rt::Duration::from_millis(10)).await;
//! });
//! assert_eq!(check(&report.trace, &Default::default()), Ok(()));
//! ```
//!
//! One pass over a trace checks every rule: the rules share the per-supervisor state the pass
//! builds, so they stay in one file (hence its length).

use crate::term::{Pid, Term};
use crate::trace::vocab::{Restart, Shutdown, Strategy};
use crate::trace::{
    EventKind, Offender, ReportContext, SignalOutcome, SupEvent, SupervisorKind, Trace,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The invariants, by name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Invariant {
    /// A process outlived an ancestor, or a supervisor exited before its child.
    NoOrphans,
    /// A child was (not) restarted against its restart type.
    RestartType,
    /// A supervisor gave up too early or too late; I8 across nodes: a name was restarted
    /// after crashes more often than its intensity allows (`sim::cluster_invariants`).
    RestartIntensity,
    /// A group restart terminated or started children out of order.
    RestartOrder,
    /// A supervisor stopped its children out of order or at the wrong moment.
    Shutdown,
    /// A registry entry is inconsistent with the processes' lives.
    Registry,
    /// The tree did not converge after the faults stopped.
    Liveness,
    /// Two runs of the same case differ.
    Determinism,
    /// The run itself failed: a livelock, the watchdog, a panic of the harness.
    Run,
    /// I1: two instances of a name ran at once (`sim::cluster_invariants`).
    OneInstance,
    /// I2: a desired name had no instance at rest.
    NoLostChildren,
    /// I3: a node's registry disagreed with the live instances at rest.
    RegistryAgreement,
    /// I4: a node's registry held a dead instance at rest.
    NoDanglingEntries,
    /// I5: an instance ran at rest that no live node's registry had (an orphan).
    RegistrationFidelity,
    /// I6: a handoff's state was delivered twice, to an overlapping instance, or never.
    Handoff,
    /// I7: a conflict dropped the loser's state, or was resolved twice.
    ConflictResolution,
    /// I9: an API call did not return within its timeout.
    BoundedProgress,
    /// I10: live nodes disagreed on the cluster's members at rest, or (CP) a name started at
    /// an older ownership epoch than before, or on two nodes at one epoch.
    MembershipAgreement,
    /// S1: a message sent by name during a move was lost, handled twice, handled out of its
    /// sender's order, or handled after its instance's state had moved on.
    MessageRouting,
    /// S2: an instance ran at rest elsewhere than where its placement puts it.
    Placement,
    /// S3: a terminated name started again.
    NoResurrection,
    /// S4: a name lost a group it had joined, across a restart or a move.
    GroupMembership,
    /// An invariant of the application under test.
    App(String),
}

impl std::fmt::Display for Invariant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Invariant::App(name) => write!(f, "app:{name}"),
            other => {
                let json = serde_json::to_value(other).map_err(|_| std::fmt::Error)?;
                f.write_str(json.as_str().unwrap_or("?"))
            }
        }
    }
}

/// A broken invariant: which, about what, why, and the events that show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// The invariant.
    pub invariant: Invariant,
    /// The supervisor, process or key it is about (its tree path where it has one).
    pub subject: String,
    /// What went wrong.
    pub message: String,
    /// The events that show it, as timeline lines.
    pub evidence: Vec<String>,
    /// The same events, as indices into the run's trace (where the why-chain of
    /// [`why`](super::why) ends); empty for an application's violation.
    #[serde(default, skip_serializing_if = "<[usize]>::is_empty")]
    pub events: Box<[usize]>,
    /// The documented flaw of the system under test this is an instance of, if it is one
    /// (a model of a flawed system, such as `systems::swarm`): campaigns report these apart
    /// from regressions. Set by the cluster harness from
    /// [`ClusterTarget::known_flaw`](super::cluster_harness::ClusterTarget::known_flaw) (not
    /// saved: a replay asks the target again).
    #[serde(skip)]
    pub known: Option<&'static KnownFlaw>,
}

/// A documented flaw of a modelled system, which a violation may be an instance of
/// ([`ClusterTarget::known_flaw`](super::cluster_harness::ClusterTarget::known_flaw)).
///
/// ```
/// use otpsim::sim::invariants::KnownFlaw;
/// let flaw = KnownFlaw { name: "duplicate-after-heal", source: "bitwalker/swarm#86" };
/// assert_eq!(flaw.to_string(), "duplicate-after-heal, bitwalker/swarm#86");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KnownFlaw {
    /// A short name for it.
    pub name: &'static str,
    /// Where it is documented: an upstream issue, or the file that infers it.
    pub source: &'static str,
}

impl std::fmt::Display for KnownFlaw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}, {}", self.name, self.source)
    }
}

impl Violation {
    /// A violation without evidence.
    pub fn new(
        invariant: Invariant,
        subject: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Violation {
            invariant,
            subject: subject.into(),
            message: message.into(),
            evidence: Vec::new(),
            events: Box::default(),
            known: None,
        }
    }

    /// The same violation with its events, indices into `trace`, as timeline lines.
    pub fn with_evidence(mut self, trace: &Trace) -> Violation {
        let timeline = trace.timeline();
        self.evidence = self
            .events
            .iter()
            .filter_map(|&i| timeline.get(i).cloned())
            .collect();
        self
    }

    /// An application invariant's violation.
    pub fn app(name: &str, message: impl Into<String>) -> Self {
        Violation::new(Invariant::App(name.into()), name, message)
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} violated at {}: {}",
            self.invariant, self.subject, self.message
        )?;
        if let Some(known) = &self.known {
            write!(f, " (known flaw: {known})")?;
        }
        for line in &self.evidence {
            write!(f, "\n    {line}")?;
        }
        Ok(())
    }
}

/// How to check a trace.
#[derive(Clone, Debug, Default)]
pub struct CheckOptions {
    /// Check shutdown timeouts to the microsecond (only meaningful without message delays).
    pub exact_timing: bool,
    /// The run is over (faults stopped, the tree had time to settle): check the end state
    /// too (liveness, orphans, registry cleanup).
    pub at_rest: bool,
    /// The run came to rest after this many events, and what follows is activity of its own
    /// checks (an application's at-rest check that calls the system): the end state is
    /// checked there. `None`: at the end of the trace.
    pub rest_at: Option<usize>,
    /// The root of the tree under test, for the orphan check.
    pub root: Option<Pid>,
}

/// Checks `trace`; the first violation found, with up to a few events that show it.
pub fn check(trace: &Trace, options: &CheckOptions) -> Result<(), Violation> {
    let mut c = Checker::new(trace, options);
    c.run().map_err(|v| v.with_evidence(trace))
}

/// A violation found by the checker, with the indices of the events that show it.
type Found = Box<Violation>;

fn found(invariant: Invariant, subject: String, message: String, events: Vec<usize>) -> Found {
    Box::new(Violation {
        events: events.into(),
        ..Violation::new(invariant, subject, message)
    })
}

/// madsim advances the clock by a few microseconds per scheduling step, so "exactly at the
/// timeout" means within this much after it.
const SLACK_US: u64 = 1000;

#[derive(Debug)]
struct ChildRec {
    /// Its process (`None`: its start returned `ignore`).
    pid: Option<Pid>,
    id: std::sync::Arc<str>,
    restart: Restart,
    shutdown: Shutdown,
    order: u64,
    alive: bool,
    /// When the supervisor's `shutdown` signal reached it (µs, event index).
    asked: Option<(u64, usize)>,
}

#[derive(Debug, PartialEq)]
enum Expect {
    Nothing,
    /// The child's exit calls for a restart: the next record must count it.
    Restart(Pid, usize),
    /// The child's exit must not be followed by a restart.
    NoRestart(Pid, usize),
    /// The restart counted at this event exceeded the intensity: the supervisor must give up.
    GiveUp(usize),
}

/// A one_for_all or rest_for_one restart in progress: from the counted restart until it has
/// started (or been ignored by) every child it restarts, or a start failed.
#[derive(Debug)]
struct Group {
    /// The children alive when it began: all must be down before any starts.
    members: BTreeSet<Pid>,
    /// The start order of the children it still has to start.
    to_start: BTreeSet<u64>,
    last_exited: Option<u64>,
    last_started: Option<u64>,
    at: usize,
}

#[derive(Debug)]
struct Sup {
    kind: SupervisorKind,
    intensity: u64,
    period: u64,
    stamps: Vec<u64>,
    children: Vec<ChildRec>,
    expect: Expect,
    group: Option<Group>,
    stopping: Option<(Option<u64>, usize)>,
    /// Children whose last restart attempt failed, so a retry is due (by id; dynamic
    /// children by their last pid).
    restarting: BTreeSet<std::sync::Arc<str>>,
    /// It has counted a restart (so its `init` is over).
    has_restarted: bool,
    alive: bool,
}

impl Sup {
    fn is_static(&self) -> bool {
        self.kind.is_static()
    }

    fn position(&self, pid: Pid) -> Option<usize> {
        self.children.iter().position(|c| c.pid == Some(pid))
    }

    /// Records a child's (re)start or `ignore`: a static child replaces the record of its
    /// place in the start order. Returns the pid the replaced record had.
    fn record(&mut self, rec: ChildRec) -> Option<Pid> {
        let existing = self
            .is_static()
            .then(|| self.children.iter().position(|c| c.order == rec.order))
            .flatten();
        match existing {
            Some(pos) => std::mem::replace(&mut self.children[pos], rec).pid,
            None => {
                self.children.push(rec);
                None
            }
        }
    }

    /// A child was started (or ignored): no retry of it is due any more.
    fn no_retry_due(&mut self, id: &str) {
        if self.is_static() {
            self.restarting.remove(id);
        } else if let Some(any) = self.restarting.iter().next().cloned() {
            // Which dynamic child a restart replaces is not recorded: any will do.
            self.restarting.remove(&any);
        }
    }

    /// The group restart in progress, if the child at `order` is one it still has to start;
    /// a start that is not part of it (an API start after it) ends it.
    fn group_start(&mut self, order: u64) -> Option<&mut Group> {
        if !self.group.as_ref()?.to_start.contains(&order) {
            self.group = None;
        }
        self.group.as_mut()
    }

    /// The child at `order` has been started (or ignored): a group restart that has started
    /// every child it restarts is over.
    fn group_started(&mut self, order: u64) {
        if let Some(g) = self.group.as_mut() {
            g.to_start.remove(&order);
            if g.to_start.is_empty() {
                self.group = None;
            }
        }
    }

    /// How a child whose restart is retried is known: a static child by its id, a dynamic
    /// one by its last pid.
    fn retry_key(&self, pid: Option<Pid>, id: &std::sync::Arc<str>) -> std::sync::Arc<str> {
        if self.is_static() {
            id.clone()
        } else {
            pid.map_or_else(|| "".into(), |p| p.to_string().into())
        }
    }

    fn order_of(&self, pid: Pid) -> Option<u64> {
        self.position(pid).map(|k| self.children[k].order)
    }
}

struct Checker<'a> {
    trace: &'a Trace,
    options: &'a CheckOptions,
    names: BTreeMap<Pid, String>,
    parents: BTreeMap<Pid, Option<Pid>>,
    alive: BTreeSet<Pid>,
    sups: BTreeMap<Pid, Sup>,
    child_of: BTreeMap<Pid, Pid>,
    /// (registry, key) -> holders, with the event that registered each.
    entries: BTreeMap<(Pid, String), Vec<(Pid, usize)>>,
    /// Processes an injected fault hit.
    faulted: BTreeSet<Pid>,
}

/// OTP's `add_restart/3` (docs/behaviours.md item 21): keep the stamps `>= now - period`, add `now`.
fn add_restart(stamps: &mut Vec<u64>, now: u64, period: u64) {
    let threshold = now as i64 - period as i64;
    stamps.retain(|&t| t as i64 >= threshold);
    stamps.push(now);
}

impl<'a> Checker<'a> {
    fn new(trace: &'a Trace, options: &'a CheckOptions) -> Self {
        Checker {
            trace,
            options,
            names: BTreeMap::new(),
            parents: BTreeMap::new(),
            alive: BTreeSet::new(),
            sups: BTreeMap::new(),
            child_of: BTreeMap::new(),
            entries: BTreeMap::new(),
            faulted: BTreeSet::new(),
        }
    }

    fn name(&self, pid: Pid) -> String {
        self.names
            .get(&pid)
            .cloned()
            .unwrap_or_else(|| pid.to_string())
    }

    fn fail(
        &self,
        invariant: Invariant,
        subject: Pid,
        message: String,
        events: Vec<usize>,
    ) -> Result<(), Found> {
        Err(found(invariant, self.name(subject), message, events))
    }

    fn run(&mut self) -> Result<(), Found> {
        let events = self.trace.events();
        let rest_at = self
            .options
            .rest_at
            .unwrap_or(events.len())
            .min(events.len());
        for (i, e) in events.iter().enumerate() {
            if i == rest_at && self.options.at_rest {
                self.at_rest()?;
            }
            self.event(i, e.at_us, &e.kind)?;
        }
        for (&sup, s) in &self.sups {
            if let (true, Expect::Restart(pid, at)) = (s.alive, &s.expect) {
                return self.fail(
                    Invariant::RestartType,
                    sup,
                    format!("{} exited and was never restarted", self.name(*pid)),
                    vec![*at],
                );
            }
        }
        if self.options.at_rest && rest_at == events.len() {
            self.at_rest()?;
        }
        Ok(())
    }

    fn event(&mut self, i: usize, at: u64, kind: &EventKind) -> Result<(), Found> {
        match kind {
            EventKind::Spawn { pid, parent, .. } => {
                self.parents.insert(*pid, *parent);
                self.alive.insert(*pid);
            }
            EventKind::Label { pid, path, .. } => {
                self.names.insert(*pid, path.clone());
            }
            EventKind::Fault { pid, .. } => {
                self.faulted.insert(*pid);
            }
            EventKind::Exit { pid, reason } => self.exit(i, *pid, reason)?,
            EventKind::Signal {
                from,
                to,
                reason,
                outcome,
            } if *outcome != SignalOutcome::Ignored => self.signal(i, at, *from, *to, reason)?,
            EventKind::Supervision { sup, what } => self.supervision(i, at, *sup, what)?,
            EventKind::Report {
                supervisor,
                context,
                reason,
                ..
            } if *context == ReportContext::Shutdown
                && reason.is_atom("reached_max_restart_intensity") =>
            {
                if let Some(s) = self.sups.get(supervisor) {
                    if !matches!(s.expect, Expect::GiveUp(_)) {
                        return self.fail(
                            Invariant::RestartIntensity,
                            *supervisor,
                            format!(
                                "gave up with {} restart(s) in its {} s window; OTP allows {}",
                                s.stamps.len(),
                                s.period,
                                s.intensity
                            ),
                            vec![i],
                        );
                    }
                }
            }
            EventKind::Report {
                supervisor,
                context,
                offender: Offender::Child { pid, id },
                ..
            } if *context == ReportContext::StartError => {
                // OTP reports `start_error` from `init` (the supervisor then fails to start)
                // and from restarts; only the latter leave a retry due.
                if let Some(s) = self.sups.get_mut(supervisor) {
                    // A group restart stops at a child that fails to start (the retry is a
                    // restart of its own).
                    s.group = None;
                    if s.has_restarted {
                        let key = id.clone().or_else(|| pid.map(|p| p.to_string()));
                        s.restarting.insert(key.unwrap_or_default().into());
                    }
                }
            }
            EventKind::RegistryEntry {
                registry,
                unique,
                key,
                pid,
                added,
            } => {
                let holders = self.entries.entry((*registry, key.clone())).or_default();
                if *added {
                    if *unique {
                        if let Some(&(other, at)) = holders
                            .iter()
                            .find(|(h, _)| self.alive.contains(h) && h != pid)
                        {
                            let message = format!(
                                "unique key {key} registered by {} while {} holds it and is alive",
                                self.name(*pid),
                                self.name(other)
                            );
                            return self.fail(Invariant::Registry, *registry, message, vec![at, i]);
                        }
                    }
                    holders.push((*pid, i));
                } else {
                    holders.retain(|(h, _)| h != pid);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn exit(&mut self, i: usize, pid: Pid, reason: &Term) -> Result<(), Found> {
        self.alive.remove(&pid);
        if let Some(sup) = self.child_of.get(&pid).copied() {
            self.child_exit(i, sup, pid, reason)?;
        }
        if let Some(s) = self.sups.get_mut(&pid) {
            s.alive = false;
            // Only a supervisor that terminates (not one killed or crashed abruptly) stops
            // its children first; the others' children die of its link signal.
            let orderly =
                s.stopping.is_some() && !reason.is_atom("killed") && !self.faulted.contains(&pid);
            let orphan = s.children.iter().filter(|_| orderly);
            if let Some(child) = orphan.filter(|c| c.alive).find_map(|c| c.pid) {
                let message = format!("exited before its child {}", self.name(child));
                return self.fail(Invariant::NoOrphans, pid, message, vec![i]);
            }
            if let Expect::Restart(child, at) = s.expect {
                let message = format!("exited without restarting {}", self.name(child));
                return self.fail(Invariant::RestartType, pid, message, vec![at, i]);
            }
            if let Expect::GiveUp(at) = s.expect {
                if !reason.is_atom("shutdown")
                    && !reason.is_atom("killed")
                    && !self.faulted.contains(&pid)
                {
                    let message = format!("gave up with reason {reason}, not shutdown");
                    return self.fail(Invariant::RestartIntensity, pid, message, vec![at, i]);
                }
            }
        }
        Ok(())
    }

    fn child_exit(&mut self, i: usize, sup: Pid, pid: Pid, _reason: &Term) -> Result<(), Found> {
        let Some(s) = self.sups.get_mut(&sup) else {
            return Ok(());
        };
        let Some(pos) = s.position(pid) else {
            return Ok(());
        };
        s.children[pos].alive = false;
        // Only the exits the supervisor caused (it signalled the child) follow its order; a
        // child may also die by itself meanwhile (docs/behaviours.md item 34).
        if s.children[pos].asked.is_none() {
            return Ok(());
        }
        let order = s.children[pos].order;
        let is_static = s.is_static();
        let mut out_of_order = None;
        if let Some(g) = s.group.as_mut().filter(|g| g.members.contains(&pid)) {
            if g.last_exited.is_some_and(|last| order > last) {
                out_of_order = Some(("group restart terminated", g.at));
            }
            g.last_exited = Some(order);
        }
        if let Some((last, at)) = s.stopping.as_mut().filter(|_| is_static) {
            if last.is_some_and(|l| order > l) {
                out_of_order = Some(("shutdown terminated", *at));
            }
            *last = Some(order);
        }
        if let Some((what, at)) = out_of_order {
            let message = format!(
                "{what} {} after a child started before it (not in reverse start order)",
                self.name(pid)
            );
            let invariant = if what.starts_with("group") {
                Invariant::RestartOrder
            } else {
                Invariant::Shutdown
            };
            return self.fail(invariant, sup, message, vec![at, i]);
        }
        Ok(())
    }

    fn signal(
        &mut self,
        i: usize,
        at: u64,
        from: Pid,
        to: Pid,
        reason: &Term,
    ) -> Result<(), Found> {
        if self.child_of.get(&to) != Some(&from) {
            return Ok(());
        }
        let exact = self.options.exact_timing;
        let Some(s) = self.sups.get_mut(&from) else {
            return Ok(());
        };
        let Some(pos) = s.position(to) else {
            return Ok(());
        };
        let c = &mut s.children[pos];
        let problem = match (reason, c.shutdown) {
            (r, Shutdown::BrutalKill) if r.is_atom("shutdown") => {
                Some(("a brutal_kill child was sent shutdown".to_string(), i))
            }
            (r, Shutdown::Infinity) if r.is_atom("kill") => {
                Some(("an infinity child was killed".to_string(), i))
            }
            (r, Shutdown::Timeout(ms)) if r.is_atom("kill") => match c.asked {
                None => Some(("killed without a shutdown signal first".to_string(), i)),
                Some((t0, j))
                    if exact && !(ms * 1000..=ms * 1000 + SLACK_US).contains(&(at - t0)) =>
                {
                    Some((
                        format!(
                            "killed {} µs after its shutdown signal; its shutdown is {ms} ms",
                            at - t0
                        ),
                        j,
                    ))
                }
                _ => None,
            },
            _ => None,
        };
        if c.asked.is_none() && (reason.is_atom("shutdown") || reason.is_atom("kill")) {
            c.asked = Some((at, i));
        }
        if let Some((message, j)) = problem {
            let message = format!("{}: {message}", self.name(to));
            return self.fail(Invariant::Shutdown, from, message, vec![j, i]);
        }
        Ok(())
    }

    fn supervision(&mut self, i: usize, at: u64, sup: Pid, what: &SupEvent) -> Result<(), Found> {
        if let SupEvent::Init {
            kind,
            intensity,
            period,
        } = what
        {
            self.sups.insert(
                sup,
                Sup {
                    kind: *kind,
                    intensity: *intensity,
                    period: *period,
                    stamps: Vec::new(),
                    children: Vec::new(),
                    expect: Expect::Nothing,
                    group: None,
                    stopping: None,
                    restarting: BTreeSet::new(),
                    has_restarted: false,
                    alive: true,
                },
            );
            return Ok(());
        }
        let alive_now = |pid: &Pid| self.alive.contains(pid);
        let names = &self.names;
        let name = |pid: Pid| names.get(&pid).cloned().unwrap_or_else(|| pid.to_string());
        let Some(s) = self.sups.get_mut(&sup) else {
            return Ok(());
        };
        let fail =
            |invariant, message: String, events| Err(found(invariant, name(sup), message, events));
        // An exit that calls for a restart must be counted at once.
        if let Expect::Restart(child, j) = s.expect {
            if !matches!(what, SupEvent::Restart { pid: Some(p), .. } if *p == child) {
                let message = format!("{} exited and was not restarted", name(child));
                return fail(Invariant::RestartType, message, vec![j, i]);
            }
        }
        match what {
            SupEvent::Init { .. } => unreachable!("handled above"),
            SupEvent::Started {
                pid,
                id,
                restart,
                shutdown,
                order,
            } => {
                if let Expect::GiveUp(j) = s.expect {
                    let message = format!(
                        "started {id} after exceeding its intensity ({} in {} s)",
                        s.intensity, s.period
                    );
                    return fail(Invariant::RestartIntensity, message, vec![j, i]);
                }
                let rec = ChildRec {
                    pid: Some(*pid),
                    id: id.clone(),
                    restart: *restart,
                    shutdown: *shutdown,
                    order: *order,
                    alive: alive_now(pid),
                    asked: None,
                };
                if let Some(old) = s.record(rec) {
                    self.child_of.remove(&old);
                }
                self.child_of.insert(*pid, sup);
                s.no_retry_due(id);
                if let Some(g) = s.group_start(*order) {
                    if let Some(&m) = g.members.iter().find(|m| alive_now(m)) {
                        let message = format!(
                            "started {id} while {} of the group being restarted is still alive",
                            name(m)
                        );
                        return fail(Invariant::RestartOrder, message, vec![g.at, i]);
                    }
                    if g.last_started.is_some_and(|last| *order < last) {
                        let message = format!("restarted {id} after a child that comes after it");
                        return fail(Invariant::RestartOrder, message, vec![g.at, i]);
                    }
                    g.last_started = Some(*order);
                }
                s.group_started(*order);
                s.expect = Expect::Nothing;
            }
            SupEvent::Ignored { id, restart, order } => {
                let rec = ChildRec {
                    pid: None,
                    id: id.clone(),
                    restart: *restart,
                    shutdown: Shutdown::Infinity,
                    order: *order,
                    alive: false,
                    asked: None,
                };
                if let Some(old) = s.record(rec) {
                    self.child_of.remove(&old);
                }
                s.no_retry_due(id);
                if let Some(g) = s.group_start(*order) {
                    g.last_started = Some(*order);
                }
                s.group_started(*order);
                s.expect = Expect::Nothing;
            }
            SupEvent::Exited { pid, reason } => {
                s.group = None;
                let Some(pos) = s.position(*pid) else {
                    s.expect = Expect::Nothing;
                    return Ok(());
                };
                let c = &mut s.children[pos];
                c.alive = false;
                s.expect = if c.restart.restarts_after(reason) {
                    Expect::Restart(*pid, i)
                } else {
                    Expect::NoRestart(*pid, i)
                };
            }
            SupEvent::Restart { pid, id } => {
                if let (Expect::NoRestart(child, j), Some(p)) = (&s.expect, pid) {
                    if child == p {
                        let restart = s.position(*p).map(|k| s.children[k].restart);
                        let message = format!(
                            "restarted {} ({}) after an exit that does not call for it",
                            name(*p),
                            restart.map_or(String::new(), |r| r.to_string())
                        );
                        return fail(Invariant::RestartType, message, vec![*j, i]);
                    }
                }
                // A new attempt: it is due again only if this one fails too.
                let key = s.retry_key(*pid, id);
                s.restarting.remove(&*key);
                s.has_restarted = true;
                add_restart(&mut s.stamps, at / 1_000_000, s.period);
                if s.stamps.len() as u64 > s.intensity {
                    s.expect = Expect::GiveUp(i);
                    return Ok(());
                }
                s.expect = Expect::Nothing;
                let from = match s.kind {
                    SupervisorKind::Supervisor(Strategy::RestForOne) => {
                        pid.and_then(|p| s.order_of(p))
                    }
                    _ => Some(0),
                };
                let in_group = |c: &ChildRec| from.is_some_and(|f| c.order >= f);
                let members: BTreeSet<Pid> = s
                    .children
                    .iter()
                    .filter(|c| c.alive && in_group(c))
                    .filter_map(|c| c.pid)
                    .collect();
                // It starts every child of the group again (OTP's `restart_multiple_children`),
                // those stopped or ignored too, except temporary ones, which its terminate step
                // drops (docs/behaviours.md items 30-32).
                let to_start: BTreeSet<u64> = s
                    .children
                    .iter()
                    .filter(|c| in_group(c) && c.restart != Restart::Temporary)
                    .map(|c| c.order)
                    .collect();
                let grouped = s.kind.restarts_a_group();
                if grouped {
                    // A group restart starts every child of the group afresh (OTP's
                    // `terminate_children` sets their pids to `undefined`), so it supersedes
                    // a retry still due for one of them: OTP drops that `try_again_restart`.
                    for c in s.children.iter().filter(|c| in_group(c)) {
                        s.restarting.remove(&c.id);
                    }
                }
                s.group = grouped.then_some(Group {
                    members,
                    to_start,
                    last_exited: None,
                    last_started: None,
                    at: i,
                });
            }
            SupEvent::RetryDropped { pid, id } => {
                let key = s.retry_key(*pid, id);
                s.restarting.remove(&*key);
            }
            SupEvent::Stopping => {
                s.group = None;
                s.stopping = Some((None, i));
                if !matches!(s.expect, Expect::GiveUp(_)) {
                    s.expect = Expect::Nothing;
                }
            }
        }
        Ok(())
    }

    /// End-state checks: nothing restarting, no orphans, no stale registry entries.
    fn at_rest(&self) -> Result<(), Found> {
        for (&sup, s) in &self.sups {
            if let Some(id) = s.restarting.iter().next().filter(|_| s.alive) {
                let message = format!("still restarting {id} after the faults stopped");
                return self.fail(Invariant::Liveness, sup, message, vec![]);
            }
        }
        if let Some(root) = self.options.root {
            for &pid in &self.alive {
                let mut chain = vec![pid];
                let mut at = pid;
                let mut rooted = at == root;
                while let Some(Some(parent)) = self.parents.get(&at).filter(|_| !rooted) {
                    chain.push(*parent);
                    if *parent == root {
                        rooted = true;
                        break;
                    }
                    at = *parent;
                }
                if !rooted {
                    continue;
                }
                if let Some(dead) = chain.iter().find(|p| !self.alive.contains(p)) {
                    let message = format!(
                        "{} is alive but its ancestor {} is not",
                        self.name(pid),
                        self.name(*dead)
                    );
                    return self.fail(Invariant::NoOrphans, pid, message, vec![]);
                }
            }
        }
        for ((registry, key), holders) in &self.entries {
            if !self.alive.contains(registry) {
                continue;
            }
            if let Some(&(dead, at)) = holders.iter().find(|(h, _)| !self.alive.contains(h)) {
                let message = format!("key {key} still names {} after it died", self.name(dead));
                return self.fail(Invariant::Registry, *registry, message, vec![at]);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::add_restart;

    /// docs/behaviours.md items 21-23: OTP keeps the stamps at or after `now - period`.
    #[test]
    fn d21_add_restart_keeps_stamps_within_the_period() {
        let mut stamps = Vec::new();
        for now in [0, 1, 4, 6, 6] {
            add_restart(&mut stamps, now, 5);
        }
        assert_eq!(stamps, vec![1, 4, 6, 6]);
    }
}
