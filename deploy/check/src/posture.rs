//! The security posture of the rendered pods: non-root, read-only root filesystem, no
//! privilege escalation, no capabilities, the runtime's seccomp profile, no host namespaces,
//! and only the host paths and host ports the node tier needs.

use k8s_openapi::api::core::v1::{
    Container, PodSecurityContext, PodSpec, SeccompProfile, SecurityContext, Volume,
};

use crate::Problems;

/// The init container that hands a hostPath queue directory to the collector's user: the one
/// container allowed to run as root, with CHOWN and FOWNER only.
pub const QUEUE_PERMISSIONS: &str = "queue-permissions";

/// A hostPath volume a pod may have, and how its mounts must be.
#[derive(Clone, Debug)]
pub struct HostPathRule {
    pub volume: &'static str,
    pub path: String,
    pub read_only: bool,
}

/// What one pod template is allowed beyond the defaults.
#[derive(Clone, Debug, Default)]
pub struct Allowed {
    pub host_paths: Vec<HostPathRule>,
    pub host_ports: Vec<i32>,
}

/// Every check on one pod template; `owner` names it in messages.
pub fn check_pod(owner: &str, spec: &PodSpec, allowed: &Allowed) -> Problems {
    let mut problems = Problems::default();
    problems.check(spec.host_network != Some(true), || format!("{owner}: hostNetwork"));
    problems.check(spec.host_pid != Some(true), || format!("{owner}: hostPID"));
    problems.check(spec.host_ipc != Some(true), || format!("{owner}: hostIPC"));
    problems.check(spec.automount_service_account_token == Some(false), || {
        format!("{owner}: automountServiceAccountToken is not false")
    });
    let pod = spec.security_context.clone().unwrap_or_default();
    problems.check(pod.run_as_non_root == Some(true), || format!("{owner}: pod runAsNonRoot is not true"));
    problems.check(pod.run_as_user.is_some_and(|uid| uid > 0), || {
        format!("{owner}: pod runAsUser is not a numeric non-root id")
    });
    problems.check(pod.run_as_group.is_some_and(|gid| gid > 0), || {
        format!("{owner}: pod runAsGroup is not a numeric non-root id")
    });
    problems.check(is_runtime_default(pod.seccomp_profile.as_ref()), || {
        format!("{owner}: pod seccompProfile is not RuntimeDefault")
    });
    for container in &spec.containers {
        problems.extend(check_container(owner, container, &pod));
    }
    let has_queue_host_path =
        spec.volumes.iter().flatten().any(|v| v.name == "queue" && v.host_path.is_some());
    for container in spec.init_containers.iter().flatten() {
        if container.name == QUEUE_PERMISSIONS && has_queue_host_path {
            problems.extend(check_queue_permissions(owner, container));
        } else {
            problems.extend(check_container(owner, container, &pod));
        }
    }
    problems.extend(check_host_paths(owner, spec, &allowed.host_paths));
    problems.extend(check_host_ports(owner, spec, &allowed.host_ports));
    problems
}

fn is_runtime_default(profile: Option<&SeccompProfile>) -> bool {
    profile.is_some_and(|profile| profile.type_ == "RuntimeDefault")
}

/// A collector container: nothing to gain over the unprivileged user it starts as.
fn check_container(owner: &str, container: &Container, pod: &PodSecurityContext) -> Problems {
    let mut problems = Problems::default();
    let name = format!("{owner} container {}", container.name);
    let Some(security) = &container.security_context else {
        problems.push(format!("{name}: no securityContext"));
        return problems;
    };
    let non_root = security.run_as_non_root.or(pod.run_as_non_root);
    problems.check(non_root == Some(true), || format!("{name}: runAsNonRoot is not true"));
    let uid = security.run_as_user.or(pod.run_as_user);
    problems.check(uid.is_some_and(|uid| uid > 0), || format!("{name}: runAsUser {uid:?} is not non-root"));
    problems.check(security.privileged != Some(true), || format!("{name}: privileged"));
    problems.extend(check_common(&name, security));
    let added = security.capabilities.as_ref().and_then(|c| c.add.clone()).unwrap_or_default();
    problems.check(added.is_empty(), || format!("{name}: adds capabilities {added:?}"));
    let seccomp = security.seccomp_profile.as_ref().or(pod.seccomp_profile.as_ref());
    problems.check(is_runtime_default(seccomp), || format!("{name}: seccompProfile is not RuntimeDefault"));
    problems
}

