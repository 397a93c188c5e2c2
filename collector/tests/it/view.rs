//! The live view's JSON API on a running collector: its figures equal `/metrics`, its traces
//! are the ones sent (with no content), bad parameters get a 400 and a reason, the page carries
//! a strict Content-Security-Policy, the metrics token guards it (as a bearer or a Basic
//! password), and `--view off` removes it.

use std::net::SocketAddr;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use serde_json::Value;

use crate::common::{agent_trace, eventually, metric_value, request, text, Collector};

async fn get(
    metrics: SocketAddr,
    path: &str,
    authorization: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut builder = reqwest::Client::new().get(format!("http://{metrics}{path}"));
    if let Some(authorization) = authorization {
        builder = builder.header("authorization", authorization);
    }
    let response = builder.send().await.expect("the collector answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.expect("a body"))
}

async fn json(metrics: SocketAddr, path: &str) -> Value {
    let (status, headers, body) = get(metrics, path, None).await;
    assert_eq!(status, 200, "{path}: {body}");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["cache-control"], "no-store");
    serde_json::from_str(&body).expect("JSON")
}

/// The sum of a family's series whose labels include `matchers`.
fn metric_sum(page: &str, family: &str, matchers: &[&str]) -> f64 {
    page.lines()
        .filter(|line| line.starts_with(&format!("{family}{{")) && matchers.iter().all(|m| line.contains(m)))
        .filter_map(|line| line.rsplit_once(' ').and_then(|(_, value)| value.parse::<f64>().ok()))
        .sum()
}

