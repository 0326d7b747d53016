//! The built-in target `tree`: generated supervision trees.
//!
//! A [`TreeSpec`] mixes every strategy, restart type and shutdown spec, intensities and
//! periods, nested supervisors (up to depth 4, fan-out 6), dynamic supervisors whose children
//! the workload starts and stops, task supervisors the workload runs tasks on, GenServers it
//! calls and casts to, slow and hung shutdowns, start functions that fail or return `ignore`
//! on a restart, and a unique-key registry in which workers register their tree path and
//! servers take it as a `via` name. The harness's invariants are the check, with one of the
//! tree's own: `whereis_name` never names a dead process (docs/behaviours.md item 90).
//!
//! The generated tree's spec, its generators, the processes it starts and its workload are one
//! target, kept in one file: each field's meaning, generation and use sit together (hence its
//! length).

use super::harness::{Domain, Target, Workload};
use super::invariants::Violation;
use crate::process::{ExitReason, Process};
use crate::registry::{Keys, Registry, RegistryOptions};
use crate::rt::Duration;
use crate::supervisor::dynamic::{self, DynamicOptions, DynamicSupervisorRef};
use crate::supervisor::{
    self, BoxFuture, ChildSpec, Flags, Restart, Shutdown, Start, Started, Strategy as SupStrategy,
    SupervisorSpec,
};
use crate::term::{Pid, Term};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

/// A supervisor of the generated tree.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TreeSpec {
    /// Its strategy, or a DynamicSupervisor whose children the workload starts.
    pub strategy: TreeStrategy,
    /// Restarts allowed per period.
    pub intensity: u8,
    /// The period in seconds (at least 1).
    pub period: u8,
    /// Its static children.
    pub children: Vec<NodeSpec>,
}

impl TreeSpec {
    /// Its children's ids, in order: `c<id>`, or `c<position>` for a child without one (a
    /// repeated id gets its position too: ids are unique among siblings).
    pub fn child_ids(&self) -> Vec<String> {
        let mut seen = std::collections::BTreeSet::new();
        let ids = self.children.iter().enumerate().map(|(i, child)| {
            let id = format!("c{}", child.id.map_or(i, usize::from));
            let id = if seen.contains(&id) {
                format!("{id}_{i}")
            } else {
                id
            };
            seen.insert(id.clone());
            id
        });
        ids.collect()
    }
}

/// What kind of supervisor a [`TreeSpec`] is (serialised as OTP's strategy atom, or
/// `dynamic`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TreeStrategy {
    /// A supervisor, one_for_one.
    OneForOne,
    /// A supervisor, one_for_all.
    OneForAll,
    /// A supervisor, rest_for_one.
    RestForOne,
    /// A DynamicSupervisor.
    Dynamic,
}

impl TreeStrategy {
    /// The static supervisor's strategy (`None`: a DynamicSupervisor).
    fn of_supervisor(self) -> Option<SupStrategy> {
        match self {
            TreeStrategy::OneForOne => Some(SupStrategy::OneForOne),
            TreeStrategy::OneForAll => Some(SupStrategy::OneForAll),
            TreeStrategy::RestForOne => Some(SupStrategy::RestForOne),
            TreeStrategy::Dynamic => None,
        }
    }
}

/// What a worker's start function does on one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartAction {
    /// It starts the worker.
    Ok,
    /// It fails (`{error, start_failed}`: a crash in init).
    Error,
    /// It returns `ignore`.
    Ignore,
}

/// A child of a supervisor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeSpec {
    /// Its child id is `c<id>` (generated once, so that it does not change when shrinking
    /// removes a sibling); `None`: `c<its position>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u16>,
    /// Its restart type.
    pub restart: Restart,
    /// How it is stopped.
    pub shutdown: Shutdown,
    /// A worker, or a nested supervisor.
    pub kind: Kind,
}

/// What a child is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A worker.
    Worker(WorkerSpec),
    /// A nested supervisor.
    Supervisor(TreeSpec),
    /// A GenServer that answers calls and casts; under its tree path as a `via` name when
    /// the tree has a registry.
    Server(ServerSpec),
    /// A TaskSupervisor the workload runs tasks on.
    Tasks,
}

