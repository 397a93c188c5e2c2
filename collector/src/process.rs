//! The processing stage: each queued request is normalized span by span, derived into
//! observations and applied to the registry; what derive learned about a span (its cost) is
//! added to it (`enrich`); then the request goes on to the export queue (and waits there when
//! that queue is full, which backs the receivers up into refusing). A one-second tick flushes
//! the agent-graph window and expires idle series.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

use crate::derive::Deriver;
use crate::enrich::{self, SpanCost};
use crate::metrics::{Observation, Registry};
use crate::normalize::{service_name, Normalizer};
use crate::receive::{Batch, QueueGauge};
use crate::unix_now;

const TICK: Duration = Duration::from_secs(1);

pub struct Processor {
    pub normalizer: Normalizer,
    pub deriver: Deriver,
    pub registry: Arc<Registry>,
    pub input_gauge: Arc<QueueGauge>,
    /// `None` when traces are not forwarded.
    pub export: Option<(mpsc::Sender<Batch>, Arc<QueueGauge>)>,
}

impl Processor {
    /// Runs until the input closes (the receivers are gone), then returns, dropping the
    /// export sender so that the exporter drains in turn.
    pub async fn run(mut self, mut input: mpsc::Receiver<Batch>) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut observations = Vec::new();
        loop {
            tokio::select! {
                batch = input.recv() => {
                    let Some(mut batch) = batch else { break };
                    self.input_gauge.popped();
                    let now = unix_now();
                    let costs = derive_request(&self.normalizer, &mut self.deriver, &batch.request, now, &mut observations);
                    self.registry.apply(&mut observations, now);
                    if self.export.is_some() {
                        enrich::add_costs(&mut batch.request, &costs);
                    }
                    self.forward(batch).await;
                }
                _ = tick.tick() => self.tick(&mut observations),
            }
        }
    }

    async fn forward(&self, batch: Batch) {
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

    fn tick(&mut self, observations: &mut Vec<Observation>) {
        let now = unix_now();
        self.deriver.tick(now, observations);
        self.registry.apply(observations, now);
        self.registry.expire(now);
    }
}

/// Normalizes and derives every span of `request` into `out`; returns the costs to add to the
/// forwarded spans. Pure apart from the deriver's agent-graph window.
pub fn derive_request(
    normalizer: &Normalizer,
    deriver: &mut Deriver,
    request: &ExportTraceServiceRequest,
    now: f64,
    out: &mut Vec<Observation>,
) -> Vec<SpanCost> {
    let mut costs = Vec::new();
    for (resource_index, resource_spans) in request.resource_spans.iter().enumerate() {
        let service = service_name(resource_spans.resource.as_ref());
        for (scope_index, scope_spans) in resource_spans.scope_spans.iter().enumerate() {
            for (span_index, span) in scope_spans.spans.iter().enumerate() {
                let Some(canonical) = normalizer.normalize(service, span) else { continue };
                if let Some(usd) = deriver.observe(&canonical, now, out).cost_usd {
                    costs.push(SpanCost { position: [resource_index, scope_index, span_index], usd });
                }
            }
        }
    }
    deriver.end_batch(out);
    costs
}
