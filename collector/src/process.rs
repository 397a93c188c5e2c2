//! The processing stage, on a thread of its own: each request from the ingest queue is
//! normalized span by span (`normalize`), derived into observations (`derive`), which go to the
//! registry (`metrics`) as they are made; LLM and model-load spans are matched against
//! the GPU samples of their window. When traces are forwarded, the request then leaves as its
//! forwarding view (`enrich`: facts added, content redacted) through the export queue, and
//! waits there when that queue is full, which backs the receivers up into refusing. A
//! one-second tick flushes the agent-graph window and expires idle series.
//!
//! There are `--workers` of these, each on its thread with its own agent-graph window (its
//! share of the window's bounds), all writing to the one registry; the receivers send each
//! worker the spans of its traces. Each window's fill is summed over the workers for
//! `/metrics` ([`GraphWindows`]).
//!
//! On the node tier (`--role node`) a worker derives nothing: it looks up the GPU window of
//! each LLM and model-load span for the forwarded span to carry, and the gateway tier derives
//! from the span (`gpu::carried`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agentrace_semconv::{attr, metric, SpanClass};
use tokio::sync::mpsc;

use crate::derive::{self, Deriver, SpanFacts};
use crate::enrich::Enricher;
use crate::events::{GpuEnrichmentSkipped, GraphWindowFill};
use crate::export::queue::Forward;
use crate::export::route::Destination;
use crate::gpu::{GpuState, WindowStats};
use crate::metrics::{Observation, Registry, Reported, Writer};
use crate::normalize::{framework_of, service_name, string_attribute, CanonicalSpan, Normalizer};
use crate::receive::{Batch, QueueGauge};
use crate::unix_now;
use crate::view::{Staged, View};
use crate::wire::{any_value, ExportTraceServiceRequest, SpanPos, SpanRef, Text};

const TICK: Duration = Duration::from_secs(1);

/// Where processed requests go when traces are forwarded; each worker has its own copy.
#[derive(Clone)]
pub struct Forwarding {
    pub enricher: Enricher,
    pub queue: Destination,
}

pub struct Processor {
    normalizer: Normalizer,
    deriver: Deriver,
    registry: Arc<Registry>,
    input_gauge: Arc<QueueGauge>,
    /// `None` when GPU sampling is off or NVML is unavailable.
    gpu: Option<Arc<GpuState>>,
    /// `None` when traces are not forwarded.
    forwarding: Option<Forwarding>,
    /// This worker's slot for its graph window's fill; `None`: the fill goes to the registry
    /// as the deriver reports it (one worker, tests).
    window: Option<(Arc<GraphWindows>, usize)>,
    /// Which worker this is: its stripe of the registry; the first also expires idle series.
    worker: usize,
    /// The live view's store, and this worker's staging room for it (reused request after
    /// request); `None` with `--view off`.
    view: Option<(Arc<View>, Staged)>,
    /// False on the node tier: spans are only enriched with their GPU figures, for the
    /// gateways to derive from.
    derives: bool,
}

/// The agent-graph windows' fill, one slot per worker, summed when `/metrics` is read: the
/// spans held for their agent, the bytes held, and the most bytes allowed.
#[derive(Debug)]
pub struct GraphWindows {
    slots: Vec<[AtomicU64; 3]>,
}

/// The deriver's gauges that [`GraphWindows`] sums, in slot order.
const WINDOW_GAUGES: [&str; 3] =
    [metric::SELF_ATTRIBUTION_PENDING_SPANS, metric::SELF_GRAPH_BYTES, metric::SELF_GRAPH_MAX_BYTES];

impl GraphWindows {
    pub fn new(workers: usize) -> Arc<Self> {
        Arc::new(Self { slots: (0..workers).map(|_| Default::default()).collect() })
    }

    /// Keeps `observation` in `worker`'s slot when it is one of the window's gauges.
    fn take(&self, worker: usize, observation: &Observation) -> bool {
        let Some(gauge) = WINDOW_GAUGES.iter().position(|name| *name == observation.metric) else {
            return false;
        };
        if let Some(slot) = self.slots.get(worker) {
            slot[gauge].store(observation.value.max(0.0) as u64, Ordering::Relaxed);
        }
        true
    }

    fn sum(&self, gauge: usize) -> u64 {
        self.slots.iter().map(|slot| slot[gauge].load(Ordering::Relaxed)).sum()
    }
}

impl Reported for GraphWindows {
    fn report(&self, registry: &Registry) {
        registry.emit(GraphWindowFill {
            pending_spans: self.sum(0),
            bytes: self.sum(1),
            max_bytes: self.sum(2),
        });
    }
}

