//! Who a GPU process is: its container, from `/proc/<pid>/cgroup`; on Kubernetes its pod and
//! namespace, from the pod UID in that cgroup path and the kubelet's pod log directories
//! (`<namespace>_<pod>_<uid>`, under `/var/log/pods`), so that no API-server access is
//! needed; and its service, from the resource attributes (`process.pid`, `host.name` or
//! `k8s.node.name`) of spans recently received from it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

/// The container, pod and namespace of a GPU process; empty where unknown.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    pub container: String,
    pub pod: String,
    pub namespace: String,
}

/// The identity of `pid`, from `<proc_root>/<pid>/cgroup` and the pod log directories.
pub fn identity_of(proc_root: &Path, pod_logs: &Path, pid: u32) -> Identity {
    let Ok(cgroup) = std::fs::read_to_string(proc_root.join(pid.to_string()).join("cgroup")) else {
        return Identity::default();
    };
    let (namespace, pod) = pod_uid(&cgroup).and_then(|uid| pod_named(pod_logs, &uid)).unwrap_or_default();
    Identity { container: container_id(&cgroup).unwrap_or_default(), pod, namespace }
}

/// The pod UID in a cgroup path: `kubepods-burstable-pod<uid with _>.slice` (systemd) or
/// `kubepods/burstable/pod<uid>` (cgroupfs).
pub fn pod_uid(cgroup: &str) -> Option<String> {
    cgroup.lines().filter_map(|line| line.splitn(3, ':').nth(2)).find_map(|path| {
        path.split('/').find_map(|segment| {
            let name = segment.strip_suffix(".slice").unwrap_or(segment);
            let uid = name.strip_prefix("pod").or_else(|| name.rsplit_once("-pod").map(|(_, uid)| uid))?;
            let uid = uid.replace('_', "-");
            let well_formed =
                uid.len() == 36 && uid.bytes().all(|byte| byte.is_ascii_hexdigit() || byte == b'-');
            well_formed.then_some(uid)
        })
    })
}

/// The namespace and name of the pod with `uid`, from its log directory's name.
fn pod_named(pod_logs: &Path, uid: &str) -> Option<(String, String)> {
    let suffix = format!("_{uid}");
    std::fs::read_dir(pod_logs).ok()?.filter_map(Result::ok).find_map(|entry| {
        let name = entry.file_name().into_string().ok()?;
        let (namespace, pod) = name.strip_suffix(&suffix)?.split_once('_')?;
        Some((namespace.to_owned(), pod.to_owned()))
    })
}

/// The container id in a cgroup file, from any of the layouts container runtimes use:
///
/// - cgroup v1, docker: `12:memory:/docker/<id>`
/// - cgroup v2, docker with systemd: `0::/system.slice/docker-<id>.scope`
/// - containerd / CRI (Kubernetes): `…/kubepods-burstable-pod<uid>.slice/cri-containerd-<id>.scope`
///   or, v1, `…/kubepods/burstable/pod<uid>/<id>`
/// - podman: `…/libpod-<id>.scope`
///
/// The id is the last 64-hex-digit name segment of the path (prefixes such as `docker-`,
/// `cri-containerd-`, `crio-`, `libpod-` and the `.scope` suffix stripped).
pub fn container_id(cgroup: &str) -> Option<String> {
    cgroup.lines().filter_map(|line| line.splitn(3, ':').nth(2)).find_map(|path| {
        path.rsplit('/').find_map(|segment| {
            let name = segment.strip_suffix(".scope").unwrap_or(segment);
            let id = name.rsplit(['-', ':']).next().unwrap_or(name);
            (id.len() == 64 && id.bytes().all(|byte| byte.is_ascii_hexdigit())).then(|| id.to_owned())
        })
    })
}

/// Service names of local processes that sent spans, remembered for `ttl_secs`.
#[derive(Debug)]
pub struct ProcessServices {
    host_name: Option<String>,
    /// This Kubernetes node's name (`--node-name`): spans whose resource has it in
    /// `k8s.node.name` come from this machine, whatever their `host.name` (the pod's).
    node_name: Option<String>,
    ttl_secs: f64,
    services: Mutex<HashMap<u32, (String, f64)>>,
}

impl ProcessServices {
    pub fn new(host_name: Option<String>, ttl_secs: f64) -> Self {
        Self { host_name, node_name: None, ttl_secs, services: Mutex::default() }
    }

    /// On Kubernetes: this node's name.
    pub fn on_node(self, node_name: Option<String>) -> Self {
        Self { node_name, ..self }
    }

    /// Whether a resource is on this host: its `k8s.node.name` is this node, or its
    /// `host.name` is this host (a missing one is taken as local).
    pub fn is_local(&self, host_name: Option<&str>, node_name: Option<&str>) -> bool {
        if node_name.is_some() && node_name == self.node_name.as_deref() {
            return true;
        }
        match (host_name, &self.host_name) {
            (None, _) | (_, None) => true,
            (Some(theirs), Some(ours)) => theirs == ours,
        }
    }

