//! Swarm's tracker (`Swarm.Tracker`), one per node: its states, its registry and how it
//! keeps it in step with the other trackers', placement, topology changes and the handoff
//! (the [module](super) documentation tells the story).
//!
//! One file over 600 lines, on purpose: it is one state machine whose handlers share the
//! tracker's state, and they read best together, in the order Swarm's `tracker.ex` has them.

use super::api::{Api, ApiReply, MembersReply};
use super::supervisor::{StartChild, Started};
use super::{dominates, merged_groups, owner, Clock, Config, Entry, HandoffAnswer, Mfa};
use super::{SwarmError, SwarmMsg, RESOLVED_AS_CONFLICT, SUPERVISOR, TRACKER};
use crate::cluster::handoff::HandoffReply;
use crate::process::{ExitReason, MonitorRef, Msg, Process};
use crate::rt::Duration;
use crate::term::{Pid, Term};
use crate::trace::{DistEvent, EventKind, HandoffPhase};
use std::collections::{BTreeMap, BTreeSet};

/// What trackers tell each other.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) enum Peer {
    /// libcluster's connection attempt.
    Hello,
    /// Start `name` here, the owner, and answer `reply` with a [`TrackReply`]; `hops`
    /// trackers passed it on already (each thinking another node owns it).
    Track {
        name: String,
        mfa: Mfa,
        reply: Pid,
        hops: u8,
    },
    /// A replicated change.
    Event { change: Change },
    /// Send me your registry ([`Peer::SyncRecv`]).
    Sync { from: u16 },
    /// My registry; answer with yours ([`Peer::SyncAck`]).
    SyncRecv {
        from: u16,
        registry: Vec<(String, Entry)>,
    },
    /// Your registry arrived (or was dropped).
    SyncAck { from: u16 },
    /// A handed-off process's state: start it here.
    Handoff(HandedOff),
}

#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct TrackReply(Result<Option<Pid>, SwarmError>);

/// A handed-off process, as the old owner's tracker casts it to the new owner's.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct HandedOff {
    from: u16,
    id: u64,
    name: String,
    mfa: Mfa,
    state: Term,
    /// The instance that was told to die.
    old: Pid,
    /// Its entry's version.
    clock: Clock,
    /// Its groups.
    groups: BTreeSet<String>,
}

#[derive(serde::Serialize, serde::Deserialize)]
pub(super) enum Change {
    Track { name: String, entry: Entry },
    Untrack { name: String, pid: Pid },
}

enum Tick {
    Connect,
    SyncNodes,
    AntiEntropy,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    ClusterWait,
    Syncing { with: u16 },
    AwaitingSyncAck { to: u16 },
    Tracking,
}

struct Tracker {
    me: u16,
    config: Config,
    phase: Phase,
    /// The nodes this tracker sees up (itself excluded).
    nodes: BTreeSet<u16>,
    registry: BTreeMap<String, Entry>,
    /// Monitors of registered processes.
    monitors: BTreeMap<Pid, crate::process::MonitorRef>,
    clock: u64,
    /// Sync requests that came while this tracker was not tracking.
    pending_syncs: Vec<u16>,
    /// The monitor of the tracker it syncs with (Swarm's `sync_ref`).
    sync_ref: Option<MonitorRef>,
}

/// The tracker of this node: run it as a process (see the [module](super) documentation).
pub async fn tracker(p: Process, config: Config) -> ExitReason {
    if p.register(TRACKER).is_err() {
        return ExitReason::error("a tracker runs already");
    }
    p.monitor_nodes(true);
    let mut t = Tracker {
        me: p.pid().node(),
        config,
        phase: Phase::ClusterWait,
        // The nodes connected already (`Node.list()`); the others come as `nodeup`s.
        nodes: p.node().nodes().into_iter().collect(),
        registry: BTreeMap::new(),
        monitors: BTreeMap::new(),
        clock: 0,
        pending_syncs: Vec::new(),
        sync_ref: None,
    };
    t.record(
        &p,
        DistEvent::Serving {
            node: t.me,
            on: false,
        },
    );
    t.record_members(&p);
    t.hello(&p);
    p.send_after(t.config.connect_interval, p.pid(), Tick::Connect);
    p.send_after(t.config.sync_nodes_timeout, p.pid(), Tick::SyncNodes);
    p.send_after(t.config.anti_entropy_interval, p.pid(), Tick::AntiEntropy);
    loop {
        let tracking = t.phase == Phase::Tracking;
        let sync_ref = t.sync_ref;
        // Swarm postpones every call until it tracks, and a tracked process's `DOWN` too
        // (only the sync peer's is taken): what it cannot take yet waits in the mailbox, in
        // order.
        let msg = p
            .receive(|m| {
                tracking || !(m.is::<Api>() || is_postponed_peer(m) || is_tracked_down(m, sync_ref))
            })
            .await;
        t.handle(&p, msg).await;
    }
}

