//! The node: the process table, signal delivery and the trace of one run.
//!
//! All state of a node sits behind one lock, taken briefly by every operation and never held
//! while user code runs. Signals are delivered synchronously unless the node's [`Choices`]
//! delay them; delayed signals go through a postman task that keeps Erlang's FIFO order per
//! sender-receiver pair.
//!
//! All of a node's state sits behind one lock; this file holds that state and every operation on
//! it, so that what runs under the lock, and what must not, is decided in one place. (That is why
//! it is long.)

use super::alive::PidBits;
use super::message::{MonitorRef, Msg};
use super::small::{SmallMap, SmallSet};
use super::task::ProcessTask;
use super::{ExitReason, IntoExitReason, NodeDownReason, Process};
use crate::rt::{self, Choices, Duration, Instant, NoFaults};
use crate::term::{Pid, Ref};
use crate::trace::{EventKind, FaultKind, SignalOutcome, SpawnTie, Trace};
use rt::sync::{oneshot, Notify};
use std::any::Any;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;

/// Why a node stopped running its processes before they finished.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Halt {
    /// The run took more process steps than its budget: a livelock. Names the process that
    /// took the most steps.
    StepBudget {
        /// The busiest live process.
        pid: Pid,
        /// Its trace name (path or `<0.N>`).
        name: String,
        /// How many steps it took.
        steps: u64,
        /// The budget for the whole run.
        budget: u64,
    },
    /// The wall-clock watchdog fired.
    WallClock,
    /// [`Node::halt`] was called.
    Requested,
}

impl std::fmt::Display for Halt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Halt::StepBudget {
                name,
                steps,
                budget,
                ..
            } => write!(
                f,
                "livelock: the run exceeded its budget of {budget} process steps; \
                 process {name} took {steps} of them"
            ),
            Halt::WallClock => f.write_str("the wall-clock watchdog fired"),
            Halt::Requested => f.write_str("halted on request"),
        }
    }
}

thread_local! {
    /// The node and pid of the process being polled on this thread (0, 0: none).
    static RUNNING: std::cell::Cell<(usize, u64)> = const { std::cell::Cell::new((0, 0)) };
}

/// How many messages a process takes with waiting receives before it yields to the others.
pub(super) const REDUCTIONS: u32 = 64;

/// A [`Node`] that may be gone.
#[derive(Clone)]
#[cfg_attr(not(feature = "tcp"), allow(dead_code))]
pub(crate) struct WeakNode(std::sync::Weak<Inner>);

#[cfg_attr(not(feature = "tcp"), allow(dead_code))]
impl WeakNode {
    /// The node, if it still exists.
    pub(crate) fn upgrade(&self) -> Option<Node> {
        self.0.upgrade().map(|inner| Node { inner })
    }
}

/// Settings of a [`Node`].
pub struct NodeConfig {
    /// Record a [`Trace`] (on in simulations; off by default for production).
    pub trace: bool,
    /// Halt with [`Halt::StepBudget`] after this many process steps (polls) in total.
    pub step_budget: Option<u64>,
    /// Silence the panic hook for panics inside processes (they become exit reasons anyway).
    pub quiet_panics: bool,
    /// Answers to the choice points.
    pub choices: Box<dyn Choices>,
    /// A flag another thread sets to halt the node with [`Halt::WallClock`].
    pub watchdog: Option<Arc<AtomicBool>>,
    /// Which node of a cluster this is (0 alone), and its incarnation (0 until it restarts):
    /// its pids and refs carry both (see [`Pid`]).
    pub index: u16,
    /// The incarnation.
    pub creation: u16,
    /// The simulated machine its processes run on (`None`: wherever the caller runs).
    pub machine: Option<rt::Machine>,
    /// How its clock differs from true time (`None`: it does not): its processes' time,
    /// timers and wall time drift and jump with it; the trace is stamped in true time.
    pub skew: Option<rt::Skew>,
    /// Its disk, which may outlive it (`None`: a fresh, empty one).
    pub disk: Option<super::Disk>,
    /// A step counter shared with the other nodes of a run (`None`: its own): the step
    /// budget then bounds their steps together, and once it is spent every node halts at its
    /// next step, each naming its own busiest process.
    pub shared_steps: Option<Arc<std::sync::atomic::AtomicU64>>,
}

impl Default for NodeConfig {
    /// Production settings: no trace, no budget, panics printed, no faults.
    fn default() -> Self {
        NodeConfig {
            trace: false,
            step_budget: None,
            quiet_panics: false,
            choices: Box::new(NoFaults),
            watchdog: None,
            index: 0,
            creation: 0,
            machine: None,
            skew: None,
            disk: None,
            shared_steps: None,
        }
    }
}

/// A set of processes that can link, monitor and message each other: one BEAM node.
///
/// Cloning a `Node` gives another handle to the same node.
///
/// ```
/// use otpsim::{rt, Node, Msg};
/// rt::block_on(0, async {
///     let node = Node::new();
///     let echo = node.spawn(|mut p| async move {
///         let msg = p.recv().await;
///         assert_eq!(msg.downcast_ref::<&str>(), Some(&"hi"));
///     });
///     node.send(echo, "hi");
///     assert_eq!(node.wait_exit(echo).await, Some(otpsim::ExitReason::Normal));
/// });
/// ```
#[derive(Clone)]
pub struct Node {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    state: Mutex<State>,
    /// "Outside any process" on this node (serial 0).
    outside: Pid,
    /// The node's clock, with its skew: its processes' time and timers.
    clock: rt::Clock,
    /// The executor's clock without skew: the trace's stamps.
    true_clock: rt::Clock,
    disk: super::Disk,
    shared_steps: Option<Arc<std::sync::atomic::AtomicU64>>,
    started: rt::Mark,
    watchdog: Arc<AtomicBool>,
    postman: Notify,
    quiet_panics: bool,
    tracing: bool,
    /// The choices may jitter timers (otherwise they are not asked).
    jitters: bool,
    machine: Option<rt::Machine>,
}

pub(super) struct State {
    /// Pids and refs are `base | serial` (the node's index and creation, packed).
    base: u64,
    /// Where signals to other nodes go (none: a node alone drops them, as a dead target's).
    carrier: Option<Arc<dyn Carrier>>,
    /// `monitor_node` monitors, in the order they were made: (node, watcher), one per call.
    node_monitors: Vec<(u16, Pid)>,
    /// Processes subscribed to every node's `nodeup` and `nodedown` (`monitor_nodes`).
    node_subscribers: Vec<Pid>,
    next_pid: u64,
    next_ref: u64,
    procs: ProcTable,
    /// The pids in `procs`, one bit each (a liveness check without a table probe).
    alive: PidBits,
    names: BTreeMap<String, Pid>,
    /// Tree paths of live labelled processes (only while tracing).
    paths: BTreeMap<Pid, String>,
    /// Children named relative to a live parent that has no path yet: parent -> (child, id,
    /// is a supervisor). They are labelled when the parent is.
    pending_labels: BTreeMap<Pid, Vec<(Pid, String, bool)>>,
    trace: Option<Trace>,
    /// What an upper layer derives from the trace, kept with it (see
    /// [`Node::with_trace_and`]).
    trace_ext: Option<Box<dyn Any + Send>>,
    choices: Box<dyn Choices>,
    steps: u64,
    step_budget: Option<u64>,
    halted: Option<Halt>,
    delayed: BTreeMap<(Instant, u64), Delayed>,
    /// Pending timers: where their message waits in `delayed`.
    timers: BTreeMap<Ref, (Instant, u64)>,
    in_flight: BTreeMap<(Pid, Pid), (Instant, u32)>,
    delay_seq: u64,
    postman_running: bool,
    /// Processes an exit signal has just doomed, to be finished at once (see `drain`).
    dying: VecDeque<Pid>,
    draining: bool,
    /// The start functions other nodes may spawn, by name.
    starts: BTreeMap<String, StartFn>,
    /// Spawn requests that arrived, carried out once the lock is released.
    spawns: Vec<(Pid, SpawnRequest)>,
    /// This node's spawn requests waiting for their answer: (tag, requester, node).
    pending_spawns: Vec<(Ref, Pid, u16)>,
    /// Nodes whose `nodedown` was told before their connection was lost.
    told_down: BTreeSet<u16>,
    /// The nodes it is connected to (`nodes()`), as its `nodeup`s and `nodedown`s say.
    connected: BTreeSet<u16>,
}

/// A live process's record in the table. Kept small (it is one table slot per process):
/// its sets hold one entry inline ([`SmallMap`]), and what few processes have sits in
/// [`Rare`], allocated on first use.
pub(super) struct Proc {
    mailbox: VecDeque<Msg>,
    waker: Option<Waker>,
    links: SmallSet<Pid>,
    /// Monitors others hold on this process: reference -> watcher.
    watchers: SmallMap<MonitorRef, Pid>,
    /// Monitors this process holds: reference -> target.
    monitors: SmallMap<MonitorRef, Pid>,
    aliases: SmallSet<Ref>,
    pending_exit: Option<ExitReason>,
    /// The process that spawned it (`None`: the outside world).
    parent: Option<Pid>,
    rare: Option<Box<Rare>>,
    received: u64,
    steps: u64,
    /// Messages taken by waiting receives during the current step (the reduction count).
    taken_this_step: u32,
    /// `EXIT` messages in the mailbox: a supervisor looks for a child's queued `EXIT` at each
    /// child it stops, and most of the time there is none to scan for (a DynamicSupervisor
    /// stopping 100,000 children would otherwise scan a mailbox filling with their `DOWN`s
    /// 100,000 times: benches/runtime.rs, b2).
    exits_queued: u32,
    trap_exit: bool,
    /// It runs a generic server loop (a GenServer or a supervisor): it understands a
    /// request to stop ([`crate::server::stop`]).
    gen: bool,
}

