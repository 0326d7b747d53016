//! A supervisor's child list: start order, lookup by id and by pid, all O(log n).

use super::spec::{ChildId, ChildSpec};
use crate::term::{Pid, Term};
use std::collections::BTreeMap;

/// Where a child stands (OTP's `pid` field of `#child{}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Slot {
    /// Running with this pid (it may have died with its `EXIT` not handled yet).
    Running(Pid),
    /// Not running: stopped, exited without restart, or its start returned `ignore`.
    Undefined,
    /// Its restart failed and is being retried (`{restarting, OldPid}`).
    Restarting(Option<Pid>),
}

/// One child.
pub(super) struct Child {
    pub spec: ChildSpec,
    /// Extra start arguments (simple_one_for_one).
    pub args: Vec<Term>,
    pub slot: Slot,
}

impl Child {
    /// The pid a report names: the running one or the one before a failed restart.
    pub fn last_pid(&self) -> Option<Pid> {
        match self.slot {
            Slot::Running(pid) | Slot::Restarting(Some(pid)) => Some(pid),
            _ => None,
        }
    }
}

/// Position in start order; keys are never reused.
pub(super) type Key = u64;

/// The children in start order.
#[derive(Default)]
pub(super) struct Children {
    order: BTreeMap<Key, Child>,
    by_id: BTreeMap<ChildId, Key>,
    /// Running pids, and the old pid of a child that is restarting.
    by_pid: BTreeMap<Pid, Key>,
    next: Key,
    /// simple_one_for_one: children have no ids and are kept in order of their latest start.
    dynamic: bool,
}

impl Children {
    pub fn new(dynamic: bool) -> Children {
        Children {
            dynamic,
            ..Children::default()
        }
    }

    /// Appends a child (it becomes the newest).
    pub fn push(&mut self, child: Child) -> Key {
        let key = self.next;
        self.next += 1;
        if !self.dynamic {
            self.by_id.insert(child.spec.id.clone(), key);
        }
        if let Some(pid) = child.last_pid() {
            self.by_pid.insert(pid, key);
        }
        self.order.insert(key, child);
        internal_check!(self.consistent(), "child indexes out of step with the list");
        key
    }

    pub fn get(&self, key: Key) -> Option<&Child> {
        self.order.get(&key)
    }

    /// Sets a child's slot, keeping the pid index right.
    pub fn set(&mut self, key: Key, slot: Slot) {
        let Some(child) = self.order.get_mut(&key) else {
            internal_check!(false, "no child {key} to set to {slot:?}");
            return;
        };
        if let Some(old) = child.last_pid() {
            self.by_pid.remove(&old);
        }
        child.slot = slot;
        if let Some(pid) = child.last_pid() {
            self.by_pid.insert(pid, key);
        }
        internal_check!(self.consistent(), "child indexes out of step with the list");
    }

    /// A dynamic child that starts again becomes the newest (OTP keys it by its new pid).
    pub fn requeue(&mut self, key: Key) -> Key {
        match self.remove(key) {
            Some(child) => self.push(child),
            None => key,
        }
    }

    pub fn remove(&mut self, key: Key) -> Option<Child> {
        let child = self.order.remove(&key)?;
        if let Some(pid) = child.last_pid() {
            self.by_pid.remove(&pid);
        }
        if !self.dynamic {
            self.by_id.remove(child.spec.id.as_str());
        }
        internal_check!(self.consistent(), "child indexes out of step with the list");
        Some(child)
    }

    /// The indexes agree with the list: every id and pid names a child that has it, every
    /// child is found by its id (unless dynamic) and by its pid (if it has one), and no key
    /// is ahead of the next one handed out. Checked after every change in debug builds.
    fn consistent(&self) -> bool {
        let ids = self.dynamic
            || (self.by_id.len() == self.order.len()
                && self
                    .by_id
                    .iter()
                    .all(|(id, key)| self.order.get(key).is_some_and(|c| c.spec.id == *id)));
        let pids = self.by_pid.iter().all(|(pid, key)| {
            self.order
                .get(key)
                .is_some_and(|c| c.last_pid() == Some(*pid))
        });
        let with_pids = self
            .order
            .values()
            .filter(|c| c.last_pid().is_some())
            .count();
        let keys = self
            .order
            .keys()
            .next_back()
            .is_none_or(|last| *last < self.next);
        ids && pids && with_pids == self.by_pid.len() && keys
    }

    pub fn key_of_id(&self, id: &str) -> Option<Key> {
        self.by_id.get(id).copied()
    }

    /// The child running as `pid` (not one restarting after `pid` died).
    pub fn key_of_running(&self, pid: Pid) -> Option<Key> {
        let key = *self.by_pid.get(&pid)?;
        (self.order.get(&key)?.slot == Slot::Running(pid)).then_some(key)
    }

    /// The child running as `pid` or restarting after `pid` died.
    pub fn key_of_pid(&self, pid: Pid) -> Option<Key> {
        self.by_pid.get(&pid).copied()
    }

    /// Keys in start order.
    pub fn keys(&self) -> Vec<Key> {
        self.order.keys().copied().collect()
    }

    /// Keys from `key` (included) to the newest, in start order.
    pub fn keys_from(&self, key: Key) -> Vec<Key> {
        self.order.range(key..).map(|(k, _)| *k).collect()
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (Key, &Child)> {
        self.order.iter().map(|(k, c)| (*k, c))
    }
}
