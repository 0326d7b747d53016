//! A small ordered map for the few entries a process usually holds: its links, its monitors
//! and its aliases.
//!
//! Most processes have none or one of each (a supervised worker links to its supervisor, a
//! caller monitors one server at a time), while a supervisor can link to 100,000 children.
//! A `SmallMap` keeps none or one entry inline and moves to a boxed B-tree beyond that, so a
//! worker's sets take no allocation at all and cost 16-24 bytes in its process record, and a
//! big set still has O(log n) updates. Iteration is in key order in every form, so nothing
//! that reaches a trace depends on the representation.

use std::collections::BTreeMap;

/// An ordered map of `Copy` keys and values with the first entry inline.
#[derive(Debug, Default)]
pub(super) enum SmallMap<K, V> {
    #[default]
    Empty,
    One(K, V),
    // Boxed on purpose: 8 bytes in every process record instead of the B-tree's 24, for
    // the few processes with more than one entry.
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
                let map = BTreeMap::from([(*k, *v), (key, value)]);
                *self = SmallMap::Many(Box::new(map));
                None
            }
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
            SmallMap::Many(map) => {
                let removed = map.remove(key);
                if map.len() <= 1 {
                    // Back to the inline form: an emptied B-tree would keep its node.
                    *self = match map.first_key_value() {
                        Some((k, v)) => SmallMap::One(*k, *v),
                        None => SmallMap::Empty,
                    };
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
            SmallMap::Many(map) => map.contains_key(key),
        }
    }

    /// The entries in key order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (K, V)> + '_ {
        let (one, many) = match self {
            SmallMap::Empty => (None, None),
            SmallMap::One(k, v) => (Some((*k, *v)), None),
            SmallMap::Many(map) => (None, Some(map.iter().map(|(k, v)| (*k, *v)))),
        };
        one.into_iter().chain(many.into_iter().flatten())
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
    /// a B-tree map given the same sequence, and an emptied map holds no allocation.
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
            let keys = 1 + round % 6;
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
