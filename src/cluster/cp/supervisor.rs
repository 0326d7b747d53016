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
//! [`DistError::Unavailable`].
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

use super::consensus::{self, Lead, RaftConfig};
use super::control::{Answer, Child, Command, Control, Outcome, Query};
use super::lease::{self, Lease};
use crate::rt::Duration;
use crate::server::{self, CallReply, From, GenServer, Init, Next, ServerRef};
use crate::trace::{DistEvent, EventKind};
use crate::{ExitReason, Msg, Node, Pid, Process, Term};
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
}

impl DistConfig {
    /// The supervisor `name` on `nodes` (each a voter of its group), with 64 shards, OTP's
    /// default intensity (3 restarts in 5 s) per child, 5 s calls, and 3 s leases with a
    /// drift margin of 0.5 s and a fencing margin of 1 s (docs/cp.md, "Leases").
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
        }
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
        if [self.lease, self.fencing_margin, self.timeout]
            .iter()
            .any(|d| *d > day)
        {
            return Err(DistConfigError::TooLong);
        }
        if self.timeout.is_zero() {
            return Err(DistConfigError::NoTimeout);
        }
        Ok(())
    }

    /// A handle for the API calls.
    pub fn handle(&self) -> DistRef {
        DistRef {
            name: self.name.clone(),
            group: self.raft.name.clone(),
            timeout: self.timeout,
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
}

/// Starts the distributed supervisor on `node`: its Raft group's server, its lease's keeper
/// and enforcer, and the supervisor, at the node's first boot and at every restart. Nothing
/// starts if the settings cannot work ([`DistConfig::check`]).
pub fn boot(node: &Node, config: DistConfig) -> Result<(), DistConfigError> {
    config.check()?;
    let (raft, shards) = (config.raft.clone(), config.shards);
    let control = Control::new(shards, config.max_restarts, config.max_seconds);
    node.spawn(move |p| consensus::serve(p, raft, control));
    let lease = Lease::default();
    let (keeper, kept) = (config.clone(), lease.clone());
    node.spawn(move |p| lease::keep(p, keeper, kept));
    let enforced = lease.clone();
    node.spawn(move |p| lease::enforce(p, enforced));
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
    codec
}

/// Why an API call failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum DistError {
    /// A child of that name runs already: this one.
    #[error("already started: {0}")]
    AlreadyStarted(Pid),
    /// No child of that name is desired.
    #[error("no such child")]
    NotFound,
    /// The group cannot commit from here (a minority side of a partition, or no leader yet),
    /// or the child's owner did not answer in time.
    #[error("unavailable: the cluster cannot decide from here")]
    Unavailable,
    /// No start function of that name is registered on this node (it must be on every node).
    #[error("no start function {0:?} is registered on this node")]
    UnknownStart(String),
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
    group: String,
    timeout: Duration,
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
        let me = p.pid().node();
        let outcome = consensus::propose::<Control>(p, &self.group, me, command, self.timeout)
            .await
            .map_err(|_| DistError::Unavailable)?;
        match outcome.1 {
            Outcome::Desired { owner } => self.running(p, name, owner).await,
            Outcome::AlreadyDesired { owner } => {
                let pid = self.running(p, name, owner).await?;
                Err(DistError::AlreadyStarted(pid))
            }
            Outcome::Assigned
            | Outcome::Downed { .. }
            | Outcome::Upped
            | Outcome::Terminated { .. }
            | Outcome::NotDesired
            | Outcome::Restart
            | Outcome::GaveUp => Err(DistError::Unavailable),
        }
    }

    /// Stops the child `name` and forgets it: it is not restarted anywhere. Returns once its
    /// owner has stopped it ([`DistError::Unavailable`] if the owner does not say so in time:
    /// it stops it when it can).
    pub async fn terminate_child(&self, p: &Process, name: &str) -> Result<(), DistError> {
        let me = p.pid().node();
        let command = Command::Terminate {
            name: name.to_string(),
        };
        match consensus::propose::<Control>(p, &self.group, me, command, self.timeout).await {
            Ok((index, Outcome::Terminated { owner })) => {
                let Some(owner) = owner else {
                    return Ok(());
                };
                let call = Call::Settled(index);
                let to = Some(self.timeout);
                match ServerRef::<DistSupervisor>::call_named(p, &self.name, owner, call, to).await
                {
                    Ok(_) => Ok(()),
                    Err(_) => Err(DistError::Unavailable),
                }
            }
            Ok((_, Outcome::NotDesired)) => Err(DistError::NotFound),
            Ok(_) | Err(_) => Err(DistError::Unavailable),
        }
    }

    /// The child `name`'s pid, asked of its owner: `None` if it does not run (or the owner
    /// cannot be asked).
    pub async fn whereis(&self, p: &Process, name: &str) -> Option<Pid> {
        let owner = self.owner(p, name).await?;
        let call = Call::Whereis(name.to_string());
        let to = Some(self.timeout);
        match ServerRef::<DistSupervisor>::call_named(p, &self.name, owner, call, to).await {
            Ok(Ok(pid)) => pid,
            Ok(Err(_)) | Err(_) => None,
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
}

/// The supervisor's timer: reconcile with the group's state now and then.
struct Tick;

/// Reconcile now: something was applied.
struct Kick;

/// A child this node runs.
struct Running {
    pid: Pid,
}

/// The supervisor on one node (see the [module](self) documentation).
pub struct DistSupervisor {
    config: DistConfig,
    /// The node's lease: children start only under it, and stop when it lapses.
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
    /// Callers waiting for a child to run.
    waiting: BTreeMap<String, Vec<From<Reply>>>,
    /// Callers waiting for this node to act on the log up to a position.
    settling: Vec<(u64, From<Reply>)>,
    /// The log position the last reconciliation acted on.
    reconciled: u64,
    watching: bool,
    /// A `Kick` is in the mailbox.
    kicked: bool,
    /// This incarnation has caught up with the group.
    booted: bool,
    /// The shards this node owned at its last reconciliation.
    shards: BTreeSet<u16>,
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
    /// Starts what this node should run and does not, stops what it runs and should not.
    async fn reconcile(&mut self, p: &Process) {
        let (group, timeout) = (self.config.raft.name.clone(), self.config.timeout);
        let me = p.pid().node();
        if !self.watching {
            let watch = consensus::Request::Watch(p.pid());
            let server = ServerRef::<consensus::Consensus<Control>>::call_named(
                p,
                &group,
                me,
                watch,
                Some(timeout),
            );
            self.watching = server.await.is_ok_and(|r| r.is_ok());
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
        self.assign(p, status.leader == Some(me)).await;
        let owned =
            match consensus::query::<Control>(p, &group, me, Query::Owned(me), timeout).await {
                Ok(Answer::Owned(owned)) => owned,
                Ok(_) | Err(_) => return,
            };
        let wanted: BTreeMap<String, Child> = owned.into_iter().collect();
        self.acquire(p, &wanted).await;
        let unwanted: Vec<String> = self
            .children
            .keys()
            .filter(|name| !wanted.contains_key(*name))
            .cloned()
            .collect();
        for name in unwanted {
            if let Some(running) = self.children.remove(&name) {
                p.exit(running.pid, ExitReason::Shutdown);
            }
        }
        self.failed.retain(|name, _| wanted.contains_key(name));
        let before = self.crashed.len();
        self.crashed.retain(|name, _| wanted.contains_key(name));
        self.granted.retain(|name, _| wanted.contains_key(name));
        if self.crashed.len() != before {
            self.save_crashed(p);
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
        // Start only from a state a majority confirms as current: a node cut off from the
        // majority, or one that has not caught up, would start what the group no longer wants.
        let to_start: Vec<(String, Child)> = wanted
            .into_iter()
            .filter(|(name, _)| {
                !self.children.contains_key(name)
                    && !self.failed.contains_key(name)
                    && !self.crashed.contains_key(name)
            })
            .collect();
        if !to_start.is_empty() && !self.confirmed(p, &to_start).await {
            return;
        }
        // Only under a lease that holds a while yet: the enforcer stops them when it lapses.
        if !to_start.is_empty() && self.lease.left(p.now()) < lease::START_WITHIN {
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
                Ok(pid) if !self.lease.hold(pid, p.now()) => {
                    // The lease lapsed while it started: it never counted as started.
                    lease::stop(p, pid);
                }
                Ok(pid) => {
                    p.node().record(EventKind::Dist(DistEvent::Start {
                        name: name.clone(),
                        pid,
                    }));
                    for from in self.waiting.remove(&name).unwrap_or_default() {
                        from.reply(p, Ok(Some(pid)));
                    }
                    self.children.insert(name, Running { pid });
                }
                // A start function missing on this node: nothing to run, and the callers are
                // told why.
                Err(_) => {
                    for from in self.waiting.remove(&name).unwrap_or_default() {
                        from.reply(p, Err(child.start.clone()));
                    }
                    self.failed.insert(name, child.start);
                }
            }
        }
        self.reconciled = self.reconciled.max(status.applied);
        let reconciled = self.reconciled;
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.settling)
            .into_iter()
            .partition(|(index, _)| *index <= reconciled);
        self.settling = waiting;
        for (_, from) in done {
            from.reply(p, Ok(None));
        }
    }

    /// Children of shards this node did not own at its last reconciliation (all of them at
    /// boot) may have crashed just before, unseen (on this node before it went down, or on
    /// their last owner): each of those starts is a restart and asks for a grant like one.
    async fn acquire(&mut self, p: &Process, wanted: &BTreeMap<String, Child>) {
        let (group, me) = (&self.config.raft.name, p.pid().node());
        let query = Query::Shards(me);
        let Ok(Answer::Shards(shards)) =
            consensus::query::<Control>(p, group, me, query, self.config.timeout).await
        else {
            return;
        };
        let shards: BTreeSet<u16> = shards.into_iter().collect();
        let mut acquired = false;
        for name in wanted.keys() {
            let shard = super::control::shard_of(name, self.config.shards);
            if shards.contains(&shard)
                && !self.shards.contains(&shard)
                && !self.children.contains_key(name)
            {
                let crash = self.next_crash();
                self.crashed.insert(name.clone(), crash);
                acquired = true;
            }
        }
        self.shards = shards;
        if acquired {
            self.save_crashed(p);
        }
    }

    /// Whether the names of `to_start` are still this node's to start, by a state the
    /// majority confirms as current.
    async fn confirmed(&self, p: &Process, to_start: &[(String, Child)]) -> bool {
        let (group, me) = (&self.config.raft.name, p.pid().node());
        let wait = FRESH_WITHIN;
        if consensus::fresh::<Control>(p, group, me, wait)
            .await
            .is_err()
        {
            return false;
        }
        let query = Query::Owned(me);
        let Ok(Answer::Owned(now)) = consensus::query::<Control>(p, group, me, query, wait).await
        else {
            return false;
        };
        to_start
            .iter()
            .all(|(name, _)| now.iter().any(|(n, _)| n == name))
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

    /// A child ended: its crash is counted by the group at the next reconciliation, which
    /// restarts it unless it exceeded its intensity. One stopped because the lease lapsed
    /// did not crash: it starts again under the next lease, if its node still owns it.
    fn child_exited(&mut self, p: &Process, pid: Pid, reason: &ExitReason) {
        self.lease.release(pid);
        let Some(name) = self
            .children
            .iter()
            .find(|(_, r)| r.pid == pid)
            .map(|(name, _)| name.clone())
        else {
            return;
        };
        self.children.remove(&name);
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
            lease,
            children: BTreeMap::new(),
            crashed,
            crashes,
            granted: BTreeMap::new(),
            failed: BTreeMap::new(),
            waiting: BTreeMap::new(),
            settling: Vec::new(),
            reconciled: 0,
            watching: false,
            kicked: false,
            booted: false,
            shards: BTreeSet::new(),
        })
    }

    async fn handle_call(&mut self, call: Call, from: From<Reply>, p: &Process) -> CallReply<Self> {
        // A child is named only under a lease that holds: a node whose lease lapsed (paused,
        // say, and not yet caught up) must not send callers to what it no longer owns.
        let holds = !self.lease.left(p.now()).is_zero();
        let running = |name: &str| self.children.get(name).filter(|_| holds).map(|r| r.pid);
        match call {
            Call::Whereis(name) => CallReply::Reply(Ok(running(&name))),
            Call::Settled(index) if index <= self.reconciled => CallReply::Reply(Ok(None)),
            Call::Settled(index) => {
                self.settling.push((index, from));
                CallReply::NoReply
            }
            Call::Await(name) => match running(&name) {
                Some(pid) => CallReply::Reply(Ok(Some(pid))),
                None if self.failed.contains_key(&name) => {
                    CallReply::Reply(Err(self.failed[&name].clone()))
                }
                None => {
                    self.waiting.entry(name).or_default().push(from);
                    CallReply::NoReply
                }
            },
        }
    }

    async fn handle_info(&mut self, msg: Msg, p: &Process) -> Next<Self> {
        if msg.is::<Tick>() {
            self.reconcile(p).await;
            p.send_after(RECONCILE_EVERY, p.pid(), Tick);
        } else if msg.is::<Kick>() {
            self.kicked = false;
            self.reconcile(p).await;
        } else if msg.is::<consensus::Applied>() || matches!(msg, Msg::Exit { .. }) {
            if let Msg::Exit { from, reason } = msg {
                self.child_exited(p, from, &reason);
            }
            // One reconciliation for a burst of commits and exits.
            if !self.kicked {
                self.kicked = true;
                p.send(p.pid(), Kick);
            }
        }
        Next::Continue
    }
}