/// The parts of a process record that most processes never use.
#[derive(Default)]
struct Rare {
    name: Option<String>,
    exit_waiters: Vec<oneshot::Sender<Option<ExitReason>>>,
}

impl Proc {
    pub(super) fn registered_name(&self) -> Option<String> {
        self.name().cloned()
    }

    fn name(&self) -> Option<&String> {
        self.rare.as_ref().and_then(|r| r.name.as_ref())
    }

    fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    fn new(parent: Option<Pid>) -> Proc {
        Proc {
            mailbox: VecDeque::new(),
            waker: None,
            links: SmallSet::default(),
            watchers: SmallMap::default(),
            monitors: SmallMap::default(),
            aliases: SmallSet::default(),
            pending_exit: None,
            parent,
            rare: None,
            received: 0,
            steps: 0,
            taken_this_step: 0,
            exits_queued: 0,
            trap_exit: false,
            gen: false,
        }
    }

    fn wake(&mut self) {
        if let Some(w) = &self.waker {
            w.wake_by_ref();
        }
    }

    fn push(&mut self, msg: Msg) {
        self.exits_queued += u32::from(matches!(msg, Msg::Exit { .. }));
        self.mailbox.push_back(msg);
        self.wake();
    }

    /// Marks the process to exit at its next step (the first reason wins).
    fn doom(&mut self, reason: ExitReason) {
        if self.pending_exit.is_none() {
            self.pending_exit = Some(reason);
        }
        self.wake();
    }
}

/// The process table. A hash map with a fixed hasher: O(1) on every signal, and the same
/// layout on every replay; what needs an order (pid order) sorts, so its iteration order
/// never reaches a trace. Records are boxed: the table's slots stay 16 bytes, so it grows
/// (and is probed) without moving and touching megabytes of records.
#[allow(clippy::disallowed_types)] // a fixed hasher: deterministic, and never iterated into a trace
type ProcTable = rustc_hash::FxHashMap<Pid, Box<Proc>>;

/// What a process sets up for a wait on another (a call's answer, a start's
/// acknowledgement) and takes down when the wait ends: a monitor of the other process, and
/// an alias its answer comes through, if any.
#[derive(Clone, Copy, Debug)]
pub(super) struct Wait {
    pub(super) monitor: MonitorRef,
    pub(super) alias: Option<Ref>,
}

/// A signal on its way from one process to another.
pub(crate) enum Signal {
    Message {
        payload: Box<dyn Any + Send>,
        alias: Option<Ref>,
    },
    /// `exit(Pid, Reason)`.
    Exit(ExitReason),
    /// The exit signal of a dying linked process.
    LinkExit(ExitReason),
    Down {
        mref: MonitorRef,
        reason: ExitReason,
    },
    /// Between nodes only: the far half of `link` (the near half is recorded at once, as
    /// Erlang's `link/1` returns `true` before the other node has heard of it).
    Link,
    /// Between nodes only: the far half of `unlink`.
    Unlink,
    /// Between nodes only: the far half of `monitor`.
    Monitor(MonitorRef),
    /// Between nodes only: the far half of `demonitor`, or of the watcher's exit.
    Demonitor(MonitorRef),
    /// Between nodes only: a message to whoever the far node has registered as a name
    /// (`{Name, Node} ! Msg`), addressed to that node's serial 0. Boxed: a signal stays as
    /// small as the common ones.
    Named(Box<(String, Box<dyn Any + Send>)>),
    /// Between nodes only: the far half of a monitor of `{Name, Node}`, addressed like
    /// [`Signal::Named`]; the name is looked up on arrival (`noproc` if nobody has it).
    MonitorNamed(Box<(String, MonitorRef)>),
    /// Between nodes only: a request to spawn a process from one of the node's registered
    /// start functions (`spawn(Node, M, F, A)`), addressed like [`Signal::Named`].
    Spawn(Box<SpawnRequest>),
}

/// A remote spawn's request: the start function's name, its argument, the requester's tag,
/// and whether the new process links to the requester.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct SpawnRequest {
    pub(crate) start: String,
    pub(crate) arg: crate::term::Term,
    pub(crate) tag: Ref,
    pub(crate) link: bool,
}

/// The answer to a remote spawn: the new pid, or why there is none. Sent to the spawner's
/// alias `tag`, so that an answer that comes too late is dropped.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct SpawnReply {
    pub(crate) tag: Ref,
    pub(crate) result: Result<Pid, super::SpawnError>,
}

/// `start` as a [`StartFn`].
pub(crate) fn box_start<F, Fut>(start: F) -> StartFn
where
    F: Fn(Process, crate::term::Term) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: IntoExitReason,
{
    Arc::new(move |p, arg| {
        let body = start(p, arg);
        Box::pin(async move { body.await.into_exit_reason() })
    })
}

/// A start function that processes on other nodes may spawn by name (Erlang's `{M, F}` of
/// `spawn(Node, M, F, A)`): its process gets the spawner's argument.
pub type StartFn = Arc<
    dyn Fn(Process, crate::term::Term) -> std::pin::Pin<Box<dyn Future<Output = ExitReason> + Send>>
        + Send
        + Sync,
>;

/// Where a node hands the signals for other nodes' processes: the simulated switch of a
/// cluster (`sim::cluster`), later a transport. It must keep each pair's signals in order.
pub(crate) trait Carrier: Send + Sync {
    /// Carries `signal` from `from` (a process of the handing node) to `to` (another node's).
    fn carry(&self, from: Pid, to: Pid, signal: Signal);

    /// Whether node `from` is connected to node `to`, connecting them if it can (what
    /// `monitor_node` does first).
    fn connect(&self, from: u16, to: u16) -> bool;

    /// The node halted: close every connection, make no new ones.
    fn halt(&self) {}
}

impl Signal {
    /// What a signal that cannot reach another node's process answers its sender with, if
    /// anything: a link's `noconnection` exit, a monitor's `DOWN noconnection` (messages and
    /// the others are dropped).
    pub(crate) fn unreachable_answer(self) -> Option<Signal> {
        let reason = ExitReason::noconnection();
        match self {
            Signal::Link => Some(Signal::LinkExit(reason)),
            Signal::Monitor(mref) => Some(Signal::Down { mref, reason }),
            Signal::MonitorNamed(named) => Some(Signal::Down {
                mref: named.1,
                reason,
            }),
            Signal::Spawn(request) => Some(Signal::Message {
                payload: Box::new(SpawnReply {
                    tag: request.tag,
                    result: Err(super::SpawnError::NodeDown(0)),
                }),
                alias: Some(request.tag),
            }),
            _ => None,
        }
    }
}

pub(super) struct Delayed {
    from: Pid,
    to: Pid,
    signal: Signal,
    /// A timer's message ([`Process::send_after`]): outside the FIFO bookkeeping of its pair.
    timer: Option<Ref>,
}

/// Result of one step of a process task, decided under the node lock.
pub(super) enum Step {
    /// Poll the process's future.
    Run,
    /// The process must exit with this reason (its future is dropped).
    Exit(ExitReason),
    /// The node halted: drop the future without any exit processing.
    Halted,
}

impl Default for Node {
    fn default() -> Self {
        Node::new()
    }
}

impl Node {
    /// A node with production settings ([`NodeConfig::default`]). Must be called inside an
    /// executor ([`rt::block_on`] or a tokio runtime).
    pub fn new() -> Node {
        Node::with_config(NodeConfig::default())
    }

