//! The vocabulary of supervision that the trace records and every upper layer shares: restart
//! strategies, restart types, child types, shutdowns, report contexts and injected faults.
//!
//! These are types, not strings, from the supervisor that records them to the invariant
//! checker, the harness and the generators that read them back: a renamed value fails to
//! compile instead of silently switching a check off. Each renders as OTP's atom (or the
//! trace's text) only when a trace is printed or hashed.
//!
//! The supervisor re-exports the ones users write ([`Strategy`], [`Restart`], [`Shutdown`],
//! ...) as `otpsim::supervisor::*`.
//!
//! ```
//! use otpsim::trace::vocab::{Restart, Shutdown, Strategy};
//! use otpsim::term::Term;
//! assert_eq!(Strategy::parse(&Term::atom("rest_for_one")), Ok(Strategy::RestForOne));
//! assert_eq!(Restart::Transient.to_string(), "transient");
//! assert_eq!(Shutdown::Timeout(500).to_string(), "500");
//! assert_eq!(serde_json::to_string(&Shutdown::BrutalKill).unwrap(), "\"brutal_kill\"");
//! ```
//!
//! Every word the trace records is one enum here with its rendering next to it, so a new event's
//! wording is decided in one place (hence the file's length).

use crate::term::{Pid, Term};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// An enum of OTP atoms: parsed from a term with OTP's validation error, printed and
/// (de)serialised as the atom.
macro_rules! atom_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $atom:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $atom)] $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The value named by an atom, or the invalid term (which the caller turns into
            /// OTP's validation error).
            pub fn parse(value: &Term) -> Result<$name, Invalid> {
                match value {
                    $(Term::Atom(a) if a == $atom => Ok($name::$variant),)+
                    other => Err(Invalid(other.clone())),
                }
            }

            /// The atom OTP uses for this value.
            pub fn as_atom(self) -> &'static str {
                match self {
                    $($name::$variant => $atom),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_atom())
            }
        }
    };
}

/// The invalid value of a parsed field (see the `parse` functions); it converts into the
/// matching flags or child-spec error of the supervisor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid(pub Term);

atom_enum!(
    /// Which children a supervisor restarts when one exits (docs/behaviours.md §E).
    Strategy {
        /// Only the exited child.
        OneForOne = "one_for_one",
        /// Every child: the others are terminated, then all are started again.
        OneForAll = "one_for_all",
        /// The exited child and every child started after it.
        RestForOne = "rest_for_one",
        /// Children are instances of one template, added with `start_child` (like one_for_one).
        SimpleOneForOne = "simple_one_for_one",
    }
);

impl Strategy {
    /// Whether a restart terminates and restarts a group of children (one_for_all,
    /// rest_for_one) rather than the exited child alone.
    pub fn restarts_a_group(self) -> bool {
        matches!(self, Strategy::OneForAll | Strategy::RestForOne)
    }
}

atom_enum!(
    /// When an exited child is restarted (docs/behaviours.md §C).
    Restart {
        /// Always.
        Permanent = "permanent",
        /// Only after an abnormal exit (not `normal`, `shutdown` or `{shutdown,_}`).
        Transient = "transient",
        /// Never; the spec is dropped when the child exits.
        Temporary = "temporary",
    }
);

impl Restart {
    /// Whether a child of this restart type that exited with `reason` is restarted
    /// (docs/behaviours.md items 15-17): permanent always, transient unless the reason is
    /// `normal`, `shutdown` or `{shutdown,_}`, temporary never.
    ///
    /// ```
    /// use otpsim::supervisor::Restart;
    /// use otpsim::term::Term;
    /// assert!(Restart::Permanent.restarts_after(&Term::atom("normal")));
    /// assert!(!Restart::Transient.restarts_after(&Term::atom("shutdown")));
    /// assert!(Restart::Transient.restarts_after(&Term::atom("killed")));
    /// assert!(!Restart::Temporary.restarts_after(&Term::atom("boom")));
    /// ```
    pub fn restarts_after(self, reason: &Term) -> bool {
        let normal = reason.is_atom("normal")
            || reason.is_atom("shutdown")
            || matches!(reason, Term::Tuple(items) if items.len() == 2 && items[0].is_atom("shutdown"));
        match self {
            Restart::Permanent => true,
            Restart::Transient => !normal,
            Restart::Temporary => false,
        }
    }
}