/// A monitored process's `DOWN` other than the sync peer's tracker's (`sync_ref`): it waits
/// while the tracker is not tracking (tracker.ex's `syncing`, `awaiting_sync_ack` and
/// `cluster_wait` postpone it).
fn is_tracked_down(m: &Msg, sync_ref: Option<MonitorRef>) -> bool {
    matches!(m, Msg::Down { mref, .. } if Some(*mref) != sync_ref)
}

/// A tracker's request that waits while the tracker is not tracking.
fn is_postponed_peer(m: &Msg) -> bool {
    matches!(
        m.downcast_ref::<Peer>(),
        Some(Peer::Track { .. } | Peer::Event { .. } | Peer::Handoff(_))
    )
}

impl Tracker {
    fn record(&self, p: &Process, event: DistEvent) {
        p.node().record(EventKind::Dist(event));
    }

    /// A new version: `seen` (what the update replaces), and one more update of this node.
    fn tick(&mut self, seen: Option<&Clock>) -> Clock {
        self.clock += 1;
        let mut clock = seen.cloned().unwrap_or_default();
        clock.insert(self.me, self.clock);
        clock
    }

    /// Every node this tracker may place names on: itself and those it sees.
    /// Moves to `phase`, recording when the tracker starts or stops serving calls.
    fn set_phase(&mut self, p: &Process, phase: Phase) {
        let serving = phase == Phase::Tracking;
        if serving != (self.phase == Phase::Tracking) {
            self.record(
                p,
                DistEvent::Serving {
                    node: self.me,
                    on: serving,
                },
            );
        }
        self.phase = phase;
    }

    /// Records this tracker's view of the members (after a change of `nodes`).
    fn record_members(&self, p: &Process) {
        let members = self.members().into_iter().collect();
        self.record(
            p,
            DistEvent::Members {
                node: self.me,
                members,
            },
        );
    }

    fn members(&self) -> BTreeSet<u16> {
        let mut members = self.nodes.clone();
        members.insert(self.me);
        members
    }

    fn owner(&self, name: &str) -> Option<u16> {
        owner(name, &self.members(), self.config.quorum)
    }

    fn hello(&self, p: &Process) {
        for &k in self.config.peers.iter().filter(|k| **k != self.me) {
            p.send_named(TRACKER, k, Peer::Hello);
        }
    }

    fn broadcast(&self, p: &Process, change: impl Fn() -> Change) {
        for &k in &self.nodes {
            p.send_named(TRACKER, k, Peer::Event { change: change() });
        }
    }

    /// Adds or replaces `name`'s entry, monitoring its process.
    fn insert(&mut self, p: &Process, name: &str, entry: Entry) {
        let old_groups = self.registry.get(name).map(|e| &e.groups);
        if old_groups.unwrap_or(&BTreeSet::new()) != &entry.groups {
            self.record(
                p,
                DistEvent::Groups {
                    node: self.me,
                    name: name.into(),
                    groups: entry.groups.iter().cloned().collect(),
                },
            );
        }
        if let Some(old) = self.registry.get(name) {
            if old.pid != entry.pid {
                if let Some(m) = self.monitors.remove(&old.pid) {
                    p.demonitor(m);
                }
            }
        }
        self.monitors
            .entry(entry.pid)
            .or_insert_with(|| p.monitor(entry.pid));
        self.record(
            p,
            DistEvent::View {
                node: self.me,
                name: name.into(),
                pid: Some(entry.pid),
            },
        );
        self.registry.insert(name.into(), entry);
    }

