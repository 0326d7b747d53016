//! Clocks and timers: the executor's time, as a node reads it.
//!
//! A [`Clock`] is the executor's time source (simulated under madsim). A clock made
//! [`skewed`](Clock::skewed) by a [`Skew`] is a machine's own: it runs fast or slow by a fixed
//! drift, and its wall time ([`Clock::system_time`]) jumps when the skew does, as a host whose
//! oscillator is off and whose NTP steps the system clock. Its monotonic time ([`Clock::now`])
//! and every timer on it drift, and never jump, as Erlang's `erlang:monotonic_time/0` and
//! timers do (docs/architecture.md, "Time").

use super::{Duration, Instant};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

/// How a machine's clock differs from true time: a drift in parts per million (positive:
/// fast), and an offset of its wall time that [`jump`](Skew::jump)s move. Clones share the
/// offset, so that whoever holds one (a cluster's fault injector) moves the clocks made from it;
/// it outlives the clocks, as a host's clock outlives a restart of its node.
///
/// ```
/// use otpsim::rt::{self, Clock, Duration, Skew};
/// rt::block_on(8, async {
///     let skew = Skew::new(100_000); // 10% fast
///     let clock = Clock::current().skewed(&skew);
///     let (t0, wall0, true0) = (clock.now(), clock.system_time(), rt::now());
///     clock.sleep(Duration::from_millis(110)).await; // 100 ms of true time
///     if rt::SIMULATED {
///         assert!(rt::now() - true0 < Duration::from_millis(102));
///     }
///     assert!(clock.now() - t0 >= Duration::from_millis(110));
///     skew.jump(-60_000); // the wall clock goes back a minute; monotonic time does not
///     assert!(clock.now() - t0 >= Duration::from_millis(110));
///     assert!(clock.system_time() < wall0);
/// });
/// ```
#[derive(Clone, Debug)]
pub struct Skew(Arc<SkewState>);

#[derive(Debug)]
struct SkewState {
    drift_ppm: i32,
    wall_offset_ms: AtomicI64,
}

/// The largest drift a [`Skew`] takes, either way: 10% (real oscillators are off by tens of
/// parts per million; a simulation may want far more, and nothing sensible needs more).
pub const MAX_DRIFT_PPM: i32 = 100_000;

impl Skew {
    /// A clock `drift_ppm` parts per million fast (negative: slow), its wall time where the
    /// executor's is.
    ///
    /// # Panics
    ///
    /// If the drift exceeds [`MAX_DRIFT_PPM`] either way.
    pub fn new(drift_ppm: i32) -> Skew {
        assert!(
            drift_ppm.abs() <= MAX_DRIFT_PPM,
            "a clock drift of {drift_ppm} ppm: at most {MAX_DRIFT_PPM} either way"
        );
        Skew(Arc::new(SkewState {
            drift_ppm,
            wall_offset_ms: AtomicI64::new(0),
        }))
    }

    /// Its drift in parts per million.
    pub fn drift_ppm(&self) -> i32 {
        self.0.drift_ppm
    }

    /// Moves the wall time of every clock made with this skew by `ms` milliseconds (forward
    /// if positive). Monotonic time and timers do not move.
    pub fn jump(&self, ms: i64) {
        self.0.wall_offset_ms.fetch_add(ms, Ordering::Relaxed);
    }

    /// How far the jumps so far have moved the wall time, in milliseconds.
    pub fn wall_offset_ms(&self) -> i64 {
        self.0.wall_offset_ms.load(Ordering::Relaxed)
    }

    /// `elapsed` true time as this clock counts it.
    fn local(&self, elapsed: Duration) -> Duration {
        let nanos = elapsed.as_nanos() as i128;
        let skewed = nanos + nanos * i128::from(self.0.drift_ppm) / 1_000_000;
        nanos_to_duration(skewed)
    }

    /// The true time it takes this clock to count `local`: never shorter (rounded up, and a
    /// nanosecond more when it drifts, so that a timer never fires before its deadline).
    fn truth(&self, local: Duration) -> Duration {
        let ppm = i128::from(self.0.drift_ppm);
        if ppm == 0 {
            return local;
        }
        let rate = 1_000_000 + ppm;
        let nanos = local.as_nanos() as i128 * 1_000_000;
        nanos_to_duration((nanos + rate - 1) / rate + 1)
    }
}

