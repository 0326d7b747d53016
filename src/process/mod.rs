//! Erlang processes: pids, mailboxes, links, monitors, exit signals and `trap_exit`.
//!
//! A process is an async body run by the executor under `catch_unwind`; its [`Process`]
//! handle is its `self()`. The rules are Erlang's (`docs/behaviours.md` §M):
//!
//! * links are bidirectional; a dying process sends its exit reason to every link: a
//!   non-trapping process dies of it unless it is `normal`, a trapping one gets [`Msg::Exit`];
//! * `exit(Pid, kill)` cannot be trapped and the target dies `killed`;
//! * monitors are one-way and deliver [`Msg::Down`]; monitoring a dead pid gives `noproc` at once;
//! * signals between one pair of processes arrive in the order sent;
//! * sending to a dead pid does nothing; a panic is the process's exit reason.
//!
//! ```
//! use otpsim::{rt, ExitReason, Msg, Node};
//! rt::block_on(0, async {
//!     let node = Node::new();
//!     let root = node.spawn(|p| async move {
//!         p.trap_exit(true);
//!         let child = p.spawn_link(|_| async { ExitReason::error("boom") });
//!         match p.recv().await {
//!             Msg::Exit { from, reason } => {
//!                 assert_eq!(from, child);
//!                 assert_eq!(reason, ExitReason::error("boom"));
//!             }
//!             other => panic!("unexpected {other:?}"),
//!         }
//!     });
//!     assert_eq!(node.wait_exit(root).await, Some(ExitReason::Normal));
//! });
//! ```
//!
//! The public face of a process (its handle, receive, links, monitors, timers, names) is one
//! concept users learn together; what runs under the node's lock is in `node.rs` (hence this file's
//! length).

mod alive;
mod disk;
mod message;
mod node;
mod reason;
mod small;
mod task;

pub use disk::Disk;
pub use message::{MonitorRef, Msg, NodeDownReason};

/// A timer of [`Process::send_after`].
pub type TimerRef = Ref;
pub(crate) use node::box_start;
#[cfg(feature = "tcp")]
pub(crate) use node::WeakNode;
pub(crate) use node::{Carrier, Signal, SpawnReply, SpawnRequest};
pub use node::{Halt, Node, NodeConfig, StartFn};
pub use reason::{ExitReason, InternalError, IntoExitReason};
pub(crate) use task::catch_panic;

use crate::rt::Duration;
use crate::term::{Pid, Ref, Term};
use crate::trace::{EventKind, SpawnTie};
use node::Wait;
use std::any::Any;
use std::future::Future;
use std::task::Poll;

/// `link` to a process that is not alive, from a process that does not trap exits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("noproc: the process is not alive")]
pub struct Noproc;

/// Why a process could not be spawned on another node.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum SpawnError {
    /// The node could not be reached, or went down before it answered.
    #[error("nodedown: node n{0} is not connected")]
    NodeDown(u16),
    /// The node has no start function of that name (Erlang's `undef`).
    #[error("no start function {0:?} on that node (Node::register_start)")]
    NoSuchStart(String),
}

/// Why a name could not be registered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// The name belongs to another live process.
    #[error("the name is already registered to {0}")]
    Taken(Pid),
    /// The process already has a name.
    #[error("the process is already registered as {0}")]
    AlreadyNamed(String),
    /// The process is not alive.
    #[error("noproc: the process is not alive")]
    Noproc,
}

/// A running process's handle on itself: Erlang's `self()` and the BIFs that act on it.
///
/// Only the process's own body holds it; it is not `Clone`, and should not be moved into
/// other tasks.
pub struct Process {
    node: Node,
    pid: Pid,
}

/// The future of a selective receive with a timeout ([`Process::receive_timeout`]): `None`
/// if no accepted message came in time. It is small, and its timer is a
/// [`Timer`](crate::rt::Timer):
/// armed only if the wait lasts.
#[must_use = "a receive does nothing unless it is awaited"]
pub struct Receive<'a, A> {
    process: &'a Process,
    accept: A,
    timeout: Option<Duration>,
    /// Set at the first poll (the timeout with its jitter).
    timer: Option<crate::rt::Timer>,
    /// A request to end with the wait (see [`Process::await_reply`]).
    end: Option<Wait>,
    /// Where `accept` runs (see [`Accept`]).
    runs: Accept,
}

