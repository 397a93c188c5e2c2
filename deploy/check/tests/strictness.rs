//! The checks themselves: a misspelt or unknown field, an unknown kind, a YAML 1.1 ambiguity,
//! a weakened security context are each caught.

use agentrace_deploy_check::objects::{self, Object};
use agentrace_deploy_check::wiring::{check_rendering, Expected};
use agentrace_deploy_check::{workspace_root, MANIFESTS, NAMESPACE};

const DAEMON_SET: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: probe
spec:
  selector:
    matchLabels: {app: probe}
  template:
    metadata:
      labels: {app: probe}
    spec:
      containers:
        - name: collector
          image: agentrace-collector:0.1.0
          securityContex:
            runAsNonRoot: true
"#;

fn committed_manifests() -> String {
    let path = workspace_root().join(MANIFESTS);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

#[test]
fn unknown_fields_are_refused_with_their_path() {
    let error = objects::parse(DAEMON_SET).expect_err("a misspelt field passed");
    let message = format!("{error:#}");
    assert!(message.contains("spec.template.spec.containers.0.securityContex"), "{message}");
}

#[test]
fn unknown_fields_of_monitors_are_refused() {
    let monitor = r#"
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: probe}
spec:
  selector: {matchLabels: {app: probe}}
  endpoints:
    - port: metrics
      scrapeTimeout: 10s
"#;
    let error = objects::parse(monitor).expect_err("an unlisted field passed");
    assert!(format!("{error:#}").contains("scrapeTimeout"), "{error:#}");
}

#[test]
fn unknown_kinds_are_refused() {
    let role = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: probe}\n";
    let error = objects::parse(role).expect_err("a ClusterRole passed");
    assert!(format!("{error:#}").contains("unexpected kind"), "{error:#}");
    let wrong_version = "apiVersion: autoscaling/v1\nkind: HorizontalPodAutoscaler\nmetadata: {name: x}\n";
    assert!(objects::parse(wrong_version).is_err(), "autoscaling/v1 passed");
}

#[test]
fn yaml_1_1_ambiguities_are_found() {
    let text = "a: on\nb: \"on\"\nc: 0440\n# d: yes\ne: True\n- off\nf: 0\n";
    let found = objects::yaml11_ambiguities(text);
    assert_eq!(found, ["line 1: a: on", "line 3: c: 0440", "line 5: e: True", "line 6: - off"]);
}

#[test]
fn a_weakened_security_context_is_caught() {
    let manifests = committed_manifests();
    let weakened = manifests
        .replacen("allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true", 1)
        .replacen("readOnly: true", "readOnly: false", 1);
    let objects = objects::parse(&weakened).expect("still well-typed");
    let error = check_rendering(&objects, &Expected::defaults(NAMESPACE)).expect_err("weakened passed");
    let message = format!("{error:#}");
    assert!(message.contains("allowPrivilegeEscalation is not false"), "{message}");
    assert!(message.contains("mounts hostPath host-proc writable"), "{message}");
}

#[test]
fn a_node_tier_pointed_elsewhere_is_caught() {
    let manifests = committed_manifests();
    let moved = manifests
        .replace("--traces-routing=trace-id", "--traces-routing=round-robin")
        .replace("dns:///agentrace-gateway.agentrace.svc", "dns:///agentrace-gateways.agentrace.svc");
    let objects = objects::parse(&moved).expect("still well-typed");
    let error = check_rendering(&objects, &Expected::defaults(NAMESPACE)).expect_err("moved passed");
    let message = format!("{error:#}");
    assert!(message.contains("--traces-routing"), "{message}");
    assert!(message.contains("--traces-endpoint"), "{message}");
    assert!(objects.iter().any(|object| matches!(object, Object::DaemonSet(_))));
}
