//! A process registry with the semantics of Elixir's `Registry` (docs/behaviours.md §L): unique or
//! duplicate keys of any ordered type, values, partitions, listeners, metadata, and `via`
//! names for servers and supervisors.
//!
//! As in Elixir, the table is read and written by the calling process (Elixir's ETS tables)
//! and a *partition* process per partition owns the cleanup: every registered process is
//! linked to a partition, which traps exits and removes the dead process's entries. Cleanup
//! is therefore asynchronous: between a death and its cleanup `lookup` may still return the
//! dead pid (docs/behaviours.md item 90), while a unique `register` and `via` lookups treat a dead owner
//! as absent.
//!
//! ```
//! use otpsim::{rt, Node, ExitReason};
//! use otpsim::registry::{Keys, Registry, RegistryOptions};
//!
//! rt::block_on(0, async {
//!     let node = Node::new();
//!     let main = node.spawn(|p| async move {
//!         let reg: Registry<String, u32> = Registry::start_link(&p, RegistryOptions::new(Keys::Unique)).await.unwrap();
//!         reg.register(&p, "alice".to_string(), 7).unwrap();
//!         assert_eq!(reg.lookup(&"alice".to_string()), vec![(p.pid(), 7)]);
//!         let err = reg.register(&p, "alice".to_string(), 8).unwrap_err();
//!         assert_eq!(err.to_string(), format!("already registered by {}", p.pid()));
//!         reg.unregister(&p, &"alice".to_string());
//!         assert_eq!(reg.count(), 0);
//!     });
//!     assert_eq!(node.wait_exit(main).await, Some(ExitReason::Normal));
//! });
//! ```
//!
//! The whole API works on one table under one lock, as Elixir's functions work on the registry's
//! ETS tables: kept together (hence the file's length).

use crate::hash::stable_hash;
use crate::process::{ExitReason, Msg, Node, Process};
use crate::server::{BoxFuture, Registering, StartError, Via, ViaError, ViaName};
use crate::supervisor::{
    self, ChildId, ChildSpec, Flags, Start, Started, Strategy, SupervisorSpec,
};
use crate::term::{Pid, Ref, Term};
use crate::trace::EventKind;
use smallvec::SmallVec;
use std::collections::BTreeMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Whether a key maps to one process or to many.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keys {
    /// At most one entry per key.
    Unique,
    /// Any number of entries per key, from any processes.
    Duplicate,
}

/// The options of `Registry.start_link/1` (docs/behaviours.md item 85).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryOptions {
    /// Unique or duplicate keys.
    pub keys: Keys,
    /// The number of partitions (at least 1).
    pub partitions: usize,
    /// Processes told of every explicit register and unregister.
    pub listeners: Vec<Pid>,
    /// A local name for the registry's supervisor.
    pub name: Option<String>,
}

impl RegistryOptions {
    /// One partition, no listeners, no name.
    pub fn new(keys: Keys) -> RegistryOptions {
        RegistryOptions {
            keys,
            partitions: 1,
            listeners: Vec::new(),
            name: None,
        }
    }

    /// Sets the number of partitions.
    pub fn partitions(mut self, n: usize) -> RegistryOptions {
        self.partitions = n.max(1);
        self
    }

    /// Adds a listener.
    pub fn listener(mut self, pid: Pid) -> RegistryOptions {
        self.listeners.push(pid);
        self
    }

    /// Names the registry's supervisor.
    pub fn named(mut self, name: impl Into<String>) -> RegistryOptions {
        self.name = Some(name.into());
        self
    }
}

/// Why [`Registry::register`] did not register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// A unique key is held by a live process (docs/behaviours.md item 87).
    #[error("already registered by {0}")]
    AlreadyRegistered(Pid),
    /// The partition that would own the entry is not running: the registry is restarting,
    /// or stopped. Elixir raises here (its `Process.link/1` to the partition finds it dead,
    /// and the partition's table died with it); an entry made now would vanish when the
    /// partition comes back, leaving the caller running without its name.
    #[error("the registry is not running")]
    NotRunning,
}

