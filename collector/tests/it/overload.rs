//! Overload with span-level accounting, through collector A (with `--memory-limit`) to
//! collector B and a capturing sink.
//!
//! First the sustainable rate is measured: 4 senders in a closed loop of 100-span requests for
//! 3 s. Then requests are started on a fixed schedule at ten times that rate (open loop: a new
//! request does not wait for earlier answers). A refuses what it cannot take with retryable
//! answers, each request is resent after the delay asked until it is acknowledged, A's peak
//! resident set stays under its limit, and every acknowledged span arrives.
//!
//! The overload lasts 5 s by default; `AGENTRACE_LONG_TESTS=1` makes it 30 s
//! (`scripts/reliability`).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{CollectorProcess, Sink};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use tonic::transport::Channel;
use tonic_types::StatusExt;

const SPANS_PER_REQUEST: u64 = 100;
const LIMIT_MIB: u64 = 192;
const CALIBRATION_SENDERS: usize = 4;
const CALIBRATION: Duration = Duration::from_secs(3);
const OVERLOAD_FACTOR: f64 = 10.0;
/// Connections the open-loop phase spreads its requests over.
const CONNECTIONS: usize = 8;

struct Ledger {
    next: AtomicU64,
    acknowledged: Mutex<HashSet<u64>>,
    refusals: AtomicU64,
    given_up: AtomicU64,
    connection_failures: AtomicU64,
}

/// A status made on this side from a transport error, not an answer from the collector.
fn is_connection_failure(status: &tonic::Status) -> bool {
    std::error::Error::source(status).is_some_and(|source| source.is::<tonic::transport::Error>())
}

