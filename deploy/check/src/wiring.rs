//! How the two tiers fit together: the flags of each, the Service the node tier resolves, the
//! Services' selectors, the mounts and probes; then the checks of `companions` and `posture`.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::companions;
use crate::objects::Object;
use crate::posture::{check_pod, Allowed, HostPathRule};
use crate::Problems;

/// What a rendering is expected to contain, from the values it was rendered with.
#[derive(Clone, Debug)]
pub struct Expected {
    pub namespace: String,
    pub cluster_domain: String,
    pub tempo_endpoint: String,
    pub host_ports: bool,
    pub local_service: bool,
    /// The node tier's queue directory on the host, when the queue is a hostPath.
    pub queue_host_path: Option<String>,
    pub autoscaling: bool,
    pub service_monitor: bool,
    pub pod_monitor: bool,
}

impl Expected {
    /// The chart's default values, rendered into `namespace`.
    pub fn defaults(namespace: &str) -> Expected {
        Expected {
            namespace: namespace.to_owned(),
            cluster_domain: "cluster.local".to_owned(),
            tempo_endpoint: "http://tempo.monitoring.svc:4317".to_owned(),
            host_ports: true,
            local_service: true,
            queue_host_path: None,
            autoscaling: false,
            service_monitor: false,
            pod_monitor: false,
        }
    }
}

/// The two workloads, the gateways' headless Service and the node-local Service.
pub struct Tiers<'a> {
    pub node: &'a DaemonSet,
    pub gateway: &'a Deployment,
    pub gateway_service: &'a Service,
    pub node_service: Option<&'a Service>,
}

/// The value of `--name` in `args`, given as `--name=value` or as `--name value`.
pub fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    let long = format!("--{name}");
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if let Some(value) = arg.strip_prefix(&long).and_then(|rest| rest.strip_prefix('=')) {
            return Some(value);
        }
        if *arg == long {
            return iter.next().map(String::as_str);
        }
    }
    None
}

/// Whether a non-empty `selector` selects `labels`.
pub fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(key, value)| labels.get(key) == Some(value))
}

pub(crate) fn match_labels(selector: &LabelSelector) -> BTreeMap<String, String> {
    selector.match_labels.clone().unwrap_or_default()
}

pub(crate) fn pod_labels(template: &PodTemplateSpec) -> BTreeMap<String, String> {
    template.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default()
}

pub(crate) fn pod_spec(template: &PodTemplateSpec) -> PodSpec {
    template.spec.clone().unwrap_or_default()
}

fn collector(spec: &PodSpec) -> Option<&Container> {
    spec.containers.iter().find(|container| container.name == "collector")
}

pub(crate) fn name_of(metadata: &ObjectMeta) -> &str {
    metadata.name.as_deref().unwrap_or_default()
}

/// Finds the tiers' objects; an error when one is missing or doubled.
pub fn tiers(objects: &[Object]) -> anyhow::Result<Tiers<'_>> {
    let daemon_sets: Vec<&DaemonSet> =
        objects.iter().filter_map(|o| if let Object::DaemonSet(d) = o { Some(d) } else { None }).collect();
    let deployments: Vec<&Deployment> =
        objects.iter().filter_map(|o| if let Object::Deployment(d) = o { Some(d) } else { None }).collect();
    let services: Vec<&Service> =
        objects.iter().filter_map(|o| if let Object::Service(s) = o { Some(s) } else { None }).collect();
    let headless: Vec<&Service> = services
        .iter()
        .copied()
        .filter(|s| s.spec.as_ref().and_then(|spec| spec.cluster_ip.as_deref()) == Some("None"))
        .collect();
    let others: Vec<&Service> = services
        .iter()
        .copied()
        .filter(|s| s.spec.as_ref().and_then(|spec| spec.cluster_ip.as_deref()) != Some("None"))
        .collect();
    let ([node], [gateway], [gateway_service]) = (&daemon_sets[..], &deployments[..], &headless[..]) else {
        anyhow::bail!(
            "expected one DaemonSet, one Deployment and one headless Service; found {}, {} and {}",
            daemon_sets.len(),
            deployments.len(),
            headless.len()
        );
    };
    anyhow::ensure!(others.len() <= 1, "more than one Service with a cluster IP");
    Ok(Tiers { node, gateway, gateway_service, node_service: others.first().copied() })
}

