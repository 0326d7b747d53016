//! The replicated state of a CP distributed supervisor: which node owns each shard of names,
//! and which children should run (docs/cp.md, "Ownership").
//!
//! A name's shard is a stable hash of the name, modulo the number of shards: it never depends
//! on who is in the cluster. The shard table says which node owns each shard, at which epoch;
//! it is committed by the group's first leader, and only its owner ever starts a name of a
//! shard. A node whose lease lapsed is committed down (`Down`): its shards go to the nodes
//! that are up, each at a higher epoch, and it owns nothing until it is up again (`Up`). The
//! desired children are committed by `start_child` and removed by `terminate_child`: every
//! node applies the same commands in the same order, so every node agrees on all of it, and a
//! node that boots again reads it back from its log.
//!
//! ```
//! use otpsim::cluster::cp::consensus::Replicated;
//! use otpsim::cluster::cp::control::{Child, Command, Control, Outcome};
//! use otpsim::Term;
//!
//! let mut control = Control::new(8, 3, 5);
//! let child = Child { start: "worker".into(), arg: Term::atom("nil") };
//! let start = Command::Start { name: "k1".into(), child: child.clone() };
//! // Before the table is assigned a child is desired, and owned by no one yet.
//! assert_eq!(control.apply(1, start.clone()), Outcome::Desired { owner: None });
//! control.apply(2, Command::Assign(vec![1, 2, 3]));
//! let owner = control.owner("k1");
//! assert!(owner.is_some());
//! assert_eq!(control.apply(3, start), Outcome::AlreadyDesired { owner });
//! assert_eq!(control.owned(owner.unwrap()), vec![("k1".to_string(), child.clone())]);
//! // Its owner is down: its shard goes to a node that is up, at the next epoch.
//! let shard = control.shard_of("k1");
//! assert_eq!(control.epoch(shard), 1);
//! control.apply(4, Command::Down(owner.unwrap()));
//! let heir = control.owner("k1").unwrap();
//! assert_ne!(Some(heir), owner);
//! assert_eq!(control.epoch(shard), 2);
//! assert!(!control.leasable(owner.unwrap()));
//! assert_eq!(control.owned(heir), vec![("k1".to_string(), child)]);
//! ```

use super::consensus::{Lead, Replicated};
use super::names::{NameTable, Registration};
use crate::trace::{DistEvent, EventKind, NameChange};
use crate::{Pid, Process, Term};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// How late after its asking a granted restart may be made: an owner that hears the grant
/// later, or cannot restart the child by then, asks again for the same crash, and the window
/// ([`window_ms`]) covers this much more, so that restarts made never exceed the intensity
/// within the intensity's seconds.
pub const GRANT_SLACK_MS: u64 = 500;

/// A restart window of `max_seconds`, in ms on the leader's clock: with the grant slack on
/// the owner's, and both clocks drifting as far as a simulated one may
/// ([`MAX_DRIFT_PPM`](crate::rt::MAX_DRIFT_PPM)), the owner slow and the leader fast,
/// it still covers `max_seconds` and the slack of true time.
///
/// ```
/// use otpsim::cluster::cp::control::window_ms;
/// // 5 s and 0.5 s of slack, on a clock 10% fast, after a slack 10% slow.
/// assert_eq!(window_ms(5), 6112);
/// ```
pub fn window_ms(max_seconds: u32) -> u64 {
    let drift = crate::rt::MAX_DRIFT_PPM.unsigned_abs() as u64;
    let slack = (GRANT_SLACK_MS * 1_000_000).div_ceil(1_000_000 - drift);
    ((u64::from(max_seconds) * 1000 + slack) * (1_000_000 + drift)).div_ceil(1_000_000)
}

/// The shard of `name` among `shards` (at least one): a stable hash (FNV-1a), the same on
/// every node and platform, whoever is in the cluster.
///
/// ```
/// use otpsim::cluster::cp::control::shard_of;
/// assert_eq!(shard_of("k1", 64), shard_of("k1", 64));
/// assert!(shard_of("k1", 64) < 64);
/// assert_eq!(shard_of("k1", 0), 0);
/// ```
pub fn shard_of(name: &str, shards: u16) -> u16 {
    (crate::hash::fnv1a(name.as_bytes()) % u64::from(shards.max(1))) as u16
}

/// One crash of a child, as its owner reports it: the owner's supervisor and its count of
/// crashes, so that asking again for the same crash (a late grant) is not counted twice.
pub type CrashId = (crate::Pid, u64);

/// A shard in transit, as one end of its move sees it: the shard, the node at the other end
/// (its target, or its owner), and the epoch of the move.
pub type Transit = (u16, u16, u64);

/// What a desired child is started from: a start function registered on every node under
/// `start` ([`Node::register_start`](crate::Node::register_start)), and its argument.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Child {
    /// The start function's registered name.
    pub start: String,
    /// Its argument.
    pub arg: Term,
}

