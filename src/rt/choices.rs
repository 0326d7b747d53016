//! Choice points: the places where a simulator may decide what happens next.

use crate::term::Pid;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};
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
