//! A family's stripes: each processing worker writes its own copy of the family's series
//! (the receivers, the exporter and the samplers share one more), and reading merges them.
//! Workers split the traffic by trace, so every worker updates the same series; with one lock
//! per family they took turns on it and pulled its memory from core to core on every update
//! (`cargo bench -p agentrace-loadgen --bench workers`). One stripe (one worker) is read as
//! it is.
//!
//! The merge is exact: counters and histogram buckets add up, a gauge is the stripe's written
//! last, an exemplar the latest, `_created` the earliest. The series cap counts label sets
//! over all stripes (`Family::known`), and a series expires only when it is idle in every
//! stripe, so that a merged counter never goes back.

use std::sync::Mutex;

use super::{lock, Family, FamilyState, Key, Series, Value};
use hashbrown::HashSet;

impl Family {
    /// Calls `read` with the family's series: its one stripe, or all of them merged.
    pub(super) fn read<R>(&self, read: impl FnOnce(&FamilyState) -> R) -> R {
        match &*self.stripes {
            [only] => read(&lock(only)),
            stripes => read(&merged(stripes)),
        }
    }

    /// Removes the series idle since before `oldest_kept` in every stripe.
    pub(super) fn expire(&self, oldest_kept: f64) {
        if let [only] = &*self.stripes {
            let mut state = lock(only);
            let before = state.series.len();
            state.series.retain(|_, series| series.updated >= oldest_kept);
            state.expired += (before - state.series.len()) as u64;
            if state.overflow.as_ref().is_some_and(|series| series.updated < oldest_kept) {
                state.overflow = None;
            }
            return;
        }
        let mut states: Vec<_> = self.stripes.iter().map(lock).collect();
        let idle = |series: &Series| series.updated < oldest_kept;
        // Idle somewhere: a candidate (few, so cloned); idle everywhere it is: removed.
        let candidates: HashSet<Key> = states
            .iter()
            .flat_map(|state| {
                state.series.iter().filter(|(_, series)| idle(series)).map(|(labels, _)| labels.clone())
            })
            .collect();
        let mut known = lock(&self.known);
        for labels in candidates {
            if states.iter().all(|state| state.series.get(&labels).is_none_or(idle)) {
                for state in &mut states {
                    state.series.remove(&labels);
                }
                known.remove(&labels);
                if let Some(first) = states.first_mut() {
                    first.expired += 1;
                }
            }
        }
        if states.iter().all(|state| state.overflow.as_ref().is_none_or(idle)) {
            for state in &mut states {
                state.overflow = None;
            }
        }
    }

    /// Makes `known` the label sets the stripes hold, after a writer replaced some.
    pub(super) fn resync_known(&self) {
        if self.stripes.len() == 1 {
            return;
        }
        let states: Vec<_> = self.stripes.iter().map(lock).collect();
        let mut known = lock(&self.known);
        known.clear();
        for state in &states {
            known.extend(state.series.keys().cloned());
        }
    }
}

/// The stripes' series as one family.
fn merged(stripes: &[Mutex<FamilyState>]) -> FamilyState {
    let mut merged = FamilyState::default();
    for stripe in stripes {
        let state = lock(stripe);
        for (labels, series) in &state.series {
            match merged.series.get_mut(labels) {
                Some(into) => into.merge(series),
                None => {
                    merged.series.insert(labels.clone(), series.clone());
                }
            }
        }
        if let Some(overflow) = &state.overflow {
            match &mut merged.overflow {
                Some(into) => into.merge(overflow),
                None => merged.overflow = Some(overflow.clone()),
            }
        }
        merged.overflowed += state.overflowed;
        merged.expired += state.expired;
    }
    merged
}

impl Series {
    /// Adds another stripe's copy of this series to it.
    fn merge(&mut self, other: &Series) {
        let newer = other.updated > self.updated;
        self.created = self.created.min(other.created);
        self.updated = self.updated.max(other.updated);
        match (&mut self.value, &other.value) {
            (Value::Counter { total, exemplar }, Value::Counter { total: more, exemplar: theirs }) => {
                *total += more;
                latest(exemplar, theirs);
            }
            (Value::Gauge(value), Value::Gauge(theirs)) => {
                if newer {
                    *value = *theirs;
                }
            }
            (
                Value::Histogram { buckets, sum, weighted, negative },
                Value::Histogram {
                    buckets: more,
                    sum: more_sum,
                    weighted: more_weighted,
                    negative: more_negative,
                },
            ) => {
                for (bucket, theirs) in buckets.iter_mut().zip(more.iter()) {
                    // The fractions each stripe carries add up to whole counts too.
                    let owed = bucket.carry + theirs.carry;
                    let whole = owed.floor();
                    bucket.count = bucket.count.saturating_add(theirs.count).saturating_add(whole as u64);
                    bucket.carry = owed - whole;
                    latest(&mut bucket.exemplar, &theirs.exemplar);
                }
                *sum += more_sum;
                *weighted += more_weighted;
                *negative |= *more_negative;
            }
            _ => debug_assert!(false, "one family, one kind"),
        }
    }
}

/// Keeps the later of two exemplars in `ours`.
fn latest(ours: &mut Option<super::Exemplar>, theirs: &Option<super::Exemplar>) {
    if let Some(theirs) = theirs {
        if ours.as_ref().is_none_or(|ours| theirs.timestamp > ours.timestamp) {
            *ours = Some(*theirs);
        }
    }
}