impl Processor {
    pub fn new(
        deriver: Deriver,
        registry: Arc<Registry>,
        input_gauge: Arc<QueueGauge>,
        gpu: Option<Arc<GpuState>>,
        forwarding: Option<Forwarding>,
    ) -> Self {
        Self {
            normalizer: Normalizer::default(),
            deriver,
            registry,
            input_gauge,
            gpu,
            forwarding,
            window: None,
            worker: 0,
            view: None,
            derives: true,
        }
    }

    /// Whether this worker derives metrics (it does but on the node tier).
    pub fn deriving(self, derives: bool) -> Self {
        Self { derives, ..self }
    }

    /// Adds what this worker derives to the live view's store.
    pub fn viewing(self, view: Option<Arc<View>>) -> Self {
        Self { view: view.map(|view| (view, Staged::default())), ..self }
    }

    /// Makes this worker number `worker`, which reports its graph window's fill into its
    /// slot of `windows`.
    pub fn worker(self, worker: usize, windows: Arc<GraphWindows>) -> Self {
        Self { window: Some((windows, worker)), worker, ..self }
    }

    /// Runs until the input closes (the receivers are gone), then returns, dropping the
    /// export queue's sender so that the exporter drains in turn.
    pub async fn run(mut self, mut input: mpsc::Receiver<Batch>) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                batch = input.recv() => {
                    let Some(batch) = batch else { break };
                    self.input_gauge.popped();
                    self.input_gauge.release_spans(batch.spans);
                    let forward = self.process(batch);
                    if let (Some(forward), Some(forwarding)) = (forward, &mut self.forwarding) {
                        forwarding.queue.push(forward).await;
                    }
                }
                _ = tick.tick() => self.tick(),
            }
        }
    }

    /// Derives the batch's metrics (on the node tier, only its GPU windows); when traces are
    /// forwarded, returns the request to forward.
    fn process(&mut self, mut batch: Batch) -> Option<Forward> {
        let now = unix_now();
        let facts = if self.derives {
            self.derive(&batch.request, now)
        } else {
            let registry = self.registry.writer(self.worker);
            gpu_facts(&self.normalizer, registry, self.gpu.as_deref(), &batch.request, now)
        };
        let enricher = &self.forwarding.as_ref()?.enricher;
        let request = enricher.outgoing(&mut batch.request, batch.received, &facts);
        Some(Forward { request, spans: batch.spans, stored: batch.stored })
    }

    /// Derives `request` into the registry (and the live view); returns what its forwarded
    /// spans are to carry.
    fn derive(&mut self, request: &ExportTraceServiceRequest, now: f64) -> Vec<SpanFacts> {
        let staged = self.view.as_mut().map(|(view, staged)| {
            view.prepare(staged);
            staged
        });
        let gpu = self.gpu.as_deref();
        let facts = derive_request(
            &self.normalizer,
            &mut self.deriver,
            Deriving { registry: self.registry.writer(self.worker), gpu, staged },
            request,
            now,
        );
        if let Some((view, staged)) = &self.view {
            view.insert(staged);
        }
        facts
    }

    fn tick(&mut self) {
        let observations = &mut Vec::new();
        let now = unix_now();
        self.deriver.tick(now, observations);
        if let Some((windows, worker)) = &self.window {
            observations.retain(|observation| !windows.take(*worker, observation));
        }
        self.registry.writer(self.worker).apply(observations, now);
        if self.worker == 0 {
            self.registry.expire(now);
        }
    }
}

/// Normalizes and derives every span of `request`, recording its observations as they are made,
/// with each span's GPU window. Returns what the forwarded spans are to carry. With `staged`,
/// spans are staged for the live view.
pub fn derive_request(
    normalizer: &Normalizer,
    deriver: &mut Deriver,
    Deriving { registry, gpu, mut staged }: Deriving<'_>,
    request: &ExportTraceServiceRequest,
    now: f64,
) -> Vec<SpanFacts> {
    let pids = gpu.map(|gpu| local_pids(request, gpu, now)).unwrap_or_default();
    let mut facts = Vec::with_capacity(request.span_count());
    let out = &mut registry.recorder(now);
    for_canonical_spans(normalizer, request, now, |found, canonical| {
        let spanned = derive::gpu_window(canonical);
        let window = match (gpu, spanned) {
            (Some(gpu), Some(spanned)) => {
                span_window(gpu, &pids, &found, canonical, spanned, &mut |event| out.emit(event))
            }
            // Without GPUs of its own (the gateway tier), the figures a node added to the span.
            (None, Some(_)) => crate::gpu::carried(&found.span.attributes),
            (_, None) => None,
        };
        let outcome = deriver.observe(canonical, window.as_ref(), now, out);
        if let Some(staged) = staged.as_deref_mut() {
            staged.push(canonical, outcome.cost_usd, window.as_ref());
        }
        let llm = matches!(canonical.class, SpanClass::Llm | SpanClass::Embedding);
        if outcome.cost_usd.is_some() || window.is_some() || llm {
            facts.push(SpanFacts { pos: found.pos, cost_usd: outcome.cost_usd, gpu: window, llm });
        }
    });
    facts
}

