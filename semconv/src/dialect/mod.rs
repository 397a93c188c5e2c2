//! Dialects: which attribute of which instrumentation carries which canonical field.
//!
//! Each dialect is one [`Dialect`] value (`tables.rs`): class rules (an attribute, optionally
//! a value, and the class it means), field keys, the span events that mark a first token,
//! and the provider a dialect implies. [`DIALECTS`] orders them by precedence; within a
//! dialect the table order decides. Adding a dialect is adding a table to that list.
//!
//! [`FieldReader`] compiles the tables into one hash lookup, so reading a span is a single pass
//! over its attributes whatever the number of dialects.

mod evaluations;
pub mod frameworks;
mod tables;

// Looked up once per span attribute: foldhash rather than SipHash (the keys are the tables'
// own, not attacker-chosen).
use foldhash::{HashMap, HashMapExt, HashSet};

pub use evaluations::indexed_evaluations;
pub use tables::{
    canonical_operation, DIALECTS, GENAI, GENAI_DEPRECATED, OPENINFERENCE, OPENLIT, OPENLLMETRY, VLLM,
};

#[cfg(test)]
use crate::attr;
use crate::SpanClass;

/// An attribute value as the reader sees it; the collector adapts OTLP's `AnyValue` to it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AttrValue<'a> {
    Str(&'a str),
    Int(i64),
    Double(f64),
    Bool(bool),
    /// Arrays, maps, bytes: never a canonical field.
    Other,
}

/// One attribute as the reader sees it: the key as bytes, and the value, which is read (and,
/// for a string, checked as text) only when the key means something.
pub trait Attribute<'a> {
    fn key(&self) -> &[u8];
    fn value(&self) -> AttrValue<'a>;
}

impl<'a> Attribute<'a> for (&'a str, AttrValue<'a>) {
    fn key(&self) -> &[u8] {
        self.0.as_bytes()
    }

    fn value(&self) -> AttrValue<'a> {
        self.1
    }
}

/// A canonical field that dialects map attributes onto.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    Operation,
    Provider,
    Model,
    Agent,
    Tool,
    Step,
    InputTokens,
    OutputTokens,
    CachedInputTokens,
    ReasoningTokens,
    /// Seconds, as a double.
    TimeToFirstToken,
    ErrorType,
    /// The span's own name in the dialect (OpenLLMetry's entity name): the agent, tool or step
    /// name, depending on the class.
    Name,
    /// `sampling.adjusted_count`.
    AdjustedCount,
    CacheWriteTokens,
    TextInputTokens,
    ImageInputTokens,
    AudioInputTokens,
    TextOutputTokens,
    ImageOutputTokens,
    AudioOutputTokens,
    /// A conversation or session id: never a label.
    Conversation,
    PromptName,
    PromptVersion,
    /// `mcp.method.name`: the span is an MCP client or server operation.
    McpMethod,
    /// `a2a.method.name`: the span is an A2A call; its agent name is the remote agent's.
    A2aMethod,
    ServerAddress,
}

const FIELD_COUNT: usize = 27;

/// Token modalities of the per-modality usage fields, in their order.
pub const MODALITIES: [&str; 3] = ["text", "image", "audio"];

impl Field {
    const fn index(self) -> usize {
        self as usize
    }
}

/// "This attribute (with this value, or any value) means this class."
#[derive(Clone, Copy, Debug)]
pub struct ClassRule {
    pub key: &'static str,
    /// `None` matches any value.
    pub value: Option<&'static str>,
    pub class: SpanClass,
}

/// How a dialect names its spans.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SpanNames {
    /// `{operation} {target}`: `chat gpt-4o`, `invoke_agent planner` (the GenAI conventions).
    OperationTarget,
    /// The span name is the agent's, tool's or step's whole name (`Step 1`, `researcher`).
    #[default]
    Whole,
}