atom_enum!(
    /// Whether the child is a worker or a supervisor (decides the default shutdown).
    ChildType {
        /// A worker (default shutdown 5000 ms).
        Worker = "worker",
        /// A supervisor (default shutdown `infinity`).
        Supervisor = "supervisor",
    }
);

atom_enum!(
    /// When the exit of significant children stops the supervisor (docs/behaviours.md §I).
    AutoShutdown {
        /// Never (the default).
        Never = "never",
        /// When any significant child exits by itself and is not restarted.
        AnySignificant = "any_significant",
        /// When the last significant child has exited by itself.
        AllSignificant = "all_significant",
    }
);

atom_enum!(
    /// What a supervisor's error report is about (OTP's `{supervisor, Context}` log events,
    /// docs/behaviours.md item 106).
    ReportContext {
        /// A child exited and is restarted (or not, by its restart type).
        ChildTerminated = "child_terminated",
        /// A child's start function failed.
        StartError = "start_error",
        /// The supervisor gives up (`reached_max_restart_intensity`).
        Shutdown = "shutdown",
        /// A child stopped with a reason its shutdown does not accept.
        ShutdownError = "shutdown_error",
    }
);

/// How a child is stopped (docs/behaviours.md §G). Serialised as OTP writes it in a spec:
/// `"brutal_kill"`, `"infinity"` or the timeout in milliseconds (as a string).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Shutdown {
    /// `exit(Child, kill)` at once.
    BrutalKill,
    /// `exit(Child, shutdown)`, then `kill` after this many milliseconds.
    Timeout(u64),
    /// `exit(Child, shutdown)` and wait as long as it takes.
    Infinity,
}

impl Shutdown {
    /// `brutal_kill`, `infinity` or a non-negative integer; anything else is the invalid
    /// term (`{invalid_shutdown, Value}` in OTP).
    pub fn parse(value: &Term) -> Result<Shutdown, Invalid> {
        match value {
            Term::Atom(a) if a == "brutal_kill" => Ok(Shutdown::BrutalKill),
            Term::Atom(a) if a == "infinity" => Ok(Shutdown::Infinity),
            Term::Int(ms) if *ms >= 0 => Ok(Shutdown::Timeout(*ms as u64)),
            other => Err(Invalid(other.clone())),
        }
    }

    /// OTP's term for it.
    pub fn to_term(self) -> Term {
        match self {
            Shutdown::BrutalKill => Term::atom("brutal_kill"),
            Shutdown::Timeout(ms) => Term::Int(ms as i64),
            Shutdown::Infinity => Term::atom("infinity"),
        }
    }
}

impl fmt::Display for Shutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shutdown::BrutalKill => f.write_str("brutal_kill"),
            Shutdown::Timeout(ms) => write!(f, "{ms}"),
            Shutdown::Infinity => f.write_str("infinity"),
        }
    }
}

impl std::str::FromStr for Shutdown {
    type Err = String;

    fn from_str(s: &str) -> Result<Shutdown, String> {
        match s {
            "brutal_kill" => Ok(Shutdown::BrutalKill),
            "infinity" => Ok(Shutdown::Infinity),
            ms => ms.parse().map(Shutdown::Timeout).map_err(|_| {
                format!("invalid shutdown {s:?}: brutal_kill, infinity or milliseconds")
            }),
        }
    }
}

