//! The executor task behind every process: steps it, catches its panics, and turns its end
//! into an exit.

use super::node::{Node, Step};
use super::reason::panic_message;
use super::{ExitReason, IntoExitReason, Process};
use crate::term::Pid;
use pin_project_lite::pin_project;
use std::cell::Cell;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Once;
use std::task::{Context, Poll};

pin_project! {
    /// The future the executor runs for one process: steps it under the node's control,
    /// builds its body at the first step (so that a panic in the body's constructor is caught
    /// too), catches its panics, and turns its end into an exit.
    ///
    /// The body lives inline, its constructor and then its future in the same place: a
    /// process is one executor allocation.
    pub(super) struct ProcessTask<F, Fut> {
        node: Node,
        pid: Pid,
        #[pin]
        stage: Stage<F, Fut>,
    }
}

pin_project! {
    #[project = StageProj]
    #[project_replace = StageReplace]
    enum Stage<F, Fut> {
        /// Not stepped yet: the constructor of the body.
        Start { make: F },
        Running { #[pin] body: Fut },
        /// Exited, or halted; the body is dropped.
        Done,
    }
}

impl<F, Fut> ProcessTask<F, Fut>
where
    F: FnOnce(Process) -> Result<Fut, ExitReason>,
    Fut: Future,
    Fut::Output: IntoExitReason,
{
    /// The task of the process `pid`, whose body `make` builds (or refuses to start with
    /// `Err(reason)`: the process exits at once).
    pub(super) fn new(node: Node, pid: Pid, make: F) -> Self {
        ProcessTask {
            node,
            pid,
            stage: Stage::Start { make },
        }
    }
}

impl<F, Fut> Future for ProcessTask<F, Fut>
where
    F: FnOnce(Process) -> Result<Fut, ExitReason>,
    Fut: Future,
    Fut::Output: IntoExitReason,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        let (node, pid, mut stage) = (&*this.node, *this.pid, this.stage);
        let reason = match node.begin_step(pid, cx.waker()) {
            Step::Halted => {
                stage.set(Stage::Done);
                return Poll::Ready(());
            }
            Step::Exit(reason) => reason,
            Step::Run => match step(node, pid, cx, stage.as_mut()) {
                Ok(Poll::Pending) => return Poll::Pending,
                Ok(Poll::Ready(reason)) => reason,
                Err(payload) => ExitReason::Panic(panic_message(payload)),
            },
        };
        // Drop the body first, outside the node lock: its destructors may use the node.
        stage.set(Stage::Done);
        node.finish(pid, reason);
        Poll::Ready(())
    }
}

/// One step of a process's body, built first if this is its first step; a panic comes back
/// as its payload.
fn step<F, Fut>(
    node: &Node,
    pid: Pid,
    cx: &mut Context<'_>,
    mut stage: Pin<&mut Stage<F, Fut>>,
) -> Result<Poll<ExitReason>, Box<dyn std::any::Any + Send>>
where
    F: FnOnce(Process) -> Result<Fut, ExitReason>,
    Fut: Future,
    Fut::Output: IntoExitReason,
{
    node.run_as(pid, || {
        in_process(node.quiet_panics(), || {
            catch_unwind(AssertUnwindSafe(|| {
                if let StageProj::Start { .. } = stage.as_mut().project() {
                    let StageReplace::Start { make } = stage.as_mut().project_replace(Stage::Done)
                    else {
                        unreachable!("the stage was Start");
                    };
                    match make(Process::new(node.clone(), pid)) {
                        Ok(body) => stage.set(Stage::Running { body }),
                        Err(reason) => return Poll::Ready(reason),
                    }
                }
                match stage.project() {
                    StageProj::Running { body } => {
                        body.poll(cx).map(IntoExitReason::into_exit_reason)
                    }
                    _ => unreachable!("a process is stepped only until it exits"),
                }
            }))
        })
    })
}

thread_local! {
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with panics silenced (when `quiet`): a process's panic is its exit reason, and
/// printing thousands of them would drown a campaign and slow it fourfold.
fn in_process<R>(quiet: bool, f: impl FnOnce() -> R) -> R {
    if !quiet {
        return f();
    }
    install_quiet_hook();
    let before = QUIET.with(|q| q.replace(true));
    let r = f();
    QUIET.with(|q| q.set(before));
    r
}

fn install_quiet_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(|q| q.get()) {
                previous(info);
            }
        }));
    });
}

/// Runs `fut`, turning a panic inside it into `Err(message)` (a handler's panic becomes the
/// server's exit reason after `terminate`, as an exception does in gen_server).
pub(crate) fn catch_panic<F: Future>(fut: F) -> CatchPanic<F> {
    CatchPanic { fut }
}

pin_project! {
    /// The future of [`catch_panic`]: the same size as the future it runs.
    pub(crate) struct CatchPanic<F> {
        #[pin]
        fut: F,
    }
}

impl<F: Future> Future for CatchPanic<F> {
    type Output = Result<F::Output, String>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut = self.project().fut;
        match catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(panic_message(payload))),
        }
    }
}
