//! `/api/v1/summary`, `/api/v1/graph` and the GPU part of the summary, as JSON: every figure
//! comes with the PromQL that computes it in Prometheus, so the view leads into the stack.

use agentrace_semconv::metric::{self, graph_node, label};
use std::collections::HashMap;

use serde_json::{json, Value};

use super::window::{increase, quantile, AgentTotals, Totals};
use crate::metrics::Registry;

/// Most agent rows and graph edges in one answer (the busiest are kept).
pub const MAX_ROWS: usize = 500;
const RANGE: &str = "15m";

/// A label matcher list, values escaped as PromQL strings.
fn selector(pairs: &[(&str, &str)]) -> String {
    let matchers: Vec<String> = pairs
        .iter()
        .map(|(name, value)| {
            let escaped = value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
            format!("{name}=\"{escaped}\"")
        })
        .collect();
    format!("{{{}}}", matchers.join(","))
}

fn rate(family: &str, selector: &str) -> String {
    format!("sum(rate({family}{selector}[{RANGE}]))")
}

fn increase_query(family: &str, selector: &str) -> String {
    format!("sum(increase({family}{selector}[{RANGE}]))")
}

/// A counted figure: the count in the window, its rate per second and both queries.
fn counted(count: f64, seconds: f64, family: &str, selector: &str) -> Value {
    json!({
        "count": count,
        "rate": count / seconds,
        "query": rate(family, selector),
        "count_query": increase_query(family, selector),
    })
}

/// p50, p90 and p99 of a histogram's increase in the window.
fn quantiles(registry: &Registry, family: &str, buckets: &[u64], selector: &str) -> Value {
    let bounds = registry.bounds(family).unwrap_or_default();
    let one = |q: f64| {
        json!({
            "value": quantile(q, bounds, buckets),
            "query": format!("histogram_quantile({q}, sum by (le) (rate({family}_bucket{selector}[{RANGE}])))"),
        })
    };
    json!({ "p50": one(0.5), "p90": one(0.9), "p99": one(0.99), "count": buckets.iter().sum::<u64>() })
}

/// One agent's row over a window of `seconds`.
fn agent_row(registry: &Registry, service: &str, agent: &str, totals: &AgentTotals, seconds: f64) -> Value {
    let selector = selector(&[(label::SERVICE, service), (label::AGENT, agent)]);
    let requests = rate(metric::LLM_REQUESTS_TOTAL, &selector);
    let errors: Vec<Value> = totals
        .llm_errors
        .iter()
        .filter(|(_, count)| **count > 0.0)
        .map(|(kind, count)| {
            let typed = selector.replace('}', &format!(",{}=\"{kind}\"}}", label::TYPE));
            json!({
                "type": kind,
                "count": count,
                "ratio": if totals.llm_requests > 0.0 { Some(count / totals.llm_requests) } else { None },
                "query": format!("{} / {requests}", rate(metric::LLM_INFERENCE_ERRORS_TOTAL, &typed)),
            })
        })
        .collect();
    let error_count: f64 = totals.llm_errors.values().sum();
    json!({
        "service": service,
        "agent": agent,
        "invocations": counted(totals.invocations, seconds, metric::AGENT_INVOCATIONS_TOTAL, &selector),
        "llm_requests": counted(totals.llm_requests, seconds, metric::LLM_REQUESTS_TOTAL, &selector),
        "input_tokens": counted(totals.input_tokens, seconds, metric::LLM_PROMPT_TOKENS_TOTAL, &selector),
        "output_tokens": counted(totals.output_tokens, seconds, metric::LLM_RESPONSE_TOKENS_TOTAL, &selector),
        "errors": errors,
        "error_ratio": {
            "count": error_count,
            "value": if totals.llm_requests > 0.0 { Some(error_count / totals.llm_requests) } else { None },
            "query": format!("{} / {requests}", rate(metric::LLM_INFERENCE_ERRORS_TOTAL, &selector)),
        },
        "latency": quantiles(registry, metric::LLM_INFERENCE_LATENCY_SECONDS, &totals.latency, &selector),
        "time_to_first_token":
            quantiles(registry, metric::LLM_TIME_TO_FIRST_TOKEN_SECONDS, &totals.time_to_first_token, &selector),
        "invocation_duration":
            quantiles(registry, metric::AGENT_INVOCATION_DURATION_SECONDS, &totals.invocation_duration, &selector),
        "cost_usd": {
            "count": totals.cost_usd,
            "per_hour": totals.cost_usd / seconds * 3600.0,
            "query": format!("{} * 3600", rate(metric::LLM_COST_USD_TOTAL, &selector)),
        },
    })
}

/// Per service and agent, what happened between `start` (none: the collector's start) and now.
pub fn agents(registry: &Registry, now: &Totals, start: Option<&Totals>, seconds: f64) -> Vec<Value> {
    let mut rows: Vec<(&(String, String), AgentTotals)> = now
        .agents
        .iter()
        .map(|(key, totals)| (key, totals.since(start.and_then(|start| start.agents.get(key)))))
        .filter(|(_, totals)| totals.invocations > 0.0 || totals.llm_requests > 0.0)
        .collect();
    rows.sort_by(|a, b| {
        let busy = |totals: &AgentTotals| totals.llm_requests + totals.invocations;
        busy(&b.1).total_cmp(&busy(&a.1)).then_with(|| a.0.cmp(b.0))
    });
    rows.truncate(MAX_ROWS);
    rows.iter()
        .map(|((service, agent), totals)| agent_row(registry, service, agent, totals, seconds))
        .collect()
}