    pub fn note(&self, pid: u32, service: &str, now: f64) {
        if let Ok(mut services) = self.services.lock() {
            if services.get(&pid).is_none_or(|(known, _)| known != service) {
                services.insert(pid, (service.to_owned(), now));
            } else if let Some(entry) = services.get_mut(&pid) {
                entry.1 = now;
            }
        }
    }

    /// The service of `pid`, empty when unknown; forgets the ones not seen within the TTL.
    pub fn service_of(&self, pid: u32, now: f64) -> String {
        let Ok(mut services) = self.services.lock() else { return String::new() };
        services.retain(|_, (_, seen)| now - *seen <= self.ttl_secs);
        services.get(&pid).map(|(service, _)| service.clone()).unwrap_or_default()
    }
}

/// This machine's host name, as the SDKs report it in `host.name`.
pub fn local_host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4f6d1c2b3a4958677685a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3";

    #[test]
    fn container_ids_from_every_layout() {
        let layouts = [
            format!("12:memory:/docker/{ID}\n11:cpu,cpuacct:/docker/{ID}\n"),
            format!("0::/system.slice/docker-{ID}.scope\n"),
            format!("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1f2e.slice/cri-containerd-{ID}.scope\n"),
            format!("11:devices:/kubepods/burstable/pod0a1b2c3d-1111-2222-3333-444455556666/{ID}\n"),
            format!("0::/machine.slice/libpod-{ID}.scope/container\n"),
            format!("0::/kubepods.slice/kubepods-pod1.slice/crio-{ID}.scope\n"),
        ];
        for cgroup in layouts {
            assert_eq!(container_id(&cgroup).as_deref(), Some(ID), "{cgroup}");
        }
    }

    #[test]
    fn processes_outside_containers_have_none() {
        for cgroup in ["0::/user.slice/user-1000.slice/session-2.scope\n", "0::/\n", ""] {
            assert_eq!(container_id(cgroup), None, "{cgroup}");
        }
    }

    #[test]
    fn container_of_reads_the_proc_tree() {
        let root = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(root.path().join("4242")).expect("pid dir");
        std::fs::write(root.path().join("4242/cgroup"), format!("0::/system.slice/docker-{ID}.scope\n"))
            .expect("write");
        let no_pods = root.path().join("no-pods");
        assert_eq!(identity_of(root.path(), &no_pods, 4242).container, ID);
        assert_eq!(identity_of(root.path(), &no_pods, 4242).pod, "", "not on Kubernetes");
        assert_eq!(identity_of(root.path(), &no_pods, 1).container, "");
    }

    #[test]
    fn pods_are_named_from_the_cgroup_uid_and_the_kubelet_log_directories() {
        let uid = "0a1b2c3d-1111-2222-3333-444455556666";
        let systemd = format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{ID}.scope\n",
            uid.replace('-', "_")
        );
        let cgroupfs = format!("11:devices:/kubepods/burstable/pod{uid}/{ID}\n");
        let guaranteed =
            format!("0::/kubepods.slice/kubepods-pod{}.slice/crio-{ID}.scope\n", uid.replace('-', "_"));
        for cgroup in [&systemd, &cgroupfs, &guaranteed] {
            assert_eq!(pod_uid(cgroup).as_deref(), Some(uid), "{cgroup}");
        }
        assert_eq!(pod_uid(&format!("0::/system.slice/docker-{ID}.scope\n")), None);

        let root = tempfile::tempdir().expect("temp dir");
        let (proc_root, pod_logs) = (root.path().join("proc"), root.path().join("pods"));
        std::fs::create_dir_all(proc_root.join("4242")).expect("pid dir");
        std::fs::write(proc_root.join("4242/cgroup"), &systemd).expect("write");
        std::fs::create_dir_all(pod_logs.join(format!("inference_vllm-7f9c4-x2x8z_{uid}"))).expect("log dir");
        std::fs::create_dir_all(pod_logs.join("other_pod_0a1b2c3d-9999-2222-3333-444455556666"))
            .expect("log dir");
        let identity = identity_of(&proc_root, &pod_logs, 4242);
        assert_eq!(identity.container, ID);
        assert_eq!((identity.namespace.as_str(), identity.pod.as_str()), ("inference", "vllm-7f9c4-x2x8z"));
        assert_eq!(identity_of(&proc_root, &pod_logs, 1), Identity::default());
    }

    #[test]
    fn a_pod_on_this_node_is_local_whatever_its_host_name() {
        let services =
            ProcessServices::new(Some("gpu-node-pod".to_owned()), 60.0).on_node(Some("gpu-node-3".into()));
        assert!(services.is_local(Some("vllm-7f9c4-x2x8z"), Some("gpu-node-3")));
        assert!(!services.is_local(Some("vllm-7f9c4-x2x8z"), Some("gpu-node-4")));
    }

    #[test]
    fn services_are_remembered_for_local_processes_until_the_ttl() {
        let services = ProcessServices::new(Some("gpu-host".to_owned()), 60.0);
        assert!(
            services.is_local(Some("gpu-host"), None)
                && services.is_local(None, None)
                && !services.is_local(Some("other"), None)
        );
        services.note(4242, "vllm", 0.0);
        assert_eq!(services.service_of(4242, 30.0), "vllm");
        assert_eq!(services.service_of(4242, 61.0), "");
    }
}