fn nanos_to_duration(nanos: i128) -> Duration {
    let nanos = nanos.clamp(0, i128::from(u64::MAX));
    Duration::from_nanos(nanos as u64)
}

/// A handle on the current executor's clock, for code that reads it often: under madsim,
/// [`now`](super::now) goes through the interposed libc `clock_gettime` and a thread-local
/// lookup on every call, while a `Clock` holds the simulator's time source itself.
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
    /// A machine's skew, and the true time from which its clock drifts.
    skew: Option<(Skew, Instant)>,
}

impl Clock {
    /// The clock of the executor this is called from (inside [`block_on`](super::block_on)
    /// or a runtime).
    pub fn current() -> Clock {
        Clock {
            #[cfg(madsim)]
            handle: madsim::time::TimeHandle::current(),
            skew: None,
        }
    }

    /// This clock as a machine with `skew` reads it, drifting from now on (see [`Skew`]).
    pub fn skewed(&self, skew: &Skew) -> Clock {
        let mut clock = self.clone();
        clock.skew = Some((skew.clone(), self.true_now()));
        clock
    }

    /// The executor's time, without skew.
    fn true_now(&self) -> Instant {
        #[cfg(madsim)]
        {
            self.handle.now_instant()
        }
        #[cfg(not(madsim))]
        {
            super::now()
        }
    }

    /// The current time: monotonic, drifting with the clock's skew.
    pub fn now(&self) -> Instant {
        let now = self.true_now();
        match &self.skew {
            Some((skew, origin)) if skew.drift_ppm() != 0 => *origin + skew.local(now - *origin),
            _ => now,
        }
    }

    /// The wall time (the OS's `CLOCK_REALTIME`, Erlang's `os:system_time/0`): drifting with
    /// the clock's skew, and moved by its jumps.
    pub fn system_time(&self) -> SystemTime {
        #[cfg(madsim)]
        let wall = self.handle.now_time();
        #[cfg(not(madsim))]
        #[allow(clippy::disallowed_methods)] // the seam itself
        let wall = SystemTime::now();
        let Some((skew, origin)) = &self.skew else {
            return wall;
        };
        let elapsed = self.true_now() - *origin;
        let drift = skew.local(elapsed).as_nanos() as i128 - elapsed.as_nanos() as i128;
        let offset = drift + i128::from(skew.wall_offset_ms()) * 1_000_000;
        if offset >= 0 {
            wall + nanos_to_duration(offset)
        } else {
            wall.checked_sub(nanos_to_duration(-offset))
                .unwrap_or(SystemTime::UNIX_EPOCH)
        }
    }

