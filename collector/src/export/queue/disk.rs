//! The persistent export queue's storage (`--queue-dir`), a redb database: requests in
//! arrival order under sequence numbers, each with its span count. A restart — also after
//! `kill -9` — finds whatever was left.
//!
//! Bounded by `--queue-max-bytes`: past it the oldest requests are dropped (the caller counts
//! them). Each write is fsynced unless `--queue-fsync false`; the writer (`writer.rs`) puts
//! every request waiting at once into one write.
//!
//! redb keeps a page cache of its own, 1 GiB by default, which a busy queue fills: that was
//! most of the collector's resident memory with `--queue-dir` (820 MiB at saturation). It is
//! capped at [`CACHE_BYTES`]. What was stored moments ago the exporter takes from memory
//! (`hot.rs`) without reading it back.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::Bytes;
use prost::Message;

use super::hot::{Hot, HOT_MAX_BYTES};
use crate::events::DiskQueueFill;
use crate::metrics::{Registry, Reported};
use crate::wire::raw::ExportTraceServiceRequest;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

/// Key: sequence number; value: span count (u32, little endian) then the protobuf request.
const REQUESTS: TableDefinition<u64, &[u8]> = TableDefinition::new("requests");
const FILE: &str = "queue.redb";
/// redb's own page cache; see the module comment.
pub const CACHE_BYTES: usize = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("persistent queue: {0}")]
    Store(String),
    #[error("persistent queue: cannot create {path}: {source}")]
    Directory { path: String, source: std::io::Error },
}

fn store<E: std::fmt::Display>(error: E) -> QueueError {
    QueueError::Store(error.to_string())
}

/// The oldest stored requests, as the exporter reads them: their keys and span counts, and
/// their encoded bytes in pieces to be sent one after the other, which is itself an encoded
/// `ExportTraceServiceRequest` holding all of their resource spans. The exporter sends it as it
/// is, without decoding it and encoding it again.
#[derive(Debug, Default)]
pub struct Stored {
    /// `(key, spans)` of each request, oldest first.
    pub requests: Vec<(u64, usize)>,
    pub spans: usize,
    pub encoded: Vec<Bytes>,
    /// Spans of values skipped because they are not the request they claim to hold.
    pub unreadable_spans: usize,
}

#[derive(Debug)]
pub struct DiskQueue {
    db: Database,
    max_bytes: u64,
    fsync: bool,
    next_key: AtomicU64,
    /// Bytes of stored values; kept in step with the table by every write.
    bytes: Mutex<u64>,
    /// Set when the processing stage is gone: nothing more will be written.
    closed: AtomicBool,
    /// Wakes the exporter when something was written, or the queue closed.
    pub written: tokio::sync::Notify,
    /// The newest stored requests, also in memory.
    hot: Hot,
}

impl DiskQueue {
    pub fn open(dir: &Path, max_bytes: u64, fsync: bool) -> Result<Self, QueueError> {
        Self::open_with_memory(dir, max_bytes, fsync, HOT_MAX_BYTES)
    }

    /// [`DiskQueue::open`], keeping up to `memory_bytes` of the newest requests in memory.
    pub fn open_with_memory(
        dir: &Path,
        max_bytes: u64,
        fsync: bool,
        memory_bytes: usize,
    ) -> Result<Self, QueueError> {
        std::fs::create_dir_all(dir)
            .map_err(|source| QueueError::Directory { path: dir.display().to_string(), source })?;
        let db = Database::builder().set_cache_size(CACHE_BYTES).create(dir.join(FILE)).map_err(store)?;
        let write = db.begin_write().map_err(store)?;
        write.open_table(REQUESTS).map_err(store)?;
        write.commit().map_err(store)?;
        let read = db.begin_read().map_err(store)?;
        let table = read.open_table(REQUESTS).map_err(store)?;
        let next_key = table.last().map_err(store)?.map_or(0, |(key, _)| key.value() + 1);
        let mut bytes = 0u64;
        for entry in table.iter().map_err(store)? {
            let (_, value) = entry.map_err(store)?;
            bytes += value.value().len() as u64;
        }
        drop(table);
        Ok(Self {
            db,
            max_bytes,
            fsync,
            next_key: AtomicU64::new(next_key),
            bytes: Mutex::new(bytes),
            closed: AtomicBool::new(false),
            written: Default::default(),
            hot: Hot::new(next_key, memory_bytes),
        })
    }

