//! The cluster registry's replicated table: unique names registered by users, each to a
//! process of any node (docs/cp.md, "Registry").
//!
//! The table is part of the supervisor's replicated state ([`Control`](super::control)), so
//! registrations are serialised by the group's log, survive any node's loss, and every node
//! applies them in the same order. A name goes to the first registration committed; a node
//! committed down loses its registrations in the same step (its processes were stopped when
//! its lease lapsed, before); a process of a node that is down cannot be registered. The
//! version counts changes, so that a node's name server reads the table again only when it
//! changed.
//!
//! ```
//! use otpsim::cluster::cp::names::{NameTable, Registration};
//! use otpsim::Pid;
//!
//! let mut table = NameTable::default();
//! let (a, b) = (Pid::new(1, 0, 7), Pid::new(2, 0, 9));
//! assert_eq!(table.register("db", a), Registration::Registered);
//! assert_eq!(table.register("db", b), Registration::Taken(a));
//! // An unregistration of a process that no longer holds the name changes nothing.
//! assert_eq!(table.unregister("db", Some(b)), None);
//! // Node 1 is committed down: its processes' names go with it.
//! table.drop_node(1);
//! assert_eq!(table.get("db"), None);
//! assert_eq!(table.register("db", b), Registration::Registered);
//! assert_eq!(table.since(0).map(|(_, names)| names.len()), Some(1));
//! assert_eq!(table.since(table.version()), None);
//! ```

use crate::Pid;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a registration did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Registration {
    /// The name is the process's now.
    Registered,
    /// Another process holds the name: this one (the same process registered again is
    /// `Registered`).
    Taken(Pid),
    /// The process's node holds no lease, and so no name: it is committed down, or not a
    /// member of the group.
    NoLease,
}

/// Unique names, each to a pid, with a version that counts the changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NameTable {
    names: BTreeMap<String, Pid>,
    version: u64,
}

impl NameTable {
    /// Registers `name` to `pid`, unless another process holds it.
    pub fn register(&mut self, name: &str, pid: Pid) -> Registration {
        match self.names.get(name) {
            Some(&held) if held == pid => Registration::Registered,
            Some(&held) => Registration::Taken(held),
            None => {
                self.names.insert(name.to_string(), pid);
                self.version += 1;
                Registration::Registered
            }
        }
    }

    /// Unregisters `name`, if `pid` holds it (any holder when `pid` is `None`): the process
    /// that held it.
    pub fn unregister(&mut self, name: &str, pid: Option<Pid>) -> Option<Pid> {
        let held = self.names.get(name).copied()?;
        if pid.is_some_and(|pid| pid != held) {
            return None;
        }
        self.names.remove(name);
        self.version += 1;
        Some(held)
    }

    /// Unregisters every name of a process of `node` (committed down): the names removed.
    pub fn drop_node(&mut self, node: u16) -> Vec<(String, Pid)> {
        let (dropped, kept): (BTreeMap<String, Pid>, BTreeMap<String, Pid>) =
            std::mem::take(&mut self.names)
                .into_iter()
                .partition(|(_, pid)| pid.node() == node);
        self.names = kept;
        if !dropped.is_empty() {
            self.version += 1;
        }
        dropped.into_iter().collect()
    }

    /// The process registered under `name`.
    pub fn get(&self, name: &str) -> Option<Pid> {
        self.names.get(name).copied()
    }

    /// The count of changes so far.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The version and every name, if the table changed since `version`.
    pub fn since(&self, version: u64) -> Option<(u64, Vec<(String, Pid)>)> {
        if version == self.version {
            return None;
        }
        let names = self.names.iter().map(|(n, &p)| (n.clone(), p)).collect();
        Some((self.version, names))
    }
}
