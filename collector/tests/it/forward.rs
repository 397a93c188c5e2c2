//! Trace forwarding: collector A forwards to collector B (a second instance as the trace
//! endpoint), which forwards to a capturing OTLP sink. Every span sent to A arrives at the
//! sink byte for byte, including those still queued when A is told to stop, with one
//! addition: LLM calls that report usage carry `agentrace.cost.usd`, once. A full queue
//! answers with a retryable refusal. Without `--keep-content`, no prompt or completion text
//! reaches the next hop, wherever in the span it was put.

use std::collections::HashMap;

use crate::common::{agent_trace, request, Collector, CollectorProcess, Sink};
use agentrace_semconv::attr;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue, KeyValueList};
use opentelemetry_proto::tonic::trace::v1::{span, status, Status};
use prost::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_arrive_byte_for_byte_through_two_collectors_and_a_shutdown() {
    let sink = Sink::default();
    let sink_address = sink.start().await;
    // Both keep content, so that nothing is redacted (the timed-out call's status message would
    // be); what is added is checked below.
    let sink_url = format!("http://{sink_address}");
    let second = Collector::start(&["--traces-endpoint", &sink_url, "--keep-content"]).await;
    // A process of its own, so that SIGTERM is what stops it.
    let first = CollectorProcess::spawn(&["--traces-endpoint", &second.grpc_url(), "--keep-content"]);

    let mut sent = Vec::new();
    let mut client = TraceServiceClient::connect(first.grpc_url()).await.expect("connect");
    for trace in 0..3u8 {
        let resource_spans = agent_trace("forward-grpc", [0x40 + trace; 16]);
        client.export(request(vec![resource_spans.clone()])).await.expect("accepted");
        sent.push(resource_spans);
    }
    for trace in 0..2u8 {
        let resource_spans = agent_trace("forward-http", [0x50 + trace; 16]);
        let body = serde_json::to_vec(&request(vec![resource_spans.clone()])).expect("json");
        let response = reqwest::Client::new()
            .post(format!("http://{}/v1/traces", first.http))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("http export");
        assert_eq!(response.status(), 200);
        sent.push(resource_spans);
    }
    // Stop at once: what A acknowledged is still in its queues and must drain.
    let exit = first.terminate();
    assert!(exit.success(), "clean exit after draining: {exit:?}");

    let expected: HashMap<Vec<u8>, Vec<u8>> = sent
        .iter()
        .flat_map(|resource_spans| {
            let resource = resource_spans.resource.clone().expect("resource").encode_to_vec();
            resource_spans.scope_spans[0].spans.iter().map(move |span| {
                let mut bytes = resource.clone();
                bytes.extend(span.encode_to_vec());
                (span.span_id.clone(), bytes)
            })
        })
        .collect();
    assert_eq!(expected.len(), 20);
    let received = crate::common::eventually("all 20 spans at the sink", async || {
        let spans = sink.spans();
        (spans.len() >= expected.len()).then_some(spans)
    })
    .await;
    assert_eq!(received.len(), expected.len(), "no duplicates");
    let mut costed = 0;
    for (resource, mut span) in received {
        let costs = span.attributes.iter().filter(|kv| kv.key == attr::AGENTRACE_COST_USD).count();
        span.attributes.retain(|kv| kv.key != attr::AGENTRACE_COST_USD);
        if span.name.starts_with("chat ") {
            assert_eq!(costs, 1, "one cost on {}", span.name);
            costed += 1;
        } else {
            assert_eq!(costs, 0, "no cost on {}", span.name);
        }
        let mut bytes = resource.expect("resource kept").encode_to_vec();
        bytes.extend(span.encode_to_vec());
        let span_id = hex::encode(&span.span_id);
        assert_eq!(expected.get(&span.span_id), Some(&bytes), "span {span_id} changed in transit");
    }
    assert_eq!(costed, 10, "two LLM calls per trace");
}

#[tokio::test]
async fn a_full_queue_refuses_with_retry_after_and_counts() {
    // A trace endpoint that never answers: the port stays bound (so no other test can take it)
    // but nothing accepts, so every export attempt hangs until its timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let unreachable = silent.local_addr().expect("address");
    // One request per export batch, so the exporter cannot absorb the queue into one batch.
    let endpoint = format!("http://{unreachable}");
    let collector = Collector::start(&[
        "--traces-endpoint",
        &endpoint,
        "--queue-capacity",
        "1",
        "--export-batch-spans",
        "4",
    ])
    .await;
    let client = reqwest::Client::new();
    let body = request(vec![agent_trace("full-queue", [0x60; 16])]).encode_to_vec();
    let mut refused = 0;
    for _ in 0..200 {
        let response = client
            .post(format!("http://{}/v1/traces", collector.http))
            .header("content-type", "application/x-protobuf")
            .body(body.clone())
            .send()
            .await
            .expect("http export");
        if response.status() == 503 {
            assert_eq!(
                response.headers().get("retry-after").map(|value| value.as_bytes()),
                Some(b"1".as_slice())
            );
            refused += 1;
        } else {
            assert_eq!(response.status(), 200);
        }
    }
    assert!(refused > 0, "the endpoint is down, so the queues fill and the receivers refuse");
    let metrics = collector.scrape().await;
    let expected = format!(
        "agentrace_spans_refused_total{{transport=\"http\",reason=\"queue_full\"}} {}\n",
        refused * 4
    );
    assert!(metrics.contains(&expected), "{expected} in {metrics}");
}