    fn remove(&mut self, p: &Process, name: &str) -> Option<Entry> {
        let entry = self.registry.remove(name)?;
        if let Some(m) = self.monitors.remove(&entry.pid) {
            p.demonitor(m);
        }
        self.record(
            p,
            DistEvent::View {
                node: self.me,
                name: name.into(),
                pid: None,
            },
        );
        Some(entry)
    }

    /// `remove_registration`: `name`'s entry goes, here and (broadcast) everywhere this
    /// tracker sees.
    fn untrack(&mut self, p: &Process, name: &str) -> Option<Entry> {
        let entry = self.remove(p, name)?;
        let pid = entry.pid;
        self.broadcast(p, || Change::Untrack {
            name: name.into(),
            pid,
        });
        Some(entry)
    }

    async fn handle(&mut self, p: &Process, msg: Msg) {
        let msg = match msg.downcast::<Peer>() {
            Ok(peer) => return self.peer(p, peer).await,
            Err(msg) => msg,
        };
        let msg = match msg.downcast::<Api>() {
            Ok(api) => return self.api(p, api).await,
            Err(msg) => msg,
        };
        let msg = match msg.downcast::<Tick>() {
            Ok(tick) => return self.timer(p, tick),
            Err(msg) => msg,
        };
        match msg {
            Msg::NodeUp { node } => self.nodeup(p, node).await,
            Msg::NodeDown { node, .. } => self.nodedown(p, node).await,
            Msg::Down { mref, pid, .. } if Some(mref) == self.sync_ref => {
                self.sync_ref = None;
                self.sync_lost(p, pid.node());
            }
            Msg::Down { pid, reason, .. } => self.down(p, pid, &reason).await,
            _ => {}
        }
    }

    fn timer(&mut self, p: &Process, tick: Tick) {
        match tick {
            Tick::Connect => {
                self.hello(p);
                p.send_after(self.config.connect_interval, p.pid(), Tick::Connect);
            }
            Tick::SyncNodes => {
                if self.phase == Phase::ClusterWait {
                    self.start_sync(p);
                }
            }
            Tick::AntiEntropy => {
                if self.phase == Phase::Tracking {
                    if let Some(&k) = self.nodes.iter().next() {
                        self.sync_with(p, k);
                    }
                }
                p.send_after(
                    self.config.anti_entropy_interval,
                    p.pid(),
                    Tick::AntiEntropy,
                );
            }
        }
    }

    /// Syncs with one node it sees (the first), or tracks alone.
    fn start_sync(&mut self, p: &Process) {
        match self.nodes.iter().next() {
            Some(&k) => self.sync_with(p, k),
            None => self.set_phase(p, Phase::Tracking),
        }
    }

    /// Asks node `k`'s tracker for its registry, watching it.
    fn sync_with(&mut self, p: &Process, k: u16) {
        self.watch_sync(p, k);
        p.send_named(TRACKER, k, Peer::Sync { from: self.me });
        self.set_phase(p, Phase::Syncing { with: k });
    }

    fn watch_sync(&mut self, p: &Process, k: u16) {
        if let Some(old) = self.sync_ref.take() {
            p.demonitor(old);
        }
        self.sync_ref = Some(p.monitor_name(TRACKER, k));
    }

    /// `resolve_pending_sync_requests`: answers the next pending request of a node it still
    /// sees, or starts tracking. A sync ends without a topology change: after a re-sync, a
    /// misplaced process stays where it is.
    fn resolve_pending(&mut self, p: &Process) {
        if let Some(old) = self.sync_ref.take() {
            p.demonitor(old);
        }
        while !self.pending_syncs.is_empty() {
            let k = self.pending_syncs.remove(0);
            if self.nodes.contains(&k) {
                return self.answer_sync(p, k);
            }
        }
        self.set_phase(p, Phase::Tracking);
    }

    fn answer_sync(&mut self, p: &Process, k: u16) {
        self.watch_sync(p, k);
        let registry = self.snapshot();
        p.send_named(
            TRACKER,
            k,
            Peer::SyncRecv {
                from: self.me,
                registry,
            },
        );
        self.set_phase(p, Phase::AwaitingSyncAck { to: k });
    }

