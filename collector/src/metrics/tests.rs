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
    let Value::Histogram { counts, sum, count, .. } = &series.value else { panic!("not a histogram") };
    assert_eq!(counts[0], 1.0, "0.1 is in le=0.1");
    assert_eq!(counts[1], 1.0, "0.15 is in le=0.2");
    assert_eq!(*counts.last().expect("+Inf bucket"), 1.0);
    assert_eq!(*count, 3.0);
    assert!((sum - 500.25).abs() < 1e-9);
}
