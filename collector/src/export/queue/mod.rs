//! The export queue between the processing stage and the exporter: one sender and one receiver
//! type in front of either an in-memory channel or the persistent queue on disk (`disk.rs`), so
//! that neither stage branches on which one it is.
//!
//! - In memory: bounded in requests. When it is full, `push` waits, the ingest queue fills, and
//!   the receivers refuse with a retryable answer. A batch still unsent at the hard stop is
//!   dropped and counted.
//! - On disk: `push` hands the request to the writer thread (`writer.rs`), which stores it with
//!   whatever else arrived meanwhile under one fsync and only then lets the receiver
//!   acknowledge it; past the disk budget the oldest requests are dropped and counted. The
//!   exporter takes the oldest first, what was just stored from memory (`hot.rs`) and the rest
//!   from disk; `ack` deletes what it sent or gave up on, and what is left at the hard stop
//!   stays for the next start.
//!
//! Either way the exporter takes batches with `next_batch` until it answers `None`: the sender
//! is gone and everything was taken (or, on disk, the hard stop came).

mod disk;
mod hot;
mod payload;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use self::disk::DiskQueue;
pub use self::payload::Payload;
pub use self::writer::DiskWriter;
use crate::events::{DropReason, SpansDropped};
use crate::metrics::Registry;
use crate::receive::{QueueGauge, Refusal, StoreAnswer};
use crate::wire::raw;

/// Requests between the processor and the exporter, in memory. When full, the processor
/// waits, which fills the ingest queue, and the receivers refuse retryably.
pub const MEMORY_CAPACITY: usize = 64;
/// How long a partial batch waits for more requests before it is sent.
const BATCH_WINDOW: Duration = Duration::from_millis(200);

/// A processed request on its way to the trace endpoint: its forwarding view (spans as encoded
/// bytes) and how many spans it holds.
#[derive(Debug)]
pub struct Forward {
    pub request: raw::ExportTraceServiceRequest,
    pub spans: usize,
    /// Answered once the request is durable (the persistent queue): the receiver acknowledges
    /// the client then, or refuses if it could not be stored.
    pub stored: Option<StoreAnswer>,
}

/// Spans taken from the queue together, to send as one request.
#[derive(Debug)]
pub struct Batch {
    pub payload: Payload,
    pub spans: usize,
    pub receipt: Receipt,
}

/// What the queue needs back to forget a batch: the stored requests' keys (none in memory).
#[derive(Debug, Default)]
pub struct Receipt {
    keys: Vec<u64>,
    /// Spans of stored values among `keys` that could not be read back: counted dropped when
    /// the batch leaves the queue (a batch read again is not counted twice).
    unreadable_spans: usize,
}

/// Where the next batch on disk starts: the requests before it are being sent. Shared with
/// the [`Settler`]s, so that an abandoned batch is read again.
type Cursor = Arc<std::sync::atomic::AtomicU64>;

/// The in-memory queue, and its gauge for `/metrics`.
pub fn memory(registry: Arc<Registry>) -> (QueueSender, QueueReceiver, Arc<QueueGauge>) {
    let (sender, receiver) = mpsc::channel(MEMORY_CAPACITY);
    let gauge = QueueGauge::new("export", MEMORY_CAPACITY);
    let sender = QueueSender(Sender::Memory { sender, gauge: gauge.clone() });
    let receiver = QueueReceiver { inner: Receiver::Memory { receiver, gauge: gauge.clone() }, registry };
    (sender, receiver, gauge)
}

/// The persistent queue over `queue`, and the writer to run on a thread of its own; the
/// receiver ends at `hard_stop`, leaving the rest on disk.
pub fn disk(
    queue: Arc<DiskQueue>,
    registry: Arc<Registry>,
    hard_stop: CancellationToken,
) -> (QueueSender, QueueReceiver, DiskWriter) {
    let (pending, writer) = writer::channel(queue.clone(), registry.clone());
    let sender = QueueSender(Sender::Disk { pending });
    let receiver =
        QueueReceiver { inner: Receiver::Disk { queue, hard_stop, cursor: Cursor::default() }, registry };
    (sender, receiver, writer)
}

