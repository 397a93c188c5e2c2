//! The processing stage: each queued request is normalized span by span, derived into
//! observations and applied to the registry; LLM and model-load spans are matched against the
//! GPU samples of their window; what was learned about a span (cost, GPU picture) is added to
//! it (`enrich`); content and listed attributes are redacted (`redact`); then the request goes
//! on to the export queue as its received bytes with only the changed spans re-encoded (and
//! waits there when that queue is full, which backs the receivers up into refusing). A
//! one-second tick flushes the agent-graph window and expires idle series.

use std::sync::Arc;
use std::time::Duration;

use agentrace_semconv::{attr, metric};
use tokio::sync::mpsc;

use crate::derive::{Deriver, GpuQuery};
use crate::enrich::{self, SpanFacts};
use crate::export::queue::DiskQueue;
use crate::export::Forward;
use crate::gpu::GpuState;
use crate::metrics::{Observation, Registry};
use crate::normalize::{service_name, string_attribute, Normalizer};
use crate::otlp::{self, any_value, ExportTraceServiceRequest, Text};
use crate::receive::{Batch, QueueGauge, Refusal, StoreAnswer};
use crate::redact::Redactor;
use crate::unix_now;

const TICK: Duration = Duration::from_secs(1);
/// Observations derived before they are applied to the registry: a few spans' worth.
const APPLY_EVERY: usize = 64;
const DISK_FULL_LOG_INTERVAL_SECS: f64 = 60.0;

pub struct Processor {
    pub normalizer: Normalizer,
    pub deriver: Deriver,
    pub registry: Arc<Registry>,
    pub input_gauge: Arc<QueueGauge>,
    /// `None` when traces are not forwarded.
    pub export: Option<(mpsc::Sender<Forward>, Arc<QueueGauge>)>,
    /// `None` when GPU sampling is off or NVML is unavailable.
    pub gpu: Option<Arc<GpuState>>,
    /// Applied to forwarded spans after enrichment.
    pub redactor: Redactor,
    /// The persistent export queue: requests are written there (and then acknowledged)
    /// instead of going to the export channel.
    pub disk: Option<Arc<DiskQueue>>,
    /// When the last "queue full" warning was logged (Unix seconds): once per interval.
    pub disk_full_logged_at: Option<f64>,
    /// Empty between requests; kept so that each request reuses its room.
    pub observations: Vec<Observation<'static>>,
}

/// An empty vector of observations with the room of `used`, for borrows of another lifetime.
fn recycle<'to>(mut used: Vec<Observation<'_>>) -> Vec<Observation<'to>> {
    used.clear();
    // Collecting an empty vector in place keeps its allocation; `filter_map` is what changes
    // the element's lifetime, which `filter` cannot.
    #[allow(clippy::unnecessary_filter_map)]
    let empty = used.into_iter().filter_map(|_| None).collect();
    empty
}