    /// The tracker it syncs with is gone (its node, or itself): another node, or alone.
    fn sync_lost(&mut self, p: &Process, k: u16) {
        match self.phase {
            Phase::Syncing { with } if with == k => {
                if let Some(old) = self.sync_ref.take() {
                    p.demonitor(old);
                }
                match self.nodes.iter().copied().find(|n| *n != k) {
                    Some(other) => self.sync_with(p, other),
                    None => self.resolve_pending(p),
                }
            }
            Phase::AwaitingSyncAck { to } if to == k => self.resolve_pending(p),
            _ => {}
        }
    }

    fn snapshot(&self) -> Vec<(String, Entry)> {
        self.registry
            .iter()
            .map(|(n, e)| (n.clone(), e.clone()))
            .collect()
    }

    async fn nodeup(&mut self, p: &Process, node: u16) {
        let alone = self.nodes.is_empty();
        if self.nodes.insert(node) {
            self.record_members(p);
        }
        if self.phase != Phase::Tracking {
            return;
        }
        if alone {
            // A tracker that had lost every peer treats the node as a join: a full sync,
            // no handoff (the re-sync path).
            self.sync_with(p, node);
        } else {
            self.topology_change(p).await;
        }
    }

    async fn nodedown(&mut self, p: &Process, node: u16) {
        // A node already dropped from the view (a `noconnection` came first) changes nothing.
        if !self.nodes.remove(&node) {
            return self.sync_lost(p, node);
        }
        self.record_members(p);
        match self.phase {
            Phase::Tracking => self.topology_change(p).await,
            _ => self.sync_lost(p, node),
        }
    }

    /// `handle_monitor`: a registered process is down. Its registration goes (and the
    /// removal is broadcast). Lost with its connection (`noconnection`), a process Swarm
    /// started (with an MFA) keeps its registration: its node is taken as down (`nodedown`,
    /// a topology change that restarts it on its new owner, once its node was still in the
    /// view); one registered by pid goes.
    async fn down(&mut self, p: &Process, pid: Pid, reason: &ExitReason) {
        if self.monitors.remove(&pid).is_none() {
            return;
        }
        let lost = reason.to_term().is_atom("noconnection");
        let names: Vec<String> = self
            .registry
            .iter()
            .filter(|(_, e)| e.pid == pid)
            .map(|(n, _)| n.clone())
            .collect();
        let (restartable, names): (Vec<String>, Vec<String>) = names
            .into_iter()
            .partition(|n| lost && self.registry.get(n).is_some_and(|e| e.mfa.is_some()));
        for name in names {
            let Some(entry) = self.untrack(p, &name) else {
                continue;
            };
            // A process `register_name` started ended of its own accord (not `shutdown`, the
            // reason of one told to die): Swarm forgets it (its own node's tracker says so
            // once).
            let own_accord = !lost && !reason.is_shutdown() && pid.node() == self.me;
            if own_accord && matches!(entry.mfa, Some(Mfa::Spawn { .. })) {
                self.record(
                    p,
                    DistEvent::Desired {
                        name: name.clone(),
                        on: false,
                    },
                );
            }
        }
        if !restartable.is_empty() {
            self.nodedown(p, pid.node()).await;
        }
    }

    /// `handle_topology_change`: every entry judged by this tracker's own view.
    async fn topology_change(&mut self, p: &Process) {
        let entries = self.snapshot();
        for (name, entry) in entries {
            let Some(mfa) = entry.mfa.clone() else {
                if entry.pid.node() != self.me && !self.nodes.contains(&entry.pid.node()) {
                    self.untrack(p, &name);
                }
                continue;
            };
            let owner = self.owner(&name);
            if entry.pid.node() == self.me {
                match owner {
                    None => {
                        self.untrack(p, &name);
                        p.send(entry.pid, SwarmMsg::Die);
                    }
                    Some(k) if k == self.me => {}
                    Some(k) => self.handoff(p, &name, &entry, mfa, k).await,
                }
            } else if !self.nodes.contains(&entry.pid.node()) {
                match owner {
                    // No owner (the quorum is lost): the registration goes, for good.
                    None => {
                        self.untrack(p, &name);
                    }
                    // Its node is gone, and the name is ours now: start it here (the other
                    // nodes drop the dead entry at the broadcast removal, and take the new
                    // one at its `track`).
                    Some(k) if k == self.me => {
                        self.untrack(p, &name);
                        let groups = entry.groups.clone();
                        let _ = self
                            .start_here(p, &name, &mfa, Some(&entry.clock), groups)
                            .await;
                    }
                    // "The other node will tell us."
                    Some(_) => {}
                }
            }
        }
    }