/// One instrumentation's vocabulary.
#[derive(Debug)]
pub struct Dialect {
    pub name: &'static str,
    /// How its spans are named, for the names no attribute gives.
    pub span_names: SpanNames,
    pub classes: &'static [ClassRule],
    pub fields: &'static [(Field, &'static str)],
    /// Span events whose first occurrence marks the first token, for dialects that record it
    /// that way rather than as an attribute.
    pub first_token_events: &'static [&'static str],
    /// The provider to assume for a span that speaks this dialect's own keys and names none.
    pub implied_provider: Option<&'static str>,
}

/// The canonical GenAI view of one span's attributes. Strings borrow from the span.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GenAiFields<'a> {
    /// `None` when no class rule matched; the caller decides the fallback.
    pub class: Option<SpanClass>,
    /// How the span is named: the naming of the dialect whose class rule matched.
    pub span_names: SpanNames,
    pub operation: Option<&'a str>,
    pub provider: Option<&'a str>,
    pub model: Option<&'a str>,
    pub agent: Option<&'a str>,
    pub tool: Option<&'a str>,
    pub step: Option<&'a str>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cached_input_tokens: Option<u64>,
    pub reasoning_tokens: Option<u64>,
    pub time_to_first_token: Option<f64>,
    pub error_type: Option<&'a str>,
    pub name: Option<&'a str>,
    pub adjusted_count: Option<f64>,
    /// Input tokens written to the provider's prompt cache (part of `input_tokens`).
    pub cache_write_tokens: Option<u64>,
    /// Input tokens per modality ([`MODALITIES`] order), when the span breaks them down.
    pub modality_input_tokens: [Option<u64>; 3],
    pub modality_output_tokens: [Option<u64>; 3],
    pub conversation: Option<&'a str>,
    pub prompt_name: Option<&'a str>,
    pub prompt_version: Option<&'a str>,
    pub mcp_method: Option<&'a str>,
    pub a2a_method: Option<&'a str>,
    pub server_address: Option<&'a str>,
}

#[derive(Clone, Copy, Debug)]
enum Slot {
    Field(Field),
    Class(Option<&'static str>, SpanClass),
}

/// Where a key sits in the tables: what it means, its rank (lower wins; the position in
/// [`DIALECTS`] order) and its dialect.
#[derive(Clone, Copy, Debug)]
struct Meaning {
    slot: Slot,
    rank: u32,
    dialect: usize,
}

/// The dialect tables compiled into one lookup from attribute key to what it may mean.
#[derive(Debug)]
pub struct FieldReader {
    /// Keyed by bytes: a span's keys are compared as they arrived, without reading them as text.
    slots: HashMap<&'static [u8], Vec<Meaning>>,
    implied_providers: Vec<Option<&'static str>>,
    span_names: Vec<SpanNames>,
    first_token_events: HashSet<&'static str>,
}

impl Default for FieldReader {
    fn default() -> Self {
        Self::new(DIALECTS)
    }
}

impl FieldReader {
    pub fn new(dialects: &[&Dialect]) -> Self {
        let mut slots: HashMap<&'static [u8], Vec<Meaning>> = HashMap::new();
        let mut rank = 0u32;
        for (position, dialect) in dialects.iter().enumerate() {
            for class_rule in dialect.classes {
                rank += 1;
                let slot = Slot::Class(class_rule.value, class_rule.class);
                slots.entry(class_rule.key.as_bytes()).or_default().push(Meaning {
                    slot,
                    rank,
                    dialect: position,
                });
            }
            for (field, key) in dialect.fields {
                rank += 1;
                slots.entry(key.as_bytes()).or_default().push(Meaning {
                    slot: Slot::Field(*field),
                    rank,
                    dialect: position,
                });
            }
        }
        Self {
            slots,
            implied_providers: dialects.iter().map(|dialect| dialect.implied_provider).collect(),
            span_names: dialects.iter().map(|dialect| dialect.span_names).collect(),
            first_token_events: dialects
                .iter()
                .flat_map(|dialect| dialect.first_token_events)
                .copied()
                .collect(),
        }
    }