    /// Stores a request (blocking; call off the runtime). Returns the spans of the oldest
    /// requests dropped to make room.
    #[cfg(test)]
    pub fn append(&self, request: &ExportTraceServiceRequest, spans: usize) -> Result<usize, QueueError> {
        self.append_all(&[encode(request, spans)])
    }

    /// Stores values made by [`encode`] in order, in one transaction and one fsync (blocking),
    /// and keeps them in memory for the exporter. Returns the spans of the oldest requests
    /// dropped to make room.
    pub fn append_all(&self, values: &[Bytes]) -> Result<usize, QueueError> {
        let mut bytes = self.bytes.lock().map_err(store)?;
        let mut write = self.db.begin_write().map_err(store)?;
        write
            .set_durability(if self.fsync { Durability::Immediate } else { Durability::None })
            .map_err(store)?;
        let mut dropped_spans = 0usize;
        let mut dropped_through = None;
        let mut stored_bytes = *bytes;
        let first_key = self.next_key.load(Ordering::Relaxed);
        {
            let mut table = write.open_table(REQUESTS).map_err(store)?;
            for value in values {
                while stored_bytes + value.len() as u64 > self.max_bytes {
                    let Some((key, oldest)) = table.pop_first().map_err(store)? else { break };
                    let oldest = oldest.value();
                    stored_bytes -= oldest.len() as u64;
                    dropped_spans += span_count(oldest);
                    dropped_through = Some(key.value());
                }
                let key = self.next_key.fetch_add(1, Ordering::Relaxed);
                table.insert(key, value.as_ref()).map_err(store)?;
                stored_bytes += value.len() as u64;
            }
        }
        write.commit().map_err(store)?;
        *bytes = stored_bytes;
        if let Some(last) = dropped_through {
            self.hot.forget_through(last);
        }
        for (key, value) in (first_key..).zip(values) {
            self.hot.stored(key, span_count(value), value.slice(value.len().min(4)..));
        }
        drop(bytes);
        self.written.notify_one();
        Ok(dropped_spans)
    }

    /// The oldest requests from key `from` on as [`DiskQueue::oldest_from`] finds them, if they
    /// are all in memory (without blocking); `None` when it has to read disk.
    pub fn take_cached(&self, from: u64, max_spans: usize) -> Option<Stored> {
        self.hot.take(from, max_spans)
    }

    /// A batch will be read again from disk: from now on every read goes there.
    pub fn read_again(&self) {
        self.hot.invalidate();
    }

    /// The oldest requests on disk, up to `max_spans` spans (at least one request), leaving
    /// the reader's view alone. Blocking.
    #[cfg(test)]
    pub fn oldest(&self, max_spans: usize) -> Result<Stored, QueueError> {
        self.read(0, max_spans)
    }

    /// The oldest requests from key `from` on (those before it are being sent), up to
    /// `max_spans` spans (at least one request), from memory or disk. Blocking.
    pub fn oldest_from(&self, from: u64, max_spans: usize) -> Result<Stored, QueueError> {
        if let Some(cached) = self.take_cached(from, max_spans) {
            return Ok(cached);
        }
        let found = self.read(from, max_spans)?;
        if let Some((last, _)) = found.requests.last() {
            self.hot.forget_through(*last);
        }
        Ok(found)
    }

    /// [`DiskQueue::oldest_from`] on disk.
    fn read(&self, from: u64, max_spans: usize) -> Result<Stored, QueueError> {
        let read = self.db.begin_read().map_err(store)?;
        let table = read.open_table(REQUESTS).map_err(store)?;
        let mut found = Stored::default();
        let mut encoded = Vec::new();
        for entry in table.range(from..).map_err(store)? {
            let (key, value) = entry.map_err(store)?;
            let value = value.value();
            let spans = span_count(value);
            if !found.requests.is_empty() && found.spans + spans > max_spans {
                break;
            }
            let message = value.get(4..).unwrap_or_default();
            // A value this queue wrote always walks to its span count; one that does not is
            // skipped and counted (its key goes with the batch, so it is removed).
            if crate::receive::decode::count_spans(message) != Some(spans as u64) {
                found.requests.push((key.value(), 0));
                found.unreadable_spans += spans;
                continue;
            }
            encoded.extend_from_slice(message);
            found.spans += spans;
            found.requests.push((key.value(), spans));
        }
        if !encoded.is_empty() {
            found.encoded.push(encoded.into());
        }
        Ok(found)
    }

