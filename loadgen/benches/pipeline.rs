//! What one request costs the collector, on the load generator's fixed-seed requests (seed 1,
//! request 0), in spans per second:
//!
//! - `decode_only`: prost decoding into `opentelemetry-proto`'s types and nothing else, the
//!   physical limit;
//! - `collector_decode_only`: the collector's own decoding, as its receivers do it;
//! - `collector_decode_prost`: prost's derived decoder into the collector's types and a UTF-8
//!   pass over the strings, which the receivers used before their own reader;
//! - `decode_normalize_derive`: that decoding, then what the processor does with every request
//!   (normalize and derive each span, the registry applies the observations;
//!   `agentrace_collector::harness::Pipeline`). GPU matching, enrichment, redaction and
//!   exposition are left out.
//!
//! Run with `cargo bench -p agentrace-loadgen --bench pipeline`.

use std::hint::black_box;

use agentrace_collector::harness::{self, Pipeline};
use agentrace_collector::GraphConfig;
use agentrace_loadgen::{Generator, Workload};
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

// The collector's allocator, so that decode-only and the collector's path are compared on it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SEED: u64 = 1;
/// Span start times of the generated request: fixed, so that every run decodes the same bytes.
const START_UNIX_NANOS: u64 = 1_700_000_000_000_000_000;

fn decode(bytes: &[u8]) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest::decode(bytes).expect("the generated request decodes")
}

fn workload(criterion: &mut Criterion, name: &str, workload: Workload) {
    let request = Generator::new(workload, SEED, START_UNIX_NANOS).request(0);
    let spans: usize = request
        .resource_spans
        .iter()
        .flat_map(|resource| &resource.scope_spans)
        .map(|scope| scope.spans.len())
        .sum();
    assert_eq!(spans, workload.spans_per_request(), "{name}: spans in the generated request");
    // A body arrives as `Bytes`; a clone is a reference count, not a copy.
    let body = Bytes::from(request.encode_to_vec());

    let mut group = criterion.benchmark_group(name);
    group.throughput(Throughput::Elements(spans as u64));
    group.bench_function("decode_only", |bencher| bencher.iter(|| decode(black_box(&body))));
    group.bench_function("collector_decode_only", |bencher| {
        bencher.iter(|| assert!(harness::decode_only(black_box(body.clone())), "{name} decodes"));
    });
    group.bench_function("collector_decode_prost", |bencher| {
        bencher.iter(|| assert!(harness::decode_by_prost(black_box(body.clone())), "{name} decodes"));
    });

    let mut pipeline = Pipeline::default();
    let mut now = START_UNIX_NANOS as f64 / 1e9;
    // The same body every time means the same trace ids every time, and a trace that keeps
    // getting spans stays open in the agent-graph window while its roll-up members pile up.
    // Moving the clock one pairing window per request lets the tick flush the previous
    // request's traces: every trace is opened and flushed once per request, as distinct
    // traces are in the collector.
    let step_secs = GraphConfig::default().wait_secs;
    group.bench_function("decode_normalize_derive", |bencher| {
        bencher.iter(|| {
            now += step_secs;
            pipeline.tick(now);
            assert!(pipeline.request(black_box(body.clone()), now), "{name} decodes");
        });
    });
    assert!(pipeline.open_traces() <= spans, "{name}: the agent-graph window stays bounded");
    group.finish();
}

fn pipeline(criterion: &mut Criterion) {
    workload(criterion, "w1", Workload::W1);
    workload(criterion, "w0", Workload::W0);
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
