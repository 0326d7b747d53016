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

pub use choices::{
    Choices, HeldLog, Hold, NoFaults, ScheduledChoices, SeededChoices, SeededConfig,
};
pub use std::time::Duration;
pub use tokio::time::Instant;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

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

/// A handle on the current executor's clock, for code that reads it often: under madsim,
/// [`now`] goes through the interposed libc `clock_gettime` and a thread-local lookup on
/// every call, while a `Clock` holds the simulator's time source itself.
///
/// ```
/// use otpsim::rt;
/// rt::block_on(1, async {
///     let clock = rt::Clock::current();
///     let t0 = clock.now();
///     rt::sleep(rt::Duration::from_millis(3)).await;
///     assert!(clock.now() - t0 >= rt::Duration::from_millis(3));
/// });
/// ```
#[derive(Clone)]
pub struct Clock {
    #[cfg(madsim)]
    handle: madsim::time::TimeHandle,
}

impl Clock {
    /// The clock of the executor this is called from (inside [`block_on`] or a runtime).
    pub fn current() -> Clock {
        Clock {
            #[cfg(madsim)]
            handle: madsim::time::TimeHandle::current(),
        }
    }

    /// The current time.
    pub fn now(&self) -> Instant {
        #[cfg(madsim)]
        {
            self.handle.now_instant()
        }
        #[cfg(not(madsim))]
        {
            now()
        }
    }

    /// The current time as a [`Mark`] to measure from with [`since`](Clock::since).
    pub fn mark(&self) -> Mark {
        #[cfg(madsim)]
        {
            Mark(self.handle.elapsed())
        }
        #[cfg(not(madsim))]
        {
            Mark(now())
        }
    }

    /// The time since `mark`: the same as `now() - t` for the `Instant` `t` taken at the
    /// mark, and cheaper in the simulator (no `Instant` arithmetic, which is most of what
    /// time-stamping a trace event costs).
    ///
    /// ```
    /// use otpsim::rt::{self, Duration};
    /// rt::block_on(5, async {
    ///     let clock = rt::Clock::current();
    ///     let (mark, t0) = (clock.mark(), clock.now());
    ///     rt::sleep(Duration::from_millis(7)).await;
    ///     let (since, t1) = (clock.since(mark), clock.now());
    ///     assert!(since >= Duration::from_millis(7));
    ///     if rt::SIMULATED {
    ///         assert_eq!(since, t1 - t0);
    ///     }
    /// });
    /// ```
    pub fn since(&self, mark: Mark) -> Duration {
        #[cfg(madsim)]
        {
            self.handle.elapsed().saturating_sub(mark.0)
        }
        #[cfg(not(madsim))]
        {
            now().saturating_duration_since(mark.0)
        }
    }

    /// Waits for `duration` (like [`sleep`]).
    pub async fn sleep(&self, duration: Duration) {
        #[cfg(madsim)]
        {
            SimSleep::new(self.handle.sleep(duration)).await
        }
        #[cfg(not(madsim))]
        {
            sleep(duration).await
        }
    }

    /// Runs `future` for at most `duration`, polling it before the timer (like [`timeout`]).
    /// The timer is a [`Timer`]: natively it is armed only if `future` is still pending after
    /// one turn of the other tasks.
    ///
    /// ```
    /// use otpsim::rt::{self, Duration};
    /// rt::block_on(2, async {
    ///     let clock = rt::Clock::current();
    ///     let t0 = clock.now();
    ///     let never = std::future::pending::<()>();
    ///     assert_eq!(clock.timeout(Duration::from_millis(20), never).await, None);
    ///     assert!(clock.now() - t0 >= Duration::from_millis(20));
    ///     let soon = rt::sleep(Duration::from_millis(1));
    ///     assert_eq!(clock.timeout(Duration::from_secs(5), soon).await, Some(()));
    ///     assert!(clock.now() - t0 < Duration::from_secs(5));
    /// });
    /// ```
    pub async fn timeout<F: Future>(&self, duration: Duration, future: F) -> Option<F::Output> {
        let mut future = std::pin::pin!(future);
        let mut timer = Timer::after(duration);
        std::future::poll_fn(|cx| match future.as_mut().poll(cx) {
            Poll::Ready(out) => Poll::Ready(Some(out)),
            Poll::Pending => timer.poll_elapsed(self, cx).map(|()| None),
        })
        .await
    }
}

