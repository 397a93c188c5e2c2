//! Attribute keys to match, as `attr::matches_key` reads a list: whole keys, and prefixes
//! (entries ending in `.`). Every attribute key of every forwarded span is checked, and nearly
//! none is listed, so each check first asks a filter that passes over most keys at the cost of
//! a load and a multiplication: for whole keys, a bit set from each key's length and last
//! bytes; for prefixes, the first bytes they all have room for. Only a key that passes is
//! looked up in the set, or compared with the prefixes.

use std::sync::Arc;

use agentrace_semconv::attr;

/// Bits of the whole keys' filter: the content keys' 30-odd whole keys set at most that many,
/// so a key that is none of them passes about one time in 17.
const FILTER_BITS: usize = 512;

/// Shared, not copied, when the enricher is cloned: the gRPC receiver is cloned for every
/// request.
#[derive(Clone, Debug, Default)]
pub(super) struct Keys {
    /// As bytes: keys are matched as they arrived, without reading them as text.
    whole: Arc<foldhash::HashSet<Box<[u8]>>>,
    /// The bit of each whole key ([`filter_bit`]).
    whole_filter: Arc<[u64; FILTER_BITS / 64]>,
    prefixes: Arc<[Box<[u8]>]>,
    /// The first `head_length` bytes of each prefix, as a number ([`head`]).
    prefix_heads: Arc<[u64]>,
    /// The shortest prefix's length, 8 at most.
    head_length: usize,
}

impl Keys {
    pub(super) fn new(keys: impl IntoIterator<Item = String>) -> Self {
        let (prefixes, whole): (Vec<String>, Vec<String>) =
            keys.into_iter().partition(|key| key.ends_with('.'));
        let bytes = |keys: Vec<String>| keys.into_iter().map(|key| key.into_bytes().into_boxed_slice());
        let mut whole_filter = [0; FILTER_BITS / 64];
        for key in &whole {
            let (word, bit) = filter_bit(key.as_bytes());
            whole_filter[word] |= bit;
        }
        let head_length = prefixes.iter().map(String::len).min().unwrap_or(0).min(8);
        let prefix_heads = prefixes.iter().map(|prefix| head(prefix.as_bytes(), head_length)).collect();
        Self {
            whole: Arc::new(bytes(whole).collect()),
            whole_filter: Arc::new(whole_filter),
            prefixes: bytes(prefixes).collect(),
            prefix_heads,
            head_length,
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.whole.is_empty() && self.prefixes.is_empty()
    }

    pub(super) fn matches(&self, key: &[u8]) -> bool {
        self.is_whole_key(key) || self.has_prefix(key)
    }

    fn is_whole_key(&self, key: &[u8]) -> bool {
        let (word, bit) = filter_bit(key);
        self.whole_filter[word] & bit != 0 && self.whole.contains(key)
    }

    fn has_prefix(&self, key: &[u8]) -> bool {
        if self.prefixes.is_empty() || key.len() < self.head_length {
            return false;
        }
        let key_head = head(key, self.head_length);
        self.prefix_heads.contains(&key_head)
            && self.prefixes.iter().any(|prefix| key.starts_with(prefix))
            && !attr::NOT_CONTENT_KEYS.iter().any(|name| name.as_bytes() == key)
    }
}

/// The word and bit of `key` in a whole keys' filter: its length and its last 8 bytes (or all
/// of a shorter key), mixed by a multiplication whose top bits pick the bit.
fn filter_bit(key: &[u8]) -> (usize, u64) {
    let length = key.len();
    let last = match key.get(length.saturating_sub(8)..).and_then(|tail| <[u8; 8]>::try_from(tail).ok()) {
        Some(tail) => u64::from_le_bytes(tail),
        None => head(key, length),
    };
    let mixed = (last ^ (length as u64).rotate_left(56)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let index = (mixed >> (64 - FILTER_BITS.trailing_zeros())) as usize;
    (index / 64, 1 << (index % 64))
}

/// The first `length` bytes of `key` (8 at most, and `key` at least that long) as a number.
fn head(key: &[u8], length: usize) -> u64 {
    let length = length.min(8);
    let mask = if length == 0 { 0 } else { u64::MAX >> (8 * (8 - length)) };
    match key.get(..8).and_then(|first| <[u8; 8]>::try_from(first).ok()) {
        Some(first) => u64::from_le_bytes(first) & mask,
        None => key.iter().take(length).rev().fold(0, |word, byte| word << 8 | u64::from(*byte)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(list: &[&str]) -> Keys {
        Keys::new(list.iter().map(|key| (*key).to_owned()))
    }

    #[test]
    fn whole_keys_match_exactly_and_prefixes_as_prefixes() {
        let keys = keys(&["user.id", "input.value", "llm.input_messages.", "ai.prompt."]);
        for listed in ["user.id", "input.value", "llm.input_messages.0.message.content", "ai.prompt.messages"]
        {
            assert!(keys.matches(listed.as_bytes()), "{listed}");
        }
        for other in
            ["user.i", "user.idx", "input.values", "llm.input_messages", "ai.prompt", "ai.prompts", ""]
        {
            assert!(!keys.matches(other.as_bytes()), "{other}");
        }
    }

    #[test]
    fn a_prefix_shorter_than_a_word_and_keys_shorter_than_it() {
        let keys = keys(&["db.", "x"]);
        assert!(keys.matches(b"db.statement"));
        assert!(keys.matches(b"x"));
        assert!(!keys.matches(b"db"));
        assert!(!keys.matches(b"d"));
        assert!(!keys.matches(b"dbx.statement"));
    }

    #[test]
    fn the_filters_agree_with_the_plain_reading_of_the_list() {
        let list: Vec<&str> = attr::CONTENT_KEYS.iter().copied().chain(["gen_ai.", "k"]).collect();
        let keys = keys(&list);
        let candidates = list.iter().map(|key| (*key).to_owned()).chain(
            ["gen_ai.request.model", "gen_ai.prompt.0.content", "gen_ai.prompt_name", "server.port", "a.b.c"]
                .map(str::to_owned),
        );
        for candidate in candidates.flat_map(|key| {
            let around = [format!("{key}x"), format!("x{key}")];
            (0..=key.len()).map(move |end| key[..end].to_owned()).chain(around)
        }) {
            // No key of NOT_CONTENT_KEYS is listed whole here, so only a prefix could match one.
            let expected =
                attr::matches_key(&list, &candidate) && !attr::NOT_CONTENT_KEYS.contains(&candidate.as_str());
            assert_eq!(keys.matches(candidate.as_bytes()), expected, "{candidate:?}");
        }
    }
}
