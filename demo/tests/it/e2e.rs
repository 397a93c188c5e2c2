//! The demo against the real collector (in process) and a real Prometheus: the token and
//! error counters equal what the demo reports it sent, the agent-graph edges exist, and one
//! trace holds spans from both demo processes (read at a sink the collector forwards to).

use std::collections::BTreeSet;

use crate::common::InProcessCollector;
use agentrace_semconv::attr;
use agentrace_testkit::{eventually, Prometheus};
use opentelemetry_proto::tonic::common::v1::any_value;

fn service_of(resource: Option<&opentelemetry_proto::tonic::resource::v1::Resource>) -> Option<String> {
    resource?.attributes.iter().find(|kv| kv.key == attr::SERVICE_NAME).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(name) => Some(name.clone()),
            _ => None,
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_traffic_becomes_matching_metrics_edges_and_cross_process_traces() {
    let collector = InProcessCollector::start().await;
    let grpc = collector.grpc;
    let prometheus = Prometheus::start(&[collector.metrics]).await;

    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_agentrace-demo"))
        .args(["--endpoint", &format!("http://{grpc}")])
        .args(["--rps", "6", "--duration-secs", "3", "--failure-rate", "0.25", "--latency-scale", "0.2"])
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("run the demo");
    assert!(output.status.success(), "demo failed: {}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    let number = |value: &serde_json::Value| value.as_u64().expect("a count") as f64;

    for (service, tally) in report["services"].as_object().expect("services") {
        assert!(number(&tally["prompt_tokens"]) > 0.0, "{service} sent tokens");
        prometheus
            .expect_value(
                &format!("sum(llm_prompt_tokens_total{{service=\"{service}\"}})"),
                number(&tally["prompt_tokens"]),
            )
            .await;
        prometheus
            .expect_value(
                &format!("sum(llm_response_tokens_total{{service=\"{service}\"}})"),
                number(&tally["response_tokens"]),
            )
            .await;
        prometheus
            .expect_value(
                &format!("sum(llm_requests_total{{service=\"{service}\"}})"),
                number(&tally["llm_calls"]),
            )
            .await;
        for (metric, field) in [
            ("llm_cache_read_tokens_total", "cache_read_tokens"),
            ("llm_cache_write_tokens_total", "cache_write_tokens"),
        ] {
            let query = format!("sum({metric}{{service=\"{service}\"}}) or vector(0)");
            prometheus.expect_value(&query, number(&tally[field])).await;
        }
    }
    let total = &report["total"];
    assert!(number(&total["cache_read_tokens"]) > 0.0 && number(&total["cache_write_tokens"]) > 0.0);
    let errors = report["total"]["errors"].as_object().expect("errors");
    assert!(errors.len() >= 4, "several error types injected: {errors:?}");
    for (kind, count) in errors {
        prometheus
            .expect_value(&format!("sum(llm_inference_errors_total{{type=\"{kind}\"}})"), number(count))
            .await;
    }

    for edge in [
        // Across the process hop: the planner's service calls the researcher's.
        "traces_service_graph_request_total{client=\"planner\",server=\"researcher\",client_service=\"demo-planner\",server_service=\"demo-researcher\"}",
        "traces_service_graph_request_total{client=\"researcher\",server=\"tool:web_search\"}",
        "traces_service_graph_request_total{client=\"planner\",server=\"model:llama-3.1-8b-instruct\"}",
    ] {
        eventually(edge, async || prometheus.value(edge).await.filter(|count| *count > 0.0)).await;
    }

    let both = BTreeSet::from(["demo-planner".to_owned(), "demo-researcher".to_owned()]);
    eventually("a trace with spans from both processes", async || {
        let mut services_by_trace: std::collections::HashMap<Vec<u8>, BTreeSet<String>> = Default::default();
        for (resource, span) in collector.sink.spans() {
            if let Some(service) = service_of(resource.as_ref()) {
                services_by_trace.entry(span.trace_id.clone()).or_default().insert(service);
            }
        }
        services_by_trace.values().any(|services| services.is_superset(&both)).then_some(())
    })
    .await;

    collector.stop().await;
}