/// The trace of [`agent_trace`] with prompt text (a card number) wherever the hardening sweep
/// found content getting through redaction, and two attributes to redact and hash.
fn with_content(
    mut resource_spans: opentelemetry_proto::tonic::trace::v1::ResourceSpans,
) -> opentelemetry_proto::tonic::trace::v1::ResourceSpans {
    let span = &mut resource_spans.scope_spans[0].spans[1];
    span.attributes.push(crate::common::text(
        attr::GEN_AI_INPUT_MESSAGES,
        "[{\"role\":\"user\",\"content\":\"my card is 4111-1111\"}]",
    ));
    span.attributes.push(crate::common::text("llm.input_messages.0.message.content", "my card is 4111-1111"));
    span.attributes.push(crate::common::text("llm.prompt_template.variables", "{\"card\":\"4111-1111\"}"));
    span.attributes.push(crate::common::text("llm.prompt_template.template", "card 4111-1111: {q}"));
    span.attributes.push(crate::common::text("ai.prompt.messages", "my card is 4111-1111"));
    span.attributes.push(crate::common::text("ai.response.text", "your card 4111-1111"));
    span.attributes.push(KeyValue {
        key: "request".to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::KvlistValue(KeyValueList {
                values: vec![crate::common::text("gen_ai.prompt", "my card is 4111-1111")],
            })),
        }),
        ..Default::default()
    });
    span.events.push(span::Event {
        name: "gen_ai.user.message".to_owned(),
        attributes: vec![
            crate::common::text("content", "my card is 4111-1111"),
            crate::common::text("gen_ai.event.content", "my card is 4111-1111"),
        ],
        ..Default::default()
    });
    span.events.push(span::Event {
        name: attr::EXCEPTION_EVENT.to_owned(),
        attributes: vec![crate::common::text(attr::EXCEPTION_MESSAGE, "bad request: my card is 4111-1111")],
        ..Default::default()
    });
    span.status =
        Some(Status { code: status::StatusCode::Error as i32, message: "rejected 4111-1111".to_owned() });
    span.attributes.push(crate::common::text("user.id", "alice"));
    span.attributes.push(crate::common::text("internal.ticket", "T-1"));
    resource_spans
}

#[tokio::test]
async fn content_is_dropped_and_listed_attributes_redacted_before_forwarding() {
    let key_dir = tempfile::tempdir().expect("temp dir");
    let key_file = key_dir.path().join("hash.key");
    std::fs::write(&key_file, "test-key\n").expect("write the key");
    // HMAC-SHA-256("test-key", "alice"): the key makes a dictionary of likely values useless.
    let alice = {
        use hmac::{KeyInit, Mac};
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"test-key").expect("any key length");
        mac.update(b"alice");
        format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()))
    };
    for keep_content in [false, true] {
        let sink = Sink::default();
        let sink_address = sink.start().await;
        let mut args = vec![
            "--traces-endpoint".to_owned(),
            format!("http://{sink_address}"),
            "--redact-attributes=internal.".to_owned(),
            "--hash-attributes=user.id".to_owned(),
            format!("--hash-key-file={}", key_file.display()),
        ];
        if keep_content {
            args.push("--keep-content".to_owned());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let collector = Collector::start(&args).await;
        let mut client = TraceServiceClient::connect(collector.grpc_url()).await.expect("connect");
        client
            .export(request(vec![with_content(agent_trace("redact", [0x70; 16]))]))
            .await
            .expect("accepted");
        let spans = crate::common::eventually("4 spans at the sink", async || {
            let spans = sink.spans();
            (spans.len() == 4).then_some(spans)
        })
        .await;
        let chat = spans
            .iter()
            .map(|(_, span)| span)
            .find(|span| span.span_id == vec![0x70, 3, 0, 0, 0, 0, 0, 1])
            .expect("chat span");
        let keys: Vec<&str> = chat.attributes.iter().map(|kv| kv.key.as_str()).collect();
        assert!(!keys.contains(&"internal.ticket"), "{keys:?}");
        assert_eq!(keys.contains(&attr::GEN_AI_INPUT_MESSAGES), keep_content, "{keys:?}");
        assert_eq!(keys.contains(&"llm.input_messages.0.message.content"), keep_content, "{keys:?}");
        let everything = format!("{chat:?}");
        assert_eq!(everything.contains("4111-1111"), keep_content, "{everything}");
        assert_eq!(chat.status.as_ref().map(|status| status.code), Some(status::StatusCode::Error as i32));
        assert!(
            chat.events.iter().any(|event| event.name == attr::EXCEPTION_EVENT),
            "the failure stays visible"
        );
        let user = chat.attributes.iter().find(|kv| kv.key == "user.id").expect("user.id kept, hashed");
        let user = format!("{:?}", user.value);
        assert!(user.contains(&alice), "{user}");
    }
}