/// How a server behaves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServerSpec {
    /// How long its `terminate` takes (ms; it traps exits, so a shutdown runs it).
    pub stop_ms: u16,
}

/// How a worker behaves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerSpec {
    /// It traps exits (so a shutdown reaches it as a message and it stops when it likes).
    pub trap_exit: bool,
    /// How long it takes to stop after a shutdown (ms; `None`: it never stops by itself).
    pub stop_ms: Option<u16>,
    /// What its start function does on attempts 1, 2, ... (the last one repeats).
    pub starts: Vec<StartAction>,
    /// It registers its tree path in the tree's registry.
    pub register: bool,
}

/// The setup of a `tree` case: the root supervisor, and whether a registry is part of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TreeSetup {
    /// The root.
    pub root: TreeSpec,
    /// A unique-key registry is started first under the root; workers with `register` put
    /// their path in it.
    pub registry: bool,
}

/// A workload operation on a `tree`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TreeOp {
    /// `start_child` of a worker on the `sup`-th dynamic supervisor (modulo their number).
    StartChild {
        /// Which dynamic supervisor.
        sup: u8,
        /// The child's restart type.
        restart: Restart,
        /// The worker.
        worker: WorkerSpec,
    },
    /// `terminate_child` of the `child`-th child of the `sup`-th dynamic supervisor.
    TerminateChild {
        /// Which dynamic supervisor.
        sup: u8,
        /// Which of its children.
        child: u8,
    },
    /// `restart_child` of the `child`-th child (in start order) of the `sup`-th static
    /// supervisor (the root first, then in start order), after `terminate_child` if
    /// `terminate`: a stopped or ignored child starts again; a running one answers
    /// `running`, a restarting one `restarting` (docs/behaviours.md items 53, 55).
    RestartChild {
        /// Which static supervisor.
        sup: u8,
        /// Which of its children.
        child: u8,
        /// Terminate it first.
        terminate: bool,
    },
    /// A call (or a cast) to the `server`-th server of the tree (in path order), found by
    /// its via name when the tree has a registry.
    Call {
        /// Which server.
        server: u8,
        /// Cast instead of call.
        cast: bool,
    },
    /// A task on the `sup`-th task supervisor: it takes `ms`, then returns or panics; the
    /// driver awaits it, linked to it (`async`) or not (`async_nolink`).
    Async {
        /// Which task supervisor.
        sup: u8,
        /// How long the task takes.
        ms: u16,
        /// It panics instead of returning.
        crash: bool,
        /// Linked to the driver.
        link: bool,
    },
    /// Looks the `key`-th registered path up: `whereis_name` names a live process or none.
    Lookup {
        /// Which path (in path order).
        key: u8,
    },
}

/// The `tree` target.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tree;

/// What a running tree shares with its workers and the workload.
#[derive(Clone, Default)]
pub struct TreeState {
    shared: Arc<Mutex<Shared>>,
}

#[derive(Default)]
struct Shared {
    attempts: BTreeMap<String, usize>,
    registry: Option<Registry<String, ()>>,
    dynamic: Vec<Pid>,
    /// The static supervisors, in start order (restarted ones added again).
    statics: Vec<Pid>,
    tasks: Vec<Pid>,
    /// Each server's latest pid, by path.
    servers: BTreeMap<String, Pid>,
    /// The paths that register in the registry (workers with `register`, and servers).
    registered: Vec<String>,
}

