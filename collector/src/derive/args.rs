//! The agent-graph window's flags and settings: how long and how much of each trace is held to
//! pair calls with their agents and to attribute spans that do not name theirs.

use crate::args::{self, ArgError};

pub const DEFAULT_WAIT_SECS: f64 = 10.0;
pub const DEFAULT_MAX_TRACES: usize = 50_000;
pub const DEFAULT_MAX_PENDING_SPANS: usize = 100_000;
const DEFAULT_MAX_AGE_SECS: f64 = 600.0;
const DEFAULT_MAX_SPANS_PER_TRACE: usize = 10_000;
/// The window's bytes without `--memory-limit`.
pub const DEFAULT_MAX_BYTES: u64 = 256 << 20;
pub const DEFAULT_LOOP_REPEAT: u32 = 3;
pub const DEFAULT_CONTEXT_GROWTH_FACTOR: f64 = 4.0;
/// With `--memory-limit`, the window may hold this share of it.
const SHARE_OF_MEMORY_LIMIT: u64 = 4;

#[derive(Clone, Debug, Default, clap::Args)]
#[command(next_help_heading = "Agent graph and attribution")]
#[group(id = "agent_graph")]
pub struct Args {
    /// Seconds a trace stays open for agent-graph pairing after its last span [default: 10].
    #[arg(long, env = "AGENTRACE_GRAPH_WAIT_SECS", value_name = "SECS")]
    pub graph_wait_secs: Option<f64>,

    /// Most traces held open for agent-graph pairing [default: 50000].
    #[arg(long, env = "AGENTRACE_GRAPH_MAX_TRACES", value_name = "N")]
    pub graph_max_traces: Option<usize>,

    /// Seconds a span that does not name its agent waits for an enclosing agent span to
    /// arrive; then it is counted with `agent=""` [default: the graph wait, at most it].
    #[arg(long, env = "AGENTRACE_ATTRIBUTION_WAIT_SECS", value_name = "SECS")]
    pub attribution_wait_secs: Option<f64>,

    /// Most spans waiting for their agent at once; past it the oldest traces are closed early
    /// and their waiting spans counted without an agent [default: 100000].
    #[arg(long, env = "AGENTRACE_ATTRIBUTION_MAX_PENDING_SPANS", value_name = "N")]
    pub attribution_max_pending_spans: Option<usize>,

    /// Most bytes the agent-graph window holds (open traces, their spans, what waits in them);
    /// past it the oldest traces close early [default: a quarter of --memory-limit, or 256MiB].
    #[arg(long, env = "AGENTRACE_GRAPH_MAX_BYTES", value_name = "SIZE")]
    pub graph_max_bytes: Option<String>,

    /// Calls of one tool with the same arguments in one agent invocation that count as a loop
    /// (twice as many when the arguments were not captured) [default: 3].
    #[arg(long, env = "AGENTRACE_LOOP_REPEAT", value_name = "N")]
    pub loop_repeat: Option<u32>,

    /// A later LLM call of one invocation sending more than this many times the prompt tokens
    /// of its first counts as runaway context growth [default: 4].
    #[arg(long, env = "AGENTRACE_CONTEXT_GROWTH_FACTOR", value_name = "FACTOR")]
    pub context_growth_factor: Option<f64>,

    /// Seconds without a span after which a conversation (`gen_ai.conversation.id`,
    /// `session.id`) is over and recorded [default: 300].
    #[arg(long, env = "AGENTRACE_CONVERSATION_IDLE_SECS", value_name = "SECS")]
    pub conversation_idle_secs: Option<f64>,

    /// Most conversations followed at once; past it new ones are counted in
    /// agentrace_conversations_overflow_total and not followed [default: 50000].
    #[arg(long, env = "AGENTRACE_CONVERSATION_MAX_OPEN", value_name = "N")]
    pub conversation_max_open: Option<usize>,
}

