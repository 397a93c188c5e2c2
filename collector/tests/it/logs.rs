//! OTLP logs from the OpenTelemetry Python SDK's log exporter (gRPC and HTTP) through the
//! collector: forwarded as sent to a second OTLP endpoint (the capturing sink), error records
//! counted by type, and the shipped vLLM rules reading the lines.

use std::collections::BTreeSet;

use crate::common::{eventually, metric_value, python, Collector, Sink};

async fn send(protocol: &str, endpoint: &str, service: &str) -> serde_json::Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/send_logs.py");
    let output = tokio::process::Command::new(python())
        .args([script, protocol, endpoint, service])
        .output()
        .await
        .unwrap_or_else(|error| {
            panic!("cannot run {} ({error}); run ./scripts/test, which sets it up", python())
        });
    assert!(output.status.success(), "send_logs.py {protocol}: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("what the script sent, as JSON")
}

/// (service, body, severity text, trace id) of every record the sink received.
fn forwarded(sink: &Sink) -> BTreeSet<(String, String, String, String)> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    let received = sink.logs.lock().expect("sink").clone();
    let mut records = BTreeSet::new();
    for resource_logs in received.iter().flat_map(|request| &request.resource_logs) {
        let service = resource_logs
            .resource
            .iter()
            .flat_map(|resource| &resource.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                Value::StringValue(name) => Some(name.clone()),
                _ => None,
            })
            .unwrap_or_default();
        for record in resource_logs.scope_logs.iter().flat_map(|scope| &scope.log_records) {
            let body = match record.body.as_ref().and_then(|body| body.value.as_ref()) {
                Some(Value::StringValue(text)) => text.clone(),
                _ => String::new(),
            };
            records.insert((
                service.clone(),
                body,
                record.severity_text.clone(),
                hex::encode(&record.trace_id),
            ));
        }
    }
    records
}

#[tokio::test]
async fn python_sdk_logs_are_forwarded_as_sent_counted_and_read_by_the_rules() {
    let sink = Sink::default();
    let sink_address = sink.start().await;
    let endpoint = format!("grpc://{sink_address}");
    let collector = Collector::start(&["--logs-endpoint", &endpoint]).await;
    let mut expected = BTreeSet::new();
    for (protocol, url, service) in [
        ("grpc", format!("http://{}", collector.grpc), "vllm-grpc"),
        ("http", format!("http://{}", collector.http), "vllm-http"),
    ] {
        let sent = send(protocol, &url, service).await;
        let trace_id = sent["trace_id"].as_str().expect("a trace id").to_owned();
        for record in sent["records"].as_array().expect("records") {
            let body = record["body"].as_str().expect("body").to_owned();
            let severity = record["severity"].as_str().expect("severity").to_owned();
            expected.insert((service.to_owned(), body, severity, trace_id.clone()));
        }
    }
    let seen = eventually("all eight records at the second endpoint", async || {
        let seen = forwarded(&sink);
        (seen.len() >= expected.len()).then_some(seen)
    })
    .await;
    assert_eq!(seen, expected, "forwarded as sent, with their trace ids");

    let page = collector.scrape().await;
    for (service, transport) in [("vllm-grpc", "grpc"), ("vllm-http", "http")] {
        let errors = |kind: &str| {
            metric_value(&page, &format!("llm_log_errors_total{{service=\"{service}\",type=\"{kind}\"}}"))
        };
        assert_eq!(errors("oom"), Some(1.0), "{service}: the CUDA out-of-memory line, by the vLLM rule");
        assert_eq!(errors("timeout"), Some(1.0), "{service}: the TimeoutError, by its exception type");
        let load = format!("llm_model_load_time_seconds{{service=\"{service}\",model=\"\"}}");
        assert_eq!(metric_value(&page, &load), Some(5.21), "{service}");
        let throughput =
            format!("llm_log_value{{service=\"{service}\",rule=\"vllm_generation_tokens_per_second\"}}");
        assert_eq!(metric_value(&page, &throughput), Some(456.7));
        let received = format!("agentrace_log_records_received_total{{transport=\"{transport}\"}}");
        assert_eq!(metric_value(&page, &received), Some(4.0));
    }
    eventually("the exported count", async || {
        (metric_value(&collector.scrape().await, "agentrace_log_records_exported_total")? == 8.0)
            .then_some(())
    })
    .await;
    collector.stop().await;
}

