//! The SDK configured only by `OTEL_*` variables, in a sync program that exits right after
//! its work: over OTLP/gRPC and over OTLP/HTTP every span arrives (the guard flushes on
//! drop), with the service name, resource attributes, pid and host name from the SDK, and
//! message content only when the environment asks for it.

use crate::common::InProcessCollector;
use agentrace_semconv::attr;
use agentrace_testkit::eventually;
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};

fn value_of<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attributes.iter().find(|kv| kv.key == key)?.value.as_ref()?.value.as_ref()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_job_loses_no_span_over_grpc_or_http() {
    // The collector keeps content here, so the sink shows what the SDK captured.
    let collector = InProcessCollector::start_with(&["--keep-content"]).await;
    let runs = [
        ("nightly-eval-grpc", "grpc", format!("http://{}", collector.grpc), Some("true")),
        ("nightly-eval-http", "http/protobuf", format!("http://{}", collector.http), None),
    ];
    for (service, protocol, endpoint, capture) in &runs {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_agentrace-batch-job"));
        command
            .arg("7")
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
            .env("OTEL_SERVICE_NAME", service)
            .env("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=test")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .env_remove(agentrace::CAPTURE_ENV);
        if let Some(capture) = capture {
            command.env(agentrace::CAPTURE_ENV, capture);
        }
        let output = command.output().await.expect("run the batch job");
        assert!(output.status.success(), "{service}: {}", String::from_utf8_lossy(&output.stderr));
        assert!(
            output.stderr.is_empty(),
            "no export trouble reported: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    for (service, ..) in &runs {
        let series = format!(
            "llm_prompt_tokens_total{{service=\"{service}\",agent=\"evaluator\",provider=\"\",model=\"judge-model\"}} 700\n"
        );
        eventually(&series, async || collector.metrics_text().await.contains(&series).then_some(())).await;
    }

    let spans = eventually("16 spans at the sink", async || {
        let spans = collector.sink.spans();
        (spans.len() >= 16).then_some(spans)
    })
    .await;
    assert_eq!(spans.len(), 16, "7 calls and 1 agent span per run");
    for (resource, span) in &spans {
        let resource = resource.as_ref().expect("resource");
        let service = match value_of(&resource.attributes, attr::SERVICE_NAME) {
            Some(any_value::Value::StringValue(name)) => name.clone(),
            other => panic!("service.name {other:?}"),
        };
        assert!(
            matches!(value_of(&resource.attributes, attr::PROCESS_PID), Some(any_value::Value::IntValue(pid)) if *pid > 0)
        );
        assert!(value_of(&resource.attributes, attr::HOST_NAME).is_some());
        assert_eq!(
            value_of(&resource.attributes, "deployment.environment.name"),
            Some(&any_value::Value::StringValue("test".to_owned()))
        );
        if span.name == "chat judge-model" {
            let captured = value_of(&span.attributes, attr::GEN_AI_INPUT_MESSAGES).is_some();
            assert_eq!(
                captured,
                service == "nightly-eval-grpc",
                "content only where the environment asked for it"
            );
        }
    }
    collector.stop().await;
}
