//! The restart-intensity window (docs/behaviours.md §D): OTP's rule with O(1) amortised bookkeeping.
//!
//! OTP keeps a list of whole-second timestamps and rescans it on every restart, so a
//! supervisor allowing many restarts slows down as its window fills. Here restarts are
//! counted per second in a queue of `(second, count)` buckets: adding a restart touches the
//! newest bucket, and each bucket is dropped once, when it leaves the window.

use std::collections::VecDeque;

/// Restarts in the current window.
///
/// ```
/// use otpsim::supervisor::RestartWindow;
/// // intensity 1, period 1 (docs/behaviours.md item 23): restarts at 0.2 s and 2.7 s are fine ...
/// let mut w = RestartWindow::new(1, 1);
/// assert!(w.add(0));
/// assert!(w.add(2));
/// // ... but one at 3.2 s shares the window [2, 3] with the one at 2.7 s.
/// assert!(!w.add(3));
/// ```
#[derive(Clone, Debug)]
pub struct RestartWindow {
    intensity: u64,
    period: u64,
    buckets: VecDeque<(u64, u64)>,
    total: u64,
}

impl RestartWindow {
    /// An empty window allowing `intensity` restarts within `period` seconds.
    pub fn new(intensity: u64, period: u64) -> RestartWindow {
        RestartWindow {
            intensity,
            period,
            buckets: VecDeque::new(),
            total: 0,
        }
    }

    /// Records a restart at whole second `now` (OTP's `add_restart`): the restarts whose
    /// second lies in `[now - period, now]`, this one included, must number at most the
    /// intensity. Returns whether the restart is allowed.
    pub fn add(&mut self, now: u64) -> bool {
        let oldest = now.saturating_sub(self.period);
        while let Some(&(second, count)) = self.buckets.front() {
            if second >= oldest {
                break;
            }
            self.total -= count;
            self.buckets.pop_front();
        }
        match self.buckets.back_mut() {
            Some((second, count)) if *second == now => *count += 1,
            _ => self.buckets.push_back((now, 1)),
        }
        self.total += 1;
        internal_check!(self.consistent(now), "{self:?} at {now}");
        self.total <= self.intensity
    }

    /// The total is the sum of the buckets, which are in the window, ascending, not empty.
    fn consistent(&self, now: u64) -> bool {
        let sum: u64 = self.buckets.iter().map(|(_, count)| count).sum();
        let ascending = self
            .buckets
            .iter()
            .zip(self.buckets.iter().skip(1))
            .all(|((a, _), (b, _))| a < b);
        let inside = self.buckets.iter().all(|&(second, count)| {
            count > 0 && second <= now && second >= now.saturating_sub(self.period)
        });
        sum == self.total && ascending && inside
    }

    /// Restarts currently in the window.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// Whether the window holds no restart.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The model: OTP's list-based `add_restart/3`, verbatim in spirit.
    fn otp(restarts: &mut Vec<u64>, now: u64, intensity: u64, period: u64) -> bool {
        restarts.retain(|&t| t + period >= now);
        restarts.push(now);
        restarts.len() as u64 <= intensity
    }

    #[test]
    fn d21_d22_the_window_agrees_with_otps_list_on_every_sequence() {
        let mut rng = 0x1234_5678_u64;
        for case in 0..2000u64 {
            let intensity = case % 5;
            let period = 1 + case % 4;
            let mut window = RestartWindow::new(intensity, period);
            let mut list = Vec::new();
            let mut now = 0;
            for _ in 0..40 {
                rng = rng
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                now += (rng >> 60) % 3;
                assert_eq!(
                    window.add(now),
                    otp(&mut list, now, intensity, period),
                    "case {case} at {now}"
                );
                assert_eq!(window.len(), list.len() as u64);
            }
        }
    }

    #[test]
    fn d22_intensity_zero_refuses_the_first_restart() {
        assert!(!RestartWindow::new(0, 5).add(0));
    }
}