    /// The true time it takes this clock to count `local`.
    fn truth(&self, local: Duration) -> Duration {
        match &self.skew {
            None => local,
            Some((skew, _)) => skew.truth(local),
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
            Mark(super::now())
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
        let elapsed = self.handle.elapsed().saturating_sub(mark.0);
        #[cfg(not(madsim))]
        let elapsed = super::now().saturating_duration_since(mark.0);
        match &self.skew {
            None => elapsed,
            Some((skew, _)) => skew.local(elapsed),
        }
    }

    /// Waits for `duration` on this clock (like [`sleep`](super::sleep)).
    pub async fn sleep(&self, duration: Duration) {
        let duration = self.truth(duration);
        #[cfg(madsim)]
        {
            SimSleep::new(self.handle.sleep(duration)).await
        }
        #[cfg(not(madsim))]
        {
            super::sleep(duration).await
        }
    }

    /// The true instant at which this clock reads `deadline`.
    fn true_deadline(&self, deadline: Instant) -> Instant {
        match &self.skew {
            Some((skew, _)) if skew.drift_ppm() != 0 => {
                let (now, local) = (self.true_now(), self.now());
                now + self.truth(deadline.saturating_duration_since(local))
            }
            _ => deadline,
        }
    }

    /// Waits until this clock reads `deadline`, or until `notify` is notified, whichever
    /// comes first. (A hand-written, biased select: the timer is polled first, no RNG is
    /// drawn.)
    pub async fn sleep_until_notified(&self, deadline: Instant, notify: &super::sync::Notify) {
        let mut sleep = std::pin::pin!(super::sleep_until(self.true_deadline(deadline)));
        let mut notified = std::pin::pin!(notify.notified());
        std::future::poll_fn(|cx| {
            if sleep.as_mut().poll(cx).is_ready() || notified.as_mut().poll(cx).is_ready() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// Runs `future` for at most `duration`, polling it before the timer (like
    /// [`timeout`](super::timeout)). The timer is a [`Timer`]: natively it is armed only if
    /// `future` is still pending after one turn of the other tasks.
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
    pub(crate) fn new(sleep: madsim::time::Sleep) -> SimSleep {
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
                        self.state = TimerState::Armed(SimSleep::new(
                            clock.handle.sleep(clock.truth(*duration)),
                        ));
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
                    let deadline = clock.true_deadline(*deadline);
                    self.state = TimerState::Armed(Box::pin(tokio::time::sleep_until(deadline)));
                }
                #[cfg(madsim)]
                TimerState::Armed(sleep) => return Pin::new(sleep).poll(cx),
                #[cfg(not(madsim))]
                TimerState::Armed(sleep) => return sleep.as_mut().poll(cx),
            }
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::rt::{block_on, SIMULATED};
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
            crate::rt::sleep_until(Clock::current().now() + Duration::from_millis(20)).await;
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

    /// A clock 5% slow counts 100 ms in about 105.3 ms of true time: its timers (a sleep, a
    /// timeout, a deadline) fire late in true time and on time by its own reading; a clock
    /// 5% fast fires them early. Jumps move only the wall time. (Simulated time only: the
    /// windows are exact there, and a native run would time the OS's scheduler.)
    #[cfg(madsim)]
    #[test]
    fn a_skewed_clock_drifts_its_timers_and_jumps_only_its_wall_time() {
        block_on(9, async {
            let true_clock = Clock::current();
            for (ppm, low, high) in [(-50_000, 105, 106), (50_000, 95, 96)] {
                let skew = Skew::new(ppm);
                let clock = true_clock.skewed(&skew);
                let (t0, local0) = (true_clock.now(), clock.now());
                clock.sleep(Duration::from_millis(100)).await;
                let took = true_clock.now() - t0;
                assert!(clock.now() - local0 >= Duration::from_millis(100));
                let millis = |d: Duration| d.as_secs_f64() * 1000.0;
                assert!(
                    (low as f64..high as f64 + 1.0).contains(&millis(took)),
                    "{ppm} ppm: 100 ms took {took:?}"
                );
                let t1 = true_clock.now();
                let never = std::future::pending::<()>();
                assert_eq!(clock.timeout(Duration::from_millis(100), never).await, None);
                let took = true_clock.now() - t1;
                assert!((low as f64..high as f64 + 1.0).contains(&millis(took)));
                let wall = clock.system_time();
                skew.jump(3_600_000);
                let ahead = clock.system_time().duration_since(wall).unwrap();
                assert!(ahead >= Duration::from_secs(3600) && ahead < Duration::from_secs(3601));
                skew.jump(-7_200_000);
                assert!(clock.system_time() < wall);
                assert!(clock.now() >= local0 + Duration::from_millis(200));
            }
        });
    }

    /// `Skew::truth` never undercounts: counted back by `local`, it is at least what was
    /// asked, for drifts either way and durations from a nanosecond to an hour.
    #[test]
    fn a_skewed_timer_never_fires_before_its_deadline_by_the_clock_itself() {
        for ppm in [-MAX_DRIFT_PPM, -3, -1, 1, 7, 999, MAX_DRIFT_PPM] {
            let skew = Skew::new(ppm);
            for nanos in [1u64, 999, 1_000_001, 3_600_000_000_000] {
                let local = Duration::from_nanos(nanos);
                assert!(
                    skew.local(skew.truth(local)) >= local,
                    "{ppm} ppm, {nanos} ns"
                );
            }
        }
    }

    #[test]
    #[should_panic(expected = "at most 100000 either way")]
    fn a_drift_beyond_the_maximum_is_refused() {
        let _ = Skew::new(MAX_DRIFT_PPM + 1);
    }
}
