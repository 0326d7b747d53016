//! The CP distributed supervisor (docs/cp.md, "Ownership"): children started by name from any
//! node, each run by the owner of its name's shard, and restarted there when it crashes.
//!
//! Each node runs four processes ([`boot`]): the Raft group's server, which replicates the
//! [`Control`] state (the shard table and the desired children); the keeper and the enforcer
//! of the node's [`Lease`](super::lease); and the supervisor, which runs the desired children of the shards
//! its node owns, under its lease. `start_child` commits the child as desired and then asks
//! its owner for the pid; a node that boots again reads the desired children back from its
//! log and starts its own. Only a shard's owner starts its names, and only while its lease
//! holds; a node that loses its lease stops its children before the majority commits it down
//! and gives its shards to the others, so a name never has two instances whatever the network
//! does. A node on the minority side of a partition cannot commit, and its callers get
//! [`DistError::Unavailable`]. In [`Mode::Ap`] a node keeps its children past its lease, and
//! the conflicts a heal reveals are resolved with the losers' states (`conflicts.rs`).
//!
//! The supervisor's side of planned moves (the leader's proposals, an owner's handover, a
//! target's takeover) is in `moves.rs`, and messages routed by name ([`DistRef::send`]) in
//! `route.rs`; this file holds the settings, the API and the reconciliation that ties them.
//!
//! ```
//! # #[cfg(madsim)] {
//! use otpsim::cluster::cp::supervisor::{self, DistConfig, DistError};
//! use otpsim::rt::Duration;
//! use otpsim::sim::cluster::ClusterSim;
//! use otpsim::Term;
//!
//! let report = ClusterSim::new(1).nodes(3).run(|ctl| async move {
//!     let config = DistConfig::new("devices", [1, 2, 3]);
//!     for k in 1..=3 {
//!         let node = ctl.node(k);
//!         node.register_start("device", |p, _| async move {
//!             let _ = p.recv().await;
//!         });
//!         supervisor::boot(&node, config.clone()).unwrap();
//!     }
//!     ctl.sleep(Duration::from_secs(3)).await;
//!     let dsup = config.handle();
//!     let (started, again, found) = ctl
//!         .on(2, move |p| async move {
//!             let arg = Term::atom("nil");
//!             let started = dsup.start_child(&p, "device-42", "device", arg.clone()).await;
//!             let again = dsup.start_child(&p, "device-42", "device", arg).await;
//!             (started, again, dsup.whereis(&p, "device-42").await)
//!         })
//!         .await
//!         .unwrap();
//!     let pid = started.unwrap();
//!     assert_eq!(again, Err(DistError::AlreadyStarted(pid)));
//!     assert_eq!(found, Some(pid));
//! });
//! assert_eq!(report.failure(), None);
//! # }
//! ```

mod cache;
mod conflicts;
mod moves;
mod names;
mod route;

pub use cache::Announce;
pub use names::NamesPeer;
pub use route::{Letter, Route, Waiting};

use super::consensus::{self, Lead, RaftConfig};
use super::control::{Answer, Child, Command, Control, Outcome, Query};
use super::handoff::{self, Begun, Handed, Handover, Outgoing};
use super::lease::{self, Lease};
use crate::cluster::recorded::recorded;
use crate::cluster::Groups;
use crate::rt::Duration;
use crate::server::{self, CallReply, From, GenServer, Init, Next, ServerRef};
use crate::trace::{DistEvent, EventKind};
use crate::{ExitReason, Msg, Node, Pid, Process, Term};
use route::Held;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A distributed supervisor's settings, the same on every node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DistConfig {
    /// The supervisor's registered name on each node.
    pub name: String,
    /// Its Raft group (named `{name}.raft`).
    pub raft: RaftConfig,
    /// Shards of names (fixed for the life of the cluster).
    pub shards: u16,
    /// Restarts of a child allowed within `max_seconds` before its owner gives up on it.
    pub max_restarts: u32,
    /// The window of `max_restarts`.
    pub max_seconds: u32,
    /// How long an API call waits for the group or an owner.
    pub timeout: Duration,
    /// A node's lease, as its group's leader counts it (see [`super::lease`]).
    pub lease: Duration,
    /// How much shorter a node counts its own lease, for clocks that run at different rates.
    pub drift_margin: Duration,
    /// How much longer the leader waits, after a node's lease ran out, before it commits the
    /// node down and gives its shards to others.
    pub fencing_margin: Duration,
    /// How long a child has to give its state in a move before it is killed (see
    /// [`super::handoff`]).
    pub handoff_timeout: Duration,
    /// How long a move may take before the leader aborts it.
    pub max_handoff: Duration,
    /// The message types [`DistRef::send`] can route by name, the same on every node.
    pub messages: crate::dist::Codec,
    /// What a node cut off from the majority does with its children: stop them ([`Mode::Cp`],
    /// the default) or keep them ([`Mode::Ap`]).
    pub mode: Mode,
}

/// What a distributed supervisor gives up in a partition (docs/cp.md, "AP mode"; SWARM.md
/// §4.1, in this repository's docs/cluster-invariants.md terms: I1 always, or I1 at rest
/// and I7).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// A name never has two instances: a node that loses its lease stops its children
    /// before the majority starts them elsewhere, so a minority side runs nothing.
    #[default]
    Cp,
    /// Each side of a partition keeps its children: a node that loses its lease keeps
    /// running them, and the majority starts them elsewhere too. When the cut-off node
    /// learns that its shards went to others, each of its instances loses the conflict: its
    /// state ([`Handoff::begin_handoff`](crate::cluster::handoff::Handoff::begin_handoff))
    /// goes to the instance the committed table places, given once
    /// ([`Handoff::resolve_conflict`](crate::cluster::handoff::Handoff::resolve_conflict)),
    /// and it stops.
    Ap,
}

impl DistConfig {
    /// The supervisor `name` on `nodes` (each a voter of its group), with 64 shards, OTP's
    /// default intensity (3 restarts in 5 s) per child, 5 s calls, 3 s leases with a
    /// drift margin of 0.5 s and a fencing margin of 1 s (docs/cp.md, "Leases"), 2 s for a
    /// child to give its state in a move and 5 s for a move (docs/cp.md, "Handoff"), and
    /// only [`Term`]s to send by name ([`DistConfig::message`] adds types).
    pub fn new(name: &str, nodes: impl IntoIterator<Item = u16>) -> DistConfig {
        DistConfig {
            name: name.to_string(),
            raft: RaftConfig::new(&format!("{name}.raft"), nodes),
            shards: 64,
            max_restarts: 3,
            max_seconds: 5,
            timeout: Duration::from_secs(5),
            lease: Duration::from_secs(3),
            drift_margin: Duration::from_millis(500),
            fencing_margin: Duration::from_secs(1),
            handoff_timeout: Duration::from_secs(2),
            max_handoff: Duration::from_secs(5),
            messages: crate::dist::Codec::new(),
            mode: Mode::Cp,
        }
    }

