use super::*;
use crate::receive::decode;
use crate::wire::{span, Resource, ResourceSpans, ScopeSpans, Span};
use opentelemetry_proto::tonic::collector::trace::v1 as standard;
use opentelemetry_proto::tonic::trace::v1::Span as TraceSpan;

fn text(key: &str, value: &str) -> KeyValue {
    KeyValue::string(key.to_owned(), value.to_owned())
}

fn request() -> ExportTraceServiceRequest {
    let span = Span {
        attributes: vec![
            text(attr::GEN_AI_INPUT_MESSAGES, "[{\"role\":\"user\"}]"),
            text("llm.input_messages.0.message.content", "secret prompt"),
            text("gen_ai.prompt.0.content", "secret prompt"),
            text("gen_ai.prompt.variable.name", "secret"),
            text("input.value", "secret"),
            text(attr::GEN_AI_REQUEST_MODEL, "gpt-4o"),
            text(attr::GEN_AI_PROMPT_NAME, "support-answer"),
            text(attr::GEN_AI_PROMPT_VERSION, "3"),
            text("user.id", "alice"),
            text("internal.ticket", "T-1"),
        ],
        events: vec![span::Event {
            name: "gen_ai.choice".to_owned().into(),
            attributes: vec![text(attr::GEN_AI_OUTPUT_MESSAGES, "secret answer"), text("index", "0")],
            ..Default::default()
        }],
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource { attributes: vec![text("user.id", "alice")], ..Default::default() }),
            scope_spans: vec![ScopeSpans { spans: vec![span], ..Default::default() }],
            ..Default::default()
        }],
    }
}

fn keys(attributes: &[KeyValue]) -> Vec<&str> {
    attributes.iter().map(|kv| kv.key.text()).collect()
}

#[test]
fn content_is_dropped_by_default_and_listed_keys_are_dropped_or_hashed() {
    let mut request = request();
    let enricher = Enricher::new(false, vec!["internal.".to_owned()], vec!["user.id".to_owned()]);
    assert_eq!(enricher.redact_request(&mut request), vec![SpanPos { resource: 0, scope: 0, span: 0 }]);
    let resource_spans = &request.resource_spans[0];
    let span = &resource_spans.scope_spans[0].spans[0];
    assert_eq!(
        keys(&span.attributes),
        vec![attr::GEN_AI_REQUEST_MODEL, attr::GEN_AI_PROMPT_NAME, attr::GEN_AI_PROMPT_VERSION, "user.id"],
        "a prompt template's name and version are names, its variables content"
    );
    assert_eq!(keys(&span.events[0].attributes), vec!["index"]);
    let hashed = |kv: &KeyValue| match kv.value.as_ref().and_then(|value| value.value.clone()) {
        Some(any_value::Value::StringValue(text)) => text.text().to_owned(),
        other => panic!("{other:?}"),
    };
    let alice = hashed(&span.attributes[3]);
    assert!(alice.starts_with("hmac-sha256:") && alice.len() == "hmac-sha256:".len() + 64, "{alice}");
    // sha256("alice"), which a dictionary of user names would find: not what is sent.
    assert!(!alice.contains("2bd806c97f0e00af1a1fc3328fa763a9269723c8db8fac4f93af71db186d6e90"));
    let resource = resource_spans.resource.as_ref().expect("resource");
    assert_eq!(hashed(&resource.attributes[0]), alice, "resources too, and equal values hash equal");
}

#[test]
fn keep_content_keeps_it() {
    let mut request = request();
    let enricher = Enricher::new(true, Vec::new(), Vec::new());
    assert!(enricher.is_noop());
    let before = request.clone();
    assert!(enricher.redact_request(&mut request).is_empty());
    assert_eq!(request, before);
}

#[test]
fn facts_go_on_their_spans_once_and_redaction_rules_apply() {
    let carries_cost = Span { attributes: vec![double(attr::AGENTRACE_COST_USD, 9.0)], ..Default::default() };
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span::default(), Span::default(), carries_cost],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let at = |span| SpanPos { resource: 0, scope: 0, span };
    let facts = |span| SpanFacts { pos: at(span), cost_usd: Some(0.5), gpu: None, llm: true };
    let keep_all = Enricher::new(true, Vec::new(), Vec::new());
    let added = keep_all.additions(&request, &[facts(0), facts(1), facts(2)]);
    let cost = fields(&[double(attr::AGENTRACE_COST_USD, 0.5)]);
    assert_eq!(added, [(at(0), cost.clone()), (at(1), cost)], "the span that already has a cost gets none");
    let no_cost = Enricher::new(true, vec![attr::AGENTRACE_COST_USD.to_owned()], Vec::new());
    assert!(no_cost.additions(&request, &[facts(1)]).is_empty());
}

