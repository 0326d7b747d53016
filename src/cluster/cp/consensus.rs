//! A Raft group in a process: TiKV's Raft core (raft-rs) driven by a [`GenServer`] on each
//! node of the group, its log on the node's [`Disk`](crate::Disk), its messages sent over the
//! distribution to the same server on the other nodes, and its committed commands applied to
//! a [`Replicated`] state machine in the same order on every node.
//!
//! raft-rs is a pure state machine: the server ticks it from a timer
//! ([`RaftConfig::tick`]), steps it with the peers' messages, and handles its `Ready` in the
//! order raft-rs documents (send what a leader may send at once, apply what is committed,
//! persist and sync the new entries and hard state, then send what had to wait for them).
//! Its one source of randomness, the election timeout drawn from `rand::thread_rng` (which
//! the simulator cannot seed), is pinned: each node's timeout is a fixed number of ticks, a
//! different one per node ([`RaftConfig::election_ticks_of`]), so a run depends only on its
//! seed (docs/cp.md, "Consensus").
//!
//! Proposals go to the leader: a follower answers [`ConsensusError::NotLeader`] with the
//! leader it knows, and [`propose`] follows it. A proposal is answered when its entry is
//! applied on the node that proposed it, or [`ConsensusError::Dropped`] when another entry
//! took its place in the log.
//!
//! The leader also grants the group's nodes leases ([`lease`], docs/cp.md "Leases"): a grant
//! is answered once a majority has confirmed the leader is still the leader (a ReadIndex), and
//! the leader keeps, per node, when it last granted one ([`Status::lease_ages_ms`]). A new
//! leader counts every node as granted when it took over: a node that holds a lease its
//! predecessor confirmed asked for it before the majority acknowledged, and that majority
//! acknowledged before it voted for the new leader. It grants nothing until it has applied
//! the log of the terms before its own, so a node committed down is refused.
//!
//! ```
//! # #[cfg(madsim)] {
//! use otpsim::cluster::cp::consensus::{self, Consensus, RaftConfig, Replicated};
//! use otpsim::rt::Duration;
//! use otpsim::sim::cluster::ClusterSim;
//!
//! /// A replicated counter.
//! #[derive(Default)]
//! struct Sum(u64);
//! impl Replicated for Sum {
//!     type Command = u64;
//!     type Output = u64;
//!     type Query = ();
//!     type Answer = u64;
//!     fn apply(&mut self, _index: u64, add: u64) -> u64 {
//!         self.0 += add;
//!         self.0
//!     }
//!     fn query(&self, _: ()) -> u64 {
//!         self.0
//!     }
//! }
//!
//! let report = ClusterSim::new(1).nodes(3).run(|ctl| async move {
//!     for k in 1..=3 {
//!         let config = RaftConfig::new("sum", [1, 2, 3]);
//!         ctl.node(k).spawn(move |p| consensus::serve(p, config, Sum::default()));
//!     }
//!     // The first voter stands after 1 s without a leader.
//!     ctl.sleep(Duration::from_secs(2)).await;
//!     let total = ctl
//!         .on(2, |p| async move {
//!             consensus::propose::<Sum>(&p, "sum", 2, 5, Duration::from_secs(5)).await
//!         })
//!         .await;
//!     assert_eq!(total, Some(Ok((2, 5))));
//! });
//! assert_eq!(report.failure(), None);
//! # }
//! ```
//!
//! The server's state, its `Ready` handling and its request protocol (proposals, reads, watches)
//! share raft-rs's `RawNode` at every step, so they are one file (hence its length); the durable
//! log is in `log.rs`.

