//! A request's spans as the live view keeps them, staged while the request is derived and
//! added to the store under one lock afterwards. Only canonical figures are copied (names,
//! class, tokens, cost, error type, GPU window), never an attribute's value: the view cannot
//! show content. Strings are copied into one buffer, reused request after request.

use agentrace_semconv::{ErrorType, SpanClass};

use crate::gpu::WindowStats;
use crate::normalize::CanonicalSpan;

/// Longest string kept, in bytes (a span name can be anything).
const MAX_STRING: usize = 256;

/// A string in a buffer: where it starts and its length.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Str {
    at: u32,
    len: u32,
}

impl Str {
    /// Appends `value` (cut to [`MAX_STRING`] bytes) to `text`.
    pub fn push(text: &mut String, value: &str) -> Self {
        if value.is_empty() {
            return Self::default();
        }
        let value = cut(value);
        let at = u32::try_from(text.len()).unwrap_or(u32::MAX);
        text.push_str(value);
        Self { at, len: value.len() as u32 }
    }

    pub fn get(self, text: &str) -> &str {
        let start = self.at as usize;
        text.get(start..start + self.len as usize).unwrap_or_default()
    }
}

/// `value` cut to at most [`MAX_STRING`] bytes, on a character boundary.
fn cut(value: &str) -> &str {
    let mut end = value.len().min(MAX_STRING);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    &value[..end]
}

/// The strings of a span, in [`StagedSpan::strings`] order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Service,
    Name,
    Model,
    Provider,
    Agent,
    Tool,
    Step,
    Operation,
}

pub const FIELDS: usize = 8;

/// A span's GPU window, as the forwarded span's `agentrace.gpu.*` attributes carry it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GpuFigures {
    pub gpu_seconds: f64,
    pub energy_joules: f64,
    pub utilization_avg: f64,
    pub utilization_max: f64,
    pub memory_used_max_bytes: u64,
}

impl From<&WindowStats> for GpuFigures {
    fn from(stats: &WindowStats) -> Self {
        Self {
            gpu_seconds: stats.gpu_seconds,
            energy_joules: stats.energy_joules,
            utilization_avg: stats.utilization_avg,
            utilization_max: stats.utilization_max,
            memory_used_max_bytes: stats.memory_used_max_bytes,
        }
    }
}

/// One span's figures; its strings point into a buffer (the staging one, then its trace's).
#[derive(Clone, Copy, Debug)]
pub struct StagedSpan {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent: Option<[u8; 8]>,
    pub start: u64,
    pub end: u64,
    pub strings: [Str; FIELDS],
    /// The OTLP span kind's number.
    pub kind: u8,
    pub class: SpanClass,
    pub error: Option<ErrorType>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cached_input_tokens: Option<u64>,
    pub time_to_first_token: Option<f64>,
    pub cost_usd: Option<f64>,
    pub gpu: Option<GpuFigures>,
}

impl StagedSpan {
    pub fn string(&self, field: Field) -> Str {
        self.strings[field as usize]
    }
}

/// Whether a trace is in the sample the store admits: the hash of its whole id (xxh3), as a
/// number, is at most `threshold`. Hashed rather than read, because not every client's ids are
/// random where W3C says they should be (some count, or put a time first). Every span of a
/// trace gets the same answer, in whichever request it arrives.
pub fn sampled(trace_id: &[u8; 16], threshold: u64) -> bool {
    threshold == u64::MAX || xxhash_rust::xxh3::xxh3_64(trace_id) <= threshold
}

/// A request's spans, staged: those of sampled traces, and every failed or slow span.
#[derive(Debug)]
pub struct Staged {
    text: String,
    pub spans: Vec<StagedSpan>,
    /// The sample's bound ([`sampled`]); `u64::MAX`: every trace.
    pub threshold: u64,
    /// A span at least this long is staged whatever its trace.
    slow_nanos: u64,
    /// Spans offered since the last clear, staged or not.
    pub offered: u64,
}

impl Default for Staged {
    fn default() -> Self {
        Self { text: String::new(), spans: Vec::new(), threshold: u64::MAX, slow_nanos: u64::MAX, offered: 0 }
    }
}

impl Staged {
    /// Empties the room for a request, which stages the sample below `threshold`.
    pub fn prepare(&mut self, threshold: u64, slow_nanos: u64) {
        self.clear();
        (self.threshold, self.slow_nanos) = (threshold, slow_nanos);
    }

    pub fn clear(&mut self) {
        self.text.clear();
        self.spans.clear();
        self.offered = 0;
    }

    pub fn text(&self, at: Str) -> &str {
        at.get(&self.text)
    }

    /// Stages one canonical span with what derive found (its cost and GPU window), when its
    /// trace is sampled or it failed or took long.
    pub fn push(&mut self, span: &CanonicalSpan<'_>, cost_usd: Option<f64>, gpu: Option<&WindowStats>) {
        self.offered += 1;
        let duration = span.end_unix_nano.saturating_sub(span.start_unix_nano);
        if !(sampled(&span.trace_id, self.threshold) || span.failed() || duration >= self.slow_nanos) {
            return;
        }
        let fields = &span.fields;
        let values = [
            span.service,
            span.name,
            fields.model.unwrap_or_default(),
            fields.provider.unwrap_or_default(),
            fields.agent.unwrap_or_default(),
            fields.tool.unwrap_or_default(),
            fields.step.unwrap_or_default(),
            fields.operation.unwrap_or_default(),
        ];
        let strings = values.map(|value| Str::push(&mut self.text, value));
        self.spans.push(StagedSpan {
            trace_id: span.trace_id,
            span_id: span.span_id,
            parent: span.parent_span_id,
            start: span.start_unix_nano,
            end: span.end_unix_nano.max(span.start_unix_nano),
            strings,
            kind: u8::try_from(span.kind as i32).unwrap_or_default(),
            class: span.class,
            error: span.error,
            input_tokens: fields.input_tokens,
            output_tokens: fields.output_tokens,
            cached_input_tokens: fields.cached_input_tokens,
            time_to_first_token: fields.time_to_first_token,
            cost_usd,
            gpu: gpu.map(GpuFigures::from),
        });
    }
}
