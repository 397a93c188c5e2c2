//! Conversations: the requests (traces) that share a `gen_ai.conversation.id` (OpenInference:
//! `session.id`), across processing workers. A trace belongs to the conversation one of its
//! spans names, and adds all its LLM calls when it closes, each call once, whether or not the
//! call's own span names the conversation. Once a conversation has been idle for
//! `--conversation-idle-secs`, its turns (traces), tokens, cost and duration are recorded,
//! labelled with its service and entry agent; the conversation id travels only as an exemplar
//! label, beside the conversation's last trace.
//!
//! One table for all workers, behind a lock taken only when a conversation's trace closes.
//! Bounded: past `--conversation-max-open` open conversations, new ones are not followed and
//! are counted in `agentrace_conversations_overflow_total`.

use std::sync::{Arc, Mutex};

use agentrace_semconv::metric;
use foldhash::HashMap;
use smallvec::smallvec;

use super::RollUp;
use crate::metrics::{truncated, Exemplar, ExemplarTag, Label, Observation, Observe};

pub const DEFAULT_IDLE_SECS: f64 = 300.0;
pub const DEFAULT_MAX_OPEN: usize = 50_000;

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

/// What one trace adds to its conversation, gathered while it is open.
#[derive(Clone, Debug, Default)]
pub(crate) struct TraceTotals {
    /// The first conversation id a span of the trace names.
    pub conversation: Option<Arc<str>>,
    /// The trace's LLM calls (each call once), their tokens and cost.
    pub calls: RollUp,
    pub first_start_nanos: u64,
    pub last_end_nanos: u64,
    pub last_span_id: [u8; 8],
    /// The first span's service.
    pub service: Option<Arc<str>>,
}

/// A closed trace of a conversation: its totals, its id, and the agent at its root with that
/// agent's service.
pub(crate) struct Turn<'a> {
    pub totals: &'a TraceTotals,
    pub trace_id: [u8; 16],
    pub entry: Option<(&'a Arc<str>, &'a Arc<str>)>,
}

#[derive(Debug, Default)]
struct Conversation {
    service: String,
    /// Whether the service is the entry agent's.
    service_from_entry: bool,
    entry_agent: Option<String>,
    turns: u32,
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

    /// Adds a closed trace (one turn) of conversation `id`. What it records, it records after
    /// letting go of the table: `out` may be a worker's recorder, which holds registry locks
    /// that another worker's recorder, waiting here, could be waiting for.
    pub fn add_trace<'o>(&self, id: &str, turn: &Turn<'_>, now: f64, out: &mut impl Observe<'o>) {
        if !self.added(truncated(id), turn, now) {
            out.push(Observation::new(metric::SELF_CONVERSATIONS_OVERFLOW_TOTAL, smallvec![], 1.0, None));
        }
    }

    /// False when the conversation is new and `--conversation-max-open` are open.
    fn added(&self, id: &str, turn: &Turn<'_>, now: f64) -> bool {
        let Ok(mut open) = self.open.lock() else { return true };
        if let Some(conversation) = open.get_mut(id) {
            conversation.add(turn, now);
            return true;
        }
        if open.len() >= self.config.max_open {
            return false;
        }
        let mut conversation =
            Conversation { first_start_nanos: turn.totals.first_start_nanos, ..Conversation::default() };
        conversation.add(turn, now);
        open.insert(Box::from(id), conversation);
        true
    }

    /// Records and forgets the conversations idle for the idle time (recorded after letting go
    /// of the table, as in [`Self::add_trace`]).
    pub fn close_idle<'o>(&self, now: f64, out: &mut impl Observe<'o>) {
        let Ok(mut open) = self.open.lock() else { return };
        let idle = self.config.idle_secs;
        let closed: Vec<_> =
            open.extract_if(|_, conversation| now - conversation.last_seen >= idle).collect();
        let still_open = open.len();
        drop(open);
        for (id, conversation) in closed {
            conversation.record(&id, out);
        }
        out.push(Observation::new(metric::SELF_CONVERSATIONS_OPEN, smallvec![], still_open as f64, None));
    }
}

