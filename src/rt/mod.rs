//! The executor seam: the only module that touches madsim or tokio.
//!
//! Everything a process needs from an executor goes through here: spawning a task, the clock,
//! timers, and the **choice points** where a simulator may decide (see [`Choices`]). The code is
//! written once against the `madsim-tokio` API, which is real tokio in a native build
//! (`cargo test-native`, `cargo run-native`) and madsim under `--cfg madsim` (plain `cargo test`).
//!
//! ```
//! use otpsim::rt;
//! let elapsed = rt::block_on(7, async {
//!     let t0 = rt::now();
//!     rt::sleep(rt::Duration::from_millis(5)).await;
//!     rt::now() - t0
//! });
//! assert!(elapsed >= rt::Duration::from_millis(5));
//! ```

mod choices;
mod clock;

pub use choices::{
    Choices, HeldLog, Hold, NoFaults, ScheduledChoices, SeededChoices, SeededConfig,
};
pub use clock::{Clock, Mark, Skew, Timer, MAX_DRIFT_PPM};
pub use std::time::Duration;
pub use tokio::time::Instant;

use std::future::Future;

/// Synchronisation primitives that work natively and inside the simulator.
pub mod sync {
    pub use tokio::sync::{oneshot, Notify};
}

/// Whether this build runs under the deterministic simulator (`--cfg madsim`).
pub const SIMULATED: bool = cfg!(madsim);

/// Spawns a detached task on the current executor.
///
/// A panic that escapes the task (a process catches its own; an otpsim `InternalError` is
/// raised again on purpose) fails the whole run: madsim raises it out of [`block_on`], and
/// natively [`block_on`] does the same instead of leaving it in a dropped join handle while
/// the run waits forever for the task.
pub fn spawn<F>(future: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    #[cfg(madsim)]
    drop(tokio::spawn(future));
    #[cfg(not(madsim))]
    drop(tokio::spawn(escaped::Catch { future }));
}

/// A simulated machine: the tasks spawned on it run, pause and resume together (a madsim
/// node). A cluster's nodes each run on their own, so that pausing one (`SIGSTOP`) stops
/// exactly its processes and timers. Natively there is one machine, the OS process.
#[derive(Clone)]
pub struct Machine {
    #[cfg(madsim)]
    node: madsim::runtime::NodeHandle,
}

impl Machine {
    /// A new machine, inside the running simulation (natively: this process).
    pub fn new(name: &str) -> Machine {
        #[cfg(madsim)]
        {
            let node = madsim::runtime::Handle::current()
                .create_node()
                .name(name)
                .build();
            Machine { node }
        }
        #[cfg(not(madsim))]
        {
            let _ = name;
            Machine {}
        }
    }

    /// A new machine with a network address (madsim's TCP reaches it there; natively the
    /// address is ignored).
    pub fn with_ip(name: &str, ip: std::net::IpAddr) -> Machine {
        #[cfg(madsim)]
        {
            let node = madsim::runtime::Handle::current()
                .create_node()
                .name(name)
                .ip(ip)
                .build();
            Machine { node }
        }
        #[cfg(not(madsim))]
        {
            let _ = ip;
            Machine::new(name)
        }
    }

    /// Kills every task of this machine at once (a power cut: its sockets close). Natively a
    /// no-op.
    pub fn kill(&self) {
        #[cfg(madsim)]
        madsim::runtime::Handle::current().kill(self.node.id());
    }

    /// Nothing gets between this machine and `other` on madsim's network, either way, until
    /// [`unclog`](Self::unclog). Natively a no-op.
    pub fn clog(&self, other: &Machine) {
        #[cfg(madsim)]
        {
            let net = madsim::net::NetSim::current();
            net.clog_link(self.node.id(), other.node.id());
            net.clog_link(other.node.id(), self.node.id());
        }
        #[cfg(not(madsim))]
        let _ = other;
    }

    /// Ends a [`clog`](Self::clog).
    pub fn unclog(&self, other: &Machine) {
        #[cfg(madsim)]
        {
            let net = madsim::net::NetSim::current();
            net.unclog_link(self.node.id(), other.node.id());
            net.unclog_link(other.node.id(), self.node.id());
        }
        #[cfg(not(madsim))]
        let _ = other;
    }

    /// Spawns a detached task on this machine (see [`spawn`]).
    pub fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        #[cfg(madsim)]
        drop(self.node.spawn(future));
        #[cfg(not(madsim))]
        spawn(future);
    }

    /// Stops running this machine's tasks until [`resume`](Self::resume); their timers wait.
    /// Natively a no-op.
    pub fn pause(&self) {
        #[cfg(madsim)]
        madsim::runtime::Handle::current().pause(self.node.id());
    }

    /// Runs this machine's tasks again.
    pub fn resume(&self) {
        #[cfg(madsim)]
        madsim::runtime::Handle::current().resume(self.node.id());
    }
}

