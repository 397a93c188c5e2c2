//! A series' label values as the registry keeps them, and the borrowed values that find it.
//!
//! The key holds the values one after the other, with where each ends, inline up to
//! [`INLINE_BYTES`]: a lookup compares what the table's entry holds instead of following a
//! pointer to the values (a vector of strings was one allocation per value, and the
//! comparison waited on each; one allocation for them all still cost a wait on its first read).

use std::hash::{Hash, Hasher};

use hashbrown::Equivalent;
use smallvec::SmallVec;

use super::label::{Label, MAX_LABELS};

/// The label values' bytes a key holds without an allocation of its own: W1's keys are 20
/// to 60 bytes.
const INLINE_BYTES: usize = 64;

/// Label values in the order of the family's label names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Key {
    /// The values' bytes one after the other: whole strings, so each value is UTF-8.
    text: SmallVec<[u8; INLINE_BYTES]>,
    /// Where each value ends in `text`.
    ends: SmallVec<[u32; MAX_LABELS]>,
}

impl Key {
    pub(super) fn new<'v>(values: impl IntoIterator<Item = &'v str> + Clone) -> Self {
        let length = values.clone().into_iter().map(str::len).sum();
        let mut text = SmallVec::with_capacity(length);
        let mut ends = SmallVec::new();
        for value in values {
            text.extend_from_slice(value.as_bytes());
            ends.push(u32::try_from(text.len()).unwrap_or(u32::MAX));
        }
        Self { text, ends }
    }

    /// The key of owned values.
    pub(super) fn of(values: &[String]) -> Self {
        Self::new(values.iter().map(String::as_str))
    }

    pub(super) fn len(&self) -> usize {
        self.ends.len()
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &str> + Clone {
        self.value_bytes().map(|value| std::str::from_utf8(value).unwrap_or_default())
    }

    fn value_bytes(&self) -> impl Iterator<Item = &[u8]> + Clone {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .map(|(start, end)| self.text.get(start as usize..end as usize).unwrap_or_default())
    }

    pub(super) fn to_vec(&self) -> Vec<String> {
        self.values().map(str::to_owned).collect()
    }
}

/// The number of values, then each value's bytes and an end mark (as a `str` hashes): the
/// same for a key and for the borrowed values that find it.
fn hash_values<'v, H: Hasher>(count: usize, values: impl Iterator<Item = &'v [u8]>, state: &mut H) {
    state.write_usize(count);
    for value in values {
        state.write(value);
        state.write_u8(0xff);
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_values(self.len(), self.value_bytes(), state);
    }
}

/// An observation's label values, borrowed, as they find the series keyed by the same values.
pub(super) struct LabelsRef<'s, 'a>(pub(super) &'s [Label<'a>]);

impl Hash for LabelsRef<'_, '_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_values(self.0.len(), self.0.iter().map(|label| label.as_bytes()), state);
    }
}

impl Equivalent<Key> for LabelsRef<'_, '_> {
    fn equivalent(&self, key: &Key) -> bool {
        self.0.len() == key.len()
            && self.0.iter().zip(key.value_bytes()).all(|(ours, theirs)| same_bytes(ours.as_bytes(), theirs))
    }
}

/// Whether two byte strings are equal, compared inline for up to 16 bytes: a series lookup
/// compares every label value of the observation with the series' own (W1's are 2 to 24
/// bytes), and for values that short the call to `memcmp` cost more than the comparison.
fn same_bytes(ours: &[u8], theirs: &[u8]) -> bool {
    let length = ours.len();
    if length != theirs.len() {
        return false;
    }
    // Two words that overlap when the length is not twice theirs: the first and the last.
    let word = |bytes: &[u8], at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or_default());
    let half = |bytes: &[u8], at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap_or_default());
    match length {
        8..=16 => word(ours, 0) == word(theirs, 0) && word(ours, length - 8) == word(theirs, length - 8),
        4..=7 => half(ours, 0) == half(theirs, 0) && half(ours, length - 4) == half(theirs, length - 4),
        0..=3 => ours.iter().zip(theirs).all(|(a, b)| a == b),
        _ => ours == theirs,
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    #[test]
    fn byte_strings_compare_equal_exactly_when_they_are() {
        let texts: Vec<Vec<u8>> =
            (0..40usize).map(|length| (0..length).map(|n| b'a' + (n % 26) as u8).collect()).collect();
        for text in &texts {
            assert!(same_bytes(text, &text.clone()));
            for (index, other) in texts.iter().enumerate() {
                assert_eq!(same_bytes(text, other), text == other, "{text:?} against text {index}");
            }
            // One byte changed, at every place.
            for at in 0..text.len() {
                let mut changed = text.clone();
                changed[at] ^= 0x20;
                assert!(!same_bytes(text, &changed), "{text:?} differs at {at}");
            }
        }
    }

    #[test]
    fn a_key_gives_its_values_back_and_is_found_by_them() {
        let hasher = hashbrown::DefaultHashBuilder::default();
        let long = "é".repeat(70);
        for values in [vec![], vec![""], vec!["", ""], vec!["svc", "", "gpt-4o", long.as_str()]] {
            let key = Key::new(values.iter().copied());
            assert_eq!(key.to_vec(), values);
            let labels: Vec<Label> = values.iter().map(|value| Label::Borrowed(value)).collect();
            assert!(LabelsRef(&labels).equivalent(&key));
            assert_eq!(hasher.hash_one(LabelsRef(&labels)), hasher.hash_one(&key), "{values:?}");
        }
        // Values are told apart by where they end, not only by their bytes together.
        let split =
            |values: &[&'static str]| values.iter().map(|value| Label::Borrowed(value)).collect::<Vec<_>>();
        let key = Key::new(["ab", "c"]);
        assert!(!LabelsRef(&split(&["a", "bc"])).equivalent(&key));
        assert!(!LabelsRef(&split(&["ab", "c", ""])).equivalent(&key));
        assert_ne!(hasher.hash_one(LabelsRef(&split(&["a", "bc"]))), hasher.hash_one(&key));
    }
}