/// A change to the supervisor's state, committed through its Raft group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// The shard table, assigned by the first leader over the group's members: shard `i` to
    /// the `i % n`th of those up (ignored once a table is assigned).
    Assign(Vec<u16>),
    /// The node's lease lapsed (its leader saw no renewal for a lease and the fencing
    /// margin): it is down, and each of its shards goes to a node that is up, at the next
    /// epoch (ignored for a node down already, or for the last node up).
    Down(u16),
    /// The node asks for leases again, owning nothing (ignored for a node that is up).
    Up(u16),
    /// The child `name` should run.
    Start {
        /// Its name.
        name: String,
        /// What it starts from.
        child: Child,
    },
    /// The child `name` should no longer run.
    Terminate {
        /// Its name.
        name: String,
    },
    /// Planned moves, each of a shard to a node (proposed by the leader: a shard back to its
    /// first owner once that is up again, or away from a node that leaves): each shard goes
    /// in transit at the next epoch, its owner hands its children over
    /// ([`super::handoff`]), and the target completes the move ([`Command::Moved`]). Ignored
    /// for a shard in transit already, a target that is down, leaving or the owner already,
    /// or an owner that is down.
    Move(Vec<(u16, u16)>),
    /// The target has the owner's children of these shards (each with the epoch of its move):
    /// it owns them now, at that epoch (ignored for a shard no longer in transit at it).
    Moved(Vec<(u16, u64)>),
    /// These moves took too long (each shard with the epoch of its move): the owner keeps the
    /// shard, at the next epoch, and runs its children again.
    Abort(Vec<(u16, u64)>),
    /// The node leaves gracefully: its shards move to the others, with their children's
    /// state, and it is given none until it joins again.
    Leave(u16),
    /// The node takes shards again after a [`Command::Leave`].
    Join(u16),
    /// The child `name` crashed, and its owner asks to restart it: granted while the child's
    /// restarts granted within its window ([`window_ms`]) stay below its
    /// intensity, given up otherwise, whichever node owns it. Counted on the leader's clock
    /// ([`Replicated::stamp`] sets `lead`), never on a wall clock.
    Crashed {
        /// Its name.
        name: String,
        /// Which crash.
        crash: CrashId,
        /// When the leader proposed it.
        lead: Lead,
    },
    /// The child `name` is a member of `group` (`member`), or no longer is: whichever node
    /// runs it joins its instance to the group, in the node's process groups (ignored for a
    /// child not desired).
    Group {
        /// The child.
        name: String,
        /// The group.
        group: String,
        /// Whether it joins or leaves.
        member: bool,
    },
    /// Registers `name` to `pid` in the cluster registry ([`super::names`]): unless another
    /// process holds it, or `pid`'s node holds no lease.
    Register {
        /// The name.
        name: String,
        /// The process.
        pid: Pid,
    },
    /// Unregisters `name` if `pid` holds it (whoever holds it, for `None`).
    Unregister {
        /// The name.
        name: String,
        /// The process that must hold it, if any.
        pid: Option<Pid>,
    },
    /// AP mode: the supervisor `by` gives the state of `loser`, an instance of `name` that
    /// lost a conflict, to the instance it runs. Only the first for the loser, and only from
    /// the owner of `name`'s shard, not in transit, while `name` is desired: the log makes the
    /// winner one and the same for every node, and the delivery once. The supervisor's pid
    /// names the node's life: a later life did not propose it, and is not told it is its own.
    Resolve {
        /// The name.
        name: String,
        /// The instance that lost.
        loser: Pid,
        /// The supervisor that asks (on the node that owns the name).
        by: Pid,
    },
    /// AP mode: the supervisor `by`, which the group gave `loser`'s state to, did not give it
    /// and no longer can (the name left its node: its shard moved, or is moving, elsewhere):
    /// `loser` is unresolved again, and `by` passes the state on to the name's owner, which
    /// resolves it as a loser's copy. Only from the supervisor it was given to.
    Release {
        /// The instance that lost.
        loser: Pid,
        /// The supervisor it was given to.
        by: Pid,
    },
}

/// What applying a [`Command`] did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The shard table is assigned (or was already).
    Assigned,
    /// The node is down (or was already), its shards moved to these nodes.
    Downed {
        /// The shards moved, with their new owners.
        moved: Vec<(u16, u16)>,
        /// The names of its processes, dropped from the cluster registry.
        unnamed: Vec<(String, Pid)>,
    },
    /// The node is up (or was already).
    Upped,
    /// These moves began, each shard to a node at an epoch.
    Moving(Vec<(u16, u16, u64)>),
    /// These shards changed owner, or their move was aborted (those still in transit at
    /// the epoch given).
    Settled(Vec<u16>),
    /// The node is leaving, or joined again.
    Left,
    /// The child is now desired; `owner` is the node that runs it (none before the table
    /// is assigned).
    Desired {
        /// The owner of its shard.
        owner: Option<u16>,
    },
    /// The child was already desired.
    AlreadyDesired {
        /// The owner of its shard.
        owner: Option<u16>,
    },
    /// The child is no longer desired.
    Terminated {
        /// The owner of its shard, which stops it.
        owner: Option<u16>,
    },
    /// No child of that name was desired.
    NotDesired,
    /// The crashed child is within its intensity: its owner restarts it.
    Restart,
    /// The crashed child exceeded its intensity: it is no longer desired.
    GaveUp,
    /// The child's groups changed (or were so already); `owner` is the node that runs it.
    Grouped {
        /// The owner of its shard.
        owner: Option<u16>,
    },
    /// What a [`Command::Register`] did.
    Registration(Registration),
    /// The process a [`Command::Unregister`] took the name from, if any did hold it.
    Unregistered(Option<Pid>),
    /// Whether a [`Command::Resolve`] was the first for its loser, from the owner: only
    /// then is its state given.
    Resolved {
        /// The first.
        first: bool,
        /// The supervisor the loser's state is given to, by this command or an earlier one:
        /// a proposer that did not hear the answer to its first learns from a later one.
        to: Option<Pid>,
    },
    /// What a [`Command::Release`] left: the supervisor the loser's state is given to now
    /// (none: released, or never resolved).
    Released(Option<Pid>),
}

