//! Elixir's Swarm (bitwalker/swarm 3.4) and `Swarm.DynamicSupervisor`
//! (kelostrada/swarm_dynamic_supervisor 0.1.0) as they are: a model to run a cluster's
//! workers the way their users do, and to watch it fail where they failed.
//!
//! **The tracker** ([`tracker`], one per node, registered as [`TRACKER`]) keeps a full copy of
//! the registry. It starts in `cluster_wait`, collects the nodes that come up for
//! `sync_nodes_timeout`, syncs its registry with one of them (`syncing`, then the other side
//! in `awaiting_sync_ack`) and only then serves (`tracking`). Until then every call waits in
//! its mailbox (Swarm postpones them), including other trackers' requests: three trackers
//! that start syncing with each other in a cycle wait for ever (bitwalker/swarm#60, #91,
//! #130, #136; a `whereis` then never returns).
//!
//! **Placement** is by a hash of the name over the nodes *this* tracker sees (its own
//! `nodeup`/`nodedown`), with an optional static quorum ([`Config::quorum`], Swarm's
//! `StaticQuorumRing`). There is no agreement on membership: trackers with different views
//! pick different owners. (Rendezvous hashing stands for libring's ring: the same
//! property, an owner that depends only on the members seen.)
//!
//! **Registration** (`register_name`) is serialised through the owner's tracker, which starts
//! the process by its start function and broadcasts the entry to the trackers it sees, fire
//! and forget. An entry that conflicts with the local one with concurrent clocks is dropped
//! ("event unhandled", bitwalker/swarm#149). A version vector per entry stands for Swarm's
//! interval tree clock (both order updates causally). A local process's death removes its
//! entry everywhere; Swarm never restarts it: [`DynamicSupervisor`] does.
//!
//! **Topology changes.** On a `nodedown`, an entry whose process ran on the lost node is
//! restarted by whichever tracker now owns its name in its own view. On a `nodeup`, a local
//! process whose name now belongs elsewhere is handed off: the tracker asks it
//! ([`SwarmMsg::BeginHandoff`], synchronously, for at most `handoff_timeout`), and for
//! `Resume(state)` removes its registration, tells it to die, and *then* casts the state to
//! the owner's tracker, unacknowledged: if the owner is lost meanwhile, so are the process and
//! its state (bitwalker/swarm#67). The owner starts the process and delivers the state
//! ([`SwarmMsg::EndHandoff`]), or, if it already runs one under the name (a healed
//! netsplit), delivers it as [`SwarmMsg::ResolveConflict`].
//!
//! **A tracker that had lost every peer** treats the next `nodeup` as a join: it syncs the
//! registries instead of handing off, and of two instances of a name the loser is told to die
//! without its state reaching the winner (bitwalker/swarm#89).
//!
//! `{swarm, die}` is advisory ([`SwarmMsg::Die`]): a worker that ignores it keeps running,
//! unregistered.
//!
//! **Groups** live in the entries' metadata ([`join`], [`leave`]), so a group follows its
//! member through a handoff and a restart by the tracker, not through a
//! [`DynamicSupervisor`]'s re-registration (bitwalker/swarm#26). [`publish`] and
//! [`multi_call`] reach the members this node's registry has; one gone member fails a whole
//! `multi_call`. [`send`] goes to the instance this node's registry has, and nowhere while a
//! name moves: Swarm keeps nothing for later.
//!
//! Where the model departs from Swarm, knowingly: the `which_applications` probe of a new
//! node is left out (every node runs Swarm here), and so are `unregister_name` and the
//! owner lookup of a `whereis` that misses locally (it answers from the local copy);
//! `members` asks the tracker where Swarm reads its table, and a worker that answers a
//! handoff with `Restart` starts afresh in no group where Swarm keeps its metadata; a
//! tracker syncs with the first node it sees where Swarm picks one at random, two trackers
//! that sync with each other settle it by node order where Swarm rolls dice, and every
//! tracker runs anti-entropy where Swarm starts it only on a tracker that joined alone; entry
//! versions are version vectors that a restart or a handoff advances, where Swarm's interval
//! tree clocks mostly compare as concurrent; a `whereis` of a name this node has waits while
//! the tracker syncs, where Swarm reads its table.