    /// A node with the given settings.
    pub fn with_config(config: NodeConfig) -> Node {
        let jitters = config.choices.may_jitter();
        let true_clock = rt::Clock::current();
        Node {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    base: crate::term::id_base(config.index, config.creation),
                    carrier: None,
                    node_monitors: Vec::new(),
                    node_subscribers: Vec::new(),
                    next_pid: 1,
                    next_ref: 1,
                    procs: ProcTable::default(),
                    alive: PidBits::default(),
                    names: BTreeMap::new(),
                    paths: BTreeMap::new(),
                    pending_labels: BTreeMap::new(),
                    trace: config.trace.then(Trace::default),
                    trace_ext: None,
                    choices: config.choices,
                    steps: 0,
                    step_budget: config.step_budget,
                    halted: None,
                    delayed: BTreeMap::new(),
                    timers: BTreeMap::new(),
                    in_flight: BTreeMap::new(),
                    delay_seq: 0,
                    postman_running: false,
                    dying: VecDeque::new(),
                    draining: false,
                    starts: BTreeMap::new(),
                    spawns: Vec::new(),
                    pending_spawns: Vec::new(),
                    told_down: BTreeSet::new(),
                    connected: BTreeSet::new(),
                }),
                outside: Pid(crate::term::id_base(config.index, config.creation)),
                clock: match &config.skew {
                    Some(skew) => true_clock.skewed(skew),
                    None => true_clock.clone(),
                },
                started: true_clock.mark(),
                true_clock,
                disk: config.disk.unwrap_or_default(),
                shared_steps: config.shared_steps,
                watchdog: config.watchdog.unwrap_or_default(),
                postman: Notify::new(),
                quiet_panics: config.quiet_panics,
                tracing: config.trace,
                jitters,
                machine: config.machine,
            }),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock can only come from a bug in this module; the state is still usable.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `task` on this node's machine.
    fn spawn_task(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        match &self.inner.machine {
            Some(machine) => machine.spawn(task),
            None => rt::spawn(task),
        }
    }

    pub(super) fn quiet_panics(&self) -> bool {
        self.inner.quiet_panics
    }

    /// Microseconds since the node started, in true time (the executor's, without the
    /// node's skew).
    pub fn elapsed_us(&self) -> u64 {
        self.inner.true_clock.since(self.inner.started).as_micros() as u64
    }

    /// The time stamp of a trace event: the clock is read only when tracing (reading it is
    /// a system call natively, and most of a production node's signals are never recorded).
    fn stamp(&self) -> u64 {
        if self.inner.tracing {
            self.elapsed_us()
        } else {
            0
        }
    }

    /// Spawns a process that is not linked to anything (its parent is the outside world).
    pub fn spawn<F, Fut>(&self, body: F) -> Pid
    where
        F: FnOnce(Process) -> Fut + Send + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: IntoExitReason,
    {
        self.spawn_with(None, SpawnTie::None, move |p| Ok(body(p)))
            .0
    }

    /// Spawns a process whose body is built at its first step; a body that returns
    /// `Err(reason)` instead of its future exits at once with `reason`.
    pub(super) fn spawn_with<F, Fut>(
        &self,
        parent: Option<Pid>,
        tie: SpawnTie,
        body: F,
    ) -> (Pid, Option<MonitorRef>)
    where
        F: FnOnce(Process) -> Result<Fut, ExitReason> + Send + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: IntoExitReason,
    {
        let (pid, mref) = {
            let mut st = self.lock();
            let pid = Pid(st.base | st.next_pid);
            st.next_pid += 1;
            st.procs.insert(pid, Box::new(Proc::new(parent)));
            st.alive.insert(pid);
            let mut mref = None;
            if let Some(parent) = parent {
                match tie {
                    SpawnTie::None => {}
                    SpawnTie::Link => {
                        st.proc(parent).links.add(pid);
                        st.proc(pid).links.add(parent);
                    }
                    SpawnTie::Monitor => {
                        let r = st.make_ref();
                        st.proc(parent).monitors.insert(r, pid);
                        st.proc(pid).watchers.insert(r, parent);
                        mref = Some(r);
                    }
                }
            }
            let at = self.stamp();
            st.record(at, || EventKind::Spawn { pid, parent, tie });
            internal_check!(
                st.consistent(pid) && parent.is_none_or(|q| st.consistent(q)),
                "process table after spawning {pid}"
            );
            (pid, mref)
        };
        self.spawn_task(ProcessTask::new(self.clone(), pid, body));
        (pid, mref)
    }

    /// Sends `value` to `to` from outside any process. Sending to a dead pid does nothing.
    pub fn send<T: Any + Send>(&self, to: Pid, value: T) {
        if to.node() != self.inner.outside.node() {
            crate::dist::note_type::<T>();
        }
        self.signal(
            self.inner.outside,
            to,
            Signal::Message {
                payload: Box::new(value),
                alias: None,
            },
        );
    }

    /// Hands this node's signals for other nodes to `carrier` (a cluster's switch).
    pub(crate) fn attach(&self, carrier: Arc<dyn Carrier>) {
        self.lock().carrier = Some(carrier);
    }

    /// A signal from another node's process arrives (from the carrier). A halted node takes
    /// nothing.
    pub(crate) fn arrive(&self, from: Pid, to: Pid, signal: Signal) {
        let mut st = self.lock();
        if st.halted.is_some() {
            return;
        }
        let at = self.stamp();
        st.deliver(at, from, to, signal);
        st.drain(self);
        let spawns = std::mem::take(&mut st.spawns);
        drop(st);
        for (requester, request) in spawns {
            self.spawn_requested(requester, request);
        }
    }

    /// Registers a start function that processes on other nodes may spawn by name
    /// ([`Process::spawn_on`](super::Process::spawn_on)); registering a name again replaces
    /// it.
    pub fn register_start<F, Fut>(&self, name: &str, start: F)
    where
        F: Fn(Process, crate::term::Term) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: IntoExitReason,
    {
        self.register_start_fn(name, box_start(start));
    }

    /// [`register_start`](Self::register_start) of a start function already boxed.
    pub(crate) fn register_start_fn(&self, name: &str, start: StartFn) {
        self.lock().starts.insert(name.to_string(), start);
    }

    /// Whether a start function is registered as `name` ([`register_start`](Self::register_start)).
    pub fn has_start(&self, name: &str) -> bool {
        self.lock().starts.contains_key(name)
    }

    /// The start function registered as `name`, if any.
    pub(super) fn start_fn(&self, name: &str) -> Option<StartFn> {
        self.lock().starts.get(name).cloned()
    }

    /// Carries out a spawn request of `requester` (a process of another node) and answers.
    fn spawn_requested(&self, requester: Pid, request: SpawnRequest) {
        let result = match self.start_fn(&request.start) {
            Some(start) => {
                let arg = request.arg;
                let pid = self.spawn(move |p| start(p, arg));
                if request.link {
                    let _ = self.link(pid, requester);
                }
                Ok(pid)
            }
            None => Err(super::SpawnError::NoSuchStart(request.start)),
        };
        let reply = SpawnReply {
            tag: request.tag,
            result,
        };
        let alias = Some(request.tag);
        let payload = Box::new(reply);
        self.signal(
            self.inner.outside,
            requester,
            Signal::Message { payload, alias },
        );
    }

    /// Sends a spawn request of `requester` to node `index`: its answer comes to the alias
    /// returned, and the node answers `NodeDown` itself if the connection goes down first.
    pub(super) fn request_spawn(
        &self,
        requester: Pid,
        index: u16,
        start: &str,
        arg: crate::term::Term,
        link: bool,
    ) -> Ref {
        let mut st = self.lock();
        let tag = st.make_ref();
        st.proc(requester).add_alias(tag);
        st.pending_spawns.push((tag, requester, index));
        let request = SpawnRequest {
            start: start.to_string(),
            arg,
            tag,
            link,
        };
        let far = Pid::new(index, 0, 0);
        st.send(self, requester, far, Signal::Spawn(Box::new(request)));
        tag
    }

    /// The end of a spawn request (its answer taken): its alias and its record go.
    pub(super) fn end_spawn(&self, requester: Pid, tag: Ref) {
        let mut st = self.lock();
        st.pending_spawns.retain(|(t, ..)| *t != tag);
        if let Some(p) = st.procs.get_mut(&requester) {
            p.remove_alias(tag);
        }
    }

    /// The connection to node `index` went down (see `State::connection_lost`).
    pub(crate) fn connection_lost(&self, index: u16, reason: NodeDownReason) {
        let mut st = self.lock();
        if st.halted.is_none() {
            st.connection_lost(self, index, reason);
        }
    }

    /// A connection to node `index` could not be made: its `monitor_node` monitors hear
    /// `nodedown` (its subscribers hear nothing: it never came up).
    #[cfg_attr(not(feature = "tcp"), allow(dead_code))]
    pub(crate) fn connection_failed(&self, index: u16) {
        let mut st = self.lock();
        if st.halted.is_none() {
            let at = self.stamp();
            st.fire_node_monitors(at, index);
        }
    }

    /// The connection to node `index` is going down: its `nodedown` is told now, before
    /// signals of that node that are still arriving, and the coming
    /// [`connection_lost`](Self::connection_lost) does not tell it again. (Erlang does not
    /// order `nodedown` with the node's other signals: `erlang:monitor_node/2`.)
    pub(crate) fn nodedown_first(&self, index: u16, reason: NodeDownReason) {
        let mut st = self.lock();
        if st.halted.is_none() && st.told_down.insert(index) {
            let at = self.stamp();
            st.tell_nodedown(at, index, reason);
        }
    }

    /// The node's trace so far, one line per event (empty unless it was made with
    /// [`NodeConfig::trace`]): what a production node did, for a log.
    pub fn trace_lines(&self) -> Vec<String> {
        self.lock()
            .trace
            .as_ref()
            .map(Trace::lines)
            .unwrap_or_default()
    }

    /// A signal for another node could not be sent (`why`); recorded in the trace.
    pub(crate) fn undeliverable(&self, from: Pid, to: Pid, why: String) {
        self.record(EventKind::Undeliverable { from, to, why });
    }

    /// A handle that does not keep the node alive (for a transport the node holds).
    #[cfg_attr(not(feature = "tcp"), allow(dead_code))]
    pub(crate) fn downgrade(&self) -> WeakNode {
        WeakNode(Arc::downgrade(&self.inner))
    }

    /// This node's index in its cluster and its creation.
    #[cfg_attr(not(feature = "tcp"), allow(dead_code))]
    pub(crate) fn identity(&self) -> (u16, u16) {
        let own = Pid(self.lock().base);
        (own.node(), own.creation())
    }

    /// The nodes this node is connected to, in order (Erlang's `nodes()`).
    pub fn nodes(&self) -> Vec<u16> {
        self.lock().connected.iter().copied().collect()
    }

    /// A connection to node `index` came up: the subscribers hear `nodeup`.
    pub(crate) fn connection_up(&self, index: u16) {
        let mut st = self.lock();
        if st.halted.is_none() {
            let at = self.stamp();
            st.tell_subscribers(at, index, None);
        }
    }

    /// See [`Process::connect_node`](super::Process::connect_node).
    pub(super) fn connect_node(&self, index: u16) -> bool {
        let st = self.lock();
        let own = Pid(st.base).node();
        index == own || st.carrier.as_ref().is_some_and(|c| c.connect(own, index))
    }

    /// See [`Process::monitor_node`](super::Process::monitor_node).
    pub(super) fn monitor_node(&self, watcher: Pid, index: u16, on: bool) {
        let mut st = self.lock();
        if !on {
            if let Some(i) = st.node_monitors.iter().position(|m| *m == (index, watcher)) {
                st.node_monitors.remove(i);
            }
            return;
        }
        let own = Pid(st.base).node();
        let reachable = index == own || st.carrier.as_ref().is_some_and(|c| c.connect(own, index));
        if reachable {
            st.node_monitors.push((index, watcher));
        } else {
            let at = self.stamp();
            let msg = Msg::NodeDown {
                node: index,
                reason: None,
            };
            st.tell(at, watcher, msg);
        }
    }

    /// See [`Process::send_named`](super::Process::send_named).
    pub(super) fn send_named(
        &self,
        from: Pid,
        name: &str,
        index: u16,
        payload: Box<dyn Any + Send>,
    ) {
        let mut st = self.lock();
        // Node `index`'s address: its serial 0, whatever its creation.
        let to = Pid::new(index, 0, 0);
        let named = Box::new((name.to_string(), payload));
        st.send(self, from, to, Signal::Named(named));
    }

    /// A monitor of `name` on node `index` (see
    /// [`Process::monitor_name`](super::Process::monitor_name)).
    pub(super) fn monitor_name(&self, watcher: Pid, name: &str, index: u16) -> MonitorRef {
        self.lock().monitor_name(self, watcher, name, index)
    }

    /// Like [`request`](Self::request), to whoever node `index` has registered as `name`
    /// (`gen:call({Name, Node}, ...)`): a monitor of the name, then the message to it.
    pub(super) fn request_named(
        &self,
        from: Pid,
        name: &str,
        index: u16,
        make: impl FnOnce(Ref) -> Box<dyn Any + Send>,
    ) -> (MonitorRef, Ref) {
        let mut st = self.lock();
        let mref = st.monitor_name(self, from, name, index);
        let alias = st.make_ref();
        st.proc(from).add_alias(alias);
        let named = Box::new((name.to_string(), make(alias)));
        st.send(self, from, Pid::new(index, 0, 0), Signal::Named(named));
        (mref, alias)
    }

    /// See [`Process::monitor_nodes`](super::Process::monitor_nodes).
    pub(super) fn monitor_nodes(&self, watcher: Pid, on: bool) {
        let mut st = self.lock();
        st.node_subscribers.retain(|p| *p != watcher);
        if on {
            st.node_subscribers.push(watcher);
        }
    }

    /// Sends the exit signal `reason` to `to` from outside any process (`exit(Pid, Reason)`).
    pub fn exit(&self, to: Pid, reason: ExitReason) {
        self.signal(self.inner.outside, to, Signal::Exit(reason));
    }

    /// Whether `pid` is alive (spawned and not yet exited).
    pub fn is_alive(&self, pid: Pid) -> bool {
        self.lock().alive.contains(pid)
    }

    /// The live processes, in pid order.
    pub fn processes(&self) -> Vec<Pid> {
        let mut pids: Vec<Pid> = self.lock().procs.keys().copied().collect();
        pids.sort_unstable();
        pids
    }

    /// The live processes that descend from `root` through a chain of live parents (the
    /// processes it spawned, those they spawned, ...), `root` excluded, in pid order.
    pub(crate) fn descendants(&self, root: Pid) -> Vec<Pid> {
        let mut later: Vec<(Pid, Option<Pid>)> = {
            let st = self.lock();
            let procs = st.procs.iter();
            procs
                .filter(|(pid, _)| **pid > root)
                .map(|(pid, p)| (*pid, p.parent))
                .collect()
        };
        // A parent's pid is smaller than its child's, so one pass in pid order suffices.
        later.sort_unstable();
        let mut inside = BTreeSet::from([root]);
        for (pid, parent) in later {
            if parent.is_some_and(|parent| inside.contains(&parent)) {
                inside.insert(pid);
            }
        }
        inside.remove(&root);
        inside.into_iter().collect()
    }

    /// Every live process of the node, in pid order.
    #[cfg(feature = "harness")]
    pub(crate) fn live_pids(&self) -> Vec<Pid> {
        let mut pids: Vec<Pid> = self.lock().procs.keys().copied().collect();
        pids.sort_unstable();
        pids
    }

    #[cfg(feature = "harness")]
    /// Whether a process other than `pid`'s parent and children monitors it or is linked to
    /// it: whether its death is someone's business besides its supervisor's.
    pub(crate) fn is_watched(&self, pid: Pid) -> bool {
        let st = self.lock();
        let Some(p) = st.procs.get(&pid) else {
            return false;
        };
        let outsider = |other: Pid| {
            Some(other) != p.parent && st.procs.get(&other).is_none_or(|o| o.parent != Some(pid))
        };
        p.watchers.iter().any(|(_, w)| outsider(w)) || p.links.keys().any(outsider)
    }

    #[cfg(feature = "harness")]
    /// Whether `pid` is alive and runs a generic server loop (a GenServer or a supervisor,
    /// which understand [`server::stop`](crate::server::stop)).
    pub(crate) fn is_server(&self, pid: Pid) -> bool {
        self.lock().procs.get(&pid).is_some_and(|p| p.gen)
    }

    #[cfg(feature = "harness")]
    /// The process that spawned `pid`, while `pid` is alive.
    pub(crate) fn parent_of(&self, pid: Pid) -> Option<Pid> {
        self.lock().procs.get(&pid).and_then(|p| p.parent)
    }

    #[cfg(feature = "harness")]
    /// The live process labelled `path` (labels are kept only while tracing).
    pub(crate) fn find_path(&self, path: &str) -> Option<Pid> {
        let st = self.lock();
        st.paths
            .iter()
            .find(|(_, p)| *p == path)
            .map(|(pid, _)| *pid)
    }

    /// Makes `pid` exit with `reason` at once, as if it had crashed by itself, and records the
    /// injected fault (`fault` is its description). Does nothing to a dead process.
    pub(crate) fn inject_exit(&self, pid: Pid, reason: ExitReason, fault: FaultKind) {
        let at = self.stamp();
        let mut st = self.lock();
        let Some(p) = st.procs.get_mut(&pid) else {
            return;
        };
        p.doom(reason);
        st.record(at, || EventKind::Fault { pid, fault });
        if !self.is_running_here(pid) {
            st.dying.push_back(pid);
            st.drain(self);
        }
    }

    /// The pid registered under `name`.
    pub fn whereis(&self, name: &str) -> Option<Pid> {
        self.lock().names.get(name).copied()
    }

    /// Waits until `pid` exits and returns its reason: `Some(noproc)` if it is not alive now,
    /// `None` if the node halted first.
    pub async fn wait_exit(&self, pid: Pid) -> Option<ExitReason> {
        let rx = {
            let mut st = self.lock();
            if st.halted.is_some() {
                return None;
            }
            let Some(p) = st.procs.get_mut(&pid) else {
                return Some(ExitReason::Noproc);
            };
            let (tx, rx) = oneshot::channel();
            p.rare().exit_waiters.push(tx);
            rx
        };
        rx.await.ok().flatten()
    }

    /// Stops every process at its next step, without exit processing (used to end a run).
    pub fn halt(&self) {
        let carrier = {
            let mut st = self.lock();
            st.halt(Halt::Requested);
            st.carrier.clone()
        };
        self.inner.postman.notify_one();
        // Outside the lock: a transport closes its connections.
        if let Some(carrier) = carrier {
            carrier.halt();
        }
    }

    /// Why the node halted, if it did.
    pub fn halted(&self) -> Option<Halt> {
        self.lock().halted.clone()
    }

    /// A copy of the trace so far (empty when tracing is off).
    pub(crate) fn trace(&self) -> Trace {
        self.lock().trace.clone().unwrap_or_default()
    }

    #[cfg(feature = "harness")]
    /// Runs `f` on the trace so far, without copying it (the node is locked meanwhile: `f`
    /// must not use the node).
    pub(crate) fn with_trace<R>(&self, f: impl FnOnce(&Trace) -> R) -> R {
        let st = self.lock();
        match &st.trace {
            Some(trace) => f(trace),
            None => f(&Trace::default()),
        }
    }

    /// Runs `f` on the trace so far and on a value of type `T` kept with it for the node's
    /// life (made with `T::default()` on first use; a use with another type starts afresh).
    /// Upper layers keep an index of the trace there that they bring up to date as events
    /// come, instead of reading the whole trace at every question. The node is locked
    /// meanwhile: `f` must not use the node.
    pub(crate) fn with_trace_and<T: Default + Send + 'static, R>(
        &self,
        f: impl FnOnce(&Trace, &mut T) -> R,
    ) -> R {
        let mut st = self.lock();
        let st = &mut *st;
        if !st.trace_ext.as_ref().is_some_and(|ext| ext.is::<T>()) {
            st.trace_ext = Some(Box::new(T::default()));
        }
        let ext = st
            .trace_ext
            .as_mut()
            .and_then(|ext| ext.downcast_mut::<T>())
            .expect("made above");
        match &st.trace {
            Some(trace) => f(trace, ext),
            None => f(&Trace::default(), ext),
        }
    }

    /// Takes the trace out of the node, ending it: later events are not recorded (what a
    /// finished run does instead of copying its trace).
    pub(crate) fn take_trace(&self) -> Trace {
        let mut st = self.lock();
        st.trace_ext = None;
        st.trace.take().unwrap_or_default()
    }

    /// Records an event (when tracing is on).
    pub(crate) fn record(&self, kind: EventKind) {
        let at = self.stamp();
        self.lock().record(at, || kind);
    }

    /// Records the event `kind()` builds, building it only when tracing is on.
    pub(crate) fn record_with(&self, kind: impl FnOnce() -> EventKind) {
        if self.inner.tracing {
            self.record(kind());
        }
    }

    fn id(&self) -> usize {
        Arc::as_ptr(&self.inner) as usize
    }

    /// Whether `pid` is the process being polled on this thread.
    pub(super) fn is_running_here(&self, pid: Pid) -> bool {
        RUNNING.with(|r| r.get() == (self.id(), pid.0))
    }

    /// Runs `f` (one step of `pid`) with `pid` marked as running on this thread.
    pub(super) fn run_as<R>(&self, pid: Pid, f: impl FnOnce() -> R) -> R {
        let previous = RUNNING.with(|r| r.replace((self.id(), pid.0)));
        let out = f();
        RUNNING.with(|r| r.set(previous));
        out
    }

    /// Whether this node records a trace.
    pub(crate) fn tracing(&self) -> bool {
        self.inner.tracing
    }

    /// Names `pid` by its tree path in the trace from now on (a no-op when not tracing), and
    /// the children [named relative to it](Node::label_child) before it had a path.
    pub(crate) fn label(&self, pid: Pid, path: impl Into<String>, supervisor: bool) {
        if !self.inner.tracing {
            return;
        }
        let at = self.stamp();
        let mut st = self.lock();
        let mut queue = VecDeque::from([(pid, path.into(), supervisor)]);
        while let Some((pid, path, supervisor)) = queue.pop_front() {
            if st.procs.contains_key(&pid) {
                st.paths.insert(pid, path.clone());
            }
            for (child, id, sup) in st.pending_labels.remove(&pid).unwrap_or_default() {
                if st.procs.contains_key(&child) && !st.paths.contains_key(&child) {
                    queue.push_back((child, format!("{path}/{id}"), sup));
                }
            }
            st.record(at, || EventKind::Label {
                pid,
                path,
                supervisor,
            });
        }
    }

    /// Names `child` `<parent's path>/<id>` in the trace: now if `parent` has a path, or as
    /// soon as it gets one (a nested supervisor learns its own path only when its parent
    /// records its start, after it started its children).
    pub(crate) fn label_child(&self, parent: Pid, child: Pid, id: &str, supervisor: bool) {
        if !self.inner.tracing {
            return;
        }
        let path = self.path_of(parent);
        match path {
            Some(path) => self.label(child, format!("{path}/{id}"), supervisor),
            None => {
                let mut st = self.lock();
                if st.procs.contains_key(&parent) {
                    let pending = st.pending_labels.entry(parent).or_default();
                    pending.push((child, id.to_string(), supervisor));
                }
            }
        }
    }

    /// The tree path of a live labelled process (labels are kept only while tracing).
    pub(crate) fn path_of(&self, pid: Pid) -> Option<String> {
        self.lock().paths.get(&pid).cloned()
    }

    pub(super) fn make_ref(&self) -> Ref {
        self.lock().make_ref()
    }

    /// Decides what the task of `pid` does at this step, and stores its waker.
    pub(super) fn begin_step(&self, pid: Pid, waker: &Waker) -> Step {
        let mut st = self.lock();
        if st.halted.is_none() && self.inner.watchdog.load(Ordering::Relaxed) {
            st.halt(Halt::WallClock);
        }
        if st.halted.is_some() {
            return Step::Halted;
        }
        st.steps += 1;
        let steps = match &self.inner.shared_steps {
            Some(shared) => shared.fetch_add(1, Ordering::Relaxed) + 1,
            None => st.steps,
        };
        if let Some(budget) = st.step_budget.filter(|b| steps > *b) {
            let (pid, steps) = st
                .procs
                .iter()
                .map(|(p, s)| (*p, s.steps))
                .max_by_key(|(p, s)| (*s, std::cmp::Reverse(*p)))
                .unwrap_or((pid, 0));
            let name = st.name_of(pid);
            st.halt(Halt::StepBudget {
                pid,
                name,
                steps,
                budget,
            });
            drop(st);
            self.inner.postman.notify_one();
            return Step::Halted;
        }
        let Some(p) = st.procs.get_mut(&pid) else {
            return Step::Halted;
        };
        p.steps += 1;
        p.taken_this_step = 0;
        if let Some(reason) = p.pending_exit.take() {
            return Step::Exit(reason);
        }
        if !p.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            p.waker = Some(waker.clone());
        }
        Step::Run
    }

    /// The exit of `pid` with `reason`: exit signals to its links, `DOWN` to its monitors,
    /// its name released.
    pub(super) fn finish(&self, pid: Pid, reason: ExitReason) {
        let mut st = self.lock();
        st.finish(self, pid, reason);
        st.drain(self);
    }

    /// Sends a signal from `from` (serial 0: outside) to `to`.
    pub(super) fn signal(&self, from: Pid, to: Pid, signal: Signal) {
        self.lock().send(self, from, to, signal);
    }

    /// Runs `f` on the state of the live process `pid` (`None` if it is not alive).
    pub(super) fn with_proc<R>(&self, pid: Pid, f: impl FnOnce(&mut Proc) -> R) -> Option<R> {
        self.lock().procs.get_mut(&pid).map(|p| f(p))
    }

    /// Takes the first message of `pid`'s mailbox that `pred` accepts; consults the crash
    /// choice point for every message taken. With `end`, a message taken ends that request
    /// (see [`end_wait`](Node::end_wait)) under the same lock.
    ///
    /// A waiting receive (`may_yield`) that has taken [`REDUCTIONS`] messages in this step
    /// yields instead, so a process that always has mail cannot starve the others (the BEAM
    /// preempts on reductions the same way).
    ///
    /// `pred` is user code: it runs outside the node's lock (it may use the node, and a panic
    /// in it ends the process, not the node). The mailbox is taken out for the scan; what
    /// arrives meanwhile is appended after it.
    pub(super) fn take_message(
        &self,
        pid: Pid,
        pred: &mut dyn FnMut(&Msg) -> bool,
        waker: &Waker,
        may_yield: bool,
        end: Option<Wait>,
        runs: super::Accept,
    ) -> Option<Msg> {
        let mut mailbox = {
            let mut st = self.lock();
            let p = st.procs.get_mut(&pid)?;
            if p.pending_exit.is_some() {
                return None;
            }
            if !p.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
                p.waker = Some(waker.clone());
            }
            if may_yield && p.taken_this_step >= REDUCTIONS {
                waker.wake_by_ref();
                return None;
            }
            if p.mailbox.is_empty() {
                return None;
            }
            if runs == super::Accept::Runtime {
                // The runtime's own predicate only looks at the message: under the lock.
                let index = p.mailbox.iter().position(pred)?;
                let (msg, step) = p.take_at(index)?;
                return st.taken(self, pid, msg, step, end);
            }
            std::mem::take(&mut p.mailbox)
        };
        let index = mailbox.iter().position(pred);
        let mut st = self.lock();
        let p = st.procs.get_mut(&pid)?;
        mailbox.append(&mut p.mailbox);
        p.mailbox = mailbox;
        if p.pending_exit.is_some() {
            return None;
        }
        let (msg, step) = p.take_at(index?)?;
        st.taken(self, pid, msg, step, end)
    }

    /// Unlinks `from` from `to` and takes an `EXIT` of `to` already in `from`'s mailbox,
    /// under one lock (a supervisor's `unlink(Pid), receive {'EXIT', Pid, _} after 0`).
    pub(super) fn unlink_taking_exit(&self, from: Pid, to: Pid) -> Option<ExitReason> {
        let mut st = self.lock();
        st.unlink(self, from, to);
        if st.procs.get(&from).is_none_or(|p| p.exits_queued == 0) {
            return None;
        }
        let exit_of_to = &mut |m: &Msg| matches!(m, Msg::Exit { from, .. } if *from == to);
        match st.take(self, from, exit_of_to, None)? {
            Msg::Exit { reason, .. } => Some(reason),
            _ => unreachable!("only an EXIT is accepted"),
        }
    }

    /// The run enters its `step`-th step (see [`Choices::enter_step`]).
    #[cfg(feature = "harness")]
    pub(crate) fn enter_step(&self, step: u32) {
        self.lock().choices.enter_step(step);
    }

    pub(super) fn timer_jitter(&self, pid: Pid, duration: Duration) -> Duration {
        if !self.inner.jitters {
            return Duration::ZERO;
        }
        self.lock().choices.timer_jitter(pid, duration)
    }

    /// Sends `payload` from `from` to `to` after `delay` (a timer: see
    /// [`Process::send_after`]).
    pub(super) fn send_after(
        &self,
        from: Pid,
        to: Pid,
        delay: Duration,
        payload: Box<dyn Any + Send>,
    ) -> Ref {
        let delay = delay + self.timer_jitter(from, delay);
        let mut st = self.lock();
        let timer = st.make_ref();
        let due = self.inner.clock.now() + delay;
        st.delay_seq += 1;
        let key = (due, st.delay_seq);
        let signal = Signal::Message {
            payload,
            alias: None,
        };
        let timer_ref = Some(timer);
        st.delayed.insert(
            key,
            Delayed {
                from,
                to,
                signal,
                timer: timer_ref,
            },
        );
        st.timers.insert(timer, key);
        st.wake_postman(self);
        timer
    }

    /// Cancels a timer; whether its message had not been sent yet.
    pub(super) fn cancel_timer(&self, timer: Ref) -> bool {
        let mut st = self.lock();
        match st.timers.remove(&timer) {
            Some(key) => st.delayed.remove(&key).is_some(),
            None => false,
        }
    }

    /// The executor's clock, as this node reads it.
    /// The node's disk: what its processes write there outlives this incarnation when the
    /// node was given a disk of its host's (as a simulated cluster does).
    pub fn disk(&self) -> &super::Disk {
        &self.inner.disk
    }

    pub(super) fn clock(&self) -> &rt::Clock {
        &self.inner.clock
    }

    /// Creates a link between two processes; `Err(())` if `to` is not alive.
    pub(super) fn link(&self, from: Pid, to: Pid) -> Result<(), ()> {
        let mut st = self.lock();
        if from == to {
            return Ok(());
        }
        if st.elsewhere(to) {
            // Another node's process: the near half now, the far half by signal; a dead or
            // unreachable target answers with an exit signal (`noproc`, `noconnection`).
            if st.proc(from).links.add(to) {
                let at = self.stamp();
                st.record(at, || EventKind::Link { from, to });
                st.send(self, from, to, Signal::Link);
            }
            return Ok(());
        }
        if !st.procs.contains_key(&to) {
            return Err(());
        }
        if st.proc(from).links.add(to) {
            st.proc(to).links.add(from);
            let at = self.stamp();
            st.record(at, || EventKind::Link { from, to });
        }
        internal_check!(
            st.consistent(from) && st.consistent(to),
            "process table after linking {from} and {to}"
        );
        Ok(())
    }

    pub(super) fn unlink(&self, from: Pid, to: Pid) {
        self.lock().unlink(self, from, to);
    }

    pub(super) fn monitor(&self, watcher: Pid, target: Pid) -> MonitorRef {
        self.lock().monitor(self, watcher, target)
    }

    /// A request in one step (a call's bookkeeping under one lock): `from` monitors `to`,
    /// activates an alias, and sends `to` the message `make` builds with the alias.
    pub(super) fn request(
        &self,
        from: Pid,
        to: Pid,
        make: impl FnOnce(Ref) -> Box<dyn Any + Send>,
    ) -> (MonitorRef, Ref) {
        let mut st = self.lock();
        let mref = st.monitor(self, from, to);
        let alias = st.make_ref();
        st.proc(from).add_alias(alias);
        let payload = make(alias);
        st.send(
            self,
            from,
            to,
            Signal::Message {
                payload,
                alias: None,
            },
        );
        (mref, alias)
    }

    /// The end of a [`Wait`]: its alias deactivated, its monitor removed with any `DOWN`
    /// of it.
    pub(super) fn end_wait(&self, from: Pid, wait: Wait) {
        self.lock().end_wait(self, from, wait);
    }

    /// Removes a monitor; `true` if it was active. With `flush`, a `DOWN` for it already in
    /// the mailbox is removed too.
    pub(super) fn demonitor(&self, watcher: Pid, mref: MonitorRef, flush: bool) -> bool {
        self.lock().demonitor(self, watcher, mref, flush)
    }

    pub(super) fn register(&self, name: &str, pid: Pid) -> Result<(), super::RegisterError> {
        use super::RegisterError;
        let mut st = self.lock();
        if let Some(owner) = st.names.get(name) {
            return Err(RegisterError::Taken(*owner));
        }
        let Some(p) = st.procs.get_mut(&pid) else {
            return Err(RegisterError::Noproc);
        };
        if let Some(existing) = p.name() {
            return Err(RegisterError::AlreadyNamed(existing.clone()));
        }
        p.rare().name = Some(name.to_string());
        st.names.insert(name.to_string(), pid);
        let at = self.stamp();
        let name = name.to_string();
        st.record(at, || EventKind::Register { name, pid });
        Ok(())
    }

    pub(super) fn unregister(&self, name: &str) -> bool {
        let mut st = self.lock();
        let Some(pid) = st.names.remove(name) else {
            return false;
        };
        if let Some(rare) = st.procs.get_mut(&pid).and_then(|p| p.rare.as_mut()) {
            rare.name = None;
        }
        let at = self.stamp();
        let name = name.to_string();
        st.record(at, || EventKind::Unregister { name, pid });
        true
    }

    /// Delivers the due delayed signals; runs as its own task while signals are in flight.
    async fn postman(self) {
        loop {
            let next = {
                let mut st = self.lock();
                if st.halted.is_some() {
                    st.postman_running = false;
                    return;
                }
                let now = self.inner.clock.now();
                while let Some(entry) = st.delayed.first_entry() {
                    if entry.key().0 > now {
                        break;
                    }
                    let d = entry.remove();
                    let pair = (d.from, d.to);
                    if let Some(timer) = d.timer {
                        st.timers.remove(&timer);
                    } else if let Some(f) = st.in_flight.get_mut(&pair) {
                        f.1 -= 1;
                        if f.1 == 0 {
                            st.in_flight.remove(&pair);
                        }
                    }
                    st.deliver(self.stamp(), d.from, d.to, d.signal);
                    st.drain(&self);
                }
                match st.delayed.first_key_value() {
                    Some(((at, _), _)) => *at,
                    None => {
                        st.postman_running = false;
                        return;
                    }
                }
            };
            let clock = &self.inner.clock;
            clock.sleep_until_notified(next, &self.inner.postman).await;
        }
    }
}