/// Every check of a whole rendering.
pub fn check_rendering(objects: &[Object], expected: &Expected) -> anyhow::Result<()> {
    let tiers = tiers(objects)?;
    let mut problems = companions::check_metadata(objects, expected);
    let node_spec = tiers.node.spec.clone().unwrap_or_default();
    let gateway_spec = tiers.gateway.spec.clone().unwrap_or_default();
    let mut host_paths = vec![
        HostPathRule { volume: "host-proc", path: "/proc".into(), read_only: true },
        HostPathRule { volume: "pod-logs", path: "/var/log/pods".into(), read_only: true },
    ];
    if let Some(path) = &expected.queue_host_path {
        host_paths.push(HostPathRule { volume: "queue", path: path.clone(), read_only: false });
    }
    let host_ports = if expected.host_ports { vec![4317, 4318] } else { vec![] };
    let node_allowed = Allowed { host_paths, host_ports };
    problems.extend(check_pod("DaemonSet", &pod_spec(&node_spec.template), &node_allowed));
    problems.extend(check_pod("Deployment", &pod_spec(&gateway_spec.template), &Allowed::default()));
    problems.extend(check_node(&tiers, expected));
    problems.extend(check_gateway(&tiers, expected));
    problems.extend(check_services(&tiers, expected));
    problems.extend(companions::check_service_accounts(objects, &tiers));
    problems.extend(companions::check_scaling(objects, &tiers, expected));
    problems.extend(companions::check_monitors(objects, &tiers, expected));
    problems.into_result("rendering")
}

/// The node tier: its role, where it routes spans, its host mounts and the node's name.
fn check_node(tiers: &Tiers<'_>, expected: &Expected) -> Problems {
    let mut problems = Problems::default();
    let spec = pod_spec(&tiers.node.spec.clone().unwrap_or_default().template);
    let Some(container) = collector(&spec) else {
        problems.push("DaemonSet: no collector container".into());
        return problems;
    };
    let args = container.args.clone().unwrap_or_default();
    let service = &tiers.gateway_service.metadata;
    let endpoint = format!(
        "dns:///{}.{}.svc.{}:4317",
        name_of(service),
        service.namespace.as_deref().unwrap_or_default(),
        expected.cluster_domain
    );
    let want = [
        ("role", "node"),
        ("traces-routing", "trace-id"),
        ("traces-endpoint", endpoint.as_str()),
        ("proc-root", "/host/proc"),
        ("pod-logs-dir", "/var/log/pods"),
        ("otlp-grpc-addr", "0.0.0.0:4317"),
        ("otlp-http-addr", "0.0.0.0:4318"),
        ("metrics-addr", "0.0.0.0:9101"),
        ("gpu", "on"),
        ("queue-dir", "/var/lib/agentrace/queue"),
    ];
    for (name, value) in want {
        let got = flag(&args, name);
        problems.check(got == Some(value), || format!("DaemonSet: --{name} is {got:?}, not {value:?}"));
    }
    problems.extend(check_mounted(container, "/host/proc", true));
    problems.extend(check_mounted(container, "/var/log/pods", true));
    problems.extend(check_mounted(container, "/var/lib/agentrace/queue", false));
    let env = container.env.clone().unwrap_or_default();
    let node_name = env.iter().find(|var| var.name == "AGENTRACE_NODE_NAME");
    let field = node_name.and_then(|var| var.value_from.as_ref()?.field_ref.as_ref());
    problems.check(field.is_some_and(|field| field.field_path == "spec.nodeName"), || {
        "DaemonSet: AGENTRACE_NODE_NAME does not come from spec.nodeName".into()
    });
    for (name, value) in [("NVIDIA_VISIBLE_DEVICES", "all"), ("NVIDIA_DRIVER_CAPABILITIES", "utility")] {
        let got = env.iter().find(|var| var.name == name).and_then(|var| var.value.as_deref());
        problems.check(got == Some(value), || format!("DaemonSet: {name} is {got:?}"));
    }
    problems.check(spec.runtime_class_name.as_deref() == Some("nvidia"), || {
        format!("DaemonSet: runtimeClassName {:?}", spec.runtime_class_name)
    });
    problems.extend(check_probes("DaemonSet", container));
    problems
}

/// `path` is mounted in `container`, read-only or writable as asked.
fn check_mounted(container: &Container, path: &str, read_only: bool) -> Problems {
    let mut problems = Problems::default();
    let mount = container.volume_mounts.iter().flatten().find(|mount| mount.mount_path == path);
    match mount {
        None => problems.push(format!("{}: nothing mounted at {path}", container.name)),
        Some(mount) => problems.check((mount.read_only == Some(true)) == read_only, || {
            format!("{}: {path} read-only {:?}, expected {read_only}", container.name, mount.read_only)
        }),
    }
    problems
}