#[tokio::test]
async fn the_api_shows_what_metrics_serves_and_the_traces_sent() {
    let collector = Collector::start(&["--graph-wait-secs", "1"]).await;
    let mut client = TraceServiceClient::connect(collector.grpc_url()).await.expect("connect");
    let mut sent = Vec::new();
    for n in 1..=3u8 {
        let trace_id = [n; 16];
        let mut trace = agent_trace("support-bot", trace_id);
        // Content that must not reach the view.
        trace.scope_spans[0].spans[1].attributes.push(text("gen_ai.input.messages", "a secret prompt"));
        client.export(request(vec![trace])).await.expect("accepted");
        sent.push(hex::encode(trace_id));
    }
    let metrics = collector.metrics;
    let summary = eventually("the researcher's three invocations in the summary", async || {
        let summary = json(metrics, "/api/v1/summary").await;
        let row = summary["agents"].as_array()?.iter().find(|row| row["agent"] == "researcher")?.clone();
        (row["invocations"]["count"] == 3.0).then_some(summary)
    })
    .await;
    let row = summary["agents"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|row| row["agent"] == "researcher")
        .expect("row");
    let page = collector.scrape().await;
    let researcher = ["service=\"support-bot\"", "agent=\"researcher\""];
    for (field, family) in [
        ("llm_requests", "llm_requests_total"),
        ("input_tokens", "llm_prompt_tokens_total"),
        ("output_tokens", "llm_response_tokens_total"),
        ("invocations", "agent_invocations_total"),
    ] {
        let served = metric_sum(&page, family, &researcher);
        assert_eq!(row[field]["count"].as_f64(), Some(served), "{field} against {family}: {row}");
        assert!(row[field]["query"].as_str().expect("a query").contains(family));
    }
    assert_eq!(row["input_tokens"]["count"], 450.0);
    assert_eq!(row["errors"][0]["type"], "timeout");
    assert_eq!(row["errors"][0]["count"], 3.0);
    assert_eq!(row["error_ratio"]["value"], 0.5);
    let latency_count = metric_value(&page, "llm_inference_latency_seconds_count{service=\"support-bot\",agent=\"researcher\",provider=\"openai\",model=\"gpt-4o\",operation=\"chat\"}");
    assert_eq!(row["latency"]["count"].as_f64(), latency_count);
    let p50 = row["latency"]["p50"]["value"].as_f64().expect("a median");
    assert!((1.0..=5.0).contains(&p50), "the calls took 2 s and 1.9 s: {p50}");
    assert!(row["latency"]["p99"]["query"].as_str().expect("query").starts_with("histogram_quantile(0.99, sum by (le) (rate(llm_inference_latency_seconds_bucket{service=\"support-bot\",agent=\"researcher\"}[15m])))"));

    let graph = json(metrics, "/api/v1/graph").await;
    let edges = graph["edges"].as_array().expect("edges");
    assert!(
        edges.iter().any(|edge| edge["client"] == "researcher"
            && edge["server"] == "tool:web_search"
            && edge["calls"] == 3.0),
        "{graph}"
    );
    assert!(graph["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .any(|node| node["id"] == "tool:web_search" && node["kind"] == "tool"));

    let listed = json(metrics, "/api/v1/traces?status=error&sort=slowest&agent=researcher").await;
    let mut ids: Vec<String> = listed["traces"]
        .as_array()
        .expect("traces")
        .iter()
        .map(|trace| trace["trace_id"].as_str().expect("id").to_owned())
        .collect();
    ids.sort();
    assert_eq!(ids, sent);
    assert_eq!(json(metrics, "/api/v1/traces?status=ok").await["matching"], 0);
    assert_eq!(json(metrics, "/api/v1/traces?min_duration=1m").await["matching"], 0);
    let detail = json(metrics, &format!("/api/v1/traces/{}", sent[0])).await;
    let spans = detail["span_list"].as_array().expect("spans");
    assert_eq!(spans.len(), 4);
    assert_eq!(spans[0]["class"], "agent");
    assert!(spans[1..].iter().all(|span| span["parent_id"] == spans[0]["span_id"]));
    assert!(spans.iter().any(|span| span["error"] == "timeout" && span["model"] == "gpt-4o"));
    assert!(!detail.to_string().contains("secret prompt"), "no content in the view: {detail}");

    check_refusals_and_headers(metrics).await;
    let fill = metric_value(&collector.scrape().await, "agentrace_view_traces");
    assert_eq!(fill, Some(3.0));
    collector.stop().await;
}

/// Bad parameters are answered 400 with the reason; the page's files carry their types, a
/// strict policy and a validator.
async fn check_refusals_and_headers(metrics: SocketAddr) {
    for (path, reason) in [
        ("/api/v1/traces?status=broken", "status"),
        ("/api/v1/traces?limit=0", "limit"),
        ("/api/v1/traces?min_duration=soon", "min_duration"),
        ("/api/v1/traces?page=2", "unknown parameter"),
        ("/api/v1/traces/not-an-id", "trace id"),
        ("/api/v1/summary?agent=x", "unknown parameter"),
    ] {
        let (status, _, body) = get(metrics, path, None).await;
        assert_eq!(status, 400, "{path}");
        assert!(body.contains(reason), "{path}: {body}");
    }
    let (status, _, _) = get(metrics, &format!("/api/v1/traces/{}", "ab".repeat(16)), None).await;
    assert_eq!(status, 404);

    let (status, headers, page) = get(metrics, "/", None).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    let policy = headers["content-security-policy"].to_str().expect("ascii");
    assert!(policy.contains("script-src 'self'") && !policy.contains("unsafe-inline"), "{policy}");
    assert!(page.contains("<script src=\"/view.js\" defer></script>") && !page.contains("<script>"));
    let (_, headers, _) = get(metrics, "/view.js", None).await;
    assert_eq!(headers["content-type"], "text/javascript; charset=utf-8");
    let etag = headers["etag"].to_str().expect("an etag").to_owned();
    let revalidated = reqwest::Client::new()
        .get(format!("http://{metrics}/view.js"))
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("answer");
    assert_eq!(revalidated.status().as_u16(), 304);
}

#[tokio::test]
async fn the_token_guards_the_view_and_off_removes_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "view-secret\n").expect("write the token");
    let token = token_file.to_str().expect("utf-8 path");
    let guarded = Collector::start(&["--metrics-auth-token-file", token]).await;
    let (status, headers, _) = get(guarded.metrics, "/", None).await;
    assert_eq!(status, 401);
    assert!(headers["www-authenticate"].to_str().expect("ascii").starts_with("Basic"));
    let (status, _, _) = get(guarded.metrics, "/api/v1/summary", Some("Bearer wrong")).await;
    assert_eq!(status, 401);
    let (status, _, _) = get(guarded.metrics, "/api/v1/summary", Some("Bearer view-secret")).await;
    assert_eq!(status, 200);
    // base64("me:view-secret"), as a browser sends it once asked.
    let (status, _, _) = get(guarded.metrics, "/", Some("Basic bWU6dmlldy1zZWNyZXQ=")).await;
    assert_eq!(status, 200);
    guarded.stop().await;

    let off = Collector::start(&["--view", "off"]).await;
    for path in ["/", "/view.js", "/api/v1/summary", "/api/v1/traces"] {
        assert_eq!(get(off.metrics, path, None).await.0, 404, "{path}");
    }
    assert_eq!(get(off.metrics, "/metrics", None).await.0, 200);
    assert!(metric_value(&off.scrape().await, "agentrace_view_traces").is_none());
    off.stop().await;
}
