//! The official OpenTelemetry Python SDK and OTLP exporters (from PyPI; `scripts/test`
//! installs them into a virtualenv and sets `AGENTRACE_PYTHON`) send GenAI-convention spans to
//! the collector binary over gRPC and over HTTP; a real Prometheus reads the metrics back.

use crate::common::{Collector, Prometheus};

fn python() -> String {
    std::env::var("AGENTRACE_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

async fn send(protocol: &str, endpoint: &str, service: &str) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/send_genai.py");
    let output = tokio::process::Command::new(python())
        .args([script, protocol, endpoint, service])
        .output()
        .await
        .unwrap_or_else(|error| {
            panic!("cannot run {} ({error}); run ./scripts/test, which sets it up", python())
        });
    assert!(
        output.status.success(),
        "send_genai.py {protocol} failed (the OpenTelemetry Python SDK comes from ./scripts/test): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_spans_over_grpc_and_http_become_the_right_metrics() {
    let collector = Collector::start(&["--graph-wait-secs", "1"]).await;
    let prometheus = Prometheus::start(&[collector.metrics]).await;
    let grpc_trace = send("grpc", &format!("http://{}", collector.grpc), "py-grpc").await;
    let http_trace = send("http", &format!("http://{}", collector.http), "py-http").await;
    assert_eq!((grpc_trace.len(), http_trace.len()), (32, 32));

    for service in ["py-grpc", "py-http"] {
        crate::common::expect_agent_trace_metrics(&prometheus, service).await;
    }
    prometheus
        .expect_value(
            "sum(traces_service_graph_request_total{client=\"researcher\",server=\"tool:web_search\"})",
            2.0,
        )
        .await;
    crate::common::expect_exemplar_trace_ids(&prometheus, vec![grpc_trace, http_trace]).await;
}
