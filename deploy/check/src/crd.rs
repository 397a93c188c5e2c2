//! The Prometheus Operator's ServiceMonitor and PodMonitor (monitoring.coreos.com/v1), which
//! `k8s-openapi` does not have: the fields the chart uses, every other field refused.

use k8s_openapi::api::core::v1::SecretKeySelector;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::Deserialize;

use crate::Problems;

pub const API_VERSION: &str = "monitoring.coreos.com/v1";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceMonitor {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: ServiceMonitorSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceMonitorSpec {
    pub selector: LabelSelector,
    pub namespace_selector: Option<NamespaceSelector>,
    pub endpoints: Vec<Endpoint>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PodMonitor {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: PodMonitorSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PodMonitorSpec {
    pub selector: LabelSelector,
    pub namespace_selector: Option<NamespaceSelector>,
    pub pod_metrics_endpoints: Vec<Endpoint>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NamespaceSelector {
    pub any: Option<bool>,
    #[serde(default)]
    pub match_names: Vec<String>,
}

/// A scrape endpoint: `endpoints[]` of a ServiceMonitor, `podMetricsEndpoints[]` of a
/// PodMonitor (the same fields as far as the chart goes).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Endpoint {
    /// A port name of the Service or of the pods' containers.
    pub port: String,
    pub path: Option<String>,
    pub scheme: Option<String>,
    pub interval: Option<String>,
    pub authorization: Option<Authorization>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub credentials: SecretKeySelector,
}

/// The value checks the operator's schema makes on these fields.
pub fn check_endpoints(owner: &str, endpoints: &[Endpoint]) -> Problems {
    let mut problems = Problems::default();
    problems.check(!endpoints.is_empty(), || format!("{owner}: no scrape endpoint"));
    for endpoint in endpoints {
        let scheme = endpoint.scheme.as_deref().unwrap_or("http");
        problems.check(matches!(scheme, "http" | "https"), || format!("{owner}: scheme {scheme:?}"));
        if let Some(interval) = &endpoint.interval {
            problems.check(is_duration(interval), || format!("{owner}: interval {interval:?}"));
        }
        if let Some(path) = &endpoint.path {
            problems.check(path.starts_with('/'), || format!("{owner}: path {path:?}"));
        }
        if let Some(authorization) = &endpoint.authorization {
            let kind = authorization.kind.as_deref().unwrap_or("Bearer");
            problems.check(kind == "Bearer", || format!("{owner}: authorization type {kind:?}"));
            problems.check(!authorization.credentials.name.is_empty(), || {
                format!("{owner}: authorization credentials without a Secret name")
            });
        }
    }
    problems
}

/// A Prometheus duration: one or more `<number><unit>` with units ms, s, m, h, d, w, y.
pub fn is_duration(text: &str) -> bool {
    let mut rest = text;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        let Some(unit) = ["ms", "s", "m", "h", "d", "w", "y"].into_iter().find(|unit| rest.starts_with(unit))
        else {
            return false;
        };
        rest = &rest[unit.len()..];
    }
    true
}

#[cfg(test)]
mod tests {
    use super::is_duration;

    #[test]
    fn durations() {
        for good in ["30s", "1m30s", "500ms", "2h"] {
            assert!(is_duration(good), "{good}");
        }
        for bad in ["", "30", "s", "30 s", "1.5m", "30sec"] {
            assert!(!is_duration(bad), "{bad}");
        }
    }
}
