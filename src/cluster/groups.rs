//! Process groups across a cluster, as Erlang's `pg` (OTP 25, `kernel/src/pg.erl`): a
//! group is a name with a list of member processes on any nodes, each node the owner of its
//! own members.
//!
//! A node runs one scope process per scope, registered under the scope's name. A process
//! joins and leaves groups only through its own node's scope, which monitors it and tells the
//! scopes of the other nodes; each scope keeps every node's members in a table that
//! [`Groups::get_members`] reads without a call (Erlang's ETS table). Nothing is agreed:
//!
//! * During a split each side sees only its own members: a scope forgets a peer's members
//!   when its monitor of that peer's scope goes down (`noconnection`).
//! * At the heal the views merge: a scope that hears `nodeup` asks the new peer's scope for
//!   its members (`discover`), which answers with all of them (`sync`) and asks back.
//! * The view is not transitive: a node sees the members of the nodes it is connected to.
//!
//! A member listed twice joined twice, and leaves once per join. A member that exits leaves
//! every group it joined. A scope that restarts starts empty.
//!
//! The membership behaviours are recorded from OTP 25.2.3 by the oracle
//! (`sim-tests/conformance/c19`-`c22`), and docs/cp.md ("Groups") explains the choice of an
//! available design for groups (SWARM.md §4.2 item 10 in the design notes). Where this
//! differs from pg, on purpose: the monitors of a group hear only the processes that left a
//! `leave` (pg: every process given), and when a peer's `sync` replaces members they hear the
//! difference (pg: nothing). A handle runs one incarnation at a time, on one node, and its
//! reads ([`Groups::get_members`]) are that node's view.
//!
//! ```
//! # #[cfg(madsim)] {
//! use otpsim::cluster::Groups;
//! use otpsim::rt::Duration;
//! use otpsim::sim::cluster::ClusterSim;
//! let report = ClusterSim::new(0).nodes(2).run(|ctl| async move {
//!     ctl.connect(1, 2);
//!     // Node 2 runs the scope "pg", and a device process there joins "devices".
//!     let device = ctl.on(2, |p| async move {
//!         let groups = Groups::start_link(&p, "pg").await.unwrap();
//!         let device = p.spawn(|q| async move { q.recv().await; });
//!         groups.join(&p, "devices", [device]).await.unwrap();
//!         device
//!     });
//!     let device = device.await.unwrap();
//!     // Node 1's scope learns node 2's members as it starts.
//!     let seen = ctl.on(1, |p| async move {
//!         let groups = Groups::start_link(&p, "pg").await.unwrap();
//!         p.sleep(Duration::from_millis(10)).await;
//!         groups.get_members("devices")
//!     });
//!     assert_eq!(seen.await.unwrap(), vec![device]);
//! });
//! assert_eq!(report.failure(), None);
//! # }
//! ```

use crate::process::{ExitReason, MonitorRef, Msg, Node, Process};
use crate::server::{self, CallReply, From, GenServer, Init, Next, ServerRef, StartError};
use crate::supervisor::{self, ChildId, ChildSpec, Start};
use crate::term::Pid;
use crate::trace::{DistEvent, EventKind};
use std::collections::{btree_map, BTreeMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// A scope of process groups on one node (`pg:start_link(Scope)`). Cloning gives another
/// handle to the same scope; every handle reaches the incarnation that runs now.
#[derive(Clone)]
pub struct Groups {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Groups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Groups({:?})", self.shared.scope)
    }
}

/// What went wrong with a group operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupsError {
    /// A process of another node cannot join or leave here: only its own node's scope owns
    /// its membership (pg's `{nolocal, Pid}`).
    #[error("{0} is not a process of this node: it joins and leaves through its own node")]
    NotLocal(Pid),
    /// The scope's process is not running (it was never started, or it died).
    #[error("the scope {0} is not running")]
    NotRunning(String),
}