    /// The same settings in AP mode ([`Mode::Ap`]): each side of a partition keeps its
    /// children, and a heal resolves the conflicts.
    ///
    /// ```
    /// use otpsim::cluster::cp::supervisor::{DistConfig, Mode};
    /// assert_eq!(DistConfig::new("devices", [1, 2, 3]).ap().mode, Mode::Ap);
    /// ```
    pub fn ap(mut self) -> DistConfig {
        self.mode = Mode::Ap;
        self
    }

    /// The same settings, with messages of type `T` routed by name ([`DistRef::send`]) under
    /// `tag` (on the wire, between nodes).
    ///
    /// ```
    /// use otpsim::cluster::cp::supervisor::DistConfig;
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Reading(f64);
    /// let config = DistConfig::new("devices", [1, 2, 3]).message::<Reading>("reading");
    /// assert!(config.messages.encode(&Reading(21.5)).is_ok());
    /// ```
    pub fn message<T>(mut self, tag: &str) -> DistConfig
    where
        T: Serialize + serde::de::DeserializeOwned + Send + 'static,
    {
        self.messages.register::<T>(tag);
        self
    }

    /// Whether the settings can work: `Err` says which does not.
    ///
    /// ```
    /// use otpsim::cluster::cp::supervisor::{DistConfig, DistConfigError};
    /// use otpsim::rt::Duration;
    /// let mut config = DistConfig::new("devices", [1, 2, 3]);
    /// assert_eq!(config.check(), Ok(()));
    /// config.drift_margin = Duration::from_secs(3);
    /// assert_eq!(config.check(), Err(DistConfigError::LeaseTooShort));
    /// ```
    pub fn check(&self) -> Result<(), DistConfigError> {
        if self.raft.voters.is_empty() {
            return Err(DistConfigError::NoVoters);
        }
        if self.shards == 0 {
            return Err(DistConfigError::NoShards);
        }
        // A day: a longer lease is a mistake, and the sums of durations stay far from overflow.
        let day = Duration::from_secs(86_400);
        if self.lease > day {
            return Err(DistConfigError::TooLong);
        }
        // What a node counts must outlast a renewal period and leave room to start a child.
        let counted = self.lease.saturating_sub(self.drift_margin);
        if counted <= self.lease / 3 + lease::START_WITHIN {
            return Err(DistConfigError::LeaseTooShort);
        }
        let durations = [
            self.lease,
            self.fencing_margin,
            self.timeout,
            self.max_handoff,
        ];
        if durations.iter().any(|d| *d > day) {
            return Err(DistConfigError::TooLong);
        }
        if self.max_handoff <= self.handoff_timeout + SHUTDOWN_GRACE {
            return Err(DistConfigError::HandoffTooShort);
        }
        if self.timeout.is_zero() {
            return Err(DistConfigError::NoTimeout);
        }
        Ok(())
    }

    /// The name of the process groups scope each node's supervisor runs, where the children
    /// it runs join their groups ([`DistRef::join_group`]).
    pub fn groups_scope(&self) -> String {
        format!("{}_groups", self.name)
    }

    /// The name of each node's cache of where the children run, which
    /// [`DistRef::whereis`] reads first.
    pub fn cache_name(&self) -> String {
        format!("{}.cache", self.name)
    }

    /// The name of each node's name server, which follows the cluster registry
    /// ([`DistRef::register`], [`DistRef::whereis_name`]).
    pub fn names_name(&self) -> String {
        format!("{}.names", self.name)
    }

    /// A handle for the API calls.
    pub fn handle(&self) -> DistRef {
        DistRef {
            name: self.name.clone(),
            cache: self.cache_name(),
            names: self.names_name(),
            scope: self.groups_scope(),
            group: self.raft.name.clone(),
            timeout: self.timeout,
            messages: self.messages.clone(),
        }
    }
}

/// Why a [`DistConfig`] cannot work ([`DistConfig::check`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DistConfigError {
    /// The Raft group has no voters.
    #[error("the supervisor's group has no voters")]
    NoVoters,
    /// What a node counts of its lease (`lease - drift_margin`) does not outlast a renewal
    /// period (a third of the lease) and the 0.5 s a start needs: children would seldom run.
    #[error("the lease less its drift margin must exceed a third of the lease and 0.5 s")]
    LeaseTooShort,
    /// No shards.
    #[error("the supervisor has no shards")]
    NoShards,
    /// A lease, margin or timeout longer than a day.
    #[error("a lease, margin or timeout longer than a day")]
    TooLong,
    /// A zero timeout: no call could succeed.
    #[error("the call timeout is zero")]
    NoTimeout,
    /// A move would be aborted before its children had the time to give their state, or to
    /// stop when they do not (`max_handoff` must exceed `handoff_timeout` and the 1 s a child
    /// is given to shut down).
    #[error("the longest a move may take must exceed the handoff timeout and 1 s")]
    HandoffTooShort,
}

/// Starts the distributed supervisor on `node`: its Raft group's server, its lease's keeper
/// and enforcer, and the supervisor, at the node's first boot and at every restart. Nothing
/// starts if the settings cannot work ([`DistConfig::check`]).
pub fn boot(node: &Node, config: DistConfig) -> Result<(), DistConfigError> {
    config.check()?;
    let (raft, shards) = (config.raft.clone(), config.shards);
    let control = Control::new(shards, config.max_restarts, config.max_seconds)
        .groups_scope(config.groups_scope());
    node.spawn(move |p| consensus::serve(p, raft, control));
    let lease = Lease::default();
    let (keeper, kept) = (config.clone(), lease.clone());
    node.spawn(move |p| lease::keep(p, keeper, kept));
    let enforced = lease.clone();
    node.spawn(move |p| lease::enforce(p, enforced));
    let names = (config.cache_name(), config.name.clone());
    node.spawn(move |p| server::serve::<cache::Cache>(p, names));
    let names = (
        config.names_name(),
        config.raft.name.clone(),
        config.timeout,
        lease.clone(),
    );
    node.spawn(move |p| server::serve::<names::NameServer>(p, names));
    node.spawn(move |p| serve(p, config, lease));
    Ok(())
}

/// Registers what a distributed supervisor's nodes send each other in `codec`: its Raft
/// group's messages and calls (lease requests included), and the supervisors' calls. What a
/// node needs to run it over a real network (`dist::tcp`).
///
/// ```
/// let mut codec = otpsim::dist::Codec::new();
/// otpsim::cluster::cp::supervisor::codec(&mut codec);
/// let frame = otpsim::cluster::cp::consensus::RaftWire(vec![1, 2, 3]);
/// let bytes = codec.encode(&frame).unwrap();
/// assert!(codec.decode("raft_wire", &bytes).is_ok());
/// ```
pub fn codec(codec: &mut crate::dist::Codec) -> &mut crate::dist::Codec {
    consensus::codec::<Control>(codec, "cp_raft");
    server::register_calls::<DistSupervisor>(codec, "cp_supervisor");
    codec.register::<Peer>("cp_peer");
    codec.register::<Announce>("cp_announce");
    codec.register::<NamesPeer>("cp_names");
    server::register_calls::<names::NameServer>(codec, "cp_names_server");
    crate::cluster::groups::codec(codec)
}

