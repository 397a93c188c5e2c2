//! Entry points from outside the collector's own code:
//! - [`InProcess`]: a whole collector in this process, on loopback ports it bound itself, for
//!   the end-to-end tests of this crate, the demo and the load generator;
//! - the fuzz targets (`fuzz/`) and their corpus replay in the tests: arbitrary bytes in,
//!   through the same code a request takes, and no panic out;
//! - [`Pipeline`] and [`decode_only`], the entry points of the benchmarks
//!   (`loadgen/benches/pipeline.rs`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tower::ServiceExt;

use crate::derive::Deriver;
use crate::metrics::{Format, Registry, SeriesLimits};
use crate::normalize::Normalizer;
use crate::process::derive_request;
use crate::receive::http::{HttpReceiver, TRACES_PATH};
use crate::receive::{decode, Batch, Ingest, QueueGauge};
use crate::wire::ExportTraceServiceRequest;
use crate::{Listeners, Options};

/// A collector running in this process on `127.0.0.1` ports it bound itself.
pub struct InProcess {
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    pub metrics: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl InProcess {
    /// Starts a collector configured by `args`, as on its command line (without the program
    /// name). It listens where `args` say, and on fresh loopback ports otherwise.
    pub async fn start(args: &[&str]) -> anyhow::Result<Self> {
        let argv = std::iter::once("agentrace-collector").chain(args.iter().copied());
        let config = Options::load(argv).and_then(Options::validate)?;
        let named = |flag: &str| args.iter().any(|arg| arg.starts_with(flag));
        let bind = |flag: &str, address: SocketAddr| {
            let address = if named(flag) { address } else { SocketAddr::from(([127, 0, 0, 1], 0)) };
            TcpListener::bind(address)
        };
        let listeners = Listeners {
            otlp_grpc: bind("--otlp-grpc-addr", config.receive.grpc_addr).await?,
            otlp_http: bind("--otlp-http-addr", config.receive.http_addr).await?,
            metrics: bind("--metrics-addr", config.metrics_addr).await?,
        };
        let grpc = listeners.otlp_grpc.local_addr()?;
        let http = listeners.otlp_http.local_addr()?;
        let metrics = listeners.metrics.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(crate::run(config, listeners, async {
            let _ = stopped.await;
        }));
        Ok(Self { grpc, http, metrics, stop: Some(stop), task: Some(task) })
    }

    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    pub fn http_url(&self) -> String {
        format!("http://{}", self.http)
    }

    pub fn metrics_url(&self) -> String {
        format!("http://{}/metrics", self.metrics)
    }

    /// Shuts the collector down as SIGTERM does, and waits until it has drained.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await?,
            None => Ok(()),
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Decodes OTLP protobuf and, when it decodes, runs normalize, derive and exposition on it.
pub fn protobuf_request(data: &[u8]) {
    if let Ok(decoded) = decode::protobuf(bytes::Bytes::copy_from_slice(data)) {
        derive_and_render(&decoded.request);
    }
}

/// Decodes OTLP/JSON and, when it decodes, runs normalize, derive and exposition on it.
pub fn json_request(data: &[u8]) {
    if let Ok(decoded) = decode::json(data) {
        derive_and_render(&decoded.request);
    }
}

fn derive_and_render(request: &ExportTraceServiceRequest) {
    let registry = Registry::new(SeriesLimits { max_series_per_metric: 50, idle_timeout_secs: 60.0 });
    let mut deriver = Deriver::default();
    let mut observations = Vec::new();
    derive_request(&Normalizer::default(), &mut deriver, &registry, None, request, 0.0, &mut observations);
    deriver.tick(1e9, &mut observations);
    registry.apply(&mut observations, 0.0);
    let _ = registry.render(Format::OpenMetrics);
}

/// Runs OTLP/JSON requests, in order, through normalize and derive at `now` (with the built-in
/// prices and those of `price_file`), closes the agent-graph window, and renders `/metrics` in
/// the classic format: what the golden tests compare.
pub fn replay_json(
    bodies: &[Vec<u8>],
    price_file: Option<&std::path::Path>,
    now: f64,
) -> Result<String, String> {
    let prices = match price_file {
        Some(path) => crate::cost::PriceTable::with_file(path).map_err(|error| error.to_string())?,
        None => crate::cost::PriceTable::built_in(),
    };
    let mut deriver = Deriver::new(crate::GraphConfig::default(), Arc::new(prices));
    let registry = Registry::new(SeriesLimits::default());
    let normalizer = Normalizer::default();
    for body in bodies {
        let request = decode::json(body).map_err(|error| error.to_string())?.request;
        derive_request(&normalizer, &mut deriver, &registry, None, &request, now, &mut Vec::new());
    }
    let mut observations = Vec::new();
    deriver.tick(now + 3600.0, &mut observations);
    registry.apply(&mut observations, now);
    Ok(registry.render(Format::Classic))
}

/// The OTLP/HTTP handler with a 64 KiB limit. The first byte picks the content type and
/// encoding, the rest is the body. Returns the HTTP status.
pub struct HttpHarness {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    queue: mpsc::Receiver<Batch>,
}

pub const HTTP_LIMIT: usize = 64 * 1024;

impl HttpHarness {
    pub fn new() -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (sender, queue) = mpsc::channel(16);
        let registry = Arc::new(Registry::new(SeriesLimits::default()));
        let ingest = Ingest::new(sender, QueueGauge::new("fuzz", 16), registry);
        let router = HttpReceiver::new(ingest, HTTP_LIMIT).router();
        Ok(Self { runtime, router, queue })
    }

    pub fn request(&mut self, data: &[u8]) -> u16 {
        let (selector, body) = data.split_first().map_or((0, &[][..]), |(first, rest)| (*first, rest));
        let content_type = match selector % 4 {
            0 => "application/x-protobuf",
            1 => "application/json",
            2 => "application/json; charset=utf-8",
            _ => "text/plain",
        };
        let mut builder = http::Request::post(TRACES_PATH).header(http::header::CONTENT_TYPE, content_type);
        if selector & 0x10 != 0 {
            builder = builder.header(http::header::CONTENT_ENCODING, "gzip");
        }
        let Ok(request) = builder.body(Body::from(body.to_vec())) else { return 0 };
        let router = self.router.clone();
        let status = self.runtime.block_on(async move {
            match router.oneshot(request).await {
                Ok(response) => response.status().as_u16(),
                Err(infallible) => match infallible {},
            }
        });
        while self.queue.try_recv().is_ok() {}
        status
    }
}

/// Decodes an OTLP protobuf body as the receivers do, and nothing else: the benchmarks' measure
/// of what the rest of the pipeline costs on top. False when it does not decode.
pub fn decode_only(body: bytes::Bytes) -> bool {
    decode::protobuf(body).is_ok()
}

/// The processing stage's work on each request, for the benchmarks: the body decoded as the
/// receivers decode it, every span normalized and derived, the observations applied to the
/// registry (`process::Processor` without GPU matching, enrichment and redaction, which need
/// a GPU or a forwarding target). State carries over between requests as in the running
/// collector: series exist after the first request, and the agent-graph window holds traces
/// until [`Self::tick`] flushes them.
pub struct Pipeline {
    normalizer: Normalizer,
    deriver: Deriver,
    registry: Registry,
}

impl Default for Pipeline {
    fn default() -> Self {
        Self {
            normalizer: Normalizer::default(),
            deriver: Deriver::default(),
            registry: Registry::new(SeriesLimits::default()),
        }
    }
}

impl Pipeline {
    /// Runs one protobuf body through at `now` (Unix seconds). False when it does not decode.
    pub fn request(&mut self, body: bytes::Bytes, now: f64) -> bool {
        let Ok(decoded) = decode::protobuf(body) else { return false };
        let request = decoded.request;
        let mut observations = Vec::new();
        derive_request(
            &self.normalizer,
            &mut self.deriver,
            &self.registry,
            None,
            &request,
            now,
            &mut observations,
        );
        true
    }

    /// The processor's tick, less series expiry: flushes the traces idle at `now` out of the
    /// agent-graph window and applies their roll-ups.
    pub fn tick(&mut self, now: f64) {
        let mut observations = Vec::new();
        self.deriver.tick(now, &mut observations);
        self.registry.apply(&mut observations, now);
    }

    /// Traces held in the agent-graph window.
    pub fn open_traces(&self) -> usize {
        self.deriver.open_traces()
    }
}