impl Conversation {
    fn add(&mut self, turn: &Turn<'_>, now: f64) {
        let trace = turn.totals;
        self.turns = self.turns.saturating_add(1);
        self.tokens = self.tokens.saturating_add(trace.calls.tokens);
        self.cost_usd += trace.calls.cost;
        if self.entry_agent.is_none() {
            self.entry_agent = turn.entry.map(|(agent, _)| agent.to_string());
        }
        // The entry agent's service, else the first span's.
        let service = turn.entry.map(|(_, service)| service).or(trace.service.as_ref());
        let from_entry = turn.entry.is_some();
        if self.service.is_empty() || from_entry && !self.service_from_entry {
            self.service = service.map(|service| service.to_string()).unwrap_or_default();
            self.service_from_entry = from_entry;
        }
        self.first_start_nanos = self.first_start_nanos.min(trace.first_start_nanos);
        if trace.last_end_nanos >= self.last_end_nanos {
            self.last_end_nanos = trace.last_end_nanos;
            self.last_span = (turn.trace_id, trace.last_span_id);
        }
        self.last_seen = now;
    }

    fn record<'o>(self, id: &str, out: &mut impl Observe<'o>) {
        let agent = self.entry_agent.unwrap_or_default();
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
    use crate::metrics::{Registry, SeriesLimits};

    fn totals(trace: u8, start_second: u64) -> TraceTotals {
        TraceTotals {
            conversation: Some(Arc::from("conv-1")),
            calls: RollUp { llm_calls: 1, tool_calls: 0, tokens: 120, cost: 0.01 },
            first_start_nanos: start_second * 1_000_000_000,
            last_end_nanos: (start_second + 2) * 1_000_000_000,
            last_span_id: [trace; 8],
            service: Some(Arc::from("first")),
        }
    }

    fn add<'o>(
        conversations: &Conversations,
        id: &str,
        trace: u8,
        start_second: u64,
        at: f64,
        out: &mut impl Observe<'o>,
    ) {
        let (agent, service): (Arc<str>, Arc<str>) = (Arc::from("concierge"), Arc::from("svc"));
        let totals = totals(trace, start_second);
        let turn = Turn { totals: &totals, trace_id: [trace; 16], entry: Some((&agent, &service)) };
        conversations.add_trace(id, &turn, at, out);
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
        for (at, number) in [(0.0, 1), (100.0, 2), (200.0, 3)] {
            add(&conversations, "conv-1", number, u64::from(number) * 10, at, &mut out);
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
        for (number, id) in [(1, "a"), (2, "b"), (3, "c"), (4, "a")] {
            add(&conversations, id, number, 0, 0.0, &mut out);
        }
        assert_eq!(values(&out, metric::SELF_CONVERSATIONS_OVERFLOW_TOTAL), [1.0]);
        conversations.close_idle(300.0, &mut out);
        let mut turns = values(&out, metric::AGENT_CONVERSATION_TURNS);
        turns.sort_by(f64::total_cmp);
        assert_eq!(turns, [1.0, 2.0], "b had one turn, a two; c was never followed");
        assert_eq!(values(&out, metric::SELF_CONVERSATIONS_OPEN), [0.0]);
    }

    /// Observations taken while checking that the conversations' table is free: a worker's
    /// recorder holds registry locks, and must not wait for the table while it does.
    struct TableFree<'c> {
        conversations: &'c Conversations,
        taken: Vec<Observation<'static>>,
    }

    impl Observe<'static> for TableFree<'_> {
        fn observe(
            &mut self,
            metric: &'static str,
            labels: &[Label<'static>],
            value: f64,
            weight: f64,
            exemplar: Option<Exemplar>,
        ) {
            assert!(self.conversations.open.try_lock().is_ok(), "{metric} recorded with the table locked");
            self.taken.observe(metric, labels, value, weight, exemplar);
        }
    }

    #[test]
    fn conversations_record_with_their_table_unlocked() {
        let conversations = Conversations::new(ConversationConfig { idle_secs: 300.0, max_open: 1 });
        let mut out = TableFree { conversations: &conversations, taken: Vec::new() };
        for (number, id) in [(1, "a"), (2, "b")] {
            add(&conversations, id, number, 0, 0.0, &mut out);
        }
        conversations.close_idle(300.0, &mut out);
        assert_eq!(values(&out.taken, metric::SELF_CONVERSATIONS_OVERFLOW_TOTAL), [1.0]);
        assert_eq!(values(&out.taken, metric::AGENT_CONVERSATION_TURNS), [1.0]);
        assert_eq!(values(&out.taken, metric::SELF_CONVERSATIONS_OPEN), [0.0]);
    }
}