impl Serialize for Shutdown {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Shutdown {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Shutdown, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What kind of supervisor a trace's `init` event is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SupervisorKind {
    /// OTP's `supervisor` with this strategy.
    Supervisor(Strategy),
    /// Elixir's `DynamicSupervisor` (and `Task.Supervisor`, which is one).
    Dynamic,
}

impl SupervisorKind {
    /// A static supervisor: its children have ids and a start order (one_for_one,
    /// one_for_all, rest_for_one; not simple_one_for_one or a DynamicSupervisor).
    pub fn is_static(self) -> bool {
        matches!(self, SupervisorKind::Supervisor(s) if s != Strategy::SimpleOneForOne)
    }

    /// Whether a restart of this supervisor restarts a group (see [`Strategy::restarts_a_group`]).
    pub fn restarts_a_group(self) -> bool {
        matches!(self, SupervisorKind::Supervisor(s) if s.restarts_a_group())
    }
}

impl fmt::Display for SupervisorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SupervisorKind::Supervisor(s) => s.fmt(f),
            SupervisorKind::Dynamic => f.write_str("dynamic"),
        }
    }
}

/// A fault a simulator injected into a process, as the trace records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// The process exited with this reason by itself, at once.
    Crash(Term),
    /// `exit(Pid, kill)` from outside.
    Kill,
    /// An exit signal with this reason from a process that is neither parent nor linked.
    StrangerSignal(Term),
    /// Crash `n` of `of` of a restart storm.
    StormCrash {
        /// Which crash of the storm (from 1).
        n: u64,
        /// How many crashes the storm has.
        of: u64,
    },
    /// The seeded choice point crashed the process as it took its `n`-th message.
    CrashAtMessage(u64),
    /// Its supervisor's `terminate_child`, then `restart_child`.
    RestartChild,
    /// `stop` with this reason (`gen_server:stop/3`).
    Stop(Term),
    /// A signal from `from` to this process was held for `delay`.
    Delay {
        /// The sender.
        from: Pid,
        /// How long it was held.
        delay: Duration,
    },
}

impl FaultKind {
    /// Whether this is a message delay (which disturbs ordering, not a process).
    pub fn is_delay(&self) -> bool {
        matches!(self, FaultKind::Delay { .. })
    }
}

impl fmt::Display for FaultKind {
    /// The trace's text: pids print as `<0.N>` and reasons in canonical form, as they were
    /// when the fault was injected (no tree paths: the text does not depend on labels).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultKind::Crash(reason) => write!(f, "crash {reason}"),
            FaultKind::Kill => f.write_str("kill"),
            FaultKind::StrangerSignal(reason) => {
                write!(f, "exit signal {reason} from a stranger")
            }
            FaultKind::StormCrash { n, of } => write!(f, "storm crash {n}/{of}"),
            FaultKind::CrashAtMessage(n) => write!(f, "crash at message {n}"),
            FaultKind::RestartChild => f.write_str("terminate_child and restart_child"),
            FaultKind::Stop(reason) => write!(f, "stop {reason}"),
            FaultKind::Delay { from, delay } => {
                write!(f, "delay from {from} {:.3}ms", delay.as_secs_f64() * 1000.0)
            }
        }
    }
}

