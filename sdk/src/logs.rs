//! The `tracing` → OTLP logs bridge: `tracing` events (INFO and above) become OTLP log records,
//! exported next to the spans, each carrying the trace and span id of the span it happened in
//! (the OpenTelemetry layer makes that span's context current while it is entered), so the
//! collector and Grafana link a log line to its trace. On by default; `Builder::logs(false)`
//! or `OTEL_LOGS_EXPORTER=none` turns it off.

use std::time::Duration;

use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::logs::{BatchLogProcessor, SdkLoggerProvider};
use opentelemetry_sdk::Resource;
use tracing::Subscriber;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::setup::{grpc_settings, http_settings, InitError, Protocol};

const LOGS_EXPORTER_ENV: &str = "OTEL_LOGS_EXPORTER";
const LOGS_PATH: &str = "/v1/logs";

/// Whether the environment turns the bridge off.
pub fn disabled_by_env() -> bool {
    std::env::var(LOGS_EXPORTER_ENV).is_ok_and(|value| value.trim().eq_ignore_ascii_case("none"))
}

/// The OTLP/HTTP logs URL for the endpoint the spans go to: `/v1/logs` on a bare address, in
/// the place of `/v1/traces`, or after any other path.
pub fn http_logs_url(endpoint: &str) -> String {
    let trimmed = endpoint.trim_end_matches('/');
    if let Some(base) = trimmed.strip_suffix(agentrace_semconv::otlp::TRACES_PATH) {
        return format!("{base}{LOGS_PATH}");
    }
    format!("{trimmed}{LOGS_PATH}")
}

/// What the logs exporter is built from: the spans' settings.
pub struct LogSettings {
    pub protocol: Protocol,
    pub endpoint: Option<String>,
    pub headers: std::collections::HashMap<String, String>,
    pub timeout: Duration,
    pub resource: Resource,
}

/// The logger provider, its exporter built on the exporter runtime as the spans' is.
pub fn provider(
    settings: LogSettings,
    runtime: &tokio::runtime::Handle,
) -> Result<SdkLoggerProvider, InitError> {
    let LogSettings { protocol, endpoint, headers, timeout, resource } = settings;
    let build = move || -> Result<opentelemetry_otlp::LogExporter, InitError> {
        match protocol {
            Protocol::Grpc => {
                let _runtime = runtime.enter();
                let exporter = opentelemetry_otlp::LogExporter::builder().with_tonic().with_timeout(timeout);
                Ok(grpc_settings(exporter, endpoint, &headers).build()?)
            }
            Protocol::HttpProtobuf => {
                let exporter = opentelemetry_otlp::LogExporter::builder()
                    .with_http()
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .with_timeout(timeout);
                let url = endpoint.map(|endpoint| http_logs_url(&endpoint));
                Ok(http_settings(exporter, url, headers).build()?)
            }
        }
    };
    let exporter =
        std::thread::scope(|scope| scope.spawn(build).join()).map_err(|_| InitError::BuilderThread)??;
    Ok(SdkLoggerProvider::builder()
        .with_log_processor(BatchLogProcessor::builder(exporter).build())
        .with_resource(resource)
        .build())
}

/// The bridge layer: INFO and above, never the exporters' own HTTP/2 and gRPC internals (which
/// would log about exporting their own logs).
pub fn bridge<S>(provider: &SdkLoggerProvider) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let quiet = Targets::new()
        .with_default(LevelFilter::INFO)
        .with_target("h2", LevelFilter::OFF)
        .with_target("hyper", LevelFilter::OFF)
        .with_target("hyper_util", LevelFilter::OFF)
        .with_target("tonic", LevelFilter::OFF)
        .with_target("tower", LevelFilter::OFF)
        .with_target("reqwest", LevelFilter::OFF)
        .with_target("opentelemetry", LevelFilter::OFF)
        .with_target("opentelemetry_sdk", LevelFilter::OFF)
        .with_target("opentelemetry_otlp", LevelFilter::OFF);
    OpenTelemetryTracingBridge::new(provider).with_filter(quiet)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_logs_url_follows_the_traces_endpoint() {
        assert_eq!(http_logs_url("http://collector:4318"), "http://collector:4318/v1/logs");
        assert_eq!(http_logs_url("http://collector:4318/v1/traces"), "http://collector:4318/v1/logs");
        assert_eq!(http_logs_url("https://gw.example/otlp/"), "https://gw.example/otlp/v1/logs");
    }
}