/// The node tier's part, deriving nothing: each LLM and model-load span's GPU figures for it to
/// carry; the processes that sent spans are noted (their service names the GPU processes).
fn gpu_facts(
    normalizer: &Normalizer,
    registry: Writer<'_>,
    gpu: Option<&GpuState>,
    request: &ExportTraceServiceRequest,
    now: f64,
) -> Vec<SpanFacts> {
    let Some(gpu) = gpu else { return Vec::new() };
    let pids = local_pids(request, gpu, now);
    let mut facts = Vec::new();
    for_canonical_spans(normalizer, request, now, |found, canonical| {
        let Some(spanned) = derive::gpu_window(canonical) else { return };
        if let Some(window) =
            span_window(gpu, &pids, &found, canonical, spanned, &mut |event| registry.emit(event))
        {
            let llm = matches!(canonical.class, SpanClass::Llm | SpanClass::Embedding);
            facts.push(SpanFacts { pos: found.pos, cost_usd: None, gpu: Some(window), llm });
        }
    });
    facts
}

/// Visits every span that normalizes, with its canonical form (service and framework looked up
/// per resource and scope). Loops, not an iterator chain, so the form (656 bytes) is not moved.
fn for_canonical_spans<'a>(
    normalizer: &Normalizer,
    request: &'a ExportTraceServiceRequest,
    now: f64,
    mut visit: impl FnMut(SpanRef<'a>, &CanonicalSpan<'a>),
) {
    for (resource, resource_spans) in request.resource_spans.iter().enumerate() {
        let resource_ref = resource_spans.resource.as_ref();
        let service = service_name(resource_ref);
        for (scope, scope_spans) in resource_spans.scope_spans.iter().enumerate() {
            let (scope_ref, framework) =
                (scope_spans.scope.as_ref(), framework_of(scope_spans.scope.as_ref()));
            for (span, found) in scope_spans.spans.iter().enumerate() {
                let Some(canonical) = normalizer.normalize(service, framework, found, now) else { continue };
                let pos = SpanPos { resource, scope, span };
                visit(SpanRef { pos, resource: resource_ref, scope: scope_ref, span: found }, &canonical);
            }
        }
    }
}

/// The GPU statistics of a span's window `(start, end)`, for its process's GPUs when its
/// resource names a local process; a window the history cannot give is counted (`count`), by
/// reason.
fn span_window(
    gpu: &GpuState,
    pids: &[Option<u32>],
    found: &SpanRef<'_>,
    canonical: &CanonicalSpan<'_>,
    (start, end): (f64, f64),
    count: &mut dyn FnMut(GpuEnrichmentSkipped),
) -> Option<WindowStats> {
    let pid = pids.get(found.pos.resource).copied().flatten();
    gpu.window(start, end, pid)
        .inspect_err(|reason| count(GpuEnrichmentSkipped { reason: *reason, weight: canonical.weight }))
        .ok()
}

/// Where [`derive_request`]'s results go besides its return value: the registry (through a
/// worker's writer), the GPU history it reads, and the live view's staging room.
pub struct Deriving<'r> {
    pub registry: Writer<'r>,
    pub gpu: Option<&'r GpuState>,
    pub staged: Option<&'r mut Staged>,
}

