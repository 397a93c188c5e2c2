//! An agent's series for one span (an LLM call, a tool call, a step, an MCP operation, a
//! guardrail's results), built from the span and counted once its agent is known: at once when
//! the span names it, else when the agent graph finds it.

use std::sync::Arc;

use agentrace_semconv::metric::{self, status};
use agentrace_semconv::ErrorType;
use smallvec::smallvec;

use super::{exemplar_of, field};
use crate::gpu::WindowStats;
use crate::metrics::{Exemplar, Label, Labels, Observe};
use crate::normalize::CanonicalSpan;

mod spec;
/// An agent's series for one LLM call, tool call or step, ready to be counted once the agent
/// is known: labels borrowed from the span, or owned while the span waits for its agent.
#[derive(Clone, Debug)]
pub(crate) struct Scoped<'a> {
    /// The service, then what the call names: an LLM call's provider, model and operation, a
    /// tool, a step.
    labels: Labels<'a>,
    /// The agent the span names itself; `None` when the trace has to tell.
    pub(crate) agent: Option<Label<'a>>,
    call: Call,
    duration: f64,
    weight: f64,
    /// Where the exemplars point: the span that was counted.
    exemplar: Exemplar,
    /// The normalised error of a failed span.
    error: Option<ErrorType>,
    /// Also the GenAI conventions' series (`--metric-names otel|both`).
    pub(super) spec: bool,
}

#[derive(Clone, Copy, Debug)]
pub(super) enum Call {
    Llm(LlmFigures),
    Tool,
    Step,
    /// An MCP client operation (labels: method, tool); a `tools/call` is a tool call too.
    McpClient {
        tool_call: bool,
    },
    /// Guardrail results (labels: guardrail, decision, for each).
    Guardrails,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct LlmFigures {
    error: Option<ErrorType>,
    tokens: Counts,
    /// Seconds (normalize drops one longer than the call).
    first_token: Option<f64>,
    money: Money,
    /// GPU-seconds and joules in the call's window.
    gpu: Option<(f64, f64)>,
}

/// What a call cost: its tokens at API prices, what cache reads saved, its GPU time at GPU-hour
/// prices (self-hosted models).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Money {
    pub api: Option<f64>,
    pub cache_savings: Option<f64>,
    pub gpu: Option<f64>,
}

/// A call's token counts, each present or not, kept compact (a call's series may wait, boxed,
/// for their agent): input, output, cache read, cache write, reasoning, then input and output
/// per modality (text, image, audio).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Counts {
    values: [u64; 11],
    present: u16,
}

impl Counts {
    fn of(fields: &agentrace_semconv::GenAiFields<'_>) -> Self {
        let (input, output) = (fields.modality_input_tokens, fields.modality_output_tokens);
        let all = [
            fields.input_tokens,
            fields.output_tokens,
            fields.cached_input_tokens,
            fields.cache_write_tokens,
            fields.reasoning_tokens,
            input[0],
            input[1],
            input[2],
            output[0],
            output[1],
            output[2],
        ];
        let mut counts = Self::default();
        for (index, count) in all.into_iter().enumerate() {
            if let Some(count) = count {
                counts.values[index] = count;
                counts.present |= 1 << index;
            }
        }
        counts
    }

    fn get(&self, index: usize) -> Option<u64> {
        (self.present & (1 << index) != 0).then(|| self.values[index])
    }

    pub(super) fn input_tokens(&self) -> Option<u64> {
        self.get(0)
    }

    pub(super) fn output_tokens(&self) -> Option<u64> {
        self.get(1)
    }

    pub(super) fn cache_read_tokens(&self) -> Option<u64> {
        self.get(2)
    }

    pub(super) fn cache_write_tokens(&self) -> Option<u64> {
        self.get(3)
    }

    pub(super) fn reasoning_tokens(&self) -> Option<u64> {
        self.get(4)
    }

    /// Input (or output) tokens per modality, in `MODALITIES` order.
    pub(super) fn modalities(&self, output: bool) -> [Option<u64>; 3] {
        let first = if output { 8 } else { 5 };
        [self.get(first), self.get(first + 1), self.get(first + 2)]
    }
}

