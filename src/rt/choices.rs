//! Choice points: the places where a simulator may decide what happens next.

use crate::term::Pid;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// The decisions a simulator can take inside the runtime.
///
/// The runtime asks at each choice point; production ([`NoFaults`]) answers "now, no fault",
/// a simulation answers from its seeded plan ([`SeededChoices`], or the harness's own plans).
/// Every answer must be a pure function of the implementor's state and the arguments, so that
/// a run can be replayed.
pub trait Choices: Send + 'static {
    /// How long a signal (message, exit signal, monitor `DOWN`) from `from` to `to` is held
    /// before it is delivered. The runtime keeps Erlang's FIFO order per sender-receiver pair
    /// whatever is answered here.
    fn delivery_delay(&mut self, from: Pid, to: Pid) -> Duration {
        let _ = (from, to);
        Duration::ZERO
    }

    /// Whether `pid` crashes (exits with reason `injected_crash`) when it takes its `step`-th
    /// message (counted from 1).
    fn crash_at(&mut self, pid: Pid, step: u64) -> bool {
        let _ = (pid, step);
        false
    }

    /// Extra time added to a timer that `pid` set for `duration`.
    fn timer_jitter(&mut self, pid: Pid, duration: Duration) -> Duration {
        let _ = (pid, duration);
        Duration::ZERO
    }

    /// Whether [`timer_jitter`](Choices::timer_jitter) can ever answer more than zero (if
    /// not, the runtime does not ask: timers are on the hot path).
    fn may_jitter(&self) -> bool {
        true
    }

    /// The run enters its `step`-th step (a harness case's steps, counted from 0): what a
    /// schedule names signals by, besides their pair.
    fn enter_step(&mut self, step: u32) {
        let _ = step;
    }
}

/// The production answer to every choice: deliver now, never crash, no jitter.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoFaults;

impl Choices for NoFaults {
    fn may_jitter(&self) -> bool {
        false
    }
}

/// How often [`SeededChoices`] decides to disturb a run.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeededConfig {
    /// Probability that a signal is delayed.
    pub delay_probability: f64,
    /// The longest delay given to a delayed signal.
    pub max_delay: Duration,
    /// Probability that a process crashes when it takes a message.
    pub crash_probability: f64,
    /// The largest jitter added to a timer.
    pub max_timer_jitter: Duration,
}

impl Default for SeededConfig {
    /// No disturbance at all; switch families on field by field.
    fn default() -> Self {
        SeededConfig {
            delay_probability: 0.0,
            max_delay: Duration::ZERO,
            crash_probability: 0.0,
            max_timer_jitter: Duration::ZERO,
        }
    }
}

/// Choices drawn from a ChaCha stream keyed by the run's seed.
///
/// ```
/// use otpsim::rt::{Choices, SeededChoices, SeededConfig, Duration};
/// let config = SeededConfig { delay_probability: 1.0, max_delay: Duration::from_millis(10), ..Default::default() };
/// let (a, b) = (otpsim::term::Pid::from_raw(1), otpsim::term::Pid::from_raw(2));
/// let mut x = SeededChoices::new(42, config);
/// let mut y = SeededChoices::new(42, config);
/// assert_eq!(x.delivery_delay(a, b), y.delivery_delay(a, b)); // same seed, same answers
/// ```
#[derive(Clone, Debug)]
pub struct SeededChoices {
    rng: ChaCha8Rng,
    config: SeededConfig,
}

impl SeededChoices {
    /// A stream for `seed` (independent of the simulator's own scheduling stream).
    pub fn new(seed: u64, config: SeededConfig) -> SeededChoices {
        SeededChoices {
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x6f74_7073_696d_0001),
            config,
        }
    }

    fn chance(&mut self, probability: f64) -> bool {
        probability > 0.0
            && ((self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < probability
    }

    fn up_to(&mut self, max: Duration) -> Duration {
        let micros = max.as_micros() as u64;
        if micros == 0 {
            Duration::ZERO
        } else {
            Duration::from_micros(1 + self.rng.next_u64() % micros)
        }
    }
}

impl Choices for SeededChoices {
    fn delivery_delay(&mut self, _from: Pid, _to: Pid) -> Duration {
        if self.chance(self.config.delay_probability) {
            self.up_to(self.config.max_delay)
        } else {
            Duration::ZERO
        }
    }

    fn crash_at(&mut self, _pid: Pid, _step: u64) -> bool {
        self.chance(self.config.crash_probability)
    }

    fn timer_jitter(&mut self, _pid: Pid, _duration: Duration) -> Duration {
        self.up_to(self.config.max_timer_jitter)
    }

    fn may_jitter(&self) -> bool {
        !self.config.max_timer_jitter.is_zero()
    }
}

/// A signal held back: the `nth` signal (from 1) that process `from` sends process `to`
/// during the run's step `step` is delivered `us` microseconds late (FIFO per pair is kept:
/// later signals of the pair wait behind it). Processes are named by their pids' numbers,
/// which a rerun of the same case hands out again in the same order; steps are a harness
/// case's (a run that has none is all step 0, see [`Choices::enter_step`]).
///
/// A hold names its signal by its pair, its step and its rank there, not by its rank in the
/// whole run, so that dropping another hold, or another step, leaves it on the same signal:
/// what lets a shrinker remove holds and steps one by one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Hold {
    /// The sender's pid number.
    pub from: u64,
    /// The receiver's pid number.
    pub to: u64,
    /// The step it is sent in.
    #[serde(default)]
    pub step: u32,
    /// Which of the pair's signals in that step (from 1).
    pub nth: u32,
    /// How long it is held, in microseconds.
    pub us: u32,
}