/// A point on a [`Clock`], to measure the time since it.
#[derive(Clone, Copy, Debug)]
pub struct Mark(#[cfg(madsim)] Duration, #[cfg(not(madsim))] Instant);

/// The timer of a wait that usually ends before it fires (a call's timeout, a shutdown's):
/// small (24 bytes natively, its sleep boxed once armed), and armed as late as it can be.
///
/// Its deadline counts from its first poll. Natively it is armed only at its second poll: the
/// first one yields a turn to the other tasks, within which most calls are answered, and a
/// timer armed and cleared for each of them would cost a sixth of a call. In the simulator it
/// is armed at its first poll.
///
/// ```
/// use otpsim::rt::{self, Duration, Timer};
/// rt::block_on(3, async {
///     let clock = rt::Clock::current();
///     let t0 = clock.now();
///     let mut timer = Timer::after(Duration::from_millis(10));
///     std::future::poll_fn(|cx| timer.poll_elapsed(&clock, cx)).await;
///     assert!(clock.now() - t0 >= Duration::from_millis(10));
/// });
/// ```
pub struct Timer {
    state: TimerState,
}

enum TimerState {
    /// Not polled yet.
    Idle(Duration),
    /// Natively, after the first poll: the deadline is set, the timer not armed yet.
    #[cfg(not(madsim))]
    Due(Instant),
    Armed(ArmedSleep),
}

/// madsim's sleep is `Unpin` and is kept inline; tokio's is not, and is boxed (only a wait
/// that outlasts its first turn gets one).
#[cfg(madsim)]
type ArmedSleep = SimSleep;
#[cfg(not(madsim))]
type ArmedSleep = Pin<Box<tokio::time::Sleep>>;

/// A simulated sleep that registers one madsim timer per waiting task.
///
/// madsim's `Sleep` adds a timer (a boxed callback in a heap, which madsim cannot cancel) at
/// every pending poll: a process that sleeps or waits with a timeout and is woken by each of
/// its messages would pile up timers that all fire at the same deadline. Once a timer is
/// registered for the task polling, a pending poll only reads the clock.
#[cfg(madsim)]
pub(crate) struct SimSleep {
    sleep: madsim::time::Sleep,
    /// The waker that madsim's timer for `sleep` wakes, once one is registered.
    registered: Option<std::task::Waker>,
}

#[cfg(madsim)]
impl SimSleep {
    fn new(sleep: madsim::time::Sleep) -> SimSleep {
        SimSleep {
            sleep,
            registered: None,
        }
    }
}

#[cfg(madsim)]
impl Future for SimSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        match &this.registered {
            Some(waker) if waker.will_wake(cx.waker()) => {
                if this.sleep.is_elapsed() {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            }
            _ => {
                let polled = Pin::new(&mut this.sleep).poll(cx);
                if polled.is_pending() {
                    this.registered = Some(cx.waker().clone());
                }
                polled
            }
        }
    }
}

impl Timer {
    /// A timer that fires `duration` after its first poll.
    pub fn after(duration: Duration) -> Timer {
        Timer {
            state: TimerState::Idle(duration),
        }
    }

    /// `Ready` once the timer has fired; the waker of `cx` is woken then.
    pub fn poll_elapsed(&mut self, clock: &Clock, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            match &mut self.state {
                TimerState::Idle(duration) => {
                    #[cfg(madsim)]
                    {
                        self.state =
                            TimerState::Armed(SimSleep::new(clock.handle.sleep(*duration)));
                    }
                    #[cfg(not(madsim))]
                    {
                        self.state = TimerState::Due(clock.now() + *duration);
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                }
                #[cfg(not(madsim))]
                TimerState::Due(deadline) => {
                    let _ = clock;
                    self.state = TimerState::Armed(Box::pin(tokio::time::sleep_until(*deadline)));
                }
                #[cfg(madsim)]
                TimerState::Armed(sleep) => return Pin::new(sleep).poll(cx),
                #[cfg(not(madsim))]
                TimerState::Armed(sleep) => return sleep.as_mut().poll(cx),
            }
        }
    }
}