#[derive(Clone, Copy, Debug)]
pub struct GraphConfig {
    /// Seconds a trace stays open after its last span arrived.
    pub wait_secs: f64,
    /// Seconds after which a trace is flushed even while spans keep arriving.
    pub max_age_secs: f64,
    pub max_traces: usize,
    pub max_spans_per_trace: usize,
    /// Seconds a span waits for its agent (at most `wait_secs`: the trace closes then).
    pub attribution_wait_secs: f64,
    pub max_pending_spans: usize,
    pub max_bytes: usize,
    /// Also derive the GenAI conventions' series (`--metric-names otel|both`).
    pub spec_names: bool,
    /// Calls of one tool with the same arguments in one invocation that make a loop.
    pub loop_repeat: u32,
    /// How many times its first call's prompt tokens a later call may send before the
    /// invocation's context counts as growing without bound.
    pub context_growth_factor: f64,
    pub conversations: super::ConversationConfig,
}

impl Default for GraphConfig {
    fn default() -> Self {
        Self {
            wait_secs: DEFAULT_WAIT_SECS,
            max_age_secs: DEFAULT_MAX_AGE_SECS,
            max_traces: DEFAULT_MAX_TRACES,
            max_spans_per_trace: DEFAULT_MAX_SPANS_PER_TRACE,
            attribution_wait_secs: DEFAULT_WAIT_SECS,
            max_pending_spans: DEFAULT_MAX_PENDING_SPANS,
            max_bytes: DEFAULT_MAX_BYTES as usize,
            spec_names: false,
            loop_repeat: DEFAULT_LOOP_REPEAT,
            context_growth_factor: DEFAULT_CONTEXT_GROWTH_FACTOR,
            conversations: super::ConversationConfig::default(),
        }
    }
}

impl GraphConfig {
    /// One worker's share of the window's bounds when `workers` share them.
    pub fn share(self, workers: usize) -> Self {
        let part = |total: usize| (total / workers.max(1)).max(1);
        Self {
            max_traces: part(self.max_traces),
            max_pending_spans: part(self.max_pending_spans),
            max_bytes: part(self.max_bytes),
            ..self
        }
    }
}

impl Args {
    /// `memory_limit_bytes` sizes the window when no flag does.
    pub fn validate(self, memory_limit_bytes: Option<u64>) -> Result<GraphConfig, ArgError> {
        let max_bytes = match (&self.graph_max_bytes, memory_limit_bytes) {
            (Some(text), _) => args::size("graph-max-bytes", text, "64MiB")?,
            (None, Some(limit)) => limit / SHARE_OF_MEMORY_LIMIT,
            (None, None) => DEFAULT_MAX_BYTES,
        };
        let wait = self.graph_wait_secs.unwrap_or(DEFAULT_WAIT_SECS);
        let wait_secs = args::seconds("graph-wait-secs", wait)?.as_secs_f64();
        let attribution_wait_secs =
            args::seconds("attribution-wait-secs", self.attribution_wait_secs.unwrap_or(wait_secs))?
                .as_secs_f64();
        if attribution_wait_secs > wait_secs {
            return Err(ArgError::invalid(
                "attribution-wait-secs",
                format!("{attribution_wait_secs} is longer than --graph-wait-secs ({wait_secs}), which holds the trace"),
            ));
        }
        Ok(GraphConfig {
            wait_secs,
            max_traces: args::positive(
                "graph-max-traces",
                self.graph_max_traces.unwrap_or(DEFAULT_MAX_TRACES),
            )?,
            attribution_wait_secs,
            max_pending_spans: args::positive(
                "attribution-max-pending-spans",
                self.attribution_max_pending_spans.unwrap_or(DEFAULT_MAX_PENDING_SPANS),
            )?,
            max_bytes: max_bytes as usize,
            loop_repeat: args::positive("loop-repeat", self.loop_repeat.unwrap_or(DEFAULT_LOOP_REPEAT))?,
            context_growth_factor: match self.context_growth_factor.unwrap_or(DEFAULT_CONTEXT_GROWTH_FACTOR) {
                factor if factor.is_finite() && factor > 1.0 => factor,
                factor => {
                    return Err(ArgError::invalid(
                        "context-growth-factor",
                        format!("more than 1, not {factor}"),
                    ))
                }
            },
            conversations: super::ConversationConfig {
                idle_secs: args::seconds(
                    "conversation-idle-secs",
                    self.conversation_idle_secs.unwrap_or(super::conversations::DEFAULT_IDLE_SECS),
                )?
                .as_secs_f64(),
                max_open: args::positive(
                    "conversation-max-open",
                    self.conversation_max_open.unwrap_or(super::conversations::DEFAULT_MAX_OPEN),
                )?,
            },
            ..GraphConfig::default()
        })
    }
}
