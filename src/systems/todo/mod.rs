//! todo: a to-do list service, the system of Saša Jurić's *Elixir in Action*.
//!
//! ```text
//! todo (rest_for_one)
//! ├── registry   Registry (unique keys): the via names of everything below
//! ├── database   Supervisor (one_for_one): 3 workers, {via, registry, "db/0".."db/2"}
//! └── cache      DynamicSupervisor: one to-do server per list name, temporary,
//!                {via, registry, "todo/<name>"}, started on demand
//! ```
//!
//! A client asks the cache for the server of a list ([`Todo::server_process`]): the cache
//! looks the name up and starts a server if there is none; two clients racing for a new name
//! get the same server, because the via name is unique and the loser's start answers
//! `already_started` with the winner's pid. A to-do server loads its list from the database
//! in `init` and stores the whole list through the database after every change. The database
//! is a pool of three workers; a list's name picks its worker by hash, so one list is always
//! written by one worker, in order.
//!
//! The choices that keep acknowledged entries safe, and the flaws they avoid:
//!
//! * **A change is acknowledged after it is stored.** The book's server *casts* the new list
//!   to the database and answers at once: an entry acknowledged just before its database
//!   worker crashes is lost. Here [`Todo::add_entry`] returns only when a worker has written
//!   the entry; if storing fails, the server undoes the change and says so.
//! * **A server loads its list in `init`, and fails to start if it cannot.** Loading later
//!   (`handle_continue`) while answering requests at once, a server that finds the database
//!   down would carry on with an empty list, and its next write would overwrite the stored
//!   one. Here a client gets an error and tries again.
//! * **rest_for_one, registry first.** Every via name lives in the registry: if it restarts,
//!   every name is gone, so the database workers and the to-do servers must start again
//!   after it (they do: they are linked to its partitions, and rest_for_one restarts the
//!   supervisors after it). A database worker's crash only restarts that worker.
//! * **To-do servers are temporary.** A crashed server is started again on demand, from what
//!   the database holds; a supervisor restarting it at once would race the client that just
//!   asked for it.
//! * **Writes are versioned.** A server that dies with a write still on its way (its death
//!   and its successor's start can overtake it when messages are delayed, as between nodes)
//!   must not overwrite what the successor stored since. Each list is stored with a version;
//!   a write names the version it was based on, and a worker refuses one that is not the
//!   current: the stale server learns it (and stops), and the successor's entries stay. Found
//!   by a 15-minute fuzz campaign (`corpus/todo-stale-write-after-successor.json`).
//! * **A server serves only while it holds its name.** When a registry partition dies, its
//!   names go with it and the processes registered there are linked to it: their exit
//!   signals end them, but a late one (as between nodes) leaves a server running nameless
//!   while the cache starts its successor. A server checks that the registry names it before
//!   it answers, and stops (`{shutdown, unregistered}`) if not. Found by a fuzz campaign once
//!   faults favoured processes others watch (`corpus/todo-nameless-server-keeps-serving.json`).
//!
//! The "disk" the workers write to is a [`Storage`]: [`MemoryStorage`] (which survives every
//! crash of the tree: what a simulation needs) or [`DirStorage`] (files).
//!
//! ```
//! # #[cfg(madsim)] {
//! use otpsim::systems::todo::{Entry, MemoryStorage, Todo};
//! use otpsim::sim::Sim;
//!
//! let report = Sim::new(0).run(|p| async move {
//!     let todo = Todo::new(MemoryStorage::new());
//!     todo.start_link(&p).await.unwrap();
//!     let bob = todo.server_process(&p, "bob").await.unwrap();
//!     todo.add_entry(&p, bob, Entry::new(1, "dentist")).await.unwrap();
//!     p.exit(bob, otpsim::ExitReason::Kill);
//!     let again = todo.server_process(&p, "bob").await.unwrap();
//!     assert_ne!(again, bob);
//!     assert_eq!(todo.entries(&p, again, 1).await.unwrap(), vec![Entry::new(1, "dentist")]);
//! });
//! assert_eq!(report.failure(), None);
//! # }
//! ```

use crate::process::{ExitReason, Process};
use crate::registry::{Keys, Registry, RegistryOptions};
use crate::server::{
    self, CallError, CallReply, GenServer, Init, ServerRef, StartError, StartOptions,
};
use crate::supervisor::dynamic::{DynamicError, DynamicOptions, DynamicSupervisorRef};
use crate::supervisor::{self, ChildSpec, Flags, Restart, Strategy, SupervisorRef, SupervisorSpec};
use crate::term::Pid;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

#[cfg(feature = "harness")]
mod target;

#[cfg(feature = "harness")]
pub use target::{TodoOp, TodoTarget};

