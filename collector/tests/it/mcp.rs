//! A real MCP client and server: the `mcp` package from PyPI (2.3.0, pinned, in
//! `target/agents/mcp/`, made by `collector/tests/agents/setup`), whose client and server
//! record their own spans in the MCP semantic conventions. The server runs as a subprocess on
//! stdio with a service of its own; both export OTLP/HTTP to a collector in this process, and a real
//! Prometheus reads the metrics back.

use std::path::PathBuf;

use crate::common::{Collector, Prometheus};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agents_mcp_tool_calls_count_as_its_tool_calls_with_mcp_histograms_and_edges() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join("target/agents/mcp/bin/python");
    assert!(python.exists(), "{} missing: run collector/tests/agents/setup mcp", python.display());
    let collector = Collector::start(&["--graph-wait-secs", "1"]).await;
    let prometheus = Prometheus::start(&[collector.metrics]).await;
    let output = tokio::process::Command::new(&python)
        .arg(root.join("collector/tests/agents/run_mcp.py"))
        .arg(format!("http://{}", collector.http))
        .output()
        .await
        .expect("run the MCP agent");
    assert!(output.status.success(), "run_mcp.py: {}", String::from_utf8_lossy(&output.stderr));
    let trace_id = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert_eq!(trace_id.len(), 32, "{trace_id}");

    let agent = r#"service="mcp-agent",agent="weather-agent""#;
    // Two tool calls of the agent, from its MCP client spans (the SDK's client span does not
    // mark a tool error; the server span does).
    prometheus
        .expect_value(&format!(r#"sum(agent_tool_calls_total{{{agent},tool="get_weather"}})"#), 2.0)
        .await;
    let client = format!(
        r#"sum(mcp_client_operation_duration_seconds_count{{{agent},method="tools/call",tool="get_weather"}})"#
    );
    prometheus.expect_value(&client, 2.0).await;
    let listed =
        format!(r#"sum(mcp_client_operation_duration_seconds_count{{{agent},method="tools/list"}})"#);
    prometheus.expect_value(&listed, 1.0).await;
    let server = r#"mcp_server_operation_duration_seconds_count{service="weather-mcp-server",method="tools/call",tool="get_weather""#;
    prometheus.expect_value(&format!(r#"{server},status="ok"}}"#), 1.0).await;
    prometheus.expect_value(&format!(r#"{server},status="error"}}"#), 1.0).await;
    // The edges: the agent to its tool, and to the MCP server by the server span's service
    // (stdio names no address), once per MCP operation.
    let edge = |server: &str| {
        format!(r#"sum(traces_service_graph_request_total{{client="weather-agent",server="{server}"}})"#)
    };
    prometheus.expect_value(&edge("tool:get_weather"), 2.0).await;
    prometheus.expect_value(&edge("mcp:weather-mcp-server"), 4.0).await;
    prometheus.expect_value("sum(agentrace_attribution_unresolved_total) or vector(0)", 0.0).await;
    // Session ids never become labels.
    let page = collector.scrape().await;
    assert!(!page.contains("session"), "no session label or value on the page");
}