/// What every container must have, the root init container included.
fn check_common(name: &str, security: &SecurityContext) -> Problems {
    let mut problems = Problems::default();
    problems.check(security.read_only_root_filesystem == Some(true), || {
        format!("{name}: readOnlyRootFilesystem is not true")
    });
    problems.check(security.allow_privilege_escalation == Some(false), || {
        format!("{name}: allowPrivilegeEscalation is not false")
    });
    let dropped = security.capabilities.as_ref().and_then(|c| c.drop.clone()).unwrap_or_default();
    problems.check(dropped.iter().any(|capability| capability == "ALL"), || {
        format!("{name}: capabilities drop {dropped:?}, not ALL")
    });
    problems
}

/// The queue directory's init container: root, CHOWN and FOWNER only, the queue volume only.
fn check_queue_permissions(owner: &str, container: &Container) -> Problems {
    let mut problems = Problems::default();
    let name = format!("{owner} init container {}", container.name);
    let Some(security) = &container.security_context else {
        problems.push(format!("{name}: no securityContext"));
        return problems;
    };
    problems.extend(check_common(&name, security));
    problems.check(security.privileged != Some(true), || format!("{name}: privileged"));
    let added = security.capabilities.as_ref().and_then(|c| c.add.clone()).unwrap_or_default();
    problems.check(added.iter().all(|c| c == "CHOWN" || c == "FOWNER"), || {
        format!("{name}: adds {added:?}, more than CHOWN and FOWNER")
    });
    problems.check(is_runtime_default(security.seccomp_profile.as_ref()), || {
        format!("{name}: seccompProfile is not RuntimeDefault")
    });
    let mounts: Vec<&str> = container.volume_mounts.iter().flatten().map(|m| m.name.as_str()).collect();
    problems.check(mounts == ["queue"], || format!("{name}: mounts {mounts:?}, not the queue alone"));
    problems
}

/// hostPath volumes: exactly the allowed ones, at their paths, mounted as the rule says.
fn check_host_paths(owner: &str, spec: &PodSpec, rules: &[HostPathRule]) -> Problems {
    let mut problems = Problems::default();
    let volumes: Vec<&Volume> = spec.volumes.iter().flatten().filter(|v| v.host_path.is_some()).collect();
    for volume in &volumes {
        let path = volume.host_path.as_ref().map(|h| h.path.as_str()).unwrap_or_default();
        let Some(rule) = rules.iter().find(|rule| rule.volume == volume.name) else {
            problems.push(format!("{owner}: unexpected hostPath volume {} ({path})", volume.name));
            continue;
        };
        problems.check(rule.path == path, || format!("{owner}: hostPath {} is {path}", volume.name));
        let containers = spec.containers.iter().chain(spec.init_containers.iter().flatten());
        for container in containers {
            for mount in container.volume_mounts.iter().flatten().filter(|m| m.name == volume.name) {
                let read_only = mount.read_only == Some(true);
                problems.check(read_only || !rule.read_only, || {
                    format!("{owner}: {} mounts hostPath {} writable", container.name, volume.name)
                });
            }
        }
    }
    for rule in rules {
        problems.check(volumes.iter().any(|v| v.name == rule.volume), || {
            format!("{owner}: no hostPath volume {}", rule.volume)
        });
    }
    problems
}

/// hostPorts: exactly the allowed ones.
fn check_host_ports(owner: &str, spec: &PodSpec, allowed: &[i32]) -> Problems {
    let mut problems = Problems::default();
    let containers = spec.containers.iter().chain(spec.init_containers.iter().flatten());
    let mut found = Vec::new();
    for container in containers {
        for port in container.ports.iter().flatten() {
            if let Some(host_port) = port.host_port {
                found.push(host_port);
                problems.check(allowed.contains(&host_port), || {
                    format!("{owner}: {} opens hostPort {host_port}", container.name)
                });
            }
        }
    }
    found.sort_unstable();
    let mut expected = allowed.to_vec();
    expected.sort_unstable();
    problems.check(found == expected, || format!("{owner}: hostPorts {found:?}, expected {expected:?}"));
    problems
}