impl TreeState {
    fn with<R>(&self, f: impl FnOnce(&mut Shared) -> R) -> R {
        f(&mut self.shared.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The worker's process body: waits; on an exit signal (when trapping) takes `stop_ms` to
/// stop, or never stops after a `shutdown`.
async fn worker(p: Process, spec: WorkerSpec, path: String, state: TreeState) -> ExitReason {
    p.trap_exit(spec.trap_exit);
    if spec.register {
        let registry = state.with(|s| s.registry.clone());
        if let Some(registry) = registry {
            if let Err(e) = registry.register(&p, path, ()) {
                return ExitReason::error(e.to_term());
            }
        }
    }
    loop {
        if let crate::Msg::Exit { reason, .. } = p.recv().await {
            match spec.stop_ms {
                Some(ms) => {
                    p.sleep(Duration::from_millis(u64::from(ms))).await;
                    return reason;
                }
                // A hung graceful shutdown; any other exit signal (a parent killed) still
                // ends it, or it would be an orphan by construction (a real hung
                // `terminate/2` is one, and the harness says so).
                None if reason == ExitReason::Shutdown => loop {
                    if let crate::Msg::Exit { reason, .. } = p.recv().await {
                        if reason != ExitReason::Shutdown {
                            return reason;
                        }
                    }
                },
                None => return reason,
            }
        }
    }
}

fn worker_start(spec: WorkerSpec, path: String, state: TreeState) -> Start {
    Start::new(move |p| {
        let attempt = state.with(|s| {
            let n = s.attempts.entry(path.clone()).or_insert(0);
            *n += 1;
            *n
        });
        let action = spec
            .starts
            .get(attempt - 1)
            .or(spec.starts.last())
            .copied()
            .unwrap_or(StartAction::Ok);
        let started = match action {
            StartAction::Error => Err(Term::atom("start_failed")),
            StartAction::Ignore => Ok(Started::Ignore),
            StartAction::Ok => {
                let (spec, path, state) = (spec.clone(), path.clone(), state.clone());
                Ok(Started::Pid(
                    p.spawn_link(move |q| worker(q, spec, path, state)),
                ))
            }
        };
        Box::pin(async move { started })
    })
}

/// A server of the tree: counts what it is sent; takes `stop_ms` to terminate.
struct TreeServer {
    stop_ms: u16,
    sum: u64,
}

impl crate::server::GenServer for TreeServer {
    type Arg = (u16, String, TreeState);
    type Call = u32;
    type Reply = u64;
    type Cast = u32;
    type Cont = ();

    async fn init((stop_ms, path, state): Self::Arg, p: &Process) -> crate::server::Init<Self> {
        p.trap_exit(true);
        state.with(|s| s.servers.insert(path, p.pid()));
        crate::server::Init::Ok(TreeServer { stop_ms, sum: 0 })
    }

    async fn handle_call(
        &mut self,
        n: u32,
        _from: crate::server::From<u64>,
        _p: &Process,
    ) -> crate::server::CallReply<Self> {
        self.sum += u64::from(n);
        crate::server::CallReply::Reply(self.sum)
    }

    async fn handle_cast(&mut self, n: u32, _p: &Process) -> crate::server::Next<Self> {
        self.sum += u64::from(n);
        crate::server::Next::Continue
    }

    async fn terminate(&mut self, _reason: &ExitReason, p: &Process) {
        p.sleep(Duration::from_millis(u64::from(self.stop_ms)))
            .await;
    }
}

/// A server's start: under its path as a via name if the tree has a registry (looked up at
/// each start: a restarted registry is a new one).
fn server_start(spec: ServerSpec, path: String, state: TreeState) -> Start {
    Start::new(move |p| {
        let (path, state) = (path.clone(), state.clone());
        let registry = state.with(|s| s.registry.clone());
        let options = crate::server::StartOptions {
            via: registry.map(|r| r.via(path.clone())),
            ..crate::server::StartOptions::linked()
        };
        let arg = (spec.stop_ms, path, state);
        Box::pin(async move {
            let started = crate::server::start_with::<TreeServer>(p, arg, options).await;
            supervisor::start_result(started.map(|s| s.pid()))
        })
    })
}

fn tasks_start(intensity: u8, period: u8, state: TreeState) -> Start {
    Start::new(move |p| {
        let state = state.clone();
        Box::pin(async move {
            let options = crate::supervisor::task::TaskOptions {
                supervisor: DynamicOptions::default()
                    .max_restarts(u64::from(intensity))
                    .max_seconds(u64::from(period.max(1))),
            };
            let sup = crate::supervisor::task::start_link(p, options)
                .await
                .map_err(|e| e.reason().to_term())?;
            state.with(|s| s.tasks.push(sup.pid()));
            Ok(Started::Pid(sup.pid()))
        })
    })
}

fn child_spec(node: &NodeSpec, path: String, id: String, state: &TreeState) -> ChildSpec {
    let spec = match &node.kind {
        Kind::Worker(w) => ChildSpec::worker(id, worker_start(w.clone(), path, state.clone())),
        Kind::Server(server) => {
            ChildSpec::worker(id, server_start(server.clone(), path, state.clone()))
        }
        Kind::Tasks => ChildSpec::supervisor(id, tasks_start(3, 5, state.clone())),
        Kind::Supervisor(tree) => {
            let (tree, state) = (tree.clone(), state.clone());
            let start = Start::new(move |p| {
                let (tree, state, path) = (tree.clone(), state.clone(), path.clone());
                Box::pin(async move { start_sup(p, &tree, &path, &state).await })
            });
            ChildSpec::supervisor(id, start)
        }
    };
    spec.restart(node.restart).shutdown(node.shutdown)
}

fn start_sup<'a>(
    p: &'a Process,
    tree: &'a TreeSpec,
    path: &'a str,
    state: &'a TreeState,
) -> BoxFuture<'a, supervisor::StartResult> {
    Box::pin(async move {
        let period = u64::from(tree.period.max(1));
        if tree.strategy == TreeStrategy::Dynamic {
            let options = DynamicOptions::default()
                .max_restarts(u64::from(tree.intensity))
                .max_seconds(period);
            let sup = dynamic::start_link(p, options).await;
            return match sup {
                Ok(sup) => {
                    state.with(|s| s.dynamic.push(sup.pid()));
                    Ok(Started::Pid(sup.pid()))
                }
                Err(e) => Err(e.reason().to_term()),
            };
        }
        let sup = supervisor::start_link(p, static_spec(tree, path, state, None))
            .await
            .map_err(|e| e.reason().to_term())?;
        state.with(|s| s.statics.push(sup.pid()));
        Ok(Started::Pid(sup.pid()))
    })
}

/// The spec of a static supervisor, with `first` (the registry) before its children.
fn static_spec(
    tree: &TreeSpec,
    path: &str,
    state: &TreeState,
    first: Option<ChildSpec>,
) -> SupervisorSpec {
    let strategy = tree.strategy.of_supervisor();
    let flags = Flags::new(strategy.unwrap_or(SupStrategy::OneForOne))
        .intensity(u64::from(tree.intensity))
        .period(u64::from(tree.period.max(1)));
    let spec = first
        .into_iter()
        .fold(SupervisorSpec::new(flags), SupervisorSpec::child);
    tree.children
        .iter()
        .zip(tree.child_ids())
        .fold(spec, |spec, (child, id)| {
            spec.child(child_spec(child, format!("{path}/{id}"), id, state))
        })
}

/// The registry as a child: started first, so that registering workers find it.
fn registry_child(state: &TreeState) -> ChildSpec {
    let registry = Registry::<String, ()>::new(RegistryOptions::new(Keys::Unique));
    state.with(|s| s.registry = Some(registry.clone()));
    registry.child_spec("registry")
}

fn worker_strategy() -> impl Strategy<Value = WorkerSpec> {
    let start = prop_oneof![
        8 => Just(StartAction::Ok),
        1 => Just(StartAction::Error),
        1 => Just(StartAction::Ignore)
    ];
    (
        any::<bool>(),
        prop_oneof![6 => (0u16..300).prop_map(Some), 1 => Just(None)],
        prop::collection::vec(start, 0..3),
        prop::bool::weighted(0.3),
    )
        .prop_map(|(trap_exit, stop_ms, mut starts, register)| {
            // The first start succeeds, so the tree comes up; the next attempts may fail,
            // and then starts succeed again: a start that fails forever makes a tree that
            // never converges, by design rather than by fault.
            starts.insert(0, StartAction::Ok);
            starts.push(StartAction::Ok);
            WorkerSpec {
                trap_exit,
                stop_ms,
                starts,
                register,
            }
        })
}

fn restart_strategy() -> impl Strategy<Value = Restart> {
    prop_oneof![
        3 => Just(Restart::Permanent),
        1 => Just(Restart::Transient),
        1 => Just(Restart::Temporary)
    ]
}

fn tree_strategy(depth: u32) -> BoxedStrategy<TreeSpec> {
    let leaf = (restart_strategy(), worker_strategy()).prop_map(|(restart, w)| NodeSpec {
        id: None,
        restart,
        // A worker that never stops by itself must have a timeout, or the tree hangs by
        // design (OTP's documentation says the same of `infinity` for workers).
        shutdown: if w.stop_ms.is_none() {
            Shutdown::Timeout(1000)
        } else {
            Shutdown::Timeout(500)
        },
        kind: Kind::Worker(w),
    });
    let shutdown = || {
        prop_oneof![
            Just(Shutdown::BrutalKill),
            Just(Shutdown::Timeout(100)),
            Just(Shutdown::Timeout(500))
        ]
    };
    let worker = (leaf, shutdown()).prop_map(|(mut node, shutdown)| {
        if matches!(&node.kind, Kind::Worker(w) if w.stop_ms.is_some()) {
            node.shutdown = shutdown;
        }
        node
    });
    let server =
        (restart_strategy(), 0u16..300, shutdown()).prop_map(|(restart, stop_ms, s)| NodeSpec {
            id: None,
            restart,
            shutdown: s,
            kind: Kind::Server(ServerSpec { stop_ms }),
        });
    let tasks = restart_strategy().prop_map(|restart| NodeSpec {
        id: None,
        restart,
        shutdown: Shutdown::Infinity,
        kind: Kind::Tasks,
    });
    let leaf = prop_oneof![6 => worker, 2 => server, 1 => tasks];
    let child: BoxedStrategy<NodeSpec> = if depth == 0 {
        leaf.boxed()
    } else {
        prop_oneof![
            4 => leaf,
            1 => (restart_strategy(), tree_strategy(depth - 1)).prop_map(|(restart, t)| NodeSpec {
                id: None,
                restart,
                shutdown: Shutdown::Infinity,
                kind: Kind::Supervisor(t),
            }),
        ]
        .boxed()
    };
    let strategy = prop_oneof![
        3 => Just(TreeStrategy::OneForOne),
        2 => Just(TreeStrategy::OneForAll),
        2 => Just(TreeStrategy::RestForOne),
        1 => Just(TreeStrategy::Dynamic),
    ];
    (
        strategy,
        0u8..5,
        1u8..6,
        prop::collection::vec((child, any::<u16>().no_shrink()), 1..=6),
    )
        .prop_map(|(strategy, intensity, period, children)| TreeSpec {
            children: if strategy == TreeStrategy::Dynamic {
                Vec::new()
            } else {
                children
                    .into_iter()
                    .map(|(child, id)| NodeSpec {
                        id: Some(id),
                        ..child
                    })
                    .collect()
            },
            strategy,
            intensity,
            period,
        })
        .boxed()
}

impl Target for Tree {
    type Setup = TreeSetup;
    type Op = TreeOp;
    type State = TreeState;

