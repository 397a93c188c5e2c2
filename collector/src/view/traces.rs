//! `/api/v1/traces` (the held traces, filtered and sorted) and `/api/v1/traces/{id}` (one
//! trace's spans for the waterfall), as JSON. Parameters are checked: an unknown one, or a value
//! out of range, is answered 400 with the reason.

use std::collections::BTreeSet;

use agentrace_semconv::SpanClass;
use serde_json::{json, Value};

use super::staged::{Field, StagedSpan};
use super::store::{Trace, TraceStore};

/// Most traces in one list.
pub const MAX_LIMIT: usize = 200;
const DEFAULT_LIMIT: usize = 50;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sort {
    Recent,
    Slowest,
}

/// A checked `/api/v1/traces` query.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceQuery {
    pub agent: Option<String>,
    /// `Some(true)`: failed traces only; `Some(false)`: traces without a failed span.
    pub failed: Option<bool>,
    pub min_duration_nanos: u64,
    pub limit: usize,
    pub sort: Sort,
}

/// A duration such as `1.5` (seconds), `250ms`, `2s` or `1m`.
fn duration_nanos(text: &str) -> Option<u64> {
    let text = text.trim();
    let (number, scale) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 1e6)
    } else if let Some(s) = text.strip_suffix('s') {
        (s, 1e9)
    } else if let Some(m) = text.strip_suffix('m') {
        (m, 60e9)
    } else {
        (text, 1e9)
    };
    let value: f64 = number.trim().parse().ok()?;
    (value.is_finite() && value >= 0.0 && value * scale < u64::MAX as f64).then_some((value * scale) as u64)
}

impl TraceQuery {
    /// Parses the query string's pairs; the error is the reason told to the client.
    pub fn parse(pairs: &[(String, String)]) -> Result<Self, String> {
        let mut query = Self {
            agent: None,
            failed: None,
            min_duration_nanos: 0,
            limit: DEFAULT_LIMIT,
            sort: Sort::Recent,
        };
        for (key, value) in pairs {
            match key.as_str() {
                "agent" if value.len() <= 256 => {
                    query.agent = Some(value.clone()).filter(|agent| !agent.is_empty())
                }
                "agent" => return Err("agent: longer than 256 bytes".into()),
                "status" => {
                    query.failed = match value.as_str() {
                        "" | "any" => None,
                        "error" => Some(true),
                        "ok" => Some(false),
                        other => return Err(format!("status: {other:?} is not ok, error or any")),
                    }
                }
                "min_duration" => {
                    query.min_duration_nanos = duration_nanos(value).ok_or_else(|| {
                        format!("min_duration: {value:?} is not a duration such as 1.5, 250ms or 2s")
                    })?;
                }
                "limit" => {
                    query.limit =
                        value.parse().ok().filter(|limit| (1..=MAX_LIMIT).contains(limit)).ok_or_else(
                            || format!("limit: {value:?} is not a number from 1 to {MAX_LIMIT}"),
                        )?;
                }
                "sort" => {
                    query.sort = match value.as_str() {
                        "recent" => Sort::Recent,
                        "slowest" => Sort::Slowest,
                        other => return Err(format!("sort: {other:?} is not recent or slowest")),
                    }
                }
                other => {
                    return Err(format!(
                        "unknown parameter {other:?}: agent, status, min_duration, limit, sort"
                    ))
                }
            }
        }
        Ok(query)
    }

    fn admits(&self, trace: &Trace) -> bool {
        self.failed.is_none_or(|failed| trace.failed == failed)
            && trace.duration_nanos() >= self.min_duration_nanos
            && self.agent.as_deref().is_none_or(|agent| {
                trace.spans.iter().any(|span| trace.text(span.string(Field::Agent)) == agent)
            })
    }
}

