//! Reading a family's series back, merged over the stripes: what the live view computes its
//! figures from, so that they are the figures `/metrics` serves.

use super::{Kind, Registry, Value};

/// One series as read: its label values (in the family's label order) and its value; for a
/// histogram, the sample count and the per-bucket counts (the last is +Inf).
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    pub labels: Vec<String>,
    pub value: f64,
    pub buckets: Vec<u64>,
}

impl Registry {
    /// The series of `metric` (not its overflow series, which no label set names); empty when
    /// the family is not served.
    pub fn read(&self, metric: &str) -> Vec<Reading> {
        let Some(family) = self.family(metric) else { return Vec::new() };
        self.read_family(family, |state| {
            state
                .series
                .iter()
                .map(|(labels, series)| {
                    let (value, buckets) = match &series.value {
                        Value::Counter { total, .. } => (*total, Vec::new()),
                        Value::Gauge(value) => (*value, Vec::new()),
                        Value::Histogram { buckets, .. } => {
                            let counts: Vec<u64> = buckets.iter().map(|bucket| bucket.count).collect();
                            (counts.iter().sum::<u64>() as f64, counts)
                        }
                    };
                    Reading { labels: labels.to_vec(), value, buckets }
                })
                .collect()
        })
    }

    /// The label names of `metric`, when it is served.
    pub fn label_names(&self, metric: &str) -> Option<&'static [&'static str]> {
        self.family(metric).map(|family| family.definition.labels)
    }

    /// The bucket bounds of a histogram family, when it is served.
    pub fn bounds(&self, metric: &str) -> Option<&'static [f64]> {
        match self.family(metric)?.definition.kind {
            Kind::Histogram(bounds) => Some(bounds),
            _ => None,
        }
    }
}