mod api;
mod supervisor;
mod tracker;

pub use super::handoff::HandoffReply;
pub use api::{
    join, leave, members, multi_call, publish, register_name, send, serve, whereis_name,
};
pub use supervisor::DynamicSupervisor;
pub use tracker::tracker;

use crate::rt::Duration;
use crate::term::{Pid, Term};
use std::collections::{BTreeMap, BTreeSet};
use tracker::{Peer, TrackReply};

/// The name of each node's tracker.
pub const TRACKER: &str = "swarm_tracker";

/// The name of each node's [`DynamicSupervisor`].
pub const SUPERVISOR: &str = "swarm_dynamic_supervisor";

/// Why a tracker aborts a handoff (the `why` of its trace's `aborted`) whose name it has
/// registered already: the handed-off state goes to that instance (`resolve_conflict`).
pub const RESOLVED_AS_CONFLICT: &str = "resolved as a conflict";

/// Registers the messages Swarm's trackers send each other, and the `{swarm, ...}`
/// messages a tracker may send to a worker on another node, in `codec`: what a node needs
/// to run Swarm over a real network (`dist::tcp`).
///
/// ```
/// let mut codec = otpsim::dist::Codec::new();
/// otpsim::cluster::swarm::codec(&mut codec);
/// let die = codec.encode(&otpsim::cluster::swarm::SwarmMsg::Die).unwrap();
/// assert!(codec.decode("swarm_msg", &die).is_ok());
/// ```
pub fn codec(codec: &mut crate::dist::Codec) -> &mut crate::dist::Codec {
    codec
        .register::<Peer>("swarm_peer")
        .register::<TrackReply>("swarm_track_reply")
        .register::<SwarmMsg>("swarm_msg")
        .register::<super::handoff::Call>("handoff_call")
        .register::<super::handoff::CallReply>("handoff_call_reply")
}

/// Swarm's settings (its defaults, at simulation scale where they are long).
#[derive(Clone, Debug)]
pub struct Config {
    /// The nodes to connect to (libcluster's topology), this one included or not.
    pub peers: Vec<u16>,
    /// How long a new tracker collects nodes before it syncs (`sync_nodes_timeout`, 5 s).
    pub sync_nodes_timeout: Duration,
    /// How often a tracker syncs with one other node (`anti_entropy_interval`, 5 minutes).
    pub anti_entropy_interval: Duration,
    /// How long a tracker waits for `begin_handoff`'s answer (`GenServer.call`'s 5 s).
    pub handoff_timeout: Duration,
    /// How often the peers are connected again (libcluster's polling, 5 s).
    pub connect_interval: Duration,
    /// `StaticQuorumRing`: no owner while fewer nodes are seen (`None`: Swarm's `Ring`).
    pub quorum: Option<usize>,
}

impl Config {
    /// Swarm's defaults, with these peers.
    pub fn new(peers: impl IntoIterator<Item = u16>) -> Config {
        Config {
            peers: peers.into_iter().collect(),
            sync_nodes_timeout: Duration::from_secs(5),
            anti_entropy_interval: Duration::from_secs(300),
            handoff_timeout: Duration::from_secs(5),
            connect_interval: Duration::from_secs(5),
            quorum: None,
        }
    }
}

/// What Swarm tells a worker it started (the `{swarm, ...}` messages of its contract).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum SwarmMsg {
    /// Its name belongs to another node now: answer `reply` with a [`HandoffAnswer`] that
    /// carries `tag`.
    BeginHandoff {
        /// The tracker that asks.
        reply: Pid,
        /// What the answer carries, to match it with this question.
        tag: u64,
    },
    /// The state a predecessor handed over, after this worker started.
    EndHandoff(Term),
    /// The state of another instance of the name, which lost a conflict after a netsplit.
    ResolveConflict(Term),
    /// Stop: the name has gone elsewhere (advisory: nothing enforces it).
    Die,
}

/// A worker's answer to [`SwarmMsg::BeginHandoff`], sent to the tracker that asked.
#[derive(Clone, Debug, PartialEq)]
pub struct HandoffAnswer {
    /// The question's tag.
    pub tag: u64,
    /// What it answers.
    pub reply: HandoffReply,
}