    /// Hands `name`'s local process over to node `to`.
    async fn handoff(&mut self, p: &Process, name: &str, entry: &Entry, mfa: Mfa, to: u16) {
        // A ref: unique across the node's incarnations, as a counter is not.
        let id = p.make_ref().0;
        let phase = |phase| DistEvent::Handoff {
            id,
            name: name.into(),
            phase,
        };
        let from = entry.pid;
        self.record(p, phase(HandoffPhase::Begin { from, to }));
        let reply = p.pid();
        p.send(from, SwarmMsg::BeginHandoff { reply, tag: id });
        // Synchronous, inside the tracker: everything else waits meanwhile (a
        // `GenServer.call`, which fails at once if the worker is gone).
        let mref = p.monitor(from);
        let answer = p
            .receive_timeout(
                move |m| {
                    m.downcast_ref::<HandoffAnswer>()
                        .is_some_and(|a| a.tag == id)
                        || matches!(m, Msg::Down { mref: r, .. } if *r == mref)
                },
                self.config.handoff_timeout,
            )
            .await
            .and_then(|m| m.downcast::<HandoffAnswer>().ok());
        p.demonitor(mref);
        let untrack = |t: &mut Tracker| {
            t.untrack(p, name);
            p.send(from, SwarmMsg::Die);
        };
        match answer.map(|a| a.reply) {
            None => {
                let why = "begin_handoff timed out".into();
                self.record(p, phase(HandoffPhase::Aborted { why }));
            }
            Some(HandoffReply::Ignore) => {
                let why = "ignore".into();
                self.record(p, phase(HandoffPhase::Aborted { why }));
            }
            Some(HandoffReply::Restart) => {
                untrack(self);
                let why = "restart".into();
                self.record(p, phase(HandoffPhase::Aborted { why }));
                self.track_remote(p, to, name, mfa, None);
            }
            Some(HandoffReply::Resume(state)) => {
                // The process is told to die before its state has arrived anywhere, and the
                // state goes as a cast that nothing acknowledges.
                untrack(self);
                let handed = HandedOff {
                    from: self.me,
                    id,
                    name: name.into(),
                    mfa,
                    state,
                    old: from,
                    clock: entry.clock.clone(),
                    groups: entry.groups.clone(),
                };
                p.send_named(TRACKER, to, Peer::Handoff(handed));
                self.record(p, phase(HandoffPhase::StateSent));
            }
        }
    }

    /// Starts `name` on this node by its `mfa`, registers it (a newer version than `seen`, the
    /// entry it replaces, in `groups`) and broadcasts it.
    async fn start_here(
        &mut self,
        p: &Process,
        name: &str,
        mfa: &Mfa,
        seen: Option<&Clock>,
        groups: BTreeSet<String>,
    ) -> Result<Pid, SwarmError> {
        let pid = apply(p, name, mfa).await?;
        self.record(
            p,
            DistEvent::Start {
                name: name.into(),
                pid,
                epoch: None,
            },
        );
        let entry = Entry {
            pid,
            mfa: Some(mfa.clone()),
            clock: self.tick(seen),
            groups,
        };
        self.insert(p, name, entry.clone());
        let n = name.to_string();
        self.broadcast(p, || Change::Track {
            name: n.clone(),
            entry: entry.clone(),
        });
        Ok(pid)
    }

    /// `do_track`: start `name` on its owner, answering `reply` (if any) with an [`ApiReply`].
    async fn track(&mut self, p: &Process, name: &str, mfa: Mfa, reply: Option<Pid>) {
        let answer = match self.owner(name) {
            None => Err(SwarmError::NoNodeAvailable),
            Some(k) if k == self.me => match self.registry.get(name) {
                Some(e) => Err(SwarmError::AlreadyRegistered(e.pid)),
                None => self.register_here(p, name, &mfa).await.map(Some),
            },
            Some(k) => return self.track_remote(p, k, name, mfa, reply),
        };
        if let Some(reply) = reply {
            p.send(reply, ApiReply(answer));
        }
    }

