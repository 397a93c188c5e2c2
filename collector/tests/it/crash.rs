//! Crash safety of the persistent queue, with span-level accounting: load → collector A (with
//! `--queue-dir`) → collector B → a capturing sink. A is killed with SIGKILL at irregular
//! moments under load and started again on the same port and queue directory; the client
//! resends whatever was not acknowledged. Every span A acknowledged must reach the sink
//! (duplicates are allowed: a span sent but not yet deleted when A died is sent again).
//!
//! Short by default (3 kills); `AGENTRACE_LONG_TESTS=1` makes it 12 (`scripts/reliability`).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::common::{CollectorProcess, Sink};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;

const SPANS_PER_REQUEST: u64 = 10;

async fn client_for(address: std::net::SocketAddr) -> Option<TraceServiceClient<tonic::transport::Channel>> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .ok()?
        .timeout(Duration::from_secs(5));
    endpoint.connect().await.ok().map(TraceServiceClient::new)
}

/// Collector A on `address` (the first start picks a free port; every restart takes the same
/// one), with its queue in `queue_dir`.
fn start_front(
    backend: &str,
    queue_dir: &std::path::Path,
    address: Option<std::net::SocketAddr>,
) -> CollectorProcess {
    let queue_dir = queue_dir.display().to_string();
    let mut args =
        vec!["--traces-endpoint", backend, "--queue-dir", &queue_dir, "--export-first-backoff-secs", "0.05"];
    let address = address.map(|address| address.to_string());
    if let Some(address) = &address {
        args.extend(["--otlp-grpc-addr", address]);
    }
    CollectorProcess::spawn(&args)
}

/// Irregular kill moments, 250–1000 ms apart (a fixed-seed LCG).
fn kill_gaps() -> impl FnMut() -> Duration {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    move || {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        Duration::from_millis(250 + (seed >> 33) % 750)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_span_is_lost_when_the_collector_is_killed() {
    let kills = if std::env::var_os("AGENTRACE_LONG_TESTS").is_some() { 12 } else { 3 };
    let sink = Sink::default();
    let sink_address = sink.start().await;
    let backend = CollectorProcess::spawn(&["--traces-endpoint", &format!("http://{sink_address}")]);
    let queue_dir = tempfile::tempdir().expect("queue dir");
    let start_front = |address| start_front(&backend.grpc_url(), queue_dir.path(), address);
    let first_front = start_front(None);
    let front_address = first_front.grpc;
    let mut front = Some(first_front);
    let mut client = client_for(front_address).await;
    let (mut sent, mut acknowledged, mut failures) = (0u64, HashSet::new(), 0u64);
    let mut unacknowledged: Option<u64> = None;
    let mut next_gap = kill_gaps();
    let mut kill_at = Instant::now() + next_gap();
    let mut killed = 0;
    while killed < kills || unacknowledged.is_some() {
        if killed < kills && Instant::now() >= kill_at {
            if let Some(running) = front.take() {
                running.kill();
            }
            killed += 1;
            front = Some(start_front(Some(front_address)));
            client = client_for(front_address).await;
            kill_at = Instant::now() + next_gap();
        }
        let first = match unacknowledged {
            Some(first) => first,
            None => {
                let first = sent;
                sent += SPANS_PER_REQUEST;
                first
            }
        };
        let answer = match client.as_mut() {
            Some(client) => {
                client.export(crate::common::sequenced_request(first, SPANS_PER_REQUEST)).await.map(|_| ())
            }
            None => Err(tonic::Status::unavailable("not connected")),
        };
        match answer {
            Ok(()) => {
                acknowledged.extend(first..first + SPANS_PER_REQUEST);
                unacknowledged = None;
            }
            Err(_) => {
                failures += 1;
                unacknowledged = Some(first);
                tokio::time::sleep(Duration::from_millis(20)).await;
                if client.is_none() {
                    client = client_for(front_address).await;
                }
            }
        }
    }

    let (received, arrivals) = crate::common::await_sequences(&sink, &acknowledged).await;
    let lost = acknowledged.difference(&received).count();
    println!(
        "{killed} SIGKILLs under load: sent {sent}, acknowledged {}, failed attempts {failures}, received {} ({arrivals} arrivals, {} duplicates), lost {lost}",
        acknowledged.len(),
        received.len(),
        arrivals - received.len(),
    );
    assert_eq!(lost, 0);
    assert_eq!(acknowledged.len() as u64, sent, "every batch eventually acknowledged");
}