use super::log::DurableLog;
use crate::rt::Duration;
use crate::rt::Instant;
use crate::server::{self, CallReply, From, GenServer, Init, Next, ServerRef};
use crate::{ExitReason, Msg, Pid, Process};
use protobuf::Message as _;
use raft::prelude::{Entry, EntryType, Message};
use raft::storage::MemStorage;
use raft::{RawNode, StateRole};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A state machine replicated by a Raft group: every node applies the same commands in the same
/// order, and answers queries from what it has applied.
pub trait Replicated: Send + 'static {
    /// What is proposed and, once committed, applied.
    type Command: Serialize + DeserializeOwned + Clone + Send + 'static;
    /// What applying a command answers its proposer.
    type Output: Serialize + DeserializeOwned + Send + 'static;
    /// A question about the applied state.
    type Query: Serialize + DeserializeOwned + Send + 'static;
    /// Its answer.
    type Answer: Serialize + DeserializeOwned + Send + 'static;

    /// Applies the command committed at log position `index`. It must depend on nothing but
    /// the state and the command: every node, and a node replaying its log at boot, must get
    /// the same state.
    fn apply(&mut self, index: u64, command: Self::Command) -> Self::Output;

    /// Answers a query from this node's applied state (which may lag the leader's).
    fn query(&self, query: Self::Query) -> Self::Answer;

    /// Called after [`apply`](Replicated::apply) on the node that leads the group, which
    /// applies each entry first and in commit order: for what should happen once per commit,
    /// such as recording it in the trace. Nothing by default.
    fn on_commit(&self, p: &Process, command: &Self::Command, output: &Self::Output) {
        let _ = (p, command, output);
    }

    /// Called on the leader before it appends a proposed command: for what must be counted on
    /// one clock whichever node proposed it (a time in the command, set from `now`). Nothing
    /// by default.
    fn stamp(&self, command: &mut Self::Command, now: Lead) {
        let _ = (command, now);
    }

    /// Whether the leader may grant `node` a lease ([`lease`]), by this state. Every node may,
    /// by default.
    fn leasable(&self, node: u16) -> bool {
        let _ = node;
        true
    }
}

/// How a Raft group runs: its name (the server's registered name on every node, and its files'
/// prefix on each node's disk), its voters, and its timing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaftConfig {
    /// The registered name of the group's server on each node.
    pub name: String,
    /// The nodes of the group, each a voter (fixed membership).
    pub voters: Vec<u16>,
    /// One Raft tick.
    pub tick: Duration,
    /// Ticks without a leader's word before the first voter stands for election; voter `i`
    /// (by position) waits `3 * i` ticks more.
    pub election_ticks: usize,
    /// Ticks between a leader's heartbeats.
    pub heartbeat_ticks: usize,
}

impl RaftConfig {
    /// The group `name` of `voters`, with a 100 ms tick, an election after 10 ticks (1 s) for
    /// the first voter, and heartbeats every 2 ticks.
    pub fn new(name: &str, voters: impl IntoIterator<Item = u16>) -> RaftConfig {
        let mut voters: Vec<u16> = voters.into_iter().collect();
        voters.sort_unstable();
        voters.dedup();
        RaftConfig {
            name: name.to_string(),
            voters,
            tick: Duration::from_millis(100),
            election_ticks: 10,
            heartbeat_ticks: 2,
        }
    }

    /// The same group with another tick.
    pub fn tick(mut self, tick: Duration) -> RaftConfig {
        self.tick = tick;
        self
    }

    /// Node `node`'s election timeout in ticks: fixed, and distinct per voter, so that the
    /// group elects a leader without Raft's random timeouts.
    pub fn election_ticks_of(&self, node: u16) -> usize {
        let position = self.voters.iter().position(|&v| v == node).unwrap_or(0);
        self.election_ticks + 3 * position
    }

    fn raft_config(&self, node: u16) -> raft::Config {
        let election = self.election_ticks_of(node);
        raft::Config {
            id: u64::from(node),
            election_tick: election,
            heartbeat_tick: self.heartbeat_ticks,
            // Raft draws its timeout from [min, max): one value, no randomness.
            min_election_tick: election,
            max_election_tick: election + 1,
            // The state machine is rebuilt from the whole log at every boot.
            applied: 0,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            // A node that cannot reach a majority does not disturb it when it comes back,
            // and a leader cut off from the majority steps down.
            pre_vote: true,
            check_quorum: true,
            ..Default::default()
        }
    }
}

/// Ticks after which a fresh read that no leader confirmed is forgotten.
const FORGET_READS_AFTER: u64 = 100;

/// A Raft message between the servers of a group, in raft-rs's protobuf encoding.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RaftWire(pub Vec<u8>);

/// The server's own timer.
struct Tick;

/// A node's role in its group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Asks whether it could win an election (pre-vote).
    PreCandidate,
    /// Stands for election.
    Candidate,
    /// Leads the group.
    Leader,
}