/// Why an API call failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum DistError {
    /// A child of that name runs already: this one.
    #[error("already started: {0}")]
    AlreadyStarted(Pid),
    /// No child of that name is desired (or, in the registry, no process holds the name).
    #[error("no such child")]
    NotFound,
    /// Another process holds the name in the cluster registry: this one.
    #[error("already registered: {0}")]
    AlreadyRegistered(Pid),
    /// The group cannot commit from here (a minority side of a partition, or no leader yet),
    /// or the child's owner did not answer in time.
    #[error("unavailable: the cluster cannot decide from here")]
    Unavailable,
    /// No start function of that name is registered on this node (it must be on every node).
    #[error("no start function {0:?} is registered on this node")]
    UnknownStart(String),
    /// The message cannot be routed: its type is not registered in the supervisor's
    /// messages ([`DistConfig::message`]), or the owner could not decode it.
    #[error("{0}")]
    Codec(String),
    /// The child's owner has no start function of that name (it must be on every node): the
    /// child is not started, and no longer desired.
    #[error("no start function {start:?} is registered on n{node}, the child's owner")]
    StartMissingOn {
        /// The start function.
        start: String,
        /// The owner that lacks it.
        node: u16,
    },
}

/// The API of a distributed supervisor, usable from any node ([`DistConfig::handle`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DistRef {
    name: String,
    /// Each node's cache of where the children run.
    cache: String,
    /// Each node's name server (the cluster registry).
    names: String,
    /// The process groups scope of each node.
    scope: String,
    /// The Raft group.
    group: String,
    timeout: Duration,
    messages: crate::dist::Codec,
}

impl DistRef {
    /// Starts the child `name` from the start function `start` (registered on every node)
    /// with `arg`, on the owner of its shard, and returns its pid once it runs; a child of
    /// that name that runs already is [`DistError::AlreadyStarted`].
    pub async fn start_child(
        &self,
        p: &Process,
        name: &str,
        start: &str,
        arg: Term,
    ) -> Result<Pid, DistError> {
        if !p.node().has_start(start) {
            return Err(DistError::UnknownStart(start.to_string()));
        }
        let child = Child {
            start: start.to_string(),
            arg,
        };
        let command = Command::Start {
            name: name.to_string(),
            child,
        };
        match self.commit(p, command).await?.1 {
            Outcome::Desired { owner } => self.running(p, name, owner).await,
            Outcome::AlreadyDesired { owner } => {
                let pid = self.running(p, name, owner).await?;
                Err(DistError::AlreadyStarted(pid))
            }
            _ => Err(DistError::Unavailable),
        }
    }

    /// Stops the child `name` and forgets it: it is not restarted anywhere. Returns once its
    /// owner has stopped it ([`DistError::Unavailable`] if the owner does not say so in time:
    /// it stops it when it can).
    pub async fn terminate_child(&self, p: &Process, name: &str) -> Result<(), DistError> {
        let command = Command::Terminate {
            name: name.to_string(),
        };
        match self.commit(p, command).await {
            Ok((index, Outcome::Terminated { owner })) => {
                let Some(owner) = owner else {
                    return Ok(());
                };
                self.settled(p, owner, index).await
            }
            Ok((_, Outcome::NotDesired)) => Err(DistError::NotFound),
            Ok(_) | Err(_) => Err(DistError::Unavailable),
        }
    }

    /// The child `name`'s pid, from this node's cache of what the owners announced
    /// (without a message over the network), else [asked of its
    /// owner](Self::whereis_authoritative): `None` if it does not run (or the owner cannot be
    /// asked). A cached instance is one this node has not seen end: a cache forgets an
    /// instance at its `DOWN`, and a lookup asked after the `DOWN` reached the node never
    /// answers it (docs/cp.md, "Lookups"). Returns within three times the call timeout.
    pub async fn whereis(&self, p: &Process, name: &str) -> Option<Pid> {
        let what = format!("whereis {name}");
        let body = async {
            let me = p.pid().node();
            let to = Some(self.timeout);
            let asked = name.to_string();
            match ServerRef::<cache::Cache>::call_named(p, &self.cache, me, asked, to).await {
                Ok(Some(pid)) => Some(pid),
                Ok(None) | Err(_) => self.ask_owner(p, name).await,
            }
        };
        self.lookup(p, name, what, 3, body).await
    }

    /// The child `name`'s pid, asked of its shard's owner (which the node's applied state
    /// names): `None` if it does not run, or the owner cannot be asked. Returns within twice
    /// the call timeout.
    pub async fn whereis_authoritative(&self, p: &Process, name: &str) -> Option<Pid> {
        let what = format!("whereis_authoritative {name}");
        self.lookup(p, name, what, 2, self.ask_owner(p, name)).await
    }

    /// A lookup of `name` that returns within `calls` call timeouts, recorded
    /// (docs/cluster-invariants.md, I4 and I9).
    async fn lookup(
        &self,
        p: &Process,
        name: &str,
        what: String,
        calls: u32,
        body: impl std::future::Future<Output = Option<Pid>>,
    ) -> Option<Pid> {
        let shown =
            |pid: &Option<Pid>| pid.map_or_else(|| "undefined".to_string(), |p| p.to_string());
        let (call, pid) = recorded(p, what, self.timeout * calls, body, shown).await;
        crate::cluster::recorded::lookup(p, name, pid, call);
        pid
    }

    async fn ask_owner(&self, p: &Process, name: &str) -> Option<Pid> {
        let owner = self.owner(p, name).await?;
        let call = Call::Whereis(name.to_string());
        let to = Some(self.timeout);
        match ServerRef::<DistSupervisor>::call_named(p, &self.name, owner, call, to).await {
            Ok(Ok(pid)) => pid,
            Ok(Err(_)) | Err(_) => None,
        }
    }

