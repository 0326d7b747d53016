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

type Body = Pin<Box<dyn Future<Output = ExitReason> + Send>>;

/// The future the executor runs for one process.
pub(super) struct ProcessTask {
    node: Node,
    pid: Pid,
    body: Option<Body>,
    /// The body's constructor, run at the first step so that a panic in it is caught too.
    start: Option<Box<dyn FnOnce() -> Body + Send>>,
}

impl ProcessTask {
    pub(super) fn new<F, Fut>(node: Node, pid: Pid, process: Process, body: F) -> ProcessTask
    where
        F: FnOnce(Process) -> Fut + Send + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: IntoExitReason,
    {
        let start = move || -> Body {
            let fut = body(process);
            Box::pin(async move { fut.await.into_exit_reason() })
        };
        ProcessTask {
            node,
            pid,
            body: None,
            start: Some(Box::new(start)),
        }
    }

    fn exit(&mut self, reason: ExitReason) -> Poll<()> {
        // Drop the body first, outside the node lock: its destructors may use the node.
        self.body = None;
        self.start = None;
        self.node.finish(self.pid, reason);
        Poll::Ready(())
    }
}

impl Future for ProcessTask {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.node.begin_step(self.pid, cx.waker()) {
            Step::Halted => {
                self.body = None;
                self.start = None;
                return Poll::Ready(());
            }
            Step::Exit(reason) => return self.exit(reason),
            Step::Run => {}
        }
        let this = &mut *self;
        let (node, start, body) = (&this.node, &mut this.start, &mut this.body);
        let quiet = node.quiet_panics();
        let outcome = node.run_as(this.pid, || {
            in_process(quiet, || {
                catch_unwind(AssertUnwindSafe(|| {
                    if let Some(start) = start.take() {
                        *body = Some(start());
                    }
                    let body = body.as_mut().expect("a running process has a body");
                    body.as_mut().poll(cx)
                }))
            })
        });
        match outcome {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(reason)) => self.exit(reason),
            Err(payload) => self.exit(ExitReason::Panic(panic_message(&*payload))),
        }
    }
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