/// How many database workers there are.
pub const POOL_SIZE: usize = 3;

/// The cache's local name.
pub const CACHE: &str = "todo_cache";

/// One entry of a list.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Entry {
    /// The day it is due.
    pub date: u32,
    /// What it says.
    pub title: String,
}

impl Entry {
    /// An entry due on `date`.
    pub fn new(date: u32, title: impl Into<String>) -> Entry {
        Entry {
            date,
            title: title.into(),
        }
    }
}

/// Where the database workers keep what they store: keys to bytes.
pub trait Storage: Send + Sync + 'static {
    /// What is stored under `key`.
    fn read(&self, key: &str) -> Option<Vec<u8>>;
    /// Stores `value` under `key`; `Err` if it could not.
    fn write(&self, key: &str, value: &[u8]) -> Result<(), String>;
}

/// Storage in memory, shared by every clone: it outlives every crash of the tree.
#[derive(Clone, Default)]
pub struct MemoryStorage(Arc<Mutex<BTreeMap<String, Vec<u8>>>>);

impl MemoryStorage {
    /// Empty storage.
    pub fn new() -> MemoryStorage {
        MemoryStorage::default()
    }
}

impl Storage for MemoryStorage {
    fn read(&self, key: &str) -> Option<Vec<u8>> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    fn write(&self, key: &str, value: &[u8]) -> Result<(), String> {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.insert(key.to_string(), value.to_vec());
        Ok(())
    }
}

/// Storage in a directory, one file per key (for native runs; the simulator does not
/// simulate the real file system).
#[derive(Clone, Debug)]
pub struct DirStorage(std::path::PathBuf);

impl DirStorage {
    /// Files in `dir` (created if needed).
    pub fn new(dir: impl Into<std::path::PathBuf>) -> std::io::Result<DirStorage> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(DirStorage(dir))
    }

    fn path(&self, key: &str) -> std::path::PathBuf {
        let safe: String = key
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        self.0.join(safe)
    }
}

impl Storage for DirStorage {
    fn read(&self, key: &str) -> Option<Vec<u8>> {
        std::fs::read(self.path(key)).ok()
    }

    fn write(&self, key: &str, value: &[u8]) -> Result<(), String> {
        std::fs::write(self.path(key), value).map_err(|e| e.to_string())
    }
}

/// A database worker: reads and writes the lists whose names hash to it.
struct DbWorker(Arc<dyn Storage>);

/// A list as stored: its entries and its version (how many writes made it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Stored {
    version: u64,
    entries: Vec<Entry>,
}

impl Stored {
    /// What `bytes` hold; a bare list of entries (the format before versions) is version 0.
    fn decode(bytes: &[u8]) -> Result<Stored, String> {
        serde_json::from_slice::<Stored>(bytes)
            .or_else(|_| {
                serde_json::from_slice(bytes).map(|entries| Stored {
                    version: 0,
                    entries,
                })
            })
            .map_err(|e| e.to_string())
    }
}

/// Why a worker refused a write.
const STALE: &str = "stale write: the list changed since it was read";

/// A request to a database worker.
enum DbCall {
    /// The list stored under a name.
    Get(String),
    /// Stores a list under a name, based on the version it was read at; refused if the
    /// stored version is another.
    Store(String, u64, Vec<Entry>),
}

impl DbWorker {
    fn read(&self, name: &str) -> Result<Stored, String> {
        self.0
            .read(name)
            .map_or(Ok(Stored::default()), |b| Stored::decode(&b))
    }
}

impl GenServer for DbWorker {
    type Arg = Arc<dyn Storage>;
    type Call = DbCall;
    type Reply = Result<Stored, String>;
    type Cast = ();
    type Cont = ();

    async fn init(storage: Arc<dyn Storage>, _p: &Process) -> Init<Self> {
        Init::Ok(DbWorker(storage))
    }

    async fn handle_call(
        &mut self,
        request: DbCall,
        _from: server::From<Self::Reply>,
        _p: &Process,
    ) -> CallReply<Self> {
        CallReply::Reply(match request {
            DbCall::Get(name) => self.read(&name),
            DbCall::Store(name, base, entries) => self.read(&name).and_then(|stored| {
                if stored.version != base {
                    return Err(STALE.into());
                }
                let next = Stored {
                    version: base + 1,
                    entries,
                };
                let bytes = serde_json::to_vec(&next).map_err(|e| e.to_string())?;
                self.0.write(&name, &bytes).map(|()| next)
            }),
        })
    }
}

