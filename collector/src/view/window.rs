//! The live view's figures over the last 15 minutes, computed from the registry itself: the
//! counters and histogram buckets are read now and less what they were 15 minutes ago (a
//! reading kept every [`SAMPLE_EVERY`] seconds), as Prometheus' `increase()` would, so what the
//! view shows for an agent is what `/metrics` serves. Readings are summed by service and agent
//! (and by edge for the graph) as they are taken, so what is kept is small whatever the number
//! of series. A sum that went down (series expired on idleness, or the collector restarted)
//! counts from zero, as a counter reset does.

use std::collections::{BTreeMap, HashMap, VecDeque};

use agentrace_semconv::metric::{self, label, status};

use crate::metrics::{Reading, Registry};

/// The window the view sums over.
pub const WINDOW_SECS: f64 = 15.0 * 60.0;
/// How often a reading is kept.
pub const SAMPLE_EVERY: f64 = 15.0;

/// What one agent's series add up to at one reading.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AgentTotals {
    pub invocations: f64,
    pub invocation_errors: f64,
    pub llm_requests: f64,
    /// LLM errors by type.
    pub llm_errors: BTreeMap<String, f64>,
    pub input_tokens: f64,
    pub output_tokens: f64,
    pub cost_usd: f64,
    /// Per-bucket counts of the LLM latency, time-to-first-token and invocation histograms.
    pub latency: Vec<u64>,
    pub time_to_first_token: Vec<u64>,
    pub invocation_duration: Vec<u64>,
}

/// An agent-graph edge: client, server, client service, server service.
pub type EdgeKey = [String; 4];

/// One reading of everything the view sums.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Totals {
    pub agents: HashMap<(String, String), AgentTotals>,
    /// Calls and failed calls per edge.
    pub edges: HashMap<EdgeKey, (f64, f64)>,
}

/// Where each wanted label sits in a family's label values.
fn positions(registry: &Registry, family: &str, wanted: &[&str]) -> Option<Vec<usize>> {
    let names = registry.label_names(family)?;
    wanted.iter().map(|name| names.iter().position(|label| label == name)).collect()
}

impl Totals {
    pub fn read(registry: &Registry) -> Self {
        let mut totals = Self::default();
        totals.read_agents(registry);
        for (family, failed) in
            [(metric::SERVICE_GRAPH_REQUEST_TOTAL, false), (metric::SERVICE_GRAPH_REQUEST_FAILED_TOTAL, true)]
        {
            let wanted = [label::CLIENT, label::SERVER, label::CLIENT_SERVICE, label::SERVER_SERVICE];
            let Some(at) = positions(registry, family, &wanted) else { continue };
            for reading in registry.read(family) {
                let key = [0, 1, 2, 3].map(|index| reading.labels[at[index]].clone());
                let edge = totals.edges.entry(key).or_default();
                if failed {
                    edge.1 += reading.value;
                } else {
                    edge.0 += reading.value;
                }
            }
        }
        totals
    }

    fn read_agents(&mut self, registry: &Registry) {
        type Add = fn(&mut AgentTotals, &Reading, Option<&str>);
        let families: [(&str, Option<&str>, Add); 9] = [
            (metric::AGENT_INVOCATIONS_TOTAL, Some(label::STATUS), |totals, reading, status| {
                totals.invocations += reading.value;
                if status == Some(status::ERROR) {
                    totals.invocation_errors += reading.value;
                }
            }),
            (metric::LLM_REQUESTS_TOTAL, None, |totals, reading, _| totals.llm_requests += reading.value),
            (metric::LLM_INFERENCE_ERRORS_TOTAL, Some(label::TYPE), |totals, reading, kind| {
                *totals.llm_errors.entry(kind.unwrap_or_default().to_owned()).or_default() += reading.value;
            }),
            (metric::LLM_PROMPT_TOKENS_TOTAL, None, |totals, reading, _| {
                totals.input_tokens += reading.value
            }),
            (metric::LLM_RESPONSE_TOKENS_TOTAL, None, |totals, reading, _| {
                totals.output_tokens += reading.value;
            }),
            (metric::LLM_COST_USD_TOTAL, None, |totals, reading, _| totals.cost_usd += reading.value),
            (metric::LLM_INFERENCE_LATENCY_SECONDS, None, |totals, reading, _| {
                add_buckets(&mut totals.latency, &reading.buckets);
            }),
            (metric::LLM_TIME_TO_FIRST_TOKEN_SECONDS, None, |totals, reading, _| {
                add_buckets(&mut totals.time_to_first_token, &reading.buckets);
            }),
            (metric::AGENT_INVOCATION_DURATION_SECONDS, None, |totals, reading, _| {
                add_buckets(&mut totals.invocation_duration, &reading.buckets);
            }),
        ];
        for (family, extra, add) in families {
            let mut wanted = vec![label::SERVICE, label::AGENT];
            wanted.extend(extra);
            let Some(at) = positions(registry, family, &wanted) else { continue };
            for reading in registry.read(family) {
                let key = (reading.labels[at[0]].clone(), reading.labels[at[1]].clone());
                let extra = at.get(2).map(|position| reading.labels[*position].as_str());
                add(self.agents.entry(key).or_default(), &reading, extra);
            }
        }
    }
}

fn add_buckets(sum: &mut Vec<u64>, buckets: &[u64]) {
    if sum.len() < buckets.len() {
        sum.resize(buckets.len(), 0);
    }
    for (total, count) in sum.iter_mut().zip(buckets) {
        *total += count;
    }
}

/// `now - then` of a counter's sum; `now` itself when the sum went down (a reset).
pub fn increase(now: f64, then: f64) -> f64 {
    if now >= then {
        now - then
    } else {
        now
    }
}