fn node_kind(name: &str) -> &'static str {
    if name.starts_with(graph_node::TOOL_PREFIX) {
        "tool"
    } else if name.starts_with(graph_node::MODEL_PREFIX) {
        "model"
    } else if name.starts_with(graph_node::MCP_PREFIX) {
        "mcp"
    } else {
        "agent"
    }
}

/// The agent graph over the window: its edges with their rates and error ratios, and the
/// nodes they join.
pub fn graph(now: &Totals, start: Option<&Totals>, seconds: f64) -> Value {
    let mut edges: Vec<(&[String; 4], f64, f64)> = now
        .edges
        .iter()
        .map(|(key, (calls, failed))| {
            let then = start.and_then(|start| start.edges.get(key)).copied().unwrap_or_default();
            (key, increase(*calls, then.0), increase(*failed, then.1))
        })
        .filter(|(_, calls, _)| *calls > 0.0)
        .collect();
    edges.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    edges.truncate(MAX_ROWS);
    let mut nodes: Vec<(&str, &str)> = Vec::new();
    for ([client, server, client_service, server_service], _, _) in &edges {
        for (name, service) in [(client, client_service), (server, server_service)] {
            if !nodes.iter().any(|(known, _)| *known == name.as_str()) {
                nodes.push((name, service));
            }
        }
    }
    let edges: Vec<Value> = edges
        .iter()
        .map(|([client, server, client_service, server_service], calls, failed)| {
            let selector = selector(&[(label::CLIENT, client), (label::SERVER, server)]);
            json!({
                "client": client, "server": server,
                "client_service": client_service, "server_service": server_service,
                "calls": calls, "failed": failed, "rate": calls / seconds,
                "error_ratio": failed / calls,
                "query": rate(metric::SERVICE_GRAPH_REQUEST_TOTAL, &selector),
                "error_query": format!("{} / {}",
                    rate(metric::SERVICE_GRAPH_REQUEST_FAILED_TOTAL, &selector),
                    rate(metric::SERVICE_GRAPH_REQUEST_TOTAL, &selector)),
            })
        })
        .collect();
    let nodes: Vec<Value> = nodes
        .iter()
        .map(|(name, service)| json!({ "id": name, "kind": node_kind(name), "service": service }))
        .collect();
    json!({ "window_seconds": seconds, "nodes": nodes, "edges": edges })
}

/// A gauge family's values by label values.
type Values = HashMap<Vec<String>, f64>;

/// One row per series of `rows_of` with the same series of each `figures` family (field,
/// family), and the query of each. Each family is read once.
fn gauge_rows(registry: &Registry, rows_of: &str, figures: &[(&str, &str)]) -> Vec<Value> {
    let names = registry.label_names(rows_of).unwrap_or_default();
    let read: Vec<(&str, &str, Values)> = figures
        .iter()
        .map(|(field, family)| {
            let values =
                registry.read(family).into_iter().map(|reading| (reading.labels, reading.value)).collect();
            (*field, *family, values)
        })
        .collect();
    registry
        .read(rows_of)
        .iter()
        .take(MAX_ROWS)
        .map(|reading| {
            let pairs: Vec<(&str, &str)> =
                names.iter().zip(&reading.labels).map(|(name, value)| (*name, value.as_str())).collect();
            let labels: serde_json::Map<String, Value> =
                pairs.iter().map(|(name, value)| ((*name).to_owned(), json!(value))).collect();
            let mut row = serde_json::Map::from_iter([("labels".to_owned(), Value::Object(labels))]);
            for (field, family, values) in &read {
                let query = format!("{family}{}", selector(&pairs));
                row.insert(
                    (*field).to_owned(),
                    json!({ "value": values.get(&reading.labels), "query": query }),
                );
            }
            Value::Object(row)
        })
        .collect()
}

/// The GPUs' and GPU processes' gauges as sampled last, with their queries.
pub fn gpus(registry: &Registry) -> Value {
    let devices = gauge_rows(
        registry,
        metric::GPU_UTILIZATION_RATIO,
        &[
            ("utilization", metric::GPU_UTILIZATION_RATIO),
            ("memory_used_bytes", metric::GPU_MEMORY_USED_BYTES),
            ("memory_total_bytes", metric::GPU_MEMORY_TOTAL_BYTES),
        ],
    );
    let processes = gauge_rows(
        registry,
        metric::GPU_PROCESS_MEMORY_USED_BYTES,
        &[
            ("memory_used_bytes", metric::GPU_PROCESS_MEMORY_USED_BYTES),
            ("utilization", metric::GPU_PROCESS_UTILIZATION_RATIO),
        ],
    );
    json!({ "devices": devices, "processes": processes })
}
