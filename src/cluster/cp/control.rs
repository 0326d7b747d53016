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
//! let mut control = Control::new(8);
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
use crate::Term;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
    /// Shard to owner; empty until assigned.
    table: Vec<u16>,
    desired: BTreeMap<String, Child>,
}

impl Control {
    /// An empty state over `shards` shards (at least one).
    pub fn new(shards: u16) -> Control {
        Control {
            shards: shards.max(1),
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
                        slot.insert(child);
                        Outcome::Desired { owner }
                    }
                }
            }
            Command::Terminate { name } => match self.desired.remove(&name) {
                Some(_) => Outcome::Terminated {
                    owner: self.owner(&name),
                },
                None => Outcome::NotDesired,
            },
        }
    }

    fn query(&self, query: Query) -> Answer {
        match query {
            Query::Owner(name) => Answer::Owner(self.owner(&name)),
            Query::Owned(node) => Answer::Owned(self.owned(node)),
        }
    }
}
