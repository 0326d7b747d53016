//! `TaskSupervisor` with the semantics of Elixir's `Task.Supervisor` (docs/behaviours.md §K): a dynamic
//! supervisor of tasks, fire-and-forget or awaited.
//!
//! ```
//! use otpsim::{rt, Node, ExitReason};
//! use otpsim::supervisor::task::{self, TaskOptions, TaskError};
//! use otpsim::rt::Duration;
//!
//! rt::block_on(0, async {
//!     let node = Node::new();
//!     let main = node.spawn(|p| async move {
//!         let sup = task::start_link(&p, TaskOptions::default()).await.unwrap();
//!         let t = sup.async_nolink(&p, |_task| async { 6 * 7 }).await.unwrap();
//!         assert_eq!(t.await_(&p, Duration::from_secs(5)).await, Ok(42));
//!         let crash = sup.async_nolink(&p, |_task| async { panic!("no") }).await.unwrap();
//!         let r: Result<(), _> = crash.await_(&p, Duration::from_secs(5)).await;
//!         assert!(matches!(r, Err(TaskError::Exit(ExitReason::Panic(_)))));
//!     });
//!     assert_eq!(node.wait_exit(main).await, Some(ExitReason::Normal));
//! });
//! ```

use super::dynamic::{self, DynamicError, DynamicOptions, DynamicSupervisorRef};
use super::spec::{ChildId, ChildSpec, Restart, Shutdown, Start, Started};
use crate::process::{catch_panic, ExitReason, MonitorRef, Msg, Process};
use crate::rt::Duration;
use crate::server::StartError;
use crate::term::{Pid, Ref};

use std::future::Future;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, PoisonError};

/// The options of `Task.Supervisor.start_link/1` (docs/behaviours.md item 80): Elixir's defaults are no
/// limit on children and 3 restarts in 5 seconds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskOptions {
    /// The dynamic supervisor's options.
    pub supervisor: DynamicOptions,
}

impl TaskOptions {
    /// A task supervisor with these options as the child `id` of another supervisor,
    /// started with `start` (a local or via name); [`TaskSupervisorRef::from_pid`] reaches it.
    pub fn into_child_with(
        self,
        id: impl Into<ChildId>,
        start: crate::server::StartOptions,
    ) -> ChildSpec {
        self.supervisor
            .into_child_with(id, start)
            .modules(["Task.Supervisor"])
    }
}

/// Starts a task supervisor linked to the caller.
pub async fn start_link(
    p: &Process,
    options: TaskOptions,
) -> Result<TaskSupervisorRef, StartError> {
    dynamic::start_link(p, options.supervisor)
        .await
        .map(|sup| TaskSupervisorRef { sup })
}

/// A running task supervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskSupervisorRef {
    sup: DynamicSupervisorRef,
}

/// Why awaiting a task gave no result.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    /// The task exited with this reason before replying.
    #[error("the task exited: {0}")]
    Exit(ExitReason),
    /// No reply within the timeout (the task keeps running; see [`Task::shutdown`]).
    #[error("the task did not reply in time")]
    Timeout,
}

/// The owner's go-ahead: the task has been monitored (with this reference, which tags the
/// reply) and may run its job.
struct Go(Ref);

/// A task's result, as the message its owner receives (Elixir's `{ref, result}`): a
/// process that does not block in [`Task::await_`] (a GenServer in `handle_info`) takes it
/// from its mailbox with [`TaskReply::from_msg`]. The task's `DOWN` follows it (with reason
/// `normal`: the reply does not remove the monitor); a task that crashes or exits without a
/// result sends no reply, only its `DOWN` (docs/behaviours.md item 81; recorded:
/// `sim-tests/conformance/probes/task_replies`).
///
/// ```
/// use otpsim::{rt, Node, Msg, ExitReason};
/// use otpsim::supervisor::task::{self, TaskOptions, TaskReply};
///
/// rt::block_on(0, async {
///     let node = Node::new();
///     let main = node.spawn(|p| async move {
///         let sup = task::start_link(&p, TaskOptions::default()).await.unwrap();
///         let t = sup.async_nolink(&p, |_| async { 6 * 7 }).await.unwrap();
///         let reply = TaskReply::<i32>::from_msg(p.recv().await).ok().unwrap();
///         assert_eq!((reply.mref, reply.value), (t.mref(), 42));
///         assert!(matches!(p.recv().await, Msg::Down { mref, reason: ExitReason::Normal, .. } if mref == t.mref()));
///     });
///     assert_eq!(node.wait_exit(main).await, Some(ExitReason::Normal));
/// });
/// ```
#[derive(Debug)]
pub struct TaskReply<T> {
    /// The task's monitor ([`Task::mref`]): it tags the reply and the task's `DOWN`.
    pub mref: MonitorRef,
    /// The result.
    pub value: T,
}