/// Where a node's server stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The node.
    pub node: u16,
    /// Its role.
    pub role: Role,
    /// Its term.
    pub term: u64,
    /// The leader it knows of.
    pub leader: Option<u16>,
    /// The last log position it knows committed.
    pub commit: u64,
    /// The last log position it applied.
    pub applied: u64,
    /// On a leader: per member, how long ago (ms, on this node's clock) it last granted the
    /// member a lease, or took over as leader if later. Empty on the other nodes.
    pub lease_ages_ms: BTreeMap<u16, u64>,
}

/// A moment on a leader's clock: its term, and the ms since it took the lead in that term on
/// its monotonic clock. Two moments of one term compare; a term's leader never steps its
/// clock, and a leader that boots again leads in a later term.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Lead {
    /// The leader's term.
    pub term: u64,
    /// Ms since it took the lead.
    pub ms: u64,
}

/// A request to a group's server ([`GenServer::Call`] of [`Consensus`]).
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub enum Request<M: Replicated> {
    /// Commit and apply a command (leader only).
    Propose(M::Command),
    /// Ask this node's applied state.
    Query(M::Query),
    /// This node's [`Status`].
    Status,
    /// Send `Applied` to this pid after every command applied here, until it dies.
    Watch(Pid),
    /// Answered once this node has applied everything the group had committed when it
    /// asked, as a majority confirms (Raft's ReadIndex): what this node says afterwards is
    /// as new as the group's state. Never answered on a side without a leader.
    Fresh,
    /// Grant this member a lease (leader only): answered once a majority confirms this node
    /// still leads, refused when the state machine says the member may not hold one
    /// ([`Replicated::leasable`]).
    Lease(u16),
    /// Revoke this member's lease if the leader last granted it more than this many ms ago:
    /// no lease is granted it again while this node leads ([`expire`]).
    Expire(u16, u64),
}

/// A server's answer.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub enum Response<M: Replicated> {
    /// The proposal was applied at `index`, with this output.
    Applied {
        /// Its log position.
        index: u64,
        /// What applying it answered.
        output: M::Output,
    },
    /// The query's answer.
    Answer(M::Answer),
    /// The node's status.
    Status(Status),
    /// The watcher is registered.
    Watching,
    /// The node's state is fresh, up to this log position.
    Fresh(u64),
    /// The lease is granted; the leader counts it from when it answered.
    Leased,
    /// Whether the lease was revoked (or had been).
    Expired(bool),
}

/// Why a request was not carried out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ConsensusError {
    /// This node does not lead the group; `leader` is the one it knows of.
    #[error("node is not the leader (leader: {leader:?})")]
    NotLeader {
        /// The leader this node knows of, if any.
        leader: Option<u16>,
    },
    /// The proposal lost its place in the log to another leader's entry: it was not applied.
    #[error("the proposal was dropped by a change of leader")]
    Dropped,
    /// No leader answered in time, or none is known: the group has no majority here.
    #[error("no leader answered: the group is unavailable from here")]
    Unavailable,
    /// The group's state refuses the node a lease (it was committed down).
    #[error("the group refuses this node a lease")]
    LeaseRefused,
}

/// A committed command's notice to a watcher ([`Request::Watch`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// The log position applied.
    pub index: u64,
}

/// The server of a Raft group on one node (see the [module](self) documentation).
pub struct Consensus<M: Replicated> {
    config: RaftConfig,
    raw: RawNode<MemStorage>,
    log: DurableLog,
    machine: M,
    applied: u64,
    /// Proposals of this incarnation's server: their log position, their number, their caller.
    pending: BTreeMap<u64, (u64, From<Reply<M>>)>,
    proposals: u64,
    watchers: Vec<Pid>,
    /// Fresh reads and lease grants asked, by their number.
    reads: BTreeMap<u64, Read<M>>,
    ticks: u64,
    /// The term this node leads in, and since when, if it does.
    leading: Option<u64>,
    lead_since: Instant,
    /// As leader: when each member was last granted a lease (or this node took over, or the
    /// state put the member down, if later).
    granted: BTreeMap<u16, Instant>,
    /// As leader: members whose lease it revoked, granted none again while it leads.
    revoked: BTreeSet<u16>,
}