    /// Deletes sent (or given-up) requests. Blocking.
    ///
    /// Without an fsync of its own: it becomes durable with the next write's. A crash before
    /// that brings the requests back, and they are sent again: at least once, never lost.
    pub fn remove(&self, keys: &[u64]) -> Result<(), QueueError> {
        let mut bytes = self.bytes.lock().map_err(store)?;
        let mut write = self.db.begin_write().map_err(store)?;
        write.set_durability(Durability::None).map_err(store)?;
        {
            let mut table = write.open_table(REQUESTS).map_err(store)?;
            for key in keys {
                if let Some(value) = table.remove(key).map_err(store)? {
                    *bytes -= value.value().len() as u64;
                }
            }
        }
        write.commit().map_err(store)?;
        Ok(())
    }

    pub fn len(&self) -> u64 {
        self.db
            .begin_read()
            .ok()
            .and_then(|read| read.open_table(REQUESTS).ok())
            .and_then(|table| table.len().ok())
            .unwrap_or(0)
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.lock().map_or(0, |bytes| *bytes)
    }

    /// Nothing more will be written; wakes the reader.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.written.notify_one();
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

impl Drop for DiskQueue {
    /// Makes the last removals durable, so that a clean stop sends nothing twice.
    fn drop(&mut self) {
        if let Err(error) = self.flush() {
            tracing::warn!(%error, "cannot flush the persistent queue's last removals");
        }
    }
}

impl DiskQueue {
    /// An empty durable commit: everything committed before it is on disk after it.
    fn flush(&self) -> Result<(), QueueError> {
        let mut write = self.db.begin_write().map_err(store)?;
        write.set_durability(Durability::Immediate).map_err(store)?;
        write.commit().map_err(store)
    }
}

impl Reported for DiskQueue {
    fn report(&self, registry: &Registry) {
        registry.emit(DiskQueueFill { requests: self.len(), bytes: self.bytes() });
    }
}

/// A stored value: the span count (u32, little endian), then the protobuf request.
pub fn encode(request: &ExportTraceServiceRequest, spans: usize) -> Bytes {
    let mut value = Vec::with_capacity(4 + request.encoded_len());
    value.extend_from_slice(&u32::try_from(spans).unwrap_or(u32::MAX).to_le_bytes());
    request.encode_raw(&mut value);
    value.into()
}

fn span_count(value: &[u8]) -> usize {
    value
        .get(..4)
        .and_then(|prefix| prefix.try_into().ok())
        .map_or(0, |prefix| u32::from_le_bytes(prefix) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::raw::{ResourceSpans, ScopeSpans};
    use crate::wire::Span;
    use prost::Message;

    fn request(spans: u8) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: (0..spans)
                        .map(|n| {
                            Bytes::from(
                                Span { span_id: vec![n; 8].into(), ..Default::default() }.encode_to_vec(),
                            )
                            .into()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn spans_of(stored: &Stored) -> Vec<usize> {
        stored.requests.iter().map(|(_, spans)| *spans).collect()
    }

    #[test]
    fn requests_come_back_oldest_first_and_survive_a_reopen() {
        let dir = tempfile::tempdir().expect("temp dir");
        {
            let queue = DiskQueue::open(dir.path(), 1 << 20, true).expect("open");
            for spans in [1, 2, 3] {
                assert_eq!(queue.append(&request(spans), usize::from(spans)).expect("append"), 0);
            }
            let first_two = queue.oldest(3).expect("read");
            assert_eq!(spans_of(&first_two), vec![1, 2]);
            queue.remove(&[first_two.requests[0].0]).expect("remove");
        }
        let queue = DiskQueue::open(dir.path(), 1 << 20, true).expect("reopen");
        let left = queue.oldest(100).expect("read");
        assert_eq!(spans_of(&left), vec![2, 3]);
        let mut both = request(2);
        both.resource_spans.extend(request(3).resource_spans);
        assert_eq!(left.encoded.concat(), both.encode_to_vec(), "the requests' bytes, one after the other");
        assert_eq!(left.spans, 5);
        queue.append(&request(4), 4).expect("append after reopen");
        let keys: Vec<u64> = queue.oldest(100).expect("read").requests.iter().map(|(key, _)| *key).collect();
        assert!(keys.windows(2).all(|pair| pair[0] < pair[1]), "new keys after the old ones: {keys:?}");
    }

    #[test]
    fn removals_are_durable_once_the_queue_is_closed_cleanly() {
        let dir = tempfile::tempdir().expect("temp dir");
        {
            let queue = DiskQueue::open(dir.path(), 1 << 20, true).expect("open");
            queue.append(&request(2), 2).expect("append");
            let sent = queue.oldest(10).expect("read");
            queue.remove(&[sent.requests[0].0]).expect("remove");
        }
        let queue = DiskQueue::open(dir.path(), 1 << 20, true).expect("reopen");
        assert_eq!(queue.len(), 0, "nothing comes back to be sent twice");
    }

    #[test]
    fn a_value_that_is_not_a_request_of_its_span_count_is_skipped_and_goes_with_the_batch() {
        let dir = tempfile::tempdir().expect("temp dir");
        let torn = encode(&request(3), 3);
        let torn = torn.slice(..torn.len() - 2);
        DiskQueue::open(dir.path(), 1 << 20, false)
            .expect("open")
            .append_all(&[encode(&request(1), 1), torn, encode(&request(2), 2)])
            .expect("append");
        // Read back after a restart: from disk, where damage can come from.
        let queue = DiskQueue::open(dir.path(), 1 << 20, false).expect("reopen");
        let stored = queue.oldest(100).expect("read");
        assert_eq!(spans_of(&stored), vec![1, 0, 2], "the torn one holds no spans");
        assert_eq!(stored.unreadable_spans, 3, "the spans it claimed, to be counted");
        let mut good = request(1);
        good.resource_spans.extend(request(2).resource_spans);
        assert_eq!(stored.encoded.concat(), good.encode_to_vec());
        assert_eq!(stored.spans, 3);
    }

    #[test]
    fn what_was_just_stored_is_taken_from_memory_and_the_same_read_from_disk() {
        let dir = tempfile::tempdir().expect("temp dir");
        let queue = DiskQueue::open(dir.path(), 1 << 20, false).expect("open");
        queue.append_all(&[encode(&request(1), 1), encode(&request(2), 2)]).expect("append");
        let cached = queue.take_cached(0, 100).expect("in memory");
        assert_eq!(spans_of(&cached), vec![1, 2]);
        assert_eq!(cached.encoded.len(), 2, "the stored values, not a copy of them joined");
        assert!(queue.take_cached(3, 100).expect("covered").requests.is_empty(), "taken once");
        queue.read_again();
        assert!(queue.take_cached(0, 100).is_none(), "to be read again: from disk");
        let read = queue.oldest(100).expect("read");
        assert_eq!(spans_of(&read), vec![1, 2]);
        assert_eq!(read.encoded.concat(), cached.encoded.concat());
    }

    #[test]
    fn requests_dropped_for_room_leave_memory_too() {
        let dir = tempfile::tempdir().expect("temp dir");
        let one = 4 + request(10).encoded_len() as u64;
        let queue = DiskQueue::open(dir.path(), one * 2, false).expect("open");
        let dropped: usize = (0..3).map(|_| queue.append(&request(10), 10).expect("append")).sum();
        assert_eq!(dropped, 10);
        let cached = queue.take_cached(0, 100).expect("in memory");
        assert_eq!(cached.requests.iter().map(|(key, _)| *key).collect::<Vec<_>>(), vec![1, 2]);
    }

    #[test]
    fn past_the_byte_budget_the_oldest_are_dropped_and_counted() {
        let dir = tempfile::tempdir().expect("temp dir");
        let one = 4 + request(10).encoded_len() as u64;
        let queue = DiskQueue::open(dir.path(), one * 3, false).expect("open");
        let dropped: usize = (0..5).map(|_| queue.append(&request(10), 10).expect("append")).sum();
        assert_eq!(dropped, 20, "two requests of 10 spans made room");
        assert_eq!(queue.len(), 3);
        assert_eq!(queue.bytes(), one * 3);
    }
}
