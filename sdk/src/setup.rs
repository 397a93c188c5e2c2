//! Installing the pipeline: an OTLP exporter (gRPC by default, HTTP/protobuf as an option)
//! behind a bounded batch processor, a `tracing` subscriber with the OpenTelemetry layer and
//! the agent scope layer, and a [`Guard`] that flushes and shuts everything down on drop.
//!
//! The exporter runs on a small runtime of its own, so it works from sync programs, from any
//! tokio runtime flavour, and while the caller's runtime is shutting down.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agentrace_semconv::attr;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider, SpanData, SpanExporter,
    SpanProcessor,
};
use opentelemetry_sdk::Resource;
use tracing::Subscriber;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::content;
use crate::scope::AgentScopeLayer;

const PROTOCOL_ENV: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
const INSTRUMENTATION_SCOPE: &str = "agentrace";
/// Spans waiting for export; past this they are dropped (and counted), never blocking the agent.
const DEFAULT_QUEUE_SIZE: usize = 4096;
const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// How spans travel to the collector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/gRPC, default endpoint `http://localhost:4317`.
    Grpc,
    /// OTLP/HTTP with protobuf bodies, default endpoint `http://localhost:4318/v1/traces`.
    HttpProtobuf,
}

impl Protocol {
    fn from_env() -> Option<Self> {
        match std::env::var(PROTOCOL_ENV).ok()?.trim() {
            "grpc" => Some(Self::Grpc),
            "http/protobuf" => Some(Self::HttpProtobuf),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("cannot start the exporter runtime: {0}")]
    Runtime(#[from] std::io::Error),
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    #[error("the exporter builder thread panicked")]
    BuilderThread,
    #[error("a global tracing subscriber is already installed; use Builder::build and agentrace::layer")]
    SubscriberAlreadySet,
}

/// Configures the SDK. Settings left unset follow the standard `OTEL_*` environment
/// variables (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
/// `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_PROTOCOL`, `OTEL_SERVICE_NAME`,
/// `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`).
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct Builder {
    service_name: Option<String>,
    endpoint: Option<String>,
    protocol: Option<Protocol>,
    headers: HashMap<String, String>,
    resource: Vec<KeyValue>,
    capture_content: Option<bool>,
    max_content_bytes: Option<usize>,
    queue_size: Option<usize>,
    export_timeout: Option<Duration>,
    scheduled_delay: Option<Duration>,
    logs: Option<bool>,
}

/// A builder with nothing set: environment and defaults apply.
pub fn builder() -> Builder {
    Builder::default()
}

/// Installs the SDK on its defaults and the environment. See [`Builder::init`].
pub fn init() -> Guard {
    builder().init()
}

impl Builder {
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// The collector's OTLP endpoint, e.g. `http://localhost:4317` (gRPC) or
    /// `http://localhost:4318` (HTTP; `/v1/traces` is added when there is no path).
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = Some(protocol);
        self
    }

    /// A header (gRPC metadata) sent with every export, e.g. an authorization token.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// A resource attribute; overrides `OTEL_RESOURCE_ATTRIBUTES`.
    pub fn resource_attribute(mut self, attribute: KeyValue) -> Self {
        self.resource.push(attribute);
        self
    }

    /// Records prompts and completions (`gen_ai.input.messages`, `gen_ai.output.messages`).
    /// Off by default.
    pub fn capture_message_content(mut self, enabled: bool) -> Self {
        self.capture_content = Some(enabled);
        self
    }

    /// Cap on one captured content attribute, in bytes (default 16 KiB).
    pub fn max_content_bytes(mut self, max_bytes: usize) -> Self {
        self.max_content_bytes = Some(max_bytes);
        self
    }

    /// Spans held for export; more are dropped and counted (default 4096).
    pub fn queue_size(mut self, spans: usize) -> Self {
        self.queue_size = Some(spans.max(1));
        self
    }

    pub fn export_timeout(mut self, timeout: Duration) -> Self {
        self.export_timeout = Some(timeout);
        self
    }

    /// How often queued spans are sent (default 5 s, the OTel default).
    pub fn scheduled_delay(mut self, delay: Duration) -> Self {
        self.scheduled_delay = Some(delay);
        self
    }

    /// Whether `tracing` events are also exported as OTLP log records (on by default, unless
    /// `OTEL_LOGS_EXPORTER=none`).
    pub fn logs(mut self, enabled: bool) -> Self {
        self.logs = Some(enabled);
        self
    }

    /// Installs the global `tracing` subscriber (console logs for events per `RUST_LOG`, the
    /// OpenTelemetry layer, the agent scope layer). Never fails: when something cannot be set
    /// up, it says so on stderr and returns a guard that records nothing.
    pub fn init(self) -> Guard {
        match self.try_init() {
            Ok(guard) => guard,
            Err(error) => {
                eprintln!("agentrace: tracing disabled: {error}");
                Guard::disabled()
            }
        }
    }

    /// [`Self::init`], reporting what went wrong.
    pub fn try_init(self) -> Result<Guard, InitError> {
        let guard = self.build()?;
        let console = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")));
        tracing_subscriber::registry()
            .with(console)
            .with(layer(guard.tracer()))
            .with(guard.log_layer())
            .try_init()
            .map_err(|_| InitError::SubscriberAlreadySet)?;
        Ok(guard)
    }

    /// Builds the exporter and tracer provider without touching the global subscriber; add
    /// [`layer`]`(guard.tracer())` to a subscriber of your own.
    pub fn build(self) -> Result<Guard, InitError> {
        if let Some(enabled) = self.capture_content.or_else(|| content::capture_from_env().then_some(true)) {
            content::set_capture(enabled, self.max_content_bytes.unwrap_or(content::DEFAULT_MAX_BYTES));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("agentrace-export")
            .enable_all()
            .build()?;
        let protocol = self.protocol.or_else(Protocol::from_env).unwrap_or(Protocol::Grpc);
        let exporter = build_exporter(&self, protocol, runtime.handle())?;
        let stats = Arc::new(Counters::default());
        let batch_config = BatchConfigBuilder::default()
            .with_max_queue_size(self.queue_size.unwrap_or(DEFAULT_QUEUE_SIZE))
            .with_scheduled_delay(self.scheduled_delay.unwrap_or(Duration::from_secs(5)))
            .build();
        let processor =
            BatchSpanProcessor::builder(CountingExporter { inner: exporter, stats: stats.clone() })
                .with_batch_config(batch_config)
                .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(EndCounter { stats: stats.clone() })
            .with_span_processor(processor)
            .with_resource(self.resource())
            .build();
        let logs = if self.logs.unwrap_or_else(|| !crate::logs::disabled_by_env()) {
            let settings = crate::logs::LogSettings {
                protocol,
                endpoint: self.endpoint.clone(),
                headers: self.headers.clone(),
                timeout: self.export_timeout.unwrap_or(DEFAULT_EXPORT_TIMEOUT),
                resource: self.resource(),
            };
            Some(crate::logs::provider(settings, runtime.handle())?)
        } else {
            None
        };
        Ok(Guard { provider: Some(provider), logs, runtime: Some(runtime), stats })
    }

    fn resource(&self) -> Resource {
        let mut attributes = vec![KeyValue::new(attr::PROCESS_PID, i64::from(std::process::id()))];
        if let Some(host) = host_name() {
            attributes.push(KeyValue::new(attr::HOST_NAME, host));
        }
        attributes.extend(self.resource.iter().cloned());
        let builder = Resource::builder().with_attributes(attributes);
        match &self.service_name {
            Some(name) => builder.with_service_name(name.clone()).build(),
            None => builder.build(),
        }
    }
}

fn build_exporter(
    builder: &Builder,
    protocol: Protocol,
    runtime: &tokio::runtime::Handle,
) -> Result<opentelemetry_otlp::SpanExporter, InitError> {
    let timeout = builder.export_timeout.unwrap_or(DEFAULT_EXPORT_TIMEOUT);
    let endpoint = builder.endpoint.clone();
    let headers = builder.headers.clone();
    // Built on a thread of its own: the gRPC channel must see the exporter runtime, and the
    // blocking HTTP client must not be created inside the caller's async context.
    let build = move || -> Result<opentelemetry_otlp::SpanExporter, InitError> {
        match protocol {
            Protocol::Grpc => {
                let _runtime = runtime.enter();
                let exporter = opentelemetry_otlp::SpanExporter::builder().with_tonic().with_timeout(timeout);
                Ok(grpc_settings(exporter, endpoint, &headers).build()?)
            }
            Protocol::HttpProtobuf => {
                let exporter = opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .with_timeout(timeout);
                let url = endpoint.map(|endpoint| agentrace_semconv::otlp::http_traces_url(&endpoint));
                Ok(http_settings(exporter, url, headers).build()?)
            }
        }
    };
    std::thread::scope(|scope| scope.spawn(build).join()).map_err(|_| InitError::BuilderThread)?
}

/// An OTLP/gRPC exporter builder (spans or logs) sending to `endpoint` with `headers` as gRPC
/// metadata.
pub(crate) fn grpc_settings<B: WithExportConfig + WithTonicConfig>(
    mut exporter: B,
    endpoint: Option<String>,
    headers: &HashMap<String, String>,
) -> B {
    if let Some(endpoint) = endpoint {
        exporter = exporter.with_endpoint(endpoint);
    }
    if !headers.is_empty() {
        let mut metadata = tonic::metadata::MetadataMap::new();
        for (name, value) in headers {
            let key = tonic::metadata::MetadataKey::from_bytes(name.as_bytes());
            if let (Ok(key), Ok(value)) = (key, value.parse()) {
                metadata.insert(key, value);
            }
        }
        exporter = exporter.with_metadata(metadata);
    }
    exporter
}

/// An OTLP/HTTP exporter builder (spans or logs) posting to `url` with `headers`.
pub(crate) fn http_settings<B: WithExportConfig + WithHttpConfig>(
    mut exporter: B,
    url: Option<String>,
    headers: HashMap<String, String>,
) -> B {
    if let Some(url) = url {
        exporter = exporter.with_endpoint(url);
    }
    if !headers.is_empty() {
        exporter = exporter.with_headers(headers);
    }
    exporter
}

fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
}

/// The layers to add to a `tracing` subscriber: OpenTelemetry spans from `tracer` (INFO and
/// above, never the exporter's own HTTP/2 and gRPC internals) and the agent scope.
pub fn layer<S>(tracer: SdkTracer) -> impl Layer<S>
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
    tracing_opentelemetry::layer().with_tracer(tracer).with_filter(quiet).and_then(AgentScopeLayer)
}

