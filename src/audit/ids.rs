//! Hash maps keyed by token id, for the sets a run builds over every listed token.
//!
//! A run of 100,000 tokens looks up ids a few hundred thousand times, and with the standard
//! library's SipHash those lookups took several percent of the samples in a profile of such
//! a run. Ids are short strings sent by the tenant, so a hash that reads eight bytes at a
//! time and mixes them with one folded multiplication serves as well. Each map draws its
//! own random seed, so colliding ids cannot be written down in advance.
//!
//! NOTE: this resists chosen collisions less than SipHash does. The ids come from the
//! tenant being audited, which patrol already trusts to list its own tokens.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};

/// A map keyed by token id.
pub(crate) type IdMap<K, V> = HashMap<K, V, IdHashing>;

/// A set of token ids.
pub(crate) type IdSet<K> = HashSet<K, IdHashing>;

/// Returns an empty map with room for `capacity` ids.
pub(crate) fn id_map<K, V>(capacity: usize) -> IdMap<K, V> {
    HashMap::with_capacity_and_hasher(capacity, IdHashing::default())
}

/// Returns an empty set with room for `capacity` ids.
pub(crate) fn id_set<K>(capacity: usize) -> IdSet<K> {
    HashSet::with_capacity_and_hasher(capacity, IdHashing::default())
}

/// Odd constants from the fractional part of pi, as in many multiplicative hashes.
const MULTIPLIER: u64 = 0x243f_6a88_85a3_08d3;
const FINISH: u64 = 0x1319_8a2e_0370_7345;

/// The builder of [`IdHasher`]s, with the random seed they share.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IdHashing {
    seed: u64,
}

impl Default for IdHashing {
    /// Draws a new random seed, as the standard library's `RandomState` does.
    fn default() -> Self {
        IdHashing {
            seed: fastrand::u64(..),
        }
    }
}

impl BuildHasher for IdHashing {
    type Hasher = IdHasher;

    fn build_hasher(&self) -> IdHasher {
        IdHasher { state: self.seed }
    }
}

/// Hashes bytes eight at a time: each word is mixed into the state with a multiplication
/// whose 128-bit product is folded back into 64 bits.
#[derive(Debug, Clone)]
pub(crate) struct IdHasher {
    state: u64,
}

impl IdHasher {
    fn mix(&mut self, word: u64) {
        self.state = folded_multiply(self.state ^ word, MULTIPLIER);
    }
}

fn folded_multiply(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            let mut buffer = [0; 8];
            buffer.copy_from_slice(word);
            self.mix(u64::from_le_bytes(buffer));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut buffer = [0; 8];
            buffer[..rest.len()].copy_from_slice(rest);
            // The length keeps "a" and "a\0" apart.
            self.mix(u64::from_le_bytes(buffer) ^ ((rest.len() as u64) << 56));
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.mix(u64::from(byte));
    }

    fn write_usize(&mut self, value: usize) {
        self.mix(value as u64);
    }

    fn finish(&self) -> u64 {
        folded_multiply(self.state, FINISH)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(hashing: &IdHashing, id: &str) -> u64 {
        hashing.hash_one(id)
    }

    #[test]
    fn equal_ids_hash_equal_and_near_ids_apart() {
        let hashing = IdHashing::default();
        let id = "2c9180835d2e5168015d32f890ca1581";
        let copy: String = id.chars().collect();
        assert_eq!(hash(&hashing, id), hash(&hashing, &copy));
        assert_ne!(
            hash(&hashing, id),
            hash(&hashing, "2c9180835d2e5168015d32f890ca1582")
        );
        assert_ne!(hash(&hashing, "a"), hash(&hashing, "a\0"));
        assert_ne!(hash(&hashing, "ab"), hash(&hashing, "ba"));
    }

    #[test]
    fn every_map_draws_its_own_seed() {
        let seeds: IdSet<u64> = (0..8).map(|_| IdHashing::default().seed).collect();
        assert!(seeds.len() > 1, "eight maps drew one seed");
    }

    #[test]
    fn ids_spread_over_the_low_bits() {
        // hashbrown picks buckets from the low bits: sequential ids must not crowd them.
        let hashing = IdHashing::default();
        let buckets: IdSet<u64> = (0..4096)
            .map(|n| hash(&hashing, &format!("0005000000000000000000000000{n:04x}")) & 4095)
            .collect();
        assert!(
            buckets.len() > 2400,
            "4096 ids filled only {} of 4096 buckets",
            buckets.len()
        );
    }

    #[test]
    fn maps_find_what_they_hold() {
        let mut map = id_map(4);
        for n in 0..1000 {
            map.insert(format!("id-{n}"), n);
        }
        assert_eq!(map.get("id-417"), Some(&417));
        assert_eq!(map.get("id-1000"), None);
    }
}