impl<'a> Scoped<'a> {
    pub(super) fn new(span: &CanonicalSpan<'a>, call: Call, names: &[Option<&'a str>]) -> Self {
        let mut labels: Labels<'a> = smallvec![Label::cut(span.service)];
        labels.extend(names.iter().map(|name| field(*name)));
        Self {
            labels,
            agent: span.fields.agent.map(Label::cut),
            call,
            duration: span.duration_seconds(),
            weight: span.weight,
            exemplar: exemplar_of(span, 0.0),
            error: span.error,
            spec: false,
        }
    }

    /// An MCP client operation: method and tool.
    pub(super) fn mcp_client(span: &CanonicalSpan<'a>, method: &'a str) -> Self {
        let tool_call = span.class == agentrace_semconv::SpanClass::Tool;
        Self::new(span, Call::McpClient { tool_call }, &[Some(method), span.fields.tool])
    }

    /// Guardrail results of the span.
    pub(super) fn guardrails(span: &CanonicalSpan<'a>) -> Self {
        let mut scoped = Self::new(span, Call::Guardrails, &[]);
        for (guardrail, decision) in &span.guardrails {
            scoped.labels.push(Label::cut(guardrail));
            scoped.labels.push(match decision {
                std::borrow::Cow::Borrowed(decision) => Label::cut(decision),
                std::borrow::Cow::Owned(decision) => Label::Shared(Arc::from(decision.as_str())),
            });
        }
        scoped
    }

    /// An LLM or embedding call.
    pub(super) fn llm(span: &CanonicalSpan<'a>, money: Money, gpu: Option<&WindowStats>) -> Self {
        let fields = &span.fields;
        let figures = LlmFigures {
            error: span.error,
            tokens: Counts::of(fields),
            first_token: fields.time_to_first_token,
            money,
            gpu: gpu.map(|stats| (stats.gpu_seconds, stats.energy_joules)),
        };
        Self::new(span, Call::Llm(figures), &[fields.provider, fields.model, fields.operation])
    }

    /// An LLM call's API and GPU cost, in USD; 0 for anything else.
    pub(crate) fn cost(&self) -> f64 {
        match self.call {
            Call::Llm(figures) => figures.money.api.unwrap_or(0.0) + figures.money.gpu.unwrap_or(0.0),
            _ => 0.0,
        }
    }

    /// The same series with labels of their own (shared through `share`), to keep while the
    /// span waits for its agent.
    pub(crate) fn to_owned(&self, share: &mut impl FnMut(&str) -> Arc<str>) -> Scoped<'static> {
        let mut own = |label: &Label<'_>| Label::Shared(share(label));
        Scoped {
            labels: self.labels.iter().map(&mut own).collect(),
            agent: self.agent.as_ref().map(own),
            call: self.call,
            duration: self.duration,
            weight: self.weight,
            exemplar: self.exemplar,
            error: self.error,
            spec: self.spec,
        }
    }

    /// Records one observation of these series, its exemplar pointing at the span.
    fn record<'o>(&self, out: &mut impl Observe<'o>, metric: &'static str, labels: &[Label<'o>], value: f64) {
        out.observe(metric, labels, value, self.weight, Some(Exemplar { value, ..self.exemplar }));
    }

    /// The service, `agent`, then the call's first `N - 2` labels.
    fn label_set<'o, const N: usize>(&self, agent: &Label<'o>) -> [Label<'o>; N]
    where
        'a: 'o,
    {
        std::array::from_fn(|index| match index {
            0 => self.labels[0].clone(),
            1 => agent.clone(),
            _ => self.labels[index - 1].clone(),
        })
    }

    /// Counts the series for `agent` (a held span's series, owning their labels, count into
    /// observations of any lifetime).
    pub(crate) fn emit<'o>(&self, agent: Label<'o>, out: &mut impl Observe<'o>)
    where
        'a: 'o,
    {
        let status = Label::Borrowed(if self.error.is_some() { status::ERROR } else { status::OK });
        match self.call {
            Call::Llm(figures) => self.emit_llm(&figures, &agent, status, out),
            Call::Tool => {
                if self.spec {
                    spec::tool(self, &agent, self.labels[1].clone(), out);
                }
                let [service, agent, tool] = self.label_set(&agent);
                let labels = [service, agent, tool, status];
                self.record(out, metric::AGENT_TOOL_CALLS_TOTAL, &labels, 1.0);
                self.record(out, metric::AGENT_TOOL_CALL_DURATION_SECONDS, &labels, self.duration);
            }
            Call::Step => {
                // `agent_steps_total` is read from this histogram's samples.
                let labels: [Label<'o>; 3] = self.label_set(&agent);
                self.record(out, metric::AGENT_STEP_DURATION_SECONDS, &labels, self.duration);
            }
            Call::McpClient { tool_call } => {
                let [service, agent, method, tool] = self.label_set(&agent);
                let duration = self.duration;
                let labels = [service, agent, method, tool, status];
                self.record(out, metric::MCP_CLIENT_OPERATION_DURATION_SECONDS, &labels, duration);
                if tool_call {
                    let [service, agent, _, tool, status] = labels;
                    if self.spec {
                        spec::tool(self, &agent, tool.clone(), out);
                    }
                    let labels = [service, agent, tool, status];
                    self.record(out, metric::AGENT_TOOL_CALLS_TOTAL, &labels, 1.0);
                    self.record(out, metric::AGENT_TOOL_CALL_DURATION_SECONDS, &labels, duration);
                }
            }
            Call::Guardrails => {
                for pair in self.labels[1..].chunks_exact(2) {
                    let labels = [self.labels[0].clone(), agent.clone(), pair[0].clone(), pair[1].clone()];
                    self.record(out, metric::LLM_GUARDRAIL_RESULTS_TOTAL, &labels, 1.0);
                }
            }
        }
    }

    fn emit_llm<'o>(&self, llm: &LlmFigures, agent: &Label<'o>, status: Label<'o>, out: &mut impl Observe<'o>)
    where
        'a: 'o,
    {
        if self.spec {
            spec::inference(self, llm, out);
        }
        // Service, agent, provider, model, operation, status: each family takes a prefix.
        let [service, agent, provider, model, operation] = self.label_set(agent);
        let labels = [service, agent, provider, model, operation, status];
        let (base, with_operation) = (&labels[..4], &labels[..5]);
        let mut record = |metric, labels: &[Label<'o>], value| self.record(out, metric, labels, value);
        record(metric::LLM_REQUESTS_TOTAL, &labels, 1.0);
        record(metric::LLM_INFERENCE_LATENCY_SECONDS, with_operation, self.duration);
        if let Some(error) = llm.error {
            let [service, agent, provider, model] = [0, 1, 2, 3].map(|index| labels[index].clone());
            let labels = [service, agent, provider, model, Label::Borrowed(error.as_str())];
            record(metric::LLM_INFERENCE_ERRORS_TOTAL, &labels, 1.0);
        }
        for (metric, tokens) in [
            (metric::LLM_PROMPT_TOKENS_TOTAL, llm.tokens.input_tokens()),
            (metric::LLM_RESPONSE_TOKENS_TOTAL, llm.tokens.output_tokens()),
            (metric::LLM_CACHE_READ_TOKENS_TOTAL, llm.tokens.cache_read_tokens()),
            (metric::LLM_CACHE_WRITE_TOKENS_TOTAL, llm.tokens.cache_write_tokens()),
            (metric::LLM_REASONING_TOKENS_TOTAL, llm.tokens.reasoning_tokens()),
        ] {
            if let Some(tokens) = tokens {
                record(metric, base, tokens as f64);
            }
        }
        if llm.tokens.input_tokens().is_none() && llm.tokens.output_tokens().is_none() && llm.error.is_none()
        {
            record(metric::LLM_USAGE_MISSING_TOTAL, base, 1.0);
        }
        if let Some(first_token) = llm.first_token {
            record(metric::LLM_TIME_TO_FIRST_TOKEN_SECONDS, base, first_token);
        }
        let decode_seconds = self.duration - llm.first_token.unwrap_or(0.0);
        if let Some(tokens) = llm.tokens.output_tokens().filter(|tokens| *tokens > 0 && decode_seconds > 0.0)
        {
            record(metric::LLM_OUTPUT_TOKENS_PER_SECOND, base, tokens as f64 / decode_seconds);
        }
        if let Some((gpu_seconds, joules)) = llm.gpu {
            let gpu_labels = [labels[0].clone(), labels[1].clone(), labels[3].clone()];
            if let Some(cost) = llm.money.gpu {
                record(metric::LLM_GPU_COST_USD_TOTAL, &gpu_labels, cost);
            }
            record(metric::LLM_GPU_SECONDS_TOTAL, &gpu_labels, gpu_seconds);
            record(metric::LLM_GPU_ENERGY_JOULES_TOTAL, &gpu_labels, joules);
        }
        if let Some(savings) = llm.money.cache_savings {
            record(metric::LLM_CACHE_SAVINGS_USD_TOTAL, base, savings);
        }
        if let Some(cost) = llm.money.api {
            record(metric::LLM_COST_USD_TOTAL, base, cost);
        }
    }
}
