use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use agentrace_semconv::{ErrorType, GenAiFields, SpanClass};

use super::store::{Eviction, StoreLimits, TraceStore, MAX_SPANS_PER_TRACE};
use super::{lock, Staged};
use crate::normalize::CanonicalSpan;
use crate::wire::{span, status};

/// Counts, per thread, the bytes allocated and not yet freed: what filling a store on this
/// thread really takes from the heap, whatever the store's own account says.
struct Counting;

thread_local! {
    static LIVE_BYTES: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    let _ = LIVE_BYTES.try_with(|live| live.set(live.get() + delta));
}

// The system allocator, unchanged, with a count beside it: the only unsafe code of the crate,
// in its tests, because measuring the heap needs a global allocator.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as given.
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            count(layout.size() as isize);
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: forwarded as given.
        unsafe { System.dealloc(pointer, layout) };
        count(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as given.
        let moved = unsafe { System.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        moved
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn live_bytes() -> isize {
    LIVE_BYTES.with(Cell::get)
}

/// Span `index` of trace `trace`: an LLM call of `planner` by default, 1 s long.
fn span(trace: u32, index: u8, failed: bool, millis: u64) -> CanonicalSpan<'static> {
    let mut trace_id = [0u8; 16];
    trace_id[..4].copy_from_slice(&trace.to_be_bytes());
    trace_id[15] = 1;
    let start = 1_700_000_000_000_000_000 + u64::from(trace) * 1_000_000;
    CanonicalSpan {
        service: "support-bot",
        name: "chat llama-3.1-8b-instruct",
        kind: span::SpanKind::Client,
        status: status::StatusCode::Unset,
        trace_id,
        span_id: [index + 1; 8],
        parent_span_id: (index > 0).then_some([1; 8]),
        start_unix_nano: start,
        end_unix_nano: start + millis * 1_000_000,
        class: SpanClass::Llm,
        fields: GenAiFields {
            operation: Some("chat"),
            provider: Some("vllm"),
            model: Some("llama-3.1-8b-instruct"),
            agent: Some("planner"),
            input_tokens: Some(812),
            output_tokens: Some(64),
            ..GenAiFields::default()
        },
        error: failed.then_some(ErrorType::Timeout),
        weight: 1.0,
        evaluations: Vec::new(),
        guardrails: Vec::new(),
        remote_agent: None,
        arguments_hash: None,
        linked_span_id: None,
        invalid: Vec::new(),
        timing_valid: true,
    }
}

/// Traces `from..to` of eight spans each, one request per trace; every tenth fails.
fn fill(store: &mut TraceStore, from: u32, to: u32, millis: u64) {
    fill_failing(store, from, to, millis, 10);
}

/// The same, every `fail_every`th failing (0: none).
fn fill_failing(store: &mut TraceStore, from: u32, to: u32, millis: u64, fail_every: u32) {
    let mut staged = Staged::default();
    for trace in from..to {
        staged.clear();
        for index in 0..8 {
            let failed = fail_every > 0 && trace % fail_every == 0 && index == 3;
            staged.push(&span(trace, index, failed, millis), Some(0.001), None);
        }
        store.insert(&staged);
    }
}

fn limits(max_traces: usize, max_bytes: usize) -> StoreLimits {
    StoreLimits { max_traces, max_bytes, slow_nanos: 10_000_000_000 }
}

fn evicted(store: &mut TraceStore) -> [u64; 4] {
    store.take_evictions().map(|(_, count)| count)
}

#[test]
fn the_store_holds_its_bound_in_traces_and_keeps_failed_ones_first() {
    let mut store = TraceStore::new(limits(100, 64 << 20));
    fill(&mut store, 0, 1000, 100);
    assert_eq!(store.len(), 100);
    let failed = store.iter().filter(|(_, trace)| trace.failed).count();
    // 100 of the 1000 traces failed: all kept while ordinary traces are more than a quarter.
    assert_eq!(failed, 75, "failed traces kept until the ordinary ones are down to a quarter");
    let [ordinary, kept, span_cap, sampled_out] = evicted(&mut store);
    assert_eq!(ordinary + kept, 900 * 8, "every span let go is counted");
    assert_eq!(kept, 25 * 8);
    assert_eq!((span_cap, sampled_out), (0, 0));
    // The newest ordinary traces are the ones still held.
    let newest: Vec<u32> = store
        .iter()
        .filter(|(_, trace)| !trace.failed)
        .map(|(id, _)| u32::from_be_bytes([id[0], id[1], id[2], id[3]]))
        .collect();
    assert!(newest.iter().all(|trace| *trace >= 960), "{newest:?}");
}

#[test]
fn slow_traces_are_kept_like_failed_ones() {
    let mut store = TraceStore::new(StoreLimits { slow_nanos: 500_000_000, ..limits(10, 64 << 20) });
    fill_failing(&mut store, 1, 2, 900, 0); // slow
    fill_failing(&mut store, 11, 100, 100, 0);
    assert!(
        store
            .get(&{
                let mut id = [0u8; 16];
                id[..4].copy_from_slice(&1u32.to_be_bytes());
                id[15] = 1;
                id
            })
            .is_some(),
        "the slow trace outlived 89 ordinary ones"
    );
}

#[test]
fn the_store_stays_within_its_bytes_on_the_heap_too() {
    let max_bytes = 1 << 20;
    let before = live_bytes();
    let mut store = TraceStore::new(limits(1_000_000, max_bytes));
    fill(&mut store, 0, 20_000, 100);
    let heap = live_bytes() - before;
    assert!(store.bytes() <= max_bytes, "{} > {max_bytes}", store.bytes());
    assert!(
        heap as usize <= max_bytes + max_bytes / 10,
        "the heap holds {heap} B for a bound of {max_bytes}"
    );
    let [ordinary, kept, _, _] = evicted(&mut store);
    assert_eq!(ordinary + kept + store.span_count() as u64, 20_000 * 8);
    let per_1000 = heap as f64 / store.len() as f64 * 1000.0;
    eprintln!(
        "view store: {} traces of 8 spans in {} B by its account, {heap} B on the heap: {:.0} KiB per 1000 traces",
        store.len(),
        store.bytes(),
        per_1000 / 1024.0
    );
}

#[test]
fn a_trace_holds_at_most_its_span_cap_and_the_rest_is_counted() {
    let mut store = TraceStore::new(limits(10, 64 << 20));
    let mut staged = Staged::default();
    for index in 0..(MAX_SPANS_PER_TRACE + 50) {
        let mut one = span(7, 1, false, 100);
        one.span_id = (index as u64 + 1).to_be_bytes();
        staged.push(&one, None, None);
    }
    store.insert(&staged);
    assert_eq!(store.iter().next().map(|(_, trace)| trace.spans.len()), Some(MAX_SPANS_PER_TRACE));
    let counts = store.take_evictions();
    assert_eq!(counts[2], (Eviction::SpanCap, 50));
}

#[test]
fn spans_keep_their_figures_and_strings_are_shared_within_a_trace() {
    let mut store = TraceStore::new(limits(10, 64 << 20));
    fill(&mut store, 10, 11, 250);
    let (_, trace) = store.iter().next().expect("one trace");
    assert!(trace.failed);
    assert_eq!(trace.spans.len(), 8);
    let first = &trace.spans[0];
    assert_eq!(trace.text(first.string(super::staged::Field::Model)), "llama-3.1-8b-instruct");
    assert_eq!(first.input_tokens, Some(812));
    assert_eq!(first.cost_usd, Some(0.001));
    assert_eq!(trace.spans[3].error, Some(ErrorType::Timeout));
    assert_eq!(trace.duration_nanos(), 250_000_000);
    // The eight spans' strings are stored once: every span points at the first one's.
    assert!(trace.spans.iter().all(|span| span.strings == first.strings));
}

#[test]
fn outside_the_sample_only_failed_and_slow_spans_are_staged_and_the_rest_counted() {
    let mut store = TraceStore::new(limits(100, 64 << 20));
    let mut staged = Staged::default();
    // No trace in the sample; 2 s counts as slow.
    staged.prepare(0, 2_000_000_000);
    for index in 0..8 {
        staged.push(&span(1, index, index == 3, 100), None, None);
    }
    staged.push(&span(2, 0, false, 2_500), None, None);
    assert_eq!((staged.offered, staged.spans.len()), (9, 2), "the failed span and the slow one");
    store.insert(&staged);
    let held: Vec<bool> = store.iter().map(|(_, trace)| trace.sampled).collect();
    assert_eq!(held, vec![false, false], "both held, marked as kept outside the sample");
    assert_eq!(store.take_evictions()[3], (Eviction::SampledOut, 7));
    // Everything in the sample: all staged.
    staged.prepare(u64::MAX, 2_000_000_000);
    for index in 0..8 {
        staged.push(&span(3, index, false, 100), None, None);
    }
    assert_eq!(staged.spans.len(), 8);
}

#[test]
fn the_sample_is_the_same_for_every_span_of_a_trace_and_scales_with_the_bound() {
    let ids: Vec<[u8; 16]> = (0..10_000u32)
        .map(|n| {
            let mut id = [0u8; 16];
            // Spread as random trace ids are.
            id[8..].copy_from_slice(&(u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15)).to_be_bytes());
            id
        })
        .collect();
    let share = |threshold: u64| ids.iter().filter(|id| super::staged::sampled(id, threshold)).count();
    assert_eq!(share(u64::MAX), 10_000);
    let tenth = share(u64::MAX / 10);
    assert!((900..=1100).contains(&tenth), "{tenth} of 10 000 in a tenth's sample");
    // A smaller sample is part of a larger one: a trace sampled while traces are many stays
    // sampled when they are fewer.
    let in_tenth = ids.iter().filter(|id| super::staged::sampled(id, u64::MAX / 10));
    assert!(in_tenth.clone().all(|id| super::staged::sampled(id, u64::MAX / 2)));
    assert!(in_tenth.count() < share(u64::MAX / 2));
}

