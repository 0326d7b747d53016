//! The cluster registry (docs/cp.md, "Registry"): unique names users register, each to a
//! process of any node of the group, found from every node.
//!
//! * A registration is a commit of the group ([`Command::Register`]), so the log serialises
//!   them (the first committed wins) and no node's loss loses one.
//! * Each node runs a name server (`DistConfig::names_name`). A registration is asked of the
//!   name server of the process's node, which holds the process under the node's lease
//!   *before* it proposes the registration (and refuses with less than
//!   [`START_WITHIN`](lease::START_WITHIN) of lease left): a node cut off from the majority
//!   stops its registered processes (`{shutdown, lease_lost}`) before the majority commits it
//!   down and drops their names, whether or not it had applied their registration.
//! * Each name server follows the table as its node applies it: it monitors the registered
//!   processes of its node and unregisters one that ends (and, at boot, those of the node's
//!   previous life); it monitors the others' processes too, and answers
//!   [`DistRef::whereis_name`] from memory, never with a process whose `DOWN` it has seen (the
//!   connection to its node went, or it ended and its unregistration is not applied yet).
//!
//! [`DistRef::whereis_name`]: super::DistRef::whereis_name

use super::{DistError, DistRef};
use crate::cluster::cp::consensus::{self, Applied};
use crate::cluster::cp::control::{Answer, Command, Control, Outcome, Query};
use crate::cluster::cp::lease::{self, Lease};
use crate::cluster::cp::names::Registration;
use crate::process::MonitorRef;
use crate::rt::Duration;
use crate::server::{
    BoxFuture, CallReply, From, GenServer, Init, Next, Registering, ServerRef, Via, ViaError,
    ViaName,
};
use crate::{ExitReason, Msg, Pid, Process};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// How often a name server asks again for the unregistrations that did not commit (and reads
/// the table, until its node's group server sends it what is applied).
const REFRESH_EVERY: Duration = Duration::from_millis(500);

/// How long a name server waits for its node's group server.
const LOCAL_WITHIN: Duration = Duration::from_millis(200);

impl DistRef {
    /// Registers `name` to `pid` (a process of any of the group's nodes) in the cluster
    /// registry, once the group has committed it: [`DistError::AlreadyRegistered`] if another
    /// process holds it, [`DistError::NotFound`] if `pid` does not run.
    /// [`DistError::Unavailable`] if `pid`'s node cannot be asked, holds no lease, or the
    /// group does not answer in time: then the registration may still commit, and `pid` runs
    /// under its node's lease as if it had (look the name up, or unregister it).
    ///
    /// The name is `pid`'s until it ends, it is [unregistered](Self::unregister), or its node
    /// loses its lease: a node cut off from the majority stops its registered processes
    /// (`{shutdown, lease_lost}`) before the majority gives their names away. A name held by
    /// a process of `pid`'s node that has ended, and that its node's server has not
    /// unregistered yet (a server started again under its via name at once, say), is
    /// unregistered first.
    pub async fn register(&self, p: &Process, name: &str, pid: Pid) -> Result<(), DistError> {
        let call = NamesCall::Register {
            name: name.to_string(),
            pid,
        };
        // The name server proposes up to three times (an ended holder's unregistration, then
        // the registration again).
        let to = Some(self.timeout * 3);
        let names = &self.names;
        match ServerRef::<NameServer>::call_named(p, names, pid.node(), call, to).await {
            Ok(NamesReply::Registered(result)) => result,
            Ok(NamesReply::Found(_)) | Err(_) => Err(DistError::Unavailable),
        }
    }

    /// Unregisters `name`, whoever holds it: [`DistError::NotFound`] if no process does.
    pub async fn unregister(&self, p: &Process, name: &str) -> Result<(), DistError> {
        let name = name.to_string();
        match self
            .commit(p, Command::Unregister { name, pid: None })
            .await?
        {
            (_, Outcome::Unregistered(Some(_))) => Ok(()),
            _ => Err(DistError::NotFound),
        }
    }

