//! Which pids are alive, as one bit each: the answer to `is_process_alive` without touching
//! the process table.
//!
//! A process record is a couple of hundred bytes, so with many processes the table spans
//! megabytes and every probe of it is a cache miss. Pids are handed out in order, so the live
//! ones cluster: a bit per pid, kept in 64-bit words in a small hash map (a word is dropped
//! when its last process dies, so the set stays proportional to the live processes, however
//! many have lived), fits in a few kilobytes for 100,000 processes.

use crate::term::Pid;

/// A set of pids, one bit each.
#[derive(Default)]
pub(super) struct PidBits {
    /// Word `pid / 64` -> bit `pid % 64` set for each member. Never iterated.
    #[allow(clippy::disallowed_types)] // a fixed hasher, never iterated
    words: rustc_hash::FxHashMap<u64, u64>,
}

impl PidBits {
    pub(super) fn insert(&mut self, pid: Pid) {
        *self.words.entry(pid.0 / 64).or_default() |= 1 << (pid.0 % 64);
    }

    pub(super) fn remove(&mut self, pid: Pid) {
        let word = pid.0 / 64;
        if let Some(bits) = self.words.get_mut(&word) {
            *bits &= !(1 << (pid.0 % 64));
            if *bits == 0 {
                self.words.remove(&word);
            }
        }
    }

    pub(super) fn contains(&self, pid: Pid) -> bool {
        self.words
            .get(&(pid.0 / 64))
            .is_some_and(|bits| bits & (1 << (pid.0 % 64)) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_bits_hold_exactly_the_inserted_pids_and_drop_empty_words() {
        let mut bits = PidBits::default();
        let pids = [0, 1, 63, 64, 65, 1000, u64::MAX];
        for p in pids {
            bits.insert(Pid(p));
        }
        for p in 0..1100 {
            assert_eq!(bits.contains(Pid(p)), pids.contains(&p), "pid {p}");
        }
        assert!(bits.contains(Pid(u64::MAX)));
        for p in pids {
            bits.remove(Pid(p));
            assert!(!bits.contains(Pid(p)));
        }
        bits.remove(Pid(5)); // absent: nothing happens
        assert!(bits.words.is_empty());
    }
}
