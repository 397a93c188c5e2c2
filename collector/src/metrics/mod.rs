//! The metric registry that derive, the receivers and the exporter write and `/metrics`
//! renders.
//!
//! Each family keeps its series in a map from label values to state, behind a mutex; with
//! several processing workers, one such map per worker and one for everything else
//! (`stripes.rs`), merged when read, so that workers do not take turns on one lock. Every
//! family has a series cap: past it, new label sets land in a single overflow series labelled
//! `otel_metric_overflow="true"`. Series of derived metrics that see no update for the idle
//! timeout are removed, and come back with a fresh created timestamp. The collector's own
//! counters never expire.
//!
//! Why not `prometheus-client`: it has no series cap, no idle expiry, no created timestamps
//! and no classic text format, which are the parts this module is mostly about; the
//! encoding itself is a page of code (`encode.rs`).

mod args;
mod catalogue;
mod counted;
mod encode;
mod key;
mod label;
mod locks;
mod observe;
mod read;
mod series;
mod stripes;

use std::sync::{Mutex, MutexGuard};

use agentrace_semconv::metric as names;

// Label values come from spans; hashbrown's default hasher (foldhash) is a fraction of
// SipHash's cost on short keys, and a flood of distinct values is already bounded by the
// series cap. hashbrown also finds a series by borrowed label values (`LabelsRef`), so an
// update allocates nothing.
use hashbrown::{HashMap, HashSet};

pub use self::args::{Args, SeriesLimits};
pub use self::catalogue::{Definition, Kind, Naming};
pub use self::encode::Format;
use self::key::{Key, LabelsRef};
pub use self::label::{truncated, Exemplar, ExemplarTag, Label, Labels, Observation, SharedNames};
use self::locks::Locks;
use self::observe::Sample;
pub use self::observe::{Observe, Recorder};
pub use self::read::Reading;
use self::series::{Series, Value};

/// Something that happened in the collector itself, counted in its own metrics; each kind is
/// a type in `events.rs` that knows its metric and labels.
pub trait Event {
    fn emit(self, registry: &Registry, now: f64);
}

/// Reports a state that a scrape reads (a queue's depth, the resident memory) as events.
pub trait Reported: Send + Sync {
    fn report(&self, registry: &Registry);
}

#[derive(Debug, Default)]
struct FamilyState {
    series: HashMap<Key, Series>,
    overflow: Option<Series>,
    /// Observations that went to the overflow series.
    overflowed: u64,
    expired: u64,
}

#[derive(Debug)]
struct Family {
    definition: &'static Definition,
    /// The series as each writer left them: one stripe per processing worker, the last for
    /// every other writer; a single stripe with one worker. (Aligning each to cache lines of
    /// its own, against false sharing, measured no difference: BENCHMARKS.md.)
    stripes: Box<[Mutex<FamilyState>]>,
    /// With several stripes, the label sets that any of them holds: the series cap counts
    /// these. Locked after a stripe, never before.
    known: Mutex<HashSet<Key>>,
    /// For a counter of a histogram's samples, that histogram's position: it is read from its
    /// series (`counted.rs`).
    samples_of: Option<usize>,
}

/// A processing worker's hand on the registry: its observations go to its own stripe.
#[derive(Clone, Copy, Debug)]
pub struct Writer<'a> {
    registry: &'a Registry,
    stripe: usize,
}

impl Writer<'_> {
    /// Applies and drains `observations`.
    pub fn apply(&self, observations: &mut Vec<Observation<'_>>, now: f64) {
        self.registry.apply_in(self.stripe, observations, now);
    }

    pub fn emit(&self, event: impl Event) {
        self.registry.emit(event);
    }
}

impl<'a> Writer<'a> {
    /// Records observations as they come, at `now` (`observe.rs`).
    pub fn recorder(&self, now: f64) -> Recorder<'a> {
        Recorder::new(self.registry, self.stripe, now)
    }
}

fn address(name: &str) -> (usize, usize) {
    (name.as_ptr() as usize, name.len())
}

/// All metric families, in catalogue order.
#[derive(Debug)]
pub struct Registry {
    families: Vec<Family>,
    index: HashMap<&'static str, usize>,
    /// The same positions by the address and length of the catalogue's name: derive names a
    /// family by the catalogue's own constant, so most lookups hash two words instead of the
    /// name's bytes (same address and length: the same bytes). Other names go through `index`.
    by_address: HashMap<(usize, usize), usize>,
    limits: SeriesLimits,
}