/// A change of a group's members, sent to the processes that called [`Groups::monitor`]
/// (that group) or [`Groups::monitor_scope`] (every group): pg's `{Ref, join | leave, Group,
/// Pids}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupsEvent {
    /// The reference the monitor call returned.
    pub mref: MonitorRef,
    /// The group.
    pub group: String,
    /// `true` if `pids` joined, `false` if they left.
    pub joined: bool,
    /// The processes, on any node.
    pub pids: Vec<Pid>,
}

/// The members of one group, as this node knows them.
#[derive(Default)]
struct Entry {
    /// Every member, most recent join first (a process joined twice is listed twice).
    all: Vec<Pid>,
    /// The members on this node.
    local: Vec<Pid>,
}

/// The table every handle reads (Erlang's ETS table): written only by the scope process.
#[derive(Default)]
struct Table {
    /// The incarnation the table belongs to, and its node.
    server: Option<(Pid, Node)>,
    groups: BTreeMap<String, Entry>,
}

struct Shared {
    scope: String,
    table: Mutex<Table>,
}

impl Groups {
    /// A scope that is not started yet: start it with [`start`](Groups::start), or
    /// give [`child_spec`](Groups::child_spec) to a supervisor.
    pub fn new(scope: impl Into<String>) -> Groups {
        Groups {
            shared: Arc::new(Shared {
                scope: scope.into(),
                table: Mutex::new(Table::default()),
            }),
        }
    }

    /// Starts the scope `scope` on the caller's node, linked to the caller
    /// (`pg:start_link(Scope)`); a scope of that name running already fails the start with
    /// [`StartError::AlreadyStarted`].
    pub async fn start_link(p: &Process, scope: impl Into<String>) -> Result<Groups, StartError> {
        let groups = Groups::new(scope);
        groups.start(p).await?;
        Ok(groups)
    }

    /// Starts an incarnation of this scope on the caller's node, linked to the caller, with no
    /// members; returns its pid. A handle runs one incarnation at a time, on one node: while
    /// one runs, the start is [`StartError::AlreadyStarted`] with it.
    pub async fn start(&self, p: &Process) -> Result<Pid, StartError> {
        if let Some(running) = self.pid() {
            return Err(StartError::AlreadyStarted(running));
        }
        let options = server::StartOptions::linked().named(self.shared.scope.clone());
        let scope = server::start_with::<Scope>(p, self.shared.clone(), options).await?;
        Ok(scope.pid())
    }

    /// The scope as the worker `id` of a supervisor, which starts it and, when it dies,
    /// starts it again, with no members (as pg's table dies with its process).
    pub fn child_spec(&self, id: impl Into<ChildId>) -> ChildSpec {
        let groups = self.clone();
        ChildSpec::worker(
            id,
            Start::new(move |p| {
                let groups = groups.clone();
                Box::pin(async move { supervisor::start_result(groups.start(p).await) })
            }),
        )
        .modules(["pg"])
    }

    /// The scope's name.
    pub fn scope(&self) -> &str {
        &self.shared.scope
    }

    /// The running incarnation's pid (`None` before the first start or after it died).
    pub fn pid(&self) -> Option<Pid> {
        let (server, node) = self.table().server.clone()?;
        node.is_alive(server).then_some(server)
    }

    /// Makes each of `pids`, processes of the scope's node, a member of `group`
    /// (`pg:join/3`); a process given twice joins twice. Every connected node's scope learns
    /// of it.
    pub async fn join(
        &self,
        p: &Process,
        group: impl Into<String>,
        pids: impl IntoIterator<Item = Pid>,
    ) -> Result<(), GroupsError> {
        let pids = self.local(pids)?;
        self.call(p, Request::Join(group.into(), pids)).await?;
        Ok(())
    }