/// What became of the spans this process recorded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExportStats {
    /// Spans that ended and were handed to the exporter's queue.
    pub ended: u64,
    /// Spans the collector acknowledged.
    pub exported: u64,
    /// Spans in batches the exporter failed to send.
    pub failed: u64,
}

impl ExportStats {
    /// Spans lost to a full queue (or still queued, before shutdown).
    pub fn dropped(&self) -> u64 {
        self.ended.saturating_sub(self.exported + self.failed)
    }
}

#[derive(Debug, Default)]
struct Counters {
    ended: AtomicU64,
    exported: AtomicU64,
    failed: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> ExportStats {
        ExportStats {
            ended: self.ended.load(Ordering::Relaxed),
            exported: self.exported.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}

/// Counts export outcomes around the real exporter.
#[derive(Debug)]
struct CountingExporter<E> {
    inner: E,
    stats: Arc<Counters>,
}

impl<E: SpanExporter> SpanExporter for CountingExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len() as u64;
        let result = self.inner.export(batch).await;
        let counter = if result.is_ok() { &self.stats.exported } else { &self.stats.failed };
        counter.fetch_add(spans, Ordering::Relaxed);
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// Counts spans as they end, before the batch processor may drop them.
#[derive(Debug)]
struct EndCounter {
    stats: Arc<Counters>,
}

impl SpanProcessor for EndCounter {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &opentelemetry::Context) {}

    fn on_end(&self, _span: SpanData) {
        self.stats.ended.fetch_add(1, Ordering::Relaxed);
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// Keeps the pipeline alive; on drop, flushes what is queued and shuts the exporter down, so
/// a short batch job that exits loses no span.
#[derive(Debug)]
#[must_use = "dropping the guard shuts tracing down"]
pub struct Guard {
    provider: Option<SdkTracerProvider>,
    /// The logs bridge's provider; `None` when it is off.
    logs: Option<SdkLoggerProvider>,
    runtime: Option<tokio::runtime::Runtime>,
    stats: Arc<Counters>,
}

impl Guard {
    fn disabled() -> Self {
        Self { provider: None, logs: None, runtime: None, stats: Arc::default() }
    }

    /// The `tracing` → OTLP logs layer, when composing a subscriber of your own (nothing when
    /// the bridge is off).
    pub fn log_layer<S>(&self) -> Option<impl Layer<S>>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        self.logs.as_ref().map(crate::logs::bridge)
    }

    /// A tracer for [`layer`], when composing a subscriber of your own.
    pub fn tracer(&self) -> SdkTracer {
        match &self.provider {
            Some(provider) => provider.tracer(INSTRUMENTATION_SCOPE),
            None => SdkTracerProvider::builder().build().tracer(INSTRUMENTATION_SCOPE),
        }
    }

    pub fn stats(&self) -> ExportStats {
        self.stats.snapshot()
    }

    /// Sends what is queued now.
    pub fn flush(&self) {
        if let Some(provider) = &self.provider {
            if let Err(error) = provider.force_flush() {
                eprintln!("agentrace: flush failed: {error}");
            }
        }
        if let Some(logs) = &self.logs {
            if let Err(error) = logs.force_flush() {
                eprintln!("agentrace: log flush failed: {error}");
            }
        }
    }

    /// Flushes and shuts down now; returns the final counts.
    pub fn shutdown(mut self) -> ExportStats {
        self.close();
        self.stats()
    }

    fn close(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(error) = provider.shutdown() {
                eprintln!("agentrace: shutdown: {error}");
            }
            let stats = self.stats.snapshot();
            if stats.dropped() > 0 || stats.failed > 0 {
                eprintln!(
                    "agentrace: {} of {} spans not exported ({} dropped by the full queue, {} in failed exports)",
                    stats.dropped() + stats.failed,
                    stats.ended,
                    stats.dropped(),
                    stats.failed
                );
            }
        }
        if let Some(logs) = self.logs.take() {
            if let Err(error) = logs.shutdown() {
                eprintln!("agentrace: log shutdown: {error}");
            }
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.close();
    }
}