    /// A registration this node owns: starts `name` by `mfa`, in no group. A name that
    /// `register_name` starts itself ([`Mfa::Spawn`]) is desired from then on, until its
    /// process ends of its own accord (see `down`).
    async fn register_here(
        &mut self,
        p: &Process,
        name: &str,
        mfa: &Mfa,
    ) -> Result<Pid, SwarmError> {
        let started = self.start_here(p, name, mfa, None, BTreeSet::new()).await;
        if started.is_ok() && matches!(mfa, Mfa::Spawn { .. }) {
            let name = name.into();
            self.record(p, DistEvent::Desired { name, on: true });
        }
        started
    }

    /// Asks node `owner`'s tracker to start `name`, from a task of its own, which retries
    /// through this tracker when the owner goes away.
    fn track_remote(&self, p: &Process, owner: u16, name: &str, mfa: Mfa, reply: Option<Pid>) {
        let name = name.to_string();
        p.spawn(move |q| async move {
            let mref = q.monitor_name(TRACKER, owner);
            q.send_named(
                TRACKER,
                owner,
                Peer::Track {
                    name: name.clone(),
                    mfa: mfa.clone(),
                    reply: q.pid(),
                    hops: 0,
                },
            );
            let msg = q
                .receive(move |m| {
                    m.is::<TrackReply>() || matches!(m, Msg::Down { mref: r, .. } if *r == mref)
                })
                .await;
            match msg.downcast::<TrackReply>() {
                Ok(TrackReply(answer)) => {
                    if let Some(reply) = reply {
                        q.send(reply, ApiReply(answer));
                    }
                }
                Err(_) => {
                    // The owner went away: ask again once the view has changed (Swarm
                    // retries each second).
                    q.sleep(Duration::from_secs(1)).await;
                    q.send_named(
                        TRACKER,
                        q.pid().node(),
                        Api::Register {
                            name,
                            mfa,
                            reply: reply.unwrap_or(q.pid()),
                        },
                    );
                }
            }
        });
    }

    async fn api(&mut self, p: &Process, api: Api) {
        match api {
            Api::Register { name, mfa, reply } => self.track(p, &name, mfa, Some(reply)).await,
            Api::Whereis { name, reply } => {
                let pid = self.registry.get(&name).map(|e| e.pid);
                p.send(reply, ApiReply(Ok(pid)));
            }
            Api::Group {
                group,
                pid,
                member,
                reply,
            } => {
                self.set_group(p, group, pid, member);
                p.send(reply, ApiReply(Ok(Some(pid))));
            }
            Api::Members { group, reply } => {
                let members = self.registry.values().filter(|e| e.groups.contains(&group));
                p.send(reply, MembersReply(members.map(|e| e.pid).collect()));
            }
        }
    }

    /// `add_meta_by_pid` (`join`) and `remove_meta_by_pid` (`leave`): `pid`'s entry, if this
    /// registry has one, joins or leaves `group` (a newer version, broadcast); a pid it does
    /// not have, or one already in (or out of) the group, is left alone.
    fn set_group(&mut self, p: &Process, group: String, pid: Pid, member: bool) {
        let Some((name, entry)) = self.registry.iter().find(|(_, e)| e.pid == pid) else {
            return;
        };
        if entry.groups.contains(&group) == member {
            return;
        }
        let (name, mut entry) = (name.clone(), entry.clone());
        if member {
            entry.groups.insert(group.clone());
        } else {
            entry.groups.remove(&group);
        }
        entry.clock = self.tick(Some(&entry.clock));
        let name_ = name.clone();
        self.record(
            p,
            if member {
                DistEvent::Joined {
                    name: name_,
                    group,
                    pid,
                }
            } else {
                DistEvent::Left {
                    name: name_,
                    group,
                    pid,
                }
            },
        );
        self.insert(p, &name, entry.clone());
        self.broadcast(p, || Change::Track {
            name: name.clone(),
            entry: entry.clone(),
        });
    }