impl<T: Send + 'static> TaskReply<T> {
    /// The reply of a task of result type `T`, or the message back if it is not one.
    pub fn from_msg(msg: Msg) -> Result<TaskReply<T>, Msg> {
        msg.downcast::<TaskReply<T>>()
    }
}

/// A task started with `async`/`async_nolink`: await its result, or take it from the
/// mailbox as a [`TaskReply`].
pub struct Task<T> {
    pid: Pid,
    mref: MonitorRef,
    _result: PhantomData<fn() -> T>,
}

impl<T: Send + 'static> Task<T> {
    /// The task's pid.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// The owner's monitor of the task (Elixir's `task.ref`): its reply and its `DOWN` carry
    /// it.
    pub fn mref(&self) -> MonitorRef {
        self.mref
    }

    /// Waits for the result (`Task.await/2`, with the crash as a value instead of an exit).
    pub async fn await_(self, p: &Process, timeout: Duration) -> Result<T, TaskError> {
        match self.yield_(p, timeout).await {
            Some(result) => result,
            None => Err(TaskError::Timeout),
        }
    }

    /// Waits up to `timeout`; `None` if the task is still running (`Task.yield/2`).
    pub async fn yield_(&self, p: &Process, timeout: Duration) -> Option<Result<T, TaskError>> {
        let mref = self.mref;
        let accept = |m: &Msg| match m {
            Msg::Down { mref: r, .. } => *r == mref,
            m => m
                .downcast_ref::<TaskReply<T>>()
                .is_some_and(|r| r.mref == mref),
        };
        match p.receive_internal(accept, Some(timeout)).await? {
            Msg::Down { reason, .. } => Some(Err(TaskError::Exit(reason))),
            msg => {
                p.demonitor_flush(mref);
                let reply = msg.downcast::<TaskReply<T>>().ok()?;
                Some(Ok(reply.value))
            }
        }
    }

    /// Stops the task with `shutdown` and returns its result if it replied meanwhile
    /// (`Task.shutdown/2`).
    pub async fn shutdown(self, p: &Process) -> Option<T> {
        p.unlink(self.pid);
        p.exit(self.pid, ExitReason::Shutdown);
        match self.yield_(p, Duration::from_secs(5)).await {
            Some(Ok(value)) => Some(value),
            _ => None,
        }
    }
}

/// The body of a task: run the job and tell the owner, if there is one.
type Job =
    Box<dyn FnOnce(Process) -> std::pin::Pin<Box<dyn Future<Output = ExitReason> + Send>> + Send>;

impl TaskSupervisorRef {
    /// A handle on `pid`, trusted to be a task supervisor.
    pub fn from_pid(pid: Pid) -> TaskSupervisorRef {
        TaskSupervisorRef {
            sup: DynamicSupervisorRef::from_pid(pid),
        }
    }

    /// Its pid.
    pub fn pid(&self) -> Pid {
        self.sup.pid()
    }

    /// Stops the task supervisor and its tasks (`Task.Supervisor` is a DynamicSupervisor:
    /// see [`DynamicSupervisorRef::stop`]).
    pub async fn stop(&self, p: &Process) -> Result<(), crate::server::StopError> {
        self.sup.stop(p).await
    }

