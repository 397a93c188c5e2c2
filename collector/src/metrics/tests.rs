use super::*;
use agentrace_semconv::metric;

fn registry(max_series_per_metric: usize) -> Registry {
    Registry::new(SeriesLimits { max_series_per_metric, idle_timeout_secs: 60.0 })
}

#[test]
fn counters_add_and_gauges_set() {
    let registry = registry(10);
    registry.add(metric::AGENT_INVOCATIONS_TOTAL, &["svc", "planner", "ok"], 1.0, 0.0);
    registry.add(metric::AGENT_INVOCATIONS_TOTAL, &["svc", "planner", "ok"], 2.0, 1.0);
    registry.add(metric::LLM_MODEL_LOAD_TIME_SECONDS, &["svc", "llama"], 4.0, 0.0);
    registry.add(metric::LLM_MODEL_LOAD_TIME_SECONDS, &["svc", "llama"], 3.0, 0.0);
    assert_eq!(registry.value(metric::AGENT_INVOCATIONS_TOTAL, &["svc", "planner", "ok"]), Some(3.0));
    assert_eq!(registry.value(metric::LLM_MODEL_LOAD_TIME_SECONDS, &["svc", "llama"]), Some(3.0));
}

#[test]
fn new_series_past_the_cap_go_to_the_overflow_series() {
    let registry = registry(2);
    for agent in ["a", "b", "c", "d"] {
        registry.add(metric::AGENT_INVOCATIONS_TOTAL, &["svc", agent, "ok"], 1.0, 0.0);
    }
    registry.add(metric::AGENT_INVOCATIONS_TOTAL, &["svc", "a", "ok"], 1.0, 0.0);
    assert_eq!(registry.series_count(metric::AGENT_INVOCATIONS_TOTAL), 3);
    assert_eq!(registry.value(metric::AGENT_INVOCATIONS_TOTAL, &["svc", "a", "ok"]), Some(2.0));
    assert_eq!(registry.value(metric::AGENT_INVOCATIONS_TOTAL, &["svc", "c", "ok"]), None);
}

#[test]
fn idle_derived_series_expire_and_own_counters_stay() {
    let registry = registry(10);
    registry.add(metric::AGENT_INVOCATIONS_TOTAL, &["svc", "old", "ok"], 1.0, 0.0);
    registry.add(metric::AGENT_INVOCATIONS_TOTAL, &["svc", "fresh", "ok"], 1.0, 50.0);
    registry.add(metric::SELF_SPANS_RECEIVED_TOTAL, &["grpc"], 1.0, 0.0);
    registry.expire(100.0);
    assert_eq!(registry.value(metric::AGENT_INVOCATIONS_TOTAL, &["svc", "old", "ok"]), None);
    assert_eq!(registry.value(metric::AGENT_INVOCATIONS_TOTAL, &["svc", "fresh", "ok"]), Some(1.0));
    assert_eq!(registry.value(metric::SELF_SPANS_RECEIVED_TOTAL, &["grpc"]), Some(1.0));
}

#[test]
fn replacing_gauges_drops_the_series_not_given_again() {
    let registry = registry(10);
    let series = |pids: &[&str]| -> Vec<(Vec<String>, f64)> {
        pids.iter().map(|pid| (vec!["0".into(), (*pid).into(), String::new(), String::new()], 1.0)).collect()
    };
    registry.replace_gauges(metric::GPU_PROCESS_MEMORY_USED_BYTES, series(&["1", "2"]), 0.0);
    registry.replace_gauges(metric::GPU_PROCESS_MEMORY_USED_BYTES, series(&["2"]), 1.0);
    assert_eq!(registry.series_count(metric::GPU_PROCESS_MEMORY_USED_BYTES), 1);
    assert_eq!(registry.value(metric::GPU_PROCESS_MEMORY_USED_BYTES, &["0", "2", "", ""]), Some(1.0));
}

#[test]
fn histogram_samples_land_in_the_first_bucket_not_below_them() {
    let registry = registry(10);
    let labels = ["svc", "planner"];
    for seconds in [0.1, 0.15, 500.0] {
        registry.add(metric::AGENT_INVOCATION_DURATION_SECONDS, &labels, seconds, 0.0);
    }
    let family = &registry.families[registry.index[metric::AGENT_INVOCATION_DURATION_SECONDS]];
    let state = lock(&family.state);
    let series = &state.series[&vec!["svc".to_owned(), "planner".to_owned()]];
    let Value::Histogram { counts, sum, .. } = &series.value else { panic!("not a histogram") };
    assert_eq!(counts[0], 1, "0.1 is in le=0.1");
    assert_eq!(counts[1], 1, "0.15 is in le=0.2");
    assert_eq!(*counts.last().expect("+Inf bucket"), 1);
    assert_eq!(counts.iter().sum::<u64>(), 3);
    assert!((sum - 500.25).abs() < 1e-9);
}