/// /healthz and /readyz on the container's port named metrics, 9101.
fn check_probes(owner: &str, container: &Container) -> Problems {
    let mut problems = Problems::default();
    let metrics = container.ports.iter().flatten().find(|p| p.name.as_deref() == Some("metrics"));
    problems.check(metrics.is_some_and(|port| port.container_port == 9101), || {
        format!("{owner}: no container port metrics=9101")
    });
    let probes = [
        ("liveness", &container.liveness_probe, "/healthz"),
        ("readiness", &container.readiness_probe, "/readyz"),
    ];
    for (kind, probe, path) in probes {
        let get = probe.as_ref().and_then(|probe| probe.http_get.as_ref());
        let ok = get.is_some_and(|get| {
            get.path.as_deref() == Some(path) && get.port == IntOrString::String("metrics".into())
        });
        problems.check(ok, || format!("{owner}: {kind} probe is not GET {path} on port metrics"));
    }
    problems
}

/// The gateway tier: its role, no GPU, Tempo, the queue on an emptyDir.
fn check_gateway(tiers: &Tiers<'_>, expected: &Expected) -> Problems {
    let mut problems = Problems::default();
    let spec = pod_spec(&tiers.gateway.spec.clone().unwrap_or_default().template);
    let Some(container) = collector(&spec) else {
        problems.push("Deployment: no collector container".into());
        return problems;
    };
    let args = container.args.clone().unwrap_or_default();
    let want = [
        ("role", "gateway"),
        ("gpu", "off"),
        ("traces-endpoint", expected.tempo_endpoint.as_str()),
        ("otlp-grpc-addr", "0.0.0.0:4317"),
        ("metrics-addr", "0.0.0.0:9101"),
        ("queue-dir", "/var/lib/agentrace/queue"),
    ];
    for (name, value) in want {
        let got = flag(&args, name);
        problems.check(got == Some(value), || format!("Deployment: --{name} is {got:?}, not {value:?}"));
    }
    problems.check(flag(&args, "traces-routing").is_none(), || "Deployment: routes by trace id".into());
    problems.check(spec.runtime_class_name.is_none(), || "Deployment: has a runtimeClassName".into());
    problems.extend(check_mounted(container, "/var/lib/agentrace/queue", false));
    problems.extend(check_probes("Deployment", container));
    problems
}

/// The headless Service selects the gateways only; the node-local Service the node pods.
fn check_services(tiers: &Tiers<'_>, expected: &Expected) -> Problems {
    let mut problems = Problems::default();
    let node_labels = pod_labels(&tiers.node.spec.clone().unwrap_or_default().template);
    let gateway_labels = pod_labels(&tiers.gateway.spec.clone().unwrap_or_default().template);
    let headless = tiers.gateway_service.spec.clone().unwrap_or_default();
    let selector = headless.selector.clone().unwrap_or_default();
    problems.check(selects(&selector, &gateway_labels) && !selects(&selector, &node_labels), || {
        format!("gateway Service selector {selector:?} does not select the gateways alone")
    });
    problems.check(name_of(&tiers.gateway.metadata) == name_of(&tiers.gateway_service.metadata), || {
        "gateway Service and Deployment are named differently".into()
    });
    let ports: Vec<(Option<String>, i32)> =
        headless.ports.iter().flatten().map(|p| (p.name.clone(), p.port)).collect();
    let want = vec![(Some("otlp-grpc".to_owned()), 4317), (Some("metrics".to_owned()), 9101)];
    problems.check(ports == want, || format!("gateway Service ports {ports:?}"));
    problems.check(tiers.node_service.is_some() == expected.local_service, || {
        format!("node-local Service present: {}", tiers.node_service.is_some())
    });
    if let Some(service) = tiers.node_service {
        let spec = service.spec.clone().unwrap_or_default();
        let selector = spec.selector.clone().unwrap_or_default();
        problems.check(selects(&selector, &node_labels) && !selects(&selector, &gateway_labels), || {
            format!("node Service selector {selector:?} does not select the node pods alone")
        });
        problems.check(spec.internal_traffic_policy.as_deref() == Some("Local"), || {
            "node Service: internalTrafficPolicy is not Local".into()
        });
    }
    problems
}
