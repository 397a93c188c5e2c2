//! Backend down under load, with span-level accounting. Load → collector A → collector B
//! (the trace endpoint, Tempo's stand-in) → a capturing sink. Every span carries a sequence
//! number in its id; the sink records which arrived. B is stopped (as on SIGTERM, so it drains) for
//! a while and started again on the same port; the load keeps going, resending what A refuses
//! after the delay A asks for. Every span A acknowledged must reach the sink: with A's export
//! queue in memory, and with it on disk (`--queue-dir`).
//!
//! Short by default (5 s down in a 12 s run); `AGENTRACE_LONG_TESTS=1` makes it 60 s down in
//! a 75 s run (`scripts/reliability`).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::common::{Collector, Sink};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use tonic_types::StatusExt;

const SPANS_PER_REQUEST: u64 = 10;
const REQUESTS_PER_SECOND: u64 = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_span_is_lost_while_the_backend_is_down() {
    backend_down(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_span_is_lost_while_the_backend_is_down_with_the_queue_on_disk() {
    let queue_dir = tempfile::tempdir().expect("queue dir");
    backend_down(Some(queue_dir.path())).await;
}

async fn backend_down(queue_dir: Option<&std::path::Path>) {
    let long = std::env::var_os("AGENTRACE_LONG_TESTS").is_some();
    let (down_after, down_for, run_for) = if long { (5, 60, 75) } else { (2, 5, 12) };

    let sink = Sink::default();
    let sink_address = sink.start().await;
    // Held from the start: while B is down, connections to its port are refused.
    let reserved = agentrace_testkit::reserve_address();
    let backend_address = reserved.address.to_string();
    let sink_url = format!("http://{sink_address}");
    let backend_args = ["--otlp-grpc-addr", backend_address.as_str(), "--traces-endpoint", sink_url.as_str()];
    let mut backend = Some(Collector::start(&backend_args).await);
    let backend_url = format!("http://{backend_address}");
    let queue_dir = queue_dir.map(|dir| dir.display().to_string());
    let mut front_args =
        vec!["--traces-endpoint", backend_url.as_str(), "--export-first-backoff-secs", "0.1"];
    if let Some(dir) = &queue_dir {
        front_args.extend(["--queue-dir", dir.as_str()]);
    }
    let front = Collector::start(&front_args).await;

    let mut client = TraceServiceClient::connect(front.grpc_url()).await.expect("connect");
    let started = Instant::now();
    let mut ticks = tokio::time::interval(Duration::from_millis(1000 / REQUESTS_PER_SECOND));
    let (mut sent, mut acknowledged, mut refusals) = (0u64, HashSet::new(), 0u64);
    let mut pending: Option<(u64, Instant)> = None;
    let mut restarted = false;
    while started.elapsed() < Duration::from_secs(run_for) {
        ticks.tick().await;
        let elapsed = started.elapsed().as_secs();
        if backend.is_some() && elapsed >= down_after && !restarted {
            backend.take().expect("running").stop().await;
        }
        if backend.is_none() && elapsed >= down_after + down_for {
            backend = Some(Collector::start(&backend_args).await);
            restarted = true;
        }
        // Resend a refused batch once its retry delay has passed, else send a new one.
        let first = match pending {
            Some((first, not_before)) if Instant::now() >= not_before => first,
            Some(_) => continue,
            None => {
                let first = sent;
                sent += SPANS_PER_REQUEST;
                first
            }
        };
        match client.export(crate::common::sequenced_request(first, SPANS_PER_REQUEST)).await {
            Ok(_) => {
                acknowledged.extend(first..first + SPANS_PER_REQUEST);
                pending = None;
            }
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::Unavailable, "refusals are retryable");
                refusals += 1;
                let delay = status
                    .get_details_retry_info()
                    .and_then(|info| info.retry_delay)
                    .unwrap_or(Duration::from_secs(1));
                pending = Some((first, Instant::now() + delay));
            }
        }
    }

    let acknowledged_count = acknowledged.len();
    let (received, arrivals) = crate::common::await_sequences(&sink, &acknowledged).await;
    let lost = acknowledged.difference(&received).count();
    println!(
        "backend down {down_for}s of {run_for}s, queue {}: sent {sent}, acknowledged {acknowledged_count}, refused requests {refusals}, \
         received {} ({} arrivals, {} duplicates), lost {lost}",
        if queue_dir.is_some() { "on disk" } else { "in memory" },
        received.len(),
        arrivals,
        arrivals - received.len(),
    );
    assert_eq!(lost, 0);
    assert!(acknowledged_count as u64 >= sent - SPANS_PER_REQUEST, "at most the last batch unacknowledged");
}