/// A question to a node's applied state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Query {
    /// The owner of a name's shard.
    Owner(String),
    /// The desired children a node owns, each with its shard's epoch.
    Owned(u16),
    /// The members the state knows, and which of them are down.
    Members,
    /// The shards a node owns (those in transit from it included), with their epochs.
    Shards(u16),
    /// The moves in transit from and to a node.
    Moves(u16),
    /// Whether a child of that name is desired.
    Desired(String),
    /// The moves the cluster wants now, and those in transit ([`Answer::Plan`]).
    Plan,
    /// What a node runs, owns and moves, read at one log position ([`View`]).
    View(u16),
    /// The process registered under a name.
    Name(String),
    /// The registered names, if they changed since this version ([`NameTable::since`]).
    Names(u64),
    /// Whether a conflict's loser was resolved ([`Command::Resolve`]).
    Resolved(Pid),
}

/// An answer to a [`Query`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Answer {
    /// The owner, if the table is assigned.
    Owner(Option<u16>),
    /// The children's names, each with its shard's epoch.
    Owned(Vec<(String, u64)>),
    /// The shards, each with its epoch.
    Shards(Vec<(u16, u64)>),
    /// Whether the child is desired.
    Desired(bool),
    /// A node's view.
    View(View),
    /// The process registered under the name.
    Name(Option<Pid>),
    /// The registered names at a version, or `None` if unchanged.
    Names(Option<(u64, Vec<(String, Pid)>)>),
    /// The moves in transit from a node, and to it.
    Moves {
        /// Its shards in transit: each with its target and the epoch of the move.
        outgoing: Vec<Transit>,
        /// Shards in transit to it: each with its owner and the epoch of the move.
        incoming: Vec<Transit>,
    },
    /// What the leader should do about placement.
    Plan {
        /// Shards to move, each with its target: back to its first owner once that is up
        /// again, and away from nodes that leave.
        wanted: Vec<(u16, u16)>,
        /// The shards in transit, each with the epoch of its move.
        transit: Vec<(u16, u64)>,
    },
    /// The members (none before the table is assigned), and those down.
    Members {
        /// Every member.
        all: Vec<u16>,
        /// Those down.
        down: Vec<u16>,
    },
    /// The supervisor the loser's state was given to, if it is resolved.
    Resolved(Option<Pid>),
}

/// What a node runs, owns and moves, as one state says (so that its parts agree).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct View {
    /// The desired children it runs ([`Control::owned`]).
    pub owned: Vec<(String, Child)>,
    /// The shards it owns, those in transit from it included, each with its epoch.
    pub shards: Vec<(u16, u64)>,
    /// Its shards in transit.
    pub outgoing: Vec<Transit>,
    /// Its shards whose move ended with it keeping them, at their current epoch (it runs
    /// their children again, with the states they handed over).
    pub kept: Vec<u16>,
    /// The shards in transit to it.
    pub incoming: Vec<Transit>,
    /// The groups of the children it runs that are in any ([`Command::Group`]).
    pub groups: Vec<(String, Vec<String>)>,
}

/// The shard table and the desired children.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Control {
    shards: u16,
    /// Each child's restart intensity (restarts, seconds), as the trace records it.
    intensity: (u32, u32),
    /// Shard to owner; empty until assigned.
    table: Vec<u16>,
    /// Each shard's epoch: 1 when assigned, one more at each change of owner.
    epochs: Vec<u64>,
    /// The members the table was assigned over.
    members: Vec<u16>,
    /// Members whose lease lapsed, until they ask again.
    down: BTreeSet<u16>,
    /// Each shard's first owner, where it goes back to once that is up again.
    home: Vec<u16>,
    /// Shards in transit, to their target, at their current epoch.
    transit: BTreeMap<u16, u16>,
    /// Members leaving: they are given no shards.
    leaving: BTreeSet<u16>,
    /// Shards whose move ended with their owner keeping them (aborted, or its target lost),
    /// at the epoch that gave them back.
    kept: BTreeMap<u16, u64>,
    desired: BTreeMap<String, Child>,
    /// The groups each desired child is a member of, whichever instance runs it.
    groups: BTreeMap<String, BTreeSet<String>>,
    /// The process groups scope the children join (for the trace).
    scope: String,
    /// Each desired child's restarts granted within its window, on the leader's clock, by
    /// crash.
    crashes: BTreeMap<String, Vec<(Lead, CrashId)>>,
    /// The cluster registry.
    names: NameTable,
    /// AP mode: the conflicts' losers whose state was given, each with the supervisor (a
    /// node's life) it went to.
    resolved: BTreeMap<Pid, Pid>,
    /// The log position last applied (named in the trace's registry events, so that a
    /// position applied on two leaders in turn counts once).
    applied: u64,
}

impl Control {
    /// An empty state over `shards` shards (at least one), for children restarted at most
    /// `max_restarts` times in `max_seconds`.
    pub fn new(shards: u16, max_restarts: u32, max_seconds: u32) -> Control {
        Control {
            shards: shards.max(1),
            intensity: (max_restarts, max_seconds),
            ..Control::default()
        }
    }

    /// The same, its children joining their groups in the process groups scope `scope`
    /// (named in the trace's `grouped` events).
    pub fn groups_scope(mut self, scope: impl Into<String>) -> Control {
        self.scope = scope.into();
        self
    }

    /// The shard of `name`: a stable hash, the same on every node and platform.
    pub fn shard_of(&self, name: &str) -> u16 {
        shard_of(name, self.shards)
    }

    /// Whether the shard table is assigned.
    pub fn assigned(&self) -> bool {
        !self.table.is_empty()
    }

