//! Who a GPU process is: its container, from `/proc/<pid>/cgroup`, and its service, from the
//! resource attributes (`process.pid`, `host.name`) of spans recently received from it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Container id of `pid`, read from `<proc_root>/<pid>/cgroup`; empty when the process is not
/// in a container or cannot be read.
pub fn container_of(proc_root: &Path, pid: u32) -> String {
    let path: PathBuf = proc_root.join(pid.to_string()).join("cgroup");
    std::fs::read_to_string(path).map(|text| container_id(&text).unwrap_or_default()).unwrap_or_default()
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
    ttl_secs: f64,
    services: Mutex<HashMap<u32, (String, f64)>>,
}

impl ProcessServices {
    pub fn new(host_name: Option<String>, ttl_secs: f64) -> Self {
        Self { host_name, ttl_secs, services: Mutex::default() }
    }

    /// Whether a resource's `host.name` is this host (a missing one is taken as local).
    pub fn is_local(&self, host_name: Option<&str>) -> bool {
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
        assert_eq!(container_of(root.path(), 4242), ID);
        assert_eq!(container_of(root.path(), 1), "");
    }

    #[test]
    fn services_are_remembered_for_local_processes_until_the_ttl() {
        let services = ProcessServices::new(Some("gpu-host".to_owned()), 60.0);
        assert!(
            services.is_local(Some("gpu-host"))
                && services.is_local(None)
                && !services.is_local(Some("other"))
        );
        services.note(4242, "vllm", 0.0);
        assert_eq!(services.service_of(4242, 30.0), "vllm");
        assert_eq!(services.service_of(4242, 61.0), "");
    }
}