/// The persistent queue over `queue` with its writer started on a thread of its own.
pub fn disk_with_writer(
    queue: Arc<DiskQueue>,
    registry: Arc<Registry>,
    hard_stop: CancellationToken,
) -> std::io::Result<(QueueSender, QueueReceiver)> {
    let (sender, receiver, writer) = disk(queue, registry, hard_stop);
    std::thread::Builder::new().name("agentrace-queue-writer".into()).spawn(move || writer.run())?;
    Ok((sender, receiver))
}

/// The processing stage's end of the queue, one copy per worker. Dropping the last closes
/// the queue.
#[derive(Clone, Debug)]
pub struct QueueSender(Sender);

#[derive(Clone, Debug)]
enum Sender {
    Memory {
        sender: mpsc::Sender<Forward>,
        gauge: Arc<QueueGauge>,
    },
    /// To the writer thread, which closes the queue once this is dropped and all is stored.
    Disk {
        pending: mpsc::Sender<Forward>,
    },
}

impl QueueSender {
    /// Queues a request: in memory, waiting while the queue is full; on disk, handing it to the
    /// writer (waiting while the writer's queue is full), which answers `forward.stored` once
    /// the request is durable.
    pub async fn push(&mut self, forward: Forward) {
        match &mut self.0 {
            Sender::Memory { sender, gauge } => {
                if forward.spans == 0 {
                    return;
                }
                gauge.pushed();
                if sender.send(forward).await.is_err() {
                    // The exporter only stops first when its hard deadline passed; it has
                    // counted what it dropped, and this request joins them.
                    gauge.popped();
                    tracing::debug!("export queue closed, request not forwarded");
                }
            }
            Sender::Disk { pending } => {
                if forward.spans == 0 {
                    if let Some(stored) = forward.stored {
                        stored.send(Ok(()));
                    }
                    return;
                }
                if let Err(mpsc::error::SendError(unstored)) = pending.send(forward).await {
                    tracing::warn!("persistent queue writer is gone, refusing the request");
                    if let Some(stored) = unstored.stored {
                        stored.send(Err(Refusal::StoreFailed));
                    }
                }
            }
        }
    }
}

/// The exporter's end of the queue.
#[derive(Debug)]
pub struct QueueReceiver {
    inner: Receiver,
    registry: Arc<Registry>,
}

#[derive(Debug)]
enum Receiver {
    Memory { receiver: mpsc::Receiver<Forward>, gauge: Arc<QueueGauge> },
    Disk { queue: Arc<DiskQueue>, hard_stop: CancellationToken, cursor: Cursor },
}

/// Settles batches taken from the queue, from wherever they are being sent: several batches
/// may be in flight at once, and each finishes on its own.
#[derive(Clone, Debug)]
pub struct Settler {
    disk: Option<(Arc<DiskQueue>, Cursor)>,
    registry: Arc<Registry>,
}

impl QueueReceiver {
    /// The next batch: the oldest requests, up to `max_spans` spans (at least one request), or
    /// in memory whatever arrived within the batch window. `None` once the sender is gone and
    /// everything was taken, and on disk also at the hard stop.
    pub async fn next_batch(&mut self, max_spans: usize) -> Option<Batch> {
        match &mut self.inner {
            Receiver::Memory { receiver, gauge } => next_in_memory(receiver, gauge, max_spans).await,
            Receiver::Disk { queue, hard_stop, cursor } => {
                next_on_disk(queue, hard_stop, cursor, max_spans).await
            }
        }
    }

    /// A handle that settles the batches this receiver hands out.
    pub fn settler(&self) -> Settler {
        let disk = match &self.inner {
            Receiver::Memory { .. } => None,
            Receiver::Disk { queue, cursor, .. } => Some((queue.clone(), cursor.clone())),
        };
        Settler { disk, registry: self.registry.clone() }
    }
}