    /// The node that owns `name`'s shard, once the table is assigned.
    pub fn owner(&self, name: &str) -> Option<u16> {
        self.table.get(usize::from(self.shard_of(name))).copied()
    }

    /// The epoch of `shard`'s owner: 0 before the table is assigned, 1 at assignment, one more
    /// at each change of owner. Owners only ever change at a higher epoch.
    pub fn epoch(&self, shard: u16) -> u64 {
        self.epochs.get(usize::from(shard)).copied().unwrap_or(0)
    }

    /// The node that takes `shard` from a node that went down: the one of `up` that ranks the
    /// shard highest (rendezvous hashing), so a node's shards spread over the others.
    fn heir(shard: u16, up: &[u16]) -> Option<u16> {
        up.iter().copied().max_by_key(|&node| {
            let key = [shard.to_le_bytes(), node.to_le_bytes()].concat();
            (crate::hash::fnv1a(&key), node)
        })
    }

    /// The desired children `node` runs: those of the shards it owns that are not in transit
    /// to another node, by name.
    pub fn owned(&self, node: u16) -> Vec<(String, Child)> {
        self.desired
            .iter()
            .filter(|(name, _)| {
                self.owner(name) == Some(node) && !self.transit.contains_key(&self.shard_of(name))
            })
            .map(|(name, child)| (name.clone(), child.clone()))
            .collect()
    }

    /// The shards `node` owns (those in transit from it included), with their epochs.
    fn shards_of(&self, node: u16) -> Vec<(u16, u64)> {
        (0..self.shards)
            .filter(|&s| self.table.get(usize::from(s)) == Some(&node))
            .map(|s| (s, self.epoch(s)))
            .collect()
    }

    /// The moves in transit from `node`, and to it.
    fn moves(&self, node: u16) -> (Vec<Transit>, Vec<Transit>) {
        let (mut outgoing, mut incoming) = (Vec::new(), Vec::new());
        for (&shard, &to) in &self.transit {
            let from = self.table[usize::from(shard)];
            let epoch = self.epoch(shard);
            if from == node {
                outgoing.push((shard, to, epoch));
            }
            if to == node {
                incoming.push((shard, from, epoch));
            }
        }
        (outgoing, incoming)
    }

    /// The target of `shard`'s move, if it is in transit.
    pub fn moving_to(&self, shard: u16) -> Option<u16> {
        self.transit.get(&shard).copied()
    }

    /// The members up and not leaving: where shards may go.
    fn staying(&self) -> Vec<u16> {
        let members = self.members.iter().copied();
        members
            .filter(|n| self.leasable(*n) && !self.leaving.contains(n))
            .collect()
    }

    /// The moves wanted now: each shard not in transit whose owner leaves goes to its heir
    /// among the members staying, and each whose first owner is up and staying goes back to
    /// it.
    fn wanted_moves(&self) -> Vec<(u16, u16)> {
        let staying = self.staying();
        let mut moves = Vec::new();
        for (i, &owner) in self.table.iter().enumerate() {
            let shard = i as u16;
            if self.transit.contains_key(&shard) || !self.leasable(owner) {
                continue;
            }
            let home = self.home[i];
            let home_staying = home != owner && staying.contains(&home);
            let target = if self.leaving.contains(&owner) && !home_staying {
                Self::heir(shard, &staying)
            } else if home_staying {
                Some(home)
            } else {
                None
            };
            moves.extend(target.map(|to| (shard, to)));
        }
        moves
    }

    /// Completes (`moved`) or aborts the moves of `moves` still in transit at their epoch.
    fn settle(&mut self, moves: Vec<(u16, u64)>, moved: bool) -> Outcome {
        let mut settled = Vec::new();
        for (shard, epoch) in moves {
            let Some(&to) = self.transit.get(&shard) else {
                continue;
            };
            if self.epoch(shard) != epoch {
                continue;
            }
            if moved {
                self.transit.remove(&shard);
                self.table[usize::from(shard)] = to;
            } else {
                self.give(shard, None);
            }
            settled.push(shard);
        }
        Outcome::Settled(settled)
    }

    /// `shard` is given to `node` (or stays with its owner, for `None`) at the next epoch,
    /// whatever move it was in.
    fn give(&mut self, shard: u16, node: Option<u16>) {
        let i = usize::from(shard);
        let was_moving = self.transit.remove(&shard).is_some();
        if let Some(node) = node {
            self.table[i] = node;
        }
        self.epochs[i] += 1;
        if was_moving && node.is_none() {
            self.kept.insert(shard, self.epochs[i]);
        }
    }
}

impl Replicated for Control {
    type Command = Command;
    type Output = Outcome;
    type Query = Query;
    type Answer = Answer;