    /// Takes one membership of `group` from each of `pids`, processes of the scope's node
    /// (`pg:leave/3`): `Ok(false)` if none of them was a member (pg's `not_joined`). The
    /// monitors hear of the processes that left (pg tells them every process given).
    pub async fn leave(
        &self,
        p: &Process,
        group: impl Into<String>,
        pids: impl IntoIterator<Item = Pid>,
    ) -> Result<bool, GroupsError> {
        let pids = self.local(pids)?;
        let left = self.call(p, Request::Leave(group.into(), pids)).await?;
        Ok(matches!(left, Reply::Done(true)))
    }

    /// The members of `group` on every node this node sees, most recent join first
    /// (`pg:get_members/2`); empty if the scope is not running.
    pub fn get_members(&self, group: &str) -> Vec<Pid> {
        self.read(|t| t.groups.get(group).map_or(Vec::new(), |e| e.all.clone()))
    }

    /// The members of `group` on this node (`pg:get_local_members/2`).
    pub fn get_local_members(&self, group: &str) -> Vec<Pid> {
        self.read(|t| t.groups.get(group).map_or(Vec::new(), |e| e.local.clone()))
    }

    /// The groups with at least one member this node sees, in order (`pg:which_groups/1`).
    pub fn which_groups(&self) -> Vec<String> {
        self.read(|t| t.groups.keys().cloned().collect())
    }

    /// The groups with at least one member on this node, in order.
    pub fn which_local_groups(&self) -> Vec<String> {
        self.read(|t| {
            t.groups
                .iter()
                .filter(|(_, e)| !e.local.is_empty())
                .map(|(g, _)| g.clone())
                .collect()
        })
    }

    /// The members of `group` as the scope `scope` of the caller's node lists them, for a
    /// process that holds no handle on it (a call, where [`get_members`](Groups::get_members)
    /// reads the table).
    pub async fn members_of(
        p: &Process,
        scope: &str,
        group: impl Into<String>,
    ) -> Result<Vec<Pid>, GroupsError> {
        let not_running = || GroupsError::NotRunning(scope.to_string());
        let server = p.whereis(scope).ok_or_else(not_running)?;
        // A scope answers at once: the bound is for a name some other process holds.
        let wait = Some(crate::rt::Duration::from_secs(5));
        match ServerRef::<Scope>::from_pid(server)
            .call_timeout(p, Request::Members(group.into()), wait)
            .await
        {
            Ok(Reply::Members(members)) => Ok(members),
            Ok(_) | Err(_) => Err(not_running()),
        }
    }

    /// Subscribes the caller to the changes of `group` (`pg:monitor/2`): returns the
    /// reference its [`GroupsEvent`]s carry and the members now. The subscription ends with
    /// [`demonitor`](Groups::demonitor) or the caller's exit.
    pub async fn monitor(
        &self,
        p: &Process,
        group: impl Into<String>,
    ) -> Result<(MonitorRef, Vec<Pid>), GroupsError> {
        match self.call(p, Request::Monitor(Some(group.into()))).await? {
            Reply::Monitor(mref, mut now) => Ok((mref, now.pop().map_or(Vec::new(), |g| g.1))),
            _ => unreachable!("a monitor call is answered with a monitor"),
        }
    }

    /// Subscribes the caller to the changes of every group (`pg:monitor_scope/1`): returns
    /// the reference its [`GroupsEvent`]s carry and every group's members now.
    pub async fn monitor_scope(
        &self,
        p: &Process,
    ) -> Result<(MonitorRef, BTreeMap<String, Vec<Pid>>), GroupsError> {
        match self.call(p, Request::Monitor(None)).await? {
            Reply::Monitor(mref, now) => Ok((mref, now.into_iter().collect())),
            _ => unreachable!("a monitor call is answered with a monitor"),
        }
    }

    /// Ends the subscription `mref` and drops its events still in the caller's mailbox
    /// (`pg:demonitor/2`): `false` if there was none.
    pub async fn demonitor(&self, p: &Process, mref: MonitorRef) -> Result<bool, GroupsError> {
        let ended = matches!(
            self.call(p, Request::Demonitor(mref)).await?,
            Reply::Done(true)
        );
        if ended {
            let is_event = |m: &Msg| {
                m.downcast_ref::<GroupsEvent>()
                    .is_some_and(|e| e.mref == mref)
            };
            while p.try_receive(is_event).await.is_some() {}
        }
        Ok(ended)
    }