impl Processor {
    /// Runs until the input closes (the receivers are gone), then returns, dropping the
    /// export sender so that the exporter drains in turn.
    pub async fn run(mut self, mut input: mpsc::Receiver<Batch>) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                batch = input.recv() => {
                    let Some(batch) = batch else { break };
                    self.input_gauge.popped();
                    self.input_gauge.release_spans(batch.spans);
                    let (forward, stored) = self.process(batch);
                    match (&self.disk, forward) {
                        (Some(disk), Some(forward)) => self.store(disk.clone(), forward, stored).await,
                        (None, Some(forward)) => self.forward(forward).await,
                        (_, None) => {}
                    }
                }
                _ = tick.tick() => self.tick(),
            }
        }
    }

    /// Derives the batch's metrics; when traces are forwarded, enriches and redacts them and
    /// returns what to forward, with the sender waiting for the persistent queue.
    fn process(&mut self, mut batch: Batch) -> (Option<Forward>, Option<StoreAnswer>) {
        // Observations borrow their label values from the request, so they live for one; the
        // vector's room is kept for the next.
        let mut observations = recycle(std::mem::take(&mut self.observations));
        let now = unix_now();
        let (mut facts, queries) = derive_request(
            &self.normalizer,
            &mut self.deriver,
            &self.registry,
            &batch.request,
            now,
            &mut observations,
        );
        if let Some(gpu) = &self.gpu {
            let pids = local_pids(&batch.request, gpu, now);
            for (facts, query) in facts.iter_mut().zip(&queries) {
                let Some(query) = query else { continue };
                let pid = pids.get(facts.position[0]).copied().flatten();
                match gpu.window(query.start, query.end, pid) {
                    Ok(stats) => {
                        count_gpu_time(query, stats.gpu_seconds, stats.energy_joules, &mut observations);
                        facts.gpu = Some(stats);
                    }
                    Err(skip) => self.registry.add(
                        metric::SELF_GPU_ENRICHMENT_SKIPPED_TOTAL,
                        &[skip.reason()],
                        query.weight,
                        now,
                    ),
                }
            }
        }
        self.registry.apply(&mut observations, now);
        self.observations = recycle(observations);
        // The queries borrow the request, which is changed next.
        drop(queries);
        if self.export.is_none() && self.disk.is_none() {
            return (None, batch.stored);
        }
        let changed = self.redactor.apply(&mut batch.request);
        let added = enrich::additions(&batch.request, &facts, &self.redactor);
        let request = otlp::forwarding_view(&batch.request, &batch.encoded, &changed, &added);
        (Some(Forward { request, spans: batch.spans }), batch.stored)
    }

    /// Writes the batch to the persistent queue (off the runtime: it fsyncs), then lets the
    /// receiver acknowledge it, or refuse it if the write failed.
    async fn store(&mut self, disk: Arc<DiskQueue>, forward: Forward, stored: Option<StoreAnswer>) {
        let Forward { request, spans } = forward;
        let outcome = if spans == 0 {
            Ok(())
        } else {
            match tokio::task::spawn_blocking(move || disk.append(&request, spans)).await {
                Ok(Ok(0)) => Ok(()),
                Ok(Ok(dropped)) => {
                    let now = unix_now();
                    self.registry.add(
                        metric::SELF_SPANS_DROPPED_TOTAL,
                        &["queue_disk_full"],
                        dropped as f64,
                        now,
                    );
                    if self
                        .disk_full_logged_at
                        .is_none_or(|logged| now - logged >= DISK_FULL_LOG_INTERVAL_SECS)
                    {
                        tracing::warn!(
                            dropped,
                            "persistent queue full, dropping its oldest spans (logged once per minute)"
                        );
                        self.disk_full_logged_at = Some(now);
                    }
                    Ok(())
                }
                Ok(Err(error)) => {
                    tracing::warn!(%error, "cannot write to the persistent queue, refusing the request");
                    Err(Refusal::StoreFailed)
                }
                Err(error) => {
                    tracing::warn!(%error, "persistent queue writer failed, refusing the request");
                    Err(Refusal::StoreFailed)
                }
            }
        };
        if let Some(stored) = stored {
            let _ = stored.send(outcome);
        }
    }

    async fn forward(&self, batch: Forward) {
        let Some((export, gauge)) = &self.export else { return };
        if batch.spans == 0 {
            return;
        }
        gauge.pushed();
        if export.send(batch).await.is_err() {
            // The exporter only stops before us when its hard deadline passed; it has counted
            // what it dropped, and this batch joins them.
            gauge.popped();
            tracing::debug!("export queue closed, batch not forwarded");
        }
    }

    fn tick(&mut self) {
        let observations = &mut Vec::new();
        let now = unix_now();
        self.deriver.tick(now, observations);
        self.registry.apply(observations, now);
        self.registry.expire(now);
    }
}

fn count_gpu_time<'a>(
    query: &GpuQuery<'a>,
    gpu_seconds: f64,
    energy_joules: f64,
    out: &mut Vec<Observation<'a>>,
) {
    for (metric, value) in
        [(metric::LLM_GPU_SECONDS_TOTAL, gpu_seconds), (metric::LLM_GPU_ENERGY_JOULES_TOTAL, energy_joules)]
    {
        out.push(Observation {
            metric,
            labels: query.labels.clone(),
            value,
            weight: query.weight,
            exemplar: Some(query.exemplar),
        });
    }
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
            if !gpu.services.is_local(string_attribute(&resource.attributes, attr::HOST_NAME)) {
                return None;
            }
            gpu.services.note(pid, service_name(Some(resource)), now);
            Some(pid)
        })
        .collect()
}

/// Normalizes and derives every span of `request`, applying the observations to `registry`
/// every [`APPLY_EVERY`] of them (so that they are still in cache when applied; `out` is
/// empty on return). Returns, for the spans with something to add (a cost) or to look up
/// (a GPU window), their facts and queries, in step.
pub fn derive_request<'a>(
    normalizer: &Normalizer,
    deriver: &mut Deriver,
    registry: &Registry,
    request: &'a ExportTraceServiceRequest,
    now: f64,
    out: &mut Vec<Observation<'a>>,
) -> (Vec<SpanFacts>, Vec<Option<GpuQuery<'a>>>) {
    let mut facts = Vec::new();
    let mut queries = Vec::new();
    for (resource_index, resource_spans) in request.resource_spans.iter().enumerate() {
        let service = service_name(resource_spans.resource.as_ref());
        for (scope_index, scope_spans) in resource_spans.scope_spans.iter().enumerate() {
            for (span_index, span) in scope_spans.spans.iter().enumerate() {
                let Some(canonical) = normalizer.normalize(service, span) else { continue };
                let outcome = deriver.observe(&canonical, now, out);
                if out.len() >= APPLY_EVERY {
                    registry.apply(out, now);
                }
                if outcome.cost_usd.is_some() || outcome.gpu.is_some() {
                    let position = [resource_index, scope_index, span_index];
                    facts.push(SpanFacts { position, cost_usd: outcome.cost_usd, gpu: None });
                    queries.push(outcome.gpu);
                }
            }
        }
    }
    deriver.end_batch(out);
    registry.apply(out, now);
    (facts, queries)
}