    /// The process registered under `name`, as this node's name server knows it, without a
    /// message over the network: the table this node has applied, less the processes whose
    /// `DOWN` the server has seen. `None` if the server does not answer. Recorded as an API
    /// call and a lookup (docs/cluster-invariants.md, I4 and I9).
    pub async fn whereis_name(&self, p: &Process, name: &str) -> Option<Pid> {
        let what = format!("whereis_name {name}");
        let body = async {
            let (me, to) = (p.pid().node(), Some(self.timeout));
            let asked = NamesCall::Lookup(name.to_string());
            match ServerRef::<NameServer>::call_named(p, &self.names, me, asked, to).await {
                Ok(NamesReply::Found(pid)) => pid,
                Ok(NamesReply::Registered(_)) | Err(_) => None,
            }
        };
        self.lookup(p, name, what, 1, body).await
    }

    /// The process registered under `name`, as the group has committed it when asked (a read
    /// a majority confirms: Raft's ReadIndex); `None` if no process holds it, or no majority
    /// answers in time. It may have ended, if its unregistration is not committed yet.
    pub async fn whereis_name_authoritative(&self, p: &Process, name: &str) -> Option<Pid> {
        let me = p.pid().node();
        consensus::fresh::<Control>(p, &self.group, me, self.timeout)
            .await
            .ok()?;
        let query = Query::Name(name.to_string());
        match consensus::query::<Control>(p, &self.group, me, query, self.timeout).await {
            Ok(Answer::Name(pid)) => pid,
            Ok(_) | Err(_) => None,
        }
    }

    /// `name` in the cluster registry, as a server's name
    /// ([`StartOptions::via`](crate::server::StartOptions::via)): the starting server
    /// registers itself before its `init` ([`register`](Self::register)), and a name another
    /// process holds fails the start with `AlreadyStarted`.
    ///
    /// ```
    /// # #[cfg(madsim)] {
    /// use otpsim::cluster::cp::supervisor::{self, DistConfig};
    /// use otpsim::rt::Duration;
    /// use otpsim::server::{self, CallReply, From, GenServer, Init, StartError, StartOptions};
    /// use otpsim::sim::cluster::ClusterSim;
    /// use otpsim::Process;
    ///
    /// struct Store;
    /// impl GenServer for Store {
    ///     type Arg = ();
    ///     type Call = ();
    ///     type Reply = ();
    ///     type Cast = ();
    ///     type Cont = ();
    ///     async fn init(_: (), _: &Process) -> Init<Self> {
    ///         Init::Ok(Store)
    ///     }
    /// }
    ///
    /// let report = ClusterSim::new(1).nodes(3).run(|ctl| async move {
    ///     let config = DistConfig::new("app", [1, 2, 3]);
    ///     for k in 1..=3 {
    ///         supervisor::boot(&ctl.node(k), config.clone()).unwrap();
    ///     }
    ///     ctl.sleep(Duration::from_secs(3)).await;
    ///     let (dist, other) = (config.handle(), config.handle());
    ///     let store = ctl
    ///         .on(1, move |p| async move {
    ///             let options = StartOptions::default().via(dist.via("store"));
    ///             server::start_with::<Store>(&p, (), options).await.unwrap().pid()
    ///         })
    ///         .await
    ///         .unwrap();
    ///     let (again, found) = ctl
    ///         .on(2, move |p| async move {
    ///             let options = StartOptions::default().via(other.via("store"));
    ///             let again = server::start_with::<Store>(&p, (), options).await.err();
    ///             (again, other.whereis_name(&p, "store").await)
    ///         })
    ///         .await
    ///         .unwrap();
    ///     assert_eq!(again, Some(StartError::AlreadyStarted(store)));
    ///     assert_eq!(found, Some(store));
    /// });
    /// assert_eq!(report.failure(), None);
    /// # }
    /// ```
    pub fn via(&self, name: &str) -> Via {
        Via(std::sync::Arc::new(DistName {
            dist: self.clone(),
            name: name.to_string(),
        }))
    }
}