/// `attributes` as the fields appended to a span.
fn fields(attributes: &[KeyValue]) -> Bytes {
    let mut fields = Vec::new();
    encode_span_attributes(attributes, &mut fields);
    Bytes::from(fields)
}

fn standard_request() -> standard::ExportTraceServiceRequest {
    let json = br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}],"droppedAttributesCount":1},
        "scopeSpans":[{"scope":{"name":"s","version":"1"},"schemaUrl":"u","spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
        "parentSpanId":"eee19b7ec3c1b173","traceState":"a=b","flags":257,"name":"chat m","kind":3,"startTimeUnixNano":"1","endTimeUnixNano":"2",
        "attributes":[{"key":"n","value":{"intValue":"12"}},{"key":"a","value":{"arrayValue":{"values":[{"doubleValue":0.5},{"boolValue":true}]}}},
        {"key":"m","value":{"kvlistValue":{"values":[{"key":"k","value":{"bytesValue":"AAE="}}]}}}],
        "events":[{"timeUnixNano":"3","name":"e","attributes":[{"key":"x","value":{"stringValue":"y"}}]}],
        "links":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b170","flags":1}],
        "droppedLinksCount":2,"status":{"code":2,"message":"boom"}}]}]}]}"#;
    serde_json::from_slice(json).expect("valid OTLP/JSON")
}

fn decoded() -> wire::Decoded {
    decode::protobuf(Bytes::from(standard_request().encode_to_vec())).expect("decodes")
}

#[test]
fn a_round_trip_through_the_standard_types_keeps_every_byte() {
    let standard = standard_request();
    let bytes = standard.encode_to_vec();
    let decoded = decoded();
    let ours = decoded.request.clone();
    assert_eq!(ours.encode_to_vec(), bytes);
    let view = forwarding_view(&decoded.request, Received::Encoded(decoded.encoded.clone()), &[], Vec::new());
    assert_eq!(view.encode_to_vec(), bytes, "the raw view forwards the same bytes");
    assert_eq!(ours.resource_spans[0].scope_spans[0].spans[0].name.text(), "chat m");
    let back: standard::ExportTraceServiceRequest = wire::convert(&ours).expect("converts back");
    assert_eq!(back, standard);
}

#[test]
fn the_raw_view_carries_changed_spans_and_resources() {
    let mut decoded = decoded();
    let resource_spans = &mut decoded.request.resource_spans[0];
    resource_spans.resource.as_mut().expect("resource").attributes.clear();
    resource_spans.scope_spans[0].spans[0].attributes.push(KeyValue::string("added", "yes"));
    let first = SpanPos { resource: 0, scope: 0, span: 0 };
    let view =
        forwarding_view(&decoded.request, Received::Encoded(decoded.encoded.clone()), &[first], Vec::new());
    let standard: standard::ExportTraceServiceRequest = wire::convert(&view).expect("standard");
    let ours: standard::ExportTraceServiceRequest = wire::convert(&decoded.request).expect("standard");
    assert_eq!(standard, ours);
    assert!(standard.resource_spans[0].resource.as_ref().expect("resource").attributes.is_empty());
}

#[test]
fn appended_attribute_fields_decode_as_the_span_s_last_attributes() {
    let decoded = decoded();
    let added = fields(&[KeyValue::string("added", "yes"), KeyValue::string("more", "too")]);
    let first = SpanPos { resource: 0, scope: 0, span: 0 };
    let view = forwarding_view(
        &decoded.request,
        Received::Encoded(decoded.encoded.clone()),
        &[],
        vec![(first, added)],
    );
    let forwarded: standard::ExportTraceServiceRequest = wire::convert(&view).expect("standard");
    let mut expected = standard_request();
    let attributes = &mut expected.resource_spans[0].scope_spans[0].spans[0].attributes;
    for (key, value) in [("added", "yes"), ("more", "too")] {
        attributes.push(opentelemetry_proto::tonic::common::v1::KeyValue {
            key: key.to_owned(),
            value: Some(opentelemetry_proto::tonic::common::v1::AnyValue {
                value: Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                    value.to_owned(),
                )),
            }),
            ..Default::default()
        });
    }
    assert_eq!(forwarded, expected);
}

