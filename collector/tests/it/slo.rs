//! `agentrace-collector slo generate`: the rules it writes pass `promtool check rules`, and
//! `promtool test rules` shows a fast burn paging within minutes, a slow burn opening a ticket
//! only later, and a healthy service silent. The stack's committed rules are what the example
//! objectives generate.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn generate(file: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_agentrace-collector"))
        .args(["slo", "generate"])
        .arg(file)
        .output()
        .expect("run slo generate")
}

fn promtool(args: &[&str], dir: &Path) -> String {
    let output = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool (scripts/test installs it)");
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "promtool {args:?}: {text}");
    text
}

#[test]
fn generated_burn_rate_alerts_page_on_a_fast_burn_ticket_a_slow_one_and_spare_a_healthy_one() {
    let fixtures = root().join("collector/tests/fixtures/slo");
    let output = generate(&fixtures.join("slo.toml"));
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("slo.rules.yml"), &output.stdout).expect("write rules");
    std::fs::copy(fixtures.join("slo.test.yml"), dir.path().join("slo.test.yml")).expect("copy test");
    let checked = promtool(&["check", "rules", "slo.rules.yml"], dir.path());
    assert!(checked.contains("SUCCESS: 36 rules found"), "{checked}");
    let tested = promtool(&["test", "rules", "slo.test.yml"], dir.path());
    assert!(tested.contains("SUCCESS"), "{tested}");
}

#[test]
fn the_stacks_slo_rules_are_what_its_objectives_generate() {
    let output = generate(&root().join("prometheus/slo.toml"));
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let committed = std::fs::read(root().join("prometheus/rules/slo.yml")).expect("rules/slo.yml");
    assert!(
        committed == output.stdout,
        "prometheus/rules/slo.yml is stale: agentrace-collector slo generate prometheus/slo.toml > prometheus/rules/slo.yml"
    );
}

#[test]
fn a_threshold_that_is_no_bucket_boundary_is_refused_on_one_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("slo.toml");
    let objective =
        "[[objective]]\nname = \"ttft\"\nkind = \"latency\"\nthreshold_seconds = 3\ntarget = 0.99\n";
    std::fs::write(&file, objective).expect("write");
    let output = generate(&file);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("3 is not a bucket boundary") && stderr.contains("2.56 and 5.12"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}
