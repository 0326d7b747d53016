//! Stable hashing: the same number for the same value on every platform, toolchain and run,
//! for everything that is stored (trace hashes in corpus files, corpus file names) or decides
//! what a run does (a fault's victim, a registry key's partition, a pool worker).
//!
//! [`Fnv1a`] is FNV-1a over 64 bits. As a [`Hasher`] it writes every integer in little-endian
//! order and `usize`/`isize` as 64 bits, so a value's [`Hash`] gives the same number on
//! 32- and 64-bit, little- and big-endian machines. (What a type's `Hash` feeds the hasher is
//! its own business: std's impls for integers, strings, tuples and this crate's `Pid` have
//! not changed since Rust 1.0, and `registry_partitions_are_pinned` in the registry's tests
//! notices if they ever do.)
//!
//! ```
//! use otpsim::hash::{fnv1a, stable_hash};
//! assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
//! assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
//! assert_eq!(stable_hash(&7u64), stable_hash(&7u64));
//! ```

use std::hash::{Hash, Hasher};

/// FNV-1a, 64 bits: tiny, and stable across platforms and Rust versions.
#[derive(Clone, Copy, Debug)]
pub struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    /// Folds `bytes` in.
    pub fn write_bytes(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// The hash so far.
    pub fn value(&self) -> u64 {
        self.0
    }
}

macro_rules! little_endian {
    ($($method:ident: $t:ty),+) => {
        $(fn $method(&mut self, i: $t) {
            self.write_bytes(&i.to_le_bytes());
        })+
    };
}

impl Hasher for Fnv1a {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.write_bytes(bytes);
    }

    little_endian!(write_u8: u8, write_u16: u16, write_u32: u32, write_u64: u64, write_u128: u128);
    little_endian!(write_i8: i8, write_i16: i16, write_i32: i32, write_i64: i64, write_i128: i128);

    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }

    fn write_isize(&mut self, i: isize) {
        self.write_i64(i as i64);
    }
}

/// FNV-1a of `bytes`.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h = Fnv1a::default();
    h.write_bytes(bytes);
    h.value()
}

/// The stable hash of a value (its [`Hash`] fed to [`Fnv1a`]).
pub fn stable_hash<T: Hash + ?Sized>(value: &T) -> u64 {
    let mut h = Fnv1a::default();
    value.hash(&mut h);
    h.finish()
}