/// A trace id as 32 lowercase hex digits.
pub fn parse_trace_id(text: &str) -> Result<[u8; 16], String> {
    let mut id = [0u8; 16];
    hex::decode_to_slice(text, &mut id)
        .map_err(|_| format!("{text:?} is not a trace id of 32 hex digits"))?;
    Ok(id)
}

/// Where a trace opens in the production stack.
pub fn tempo_link(tempo_url: Option<&str>, trace_id: &str) -> Option<String> {
    let url = tempo_url?;
    Some(if url.contains("{trace_id}") {
        url.replace("{trace_id}", trace_id)
    } else {
        format!("{url}/api/traces/{trace_id}")
    })
}

/// The span that starts the trace: the earliest whose parent is not held.
fn root(trace: &Trace) -> Option<&StagedSpan> {
    let held: BTreeSet<[u8; 8]> = trace.spans.iter().map(|span| span.span_id).collect();
    trace
        .spans
        .iter()
        .filter(|span| span.parent.is_none_or(|parent| !held.contains(&parent)))
        .min_by_key(|span| span.start)
}

fn summary(id: &[u8; 16], trace: &Trace, tempo_url: Option<&str>) -> Value {
    let trace_id = hex::encode(id);
    let root = root(trace);
    let entry_agent = trace
        .spans
        .iter()
        .filter(|span| span.class == SpanClass::Agent)
        .min_by_key(|span| span.start)
        .map(|span| trace.text(span.string(Field::Agent)));
    let services: BTreeSet<&str> =
        trace.spans.iter().map(|span| trace.text(span.string(Field::Service))).collect();
    let errors: BTreeSet<&str> =
        trace.spans.iter().filter_map(|span| span.error.map(|error| error.as_str())).collect();
    let sum = |read: fn(&StagedSpan) -> Option<f64>| trace.spans.iter().filter_map(read).sum::<f64>();
    json!({
        "trace_id": trace_id,
        "start_unix_ms": trace.start as f64 / 1e6,
        "duration_ms": trace.duration_nanos() as f64 / 1e6,
        "spans": trace.spans.len(),
        "failed": trace.failed,
        "sampled": trace.sampled,
        "root": root.map(|span| json!({
            "name": trace.text(span.string(Field::Name)),
            "service": trace.text(span.string(Field::Service)),
        })),
        "agent": entry_agent,
        "services": services.into_iter().take(10).collect::<Vec<_>>(),
        "errors": errors.into_iter().collect::<Vec<_>>(),
        "cost_usd": sum(|span| span.cost_usd),
        "input_tokens": sum(|span| span.input_tokens.map(|tokens| tokens as f64)),
        "output_tokens": sum(|span| span.output_tokens.map(|tokens| tokens as f64)),
        "tempo_url": tempo_link(tempo_url, &trace_id),
    })
}

/// The held traces that `query` admits, sorted and cut to its limit.
pub fn list(store: &TraceStore, query: &TraceQuery, tempo_url: Option<&str>) -> Value {
    let mut matching: Vec<(&[u8; 16], &Trace)> =
        store.iter().filter(|(_, trace)| query.admits(trace)).collect();
    let total = matching.len();
    match query.sort {
        Sort::Recent => matching.sort_by(|a, b| b.1.end.cmp(&a.1.end).then_with(|| a.0.cmp(b.0))),
        Sort::Slowest => {
            matching
                .sort_by(|a, b| b.1.duration_nanos().cmp(&a.1.duration_nanos()).then_with(|| a.0.cmp(b.0)));
        }
    }
    let traces: Vec<Value> =
        matching.iter().take(query.limit).map(|(id, trace)| summary(id, trace, tempo_url)).collect();
    json!({ "matching": total, "traces": traces })
}

fn non_empty(text: &str) -> Option<&str> {
    Some(text).filter(|text| !text.is_empty())
}