impl State {
    /// Takes the first message of `pid`'s mailbox that `pred` accepts, under the lock: for
    /// the runtime's own predicates only (user predicates run outside the lock, see
    /// [`Node::take_message`]).
    fn take(
        &mut self,
        node: &Node,
        pid: Pid,
        pred: &mut dyn FnMut(&Msg) -> bool,
        end: Option<Wait>,
    ) -> Option<Msg> {
        let p = self.procs.get_mut(&pid)?;
        if p.pending_exit.is_some() {
            return None;
        }
        let index = p.mailbox.iter().position(pred)?;
        let (msg, step) = p.take_at(index)?;
        self.taken(node, pid, msg, step, end)
    }

    /// `pid` took `msg`, its `step`-th: the crash choice point, and the end of the wait
    /// `end` (if any), under the same lock.
    fn taken(
        &mut self,
        node: &Node,
        pid: Pid,
        msg: Msg,
        step: u64,
        end: Option<Wait>,
    ) -> Option<Msg> {
        if self.choices.crash_at(pid, step) {
            let at = node.stamp();
            self.record(at, || EventKind::Fault {
                pid,
                fault: FaultKind::CrashAtMessage(step),
            });
            self.proc(pid).doom(ExitReason::error("injected_crash"));
            return None;
        }
        if let Some(wait) = end {
            self.end_wait(node, pid, wait);
        }
        Some(msg)
    }