/// A name in the cluster registry ([`DistRef::via`]).
struct DistName {
    dist: DistRef,
    name: String,
}

impl ViaName for DistName {
    fn register_name(&self, _: &Process) -> Registering {
        let (dist, name) = (self.dist.clone(), self.name.clone());
        Registering::Ask(Box::new(move |p| {
            Box::pin(async move {
                match dist.register(p, &name, p.pid()).await {
                    Ok(()) => Ok(()),
                    Err(DistError::AlreadyRegistered(held)) => Err(ViaError::Taken(held)),
                    Err(why) => Err(ViaError::Failed(ExitReason::error(why.to_string()))),
                }
            })
        }))
    }

    fn whereis_name<'a>(&'a self, p: &'a Process) -> BoxFuture<'a, Option<Pid>> {
        Box::pin(self.dist.whereis_name(p, &self.name))
    }

    fn describe(&self) -> String {
        format!("{{via, {}, {:?}}}", self.dist.name, self.name)
    }
}

/// What name servers ask each other: a server that was cut off from a node asks which of
/// its registered processes still run before it names them again.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum NamesPeer {
    /// Which of these processes of your node run? (Answered to `reply`.)
    Alive {
        /// The asking server.
        reply: Pid,
        /// The processes.
        pids: Vec<Pid>,
    },
    /// Of the processes asked about, these run.
    Running {
        /// The processes asked about.
        asked: Vec<Pid>,
        /// Those that run.
        running: Vec<Pid>,
    },
}

/// A request to a node's name server.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum NamesCall {
    /// The process registered under the name, as this node knows it.
    Lookup(String),
    /// Register the name to this process of the server's node ([`DistRef::register`]).
    Register {
        /// The name.
        name: String,
        /// The process.
        pid: Pid,
    },
}

/// A name server's answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum NamesReply {
    /// The process a lookup found.
    Found(Option<Pid>),
    /// What a registration did.
    Registered(Result<(), DistError>),
}

/// The name server of one node (see the [module](self) documentation).
pub struct NameServer {
    /// Its registered name, the same on every node.
    name: String,
    /// The supervisor's Raft group.
    group: String,
    timeout: Duration,
    /// The node's lease, under which its registered processes run.
    lease: Lease,
    /// The table as this node applied it, at `version`.
    table: BTreeMap<String, Pid>,
    version: u64,
    /// The registered processes monitored, with their monitors.
    watched: BTreeMap<Pid, MonitorRef>,
    /// Registered processes whose `DOWN` came: `true` if only the connection to their node
    /// went (named again once their node, connected again, says they still run).
    down: BTreeMap<Pid, bool>,
    /// Processes of this node whose unregistration is being committed.
    unregistering: BTreeSet<Pid>,
    /// The processes of this node it holds under the lease (once each, whatever their
    /// names): those registered, and those whose registration it asked for and has not seen
    /// refused.
    held: BTreeSet<Pid>,
    /// The registrations it asked for whose outcome it has not seen (one whose fate is
    /// unknown stays until the table shows it or its process ends: the process stays held).
    pending: BTreeSet<(Pid, String)>,
    watching: bool,
    /// A `Refresh` is in the mailbox.
    refreshing: bool,
}

/// Read the table again: something was applied.
struct Refresh;

/// A registration's proposal came back: what it did (`None`: its fate is unknown).
struct Proposed {
    name: String,
    pid: Pid,
    outcome: Option<Registration>,
    from: From<NamesReply>,
}

/// Proposes the registration of `name` to `pid` (a process of the calling process's node);
/// a name held by a process of this node that ended is unregistered first. What it did, or
/// `None` if its fate is unknown.
async fn commit_registration(
    q: &Process,
    group: &str,
    timeout: Duration,
    name: &str,
    pid: Pid,
) -> Option<Registration> {
    let me = q.pid().node();
    let register = || Command::Register {
        name: name.to_string(),
        pid,
    };
    let propose = |command| consensus::propose::<Control>(q, group, me, command, timeout);
    let registration = |outcome: Result<(u64, Outcome), _>| match outcome {
        Ok((_, Outcome::Registration(r))) => Some(r),
        Ok(_) | Err(_) => None,
    };
    match registration(propose(register()).await)? {
        Registration::Taken(held) if held.node() == me && !q.node().is_alive(held) => {
            let pid = Some(held);
            let name = name.to_string();
            propose(Command::Unregister { name, pid }).await.ok()?;
            registration(propose(register()).await)
        }
        other => Some(other),
    }
}

