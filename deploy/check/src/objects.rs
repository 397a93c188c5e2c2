//! Rendered YAML into typed Kubernetes objects, refusing any field the type does not know.

use anyhow::{anyhow, bail, Context, Result};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::Resource;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use crate::crd::{self, PodMonitor, ServiceMonitor};

/// One rendered object, of a kind the chart may produce.
#[derive(Debug)]
pub enum Object {
    ServiceAccount(ServiceAccount),
    Service(Service),
    DaemonSet(DaemonSet),
    Deployment(Deployment),
    HorizontalPodAutoscaler(HorizontalPodAutoscaler),
    PodDisruptionBudget(PodDisruptionBudget),
    ServiceMonitor(ServiceMonitor),
    PodMonitor(PodMonitor),
}

impl Object {
    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Object::ServiceAccount(object) => &object.metadata,
            Object::Service(object) => &object.metadata,
            Object::DaemonSet(object) => &object.metadata,
            Object::Deployment(object) => &object.metadata,
            Object::HorizontalPodAutoscaler(object) => &object.metadata,
            Object::PodDisruptionBudget(object) => &object.metadata,
            Object::ServiceMonitor(object) => &object.metadata,
            Object::PodMonitor(object) => &object.metadata,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Object::ServiceAccount(_) => ServiceAccount::KIND,
            Object::Service(_) => Service::KIND,
            Object::DaemonSet(_) => DaemonSet::KIND,
            Object::Deployment(_) => Deployment::KIND,
            Object::HorizontalPodAutoscaler(_) => HorizontalPodAutoscaler::KIND,
            Object::PodDisruptionBudget(_) => PodDisruptionBudget::KIND,
            Object::ServiceMonitor(_) => "ServiceMonitor",
            Object::PodMonitor(_) => "PodMonitor",
        }
    }

    /// `Kind/name`, for messages.
    pub fn id(&self) -> String {
        format!("{}/{}", self.kind(), self.metadata().name.as_deref().unwrap_or("?"))
    }
}

/// The YAML documents of `text` as JSON values; empty documents (comments only) are left out.
pub fn documents(text: &str) -> Result<Vec<Value>> {
    let mut values = Vec::new();
    for (index, document) in serde_norway::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(document).with_context(|| format!("YAML document {index}"))?;
        if !value.is_null() {
            values.push(value);
        }
    }
    Ok(values)
}

/// `value` as a `T`, an error naming every field of `value` that `T` would have ignored.
pub fn strict<T: DeserializeOwned>(value: &Value) -> Result<T> {
    let mut ignored = Vec::new();
    let typed = serde_ignored::deserialize(value.clone(), |path| ignored.push(dotted(&path)))?;
    if !ignored.is_empty() {
        bail!("unknown field(s): {}", ignored.join(", "));
    }
    Ok(typed)
}

/// `path` as `spec.template.spec.containers.0.name`, without serde_ignored's `?` for each
/// optional field on the way.
fn dotted(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => join(&dotted(parent), &index.to_string()),
        Path::Map { parent, key } => join(&dotted(parent), key),
        Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => {
            dotted(parent)
        }
    }
}

fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_owned()
    } else {
        format!("{parent}.{child}")
    }
}

/// The typed object of one rendered document; an error for a kind the chart should not
/// produce, or for any field its type does not have.
pub fn typed(value: &Value) -> Result<Object> {
    let api_version = value.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or_default();
    let name = value.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("?");
    let object = match (api_version, kind) {
        (ServiceAccount::API_VERSION, ServiceAccount::KIND) => Object::ServiceAccount(strict(value)?),
        (Service::API_VERSION, Service::KIND) => Object::Service(strict(value)?),
        (DaemonSet::API_VERSION, DaemonSet::KIND) => Object::DaemonSet(strict(value)?),
        (Deployment::API_VERSION, Deployment::KIND) => Object::Deployment(strict(value)?),
        (HorizontalPodAutoscaler::API_VERSION, HorizontalPodAutoscaler::KIND) => {
            Object::HorizontalPodAutoscaler(strict(value)?)
        }
        (PodDisruptionBudget::API_VERSION, PodDisruptionBudget::KIND) => {
            Object::PodDisruptionBudget(strict(value)?)
        }
        (crd::API_VERSION, "ServiceMonitor") => Object::ServiceMonitor(strict(value)?),
        (crd::API_VERSION, "PodMonitor") => Object::PodMonitor(strict(value)?),
        _ => return Err(anyhow!("unexpected kind {api_version}/{kind} (named {name})")),
    };
    Ok(object)
}

/// Every document of a rendering, typed; one error listing each document that failed.
pub fn parse(text: &str) -> Result<Vec<Object>> {
    let mut objects = Vec::new();
    let mut failures = Vec::new();
    for value in documents(text)? {
        let kind = value.get("kind").and_then(Value::as_str).unwrap_or("?").to_owned();
        let name = value.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("?").to_owned();
        match typed(&value) {
            Ok(object) => objects.push(object),
            Err(error) => failures.push(format!("{kind}/{name}: {error:#}")),
        }
    }
    if !failures.is_empty() {
        bail!("{} document(s) do not match their types:\n  - {}", failures.len(), failures.join("\n  - "));
    }
    Ok(objects)
}

/// Scalars that YAML 1.1 readers (Kubernetes' own) take for something other than what a
/// YAML 1.2 reader such as this crate's sees: unquoted yes/no/on/off/y/n (booleans there) and
/// numbers with a leading zero (octal there). Each as `line N: text`.
pub fn yaml11_ambiguities(text: &str) -> Vec<String> {
    const BOOLEANS: [&str; 8] = ["y", "n", "yes", "no", "on", "off", "true", "false"];
    let mut found = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') {
            continue;
        }
        let scalar = match trimmed.split_once(": ") {
            Some((_, value)) => value.trim(),
            None => trimmed.strip_prefix("- ").unwrap_or("").trim(),
        };
        let lower = scalar.to_ascii_lowercase();
        let boolean_only_in_11 = BOOLEANS[..6].contains(&lower.as_str());
        let octal = scalar.len() > 1 && scalar.starts_with('0') && scalar.bytes().all(|b| b.is_ascii_digit());
        let odd_case_boolean = BOOLEANS[6..].contains(&lower.as_str()) && scalar != lower;
        if boolean_only_in_11 || octal || odd_case_boolean {
            found.push(format!("line {}: {}", number + 1, line.trim_end()));
        }
    }
    found
}