    /// Sends `msg` to the child `name`, wherever it runs, and returns the instance it went
    /// to. Messages of one sender to one name are delivered in the order sent, once: while the
    /// child restarts or moves to another node they are held, and delivered to its next
    /// instance (a move's after its predecessor's state). [`DistError::NotFound`] if no child
    /// of that name is desired, [`DistError::Codec`] for a type not registered
    /// ([`DistConfig::message`]), [`DistError::Unavailable`] if no instance took it in time.
    pub async fn send<T: Serialize + Send + 'static>(
        &self,
        p: &Process,
        name: &str,
        msg: T,
    ) -> Result<Pid, DistError> {
        crate::dist::note_type::<T>();
        let (tag, bytes) = self
            .messages
            .encode_tagged(&msg)
            .map_err(|e| DistError::Codec(e.to_string()))?;
        let letter = Letter {
            tag: tag.to_string(),
            bytes,
        };
        let owner = self.owner(p, name).await.ok_or(DistError::Unavailable)?;
        let name = name.to_string();
        // Half the call's time: whatever holds it or routes it on gives up with room to
        // spare, so that it is not delivered after its sender was told it was not (and sent
        // another).
        let route = Route {
            hops: 0,
            budget_ms: (self.timeout / 2).as_millis() as u64,
        };
        let call = Call::Deliver {
            name,
            letter,
            route,
        };
        let to = Some(self.timeout);
        match ServerRef::<DistSupervisor>::call_named(p, &self.name, owner, call, to).await {
            Ok(Ok(Some(pid))) => Ok(pid),
            Ok(Ok(None)) => Err(DistError::NotFound),
            Ok(Err(why)) => Err(DistError::Codec(why)),
            Err(_) => Err(DistError::Unavailable),
        }
    }

    /// Node `node` leaves gracefully: its shards move to the other nodes, each child with the
    /// state it gives ([`super::handoff`]), and it is given none until it [joins](Self::join)
    /// again. Returns once it owns nothing ([`DistError::Unavailable`] if that takes longer
    /// than the call timeout: the moves go on).
    pub async fn leave(&self, p: &Process, node: u16) -> Result<(), DistError> {
        self.commit(p, Command::Leave(node)).await?;
        let to = Some(self.timeout);
        match ServerRef::<DistSupervisor>::call_named(p, &self.name, node, Call::Drained, to).await
        {
            Ok(_) => Ok(()),
            Err(_) => Err(DistError::Unavailable),
        }
    }

    /// Node `node`, which [left](Self::leave), takes shards again: those it first owned move
    /// back to it.
    pub async fn join(&self, p: &Process, node: u16) -> Result<(), DistError> {
        self.commit(p, Command::Join(node)).await.map(|_| ())
    }

    /// Makes the child `name` a member of the process group `group`, whichever node runs it
    /// and across its restarts and moves: its instance is listed by [`members`](Self::members)
    /// on every node connected to its owner (Erlang's `pg` semantics, [`Groups`]). A child is
    /// in a group or not: joining twice is one membership. Returns once its owner has acted
    /// on it (the instance it runs, if any, joined); [`DistError::NotFound`] if no child of
    /// that name is desired; [`DistError::Unavailable`] if the owner does not say so in time,
    /// though the membership may be committed, and then holds.
    pub async fn join_group(&self, p: &Process, name: &str, group: &str) -> Result<(), DistError> {
        self.group_change(p, name, group, true).await
    }

    /// The child `name` is no longer a member of `group` (`Ok` if it was not).
    pub async fn leave_group(&self, p: &Process, name: &str, group: &str) -> Result<(), DistError> {
        self.group_change(p, name, group, false).await
    }

    /// The instances in `group` as the caller's node sees them: those of the nodes it is
    /// connected to; [`DistError::Unavailable`] if the node's supervisor does not run.
    pub async fn members(&self, p: &Process, group: &str) -> Result<Vec<Pid>, DistError> {
        Groups::members_of(p, &self.scope, group)
            .await
            .map_err(|_| DistError::Unavailable)
    }

    async fn group_change(
        &self,
        p: &Process,
        name: &str,
        group: &str,
        member: bool,
    ) -> Result<(), DistError> {
        let command = Command::Group {
            name: name.to_string(),
            group: group.to_string(),
            member,
        };
        match self.commit(p, command).await {
            Ok((index, Outcome::Grouped { owner })) => {
                let Some(owner) = owner else {
                    return Ok(());
                };
                self.settled(p, owner, index).await
            }
            Ok((_, Outcome::NotDesired)) => Err(DistError::NotFound),
            Ok(_) | Err(_) => Err(DistError::Unavailable),
        }
    }

    /// Commits `command` through this node's server of the group: its log position and
    /// outcome, or [`DistError::Unavailable`] (a minority side, or no leader in time).
    async fn commit(&self, p: &Process, command: Command) -> Result<(u64, Outcome), DistError> {
        let me = p.pid().node();
        consensus::propose::<Control>(p, &self.group, me, command, self.timeout)
            .await
            .map_err(|_| DistError::Unavailable)
    }

    /// Returns once `owner` has acted on the log up to `index`.
    async fn settled(&self, p: &Process, owner: u16, index: u64) -> Result<(), DistError> {
        let call = Call::Settled(index);
        let to = Some(self.timeout);
        match ServerRef::<DistSupervisor>::call_named(p, &self.name, owner, call, to).await {
            Ok(_) => Ok(()),
            Err(_) => Err(DistError::Unavailable),
        }
    }

    /// The owner of `name`'s shard, as this node's applied state says.
    async fn owner(&self, p: &Process, name: &str) -> Option<u16> {
        let me = p.pid().node();
        let query = Query::Owner(name.to_string());
        match consensus::query::<Control>(p, &self.group, me, query, self.timeout).await {
            Ok(Answer::Owner(owner)) => owner,
            Ok(_) | Err(_) => None,
        }
    }

    /// The pid of `name` once its owner runs it.
    async fn running(&self, p: &Process, name: &str, owner: Option<u16>) -> Result<Pid, DistError> {
        // Before the table is assigned, the owner is known only from this node's state.
        let owner = match owner {
            Some(owner) => owner,
            None => self.owner(p, name).await.ok_or(DistError::Unavailable)?,
        };
        let call = Call::Await(name.to_string());
        let to = Some(self.timeout);
        match ServerRef::<DistSupervisor>::call_named(p, &self.name, owner, call, to).await {
            Ok(Ok(Some(pid))) => Ok(pid),
            Ok(Err(start)) => Err(DistError::StartMissingOn { start, node: owner }),
            Ok(Ok(None)) | Err(_) => Err(DistError::Unavailable),
        }
    }
}

/// A node's supervisor's answer: a pid (or none), or the start function it lacks to start
/// the child asked about.
pub type Reply = Result<Option<Pid>, String>;

/// A request to a node's supervisor.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Call {
    /// The pid of a child this node runs, once it runs.
    Await(String),
    /// The pid of a child this node runs, now.
    Whereis(String),
    /// Answered once this node has acted on the log up to this position.
    Settled(u64),
    /// A message for the child `name`, to deliver to it here or to route on.
    Deliver {
        /// The child.
        name: String,
        /// The message.
        letter: Letter,
        /// How far it may still go.
        route: Route,
    },
    /// Answered once this node owns no shard.
    Drained,
}

/// What supervisors send each other.
#[derive(Serialize, Deserialize)]
pub enum Peer {
    /// An owner's children, stopped for its moves to this node.
    Handover(Handover),
    /// A message or a caller routed on to the node that owns the child now.
    Forward {
        /// The child.
        name: String,
        /// What waits for it.
        waiting: Waiting,
        /// The call, answered by whoever delivers it.
        from: From<Reply>,
        /// How far it may still go.
        route: Route,
    },
    /// A node's cache asks what this node runs: each child is announced to `reply`.
    Snapshot {
        /// The cache.
        reply: Pid,
    },
    /// AP mode: an instance of `name` lost a conflict, with its state, for the instance this
    /// node runs.
    Resolve {
        /// The child.
        name: String,
        /// The instance that lost.
        loser: Pid,
        /// Its state.
        state: Term,
    },
}

/// A child's time to give its state is up: it is told to shut down, then killed after a
/// grace.
struct HandoffTimeout {
    pid: Pid,
    id: u64,
    kill: bool,
}

/// A child told to stop had its grace: killed if it still runs.
struct KillStopping(Pid);

/// How long a child told to stop (`shutdown`) has before it is killed, as OTP gives a worker
/// a shutdown timeout before its `kill` (docs/behaviours.md).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// The supervisor's timer: reconcile with the group's state now and then.
struct Tick;

/// Reconcile now: something was applied.
struct Kick;

/// A child this node runs.
struct Running {
    pid: Pid,
    /// The groups it joined in the node's process groups.
    groups: BTreeSet<String>,
}

