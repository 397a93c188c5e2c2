//! The memory bound: a watcher reads the process's resident set every 100 ms and raises a
//! flag while it is above the refusal threshold, 80 % of `--memory-limit`; the receivers
//! check the flag (one atomic load) and refuse with a retryable answer until usage falls back
//! under it. The remaining 20 % absorbs what arrives between two reads and the requests
//! already being decoded, so the resident set stays under the limit itself.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

const POLL: Duration = Duration::from_millis(100);

#[derive(Debug)]
pub struct MemoryGuard {
    limit_bytes: u64,
    over: AtomicBool,
    rss_bytes: AtomicU64,
}

impl MemoryGuard {
    pub fn new(limit_bytes: u64) -> Arc<Self> {
        let guard =
            Arc::new(Self { limit_bytes, over: AtomicBool::new(false), rss_bytes: AtomicU64::new(0) });
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

    pub fn rss_bytes(&self) -> u64 {
        self.rss_bytes.load(Ordering::Relaxed)
    }

    fn check(&self) {
        if let Some(rss) = resident_bytes() {
            self.rss_bytes.store(rss, Ordering::Relaxed);
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

/// The resident set size, from `/proc/self/status` (`VmRSS`, in kB).
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kilobytes: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kilobytes * 1024)
}

/// Parses `512MiB`, `2GiB`, `300M`, `1048576` (bytes; K/M/G and KiB/MiB/GiB are powers of 1024).
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|character: char| !character.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits.parse().ok()?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(multiplier)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("1048576"), Some(1 << 20));
        assert_eq!(parse_size("512MiB"), Some(512 << 20));
        assert_eq!(parse_size("2G"), Some(2 << 30));
        assert_eq!(parse_size("64 kb"), Some(64 << 10));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("5TB"), None);
    }

    #[test]
    fn the_guard_reads_this_process() {
        let rss = resident_bytes().expect("linux /proc");
        assert!(rss > 1 << 20, "{rss}");
        assert!(MemoryGuard::new(1).over_limit());
        assert!(!MemoryGuard::new(u64::MAX).over_limit());
    }
}