    /// `pids`, if they are all processes of the scope's node.
    fn local(&self, pids: impl IntoIterator<Item = Pid>) -> Result<Vec<Pid>, GroupsError> {
        let here = self
            .pid()
            .ok_or_else(|| GroupsError::NotRunning(self.shared.scope.clone()))?
            .node();
        let pids: Vec<Pid> = pids.into_iter().collect();
        match pids.iter().find(|pid| pid.node() != here) {
            Some(&other) => Err(GroupsError::NotLocal(other)),
            None => Ok(pids),
        }
    }

    async fn call(&self, p: &Process, request: Request) -> Result<Reply, GroupsError> {
        let not_running = || GroupsError::NotRunning(self.shared.scope.clone());
        let server = self.pid().ok_or_else(not_running)?;
        // pg calls its scope with an infinite timeout: the scope answers at once, or dies.
        ServerRef::<Scope>::from_pid(server)
            .call_timeout(p, request, None)
            .await
            .map_err(|_| not_running())
    }

    /// Reads the table of the running incarnation (an empty one if none runs: pg's ETS
    /// table dies with its process).
    fn read<R>(&self, f: impl FnOnce(&Table) -> R) -> R {
        match self.pid() {
            Some(_) => f(&self.table()),
            None => f(&Table::default()),
        }
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.shared
            .table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Registers the messages scopes send each other in `codec`: what a node needs to run groups
/// over a real network (`dist::tcp`).
///
/// ```
/// let mut codec = otpsim::dist::Codec::new();
/// otpsim::cluster::groups::codec(&mut codec);
/// ```
pub fn codec(codec: &mut crate::dist::Codec) -> &mut crate::dist::Codec {
    codec.register::<Peer>("pg_peer")
}

/// What a scope's API asks it.
enum Request {
    Join(String, Vec<Pid>),
    Leave(String, Vec<Pid>),
    /// Subscribe to one group, or to all.
    Monitor(Option<String>),
    /// The members of a group.
    Members(String),
    Demonitor(MonitorRef),
}

/// Its answers.
enum Reply {
    /// Whether anything changed (a join always does).
    Done(bool),
    Monitor(MonitorRef, Vec<(String, Vec<Pid>)>),
    Members(Vec<Pid>),
}

/// What scopes tell each other (pg's protocol; a peer is the other node's scope process).
#[derive(serde::Serialize, serde::Deserialize)]
enum Peer {
    /// "Send me your members": from a new scope, or on `nodeup`.
    Discover { peer: Pid },
    /// All of `peer`'s own members, which replace what is known of them.
    Sync {
        peer: Pid,
        groups: Vec<(String, Vec<Pid>)>,
    },
    Join {
        peer: Pid,
        group: String,
        pids: Vec<Pid>,
    },
    /// `pids` each left one membership of each of `groups`.
    Leave {
        peer: Pid,
        pids: Vec<Pid>,
        groups: Vec<String>,
    },
}

/// A scope's process.
struct Scope {
    shared: Arc<Shared>,
    /// This node's members: their monitor, and the groups they joined (once per join).
    local: BTreeMap<Pid, (MonitorRef, Vec<String>)>,
    /// The other nodes' scopes: their monitor, and their members by group.
    remote: BTreeMap<Pid, (MonitorRef, BTreeMap<String, Vec<Pid>>)>,
    /// Subscribers to every group, by the monitor on them.
    scope_monitors: BTreeMap<MonitorRef, Pid>,
    /// Subscribers to one group, by the monitor on them.
    group_monitors: BTreeMap<MonitorRef, (Pid, String)>,
}

impl GenServer for Scope {
    type Arg = Arc<Shared>;
    type Call = Request;
    type Reply = Reply;
    type Cast = ();
    type Cont = ();

    async fn init(shared: Arc<Shared>, p: &Process) -> Init<Self> {
        {
            let mut t = shared.table.lock().unwrap_or_else(PoisonError::into_inner);
            *t = Table {
                server: Some((p.pid(), p.node().clone())),
                groups: BTreeMap::new(),
            };
        }
        p.node().record_with(|| {
            EventKind::Dist(DistEvent::GroupsStarted {
                node: p.pid().node(),
                scope: shared.scope.clone(),
            })
        });
        p.monitor_nodes(true);
        for node in p.node().nodes() {
            p.send_named(&shared.scope, node, Peer::Discover { peer: p.pid() });
        }
        Init::Ok(Scope {
            shared,
            local: BTreeMap::new(),
            remote: BTreeMap::new(),
            scope_monitors: BTreeMap::new(),
            group_monitors: BTreeMap::new(),
        })
    }

    async fn handle_call(
        &mut self,
        request: Request,
        from: From<Reply>,
        p: &Process,
    ) -> CallReply<Self> {
        let reply = match request {
            Request::Join(group, pids) => {
                for &pid in &pids {
                    match self.local.get_mut(&pid) {
                        Some((_, groups)) => groups.insert(0, group.clone()),
                        None => {
                            let mref = p.monitor(pid);
                            self.local.insert(pid, (mref, vec![group.clone()]));
                        }
                    }
                }
                self.add(p, &group, &pids, true);
                self.broadcast(p, || Peer::Join {
                    peer: p.pid(),
                    group: group.clone(),
                    pids: pids.clone(),
                });
                Reply::Done(true)
            }
            Request::Leave(group, pids) => {
                let mut left = Vec::new();
                for &pid in &pids {
                    if let Some((mref, groups)) = self.local.get_mut(&pid) {
                        if let Some(i) = groups.iter().position(|g| *g == group) {
                            groups.remove(i);
                            left.push(pid);
                            if groups.is_empty() {
                                p.demonitor(*mref);
                                self.local.remove(&pid);
                            }
                        }
                    }
                }
                if !left.is_empty() {
                    self.remove(p, &group, &left, true);
                    self.broadcast(p, || Peer::Leave {
                        peer: p.pid(),
                        pids: left.clone(),
                        groups: vec![group.clone()],
                    });
                }
                Reply::Done(!left.is_empty())
            }
            Request::Monitor(group) => {
                let mref = p.monitor(from.pid());
                let t = self.table();
                let now: Vec<(String, Vec<Pid>)> = match &group {
                    Some(g) => vec![(
                        g.clone(),
                        t.groups.get(g).map_or(Vec::new(), |e| e.all.clone()),
                    )],
                    None => t
                        .groups
                        .iter()
                        .map(|(g, e)| (g.clone(), e.all.clone()))
                        .collect(),
                };
                drop(t);
                match group {
                    Some(g) => {
                        self.group_monitors.insert(mref, (from.pid(), g));
                    }
                    None => {
                        self.scope_monitors.insert(mref, from.pid());
                    }
                }
                Reply::Monitor(mref, now)
            }
            Request::Members(group) => {
                let t = self.table();
                Reply::Members(t.groups.get(&group).map_or(Vec::new(), |e| e.all.clone()))
            }
            Request::Demonitor(mref) => {
                let known = self.scope_monitors.remove(&mref).is_some()
                    || self.group_monitors.remove(&mref).is_some();
                if known {
                    p.demonitor(mref);
                }
                Reply::Done(known)
            }
        };
        CallReply::Reply(reply)
    }

    async fn handle_info(&mut self, msg: Msg, p: &Process) -> Next<Self> {
        let msg = match msg.downcast::<Peer>() {
            Ok(peer) => {
                self.on_peer(p, peer);
                return Next::Continue;
            }
            Err(msg) => msg,
        };
        match msg {
            Msg::Down { mref, pid, .. } => self.on_down(p, mref, pid),
            // pg discovers a node's scope when it connects; a connection's loss is seen as
            // the DOWN of the peer's scope.
            Msg::NodeUp { node } if node != p.pid().node() => {
                p.send_named(&self.shared.scope, node, Peer::Discover { peer: p.pid() });
            }
            _ => {}
        }
        Next::Continue
    }

    async fn terminate(&mut self, _: &ExitReason, p: &Process) {
        let mut t = self.table();
        if t.server.as_ref().is_some_and(|(pid, _)| *pid == p.pid()) {
            t.groups.clear();
        }
    }
}

impl Scope {
    fn table(&self) -> MutexGuard<'_, Table> {
        self.shared
            .table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends `msg()` to every known peer scope.
    fn broadcast(&self, p: &Process, msg: impl Fn() -> Peer) {
        for &peer in self.remote.keys() {
            p.send(peer, msg());
        }
    }

    fn on_peer(&mut self, p: &Process, msg: Peer) {
        match msg {
            Peer::Discover { peer } => {
                p.send(
                    peer,
                    Peer::Sync {
                        peer: p.pid(),
                        groups: self.local_groups(),
                    },
                );
                if let btree_map::Entry::Vacant(new) = self.remote.entry(peer) {
                    new.insert((p.monitor(peer), BTreeMap::new()));
                    p.send(peer, Peer::Discover { peer: p.pid() });
                }
            }
            Peer::Sync { peer, groups } => self.on_sync(p, peer, groups),
            Peer::Join { peer, group, pids } => {
                // A peer that is not (or no longer) known: its scope went down meanwhile.
                let Some((_, known)) = self.remote.get_mut(&peer) else {
                    return;
                };
                let members = known.entry(group.clone()).or_default();
                members.splice(0..0, pids.iter().copied());
                self.add(p, &group, &pids, false);
            }
            Peer::Leave { peer, pids, groups } => {
                let Some((_, known)) = self.remote.get_mut(&peer) else {
                    return;
                };
                for group in &groups {
                    if let Some(members) = known.get_mut(group) {
                        remove_each(members, &pids);
                        if members.is_empty() {
                            known.remove(group);
                        }
                    }
                }
                for group in &groups {
                    self.remove(p, group, &pids, false);
                }
            }
        }
    }

    /// `peer`'s members replace what this scope knew of them (pg's `handle_sync`).
    fn on_sync(&mut self, p: &Process, peer: Pid, groups: Vec<(String, Vec<Pid>)>) {
        let known = self
            .remote
            .entry(peer)
            .or_insert_with(|| (p.monitor(peer), BTreeMap::new()));
        let mut old = std::mem::take(&mut known.1);
        for (group, pids) in &groups {
            match old.remove(group) {
                Some(before) if before == *pids => {}
                Some(before) => self.replace(p, group, &before, pids),
                None => self.add(p, group, pids, false),
            }
        }
        for (group, before) in old {
            self.remove(p, &group, &before, false);
        }
        if let Some((_, known)) = self.remote.get_mut(&peer) {
            *known = groups.into_iter().collect();
        }
    }

    fn on_down(&mut self, p: &Process, mref: MonitorRef, pid: Pid) {
        if self.scope_monitors.remove(&mref).is_some()
            || self.group_monitors.remove(&mref).is_some()
        {
            return;
        }
        if let Some((_, groups)) = self.local.remove(&pid) {
            for group in &groups {
                self.remove(p, group, &[pid], true);
            }
            self.broadcast(p, || Peer::Leave {
                peer: p.pid(),
                pids: vec![pid],
                groups: groups.clone(),
            });
        } else if let Some((_, known)) = self.remote.remove(&pid) {
            for (group, pids) in known {
                self.remove(p, &group, &pids, false);
            }
        }
    }

    /// This node's members by group.
    fn local_groups(&self) -> Vec<(String, Vec<Pid>)> {
        let mut by_group: BTreeMap<String, Vec<Pid>> = BTreeMap::new();
        for (&pid, (_, groups)) in &self.local {
            for group in groups {
                by_group.entry(group.clone()).or_default().insert(0, pid);
            }
        }
        by_group.into_iter().collect()
    }

    /// `pids` joined `group` (on this node if `local`): the table and the monitors learn it.
    fn add(&mut self, p: &Process, group: &str, pids: &[Pid], local: bool) {
        let members = {
            let mut t = self.table();
            let entry = t.groups.entry(group.to_string()).or_default();
            entry.all.splice(0..0, pids.iter().copied());
            if local {
                entry.local.splice(0..0, pids.iter().copied());
            }
            entry.all.clone()
        };
        self.changed(p, group, true, pids, members);
    }

    /// A peer's members of `group` were `before` and are `pids` now (pg's
    /// `Pids ++ (All -- OldPids)`). pg tells its monitors nothing; they are told here of the
    /// difference only (the same members in another order change nothing for them).
    fn replace(&mut self, p: &Process, group: &str, before: &[Pid], pids: &[Pid]) {
        let members = {
            let mut t = self.table();
            let entry = t.groups.entry(group.to_string()).or_default();
            remove_each(&mut entry.all, before);
            entry.all.splice(0..0, pids.iter().copied());
            let members = entry.all.clone();
            if members.is_empty() {
                t.groups.remove(group);
            }
            members
        };
        let mut left = before.to_vec();
        remove_each(&mut left, pids);
        let mut joined = pids.to_vec();
        remove_each(&mut joined, before);
        self.record(p, group, members);
        if !left.is_empty() {
            self.notify(p, group, false, &left);
        }
        if !joined.is_empty() {
            self.notify(p, group, true, &joined);
        }
    }

    /// `pids` each left one membership of `group`.
    fn remove(&mut self, p: &Process, group: &str, pids: &[Pid], local: bool) {
        let members = {
            let mut t = self.table();
            let Some(entry) = t.groups.get_mut(group) else {
                return;
            };
            remove_each(&mut entry.all, pids);
            if local {
                remove_each(&mut entry.local, pids);
            }
            let members = entry.all.clone();
            if members.is_empty() {
                t.groups.remove(group);
            }
            members
        };
        self.changed(p, group, false, pids, members);
    }

    /// `pids` joined or left `group`, which has these members now: the trace and the
    /// monitors learn it.
    fn changed(&self, p: &Process, group: &str, joined: bool, pids: &[Pid], members: Vec<Pid>) {
        self.record(p, group, members);
        self.notify(p, group, joined, pids);
    }

    /// Records `group`'s members now, for the cluster invariants (docs/cluster-invariants.md,
    /// S4).
    fn record(&self, p: &Process, group: &str, members: Vec<Pid>) {
        p.node().record_with(|| {
            EventKind::Dist(DistEvent::GroupMembers {
                node: p.pid().node(),
                scope: self.shared.scope.clone(),
                group: group.to_string(),
                members,
            })
        });
    }

    /// Tells the monitors of `group` (and of the scope) that `pids` joined or left it.
    fn notify(&self, p: &Process, group: &str, joined: bool, pids: &[Pid]) {
        let watchers = self.scope_monitors.iter().chain(
            self.group_monitors
                .iter()
                .filter(|(_, (_, g))| g == group)
                .map(|(m, (w, _))| (m, w)),
        );
        for (&mref, &watcher) in watchers {
            p.send(
                watcher,
                GroupsEvent {
                    mref,
                    group: group.to_string(),
                    joined,
                    pids: pids.to_vec(),
                },
            );
        }
    }
}

/// Removes one occurrence of each of `pids` from `list` (Erlang's `--`).
fn remove_each(list: &mut Vec<Pid>, pids: &[Pid]) {
    for pid in pids {
        if let Some(i) = list.iter().position(|x| x == pid) {
            list.remove(i);
        }
    }
}