    /// See [`Node::unlink`].
    fn unlink(&mut self, node: &Node, from: Pid, to: Pid) {
        let removed = self.procs.get_mut(&from).is_some_and(|p| p.links.take(&to));
        if removed {
            if let Some(t) = self.procs.get_mut(&to) {
                t.links.take(&from);
            }
            let at = node.stamp();
            self.record(at, || EventKind::Unlink { from, to });
            if self.elsewhere(to) {
                self.send(node, from, to, Signal::Unlink);
            }
        }
    }

    /// See [`Node::end_wait`].
    fn end_wait(&mut self, node: &Node, from: Pid, Wait { monitor, alias }: Wait) {
        if let (Some(p), Some(alias)) = (self.procs.get_mut(&from), alias) {
            p.remove_alias(alias);
        }
        self.demonitor(node, from, monitor, true);
    }

    /// This node's address (its serial 0, which no process has).
    fn nobody(&self) -> Pid {
        let own = Pid(self.base);
        Pid::new(own.node(), own.creation(), 0)
    }

    /// A monitor of `{name, index}`: of a local name, the monitor of its owner now (`noproc`
    /// if nobody has it); of another node's, resolved there on arrival.
    fn monitor_name(&mut self, node: &Node, watcher: Pid, name: &str, index: u16) -> MonitorRef {
        if index == Pid(self.base).node() {
            return match self.names.get(name) {
                Some(&owner) => self.monitor(node, watcher, owner),
                // Nobody: an immediate DOWN with `noproc`, from a process no one has.
                None => self.monitor(node, watcher, self.nobody()),
            };
        }
        let mref = self.make_ref();
        // The far node's address stands for the owner until a DOWN names it.
        let there = Pid::new(index, 0, 0);
        self.proc(watcher).monitors.insert(mref, there);
        let named = Box::new((name.to_string(), mref));
        self.send(node, watcher, there, Signal::MonitorNamed(named));
        mref
    }