/// The supervisor on one node (see the [module](self) documentation).
pub struct DistSupervisor {
    config: DistConfig,
    /// The node's process groups, where the children it runs join their groups, and the
    /// scope's process.
    groups: Groups,
    scope: Pid,
    /// The node's lease: children start only under it, and stop when it lapses (in CP mode).
    lease: Lease,
    children: BTreeMap<String, Running>,
    /// Children that crashed, whose crash the group has not counted yet: not restarted until
    /// it has (a side without a majority restarts nothing). Kept on the node's disk, so that
    /// a crash the node could not report before it went down is counted when it boots.
    /// Each with its crash's number (with this supervisor's pid, the crash's id).
    crashed: BTreeMap<String, u64>,
    /// The number of the next crash.
    crashes: u64,
    /// Children whose restart the group granted, with when it was asked and the crash: made
    /// only within the grant slack of the asking, or asked again.
    granted: BTreeMap<String, (crate::rt::Instant, u64)>,
    /// Children whose start function this node lacks, with it: not started here.
    failed: BTreeMap<String, String>,
    /// Callers waiting for this node to act on the log up to a position.
    settling: Vec<(u64, From<Reply>)>,
    /// Callers waiting for this node to own no shard.
    draining: Vec<From<Reply>>,
    /// Messages routed by name and callers, waiting for their child to run (or to be
    /// routed on).
    held: BTreeMap<String, Vec<Held>>,
    /// The moves of this node's shards, by shard.
    outgoing: BTreeMap<u16, Outgoing>,
    /// The children handed over for moves to this node, by shard and epoch of the move.
    received: BTreeMap<(u16, u64), Vec<Handed>>,
    /// The moves to this node in transit at its last reconciliation (shard, epoch): a
    /// handover is kept only for one of those.
    incoming: BTreeSet<(u16, u64)>,
    /// Children told to stop (no longer this node's to run), until they exit: their names
    /// start nowhere meanwhile.
    stopping: BTreeMap<Pid, String>,
    /// Children handed over to this node, to start without counting a restart (and given
    /// their state, if any), by name.
    handed_in: BTreeMap<String, Handed>,
    /// On the leader: when it first saw each move in transit (by shard and epoch).
    transit_seen: BTreeMap<(u16, u64), crate::rt::Instant>,
    /// On the leader: shards whose move it aborted, not moved again before the instant, and
    /// the wait after the next abort.
    backoff: BTreeMap<u16, (crate::rt::Instant, Duration)>,
    /// The log position the last reconciliation acted on.
    reconciled: u64,
    watching: bool,
    /// A `Kick` is in the mailbox.
    kicked: bool,
    /// This incarnation has caught up with the group.
    booted: bool,
    /// The shards this node owned at its last reconciliation, with their epochs.
    shards: BTreeMap<u16, u64>,
    /// AP mode: the losers' states this node sends to their name's owner until the group
    /// resolved them (of its own instances that lost a conflict, and those it passed on);
    /// the losers' states received, to give at the next reconciliation; those whose
    /// resolution this node proposed without hearing the outcome (unsure); those committed
    /// while their winner ended, owed to the name's next instance; and those of the last two
    /// kinds whose name left this node, to release and pass on.
    losing: BTreeMap<Pid, conflicts::Losing>,
    resolving: BTreeMap<Pid, (String, Term)>,
    unsure: BTreeMap<Pid, (String, Term)>,
    owed: BTreeMap<String, Vec<(Pid, Term)>>,
    returning: BTreeMap<Pid, conflicts::Returning>,
    /// AP mode: the losers whose state this life gave.
    given: BTreeSet<Pid>,
}

/// Runs the supervisor on this node as the calling process, its children under `lease` (see
/// [`boot`]).
pub async fn serve(p: Process, config: DistConfig, lease: Lease) -> ExitReason {
    server::serve::<DistSupervisor>(p, (config, lease)).await
}

/// How long a supervisor waits for the majority to confirm its state before it starts a child.
const FRESH_WITHIN: Duration = Duration::from_secs(1);

/// How often a supervisor reconciles with its group when nothing is applied.
const RECONCILE_EVERY: Duration = Duration::from_millis(500);