/// The name server's timer.
struct Tick;

/// An unregistration of a process of this node was committed, or failed.
struct Unregistered(Pid);

impl NameServer {
    /// Reads the table again if it changed, and follows it.
    async fn refresh(&mut self, p: &Process) {
        let me = p.pid().node();
        // Calls to this node's group server: brief, for lookups wait behind them.
        let (group, timeout) = (&self.group, LOCAL_WITHIN);
        if !self.watching {
            self.watching = consensus::watch::<Control>(p, group, me, timeout).await;
        }
        let query = Query::Names(self.version);
        if let Ok(Answer::Names(Some((version, names)))) =
            consensus::query::<Control>(p, group, me, query, timeout).await
        {
            self.version = version;
            self.follow(p, names.into_iter().collect());
        }
        self.retry(p);
    }

    /// Asks again for the unregistrations that did not commit, and which cut-off processes
    /// of the nodes it is connected to run.
    fn retry(&mut self, p: &Process) {
        self.unregister_ended(p);
        for node in p.node().nodes() {
            self.ask_alive(p, node);
        }
    }

    /// Asks `node`'s name server which of its registered processes this server was cut off
    /// from still run.
    fn ask_alive(&self, p: &Process, node: u16) {
        let pids: Vec<Pid> = self
            .down
            .iter()
            .filter(|(pid, &cut)| cut && pid.node() == node)
            .map(|(&pid, _)| pid)
            .collect();
        if !pids.is_empty() {
            let reply = p.pid();
            p.send_named(&self.name, node, NamesPeer::Alive { reply, pids });
        }
    }

    /// The table is `table` now: new processes are monitored (those of nodes it is cut off
    /// from counted as cut off at once), those of this node held under the lease, and those
    /// no longer registered forgotten.
    fn follow(&mut self, p: &Process, table: BTreeMap<String, Pid>) {
        let me = p.pid().node();
        self.pending
            .retain(|(pid, name)| table.get(name) != Some(pid));
        self.table = table;
        let registered: BTreeSet<Pid> = self.table.values().copied().collect();
        let pending: BTreeSet<Pid> = self.pending.iter().map(|(pid, _)| *pid).collect();
        let gone: Vec<Pid> = self
            .watched
            .keys()
            .filter(|pid| !registered.contains(pid) && !pending.contains(pid))
            .copied()
            .collect();
        for pid in gone {
            if let Some(mref) = self.watched.remove(&pid) {
                p.demonitor_flush(mref);
            }
            self.release_if_unnamed(p, pid);
        }
        self.down.retain(|pid, _| registered.contains(pid));
        let connected = p.node().nodes();
        for &pid in &registered {
            if self.watched.contains_key(&pid) || self.down.contains_key(&pid) {
                continue;
            }
            if pid.node() != me && !connected.contains(&pid.node()) {
                self.down.insert(pid, true);
                continue;
            }
            // One of this node that ended before its registration was applied here, or in
            // the node's previous life, is `noproc` at once.
            self.watched.insert(pid, p.monitor(pid));
            if pid.node() == me && !self.held.contains(&pid) && p.node().is_alive(pid) {
                // Registered without this server's hold (asked of a server of this node that
                // has stopped since): held now, with as much lease left as a start needs, or
                // stopped.
                let now = p.now();
                if self.lease.left(now) >= lease::START_WITHIN && self.lease.hold(pid, now) {
                    self.held.insert(pid);
                } else {
                    lease::stop(p, pid);
                }
            }
        }
    }