/// A fresh read or a lease grant, waiting for a majority to confirm the leader.
struct Read<M: Replicated> {
    from: From<Reply<M>>,
    /// The position to reach, once a majority confirmed it.
    at: Option<u64>,
    /// The tick it was asked at.
    asked: u64,
    /// The member a lease is asked for (a grant, not a read).
    lease: Option<u16>,
}

/// What a [`Consensus`] server answers.
pub type Reply<M> = Result<Response<M>, ConsensusError>;

/// The arguments of a server: its group and its state machine, empty.
pub struct Start<M> {
    /// The group.
    pub config: RaftConfig,
    /// The state machine before the log's first entry.
    pub machine: M,
}

/// Runs the group's server on this node as the calling process (registered under the group's
/// name) until it stops: a node that boots again starts it again and reads its log back.
pub async fn serve<M: Replicated>(p: Process, config: RaftConfig, machine: M) -> ExitReason {
    server::serve::<Consensus<M>>(p, Start { config, machine }).await
}

/// Asks the group `name`'s server on `node`: its response, or why there is none (a call that
/// failed or was not answered in time is `Unavailable`).
async fn ask<M: Replicated>(
    p: &Process,
    name: &str,
    node: u16,
    request: Request<M>,
    timeout: Duration,
) -> Result<Response<M>, ConsensusError> {
    ServerRef::<Consensus<M>>::call_named(p, name, node, request, Some(timeout))
        .await
        .unwrap_or(Err(ConsensusError::Unavailable))
}

/// Proposes `command` to the group `name` through its server on node `via`, following the
/// leader it names; `timeout` bounds each call.
pub async fn propose<M: Replicated>(
    p: &Process,
    name: &str,
    via: u16,
    command: M::Command,
    timeout: Duration,
) -> Result<(u64, M::Output), ConsensusError> {
    // A leader named by a follower may have lost its place by the time it is asked: a few
    // hops, then the caller decides.
    propose_hops::<M>(p, name, via, command, timeout, 3).await
}

/// Proposes `command` on node `node` only, which must lead the group: `NotLeader` otherwise
/// (never forwarded). For a decision only that leader may take, such as putting down a node
/// whose lease it revoked: another leader may have granted that node a lease since.
pub async fn propose_at<M: Replicated>(
    p: &Process,
    name: &str,
    node: u16,
    command: M::Command,
    timeout: Duration,
) -> Result<(u64, M::Output), ConsensusError> {
    match ask::<M>(p, name, node, Request::Propose(command), timeout).await {
        Ok(Response::Applied { index, output }) => Ok((index, output)),
        Ok(_) => Err(ConsensusError::Unavailable),
        Err(e) => Err(e),
    }
}

async fn propose_hops<M: Replicated>(
    p: &Process,
    name: &str,
    via: u16,
    command: M::Command,
    timeout: Duration,
    hops: usize,
) -> Result<(u64, M::Output), ConsensusError> {
    let mut node = via;
    for _ in 0..hops {
        let request = Request::Propose(command.clone());
        match ask::<M>(p, name, node, request, timeout).await {
            Ok(Response::Applied { index, output }) => return Ok((index, output)),
            Err(ConsensusError::NotLeader { leader: Some(l) }) if l != node => node = l,
            Err(ConsensusError::Dropped) => return Err(ConsensusError::Dropped),
            Ok(_) | Err(_) => return Err(ConsensusError::Unavailable),
        }
    }
    Err(ConsensusError::Unavailable)
}

/// Asks the group `name`'s server on node `node` a question about its applied state.
pub async fn query<M: Replicated>(
    p: &Process,
    name: &str,
    node: u16,
    query: M::Query,
    timeout: Duration,
) -> Result<M::Answer, ConsensusError> {
    match ask::<M>(p, name, node, Request::Query(query), timeout).await? {
        Response::Answer(answer) => Ok(answer),
        _ => Err(ConsensusError::Unavailable),
    }
}

/// Waits until the group `name`'s server on node `node` has applied everything the group had
/// committed when asked ([`Request::Fresh`]); its log position then. `Unavailable` if no
/// majority confirms within `timeout`.
pub async fn fresh<M: Replicated>(
    p: &Process,
    name: &str,
    node: u16,
    timeout: Duration,
) -> Result<u64, ConsensusError> {
    match ask::<M>(p, name, node, Request::Fresh, timeout).await? {
        Response::Fresh(index) => Ok(index),
        _ => Err(ConsensusError::Unavailable),
    }
}

