//! The official OpenTelemetry Python SDK and OTLP exporters (from PyPI; `scripts/test`
//! installs them into a virtualenv and sets `AGENTRACE_PYTHON`) send GenAI-convention spans to
//! the collector binary over gRPC and over HTTP; a real Prometheus reads the metrics back.

use crate::common::{python, Collector, Prometheus};

async fn send(protocol: &str, endpoint: &str, service: &str) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/send_genai.py");
    let output = tokio::process::Command::new(python())
        .args([script, protocol, endpoint, service])
        .output()
        .await
        .unwrap_or_else(|error| {
            panic!("cannot run {} ({error}); run ./scripts/test, which sets it up", python())
        });
    assert!(
        output.status.success(),
        "send_genai.py {protocol} failed (the OpenTelemetry Python SDK comes from ./scripts/test): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_spans_over_grpc_and_http_become_the_right_metrics() {
    let collector = Collector::start(&["--graph-wait-secs", "1"]).await;
    let prometheus = Prometheus::start(&[collector.metrics]).await;
    let grpc_trace = send("grpc", &format!("http://{}", collector.grpc), "py-grpc").await;
    let http_trace = send("http", &format!("http://{}", collector.http), "py-http").await;
    assert_eq!((grpc_trace.len(), http_trace.len()), (32, 32));

    for service in ["py-grpc", "py-http"] {
        crate::common::expect_agent_trace_metrics(&prometheus, service).await;
    }
    prometheus
        .expect_value(
            "sum(traces_service_graph_request_total{client=\"researcher\",server=\"tool:web_search\"})",
            2.0,
        )
        .await;
    crate::common::expect_exemplar_trace_ids(&prometheus, vec![grpc_trace, http_trace]).await;
}

/// One model call with cached, cache-written and reasoning tokens, recorded by the application
/// and by the inference server under it: counted once, priced to the cent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_call_seen_by_client_and_server_counts_once_at_its_exact_cost() {
    let dir = tempfile::tempdir().expect("temp dir");
    let prices = dir.path().join("prices.toml");
    let table =
        "[models.\"priced-model\"]\ninput = 3.0\noutput = 15.0\ncached_input = 0.3\ncache_write = 3.75\n";
    std::fs::write(&prices, table).expect("write prices");
    let price_file = prices.to_str().expect("utf-8 path");
    let collector = Collector::start(&["--graph-wait-secs", "1", "--price-file", price_file]).await;
    let prometheus = Prometheus::start(&[collector.metrics]).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/send_cached_call.py");
    let output = tokio::process::Command::new(python())
        .args([script, &format!("http://{}", collector.http), "priced-model"])
        .output()
        .await
        .expect("run send_cached_call.py");
    assert!(output.status.success(), "send_cached_call.py: {}", String::from_utf8_lossy(&output.stderr));

    let series = r#"{service="cost-app",agent="billing-agent",provider="anthropic",model="priced-model"}"#;
    for (metric, expected) in [
        ("llm_prompt_tokens_total", 1000.0),
        ("llm_response_tokens_total", 50.0),
        ("llm_cache_read_tokens_total", 600.0),
        ("llm_cache_write_tokens_total", 200.0),
        ("llm_reasoning_tokens_total", 20.0),
        // 200 uncached × 3.00 + 600 read × 0.30 + 200 written × 3.75 + 50 output × 15.00,
        // reasoning inside the output: 2280 per million.
        ("llm_cost_usd_total", 0.00228),
    ] {
        prometheus.expect_value(&format!("{metric}{series}"), expected).await;
    }
    // The server's span of the same call adds nothing to the call metrics.
    prometheus.expect_value("sum(llm_requests_total)", 1.0).await;
    prometheus.expect_value("sum(llm_prompt_tokens_total)", 1000.0).await;
    prometheus.expect_value("sum(llm_cost_usd_total)", 0.00228).await;
    prometheus.expect_value("agentrace_llm_spans_deduplicated_total", 1.0).await;
    prometheus.expect_value(r#"sum(traces_spanmetrics_calls_total{service="vllm-server"})"#, 1.0).await;
}

/// `--metric-names both`: the same calls under agentrace's names and the GenAI conventions'
/// (as the OpenTelemetry Collector's Prometheus exporter names them), both read by a real
/// Prometheus, and the page strictly valid; `otel` serves the conventions' names in place of
/// agentrace's for what both name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_name_sets_are_served_and_scraped() {
    let collector = Collector::start(&["--graph-wait-secs", "1", "--metric-names", "both"]).await;
    let prometheus = Prometheus::start(&[collector.metrics]).await;
    let trace = send("http", &format!("http://{}", collector.http), "py-names").await;
    assert_eq!(trace.len(), 32);
    crate::common::expect_agent_trace_metrics(&prometheus, "py-names").await;
    let call = r#"service_name="py-names",gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o""#;
    for (query, expected) in [
        (format!("sum(gen_ai_client_inference_duration_seconds_count{{{call}}})"), 2.0),
        (format!(r#"gen_ai_client_inference_duration_seconds_count{{{call},error_type="timeout"}}"#), 1.0),
        (format!(r#"gen_ai_client_inference_usage_input_tokens_total{{{call},gen_ai_token_modality="unknown"}}"#), 150.0),
        (format!(r#"gen_ai_client_inference_usage_output_tokens_total{{{call},gen_ai_token_modality="unknown"}}"#), 40.0),
        (r#"sum(gen_ai_invoke_agent_duration_seconds_count{service_name="py-names",gen_ai_agent_name="researcher"})"#.to_owned(), 1.0),
        (r#"sum(gen_ai_invoke_agent_inference_calls_sum{gen_ai_agent_name="researcher"})"#.to_owned(), 2.0),
        (r#"sum(gen_ai_execute_tool_duration_seconds_count{gen_ai_tool_name="web_search",gen_ai_agent_name="researcher"})"#.to_owned(), 1.0),
        (r#"sum(llm_prompt_tokens_total{service="py-names"})"#.to_owned(), 150.0),
    ] {
        prometheus.expect_value(&query, expected).await;
    }
    let samples = crate::exposition::check_page(collector.metrics).await;
    assert!(samples > 0);

    let otel = Collector::start(&["--graph-wait-secs", "1", "--metric-names", "otel"]).await;
    send("http", &format!("http://{}", otel.http), "py-otel").await;
    let page = crate::common::eventually("the conventions' usage counter", async || {
        let page = otel.scrape().await;
        page.contains("gen_ai_client_inference_usage_input_tokens_total{").then_some(page)
    })
    .await;
    assert!(!page.contains("llm_prompt_tokens_total"), "otel serves the conventions' name in its place");
    assert!(page.contains("llm_requests_total{"), "what the conventions do not name stays");
    crate::exposition::check_page(otel.metrics).await;
}