/// One span for the waterfall, its times in milliseconds from the trace's start.
fn span(trace: &Trace, span: &StagedSpan) -> Value {
    let text = |field| non_empty(trace.text(span.string(field)));
    json!({
        "span_id": hex::encode(span.span_id),
        "parent_id": span.parent.map(hex::encode),
        "name": trace.text(span.string(Field::Name)),
        "service": trace.text(span.string(Field::Service)),
        "kind": span.kind,
        "class": span.class.as_str(),
        "start_ms": span.start.saturating_sub(trace.start) as f64 / 1e6,
        "duration_ms": span.end.saturating_sub(span.start) as f64 / 1e6,
        "model": text(Field::Model),
        "provider": text(Field::Provider),
        "agent": text(Field::Agent),
        "tool": text(Field::Tool),
        "step": text(Field::Step),
        "operation": text(Field::Operation),
        "error": span.error.map(|error| error.as_str()),
        "input_tokens": span.input_tokens,
        "output_tokens": span.output_tokens,
        "cached_input_tokens": span.cached_input_tokens,
        "time_to_first_token_ms": span.time_to_first_token.map(|seconds| seconds * 1e3),
        "cost_usd": span.cost_usd,
        "gpu": span.gpu.map(|gpu| json!({
            "gpu_seconds": gpu.gpu_seconds,
            "energy_joules": gpu.energy_joules,
            "utilization_avg": gpu.utilization_avg,
            "utilization_max": gpu.utilization_max,
            "memory_used_max_bytes": gpu.memory_used_max_bytes,
        })),
    })
}

/// One held trace with every span, in start order.
pub fn detail(id: &[u8; 16], trace: &Trace, tempo_url: Option<&str>) -> Value {
    let mut spans: Vec<&StagedSpan> = trace.spans.iter().collect();
    spans.sort_by_key(|span| (span.start, span.span_id));
    let mut summary = summary(id, trace, tempo_url);
    summary["span_list"] = spans.iter().map(|one| span(trace, one)).collect();
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &[(&str, &str)]) -> Vec<(String, String)> {
        text.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect()
    }

    #[test]
    fn queries_parse_and_bad_ones_say_why() {
        let query = TraceQuery::parse(&pairs(&[
            ("agent", "planner"),
            ("status", "error"),
            ("min_duration", "250ms"),
            ("limit", "10"),
            ("sort", "slowest"),
        ]))
        .expect("valid");
        assert_eq!(query.agent.as_deref(), Some("planner"));
        assert_eq!(query.failed, Some(true));
        assert_eq!(query.min_duration_nanos, 250_000_000);
        assert_eq!((query.limit, query.sort), (10, Sort::Slowest));
        assert_eq!(
            TraceQuery::parse(&pairs(&[("min_duration", "1.5")])).expect("valid").min_duration_nanos,
            1_500_000_000
        );
        for (bad, reason) in [
            (("status", "failed"), "status"),
            (("min_duration", "-1"), "min_duration"),
            (("min_duration", "soon"), "min_duration"),
            (("limit", "0"), "limit"),
            (("limit", "100000"), "limit"),
            (("sort", "oldest"), "sort"),
            (("page", "2"), "unknown parameter"),
        ] {
            let error = TraceQuery::parse(&pairs(&[bad])).expect_err("refused");
            assert!(error.contains(reason), "{error}");
        }
        assert!(parse_trace_id("xyz").is_err());
        assert!(parse_trace_id("5b8efff798038103d269b633813fc60c").is_ok());
    }

    #[test]
    fn tempo_links_fill_a_template_or_name_tempos_api() {
        let id = "5b8efff798038103d269b633813fc60c";
        assert_eq!(tempo_link(None, id), None);
        assert_eq!(
            tempo_link(Some("http://tempo:3200"), id).as_deref(),
            Some("http://tempo:3200/api/traces/5b8efff798038103d269b633813fc60c")
        );
        assert_eq!(
            tempo_link(Some("http://g/explore?q={trace_id}"), id).as_deref(),
            Some("http://g/explore?q=5b8efff798038103d269b633813fc60c")
        );
    }
}