#[test]
fn weighted_histogram_counts_stay_whole_and_carry_the_fraction() {
    let registry = registry(10);
    let labels: Labels = smallvec::smallvec![Label::Borrowed("svc"), Label::Borrowed("planner")];
    // Kept with probability 11/16 (tracestate th:5): each span stands for 16/11.
    let weight = 16.0 / 11.0;
    for _ in 0..11 {
        let observation = Observation {
            weight,
            ..Observation::new(metric::AGENT_INVOCATION_DURATION_SECONDS, labels.clone(), 0.1, None)
        };
        registry.apply(&mut vec![observation], 0.0);
    }
    let text = registry.render(Format::OpenMetrics);
    let bucket = text
        .lines()
        .find(|line| {
            line.starts_with(
                "agent_invocation_duration_seconds_bucket{service=\"svc\",agent=\"planner\",le=\"0.1\"}",
            )
        })
        .expect("bucket");
    assert!(bucket.ends_with(" 15") || bucket.ends_with(" 16"), "11 × 16/11, whole: {bucket}");
}

#[test]
fn a_negative_observation_takes_sum_and_count_out_of_openmetrics_only() {
    let registry = registry(10);
    registry.add(metric::LLM_EVALUATION_SCORE, &["svc", "relevance"], -0.5, 0.0);
    let openmetrics = registry.render(Format::OpenMetrics);
    assert!(!openmetrics.contains("llm_evaluation_score_sum"), "{openmetrics}");
    assert!(!openmetrics.contains("llm_evaluation_score_count"));
    assert!(registry
        .render(Format::Classic)
        .contains("llm_evaluation_score_sum{service=\"svc\",evaluation=\"relevance\"} -0.5"));
}

#[test]
fn an_observation_that_would_make_a_series_infinite_is_dropped_and_counted() {
    let registry = registry(10);
    for _ in 0..2 {
        registry.add(metric::LLM_PROMPT_TOKENS_TOTAL, &["svc", "a", "p", "m"], 1e308, 0.0);
    }
    assert_eq!(registry.value(metric::LLM_PROMPT_TOKENS_TOTAL, &["svc", "a", "p", "m"]), Some(1e308));
    assert_eq!(registry.value(metric::SELF_SPANS_INVALID_TOTAL, &["not_finite"]), Some(1.0));
    registry.add(metric::LLM_PROMPT_TOKENS_TOTAL, &["svc", "b", "p", "m"], f64::NAN, 0.0);
    assert_eq!(
        registry.value(metric::LLM_PROMPT_TOKENS_TOTAL, &["svc", "b", "p", "m"]),
        None,
        "NaN: nothing"
    );
}

#[test]
fn a_page_over_its_ceiling_keeps_the_collector_s_own_families_and_whole_families_only() {
    let registry = registry(1000);
    registry.add(metric::SELF_SPANS_RECEIVED_TOTAL, &["grpc"], 7.0, 0.0);
    for agent in 0..500 {
        registry.add(
            metric::AGENT_INVOCATIONS_TOTAL,
            &["svc", &format!("planner-{agent:0>64}"), "ok"],
            1.0,
            0.0,
        );
    }
    let whole = registry.render(Format::OpenMetrics);
    let mut page = String::from("left from the last scrape");
    page.clear();
    let ceiling = whole.len() / 2;
    assert!(!registry.render_into(&mut page, Format::OpenMetrics, ceiling));
    assert!(page.len() <= ceiling + "# EOF\n".len(), "{} bytes", page.len());
    assert!(page.contains("agentrace_spans_received_total{transport=\"grpc\"} 7"), "own families first");
    assert!(!page.contains("planner-"), "the family that does not fit is left out whole");
    assert!(page.ends_with("# EOF\n"));
    page.clear();
    assert!(registry.render_into(&mut page, Format::OpenMetrics, whole.len()), "fits exactly");
    assert_eq!(page, whole);
}
