//! The Helm chart lints and renders, with its defaults and with each option turned; every
//! rendering is typed strictly and holds the security posture and the tiers' wiring; the plain
//! manifests are the chart's default rendering. Needs AGENTRACE_HELM (scripts/test sets it).

use agentrace_deploy_check::helm::Helm;
use agentrace_deploy_check::objects::{self, Object};
use agentrace_deploy_check::wiring::{check_rendering, Expected};
use agentrace_deploy_check::{workspace_root, CHART, MANIFESTS, NAMESPACE, RELEASE};
use anyhow::{bail, ensure, Context, Result};

/// A way of installing the chart: its `--set` overrides and what the rendering must then hold.
struct Variation {
    name: &'static str,
    release: &'static str,
    namespace: &'static str,
    sets: &'static [&'static str],
    expected: fn(Expected) -> Expected,
}

const VARIATIONS: &[Variation] = &[
    Variation { name: "defaults", release: RELEASE, namespace: NAMESPACE, sets: &[], expected: |e| e },
    Variation {
        name: "autoscaling",
        release: RELEASE,
        namespace: NAMESPACE,
        sets: &["gateway.autoscaling.enabled=true", "gateway.autoscaling.maxReplicas=12"],
        expected: |e| Expected { autoscaling: true, ..e },
    },
    Variation {
        name: "monitors with a metrics token",
        release: RELEASE,
        namespace: NAMESPACE,
        sets: &[
            "monitoring.serviceMonitor.enabled=true",
            "monitoring.podMonitor.enabled=true",
            "monitoring.serviceMonitor.labels.release=prometheus",
            "metricsAuth.existingSecret=agentrace-metrics-token",
        ],
        expected: |e| Expected { service_monitor: true, pod_monitor: true, ..e },
    },
    Variation {
        name: "no hostPorts, no node-local Service",
        release: RELEASE,
        namespace: NAMESPACE,
        sets: &["node.hostPorts.enabled=false", "node.localService.enabled=false"],
        expected: |e| Expected { host_ports: false, local_service: false, ..e },
    },
    Variation {
        name: "hostPath queue",
        release: RELEASE,
        namespace: NAMESPACE,
        sets: &["node.queue.type=hostPath", "node.queue.hostPath.path=/var/lib/agentrace-queue"],
        expected: |e| Expected { queue_host_path: Some("/var/lib/agentrace-queue".into()), ..e },
    },
    Variation {
        name: "other release, namespace, domain and Tempo",
        release: "observability",
        namespace: "telemetry",
        sets: &["clusterDomain=k8s.example", "tempo.endpoint=https://tempo.example:4317"],
        expected: |e| Expected {
            cluster_domain: "k8s.example".into(),
            tempo_endpoint: "https://tempo.example:4317".into(),
            ..e
        },
    },
];

fn helm() -> Helm {
    match Helm::from_env() {
        Ok(helm) => helm,
        Err(error) => panic!("{error:#}"),
    }
}

/// Renders one variation and runs every check on it.
fn check_variation(helm: &Helm, variation: &Variation) -> Result<()> {
    let text = helm.template(variation.release, variation.namespace, variation.sets)?;
    let ambiguous = objects::yaml11_ambiguities(&text);
    ensure!(ambiguous.is_empty(), "scalars read differently by YAML 1.1:\n{}", ambiguous.join("\n"));
    let objects = objects::parse(&text)?;
    let expected = (variation.expected)(Expected::defaults(variation.namespace));
    check_rendering(&objects, &expected)
}

#[test]
fn chart_lints_with_each_variation() {
    let helm = helm();
    let mut failures = Vec::new();
    for variation in VARIATIONS {
        for strict in [false, true] {
            if let Err(error) = helm.lint(strict, variation.sets) {
                failures.push(format!("{} (strict {strict}): {error:#}", variation.name));
            }
        }
    }
    assert!(failures.is_empty(), "helm lint failed:\n{}", failures.join("\n"));
}

#[test]
fn every_rendering_is_typed_secure_and_wired() {
    let helm = helm();
    let mut failures = Vec::new();
    for variation in VARIATIONS {
        if let Err(error) = check_variation(&helm, variation) {
            failures.push(format!("== {} ({}):\n{error:#}", variation.name, variation.sets.join(" ")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn default_rendering_has_the_expected_objects() -> Result<()> {
    let text = helm().template(RELEASE, NAMESPACE, &[])?;
    let mut ids: Vec<String> = objects::parse(&text)?.iter().map(Object::id).collect();
    ids.sort();
    let want = [
        "DaemonSet/agentrace-node",
        "Deployment/agentrace-gateway",
        "PodDisruptionBudget/agentrace-gateway",
        "Service/agentrace-gateway",
        "Service/agentrace-node",
        "ServiceAccount/agentrace-gateway",
        "ServiceAccount/agentrace-node",
    ];
    assert_eq!(ids, want);
    Ok(())
}

/// The lines of a rendering without the blank lines that end its documents: helm 4 leaves one
/// before each `---`, helm 3 none; nothing else differs between them.
fn without_gaps(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for line in text.lines() {
        if line == "---" {
            while lines.last().is_some_and(|last| last.trim().is_empty()) {
                lines.pop();
            }
        }
        lines.push(line.to_owned());
    }
    while lines.last().is_some_and(|last| last.trim().is_empty()) {
        lines.pop();
    }
    lines
}

/// The committed plain manifests, after their header comment, are the chart's default
/// rendering, line for line.
#[test]
fn plain_manifests_match_the_chart() -> Result<()> {
    let path = workspace_root().join(MANIFESTS);
    let committed = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let header_len: usize =
        committed.lines().take_while(|line| line.starts_with('#')).map(|line| line.len() + 1).sum();
    let (header, body) = committed.split_at(header_len.min(committed.len()));
    let command = format!("helm template {RELEASE} {CHART} --namespace {NAMESPACE}");
    ensure!(header.contains(&command), "{MANIFESTS}: the header does not name `{command}`");
    let rendered = helm().template(RELEASE, NAMESPACE, &[])?;
    let (body_lines, rendered_lines) = (without_gaps(body), without_gaps(&rendered));
    if body_lines != rendered_lines {
        let line = body_lines.iter().zip(&rendered_lines).position(|(a, b)| a != b);
        let line = line.unwrap_or_else(|| body_lines.len().min(rendered_lines.len()));
        bail!(
            "{MANIFESTS} differs from the chart's rendering (first at {:?}).\n\
             Render it again from the workspace root:\n  \
             {{ sed '/^---$/,$d' {MANIFESTS}\n    \
             \"$AGENTRACE_HELM\" {}; }} > agentrace.yaml.new && mv agentrace.yaml.new {MANIFESTS}",
            body_lines.get(line).or(rendered_lines.get(line)).map(String::as_str).unwrap_or_default(),
            command.trim_start_matches("helm ")
        );
    }
    // The plain manifests pass the same checks as the chart's rendering.
    check_rendering(&objects::parse(body)?, &Expected::defaults(NAMESPACE))
}

#[test]
fn invalid_values_are_refused() -> Result<()> {
    let helm = helm();
    for set in ["node.queue.type=tmpfs", "tempo.endpoint="] {
        let output = helm.run(&["template", RELEASE, CHART, "--set", set])?;
        ensure!(!output.success, "helm template accepted --set {set}");
    }
    Ok(())
}