    /// Ends the lease's hold of `pid` if it holds no name and no registration of it is
    /// pending. Under a lease that no longer holds it is stopped instead, as the enforcer
    /// would stop it: its name may have gone with its node's `Down` (a node paused past its
    /// lease learns it when it resumes, perhaps before the enforcer runs).
    fn release_if_unnamed(&mut self, p: &Process, pid: Pid) {
        let named = self.table.values().any(|&p| p == pid);
        let pending = self.pending.iter().any(|(p, _)| *p == pid);
        if !named && !pending && self.held.remove(&pid) {
            if self.lease.left(p.now()).is_zero() {
                lease::stop(p, pid);
            }
            self.lease.release(pid);
        }
    }

    /// A registration asked of this server: `pid` is held under the lease first, then the
    /// registration is proposed by a helper process (the server goes on answering lookups),
    /// which answers the caller.
    fn register(&mut self, p: &Process, name: String, pid: Pid, from: From<NamesReply>) {
        if pid.node() != p.pid().node() || !p.node().is_alive(pid) {
            from.reply(p, NamesReply::Registered(Err(DistError::NotFound)));
            return;
        }
        let now = p.now();
        if self.lease.left(now) < lease::START_WITHIN {
            from.reply(p, NamesReply::Registered(Err(DistError::Unavailable)));
            return;
        }
        if !self.held.contains(&pid) {
            if !self.lease.hold(pid, now) {
                from.reply(p, NamesReply::Registered(Err(DistError::Unavailable)));
                return;
            }
            self.held.insert(pid);
        }
        // Monitored from now on, so that its end releases it whatever its registration's fate.
        self.watched.entry(pid).or_insert_with(|| p.monitor(pid));
        self.pending.insert((pid, name.clone()));
        let (group, timeout, server) = (self.group.clone(), self.timeout, p.pid());
        p.spawn(move |q| async move {
            let outcome = commit_registration(&q, &group, timeout, &name, pid).await;
            q.send(
                server,
                Proposed {
                    name,
                    pid,
                    outcome,
                    from,
                },
            );
        });
    }

    /// Commits the unregistration of this node's registered processes that ended (each
    /// once at a time; asked again at the next tick if it did not commit).
    fn unregister_ended(&mut self, p: &Process) {
        let me = p.pid().node();
        let ended: Vec<(String, Pid)> = self
            .table
            .iter()
            .filter(|(_, pid)| pid.node() == me && self.down.contains_key(pid))
            .filter(|(_, pid)| !self.unregistering.contains(pid))
            .map(|(name, &pid)| (name.clone(), pid))
            .collect();
        for (name, pid) in ended {
            self.unregistering.insert(pid);
            let (group, timeout, server) = (self.group.clone(), self.timeout, p.pid());
            p.spawn(move |q| async move {
                let command = Command::Unregister {
                    name,
                    pid: Some(pid),
                };
                let me = q.pid().node();
                let _ = consensus::propose::<Control>(&q, &group, me, command, timeout).await;
                q.send(server, Unregistered(pid));
            });
        }
    }

    fn refresh_soon(&mut self, p: &Process) {
        if !self.refreshing {
            self.refreshing = true;
            p.send(p.pid(), Refresh);
        }
    }
}

impl GenServer for NameServer {
    /// Its registered name, the group's, the call timeout and the node's lease.
    type Arg = (String, String, Duration, Lease);
    type Call = NamesCall;
    type Reply = NamesReply;
    type Cast = ();
    type Cont = ();

    async fn init((name, group, timeout, lease): Self::Arg, p: &Process) -> Init<Self> {
        if p.register(&name).is_err() {
            return Init::Stop(ExitReason::error("already_started"));
        }
        p.monitor_nodes(true);
        p.send(p.pid(), Tick);
        Init::Ok(NameServer {
            name,
            group,
            timeout,
            lease,
            table: BTreeMap::new(),
            version: 0,
            watched: BTreeMap::new(),
            down: BTreeMap::new(),
            unregistering: BTreeSet::new(),
            held: BTreeSet::new(),
            pending: BTreeSet::new(),
            watching: false,
            refreshing: false,
        })
    }

