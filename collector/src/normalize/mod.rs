//! Normalize: one OTLP span (and its resource) in, one [`CanonicalSpan`] out.
//!
//! The GenAI fields come from the dialect tables in `agentrace-semconv`; this module adds what
//! the tables cannot say: the fallbacks that read a name out of the span name
//! (`invoke_agent planner`), the error type from `error.type`, exception events and the span
//! status, and the identifiers derive needs. Next stop: `derive`.

mod sampling;

use crate::wire::Resource;
use crate::wire::{any_value, KeyValue};
use crate::wire::{span, status, Span, Text};
use agentrace_semconv::dialect::{canonical_operation, indexed_evaluations, AttrValue};
use agentrace_semconv::{attr, Attribute, ErrorType, FieldReader, GenAiFields, SpanClass};

/// Service name used when a resource names none, as the OTel SDKs do.
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// Everything derive needs to know about one span, borrowed from the decoded request.
#[derive(Clone, Debug, PartialEq)]
pub struct CanonicalSpan<'a> {
    pub service: &'a str,
    pub name: &'a str,
    pub kind: span::SpanKind,
    pub status: status::StatusCode,
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent_span_id: Option<[u8; 8]>,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    pub class: SpanClass,
    pub fields: GenAiFields<'a>,
    /// Set when the span failed: the normalised reason.
    pub error: Option<ErrorType>,
    /// How many spans this one stands for: its sampling adjusted count, 1 when unsampled.
    pub weight: f64,
    /// `(evaluation name, score)` from `gen_ai.evaluation.result` events and OpenInference
    /// evaluation attributes.
    pub evaluations: Vec<(&'a str, f64)>,
}

impl CanonicalSpan<'_> {
    pub fn duration_seconds(&self) -> f64 {
        self.end_unix_nano.saturating_sub(self.start_unix_nano) as f64 / 1e9
    }

    pub fn end_seconds(&self) -> f64 {
        self.end_unix_nano as f64 / 1e9
    }

    pub fn failed(&self) -> bool {
        self.error.is_some()
    }
}

/// Reads spans into their canonical view. Built once; cheap to share.
#[derive(Debug, Default)]
pub struct Normalizer {
    reader: FieldReader,
}

/// The service name of a resource.
pub fn service_name(resource: Option<&Resource>) -> &str {
    resource
        .and_then(|resource| string_attribute(&resource.attributes, attr::SERVICE_NAME))
        .unwrap_or(UNKNOWN_SERVICE)
}

impl Normalizer {
    /// `None` for a span whose ids are not of the OTLP lengths; the receivers reject those
    /// before they are queued, so here it only guards the invariant.
    pub fn normalize<'a>(&self, service: &'a str, span: &'a Span) -> Option<CanonicalSpan<'a>> {
        let trace_id: [u8; 16] = span.trace_id.as_ref().try_into().ok()?;
        let span_id: [u8; 8] = span.span_id.as_ref().try_into().ok()?;
        let parent_span_id = match span.parent_span_id.len() {
            0 => None,
            _ => Some(span.parent_span_id.as_ref().try_into().ok()?),
        };
        let attributes = || span.attributes.iter();
        let mut fields = self.reader.read(attributes());
        let class = fields.class.unwrap_or_else(|| infer_class(&fields));
        fill_names(class, span.name.text(), &mut fields);
        fields.operation = canonical_operation(class, fields.operation);
        if fields.time_to_first_token.is_none() {
            fields.time_to_first_token = self.first_token_from_events(span);
        }
        let weight = fields
            .adjusted_count
            .and_then(sampling::from_adjusted_count)
            .or_else(|| sampling::from_tracestate(span.trace_state.text()))
            .unwrap_or(1.0);
        let status = span.status.as_ref().map_or(status::StatusCode::Unset, |status| status.code());
        let error = error_type(span, status, fields.error_type);
        let mut evaluations = evaluation_events(span);
        evaluations.extend(indexed_evaluations(attributes()));
        Some(CanonicalSpan {
            service,
            name: span.name.text(),
            kind: span.kind(),
            status,
            trace_id,
            span_id,
            parent_span_id,
            start_unix_nano: span.start_time_unix_nano,
            end_unix_nano: span.end_time_unix_nano,
            class,
            fields,
            error,
            weight,
            evaluations,
        })
    }

    /// Time to first token from a first-token span event (OpenInference, OpenLLMetry).
    fn first_token_from_events(&self, span: &Span) -> Option<f64> {
        let first = span
            .events
            .iter()
            .filter(|event| self.reader.is_first_token_event(event.name.text()))
            .map(|event| event.time_unix_nano)
            .min()?;
        (first >= span.start_time_unix_nano).then(|| (first - span.start_time_unix_nano) as f64 / 1e9)
    }
}