    fn monitor(&mut self, node: &Node, watcher: Pid, target: Pid) -> MonitorRef {
        let mref = self.make_ref();
        let at = node.stamp();
        self.record(at, || EventKind::Monitor { watcher, target });
        if self.elsewhere(target) {
            self.proc(watcher).monitors.insert(mref, target);
            self.send(node, watcher, target, Signal::Monitor(mref));
            return mref;
        }
        match self.procs.get_mut(&target) {
            Some(t) => {
                t.watchers.insert(mref, watcher);
                self.proc(watcher).monitors.insert(mref, target);
                internal_check!(
                    self.consistent(watcher) && self.consistent(target),
                    "process table after {watcher} monitored {target}"
                );
            }
            None => {
                // Monitoring a dead process yields an immediate DOWN with `noproc`.
                self.record(at, || EventKind::Down {
                    watcher,
                    target,
                    reason: ExitReason::Noproc.to_term(),
                });
                self.proc(watcher).push(Msg::Down {
                    mref,
                    pid: target,
                    reason: ExitReason::Noproc,
                });
            }
        }
        mref
    }

    /// Removes a monitor; `true` if it was active. With `flush`, a `DOWN` for it already in
    /// the mailbox is removed too.
    fn demonitor(&mut self, node: &Node, watcher: Pid, mref: MonitorRef, flush: bool) -> bool {
        let Some(p) = self.procs.get_mut(&watcher) else {
            return false;
        };
        if flush {
            p.mailbox
                .retain(|m| !matches!(m, Msg::Down { mref: r, .. } if *r == mref));
        }
        let Some(target) = p.monitors.remove(&mref) else {
            return false;
        };
        if let Some(t) = self.procs.get_mut(&target) {
            t.watchers.remove(&mref);
        } else if self.elsewhere(target) {
            self.send(node, watcher, target, Signal::Demonitor(mref));
        }
        let at = node.stamp();
        self.record(at, || EventKind::Demonitor { watcher, target });
        true
    }