    /// Starts a fire-and-forget task, linked only to the supervisor (docs/behaviours.md item 82). `f` runs
    /// again if the task is restarted (`Restart::Transient` or `Permanent`).
    pub async fn start_child<F, Fut>(
        &self,
        p: &Process,
        restart: Restart,
        shutdown: Shutdown,
        f: F,
    ) -> Result<Pid, DynamicError>
    where
        F: Fn(Process) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let start = Start::new(move |sp| {
            let f = f.clone();
            Box::pin(async move { Ok(Started::Pid(sp.spawn_link(f))) })
        });
        let spec = ChildSpec::worker("task", start)
            .restart(restart)
            .shutdown(shutdown)
            .modules(["Task.Supervised"]);
        let started = self.sup.start_child(p, spec).await?;
        Ok(started.pid().expect("a task start never ignores"))
    }

    /// Starts a task linked to the caller whose result the caller awaits (`async`).
    pub async fn async_<T, F, Fut>(&self, p: &Process, f: F) -> Result<Task<T>, DynamicError>
    where
        T: Send + 'static,
        F: FnOnce(Process) -> Fut + Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        self.spawn_task(p, true, f).await
    }

    /// Starts a task not linked to the caller: its crash comes back as a value
    /// (`async_nolink`, docs/behaviours.md item 81).
    pub async fn async_nolink<T, F, Fut>(&self, p: &Process, f: F) -> Result<Task<T>, DynamicError>
    where
        T: Send + 'static,
        F: FnOnce(Process) -> Fut + Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        self.spawn_task(p, false, f).await
    }

    /// A temporary task that waits for its owner's go-ahead (so that the owner's monitor is
    /// in place before the job runs), then replies to it. If the owner dies first, the task
    /// exits `{shutdown, Reason}` (docs/behaviours.md item 83).
    async fn spawn_task<T, F, Fut>(
        &self,
        p: &Process,
        link: bool,
        f: F,
    ) -> Result<Task<T>, DynamicError>
    where
        T: Send + 'static,
        F: FnOnce(Process) -> Fut + Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        let owner = p.pid();
        let job: Job = Box::new(move |t: Process| {
            Box::pin(async move {
                let owner_ref = t.monitor(owner);
                let go = |m: &Msg| {
                    m.is::<Go>() || matches!(m, Msg::Down { mref, .. } if *mref == owner_ref)
                };
                let go = t.receive_internal(go, None).await;
                let go = go.expect("a receive without a timeout ends with a message");
                let tag = match go.downcast::<Go>() {
                    Ok(Go(tag)) => tag,
                    Err(Msg::Down { reason, .. }) => {
                        return ExitReason::ShutdownWith(reason.to_term())
                    }
                    Err(_) => unreachable!("only Go and the owner's DOWN are accepted"),
                };
                t.demonitor_flush(owner_ref);
                let handle = t.handle_in_body();
                match catch_panic(f(handle)).await {
                    Ok(value) => {
                        t.send(owner, TaskReply { mref: tag, value });
                        ExitReason::Normal
                    }
                    Err(panic) => ExitReason::Panic(panic),
                }
            })
        });
        let job = Arc::new(Mutex::new(Some(job)));
        let start = Start::new(move |sp| {
            let job = job.lock().unwrap_or_else(PoisonError::into_inner).take();
            Box::pin(async move {
                let job = job.ok_or_else(|| crate::term::Term::atom("task_already_run"))?;
                let pid = sp.spawn_link(move |t| async move {
                    if link {
                        let _ = t.link(owner);
                    }
                    job(t).await
                });
                Ok(Started::Pid(pid))
            })
        });
        let spec = ChildSpec::worker("task", start)
            .restart(Restart::Temporary)
            .modules(["Task.Supervised"]);
        let pid = self
            .sup
            .start_child(p, spec)
            .await?
            .pid()
            .expect("a task start never ignores");
        let mref = p.monitor(pid);
        p.send(pid, Go(mref));
        Ok(Task {
            pid,
            mref,
            _result: PhantomData,
        })
    }

    /// Stops a task (docs/behaviours.md item 84).
    pub async fn terminate_child(&self, p: &Process, pid: Pid) -> Result<(), DynamicError> {
        self.sup.terminate_child(p, pid).await
    }

    /// The pids of the running tasks, without restarting ones (docs/behaviours.md item 84).
    pub async fn children(&self, p: &Process) -> Result<Vec<Pid>, DynamicError> {
        let children = self.sup.which_children(p).await?;
        Ok(children
            .into_iter()
            .filter_map(|c| match c.state {
                super::ChildState::Running(pid) => Some(pid),
                _ => None,
            })
            .collect())
    }
}
