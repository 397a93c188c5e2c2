//! Conversations: the requests that share a `gen_ai.conversation.id` (OpenInference and
//! OpenLLMetry: `session.id`), across traces and processing workers. Once one has been idle for
//! `--conversation-idle-secs`, its turns (traces), tokens, cost and duration are recorded,
//! labelled with its service and entry agent; the conversation id travels only as an exemplar
//! label, beside the conversation's last trace.
//!
//! One table for all workers, behind a lock taken only for spans that name a conversation.
//! Bounded: past `--conversation-max-open` open conversations, new ones are not followed and
//! are counted in `agentrace_conversations_overflow_total`.

use std::sync::{Arc, Mutex};

use agentrace_semconv::metric;
use agentrace_semconv::SpanClass;
use foldhash::HashMap;
use smallvec::{smallvec, SmallVec};

use crate::metrics::{truncated, Exemplar, ExemplarTag, Label, Observation};
use crate::normalize::CanonicalSpan;

pub const DEFAULT_IDLE_SECS: f64 = 300.0;
pub const DEFAULT_MAX_OPEN: usize = 50_000;
/// Recent trace ids kept per conversation to count each trace as one turn.
const RECENT_TRACES: usize = 8;

#[derive(Clone, Copy, Debug)]
pub struct ConversationConfig {
    pub idle_secs: f64,
    pub max_open: usize,
}

impl Default for ConversationConfig {
    fn default() -> Self {
        Self { idle_secs: DEFAULT_IDLE_SECS, max_open: DEFAULT_MAX_OPEN }
    }
}

#[derive(Debug, Default)]
struct Conversation {
    service: String,
    entry_agent: Option<(String, bool)>,
    turns: u32,
    recent_traces: SmallVec<[[u8; 16]; RECENT_TRACES]>,
    tokens: u64,
    cost_usd: f64,
    first_start_nanos: u64,
    last_end_nanos: u64,
    /// Arrival time of its latest span (Unix seconds): idleness is counted from it.
    last_seen: f64,
    last_span: ([u8; 16], [u8; 8]),
}

/// The open conversations of the whole collector.
#[derive(Debug, Default)]
pub struct Conversations {
    config: ConversationConfig,
    open: Mutex<HashMap<Box<str>, Conversation>>,
}

impl Conversations {
    pub fn new(config: ConversationConfig) -> Arc<Self> {
        Arc::new(Self { config, open: Mutex::default() })
    }

    /// Adds a span that names its conversation; `cost` is an LLM call's API and GPU cost.
    pub fn observe(&self, span: &CanonicalSpan<'_>, cost: f64, now: f64, out: &mut Vec<Observation>) {
        let Some(id) = span.fields.conversation else { return };
        let Ok(mut open) = self.open.lock() else { return };
        let id = truncated(id);
        if !open.contains_key(id) && open.len() >= self.config.max_open {
            out.push(Observation::new(metric::SELF_CONVERSATIONS_OVERFLOW_TOTAL, smallvec![], 1.0, None));
            return;
        }
        let conversation = open.entry(Box::from(id)).or_insert_with(|| Conversation {
            service: span.service.to_owned(),
            first_start_nanos: span.start_unix_nano,
            ..Conversation::default()
        });
        conversation.add(span, cost, now);
    }

    /// Records and forgets the conversations idle for the idle time.
    pub fn close_idle(&self, now: f64, out: &mut Vec<Observation>) {
        let Ok(mut open) = self.open.lock() else { return };
        let idle = self.config.idle_secs;
        for (id, conversation) in open.extract_if(|_, conversation| now - conversation.last_seen >= idle) {
            conversation.record(&id, out);
        }
        out.push(Observation::new(metric::SELF_CONVERSATIONS_OPEN, smallvec![], open.len() as f64, None));
    }
}

impl Conversation {
    fn add(&mut self, span: &CanonicalSpan<'_>, cost: f64, now: f64) {
        if !self.recent_traces.contains(&span.trace_id) {
            self.turns = self.turns.saturating_add(1);
            if self.recent_traces.len() == RECENT_TRACES {
                self.recent_traces.remove(0);
            }
            self.recent_traces.push(span.trace_id);
        }
        if matches!(span.class, SpanClass::Llm | SpanClass::Embedding) {
            let tokens =
                span.fields.input_tokens.unwrap_or(0).saturating_add(span.fields.output_tokens.unwrap_or(0));
            self.tokens = self.tokens.saturating_add(tokens);
            self.cost_usd += cost;
        }
        // The entry agent: the first agent at the root of a trace, else the first agent seen.
        if span.class == SpanClass::Agent {
            let root = span.parent_span_id.is_none();
            if self.entry_agent.as_ref().is_none_or(|(_, was_root)| root && !was_root) {
                let agent = truncated(span.fields.agent.unwrap_or(span.name));
                self.entry_agent = Some((agent.to_owned(), root));
                self.service = span.service.to_owned();
            }
        }
        self.first_start_nanos = self.first_start_nanos.min(span.start_unix_nano);
        if span.end_unix_nano >= self.last_end_nanos {
            self.last_end_nanos = span.end_unix_nano;
            self.last_span = (span.trace_id, span.span_id);
        }
        self.last_seen = now;
    }

