//! What an observation carries: label values (borrowed from the span they came from, or
//! shared with state that outlives it), the value and an exemplar, the link from a sample to
//! its span.

use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

/// Label values longer than this are cut (at a character boundary): a label is for grouping,
/// and a runaway value must not bloat every scrape.
const MAX_LABEL_BYTES: usize = 128;

/// Most distinct names kept for sharing; past it, names are still correct but each use gets
/// its own copy until [`SharedNames::clear_if_full`] starts afresh.
const MAX_SHARED_NAMES: usize = 10_000;

/// A link from a sample to the span that produced it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Exemplar {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub value: f64,
    /// Unix seconds.
    pub timestamp: f64,
    /// A conversation id the exemplar carries as a label (never a series label).
    pub conversation: ExemplarTag,
}

/// Recent exemplar label values, in a bounded ring shared by the process, so that an exemplar
/// stays a small value that is copied freely: a tag is the value's number in the ring, and one
/// overwritten by newer values reads as none.
mod tags {
    use std::sync::{Arc, Mutex};

    const CAPACITY: usize = 4096;

    static RING: Mutex<Ring> = Mutex::new(Ring { next: 1, slots: Vec::new() });

    struct Ring {
        /// The number the next value gets; 0 means no value.
        next: u32,
        slots: Vec<(u32, Arc<str>)>,
    }

    pub(super) fn put(text: &str) -> u32 {
        let Ok(mut ring) = RING.lock() else { return 0 };
        let number = ring.next;
        ring.next = ring.next.checked_add(1).unwrap_or(1);
        let slot = number as usize % CAPACITY;
        if ring.slots.len() <= slot {
            ring.slots.resize(CAPACITY, (0, Arc::from("")));
        }
        ring.slots[slot] = (number, Arc::from(text));
        number
    }

    pub(super) fn get(number: u32) -> Option<Arc<str>> {
        let ring = RING.lock().ok()?;
        let (held, text) = ring.slots.get(number as usize % CAPACITY)?;
        (number != 0 && *held == number).then(|| text.clone())
    }
}

/// An exemplar label value: none, or a recent value held by number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExemplarTag(u32);

impl ExemplarTag {
    pub fn new(text: &str) -> Self {
        Self(tags::put(text))
    }

    /// The value, unless newer ones took its place.
    pub fn text(self) -> Option<Arc<str>> {
        (self.0 != 0).then(|| tags::get(self.0)).flatten()
    }
}

/// One change to one series: a counter increment, a gauge value or a histogram sample,
/// depending on the family's kind. Label values borrow from the span they came from where they
/// can; the registry copies them only when it creates a series.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation<'a> {
    pub metric: &'static str,
    /// Values in the order of the family's label names.
    pub labels: Labels<'a>,
    pub value: f64,
    /// How many spans this one stands for (the sampling adjusted count; 1 when unsampled):
    /// counters add `value × weight`, histograms count the sample `weight` times. Gauges
    /// ignore it.
    pub weight: f64,
    pub exemplar: Option<Exemplar>,
}

impl<'a> Observation<'a> {
    /// An observation of weight 1.
    pub fn new(metric: &'static str, labels: Labels<'a>, value: f64, exemplar: Option<Exemplar>) -> Self {
        Self { metric, labels, value, weight: 1.0, exemplar }
    }
}

/// The label values of one observation, held inline: no family has more than
/// [`MAX_LABELS`], and a span yields several observations, so a heap vector for each would be
/// most of what deriving allocates.
pub type Labels<'a> = smallvec::SmallVec<[Label<'a>; MAX_LABELS]>;

/// The most labels a family of the catalogue has.
pub const MAX_LABELS: usize = 6;

/// A label value of an observation: borrowed from the span it came from, shared with state
/// that outlives the span (the agent graph's names).
#[derive(Clone, Debug)]
pub enum Label<'a> {
    Borrowed(&'a str),
    Shared(Arc<str>),
}

impl Deref for Label<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            Self::Borrowed(text) => text,
            Self::Shared(text) => text,
        }
    }
}

impl std::fmt::Display for Label<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self)
    }
}

/// Hashes as the `str` (and so as a `String` of the same text).
impl Hash for Label<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (**self).hash(state);
    }
}

impl PartialEq for Label<'_> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl PartialEq<String> for Label<'_> {
    fn eq(&self, other: &String) -> bool {
        **self == **other
    }
}

impl PartialEq<&str> for Label<'_> {
    fn eq(&self, other: &&str) -> bool {
        **self == **other
    }
}

impl<'a> From<&'a str> for Label<'a> {
    fn from(text: &'a str) -> Self {
        Self::Borrowed(text)
    }
}

impl<'a> Label<'a> {
    /// `text` as a label value, cut at [`MAX_LABEL_BYTES`] (at a character boundary).
    pub fn cut(text: &'a str) -> Self {
        Self::Borrowed(truncated(text))
    }
}

/// `text` cut at [`MAX_LABEL_BYTES`] (at a character boundary).
pub fn truncated(text: &str) -> &str {
    if text.len() <= MAX_LABEL_BYTES {
        return text;
    }
    let mut end = MAX_LABEL_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Names (services, agents, graph nodes) allocated once and shared by the state and series
/// that outlive a request.
#[derive(Debug, Default)]
pub struct SharedNames(hashbrown::HashSet<Arc<str>>);

impl SharedNames {
    /// `name` as a shared string: the one already held, else a new one (kept while there is
    /// room).
    pub fn get(&mut self, name: &str) -> Arc<str> {
        if let Some(known) = self.0.get(name) {
            return known.clone();
        }
        let fresh: Arc<str> = Arc::from(name);
        if self.0.len() < MAX_SHARED_NAMES {
            self.0.insert(fresh.clone());
        }
        fresh
    }

    /// Full of names that may be gone: start sharing afresh (live state keeps its copies).
    pub fn clear_if_full(&mut self) {
        if self.0.len() >= MAX_SHARED_NAMES {
            self.0.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_label_values_are_cut_at_a_character_boundary() {
        let long = "é".repeat(100);
        let cut = truncated(&long);
        assert!(cut.len() <= MAX_LABEL_BYTES);
        assert!(long.starts_with(cut));
    }
}