    fn name(&self) -> String {
        "tree".into()
    }

    fn setups(&self) -> BoxedStrategy<TreeSetup> {
        (tree_strategy(3), prop::bool::weighted(0.3))
            .prop_map(|(mut root, registry)| {
                if root.strategy == TreeStrategy::Dynamic {
                    root.strategy = TreeStrategy::OneForOne;
                }
                TreeSetup { root, registry }
            })
            .boxed()
    }

    fn workload(&self, domain: Domain) -> Workload<TreeOp> {
        let pick = || domain.pick();
        Workload::new()
            .kind(
                "call",
                2,
                (pick(), any::<bool>()).prop_map(|(server, cast)| TreeOp::Call { server, cast }),
            )
            .kind(
                "async",
                1,
                (pick(), 0u16..500, prop::bool::weighted(0.3), any::<bool>()).prop_map(
                    |(sup, ms, crash, link)| TreeOp::Async {
                        sup,
                        ms,
                        crash,
                        link,
                    },
                ),
            )
            .kind("lookup", 1, pick().prop_map(|key| TreeOp::Lookup { key }))
            // A DynamicSupervisor unlinks its children before it stops them (Elixir does the
            // same), so a child hung in its shutdown outlives a supervisor killed meanwhile: a
            // real leak, but one of the worker's making. Dynamic children always stop.
            .kind(
                "start_child",
                2,
                (pick(), restart_strategy(), worker_strategy()).prop_map(
                    |(sup, restart, mut worker)| {
                        worker.stop_ms = worker.stop_ms.or(Some(0));
                        TreeOp::StartChild {
                            sup,
                            restart,
                            worker,
                        }
                    },
                ),
            )
            .kind(
                "terminate_child",
                1,
                (pick(), pick()).prop_map(|(sup, child)| TreeOp::TerminateChild { sup, child }),
            )
            .kind(
                "restart_child",
                1,
                (pick(), pick(), any::<bool>()).prop_map(|(sup, child, terminate)| {
                    TreeOp::RestartChild {
                        sup,
                        child,
                        terminate,
                    }
                }),
            )
    }