/// Asks the leader of the group `name` (as node `me`'s server knows it) for a lease for `me`:
/// `Ok` once a majority confirmed the leader, which counts the lease from then on. The caller
/// holds it from when it asked, for less than the leader counts (docs/cp.md, "Leases").
/// `LeaseRefused` if the group's state says `me` may not hold one (or the caller is not on
/// `me`); `NotLeader` or
/// `Unavailable` if no leader answered within `timeout`, or if the leader revoked `me`'s lease
/// and the state has not yet put `me` down.
pub async fn lease<M: Replicated>(
    p: &Process,
    name: &str,
    me: u16,
    timeout: Duration,
) -> Result<(), ConsensusError> {
    let leader = status::<M>(p, name, me, timeout)
        .await?
        .leader
        .ok_or(ConsensusError::Unavailable)?;
    match ask::<M>(p, name, leader, Request::Lease(me), timeout).await? {
        Response::Leased => Ok(()),
        _ => Err(ConsensusError::Unavailable),
    }
}

/// On the group `name`'s leader, node `me`: revokes `node`'s lease if it last granted it more
/// than `after` ago, and from then on grants it none while it leads. `Ok(true)` when revoked
/// (now or before): the holder's own count is over, and the caller may commit it down.
/// Checked and revoked in one step, so that no grant falls between the two.
pub async fn expire<M: Replicated>(
    p: &Process,
    name: &str,
    me: u16,
    node: u16,
    after: Duration,
    timeout: Duration,
) -> Result<bool, ConsensusError> {
    let request = Request::Expire(node, after.as_millis() as u64);
    match ask::<M>(p, name, me, request, timeout).await? {
        Response::Expired(revoked) => Ok(revoked),
        _ => Err(ConsensusError::Unavailable),
    }
}

/// Asks the group `name`'s server on node `node` to send the calling process an [`Applied`]
/// after every command it applies, until the caller dies ([`Request::Watch`]); whether it
/// will.
pub async fn watch<M: Replicated>(p: &Process, name: &str, node: u16, timeout: Duration) -> bool {
    let request = Request::Watch(p.pid());
    matches!(
        ask::<M>(p, name, node, request, timeout).await,
        Ok(Response::Watching)
    )
}

/// The status of the group `name`'s server on node `node`.
pub async fn status<M: Replicated>(
    p: &Process,
    name: &str,
    node: u16,
    timeout: Duration,
) -> Result<Status, ConsensusError> {
    match ask::<M>(p, name, node, Request::Status, timeout).await? {
        Response::Status(s) => Ok(s),
        _ => Err(ConsensusError::Unavailable),
    }
}

/// Registers what the group's servers send each other in `codec` under `tag`: the Raft
/// messages and the calls of [`propose`], [`query`] and [`status`].
pub fn codec<M: Replicated>(codec: &mut crate::dist::Codec, tag: &str) {
    codec.register::<RaftWire>("raft_wire");
    codec.register::<Applied>("raft_applied");
    server::register_calls::<Consensus<M>>(codec, tag);
}

fn role(state: StateRole) -> Role {
    match state {
        StateRole::Follower => Role::Follower,
        StateRole::PreCandidate => Role::PreCandidate,
        StateRole::Candidate => Role::Candidate,
        StateRole::Leader => Role::Leader,
    }
}

/// A proposal's tag in its entry's context: the proposing server and its count.
fn proposal_tag(server: Pid, n: u64) -> Vec<u8> {
    [server.id().to_le_bytes(), n.to_le_bytes()].concat()
}

/// Why the server stops when raft-rs fails where it must not (a bug, or a disk that lies).
fn raft_failed(what: &'static str, e: impl std::fmt::Display) -> ExitReason {
    ExitReason::error(crate::Term::tuple([
        crate::Term::atom("raft_failed"),
        crate::Term::atom(what),
        crate::Term::from(e.to_string()),
    ]))
}