/// Why a request to the service failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TodoError {
    /// A process it needed is not running (restarting, or given up).
    #[error("{0} is not running")]
    Down(&'static str),
    /// A call failed.
    #[error("call failed: {0}")]
    Call(#[from] CallError),
    /// The database could not read or write.
    #[error("database: {0}")]
    Database(String),
    /// A server could not start.
    #[error("the server did not start: {0}")]
    Start(String),
}

/// The database's facade: which worker a list's name goes to, and the calls to it.
#[derive(Clone)]
struct Database {
    registry: Registry<String, ()>,
}

impl Database {
    fn worker_key(i: usize) -> String {
        format!("db/{i}")
    }

    /// The worker of a list: by a hash of its name, the same on every run.
    fn worker(&self, name: &str) -> Result<ServerRef<DbWorker>, TodoError> {
        let hash = crate::hash::fnv1a(name.as_bytes());
        let key = Database::worker_key((hash % POOL_SIZE as u64) as usize);
        let pid = self
            .registry
            .whereis_name(&key)
            .ok_or(TodoError::Down("database worker"))?;
        Ok(ServerRef::from_pid(pid))
    }

    async fn call(&self, p: &Process, name: &str, request: DbCall) -> Result<Stored, TodoError> {
        let reply = self.worker(name)?.call(p, request).await?;
        reply.map_err(TodoError::Database)
    }

    async fn get(&self, p: &Process, name: &str) -> Result<Stored, TodoError> {
        self.call(p, name, DbCall::Get(name.into())).await
    }

    /// Stores `entries` over the version `base`; the new version.
    async fn store(
        &self,
        p: &Process,
        name: &str,
        base: u64,
        entries: Vec<Entry>,
    ) -> Result<u64, TodoError> {
        let request = DbCall::Store(name.into(), base, entries);
        self.call(p, name, request).await.map(|s| s.version)
    }

    fn spec(&self, storage: Arc<dyn Storage>) -> SupervisorSpec {
        (0..POOL_SIZE).fold(
            SupervisorSpec::new(Flags::elixir(Strategy::OneForOne)),
            |spec, i| {
                let via = StartOptions::default().via(self.registry.via(Database::worker_key(i)));
                spec.child(ChildSpec::server_with::<DbWorker>(
                    format!("worker{i}"),
                    storage.clone(),
                    via,
                ))
            },
        )
    }
}

/// A to-do server: one list, loaded from the database at start, stored after every change.
struct TodoServer {
    name: String,
    entries: Vec<Entry>,
    /// The version of the list it holds (what its next write is based on).
    version: u64,
    database: Database,
}

/// A request to a to-do server.
enum TodoCall {
    /// Adds an entry; answered once it is stored.
    Add(Entry),
    /// The entries due on a day.
    Entries(u32),
    /// The list's name.
    Name,
}

/// A to-do server's answers.
enum TodoReply {
    /// The entry is stored.
    Added,
    /// Entries of a day.
    Entries(Vec<Entry>),
    /// The list's name.
    Name(String),
}

impl GenServer for TodoServer {
    type Arg = (String, Database);
    type Call = TodoCall;
    type Reply = Result<TodoReply, TodoError>;
    type Cast = ();
    type Cont = ();

    async fn init((name, database): (String, Database), p: &Process) -> Init<Self> {
        match database.get(p, &name).await {
            Ok(Stored { version, entries }) => Init::Ok(TodoServer {
                name,
                entries,
                version,
                database,
            }),
            Err(e) => Init::Stop(ExitReason::error(format!("load: {e}"))),
        }
    }

    async fn handle_call(
        &mut self,
        request: TodoCall,
        _from: server::From<Self::Reply>,
        p: &Process,
    ) -> CallReply<Self> {
        // A server whose name is gone (its registry partition died; the exit signal that
        // ends it is still on its way) may already have a successor: it serves nothing more.
        let key = Todo::server_key(&self.name);
        if self.database.registry.whereis_name(&key) != Some(p.pid()) {
            let reason = ExitReason::ShutdownWith(crate::term::Term::atom("unregistered"));
            return CallReply::Stop(reason, Some(Err(TodoError::Down("server"))));
        }
        CallReply::Reply(match request {
            TodoCall::Add(entry) => {
                self.entries.push(entry);
                let (name, base) = (&self.name, self.version);
                let stored = self
                    .database
                    .store(p, name, base, self.entries.clone())
                    .await;
                match stored {
                    Ok(version) => {
                        self.version = version;
                        Ok(TodoReply::Added)
                    }
                    // Another server stored the list since this one read it: this one is
                    // stale, and stops; the next request loads the list afresh.
                    Err(TodoError::Database(e)) if e == STALE => {
                        let refused = Err(TodoError::Database(e));
                        let reason = ExitReason::ShutdownWith(crate::term::Term::atom("stale"));
                        return CallReply::Stop(reason, Some(refused));
                    }
                    Err(e) => {
                        self.entries.pop();
                        Err(e)
                    }
                }
            }
            TodoCall::Entries(date) => Ok(TodoReply::Entries(
                self.entries
                    .iter()
                    .filter(|e| e.date == date)
                    .cloned()
                    .collect(),
            )),
            TodoCall::Name => Ok(TodoReply::Name(self.name.clone())),
        })
    }
}

/// The service: its registry and its storage. Cloning gives another handle to the same one.
#[derive(Clone)]
pub struct Todo {
    registry: Registry<String, ()>,
    storage: Arc<dyn Storage>,
}

impl Todo {
    /// A service that keeps its lists in `storage` (not started yet).
    pub fn new(storage: impl Storage) -> Todo {
        Todo {
            registry: Registry::new(RegistryOptions::new(Keys::Unique)),
            storage: Arc::new(storage),
        }
    }

    fn database(&self) -> Database {
        Database {
            registry: self.registry.clone(),
        }
    }

    /// The whole service as a supervisor spec.
    pub fn spec(&self) -> SupervisorSpec {
        let database = self
            .database()
            .spec(self.storage.clone())
            .into_child("database");
        let cache = DynamicOptions::default()
            .into_child_with("cache", StartOptions::default().named(CACHE));
        SupervisorSpec::new(Flags::elixir(Strategy::RestForOne))
            .child(self.registry.child_spec("registry"))
            .child(database)
            .child(cache)
    }

    /// Starts the service, linked to the caller.
    pub async fn start_link(&self, p: &Process) -> Result<SupervisorRef, StartError> {
        supervisor::start_link(p, self.spec()).await
    }

    /// The registry the service names its processes in.
    pub fn registry(&self) -> &Registry<String, ()> {
        &self.registry
    }

    fn server_key(name: &str) -> String {
        format!("todo/{name}")
    }

    /// The server of the list `name`, started if there is none (the cache).
    pub async fn server_process(&self, p: &Process, name: &str) -> Result<Pid, TodoError> {
        if let Some(pid) = self.registry.whereis_name(&Todo::server_key(name)) {
            return Ok(pid);
        }
        let cache = p.whereis(CACHE).ok_or(TodoError::Down("cache"))?;
        let via = StartOptions::default().via(self.registry.via(Todo::server_key(name)));
        let arg = (name.to_string(), self.database());
        let spec = ChildSpec::server_with::<TodoServer>("todo_server", arg, via)
            .restart(Restart::Temporary);
        match DynamicSupervisorRef::from_pid(cache)
            .start_child(p, spec)
            .await
        {
            Ok(started) => started.pid().ok_or(TodoError::Start("ignored".into())),
            Err(e) => match (e.already_started(), e) {
                (Some(pid), _) => Ok(pid),
                (None, DynamicError::Supervisor(_)) => Err(TodoError::Down("cache")),
                (None, e) => Err(TodoError::Start(e.to_string())),
            },
        }
    }

    async fn call(
        &self,
        p: &Process,
        server: Pid,
        request: TodoCall,
    ) -> Result<TodoReply, TodoError> {
        ServerRef::<TodoServer>::from_pid(server)
            .call(p, request)
            .await?
    }

    /// Adds an entry to the list of `server`; `Ok` once it is stored.
    pub async fn add_entry(&self, p: &Process, server: Pid, entry: Entry) -> Result<(), TodoError> {
        self.call(p, server, TodoCall::Add(entry)).await.map(|_| ())
    }

    /// The entries of `server`'s list due on `date`.
    pub async fn entries(
        &self,
        p: &Process,
        server: Pid,
        date: u32,
    ) -> Result<Vec<Entry>, TodoError> {
        match self.call(p, server, TodoCall::Entries(date)).await? {
            TodoReply::Entries(entries) => Ok(entries),
            _ => Ok(Vec::new()),
        }
    }

    /// The running to-do servers (every child of the cache), each with the list it serves
    /// (it says so itself), in pid order.
    pub async fn servers(&self, p: &Process) -> Result<Vec<(String, Pid)>, TodoError> {
        let cache = p.whereis(CACHE).ok_or(TodoError::Down("cache"))?;
        let children = DynamicSupervisorRef::from_pid(cache)
            .which_children(p)
            .await
            .map_err(|_| TodoError::Down("cache"))?;
        let mut servers = Vec::new();
        for child in children {
            if let supervisor::ChildState::Running(pid) = child.state {
                if let Ok(TodoReply::Name(name)) = self.call(p, pid, TodoCall::Name).await {
                    servers.push((name, pid));
                }
            }
        }
        Ok(servers)
    }
}