    async fn start(&self, setup: &TreeSetup, p: &Process) -> Result<(Pid, TreeState), String> {
        let state = TreeState::default();
        let mut registered = Vec::new();
        registering_paths(&setup.root, "root", &mut registered);
        state.with(|s| s.registered = registered);
        let registry = setup.registry.then(|| registry_child(&state));
        let spec = static_spec(&setup.root, "root", &state, registry);
        // Named, so that the trace names every process by its tree path from the start.
        let options = crate::server::StartOptions::linked().named("root");
        let sup = supervisor::start_with(
            p,
            move |_| supervisor::SupervisorInit::Ok(spec.clone()),
            options,
        )
        .await
        .map_err(|e| format!("the root did not start: {e}"))?;
        state.with(|s| s.statics.insert(0, sup.pid()));
        Ok((sup.pid(), state))
    }

    async fn apply(
        &self,
        state: &mut TreeState,
        op: &TreeOp,
        p: &Process,
    ) -> Result<(), Violation> {
        match op {
            TreeOp::Call { server, cast } => return call(state, *server, *cast, p).await,
            TreeOp::Async {
                sup,
                ms,
                crash,
                link,
            } => return run_task(state, *sup, *ms, *crash, *link, p).await,
            TreeOp::Lookup { key } => return lookup(state, *key, p),
            TreeOp::RestartChild {
                sup,
                child,
                terminate,
            } => return restart_child(state, *sup, *child, *terminate, p).await,
            TreeOp::StartChild { .. } | TreeOp::TerminateChild { .. } => {}
        }
        let live: Vec<Pid> = state.with(|s| {
            s.dynamic.retain(|pid| p.node().is_alive(*pid));
            s.dynamic.clone()
        });
        if live.is_empty() {
            return Ok(());
        }
        match op {
            TreeOp::StartChild {
                sup,
                restart,
                worker,
            } => {
                let sup = live[usize::from(*sup) % live.len()];
                let path = format!("dyn{}", sup);
                let spec =
                    ChildSpec::worker("w", worker_start(worker.clone(), path, state.clone()))
                        .restart(*restart)
                        .shutdown(Shutdown::Timeout(if worker.stop_ms.is_some() {
                            500
                        } else {
                            1000
                        }));
                let _ = DynamicSupervisorRef::from_pid(sup)
                    .start_child(p, spec)
                    .await;
            }
            TreeOp::TerminateChild { sup, child } => {
                let sup = DynamicSupervisorRef::from_pid(live[usize::from(*sup) % live.len()]);
                if let Ok(children) = sup.which_children(p).await {
                    let pids: Vec<Pid> = children
                        .iter()
                        .filter_map(|c| match c.state {
                            supervisor::ChildState::Running(pid) => Some(pid),
                            _ => None,
                        })
                        .collect();
                    if !pids.is_empty() {
                        let pid = pids[usize::from(*child) % pids.len()];
                        let _ = sup.terminate_child(p, pid).await;
                    }
                }
            }
            TreeOp::Call { .. }
            | TreeOp::Async { .. }
            | TreeOp::Lookup { .. }
            | TreeOp::RestartChild { .. } => {}
        }
        Ok(())
    }
}

/// The paths under `tree` that register in the registry: workers with `register`, servers.
fn registering_paths(tree: &TreeSpec, path: &str, out: &mut Vec<String>) {
    for (child, id) in tree.children.iter().zip(tree.child_ids()) {
        let path = format!("{path}/{id}");
        match &child.kind {
            Kind::Worker(w) if w.register => out.push(path),
            Kind::Server(_) => out.push(path),
            Kind::Supervisor(t) => registering_paths(t, &path, out),
            Kind::Worker(_) | Kind::Tasks => {}
        }
    }
}

/// `restart_child` (after `terminate_child` if `terminate`) of a static supervisor's child.
/// Any answer will do: what is checked is what the supervisor does (the trace's invariants).
async fn restart_child(
    state: &TreeState,
    sup: u8,
    child: u8,
    terminate: bool,
    p: &Process,
) -> Result<(), Violation> {
    let live: Vec<Pid> = state.with(|s| {
        s.statics.retain(|pid| p.node().is_alive(*pid));
        s.statics.clone()
    });
    let Some(&sup) = live.get(usize::from(sup) % live.len().max(1)) else {
        return Ok(());
    };
    let sup = supervisor::SupervisorRef::from_pid(sup);
    let Ok(mut children) = sup.which_children(p).await else {
        return Ok(());
    };
    children.reverse(); // which_children is newest first
    let Some(id) = children
        .get(usize::from(child) % children.len().max(1))
        .and_then(|c| c.id.clone())
    else {
        return Ok(());
    };
    if terminate {
        let _ = sup.terminate_child(p, id.as_str()).await;
    }
    let _ = sup.restart_child(p, &id).await;
    Ok(())
}

/// A call or cast to a server, by via name when there is a registry. Any answer will do:
/// servers die, stop slowly and are restarted under the workload's feet.
async fn call(state: &TreeState, server: u8, cast: bool, p: &Process) -> Result<(), Violation> {
    let (paths, registry) = state.with(|s| {
        let paths: Vec<String> = s.servers.keys().cloned().collect();
        (paths, s.registry.clone())
    });
    let Some(path) = paths.get(usize::from(server) % paths.len().max(1)) else {
        return Ok(());
    };
    let pid = match &registry {
        Some(registry) => registry.whereis_name(path),
        None => state.with(|s| s.servers.get(path).copied()),
    };
    let Some(pid) = pid else {
        return Ok(());
    };
    let server = crate::server::ServerRef::<TreeServer>::from_pid(pid);
    if cast {
        server.cast(p, 1);
    } else {
        let _ = server
            .call_timeout(p, 1, Some(Duration::from_secs(1)))
            .await;
    }
    Ok(())
}

/// A task on a task supervisor, awaited for a little longer than it takes.
async fn run_task(
    state: &TreeState,
    sup: u8,
    ms: u16,
    crash: bool,
    link: bool,
    p: &Process,
) -> Result<(), Violation> {
    let live: Vec<Pid> = state.with(|s| {
        s.tasks.retain(|pid| p.node().is_alive(*pid));
        s.tasks.clone()
    });
    let Some(&sup) = live.get(usize::from(sup) % live.len().max(1)) else {
        return Ok(());
    };
    let sup = crate::supervisor::task::TaskSupervisorRef::from_pid(sup);
    let job = move |t: Process| async move {
        t.sleep(Duration::from_millis(u64::from(ms))).await;
        assert!(!crash, "the task crashes");
        ms
    };
    let task = if link {
        sup.async_(p, job).await
    } else {
        sup.async_nolink(p, job).await
    };
    if let Ok(task) = task {
        let _ = task
            .await_(p, Duration::from_millis(u64::from(ms) + 1000))
            .await;
    }
    Ok(())
}

/// `whereis_name` of a registered path names a live process or nothing (docs/behaviours.md item 90).
fn lookup(state: &TreeState, key: u8, p: &Process) -> Result<(), Violation> {
    let (paths, registry) = state.with(|s| (s.registered.clone(), s.registry.clone()));
    let (Some(path), Some(registry)) = (paths.get(usize::from(key) % paths.len().max(1)), registry)
    else {
        return Ok(());
    };
    match registry.whereis_name(path) {
        Some(pid) if !p.node().is_alive(pid) => Err(Violation::app(
            "whereis_name_is_live",
            format!("whereis_name({path:?}) names {pid}, which is dead"),
        )),
        _ => Ok(()),
    }
}
