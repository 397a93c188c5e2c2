//! The stack's alerts on live data: the collector's own counters exist from the start, so
//! `TraceExportFailing` fires when the trace endpoint is down from the first moment, on a real
//! Prometheus evaluating the rule as `prometheus/rules/agentrace.yml` writes it, its windows
//! shortened from minutes to seconds so the test does not wait five minutes.

use std::path::PathBuf;

use agentrace_testkit::reserve_address;

use crate::common::{request, Collector, Prometheus};

/// The alert's rule from the stack's rules file, with its windows and hold made seconds.
fn trace_export_failing_rule() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../prometheus/rules/agentrace.yml");
    let rules = std::fs::read_to_string(path).expect("rules file");
    let at = rules.find("- alert: TraceExportFailing").expect("the alert");
    let expr = rules[at..].lines().find_map(|line| line.trim().strip_prefix("expr: ")).expect("its expr");
    format!(
        "groups:\n  - name: live\n    rules:\n      - alert: TraceExportFailing\n        expr: {}\n",
        expr.replace("[5m]", "[15s]")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_export_failing_fires_when_the_endpoint_is_down_from_the_start() {
    let down = reserve_address();
    let endpoint = format!("http://{}", down.address);
    let collector =
        Collector::start(&["--traces-endpoint", &endpoint, "--export-first-backoff-secs", "0.2"]).await;
    let rule = trace_export_failing_rule();
    assert!(rule.contains("agentrace_spans_exported_total[15s])) == 0"), "{rule}");
    let prometheus = Prometheus::start_with_rules(&[collector.metrics], Some(&rule)).await;
    let request = request(vec![crate::common::agent_trace("down", [9; 16])]);
    let (status, ..) =
        collector.post("application/x-protobuf", None, prost::Message::encode_to_vec(&request)).await;
    assert_eq!(status, 200);
    prometheus.expect_value("agentrace_spans_exported_total", 0.0).await;
    prometheus.expect_value(r#"sum(ALERTS{alertname="TraceExportFailing",alertstate="firing"})"#, 1.0).await;
}