/// The same per bucket; any bucket that went down makes it a reset.
pub fn increase_buckets(now: &[u64], then: &[u64]) -> Vec<u64> {
    let reset = then.len() > now.len() || now.iter().zip(then).any(|(now, then)| now < then);
    if reset {
        return now.to_vec();
    }
    now.iter().enumerate().map(|(index, count)| count - then.get(index).copied().unwrap_or(0)).collect()
}

impl AgentTotals {
    /// What happened between `then` and `self`.
    pub fn since(&self, then: Option<&Self>) -> Self {
        let Some(then) = then else { return self.clone() };
        let llm_errors = self
            .llm_errors
            .iter()
            .map(|(kind, count)| {
                (kind.clone(), increase(*count, then.llm_errors.get(kind).copied().unwrap_or(0.0)))
            })
            .collect();
        Self {
            invocations: increase(self.invocations, then.invocations),
            invocation_errors: increase(self.invocation_errors, then.invocation_errors),
            llm_requests: increase(self.llm_requests, then.llm_requests),
            llm_errors,
            input_tokens: increase(self.input_tokens, then.input_tokens),
            output_tokens: increase(self.output_tokens, then.output_tokens),
            cost_usd: increase(self.cost_usd, then.cost_usd),
            latency: increase_buckets(&self.latency, &then.latency),
            time_to_first_token: increase_buckets(&self.time_to_first_token, &then.time_to_first_token),
            invocation_duration: increase_buckets(&self.invocation_duration, &then.invocation_duration),
        }
    }
}

/// `histogram_quantile` as Prometheus computes it, over per-bucket counts (the last +Inf) and
/// the finite upper bounds: linear within the bucket the rank falls in, from 0 for the first
/// bucket; the highest finite bound when it falls in +Inf. `None` without observations.
pub fn quantile(q: f64, bounds: &[f64], buckets: &[u64]) -> Option<f64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 || bounds.is_empty() || buckets.len() != bounds.len() + 1 {
        return None;
    }
    let rank = q * total as f64;
    let mut below = 0u64;
    for (index, count) in buckets.iter().enumerate() {
        let cumulative = below + count;
        if cumulative as f64 >= rank {
            let Some(upper) = bounds.get(index).copied() else { return bounds.last().copied() };
            let lower = if index == 0 { 0.0 } else { bounds[index - 1] };
            if index == 0 && upper <= 0.0 {
                return Some(upper);
            }
            let within = if *count == 0 { 0.0 } else { (rank - below as f64) / *count as f64 };
            return Some(lower + (upper - lower) * within);
        }
        below = cumulative;
    }
    bounds.last().copied()
}

/// The readings kept, oldest first, and when the collector started.
#[derive(Debug)]
pub struct Window {
    readings: VecDeque<(f64, Totals)>,
    started: f64,
}

impl Window {
    pub fn new(started: f64) -> Self {
        Self { readings: VecDeque::new(), started }
    }

    /// Keeps a reading taken at `now`, and lets go of those no window will start at again:
    /// all but the newest at or before `now - WINDOW_SECS`.
    pub fn keep(&mut self, now: f64, totals: Totals) {
        self.readings.push_back((now, totals));
        let start = now - WINDOW_SECS;
        while self.readings.get(1).is_some_and(|(at, _)| *at <= start) {
            self.readings.pop_front();
        }
    }

    /// Where a window ending at `now` starts: the newest reading at least [`WINDOW_SECS`] old,
    /// or the collector's start (with nothing counted before it).
    pub fn start(&self, now: f64) -> (f64, Option<&Totals>) {
        let start = now - WINDOW_SECS;
        match self.readings.iter().rev().find(|(at, _)| *at <= start) {
            Some((at, totals)) => (*at, Some(totals)),
            None => (self.started, None),
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.readings.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_as_prometheus_does() {
        let bounds = [0.1, 0.5, 1.0];
        // 10 below 0.1, 10 in (0.1, 0.5], none in (0.5, 1], 5 above 1.
        let buckets = [10, 10, 0, 5];
        assert_eq!(quantile(0.2, &bounds, &buckets), Some(0.05));
        let median = quantile(0.5, &bounds, &buckets).expect("a median");
        assert!((median - (0.1 + 0.4 * 2.5 / 10.0)).abs() < 1e-12, "{median}");
        assert_eq!(quantile(0.99, &bounds, &buckets), Some(1.0), "+Inf gives the highest bound");
        assert_eq!(quantile(0.5, &bounds, &[0, 0, 0, 0]), None);
    }

    #[test]
    fn a_sum_that_went_down_counts_from_zero() {
        assert_eq!(increase(10.0, 4.0), 6.0);
        assert_eq!(increase(3.0, 4.0), 3.0);
        assert_eq!(increase_buckets(&[5, 6], &[1, 2]), vec![4, 4]);
        assert_eq!(increase_buckets(&[5, 1], &[1, 2]), vec![5, 1]);
        assert_eq!(increase_buckets(&[5, 1], &[]), vec![5, 1]);
    }

    #[test]
    fn the_window_starts_at_the_newest_reading_old_enough_or_at_the_start() {
        let mut window = Window::new(1000.0);
        assert_eq!(window.start(1100.0).0, 1000.0);
        for at in (0..80).map(|step| 1000.0 + f64::from(step) * SAMPLE_EVERY) {
            window.keep(at, Totals::default());
        }
        let now = 1000.0 + 79.0 * SAMPLE_EVERY;
        let (start, baseline) = window.start(now);
        assert!(baseline.is_some());
        assert_eq!(start, now - WINDOW_SECS);
        assert_eq!(window.len(), 61, "the readings of one window and its start");
    }
}