impl RegisterError {
    /// Elixir's `{:already_registered, pid}`, or `noproc`.
    pub fn to_term(&self) -> Term {
        match self {
            RegisterError::AlreadyRegistered(pid) => {
                Term::tuple([Term::atom("already_registered"), Term::Pid(*pid)])
            }
            RegisterError::NotRunning => Term::atom("noproc"),
        }
    }
}

/// What listeners receive (docs/behaviours.md item 91): only explicit registrations, never deaths.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegistryEvent<K, V> {
    /// `{:register, registry, key, pid, value}`.
    Register {
        /// The key.
        key: K,
        /// The process.
        pid: Pid,
        /// Its value.
        value: V,
    },
    /// `{:unregister, registry, key, pid}`.
    Unregister {
        /// The key.
        key: K,
        /// The process.
        pid: Pid,
    },
}

/// One partition's share of the table.
struct Part<K, V> {
    /// The partition process (it changes when the partition restarts).
    pid: Option<Pid>,
    /// Entries whose key hashes here (unique) or whose owner hashes here (duplicate).
    entries: Entries<K, V>,
    /// Owners hashing here: the keys they hold (with the partition of each key).
    owners: BTreeMap<Pid, SmallVec<[(usize, K); 1]>>,
}

struct Table<K, V> {
    /// Which incarnation of the registry the table belongs to: the partitions of an older
    /// one (still shutting down while the new one starts) must not touch it.
    generation: u64,
    parts: Vec<Part<K, V>>,
    meta: BTreeMap<String, Term>,
    /// The registry's supervisor, which names the registry in the trace (known once started).
    registry: Option<Pid>,
}

impl<K, V> Table<K, V> {
    /// The empty table of a new incarnation (Elixir's ETS tables die with the registry).
    fn new(partitions: usize, generation: u64) -> Table<K, V> {
        Table {
            generation,
            parts: (0..partitions)
                .map(|_| Part {
                    pid: None,
                    entries: Entries::default(),
                    owners: BTreeMap::new(),
                })
                .collect(),
            meta: BTreeMap::new(),
            registry: None,
        }
    }
}

struct Shared<K, V> {
    options: RegistryOptions,
    /// The node the registry runs on, known once it is started.
    node: std::sync::OnceLock<Node>,
    table: Mutex<Table<K, V>>,
}

impl<K: std::fmt::Debug, V> Shared<K, V> {
    fn is_alive(&self, pid: Pid) -> bool {
        self.node.get().is_some_and(|node| node.is_alive(pid))
    }

    /// Records that `pid`'s entry under `key` appeared or went away (when tracing).
    fn record(&self, t: &Table<K, V>, key: &K, pid: Pid, added: bool) {
        if let (Some(registry), Some(node)) = (t.registry, self.node.get()) {
            node.record_with(|| EventKind::RegistryEntry {
                registry,
                unique: self.options.keys == Keys::Unique,
                key: format!("{key:?}"),
                pid,
                added,
            });
        }
    }
}

/// A registry. Cloning gives another handle to the same registry; every handle reaches the
/// incarnation that runs now, so a registry a supervisor restarts (see
/// [`child_spec`](Registry::child_spec)) is the same `Registry` to everyone holding it, as
/// Elixir's registry name is.
pub struct Registry<K, V> {
    shared: Arc<Shared<K, V>>,
}

impl<K, V> Clone for Registry<K, V> {
    fn clone(&self) -> Self {
        Registry {
            shared: self.shared.clone(),
        }
    }
}

impl<K, V> std::fmt::Debug for Registry<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = self
            .shared
            .table
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match t.registry {
            Some(pid) => write!(f, "Registry({pid})"),
            None => f.write_str("Registry(not started)"),
        }
    }
}