    fn apply(&mut self, index: u64, command: Command) -> Outcome {
        self.applied = index;
        match command {
            Command::Assign(nodes) => {
                let up: Vec<u16> = nodes
                    .iter()
                    .copied()
                    .filter(|n| self.leasable(*n))
                    .collect();
                if self.table.is_empty() && !up.is_empty() {
                    self.table = (0..self.shards)
                        .map(|s| up[usize::from(s) % up.len()])
                        .collect();
                    self.epochs = vec![1; self.table.len()];
                    self.home = self.table.clone();
                    self.members = nodes;
                }
                Outcome::Assigned
            }
            Command::Down(node) => {
                let up: Vec<u16> = self
                    .members
                    .iter()
                    .copied()
                    .filter(|&n| n != node && self.leasable(n))
                    .collect();
                if !self.leasable(node) || (self.assigned() && up.is_empty()) {
                    let (moved, unnamed) = (Vec::new(), Vec::new());
                    return Outcome::Downed { moved, unnamed };
                }
                self.down.insert(node);
                // Its processes stopped when its lease lapsed: their names go in this step.
                let unnamed = self.names.drop_node(node);
                // Heirs among the members staying, if any stays.
                let staying = self.staying();
                let heirs = if staying.is_empty() { &up } else { &staying };
                let mut moved = Vec::new();
                for shard in 0..self.shards {
                    let i = usize::from(shard);
                    let target = self.transit.get(&shard).copied();
                    if target == Some(node) {
                        // A move to the lost node: its owner keeps the shard.
                        self.give(shard, None);
                    } else if self.table.get(i) == Some(&node) {
                        // A move from it is completed without its children's state; any
                        // other shard goes to its heir. At the next epoch either way.
                        let heir = target
                            .filter(|t| heirs.contains(t))
                            .or_else(|| Self::heir(shard, heirs));
                        if let Some(heir) = heir {
                            self.give(shard, Some(heir));
                            moved.push((shard, heir));
                        }
                    }
                }
                Outcome::Downed { moved, unnamed }
            }
            Command::Up(node) => {
                self.down.remove(&node);
                Outcome::Upped
            }
            Command::Move(moves) => {
                let staying = self.staying();
                let mut moving = Vec::new();
                for (shard, to) in moves {
                    let Some(&owner) = self.table.get(usize::from(shard)) else {
                        continue;
                    };
                    if self.transit.contains_key(&shard)
                        || owner == to
                        || !self.leasable(owner)
                        || !staying.contains(&to)
                    {
                        continue;
                    }
                    let i = usize::from(shard);
                    self.epochs[i] += 1;
                    self.transit.insert(shard, to);
                    moving.push((shard, to, self.epochs[i]));
                }
                Outcome::Moving(moving)
            }
            Command::Moved(moves) => self.settle(moves, true),
            Command::Abort(moves) => self.settle(moves, false),
            Command::Leave(node) => {
                if self.members.contains(&node) {
                    self.leaving.insert(node);
                }
                Outcome::Left
            }
            Command::Join(node) => {
                self.leaving.remove(&node);
                Outcome::Left
            }
            Command::Start { name, child } => {
                let owner = self.owner(&name);
                match self.desired.entry(name) {
                    std::collections::btree_map::Entry::Occupied(_) => {
                        Outcome::AlreadyDesired { owner }
                    }
                    std::collections::btree_map::Entry::Vacant(slot) => {
                        // A new child: its crashes count afresh.
                        self.crashes.remove(slot.key());
                        slot.insert(child);
                        Outcome::Desired { owner }
                    }
                }
            }
            Command::Group {
                name,
                group,
                member,
            } => {
                if !self.desired.contains_key(&name) {
                    return Outcome::NotDesired;
                }
                let groups = self.groups.entry(name.clone()).or_default();
                if member {
                    groups.insert(group);
                } else {
                    groups.remove(&group);
                    if groups.is_empty() {
                        self.groups.remove(&name);
                    }
                }
                Outcome::Grouped {
                    owner: self.owner(&name),
                }
            }
            Command::Terminate { name } => {
                self.crashes.remove(&name);
                self.groups.remove(&name);
                match self.desired.remove(&name) {
                    Some(_) => Outcome::Terminated {
                        owner: self.owner(&name),
                    },
                    None => Outcome::NotDesired,
                }
            }
            Command::Register { name, pid } => {
                let node = pid.node();
                if !self.members.contains(&node) || !self.leasable(node) {
                    return Outcome::Registration(Registration::NoLease);
                }
                Outcome::Registration(self.names.register(&name, pid))
            }
            Command::Unregister { name, pid } => {
                Outcome::Unregistered(self.names.unregister(&name, pid))
            }
            Command::Resolve { name, loser, by } => {
                let placed = self.owner(&name) == Some(by.node())
                    && !self.transit.contains_key(&self.shard_of(&name))
                    && self.desired.contains_key(&name);
                let first = placed && !self.resolved.contains_key(&loser);
                if first {
                    self.resolved.insert(loser, by);
                }
                let to = self.resolved.get(&loser).copied();
                Outcome::Resolved { first, to }
            }
            Command::Release { loser, by } => {
                if self.resolved.get(&loser) == Some(&by) {
                    self.resolved.remove(&loser);
                }
                Outcome::Released(self.resolved.get(&loser).copied())
            }
            Command::Crashed { name, crash, lead } => {
                if !self.desired.contains_key(&name) {
                    return Outcome::NotDesired;
                }
                let (max_restarts, max_seconds) = self.intensity;
                let window = window_ms(max_seconds);
                let granted = self.crashes.entry(name.clone()).or_default();
                // Two leaders' clocks cannot be compared: a grant of an earlier term counts as
                // made when this term began (no earlier than it was), so it leaves the window
                // late, never early.
                granted.retain(|(g, _)| {
                    let at = if g.term == lead.term { g.ms } else { 0 };
                    at + window > lead.ms
                });
                // The same crash asked again: its grant moves to now, counted once.
                if let Some(again) = granted.iter_mut().find(|(_, c)| *c == crash) {
                    again.0 = lead;
                    return Outcome::Restart;
                }
                if granted.len() >= max_restarts as usize {
                    self.crashes.remove(&name);
                    self.desired.remove(&name);
                    self.groups.remove(&name);
                    Outcome::GaveUp
                } else {
                    granted.push((lead, crash));
                    Outcome::Restart
                }
            }
        }
    }

