//! Entry points from outside the collector's own code: [`InProcess`], a whole collector in this
//! process on loopback ports it bound itself (the end-to-end tests, the demo, the load
//! generator); the fuzz targets (`fuzz/`) and their corpus replay in the tests (arbitrary bytes
//! in, through the code a request takes, no panic out); [`Pipeline`] and [`decode_only`], the
//! benchmarks' entry points (`loadgen/benches/pipeline.rs`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use tokio::sync::{mpsc, oneshot};
use tower::ServiceExt;

use crate::derive::Deriver;
pub use crate::logs::fuzz_rules as log_rules;
use crate::metrics::{Format, Registry, SeriesLimits};
use crate::normalize::Normalizer;
use crate::process::{derive_request, Deriving};
use crate::receive::http::{HttpReceiver, TRACES_PATH};
use crate::receive::{decode, Batch, Ingest, QueueGauge};
use crate::serve::body::Metered;
use crate::serve::{BodyLimits, Budget, Table};
use crate::view::{Staged, View, ViewConfig};
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
            crate::serve::bind(address)
        };
        let listeners = Listeners {
            otlp_grpc: bind("--otlp-grpc-addr", config.receive.grpc_addr)?,
            otlp_http: bind("--otlp-http-addr", config.receive.http_addr)?,
            metrics: bind("--metrics-addr", config.metrics_addr)?,
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

/// Decodes OTLP protobuf (panics unless prost agrees, bar a refusal as amplified), derives, renders.
pub fn protobuf_request(data: &[u8]) {
    let body = bytes::Bytes::copy_from_slice(data);
    match (decode::protobuf(body.clone()), decode::reference(body)) {
        (Ok(decoded), Ok(reference)) => {
            let encode = prost::Message::encode_to_vec;
            assert_eq!(encode(&decoded.request), encode(&reference), "decoded differently");
            let spans = decoded.request.span_count() as u64;
            assert_eq!(decode::count_spans(data), Some(spans), "spans counted differently");
            derive_and_render(&decoded.request);
        }
        (Err(_), Err(_)) | (Err(decode::DecodeError::Amplified), Ok(_)) => {}
        (ours, reference) => panic!("decoders disagree: {:?} against {:?}", ours.err(), reference.err()),
    }
}

/// Decodes OTLP/JSON and, when it decodes, runs normalize, derive and exposition on it.
pub fn json_request(data: &[u8]) {
    if let Ok(decoded) = decode::json(data) {
        derive_and_render(&decoded.request);
    }
}

/// Panics when a page fails [`check_exposition`]: the fuzz targets' assertion that whatever
/// arrives, the page stays finite and its counts whole.
fn derive_and_render(request: &ExportTraceServiceRequest) {
    let registry = Registry::new(SeriesLimits {
        max_series_per_metric: 50,
        idle_timeout_secs: 60.0,
        ..SeriesLimits::default()
    });
    let mut deriver = Deriver::default();
    derive_request(
        &Normalizer::default(),
        &mut deriver,
        Deriving { registry: registry.writer(0), gpu: None, staged: None },
        request,
        0.0,
    );
    let mut observations = Vec::new();
    deriver.tick(1e9, &mut observations);
    registry.apply(&mut observations, 0.0);
    for format in [Format::OpenMetrics, Format::Classic] {
        if let Err(error) = check_exposition(&registry.render(format)) {
            panic!("{error}");
        }
    }
}

/// Reads a rendered page's numbers as a strict scraper would: every sample value finite,
/// bucket and count values whole and not negative.
pub fn check_exposition(page: &str) -> Result<(), String> {
    for line in page.lines().filter(|line| !line.is_empty() && !line.starts_with('#')) {
        let (name, rest) = split_sample(line).ok_or_else(|| format!("not a sample: {line}"))?;
        let text = rest.split_whitespace().next().ok_or_else(|| format!("no value: {line}"))?;
        let value: f64 = text.parse().map_err(|_| format!("not a number: {line}"))?;
        if !value.is_finite() {
            return Err(format!("not finite: {line}"));
        }
        let counted = name.ends_with("_bucket") || name.ends_with("_count");
        if counted && (value < 0.0 || value.fract() != 0.0) {
            return Err(format!("not a whole count: {line}"));
        }
    }
    Ok(())
}

/// A sample line's metric name, and what follows its labels (label values may hold braces,
/// spaces and escaped quotes).
fn split_sample(line: &str) -> Option<(&str, &str)> {
    let name_end = line.find(['{', ' '])?;
    if line.as_bytes()[name_end] == b' ' {
        return Some((&line[..name_end], &line[name_end..]));
    }
    let (mut quoted, mut escaped) = (false, false);
    for (offset, character) in line[name_end..].char_indices() {
        match character {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '}' if !quoted => return Some((&line[..name_end], &line[name_end + offset + 1..])),
            _ => {}
        }
    }
    None
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
        let deriving = Deriving { registry: registry.writer(0), gpu: None, staged: None };
        derive_request(&normalizer, &mut deriver, deriving, &request, now);
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
        let ingest = Ingest::new(vec![sender], QueueGauge::new("fuzz", 16), registry);
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

/// The OTLP/HTTP handler reading a body that arrives in chunks with pauses, through the
/// connection layer's metered body: the in-flight budget and the rate floor under arbitrary
/// timing. Input: a selector byte (bits 0–1 the content type as for [`HttpHarness`], bit 4
/// gzip, bit 5 a declared length), a budget byte (KiB, at least 1), then chunks of `[length,
/// pause in 250 ms steps, bytes…]`. The window is 1 s and the floor 1 KiB/s. Run it on a
/// runtime with paused time.
pub struct SlowBodyHarness {
    router: axum::Router,
    queue: mpsc::Receiver<Batch>,
    table: Table,
}

impl SlowBodyHarness {
    pub fn new() -> Self {
        let (sender, queue) = mpsc::channel(16);
        let registry = Arc::new(Registry::new(SeriesLimits::default()));
        let ingest = Ingest::new(vec![sender], QueueGauge::new("fuzz", 16), registry);
        let router = HttpReceiver::new(ingest, HTTP_LIMIT).router();
        Self { router, queue, table: Table::new(1) }
    }

    /// The status, and the bytes the budget still holds once the request is over (0, or a
    /// reservation leaked).
    pub async fn request(&mut self, data: &[u8]) -> (u16, u64) {
        let (header, mut rest) = data.split_at(data.len().min(2));
        let selector = header.first().copied().unwrap_or(0);
        let budget = Budget::new(u64::from(header.get(1).copied().unwrap_or(0)).max(1) * 1024);
        let mut chunks = Vec::new();
        while let [length, pause, tail @ ..] = rest {
            let taken = usize::from(*length).min(tail.len());
            let pause = std::time::Duration::from_millis(u64::from(*pause) * 250);
            chunks.push((pause, bytes::Bytes::copy_from_slice(&tail[..taken])));
            rest = &tail[taken..];
        }
        let length = chunks.iter().map(|(_, bytes)| bytes.len() as u64).sum::<u64>();
        let (frames, body) = mpsc::channel(4);
        let feeder = tokio::spawn(async move {
            for (pause, bytes) in chunks {
                tokio::time::sleep(pause).await;
                if frames
                    .send(Ok::<_, std::convert::Infallible>(http_body::Frame::data(bytes)))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        let stream = http_body_util::StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(body));
        let declared = Declared { inner: stream, length: (selector & 0x20 != 0).then_some(length) };
        let limits = BodyLimits {
            budget: budget.clone(),
            max_bytes: HTTP_LIMIT as u64,
            window: std::time::Duration::from_secs(1),
            min_rate: 1024,
        };
        let Ok(connection) = self.table.admit() else { return (0, 0) };
        let body = Metered::new(declared, limits, connection.clone(), false);
        let status = match slow_request(selector, body) {
            Some(request) => match self.router.clone().oneshot(request).await {
                Ok(response) => response.status().as_u16(),
                Err(infallible) => match infallible {},
            },
            None => 0,
        };
        feeder.abort();
        let _ = feeder.await;
        self.table.remove(&connection);
        while self.queue.try_recv().is_ok() {}
        (status, budget.used())
    }
}

impl Default for SlowBodyHarness {
    fn default() -> Self {
        Self::new()
    }
}

fn slow_request<B>(selector: u8, body: B) -> Option<http::Request<B>> {
    let content_type =
        ["application/x-protobuf", "application/json", "application/json; charset=utf-8", "text/plain"];
    let mut builder = http::Request::post(TRACES_PATH)
        .header(http::header::CONTENT_TYPE, content_type[usize::from(selector % 4)]);
    if selector & 0x10 != 0 {
        builder = builder.header(http::header::CONTENT_ENCODING, "gzip");
    }
    builder.body(body).ok()
}

/// A body that says how long it is, as one with `Content-Length` does.
struct Declared<B> {
    inner: B,
    length: Option<u64>,
}

impl<B: http_body::Body + Unpin> http_body::Body for Declared<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.length.map_or_else(|| self.inner.size_hint(), http_body::SizeHint::with_exact)
    }
}

/// Decodes an OTLP protobuf body as the receivers do, and nothing else: the benchmarks' measure
/// of what the rest of the pipeline costs on top. False when it does not decode.
pub fn decode_only(body: bytes::Bytes) -> bool {
    decode::protobuf(body).is_ok()
}

/// [`decode_only`] by prost's derived decoder and a UTF-8 pass (the receivers' before `proto/`).
pub fn decode_by_prost(body: bytes::Bytes) -> bool {
    decode::reference(body).is_ok()
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
    registry: Arc<Registry>,
    /// The registry stripe this pipeline writes, as worker number `stripe`.
    stripe: usize,
    /// The live view's store and the staging room, as the collector runs by default.
    view: (Arc<View>, Staged),
}

impl Default for Pipeline {
    fn default() -> Self {
        let registry = Arc::new(Registry::new(SeriesLimits::default()));
        Self {
            normalizer: Normalizer::default(),
            deriver: Deriver::default(),
            view: (View::new(ViewConfig::default(), registry.clone(), None), Staged::default()),
            registry,
            stripe: 0,
        }
    }
}

impl Pipeline {
    /// `count` pipelines writing to one registry, as the collector's workers share theirs:
    /// each to its own stripe of it when `striped` (as the collector runs them), else all to
    /// one.
    pub fn sharing_a_registry(count: usize, striped: bool) -> Vec<Self> {
        let stripes = if striped { Registry::stripes_for(count) } else { 1 };
        let registry = Arc::new(Registry::striped(SeriesLimits::default(), stripes));
        let view = View::new(ViewConfig::default(), registry.clone(), None);
        (0..count)
            .map(|worker| Self {
                normalizer: Normalizer::default(),
                deriver: Deriver::default(),
                view: (view.clone(), Staged::default()),
                registry: registry.clone(),
                stripe: if striped { worker } else { 0 },
            })
            .collect()
    }

    /// Runs one protobuf body through at `now` (Unix seconds). False when it does not decode.
    pub fn request(&mut self, body: bytes::Bytes, now: f64) -> bool {
        let Ok(decoded) = decode::protobuf(body) else { return false };
        let request = decoded.request;
        let (view, staged) = &mut self.view;
        view.prepare(staged);
        let deriving =
            Deriving { registry: self.registry.writer(self.stripe), gpu: None, staged: Some(staged) };
        derive_request(&self.normalizer, &mut self.deriver, deriving, &request, now);
        view.insert(staged);
        true
    }

    /// The processor's tick, less series expiry: flushes the traces idle at `now` out of the
    /// agent-graph window and applies their roll-ups.
    pub fn tick(&mut self, now: f64) {
        let mut observations = Vec::new();
        self.deriver.tick(now, &mut observations);
        self.registry.writer(self.stripe).apply(&mut observations, now);
    }

    /// Traces held in the agent-graph window.
    pub fn open_traces(&self) -> usize {
        self.deriver.open_traces()
    }
}