/// Where [`ScheduledChoices`] writes the holds it answered, read after the run.
pub type HeldLog = Arc<Mutex<Vec<Hold>>>;

/// A schedule of [`Hold`]s over the seeded stream: a signal the schedule names is held as it
/// says; every other choice is the seeded stream's. The stream is drawn at every signal
/// either way, so that the schedule changes only the signals it names.
///
/// Every signal it holds (from the schedule or from the stream) is written to its log: the
/// run's delays as data, which replay exactly with the stream's delays switched off.
///
/// ```
/// use otpsim::rt::{Choices, Hold, ScheduledChoices, SeededChoices, SeededConfig, Duration};
/// use otpsim::term::Pid;
/// let hold = Hold { from: 1, to: 2, step: 0, nth: 2, us: 500 };
/// let seeded = SeededChoices::new(0, SeededConfig::default());
/// let mut choices = ScheduledChoices::new(seeded, &[hold]);
/// let (a, b) = (Pid::from_raw(1), Pid::from_raw(2));
/// assert_eq!(choices.delivery_delay(a, b), Duration::ZERO);
/// assert_eq!(choices.delivery_delay(b, a), Duration::ZERO); // another pair
/// assert_eq!(choices.delivery_delay(a, b), Duration::from_micros(500));
/// assert_eq!(*choices.log().lock().unwrap(), [hold]);
/// ```
#[derive(Debug)]
pub struct ScheduledChoices {
    seeded: SeededChoices,
    holds: BTreeMap<(u64, u64, u32, u32), u32>,
    /// Whether any signal can be held (if not, nothing is counted).
    counting: bool,
    /// The current step.
    step: u32,
    /// Signals sent so far per pair in the current step (looked up, never iterated).
    sent: rustc_hash::FxHashMap<(u64, u64), u32>,
    log: HeldLog,
}

impl ScheduledChoices {
    /// The `holds` over `seeded`.
    pub fn new(seeded: SeededChoices, holds: &[Hold]) -> ScheduledChoices {
        ScheduledChoices {
            counting: !holds.is_empty() || seeded.config.delay_probability > 0.0,
            holds: holds
                .iter()
                .map(|h| ((h.from, h.to, h.step, h.nth), h.us))
                .collect(),
            step: 0,
            seeded,
            sent: Default::default(),
            log: HeldLog::default(),
        }
    }

    /// The log of the signals held so far.
    pub fn log(&self) -> HeldLog {
        self.log.clone()
    }
}

impl Choices for ScheduledChoices {
    fn delivery_delay(&mut self, from: Pid, to: Pid) -> Duration {
        let drawn = self.seeded.delivery_delay(from, to);
        if !self.counting {
            return drawn;
        }
        let pair = (from.0, to.0);
        let nth = self.sent.entry(pair).or_insert(0);
        *nth += 1;
        let held = match self.holds.get(&(pair.0, pair.1, self.step, *nth)) {
            Some(&us) => Duration::from_micros(u64::from(us)),
            None => drawn,
        };
        if !held.is_zero() {
            let us = u32::try_from(held.as_micros()).unwrap_or(u32::MAX);
            let hold = Hold {
                from: pair.0,
                to: pair.1,
                step: self.step,
                nth: *nth,
                us,
            };
            self.log
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(hold);
        }
        held
    }

    fn crash_at(&mut self, pid: Pid, step: u64) -> bool {
        self.seeded.crash_at(pid, step)
    }

    fn timer_jitter(&mut self, pid: Pid, duration: Duration) -> Duration {
        self.seeded.timer_jitter(pid, duration)
    }

    fn may_jitter(&self) -> bool {
        self.seeded.may_jitter()
    }

    fn enter_step(&mut self, step: u32) {
        if step != self.step {
            self.step = step;
            self.sent.clear();
        }
    }
}