/// What happened to a cluster's nodes and network, by a fault or a scenario's action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClusterEvent {
    /// A node crashed: its processes ended without exit signals. `silent`: its peers were
    /// not told (they find out by ticks).
    Crash {
        /// The node's index.
        node: u16,
        /// Whether the peers find out only by ticks.
        silent: bool,
    },
    /// A node started again with a new creation.
    Restart {
        /// The node's index.
        node: u16,
        /// Its new creation.
        creation: u16,
    },
    /// A node stopped running (`SIGSTOP`): its processes and timers wait, its links stall.
    Pause {
        /// The node's index.
        node: u16,
    },
    /// A paused node runs again.
    Resume {
        /// The node's index.
        node: u16,
    },
    /// Nothing gets between `side` and the other nodes (one way: from `side` only).
    Partition {
        /// The nodes on one side.
        side: Vec<u16>,
        /// Only the links from `side` stall.
        one_way: bool,
    },
    /// Every partition ended.
    Heal,
    /// For `for_ms`, signals between nodes `a` and `b` take `extra_ms` longer.
    SlowLink {
        /// One node.
        a: u16,
        /// The other.
        b: u16,
        /// The added latency.
        extra_ms: u64,
        /// For how long.
        for_ms: u64,
    },
    /// Node `by` closed its connection to `peer` (`erlang:disconnect_node/1`).
    Disconnect {
        /// The node that disconnected.
        by: u16,
        /// The other node.
        peer: u16,
    },
    /// A node's host lost power: after its silent crash, its disk lost every write it had
    /// not synced.
    PowerFail {
        /// The node's index.
        node: u16,
    },
    /// A node's clock runs `ppm` parts per million fast (negative: slow), from the start
    /// of the run and across its restarts.
    Drift {
        /// The node's index.
        node: u16,
        /// The drift.
        ppm: i32,
    },
    /// A node's wall clock was stepped by `ms` (forward if positive); its monotonic time
    /// and timers were not.
    ClockJump {
        /// The node's index.
        node: u16,
        /// The step.
        ms: i64,
    },
    /// The cluster harness's final heal and quiet period are over: from here on its at-rest
    /// checks (and the cluster invariants' at-rest rules) apply.
    AtRest,
    /// Connections declared down after `net_ticktime` of silence (pairs of nodes).
    TickTimeout {
        /// The pairs, lower index first.
        pairs: Vec<(u16, u16)>,
    },
}

impl ClusterEvent {
    /// The fault family it belongs to, for counting (`None`: not a fault).
    pub fn fault_kind(&self) -> Option<&'static str> {
        Some(match self {
            ClusterEvent::Crash { .. } => "node_crash",
            ClusterEvent::Restart { .. } => "node_restart",
            ClusterEvent::Pause { .. } => "pause",
            ClusterEvent::Partition { .. } => "partition",
            ClusterEvent::Heal => "heal",
            ClusterEvent::Disconnect { .. } => "disconnect",
            ClusterEvent::SlowLink { .. } => "latency_spike",
            ClusterEvent::PowerFail { .. } => "power_fail",
            ClusterEvent::Drift { .. } => "clock_drift",
            ClusterEvent::ClockJump { .. } => "clock_jump",
            ClusterEvent::Resume { .. }
            | ClusterEvent::TickTimeout { .. }
            | ClusterEvent::AtRest => return None,
        })
    }
}

impl fmt::Display for ClusterEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClusterEvent::Crash { node, silent } => {
                let how = if *silent { " (silent)" } else { "" };
                write!(f, "node n{node} crash{how}")
            }
            ClusterEvent::Restart { node, creation } => {
                write!(f, "node n{node} restart creation={creation}")
            }
            ClusterEvent::Pause { node } => write!(f, "node n{node} pause"),
            ClusterEvent::Resume { node } => write!(f, "node n{node} resume"),
            ClusterEvent::Partition { side, one_way } => {
                let way = if *one_way { " one way" } else { "" };
                write!(f, "partition {side:?}{way}")
            }
            ClusterEvent::Heal => f.write_str("heal"),
            ClusterEvent::SlowLink {
                a,
                b,
                extra_ms,
                for_ms,
            } => write!(f, "slow link n{a}-n{b} +{extra_ms}ms for {for_ms}ms"),
            ClusterEvent::Disconnect { by, peer } => write!(f, "disconnect n{by} n{peer}"),
            ClusterEvent::PowerFail { node } => write!(f, "disk n{node} power failure"),
            ClusterEvent::AtRest => f.write_str("at rest"),
            ClusterEvent::Drift { node, ppm } => write!(f, "clock n{node} drift {ppm:+}ppm"),
            ClusterEvent::ClockJump { node, ms } => write!(f, "clock n{node} jump {ms:+}ms"),
            ClusterEvent::TickTimeout { pairs } => {
                f.write_str("connection down")?;
                for (a, b) in pairs {
                    write!(f, " n{a}-n{b}")?;
                }
                f.write_str(" (net_ticktime)")
            }
        }
    }
}

