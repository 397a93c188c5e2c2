//! Attribution across requests and processes: spans that do not name their agent count under
//! the nearest enclosing agent span of their trace, whichever request brings it and whichever
//! process sent it; what never finds its agent is bounded and counted.

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

use crate::common::{eventually, int, metric_value, request, text, unix_nanos, Collector};
use agentrace_semconv::attr;

const TRACE: [u8; 16] = [0xa7; 16];

fn span(id: u8, parent: Option<u8>, name: &str, attributes: Vec<KeyValue>) -> Span {
    let end = unix_nanos();
    Span {
        trace_id: TRACE.to_vec(),
        span_id: vec![id; 8],
        parent_span_id: parent.map(|parent| vec![parent; 8]).unwrap_or_default(),
        name: name.to_owned(),
        start_time_unix_nano: end - 2_000_000_000,
        end_time_unix_nano: end,
        attributes,
        ..Default::default()
    }
}

/// A chat call that does not say which agent made it.
fn chat(id: u8, parent: u8) -> Span {
    let attributes = vec![
        text(attr::GEN_AI_OPERATION_NAME, "chat"),
        text(attr::GEN_AI_REQUEST_MODEL, "gpt-4o"),
        int(attr::GEN_AI_USAGE_INPUT_TOKENS, 100),
    ];
    span(id, Some(parent), "chat gpt-4o", attributes)
}

fn agent(id: u8, parent: Option<u8>, name: &str) -> Span {
    let attributes =
        vec![text(attr::GEN_AI_OPERATION_NAME, "invoke_agent"), text(attr::GEN_AI_AGENT_NAME, name)];
    span(id, parent, &format!("invoke_agent {name}"), attributes)
}

fn tool(id: u8, parent: u8, name: &str) -> Span {
    let attributes =
        vec![text(attr::GEN_AI_OPERATION_NAME, "execute_tool"), text(attr::GEN_AI_TOOL_NAME, name)];
    span(id, Some(parent), &format!("execute_tool {name}"), attributes)
}

fn from(service: &str, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![text(attr::SERVICE_NAME, service)],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
        ..Default::default()
    }
}

async fn until(collector: &Collector, series: &str, expected: f64) -> String {
    eventually(series, async || {
        let metrics = collector.scrape().await;
        (metric_value(&metrics, series) == Some(expected)).then_some(metrics)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_sent_before_their_agent_wait_for_it_in_a_later_request() {
    let collector = Collector::start(&["--graph-wait-secs", "5"]).await;
    let mut client = TraceServiceClient::connect(collector.grpc_url()).await.expect("connect");
    client
        .export(request(vec![from("front", vec![chat(2, 1), tool(3, 1, "web_search")])]))
        .await
        .expect("accepted");
    until(&collector, "agentrace_attribution_pending_spans", 2.0).await;
    client.export(request(vec![from("front", vec![agent(1, None, "researcher")])])).await.expect("accepted");
    let llm = "service=\"front\",agent=\"researcher\",provider=\"\",model=\"gpt-4o\"";
    let metrics = until(&collector, &format!("llm_prompt_tokens_total{{{llm}}}"), 100.0).await;
    let tool =
        "agent_tool_calls_total{service=\"front\",agent=\"researcher\",tool=\"web_search\",status=\"ok\"}";
    assert_eq!(metric_value(&metrics, tool), Some(1.0));
    let unattributed: Vec<&str> =
        metrics.lines().filter(|line| !line.starts_with('#') && line.contains("agent=\"\"")).collect();
    assert!(unattributed.is_empty(), "nothing counted without its agent: {unattributed:#?}");
    until(&collector, "agentrace_attribution_pending_spans", 0.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_s_spans_count_under_the_agent_that_called_it() {
    let collector = Collector::start(&["--graph-wait-secs", "5"]).await;
    let mut client = TraceServiceClient::connect(collector.grpc_url()).await.expect("connect");
    // The worker process exports first: a call under the planner's HTTP hop, and its own agent.
    let worker = vec![chat(5, 2), agent(4, Some(2), "researcher"), chat(6, 4)];
    client.export(request(vec![from("worker", worker)])).await.expect("accepted");
    let planner = vec![tool(2, 1, "delegate"), agent(1, None, "planner")];
    client.export(request(vec![from("planner-svc", planner)])).await.expect("accepted");
    let hop = "service=\"worker\",agent=\"planner\",provider=\"\",model=\"gpt-4o\"";
    let metrics = until(&collector, &format!("llm_prompt_tokens_total{{{hop}}}"), 100.0).await;
    let own =
        "llm_prompt_tokens_total{service=\"worker\",agent=\"researcher\",provider=\"\",model=\"gpt-4o\"}";
    assert_eq!(metric_value(&metrics, own), Some(100.0));
    let edge = "traces_service_graph_request_total{client=\"planner\",server=\"researcher\",connection_type=\"\",client_service=\"planner-svc\",server_service=\"worker\"}";
    assert_eq!(metric_value(&metrics, edge), Some(1.0), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_traces_without_their_agent_stay_within_the_cap() {
    let cap = 1_000.0;
    let collector =
        Collector::start(&["--graph-wait-secs", "1", "--attribution-max-pending-spans", "1000"]).await;
    let mut client = TraceServiceClient::connect(collector.grpc_url()).await.expect("connect");
    let mut most_pending = 0.0f64;
    for batch in 0..100u32 {
        let spans: Vec<Span> = (0..1_000u32)
            .map(|offset| {
                let mut orphan = chat(2, 1);
                orphan.trace_id[..4].copy_from_slice(&(batch * 1_000 + offset).to_be_bytes());
                orphan
            })
            .collect();
        // Resent after the delay the collector asks for while its queue is full.
        while let Err(refused) = client.export(request(vec![from("orphans", spans.clone())])).await {
            assert_eq!(refused.code(), tonic::Code::Unavailable, "refusals are retryable");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let metrics = collector.scrape().await;
        most_pending =
            most_pending.max(metric_value(&metrics, "agentrace_attribution_pending_spans").unwrap_or(0.0));
    }
    let counted = "llm_prompt_tokens_total{service=\"orphans\",agent=\"\",provider=\"\",model=\"gpt-4o\"}";
    let metrics = until(&collector, counted, 100_000.0 * 100.0).await;
    assert!(most_pending <= cap, "at most {cap} waiting: {most_pending}");
    let evicted =
        metric_value(&metrics, "agentrace_attribution_unresolved_total{reason=\"evicted\"}").unwrap_or(0.0);
    let expired = metric_value(&metrics, "agentrace_attribution_unresolved_total{reason=\"wait_expired\"}")
        .unwrap_or(0.0);
    assert_eq!(evicted + expired, 100_000.0, "every orphan counted as unresolved: {evicted} + {expired}");
    assert!(evicted >= 99_000.0, "the overflow past the cap: {evicted}");
}
