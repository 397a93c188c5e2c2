use agentrace_semconv::metric;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::*;
use crate::metrics::SeriesLimits;

fn builtin() -> &'static LogRules {
    LogRules::builtin()
}

/// What the rules make of one line, as `metric{labels} value` strings.
fn updates(rules: &LogRules, line: &str) -> Vec<String> {
    let mut out = Vec::new();
    rules.apply("server", line, &mut out);
    out.iter()
        .map(|observation| {
            let labels: Vec<String> = observation.labels.iter().map(ToString::to_string).collect();
            format!("{}{{{}}} {}", observation.metric, labels.join(","), observation.value)
        })
        .collect()
}

fn lines(fixture: &str) -> Vec<&str> {
    fixture.lines().filter(|line| !line.is_empty()).collect()
}

#[test]
fn the_vllm_rules_read_vllms_own_lines() {
    let rules = builtin();
    let fixture = include_str!("../../tests/fixtures/logs/vllm.log");
    let expected: [&[&str]; 11] = [
        &["llm_model_load_time_seconds{server,} 5.21"],
        &["llm_log_seconds{server,vllm_model_loading_seconds} 6.123456"],
        &["llm_log_seconds{server,vllm_model_loading_seconds} 6.123456"],
        &["llm_log_seconds{server,vllm_graph_capture_seconds} 12"],
        &[
            "llm_log_value{server,vllm_prompt_tokens_per_second} 1234.5",
            "llm_log_value{server,vllm_generation_tokens_per_second} 456.7",
            "llm_log_value{server,vllm_gpu_kv_cache_usage_percent} 12.3",
            "llm_log_value{server,vllm_prefix_cache_hit_rate_percent} 45.6",
        ],
        &["llm_log_value{server,vllm_prefix_cache_hit_rate_percent} 45.67"],
        &["llm_log_errors_total{server,oom} 1"],
        &["llm_log_errors_total{server,oom} 1"],
        &["llm_log_errors_total{server,unavailable} 1"],
        &["llm_log_errors_total{server,unavailable} 1"],
        &[],
    ];
    for (line, expected) in lines(fixture).into_iter().zip(expected) {
        assert_eq!(updates(rules, line), expected, "{line}");
    }
}

#[test]
fn the_llamacpp_rules_read_the_servers_own_lines() {
    let rules = builtin();
    let fixture = include_str!("../../tests/fixtures/logs/llamacpp.log");
    let expected: [&[&str]; 11] = [
        &["llm_log_events_total{server,llamacpp_model_loads} 1"],
        &["llm_log_errors_total{server,oom} 1"],
        &["llm_log_errors_total{server,oom} 1"],
        &["llm_log_errors_total{server,unavailable} 1"],
        &["llm_log_errors_total{server,context_length_exceeded} 1"],
        &["llm_log_errors_total{server,context_length_exceeded} 1"],
        &["llm_log_errors_total{server,oom} 1"],
        &["llm_log_value{server,llamacpp_prompt_tokens_per_second} 414.72"],
        &["llm_log_value{server,llamacpp_generation_tokens_per_second} 45.08"],
        &[],
        &["llm_log_value{server,llamacpp_generation_tokens_per_second} 45.08"],
    ];
    for (line, expected) in lines(fixture).into_iter().zip(expected) {
        assert_eq!(updates(rules, line), expected, "{line}");
    }
}

#[test]
fn the_ollama_rules_read_ollamas_own_lines() {
    let rules = builtin();
    let fixture = include_str!("../../tests/fixtures/logs/ollama.log");
    let expected: [&[&str]; 8] = [
        &["llm_model_load_time_seconds{server,} 5.02"],
        &["llm_model_load_time_seconds{server,} 5.42"],
        &["llm_log_errors_total{server,oom} 1"],
        &[],
        &["llm_log_errors_total{server,oom} 1"],
        &["llm_log_events_total{server,ollama_prompt_truncated} 1"],
        &["llm_log_errors_total{server,other} 1"],
        &[],
    ];
    for (line, expected) in lines(fixture).into_iter().zip(expected) {
        assert_eq!(updates(rules, line), expected, "{line}");
    }
}

