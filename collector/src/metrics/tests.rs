use super::*;
use agentrace_semconv::metric;

fn registry(max_series_per_metric: usize) -> Registry {
    Registry::new(SeriesLimits { max_series_per_metric, idle_timeout_secs: 60.0, ..SeriesLimits::default() })
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
        pids.iter()
            .map(|pid| {
                (
                    vec![
                        "0".into(),
                        (*pid).into(),
                        String::new(),
                        String::new(),
                        String::new(),
                        String::new(),
                    ],
                    1.0,
                )
            })
            .collect()
    };
    registry.replace_gauges(metric::GPU_PROCESS_MEMORY_USED_BYTES, series(&["1", "2"]), 0.0);
    registry.replace_gauges(metric::GPU_PROCESS_MEMORY_USED_BYTES, series(&["2"]), 1.0);
    assert_eq!(registry.series_count(metric::GPU_PROCESS_MEMORY_USED_BYTES), 1);
    assert_eq!(registry.value(metric::GPU_PROCESS_MEMORY_USED_BYTES, &["0", "2", "", "", "", ""]), Some(1.0));
}

#[test]
fn histogram_samples_land_in_the_first_bucket_not_below_them() {
    let registry = registry(10);
    let labels = ["svc", "planner"];
    for seconds in [0.1, 0.15, 500.0] {
        registry.add(metric::AGENT_INVOCATION_DURATION_SECONDS, &labels, seconds, 0.0);
    }
    let family = &registry.families[registry.index[metric::AGENT_INVOCATION_DURATION_SECONDS]];
    let state = lock(&family.stripes[0]);
    let series = &state.series[&Key::new(["svc", "planner"])];
    let Value::Histogram { buckets, sum, .. } = &series.value else { panic!("not a histogram") };
    let counts: Vec<u64> = buckets.iter().map(|bucket| bucket.count).collect();
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
fn unsampled_spans_between_sampled_ones_keep_the_carried_fraction() {
    let registry = registry(10);
    let labels: Labels = smallvec::smallvec![Label::Borrowed("svc"), Label::Borrowed("planner")];
    // 0.5, then 1 (unsampled), then 0.5: 2 in all, the first half carried over the whole one.
    for weight in [0.5, 1.0, 0.5] {
        let observation = Observation {
            weight,
            ..Observation::new(metric::AGENT_INVOCATION_DURATION_SECONDS, labels.clone(), 0.1, None)
        };
        registry.apply(&mut vec![observation], 0.0);
    }
    let text = registry.render(Format::OpenMetrics);
    let bucket = "agent_invocation_duration_seconds_bucket{service=\"svc\",agent=\"planner\",le=\"0.1\"} 2";
    assert!(text.lines().any(|line| line == bucket), "{text}");
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

/// Observations of every kind, with exemplars and sampling weights, over a few label sets.
fn mixed_observations() -> Vec<(Observation<'static>, f64)> {
    let mut observations = Vec::new();
    for step in 0..60u32 {
        let agent = ["a", "b", "c"][step as usize % 3];
        let now = f64::from(step);
        let exemplar = Exemplar {
            trace_id: [step as u8; 16],
            span_id: [1; 8],
            value: 1.0,
            timestamp: now,
            ..Exemplar::default()
        };
        let labels =
            || smallvec::smallvec![Label::Borrowed("svc"), Label::Borrowed(agent), Label::Borrowed("ok")];
        observations
            .push((Observation::new(metric::AGENT_INVOCATIONS_TOTAL, labels(), 1.0, Some(exemplar)), now));
        let duration = smallvec::smallvec![Label::Borrowed("svc"), Label::Borrowed(agent)];
        let mut sample =
            Observation::new(metric::AGENT_INVOCATION_DURATION_SECONDS, duration, 0.25, Some(exemplar));
        // 0.25 × 0.5: sums that add up exactly in whatever order the stripes hold them.
        sample.weight = 0.5;
        observations.push((sample.clone(), now));
        // A counter of samples (`counted.rs`) reads the same over stripes too.
        let span = smallvec::smallvec![
            Label::Borrowed("svc"),
            Label::Borrowed(agent),
            Label::Borrowed("SPAN_KIND_INTERNAL"),
            Label::Borrowed("STATUS_CODE_UNSET")
        ];
        observations.push((Observation { metric: metric::SPANMETRICS_LATENCY, labels: span, ..sample }, now));
        let load = smallvec::smallvec![Label::Borrowed("svc"), Label::Borrowed(agent)];
        observations.push((Observation::new(metric::LLM_MODEL_LOAD_TIME_SECONDS, load, now, None), now));
    }
    observations
}

/// The page's lines, sorted, without the creation times of the counters that exist from the
/// registry's start (two registries start at different times).
fn sorted_page(registry: &Registry) -> Vec<String> {
    let mut lines: Vec<String> = registry
        .render(Format::OpenMetrics)
        .lines()
        .filter(|line| !(line.starts_with(metric::SELF_PREFIX) && line.contains("_created ")))
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

#[test]
fn a_striped_registry_reads_as_one_whatever_stripe_each_observation_took() {
    let limits =
        SeriesLimits { max_series_per_metric: 10, idle_timeout_secs: 600.0, ..SeriesLimits::default() };
    let single = Registry::new(limits);
    let striped = Registry::striped(limits, 3);
    for (index, (observation, now)) in mixed_observations().into_iter().enumerate() {
        single.apply(&mut vec![observation.clone()], now);
        striped.apply_in((index * 7 / 3) % 3, &mut vec![observation], now);
    }
    assert_eq!(sorted_page(&striped), sorted_page(&single));
    assert_eq!(striped.value(metric::AGENT_INVOCATIONS_TOTAL, &["svc", "a", "ok"]), Some(20.0));
    assert_eq!(
        striped.value(metric::AGENT_INVOCATION_DURATION_SECONDS, &["svc", "b"]),
        Some(10.0),
        "20 × 0.5"
    );
    let span = ["svc", "b", "SPAN_KIND_INTERNAL", "STATUS_CODE_UNSET"];
    assert_eq!(striped.value(metric::SPANMETRICS_CALLS_TOTAL, &span), Some(10.0), "20 × 0.5");
    assert_eq!(
        striped.value(metric::LLM_MODEL_LOAD_TIME_SECONDS, &["svc", "c"]),
        Some(59.0),
        "the last written"
    );
}

#[test]
fn the_series_cap_counts_label_sets_over_all_stripes() {
    let striped = Registry::striped(
        SeriesLimits { max_series_per_metric: 2, idle_timeout_secs: 60.0, ..SeriesLimits::default() },
        3,
    );
    for (stripe, agent) in ["a", "b", "c", "a"].into_iter().enumerate() {
        let labels =
            smallvec::smallvec![Label::Borrowed("svc"), Label::Borrowed(agent), Label::Borrowed("ok")];
        striped.apply_in(
            stripe % 3,
            &mut vec![Observation::new(metric::AGENT_INVOCATIONS_TOTAL, labels, 1.0, None)],
            0.0,
        );
    }
    assert_eq!(striped.series_count(metric::AGENT_INVOCATIONS_TOTAL), 3, "a, b and the overflow series");
    assert_eq!(
        striped.value(metric::AGENT_INVOCATIONS_TOTAL, &["svc", "a", "ok"]),
        Some(2.0),
        "a again fits"
    );
    assert_eq!(striped.value(metric::AGENT_INVOCATIONS_TOTAL, &["svc", "c", "ok"]), None);
}

#[test]
fn a_series_expires_only_when_idle_in_every_stripe() {
    let striped = Registry::striped(
        SeriesLimits { max_series_per_metric: 10, idle_timeout_secs: 60.0, ..SeriesLimits::default() },
        2,
    );
    let count = |stripe: usize, agent: &'static str, now: f64| {
        let labels =
            smallvec::smallvec![Label::Borrowed("svc"), Label::Borrowed(agent), Label::Borrowed("ok")];
        striped.apply_in(
            stripe,
            &mut vec![Observation::new(metric::AGENT_INVOCATIONS_TOTAL, labels, 1.0, None)],
            now,
        );
    };
    count(0, "busy", 0.0);
    count(1, "busy", 90.0);
    count(0, "idle", 0.0);
    count(1, "idle", 10.0);
    striped.expire(100.0);
    assert_eq!(
        striped.value(metric::AGENT_INVOCATIONS_TOTAL, &["svc", "busy", "ok"]),
        Some(2.0),
        "nothing lost"
    );
    assert_eq!(striped.value(metric::AGENT_INVOCATIONS_TOTAL, &["svc", "idle", "ok"]), None);
    assert!(striped
        .render(Format::Classic)
        .contains("agentrace_metric_series_expired_total{metric=\"agent_invocations_total\"} 1"));
    count(1, "idle", 101.0);
    assert_eq!(
        striped.value(metric::AGENT_INVOCATIONS_TOTAL, &["svc", "idle", "ok"]),
        Some(1.0),
        "back, afresh"
    );
}

#[test]
fn metric_names_pick_the_families_served() {
    use crate::metrics::args::MetricNames;
    let page = |names| {
        let registry = Registry::new(SeriesLimits { names, ..SeriesLimits::default() });
        let labels = ["svc", "chat", "openai", "gpt-4o", "unknown"];
        registry.add(metric::spec::USAGE_INPUT_TOKENS, &labels, 5.0, 0.0);
        registry.add(metric::LLM_PROMPT_TOKENS_TOTAL, &["svc", "a", "openai", "gpt-4o"], 5.0, 0.0);
        registry.render(Format::Classic)
    };
    let (own, otel, both) = (page(MetricNames::Agentrace), page(MetricNames::Otel), page(MetricNames::Both));
    assert!(own.contains("llm_prompt_tokens_total{") && !own.contains("gen_ai_"), "{own}");
    assert!(
        otel.contains("gen_ai_client_inference_usage_input_tokens_total{")
            && !otel.contains("llm_prompt_tokens")
    );
    assert!(otel.contains("# TYPE llm_requests_total counter"), "what only agentrace names stays");
    assert!(
        both.contains("gen_ai_client_inference_usage_input_tokens_total{")
            && both.contains("llm_prompt_tokens_total{")
    );
    assert!(
        both.contains("mcp_client_operation_duration_seconds")
            && otel.contains("mcp_client_operation_duration_seconds")
    );
}

#[test]
fn the_collectors_own_unlabelled_counters_exist_at_zero_from_the_start() {
    let page = registry(10).render(Format::Classic);
    for counter in [
        metric::SELF_SPANS_EXPORTED_TOTAL,
        metric::SELF_EXPORT_RETRIES_TOTAL,
        metric::SELF_GRAPH_UNPAIRED_TOTAL,
    ] {
        assert!(page.contains(&format!("\n{counter} 0\n")), "{counter}");
    }
}

#[test]
fn a_family_named_by_a_copy_of_its_name_is_the_same_family() {
    let registry = registry(10);
    let copy: &'static str = Box::leak(metric::SELF_EXPORT_RETRIES_TOTAL.to_owned().into_boxed_str());
    assert_ne!(copy.as_ptr(), metric::SELF_EXPORT_RETRIES_TOTAL.as_ptr(), "a copy lives elsewhere");
    registry.add(metric::SELF_EXPORT_RETRIES_TOTAL, &[], 1.0, 0.0);
    registry.add(copy, &[], 2.0, 0.0);
    assert_eq!(registry.value(metric::SELF_EXPORT_RETRIES_TOTAL, &[]), Some(3.0));
}

#[test]
fn a_batch_counts_an_infinite_value_as_invalid_in_its_own_stripe() {
    // The batch holds the invalid family's lock already (its first observation is one), so the
    // count must go through the batch's locks, on one stripe and on a worker's of three.
    for registry in [registry(10), Registry::striped(SeriesLimits::default(), 3)] {
        let labels = |values: &[&'static str]| values.iter().map(|value| Label::Borrowed(value)).collect();
        let mut batch = vec![
            Observation::new(metric::SELF_SPANS_INVALID_TOTAL, labels(&["not_finite"]), 1.0, None),
            Observation::new(metric::LLM_PROMPT_TOKENS_TOTAL, labels(&["svc", "a", "p", "m"]), 1e308, None),
            Observation::new(metric::LLM_PROMPT_TOKENS_TOTAL, labels(&["svc", "a", "p", "m"]), 1e308, None),
        ];
        registry.writer(0).apply(&mut batch, 0.0);
        assert!(batch.is_empty());
        assert_eq!(registry.value(metric::LLM_PROMPT_TOKENS_TOTAL, &["svc", "a", "p", "m"]), Some(1e308));
        assert_eq!(registry.value(metric::SELF_SPANS_INVALID_TOTAL, &["not_finite"]), Some(2.0));
    }
}

#[test]
fn batches_from_two_threads_in_one_stripe_touching_families_in_opposite_orders_both_finish() {
    // With one stripe, a worker's batches and another writer's share every lock. Each thread
    // takes two families in the opposite order; a batch that waited for one while holding the
    // other would deadlock.
    let registry = std::sync::Arc::new(registry(10));
    let families = [metric::LLM_PROMPT_TOKENS_TOTAL, metric::LLM_RESPONSE_TOKENS_TOTAL];
    let (done, finished) = std::sync::mpsc::channel();
    for reversed in [false, true] {
        let (registry, done) = (registry.clone(), done.clone());
        std::thread::spawn(move || {
            let order = if reversed { [families[1], families[0]] } else { families };
            for _ in 0..20_000 {
                let labels = || ["svc", "a", "p", "m"].into_iter().map(Label::Borrowed).collect();
                let mut batch: Vec<Observation> =
                    order.iter().map(|metric| Observation::new(metric, labels(), 1.0, None)).collect();
                match reversed {
                    true => registry.apply(&mut batch, 0.0),
                    false => registry.writer(0).apply(&mut batch, 0.0),
                }
            }
            let _ = done.send(());
        });
    }
    for _ in 0..2 {
        finished.recv_timeout(std::time::Duration::from_secs(60)).expect("both threads finish: no deadlock");
    }
    for metric in families {
        assert_eq!(registry.value(metric, &["svc", "a", "p", "m"]), Some(40_000.0));
    }
}
