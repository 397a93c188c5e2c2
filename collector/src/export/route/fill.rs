//! What `/metrics` reads of the lanes: how many endpoints are in use, and the lanes' queues
//! summed as the one export queue they replace.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::events::{DiskQueueFill, ExportEndpoints, QueueFill};
use crate::export::queue::DiskQueue;
use crate::metrics::{Registry, Reported};
use crate::receive::QueueGauge;

/// The lanes' queues and how many endpoints are in use, for `/metrics`: the lanes' queues
/// read as the one export queue they replace. A closed lane's queue is still read while it
/// drains, until a lane to the same endpoint takes its place.
#[derive(Default)]
pub struct LaneFill {
    pub(super) endpoints: AtomicUsize,
    queues: Mutex<BTreeMap<String, Fill>>,
}

pub(super) enum Fill {
    Memory(Arc<QueueGauge>),
    Disk(Arc<DiskQueue>),
}

impl LaneFill {
    pub(super) fn add(&self, endpoint: &str, fill: Fill) {
        if let Ok(mut queues) = self.queues.lock() {
            queues.insert(endpoint.to_owned(), fill);
        }
    }
}

impl Reported for LaneFill {
    fn report(&self, registry: &Registry) {
        let endpoints = self.endpoints.load(Ordering::Relaxed);
        registry.emit(ExportEndpoints { endpoints });
        let Ok(queues) = self.queues.lock() else { return };
        let (mut depth, mut capacity, mut requests, mut bytes, mut disk) = (0, 0, 0, 0, false);
        for fill in queues.values() {
            match fill {
                Fill::Memory(gauge) => (depth, capacity) = (depth + gauge.depth(), capacity + gauge.capacity),
                Fill::Disk(queue) => {
                    (requests, bytes, disk) = (requests + queue.len(), bytes + queue.bytes(), true);
                }
            }
        }
        if disk {
            registry.emit(DiskQueueFill { requests, bytes });
        } else {
            registry.emit(QueueFill { queue: "export", depth, capacity });
        }
    }
}
