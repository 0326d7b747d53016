//! A small ordered map for the few entries a process usually holds: its links, its monitors
//! and its aliases.
//!
//! Most processes have none or one of each (a supervised worker links to its supervisor, a
//! caller monitors one server at a time), a few have a handful, while a supervisor can link
//! to 100,000 children. A `SmallMap` keeps none or one entry inline, up to [`FEW`] in one
//! boxed sorted array, and moves to a boxed B-tree beyond that: a worker's sets take no
//! allocation at all and cost 16-24 bytes in its process record, a handful of entries take
//! one small allocation, and a big set still has O(log n) updates. The form is a function
//! of the number of entries, and iteration is in key order in every form, so nothing that
//! reaches a trace depends on the representation.

use smallvec::SmallVec;
use std::collections::BTreeMap;

/// The most entries a map keeps in its sorted array before it moves to a B-tree.
pub(super) const FEW: usize = 8;

/// An ordered map of `Copy` keys and values with the first entry inline.
#[derive(Debug, Default)]
pub(super) enum SmallMap<K, V> {
    #[default]
    Empty,
    One(K, V),
    /// 2 to [`FEW`] entries, sorted by key: one allocation.
    Few(Box<SmallVec<[(K, V); FEW]>>),
    // Boxed on purpose: 8 bytes in every process record instead of the B-tree's 24, for
    // the few processes with more than `FEW` entries.
    #[allow(clippy::box_collection)]
    Many(Box<BTreeMap<K, V>>),
}

/// A [`SmallMap`] used as a set.
pub(super) type SmallSet<K> = SmallMap<K, ()>;

impl<K: Ord + Copy, V: Copy> SmallMap<K, V> {
    /// Inserts `key`; gives the value it replaced, if it was present.
    pub(super) fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self {
            SmallMap::Empty => {
                *self = SmallMap::One(key, value);
                None
            }
            SmallMap::One(k, v) if *k == key => Some(std::mem::replace(v, value)),
            SmallMap::One(k, v) => {
                let (first, second) = ((*k, *v), (key, value));
                let pair = if first.0 < key {
                    [first, second]
                } else {
                    [second, first]
                };
                *self = SmallMap::Few(Box::new(pair.into_iter().collect()));
                None
            }
            SmallMap::Few(few) => match few.binary_search_by(|(k, _)| k.cmp(&key)) {
                Ok(at) => Some(std::mem::replace(&mut few[at].1, value)),
                Err(at) if few.len() < FEW => {
                    few.insert(at, (key, value));
                    None
                }
                Err(_) => {
                    let mut map: BTreeMap<K, V> = few.iter().copied().collect();
                    map.insert(key, value);
                    *self = SmallMap::Many(Box::new(map));
                    None
                }
            },
            SmallMap::Many(map) => map.insert(key, value),
        }
    }

    /// Removes `key`; gives its value if it was present.
    pub(super) fn remove(&mut self, key: &K) -> Option<V> {
        match self {
            SmallMap::Empty => None,
            SmallMap::One(k, v) if k == key => {
                let v = *v;
                *self = SmallMap::Empty;
                Some(v)
            }
            SmallMap::One(..) => None,
            SmallMap::Few(few) => {
                let at = few.binary_search_by(|(k, _)| k.cmp(key)).ok()?;
                let (_, v) = few.remove(at);
                if let [(k, v)] = few[..] {
                    *self = SmallMap::One(k, v);
                }
                Some(v)
            }
            SmallMap::Many(map) => {
                let removed = map.remove(key);
                if map.len() <= FEW {
                    // Back to the array: an emptied B-tree would keep its node.
                    *self = SmallMap::Few(Box::new(map.iter().map(|(k, v)| (*k, *v)).collect()));
                }
                removed
            }
        }
    }

    /// Whether `key` is present.
    pub(super) fn contains_key(&self, key: &K) -> bool {
        match self {
            SmallMap::Empty => false,
            SmallMap::One(k, _) => k == key,
            SmallMap::Few(few) => few.iter().any(|(k, _)| k == key),
            SmallMap::Many(map) => map.contains_key(key),
        }
    }

    /// The entries in key order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (K, V)> + '_ {
        let (one, few, many) = match self {
            SmallMap::Empty => (None, None, None),
            SmallMap::One(k, v) => (Some((*k, *v)), None, None),
            SmallMap::Few(few) => (None, Some(few.iter().copied()), None),
            SmallMap::Many(map) => (None, None, Some(map.iter().map(|(k, v)| (*k, *v)))),
        };
        one.into_iter()
            .chain(few.into_iter().flatten())
            .chain(many.into_iter().flatten())
    }
}

impl<K: Ord + Copy> SmallSet<K> {
    /// Adds `key`; `true` if it was not present.
    pub(super) fn add(&mut self, key: K) -> bool {
        self.insert(key, ()).is_none()
    }

    /// Takes `key` out; `true` if it was present.
    pub(super) fn take(&mut self, key: &K) -> bool {
        self.remove(key).is_some()
    }

    /// The keys in order.
    pub(super) fn keys(&self) -> impl Iterator<Item = K> + '_ {
        self.iter().map(|(k, ())| k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every sequence of inserts and removes leaves the same entries, in the same order, as
    /// a B-tree map given the same sequence, in the form its size calls for (an emptied map
    /// holds no allocation).
    #[test]
    fn a_small_map_behaves_as_an_ordered_map() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..200 {
            let mut small = SmallMap::default();
            let mut model = BTreeMap::new();
            let keys = 1 + round % (2 * FEW as u64 + 3);
            for _ in 0..64 {
                let (key, value) = (next() % keys, next() % 3);
                if next() % 2 == 0 {
                    assert_eq!(small.insert(key, value), model.insert(key, value));
                } else {
                    assert_eq!(small.remove(&key), model.remove(&key));
                }
                assert_eq!(small.contains_key(&key), model.contains_key(&key));
                let entries: Vec<_> = small.iter().collect();
                let expected: Vec<_> = model.iter().map(|(k, v)| (*k, *v)).collect();
                assert_eq!(entries, expected);
                match model.len() {
                    0 => assert!(matches!(small, SmallMap::Empty)),
                    1 => assert!(matches!(small, SmallMap::One(..))),
                    n if n <= FEW => assert!(matches!(small, SmallMap::Few(..))),
                    _ => assert!(matches!(small, SmallMap::Many(..))),
                }
            }
        }
    }

    #[test]
    fn a_small_set_adds_and_takes_once() {
        let mut set = SmallSet::default();
        assert!(set.add(3u64));
        assert!(!set.add(3));
        assert!(set.add(1));
        assert_eq!(set.keys().collect::<Vec<_>>(), [1, 3]);
        assert!(set.take(&3));
        assert!(!set.take(&3));
        assert_eq!(set.keys().collect::<Vec<_>>(), [1]);
    }
}
