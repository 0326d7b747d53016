//! A target's workload, explored like its faults: each case uses a random subset of the
//! target's kinds of operation (swarm testing), over a small random domain, so that
//! collisions (two clients on one key) and particular orders (register, unregister, register
//! again) come up often instead of once in a thousand cases.
//!
//! ```
//! use otpsim::sim::harness::{Domain, Workload};
//! use otpsim::sim::harness::proptest::prelude::*;
//!
//! #[derive(Clone, Debug)]
//! enum Op { Put(u8, u16), Get(u8), Count }
//!
//! fn workload(domain: Domain) -> Workload<Op> {
//!     Workload::new()
//!         .kind("put", 2, (domain.pick(), any::<u16>()).prop_map(|(k, v)| Op::Put(k, v)))
//!         .kind("get", 2, domain.pick().prop_map(Op::Get))
//!         .kind("count", 1, Just(Op::Count))
//! }
//! assert_eq!(workload(Domain::of(2)).names(), ["put", "get", "count"]);
//! ```

use proptest::prelude::*;
use std::fmt::Debug;

/// What a case's operations range over: how many distinct things (keys, names, clients) an
/// operation picks from. Drawn per case, mostly small.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Domain {
    size: u8,
}

impl Domain {
    /// A domain of `size` things (at least 1).
    pub fn of(size: u8) -> Domain {
        Domain { size: size.max(1) }
    }

    /// How many things there are.
    pub fn size(self) -> u8 {
        self.size
    }

    /// One of them: an index in `0..size`.
    ///
    /// Skewed to the first (one draw in three is it, the rest are uniform), so that two
    /// operations share a thing often at every size, while the others still come up.
    pub fn pick(self) -> BoxedStrategy<u8> {
        prop_oneof![1 => Just(0u8), 2 => 0..self.size].boxed()
    }

    /// The sizes the harness draws: 1 to 8, a quarter of the time 1 (every operation on the
    /// same thing) and mostly at most 3 (two clients contending for one key is the collision
    /// most flaws need).
    pub(crate) fn sizes() -> BoxedStrategy<u8> {
        prop_oneof![
            2 => Just(1u8),
            3 => 2u8..=3,
            2 => 4u8..=5,
            1 => 6u8..=8,
        ]
        .boxed()
    }
}

/// A target's kinds of operation, each with its weight among the kinds a case uses and the
/// strategy of its operations.
pub struct Workload<O> {
    kinds: Vec<(&'static str, u32, BoxedStrategy<O>)>,
}

impl<O> Default for Workload<O> {
    fn default() -> Self {
        Workload { kinds: Vec::new() }
    }
}

impl<O: Clone + Debug + 'static> Workload<O> {
    /// No kind of operation yet (a target whose workload is the faults alone keeps it so).
    pub fn new() -> Workload<O> {
        Workload::default()
    }

    /// Adds a kind of operation: its name, its weight, and its operations.
    pub fn kind(
        mut self,
        name: &'static str,
        weight: u32,
        ops: impl Strategy<Value = O> + 'static,
    ) -> Workload<O> {
        self.kinds.push((name, weight.max(1), ops.boxed()));
        self
    }

    /// The kinds' names, in the order they were added.
    pub fn names(&self) -> Vec<&'static str> {
        self.kinds.iter().map(|(name, _, _)| *name).collect()
    }

    /// How many kinds there are.
    pub fn len(&self) -> usize {
        self.kinds.len()
    }

    /// Whether there is no kind.
    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty()
    }

    /// The operations of the kinds at `chosen` (indices into [`names`](Self::names)), by
    /// their weights; `None` if none is chosen.
    pub(crate) fn only(self, chosen: &[usize]) -> Option<BoxedStrategy<O>> {
        let kinds: Vec<(u32, BoxedStrategy<O>)> = self
            .kinds
            .into_iter()
            .enumerate()
            .filter(|(i, _)| chosen.contains(i))
            .map(|(_, (_, weight, ops))| (weight, ops))
            .collect();
        (!kinds.is_empty()).then(|| proptest::strategy::Union::new_weighted(kinds).boxed())
    }
}