    async fn peer(&mut self, p: &Process, peer: Peer) {
        match peer {
            Peer::Hello => {}
            Peer::Track {
                name,
                mfa,
                reply,
                hops,
            } => {
                let answer = match self.owner(&name) {
                    Some(k) if k == self.me => match self.registry.get(&name) {
                        Some(e) => Err(SwarmError::AlreadyRegistered(e.pid)),
                        None => self.register_here(p, &name, &mfa).await.map(Some),
                    },
                    None => Err(SwarmError::NoNodeAvailable),
                    // Not ours in this tracker's view: pass it on, up to ten times (Swarm's
                    // retries); trackers whose views disagree may pass it back and forth.
                    Some(_) if hops >= 10 => Err(SwarmError::NoNodeAvailable),
                    Some(k) => {
                        let hops = hops + 1;
                        let track = Peer::Track {
                            name,
                            mfa,
                            reply,
                            hops,
                        };
                        p.send_named(TRACKER, k, track);
                        return;
                    }
                };
                p.send(reply, TrackReply(answer));
            }
            Peer::Event { change, .. } => self.replicated(p, change),
            Peer::Sync { from } => match self.phase {
                Phase::Tracking | Phase::ClusterWait => self.answer_sync(p, from),
                // Two trackers syncing with each other: Swarm rolls dice, the lower node
                // answers here.
                Phase::Syncing { with } if with == from => {
                    if self.me < from {
                        self.answer_sync(p, from)
                    }
                }
                _ => {
                    if !self.pending_syncs.contains(&from) {
                        self.pending_syncs.push(from);
                    }
                }
            },
            Peer::SyncRecv { from, registry } => {
                // Acknowledged even when dropped, so that the sender does not wait for ever.
                p.send_named(TRACKER, from, Peer::SyncAck { from: self.me });
                if self.phase == (Phase::Syncing { with: from }) {
                    self.merge(p, from, registry);
                    self.pending_syncs.retain(|k| *k != from);
                    self.resolve_pending(p);
                }
            }
            Peer::SyncAck { from } => {
                if self.phase == (Phase::AwaitingSyncAck { to: from }) {
                    self.resolve_pending(p);
                }
            }
            Peer::Handoff(handed) => self.receive_handoff(p, handed).await,
        }
    }

    /// `handle_handoff`, on the new owner.
    async fn receive_handoff(&mut self, p: &Process, handed: HandedOff) {
        let HandedOff {
            from,
            id,
            name,
            mfa,
            state,
            old,
            clock,
            groups,
        } = handed;
        let name = name.as_str();
        let phase = |phase| DistEvent::Handoff {
            id,
            name: name.into(),
            phase,
        };
        match self.registry.get(name).map(|e| e.pid) {
            Some(local) if local.node() == self.me => {
                // A healed netsplit: the local instance gets the other's state.
                p.send(local, SwarmMsg::ResolveConflict(state));
                self.record(
                    p,
                    DistEvent::Conflict {
                        name: name.into(),
                        winner: local,
                        loser: old,
                        state_delivered: true,
                    },
                );
                let why = RESOLVED_AS_CONFLICT.into();
                self.record(p, phase(HandoffPhase::Aborted { why }));
                let entry = self.registry[name].clone();
                let n = name.to_string();
                self.broadcast(p, || Change::Track {
                    name: n.clone(),
                    entry: entry.clone(),
                });
            }
            // Registered to a process on a third node: no case of Swarm's matches, and the
            // handoff is dropped, the state and the process with it.
            Some(pid) if pid.node() != from => {
                let why = format!("{name} is registered to {pid} on a third node");
                self.record(p, phase(HandoffPhase::Aborted { why }));
            }
            other => {
                if other.is_some() {
                    self.remove(p, name);
                }
                if let Ok(pid) = self.start_here(p, name, &mfa, Some(&clock), groups).await {
                    p.send(pid, SwarmMsg::EndHandoff(state));
                    self.record(p, phase(HandoffPhase::Delivered { pid }));
                }
            }
        }
    }