/// Where a receive's predicate runs. A user's runs outside the node's lock: it may use the
/// node (a send, `is_alive`), and its panic ends only its process. The runtime's own
/// (`recv`, a call's wait for its answer, a supervisor's wait for a `DOWN`) only looks at
/// the message, and runs under the lock that takes it: one lock instead of two on every
/// message of the hot paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Accept {
    /// A user's predicate: outside the lock.
    User,
    /// The runtime's own predicate, which must not use the node: under the lock.
    Runtime,
}

impl<A> Unpin for Receive<'_, A> {}

impl<A: FnMut(&Msg) -> bool> Future for Receive<'_, A> {
    type Output = Option<Msg>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Option<Msg>> {
        let this = self.get_mut();
        let p = this.process;
        if this.timeout.is_some_and(|t| t.is_zero()) {
            // `after 0`: look at the mailbox without giving other processes a turn.
            return Poll::Ready(p.take(&mut this.accept, cx, false, this.end, this.runs));
        }
        if let (Some(timeout), None) = (this.timeout, &this.timer) {
            let timeout = timeout + p.node.timer_jitter(p.pid, timeout);
            this.timer = Some(crate::rt::Timer::after(timeout));
        }
        if let Some(msg) = p.take(&mut this.accept, cx, true, this.end, this.runs) {
            return Poll::Ready(Some(msg));
        }
        let Some(timer) = &mut this.timer else {
            return Poll::Pending;
        };
        let elapsed = timer.poll_elapsed(p.node.clock(), cx);
        if elapsed.is_ready() {
            if let Some(wait) = this.end.take() {
                p.node.end_wait(p.pid, wait);
            }
        }
        elapsed.map(|()| None)
    }
}

impl Process {
    fn new(node: Node, pid: Pid) -> Process {
        Process { node, pid }
    }

    /// A second handle for the same process, for code that runs inside the same body (e.g. a
    /// wrapper that hands one handle to user code and keeps one for itself).
    pub(crate) fn handle_in_body(&self) -> Process {
        Process::new(self.node.clone(), self.pid)
    }

    /// This process's pid.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// The node the process runs on.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Spawns an unlinked process.
    pub fn spawn<F, Fut>(&self, body: F) -> Pid
    where
        F: FnOnce(Process) -> Fut + Send + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: IntoExitReason,
    {
        self.spawn_tied(SpawnTie::None, move |p| Ok(body(p))).0
    }

    /// Spawns a process linked to this one (atomically: the child cannot die unlinked).
    pub fn spawn_link<F, Fut>(&self, body: F) -> Pid
    where
        F: FnOnce(Process) -> Fut + Send + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: IntoExitReason,
    {
        self.spawn_tied(SpawnTie::Link, move |p| Ok(body(p))).0
    }

    /// Spawns a process monitored by this one.
    pub fn spawn_monitor<F, Fut>(&self, body: F) -> (Pid, MonitorRef)
    where
        F: FnOnce(Process) -> Fut + Send + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: IntoExitReason,
    {
        let (pid, mref) = self.spawn_tied(SpawnTie::Monitor, move |p| Ok(body(p)));
        (pid, mref.expect("spawn_monitor creates a monitor"))
    }

    /// Spawns a child tied to this process by `tie`, whose body may refuse to start: built at
    /// the child's first step, it gives `Err(reason)` to exit at once with `reason` (a server
    /// whose name is taken), or the child's future.
    pub(crate) fn spawn_tied<F, Fut>(&self, tie: SpawnTie, body: F) -> (Pid, Option<MonitorRef>)
    where
        F: FnOnce(Process) -> Result<Fut, ExitReason> + Send + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: IntoExitReason,
    {
        self.node.spawn_with(Some(self.pid), tie, body)
    }

    /// Sends `value` to `to`. Sending to a dead pid does nothing; messages from this process
    /// to one receiver arrive in the order sent.
    pub fn send<T: Any + Send>(&self, to: Pid, value: T) {
        if to.node() != self.pid.node() {
            crate::dist::note_type::<T>();
        }
        self.send_boxed(to, Box::new(value), None);
    }

