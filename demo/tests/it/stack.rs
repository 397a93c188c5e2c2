//! The stack's configuration, checked by the real tools: `promtool check config`,
//! `promtool check rules`, `promtool test rules` (every alert fires and stays quiet in its
//! unit tests), a compose implementation's `config` check of the compose files, and the
//! dashboards' static rules (they parse; uids unique and `agentrace-`; every datasource a
//! provisioned one; provisioning writes only to its own folder).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(program: &str, args: &[&str], directory: &Path) -> String {
    let output = Command::new(program)
        .args(args)
        .current_dir(directory)
        .output()
        .unwrap_or_else(|error| panic!("cannot run {program} ({error}); ./scripts/test installs it"));
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{program} {args:?} failed:\n{text}");
    text
}

#[test]
fn promtool_accepts_the_config_and_rules_and_their_unit_tests_pass() {
    let prometheus = root().join("prometheus");
    let config = run("promtool", &["check", "config", "prometheus.yml"], &prometheus);
    assert!(config.contains("SUCCESS: 1 rule files found") || config.contains("SUCCESS"), "{config}");
    let rules = run("promtool", &["check", "rules", "rules/agentrace.yml"], &prometheus);
    assert!(rules.contains("SUCCESS: 25 rules found"), "{rules}");
    let slo = run("promtool", &["check", "rules", "rules/slo.yml"], &prometheus);
    assert!(slo.contains("SUCCESS: 27 rules found"), "{slo}");
    let tests = run("promtool", &["test", "rules", "tests/agentrace.test.yml"], &prometheus);
    assert!(tests.contains("SUCCESS"), "{tests}");
}

#[test]
fn every_alert_has_a_runbook_and_a_unit_test() {
    let rules = std::fs::read_to_string(root().join("prometheus/rules/agentrace.yml")).expect("rules");
    let tests =
        std::fs::read_to_string(root().join("prometheus/tests/agentrace.test.yml")).expect("rule tests");
    let alerts: Vec<&str> = rules.lines().filter_map(|line| line.trim().strip_prefix("- alert: ")).collect();
    assert_eq!(alerts.len(), 14, "{alerts:?}");
    assert_eq!(rules.matches("runbook:").count(), alerts.len(), "one runbook line per alert");
    for alert in alerts {
        let evaluations = tests.matches(&format!("alertname: {alert}\n")).count();
        assert!(evaluations >= 2, "{alert}: a firing and a quiet evaluation, found {evaluations}");
    }
}

#[test]
fn the_compose_files_pass_docker_compose_config() {
    let root = root();
    run("docker-compose", &["-f", "docker-compose.yml", "config", "-q"], &root);
    let all = run(
        "docker-compose",
        &[
            "--profile",
            "demo",
            "--profile",
            "gpu",
            "-f",
            "docker-compose.yml",
            "-f",
            "docker-compose.gpu.yml",
            "config",
        ],
        &root,
    );
    for service in ["collector:", "tempo:", "prometheus:", "grafana:", "demo:", "dcgm-exporter:"] {
        assert!(all.contains(&format!("  {service}\n")), "{service} missing from:\n{all}");
    }
    assert!(all.contains("--enable-feature=exemplar-storage"), "Prometheus keeps exemplars");
    assert!(all.contains("capabilities:\n") && all.contains("- gpu"), "GPU device reservation");
}

/// `uid: …` values under a provisioning file's datasources.
fn provisioned_datasources() -> BTreeSet<String> {
    let text = std::fs::read_to_string(root().join("grafana/provisioning/datasources/agentrace.yaml"))
        .expect("datasources");
    text.lines().filter_map(|line| line.trim().strip_prefix("uid: ")).map(str::to_owned).collect()
}

fn dashboards() -> Vec<(String, serde_json::Value)> {
    let mut found: Vec<(String, serde_json::Value)> = std::fs::read_dir(root().join("grafana/dashboards"))
        .expect("dashboards folder")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "json"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("dashboard");
            let json =
                serde_json::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            (path.display().to_string(), json)
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

#[test]
fn dashboards_parse_have_unique_agentrace_uids_and_provisioned_datasources() {
    let datasources = provisioned_datasources();
    assert_eq!(
        datasources,
        BTreeSet::from([
            "agentrace-prometheus".to_owned(),
            "agentrace-tempo".to_owned(),
            "agentrace-loki".to_owned()
        ])
    );
    let boards = dashboards();
    assert_eq!(
        boards.len(),
        7,
        "LLM inference, agents, GPU, collector health, cost, behaviour, probes and logs"
    );
    let mut uids = BTreeSet::new();
    for (path, board) in &boards {
        let uid = board["uid"].as_str().unwrap_or_else(|| panic!("{path}: no uid"));
        assert!(uid.starts_with("agentrace-"), "{path}: {uid}");
        assert!(uids.insert(uid.to_owned()), "{path}: uid {uid} twice");
        let variables: Vec<&str> = board["templating"]["list"]
            .as_array()
            .expect("variables")
            .iter()
            .filter_map(|variable| variable["name"].as_str())
            .collect();
        // Every variable is used by a panel, and every variable a panel uses is defined.
        let exprs: Vec<&str> = board["panels"]
            .as_array()
            .expect("panels")
            .iter()
            .filter(|panel| panel["type"] != "row")
            .flat_map(|panel| panel["targets"].as_array().expect("targets"))
            .filter_map(|target| target["expr"].as_str())
            .collect();
        for variable in &variables {
            let used = format!("${variable}");
            assert!(
                exprs.iter().any(|expr| expr.contains(&used)),
                "{path}: variable {variable} no panel uses"
            );
        }
        for name in ["service", "agent", "model"] {
            let used = exprs.iter().any(|expr| expr.contains(&format!("${name}\"")));
            assert!(!used || variables.contains(&name), "{path}: ${name} used but not defined");
        }
        for variable in board["templating"]["list"].as_array().expect("variables") {
            let uid = variable["datasource"]["uid"].as_str().unwrap_or_default();
            assert!(datasources.contains(uid), "{path}: variable datasource {uid}");
        }
        let panels = board["panels"].as_array().expect("panels");
        assert!(!panels.is_empty(), "{path}");
        // Rows group panels; they query nothing.
        for panel in panels.iter().filter(|panel| panel["type"] != "row") {
            let title = panel["title"].as_str().unwrap_or_default();
            let panel_uid = panel["datasource"]["uid"].as_str().unwrap_or_default();
            assert!(datasources.contains(panel_uid), "{path} / {title}: datasource {panel_uid}");
            for target in panel["targets"].as_array().expect("targets") {
                let target_uid = target["datasource"]["uid"].as_str().unwrap_or(panel_uid);
                assert!(datasources.contains(target_uid), "{path} / {title}: target datasource {target_uid}");
            }
        }
    }
}

#[test]
fn provisioning_writes_only_to_its_own_folder() {
    let provider = std::fs::read_to_string(root().join("grafana/provisioning/dashboards/agentrace.yaml"))
        .expect("provider");
    for setting in [
        "folder: Agentic Systems",
        "folderUid: agentrace-agentic-systems",
        "disableDeletion: true",
        "allowUiUpdates: false",
        "path: /var/lib/grafana/dashboards/agentrace",
    ] {
        assert!(provider.contains(setting), "{setting}");
    }
    let compose = std::fs::read_to_string(root().join("docker-compose.yml")).expect("compose");
    assert!(
        compose.contains("./grafana/dashboards:/var/lib/grafana/dashboards/agentrace:ro"),
        "mounted where the provider reads"
    );
}