/// The SDK's `tracing` → OTLP logs bridge: events inside an agent's span reach the collector
/// with that span's trace id, are counted and read by the rules, and are forwarded.
#[tokio::test]
async fn the_sdk_bridge_sends_tracing_events_with_their_trace_ids() {
    use tracing_subscriber::layer::SubscriberExt;
    let sink = Sink::default();
    let sink_address = sink.start().await;
    let collector = Collector::start(&["--logs-endpoint", &format!("grpc://{sink_address}")]).await;
    let endpoint = format!("http://{}", collector.grpc);
    let trace_id = tokio::task::spawn_blocking(move || {
        let guard =
            agentrace::builder().service_name("rust-agent").endpoint(endpoint).build().expect("the SDK");
        let subscriber =
            tracing_subscriber::registry().with(agentrace::layer(guard.tracer())).with(guard.log_layer());
        let trace_id = tracing::subscriber::with_default(subscriber, || {
            let agent = agentrace::agent("planner");
            let _inside = agent.enter();
            tracing::info!("Loading weights took 2.50 seconds");
            tracing::error!("CUDA out of memory while decoding");
            opentelemetry::trace::TraceContextExt::span(&opentelemetry::Context::current())
                .span_context()
                .trace_id()
                .to_string()
        });
        let stats = guard.shutdown();
        assert_eq!(stats.failed, 0, "spans exported");
        trace_id
    })
    .await
    .expect("the SDK thread");
    let seen = eventually("the two records at the second endpoint", async || {
        let seen = forwarded(&sink);
        (seen.len() >= 2).then_some(seen)
    })
    .await;
    let bodies: BTreeSet<(String, String, String, String)> =
        [("Loading weights took 2.50 seconds", "INFO"), ("CUDA out of memory while decoding", "ERROR")]
            .iter()
            .map(|(body, level)| {
                ("rust-agent".to_owned(), (*body).to_owned(), (*level).to_owned(), trace_id.clone())
            })
            .collect();
    assert_eq!(seen, bodies, "forwarded with the agent span's trace id {trace_id}");
    let page = collector.scrape().await;
    assert_eq!(metric_value(&page, "llm_log_errors_total{service=\"rust-agent\",type=\"oom\"}"), Some(1.0));
    assert_eq!(
        metric_value(&page, "llm_model_load_time_seconds{service=\"rust-agent\",model=\"\"}"),
        Some(2.5)
    );
    collector.stop().await;
}

/// 200 000 empty log records (2 bytes each, 184 decoded) are refused before prost builds them,
/// in protobuf and in JSON, and counted; a real request still goes through.
#[tokio::test]
async fn a_logs_body_of_empty_records_is_refused_as_too_large() {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use prost::Message;
    let collector = crate::common::Collector::start(&[]).await;
    let request = |records: Vec<LogRecord>| ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs { log_records: records, ..Default::default() }],
            ..Default::default()
        }],
    };
    let post = |content_type: &'static str, body: Vec<u8>| {
        let url = format!("http://{}/v1/logs", collector.http);
        async move {
            let response = reqwest::Client::new()
                .post(url)
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .expect("post");
            response.status().as_u16()
        }
    };
    let empty = request(vec![LogRecord::default(); 200_000]).encode_to_vec();
    assert_eq!(post("application/x-protobuf", empty).await, 413);
    let spans = vec!["{}"; 200_000].join(",");
    let json = format!(r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{spans}]}}]}}]}}"#);
    assert_eq!(post("application/json", json.into_bytes()).await, 413);
    let line = LogRecord { time_unix_nano: 1, severity_text: "INFO".to_owned(), ..Default::default() };
    assert_eq!(post("application/x-protobuf", request(vec![line]).encode_to_vec()).await, 200);
    let metrics = collector.scrape().await;
    let refused = r#"agentrace_requests_refused_total{transport="http",reason="too_large"}"#;
    assert_eq!(crate::common::value(&metrics, refused), 2.0, "{metrics}");
}