    /// A restart is counted when the leader proposes it, on its clock.
    fn stamp(&self, command: &mut Command, now: Lead) {
        if let Command::Crashed { lead, .. } = command {
            *lead = now;
        }
    }

    /// A node that is down holds no lease until it asks again ([`Command::Up`]).
    fn leasable(&self, node: u16) -> bool {
        !self.down.contains(&node)
    }

    fn query(&self, query: Query) -> Answer {
        match query {
            Query::Owner(name) => Answer::Owner(self.owner(&name)),
            Query::Owned(node) => Answer::Owned(
                self.owned(node)
                    .into_iter()
                    .map(|(name, _)| {
                        let epoch = self.epoch(self.shard_of(&name));
                        (name, epoch)
                    })
                    .collect(),
            ),
            Query::Shards(node) => Answer::Shards(self.shards_of(node)),
            Query::View(node) => {
                let (outgoing, incoming) = self.moves(node);
                let shards = self.shards_of(node);
                let kept = shards
                    .iter()
                    .filter(|&&(s, epoch)| self.kept.get(&s) == Some(&epoch))
                    .map(|&(s, _)| s)
                    .collect();
                let owned = self.owned(node);
                let groups = owned
                    .iter()
                    .filter_map(|(name, _)| {
                        let groups = self.groups.get(name)?;
                        Some((name.clone(), groups.iter().cloned().collect()))
                    })
                    .collect();
                Answer::View(View {
                    owned,
                    groups,
                    shards,
                    outgoing,
                    kept,
                    incoming,
                })
            }
            Query::Moves(node) => {
                let (outgoing, incoming) = self.moves(node);
                Answer::Moves { outgoing, incoming }
            }
            Query::Desired(name) => Answer::Desired(self.desired.contains_key(&name)),
            Query::Resolved(loser) => Answer::Resolved(self.resolved.get(&loser).copied()),
            Query::Plan => Answer::Plan {
                wanted: self.wanted_moves(),
                transit: self.transit.keys().map(|&s| (s, self.epoch(s))).collect(),
            },
            Query::Name(name) => Answer::Name(self.names.get(&name)),
            Query::Names(version) => Answer::Names(self.names.since(version)),
            Query::Members => Answer::Members {
                all: self.members.clone(),
                down: self.down.iter().copied().collect(),
            },
        }
    }

