//! Counters of a histogram's samples (`Definition::samples_of`): a span's call count is the
//! sample count of its duration histogram, with the same labels and the same weight. Such a
//! counter keeps no series of its own: it is read from the histogram's, so that a span costs
//! one series update for the two instead of two. What a reader sees is what a counter of its
//! own held: the samples' weights added up, created with the histogram's series, expired with
//! it, its overflow series and counts the histogram's. Its exemplar is the histogram's latest
//! (by time), with the value 1 that each call added.

use super::{Exemplar, Family, FamilyState, Registry, Series, Value};

impl Registry {
    /// Calls `read` with the family's series (merged over its stripes); for a counter of a
    /// histogram's samples, as read from that histogram.
    pub(super) fn read_family<R>(&self, family: &Family, read: impl FnOnce(&FamilyState) -> R) -> R {
        match self.histogram_counted_by(family) {
            Some(histogram) => histogram.read(|state| read(&state.sample_counts())),
            None => family.read(read),
        }
    }

    /// The family that holds `family`'s series: itself, or the histogram whose samples it
    /// counts (whose overflow and expiry counts are the counter's too).
    pub(super) fn holder<'r>(&'r self, family: &'r Family) -> &'r Family {
        self.histogram_counted_by(family).unwrap_or(family)
    }

    fn histogram_counted_by(&self, family: &Family) -> Option<&Family> {
        family.samples_of.and_then(|position| self.families.get(position))
    }
}

impl FamilyState {
    /// A histogram family's series as the counters of their samples.
    fn sample_counts(&self) -> FamilyState {
        FamilyState {
            series: self
                .series
                .iter()
                .map(|(labels, series)| (labels.clone(), series.sample_count()))
                .collect(),
            overflow: self.overflow.as_ref().map(Series::sample_count),
            overflowed: self.overflowed,
            expired: self.expired,
        }
    }
}

impl Series {
    /// A histogram series as the counter of its samples.
    fn sample_count(&self) -> Series {
        let (total, exemplar) = match &self.value {
            Value::Histogram { weighted, buckets, .. } => {
                let latest = buckets
                    .iter()
                    .filter_map(|bucket| bucket.exemplar.as_ref())
                    .max_by(|a, b| a.timestamp.total_cmp(&b.timestamp));
                (*weighted, latest.map(|exemplar| Exemplar { value: 1.0, ..*exemplar }))
            }
            _ => {
                debug_assert!(false, "samples counted of a series that is not a histogram");
                (0.0, None)
            }
        };
        Series { created: self.created, updated: self.updated, value: Value::Counter { total, exemplar } }
    }
}

#[cfg(test)]
mod tests {
    use agentrace_semconv::metric;

    use super::super::{Format, Label, Observation, SeriesLimits};
    use super::*;

    fn sample(
        labels: [&'static str; 4],
        seconds: f64,
        weight: f64,
        trace: u8,
        ended: f64,
    ) -> Observation<'static> {
        let exemplar = Exemplar {
            trace_id: [trace; 16],
            span_id: [1; 8],
            value: seconds,
            timestamp: ended,
            ..Exemplar::default()
        };
        let labels = labels.into_iter().map(Label::Borrowed).collect();
        Observation {
            weight,
            ..Observation::new(metric::SPANMETRICS_LATENCY, labels, seconds, Some(exemplar))
        }
    }

    fn line<'p>(page: &'p str, start: &str) -> Vec<&'p str> {
        page.lines().filter(|line| line.starts_with(start)).collect()
    }

    #[test]
    fn a_counter_of_samples_reads_as_the_weights_added_up_with_the_latest_exemplar() {
        let limits = SeriesLimits { max_series_per_metric: 1, ..SeriesLimits::default() };
        let registry = Registry::new(limits);
        let ok = ["svc", "chat", "SPAN_KIND_CLIENT", "STATUS_CODE_UNSET"];
        // Sampled spans count with their weights; the exemplar is the latest span's (by end time).
        let mut batch =
            vec![sample(ok, 0.2, 1.0, 1, 10.0), sample(ok, 3.0, 0.5, 3, 30.0), sample(ok, 0.4, 1.5, 2, 20.0)];
        registry.apply(&mut batch, 100.0);
        assert_eq!(registry.value(metric::SPANMETRICS_CALLS_TOTAL, &ok), Some(3.0), "1 + 0.5 + 1.5");
        let readings = registry.read(metric::SPANMETRICS_CALLS_TOTAL);
        assert_eq!((readings.len(), readings[0].value), (1, 3.0));
        let page = registry.render(Format::OpenMetrics);
        let counted = line(&page, "traces_spanmetrics_calls_total{");
        let latest = format!("trace_id=\"{}\"", hex::encode([3u8; 16]));
        assert_eq!(counted.len(), 1, "{page}");
        assert!(counted[0].contains(" 3 # {") && counted[0].contains(&latest), "{}", counted[0]);
        assert!(counted[0].ends_with("} 1 30.000"), "the exemplar counts 1: {}", counted[0]);
        assert_eq!(line(&page, "traces_spanmetrics_calls_created{").len(), 1, "{page}");
        assert_eq!(
            line(&page, "# TYPE traces_spanmetrics_calls counter"),
            ["# TYPE traces_spanmetrics_calls counter"]
        );
        // Past the cap (1 series), the histogram's overflow series is the counter's too.
        let error = ["svc", "chat", "SPAN_KIND_CLIENT", "STATUS_CODE_ERROR"];
        registry.apply(&mut vec![sample(error, 1.0, 1.0, 4, 40.0)], 101.0);
        assert_eq!(registry.series_count(metric::SPANMETRICS_CALLS_TOTAL), 2);
        let classic = registry.render(Format::Classic);
        let overflow = line(&classic, "traces_spanmetrics_calls_total{otel_metric_overflow=\"true\"}");
        assert_eq!(overflow, ["traces_spanmetrics_calls_total{otel_metric_overflow=\"true\"} 1"]);
        assert_eq!(
            line(
                &classic,
                "agentrace_metric_series_overflow_total{metric=\"traces_spanmetrics_calls_total\"}"
            ),
            ["agentrace_metric_series_overflow_total{metric=\"traces_spanmetrics_calls_total\"} 1"]
        );
        // Idle, the counter goes with the histogram.
        registry.expire(100.0 + limits.idle_timeout_secs + 10.0);
        assert_eq!(registry.value(metric::SPANMETRICS_CALLS_TOTAL, &ok), None);
        assert_eq!(registry.series_count(metric::SPANMETRICS_CALLS_TOTAL), 0);
    }
}