    /// Sends `value` to the process registered as `name` on node `node` (`{Name, Node} !
    /// Msg`): the name is looked up there when the message arrives; nothing happens if no
    /// process has it then, or if the node cannot be reached. `node` may be this node.
    pub fn send_named<T: Any + Send>(&self, name: &str, node: u16, value: T) {
        if node != self.pid.node() {
            crate::dist::note_type::<T>();
        }
        self.node.send_named(self.pid, name, node, Box::new(value));
    }

    /// Sends through an alias: delivered only while `to` keeps `alias` active.
    pub(crate) fn send_boxed(&self, to: Pid, payload: Box<dyn Any + Send>, alias: Option<Ref>) {
        self.node
            .signal(self.pid, to, Signal::Message { payload, alias });
    }

    /// Sends the exit signal `reason` to `to` (`exit(Pid, Reason)`): `kill` kills it
    /// untrappably; `normal` is ignored unless it traps exits (or `to` is this process);
    /// any other reason kills a non-trapping target and is a message to a trapping one.
    pub fn exit(&self, to: Pid, reason: ExitReason) {
        self.node.signal(self.pid, to, Signal::Exit(reason));
    }

    /// Links this process to `to`. If `to` is not alive: a trapping caller receives
    /// `{'EXIT', To, noproc}` and gets `Ok`; a non-trapping caller gets `Err(Noproc)`
    /// (Erlang raises `noproc`).
    pub fn link(&self, to: Pid) -> Result<(), Noproc> {
        if self.node.link(self.pid, to).is_ok() {
            return Ok(());
        }
        let trapped = self
            .node
            .with_proc(self.pid, |p| {
                if p.traps_exits() {
                    p.push_self(Msg::Exit {
                        from: to,
                        reason: ExitReason::Noproc,
                    });
                    true
                } else {
                    false
                }
            })
            .unwrap_or(false);
        if trapped {
            Ok(())
        } else {
            Err(Noproc)
        }
    }

    /// Removes the link to `to`, if any (always succeeds, as in Erlang). An `EXIT` from `to`
    /// already in the mailbox stays there.
    pub fn unlink(&self, to: Pid) {
        self.node.unlink(self.pid, to);
    }

    /// Removes the link to `to` and takes an `EXIT` from `to` already in the mailbox, giving
    /// its reason (`unlink(Pid), receive {'EXIT', Pid, Reason} -> Reason after 0 -> ...`, as
    /// supervisors do when they stop a child), in one step.
    pub(crate) fn unlink_taking_exit(&self, to: Pid) -> Option<ExitReason> {
        self.node.unlink_taking_exit(self.pid, to)
    }

    /// Monitors `target`: a [`Msg::Down`] with this reference arrives when it exits
    /// (at once, with `noproc`, if it is not alive).
    pub fn monitor(&self, target: Pid) -> MonitorRef {
        self.node.monitor(self.pid, target)
    }

    /// Spawns a process on node `node` from the start function it registered as `start`
    /// ([`Node::register_start`]), giving it `arg` (`spawn(Node, M, F, A)`), and waits for its
    /// pid. `NodeDown` if the node cannot be reached or goes down first; `NoSuchStart` if it
    /// has no such start function. `node` may be this node.
    ///
    /// ```
    /// # #[cfg(madsim)] {
    /// use otpsim::sim::cluster::ClusterSim;
    /// use otpsim::{Msg, Term};
    /// ClusterSim::new(1).nodes(2).run(|ctl| async move {
    ///     ctl.node(2).register_start("echo", |p, arg: Term| async move {
    ///         if let Ok(to) = p.recv().await.downcast::<otpsim::Pid>() {
    ///             p.send(to, arg);
    ///         }
    ///     });
    ///     let got = ctl.on(1, |p| async move {
    ///         let pid = p.spawn_on(2, "echo", Term::atom("hi")).await.unwrap();
    ///         assert_eq!(pid.node(), 2);
    ///         p.send(pid, p.pid());
    ///         p.recv().await.downcast::<Term>().ok()
    ///     });
    ///     assert_eq!(got.await.flatten(), Some(Term::atom("hi")));
    /// });
    /// # }
    /// ```
    pub async fn spawn_on(&self, node: u16, start: &str, arg: Term) -> Result<Pid, SpawnError> {
        self.spawn_on_tied(node, start, arg, false).await
    }