impl Registry {
    pub fn new(limits: SeriesLimits) -> Self {
        Self::striped(limits, 1)
    }

    /// A registry with `stripes` stripes per family: one per processing worker, plus one for
    /// the other writers when there are several.
    pub fn striped(limits: SeriesLimits, stripes: usize) -> Self {
        let families: Vec<Family> = catalogue::all()
            .filter(|definition| limits.names.serves(definition.naming))
            .map(|definition| Family {
                definition,
                stripes: (0..stripes.max(1)).map(|_| Mutex::default()).collect(),
                known: Mutex::default(),
                samples_of: None,
            })
            .collect();
        let index = families
            .iter()
            .enumerate()
            .map(|(position, family)| (family.definition.name, position))
            .collect();
        let by_address = families
            .iter()
            .enumerate()
            .map(|(position, family)| (address(family.definition.name), position))
            .collect();
        let mut registry = Self { families, index, by_address, limits };
        for position in 0..registry.families.len() {
            let source = registry.families[position].definition.samples_of;
            registry.families[position].samples_of =
                source.and_then(|name| registry.index.get(name).copied());
        }
        // The collector's own counters without labels exist at 0 from the start, so that an
        // alert comparing them (`… == 0`) has a series to compare before the first event.
        let now = crate::unix_now();
        for definition in registry.families.iter().map(|family| family.definition) {
            if !definition.expires && definition.kind == Kind::Counter && definition.labels.is_empty() {
                registry.add(definition.name, &[], 0.0, now);
            }
        }
        registry
    }

    /// Stripes for `workers` processing workers: one each and one for the other writers, or
    /// one in all for a single worker.
    pub fn stripes_for(workers: usize) -> usize {
        if workers <= 1 {
            1
        } else {
            workers + 1
        }
    }

