//! Limits that keep the collector alive under pressure: above `--memory-limit` the receivers
//! refuse with retryable answers (and count them); a flood of unique span names stays within
//! each metric's series cap, in one overflow series, and the scrape stays small.

use crate::common::{agent_trace, request, text, Collector, CollectorProcess};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

#[tokio::test]
async fn above_the_memory_limit_requests_are_refused_retryably() {
    let collector = Collector::start(&["--memory-limit", "1MiB"]).await;
    let response = reqwest::Client::new()
        .post(format!("http://{}/v1/traces", collector.http))
        .header("content-type", "application/x-protobuf")
        .body(request(vec![agent_trace("memory", [0x90; 16])]).encode_to_vec())
        .send()
        .await
        .expect("http request");
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers().get("retry-after").map(|value| value.as_bytes()), Some(b"1".as_slice()));

    let mut client = TraceServiceClient::connect(collector.grpc_url()).await.expect("connect");
    let status = client.export(request(vec![agent_trace("memory", [0x91; 16])])).await.expect_err("refused");
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert!(
        tonic_types::StatusExt::get_details_retry_info(&status).is_some(),
        "tells the client when to retry"
    );

    let metrics = collector.scrape().await;
    for line in [
        "agentrace_spans_refused_total{transport=\"http\",reason=\"memory_limit\"} 4\n",
        "agentrace_spans_refused_total{transport=\"grpc\",reason=\"memory_limit\"} 4\n",
        "agentrace_memory_limit_bytes 1048576\n",
    ] {
        assert!(metrics.contains(line), "{line}");
    }
    assert!(!metrics.contains("agentrace_spans_received_total{"), "nothing was taken in");

    let roomy = Collector::start(&["--memory-limit", "4GiB"]).await;
    let mut client = TraceServiceClient::connect(roomy.grpc_url()).await.expect("connect");
    client.export(request(vec![agent_trace("memory", [0x92; 16])])).await.expect("under the limit: accepted");
}

#[tokio::test]
async fn a_flood_of_unique_span_names_stays_within_the_series_cap() {
    // A process of its own: its resident memory is measured.
    let collector = CollectorProcess::spawn(&["--max-series-per-metric", "100"]);
    let mut client = TraceServiceClient::connect(collector.grpc_url()).await.expect("connect");
    // 5 000 names by default; `AGENTRACE_LONG_TESTS=1` (scripts/reliability): 100 000.
    let names: u32 = if std::env::var_os("AGENTRACE_LONG_TESTS").is_some() { 100_000 } else { 5_000 };
    for chunk in 0..(names / 500) {
        let spans = (0..500u32)
            .map(|offset| {
                let n = chunk * 500 + offset;
                let mut id = [0u8; 8];
                id[..4].copy_from_slice(&(n + 1).to_be_bytes());
                Span {
                    trace_id: [0xaa; 16].to_vec(),
                    span_id: id.to_vec(),
                    name: format!("unique-operation-{n}"),
                    attributes: vec![text("gen_ai.request.model", &format!("model-{n}"))],
                    start_time_unix_nano: 1,
                    end_time_unix_nano: 2,
                    ..Default::default()
                }
            })
            .collect();
        let resource_spans = ResourceSpans {
            scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
            ..Default::default()
        };
        client.export(request(vec![resource_spans])).await.expect("accepted");
    }
    // The spans past the first 100 names still count, in the overflow series, and are counted
    // as overflowed. A page reads each family at its own instant (the collector's own families
    // first), so both are waited for: a page taken while spans are still being applied can
    // show the overflow series complete and the count behind it.
    let overflow =
        format!("traces_spanmetrics_calls_total{{otel_metric_overflow=\"true\"}} {}\n", names - 100);
    let counted = format!(
        "agentrace_metric_series_overflow_total{{metric=\"traces_spanmetrics_calls_total\"}} {}\n",
        names - 100
    );
    let metrics = crate::common::eventually("every span counted", async || {
        let metrics = collector.scrape().await;
        (metrics.contains(&overflow) && metrics.contains(&counted)).then_some(metrics)
    })
    .await;
    let series = metrics.lines().filter(|line| line.starts_with("traces_spanmetrics_calls_total{")).count();
    assert_eq!(series, 101, "100 named series and one overflow series");
    assert!(metrics.len() < 1_000_000, "scrape of {} bytes", metrics.len());
    let peak = collector.peak_rss_bytes();
    assert!(peak < 256 << 20, "peak RSS {peak} bytes");
    println!("cardinality: {names} unique span names, {series} span-metric series, scrape {} bytes, peak RSS {:.1} MiB", metrics.len(), peak as f64 / (1 << 20) as f64);
}
