//! A map that stays a vector while it is small: most of the agent graph's traces have a few
//! spans, and one allocation searched in order costs far less than a hash map per trace. Past
//! [`SMALL`] entries it becomes a hash map.

use std::collections::hash_map::Entry;
use std::hash::Hash;

use foldhash::HashMap;

/// Entries kept in a vector before the map switches to hashing.
pub const SMALL: usize = 32;

#[derive(Debug)]
pub enum SmallMap<K, V> {
    Few(Vec<(K, V)>),
    Many(HashMap<K, V>),
}

impl<K, V> Default for SmallMap<K, V> {
    fn default() -> Self {
        Self::Few(Vec::new())
    }
}

impl<K: Eq + Hash, V> SmallMap<K, V> {
    pub fn len(&self) -> usize {
        match self {
            Self::Few(entries) => entries.len(),
            Self::Many(entries) => entries.len(),
        }
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        match self {
            Self::Few(entries) => entries.iter().find(|(found, _)| found == key).map(|(_, value)| value),
            Self::Many(entries) => entries.get(key),
        }
    }

    /// What its allocation takes: the vector's capacity, or the hash table's buckets with
    /// their control bytes (a table is at most 7/8 full).
    pub fn heap_bytes(&self) -> usize {
        let entry = std::mem::size_of::<(K, V)>();
        match self {
            Self::Few(entries) => entries.capacity() * entry,
            Self::Many(entries) => entries.capacity() * (entry + 1) * 8 / 7,
        }
    }

    /// Adds an entry; false (and nothing changes) when the key is already there.
    pub fn insert(&mut self, key: K, value: V) -> bool {
        match self {
            Self::Few(entries) if entries.iter().any(|(found, _)| *found == key) => false,
            Self::Few(entries) if entries.len() < SMALL => {
                entries.push((key, value));
                true
            }
            Self::Few(entries) => {
                let mut many: HashMap<K, V> = std::mem::take(entries).into_iter().collect();
                many.insert(key, value);
                *self = Self::Many(many);
                true
            }
            Self::Many(entries) => match entries.entry(key) {
                Entry::Occupied(_) => false,
                Entry::Vacant(new) => {
                    new.insert(value);
                    true
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_small_size_it_hashes_and_keeps_every_entry_once() {
        let mut map = SmallMap::default();
        for key in 0..SMALL as u32 + 10 {
            assert!(map.insert(key, key * 2));
            assert!(!map.insert(key, 0), "a key is added once");
        }
        assert!(matches!(map, SmallMap::Many(_)));
        assert_eq!(map.len(), SMALL + 10);
        assert_eq!(map.get(&7), Some(&14));
        assert_eq!(map.get(&(SMALL as u32 + 9)), Some(&(2 * (SMALL as u32 + 9))));
        assert_eq!(map.get(&1000), None);
    }
}