    /// The process table agrees with itself about `pid`: its liveness bit says what the
    /// table says, and, alive, its links and monitors are known at their other end (while
    /// that end lives). Checked after spawns, links, monitors and exits in debug builds.
    fn consistent(&self, pid: Pid) -> bool {
        let Some(p) = self.procs.get(&pid) else {
            return !self.alive.contains(pid);
        };
        let links = p.links.keys().all(|other| {
            self.procs
                .get(&other)
                .is_none_or(|o| o.links.contains_key(&pid))
        });
        let monitors = p.monitors.iter().all(|(mref, target)| {
            self.procs
                .get(&target)
                .is_none_or(|t| t.watchers.iter().any(|(r, w)| r == mref && w == pid))
        });
        let watchers = p.watchers.iter().all(|(mref, watcher)| {
            self.procs
                .get(&watcher)
                .is_none_or(|w| w.monitors.iter().any(|(r, t)| r == mref && t == pid))
        });
        let exits = p
            .mailbox
            .iter()
            .filter(|m| matches!(m, Msg::Exit { .. }))
            .count();
        self.alive.contains(pid)
            && links
            && monitors
            && watchers
            && exits == p.exits_queued as usize
    }

    fn proc(&mut self, pid: Pid) -> &mut Proc {
        self.procs
            .get_mut(&pid)
            .expect("the calling process is alive while it runs")
    }

    fn make_ref(&mut self) -> Ref {
        let r = Ref(self.base | self.next_ref);
        self.next_ref += 1;
        r
    }

    fn record(&mut self, at_us: u64, kind: impl FnOnce() -> EventKind) {
        if let Some(trace) = &mut self.trace {
            trace.push(at_us, kind());
        }
    }

    fn name_of(&self, pid: Pid) -> String {
        let mut name = pid.to_string();
        if let Some(trace) = &self.trace {
            for e in trace.events() {
                if let EventKind::Label { pid: p, path, .. } = &e.kind {
                    if *p == pid {
                        name = path.clone();
                    }
                }
            }
        }
        name
    }

    fn halt(&mut self, why: Halt) {
        if self.halted.is_some() {
            return;
        }
        self.halted = Some(why);
        for p in self.procs.values_mut() {
            p.wake();
            for w in p.rare.iter_mut().flat_map(|r| r.exit_waiters.drain(..)) {
                let _ = w.send(None);
            }
        }
    }

    /// The exit of `pid`: exit signals to its links, `DOWN` to its monitors, its name
    /// released; a pending exit's reason wins over `reason`.
    fn finish(&mut self, node: &Node, pid: Pid, reason: ExitReason) {
        let Some(mut p) = self.procs.remove(&pid) else {
            return;
        };
        self.alive.remove(pid);
        internal_check!(self.consistent(pid), "process table after {pid} exited");
        let p_waker = p.waker.take();
        // An exit signal that arrived during the process's last step (e.g. its own
        // `exit(self(), kill)`) took effect before the body returned.
        let reason = p.pending_exit.take().unwrap_or(reason);
        self.paths.remove(&pid);
        self.pending_labels.remove(&pid);
        let at = node.stamp();
        self.record(at, || EventKind::Exit {
            pid,
            reason: reason.to_term(),
        });
        let rare = p.rare.map(|r| *r).unwrap_or_default();
        if let Some(name) = rare.name {
            self.names.remove(&name);
            self.record(at, || EventKind::Unregister { name, pid });
        }
        for (mref, target) in p.monitors.iter() {
            if let Some(t) = self.procs.get_mut(&target) {
                t.watchers.remove(&mref);
            } else if self.elsewhere(target) {
                self.send(node, pid, target, Signal::Demonitor(mref));
            }
        }
        for to in p.links.keys() {
            self.send(node, pid, to, Signal::LinkExit(reason.clone()));
        }
        for (mref, watcher) in p.watchers.iter() {
            let reason = reason.clone();
            self.send(node, pid, watcher, Signal::Down { mref, reason });
        }
        if !self.node_monitors.is_empty() || !self.node_subscribers.is_empty() {
            self.node_monitors.retain(|(_, w)| *w != pid);
            self.node_subscribers.retain(|w| *w != pid);
        }
        for waiter in rare.exit_waiters {
            let _ = waiter.send(Some(reason.clone()));
        }
        // A process finished by another's signal is not running: wake its task so that it
        // drops its body.
        if let Some(waker) = p_waker {
            waker.wake();
        }
    }

    /// Finishes the processes that exit signals have doomed, at once: they never run again,
    /// so they are dead (as `is_process_alive` sees it on the BEAM) the moment the signal
    /// arrives. The process that is running on this thread is left to exit at its next step.
    /// A queue, not recursion, so that long chains of links cannot overflow the stack.
    fn drain(&mut self, node: &Node) {
        if self.draining {
            return;
        }
        self.draining = true;
        while let Some(pid) = self.dying.pop_front() {
            if !node.is_running_here(pid) {
                self.finish(node, pid, ExitReason::Killed);
            }
        }
        self.draining = false;
    }

    /// Sends a signal, directly or through the postman when the choice point delays it or an
    /// earlier signal of the same pair is still in flight.
    fn send(&mut self, node: &Node, from: Pid, to: Pid, signal: Signal) {
        let delay = self.choices.delivery_delay(from, to);
        let pair = (from, to);
        let at_us = node.stamp();
        if delay.is_zero() && !self.in_flight.contains_key(&pair) {
            self.deliver(at_us, from, to, signal);
            self.drain(node);
            return;
        }
        let mut due = node.inner.clock.now() + delay;
        let entry = self.in_flight.entry(pair).or_insert((due, 0));
        due = due.max(entry.0);
        *entry = (due, entry.1 + 1);
        self.delay_seq += 1;
        self.delayed.insert(
            (due, self.delay_seq),
            Delayed {
                from,
                to,
                signal,
                timer: None,
            },
        );
        if !delay.is_zero() {
            self.record(at_us, || EventKind::Fault {
                pid: to,
                fault: FaultKind::Delay { from, delay },
            });
        }
        self.wake_postman(node);
    }

    /// Starts the postman, or tells it that the delayed signals changed.
    fn wake_postman(&mut self, node: &Node) {
        if !self.postman_running {
            self.postman_running = true;
            node.spawn_task(node.clone().postman());
        } else {
            node.inner.postman.notify_one();
        }
    }

    /// A signal arrives at `to`; Erlang's rules decide what it does.
    fn deliver(&mut self, at: u64, from: Pid, to: Pid, mut signal: Signal) {
        // Signals addressed to this node rather than to one of its processes (serial 0).
        let to_node = match &signal {
            Signal::Named(_) | Signal::MonitorNamed(_) | Signal::Spawn(_) => true,
            Signal::Demonitor(_) => to.serial() == 0,
            _ => false,
        };
        if to_node && to.node() == Pid(self.base).node() {
            match signal {
                // Arrived: the name is looked up here and now; an unknown one drops it.
                Signal::Named(named) => {
                    let (name, payload) = *named;
                    if let Some(&owner) = self.names.get(&name) {
                        let message = Signal::Message {
                            payload,
                            alias: None,
                        };
                        self.deliver(at, from, owner, message);
                    }
                    return;
                }
                // A monitor of a name: its owner's, or `noproc` at once.
                Signal::MonitorNamed(named) => {
                    let (name, mref) = *named;
                    let owner = self.names.get(&name).copied();
                    let owner = owner.unwrap_or(self.nobody());
                    self.deliver(at, from, owner, Signal::Monitor(mref));
                    return;
                }
                // A spawn request: carried out once the node's lock is released.
                Signal::Spawn(request) => {
                    self.spawns.push((from, *request));
                    return;
                }
                // The end of a monitor of a name: whoever holds it.
                Signal::Demonitor(mref) if to.serial() == 0 => {
                    for p in self.procs.values_mut() {
                        if p.watchers.remove(&mref).is_some() {
                            break;
                        }
                    }
                    return;
                }
                other => signal = other,
            }
        }
        if self.elsewhere(to) {
            match &self.carrier {
                Some(carrier) if to.node() != Pid(self.base).node() => {
                    carrier.carry(from, to, signal)
                }
                // A process of an earlier incarnation of this node is dead.
                _ => self.answer_for_the_dead(at, from, to, signal),
            }
            return;
        }
        let Some(p) = self.procs.get_mut(&to) else {
            self.answer_for_the_dead(at, from, to, signal);
            return; // sending to a dead process does nothing
        };
        match signal {
            Signal::Message { payload, alias } => {
                if alias.is_none_or(|a| p.aliases.contains_key(&a)) {
                    p.push(Msg::User(payload));
                }
            }
            Signal::Exit(ExitReason::Kill) => {
                p.doom(ExitReason::Killed);
                self.dying.push_back(to);
                self.record(at, || EventKind::Signal {
                    from,
                    to,
                    reason: ExitReason::Kill.to_term(),
                    outcome: SignalOutcome::Killed,
                });
            }
            Signal::Exit(reason) => self.exit_signal(at, from, to, reason),
            Signal::LinkExit(reason) => {
                if p.links.take(&from) {
                    self.exit_signal(at, from, to, reason);
                }
            }
            Signal::Down { mref, reason } => {
                if p.monitors.remove(&mref).is_some() {
                    let term = reason.to_term();
                    p.push(Msg::Down {
                        mref,
                        pid: from,
                        reason,
                    });
                    self.record(at, || EventKind::Down {
                        watcher: to,
                        target: from,
                        reason: term,
                    });
                }
            }
            Signal::Link => {
                p.links.add(from);
            }
            Signal::Unlink => {
                p.links.take(&from);
            }
            Signal::Monitor(mref) => {
                p.watchers.insert(mref, from);
            }
            Signal::Demonitor(mref) => {
                p.watchers.remove(&mref);
            }
            Signal::Named(_) | Signal::MonitorNamed(_) | Signal::Spawn(_) => {} // resolved above
        }
    }

