//! Overload with span-level accounting: 16 senders push 100-span requests as fast as the
//! collector answers, through collector A (with `--memory-limit`) to collector B and a
//! capturing sink. A refuses what it cannot take with retryable answers, the senders resend
//! after the delay asked, A's peak resident set stays under its limit, and every acknowledged
//! span arrives.
//!
//! 5 s by default; `AGENTRACE_LONG_TESTS=1` makes it 30 s (`scripts/reliability`).

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Collector, Sink};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use tonic_types::StatusExt;

const SENDERS: u64 = 16;
const SPANS_PER_REQUEST: u64 = 100;
const LIMIT_MIB: u64 = 192;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_refused_retryably_within_the_memory_limit_and_loses_nothing_acknowledged() {
    let seconds = if std::env::var_os("AGENTRACE_LONG_TESTS").is_some() { 30 } else { 5 };
    let sink = Sink::default();
    let sink_address = sink.start().await;
    let backend = Collector::spawn(&["--traces-endpoint", &format!("http://{sink_address}")]);
    let front = Collector::spawn(&[
        "--traces-endpoint",
        &backend.grpc_url(),
        "--memory-limit",
        &format!("{LIMIT_MIB}MiB"),
        "--export-first-backoff-secs",
        "0.05",
    ]);

    let next = Arc::new(AtomicU64::new(0));
    let acknowledged = Arc::new(Mutex::new(HashSet::new()));
    let refusals = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        let (next, acknowledged, refusals) = (next.clone(), acknowledged.clone(), refusals.clone());
        let url = front.grpc_url();
        senders.push(tokio::spawn(async move {
            let mut client = TraceServiceClient::connect(url).await.expect("connect");
            let mut pending: Option<u64> = None;
            while Instant::now() < deadline || pending.is_some() {
                let first = pending.unwrap_or_else(|| next.fetch_add(SPANS_PER_REQUEST, Ordering::Relaxed));
                match client.export(common::sequenced_request(first, SPANS_PER_REQUEST)).await {
                    Ok(_) => {
                        acknowledged.lock().expect("lock").extend(first..first + SPANS_PER_REQUEST);
                        pending = None;
                    }
                    Err(status) => {
                        assert_eq!(
                            status.code(),
                            tonic::Code::Unavailable,
                            "refusals are retryable: {status:?}"
                        );
                        refusals.fetch_add(1, Ordering::Relaxed);
                        let delay = status.get_details_retry_info().and_then(|info| info.retry_delay);
                        tokio::time::sleep(
                            delay.unwrap_or(Duration::from_millis(100)).min(Duration::from_millis(200)),
                        )
                        .await;
                        pending = Some(first);
                    }
                }
            }
        }));
    }
    for sender in senders {
        sender.await.expect("sender");
    }
    let peak = front.peak_rss_bytes();
    let acknowledged = acknowledged.lock().expect("lock").clone();
    let (received, arrivals) = common::await_sequences(&sink, &acknowledged).await;
    let lost = acknowledged.difference(&received).count();
    println!(
        "overload {seconds}s, {SENDERS} senders: acknowledged {} spans ({:.0}/s), refused requests {}, received {} ({arrivals} arrivals), lost {lost}, peak RSS {:.1} MiB of {LIMIT_MIB} MiB",
        acknowledged.len(),
        acknowledged.len() as f64 / seconds as f64,
        refusals.load(Ordering::Relaxed),
        received.len(),
        peak as f64 / (1 << 20) as f64,
    );
    assert_eq!(lost, 0);
    assert!(peak < LIMIT_MIB << 20, "peak RSS {peak} bytes");
}