/// What a distributed supervisor or registry did with a name (`cluster::swarm`, and the CP
/// design's): the events the cluster invariants (`sim::cluster_invariants`) read. An instance
/// of a name is a pid, which carries its node and that node's incarnation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DistEvent {
    /// `pid` serves `name` from now on (its node registered it).
    Start {
        /// The name.
        name: String,
        /// The instance.
        pid: Pid,
        /// The ownership epoch of the name's shard its node started it under (the CP
        /// supervisor's shard table; `None` for a design without epochs, such as Swarm's).
        /// I10: a name's starts never go back to an older epoch, and one epoch has one node.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        epoch: Option<u64>,
    },
    /// `name` should run (`on`: a `start_child` succeeded) or not (its `terminate_child` was
    /// acknowledged, or its restart type says it is done).
    Desired {
        /// The name.
        name: String,
        /// Whether it should run.
        on: bool,
    },
    /// `name`'s supervisor allows it `max_restarts` restarts after crashes in any
    /// `max_seconds` (its restart intensity, counted for the name wherever it runs).
    Intensity {
        /// The name.
        name: String,
        /// Restarts allowed in the period.
        max_restarts: u32,
        /// The period, in seconds.
        max_seconds: u32,
    },
    /// Node `node` counts these nodes (itself included) as the cluster's members from now
    /// on: its ring's, its membership's.
    Members {
        /// The node whose view changed.
        node: u16,
        /// The members it sees.
        members: Vec<u16>,
    },
    /// `name`'s instance `pid` joined `group` (its tracker took the request).
    Joined {
        /// The name.
        name: String,
        /// The group.
        group: String,
        /// The instance that joined.
        pid: Pid,
    },
    /// `name`'s instance `pid` left `group` (its tracker took the request).
    Left {
        /// The name.
        name: String,
        /// The group.
        group: String,
        /// The instance that left.
        pid: Pid,
    },
    /// The cluster wants `name` in `group` (`member`), or no longer: whichever instance runs
    /// it is a member (the CP supervisor's groups, committed with its desired children).
    Grouped {
        /// The process groups scope its instances join.
        scope: String,
        /// The name.
        name: String,
        /// The group.
        group: String,
        /// Whether it joins or leaves.
        member: bool,
    },
    /// The cluster registry gave `name` to `pid`, or took it back, as the group committed it
    /// at log position `index` (recorded by the leader that applied it: a position two
    /// leaders applied in turn is recorded twice, and counts once).
    Registered {
        /// The name.
        name: String,
        /// The process that holds it, or held it.
        pid: Pid,
        /// What changed.
        change: NameChange,
        /// The log position.
        index: u64,
    },
    /// Node `node`'s process groups scope `scope` started, listing no member.
    GroupsStarted {
        /// The node.
        node: u16,
        /// The scope.
        scope: String,
    },
    /// Node `node`'s process groups scope `scope` now lists these members of `group` (after
    /// each change).
    GroupMembers {
        /// The node whose view changed.
        node: u16,
        /// The scope.
        scope: String,
        /// The group.
        group: String,
        /// Its members as the node lists them.
        members: Vec<Pid>,
    },
    /// Process `from` sent its message number `seq` to `name`, through the registry: to the
    /// instance `to` the registry had, or nowhere (`None`: it had none, and the message is
    /// dropped).
    Sent {
        /// The sender.
        from: Pid,
        /// The sender's count of its messages, from 0.
        seq: u64,
        /// The name it was sent to.
        name: String,
        /// The instance it went to.
        to: Option<Pid>,
        /// When the send was made, in µs of the trace's time, if known: a send answered
        /// "none" before its name was desired is not lost (not rendered).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        made_us: Option<u64>,
    },
    /// Instance `pid` handled message number `seq` of `from` (one sent by name: [`Sent`](DistEvent::Sent)).
    Handled {
        /// The instance.
        pid: Pid,
        /// The sender.
        from: Pid,
        /// The sender's number of the message.
        seq: u64,
    },
    /// Node `node`'s registry counts `name` in these groups from now on.
    Groups {
        /// The node whose registry changed.
        node: u16,
        /// The name.
        name: String,
        /// Its groups, in that registry.
        groups: Vec<String>,
    },
    /// Node `node`'s registry answers calls from now on (`on`), or holds them until it does
    /// (Swarm's tracker, while it syncs).
    Serving {
        /// The node.
        node: u16,
        /// Whether it answers.
        on: bool,
    },
    /// A lookup of `name` on node `node` (API call `call`) answered `pid` (`None`: no such
    /// name).
    Lookup {
        /// Where it was made.
        node: u16,
        /// The name.
        name: String,
        /// The answer.
        pid: Option<Pid>,
        /// The [`Call`](DistEvent::Call) it answered.
        call: u64,
    },
    /// Node `node`'s registry maps `name` to `pid` from now on (`None`: to nothing).
    View {
        /// The node whose registry changed.
        node: u16,
        /// The name.
        name: String,
        /// The instance it maps to.
        pid: Option<Pid>,
    },
    /// A step of handoff `id`, the move of `name` with its state to another node.
    Handoff {
        /// The handoff.
        id: u64,
        /// The name.
        name: String,
        /// The step.
        phase: HandoffPhase,
    },
    /// Two instances of `name` met after a heal: `loser` goes, and its state reached `winner`
    /// (`resolve_conflict`) or was dropped.
    Conflict {
        /// The name.
        name: String,
        /// The instance that stays.
        winner: Pid,
        /// The instance that goes.
        loser: Pid,
        /// Whether the loser's state was delivered to the winner.
        state_delivered: bool,
    },
    /// An instance of `name` lost a conflict and gave its state, which is to reach the winner
    /// once (the CP supervisor in AP mode, docs/cp.md "AP mode").
    Lost {
        /// The name.
        name: String,
        /// The instance that lost.
        loser: Pid,
    },
    /// API call `id` on node `node` (`what`: `start_child k1`, `whereis k1`, ...), which
    /// should return within `timeout_ms`.
    Call {
        /// The call.
        id: u64,
        /// Where it was made.
        node: u16,
        /// What was called.
        what: String,
        /// Its timeout.
        timeout_ms: u64,
    },
    /// What call `id` returned.
    Return {
        /// The call.
        id: u64,
        /// Its result.
        result: String,
    },
}

