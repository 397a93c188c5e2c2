//! The live view in a real browser: the demo (two processes) sends to the collector, Debian's
//! headless Chromium opens the view (through chromedriver, driven by Selenium from PyPI), and
//! what the page shows is checked against `/metrics` and against the spans the collector
//! forwarded. Screenshots of the overview and of a waterfall are saved under
//! `target/view-screenshots/`; the page weight and the time to first render are printed (run
//! with `--nocapture`).

use std::collections::HashMap;

use crate::common::InProcessCollector;
use agentrace_testkit::eventually;

fn python() -> String {
    std::env::var("AGENTRACE_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// The sum of a family's series (classic text) whose labels include `matchers`.
fn metric_sum(page: &str, family: &str, matchers: &[&str]) -> f64 {
    page.lines()
        .filter(|line| line.starts_with(&format!("{family}{{")) && matchers.iter().all(|m| line.contains(m)))
        .filter_map(|line| line.rsplit_once(' ').and_then(|(_, value)| value.parse::<f64>().ok()))
        .sum()
}

/// `histogram_quantile(q, sum by (le) (…))` over the page's cumulative buckets of `family`.
fn quantile_from_page(page: &str, family: &str, matchers: &[&str], q: f64) -> Option<f64> {
    let mut cumulative: HashMap<String, f64> = HashMap::new();
    for line in page.lines().filter(|line| line.starts_with(&format!("{family}_bucket{{"))) {
        if !matchers.iter().all(|m| line.contains(m)) {
            continue;
        }
        let le = line.split("le=\"").nth(1)?.split('"').next()?.to_owned();
        let value: f64 = line.rsplit_once(' ')?.1.parse().ok()?;
        *cumulative.entry(le).or_default() += value;
    }
    let mut buckets: Vec<(f64, f64)> = cumulative
        .into_iter()
        .map(|(le, count)| (if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap_or(f64::NAN) }, count))
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last()?.1;
    if total == 0.0 {
        return None;
    }
    let rank = q * total;
    let index = buckets.iter().position(|(_, count)| *count >= rank)?;
    if buckets[index].0.is_infinite() {
        return Some(buckets[index - 1].0);
    }
    let (lower, below) = if index == 0 { (0.0, 0.0) } else { buckets[index - 1] };
    let (upper, count) = buckets[index];
    Some(lower + (upper - lower) * (rank - below) / (count - below))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_view_in_a_browser_shows_the_metrics_and_whole_traces() {
    let collector = InProcessCollector::start().await;
    let grpc = collector.grpc;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_agentrace-demo"))
        .args(["--endpoint", &format!("http://{grpc}")])
        .args(["--rps", "4", "--duration-secs", "6", "--failure-rate", "0.2", "--latency-scale", "0.3"])
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("run the demo");
    assert!(output.status.success(), "demo failed: {}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    let researcher = ["service=\"demo-researcher\"", "agent=\"researcher\""];
    let sent_calls = report["services"]["demo-researcher"]["llm_calls"].as_f64().expect("calls");
    // Everything sent has been derived (the demo flushed before it exited) and paired.
    eventually("the researcher's calls counted", async || {
        let page = collector.metrics_text().await;
        (metric_sum(&page, "llm_requests_total", &researcher) == sent_calls).then_some(())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;

    let out_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/view-screenshots");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../collector/tests/python/view_browser.py");
    let url = format!("http://{}/", collector.metrics);
    let browser = tokio::process::Command::new(python())
        .args([script, &url, "demo-researcher", "researcher", out_dir])
        .output()
        .await
        .unwrap_or_else(|error| {
            panic!("cannot run {} ({error}); run ./scripts/test, which sets it up", python())
        });
    assert!(browser.status.success(), "the browser run failed: {}", String::from_utf8_lossy(&browser.stderr));
    let seen: serde_json::Value = serde_json::from_slice(&browser.stdout).expect("JSON from the browser run");

    // The row's figures are /metrics' for the same window (all of it: the collector started
    // less than 15 minutes ago, and nothing arrives any more).
    let page = collector.metrics_text().await;
    let figures = &seen["figures"];
    for (field, family) in [
        ("llm_requests", "llm_requests_total"),
        ("input_tokens", "llm_prompt_tokens_total"),
        ("output_tokens", "llm_response_tokens_total"),
        ("invocations", "agent_invocations_total"),
        ("errors", "llm_inference_errors_total"),
        ("cost_usd", "llm_cost_usd_total"),
    ] {
        let shown = figures[field]["count"].as_f64().expect("a count");
        let served = metric_sum(&page, family, &researcher);
        assert!((shown - served).abs() <= 1e-9 * served.max(1.0), "{field}: page {shown}, /metrics {served}");
        let query = figures[field]["links"][0].as_str().expect("a PromQL link");
        assert!(query.contains(family), "{field} links to {query}");
    }
    let latency = "llm_inference_latency_seconds";
    assert_eq!(
        figures["latency"]["count"].as_f64(),
        Some(metric_sum(&page, &format!("{latency}_count"), &researcher))
    );
    let shown_p50: f64 = figures["latency"]["p50"].as_str().expect("a p50").parse().expect("a number");
    let served_p50 = quantile_from_page(&page, latency, &researcher, 0.5).expect("a median");
    assert!((shown_p50 - served_p50).abs() < 1e-9, "p50: page {shown_p50}, /metrics {served_p50}");

    // The waterfall holds every span the collector forwarded for that trace, nested as sent,
    // the researcher's process included.
    let trace_id = seen["trace_id"].as_str().expect("a trace id");
    let forwarded: HashMap<String, String> = collector
        .sink
        .spans()
        .iter()
        .filter(|(_, span)| hex::encode(&span.trace_id) == trace_id)
        .map(|(_, span)| (hex::encode(&span.span_id), hex::encode(&span.parent_span_id)))
        .collect();
    let rows = seen["rows"].as_array().expect("rows");
    let shown: HashMap<String, String> = rows
        .iter()
        .map(|row| {
            (
                row["span_id"].as_str().unwrap_or_default().to_owned(),
                row["parent_id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(shown, forwarded, "the waterfall's spans and parents are the forwarded ones");
    let depth: HashMap<&str, u64> = rows
        .iter()
        .map(|row| (row["span_id"].as_str().unwrap_or_default(), row["depth"].as_u64().unwrap_or(0)))
        .collect();
    for row in rows {
        if let Some(parent) = depth.get(row["parent_id"].as_str().unwrap_or_default()) {
            assert_eq!(row["depth"].as_u64(), Some(parent + 1), "nested under its parent: {row}");
        }
    }
    assert!(
        rows.iter().any(|row| row["service"] == "demo-researcher"),
        "the second process's spans are there"
    );
    assert!(rows.iter().any(|row| row["service"] == "demo-planner"));
    let console = seen["console"].as_array().expect("console");
    assert!(!console.iter().any(|line| line.to_string().contains("Content Security Policy")), "{console:?}");

    let weight: HashMap<String, u64> = seen["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|entry| {
            (entry["name"].as_str().unwrap_or_default().to_owned(), entry["body"].as_u64().unwrap_or(0))
        })
        .collect();
    let page_bytes: u64 =
        weight.iter().filter(|(name, _)| !name.contains("/api/")).map(|(_, bytes)| bytes).sum();
    let api_bytes: u64 =
        weight.iter().filter(|(name, _)| name.contains("/api/")).map(|(_, bytes)| bytes).sum();
    eprintln!(
        "live view: page {page_bytes} B (HTML, CSS, script), first API round {api_bytes} B; first render {} ms after navigation; {} spans in the waterfall of {trace_id}",
        seen["first_render_ms"], rows.len()
    );
    assert!(std::path::Path::new(out_dir).join("overview.png").exists());
    assert!(std::path::Path::new(out_dir).join("waterfall.png").exists());
    collector.stop().await;
}
