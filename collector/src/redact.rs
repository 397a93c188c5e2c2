//! Redaction, the last change to spans before they leave the collector: message content is
//! dropped unless `--keep-content`, the attributes listed in `--redact-attributes` are dropped,
//! and those in `--hash-attributes` are replaced by `sha256:<hex>` of their value, so equal
//! values (a user id, a session id) still group in Tempo without being readable. Keys ending
//! in `.` match as prefixes. Applies to resource, span, event and link attributes.

use agentrace_semconv::attr;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use sha2::{Digest, Sha256};

#[derive(Clone, Debug, Default)]
pub struct Redactor {
    dropped: Vec<String>,
    hashed: Vec<String>,
}

impl Redactor {
    pub fn new(keep_content: bool, dropped: Vec<String>, hashed: Vec<String>) -> Self {
        let mut all_dropped: Vec<String> = dropped;
        if !keep_content {
            all_dropped.extend(attr::CONTENT_KEYS.iter().map(|key| (*key).to_owned()));
        }
        Self { dropped: all_dropped, hashed }
    }

    pub fn is_noop(&self) -> bool {
        self.dropped.is_empty() && self.hashed.is_empty()
    }

    /// Redacts every attribute list of the request in place.
    pub fn apply(&self, request: &mut ExportTraceServiceRequest) {
        if self.is_noop() {
            return;
        }
        for resource_spans in &mut request.resource_spans {
            if let Some(resource) = &mut resource_spans.resource {
                self.redact(&mut resource.attributes);
            }
            for scope_spans in &mut resource_spans.scope_spans {
                for span in &mut scope_spans.spans {
                    self.redact(&mut span.attributes);
                    for event in &mut span.events {
                        self.redact(&mut event.attributes);
                    }
                    for link in &mut span.links {
                        self.redact(&mut link.attributes);
                    }
                }
            }
        }
    }

    fn redact(&self, attributes: &mut Vec<KeyValue>) {
        attributes.retain(|kv| !attr::matches_key(&self.dropped, &kv.key));
        for kv in attributes.iter_mut().filter(|kv| attr::matches_key(&self.hashed, &kv.key)) {
            let digest = Sha256::digest(canonical_text(kv.value.as_ref()).as_bytes());
            kv.value = Some(AnyValue {
                value: Some(any_value::Value::StringValue(format!("sha256:{}", hex::encode(digest)))),
            });
        }
    }
}

/// A stable text form of a value to hash.
fn canonical_text(value: Option<&AnyValue>) -> String {
    match value.and_then(|value| value.value.as_ref()) {
        Some(any_value::Value::StringValue(text)) => text.clone(),
        Some(any_value::Value::IntValue(number)) => number.to_string(),
        Some(any_value::Value::DoubleValue(number)) => number.to_string(),
        Some(any_value::Value::BoolValue(flag)) => flag.to_string(),
        Some(any_value::Value::BytesValue(bytes)) => hex::encode(bytes),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span};

    fn text(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.to_owned())) }),
            ..Default::default()
        }
    }

    fn request() -> ExportTraceServiceRequest {
        let span = Span {
            attributes: vec![
                text(attr::GEN_AI_INPUT_MESSAGES, "[{\"role\":\"user\"}]"),
                text("llm.input_messages.0.message.content", "secret prompt"),
                text("gen_ai.prompt.0.content", "secret prompt"),
                text("input.value", "secret"),
                text(attr::GEN_AI_REQUEST_MODEL, "gpt-4o"),
                text("user.id", "alice"),
                text("internal.ticket", "T-1"),
            ],
            events: vec![span::Event {
                name: "gen_ai.choice".to_owned(),
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
        attributes.iter().map(|kv| kv.key.as_str()).collect()
    }

    #[test]
    fn content_is_dropped_by_default_and_listed_keys_are_dropped_or_hashed() {
        let mut request = request();
        Redactor::new(false, vec!["internal.".to_owned()], vec!["user.id".to_owned()]).apply(&mut request);
        let resource_spans = &request.resource_spans[0];
        let span = &resource_spans.scope_spans[0].spans[0];
        assert_eq!(keys(&span.attributes), vec![attr::GEN_AI_REQUEST_MODEL, "user.id"]);
        assert_eq!(keys(&span.events[0].attributes), vec!["index"]);
        let hashed = |kv: &KeyValue| match kv.value.as_ref().and_then(|value| value.value.clone()) {
            Some(any_value::Value::StringValue(text)) => text,
            other => panic!("{other:?}"),
        };
        // sha256("alice")
        let alice = "sha256:2bd806c97f0e00af1a1fc3328fa763a9269723c8db8fac4f93af71db186d6e90";
        assert_eq!(hashed(&span.attributes[1]), alice);
        let resource = resource_spans.resource.as_ref().expect("resource");
        assert_eq!(hashed(&resource.attributes[0]), alice, "resources too, and equal values hash equal");
    }

    #[test]
    fn keep_content_keeps_it() {
        let mut request = request();
        let redactor = Redactor::new(true, Vec::new(), Vec::new());
        assert!(redactor.is_noop());
        let before = request.clone();
        redactor.apply(&mut request);
        assert_eq!(request, before);
    }
}
