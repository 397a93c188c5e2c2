//! The recent-trace store behind the live view: the last `--view-traces` traces or
//! `--view-max-bytes`, whichever is reached first, kept as tail sampling would. When room is
//! needed the oldest ordinary trace goes first; failed and slow traces go only once ordinary
//! ones are down to a quarter of what is held, so that a burst of failures cannot hide what
//! the service does normally. Every eviction is counted by reason.
//!
//! A span is held as its canonical figures only (`staged.rs`): no content reaches the view
//! whatever the forwarding rules. A trace's strings live in one buffer of its own, which keeps
//! the per-span cost at one fixed-size record and the accounting exact: what a trace holds is
//! its buffer's and its records' capacity, plus a fixed overhead.

use std::collections::VecDeque;

use hashbrown::hash_map::Entry;
use hashbrown::HashMap;

use super::staged::{Staged, StagedSpan, Str, FIELDS};

/// A trace's spans past this many are not held (and counted).
pub const MAX_SPANS_PER_TRACE: usize = 1000;

/// Why spans left the store or never entered it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Eviction {
    /// An ordinary trace made room.
    Ordinary,
    /// A failed or slow trace made room: the ordinary ones were down to their floor.
    Kept,
    /// Spans of a trace that already held [`MAX_SPANS_PER_TRACE`].
    SpanCap,
    /// Ordinary spans of traces outside the sample, while more traces arrive than the store can
    /// turn over.
    SampledOut,
}

impl Eviction {
    pub const ALL: [Self; 4] = [Self::Ordinary, Self::Kept, Self::SpanCap, Self::SampledOut];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ordinary => "ordinary",
            Self::Kept => "failed_or_slow",
            Self::SpanCap => "spans_per_trace",
            Self::SampledOut => "sampled_out",
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct StoreLimits {
    pub max_traces: usize,
    pub max_bytes: usize,
    /// A trace at least this long (first start to last end) is kept as a slow one.
    pub slow_nanos: u64,
}

/// One held trace.
#[derive(Debug)]
pub struct Trace {
    text: String,
    pub spans: Vec<StagedSpan>,
    pub start: u64,
    pub end: u64,
    pub failed: bool,
    /// In the store's sample when it arrived; a trace outside it is held for a failed or slow
    /// span, and its spans before that one were not kept.
    pub sampled: bool,
    /// Order of arrival, for eviction.
    seq: u64,
}

impl Trace {
    pub fn text(&self, at: Str) -> &str {
        at.get(&self.text)
    }

    pub fn duration_nanos(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// What the trace holds besides its entry in the store's table.
    fn bytes(&self) -> usize {
        self.text.capacity() + self.spans.capacity() * size_of::<StagedSpan>()
    }

    fn kept(&self, limits: &StoreLimits) -> bool {
        self.failed || self.duration_nanos() >= limits.slow_nanos
    }
}

/// A slot of the store's table: the key, the trace record and hashbrown's control byte.
const SLOT: usize = size_of::<([u8; 16], Trace)>() + 1;
const QUEUE_ENTRY: usize = size_of::<([u8; 16], u64)>();

#[derive(Debug)]
pub struct TraceStore {
    limits: StoreLimits,
    traces: HashMap<[u8; 16], Trace>,
    /// Arrival order of every trace, and of the kept (failed or slow) ones; entries of traces
    /// since evicted (or, in `ordinary`, since kept) are skipped when reached.
    ordinary: VecDeque<([u8; 16], u64)>,
    kept: VecDeque<([u8; 16], u64)>,
    kept_count: usize,
    /// Spans held, in all traces.
    span_count: usize,
    /// What the held traces hold besides their slots in the table.
    trace_bytes: usize,
    next_seq: u64,
    /// Spans let go since last taken, in [`Eviction::ALL`] order.
    evicted: [u64; 4],
}

impl TraceStore {
    pub fn new(limits: StoreLimits) -> Self {
        Self {
            limits,
            traces: HashMap::new(),
            ordinary: VecDeque::new(),
            kept: VecDeque::new(),
            kept_count: 0,
            span_count: 0,
            trace_bytes: 0,
            next_seq: 0,
            evicted: [0; 4],
        }
    }

    pub fn len(&self) -> usize {
        self.traces.len()
    }

    /// What the store takes: the traces' buffers and records, the table's slots (a table holds
    /// up to 7/8 of its slots) and the arrival queues.
    pub fn bytes(&self) -> usize {
        let slots = self.traces.capacity() * 8 / 7;
        let queued = self.ordinary.capacity() + self.kept.capacity();
        self.trace_bytes + slots * SLOT + queued * QUEUE_ENTRY
    }

    pub fn limits(&self) -> StoreLimits {
        self.limits
    }

    pub fn get(&self, trace_id: &[u8; 16]) -> Option<&Trace> {
        self.traces.get(trace_id)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8; 16], &Trace)> {
        self.traces.iter()
    }

    /// Spans held, in all traces.
    pub fn span_count(&self) -> usize {
        self.span_count
    }

    /// Spans let go since the last call, by reason.
    pub fn take_evictions(&mut self) -> [(Eviction, u64); 4] {
        let counts = std::mem::take(&mut self.evicted);
        [0, 1, 2, 3].map(|index| (Eviction::ALL[index], counts[index]))
    }

