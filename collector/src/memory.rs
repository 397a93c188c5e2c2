//! The memory bound: a watcher reads the process's resident set every 100 ms and raises a
//! flag while it is above the refusal threshold, 80 % of `--memory-limit`; the receivers
//! check the flag (one atomic load) and refuse with a retryable answer until usage falls back
//! under it. The remaining 20 % absorbs what arrives between two reads and the requests
//! already being decoded, so the resident set stays under the limit itself.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::events::MemoryUse;
use crate::metrics::{Registry, Reported};

const POLL: Duration = Duration::from_millis(100);

#[derive(Debug)]
pub struct MemoryGuard {
    limit_bytes: u64,
    over: AtomicBool,
}

impl MemoryGuard {
    pub fn new(limit_bytes: u64) -> Arc<Self> {
        let guard = Arc::new(Self { limit_bytes, over: AtomicBool::new(false) });
        guard.check();
        guard
    }

    /// Whether the process is above its limit now.
    pub fn over_limit(&self) -> bool {
        self.over.load(Ordering::Relaxed)
    }

    pub fn limit_bytes(&self) -> u64 {
        self.limit_bytes
    }

    /// Resident memory above which requests are refused: 80 % of the limit.
    pub fn refusal_threshold_bytes(&self) -> u64 {
        self.limit_bytes / 5 * 4
    }

    fn check(&self) {
        if let Some(rss) = resident_bytes() {
            self.over.store(rss > self.refusal_threshold_bytes(), Ordering::Relaxed);
        }
    }

    /// Polls until cancelled.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut poll = tokio::time::interval(POLL);
        loop {
            tokio::select! {
                _ = poll.tick() => self.check(),
                _ = stop.cancelled() => return,
            }
        }
    }
}

/// The process's resident memory and, when set, its limit, as `/metrics` reports them.
pub struct ProcessMemory {
    pub guard: Option<Arc<MemoryGuard>>,
}

impl Reported for ProcessMemory {
    fn report(&self, registry: &Registry) {
        let limit_bytes = self.guard.as_ref().map(|guard| guard.limit_bytes());
        registry.emit(MemoryUse { rss_bytes: resident_bytes(), limit_bytes });
    }
}

/// The resident set size, from `/proc/self/status` (`VmRSS`, in kB).
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kilobytes: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kilobytes * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_reads_this_process() {
        let rss = resident_bytes().expect("linux /proc");
        assert!(rss > 1 << 20, "{rss}");
        assert!(MemoryGuard::new(1).over_limit());
        assert!(!MemoryGuard::new(u64::MAX).over_limit());
    }
}