#[test]
fn ids_that_count_instead_of_being_random_are_sampled_at_the_share_asked_for() {
    // A request's sequence in the first half, a trace's number in the top of the second and one
    // random draw per request below it: the load generator's ids, and any client that counts.
    let ids: Vec<[u8; 16]> = (0..200u64)
        .flat_map(|sequence| {
            let salt = sequence.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            (0..64u64).map(move |group| {
                let mut id = [0u8; 16];
                id[..8].copy_from_slice(&sequence.to_be_bytes());
                id[8..].copy_from_slice(&((group << 48) | (salt >> 16) | 1).to_be_bytes());
                id
            })
        })
        .collect();
    for (share, low, high) in [(0.03, 300, 470), (0.5, 6100, 6700)] {
        let threshold = (share * u64::MAX as f64) as u64;
        let taken = ids.iter().filter(|id| super::staged::sampled(id, threshold)).count();
        assert!((low..=high).contains(&taken), "{taken} of 12 800 ids at a share of {share}");
    }
}

#[test]
fn the_sample_follows_the_rate_so_that_the_store_turns_over_once_in_ten_seconds() {
    let registry =
        std::sync::Arc::new(crate::metrics::Registry::new(crate::metrics::SeriesLimits::default()));
    let view = super::View::new(super::ViewConfig::default(), registry, None);
    let start = lock(&view.offered).0;
    let mut staged = Staged::default();
    view.prepare(&mut staged);
    assert_eq!(staged.threshold, u64::MAX, "everything until a rate is known");
    // A million spans in a second, traces of 8: the store (2000 traces) wants 1600 spans/s.
    view.adjust(1_000_000, 8.0, start + 1.0);
    view.prepare(&mut staged);
    let share = staged.threshold as f64 / u64::MAX as f64;
    assert!((share - 0.0016).abs() < 1e-9, "{share}");
    // Back to 100 spans/s: all of them.
    view.adjust(100, 8.0, start + 2.0);
    view.prepare(&mut staged);
    assert_eq!(staged.threshold, u64::MAX);
}