    /// Whether a span event of this name marks the first token.
    pub fn is_first_token_event(&self, name: &str) -> bool {
        self.first_token_events.contains(name)
    }

    /// Reads the canonical fields from one span's attributes in a single pass.
    pub fn read<'a, A: Attribute<'a>>(&self, attributes: impl IntoIterator<Item = A>) -> GenAiFields<'a> {
        let mut fields = GenAiFields::default();
        let mut best_field_rank = [u32::MAX; FIELD_COUNT];
        let mut best_class_rank = u32::MAX;
        // The first (highest-precedence) dialect with an implied provider whose keys matched.
        let mut implied_provider: Option<(usize, &'static str)> = None;
        for attribute in attributes {
            let Some(meanings) = self.slots.get(attribute.key()) else {
                continue;
            };
            let value = attribute.value();
            for &Meaning { slot, rank, dialect } in meanings {
                if let Some(provider) = self.implied_providers[dialect] {
                    if implied_provider.is_none_or(|(best, _)| dialect < best) {
                        implied_provider = Some((dialect, provider));
                    }
                }
                match slot {
                    Slot::Class(expected, class) => {
                        let value_matches = match (expected, value) {
                            (None, _) => true,
                            (Some(expected), AttrValue::Str(actual)) => expected == actual,
                            (Some(_), _) => false,
                        };
                        if value_matches && rank < best_class_rank {
                            best_class_rank = rank;
                            fields.class = Some(class);
                            fields.span_names = self.span_names[dialect];
                        }
                    }
                    Slot::Field(field) => {
                        if rank < best_field_rank[field.index()] && fields.set(field, value) {
                            best_field_rank[field.index()] = rank;
                        }
                    }
                }
            }
        }
        if fields.provider.is_none() {
            fields.provider = implied_provider.map(|(_, provider)| provider);
        }
        fields
    }
}

impl<'a> GenAiFields<'a> {
    /// Stores `value` in `field` when its type fits; returns whether it did.
    fn set(&mut self, field: Field, value: AttrValue<'a>) -> bool {
        match field {
            Field::Operation => set_str(&mut self.operation, value),
            Field::Provider => set_str(&mut self.provider, value),
            Field::Model => set_str(&mut self.model, value),
            Field::Agent => set_str(&mut self.agent, value),
            Field::Tool => set_str(&mut self.tool, value),
            Field::Step => set_str(&mut self.step, value),
            Field::ErrorType => set_str(&mut self.error_type, value),
            Field::InputTokens => set_count(&mut self.input_tokens, value),
            Field::OutputTokens => set_count(&mut self.output_tokens, value),
            Field::CachedInputTokens => set_count(&mut self.cached_input_tokens, value),
            Field::ReasoningTokens => set_count(&mut self.reasoning_tokens, value),
            Field::TimeToFirstToken => set_seconds(&mut self.time_to_first_token, value),
            Field::Name => set_str(&mut self.name, value),
            Field::AdjustedCount => set_seconds(&mut self.adjusted_count, value),
            Field::CacheWriteTokens => set_count(&mut self.cache_write_tokens, value),
            Field::TextInputTokens => set_count(&mut self.modality_input_tokens[0], value),
            Field::ImageInputTokens => set_count(&mut self.modality_input_tokens[1], value),
            Field::AudioInputTokens => set_count(&mut self.modality_input_tokens[2], value),
            Field::TextOutputTokens => set_count(&mut self.modality_output_tokens[0], value),
            Field::ImageOutputTokens => set_count(&mut self.modality_output_tokens[1], value),
            Field::AudioOutputTokens => set_count(&mut self.modality_output_tokens[2], value),
            Field::Conversation => set_str(&mut self.conversation, value),
            Field::PromptName => set_str(&mut self.prompt_name, value),
            Field::PromptVersion => set_str(&mut self.prompt_version, value),
            Field::McpMethod => set_str(&mut self.mcp_method, value),
            Field::A2aMethod => set_str(&mut self.a2a_method, value),
            Field::ServerAddress => set_str(&mut self.server_address, value),
        }
    }
}

fn set_str<'a>(slot: &mut Option<&'a str>, value: AttrValue<'a>) -> bool {
    match value {
        AttrValue::Str(text) if !text.is_empty() => {
            *slot = Some(text);
            true
        }
        _ => false,
    }
}