    /// What processing worker `worker` writes through: its stripe.
    pub fn writer(&self, worker: usize) -> Writer<'_> {
        Writer { registry: self, stripe: worker.min(self.shared_stripe()) }
    }

    /// The stripe that writers other than the workers use: the last.
    fn shared_stripe(&self) -> usize {
        self.families.first().map_or(0, |family| family.stripes.len() - 1)
    }

    /// Applies and drains `observations` in the shared stripe.
    pub fn apply(&self, observations: &mut Vec<Observation<'_>>, now: f64) {
        self.apply_in(self.shared_stripe(), observations, now);
    }

    /// Applies and drains `observations` in `stripe`. An observation for an unknown metric or
    /// with the wrong number of labels is a bug in derive: it is skipped (and asserted in
    /// debug).
    pub fn apply_in(&self, stripe: usize, observations: &mut Vec<Observation<'_>>, now: f64) {
        let mut locks = Locks::default();
        for observation in observations.iter() {
            self.record(stripe, observation.sample(), now, &mut locks);
        }
        drop(locks);
        observations.clear();
    }

    /// Counts one of the collector's own events (`events.rs`).
    pub fn emit(&self, event: impl Event) {
        event.emit(self, crate::unix_now());
    }

    /// Adds `by` to a counter, or sets a gauge, with the given label values.
    pub fn add(&self, metric: &'static str, labels: &[&str], by: f64, now: f64) {
        let labels = labels.iter().map(|value| Label::Borrowed(value)).collect();
        let observation = Observation::new(metric, labels, by, None);
        self.record(self.shared_stripe(), observation.sample(), now, &mut Locks::default());
    }

    /// Records an observation in its series. A NaN value is a figure rejected upstream (and
    /// counted there): nothing to record. One that would make a series infinite is dropped and
    /// counted as invalid.
    fn record<'r>(&'r self, stripe: usize, sample: Sample<'_, '_>, now: f64, locks: &mut Locks<'r>) {
        let Sample { metric, labels, value, weight, exemplar } = sample;
        if value.is_nan() {
            return;
        }
        let Some((position, family)) = self.position(metric) else {
            // A family `--metric-names` does not serve; any other is a bug in derive.
            debug_assert!(
                catalogue::all().any(|definition| definition.name == metric),
                "unknown metric {metric}"
            );
            return;
        };
        let definition = family.definition;
        if family.samples_of.is_some() {
            debug_assert!(false, "{metric} is read from its histogram's samples");
            return;
        }
        if labels.len() != definition.labels.len() {
            debug_assert!(false, "{metric}: {} label values for {:?}", labels.len(), definition.labels);
            return;
        }
        let Some(mutex) = family.stripes.get(stripe).or(family.stripes.last()) else { return };
        let state = locks.state(position, mutex);
        let recorded = if let Some(series) = state.series.get_mut(&LabelsRef(labels)) {
            series.record(definition.kind, value, weight, exemplar, now)
        } else if !self.admits(family, state, labels) {
            state.overflowed += 1;
            let overflow = state.overflow.get_or_insert_with(|| Series::new(definition.kind, now));
            overflow.record(definition.kind, value, weight, exemplar, now)
        } else {
            let mut series = Series::new(definition.kind, now);
            let recorded = series.record(definition.kind, value, weight, exemplar, now);
            if recorded {
                state.series.insert(Key::new(labels.iter().map(|label| &**label)), series);
            }
            recorded
        };
        if !recorded {
            let reason = smallvec::smallvec![Label::Borrowed(names::invalid::NOT_FINITE)];
            let invalid = Observation::new(names::SELF_SPANS_INVALID_TOTAL, reason, 1.0, None);
            // In the same stripe as the batch: the batch may hold that family's lock already.
            self.record(stripe, invalid.sample(), now, locks);
        }
    }

    /// Whether a label set that `state` (a stripe of `family`) lacks may have a series of its
    /// own under the cap: with one stripe, while the stripe has room; with several, when
    /// another stripe has it already, or while the family has room.
    fn admits(&self, family: &Family, state: &FamilyState, labels: &[Label<'_>]) -> bool {
        let max = self.limits.max_series_per_metric;
        if family.stripes.len() == 1 {
            return state.series.len() < max;
        }
        let mut known = lock(&family.known);
        if known.contains(&LabelsRef(labels)) {
            return true;
        }
        if known.len() >= max {
            return false;
        }
        known.insert(Key::new(labels.iter().map(|label| &**label)));
        true
    }

    fn family(&self, metric: &str) -> Option<&Family> {
        self.position(metric).map(|(_, family)| family)
    }

    /// A family and its place in `families`.
    fn position(&self, metric: &str) -> Option<(usize, &Family)> {
        let position = *self.by_address.get(&address(metric)).or_else(|| self.index.get(metric))?;
        Some((position, self.families.get(position)?))
    }

    /// Replaces every series of a gauge family with `series` (label values, value): for gauges
    /// that a sampler rewrites whole, so that a process that went away leaves no series.
    pub fn replace_gauges(&self, metric: &str, series: Vec<(Vec<String>, f64)>, now: f64) {
        let Some(family) = self.family(metric) else {
            debug_assert!(false, "unknown metric {metric}");
            return;
        };
        debug_assert_eq!(family.definition.kind, Kind::Gauge, "{metric} is not a gauge");
        let Some(stripe) = family.stripes.last() else { return };
        let mut state = lock(stripe);
        let previous = std::mem::take(&mut state.series);
        for (labels, value) in series {
            if labels.len() != family.definition.labels.len()
                || state.series.len() >= self.limits.max_series_per_metric
            {
                continue;
            }
            let key = Key::of(&labels);
            let created = previous.get(&key).map_or(now, |series| series.created);
            let mut fresh = Series::new(family.definition.kind, created);
            fresh.record(family.definition.kind, value, 1.0, None, now);
            state.series.insert(key, fresh);
        }
        drop(state);
        family.resync_known();
    }

    /// Removes derived series idle for longer than the idle timeout (in every stripe).
    pub fn expire(&self, now: f64) {
        let oldest_kept = now - self.limits.idle_timeout_secs;
        for family in self.families.iter().filter(|family| family.definition.expires) {
            family.expire(oldest_kept);
        }
    }

    /// The current value of one counter or gauge series, or a histogram's sample count.
    #[cfg(test)]
    pub fn value(&self, metric: &str, labels: &[&str]) -> Option<f64> {
        let key = Key::new(labels.iter().copied());
        self.read_family(self.family(metric)?, |state| {
            let series = state.series.get(&key)?;
            Some(match &series.value {
                Value::Counter { total, .. } => *total,
                Value::Gauge(value) => *value,
                Value::Histogram { buckets, .. } => {
                    buckets.iter().map(|bucket| bucket.count).sum::<u64>() as f64
                }
            })
        })
    }

    /// Number of series of one family, the overflow series included.
    #[cfg(test)]
    pub fn series_count(&self, metric: &str) -> usize {
        self.family(metric).map_or(0, |family| {
            self.read_family(family, |state| state.series.len() + usize::from(state.overflow.is_some()))
        })
    }
}

/// A poisoned lock only means another thread panicked mid-update of plain numbers; the
/// numbers are still worth serving.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
