//! todo under the harness: clients get servers, add and read entries, while the faults
//! crash and kill to-do servers, database workers, the registry and the supervisors.

use super::{Entry, MemoryStorage, Todo, CACHE};
use crate::process::Process;
use crate::sim::harness::{Domain, Target, Workload};
use crate::sim::invariants::Violation;
use crate::term::Pid;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The `todo` target.
#[derive(Clone, Copy, Debug, Default)]
pub struct TodoTarget;

const LISTS: [&str; 3] = ["bob", "alice", "carol"];

fn list(n: u8) -> &'static str {
    LISTS[usize::from(n) % LISTS.len()]
}

/// One workload operation on list `n` (of three), day `d` (of three).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TodoOp {
    /// Get the list's server from the cache.
    Server(u8),
    /// Add a new entry due on a day.
    Add(u8, u8),
    /// Read the entries of a day.
    Entries(u8, u8),
}

/// The service, and what the workload was told: the entries acknowledged (must never be
/// lost) and those attempted (the only ones that may appear), per list and day.
pub struct TodoModel {
    todo: Todo,
    acked: BTreeMap<(&'static str, u32), BTreeSet<String>>,
    attempted: BTreeMap<(&'static str, u32), BTreeSet<String>>,
    next: u32,
}

impl TodoModel {
    /// The entries read for a list and day hold every acknowledged one and nothing that was
    /// never added.
    fn check_read(&self, name: &'static str, date: u32, read: &[Entry]) -> Result<(), Violation> {
        let read: BTreeSet<String> = read.iter().map(|e| e.title.clone()).collect();
        let empty = BTreeSet::new();
        let acked = self.acked.get(&(name, date)).unwrap_or(&empty);
        if let Some(lost) = acked.difference(&read).next() {
            return Err(Violation::app(
                "acknowledged_entries_survive",
                format!("{name}'s entry {lost:?} (day {date}) was acknowledged, and is gone"),
            ));
        }
        let attempted = self.attempted.get(&(name, date)).unwrap_or(&empty);
        if let Some(stray) = read.difference(attempted).next() {
            return Err(Violation::app(
                "acknowledged_entries_survive",
                format!("{name} holds {stray:?} (day {date}), which nobody added"),
            ));
        }
        Ok(())
    }

    /// At most one live server per list name.
    async fn check_servers(&self, p: &Process) -> Result<(), Violation> {
        let Ok(servers) = self.todo.servers(p).await else {
            return Ok(());
        };
        let mut seen: BTreeMap<&str, Pid> = BTreeMap::new();
        for (name, pid) in &servers {
            if let Some(other) = seen.insert(name, *pid) {
                return Err(Violation::app(
                    "one_server_per_list",
                    format!("{other} and {pid} both serve {name}"),
                ));
            }
        }
        Ok(())
    }
}

impl Target for TodoTarget {
    type Setup = ();
    type Op = TodoOp;
    type State = TodoModel;

    fn name(&self) -> String {
        "todo".into()
    }

    fn setups(&self) -> BoxedStrategy<()> {
        Just(()).boxed()
    }

    /// Lists and days from the case's domain.
    fn workload(&self, domain: Domain) -> Workload<TodoOp> {
        let pick = || domain.pick();
        Workload::new()
            .kind("server", 1, pick().prop_map(TodoOp::Server))
            .kind(
                "add",
                3,
                (pick(), pick()).prop_map(|(n, d)| TodoOp::Add(n, d)),
            )
            .kind(
                "entries",
                2,
                (pick(), pick()).prop_map(|(n, d)| TodoOp::Entries(n, d)),
            )
    }

    async fn start(&self, _: &(), p: &Process) -> Result<(Pid, TodoModel), String> {
        let todo = Todo::new(MemoryStorage::new());
        let sup = todo.start_link(p).await.map_err(|e| e.to_string())?;
        let model = TodoModel {
            todo,
            acked: BTreeMap::new(),
            attempted: BTreeMap::new(),
            next: 0,
        };
        Ok((sup.pid(), model))
    }

    async fn apply(
        &self,
        model: &mut TodoModel,
        op: &TodoOp,
        p: &Process,
    ) -> Result<(), Violation> {
        match *op {
            TodoOp::Server(n) => {
                let _ = model.todo.server_process(p, list(n)).await;
                model.check_servers(p).await?;
            }
            TodoOp::Add(n, d) => {
                let Ok(server) = model.todo.server_process(p, list(n)).await else {
                    return Ok(());
                };
                model.next += 1;
                let entry = Entry::new(u32::from(d), format!("e{}", model.next));
                let key = (list(n), entry.date);
                model
                    .attempted
                    .entry(key)
                    .or_default()
                    .insert(entry.title.clone());
                let title = entry.title.clone();
                if model.todo.add_entry(p, server, entry).await.is_ok() {
                    model.acked.entry(key).or_default().insert(title);
                }
            }
            TodoOp::Entries(n, d) => {
                let Ok(server) = model.todo.server_process(p, list(n)).await else {
                    return Ok(());
                };
                if let Ok(read) = model.todo.entries(p, server, u32::from(d)).await {
                    model.check_read(list(n), u32::from(d), &read)?;
                }
            }
        }
        Ok(())
    }

    /// At rest: every list still holds every acknowledged entry, and one server at most
    /// serves each list.
    async fn check(&self, model: &mut TodoModel, p: &Process) -> Result<(), Violation> {
        if p.whereis(CACHE).is_none() {
            return Ok(()); // the service gave up: the harness's liveness has its say
        }
        let days: Vec<(&'static str, u32)> = model.acked.keys().copied().collect();
        for (name, date) in days {
            let Ok(server) = model.todo.server_process(p, name).await else {
                continue;
            };
            if let Ok(read) = model.todo.entries(p, server, date).await {
                model.check_read(name, date, &read)?;
            }
        }
        model.check_servers(p).await
    }
}