/// A step of a handoff ([`DistEvent::Handoff`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HandoffPhase {
    /// The instance `from` is asked to hand its state over to node `to`.
    Begin {
        /// The instance that moves.
        from: Pid,
        /// Where to.
        to: u16,
    },
    /// The state left for the new instance (the old one has been told to stop).
    StateSent,
    /// The state reached the new instance `pid` (`end_handoff`).
    Delivered {
        /// The new instance.
        pid: Pid,
    },
    /// The handoff ended without a move (`why`).
    Aborted {
        /// Why.
        why: String,
    },
}

/// How a name of the cluster registry changed ([`DistEvent::Registered`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NameChange {
    /// A registration was committed.
    On,
    /// An unregistration was.
    Off,
    /// The holder's node was committed down, and its names dropped: it must have ended by
    /// then (its lease lapsed first), or be on a paused node (fenced).
    Dropped,
}

impl DistEvent {
    /// The event as a trace line, naming pids with `n`.
    pub fn render(&self, n: &dyn Fn(&Pid) -> String) -> String {
        match self {
            DistEvent::Start { name, pid, epoch } => match epoch {
                Some(epoch) => format!("managed {name} start {} (epoch {epoch})", n(pid)),
                None => format!("managed {name} start {}", n(pid)),
            },
            DistEvent::Desired { name, on } => {
                format!("desired {name} {}", if *on { "on" } else { "off" })
            }
            DistEvent::Intensity {
                name,
                max_restarts,
                max_seconds,
            } => format!("intensity {name} {max_restarts} in {max_seconds}s"),
            DistEvent::Members { node, members } => {
                let members: Vec<String> = members.iter().map(|k| format!("n{k}")).collect();
                format!("members n{node} {}", members.join(","))
            }
            DistEvent::Joined { name, group, pid } => format!("joined {name} {group} {}", n(pid)),
            DistEvent::Left { name, group, pid } => format!("left {name} {group} {}", n(pid)),
            DistEvent::Grouped {
                scope,
                name,
                group,
                member,
            } => {
                let how = if *member { "in" } else { "out" };
                format!("grouped {scope} {name} {group} {how}")
            }
            DistEvent::Registered {
                name,
                pid,
                change,
                index,
            } => {
                let change = match change {
                    NameChange::On => "on",
                    NameChange::Off => "off",
                    NameChange::Dropped => "dropped",
                };
                format!("registered {name} {} {change} (log {index})", n(pid))
            }
            DistEvent::GroupsStarted { node, scope } => format!("groups n{node} {scope} started"),
            DistEvent::GroupMembers {
                node,
                scope,
                group,
                members,
            } => {
                let members: Vec<String> = members.iter().map(n).collect();
                format!("group n{node} {scope} {group} [{}]", members.join(","))
            }
            DistEvent::Sent {
                from,
                seq,
                name,
                to,
                ..
            } => {
                let to = to.as_ref().map_or_else(|| "none".into(), n);
                format!("sent {} #{seq} {name} -> {to}", n(from))
            }
            DistEvent::Handled { pid, from, seq } => {
                format!("handled {} {} #{seq}", n(pid), n(from))
            }
            DistEvent::Groups { node, name, groups } => {
                format!("groups n{node} {name} [{}]", groups.join(","))
            }
            DistEvent::Serving { node, on } => {
                format!("serving n{node} {}", if *on { "on" } else { "off" })
            }
            DistEvent::Lookup {
                node, name, pid, ..
            } => {
                let to = pid.as_ref().map_or_else(|| "none".into(), n);
                format!("lookup n{node} {name} -> {to}")
            }
            DistEvent::View { node, name, pid } => {
                let to = pid.as_ref().map_or_else(|| "none".into(), n);
                format!("view n{node} {name} -> {to}")
            }
            DistEvent::Handoff { id, name, phase } => {
                let phase = match phase {
                    HandoffPhase::Begin { from, to } => format!("begin {} -> n{to}", n(from)),
                    HandoffPhase::StateSent => "state sent".into(),
                    HandoffPhase::Delivered { pid } => format!("delivered to {}", n(pid)),
                    HandoffPhase::Aborted { why } => format!("aborted: {why}"),
                };
                format!("handoff #{id} {name} {phase}")
            }
            DistEvent::Conflict {
                name,
                winner,
                loser,
                state_delivered,
            } => {
                let state = if *state_delivered {
                    "state delivered"
                } else {
                    "state dropped"
                };
                format!(
                    "conflict {name} winner {} loser {} {state}",
                    n(winner),
                    n(loser)
                )
            }
            DistEvent::Lost { name, loser } => {
                format!("conflict {name} loser {} gave its state", n(loser))
            }
            DistEvent::Call {
                id,
                node,
                what,
                timeout_ms,
            } => format!("api #{id} n{node} {what} (timeout {timeout_ms}ms)"),
            DistEvent::Return { id, result } => format!("api #{id} -> {result}"),
        }
    }
}