/// The partition of a value (a key, or an owner's pid): the same on every run, platform and
/// toolchain, so a saved case replays alike everywhere ([`stable_hash`]; Elixir uses
/// `:erlang.phash2/2` the same way).
fn slot<T: Hash>(value: &T, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    (stable_hash(value) % n as u64) as usize
}

/// A partition's entries by key. A hash map with a fixed hasher: O(1) lookups, the same
/// layout on every replay; it is only iterated to count, so its order reaches nothing. A
/// key's first entry is inline (a unique key never has more), which saves a lookup a cache
/// miss.
#[allow(clippy::disallowed_types)] // a fixed hasher: deterministic, and never iterated in order
type Entries<K, V> = rustc_hash::FxHashMap<K, SmallVec<[(Pid, V); 1]>>;

impl<K, V> Registry<K, V>
where
    K: Ord + Hash + Clone + std::fmt::Debug + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A registry that is not started yet: start it with [`start`](Registry::start), or
    /// give [`child_spec`](Registry::child_spec) to a supervisor.
    pub fn new(options: RegistryOptions) -> Registry<K, V> {
        let options = RegistryOptions {
            partitions: options.partitions.max(1),
            ..options
        };
        Registry {
            shared: Arc::new(Shared {
                table: Mutex::new(Table::new(options.partitions, 0)),
                options,
                node: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Starts the registry: a supervisor (one_for_all for unique keys, one_for_one for
    /// duplicate ones) of partition processes, linked to the caller (docs/behaviours.md item 85).
    pub async fn start_link(
        p: &Process,
        options: RegistryOptions,
    ) -> Result<Registry<K, V>, StartError> {
        let registry = Registry::new(options);
        registry.start(p).await?;
        Ok(registry)
    }

    /// Starts an incarnation of this registry, linked to the caller, with an empty table;
    /// returns its supervisor.
    pub async fn start(&self, p: &Process) -> Result<Pid, StartError> {
        let _ = self.shared.node.set(p.node().clone());
        let options = &self.shared.options;
        let generation = {
            let mut t = self.table();
            *t = Table::new(options.partitions, t.generation + 1);
            t.generation
        };
        let strategy = match options.keys {
            Keys::Unique => Strategy::OneForAll,
            Keys::Duplicate => Strategy::OneForOne,
        };
        let mut spec = SupervisorSpec::new(Flags::elixir(strategy));
        for i in 0..options.partitions {
            let part = self.shared.clone();
            let start = Start::new(move |sp| {
                let part = part.clone();
                Box::pin(async move {
                    let shared = part.clone();
                    let (parent, ready) = (sp.pid(), sp.make_ref());
                    let ack = (parent, ready);
                    let pid = sp.spawn_link(move |pp| partition(pp, shared, i, generation, ack));
                    // The partition traps exits before the start returns (OTP's init_ack):
                    // otherwise a registered process dying at once would kill it.
                    // A partition killed before it acks fails the start, as in OTP.
                    let is_ready =
                        |m: &Msg| m.downcast_ref::<Ready>().is_some_and(|r| r.0 == ready);
                    sp.await_start(pid, is_ready)
                        .await
                        .map_err(|reason| reason.to_term())?;
                    // Set up before the start returns, so that nobody registers through a
                    // partition that is not ready.
                    reset_partition(&part, i, pid, generation);
                    Ok(Started::Pid(pid))
                })
            });
            spec = spec.child(
                ChildSpec::worker(format!("partition_{i}"), start).modules(["Registry.Partition"]),
            );
        }
        let mut start = crate::server::StartOptions::linked();
        start.name = options.name.clone();
        let sup = supervisor::start_with(
            p,
            move |_| supervisor::SupervisorInit::Ok(spec.clone()),
            start,
        )
        .await?;
        let mut t = self.table();
        if t.generation == generation {
            t.registry = Some(sup.pid());
        }
        Ok(sup.pid())
    }

    /// The registry as the child `id` of a supervisor, which starts it and, when it dies,
    /// starts it again: empty, and reached by the same `Registry` handles.
    ///
    /// ```
    /// # #[cfg(madsim)] {
    /// use otpsim::registry::{Keys, Registry, RegistryOptions};
    /// use otpsim::supervisor::{self, Flags, Strategy, SupervisorSpec};
    /// let report = otpsim::sim::Sim::new(0).run(|p| async move {
    ///     let names: Registry<String, ()> = Registry::new(RegistryOptions::new(Keys::Unique));
    ///     let spec = SupervisorSpec::new(Flags::new(Strategy::OneForOne)).child(names.child_spec("names"));
    ///     supervisor::start_link(&p, spec).await.unwrap();
    ///     names.register(&p, "me".to_string(), ()).unwrap();
    ///     let first = names.pid().unwrap();
    ///     p.trap_exit(true); // our registration links us to a partition, which dies too
    ///     p.exit(first, otpsim::ExitReason::Kill);
    ///     p.sleep(otpsim::rt::Duration::from_millis(1)).await;
    ///     assert_ne!(names.pid(), Some(first)); // restarted ...
    ///     assert_eq!(names.whereis_name(&"me".to_string()), None); // ... empty
    /// });
    /// assert_eq!(report.failure(), None);
    /// # }
    /// ```
    pub fn child_spec(&self, id: impl Into<ChildId>) -> ChildSpec {
        let registry = self.clone();
        ChildSpec::supervisor(
            id,
            Start::new(move |p| {
                let registry = registry.clone();
                Box::pin(async move { supervisor::start_result(registry.start(p).await) })
            }),
        )
        .modules(["Registry"])
    }

    /// The running incarnation's supervisor (`None` before the first start).
    pub fn pid(&self) -> Option<Pid> {
        self.table().registry
    }

    fn table(&self) -> MutexGuard<'_, Table<K, V>> {
        self.shared
            .table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn key_part(&self, key: &K, owner: Pid, n: usize) -> usize {
        match self.shared.options.keys {
            Keys::Unique => slot(key, n),
            Keys::Duplicate => slot(&owner, n),
        }
    }

    fn notify(&self, p: &Process, event: RegistryEvent<K, V>) {
        for l in &self.shared.options.listeners {
            p.send(*l, event.clone());
        }
    }

    /// Registers the calling process under `key` with `value` and links it to its partition;
    /// returns the partition's pid (docs/behaviours.md items 86-88). A unique key held by a dead process
    /// that is not cleaned up yet is taken over.
    pub fn register(&self, p: &Process, key: K, value: V) -> Result<Pid, RegisterError> {
        let me = p.pid();
        let partition = {
            let mut t = self.table();
            let n = t.parts.len();
            let kp = self.key_part(&key, me, n);
            let op = slot(&me, n);
            let mut dead_owner = None;
            if self.shared.options.keys == Keys::Unique {
                if let Some(&(owner, _)) = t.parts[kp].entries.get(&key).and_then(|e| e.first()) {
                    if self.shared.is_alive(owner) {
                        return Err(RegisterError::AlreadyRegistered(owner));
                    }
                    dead_owner = Some(owner);
                }
            }
            // Linked to a live partition before the entry is made, as Elixir does: the
            // partition cleans up after the caller's death, and dies with the table.
            let partition = t.parts[op]
                .pid
                .filter(|pid| self.shared.is_alive(*pid))
                .ok_or(RegisterError::NotRunning)?;
            p.link(partition).map_err(|_| RegisterError::NotRunning)?;
            if let Some(owner) = dead_owner {
                remove_owner_key(&mut t, owner, &key);
                self.shared.record(&t, &key, owner, false);
            }
            self.shared.record(&t, &key, me, true);
            t.parts[kp]
                .entries
                .entry(key.clone())
                .or_default()
                .push((me, value.clone()));
            t.parts[op]
                .owners
                .entry(me)
                .or_default()
                .push((kp, key.clone()));
            partition
        };
        self.notify(
            p,
            RegistryEvent::Register {
                key,
                pid: me,
                value,
            },
        );
        Ok(partition)
    }

    /// Removes all the caller's entries for `key`; unlinks from the partition once the caller
    /// holds nothing there (docs/behaviours.md item 89). Always succeeds.
    pub fn unregister(&self, p: &Process, key: &K) {
        let me = p.pid();
        let (removed, unlink) = {
            let mut t = self.table();
            let removed = remove_owner_key(&mut t, me, key);
            if removed {
                self.shared.record(&t, key, me, false);
            }
            let op = slot(&me, t.parts.len());
            let unlink = match t.parts[op].owners.get(&me) {
                Some(keys) if !keys.is_empty() => None,
                _ => t.parts[op].pid,
            };
            (removed, unlink)
        };
        if let Some(partition) = unlink {
            p.unlink(partition);
        }
        if removed {
            self.notify(
                p,
                RegistryEvent::Unregister {
                    key: key.clone(),
                    pid: me,
                },
            );
        }
    }

    /// The entries of `key`, dead owners not cleaned up yet included (docs/behaviours.md items 90, 92).
    pub fn lookup(&self, key: &K) -> Vec<(Pid, V)> {
        let t = self.table();
        let n = t.parts.len();
        match self.shared.options.keys {
            Keys::Unique => t.parts[slot(key, n)]
                .entries
                .get(key)
                .map(|e| e.to_vec())
                .unwrap_or_default(),
            Keys::Duplicate => t
                .parts
                .iter()
                .flat_map(|part| part.entries.get(key).cloned().unwrap_or_default())
                .collect(),
        }
    }

    /// The entries of `key` whose value `pred` accepts (`match/3`).
    pub fn match_values(&self, key: &K, mut pred: impl FnMut(&V) -> bool) -> Vec<(Pid, V)> {
        self.lookup(key)
            .into_iter()
            .filter(|(_, v)| pred(v))
            .collect()
    }

    /// The keys `pid` holds.
    pub fn keys(&self, pid: Pid) -> Vec<K> {
        let t = self.table();
        let op = slot(&pid, t.parts.len());
        t.parts[op]
            .owners
            .get(&pid)
            .map(|keys| keys.iter().map(|(_, k)| k.clone()).collect())
            .unwrap_or_default()
    }

    /// The values `pid` registered under `key`.
    pub fn values(&self, key: &K, pid: Pid) -> Vec<V> {
        self.lookup(key)
            .into_iter()
            .filter(|(p, _)| *p == pid)
            .map(|(_, v)| v)
            .collect()
    }

    /// The number of entries (docs/behaviours.md item 95).
    pub fn count(&self) -> usize {
        self.table()
            .parts
            .iter()
            .flat_map(|p| p.entries.values())
            .map(|e| e.len())
            .sum()
    }

    /// Calls `f` with the entries of `key`, once per partition that has some, never with an
    /// empty list (docs/behaviours.md item 94).
    pub fn dispatch(&self, key: &K, mut f: impl FnMut(&[(Pid, V)])) {
        let groups: Vec<Vec<(Pid, V)>> = {
            let t = self.table();
            t.parts
                .iter()
                .filter_map(|part| part.entries.get(key).map(|e| e.to_vec()))
                .collect()
        };
        for group in groups.iter().filter(|g| !g.is_empty()) {
            f(group);
        }
    }

    /// Replaces the value of the caller's own unique `key`: `Some((new, old))`, or `None` if
    /// the caller does not hold it or the keys are duplicate (docs/behaviours.md item 95).
    pub fn update_value(&self, p: &Process, key: &K, f: impl FnOnce(&V) -> V) -> Option<(V, V)> {
        if self.shared.options.keys != Keys::Unique {
            return None;
        }
        let mut t = self.table();
        let kp = slot(key, t.parts.len());
        let entry = t.parts[kp].entries.get_mut(key)?.first_mut()?;
        if entry.0 != p.pid() {
            return None;
        }
        let new = f(&entry.1);
        let old = std::mem::replace(&mut entry.1, new.clone());
        Some((new, old))
    }

    /// Registry-wide metadata (docs/behaviours.md item 95).
    pub fn meta(&self, key: &str) -> Option<Term> {
        self.table().meta.get(key).cloned()
    }

    /// Sets metadata.
    pub fn put_meta(&self, key: &str, value: Term) {
        self.table().meta.insert(key.into(), value);
    }

    /// Removes metadata.
    pub fn delete_meta(&self, key: &str) {
        self.table().meta.remove(key);
    }

    /// The live process registered under a unique `key` (`whereis_name`, used by `via`: a
    /// dead owner counts as absent, docs/behaviours.md item 90).
    pub fn whereis_name(&self, key: &K) -> Option<Pid> {
        let owner = {
            let t = self.table();
            let n = t.parts.len();
            match self.shared.options.keys {
                Keys::Unique => t.parts[slot(key, n)].entries.get(key)?.first()?.0,
                Keys::Duplicate => t.parts.iter().find_map(|p| p.entries.get(key)?.first())?.0,
            }
        };
        self.shared.is_alive(owner).then_some(owner)
    }

    /// `{:via, Registry, {registry, key}}` with a default value: the name for
    /// [`StartOptions::via`](crate::server::StartOptions::via) (docs/behaviours.md item 93). Only for
    /// unique registries.
    pub fn via(&self, key: K) -> Via
    where
        K: std::fmt::Debug,
        V: Default,
    {
        self.via_with(key, V::default())
    }

    /// `{:via, Registry, {registry, key, value}}`.
    pub fn via_with(&self, key: K, value: V) -> Via
    where
        K: std::fmt::Debug,
    {
        Via(Arc::new(ViaKey {
            registry: self.clone(),
            key,
            value,
        }))
    }
}

/// Removes `owner`'s entries for `key` from the table; whether there were any.
fn remove_owner_key<K: Ord + Hash + Clone, V>(t: &mut Table<K, V>, owner: Pid, key: &K) -> bool {
    let op = slot(&owner, t.parts.len());
    let Some(keys) = t.parts[op].owners.get_mut(&owner) else {
        return false;
    };
    let mut parts: Vec<usize> = keys
        .iter()
        .filter(|(_, k)| k == key)
        .map(|(kp, _)| *kp)
        .collect();
    keys.retain(|(_, k)| k != key);
    if keys.is_empty() {
        t.parts[op].owners.remove(&owner);
    }
    parts.dedup();
    let mut removed = false;
    for kp in parts {
        if let Some(entries) = t.parts[kp].entries.get_mut(key) {
            let before = entries.len();
            entries.retain(|(p, _)| *p != owner);
            removed |= entries.len() != before;
            if entries.is_empty() {
                t.parts[kp].entries.remove(key);
            }
        }
    }
    removed
}

/// A partition process: traps exits and removes the entries of registered processes that
/// die (docs/behaviours.md item 90). A new incarnation starts with an empty share of the table, as Elixir's
/// partition starts with a new ETS table (see `reset_partition`).
async fn partition<K, V>(
    p: Process,
    shared: Arc<Shared<K, V>>,
    index: usize,
    generation: u64,
    (starter, ready): (Pid, Ref),
) -> ExitReason
where
    K: Ord + Hash + Clone + std::fmt::Debug + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    p.trap_exit(true);
    p.node().record_with(|| EventKind::Library {
        pid: p.pid(),
        what: "Registry.Partition".into(),
    });
    p.send(starter, Ready(ready));
    let parent = p.links().first().copied();
    loop {
        match p.recv().await {
            Msg::Exit { from, reason } if Some(from) == parent => return reason,
            Msg::Exit { from, .. } => {
                let mut t = shared.table.lock().unwrap_or_else(PoisonError::into_inner);
                if t.generation != generation {
                    continue; // an incarnation's leftover: the table is a newer one's
                }
                let keys = t.parts[index].owners.remove(&from).unwrap_or_default();
                for (kp, key) in keys {
                    if let Some(entries) = t.parts[kp].entries.get_mut(&key) {
                        entries.retain(|(pid, _)| *pid != from);
                        if entries.is_empty() {
                            t.parts[kp].entries.remove(&key);
                        }
                    }
                    shared.record(&t, &key, from, false);
                }
            }
            _ => {}
        }
    }
}

/// A partition's acknowledgement that it traps exits.
struct Ready(Ref);

/// A (re)started partition of incarnation `generation`: a new, empty share of its table, and
/// its new pid (nothing, if a newer incarnation has the table by now).
fn reset_partition<K: Ord + Hash + std::fmt::Debug, V>(
    shared: &Shared<K, V>,
    index: usize,
    pid: Pid,
    generation: u64,
) {
    let mut t = shared.table.lock().unwrap_or_else(PoisonError::into_inner);
    if t.generation != generation {
        return;
    }
    let owners = std::mem::take(&mut t.parts[index].owners);
    for (owner, keys) in owners {
        for (_, key) in keys {
            remove_owner_key_anywhere(&mut t, owner, &key);
            shared.record(&t, &key, owner, false);
        }
    }
    t.parts[index].entries.clear();
    t.parts[index].pid = Some(pid);
}

/// Removes `owner`'s entries for `key` wherever they are (the owner map is already gone).
fn remove_owner_key_anywhere<K: Ord + Hash, V>(t: &mut Table<K, V>, owner: Pid, key: &K) {
    for part in &mut t.parts {
        if let Some(entries) = part.entries.get_mut(key) {
            entries.retain(|(p, _)| *p != owner);
            if entries.is_empty() {
                part.entries.remove(key);
            }
        }
    }
}

/// A `via` name in a registry.
struct ViaKey<K, V> {
    registry: Registry<K, V>,
    key: K,
    value: V,
}

impl<K, V> ViaName for ViaKey<K, V>
where
    K: Ord + Hash + Clone + Send + Sync + std::fmt::Debug + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn register_name(&self, p: &Process) -> Registering {
        Registering::Done(
            match self
                .registry
                .register(p, self.key.clone(), self.value.clone())
            {
                Ok(_) => Ok(()),
                Err(RegisterError::AlreadyRegistered(owner)) => Err(ViaError::Taken(owner)),
                Err(RegisterError::NotRunning) => Err(ViaError::Failed(ExitReason::Noproc)),
            },
        )
    }

    fn whereis_name<'a>(&'a self, _: &'a Process) -> BoxFuture<'a, Option<Pid>> {
        Box::pin(std::future::ready(self.registry.whereis_name(&self.key)))
    }

    fn describe(&self) -> String {
        format!("{{via, {:?}, {:?}}}", self.registry, self.key)
    }
}

#[cfg(test)]
mod pinned {
    use super::slot;
    use crate::term::Pid;

    /// A key's partition is the same on every platform and toolchain (a saved case replays
    /// alike everywhere): these slots are pinned, and a change in how std hashes strings,
    /// integers or tuples, or in this crate's pids, fails here first.
    #[test]
    fn registry_partitions_are_pinned() {
        let keys = [
            slot(&"alice".to_string(), 4),
            slot(&"bob", 4),
            slot(&42u64, 8),
            slot(&-7i32, 8),
            slot(&("db".to_string(), 3u32), 5),
            slot(&Pid::from_raw(5), 4),
            slot(&Pid::from_raw(6), 4),
            slot(&7usize, 3),
        ];
        assert_eq!(keys, [0, 1, 7, 7, 1, 0, 3, 1]);
    }
}
