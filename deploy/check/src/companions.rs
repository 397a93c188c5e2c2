//! The objects around the two workloads: their metadata, ServiceAccounts, the autoscaler,
//! the disruption budget and the Prometheus Operator's monitors.

use crate::objects::Object;
use crate::wiring::{match_labels, name_of, pod_labels, pod_spec, selects, Expected, Tiers};
use crate::Problems;

/// Namespace, the standard labels and unique names.
pub fn check_metadata(objects: &[Object], expected: &Expected) -> Problems {
    const LABELS: [&str; 6] = [
        "app.kubernetes.io/name",
        "app.kubernetes.io/instance",
        "app.kubernetes.io/version",
        "app.kubernetes.io/component",
        "app.kubernetes.io/managed-by",
        "helm.sh/chart",
    ];
    let mut problems = Problems::default();
    let mut seen = std::collections::BTreeSet::new();
    for object in objects {
        let id = object.id();
        let metadata = object.metadata();
        problems.check(metadata.namespace.as_deref() == Some(expected.namespace.as_str()), || {
            format!("{id}: namespace {:?}", metadata.namespace)
        });
        let labels = metadata.labels.clone().unwrap_or_default();
        for label in LABELS {
            problems.check(labels.contains_key(label), || format!("{id}: no label {label}"));
        }
        problems.check(seen.insert(id.clone()), || format!("{id}: rendered twice"));
    }
    problems
}

/// Each pod runs as a ServiceAccount of the rendering that mounts no token.
pub fn check_service_accounts(objects: &[Object], tiers: &Tiers<'_>) -> Problems {
    let mut problems = Problems::default();
    let accounts: Vec<_> = objects
        .iter()
        .filter_map(|o| if let Object::ServiceAccount(a) = o { Some(a) } else { None })
        .collect();
    for account in &accounts {
        problems.check(account.automount_service_account_token == Some(false), || {
            format!(
                "ServiceAccount {}: automountServiceAccountToken is not false",
                name_of(&account.metadata)
            )
        });
    }
    let node = pod_spec(&tiers.node.spec.clone().unwrap_or_default().template);
    let gateway = pod_spec(&tiers.gateway.spec.clone().unwrap_or_default().template);
    for (owner, spec) in [("DaemonSet", node), ("Deployment", gateway)] {
        let name = spec.service_account_name.clone().unwrap_or_default();
        problems.check(accounts.iter().any(|a| name_of(&a.metadata) == name), || {
            format!("{owner}: ServiceAccount {name:?} is not rendered")
        });
    }
    problems
}

/// The autoscaler targets the gateways and owns their replica count; the disruption budget
/// covers the gateways.
pub fn check_scaling(objects: &[Object], tiers: &Tiers<'_>, expected: &Expected) -> Problems {
    let mut problems = Problems::default();
    let deployment = tiers.gateway.spec.clone().unwrap_or_default();
    let gateway_labels = pod_labels(&deployment.template);
    let hpas: Vec<_> = objects
        .iter()
        .filter_map(|o| if let Object::HorizontalPodAutoscaler(h) = o { Some(h) } else { None })
        .collect();
    let want = usize::from(expected.autoscaling);
    problems
        .check(hpas.len() == want, || format!("{} HorizontalPodAutoscalers, expected {want}", hpas.len()));
    for hpa in hpas {
        let spec = hpa.spec.clone().unwrap_or_default();
        let target = &spec.scale_target_ref;
        problems
            .check(target.kind == "Deployment" && target.name == name_of(&tiers.gateway.metadata), || {
                format!("autoscaler targets {}/{}", target.kind, target.name)
            });
        problems.check(spec.min_replicas.unwrap_or(1) <= spec.max_replicas, || "autoscaler min > max".into());
    }
    problems.check(deployment.replicas.is_some() != expected.autoscaling, || {
        format!("Deployment replicas {:?} with autoscaling {}", deployment.replicas, expected.autoscaling)
    });
    for object in objects {
        if let Object::PodDisruptionBudget(pdb) = object {
            let selector = pdb.spec.as_ref().and_then(|s| s.selector.as_ref()).map(match_labels);
            problems.check(selector.is_some_and(|s| selects(&s, &gateway_labels)), || {
                "PodDisruptionBudget does not select the gateways".into()
            });
        }
    }
    problems
}

/// The ServiceMonitor selects the headless Service's port metrics; the PodMonitor the node
/// pods' port metrics.
pub fn check_monitors(objects: &[Object], tiers: &Tiers<'_>, expected: &Expected) -> Problems {
    let mut problems = Problems::default();
    let service_labels = tiers.gateway_service.metadata.labels.clone().unwrap_or_default();
    let node_labels = pod_labels(&tiers.node.spec.clone().unwrap_or_default().template);
    let (mut service_monitors, mut pod_monitors) = (0, 0);
    for object in objects {
        match object {
            Object::ServiceMonitor(monitor) => {
                service_monitors += 1;
                let selector = match_labels(&monitor.spec.selector);
                problems.check(selects(&selector, &service_labels), || {
                    "ServiceMonitor does not select the gateway Service".into()
                });
                problems.extend(crate::crd::check_endpoints("ServiceMonitor", &monitor.spec.endpoints));
                let ports = monitor.spec.endpoints.iter().map(|e| e.port.as_str()).collect::<Vec<_>>();
                problems.check(ports == ["metrics"], || format!("ServiceMonitor ports {ports:?}"));
            }
            Object::PodMonitor(monitor) => {
                pod_monitors += 1;
                let selector = match_labels(&monitor.spec.selector);
                problems.check(selects(&selector, &node_labels), || {
                    "PodMonitor does not select the node pods".into()
                });
                let endpoints = &monitor.spec.pod_metrics_endpoints;
                problems.extend(crate::crd::check_endpoints("PodMonitor", endpoints));
                let ports = endpoints.iter().map(|e| e.port.as_str()).collect::<Vec<_>>();
                problems.check(ports == ["metrics"], || format!("PodMonitor ports {ports:?}"));
            }
            _ => {}
        }
    }
    problems.check(service_monitors == usize::from(expected.service_monitor), || {
        format!("{service_monitors} ServiceMonitors, expected {}", usize::from(expected.service_monitor))
    });
    problems
        .check(pod_monitors == usize::from(expected.pod_monitor), || format!("{pod_monitors} PodMonitors"));
    problems
}
