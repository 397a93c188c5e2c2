//! Redaction, the last change to spans before they leave the collector: message content is
//! dropped unless `--keep-content`, the attributes listed in `--redact-attributes` are dropped,
//! and those in `--hash-attributes` are replaced by `sha256:<hex>` of their value, so equal
//! values (a user id, a session id) still group in Tempo without being readable. Keys ending
//! in `.` match as prefixes. Applies to resource, span, event and link attributes.

use agentrace_semconv::attr;
use sha2::{Digest, Sha256};

use crate::otlp::{any_value, AnyValue, ExportTraceServiceRequest, KeyValue, Text};

#[derive(Clone, Debug, Default)]
pub struct Redactor {
    dropped: Keys,
    hashed: Keys,
}

/// Attribute keys to match, as `attr::matches_key` reads a list: whole keys, and prefixes
/// (entries ending in `.`). Every attribute of every forwarded span is checked, so whole keys
/// are looked up in a set rather than compared one by one.
#[derive(Clone, Debug, Default)]
struct Keys {
    /// As bytes: keys are matched as they arrived, without reading them as text.
    whole: foldhash::HashSet<Box<[u8]>>,
    /// Bit `n` set when a whole key is `n` bytes long (the last bit: 63 bytes or more), so
    /// that most keys are passed over without hashing them.
    whole_lengths: u64,
    prefixes: Vec<Box<[u8]>>,
}

fn length_bit(length: usize) -> u64 {
    1 << length.min(63)
}

impl Keys {
    fn new(keys: impl IntoIterator<Item = String>) -> Self {
        let (prefixes, whole): (Vec<String>, Vec<String>) =
            keys.into_iter().partition(|key| key.ends_with('.'));
        let bytes = |keys: Vec<String>| keys.into_iter().map(|key| key.into_bytes().into_boxed_slice());
        let whole_lengths = whole.iter().fold(0, |bits, key| bits | length_bit(key.len()));
        Self { whole: bytes(whole).collect(), whole_lengths, prefixes: bytes(prefixes).collect() }
    }

    fn is_empty(&self) -> bool {
        self.whole.is_empty() && self.prefixes.is_empty()
    }

    fn matches(&self, key: &[u8]) -> bool {
        // A prefix ends with `.`, so a key it starts has a `.` at that place: checking that one
        // byte first spares comparing most keys with most prefixes.
        (self.whole_lengths & length_bit(key.len()) != 0 && self.whole.contains(key))
            || self.prefixes.iter().any(|prefix| {
                key.len() >= prefix.len() && key[prefix.len() - 1] == b'.' && key.starts_with(prefix)
            })
    }
}

impl Redactor {
    pub fn new(keep_content: bool, dropped: Vec<String>, hashed: Vec<String>) -> Self {
        let mut all_dropped: Vec<String> = dropped;
        if !keep_content {
            all_dropped.extend(attr::CONTENT_KEYS.iter().map(|key| (*key).to_owned()));
        }
        Self { dropped: Keys::new(all_dropped), hashed: Keys::new(hashed) }
    }

    pub fn is_noop(&self) -> bool {
        self.dropped.is_empty() && self.hashed.is_empty()
    }

    /// Redacts every attribute list of the request in place. Returns the positions
    /// ([resource, scope, span]) of the spans it changed.
    pub fn apply(&self, request: &mut ExportTraceServiceRequest) -> Vec<[usize; 3]> {
        let mut changed = Vec::new();
        if self.is_noop() {
            return changed;
        }
        for (resource_index, resource_spans) in request.resource_spans.iter_mut().enumerate() {
            if let Some(resource) = &mut resource_spans.resource {
                self.redact(&mut resource.attributes);
            }
            for (scope_index, scope_spans) in resource_spans.scope_spans.iter_mut().enumerate() {
                for (span_index, span) in scope_spans.spans.iter_mut().enumerate() {
                    let mut redacted = self.redact(&mut span.attributes);
                    for event in &mut span.events {
                        redacted |= self.redact(&mut event.attributes);
                    }
                    for link in &mut span.links {
                        redacted |= self.redact(&mut link.attributes);
                    }
                    if redacted {
                        changed.push([resource_index, scope_index, span_index]);
                    }
                }
            }
        }
        changed
    }

    /// Applies the rules to one attribute list (also to attributes the collector is about to
    /// add to a span); returns whether anything was dropped or hashed.
    pub fn redact(&self, attributes: &mut Vec<KeyValue>) -> bool {
        let mut redacted = false;
        if attributes.iter().any(|kv| self.dropped.matches(&kv.key)) {
            attributes.retain(|kv| !self.dropped.matches(&kv.key));
            redacted = true;
        }
        if self.hashed.is_empty() {
            return redacted;
        }
        for kv in attributes.iter_mut().filter(|kv| self.hashed.matches(&kv.key)) {
            redacted = true;
            let digest = Sha256::digest(canonical_text(kv.value.as_ref()).as_bytes());
            kv.value = Some(AnyValue {
                value: Some(any_value::Value::StringValue(format!("sha256:{}", hex::encode(digest)).into())),
            });
        }
        redacted
    }
}

/// A stable text form of a value to hash.
fn canonical_text(value: Option<&AnyValue>) -> String {
    match value.and_then(|value| value.value.as_ref()) {
        Some(any_value::Value::StringValue(text)) => text.text().to_owned(),
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
    use crate::otlp::Resource;
    use crate::otlp::{span, ResourceSpans, ScopeSpans, Span};

    fn text(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.to_owned().into(),
            value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.to_owned().into())) }),
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
