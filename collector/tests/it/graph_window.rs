//! The agent-graph window under traces whose parents never arrive: 40 traces of 10 000 LLM
//! calls that do not name their agent, each waiting for a parent span that is never sent. The
//! window stays within its byte budget (sized from `--memory-limit`), the process under its
//! limit, and the ingest rate does not fall as the traces grow (nothing is rescanned).

use std::time::Instant;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span};

use crate::common::{eventually, int, metric_value, request, text, unix_nanos, CollectorProcess};

const TRACES: u32 = 40;
const SPANS_PER_TRACE: u32 = 10_000;
const SPANS_PER_REQUEST: u32 = 200;

/// The `request`-th request: 200 calls of one trace, each under a parent never sent.
fn orphans(request: u32) -> ResourceSpans {
    let trace = request % TRACES;
    let first = request / TRACES * SPANS_PER_REQUEST;
    let now = unix_nanos();
    let spans = (first..first + SPANS_PER_REQUEST)
        .map(|n| {
            let mut trace_id = [0x77; 16];
            trace_id[..4].copy_from_slice(&(trace + 1).to_be_bytes());
            let mut span_id = [0x11; 8];
            span_id[4..].copy_from_slice(&(n + 1).to_be_bytes());
            let mut parent = [0x22; 8];
            parent[4..].copy_from_slice(&(n + 1).to_be_bytes());
            Span {
                trace_id: trace_id.to_vec(),
                span_id: span_id.to_vec(),
                parent_span_id: parent.to_vec(),
                name: "chat gpt-4o".to_owned(),
                kind: span::SpanKind::Client as i32,
                start_time_unix_nano: now - 1_000_000_000,
                end_time_unix_nano: now,
                attributes: vec![
                    text("gen_ai.operation.name", "chat"),
                    text("gen_ai.provider.name", "openai"),
                    text("gen_ai.request.model", "gpt-4o"),
                    int("gen_ai.usage.input_tokens", 100),
                    int("gen_ai.usage.output_tokens", 10),
                ],
                ..Default::default()
            }
        })
        .collect();
    ResourceSpans { scope_spans: vec![ScopeSpans { spans, ..Default::default() }], ..Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphaned_traces_stay_within_the_window_s_byte_budget_at_a_steady_rate() {
    let _turn = crate::common::heavy().await;
    let collector = CollectorProcess::spawn(&["--memory-limit", "256MiB", "--graph-wait-secs", "60"]);
    let mut client = TraceServiceClient::connect(collector.grpc_url()).await.expect("connect");
    let requests = TRACES * SPANS_PER_TRACE / SPANS_PER_REQUEST;
    let mut quarter_rates = Vec::new();
    let mut quarter_started = Instant::now();
    let (mut sent, mut refused) = (0, 0);
    let mut graph_bytes_seen = 0.0_f64;
    for request_number in 0..requests {
        loop {
            match client.export(request(vec![orphans(request_number)])).await {
                Ok(_) => break,
                Err(status) if status.code() == tonic::Code::Unavailable => {
                    refused += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(status) => panic!("{status:?}"),
            }
        }
        sent += SPANS_PER_REQUEST;
        if (request_number + 1) % (requests / 4) == 0 {
            let metrics = collector.scrape().await;
            graph_bytes_seen =
                graph_bytes_seen.max(metric_value(&metrics, "agentrace_graph_bytes").unwrap_or(0.0));
            quarter_rates
                .push(f64::from(requests / 4 * SPANS_PER_REQUEST) / quarter_started.elapsed().as_secs_f64());
            quarter_started = Instant::now();
        }
    }
    let metrics = eventually("every span derived", async || {
        let metrics = collector.scrape().await;
        let requests = metric_value(&metrics, "llm_requests_total{service=\"unknown_service\",agent=\"\",provider=\"openai\",model=\"gpt-4o\",operation=\"chat\",status=\"ok\"}");
        let pending = metric_value(&metrics, "agentrace_attribution_pending_spans")?;
        let unresolved: f64 = ["evicted", "wait_expired", "span_cap"]
            .iter()
            .filter_map(|reason| metric_value(&metrics, &format!("agentrace_attribution_unresolved_total{{reason=\"{reason}\"}}")))
            .sum();
        let _ = requests;
        (pending + unresolved == f64::from(sent)).then_some(metrics)
    })
    .await;
    let max_bytes = metric_value(&metrics, "agentrace_graph_max_bytes").expect("the budget");
    let peak = collector.peak_rss_bytes();
    println!(
        "orphaned traces: {sent} spans in {TRACES} traces of {SPANS_PER_TRACE}; spans/s by quarter {quarter_rates:.0?}; window at most {:.1} MiB of {:.1} MiB; peak RSS {:.1} MiB of 256; {refused} refusals",
        graph_bytes_seen / f64::from(1 << 20),
        max_bytes / f64::from(1 << 20),
        peak as f64 / f64::from(1 << 20)
    );
    assert_eq!(max_bytes, f64::from(64 << 20), "a quarter of --memory-limit");
    assert!(graph_bytes_seen <= max_bytes, "{graph_bytes_seen} over {max_bytes}");
    assert!(peak < 256 << 20, "peak RSS {peak}");
}