    fn record(self, id: &str, out: &mut Vec<Observation>) {
        let agent = self.entry_agent.map(|(agent, _)| agent).unwrap_or_default();
        let labels = smallvec![Label::Shared(Arc::from(self.service)), Label::Shared(Arc::from(agent))];
        let duration = self.last_end_nanos.saturating_sub(self.first_start_nanos) as f64 / 1e9;
        let conversation = ExemplarTag::new(id);
        let (trace_id, span_id) = self.last_span;
        for (metric, value) in [
            (metric::AGENT_CONVERSATION_TURNS, f64::from(self.turns)),
            (metric::AGENT_CONVERSATION_TOKENS, self.tokens as f64),
            (metric::AGENT_CONVERSATION_COST_USD, self.cost_usd),
            (metric::AGENT_CONVERSATION_DURATION_SECONDS, duration),
        ] {
            let timestamp = self.last_end_nanos as f64 / 1e9;
            let exemplar = Exemplar { trace_id, span_id, value, timestamp, conversation };
            out.push(Observation {
                metric,
                labels: labels.clone(),
                value,
                weight: 1.0,
                exemplar: Some(exemplar),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::derive::tests::span;
    use crate::metrics::{Registry, SeriesLimits};
    use agentrace_semconv::GenAiFields;

    fn turn(trace: u8, agent_span: u8, conversation: &'static str) -> [CanonicalSpan<'static>; 2] {
        let agent = GenAiFields {
            agent: Some("concierge"),
            conversation: Some(conversation),
            ..GenAiFields::default()
        };
        let call = GenAiFields {
            model: Some("m"),
            input_tokens: Some(100),
            output_tokens: Some(20),
            conversation: Some(conversation),
            ..GenAiFields::default()
        };
        let with_trace = |mut span: CanonicalSpan<'static>, start: u64| {
            span.trace_id = [trace; 16];
            span.start_unix_nano = start * 1_000_000_000;
            span.end_unix_nano = (start + 2) * 1_000_000_000;
            span
        };
        let start = u64::from(trace) * 10;
        [
            with_trace(span(agent_span, None, SpanClass::Agent, agent), start),
            with_trace(span(agent_span + 1, Some(agent_span), SpanClass::Llm, call), start),
        ]
    }

    fn values(out: &[Observation], metric: &str) -> Vec<f64> {
        out.iter()
            .filter(|observation| observation.metric == metric)
            .map(|observation| observation.value)
            .collect()
    }

    #[test]
    fn a_conversation_is_recorded_once_idle_with_its_turns_tokens_cost_and_length() {
        let conversations = Conversations::new(ConversationConfig { idle_secs: 300.0, max_open: 10 });
        let mut out = Vec::new();
        for (at, trace) in [(0.0, 1), (100.0, 2), (200.0, 3)] {
            for span in turn(trace, trace * 10, "conv-1") {
                let cost = if span.class == SpanClass::Llm { 0.01 } else { 0.0 };
                conversations.observe(&span, cost, at, &mut out);
            }
        }
        conversations.close_idle(499.0, &mut out);
        assert!(values(&out, metric::AGENT_CONVERSATION_TURNS).is_empty(), "not idle yet");
        conversations.close_idle(500.0, &mut out);
        assert_eq!(values(&out, metric::AGENT_CONVERSATION_TURNS), [3.0]);
        assert_eq!(values(&out, metric::AGENT_CONVERSATION_TOKENS), [360.0]);
        assert!((values(&out, metric::AGENT_CONVERSATION_COST_USD)[0] - 0.03).abs() < 1e-12);
        assert_eq!(values(&out, metric::AGENT_CONVERSATION_DURATION_SECONDS), [22.0], "10 s to 32 s");
        let turns = out.iter().find(|observation| observation.metric == metric::AGENT_CONVERSATION_TURNS);
        let turns = turns.expect("turns");
        assert_eq!(turns.labels.iter().map(ToString::to_string).collect::<Vec<_>>(), ["svc", "concierge"]);
        let exemplar = turns.exemplar.expect("exemplar");
        assert_eq!((exemplar.trace_id, exemplar.conversation.text().as_deref()), ([3; 16], Some("conv-1")));

        // The id rides on the exemplar, never on the series.
        let registry = Registry::new(SeriesLimits::default());
        registry.apply(&mut out, 500.0);
        let page = registry.render(crate::metrics::Format::OpenMetrics);
        let line = page
            .lines()
            .find(|line| line.starts_with("agent_conversation_turns_bucket") && line.contains(" # "));
        let line = line.expect("an exemplar");
        assert!(line.contains(r#"conversation_id="conv-1""#) && line.contains(&"03".repeat(16)), "{line}");
        assert_eq!(page.matches("conv-1").count(), 4, "once per family's exemplar, no series label");
    }

    #[test]
    fn past_the_cap_new_conversations_are_counted_not_followed() {
        let conversations = Conversations::new(ConversationConfig { idle_secs: 300.0, max_open: 2 });
        let mut out = Vec::new();
        for (trace, id) in [(1, "a"), (2, "b"), (3, "c"), (4, "a")] {
            for span in turn(trace, trace * 10, id) {
                conversations.observe(&span, 0.0, 0.0, &mut out);
            }
        }
        assert_eq!(values(&out, metric::SELF_CONVERSATIONS_OVERFLOW_TOTAL), [1.0, 1.0], "c's two spans");
        conversations.close_idle(300.0, &mut out);
        let mut turns = values(&out, metric::AGENT_CONVERSATION_TURNS);
        turns.sort_by(f64::total_cmp);
        assert_eq!(turns, [1.0, 2.0], "b had one turn, a two; c was never followed");
        assert_eq!(values(&out, metric::SELF_CONVERSATIONS_OPEN), [0.0]);
    }
}