    /// Like [`spawn_on`](Self::spawn_on), linked to this process (`spawn_link(Node, M, F,
    /// A)`).
    pub async fn spawn_link_on(
        &self,
        node: u16,
        start: &str,
        arg: Term,
    ) -> Result<Pid, SpawnError> {
        self.spawn_on_tied(node, start, arg, true).await
    }

    async fn spawn_on_tied(
        &self,
        node: u16,
        start: &str,
        arg: Term,
        link: bool,
    ) -> Result<Pid, SpawnError> {
        if node == self.pid.node() {
            let Some(f) = self.node.start_fn(start) else {
                return Err(SpawnError::NoSuchStart(start.to_string()));
            };
            let body = move |p: Process| f(p, arg);
            return Ok(if link {
                self.spawn_link(body)
            } else {
                self.spawn(body)
            });
        }
        let tag = self.node.request_spawn(self.pid, node, start, arg, link);
        let answer = self
            .receive(|m| m.downcast_ref::<SpawnReply>().is_some_and(|r| r.tag == tag))
            .await;
        self.node.end_spawn(self.pid, tag);
        match answer.downcast::<SpawnReply>() {
            Ok(SpawnReply {
                result: Err(SpawnError::NodeDown(_)),
                ..
            }) => Err(SpawnError::NodeDown(node)),
            Ok(reply) => reply.result,
            Err(_) => unreachable!("accepted above"),
        }
    }

    /// Monitors whoever node `node` has registered as `name` (`erlang:monitor(process,
    /// {Name, Node})`), looked up when the monitor arrives there: its [`Msg::Down`] carries
    /// the owner's exit reason, `noproc` if nobody has the name, `noconnection` if the node
    /// cannot be reached or the connection goes down
    /// (`sim-tests/conformance/c15_monitor_by_name.trace`). Erlang names the target of that
    /// `DOWN` as `{Name, Node}`; here its `pid` is the owner's, or node `node`'s address
    /// (serial 0) when there was none: tell the monitors apart by their reference.
    pub fn monitor_name(&self, name: &str, node: u16) -> MonitorRef {
        self.node.monitor_name(self.pid, name, node)
    }

    /// Monitors node `node` (`erlang:monitor_node(Node, true)`): when the connection to it
    /// goes down, a [`Msg::NodeDown`] arrives, once per call; at once if it cannot be
    /// reached (a node not connected yet is connected first). `on = false` removes one such
    /// monitor. The `nodedown` is not ordered with the node's other signals.
    pub fn monitor_node(&self, node: u16, on: bool) {
        self.node.monitor_node(self.pid, node, on)
    }

    /// Connects this node to node `node` if it is not connected yet, as a message to it
    /// would: returns whether they are connected, or being connected. Unlike Erlang's
    /// `net_kernel:connect_node/1`, it connects only where connections are made
    /// automatically: with `dist_auto_connect never` (a simulated cluster's
    /// `auto_connect(false)`), only an existing connection counts.
    pub fn connect_node(&self, node: u16) -> bool {
        self.node.connect_node(node)
    }

    /// Subscribes to every node's connection going up ([`Msg::NodeUp`]) and down
    /// ([`Msg::NodeDown`]) (`net_kernel:monitor_nodes(true)`); `false` unsubscribes.
    pub fn monitor_nodes(&self, on: bool) {
        self.node.monitor_nodes(self.pid, on)
    }

    /// Removes a monitor. Returns whether it was active; a `DOWN` already delivered stays in
    /// the mailbox (see [`demonitor_flush`](Self::demonitor_flush)).
    pub fn demonitor(&self, mref: MonitorRef) -> bool {
        self.node.demonitor(self.pid, mref, false)
    }

    /// Removes a monitor and any `DOWN` of it from the mailbox (`demonitor(Ref, [flush])`).
    pub fn demonitor_flush(&self, mref: MonitorRef) -> bool {
        self.node.demonitor(self.pid, mref, true)
    }

