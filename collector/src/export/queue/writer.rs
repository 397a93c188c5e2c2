//! The persistent queue's writer: a thread of its own that stores what the processing stage
//! pushes, every request waiting at that moment in one transaction with one fsync (group
//! commit), and only then answers each request's receiver, which acknowledges its client.
//!
//! Before, the processing stage stored each request itself and waited for its fsync, so the
//! processor idled for a disk flush per request. Now it hands the request over and goes on;
//! requests that arrive while a flush is running share the next one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::disk::{encode, DiskQueue};
use super::Forward;
use crate::events::{DropReason, SpansDropped};
use crate::metrics::Registry;
use crate::receive::Refusal;

/// Requests handed to the writer and not yet stored. When full, the processor waits, the
/// ingest queue fills, and the receivers refuse retryably (as with the memory queue).
pub const WRITER_CAPACITY: usize = 64;
/// A group stops growing at this many encoded bytes, so one transaction stays bounded.
const GROUP_MAX_BYTES: usize = 32 << 20;
const DISK_FULL_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// The writer's end of the handover; [`DiskWriter::run`] on a thread of its own.
#[derive(Debug)]
pub struct DiskWriter {
    queue: Arc<DiskQueue>,
    registry: Arc<Registry>,
    pending: mpsc::Receiver<Forward>,
}

pub(super) fn channel(queue: Arc<DiskQueue>, registry: Arc<Registry>) -> (mpsc::Sender<Forward>, DiskWriter) {
    let (sender, pending) = mpsc::channel(WRITER_CAPACITY);
    (sender, DiskWriter { queue, registry, pending })
}

impl DiskWriter {
    /// Stores groups until the processing stage is gone, then closes the queue: the exporter
    /// then reads what is left and ends.
    pub fn run(mut self) {
        let mut full_logged: Option<Instant> = None;
        while let Some(first) = self.pending.blocking_recv() {
            let (group, values) = self.group(first);
            let outcome = self.store(&values, group.len(), &mut full_logged);
            for forward in group {
                if let Some(stored) = forward.stored {
                    stored.send(outcome);
                }
            }
        }
        self.queue.close();
    }

    /// `first` and whatever else is waiting, up to [`GROUP_MAX_BYTES`], each encoded once
    /// as it will be stored.
    fn group(&mut self, first: Forward) -> (Vec<Forward>, Vec<bytes::Bytes>) {
        let mut values = vec![encode(&first.request, first.spans)];
        let mut bytes = values[0].len();
        let mut group = vec![first];
        while bytes < GROUP_MAX_BYTES {
            let Ok(next) = self.pending.try_recv() else { break };
            values.push(encode(&next.request, next.spans));
            bytes += values.last().map_or(0, bytes::Bytes::len);
            group.push(next);
        }
        (group, values)
    }

    /// Writes a group in one transaction; the oldest requests dropped to make room are counted.
    fn store(
        &self,
        values: &[bytes::Bytes],
        requests: usize,
        full_logged: &mut Option<Instant>,
    ) -> Result<(), Refusal> {
        match self.queue.append_all(values) {
            Ok(0) => Ok(()),
            Ok(dropped) => {
                self.registry.emit(SpansDropped { reason: DropReason::QueueDiskFull, spans: dropped });
                if full_logged.is_none_or(|logged| logged.elapsed() >= DISK_FULL_LOG_INTERVAL) {
                    tracing::warn!(
                        dropped,
                        "persistent queue full, dropping its oldest spans (logged once per minute)"
                    );
                    *full_logged = Some(Instant::now());
                }
                Ok(())
            }
            Err(error) => {
                tracing::warn!(%error, requests, "cannot write to the persistent queue, refusing");
                Err(Refusal::StoreFailed)
            }
        }
    }
}
