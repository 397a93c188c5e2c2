//! The processing stage: each queued request is normalized span by span, derived into
//! observations and applied to the registry; then the request goes on to the export queue
//! (and waits there when that queue is full, which backs the receivers up into refusing).
//! A one-second tick flushes the agent-graph window and expires idle series.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::derive::Deriver;
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
                    let Some(batch) = batch else { break };
                    self.input_gauge.popped();
                    self.derive(&batch, &mut observations);
                    self.forward(batch).await;
                }
                _ = tick.tick() => self.tick(&mut observations),
            }
        }
    }

    fn derive(&mut self, batch: &Batch, observations: &mut Vec<Observation>) {
        let now = unix_now();
        for resource_spans in &batch.request.resource_spans {
            let service = service_name(resource_spans.resource.as_ref());
            for span in resource_spans.scope_spans.iter().flat_map(|scope_spans| &scope_spans.spans) {
                if let Some(canonical) = self.normalizer.normalize(service, span) {
                    self.deriver.observe(&canonical, now, observations);
                }
            }
        }
        self.deriver.end_batch(observations);
        self.registry.apply(observations, now);
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