    /// Sets `trap_exit` and returns the previous value.
    pub fn trap_exit(&self, on: bool) -> bool {
        let previous = self.node.with_proc(self.pid, |p| p.set_trap_exit(on));
        previous.unwrap_or(false)
    }

    /// The pids linked to this process, in pid order (`process_info(self(), links)`).
    pub fn links(&self) -> Vec<Pid> {
        self.node
            .with_proc(self.pid, |p| p.links())
            .unwrap_or_default()
    }

    /// How many messages wait in the mailbox.
    pub fn mailbox_len(&self) -> usize {
        self.node
            .with_proc(self.pid, |p| p.mailbox_len())
            .unwrap_or(0)
    }

    /// Takes the oldest message, waiting for one if the mailbox is empty.
    pub async fn recv(&self) -> Msg {
        self.receive_until(|_| true, Accept::Runtime).await
    }

    /// Like [`recv`](Self::recv), giving up after `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Receive<'_, fn(&Msg) -> bool> {
        self.receive_as(|_| true, Some(timeout), Accept::Runtime)
    }

    /// Selective receive: takes the oldest message that `accept` accepts, leaving the others
    /// in the mailbox in their order. `accept` runs in this process, and may use the node.
    pub async fn receive(&self, accept: impl FnMut(&Msg) -> bool) -> Msg {
        self.receive_until(accept, Accept::User).await
    }

    /// A receive without a timeout (no timer to keep: the smallest future).
    async fn receive_until(&self, mut accept: impl FnMut(&Msg) -> bool, runs: Accept) -> Msg {
        std::future::poll_fn(|cx| {
            self.take(&mut accept, cx, true, None, runs)
                .map_or(Poll::Pending, Poll::Ready)
        })
        .await
    }

    /// Selective receive that does not wait (`receive ... after 0 -> ... end`): the oldest
    /// accepted message, if one is already in the mailbox.
    pub async fn try_receive(&self, mut accept: impl FnMut(&Msg) -> bool) -> Option<Msg> {
        let runs = Accept::User;
        std::future::poll_fn(|cx| Poll::Ready(self.take(&mut accept, cx, false, None, runs))).await
    }

    /// Selective receive with a timeout (`receive ... after T -> ... end`): `None` if no
    /// accepted message came within `timeout`.
    pub fn receive_timeout<A: FnMut(&Msg) -> bool>(
        &self,
        accept: A,
        timeout: Duration,
    ) -> Receive<'_, A> {
        self.receive_timeout_opt(accept, Some(timeout))
    }

    /// Selective receive with an optional timeout (`None` waits for ever).
    pub fn receive_timeout_opt<A: FnMut(&Msg) -> bool>(
        &self,
        accept: A,
        timeout: Option<Duration>,
    ) -> Receive<'_, A> {
        self.receive_as(accept, timeout, Accept::User)
    }

    /// A receive whose predicate is the runtime's own (see [`Accept::Runtime`]): it must
    /// only look at the message.
    pub(crate) fn receive_internal<A: FnMut(&Msg) -> bool>(
        &self,
        accept: A,
        timeout: Option<Duration>,
    ) -> Receive<'_, A> {
        self.receive_as(accept, timeout, Accept::Runtime)
    }

    fn receive_as<A: FnMut(&Msg) -> bool>(
        &self,
        accept: A,
        timeout: Option<Duration>,
        runs: Accept,
    ) -> Receive<'_, A> {
        Receive {
            process: self,
            accept,
            timeout,
            timer: None,
            end: None,
            runs,
        }
    }

    /// A call's wait for its answer (its predicate is the runtime's own): the
    /// [`request`](Self::request) `(monitor, alias)` is ended at once, under the same lock as
    /// the taking of the answer (or at the timeout).
    pub(crate) fn await_reply<A: FnMut(&Msg) -> bool>(
        &self,
        accept: A,
        timeout: Option<Duration>,
        (monitor, alias): (MonitorRef, Ref),
    ) -> Receive<'_, A> {
        self.await_ending(accept, timeout, monitor, Some(alias), Accept::Runtime)
    }

    /// A receive that takes down `monitor` (with any `DOWN` of it) and `alias` when it ends.
    fn await_ending<A: FnMut(&Msg) -> bool>(
        &self,
        accept: A,
        timeout: Option<Duration>,
        monitor: MonitorRef,
        alias: Option<Ref>,
        runs: Accept,
    ) -> Receive<'_, A> {
        Receive {
            end: Some(Wait { monitor, alias }),
            ..self.receive_as(accept, timeout, runs)
        }
    }

    /// One attempt at taking a message (see [`Node::take_message`]).
    fn take(
        &self,
        accept: &mut dyn FnMut(&Msg) -> bool,
        cx: &mut std::task::Context<'_>,
        may_yield: bool,
        end: Option<Wait>,
        runs: Accept,
    ) -> Option<Msg> {
        self.node
            .take_message(self.pid, accept, cx.waker(), may_yield, end, runs)
    }

    /// Waits for a just-spawned process to acknowledge its start: the oldest message `ack`
    /// accepts, or `Err(reason)` if `pid` exits first (`proc_lib:start_link`'s wait for
    /// `init_ack`). A start function that waits only for the ack would hang for ever on a
    /// child killed before it answers.
    ///
    /// ```
    /// use otpsim::{rt, ExitReason, Msg, Node};
    /// rt::block_on(0, async {
    ///     let node = Node::new();
    ///     node.spawn(|p| async move {
    ///         p.trap_exit(true);
    ///         let parent = p.pid();
    ///         let good = p.spawn_link(move |q| async move { q.send(parent, "ready"); q.recv().await; });
    ///         assert!(p.await_start(good, |m: &Msg| m.is::<&str>()).await.is_ok());
    ///         let bad = p.spawn_link(|_| async { ExitReason::error("init") });
    ///         let died = p.await_start(bad, |m: &Msg| m.is::<&str>()).await.unwrap_err();
    ///         assert_eq!(died, ExitReason::error("init"));
    ///     });
    /// });
    /// ```
    pub async fn await_start(
        &self,
        pid: Pid,
        ack: impl FnMut(&Msg) -> bool,
    ) -> Result<Msg, ExitReason> {
        let mref = self.monitor(pid);
        self.await_ack(mref, ack, None, Accept::User).await
    }

    /// [`await_start`](Self::await_start) for a start acknowledged through `alias` (with the
    /// runtime's own `ack`): the alias is deactivated with the monitor, under the lock that
    /// takes the answer.
    pub(crate) async fn await_start_via(
        &self,
        pid: Pid,
        alias: Ref,
        ack: impl FnMut(&Msg) -> bool,
    ) -> Result<Msg, ExitReason> {
        let mref = self.monitor(pid);
        self.await_ack(mref, ack, Some(alias), Accept::Runtime)
            .await
    }

    async fn await_ack(
        &self,
        mref: MonitorRef,
        mut ack: impl FnMut(&Msg) -> bool,
        alias: Option<Ref>,
        runs: Accept,
    ) -> Result<Msg, ExitReason> {
        let accept = |m: &Msg| match m {
            Msg::Down { mref: r, .. } => *r == mref,
            m => ack(m),
        };
        let answer = self
            .await_ending(accept, None, mref, alias, runs)
            .await
            .expect("a receive without a timeout ends with a message");
        match answer {
            Msg::Down { reason, .. } => Err(reason),
            answer => Ok(answer),
        }
    }

    /// The current time on the node's clock (simulated under madsim): Erlang's
    /// `erlang:monotonic_time()`, for deadlines.
    pub fn now(&self) -> crate::rt::Instant {
        self.node.clock().now()
    }

    /// The wall time on the node's clock: Erlang's `os:system_time()`. Unlike
    /// [`now`](Process::now) it jumps when the host's clock is stepped (in a simulated cluster,
    /// [`ClusterCtl::jump_clock`](crate::sim::cluster::ClusterCtl::jump_clock)), so a deadline
    /// or a lease measured with it is wrong by as much as the jump.
    pub fn system_time(&self) -> std::time::SystemTime {
        self.node.clock().system_time()
    }

    /// Sends `value` to `to` after `delay` (plus any jitter the simulator chooses), as
    /// `erlang:send_after/3` does; the reference [cancels](Process::cancel_timer) it. The
    /// message comes from this process; a timer does not hold back the process's later
    /// messages to `to`, and its message to a dead process is dropped like any other.
    ///
    /// ```
    /// use otpsim::{rt, Msg, Node};
    /// rt::block_on(0, async {
    ///     let node = Node::new();
    ///     node.spawn(|p| async move {
    ///         let t0 = p.now();
    ///         p.send_after(rt::Duration::from_millis(30), p.pid(), "late");
    ///         let cancelled = p.send_after(rt::Duration::from_millis(10), p.pid(), "never");
    ///         assert!(p.cancel_timer(cancelled));
    ///         let msg = p.recv().await;
    ///         assert_eq!(msg.downcast_ref::<&str>(), Some(&"late"));
    ///         assert!(p.now() - t0 >= rt::Duration::from_millis(30));
    ///     });
    /// });
    /// ```
    pub fn send_after<T: Any + Send>(&self, delay: Duration, to: Pid, value: T) -> TimerRef {
        self.node.send_after(self.pid, to, delay, Box::new(value))
    }

    /// Cancels a timer of [`send_after`](Process::send_after); whether it had not fired yet
    /// (`erlang:cancel_timer/1`).
    pub fn cancel_timer(&self, timer: TimerRef) -> bool {
        self.node.cancel_timer(timer)
    }

    /// Waits `duration` (plus any jitter the simulator chooses).
    pub async fn sleep(&self, duration: Duration) {
        let jitter = self.node.timer_jitter(self.pid, duration);
        self.node.clock().sleep(duration + jitter).await
    }

    /// A new unique reference.
    pub fn make_ref(&self) -> Ref {
        self.node.make_ref()
    }

    /// Registers this process under a local `name` (`register(Name, self())`).
    pub fn register(&self, name: &str) -> Result<(), RegisterError> {
        self.node.register(name, self.pid)
    }

    /// Releases a local name, whoever holds it; `false` if it was not registered.
    pub fn unregister(&self, name: &str) -> bool {
        self.node.unregister(name)
    }

    /// The pid registered under `name`.
    pub fn whereis(&self, name: &str) -> Option<Pid> {
        self.node.whereis(name)
    }

    /// The local name this process is registered under, if any.
    pub fn registered_name(&self) -> Option<String> {
        self.node
            .with_proc(self.pid, |p| p.registered_name())
            .flatten()
    }

    /// Writes a note into the run's trace.
    pub fn note(&self, text: impl Into<String>) {
        self.node.record(EventKind::Note {
            pid: self.pid,
            text: text.into(),
        });
    }

    /// A call's first step, under one lock: monitors `to`, activates an alias, and sends `to`
    /// the request `make` builds with the alias. [`await_reply`](Self::await_reply) ends it.
    pub(crate) fn request(
        &self,
        to: Pid,
        make: impl FnOnce(Ref) -> Box<dyn Any + Send>,
    ) -> (MonitorRef, Ref) {
        self.node.request(self.pid, to, make)
    }

    /// [`request`](Self::request) to whoever node `node` has registered as `name`.
    pub(crate) fn request_named(
        &self,
        name: &str,
        node: u16,
        make: impl FnOnce(Ref) -> Box<dyn Any + Send>,
    ) -> (MonitorRef, Ref) {
        self.node.request_named(self.pid, name, node, make)
    }

    /// Activates an alias: messages sent to this process through it are delivered.
    pub(crate) fn alias(&self) -> Ref {
        let alias = self.make_ref();
        self.node.with_proc(self.pid, |p| p.add_alias(alias));
        alias
    }

    /// Marks this process as running a generic server loop (see [`Node::is_server`]).
    pub(crate) fn mark_server(&self) {
        self.node.with_proc(self.pid, |p| p.mark_server());
    }

    /// Whether an exit is pending for this process (it dies at its next step).
    pub fn is_exiting(&self) -> bool {
        self.node
            .with_proc(self.pid, |p| p.is_dooming())
            .unwrap_or(true)
    }
}