/// Per resource of the request, the `process.pid` it names when the process is on this host;
/// each is also remembered as that process's service.
fn local_pids(request: &ExportTraceServiceRequest, gpu: &GpuState, now: f64) -> Vec<Option<u32>> {
    request
        .resource_spans
        .iter()
        .map(|resource_spans| {
            let resource = resource_spans.resource.as_ref()?;
            let pid =
                resource.attributes.iter().find(|kv| kv.key == attr::PROCESS_PID).and_then(|kv| match kv
                    .value
                    .as_ref()?
                    .value
                    .as_ref()?
                {
                    any_value::Value::IntValue(pid) => u32::try_from(*pid).ok(),
                    any_value::Value::StringValue(pid) => pid.text().parse().ok(),
                    _ => None,
                })?;
            let host = string_attribute(&resource.attributes, attr::HOST_NAME);
            if !gpu.services.is_local(host, string_attribute(&resource.attributes, attr::K8S_NODE_NAME)) {
                return None;
            }
            gpu.services.note(pid, service_name(Some(resource)), now);
            Some(pid)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enrich::Enricher;
    use crate::export::queue;
    use crate::metrics::SeriesLimits;
    use crate::receive::decode;
    use crate::wire;
    use agentrace_semconv::metric;
    use opentelemetry_proto::tonic::collector::trace::v1 as standard;

    /// One LLM call of `gpt-4o` by `planner`, with its prompt in an attribute.
    fn batch() -> Batch {
        let json = br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},
            "scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"chat gpt-4o",
            "kind":3,"startTimeUnixNano":"1000000000","endTimeUnixNano":"3000000000","attributes":[
            {"key":"gen_ai.operation.name","value":{"stringValue":"chat"}},{"key":"gen_ai.agent.name","value":{"stringValue":"planner"}},
            {"key":"gen_ai.provider.name","value":{"stringValue":"openai"}},
            {"key":"gen_ai.usage.input_tokens","value":{"intValue":"1000"}},{"key":"gen_ai.usage.output_tokens","value":{"intValue":"100"}},
            {"key":"gen_ai.input.messages","value":{"stringValue":"a secret prompt"}}]}]}]}]}"#;
        let decoded = decode::json(json).expect("valid OTLP/JSON");
        Batch {
            request: decoded.request,
            received: wire::Received::Encoded(decoded.encoded),
            spans: 1,
            stored: None,
        }
    }

    #[tokio::test]
    async fn a_request_in_becomes_metrics_and_an_enriched_redacted_request_out() {
        let registry = Arc::new(Registry::new(SeriesLimits::default()));
        let (sender, mut receiver, _) = queue::memory(registry.clone());
        let queue = Destination::Queue(sender);
        let forwarding = Forwarding { enricher: Enricher::new(false, Vec::new(), Vec::new()), queue };
        let gauge = QueueGauge::new("ingest", 4);
        let processor = Processor::new(Deriver::default(), registry.clone(), gauge, None, Some(forwarding));
        let (input, queued) = mpsc::channel(4);
        let running = tokio::spawn(processor.run(queued));
        input.send(batch()).await.expect("queued");
        drop(input);

        let batch = receiver.next_batch(100).await.expect("a batch out");
        assert!(receiver.next_batch(100).await.is_none(), "the queue closes once the processor is done");
        running.await.expect("processor");
        assert_eq!(batch.spans, 1);
        let forwarded =
            wire::convert::<_, standard::ExportTraceServiceRequest>(&wire::raw::ExportTraceServiceRequest {
                resource_spans: batch.payload.into_resource_spans().expect("a batch from memory"),
            })
            .expect("standard request");
        let span = &forwarded.resource_spans[0].scope_spans[0].spans[0];
        let keys: Vec<&str> = span.attributes.iter().map(|kv| kv.key.as_str()).collect();
        assert!(!keys.contains(&attr::GEN_AI_INPUT_MESSAGES), "content redacted: {keys:?}");
        assert_eq!(keys.last(), Some(&attr::AGENTRACE_COST_USD), "cost added: {keys:?}");
        let llm = ["svc", "planner", "openai", "gpt-4o"];
        assert_eq!(registry.value(metric::LLM_PROMPT_TOKENS_TOTAL, &llm), Some(1000.0));
        assert_eq!(registry.value(metric::LLM_RESPONSE_TOKENS_TOTAL, &llm), Some(100.0));
    }

    #[tokio::test]
    async fn without_forwarding_only_metrics_come_out() {
        let registry = Arc::new(Registry::new(SeriesLimits::default()));
        let processor =
            Processor::new(Deriver::default(), registry.clone(), QueueGauge::new("ingest", 4), None, None);
        let (input, queued) = mpsc::channel(4);
        let running = tokio::spawn(processor.run(queued));
        input.send(batch()).await.expect("queued");
        drop(input);
        running.await.expect("the processor stops when its input closes");
        let requests = ["svc", "planner", "openai", "gpt-4o", "chat", "ok"];
        assert_eq!(registry.value(metric::LLM_REQUESTS_TOTAL, &requests), Some(1.0));
    }
}