#[test]
fn a_bad_rule_is_refused_with_its_line() {
    let head = "[[rule]]\nname = \"r\"\nmetric = \"llm_log_value\"\n";
    for (text, reason) in [
        (format!("{head}pattern = 'took (?P<value>[0-9]+'\n"), "line 1, column 1: pattern"),
        (format!("{head}pattern = 'took (?P<seconds>[0-9]+)'\n"), "capture \"seconds\""),
        (format!("{head}pattern = 'took [0-9]+'\n"), "needs a capture named value"),
        ("[[rule]]\nname = \"r\"\nmetric = \"up\"\npattern = 'x'\n".to_owned(), "is not one rules write"),
        (
            "[[rule]]\nname = \"r\"\nmetric = \"llm_log_errors_total\"\npattern = 'x'\n".to_owned(),
            "needs type",
        ),
        (
            "[[rule]]\nname = \"R-1\"\nmetric = \"llm_log_events_total\"\npattern = 'x'\n".to_owned(),
            "lowercase",
        ),
        (format!("{head}pattern = '(?P<value>x)'\ncolour = 1\n"), "line 5"),
    ] {
        let error = LogRules::parse(&text).expect_err(&text);
        assert!(error.contains(reason), "{text:?}: {error}");
    }
    let twice = "[[rule]]\nname = \"r\"\nmetric = \"llm_log_events_total\"\npattern = 'x'\n".repeat(2);
    assert!(LogRules::parse(&twice).expect_err("twice").contains("a second rule"));
}

#[test]
fn a_huge_body_is_read_only_to_its_bound() {
    let rules = builtin();
    let mut line = "x".repeat(rules::MAX_BODY);
    line.push_str(" CUDA out of memory");
    assert!(updates(rules, &line).is_empty(), "past the bound, not read");
    assert_eq!(updates(rules, &line[rules::MAX_BODY - 100..]).len(), 1);
}

fn record(body: &str, severity: i32, attributes: Vec<KeyValue>) -> LogRecord {
    LogRecord {
        severity_number: severity,
        body: Some(AnyValue { value: Some(any_value::Value::StringValue(body.to_owned())) }),
        attributes,
        trace_id: vec![7; 16],
        ..LogRecord::default()
    }
}

fn text_kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.to_owned())) }),
        ..KeyValue::default()
    }
}

fn request(records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![text_kv("service.name", "vllm")],
                ..Resource::default()
            }),
            scope_logs: vec![ScopeLogs { log_records: records, ..ScopeLogs::default() }],
            ..ResourceLogs::default()
        }],
    }
}

#[test]
fn error_records_count_once_by_type_and_rules_win() {
    let registry = Registry::new(SeriesLimits::default());
    let rules = builtin();
    let records = vec![
        // An error whose type comes from its exception.
        record("request failed", 17, vec![text_kv("exception.type", "openai.RateLimitError")]),
        // An error a rule also reads: counted once, as the rule says.
        record("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB.", 17, Vec::new()),
        // Not an error, and no rule.
        record("all good", 9, Vec::new()),
        // An error with nothing to go by.
        record("something broke", 21, Vec::new()),
    ];
    assert_eq!(derive(rules, &registry, &request(records)), 4);
    let errors = |kind: &str| registry.value(metric::LLM_LOG_ERRORS_TOTAL, &["vllm", kind]);
    assert_eq!(errors("rate_limited"), Some(1.0));
    assert_eq!(errors("oom"), Some(1.0));
    assert_eq!(errors("other"), Some(1.0));
}

#[test]
fn forwarded_logs_lose_content_unless_kept() {
    let enricher = Enricher::new(false, Vec::new(), Vec::new());
    let mut event =
        record("{\"content\":\"a secret prompt\"}", 9, vec![text_kv("gen_ai.input.messages", "secret")]);
    event.event_name = "gen_ai.user.message".to_owned();
    let mut forwarded = request(vec![event.clone(), record("plain line", 9, Vec::new())]);
    assert!(redact(&enricher, &mut forwarded));
    let records = &forwarded.resource_logs[0].scope_logs[0].log_records;
    assert!(records[0].body.is_none() && records[0].attributes.is_empty());
    assert!(records[1].body.is_some(), "a plain line is kept");
    let mut kept = request(vec![event]);
    assert!(!redact(&Enricher::new(true, Vec::new(), Vec::new()), &mut kept), "--keep-content keeps it");
    let mut plain = request(vec![record("plain line", 9, Vec::new())]);
    assert!(!redact(&enricher, &mut plain), "nothing to remove: the bytes go as they came");
}