    /// Adds a request's staged spans to their traces, then evicts down to the bounds. A
    /// request holds each trace's spans together as a rule: each run of them is added with one
    /// lookup, and a new trace's room is taken at once, to the byte.
    pub fn insert(&mut self, staged: &Staged) {
        for run in staged.spans.chunk_by(|a, b| a.trace_id == b.trace_id) {
            self.insert_run(staged, run);
        }
        let sampled_out = staged.offered.saturating_sub(staged.spans.len() as u64);
        self.evicted[Eviction::SampledOut as usize] += sampled_out;
        self.evict();
    }

    fn insert_run(&mut self, staged: &Staged, run: &[StagedSpan]) {
        let Some(first) = run.first() else { return };
        let id = first.trace_id;
        let (trace, new) = match self.traces.entry(id) {
            Entry::Occupied(held) => (held.into_mut(), false),
            Entry::Vacant(room) => {
                let seq = self.next_seq;
                self.next_seq += 1;
                self.ordinary.push_back((id, seq));
                let text_bytes = text_bytes(staged, run);
                let trace = Trace {
                    text: String::with_capacity(text_bytes),
                    spans: Vec::with_capacity(run.len().min(MAX_SPANS_PER_TRACE)),
                    start: first.start,
                    end: first.end,
                    failed: false,
                    sampled: super::staged::sampled(&id, staged.threshold),
                    seq,
                };
                (room.insert(trace), true)
            }
        };
        let before = if new { 0 } else { trace.bytes() };
        let was_kept = !new && trace.kept(&self.limits);
        let room = MAX_SPANS_PER_TRACE.saturating_sub(trace.spans.len());
        self.evicted[Eviction::SpanCap as usize] += run.len().saturating_sub(room) as u64;
        self.span_count += run.len().min(room);
        for span in run.iter().take(room) {
            let copied = copy_span(trace, staged, span);
            trace.spans.push(copied);
            trace.start = trace.start.min(span.start);
            trace.end = trace.end.max(span.end);
            trace.failed |= span.error.is_some();
        }
        self.trace_bytes = self.trace_bytes + trace.bytes() - before;
        if trace.kept(&self.limits) && !was_kept {
            self.kept.push_back((id, trace.seq));
            self.kept_count += 1;
        }
    }

    /// Evicts until within both bounds: ordinary traces first, oldest first, while they are
    /// more than a quarter of the store; then the oldest failed or slow one.
    fn evict(&mut self) {
        while self.traces.len() > self.limits.max_traces || self.bytes() > self.limits.max_bytes {
            let ordinary = self.traces.len() - self.kept_count;
            let kept_first = ordinary * 4 <= self.traces.len();
            let order = if kept_first { [true, false] } else { [false, true] };
            let evicted = order.into_iter().any(|kept| self.pop(kept));
            if !evicted {
                break;
            }
        }
        self.compact();
    }

    /// Evicts the oldest kept trace, or the oldest ordinary one; false when there is none.
    fn pop(&mut self, kept: bool) -> bool {
        loop {
            let queue = if kept { &mut self.kept } else { &mut self.ordinary };
            let Some((id, seq)) = queue.pop_front() else { return false };
            let live = self
                .traces
                .get(&id)
                .is_some_and(|trace| trace.seq == seq && trace.kept(&self.limits) == kept);
            if live {
                let spans = self.traces.remove(&id).map_or(0, |trace| {
                    self.trace_bytes -= trace.bytes();
                    trace.spans.len()
                });
                let reason = if kept { Eviction::Kept } else { Eviction::Ordinary };
                self.kept_count -= usize::from(kept);
                self.span_count -= spans;
                self.evicted[reason as usize] += spans as u64;
                return true;
            }
        }
    }

    /// Drops queue entries of traces no longer there (or, in `ordinary`, kept since) once they
    /// outnumber the traces, so that the queues stay within twice the store.
    fn compact(&mut self) {
        if self.ordinary.len() + self.kept.len() <= 2 * self.traces.len() + 64 {
            return;
        }
        let (traces, limits) = (&self.traces, &self.limits);
        let holds = |(id, seq): &([u8; 16], u64), kept: bool| {
            traces.get(id).is_some_and(|trace| trace.seq == *seq && trace.kept(limits) == kept)
        };
        self.ordinary.retain(|entry| holds(entry, false));
        self.kept.retain(|entry| holds(entry, true));
    }
}

/// What a run's strings take in a new trace's buffer, each field's shared with the span before.
fn text_bytes(staged: &Staged, run: &[StagedSpan]) -> usize {
    let mut bytes = 0;
    let mut previous: Option<&StagedSpan> = None;
    for span in run.iter().take(MAX_SPANS_PER_TRACE) {
        for index in 0..FIELDS {
            let value = staged.text(span.strings[index]);
            if previous.is_none_or(|previous| staged.text(previous.strings[index]) != value) {
                bytes += value.len();
            }
        }
        previous = Some(span);
    }
    bytes
}

/// The span with its strings copied into the trace's buffer; a string equal to the same field
/// of the trace's previous span (the service, the model, the agent) is shared with it.
fn copy_span(trace: &mut Trace, staged: &Staged, span: &StagedSpan) -> StagedSpan {
    let previous = trace.spans.last().map(|previous| previous.strings);
    let mut copied = *span;
    for index in 0..FIELDS {
        let value = staged.text(span.strings[index]);
        let shared = previous.map(|strings| strings[index]).filter(|at| at.get(&trace.text) == value);
        copied.strings[index] = shared.unwrap_or_else(|| Str::push(&mut trace.text, value));
    }
    copied
}