impl std::fmt::Debug for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Machine")
    }
}

/// Natively, a panic that escapes a spawned task, kept for [`block_on`] to raise again.
#[cfg(not(madsim))]
mod escaped {
    use std::any::Any;
    use std::cell::RefCell;
    use std::future::Future;
    use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};

    type Payload = Box<dyn Any + Send>;

    thread_local! {
        /// The first escaped panic of the current-thread runtime, and the waker of its
        /// `block_on` future. Tasks of a current-thread runtime run on the thread that blocks.
        static ESCAPED: RefCell<(Option<Payload>, Option<Waker>)> =
            const { RefCell::new((None, None)) };
    }

    pin_project_lite::pin_project! {
        /// A spawned task whose panic is kept instead of being lost in its join handle.
        pub(super) struct Catch<F> {
            #[pin]
            pub(super) future: F,
        }
    }

    impl<F: Future<Output = ()>> Future for Catch<F> {
        type Output = ();

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            let future = self.project().future;
            match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
                Ok(poll) => poll,
                Err(payload) => {
                    ESCAPED.with(|e| {
                        let mut e = e.borrow_mut();
                        e.0.get_or_insert(payload);
                        if let Some(waker) = e.1.take() {
                            waker.wake();
                        }
                    });
                    Poll::Ready(())
                }
            }
        }
    }

    /// Forgets what a previous run left.
    pub(super) fn clear() {
        ESCAPED.with(|e| *e.borrow_mut() = (None, None));
    }

    /// Raises an escaped panic again, here; or registers to be woken by the next one.
    pub(super) fn raise_or_register(cx: &Context<'_>) {
        let payload = ESCAPED.with(|e| {
            let mut e = e.borrow_mut();
            let payload = e.0.take();
            if payload.is_none() {
                e.1 = Some(cx.waker().clone());
            }
            payload
        });
        if let Some(payload) = payload {
            resume_unwind(payload);
        }
    }
}

/// The current time of the executor's clock (simulated under madsim).
#[allow(clippy::disallowed_methods)] // the seam itself: simulated under madsim
pub fn now() -> Instant {
    Instant::now()
}

/// Waits for `duration` on the executor's clock.
pub async fn sleep(duration: Duration) {
    #[cfg(madsim)]
    {
        clock::SimSleep::new(madsim::time::sleep(duration)).await
    }
    #[cfg(not(madsim))]
    {
        tokio::time::sleep(duration).await
    }
}

/// Waits until `deadline` on the executor's clock.
pub async fn sleep_until(deadline: Instant) {
    #[cfg(madsim)]
    {
        clock::SimSleep::new(madsim::time::sleep_until(deadline)).await
    }
    #[cfg(not(madsim))]
    {
        tokio::time::sleep_until(deadline).await
    }
}

/// Runs `future` for at most `duration`; `None` when the time ran out first.
pub async fn timeout<F: Future>(duration: Duration, future: F) -> Option<F::Output> {
    tokio::time::timeout(duration, future).await.ok()
}

/// Waits until `deadline` or until `notify` is notified, whichever comes first (see
/// [`Clock::sleep_until_notified`]).
pub async fn sleep_until_notified(deadline: Instant, notify: &sync::Notify) {
    Clock::current()
        .sleep_until_notified(deadline, notify)
        .await
}

/// Gives other tasks a chance to run.
pub async fn yield_now() {
    tokio::task::yield_now().await
}

/// Runs `future` to completion on a fresh executor and returns its output.
///
/// Under madsim this is a fresh simulated world whose scheduling, clock and randomness are all
/// fixed by `seed`; natively it is a current-thread tokio runtime and `seed` is unused.
pub fn block_on<F: Future>(seed: u64, future: F) -> F::Output {
    block_on_limited(seed, None, future)
}

/// Like [`block_on`], with a limit on simulated time after which the simulator panics
/// (`time limit exceeded`). Natively the limit is not enforced.
pub fn block_on_limited<F: Future>(
    seed: u64,
    time_limit: Option<Duration>,
    future: F,
) -> F::Output {
    #[cfg(madsim)]
    {
        let mut runtime =
            madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
        if let Some(limit) = time_limit {
            runtime.set_time_limit(limit);
        }
        runtime.block_on(future)
    }
    #[cfg(not(madsim))]
    {
        let _ = (seed, time_limit);
        escaped::clear();
        let mut future = std::pin::pin!(future);
        let mut builder = tokio::runtime::Builder::new_current_thread();
        builder.enable_time();
        // The TCP transport's sockets (`dist::tcp`).
        #[cfg(feature = "tcp")]
        builder.enable_io();
        builder
            .build()
            .expect("a current-thread tokio runtime can always be built")
            .block_on(std::future::poll_fn(|cx| {
                escaped::raise_or_register(cx);
                future.as_mut().poll(cx)
            }))
    }
}