impl<M: Replicated> Consensus<M> {
    fn status(&self, now: Instant) -> Status {
        let raft = &self.raw.raft;
        Status {
            node: raft.id as u16,
            role: role(raft.state),
            term: raft.term,
            leader: (raft.leader_id != 0).then_some(raft.leader_id as u16),
            commit: raft.raft_log.committed,
            applied: self.applied,
            lease_ages_ms: self
                .granted
                .iter()
                .map(|(&node, &at)| (node, now.saturating_duration_since(at).as_millis() as u64))
                .collect(),
        }
    }

    /// Keeps the lease table with the role: a node that takes over as leader counts every
    /// member as granted now (a grant its predecessor confirmed counts from a moment before
    /// that: the holder asked before the majority's acknowledgements, which came before that
    /// majority voted for this node); one that no longer leads forgets it. A member the state
    /// has put down is no longer revoked (the state refuses it from now on), and counts as
    /// granted now, so that once it is up again it is not put down before it could renew.
    fn leadership(&mut self, now: Instant) {
        let raft = &self.raw.raft;
        if raft.state != StateRole::Leader {
            self.leading = None;
            self.granted.clear();
            self.revoked.clear();
            return;
        }
        if self.leading != Some(raft.term) {
            self.leading = Some(raft.term);
            self.lead_since = now;
            self.granted = self.config.voters.iter().map(|&v| (v, now)).collect();
            self.revoked.clear();
        }
        for (&node, at) in self.granted.iter_mut() {
            if !self.machine.leasable(node) {
                self.revoked.remove(&node);
                *at = now;
            }
        }
    }

    /// Whether this leader may grant `node` a lease now: `Err` says why not.
    fn may_grant(&self, now: Instant, node: u16) -> Result<(), ConsensusError> {
        if self.leading.is_none() {
            let leader = self.status(now).leader;
            return Err(ConsensusError::NotLeader { leader });
        }
        if !self.config.voters.contains(&node) || !self.machine.leasable(node) {
            return Err(ConsensusError::LeaseRefused);
        }
        // Revoked: it may already be replaced, until the state puts it down.
        if self.revoked.contains(&node) {
            return Err(ConsensusError::Unavailable);
        }
        Ok(())
    }

    fn send(&self, p: &Process, messages: Vec<Message>) {
        for m in messages {
            // Encoding a message raft-rs built cannot fail; one that did would be dropped, as
            // the network may drop any.
            if let Ok(bytes) = m.write_to_bytes() {
                p.send_named(&self.config.name, m.to as u16, RaftWire(bytes));
            }
        }
    }

    fn apply(&mut self, p: &Process, entries: Vec<Entry>) -> Result<(), ExitReason> {
        for entry in entries {
            self.applied = entry.index;
            let pending = self.pending.remove(&entry.index);
            if entry.get_entry_type() != EntryType::EntryNormal || entry.data.is_empty() {
                // A new leader's empty entry: whatever was proposed here is gone.
                if let Some((_, from)) = pending {
                    from.reply(p, Err(ConsensusError::Dropped));
                }
                continue;
            }
            let command: M::Command = bincode::deserialize(&entry.data)
                .map_err(|e| raft_failed("undecodable_entry", e))?;
            let leading = self.raw.raft.state == StateRole::Leader;
            let committed = leading.then(|| command.clone());
            let output = self.machine.apply(entry.index, command);
            if let Some(command) = committed {
                self.machine.on_commit(p, &command, &output);
            }
            if let Some((n, from)) = pending {
                let reply = if entry.context[..] == proposal_tag(p.pid(), n)[..] {
                    Ok(Response::Applied {
                        index: entry.index,
                        output,
                    })
                } else {
                    Err(ConsensusError::Dropped)
                };
                from.reply(p, reply);
            }
            for &w in &self.watchers {
                p.send(w, Applied { index: entry.index });
            }
        }
        Ok(())
    }