    /// A change broadcast by another tracker.
    fn replicated(&mut self, p: &Process, change: Change) {
        match change {
            Change::Track { name, entry } => match self.registry.get(&name) {
                None => self.insert(p, &name, entry),
                Some(local) if local.pid == entry.pid => {
                    let mut merged = local.clone();
                    merged.groups = merged_groups(local, &entry);
                    for (k, n) in &entry.clock {
                        let c = merged.clock.entry(*k).or_default();
                        *c = (*c).max(*n);
                    }
                    if merged.groups != local.groups {
                        self.insert(p, &name, merged);
                    } else {
                        self.registry.insert(name, merged);
                    }
                }
                // Newer, and the old instance is local: it is killed.
                Some(local)
                    if local.pid.node() == self.me
                        && (local.clock == entry.clock
                            || dominates(&entry.clock, &local.clock)) =>
                {
                    p.exit(local.pid, ExitReason::Kill);
                    self.insert(p, &name, entry)
                }
                // Anything else: "mismatched pids ... event unhandled", dropped.
                Some(_) => {}
            },
            Change::Untrack { name, pid } => {
                if self.registry.get(&name).is_some_and(|e| e.pid == pid) {
                    self.remove(p, &name);
                }
            }
        }
    }

    /// `sync_registry`, on the syncing side: node `from`'s registry merged into this one's.
    /// Of two instances of a name, the newer (by clock) wins; with concurrent clocks, the one
    /// on the name's owner, or on one node the higher pid; else neither. The loser is told to
    /// die, wherever it runs, without its state reaching the winner, and a losing remote
    /// registration is corrected at `from`.
    fn merge(&mut self, p: &Process, from: u16, registry: Vec<(String, Entry)>) {
        for (name, remote) in registry {
            let Some(local) = self.registry.get(&name).cloned() else {
                self.insert(p, &name, remote);
                continue;
            };
            if local.pid == remote.pid {
                let groups = merged_groups(&local, &remote);
                if groups != local.groups {
                    self.insert(p, &name, Entry { groups, ..local });
                }
                continue;
            }
            let (l, r) = (local.pid.node(), remote.pid.node());
            let remote_wins =
                if dominates(&remote.clock, &local.clock) || local.clock == remote.clock {
                    Some(true)
                } else if dominates(&local.clock, &remote.clock) {
                    Some(false)
                } else {
                    match self.owner(&name) {
                        Some(k) if k == r && l != r => Some(true),
                        Some(k) if k == l && r != l => Some(false),
                        _ if l == r => Some(remote.pid > local.pid),
                        // "cannot be resolved"
                        _ => None,
                    }
                };
            let Some(remote_wins) = remote_wins else {
                continue;
            };
            let (winner, loser) = match remote_wins {
                true => (remote.pid, local.pid),
                false => (local.pid, remote.pid),
            };
            p.send(loser, SwarmMsg::Die);
            self.record(
                p,
                DistEvent::Conflict {
                    name: name.clone(),
                    winner,
                    loser,
                    state_delivered: false,
                },
            );
            if remote_wins {
                self.insert(p, &name, remote);
            } else {
                let untrack = Change::Untrack {
                    name: name.clone(),
                    pid: loser,
                };
                p.send_named(TRACKER, from, Peer::Event { change: untrack });
                let track = Change::Track {
                    name: name.clone(),
                    entry: local,
                };
                p.send_named(TRACKER, from, Peer::Event { change: track });
            }
        }
    }
}

/// Runs `mfa` on this node for `name`: the process it starts.
async fn apply(p: &Process, name: &str, mfa: &Mfa) -> Result<Pid, SwarmError> {
    let me = p.pid().node();
    match mfa {
        Mfa::Spawn { start, arg } => p
            .spawn_on(me, start, arg.clone())
            .await
            .map_err(|e| SwarmError::StartFailed(e.to_string())),
        Mfa::Supervised { start, arg } => {
            let Some(sup) = p.whereis(SUPERVISOR) else {
                return Err(SwarmError::StartFailed("no supervisor on the node".into()));
            };
            // A `GenServer.call`: it fails if the supervisor goes first.
            let mref = p.monitor(sup);
            p.send(
                sup,
                StartChild {
                    name: name.into(),
                    start: start.clone(),
                    arg: arg.clone(),
                    reply: p.pid(),
                },
            );
            let answer = p
                .receive(move |m| {
                    m.is::<Started>() || matches!(m, Msg::Down { mref: r, .. } if *r == mref)
                })
                .await;
            p.demonitor(mref);
            match answer.downcast::<Started>() {
                Ok(Started(result)) => result,
                Err(_) => Err(SwarmError::StartFailed("the supervisor is gone".into())),
            }
        }
    }
}
