//! The persistent queue's newest requests, kept in memory as well as on disk, so that an
//! exporter keeping up sends them without reading them back.
//!
//! Reading back was a blocking task per batch: a walk of redb's table, a copy of every value
//! into one buffer, and a walk of each value to check its span count. Here a batch is the
//! stored values themselves, shared with the writer that encoded them. What the writer stored
//! is the only thing that comes in, after its commit, so nothing is sent before it is durable
//! either way.
//!
//! The cache holds every stored request from key `covered_from` on that is not yet taken. A
//! reader whose cursor is below that reads disk, as after a restart. When the cache would pass
//! [`HOT_MAX_BYTES`] (an exporter behind: a slow or unreachable endpoint) it is emptied and
//! covers only what comes next, so the reader goes back to disk until it has caught up.

use std::collections::VecDeque;
use std::sync::Mutex;

use bytes::Bytes;

use super::disk::Stored;

/// The most encoded bytes the cache holds; past it, it starts again empty (see above).
pub const HOT_MAX_BYTES: usize = 32 << 20;

#[derive(Debug)]
pub struct Hot {
    inner: Mutex<Inner>,
    max_bytes: usize,
}

#[derive(Debug)]
struct Inner {
    /// `(key, spans, encoded request)`, keys rising.
    entries: VecDeque<(u64, usize, Bytes)>,
    bytes: usize,
    /// Every stored request from this key on that no reader took is in `entries`.
    covered_from: u64,
}

impl Hot {
    /// An empty cache of up to `max_bytes` over a queue whose next key is `next_key`: what is
    /// stored below it is on disk only.
    pub fn new(next_key: u64, max_bytes: usize) -> Self {
        let inner = Inner { entries: VecDeque::new(), bytes: 0, covered_from: next_key };
        Self { inner: Mutex::new(inner), max_bytes }
    }

    /// A request was stored under `key` (and committed).
    pub fn stored(&self, key: u64, spans: usize, request: Bytes) {
        let Ok(mut inner) = self.inner.lock() else { return };
        if key < inner.covered_from {
            return;
        }
        if inner.bytes + request.len() > self.max_bytes {
            inner.entries.clear();
            inner.bytes = 0;
            inner.covered_from = key + 1;
            return;
        }
        inner.bytes += request.len();
        inner.entries.push_back((key, spans, request));
    }

    /// Requests through `last` left the disk (dropped for room) or were read from it: their
    /// copies here go.
    pub fn forget_through(&self, last: u64) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.forget_through(last);
        }
    }

    /// The oldest requests from key `from` on, up to `max_spans` spans (at least one request;
    /// none when nothing is waiting), taken out of the cache; `None` when some of them may be
    /// on disk only, for the caller to read there.
    pub fn take(&self, from: u64, max_spans: usize) -> Option<Stored> {
        let mut inner = self.inner.lock().ok()?;
        if from < inner.covered_from {
            return None;
        }
        if let Some(before) = from.checked_sub(1) {
            // Read from disk while the writer was putting them here.
            inner.forget_through(before);
        }
        let mut found = Stored::default();
        while let Some((_, spans, _)) = inner.entries.front() {
            if !found.requests.is_empty() && found.spans + spans > max_spans {
                break;
            }
            let Some((key, spans, request)) = inner.entries.pop_front() else { break };
            inner.bytes -= request.len();
            found.spans += spans;
            found.requests.push((key, spans));
            found.encoded.push(request);
        }
        Some(found)
    }

    /// Every later read goes to disk (a batch is to be read again from there).
    pub fn invalidate(&self) {
        let Ok(mut inner) = self.inner.lock() else { return };
        inner.entries.clear();
        inner.bytes = 0;
        inner.covered_from = u64::MAX;
    }

    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.inner.lock().map_or(0, |inner| inner.bytes)
    }
}

impl Inner {
    fn forget_through(&mut self, last: u64) {
        while self.entries.front().is_some_and(|(key, _, _)| *key <= last) {
            if let Some((_, _, request)) = self.entries.pop_front() {
                self.bytes -= request.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(bytes: usize) -> Bytes {
        vec![0u8; bytes].into()
    }

    fn keys(stored: &Stored) -> Vec<u64> {
        stored.requests.iter().map(|(key, _)| *key).collect()
    }

    #[test]
    fn stored_requests_are_taken_oldest_first_within_the_span_bound() {
        let hot = Hot::new(5, HOT_MAX_BYTES);
        for key in 5..9 {
            hot.stored(key, 2, request(10));
        }
        let first = hot.take(5, 5).expect("covered");
        assert_eq!((keys(&first), first.spans), (vec![5, 6], 4));
        assert_eq!(first.encoded.len(), 2, "the stored values themselves");
        assert_eq!(hot.bytes(), 20);
        let rest = hot.take(7, 100).expect("covered");
        assert_eq!(keys(&rest), vec![7, 8]);
        assert_eq!(hot.take(9, 100).expect("covered").requests, vec![], "nothing waiting");
        assert_eq!(hot.bytes(), 0);
    }

    #[test]
    fn below_what_it_covers_the_reader_goes_to_disk() {
        let hot = Hot::new(5, HOT_MAX_BYTES);
        hot.stored(3, 1, request(10));
        assert_eq!(hot.bytes(), 0, "stored before the cache covers: disk only");
        assert!(hot.take(0, 100).is_none(), "keys below 5 are on disk");
        hot.stored(5, 1, request(10));
        hot.stored(6, 1, request(10));
        hot.forget_through(5);
        let after_disk = hot.take(7, 100).expect("covered");
        assert!(after_disk.requests.is_empty(), "6 was read from disk meanwhile and is not sent twice");
    }

    #[test]
    fn past_its_bound_it_starts_again_from_the_next_key() {
        let hot = Hot::new(0, HOT_MAX_BYTES);
        let half = HOT_MAX_BYTES / 2;
        hot.stored(0, 1, request(half));
        hot.stored(1, 1, request(half));
        hot.stored(2, 1, request(1));
        assert_eq!(hot.bytes(), 0, "emptied");
        assert!(hot.take(0, 100).is_none(), "0 to 2 are read from disk");
        hot.stored(3, 1, request(1));
        assert_eq!(keys(&hot.take(3, 100).expect("covered from 3")), vec![3]);
    }

    #[test]
    fn once_invalidated_everything_is_read_from_disk() {
        let hot = Hot::new(0, HOT_MAX_BYTES);
        hot.stored(0, 1, request(1));
        hot.invalidate();
        hot.stored(1, 1, request(1));
        assert!(hot.take(0, 100).is_none());
        assert!(hot.take(1, 100).is_none());
        assert_eq!(hot.bytes(), 0);
    }
}