impl DistSupervisor {
    /// Starts what this node should run and does not, stops what it runs and should not,
    /// hands over what moves away and takes what moves here.
    async fn reconcile(&mut self, p: &Process) {
        let (group, timeout) = (self.config.raft.name.clone(), self.config.timeout);
        let me = p.pid().node();
        if !self.watching {
            self.watching = consensus::watch::<Control>(p, &group, me, timeout).await;
        }
        // The nodes stay fully connected, as Erlang clusters are (`global`'s `connect_all`):
        // process groups see only the members of the nodes they are connected to.
        let connected = p.node().nodes();
        for &k in &self.config.raft.voters {
            if k != me && !connected.contains(&k) {
                p.connect_node(k);
            }
        }
        // At boot, nothing is done until this node has caught up with the group.
        if !self.booted {
            if consensus::fresh::<Control>(p, &group, me, FRESH_WITHIN)
                .await
                .is_err()
            {
                return;
            }
            self.booted = true;
        }
        // What this node has applied, before the question: the answer is at least as new.
        let Ok(status) = consensus::status::<Control>(p, &group, me, timeout).await else {
            return;
        };
        let leading = status.leader == Some(me);
        self.assign(p, leading).await;
        if leading {
            self.rebalance(p).await;
        }
        // One read of the state, so that what it owns, runs and moves agree.
        let query = Query::View(me);
        let view = match consensus::query::<Control>(p, &group, me, query, timeout).await {
            Ok(Answer::View(view)) => view,
            Ok(_) | Err(_) => return,
        };
        let wanted: BTreeMap<String, Child> = view.owned.into_iter().collect();
        let wanted_groups: BTreeMap<String, BTreeSet<String>> = view
            .groups
            .into_iter()
            .map(|(name, groups)| (name, groups.into_iter().collect()))
            .collect();
        let (shards, outgoing, incoming) = (view.shards, view.outgoing, view.incoming);
        self.incoming = incoming.iter().map(|&(s, _, e)| (s, e)).collect();
        self.settle_moves(p, &outgoing, &shards, &view.kept);
        self.acquire(p, &wanted, &shards, &outgoing, &view.kept);
        self.hand_over(p, &outgoing);
        self.complete(p, &incoming).await;
        let expected = &self.incoming;
        self.received.retain(|key, _| expected.contains(key));
        // Shards in transit from here: a move not begun yet (`hand_over` waits for the lease)
        // leaves their children, and the states handed in for them, as they are.
        let count = self.config.shards;
        let in_transit: BTreeSet<u16> = outgoing.iter().map(|&(shard, _, _)| shard).collect();
        let waits = |name: &str| in_transit.contains(&super::control::shard_of(name, count));
        let in_move = |o: &BTreeMap<u16, Outgoing>, pid: Pid| o.values().any(|o| o.stopping(pid));
        let unwanted: Vec<String> = self
            .children
            .iter()
            .filter(|(name, r)| !wanted.contains_key(*name) && !in_move(&self.outgoing, r.pid))
            .map(|(name, _)| name.clone())
            .collect();
        for name in unwanted {
            let Some(running) = self.children.remove(&name) else {
                continue;
            };
            // Its shard's move waits for this node's lease (`hand_over`): a desired child
            // runs on until the move begins (in CP mode, unless the lease lapses first), or
            // the shard goes elsewhere without it. AP mode: a desired child this node runs
            // and no longer owns was started elsewhere while this node was cut off: it loses
            // the conflict, with its state.
            let ap = self.config.mode == Mode::Ap;
            if ap || waits(&name) {
                let query = Query::Desired(name.clone());
                match consensus::query::<Control>(p, &group, me, query, timeout).await {
                    Ok(Answer::Desired(true)) if waits(&name) => {
                        self.children.insert(name, running);
                        continue;
                    }
                    Ok(Answer::Desired(true)) => {
                        self.give_before_losing(p, &name, running.pid).await;
                        self.lose(p, name, running.pid);
                        continue;
                    }
                    Ok(Answer::Desired(false)) => {}
                    // Asked again at the next reconciliation: a loser, or a child whose move
                    // waits, is never stopped without being asked for its state.
                    Ok(_) | Err(_) => {
                        self.children.insert(name, running);
                        continue;
                    }
                }
            }
            // `shutdown`, then `kill` after a grace, as OTP stops a child: one that traps
            // exits cannot outlive its ownership.
            p.exit(running.pid, ExitReason::Shutdown);
            p.send_after(SHUTDOWN_GRACE, p.pid(), KillStopping(running.pid));
            self.stopping.insert(running.pid, name);
        }
        if !self.losing.is_empty() {
            self.send_losers(p).await;
        }
        self.failed.retain(|name, _| wanted.contains_key(name));
        let before = self.crashed.len();
        self.crashed.retain(|name, _| wanted.contains_key(name));
        self.granted.retain(|name, _| wanted.contains_key(name));
        if self.crashed.len() != before {
            self.save_crashed(p);
        }
        let gone: Vec<String> = self
            .handed_in
            .keys()
            .filter(|name| !wanted.contains_key(*name) && !waits(name))
            .cloned()
            .collect();
        for name in gone {
            let shard = super::control::shard_of(&name, count);
            let why = if self.shards.contains_key(&shard) {
                "no longer desired"
            } else {
                "its shard went to another node"
            };
            if let Some(h) = self.handed_in.remove(&name) {
                if h.state.is_some() {
                    handoff::aborted(p, h.id, &name, why);
                }
            }
        }
        // A child whose start function is missing here cannot run: given up.
        let given_up: Vec<String> = self.failed.keys().cloned().collect();
        for name in given_up {
            let command = Command::Terminate { name: name.clone() };
            let _ = consensus::propose::<Control>(p, &group, me, command, timeout).await;
        }
        // Each crash is counted by the group, against the child's intensity wherever it ran.
        let crashed: Vec<(String, u64)> =
            self.crashed.iter().map(|(n, &c)| (n.clone(), c)).collect();
        for (name, crash) in crashed {
            // Counted when the restart is granted, as OTP counts a restart when it makes it
            // (a crash on a side without a majority is restarted, and counted, after the heal).
            let asked = p.now();
            let command = Command::Crashed {
                name: name.clone(),
                crash: (p.pid(), crash),
                lead: Lead::default(),
            };
            match consensus::propose::<Control>(p, &group, me, command, timeout).await {
                Ok((_, Outcome::Restart)) => {
                    self.crashed.remove(&name);
                    self.granted.insert(name, (asked, crash));
                    self.save_crashed(p);
                }
                Ok((_, Outcome::GaveUp | Outcome::NotDesired)) => {
                    self.crashed.remove(&name);
                    self.save_crashed(p);
                }
                Ok(_) | Err(_) => {}
            }
        }
        self.start_wanted(p, &wanted).await;
        if !self.resolving.is_empty() || !self.unsure.is_empty() || !self.owed.is_empty() {
            let names = wanted.keys().cloned().collect();
            self.resolve_received(p, &names).await;
        }
        if !self.returning.is_empty() {
            self.return_states(p).await;
        }
        self.join_groups(p, &wanted_groups, &in_transit).await;
        self.route_held(p, &wanted, &incoming).await;
        self.reconciled = self.reconciled.max(status.applied);
        let reconciled = self.reconciled;
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.settling)
            .into_iter()
            .partition(|(index, _)| *index <= reconciled);
        self.settling = waiting;
        for (_, from) in done {
            from.reply(p, Ok(None));
        }
        if self.shards.is_empty() && self.outgoing.is_empty() {
            for from in std::mem::take(&mut self.draining) {
                from.reply(p, Ok(None));
            }
        }
    }

    /// Starts the children of `wanted` that do not run, under the lease, from a state the
    /// majority confirms.
    async fn start_wanted(&mut self, p: &Process, wanted: &BTreeMap<String, Child>) {
        let me = p.pid().node();
        // Start only from a state a majority confirms as current: a node cut off from the
        // majority, or one that has not caught up, would start what the group no longer wants.
        let to_start: Vec<(String, Child)> = wanted
            .iter()
            .filter(|(name, _)| {
                !self.children.contains_key(*name)
                    && !self.failed.contains_key(*name)
                    && !self.crashed.contains_key(*name)
                    && !self.stopping.values().any(|n| n == *name)
                    && !self
                        .outgoing
                        .contains_key(&super::control::shard_of(name, self.config.shards))
            })
            .map(|(name, child)| (name.clone(), child.clone()))
            .collect();
        let epochs = if to_start.is_empty() {
            BTreeMap::new()
        } else {
            match self.confirmed(p, &to_start).await {
                Some(epochs) => epochs,
                None => return,
            }
        };
        // Only under a lease that holds a while yet: the enforcer stops them when it lapses
        // (in CP mode; in AP mode they outlive it).
        let ap = self.config.mode == Mode::Ap;
        if !ap && !to_start.is_empty() && self.lease.left(p.now()) < lease::START_WITHIN {
            return;
        }
        // A granted restart not made within the slack of its asking (the fresh read or the
        // lease held it up) is asked for again: counted once, as the same crash.
        let slack = Duration::from_millis(super::control::GRANT_SLACK_MS);
        let now = p.now();
        let late: Vec<String> = self
            .granted
            .iter()
            .filter(|(_, (asked, _))| now > *asked + slack)
            .map(|(name, _)| name.clone())
            .collect();
        for name in &late {
            if let Some((_, crash)) = self.granted.remove(name) {
                self.crashed.insert(name.clone(), crash);
            }
        }
        if !late.is_empty() {
            self.save_crashed(p);
        }
        let to_start: Vec<(String, Child)> = to_start
            .into_iter()
            .filter(|(name, _)| !self.crashed.contains_key(name))
            .collect();
        for (name, child) in to_start {
            self.granted.remove(&name);
            match p.spawn_link_on(me, &child.start, child.arg.clone()).await {
                Ok(pid) if !ap && !self.lease.hold(pid, p.now()) => {
                    // The lease lapsed while it started: it never counted as started.
                    lease::stop(p, pid);
                }
                Ok(pid) => {
                    p.node().record(EventKind::Dist(DistEvent::Start {
                        name: name.clone(),
                        pid,
                        epoch: epochs.get(&name).copied(),
                    }));
                    let cache = self.config.cache_name();
                    for &k in &self.config.raft.voters {
                        if p.node().is_alive(pid) {
                            let name = name.clone();
                            p.send_named(&cache, k, Announce { name, pid });
                        }
                    }
                    // Its predecessor's state first, before any message.
                    if let Some(Handed {
                        id,
                        state: Some(state),
                        ..
                    }) = self.handed_in.remove(&name)
                    {
                        handoff::deliver(p, id, &name, pid, state);
                    }
                    let groups = BTreeSet::new();
                    self.children.insert(name, Running { pid, groups });
                }
                // A start function missing on this node: nothing to run, and the callers are
                // told why.
                Err(_) => {
                    for h in self.held.remove(&name).unwrap_or_default() {
                        let why = match h.waiting {
                            Waiting::Pid => Err(child.start.clone()),
                            Waiting::Letter(_) => Ok(None),
                        };
                        h.reply(p, why);
                    }
                    self.failed.insert(name, child.start);
                }
            }
        }
    }

    /// Each child this node runs joins the groups the cluster wants it in, and leaves the
    /// others, in the node's process groups (a new instance joins them all). A child whose
    /// shard is in transit keeps its groups until it stops.
    async fn join_groups(
        &mut self,
        p: &Process,
        wanted: &BTreeMap<String, BTreeSet<String>>,
        in_transit: &BTreeSet<u16>,
    ) {
        let none = BTreeSet::new();
        let shards = self.config.shards;
        for (name, running) in &mut self.children {
            let shard = super::control::shard_of(name, shards);
            if self.outgoing.contains_key(&shard) || in_transit.contains(&shard) {
                continue;
            }
            let want = wanted.get(name).unwrap_or(&none);
            let joins: Vec<String> = want.difference(&running.groups).cloned().collect();
            for group in joins {
                if self
                    .groups
                    .join(p, group.clone(), [running.pid])
                    .await
                    .is_ok()
                {
                    running.groups.insert(group);
                }
            }
            let leaves: Vec<String> = running.groups.difference(want).cloned().collect();
            for group in leaves {
                if self
                    .groups
                    .leave(p, group.clone(), [running.pid])
                    .await
                    .is_ok()
                {
                    running.groups.remove(&group);
                }
            }
        }
    }

    /// The node's process groups scope died (it has no reason to): a new one, empty, and
    /// every child joins its groups again at the next reconciliation.
    async fn restart_groups(&mut self, p: &Process) {
        if let Ok(scope) = self.groups.start(p).await {
            self.scope = scope;
        }
        for running in self.children.values_mut() {
            running.groups.clear();
        }
        self.kick(p);
    }

    /// The ownership epoch of each name of `to_start`, if all are still this node's to start
    /// at the epoch its last view read, by a state the majority confirms as current: the epoch
    /// its start is made under (I10, docs/cluster-invariants.md).
    async fn confirmed(
        &self,
        p: &Process,
        to_start: &[(String, Child)],
    ) -> Option<BTreeMap<String, u64>> {
        let (group, me) = (&self.config.raft.name, p.pid().node());
        let wait = FRESH_WITHIN;
        consensus::fresh::<Control>(p, group, me, wait).await.ok()?;
        let query = Query::Owned(me);
        let Ok(Answer::Owned(now)) = consensus::query::<Control>(p, group, me, query, wait).await
        else {
            return None;
        };
        let now: BTreeMap<String, u64> = now.into_iter().collect();
        let shards = self.config.shards;
        to_start
            .iter()
            .map(|(name, _)| {
                let epoch = *now.get(name)?;
                let viewed = self.shards.get(&super::control::shard_of(name, shards));
                (viewed == Some(&epoch)).then(|| (name.clone(), epoch))
            })
            .collect()
    }

    /// The first leader assigns the shard table.
    async fn assign(&mut self, p: &Process, leading: bool) {
        let (group, timeout) = (&self.config.raft.name, self.config.timeout);
        let me = p.pid().node();
        if !leading {
            return;
        }
        let query = Query::Owner(String::new());
        if let Ok(Answer::Owner(None)) =
            consensus::query::<Control>(p, group, me, query, timeout).await
        {
            let nodes = self.config.raft.voters.clone();
            let _ =
                consensus::propose::<Control>(p, group, me, Command::Assign(nodes), timeout).await;
        }
    }

    /// The pid of the child `name` if it runs here, under a lease that holds, and is not
    /// stopping for a move.
    fn running(&self, p: &Process, name: &str) -> Option<Pid> {
        // A child is named only under a lease that holds: a node whose lease lapsed (paused,
        // say, and not yet caught up) must not send callers to what it no longer owns. In AP
        // mode it runs on, and is named.
        let holds = self.config.mode == Mode::Ap || !self.lease.left(p.now()).is_zero();
        let pid = self.children.get(name).filter(|_| holds)?.pid;
        let stopping = self.outgoing.values().any(|o| o.stopping(pid));
        (!stopping).then_some(pid)
    }

    /// Reconciles soon, once for a burst of events.
    fn kick(&mut self, p: &Process) {
        if !self.kicked {
            self.kicked = true;
            p.send(p.pid(), Kick);
        }
    }

    /// A child ended. One stopping for a move is handed over. One stopped because the lease
    /// lapsed did not crash: it starts again under the next lease, if its node still owns
    /// it. Any other crashed: its crash is counted by the group at the next reconciliation,
    /// which restarts it unless it exceeded its intensity.
    fn child_exited(&mut self, p: &Process, pid: Pid, reason: &ExitReason) {
        self.lease.release(pid);
        self.loser_ended(pid);
        if self.stopping.remove(&pid).is_some() {
            return;
        }
        let Some(name) = self
            .children
            .iter()
            .find(|(_, r)| r.pid == pid)
            .map(|(name, _)| name.clone())
        else {
            return;
        };
        self.children.remove(&name);
        if let Some(o) = self.outgoing.values_mut().find(|o| o.stopping(pid)) {
            o.stopped(p, pid, reason);
            return;
        }
        // Judged by its reason, as OTP and the cluster invariants judge an exit: a child
        // that crashed as the lease lapsed crashed, and one that traps exits, killed by the
        // lapse, exits `killed` (a crash, conservatively).
        if *reason == lease::lease_lost() {
            return;
        }
        let crash = self.next_crash();
        self.crashed.insert(name, crash);
        self.save_crashed(p);
    }

    /// A number for a new crash.
    fn next_crash(&mut self) -> u64 {
        self.crashes += 1;
        self.crashes
    }

    /// Writes the crashes not yet counted to the node's disk, synced.
    fn save_crashed(&self, p: &Process) {
        let file = format!("{}.crashed", self.config.name);
        // With the count of crashes, so that a node that boots again with the same pid (the
        // same creation) numbers its crashes after the ones the group may have counted.
        // A map of strings and integers always encodes.
        let bytes = bincode::serialize(&(self.crashes, &self.crashed)).unwrap_or_default();
        p.node().disk().write(&file, &bytes);
        p.node().disk().sync(&file);
    }
}