/// Sends the request starting at `first` until it is acknowledged or `give_up_at` passes.
/// Returns whether it was acknowledged.
async fn deliver(
    client: &mut TraceServiceClient<Channel>,
    first: u64,
    ledger: &Ledger,
    give_up_at: Instant,
) -> bool {
    let mut backoff = Duration::from_millis(100);
    loop {
        match client.export(crate::common::sequenced_request(first, SPANS_PER_REQUEST)).await {
            Ok(_) => {
                ledger.acknowledged.lock().expect("lock").extend(first..first + SPANS_PER_REQUEST);
                return true;
            }
            Err(status) if is_connection_failure(&status) => {
                // The HTTP/2 layer closed the connection (GOAWAY, broken pipe): the channel
                // reconnects and the request is resent, as OTLP clients do.
                ledger.connection_failures.fetch_add(1, Ordering::Relaxed);
                if Instant::now() > give_up_at {
                    ledger.given_up.fetch_add(1, Ordering::Relaxed);
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::Unavailable, "refusals are retryable: {status:?}");
                ledger.refusals.fetch_add(1, Ordering::Relaxed);
                if Instant::now() > give_up_at {
                    ledger.given_up.fetch_add(1, Ordering::Relaxed);
                    return false;
                }
                // The delay asked for, or the exponential backoff if that is longer.
                let asked =
                    status.get_details_retry_info().and_then(|info| info.retry_delay).unwrap_or_default();
                tokio::time::sleep(asked.max(backoff)).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// The sustainable rate, in spans per second: what a few closed-loop senders get acknowledged;
/// and how many refusals they met meanwhile.
async fn calibrate(url: &str, ledger: &Arc<Ledger>, give_up_after: Duration) -> (f64, u64) {
    let calibration_end = Instant::now() + CALIBRATION;
    let mut senders = Vec::new();
    for _ in 0..CALIBRATION_SENDERS {
        let (ledger, url) = (ledger.clone(), url.to_owned());
        senders.push(tokio::spawn(async move {
            let mut client = TraceServiceClient::connect(url).await.expect("connect");
            while Instant::now() < calibration_end {
                let first = ledger.next.fetch_add(SPANS_PER_REQUEST, Ordering::Relaxed);
                deliver(&mut client, first, &ledger, calibration_end + give_up_after).await;
            }
        }));
    }
    for sender in senders {
        sender.await.expect("sender");
    }
    let calibration_spans = ledger.acknowledged.lock().expect("lock").len() as f64;
    (calibration_spans / CALIBRATION.as_secs_f64(), ledger.refusals.swap(0, Ordering::Relaxed))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_times_the_sustainable_rate_is_refused_retryably_within_the_memory_limit_and_loses_nothing_acknowledged(
) {
    let _turn = crate::common::heavy().await;
    let long = std::env::var_os("AGENTRACE_LONG_TESTS").is_some();
    let seconds = if long { 30 } else { 5 };
    // A request not acknowledged this long after the overload ends is given up, as a client's
    // retry budget runs out (never acknowledged, it is not counted as lost). The backlog of ten
    // times the sustainable rate drains at the sustainable rate.
    let give_up_after = Duration::from_secs(if long { 60 } else { 10 });
    let sink = Sink::default();
    let sink_address = sink.start().await;
    let backend = CollectorProcess::spawn(&["--traces-endpoint", &format!("http://{sink_address}")]);
    let front = CollectorProcess::spawn(&[
        "--traces-endpoint",
        &backend.grpc_url(),
        "--memory-limit",
        &format!("{LIMIT_MIB}MiB"),
        "--export-first-backoff-secs",
        "0.05",
    ]);
    let ledger = Arc::new(Ledger {
        next: AtomicU64::new(0),
        acknowledged: Mutex::new(HashSet::new()),
        refusals: AtomicU64::new(0),
        given_up: AtomicU64::new(0),
        connection_failures: AtomicU64::new(0),
    });

    let (sustainable, calibration_refusals) = calibrate(&front.grpc_url(), &ledger, give_up_after).await;
    let target = sustainable * OVERLOAD_FACTOR;

    // Ten times that, on a fixed schedule.
    let mut clients = Vec::new();
    for _ in 0..CONNECTIONS {
        clients.push(TraceServiceClient::connect(front.grpc_url()).await.expect("connect"));
    }
    let interval = Duration::from_secs_f64(SPANS_PER_REQUEST as f64 / target);
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let overload_end = started + Duration::from_secs(seconds);
    let mut requests = Vec::new();
    while Instant::now() < overload_end {
        ticks.tick().await;
        let mut client = clients[requests.len() % CONNECTIONS].clone();
        let ledger = ledger.clone();
        let first = ledger.next.fetch_add(SPANS_PER_REQUEST, Ordering::Relaxed);
        requests.push(tokio::spawn(async move {
            deliver(&mut client, first, &ledger, overload_end + give_up_after).await
        }));
    }
    let offered = requests.len() as f64 * SPANS_PER_REQUEST as f64 / started.elapsed().as_secs_f64();
    let mut acknowledged_requests = 0;
    for request in requests.iter_mut() {
        acknowledged_requests += u64::from(request.await.expect("request"));
    }
    let peak = front.peak_rss_bytes();
    let acknowledged = ledger.acknowledged.lock().expect("lock").clone();
    let (received, arrivals) = crate::common::await_sequences(&sink, &acknowledged).await;
    let lost = acknowledged.difference(&received).count();
    println!(
        "overload: sustainable {sustainable:.0} spans/s ({calibration_refusals} refusals while measuring it); \
         offered {offered:.0} spans/s ({:.1}x) for {seconds}s: {} requests, {acknowledged_requests} acknowledged, \
         {} refusals, {} connection failures, {} given up; {} spans acknowledged in all, received {} ({arrivals} arrivals), lost {lost}, \
         peak RSS {:.1} MiB of {LIMIT_MIB} MiB",
        offered / sustainable,
        requests.len(),
        ledger.refusals.load(Ordering::Relaxed),
        ledger.connection_failures.load(Ordering::Relaxed),
        ledger.given_up.load(Ordering::Relaxed),
        acknowledged.len(),
        received.len(),
        peak as f64 / (1 << 20) as f64,
    );
    assert!(sustainable > 0.0, "nothing was acknowledged while measuring the sustainable rate");
    assert_eq!(lost, 0);
    assert!(peak < LIMIT_MIB << 20, "peak RSS {peak} bytes");
}
