//! The replicated state of a CP distributed supervisor: which node owns each shard of names,
//! and which children should run (docs/cp.md, "Ownership").
//!
//! A name's shard is a stable hash of the name, modulo the number of shards: it never depends
//! on who is in the cluster. The shard table says which node owns each shard; it is committed
//! once, by the group's first leader, and only its owner ever starts a name of a shard. The
//! desired children are committed by `start_child` and removed by `terminate_child`: every
//! node applies the same commands in the same order, so every node agrees on both, and a node
//! that boots again reads them back from its log.
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
//! assert_eq!(control.owned(owner.unwrap()), vec![("k1".to_string(), child)]);
//! ```

use super::consensus::Replicated;
use crate::trace::{DistEvent, EventKind};
use crate::{Process, Term};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How late after its stamp a granted restart may be made: an owner that hears the grant
/// later asks again (the late grant stays counted), and the window is this much longer, so that
/// restarts made never exceed the intensity within the window itself.
pub const GRANT_SLACK_MS: u64 = 500;

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
    /// The shard table, assigned by the first leader: shard `i` to node `nodes[i % n]`
    /// (ignored once a table is assigned).
    Assign(Vec<u16>),
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
    /// The child `name` crashed, and its owner asks, at `at_ms` (its clock, in ms), to
    /// restart it: granted while the child's restarts granted within its window (plus
    /// [`GRANT_SLACK_MS`]) stay below its intensity, given up otherwise, whichever node owns it.
    Crashed {
        /// Its name.
        name: String,
        /// When, on the owner's wall clock.
        at_ms: u64,
    },
}

/// What applying a [`Command`] did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The shard table is assigned (or was already).
    Assigned,
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
}

/// A question to a node's applied state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Query {
    /// The owner of a name's shard.
    Owner(String),
    /// The desired children a node owns.
    Owned(u16),
}

/// An answer to a [`Query`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Answer {
    /// The owner, if the table is assigned.
    Owner(Option<u16>),
    /// The children, by name.
    Owned(Vec<(String, Child)>),
}

/// The shard table and the desired children.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Control {
    shards: u16,
    /// Each child's restart intensity (restarts, seconds), as the trace records it.
    intensity: (u32, u32),
    /// Shard to owner; empty until assigned.
    table: Vec<u16>,
    desired: BTreeMap<String, Child>,
    /// Each desired child's restarts granted within its window (ms on its owner's clock).
    crashes: BTreeMap<String, Vec<u64>>,
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

    /// The shard of `name`: a stable hash, the same on every node and platform.
    pub fn shard_of(&self, name: &str) -> u16 {
        (crate::hash::fnv1a(name.as_bytes()) % u64::from(self.shards)) as u16
    }

    /// Whether the shard table is assigned.
    pub fn assigned(&self) -> bool {
        !self.table.is_empty()
    }

    /// The node that owns `name`'s shard, once the table is assigned.
    pub fn owner(&self, name: &str) -> Option<u16> {
        self.table.get(usize::from(self.shard_of(name))).copied()
    }

    /// The desired children of the shards `node` owns, by name.
    pub fn owned(&self, node: u16) -> Vec<(String, Child)> {
        self.desired
            .iter()
            .filter(|(name, _)| self.owner(name) == Some(node))
            .map(|(name, child)| (name.clone(), child.clone()))
            .collect()
    }
}

impl Replicated for Control {
    type Command = Command;
    type Output = Outcome;
    type Query = Query;
    type Answer = Answer;

    fn apply(&mut self, _: u64, command: Command) -> Outcome {
        match command {
            Command::Assign(nodes) => {
                if self.table.is_empty() && !nodes.is_empty() {
                    self.table = (0..self.shards)
                        .map(|s| nodes[usize::from(s) % nodes.len()])
                        .collect();
                }
                Outcome::Assigned
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
            Command::Terminate { name } => {
                self.crashes.remove(&name);
                match self.desired.remove(&name) {
                    Some(_) => Outcome::Terminated {
                        owner: self.owner(&name),
                    },
                    None => Outcome::NotDesired,
                }
            }
            Command::Crashed { name, at_ms } => {
                if !self.desired.contains_key(&name) {
                    return Outcome::NotDesired;
                }
                let (max_restarts, max_seconds) = self.intensity;
                let window = u64::from(max_seconds) * 1000 + GRANT_SLACK_MS;
                let granted = self.crashes.entry(name.clone()).or_default();
                // A stamp after `at_ms` (the owner's clock stepped back) still counts: a step
                // must not buy a crash loop more restarts.
                granted.retain(|&t| t + window > at_ms);
                if granted.len() >= max_restarts as usize {
                    self.crashes.remove(&name);
                    self.desired.remove(&name);
                    Outcome::GaveUp
                } else {
                    granted.push(at_ms);
                    Outcome::Restart
                }
            }
        }
    }

    fn query(&self, query: Query) -> Answer {
        match query {
            Query::Owner(name) => Answer::Owner(self.owner(&name)),
            Query::Owned(node) => Answer::Owned(self.owned(node)),
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

    fn crashed(c: &mut Control, at_ms: u64) -> Outcome {
        c.apply(
            0,
            Command::Crashed {
                name: "k".into(),
                at_ms,
            },
        )
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
        // Out of the window (5 s + 0.5 s) by now: the first grant no longer counts.
        assert_eq!(crashed(&mut c, 6_600), Outcome::Restart);
        assert_eq!(crashed(&mut c, 7_000), Outcome::Restart);
        assert_eq!(crashed(&mut c, 7_100), Outcome::GaveUp);
        assert_eq!(crashed(&mut c, 7_200), Outcome::NotDesired);
        // Desired anew (no longer desired, so not `AlreadyDesired`): a new child.
        assert_eq!(c.apply(0, start), Outcome::Desired { owner: None });
        assert_eq!(crashed(&mut c, 7_300), Outcome::Restart);
        // A stamp from before the last one (the owner's clock stepped back) still counts.
        assert_eq!(crashed(&mut c, 100), Outcome::Restart);
        assert_eq!(crashed(&mut c, 200), Outcome::Restart);
        assert_eq!(crashed(&mut c, 300), Outcome::GaveUp);
    }
}