impl Settler {
    /// The batch was sent, or given up on and counted: it leaves the queue.
    pub async fn ack(&self, receipt: Receipt) {
        let Some((queue, _)) = &self.disk else { return };
        if receipt.unreadable_spans > 0 {
            tracing::warn!(
                spans = receipt.unreadable_spans,
                "stored requests could not be read back, dropped"
            );
            let spans = receipt.unreadable_spans;
            self.registry.emit(SpansDropped { reason: DropReason::QueueUnreadable, spans });
        }
        let writer = queue.clone();
        match tokio::task::spawn_blocking(move || writer.remove(&receipt.keys)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "cannot delete sent requests from the persistent queue"),
            Err(error) => tracing::warn!(%error, "persistent queue writer failed"),
        }
    }

    /// The hard stop came before `spans` of the batch were sent: in memory they are dropped and
    /// counted; on disk the batch stays, to be read again (at the next start).
    pub fn abandon(&self, receipt: Receipt, spans: usize) {
        match &self.disk {
            None => {
                tracing::warn!(spans, "shutdown deadline passed, dropping unexported spans");
                self.registry.emit(SpansDropped { reason: DropReason::Shutdown, spans });
            }
            Some((queue, cursor)) => {
                queue.read_again();
                if let Some(first) = receipt.keys.iter().min() {
                    cursor.fetch_min(*first, std::sync::atomic::Ordering::AcqRel);
                }
                tracing::info!(
                    spans,
                    "shutdown deadline passed, unexported spans stay in the persistent queue"
                );
            }
        }
    }
}

async fn next_in_memory(
    receiver: &mut mpsc::Receiver<Forward>,
    gauge: &QueueGauge,
    max_spans: usize,
) -> Option<Batch> {
    let first = receiver.recv().await?;
    gauge.popped();
    let mut spans = first.spans;
    let mut resource_spans = first.request.resource_spans;
    let window_end = Instant::now() + BATCH_WINDOW;
    while spans < max_spans {
        match tokio::time::timeout_at(window_end, receiver.recv()).await {
            Ok(Some(next)) => {
                gauge.popped();
                spans += next.spans;
                resource_spans.extend(next.request.resource_spans);
            }
            Ok(None) | Err(_) => break,
        }
    }
    Some(Batch { payload: Payload::Decoded(resource_spans), spans, receipt: Receipt::default() })
}

async fn next_on_disk(
    queue: &Arc<DiskQueue>,
    hard_stop: &CancellationToken,
    cursor: &Cursor,
    max_spans: usize,
) -> Option<Batch> {
    loop {
        if hard_stop.is_cancelled() {
            return None;
        }
        // Closed before the read means every write is in what the read finds.
        let closed = queue.is_closed();
        let from = cursor.load(std::sync::atomic::Ordering::Acquire);
        let stored = match queue.take_cached(from, max_spans) {
            Some(cached) => cached,
            None => read_disk(queue.clone(), from, max_spans).await,
        };
        if let Some((last, _)) = stored.requests.last() {
            cursor.store(last + 1, std::sync::atomic::Ordering::Release);
            let keys = stored.requests.iter().map(|(key, _)| *key).collect();
            let payload = Payload::Encoded(stored.encoded);
            let receipt = Receipt { keys, unreadable_spans: stored.unreadable_spans };
            return Some(Batch { payload, spans: stored.spans, receipt });
        }
        if closed {
            return None;
        }
        tokio::select! {
            _ = queue.written.notified() => {}
            _ = tokio::time::sleep(BATCH_WINDOW) => {}
            _ = hard_stop.cancelled() => return None,
        }
    }
}

/// The oldest requests from `from` on, read from disk on a blocking thread.
async fn read_disk(queue: Arc<DiskQueue>, from: u64, max_spans: usize) -> disk::Stored {
    match tokio::task::spawn_blocking(move || queue.oldest_from(from, max_spans)).await {
        Ok(Ok(stored)) => stored,
        Ok(Err(error)) => {
            tracing::warn!(%error, "cannot read the persistent queue");
            disk::Stored::default()
        }
        Err(error) => {
            tracing::warn!(%error, "persistent queue reader failed");
            disk::Stored::default()
        }
    }
}

#[cfg(test)]
mod tests;