#[test]
fn fields_added_to_several_spans_land_each_on_its_own() {
    let mut standard = standard_request();
    let spans = &mut standard.resource_spans[0].scope_spans[0].spans;
    for id in 1..3u8 {
        spans.push(TraceSpan { span_id: vec![id; 8], ..spans[0].clone() });
    }
    let decoded = decode::protobuf(Bytes::from(standard.encode_to_vec())).expect("decodes");
    let at = |span| SpanPos { resource: 0, scope: 0, span };
    let added = [
        (at(0), fields(&[KeyValue::string("first", "0")])),
        (at(2), fields(&[KeyValue::string("third", "2"), KeyValue::string("more", "2")])),
    ];
    let view =
        forwarding_view(&decoded.request, Received::Encoded(decoded.encoded.clone()), &[], added.to_vec());
    let mut forwarded: standard::ExportTraceServiceRequest = wire::convert(&view).expect("standard");
    let spans = &mut forwarded.resource_spans[0].scope_spans[0].spans;
    let keys = |span: &TraceSpan| span.attributes.iter().map(|kv| kv.key.clone()).collect::<Vec<_>>();
    assert_eq!(keys(&spans[0]), ["n", "a", "m", "first"]);
    assert_eq!(keys(&spans[1]), ["n", "a", "m"]);
    assert_eq!(keys(&spans[2]), ["n", "a", "m", "third", "more"]);
    // Everything else as received.
    spans[0].attributes.truncate(3);
    spans[2].attributes.truncate(3);
    assert_eq!(forwarded, standard);
}

fn hashed_with(key: &[u8], value: &str) -> String {
    let mut enricher = Enricher::new(true, Vec::new(), vec!["user.id".to_owned()]);
    enricher.hash_key = std::sync::Arc::from(key.to_vec());
    let mut attributes = vec![text("user.id", value)];
    enricher.redact(&mut attributes);
    canonical_text(attributes[0].value.as_ref())
}

#[test]
fn hashes_depend_on_the_secret_key() {
    assert_eq!(hashed_with(b"k1", "alice"), hashed_with(b"k1", "alice"));
    assert_ne!(hashed_with(b"k1", "alice"), hashed_with(b"k2", "alice"), "another key, another hash");
    assert_ne!(hashed_with(b"k1", "alice"), hashed_with(b"k1", "bob"));
}

#[test]
fn content_is_found_inside_maps_events_templates_and_the_vercel_ai_sdk_keys() {
    let nested = KeyValue::new(
        "gen_ai.input",
        any_value::Value::KvlistValue(crate::wire::KeyValueList {
            values: vec![
                text("role", "user"),
                text("content", "a secret"),
                KeyValue::new(
                    "parts",
                    any_value::Value::ArrayValue(crate::wire::ArrayValue {
                        values: vec![AnyValue {
                            value: Some(any_value::Value::KvlistValue(crate::wire::KeyValueList {
                                values: vec![text("content", "another secret"), text("type", "text")],
                            })),
                        }],
                    }),
                ),
            ],
        }),
    );
    let mut attributes = vec![
        nested,
        text("llm.prompt_template.variables", "{\"name\": \"secret\"}"),
        text("llm.prompt_template.template", "Hello {name}"),
        text("ai.prompt", "secret"),
        text("ai.prompt.messages", "[secret]"),
        text("ai.response.text", "secret"),
        text("ai.response.finishReason", "stop"),
        text("gen_ai.event.content", "secret"),
    ];
    assert!(Enricher::new(false, Vec::new(), Vec::new()).redact(&mut attributes));
    let flat = format!("{attributes:?}");
    assert!(!flat.contains("secret"), "{flat}");
    assert!(flat.contains("finishReason") && flat.contains("role") && flat.contains("type"), "{flat}");
}

fn failed_call() -> ExportTraceServiceRequest {
    let span = Span {
        status: Some(crate::wire::Status { message: "prompt was: a secret".to_owned().into(), code: 2 }),
        events: vec![span::Event {
            name: attr::EXCEPTION_EVENT.to_owned().into(),
            attributes: vec![
                text(attr::EXCEPTION_TYPE, "BadRequestError"),
                text(attr::EXCEPTION_MESSAGE, "prompt was: a secret"),
            ],
            ..Default::default()
        }],
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans { spans: vec![span], ..Default::default() }],
            ..Default::default()
        }],
    }
}

#[test]
fn an_llm_call_s_error_texts_leave_only_with_keep_content() {
    let at = SpanPos { resource: 0, scope: 0, span: 0 };
    let facts = [SpanFacts { pos: at, cost_usd: None, gpu: None, llm: true }];
    let encoded = Bytes::from(failed_call().encode_to_vec());
    let mut request = failed_call();
    let view = Enricher::new(false, Vec::new(), Vec::new()).outgoing(
        &mut request,
        Received::Encoded(encoded.clone()),
        &facts,
    );
    let forwarded: standard::ExportTraceServiceRequest = wire::convert(&view).expect("standard");
    let sent = format!("{forwarded:?}");
    assert!(!sent.contains("secret") && sent.contains("BadRequestError"), "{sent}");
    let mut kept = failed_call();
    let view = Enricher::new(true, Vec::new(), Vec::new()).outgoing(
        &mut kept,
        Received::Encoded(encoded.clone()),
        &facts,
    );
    let forwarded: standard::ExportTraceServiceRequest = wire::convert(&view).expect("standard");
    assert!(format!("{forwarded:?}").contains("a secret"), "--keep-content keeps them");
}
