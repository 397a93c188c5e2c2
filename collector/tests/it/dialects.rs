//! Golden tests: one fixture per instrumentation dialect (OTLP/JSON under
//! `tests/fixtures/dialects/`, written from each dialect's published conventions), each with
//! an agent, a tool, an LLM call and a failed LLM call. Every dialect must produce the same
//! `/metrics` observations as the GenAI fixture, which are kept in `expected.metrics`.
//! Span metrics are left out of the comparison: span names and kinds differ by design.
//!
//! `UPDATE_GOLDEN=1 cargo test --test it dialects` rewrites `expected.metrics` from the GenAI
//! fixture; review the diff.

use std::path::PathBuf;

use agentrace_collector::harness;

const DIALECTS: [&str; 6] = ["genai", "genai_deprecated", "openinference", "openllmetry", "openlit", "vllm"];
/// Metric families compared across dialects; evaluations are checked on their own, since only
/// some dialects can express them.
const COMPARED: fn(&str) -> bool = |line| {
    !line.starts_with('#')
        && !line.starts_with("traces_spanmetrics")
        && !line.starts_with("agentrace_")
        && !line.starts_with("llm_evaluation_score")
};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dialects")
}

/// All lines of `/metrics` (classic format, sorted) after one fixture went through the pipeline
/// and the agent-graph window closed.
fn render(dialect: &str) -> Vec<String> {
    let body = std::fs::read(fixtures().join(format!("{dialect}.json"))).expect("fixture");
    let prices = fixtures().join("prices.toml");
    let text = harness::replay_json(&[body], Some(&prices), 1_700_000_010.0)
        .unwrap_or_else(|error| panic!("{dialect}: {error}"));
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

fn compared(lines: &[String]) -> String {
    lines.iter().filter(|line| COMPARED(line)).map(|line| format!("{line}\n")).collect()
}

#[test]
fn every_dialect_yields_the_genai_observations() {
    let expected_path = fixtures().join("expected.metrics");
    let genai = compared(&render("genai"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&expected_path, &genai).expect("write golden file");
    }
    let expected = std::fs::read_to_string(&expected_path).expect("golden file");
    assert_eq!(genai, expected, "the GenAI fixture no longer matches expected.metrics");
    for dialect in DIALECTS {
        let actual = compared(&render(dialect));
        let missing: Vec<&str> =
            expected.lines().filter(|line| !actual.lines().any(|other| other == *line)).collect();
        let extra: Vec<&str> =
            actual.lines().filter(|line| !expected.lines().any(|other| other == *line)).collect();
        assert!(missing.is_empty() && extra.is_empty(), "{dialect}:\nmissing {missing:#?}\nextra {extra:#?}");
    }
}

fn value(lines: &[String], series: &str) -> Option<f64> {
    lines.iter().find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

#[test]
fn the_golden_observations_are_the_ones_the_fixtures_describe() {
    let lines = render("genai");
    // The fixtures' calls and tool call do not name their agent: the trace does (researcher).
    let llm = "service=\"golden\",agent=\"researcher\",provider=\"vllm\",model=\"llama-3.1-8b-instruct\"";
    let checks = [
        (format!("llm_prompt_tokens_total{{{llm}}}"), 150.0),
        (format!("llm_response_tokens_total{{{llm}}}"), 40.0),
        (format!("llm_requests_total{{{llm},operation=\"chat\",status=\"ok\"}}"), 1.0),
        (format!("llm_requests_total{{{llm},operation=\"chat\",status=\"error\"}}"), 1.0),
        (format!("llm_inference_errors_total{{{llm},type=\"timeout\"}}"), 1.0),
        (format!("llm_time_to_first_token_seconds_sum{{{llm}}}"), 0.25),
        (format!("llm_output_tokens_per_second_sum{{{llm}}}"), 40.0 / 1.75),
        ("agent_invocations_total{service=\"golden\",agent=\"researcher\",status=\"ok\"}".to_owned(), 1.0),
        ("agent_tool_calls_total{service=\"golden\",agent=\"researcher\",tool=\"web_search\",status=\"ok\"}".to_owned(), 1.0),
        ("agent_invocation_llm_calls_sum{service=\"golden\",agent=\"researcher\"}".to_owned(), 2.0),
        ("agent_invocation_tool_calls_sum{service=\"golden\",agent=\"researcher\"}".to_owned(), 1.0),
        ("agent_invocation_tokens_sum{service=\"golden\",agent=\"researcher\"}".to_owned(), 190.0),
        ("traces_service_graph_request_total{client=\"golden\",server=\"researcher\",connection_type=\"\",client_service=\"golden\",server_service=\"golden\"}".to_owned(), 1.0),
        ("traces_service_graph_request_total{client=\"researcher\",server=\"tool:web_search\",connection_type=\"\",client_service=\"golden\",server_service=\"golden\"}".to_owned(), 1.0),
        (
            "traces_service_graph_request_failed_total{client=\"researcher\",server=\"model:llama-3.1-8b-instruct\",connection_type=\"\",client_service=\"golden\",server_service=\"golden\"}"
                .to_owned(),
            1.0,
        ),
    ];
    for (series, expected) in checks {
        let actual = value(&lines, &series).unwrap_or_else(|| panic!("no {series}"));
        assert!((actual - expected).abs() < 1e-9, "{series}: {actual} ≠ {expected}");
    }
}

#[test]
fn the_cost_of_a_fixture_call_matches_the_price_table_by_hand() {
    // prices.toml: llama-3.1-8b-instruct at 0.20 (input) and 0.60 (output) USD per million.
    // Successful call: 100 × 0.20 + 40 × 0.60 = 44; failed call: 50 × 0.20 = 10; 54 per million.
    let by_hand = (100.0 * 0.20 + 40.0 * 0.60 + 50.0 * 0.20) / 1e6;
    for dialect in DIALECTS {
        let lines = render(dialect);
        let series =
            "llm_cost_usd_total{service=\"golden\",agent=\"researcher\",provider=\"vllm\",model=\"llama-3.1-8b-instruct\"}";
        let cost = value(&lines, series).unwrap_or_else(|| panic!("{dialect}: no cost"));
        assert!((cost - by_hand).abs() < 1e-12, "{dialect}: {cost} ≠ {by_hand}");
    }
}

#[test]
fn evaluations_come_from_genai_events_and_openinference_attributes() {
    for dialect in ["genai", "openinference"] {
        let lines = render(dialect);
        let series = "llm_evaluation_score_sum{service=\"golden\",evaluation=\"relevance\"}";
        assert_eq!(value(&lines, series), Some(0.8), "{dialect}");
    }
}

#[test]
fn session_and_conversation_ids_never_become_labels() {
    for dialect in DIALECTS {
        assert!(!render(dialect).iter().any(|line| line.contains("conv-42")), "{dialect}");
    }
}

/// The GenAI v0.1.0 names and the names they replaced (`cache_creation.input_tokens`,
/// `cache_read_input_tokens`, `reasoning_tokens`, `prompt_tokens`, `gen_ai.system`) give the
/// same page, line for line; and the page holds what the v0.1.0 fixture describes: cache and
/// reasoning counters, a call without usage, a guardrail result, an MCP tool call with both
/// histograms and edges, a plan step, an A2A edge, cost priced per cache rate.
#[test]
fn both_name_generations_of_v0_1_0_give_the_same_page() {
    let current = render("genai_v010");
    assert_eq!(current, render("genai_v010_older_names"), "the page differs between name generations");
    let llm = r#"service="golden-v010",agent="planner",provider="vllm",model="llama-3.1-8b-instruct""#;
    // 200 uncached × 0.20 + 600 read × 0.02 + 200 written × 0.25 + 50 output × 0.60, per million.
    let cost = (200.0 * 0.20 + 600.0 * 0.02 + 200.0 * 0.25 + 50.0 * 0.60) / 1e6;
    let checks = [
        (format!("llm_cache_read_tokens_total{{{llm}}}"), 600.0),
        (format!("llm_cache_write_tokens_total{{{llm}}}"), 200.0),
        (format!("llm_reasoning_tokens_total{{{llm}}}"), 20.0),
        (format!("llm_prompt_tokens_total{{{llm}}}"), 1000.0),
        (format!("llm_usage_missing_total{{{llm}}}"), 1.0),
        (format!("llm_cost_usd_total{{{llm}}}"), cost),
        (
            r#"llm_guardrail_results_total{service="golden-v010",agent="planner",guardrail="pii-filter",decision="GUARDRAIL_INTERVENED"}"#.to_owned(),
            1.0,
        ),
        (r#"agent_steps_total{service="golden-v010",agent="planner",step="plan"}"#.to_owned(), 1.0),
        (
            r#"agent_tool_calls_total{service="golden-v010",agent="planner",tool="get_weather",status="ok"}"#.to_owned(),
            1.0,
        ),
        (
            r#"mcp_client_operation_duration_seconds_count{service="golden-v010",agent="planner",method="tools/call",tool="get_weather",status="ok"}"#.to_owned(),
            1.0,
        ),
        (
            r#"mcp_server_operation_duration_seconds_count{service="weather-server",method="tools/call",tool="get_weather",status="error"}"#.to_owned(),
            1.0,
        ),
        (
            r#"traces_service_graph_request_total{client="planner",server="mcp:weather-server",connection_type="",client_service="golden-v010",server_service="weather-server"}"#.to_owned(),
            1.0,
        ),
        (
            r#"traces_service_graph_request_total{client="planner",server="travel-agent",connection_type="",client_service="golden-v010",server_service="travel.internal"}"#.to_owned(),
            1.0,
        ),
    ];
    for (series, expected) in checks {
        let found = value(&current, &series);
        assert!(
            found.is_some_and(|found| (found - expected).abs() < 1e-15),
            "{series}: {found:?}, expected {expected}"
        );
    }
    assert!(
        !current.iter().any(|line| line.contains("sess-secret") || line.contains("conv-7")),
        "ids never become labels"
    );
}