/// Token counts arrive as ints, sometimes as doubles or numeric strings; negatives are junk.
fn set_count(slot: &mut Option<u64>, value: AttrValue<'_>) -> bool {
    let count = match value {
        AttrValue::Int(number) => u64::try_from(number).ok(),
        AttrValue::Double(number) if number.is_finite() && number >= 0.0 => Some(number.round() as u64),
        AttrValue::Str(text) => text.trim().parse::<u64>().ok(),
        _ => None,
    };
    if count.is_some() {
        *slot = count;
    }
    count.is_some()
}

fn set_seconds(slot: &mut Option<f64>, value: AttrValue<'_>) -> bool {
    let seconds = match value {
        AttrValue::Double(number) => Some(number),
        AttrValue::Int(number) => Some(number as f64),
        AttrValue::Str(text) => text.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|seconds| seconds.is_finite() && *seconds >= 0.0);
    if seconds.is_some() {
        *slot = seconds;
    }
    seconds.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(attributes: &[(&'static str, AttrValue<'static>)]) -> GenAiFields<'static> {
        FieldReader::default().read(attributes.iter().copied())
    }

    #[test]
    fn reads_current_genai_names() {
        let fields = read(&[
            (attr::GEN_AI_OPERATION_NAME, AttrValue::Str("chat")),
            (attr::GEN_AI_PROVIDER_NAME, AttrValue::Str("openai")),
            (attr::GEN_AI_REQUEST_MODEL, AttrValue::Str("gpt-4o")),
            (attr::GEN_AI_USAGE_INPUT_TOKENS, AttrValue::Int(120)),
            (attr::GEN_AI_USAGE_OUTPUT_TOKENS, AttrValue::Int(40)),
            (attr::GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, AttrValue::Double(0.25)),
            (attr::GEN_AI_AGENT_NAME, AttrValue::Str("planner")),
        ]);
        assert_eq!(fields.class, Some(SpanClass::Llm));
        assert_eq!(fields.operation, Some("chat"));
        assert_eq!(fields.provider, Some("openai"));
        assert_eq!(fields.model, Some("gpt-4o"));
        assert_eq!(fields.input_tokens, Some(120));
        assert_eq!(fields.output_tokens, Some(40));
        assert_eq!(fields.time_to_first_token, Some(0.25));
        assert_eq!(fields.agent, Some("planner"));
    }

    #[test]
    fn reads_deprecated_genai_names() {
        let fields = read(&[
            (attr::GEN_AI_OPERATION_NAME, AttrValue::Str("chat")),
            (attr::GEN_AI_SYSTEM, AttrValue::Str("anthropic")),
            (attr::GEN_AI_USAGE_PROMPT_TOKENS, AttrValue::Int(7)),
            (attr::GEN_AI_USAGE_COMPLETION_TOKENS, AttrValue::Double(3.0)),
        ]);
        assert_eq!(fields.provider, Some("anthropic"));
        assert_eq!(fields.input_tokens, Some(7));
        assert_eq!(fields.output_tokens, Some(3));
    }

    #[test]
    fn current_names_win_over_deprecated_ones_in_any_order() {
        let fields = read(&[
            (attr::GEN_AI_USAGE_PROMPT_TOKENS, AttrValue::Int(1)),
            (attr::GEN_AI_USAGE_INPUT_TOKENS, AttrValue::Int(2)),
            (attr::GEN_AI_SYSTEM, AttrValue::Str("old")),
            (attr::GEN_AI_PROVIDER_NAME, AttrValue::Str("new")),
        ]);
        let reversed = read(&[
            (attr::GEN_AI_PROVIDER_NAME, AttrValue::Str("new")),
            (attr::GEN_AI_SYSTEM, AttrValue::Str("old")),
            (attr::GEN_AI_USAGE_INPUT_TOKENS, AttrValue::Int(2)),
            (attr::GEN_AI_USAGE_PROMPT_TOKENS, AttrValue::Int(1)),
        ]);
        for fields in [fields, reversed] {
            assert_eq!(fields.input_tokens, Some(2));
            assert_eq!(fields.provider, Some("new"));
        }
    }

    #[test]
    fn request_model_wins_over_response_model() {
        let fields = read(&[
            (attr::GEN_AI_RESPONSE_MODEL, AttrValue::Str("gpt-4o-2024-08-06")),
            (attr::GEN_AI_REQUEST_MODEL, AttrValue::Str("gpt-4o")),
        ]);
        assert_eq!(fields.model, Some("gpt-4o"));
        let response_only = read(&[(attr::GEN_AI_RESPONSE_MODEL, AttrValue::Str("llama-3-8b"))]);
        assert_eq!(response_only.model, Some("llama-3-8b"));
    }

    #[test]
    fn classes_follow_the_operation_name() {
        let cases = [
            ("chat", Some(SpanClass::Llm)),
            ("text_completion", Some(SpanClass::Llm)),
            ("generate_content", Some(SpanClass::Llm)),
            ("embeddings", Some(SpanClass::Embedding)),
            ("invoke_agent", Some(SpanClass::Agent)),
            ("execute_tool", Some(SpanClass::Tool)),
            ("load_model", Some(SpanClass::ModelLoad)),
            ("agent_step", Some(SpanClass::Step)),
            ("something_else", None),
        ];
        for (operation, class) in cases {
            let fields = read(&[(attr::GEN_AI_OPERATION_NAME, AttrValue::Str(operation))]);
            assert_eq!(fields.class, class, "{operation}");
        }
    }

    #[test]
    fn a_step_name_alone_makes_a_step() {
        let fields = read(&[(attr::AGENTRACE_STEP_NAME, AttrValue::Str("plan"))]);
        assert_eq!(fields.class, Some(SpanClass::Step));
        assert_eq!(fields.step, Some("plan"));
    }

    #[test]
    fn openinference_spans_read_through_their_own_table() {
        use crate::attr::openinference as oi;
        let fields = read(&[
            (oi::SPAN_KIND, AttrValue::Str("LLM")),
            (oi::LLM_MODEL_NAME, AttrValue::Str("gpt-4o")),
            (oi::LLM_PROVIDER, AttrValue::Str("openai")),
            (oi::TOKEN_COUNT_PROMPT, AttrValue::Int(10)),
            (oi::TOKEN_COUNT_COMPLETION, AttrValue::Int(5)),
            (oi::TOKEN_COUNT_CACHE_READ, AttrValue::Int(4)),
        ]);
        assert_eq!(fields.class, Some(SpanClass::Llm));
        assert_eq!((fields.model, fields.provider), (Some("gpt-4o"), Some("openai")));
        assert_eq!(
            (fields.input_tokens, fields.output_tokens, fields.cached_input_tokens),
            (Some(10), Some(5), Some(4))
        );
        let chain = read(&[(oi::SPAN_KIND, AttrValue::Str("CHAIN"))]);
        assert_eq!(chain.class, Some(SpanClass::Step));
    }

    #[test]
    fn openllmetry_entity_names_and_request_types() {
        use crate::attr::openllmetry as ol;
        let agent =
            read(&[(ol::SPAN_KIND, AttrValue::Str("agent")), (ol::ENTITY_NAME, AttrValue::Str("planner"))]);
        assert_eq!((agent.class, agent.name), (Some(SpanClass::Agent), Some("planner")));
        let chat = read(&[
            (ol::REQUEST_TYPE, AttrValue::Str("chat")),
            (attr::GEN_AI_SYSTEM, AttrValue::Str("openai")),
        ]);
        assert_eq!(
            (chat.class, chat.operation, chat.provider),
            (Some(SpanClass::Llm), Some("chat"), Some("openai"))
        );
        let workflow = read(&[(ol::SPAN_KIND, AttrValue::Str("workflow"))]);
        assert_eq!(workflow.class, None);
    }

    #[test]
    fn genai_operation_wins_over_another_dialects_kind() {
        let fields = read(&[
            (crate::attr::openinference::SPAN_KIND, AttrValue::Str("CHAIN")),
            (attr::GEN_AI_OPERATION_NAME, AttrValue::Str("invoke_agent")),
        ]);
        assert_eq!(fields.class, Some(SpanClass::Agent));
    }

    #[test]
    fn vllm_spans_imply_their_provider_and_others_do_not() {
        use crate::attr::vllm;
        let request = read(&[
            (vllm::LATENCY_E2E, AttrValue::Double(1.5)),
            (vllm::LATENCY_TIME_TO_FIRST_TOKEN, AttrValue::Double(0.2)),
            (attr::GEN_AI_USAGE_PROMPT_TOKENS, AttrValue::Int(7)),
        ]);
        assert_eq!(request.class, Some(SpanClass::Llm));
        assert_eq!(request.provider, Some("vllm"));
        assert_eq!(request.time_to_first_token, Some(0.2));
        let named = read(&[
            (vllm::LATENCY_E2E, AttrValue::Double(1.5)),
            (attr::GEN_AI_SYSTEM, AttrValue::Str("mine")),
        ]);
        assert_eq!(named.provider, Some("mine"), "a named provider wins");
        let plain = read(&[(attr::GEN_AI_USAGE_PROMPT_TOKENS, AttrValue::Int(7))]);
        assert_eq!(plain.provider, None);
    }

    #[test]
    fn openlit_time_to_first_token_and_operations() {
        let fields = read(&[
            (attr::GEN_AI_OPERATION_NAME, AttrValue::Str("embedding")),
            (crate::attr::openlit::SERVER_TIME_TO_FIRST_TOKEN, AttrValue::Double(0.3)),
        ]);
        assert_eq!(fields.class, Some(SpanClass::Embedding));
        assert_eq!(fields.time_to_first_token, Some(0.3));
    }

    #[test]
    fn operations_are_canonical() {
        assert_eq!(canonical_operation(SpanClass::Llm, None), Some("chat"));
        assert_eq!(canonical_operation(SpanClass::Llm, Some("completion")), Some("text_completion"));
        assert_eq!(canonical_operation(SpanClass::Embedding, Some("embedding")), Some("embeddings"));
        assert_eq!(canonical_operation(SpanClass::Llm, Some("generate_content")), Some("generate_content"));
        assert_eq!(canonical_operation(SpanClass::Tool, None), None);
    }

    #[test]
    fn ill_typed_values_are_ignored_and_a_lower_ranked_key_fills_in() {
        let fields = read(&[
            (attr::GEN_AI_USAGE_INPUT_TOKENS, AttrValue::Int(-5)),
            (attr::GEN_AI_USAGE_PROMPT_TOKENS, AttrValue::Str("12")),
            (attr::GEN_AI_REQUEST_MODEL, AttrValue::Int(4)),
            (attr::GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, AttrValue::Double(f64::NAN)),
        ]);
        assert_eq!(fields.input_tokens, Some(12));
        assert_eq!(fields.model, None);
        assert_eq!(fields.time_to_first_token, None);
    }
}