/// Why a Swarm call failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum SwarmError {
    /// The name is registered already (`{:already_registered, pid}`).
    #[error("already registered as {0}")]
    AlreadyRegistered(Pid),
    /// No node owns the name (`StaticQuorumRing` below its quorum).
    #[error("no node available")]
    NoNodeAvailable,
    /// The start function failed.
    #[error("the start failed: {0}")]
    StartFailed(String),
    /// A `DynamicSupervisor` start was not answered within its 5 s (`Task.await`).
    #[error("timeout")]
    Timeout,
}

/// How the owner's tracker starts a process for a name (the `{m, f, a}` Swarm keeps).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Mfa {
    /// Spawn the start function (registered on every node) unlinked.
    Spawn {
        /// The start function.
        start: String,
        /// Its argument.
        arg: Term,
    },
    /// Ask the node's [`DynamicSupervisor`] to start it as its child.
    Supervised {
        /// The start function.
        start: String,
        /// Its argument.
        arg: Term,
    },
}

/// A registry entry.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Entry {
    pid: Pid,
    /// How Swarm started it (`None`: registered by hand).
    mfa: Option<Mfa>,
    clock: Clock,
    /// The groups it joined (Swarm keeps them in the entry's metadata).
    #[serde(default)]
    groups: BTreeSet<String>,
}

/// A version vector: updates per node.
type Clock = BTreeMap<u16, u64>;

/// The groups of one registration as two versions of it have them (`update_meta`): the
/// newer version's, or with concurrent versions both (Swarm merges their metadata).
fn merged_groups(local: &Entry, remote: &Entry) -> BTreeSet<String> {
    if dominates(&remote.clock, &local.clock) {
        remote.groups.clone()
    } else if dominates(&local.clock, &remote.clock) || local.clock == remote.clock {
        local.groups.clone()
    } else {
        local.groups.union(&remote.groups).cloned().collect()
    }
}

/// Whether `a` has seen everything `b` has, and more.
fn dominates(a: &Clock, b: &Clock) -> bool {
    a != b && b.iter().all(|(k, n)| a.get(k).is_some_and(|m| m >= n))
}
/// Where Swarm's `Ring` places `name` among `nodes` (the placement of the cluster harness's
/// S2 check).
pub fn placement(name: &str, nodes: &BTreeSet<u16>) -> Option<u16> {
    owner(name, nodes, None)
}

/// The owner of `name` among `nodes` (rendezvous hashing), unless a quorum is not met.
fn owner(name: &str, nodes: &BTreeSet<u16>, quorum: Option<usize>) -> Option<u16> {
    if quorum.is_some_and(|q| nodes.len() < q) {
        return None;
    }
    nodes
        .iter()
        .copied()
        .max_by_key(|k| crate::hash::stable_hash(&(name, *k)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_order_updates_causally() {
        let a = Clock::from([(1, 2), (2, 1)]);
        let b = Clock::from([(1, 1), (2, 1)]);
        let c = Clock::from([(1, 1), (2, 2)]);
        assert!(dominates(&a, &b) && !dominates(&b, &a));
        assert!(!dominates(&a, &c) && !dominates(&c, &a), "concurrent");
        assert!(!dominates(&a, &a));
    }

    /// Every tracker that sees the same nodes picks the same owner; a static quorum leaves a
    /// name without one below it.
    #[test]
    fn the_owner_depends_only_on_the_nodes_seen() {
        let all = BTreeSet::from([1, 2, 3]);
        let owners: Vec<u16> = (0..30)
            .map(|i| owner(&format!("k{i}"), &all, None).unwrap())
            .collect();
        assert!([1, 2, 3].iter().all(|k| owners.contains(k)));
        let without_3 = BTreeSet::from([1, 2]);
        for (i, o) in owners.iter().enumerate() {
            let name = format!("k{i}");
            if *o != 3 {
                assert_eq!(owner(&name, &without_3, None), Some(*o), "a name stays put");
            }
        }
        assert_eq!(owner("k1", &without_3, Some(3)), None);
    }
}
