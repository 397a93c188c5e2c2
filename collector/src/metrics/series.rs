//! A series' state: a counter's total, a gauge's value, a histogram's buckets; and how one
//! observation changes it.

use super::{Exemplar, Kind};

#[derive(Clone, Debug)]
pub(super) enum Value {
    Counter {
        total: f64,
        exemplar: Option<Exemplar>,
    },
    Gauge(f64),
    /// The buckets, the last +Inf, each with its own count (not cumulative) and exemplar.
    Histogram {
        buckets: Box<[Bucket]>,
        sum: f64,
        /// The samples' weights added up: the exact count that the buckets' whole counts
        /// round, and what a counter of the samples serves (`counted.rs`).
        weighted: f64,
        /// A negative value was observed: OpenMetrics then has no `_sum` (nor `_count`).
        negative: bool,
    },
}

/// One bucket of a histogram series: what an observation in it updates, side by side (three
/// vectors, one per part, cost three cache misses an observation where this costs one or two).
/// A sampled span counts with its adjusted count, which need not be whole, and OpenMetrics
/// wants whole bucket counts: each bucket keeps a whole count and carries the fraction over to
/// its next observation (`carry`), so the count is the weighted count less under one.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Bucket {
    pub(super) count: u64,
    pub(super) carry: f64,
    pub(super) exemplar: Option<Exemplar>,
}

#[derive(Clone, Debug)]
pub(super) struct Series {
    /// Unix seconds when the series was created, rendered as `_created`.
    pub(super) created: f64,
    pub(super) updated: f64,
    pub(super) value: Value,
}

impl Series {
    pub(super) fn new(kind: Kind, now: f64) -> Self {
        let value = match kind {
            Kind::Counter => Value::Counter { total: 0.0, exemplar: None },
            Kind::Gauge => Value::Gauge(0.0),
            Kind::Histogram(bounds) => Value::Histogram {
                buckets: vec![Bucket::default(); bounds.len() + 1].into_boxed_slice(),
                sum: 0.0,
                weighted: 0.0,
                negative: false,
            },
        };
        Self { created: now, updated: now, value }
    }

    /// Records one observation; false (and nothing changes) when it would make the series
    /// infinite or not a number.
    pub(super) fn record(
        &mut self,
        kind: Kind,
        value: f64,
        weight: f64,
        exemplar: Option<Exemplar>,
        now: f64,
    ) -> bool {
        match (&mut self.value, kind) {
            (Value::Counter { total, exemplar: last }, _) => {
                let next = *total + value * weight;
                if !next.is_finite() {
                    return false;
                }
                *total = next;
                if exemplar.is_some() {
                    *last = exemplar;
                }
            }
            (Value::Gauge(current), _) => *current = value,
            (Value::Histogram { buckets, sum, weighted, negative }, Kind::Histogram(bounds)) => {
                let next_sum = *sum + value * weight;
                if !next_sum.is_finite() {
                    return false;
                }
                let Some(bucket) = buckets.get_mut(bucket_of(bounds, value)) else {
                    return false;
                };
                if weight == 1.0 {
                    // An unsampled span, nearly every one: the carried fraction stays as it is.
                    bucket.count = bucket.count.saturating_add(1);
                } else {
                    let owed = bucket.carry + weight;
                    let whole = owed.floor();
                    bucket.count = bucket.count.saturating_add(whole as u64);
                    bucket.carry = owed - whole;
                }
                *sum = next_sum;
                *weighted += weight;
                *negative |= value < 0.0;
                if exemplar.is_some() {
                    bucket.exemplar = exemplar;
                }
            }
            (Value::Histogram { .. }, _) => {
                debug_assert!(false, "histogram series under a non-histogram kind")
            }
        }
        self.updated = now;
        true
    }
}

/// The bucket of `value` under ascending `bounds`: the number of bounds below it. Counted
/// across all of them, without a branch on each: a binary search branches on the value at each
/// step, which the processor cannot predict for values spread over the buckets, and 11 to 32
/// bounds take a few vector compares.
fn bucket_of(bounds: &[f64], value: f64) -> usize {
    bounds.iter().map(|bound| usize::from(*bound < value)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::catalogue;

    #[test]
    fn the_bucket_is_the_one_a_binary_search_finds() {
        for definition in catalogue::all() {
            let Kind::Histogram(bounds) = definition.kind else { continue };
            let around = |bound: &f64| [bound.next_down(), *bound, bound.next_up()];
            let values = bounds.iter().flat_map(around).chain([f64::NEG_INFINITY, -1.0, 0.0, f64::INFINITY]);
            for value in values {
                let expected = bounds.partition_point(|bound| *bound < value);
                assert_eq!(bucket_of(bounds, value), expected, "{} at {value}", definition.name);
            }
        }
    }
}