/// `gen_ai.evaluation.result` events: name and numeric score.
fn evaluation_events(span: &Span) -> Vec<(&str, f64)> {
    span.events
        .iter()
        .filter(|event| event.name == attr::GEN_AI_EVALUATION_RESULT_EVENT)
        .filter_map(|event| {
            let name = string_attribute(&event.attributes, attr::GEN_AI_EVALUATION_NAME)?;
            let score =
                event.attributes.iter().find(|kv| kv.key == attr::GEN_AI_EVALUATION_SCORE_VALUE).and_then(
                    |kv| match attr_value(kv) {
                        AttrValue::Double(score) if score.is_finite() => Some(score),
                        AttrValue::Int(score) => Some(score as f64),
                        _ => None,
                    },
                )?;
            Some((name, score))
        })
        .collect()
}

/// No class attribute: a span that names a model and counts tokens is an LLM call.
fn infer_class(fields: &GenAiFields<'_>) -> SpanClass {
    let counts_tokens = fields.input_tokens.is_some() || fields.output_tokens.is_some();
    if fields.model.is_some() && counts_tokens {
        SpanClass::Llm
    } else {
        SpanClass::Other
    }
}

/// Fills the agent, tool, step or model name when no dedicated attribute gave it: from the
/// dialect's generic entity name, else from the span name. GenAI span names are
/// `{operation} {target}` (`chat gpt-4o`, `invoke_agent planner`), so the target is the part
/// after the space; other dialects name agents, tools and steps by the whole span name.
fn fill_names<'a>(class: SpanClass, span_name: &'a str, fields: &mut GenAiFields<'a>) {
    let target = span_name.split_once(' ').map(|(_, rest)| rest.trim()).filter(|rest| !rest.is_empty());
    let entity = fields.name;
    let (slot, whole_name) = match class {
        SpanClass::Agent => (&mut fields.agent, true),
        SpanClass::Tool => (&mut fields.tool, true),
        SpanClass::Step => (&mut fields.step, true),
        SpanClass::Llm | SpanClass::Embedding | SpanClass::ModelLoad => (&mut fields.model, false),
        SpanClass::Other => return,
    };
    if slot.is_some() {
        return;
    }
    let whole = (whole_name && !span_name.is_empty()).then_some(span_name);
    *slot = entity.or(target).or(whole);
}

/// A span failed when its status is ERROR or it carries `error.type`. The type comes from the
/// most specific of `error.type`, exception events and the status message.
fn error_type(span: &Span, status: status::StatusCode, declared: Option<&str>) -> Option<ErrorType> {
    if status != status::StatusCode::Error && declared.is_none() {
        return None;
    }
    let exception_texts =
        span.events.iter().filter(|event| event.name == attr::EXCEPTION_EVENT).flat_map(|event| {
            [attr::EXCEPTION_TYPE, attr::EXCEPTION_MESSAGE]
                .into_iter()
                .filter_map(|key| string_attribute(&event.attributes, key))
        });
    let status_message = span.status.as_ref().map(|status| status.message.text());
    let texts: Vec<&str> = declared.into_iter().chain(exception_texts).chain(status_message).collect();
    Some(ErrorType::classify_all(texts.iter().copied()).unwrap_or(ErrorType::Other))
}

pub fn string_attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| match attr_value(kv) {
        AttrValue::Str(text) => Some(text),
        _ => None,
    })
}

/// Keys are compared as bytes; only the values of keys that matter are read.
impl<'a> Attribute<'a> for &'a KeyValue {
    fn key(&self) -> &[u8] {
        &self.key
    }

    fn value(&self) -> AttrValue<'a> {
        attr_value(self)
    }
}