    /// Handles raft-rs's `Ready`, in its documented order.
    fn on_ready(&mut self, p: &Process) -> Result<(), ExitReason> {
        if !self.raw.has_ready() {
            return Ok(());
        }
        let mut ready = self.raw.ready();
        // A leader sends its appends and heartbeats before persisting its own entries.
        self.send(p, ready.take_messages());
        if !ready.snapshot().is_empty() {
            // The log is never compacted, so no leader sends a snapshot.
            return Err(raft_failed("snapshot", "a snapshot arrived"));
        }
        self.apply(p, ready.take_committed_entries())?;
        for read in ready.take_read_states() {
            let mine = self
                .reads
                .iter_mut()
                .find(|(&n, _)| read.request_ctx[..] == proposal_tag(p.pid(), n)[..]);
            if let Some((_, r)) = mine {
                r.at = Some(read.index);
            }
        }
        if !ready.entries().is_empty() {
            self.log
                .append(ready.entries())
                .map_err(|e| raft_failed("append", e))?;
        }
        if let Some(hs) = ready.hs() {
            self.log
                .set_hard_state(hs)
                .map_err(|e| raft_failed("hard_state", e))?;
        }
        self.log.sync();
        // Votes and acknowledgements wait until what they promise is on disk.
        self.send(p, ready.take_persisted_messages());
        let mut light = self.raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.log
                .set_commit(commit)
                .map_err(|e| raft_failed("commit", e))?;
        }
        self.send(p, light.take_messages());
        self.apply(p, light.take_committed_entries())?;
        self.raw.advance_apply();
        self.leadership(p.now());
        self.answer_reads(p);
        Ok(())
    }

    /// Answers the fresh reads whose confirmed position this node has applied, and the lease
    /// grants a majority confirmed.
    fn answer_reads(&mut self, p: &Process) {
        let applied = self.applied;
        let done: Vec<u64> = self
            .reads
            .iter()
            .filter(|(_, r)| r.at.is_some_and(|at| at <= applied || r.lease.is_some()))
            .map(|(&n, _)| n)
            .collect();
        for n in done {
            let Some(read) = self.reads.remove(&n) else {
                continue;
            };
            let reply = match read.lease {
                None => Ok(Response::Fresh(applied)),
                Some(node) => self.grant(p.now(), node),
            };
            read.from.reply(p, reply);
        }
    }

    /// Grants `node` a lease, confirmed by a majority: kept from now, unless this node no
    /// longer leads or the state refuses it.
    fn grant(&mut self, now: Instant, node: u16) -> Reply<M> {
        self.may_grant(now, node)?;
        self.granted.insert(node, now);
        Ok(Response::Leased)
    }

    /// Asks raft-rs for a ReadIndex round, answered to `from` once a majority confirms it: a
    /// fresh read, or a lease grant for `lease`.
    fn read_index(
        &mut self,
        p: &Process,
        from: From<Reply<M>>,
        lease: Option<u16>,
    ) -> CallReply<Self> {
        self.proposals += 1;
        let n = self.proposals;
        // The leader keeps reads by their context: unique in the cluster, like a proposal's
        // tag (two nodes' first reads must not be taken for one).
        self.raw.read_index(proposal_tag(p.pid(), n));
        let read = Read {
            from,
            at: None,
            asked: self.ticks,
            lease,
        };
        self.reads.insert(n, read);
        match self.on_ready(p) {
            Ok(()) => CallReply::NoReply,
            Err(reason) => CallReply::Stop(reason, None),
        }
    }

    fn after(&mut self, p: &Process) -> Next<Self> {
        match self.on_ready(p) {
            Ok(()) => Next::Continue,
            Err(reason) => Next::Stop(reason),
        }
    }
}

impl<M: Replicated> GenServer for Consensus<M> {
    type Arg = Start<M>;
    type Call = Request<M>;
    type Reply = Reply<M>;
    type Cast = ();
    type Cont = ();

    async fn init(start: Start<M>, p: &Process) -> Init<Self> {
        let Start { config, machine } = start;
        let me = p.pid().node();
        if !config.voters.contains(&me) {
            return Init::Stop(ExitReason::error("not_a_voter"));
        }
        if p.register(&config.name).is_err() {
            return Init::Stop(ExitReason::error("already_started"));
        }
        let voters: Vec<u64> = config.voters.iter().map(|&v| u64::from(v)).collect();
        let log = match DurableLog::open(p.node().disk(), &config.name, &voters) {
            Ok(log) => log,
            Err(e) => return Init::Stop(raft_failed("corrupt_log", e)),
        };
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let raw = match RawNode::new(&config.raft_config(me), log.storage.clone(), &logger) {
            Ok(raw) => raw,
            Err(e) => return Init::Stop(raft_failed("config", e)),
        };
        p.send_after(config.tick, p.pid(), Tick);
        Init::Ok(Consensus {
            config,
            raw,
            log,
            machine,
            applied: 0,
            pending: BTreeMap::new(),
            proposals: 0,
            watchers: Vec::new(),
            reads: BTreeMap::new(),
            ticks: 0,
            leading: None,
            lead_since: p.now(),
            granted: BTreeMap::new(),
            revoked: BTreeSet::new(),
        })
    }

