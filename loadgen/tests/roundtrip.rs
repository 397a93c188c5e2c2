//! The load generator against real receivers: its own counting sink over gRPC (closed loop),
//! and the agentrace collector over OTLP/HTTP protobuf with gzip and OTLP/HTTP JSON (fixed
//! rate). What it reports acknowledged is what arrived.

use std::time::Duration;

use agentrace_collector::harness::InProcess;
use agentrace_loadgen::{send, CountingSink, Pace, Protocol, SendPlan, Workload};
use tokio::net::TcpListener;

fn plan(endpoint: String, protocol: Protocol, gzip: bool, workload: Workload, pace: Pace) -> SendPlan {
    SendPlan {
        endpoint,
        protocol,
        gzip,
        workload,
        pace,
        duration: Duration::from_millis(700),
        seed: 1,
        pool: 4,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_spans_are_the_spans_the_sink_counted() {
    let sink = CountingSink::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = sink.clone();
    let serving = tokio::spawn(async move {
        server
            .serve(listener, async {
                let _ = stopped.await;
            })
            .await
    });

    let report =
        send(plan(format!("http://{address}"), Protocol::Grpc, false, Workload::W1, Pace::InFlight(4)))
            .await
            .expect("run");
    assert!(report.spans_acknowledged > 0);
    assert_eq!((report.requests_refused, report.requests_failed), (0, 0));
    assert_eq!(report.spans_acknowledged, sink.spans.load(std::sync::atomic::Ordering::Relaxed));
    assert_eq!(report.spans_acknowledged % 512, 0, "whole W1 requests");
    assert!(report.latency_ms_p50 <= report.latency_ms_p99 && report.latency_ms_p99 <= report.latency_ms_max);
    assert!(
        report.sending_secs > 0.0 && report.sending_secs <= report.elapsed_secs,
        "the last request went out before the last answer came: {} / {}",
        report.sending_secs,
        report.elapsed_secs
    );
    let _ = stop.send(());
    serving.await.expect("sink task").expect("sink stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_http_protobuf_gzip_and_json_reach_the_collector() {
    let collector = InProcess::start(&[]).await.expect("the collector starts");
    let (http, metrics) = (collector.http, collector.metrics);

    let mut acknowledged = 0;
    for (protocol, gzip) in [(Protocol::HttpProtobuf, true), (Protocol::HttpJson, false)] {
        let report = send(plan(format!("http://{http}"), protocol, gzip, Workload::W2, Pace::Rate(50.0)))
            .await
            .expect("run");
        assert!(report.spans_acknowledged > 0, "{protocol:?}");
        assert_eq!((report.requests_refused, report.requests_failed), (0, 0), "{protocol:?}");
        acknowledged += report.spans_acknowledged;
    }
    let text =
        reqwest::get(format!("http://{metrics}/metrics")).await.expect("scrape").text().await.expect("text");
    let expected = format!("agentrace_spans_received_total{{transport=\"http\"}} {acknowledged}\n");
    assert!(text.contains(&expected), "{expected}");
    collector.stop().await.expect("collector stops");
}