fn attr_value(kv: &KeyValue) -> AttrValue<'_> {
    match kv.value.as_ref().and_then(|value| value.value.as_ref()) {
        Some(any_value::Value::StringValue(text)) => AttrValue::Str(text.text()),
        Some(any_value::Value::IntValue(number)) => AttrValue::Int(*number),
        Some(any_value::Value::DoubleValue(number)) => AttrValue::Double(*number),
        Some(any_value::Value::BoolValue(flag)) => AttrValue::Bool(*flag),
        _ => AttrValue::Other,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::wire::AnyValue;
    use crate::wire::Status;

    pub(crate) fn kv(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.to_owned().into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    pub(crate) fn text(key: &str, value: &str) -> KeyValue {
        kv(key, any_value::Value::StringValue(value.to_owned().into()))
    }

    fn span(name: &str, attributes: Vec<KeyValue>) -> Span {
        Span {
            trace_id: vec![1; 16].into(),
            span_id: vec![2; 8].into(),
            name: name.to_owned().into(),
            attributes,
            start_time_unix_nano: 1_000_000_000,
            end_time_unix_nano: 3_500_000_000,
            ..Default::default()
        }
    }

    #[test]
    fn reads_an_llm_call() {
        let span = span(
            "chat gpt-4o",
            vec![
                text(attr::GEN_AI_OPERATION_NAME, "chat"),
                text(attr::GEN_AI_PROVIDER_NAME, "openai"),
                kv(attr::GEN_AI_USAGE_INPUT_TOKENS, any_value::Value::IntValue(10)),
            ],
        );
        let canonical = Normalizer::default().normalize("svc", &span).expect("valid ids");
        assert_eq!(canonical.class, SpanClass::Llm);
        assert_eq!(canonical.fields.model, Some("gpt-4o"), "model from the span name");
        assert_eq!(canonical.fields.input_tokens, Some(10));
        assert_eq!(canonical.duration_seconds(), 2.5);
        assert_eq!(canonical.parent_span_id, None);
        assert_eq!(canonical.error, None);
    }

    #[test]
    fn names_come_from_span_names_when_attributes_are_missing() {
        let normalizer = Normalizer::default();
        let agent = span("invoke_agent planner", vec![text(attr::GEN_AI_OPERATION_NAME, "invoke_agent")]);
        let tool = span("execute_tool web_search", vec![text(attr::GEN_AI_OPERATION_NAME, "execute_tool")]);
        assert_eq!(normalizer.normalize("s", &agent).expect("valid").fields.agent, Some("planner"));
        assert_eq!(normalizer.normalize("s", &tool).expect("valid").fields.tool, Some("web_search"));
    }

    #[test]
    fn error_type_comes_from_the_most_specific_source() {
        let mut failing = span(
            "chat m",
            vec![text(attr::GEN_AI_OPERATION_NAME, "chat"), text(attr::ERROR_TYPE, "openai.BadRequestError")],
        );
        failing.events.push(span::Event {
            name: attr::EXCEPTION_EVENT.to_owned().into(),
            attributes: vec![text(attr::EXCEPTION_MESSAGE, "maximum context length is 8192 tokens")],
            ..Default::default()
        });
        let canonical = Normalizer::default().normalize("s", &failing).expect("valid");
        assert_eq!(canonical.error, Some(ErrorType::ContextLengthExceeded));
    }

    #[test]
    fn an_error_status_without_detail_is_other_and_ok_is_no_error() {
        let mut failing = span("chat m", vec![]);
        failing.status =
            Some(Status { code: status::StatusCode::Error as i32, message: String::new().into() });
        let normalizer = Normalizer::default();
        assert_eq!(normalizer.normalize("s", &failing).expect("valid").error, Some(ErrorType::Other));
        let fine = span("chat m", vec![]);
        assert_eq!(normalizer.normalize("s", &fine).expect("valid").error, None);
    }

    #[test]
    fn weights_come_from_the_adjusted_count_then_the_tracestate() {
        let normalizer = Normalizer::default();
        let mut sampled = span("chat m", vec![]);
        sampled.trace_state = "ot=th:8".to_owned().into();
        assert_eq!(normalizer.normalize("s", &sampled).expect("valid").weight, 2.0);
        sampled.attributes.push(kv(attr::SAMPLING_ADJUSTED_COUNT, any_value::Value::IntValue(10)));
        assert_eq!(normalizer.normalize("s", &sampled).expect("valid").weight, 10.0);
        assert_eq!(normalizer.normalize("s", &span("chat m", vec![])).expect("valid").weight, 1.0);
    }

    #[test]
    fn first_token_events_give_the_time_to_first_token() {
        let mut streamed = span("openai.chat", vec![text("llm.request.type", "chat")]);
        for offset in [900_000_000, 250_000_000] {
            streamed.events.push(span::Event {
                name: agentrace_semconv::attr::openllmetry::COMPLETION_CHUNK_EVENT.to_owned().into(),
                time_unix_nano: streamed.start_time_unix_nano + offset,
                ..Default::default()
            });
        }
        let canonical = Normalizer::default().normalize("s", &streamed).expect("valid");
        assert_eq!(canonical.fields.time_to_first_token, Some(0.25));
    }

    #[test]
    fn ids_of_the_wrong_length_are_refused() {
        let mut bad = span("x", vec![]);
        bad.trace_id = vec![1; 15].into();
        assert!(Normalizer::default().normalize("s", &bad).is_none());
    }
}
