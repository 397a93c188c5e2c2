//! End to end: GenAI spans over OTLP/gRPC and OTLP/HTTP-JSON into the collector binary, a
//! real Prometheus scraping it with exemplar storage on, and exact values read back through
//! Prometheus's query API.

use crate::common::{agent_trace, request, Collector, Prometheus};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;

const GRPC_TRACE: [u8; 16] = [0x11; 16];
const HTTP_TRACE: [u8; 16] = [0x22; 16];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn genai_spans_become_exact_prometheus_values_with_exemplars() {
    let collector = Collector::start(&["--graph-wait-secs", "1"]).await;
    let prometheus = Prometheus::start(&[collector.metrics]).await;

    let mut grpc = TraceServiceClient::connect(collector.grpc_url()).await.expect("connect grpc");
    let response = grpc
        .export(request(vec![agent_trace("e2e-grpc", GRPC_TRACE)]))
        .await
        .expect("grpc export accepted")
        .into_inner();
    assert_eq!(response.partial_success, None);

    let json = serde_json::to_vec(&request(vec![agent_trace("e2e-http", HTTP_TRACE)])).expect("OTLP/JSON");
    let response = reqwest::Client::new()
        .post(format!("http://{}/v1/traces", collector.http))
        .header("content-type", "application/json")
        .body(json)
        .send()
        .await
        .expect("http export");
    assert_eq!(response.status(), 200);

    for service in ["e2e-grpc", "e2e-http"] {
        crate::common::expect_agent_trace_metrics(&prometheus, service).await;
    }
    // The same agent in two services: two graph nodes apart, by their service.
    for service in ["e2e-grpc", "e2e-http"] {
        let edge = format!("client=\"researcher\",server=\"tool:web_search\",client_service=\"{service}\",server_service=\"{service}\"");
        prometheus.expect_value(&format!("traces_service_graph_request_total{{{edge}}}"), 1.0).await;
        let failed = format!("client=\"researcher\",server=\"model:gpt-4o\",client_service=\"{service}\"");
        prometheus.expect_value(&format!("traces_service_graph_request_failed_total{{{failed}}}"), 1.0).await;
    }
    prometheus.expect_value("sum(agentrace_spans_received_total)", 8.0).await;
    crate::common::expect_exemplar_trace_ids(
        &prometheus,
        [GRPC_TRACE, HTTP_TRACE].iter().map(hex::encode).collect(),
    )
    .await;
}
