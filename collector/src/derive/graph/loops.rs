//! Runaway agents, found when their trace closes (`agent_loop_detected_total{kind}`):
//! - `repeated_tool_call`: one invocation calls the same tool with the same arguments
//!   `--loop-repeat` times (the arguments compared by a hash that never leaves the collector);
//!   when the arguments were not captured, the same tool twice as many times;
//! - `delegation_cycle`: an agent invoked again under itself through another agent (A → B → A);
//! - `context_growth`: a later LLM call of one invocation sends more than
//!   `--context-growth-factor` times the prompt tokens of its first.

use std::hash::{BuildHasher, Hasher};

use agentrace_semconv::metric::{self, loop_kind};
use smallvec::{smallvec, SmallVec};

use super::chain::{nearest_agent, Caller, Nodes};
use super::{GraphConfig, Invocation, SpanId};
use crate::metrics::{Exemplar, Label, Observation, Observe};
use crate::normalize::CanonicalSpan;
use agentrace_semconv::SpanClass;

/// What one call tells about loops: a tool call's key, an LLM call's start and prompt tokens.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Probe {
    /// The tool and its arguments' hash, or the tool alone (`by_name`) when not captured.
    tool: Option<ToolKey>,
    /// Start (Unix nanoseconds) and prompt tokens.
    prompt: Option<(u64, u64)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ToolKey {
    hash: u64,
    by_name: bool,
}

/// One invocation's loop evidence so far; small, since every open trace holds one per agent
/// span (the tools' list is on the heap only once the invocation calls a tool).
#[derive(Clone, Debug, Default)]
pub(super) struct Watch {
    tools: Vec<(ToolKey, u32)>,
    /// The earliest call's (start, prompt tokens), and the most prompt tokens of any call.
    first_prompt: Option<(u64, u32)>,
    most_prompt: u32,
}

impl Probe {
    pub fn of(span: &CanonicalSpan<'_>) -> Self {
        let tool = (span.class == SpanClass::Tool).then(|| {
            // Fixed keys: the hash only compares calls within one invocation.
            let mut hasher = foldhash::fast::FixedState::with_seed(0x5eed).build_hasher();
            hasher.write(span.fields.tool.unwrap_or_default().as_bytes());
            hasher.write_u64(span.arguments_hash.unwrap_or_default());
            ToolKey { hash: hasher.finish(), by_name: span.arguments_hash.is_none() }
        });
        let is_llm = span.class == SpanClass::Llm;
        let prompt = span.fields.input_tokens.filter(|_| is_llm).map(|tokens| (span.start_unix_nano, tokens));
        Self { tool, prompt }
    }
}

impl Watch {
    pub fn add(&mut self, probe: Probe) {
        if let Some(key) = probe.tool {
            match self.tools.iter_mut().find(|(seen, _)| *seen == key) {
                Some((_, count)) => *count = count.saturating_add(1),
                None => self.tools.push((key, 1)),
            }
        }
        if let Some((start, tokens)) = probe.prompt {
            let tokens = u32::try_from(tokens).unwrap_or(u32::MAX);
            if self.first_prompt.is_none_or(|(first, _)| start < first) {
                self.first_prompt = Some((start, tokens));
            }
            self.most_prompt = self.most_prompt.max(tokens);
        }
    }

    fn repeated(&self, config: &GraphConfig) -> bool {
        let repeat = config.loop_repeat;
        self.tools
            .iter()
            .any(|(key, count)| *count >= if key.by_name { repeat.saturating_mul(2) } else { repeat })
    }

    fn context_grew(&self, config: &GraphConfig) -> bool {
        self.first_prompt.is_some_and(|(_, first)| {
            first > 0 && f64::from(self.most_prompt) > f64::from(first) * config.context_growth_factor
        })
    }
}

/// Counts the loops of a closing trace's invocations.
pub(super) fn detect<'o>(
    nodes: &Nodes,
    invocations: &[(SpanId, Invocation)],
    config: &GraphConfig,
    out: &mut impl Observe<'o>,
) {
    for (span_id, invocation) in invocations {
        let mut found: SmallVec<[&'static str; 3]> = SmallVec::new();
        if invocation.watch.repeated(config) {
            found.push(loop_kind::REPEATED_TOOL_CALL);
        }
        if invocation.watch.context_grew(config) {
            found.push(loop_kind::CONTEXT_GROWTH);
        }
        if closes_a_cycle(nodes, *span_id, &invocation.agent) {
            found.push(loop_kind::DELEGATION_CYCLE);
        }
        for kind in found {
            count(invocation, kind, out);
        }
    }
}

/// Whether the agent of the invocation at `span_id` is invoked above it too, through another.
fn closes_a_cycle(nodes: &Nodes, span_id: SpanId, agent: &str) -> bool {
    let mut through_another = false;
    let mut current = nodes.get(&span_id).and_then(|node| node.parent);
    for _ in 0..super::chain::MAX_CHAIN {
        let Caller::Agent(above, node) = nearest_agent(nodes, current) else { return false };
        if &*node.name == agent {
            if through_another {
                return true;
            }
        } else {
            through_another = true;
        }
        current = nodes.get(&above).and_then(|node| node.parent);
    }
    false
}

fn count<'o>(invocation: &Invocation, kind: &'static str, out: &mut impl Observe<'o>) {
    let labels = smallvec![
        Label::Shared(invocation.service.clone()),
        Label::Shared(invocation.agent.clone()),
        Label::Borrowed(kind),
    ];
    let exemplar = Some(Exemplar { value: 1.0, ..invocation.exemplar });
    out.push(Observation {
        metric: metric::AGENT_LOOP_DETECTED_TOTAL,
        labels,
        value: 1.0,
        weight: invocation.weight,
        exemplar,
    });
}
