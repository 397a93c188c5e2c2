//! Checks of the Kubernetes deployment files: the Helm chart under `deploy/helm/agentrace`
//! and the plain manifests rendered from it, `deploy/kubernetes/agentrace.yaml`.
//!
//! Offline: `helm lint` and `helm template` (the binary named by `AGENTRACE_HELM`) render the
//! chart, every rendered document is read into its `k8s-openapi` type (or, for the Prometheus
//! Operator's monitors, a small strict struct) with unknown fields refused, and the typed
//! objects are checked for the security posture and the wiring of the two tiers.

pub mod companions;
pub mod crd;
pub mod helm;
pub mod objects;
pub mod posture;
pub mod wiring;

use std::path::PathBuf;

/// The chart, relative to the workspace root.
pub const CHART: &str = "deploy/helm/agentrace";
/// The plain manifests, relative to the workspace root.
pub const MANIFESTS: &str = "deploy/kubernetes/agentrace.yaml";
/// Release name and namespace the plain manifests are rendered with.
pub const RELEASE: &str = "agentrace";
pub const NAMESPACE: &str = "agentrace";

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    crate_dir.ancestors().nth(2).map(PathBuf::from).unwrap_or(crate_dir)
}

/// Problems found by a check, all reported at once rather than the first alone.
#[derive(Debug, Default)]
pub struct Problems(Vec<String>);

impl Problems {
    /// Records `message()` unless `ok`.
    pub fn check(&mut self, ok: bool, message: impl FnOnce() -> String) {
        if !ok {
            self.0.push(message());
        }
    }

    pub fn push(&mut self, message: String) {
        self.0.push(message);
    }

    pub fn extend(&mut self, other: Problems) {
        self.0.extend(other.0);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok` when there are none, else one error listing them all under `what`.
    pub fn into_result(self, what: &str) -> anyhow::Result<()> {
        if self.0.is_empty() {
            return Ok(());
        }
        anyhow::bail!("{what}: {} problem(s):\n  - {}", self.0.len(), self.0.join("\n  - "))
    }
}