    /// Whether `pid` is another node's process (or one of an earlier incarnation of this
    /// node).
    fn elsewhere(&self, pid: Pid) -> bool {
        !crate::term::same_incarnation(pid.0, self.base)
    }

    /// A signal reached a process that is not alive: a far half of `link` or `monitor`
    /// answers `noproc` (what the near half of a local one does at once); anything else is
    /// dropped, as a send to a dead process is.
    fn answer_for_the_dead(&mut self, at: u64, from: Pid, to: Pid, signal: Signal) {
        let own = Pid(self.base).node();
        // Another node's process, with no way to reach it: `noconnection`.
        let reason = if to.node() != own && self.carrier.is_none() {
            ExitReason::noconnection()
        } else {
            ExitReason::Noproc
        };
        let answer = match signal {
            Signal::Link => Signal::LinkExit(reason),
            Signal::Monitor(mref) => Signal::Down { mref, reason },
            _ => return,
        };
        match &self.carrier {
            Some(carrier) if from.node() != Pid(self.base).node() => {
                carrier.carry(to, from, answer)
            }
            // A link or monitor of ours, to a process of an earlier incarnation of this node
            // (or to another node's while this node has no carrier): answered here.
            _ => self.deliver(at, to, from, answer),
        }
    }

    /// The connection to node `index` went down: every link to one of its processes
    /// delivers `noconnection` here (a process that does not trap exits dies of it), every
    /// monitor of one of them a `DOWN noconnection`, and its processes' monitors of ours
    /// are forgotten (Erlang's distribution; docs/architecture.md, "Across nodes").
    fn connection_lost(&mut self, node: &Node, index: u16, reason: NodeDownReason) {
        let mut pids: Vec<Pid> = self.procs.keys().copied().collect();
        pids.sort_unstable();
        let at = node.stamp();
        for pid in pids {
            let Some(p) = self.procs.get_mut(&pid) else {
                continue; // finished by an earlier noconnection of this loop
            };
            let there = |other: &Pid| other.node() == index;
            let links: Vec<Pid> = p.links.keys().filter(there).collect();
            let monitors: Vec<(MonitorRef, Pid)> =
                p.monitors.iter().filter(|(_, t)| there(t)).collect();
            let watchers: Vec<MonitorRef> = p
                .watchers
                .iter()
                .filter(|(_, w)| there(w))
                .map(|(r, _)| r)
                .collect();
            for mref in watchers {
                p.watchers.remove(&mref);
            }
            for (mref, target) in monitors {
                self.deliver(
                    at,
                    target,
                    pid,
                    Signal::Down {
                        mref,
                        reason: ExitReason::noconnection(),
                    },
                );
            }
            for other in links {
                self.deliver(at, other, pid, Signal::LinkExit(ExitReason::noconnection()));
            }
        }
        // `nodedown` is not ordered with the node's other signals (`erlang:monitor_node/2`):
        // it comes after them here, unless it was told first (`Node::nodedown_first`).
        if !self.told_down.remove(&index) {
            self.tell_nodedown(at, index, reason);
        }
        // Spawn requests to that node get no answer from it now.
        let (lost, kept) = std::mem::take(&mut self.pending_spawns)
            .into_iter()
            .partition(|(_, _, n)| *n == index);
        self.pending_spawns = kept;
        for (tag, requester, _) in lost {
            self.spawn_failed(at, requester, tag, index);
        }
        self.drain(node);
    }

    /// The `nodedown` of node `index`: each of its `monitor_node` monitors once, in the order
    /// they were made, then the `monitor_nodes` subscribers with `reason`.
    fn tell_nodedown(&mut self, at: u64, index: u16, reason: NodeDownReason) {
        self.fire_node_monitors(at, index);
        self.tell_subscribers(at, index, Some(reason));
    }

    /// Each `monitor_node` monitor of node `index` hears `nodedown`, once.
    fn fire_node_monitors(&mut self, at: u64, index: u16) {
        let (fired, kept) = std::mem::take(&mut self.node_monitors)
            .into_iter()
            .partition(|(n, _)| *n == index);
        self.node_monitors = kept;
        for (_, watcher) in fired {
            let msg = Msg::NodeDown {
                node: index,
                reason: None,
            };
            self.tell(at, watcher, msg);
        }
    }

    /// Answers `requester`'s spawn request `tag` to node `index` with `NodeDown`.
    fn spawn_failed(&mut self, at: u64, requester: Pid, tag: Ref, index: u16) {
        let reply = SpawnReply {
            tag,
            result: Err(super::SpawnError::NodeDown(index)),
        };
        let message = Signal::Message {
            payload: Box::new(reply),
            alias: Some(tag),
        };
        self.deliver(at, Pid::new(index, 0, 0), requester, message);
    }

    /// Delivers a `nodedown` or `nodeup` message to `watcher`, if it is alive.
    fn tell(&mut self, at: u64, watcher: Pid, msg: Msg) {
        let Some(p) = self.procs.get_mut(&watcher) else {
            return;
        };
        let kind = match msg {
            Msg::NodeUp { node } => EventKind::NodeUp { watcher, node },
            Msg::NodeDown { node, .. } => EventKind::NodeDown { watcher, node },
            _ => return,
        };
        p.push(msg);
        self.record(at, || kind);
    }

    /// The `monitor_nodes` subscribers hear that node `index` went up (`None`) or down (with
    /// why).
    fn tell_subscribers(&mut self, at: u64, index: u16, down: Option<NodeDownReason>) {
        match down {
            None => self.connected.insert(index),
            Some(_) => self.connected.remove(&index),
        };
        for watcher in self.node_subscribers.clone() {
            let msg = match down {
                None => Msg::NodeUp { node: index },
                Some(reason) => Msg::NodeDown {
                    node: index,
                    reason: Some(reason),
                },
            };
            self.tell(at, watcher, msg);
        }
    }

    /// A trappable exit signal reaches the live process `to`.
    fn exit_signal(&mut self, at: u64, from: Pid, to: Pid, reason: ExitReason) {
        let p = self.proc(to);
        let term = reason.to_term();
        let outcome = if p.trap_exit {
            p.push(Msg::Exit { from, reason });
            SignalOutcome::Trapped
        } else if reason.is_normal() && from != to {
            SignalOutcome::Ignored
        } else {
            // Includes exit(self(), normal), which ends the caller with reason normal.
            p.doom(reason);
            self.dying.push_back(to);
            SignalOutcome::Killed
        };
        self.record(at, || EventKind::Signal {
            from,
            to,
            reason: term,
            outcome,
        });
    }
}

impl Proc {
    pub(super) fn traps_exits(&self) -> bool {
        self.trap_exit
    }

    pub(super) fn mark_server(&mut self) {
        self.gen = true;
    }

    /// Takes the message at `index` of the mailbox, counted: the message and how many it
    /// has taken in all.
    fn take_at(&mut self, index: usize) -> Option<(Msg, u64)> {
        let msg = self.mailbox.remove(index)?;
        self.exits_queued -= u32::from(matches!(msg, Msg::Exit { .. }));
        self.taken_this_step += 1;
        self.received += 1;
        Some((msg, self.received))
    }

    pub(super) fn set_trap_exit(&mut self, on: bool) -> bool {
        std::mem::replace(&mut self.trap_exit, on)
    }

    pub(super) fn add_alias(&mut self, alias: Ref) {
        self.aliases.add(alias);
    }

    pub(super) fn remove_alias(&mut self, alias: Ref) {
        self.aliases.take(&alias);
    }

    pub(super) fn push_self(&mut self, msg: Msg) {
        self.push(msg);
    }

    pub(super) fn is_dooming(&self) -> bool {
        self.pending_exit.is_some()
    }

    pub(super) fn links(&self) -> Vec<Pid> {
        self.links.keys().collect()
    }

    pub(super) fn mailbox_len(&self) -> usize {
        self.mailbox.len()
    }
}