    async fn handle_call(
        &mut self,
        call: NamesCall,
        from: From<NamesReply>,
        p: &Process,
    ) -> CallReply<Self> {
        match call {
            NamesCall::Lookup(name) => {
                let me = p.pid().node();
                let pid = self.table.get(&name).copied().filter(|pid| {
                    !self.down.contains_key(pid) && (pid.node() != me || p.node().is_alive(*pid))
                });
                CallReply::Reply(NamesReply::Found(pid))
            }
            NamesCall::Register { name, pid } => {
                self.register(p, name, pid, from);
                CallReply::NoReply
            }
        }
    }

    async fn handle_info(&mut self, msg: Msg, p: &Process) -> Next<Self> {
        if msg.is::<Tick>() {
            // Once it watches, what is applied comes with an `Applied`: the timer only asks
            // again what did not come through.
            if self.watching {
                self.retry(p);
            } else {
                self.refresh(p).await;
            }
            p.send_after(REFRESH_EVERY, p.pid(), Tick);
            return Next::Continue;
        }
        if msg.is::<Refresh>() {
            self.refreshing = false;
            self.refresh(p).await;
            return Next::Continue;
        }
        if msg.is::<Applied>() {
            self.refresh_soon(p);
            return Next::Continue;
        }
        let msg = match msg.downcast::<Proposed>() {
            Ok(Proposed {
                name,
                pid,
                outcome,
                from,
            }) => {
                let reply = match outcome {
                    Some(Registration::Registered) => Ok(()),
                    Some(Registration::Taken(held)) => Err(DistError::AlreadyRegistered(held)),
                    Some(Registration::NoLease) => Err(DistError::Unavailable),
                    // Its fate is unknown: the hold and the pending registration stay.
                    None => Err(DistError::Unavailable),
                };
                // Committed or refused: its hold follows the table from now on (a refused one
                // is released now, unless it holds another name).
                if outcome.is_some() {
                    self.pending.remove(&(pid, name));
                }
                if matches!(
                    outcome,
                    Some(Registration::Taken(_) | Registration::NoLease)
                ) {
                    self.release_if_unnamed(p, pid);
                }
                from.reply(p, NamesReply::Registered(reply));
                return Next::Continue;
            }
            Err(msg) => msg,
        };
        let msg = match msg.downcast::<NamesPeer>() {
            Ok(NamesPeer::Alive { reply, pids }) => {
                let running = pids.iter().copied();
                let running = running.filter(|&pid| p.node().is_alive(pid)).collect();
                p.send(
                    reply,
                    NamesPeer::Running {
                        asked: pids,
                        running,
                    },
                );
                return Next::Continue;
            }
            // Monitored again (a `DOWN` comes if one ends from now on), and named again; the
            // others ended, and their node's server unregisters them.
            Ok(NamesPeer::Running { asked, running }) => {
                for pid in asked {
                    if self.down.get(&pid) != Some(&true) {
                        continue;
                    }
                    if running.contains(&pid) {
                        self.down.remove(&pid);
                        self.watched.insert(pid, p.monitor(pid));
                    } else {
                        self.down.insert(pid, false);
                    }
                }
                return Next::Continue;
            }
            Err(msg) => msg,
        };
        let msg = match msg.downcast::<Unregistered>() {
            Ok(Unregistered(pid)) => {
                self.unregistering.remove(&pid);
                return Next::Continue;
            }
            Err(msg) => msg,
        };
        match msg {
            Msg::Down { mref, pid, reason } if self.watched.get(&pid) == Some(&mref) => {
                self.watched.remove(&pid);
                if pid.node() == p.pid().node() {
                    self.pending.retain(|(p, _)| *p != pid);
                    if self.held.remove(&pid) {
                        self.lease.release(pid);
                    }
                }
                self.down.insert(pid, reason == ExitReason::noconnection());
                self.unregister_ended(p);
            }
            // The connection is back: its name server is asked which of them still run.
            Msg::NodeUp { node } => self.ask_alive(p, node),
            _ => {}
        }
        Next::Continue
    }
}
