//! What the SDK's helpers cost: one LLM call made with `agentrace::chat` against the same span
//! made by hand, a `tracing::info_span!` with the GenAI attributes as fields, through
//! `tracing-opentelemetry`.
//!
//! Both run on the same `SdkTracerProvider` setup in front of an exporter that counts and
//! discards, so what is measured is span creation, attribute recording and the handoff, with
//! no I/O and no growing memory. The SDK's stack is `agentrace::layer` (the OpenTelemetry
//! layer behind the SDK's target filter, and the agent scope layer); the plain stack is
//! `tracing_opentelemetry::layer()`.
//!
//! Two handoffs: `batch`, the batch processor the SDK ships (its default queue size), where a
//! span ends by going into a channel to the exporter's thread; and `simple`, which exports on
//! the calling thread. On a machine with few free cores the exporter's thread falls behind
//! and the full queue drops spans (said on stderr); `simple` is the steadier comparison.
//!
//! Run with `cargo bench -p agentrace --bench overhead`; the SDK's overhead is the ratio of
//! `llm_call/<handoff>/sdk` to `llm_call/<handoff>/plain`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use agentrace_semconv::attr::{self, operation};
use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, InMemorySpanExporter, SdkTracer, SdkTracerProvider, SpanData,
    SpanExporter,
};
use tracing::field;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{Layer, Registry};

const MODEL: &str = "llama-3.1-8b-instruct";
const PROVIDER: &str = "vllm";
const TEMPERATURE: f64 = 0.2;
const INPUT_TOKENS: u64 = 812;
const OUTPUT_TOKENS: u64 = 64;
const FINISH_REASON: &str = "stop";
const SCOPE: &str = "agentrace-bench";
/// Spans waiting for the exporter's thread: the SDK's default. A span the full queue drops is
/// not handed off, so the benchmark says on stderr when that happened.
const QUEUE_SIZE: usize = 4096;

/// Counts the spans handed to it and drops them.
#[derive(Debug, Default)]
struct Discard {
    spans: Arc<AtomicU64>,
}

impl SpanExporter for Discard {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.spans.fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// How an ended span reaches the exporter.
#[derive(Clone, Copy, Debug)]
enum Handoff {
    Batch,
    Simple,
}

impl Handoff {
    fn name(self) -> &'static str {
        match self {
            Self::Batch => "batch",
            Self::Simple => "simple",
        }
    }

    fn provider(self, exporter: Discard) -> SdkTracerProvider {
        let builder = SdkTracerProvider::builder();
        match self {
            Self::Batch => {
                let config = BatchConfigBuilder::default().with_max_queue_size(QUEUE_SIZE).build();
                builder.with_span_processor(
                    BatchSpanProcessor::builder(exporter).with_batch_config(config).build(),
                )
            }
            Self::Simple => builder.with_simple_exporter(exporter),
        }
        .build()
    }
}

fn sdk_layer(tracer: SdkTracer) -> impl Layer<Registry> + Send + Sync {
    agentrace::layer(tracer)
}

fn plain_layer(tracer: SdkTracer) -> impl Layer<Registry> + Send + Sync {
    tracing_opentelemetry::layer().with_tracer(tracer)
}

/// A streamed chat call through the SDK, as in the crate's example.
fn sdk_call() {
    let call = agentrace::chat(MODEL).provider(PROVIDER).temperature(TEMPERATURE).start();
    call.first_token();
    call.record_usage(INPUT_TOKENS, OUTPUT_TOKENS);
    call.finish_reasons(&[FINISH_REASON]);
}

/// The same span by hand. The finish reasons are one string here: a `tracing` field cannot
/// hold the array the SDK records.
fn plain_call() {
    let started = Instant::now();
    let span = tracing::info_span!(
        target: "agentrace",
        "llm_call",
        otel.name = %format_args!("{} {MODEL}", operation::CHAT),
        otel.kind = "client",
        { attr::GEN_AI_OPERATION_NAME } = operation::CHAT,
        { attr::GEN_AI_REQUEST_MODEL } = MODEL,
        { attr::GEN_AI_PROVIDER_NAME } = PROVIDER,
        { attr::GEN_AI_REQUEST_TEMPERATURE } = TEMPERATURE,
        { attr::GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK } = field::Empty,
        { attr::GEN_AI_USAGE_INPUT_TOKENS } = field::Empty,
        { attr::GEN_AI_USAGE_OUTPUT_TOKENS } = field::Empty,
        { attr::GEN_AI_RESPONSE_FINISH_REASONS } = field::Empty,
    );
    span.record(attr::GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, started.elapsed().as_secs_f64());
    span.record(attr::GEN_AI_USAGE_INPUT_TOKENS, INPUT_TOKENS);
    span.record(attr::GEN_AI_USAGE_OUTPUT_TOKENS, OUTPUT_TOKENS);
    span.record(attr::GEN_AI_RESPONSE_FINISH_REASONS, FINISH_REASON);
}

/// The name and attribute keys of the one span `call` makes under `layer`, sorted.
fn recorded<L: Layer<Registry> + Send + Sync + 'static>(
    layer: impl FnOnce(SdkTracer) -> L,
    call: impl FnOnce(),
) -> (String, Vec<String>) {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
    let subscriber = tracing_subscriber::registry().with(layer(provider.tracer(SCOPE)));
    tracing::subscriber::with_default(subscriber, call);
    let spans = exporter.get_finished_spans().expect("finished spans");
    assert_eq!(spans.len(), 1, "one span per call");
    let mut keys: Vec<String> = spans[0].attributes.iter().map(|kv| kv.key.to_string()).collect();
    keys.sort();
    (spans[0].name.to_string(), keys)
}

/// Times `call` under `layer`; says on stderr when the batch queue dropped spans.
fn bench_stack<L: Layer<Registry> + Send + Sync + 'static>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    handoff: Handoff,
    stack: &str,
    layer: impl FnOnce(SdkTracer) -> L,
    call: impl Fn(),
) {
    let id = format!("{}/{stack}", handoff.name());
    let exporter = Discard::default();
    let exported = exporter.spans.clone();
    let provider = handoff.provider(exporter);
    let subscriber = tracing_subscriber::registry().with(layer(provider.tracer(SCOPE)));
    let mut calls = 0u64;
    tracing::subscriber::with_default(subscriber, || {
        group.bench_function(&id, |bencher| {
            bencher.iter_custom(|iterations| {
                calls += iterations;
                let started = Instant::now();
                for _ in 0..iterations {
                    call();
                }
                started.elapsed()
            });
        });
    });
    if let Err(error) = provider.shutdown() {
        eprintln!("{id}: provider shutdown: {error}");
    }
    let dropped = calls.saturating_sub(exported.load(Ordering::Relaxed));
    if dropped > 0 {
        eprintln!(
            "{id}: the full batch queue dropped {dropped} of {calls} spans instead of handing them off"
        );
    }
}

fn overhead(criterion: &mut Criterion) {
    let sdk = recorded(sdk_layer, sdk_call);
    let plain = recorded(plain_layer, plain_call);
    assert_eq!(sdk, plain, "both ways make the same span");

    let mut group = criterion.benchmark_group("llm_call");
    group.throughput(Throughput::Elements(1));
    for handoff in [Handoff::Batch, Handoff::Simple] {
        bench_stack(&mut group, handoff, "sdk", sdk_layer, sdk_call);
        bench_stack(&mut group, handoff, "plain", plain_layer, plain_call);
    }
    group.finish();
}

criterion_group!(benches, overhead);
criterion_main!(benches);