    async fn handle_call(
        &mut self,
        request: Request<M>,
        from: From<Reply<M>>,
        p: &Process,
    ) -> CallReply<Self> {
        match request {
            Request::Propose(mut command) => {
                let now = p.now();
                self.leadership(now);
                if self.leading.is_none() {
                    let leader = self.status(now).leader;
                    return CallReply::Reply(Err(ConsensusError::NotLeader { leader }));
                }
                let lead = Lead {
                    term: self.raw.raft.term,
                    ms: now.saturating_duration_since(self.lead_since).as_millis() as u64,
                };
                self.machine.stamp(&mut command, lead);
                let data = match bincode::serialize(&command) {
                    Ok(data) => data,
                    Err(e) => return CallReply::Stop(raft_failed("encode", e), None),
                };
                self.proposals += 1;
                let n = self.proposals;
                if self.raw.propose(proposal_tag(p.pid(), n), data).is_err() {
                    return CallReply::Reply(Err(ConsensusError::Dropped));
                }
                let index = self.raw.raft.raft_log.last_index();
                self.pending.insert(index, (n, from));
                match self.on_ready(p) {
                    Ok(()) => CallReply::NoReply,
                    Err(reason) => CallReply::Stop(reason, None),
                }
            }
            Request::Query(q) => CallReply::Reply(Ok(Response::Answer(self.machine.query(q)))),
            Request::Status => CallReply::Reply(Ok(Response::Status(self.status(p.now())))),
            Request::Fresh => self.read_index(p, from, None),
            Request::Lease(node) => {
                let now = p.now();
                self.leadership(now);
                // A member asks for its own lease only.
                if from.pid().node() != node {
                    return CallReply::Reply(Err(ConsensusError::LeaseRefused));
                }
                if let Err(e) = self.may_grant(now, node) {
                    return CallReply::Reply(Err(e));
                }
                // Not before this leader has applied the terms before its own: a node they
                // committed down must be refused.
                if !self.raw.raft.apply_to_current_term() {
                    return CallReply::Reply(Err(ConsensusError::Unavailable));
                }
                self.read_index(p, from, Some(node))
            }
            Request::Expire(node, after_ms) => {
                let now = p.now();
                self.leadership(now);
                if self.leading.is_none() {
                    let leader = self.status(now).leader;
                    return CallReply::Reply(Err(ConsensusError::NotLeader { leader }));
                }
                let lapsed = self.granted.get(&node).is_some_and(|&at| {
                    now.saturating_duration_since(at).as_millis() as u64 > after_ms
                });
                if lapsed {
                    self.revoked.insert(node);
                }
                CallReply::Reply(Ok(Response::Expired(self.revoked.contains(&node))))
            }
            Request::Watch(pid) => {
                p.monitor(pid);
                self.watchers.push(pid);
                CallReply::Reply(Ok(Response::Watching))
            }
        }
    }

    async fn handle_info(&mut self, msg: Msg, p: &Process) -> Next<Self> {
        if msg.is::<Tick>() {
            p.send_after(self.config.tick, p.pid(), Tick);
            self.ticks += 1;
            // A read no leader confirmed (there was none) is forgotten after a while; its
            // caller has given up.
            let ticks = self.ticks;
            self.reads
                .retain(|_, r| r.at.is_some() || ticks - r.asked < FORGET_READS_AFTER);
            self.raw.tick();
            return self.after(p);
        }
        if let Some(RaftWire(bytes)) = msg.downcast_ref::<RaftWire>() {
            // A frame that is not a Raft message, or one raft-rs refuses (from a node outside
            // the group, say), is dropped like a lost packet.
            if let Ok(m) = Message::parse_from_bytes(bytes) {
                let _ = self.raw.step(m);
            }
            return self.after(p);
        }
        if let Msg::Down { pid, .. } = msg {
            self.watchers.retain(|&w| w != pid);
        }
        Next::Continue
    }
}