/// Waits for `duration` on the executor's clock.
pub async fn sleep(duration: Duration) {
    #[cfg(madsim)]
    {
        SimSleep::new(madsim::time::sleep(duration)).await
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
        SimSleep::new(madsim::time::sleep_until(deadline)).await
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

/// Waits until `deadline` or until `notify` is notified, whichever comes first.
/// (A hand-written, biased select: the timer is polled first, no RNG is drawn.)
pub async fn sleep_until_notified(deadline: Instant, notify: &sync::Notify) {
    let mut sleep = std::pin::pin!(sleep_until(deadline));
    let mut notified = std::pin::pin!(notify.notified());
    std::future::poll_fn(|cx| {
        if sleep.as_mut().poll(cx).is_ready() || notified.as_mut().poll(cx).is_ready() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    /// A waker that counts how often it is woken.
    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }

        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A simulated sleep polled again by the task it registered a timer for adds no timer
    /// (madsim's would add one per poll, each waking the task at the deadline); polled by
    /// another task, it registers one for that task too.
    #[cfg(madsim)]
    #[test]
    fn a_simulated_sleep_registers_one_timer_per_task() {
        block_on(6, async {
            let (a, b) = (
                Arc::new(Counter(AtomicUsize::new(0))),
                Arc::new(Counter(AtomicUsize::new(0))),
            );
            let (wa, wb) = (
                std::task::Waker::from(a.clone()),
                std::task::Waker::from(b.clone()),
            );
            let mut sleep = std::pin::pin!(SimSleep::new(madsim::time::sleep(
                Duration::from_millis(10)
            )));
            for _ in 0..3 {
                assert!(sleep
                    .as_mut()
                    .poll(&mut Context::from_waker(&wa))
                    .is_pending());
            }
            assert!(sleep
                .as_mut()
                .poll(&mut Context::from_waker(&wb))
                .is_pending());
            sleep_until(Clock::current().now() + Duration::from_millis(20)).await;
            assert_eq!(
                a.0.load(Ordering::Relaxed),
                1,
                "one timer for the first task"
            );
            assert_eq!(b.0.load(Ordering::Relaxed), 1, "one for the second");
            assert!(sleep
                .as_mut()
                .poll(&mut Context::from_waker(&wb))
                .is_ready());
        });
    }

    /// Natively, a timer's first poll sets its deadline and yields (it wakes its task once)
    /// without arming; its second arms it. In the simulator the first poll arms it. Armed,
    /// it fires.
    #[test]
    fn a_timer_arms_at_its_second_poll_natively_and_at_its_first_in_the_simulator() {
        block_on(4, async {
            let clock = Clock::current();
            let counter = Arc::new(Counter(AtomicUsize::new(0)));
            let waker = std::task::Waker::from(counter.clone());
            let mut cx = Context::from_waker(&waker);
            let mut timer = Timer::after(Duration::ZERO);
            assert!(timer.poll_elapsed(&clock, &mut cx).is_pending());
            if SIMULATED {
                assert!(matches!(timer.state, TimerState::Armed(_)));
                assert_eq!(counter.0.load(Ordering::Relaxed), 0);
            } else {
                assert!(!matches!(timer.state, TimerState::Armed(_)));
                assert_eq!(counter.0.load(Ordering::Relaxed), 1, "it yields a turn");
                let _ = timer.poll_elapsed(&clock, &mut cx);
                assert!(matches!(timer.state, TimerState::Armed(_)));
            }
            // Armed, it fires (its deadline has passed).
            std::future::poll_fn(|cx| timer.poll_elapsed(&clock, cx)).await;
        });
    }
}
