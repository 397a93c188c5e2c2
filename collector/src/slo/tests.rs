use super::*;

fn write(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("slo.toml");
    std::fs::write(&path, text).expect("write");
    (dir, path)
}

#[test]
fn a_threshold_between_buckets_is_refused_with_the_nearest() {
    let (_dir, path) = write(
        "[[objective]]\nname = \"ttft\"\nkind = \"time_to_first_token\"\nthreshold_seconds = 0.3\ntarget = 0.99\n",
    );
    let error = generate(&path).expect_err("0.3 is no boundary").to_string();
    assert!(
        error.contains("slo.toml")
            && error.contains("0.3 is not a bucket boundary of llm_time_to_first_token_seconds")
            && error.contains("the nearest are 0.25 and 0.5"),
        "{error}"
    );
}

#[test]
fn each_kind_becomes_ratios_and_burn_alerts() {
    let (_dir, path) = write(concat!(
        "[[objective]]\nname = \"ttft\"\nkind = \"time_to_first_token\"\nservice = \"chat\"\nthreshold_seconds = 0.5\ntarget = 0.99\n\n",
        "[[objective]]\nname = \"latency\"\nkind = \"latency\"\nmodel = \"m\"\nthreshold_seconds = 5.12\ntarget = 0.95\n\n",
        "[[objective]]\nname = \"errors\"\nkind = \"error_ratio\"\nmax_error_ratio = 0.01\n",
    ));
    let rules = generate(&path).expect("valid objectives");
    assert!(
        rules.contains(r#"llm_time_to_first_token_seconds_bucket{service="chat",le="0.5"}[5m]"#),
        "{rules}"
    );
    assert!(rules.contains(r#"llm_inference_latency_seconds_count{model="m"}[3d]"#), "{rules}");
    assert!(rules.contains(
        r#"sum(rate(llm_requests_total{status="error"}[1h])) / sum(rate(llm_requests_total{}[1h]))"#
    ));
    // A 1 % budget: the page at 14.4 × 0.01 over 1h and 5m.
    assert!(rules.contains(r#"(agentrace:slo_bad_ratio:rate1h{slo="ttft"} > 0.144 and agentrace:slo_bad_ratio:rate5m{slo="ttft"} > 0.144)"#), "{rules}");
    assert_eq!(rules.matches("alert: SLOBurnFast").count(), 3);
    assert_eq!(rules.matches("record: agentrace:slo_bad_ratio:rate").count(), 21);
}

#[test]
fn missing_or_impossible_figures_are_refused() {
    for (body, expected) in [
        ("kind = \"latency\"\ntarget = 0.9\n", "threshold_seconds is required"),
        ("kind = \"latency\"\nthreshold_seconds = 1.28\ntarget = 1.5\n", "target must be between 0 and 1"),
        ("kind = \"error_ratio\"\n", "max_error_ratio is required"),
        ("kind = \"error_ratio\"\nmax_error_ratio = 0.01\nservice = \"a\\\"b\"\n", "quotes"),
    ] {
        let (_dir, path) = write(&format!("[[objective]]\nname = \"o\"\n{body}"));
        let error = generate(&path).expect_err(expected).to_string();
        assert!(error.contains(expected), "{error}");
    }
}
