//! Where derive's observations go: straight into a worker's stripe of the registry as they are
//! made (the processing stage), or into a vector (the tick's flushes, tests).

use super::locks::Locks;
use super::{Event, Exemplar, Label, Observation, Registry};

/// How many observations a [`Recorder`] records before it lets go of the family locks it
/// took: a reader or another writer of the stripe waits for at most that many.
const RELEASE_EVERY: usize = 64;

/// Takes one observation at a time, its label values borrowed for the call: an LLM call's
/// series share prefixes of one label set, which each observation reads without a copy.
pub trait Observe<'o> {
    fn observe(
        &mut self,
        metric: &'static str,
        labels: &[Label<'o>],
        value: f64,
        weight: f64,
        exemplar: Option<Exemplar>,
    );

    /// Takes an observation built whole.
    fn push(&mut self, observation: Observation<'o>) {
        let Observation { metric, labels, value, weight, exemplar } = observation;
        self.observe(metric, &labels, value, weight, exemplar);
    }
}

impl<'o> Observe<'o> for Vec<Observation<'o>> {
    fn observe(
        &mut self,
        metric: &'static str,
        labels: &[Label<'o>],
        value: f64,
        weight: f64,
        exemplar: Option<Exemplar>,
    ) {
        Vec::push(
            self,
            Observation { metric, labels: labels.iter().cloned().collect(), value, weight, exemplar },
        );
    }

    fn push(&mut self, observation: Observation<'o>) {
        Vec::push(self, observation);
    }
}

/// One observation as the registry records it: its label values borrowed.
#[derive(Clone, Copy, Debug)]
pub(super) struct Sample<'l, 'o> {
    pub metric: &'static str,
    pub labels: &'l [Label<'o>],
    pub value: f64,
    pub weight: f64,
    pub exemplar: Option<Exemplar>,
}

impl<'o> Observation<'o> {
    pub(super) fn sample(&self) -> Sample<'_, 'o> {
        let Self { metric, ref labels, value, weight, exemplar } = *self;
        Sample { metric, labels, value, weight, exemplar }
    }
}

/// Records a processing worker's observations in its stripe as they come, each family's lock
/// taken at its first observation and held for [`RELEASE_EVERY`] observations (see
/// `locks.rs`). Made by [`super::Writer::recorder`]; the locks go with it. Code that records
/// through one must not hold another lock while it does: a worker that holds that lock could be
/// waiting, through a reader or expiry holding one family's stripes, for this one's (the
/// conversations' table is let go of before its observations are recorded).
pub struct Recorder<'r> {
    registry: &'r Registry,
    stripe: usize,
    locks: Locks<'r>,
    recorded: usize,
    now: f64,
}

impl<'r> Recorder<'r> {
    pub(super) fn new(registry: &'r Registry, stripe: usize, now: f64) -> Self {
        Self { registry, stripe, locks: Locks::default(), recorded: 0, now }
    }

    /// Counts one of the collector's own events, after letting go of the locks held: the
    /// event's family may be one of them, and the event waits for its lock.
    pub fn emit(&mut self, event: impl Event) {
        self.locks.release();
        self.registry.emit(event);
    }
}