impl GenServer for DistSupervisor {
    type Arg = (DistConfig, Lease);
    type Call = Call;
    type Reply = Reply;
    type Cast = ();
    type Cont = ();

    async fn init((config, lease): (DistConfig, Lease), p: &Process) -> Init<Self> {
        if p.register(&config.name).is_err() {
            return Init::Stop(ExitReason::error("already_started"));
        }
        p.trap_exit(true);
        let groups = Groups::new(config.groups_scope());
        let scope = match groups.start(p).await {
            Ok(scope) => scope,
            Err(e) => return Init::Stop(ExitReason::error(format!("groups: {e}"))),
        };
        p.send(p.pid(), Tick);
        // A file this supervisor did not write counts as no crash.
        let (crashes, crashed): (u64, BTreeMap<String, u64>) = p
            .node()
            .disk()
            .read(&format!("{}.crashed", config.name))
            .and_then(|bytes| bincode::deserialize(&bytes).ok())
            .unwrap_or_default();
        Init::Ok(DistSupervisor {
            config,
            groups,
            scope,
            lease,
            children: BTreeMap::new(),
            crashed,
            crashes,
            granted: BTreeMap::new(),
            failed: BTreeMap::new(),
            settling: Vec::new(),
            draining: Vec::new(),
            held: BTreeMap::new(),
            outgoing: BTreeMap::new(),
            received: BTreeMap::new(),
            incoming: BTreeSet::new(),
            stopping: BTreeMap::new(),
            handed_in: BTreeMap::new(),
            transit_seen: BTreeMap::new(),
            backoff: BTreeMap::new(),
            reconciled: 0,
            watching: false,
            kicked: false,
            booted: false,
            shards: BTreeMap::new(),
            losing: BTreeMap::new(),
            resolving: BTreeMap::new(),
            unsure: BTreeMap::new(),
            owed: BTreeMap::new(),
            returning: BTreeMap::new(),
            given: BTreeSet::new(),
        })
    }