    /// Records what the cluster now wants, at the moment it decided it (the cluster
    /// invariants' desired state: docs/cluster-invariants.md).
    fn on_commit(&self, p: &Process, command: &Command, outcome: &Outcome) {
        let record = |event| p.node().record(EventKind::Dist(event));
        match (command, outcome) {
            (Command::Start { name, .. }, Outcome::Desired { .. }) => {
                record(DistEvent::Desired {
                    name: name.clone(),
                    on: true,
                });
                let (max_restarts, max_seconds) = self.intensity;
                record(DistEvent::Intensity {
                    name: name.clone(),
                    max_restarts,
                    max_seconds,
                });
            }
            (
                Command::Group {
                    name,
                    group,
                    member,
                },
                Outcome::Grouped { .. },
            ) => {
                record(DistEvent::Grouped {
                    scope: self.scope.clone(),
                    name: name.clone(),
                    group: group.clone(),
                    member: *member,
                });
            }
            (Command::Register { name, pid }, Outcome::Registration(Registration::Registered)) => {
                record(DistEvent::Registered {
                    name: name.clone(),
                    pid: *pid,
                    change: NameChange::On,
                    index: self.applied,
                });
            }
            (Command::Unregister { name, .. }, Outcome::Unregistered(Some(pid))) => {
                record(DistEvent::Registered {
                    name: name.clone(),
                    pid: *pid,
                    change: NameChange::Off,
                    index: self.applied,
                });
            }
            (Command::Down(_), Outcome::Downed { unnamed, .. }) => {
                for (name, pid) in unnamed {
                    record(DistEvent::Registered {
                        name: name.clone(),
                        pid: *pid,
                        change: NameChange::Dropped,
                        index: self.applied,
                    });
                }
            }
            (Command::Terminate { name }, Outcome::Terminated { .. })
            | (Command::Crashed { name, .. }, Outcome::GaveUp) => {
                record(DistEvent::Desired {
                    name: name.clone(),
                    on: false,
                });
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new crash of `k` at `ms` of the leader's `term`.
    fn crashed_in(c: &mut Control, term: u64, ms: u64) -> Outcome {
        let crash = (crate::Pid::new(1, 0, 5), term * 1_000_000 + ms);
        asked_again(c, term, ms, crash)
    }

    fn asked_again(c: &mut Control, term: u64, ms: u64, crash: CrashId) -> Outcome {
        let lead = Lead { term, ms };
        let name = "k".into();
        c.apply(0, Command::Crashed { name, crash, lead })
    }

    fn crashed(c: &mut Control, ms: u64) -> Outcome {
        crashed_in(c, 1, ms)
    }

    /// The group grants a crashed child's restarts up to its intensity within its window (plus
    /// the grant slack), then gives it up; a child desired anew counts afresh (docs/cp.md,
    /// "Restarts in place, counted by the group"; OTP's intensity, docs/behaviours.md §D).
    #[test]
    fn restarts_are_granted_up_to_the_intensity_then_the_child_is_given_up() {
        let mut c = Control::new(4, 3, 5);
        let child = Child {
            start: "w".into(),
            arg: Term::atom("nil"),
        };
        let start = Command::Start {
            name: "k".into(),
            child,
        };
        c.apply(0, start.clone());
        assert_eq!(crashed(&mut c, 1_000), Outcome::Restart);
        assert_eq!(crashed(&mut c, 2_000), Outcome::Restart);
        // Out of the window (5 s and the slack, widened for drift: 6.112 s) by now: the first
        // grant no longer counts.
        assert_eq!(crashed(&mut c, 7_200), Outcome::Restart);
        assert_eq!(crashed(&mut c, 7_300), Outcome::Restart);
        assert_eq!(crashed(&mut c, 7_400), Outcome::GaveUp);
        assert_eq!(crashed(&mut c, 7_500), Outcome::NotDesired);
        // Desired anew (no longer desired, so not `AlreadyDesired`): a new child.
        assert_eq!(c.apply(0, start.clone()), Outcome::Desired { owner: None });
        assert_eq!(crashed(&mut c, 7_600), Outcome::Restart);
        // A new leader's clock starts again: the earlier term's grants count as made when
        // it began, and leave the window 6.112 s into the new term, not earlier.
        assert_eq!(crashed_in(&mut c, 2, 100), Outcome::Restart);
        assert_eq!(crashed_in(&mut c, 3, 5_000), Outcome::Restart);
        assert_eq!(crashed_in(&mut c, 3, 5_400), Outcome::GaveUp);
        c.apply(0, start.clone());
        assert_eq!(crashed_in(&mut c, 3, 6_000), Outcome::Restart);
        assert_eq!(crashed_in(&mut c, 4, 0), Outcome::Restart);
        assert_eq!(crashed_in(&mut c, 4, 6_200), Outcome::Restart);
        assert_eq!(crashed_in(&mut c, 4, 6_300), Outcome::Restart);
        // The same crash asked again (its grant came too late to use) is counted once.
        c.apply(0, Command::Terminate { name: "k".into() });
        c.apply(0, start);
        let first = (crate::Pid::new(1, 0, 5), 1);
        assert_eq!(asked_again(&mut c, 5, 0, first), Outcome::Restart);
        assert_eq!(asked_again(&mut c, 5, 100, first), Outcome::Restart);
        assert_eq!(asked_again(&mut c, 5, 200, first), Outcome::Restart);
        assert_eq!(crashed_in(&mut c, 5, 300), Outcome::Restart);
        assert_eq!(crashed_in(&mut c, 5, 400), Outcome::Restart);
        assert_eq!(crashed_in(&mut c, 5, 500), Outcome::GaveUp);
    }

    fn moves(c: &Control, node: u16) -> (Vec<Transit>, Vec<Transit>) {
        match c.query(Query::Moves(node)) {
            Answer::Moves { outgoing, incoming } => (outgoing, incoming),
            other => panic!("{other:?}"),
        }
    }

    fn plan(c: &Control) -> Vec<(u16, u16)> {
        match c.query(Query::Plan) {
            Answer::Plan { wanted, .. } => wanted,
            other => panic!("{other:?}"),
        }
    }

    /// Three nodes with the shard table assigned, and a child to start.
    fn assigned() -> (Control, Child) {
        let mut c = Control::new(3, 3, 5);
        c.apply(0, Command::Assign(vec![1, 2, 3]));
        let child = Child {
            start: "w".into(),
            arg: Term::atom("nil"),
        };
        (c, child)
    }

    /// `k1` desired, with an instance on another node than its owner's that lost a conflict,
    /// and two lives of its owner's supervisor: (state, name, [loser, life, next life]).
    fn in_conflict() -> (Control, String, [Pid; 3]) {
        let (mut c, child) = assigned();
        let name = "k1".to_string();
        c.apply(
            0,
            Command::Start {
                name: name.clone(),
                child,
            },
        );
        let owner = c.owner(&name).unwrap();
        let loser = Pid::new(if owner == 1 { 2 } else { 1 }, 0, 9);
        let lives = [Pid::new(owner, 0, 6), Pid::new(owner, 1, 6)];
        (c, name, [loser, lives[0], lives[1]])
    }

    /// A planned move: in transit at the next epoch (its children no longer run on the owner),
    /// completed by the target at that epoch only; aborted, the owner keeps the shard at the
    /// epoch after; a lost owner's move completes without state, a lost target's is aborted;
    /// a lost node's shards go back to it once it is up, and a leaving node's go away
    /// (docs/cp.md, "Handoff"; SWARM.md §4.2 item 8).
    #[test]
    fn moves_change_owners_at_higher_epochs_only() {
        let (mut c, child) = assigned();
        let name = (0..100)
            .map(|i| format!("k{i}"))
            .find(|n| c.shard_of(n) == 0)
            .unwrap();
        c.apply(
            0,
            Command::Start {
                name: name.clone(),
                child,
            },
        );
        assert_eq!(c.owner(&name), Some(1));
        // Shard 0 to node 2: in transit at epoch 2, not run by node 1 meanwhile.
        let moving = c.apply(0, Command::Move(vec![(0, 2), (1, 2)]));
        assert_eq!(
            moving,
            Outcome::Moving(vec![(0, 2, 2)]),
            "shard 1 is node 2's already"
        );
        assert_eq!(moves(&c, 1), (vec![(0, 2, 2)], vec![]));
        assert_eq!(moves(&c, 2), (vec![], vec![(0, 1, 2)]));
        assert!(c.owned(1).is_empty());
        assert_eq!(
            c.apply(0, Command::Move(vec![(0, 3)])),
            Outcome::Moving(vec![])
        );
        // A completion of another epoch is stale.
        assert_eq!(
            c.apply(0, Command::Moved(vec![(0, 1)])),
            Outcome::Settled(vec![])
        );
        assert_eq!(
            c.apply(0, Command::Moved(vec![(0, 2)])),
            Outcome::Settled(vec![0])
        );
        assert_eq!((c.owner(&name), c.epoch(0)), (Some(2), 2));
        assert_eq!(c.owned(2).len(), 1);
        // Aborted: the owner keeps it, one epoch on (and its view says so: it runs the
        // children again with their states); a late completion changes nothing.
        let kept = |c: &Control, node| match c.query(Query::View(node)) {
            Answer::View(view) => view.kept,
            other => panic!("{other:?}"),
        };
        assert_eq!(kept(&c, 2), Vec::<u16>::new());
        c.apply(0, Command::Move(vec![(0, 3)]));
        assert_eq!(
            c.apply(0, Command::Abort(vec![(0, 3)])),
            Outcome::Settled(vec![0])
        );
        assert_eq!((c.owner(&name), c.epoch(0)), (Some(2), 4));
        assert_eq!(kept(&c, 2), vec![0]);
        assert_eq!(
            c.apply(0, Command::Moved(vec![(0, 3)])),
            Outcome::Settled(vec![])
        );
        // The target is lost: aborted. The owner is lost: completed, without a handover.
        c.apply(0, Command::Move(vec![(0, 3)]));
        c.apply(0, Command::Down(3));
        assert_eq!((c.owner(&name), c.epoch(0)), (Some(2), 6));
        assert_eq!(kept(&c, 2), vec![0]);
        c.apply(0, Command::Up(3));
        c.apply(0, Command::Move(vec![(0, 3)]));
        c.apply(0, Command::Down(2));
        assert_eq!((c.owner(&name), c.epoch(0)), (Some(3), 8));
        // Given to the target by the owner's loss: kept by no one.
        assert_eq!(kept(&c, 3), Vec::<u16>::new());
        assert_eq!(moves(&c, 3), (vec![], vec![]));
        // Node 2 is up again: every shard goes back to its first owner.
        c.apply(0, Command::Up(2));
        assert_eq!(plan(&c), vec![(0, 1), (1, 2), (2, 3)]);
        // Node 1 leaves: nothing goes to it, and what it owns goes to the others.
        c.apply(0, Command::Leave(1));
        let wanted = plan(&c);
        assert!(wanted.contains(&(1, 2)), "{wanted:?}");
        assert!(!wanted.iter().any(|&(_, to)| to == 1), "{wanted:?}");
        assert_eq!(
            c.apply(0, Command::Move(vec![(0, 1)])),
            Outcome::Moving(vec![])
        );
        c.apply(0, Command::Join(1));
        assert!(plan(&c).contains(&(0, 1)));
    }

    /// AP mode's resolutions (docs/cp.md, "AP mode"; SWARM.md §4.2 item 9): only the name's
    /// owner resolves a loser, only the first time; every answer after names the supervisor
    /// it went to, so an owner that did not hear its first answer learns from a later one (or
    /// from `Query::Resolved`), and no other node, nor a later life of the owner, is told the
    /// state is its to give.
    #[test]
    fn a_loser_is_resolved_once_and_every_answer_names_its_winner() {
        let (mut c, name, [loser, life, next_life]) = in_conflict();
        let other = loser.node();
        let resolve = |by| Command::Resolve {
            name: name.clone(),
            loser,
            by,
        };
        assert_eq!(c.query(Query::Resolved(loser)), Answer::Resolved(None));
        // Another node is refused, and told nothing is decided.
        assert_eq!(
            c.apply(0, resolve(Pid::new(other, 0, 6))),
            Outcome::Resolved {
                first: false,
                to: None
            }
        );
        let decided = Outcome::Resolved {
            first: true,
            to: Some(life),
        };
        assert_eq!(c.apply(0, resolve(life)), decided);
        // Asked again, by the owner, its next life or anyone: not first, the life named.
        let again = Outcome::Resolved {
            first: false,
            to: Some(life),
        };
        assert_eq!(c.apply(0, resolve(life)), again);
        assert_eq!(c.apply(0, resolve(next_life)), again);
        assert_eq!(c.apply(0, resolve(Pid::new(other, 0, 6))), again);
        assert_eq!(
            c.query(Query::Resolved(loser)),
            Answer::Resolved(Some(life))
        );
    }

    /// A resolution released by the supervisor it went to (the name left its node before it
    /// gave the state: docs/cp.md, "AP mode") leaves the loser to be resolved again, once;
    /// no other supervisor can release it.
    #[test]
    fn a_resolution_is_released_only_by_its_supervisor_and_then_resolved_once_again() {
        let (mut c, name, [loser, life, next_life]) = in_conflict();
        let resolve = |by| Command::Resolve {
            name: name.clone(),
            loser,
            by,
        };
        let release = |by| Command::Release { loser, by };
        // Nothing to release yet.
        assert_eq!(c.apply(0, release(life)), Outcome::Released(None));
        c.apply(0, resolve(life));
        // Another life of the node cannot release it.
        assert_eq!(
            c.apply(0, release(next_life)),
            Outcome::Released(Some(life))
        );
        assert_eq!(c.apply(0, release(life)), Outcome::Released(None));
        assert_eq!(c.query(Query::Resolved(loser)), Answer::Resolved(None));
        let first = Outcome::Resolved {
            first: true,
            to: Some(next_life),
        };
        assert_eq!(c.apply(0, resolve(next_life)), first);
        assert_eq!(
            c.apply(0, resolve(life)),
            Outcome::Resolved {
                first: false,
                to: Some(next_life)
            }
        );
    }
}