impl<'o> Observe<'o> for Recorder<'_> {
    fn observe(
        &mut self,
        metric: &'static str,
        labels: &[Label<'o>],
        value: f64,
        weight: f64,
        exemplar: Option<Exemplar>,
    ) {
        let sample = Sample { metric, labels, value, weight, exemplar };
        self.registry.record(self.stripe, sample, self.now, &mut self.locks);
        self.recorded += 1;
        if self.recorded.is_multiple_of(RELEASE_EVERY) {
            self.locks.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Format, SeriesLimits};
    use agentrace_semconv::metric;

    fn registry(max_series_per_metric: usize) -> Registry {
        Registry::new(SeriesLimits {
            max_series_per_metric,
            idle_timeout_secs: 60.0,
            ..SeriesLimits::default()
        })
    }

    #[test]
    fn a_recorder_leaves_the_registry_as_a_batch_applied_would() {
        // Past the point where the recorder lets go of its locks, with an infinite value counted
        // as invalid and a series cap reached.
        let (recorded, applied) = (registry(5), registry(5));
        let mut recorder = recorded.writer(0).recorder(10.0);
        let mut batch = Vec::new();
        for index in 0..300_usize {
            let agent = ["a", "b", "c", "d", "e", "f", "g"][index % 7];
            let labels =
                [Label::Borrowed("svc"), Label::Borrowed(agent), Label::Borrowed("p"), Label::Borrowed("m")];
            let value = if index % 50 == 0 { f64::INFINITY } else { index as f64 };
            let exemplar = Some(Exemplar { value, timestamp: 9.0, ..Exemplar::default() });
            for metric in [metric::LLM_PROMPT_TOKENS_TOTAL, metric::LLM_TIME_TO_FIRST_TOKEN_SECONDS] {
                recorder.observe(metric, &labels, value, 1.0, exemplar);
                batch.observe(metric, &labels, value, 1.0, exemplar);
            }
        }
        drop(recorder);
        applied.writer(0).apply(&mut batch, 10.0);
        // Series are rendered in each table's own order: compared one by one.
        assert_eq!(recorded.value(metric::SELF_SPANS_INVALID_TOTAL, &["not_finite"]), Some(12.0));
        assert_eq!(applied.value(metric::SELF_SPANS_INVALID_TOTAL, &["not_finite"]), Some(12.0));
        for metric in [metric::LLM_PROMPT_TOKENS_TOTAL, metric::LLM_TIME_TO_FIRST_TOKEN_SECONDS] {
            assert_eq!(recorded.series_count(metric), 6, "five series and the overflow series");
            assert_eq!(recorded.series_count(metric), applied.series_count(metric));
            for agent in ["a", "b", "c", "d", "e", "f", "g"] {
                let labels = ["svc", agent, "p", "m"];
                assert_eq!(
                    recorded.value(metric, &labels),
                    applied.value(metric, &labels),
                    "{metric} {agent}"
                );
            }
        }
        let overflowed = |registry: &Registry| {
            let page = registry.render(Format::OpenMetrics);
            page.lines()
                .filter(|line| line.contains("otel_metric_overflow"))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(overflowed(&recorded), overflowed(&applied));
    }

    #[test]
    fn a_recorder_counts_an_event_of_a_family_whose_lock_it_holds() {
        // The event's family was recorded into just before: the recorder holds its lock, and the
        // event, a write of its own, waits for it. Recorded on another thread, with a time limit.
        let registry = std::sync::Arc::new(registry(10));
        let (done, finished) = std::sync::mpsc::channel();
        let writer = registry.clone();
        std::thread::spawn(move || {
            let mut recorder = writer.writer(0).recorder(0.0);
            let reason = crate::gpu::Skip::NoSamples;
            recorder.observe(
                metric::SELF_GPU_ENRICHMENT_SKIPPED_TOTAL,
                &[Label::Borrowed(reason.reason())],
                1.0,
                1.0,
                None,
            );
            recorder.emit(crate::events::GpuEnrichmentSkipped { reason, weight: 1.0 });
            let _ = done.send(reason.reason());
        });
        let reason = finished.recv_timeout(std::time::Duration::from_secs(60)).expect("no deadlock");
        assert_eq!(registry.value(metric::SELF_GPU_ENRICHMENT_SKIPPED_TOTAL, &[reason]), Some(2.0));
    }

    #[test]
    fn a_recorder_and_a_batch_in_one_stripe_touching_families_in_opposite_orders_both_finish() {
        // The recorder holds its locks from one observation to the next, for 64 of them; the other
        // writer takes the two families the other way round.
        let registry = std::sync::Arc::new(registry(10));
        let families = [metric::LLM_PROMPT_TOKENS_TOTAL, metric::LLM_RESPONSE_TOKENS_TOTAL];
        let labels = ["svc", "a", "p", "m"].map(Label::Borrowed);
        let (done, finished) = std::sync::mpsc::channel();
        for recording in [false, true] {
            let (registry, done, labels) = (registry.clone(), done.clone(), labels.clone());
            std::thread::spawn(move || {
                let mut recorder = registry.writer(0).recorder(0.0);
                for _ in 0..20_000 {
                    if recording {
                        families.iter().for_each(|metric| recorder.observe(metric, &labels, 1.0, 1.0, None));
                    } else {
                        let mut batch = Vec::new();
                        families
                            .iter()
                            .rev()
                            .for_each(|metric| batch.observe(metric, &labels, 1.0, 1.0, None));
                        registry.apply(&mut batch, 0.0);
                    }
                }
                drop(recorder);
                let _ = done.send(());
            });
        }
        for _ in 0..2 {
            finished
                .recv_timeout(std::time::Duration::from_secs(60))
                .expect("both threads finish: no deadlock");
        }
        for metric in families {
            assert_eq!(registry.value(metric, &["svc", "a", "p", "m"]), Some(40_000.0));
        }
    }
}
