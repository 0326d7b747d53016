//! The executor task behind every process: steps it, catches its panics, and turns its end
//! into an exit.

use super::node::{Node, Step};
use super::reason::panic_message;
use super::{ExitReason, IntoExitReason, Process};
use crate::term::Pid;
use std::cell::Cell;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Once;
use std::task::{Context, Poll};

/// The future the executor runs for one process: steps it under the node's control, builds its
/// body at the first step (so that a panic in `body` itself is caught too), catches its
/// panics, and turns its end into an exit.
///
/// The body lives inline in this future, so a process is one executor allocation: no boxed
/// body, no boxed constructor. (Not an `async fn`: its arguments would be kept for the whole
/// life of the process next to the body built from them.)
#[allow(clippy::manual_async_fn)]
pub(super) fn process_task<F, Fut>(
    node: Node,
    pid: Pid,
    process: Process,
    body: F,
) -> impl Future<Output = ()> + Send + 'static
where
    F: FnOnce(Process) -> Result<Fut, ExitReason> + Send + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: IntoExitReason,
{
    let mut start = Some(move || body(process));
    async move {
        let mut running = std::pin::pin!(None::<Fut>);
        std::future::poll_fn(|cx| {
            let reason = match node.begin_step(pid, cx.waker()) {
                Step::Halted => {
                    running.set(None);
                    return Poll::Ready(());
                }
                Step::Exit(reason) => reason,
                Step::Run => match step(&node, pid, cx, &mut start, running.as_mut()) {
                    Ok(Poll::Pending) => return Poll::Pending,
                    Ok(Poll::Ready(reason)) => reason,
                    Err(payload) => ExitReason::Panic(panic_message(&*payload)),
                },
            };
            // Drop the body first, outside the node lock: its destructors may use the node.
            running.set(None);
            start = None;
            node.finish(pid, reason);
            Poll::Ready(())
        })
        .await
    }
}

/// One step of a process's body, built first if this is its first step; a panic comes back
/// as its payload.
fn step<Fut>(
    node: &Node,
    pid: Pid,
    cx: &mut Context<'_>,
    start: &mut Option<impl FnOnce() -> Result<Fut, ExitReason>>,
    mut running: Pin<&mut Option<Fut>>,
) -> Result<Poll<ExitReason>, Box<dyn std::any::Any + Send>>
where
    Fut: Future,
    Fut::Output: IntoExitReason,
{
    node.run_as(pid, || {
        in_process(node.quiet_panics(), || {
            catch_unwind(AssertUnwindSafe(|| {
                if let Some(start) = start.take() {
                    match start() {
                        Ok(body) => running.set(Some(body)),
                        Err(reason) => return Poll::Ready(reason),
                    }
                }
                running
                    .as_mut()
                    .as_pin_mut()
                    .expect("a running process has a body")
                    .poll(cx)
                    .map(IntoExitReason::into_exit_reason)
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
pub(crate) async fn catch_panic<F: Future>(fut: F) -> Result<F::Output, String> {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(
        move |cx| match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(panic_message(&*payload))),
        },
    )
    .await
}