    async fn handle_call(&mut self, call: Call, from: From<Reply>, p: &Process) -> CallReply<Self> {
        match call {
            Call::Whereis(name) => CallReply::Reply(Ok(self.running(p, &name))),
            Call::Settled(index) if index <= self.reconciled => CallReply::Reply(Ok(None)),
            Call::Settled(index) => {
                self.settling.push((index, from));
                CallReply::NoReply
            }
            Call::Await(name) => match self.failed.get(&name) {
                Some(start) => CallReply::Reply(Err(start.clone())),
                None => {
                    let budget_ms = self.config.timeout.as_millis() as u64;
                    let route = Route { hops: 0, budget_ms };
                    self.route(p, name, Waiting::Pid, from, route);
                    CallReply::NoReply
                }
            },
            Call::Deliver {
                name,
                letter,
                route,
            } => {
                self.route(p, name, Waiting::Letter(letter), from, route);
                CallReply::NoReply
            }
            Call::Drained => {
                self.draining.push(from);
                self.kick(p);
                CallReply::NoReply
            }
        }
    }

    async fn handle_info(&mut self, msg: Msg, p: &Process) -> Next<Self> {
        if msg.is::<Tick>() {
            self.reconcile(p).await;
            p.send_after(RECONCILE_EVERY, p.pid(), Tick);
            return Next::Continue;
        }
        if msg.is::<Kick>() {
            self.kicked = false;
            self.reconcile(p).await;
            return Next::Continue;
        }
        if msg.is::<consensus::Applied>() {
            self.kick(p);
            return Next::Continue;
        }
        let msg = match msg {
            Msg::Exit { from, .. } if from == self.scope => {
                self.restart_groups(p).await;
                return Next::Continue;
            }
            Msg::Exit { from, reason } => {
                self.child_exited(p, from, &reason);
                self.kick(p);
                return Next::Continue;
            }
            // A caller of a held message is down: the message is dropped.
            Msg::Down { mref, .. } => {
                for held in self.held.values_mut() {
                    held.retain(|h| h.caller != mref);
                }
                self.held.retain(|_, held| !held.is_empty());
                return Next::Continue;
            }
            other => other,
        };
        let msg = match msg.downcast::<Begun>() {
            Ok(begun) => {
                if self.lost(p, &begun) {
                    self.send_losers(p).await;
                    return Next::Continue;
                }
                for o in self.outgoing.values_mut() {
                    o.answered(p, begun.clone());
                }
                return Next::Continue;
            }
            Err(msg) => msg,
        };
        // A child run by `handoff::serve` asks for its lease, and acts on nothing once it
        // lapsed (in AP mode it outlives the lease: nothing to fence).
        let msg = match msg.downcast::<handoff::AskFence>() {
            Ok(handoff::AskFence(child)) => {
                let ours = self.children.values().any(|r| r.pid == child);
                if ours && self.config.mode == Mode::Cp {
                    p.send(child, handoff::Fence(self.lease.clone()));
                }
                return Next::Continue;
            }
            Err(msg) => msg,
        };
        let msg = match msg.downcast::<HandoffTimeout>() {
            Ok(HandoffTimeout { pid, id, kill }) => {
                let waiting = |o: &Outgoing| o.waiting().any(|w| w == (pid, id));
                if self.outgoing.values().any(waiting) {
                    if kill {
                        p.exit(pid, ExitReason::Kill);
                    } else {
                        p.exit(pid, ExitReason::Shutdown);
                        let kill = HandoffTimeout {
                            pid,
                            id,
                            kill: true,
                        };
                        p.send_after(SHUTDOWN_GRACE, p.pid(), kill);
                    }
                }
                return Next::Continue;
            }
            Err(msg) => msg,
        };
        let msg = match msg.downcast::<KillStopping>() {
            Ok(KillStopping(pid)) => {
                if self.stopping.contains_key(&pid) {
                    p.exit(pid, ExitReason::Kill);
                }
                return Next::Continue;
            }
            Err(msg) => msg,
        };
        match msg.downcast::<Peer>() {
            Ok(Peer::Handover(handover)) => {
                // Only for a move this incarnation saw in transit to it: a late copy of one
                // it completed (before a reboot, say) must not be delivered again.
                for (shard, epoch) in handover.moves {
                    if !self.incoming.contains(&(shard, epoch)) {
                        continue;
                    }
                    let children = handover.children.iter().filter(|h| h.shard == shard);
                    self.received
                        .entry((shard, epoch))
                        .or_insert_with(|| children.cloned().collect());
                }
                self.kick(p);
            }
            Ok(Peer::Forward {
                name,
                waiting,
                from,
                route,
            }) => self.route(p, name, waiting, from, route),
            // Only what runs now, and would be named by `whereis` here: a child whose exit
            // waits in the mailbox behind the request is not announced after its `DOWN`.
            Ok(Peer::Snapshot { reply }) => {
                for name in self.children.keys() {
                    let live = self.running(p, name).filter(|&pid| p.node().is_alive(pid));
                    if let Some(pid) = live {
                        let name = name.clone();
                        p.send(reply, Announce { name, pid });
                    }
                }
            }
            Ok(Peer::Resolve { name, loser, state }) => {
                self.received_loser(name, loser, state);
            }
            Err(_) => {}
        }
        Next::Continue
    }
}
