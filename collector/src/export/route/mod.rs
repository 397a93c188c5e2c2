//! Routing by trace id over several trace endpoints: the node tier's way to the gateways.
//!
//! Each endpoint is a lane: its own export queue (in memory, or on disk under
//! `<queue-dir>/endpoints/<endpoint>`) and its own [`OtlpExporter`], with the retry, split and
//! RetryInfo rules of a single endpoint. A processed request is cut by trace id into one part
//! per lane, each part keeping its resource and scope, and each span goes to the lane whose
//! score for its trace id is highest (rendezvous hashing with xxh3, which every node computes
//! alike). When a lane joins or leaves, only the traces whose top score changes move: about
//! 1/N of them. A lane whose endpoint is down keeps its share: it is retried there (and waits
//! on disk with `--queue-dir`), never sent elsewhere, where its trace would be cut in two.
//! A lane whose endpoint leaves the set (a gateway scaled in, or replaced by a rollout) is
//! retired: what its endpoint does not take at once is routed again over the lanes in use, so
//! that nothing waits for an address that is gone; so is, at a start, what an earlier run left
//! queued on disk for endpoints no longer in the set.
//!
//! The endpoints are a fixed list or a name looked up every few seconds (`resolve.rs`). The
//! lanes in use are published through a watch channel; [`Routes::run`] owns its sending end
//! and ends once every processor has dropped its [`Router`]: then the lanes' queues close, and
//! it waits for their exporters to drain.

mod fill;
mod resolve;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use bytes::Bytes;
use prost::Message;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use self::fill::Fill;
pub use self::fill::LaneFill;
use crate::events::{DropReason, SpansDropped};
use crate::export::args::{Endpoints, ExportConfig, Routing};
use crate::export::otlp::OtlpExporter;
use crate::export::queue::{self, DiskQueue, Forward, QueueSender};
use crate::metrics::Registry;
use crate::receive::{Refusal, StoreAnswer};
use crate::wire::raw;

/// Where the processors put what they forward: the one export queue, or the router.
#[derive(Clone)]
pub enum Destination {
    Queue(QueueSender),
    Routed(Router),
}

impl Destination {
    pub async fn push(&mut self, forward: Forward) {
        match self {
            Self::Queue(queue) => queue.push(forward).await,
            Self::Routed(router) => router.push(forward).await,
        }
    }
}

/// A processor's handle on the lanes in use.
#[derive(Clone)]
pub struct Router {
    lanes: watch::Receiver<Arc<Lanes>>,
    hard_stop: CancellationToken,
    registry: Arc<Registry>,
}

/// The lanes in use, in endpoint order.
#[derive(Default)]
pub struct Lanes {
    lanes: Vec<Lane>,
}

struct Lane {
    seed: u64,
    sender: QueueSender,
}

impl Lanes {
    /// The lane of a trace: the highest score of `trace_id` under each lane's seed.
    fn pick(&self, trace_id: &[u8]) -> usize {
        let scores = self.lanes.iter().map(|lane| xxh3_64_with_seed(trace_id, lane.seed));
        scores.enumerate().max_by_key(|(_, score)| *score).map_or(0, |(index, _)| index)
    }
}

impl Router {
    /// Cuts `forward` by trace id and queues each part in its lane; waits while no endpoint
    /// is known yet (the ingest queue fills, and the receivers refuse retryably), up to the
    /// hard stop, when the request is counted as dropped.
    async fn push(&mut self, forward: Forward) {
        let lanes = loop {
            let lanes = self.lanes.borrow_and_update().clone();
            if !lanes.lanes.is_empty() {
                break lanes;
            }
            tokio::select! {
                changed = self.lanes.changed() => if changed.is_err() { break lanes },
                () = self.hard_stop.cancelled() => break lanes,
            }
        };
        if lanes.lanes.is_empty() {
            // Never acknowledged when the receiver waits for the disk: the client sends it again.
            if let Some(stored) = forward.stored {
                stored.send(Err(Refusal::ShuttingDown));
                return;
            }
            tracing::warn!(spans = forward.spans, "no trace endpoint was ever found, dropping spans");
            self.registry.emit(SpansDropped { reason: DropReason::Shutdown, spans: forward.spans });
            return;
        }
        for (lane, part) in split(forward, &lanes) {
            let mut sender = lanes.lanes[lane].sender.clone();
            sender.push(part).await;
        }
    }
}

/// The trace id of an encoded span: its first field when encoded in field order (as every
/// OTLP encoder does), else found by decoding.
fn trace_id(span: &Bytes) -> Bytes {
    if span.len() >= 18 && span[0] == 0x0a && span[1] == 16 {
        return span.slice(2..18);
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct TraceId {
        #[prost(bytes = "bytes", tag = "1")]
        trace_id: Bytes,
    }
    TraceId::decode(span.clone()).map(|decoded| decoded.trace_id).unwrap_or_default()
}

/// `forward` cut into one part per lane that has spans of it, each with its resource and
/// scope; the receiver's answer, when it waits for one, is owed by every part.
fn split(forward: Forward, lanes: &Lanes) -> Vec<(usize, Forward)> {
    let request = forward.request;
    let picks: Vec<usize> = request
        .resource_spans
        .iter()
        .flat_map(|resource| resource.scope_spans.iter().flat_map(|scope| scope.spans.iter()))
        .map(|span| lanes.pick(&trace_id(&span.encoded)))
        .collect();
    let first = picks.first().copied().unwrap_or(0);
    if picks.iter().all(|lane| *lane == first) {
        return vec![(first, Forward { request, ..forward })];
    }
    let mut parts: Vec<Option<(raw::ExportTraceServiceRequest, usize)>> =
        (0..lanes.lanes.len()).map(|_| None).collect();
    let mut picks = picks.into_iter();
    for resource in request.resource_spans {
        let mut scopes: Vec<Vec<raw::ScopeSpans>> = (0..parts.len()).map(|_| Vec::new()).collect();
        for scope in resource.scope_spans {
            let mut spans: Vec<Vec<raw::SpanBytes>> = (0..parts.len()).map(|_| Vec::new()).collect();
            for span in scope.spans {
                spans[picks.next().unwrap_or(0)].push(span);
            }
            for (lane, spans) in spans.into_iter().enumerate().filter(|(_, spans)| !spans.is_empty()) {
                let scope = raw::ScopeSpans {
                    scope: scope.scope.clone(),
                    spans,
                    schema_url: scope.schema_url.clone(),
                };
                scopes[lane].push(scope);
            }
        }
        for (lane, scope_spans) in scopes.into_iter().enumerate().filter(|(_, scopes)| !scopes.is_empty()) {
            let count = scope_spans.iter().map(|scope| scope.spans.len()).sum::<usize>();
            let (part, spans) = parts[lane].get_or_insert_with(Default::default);
            *spans += count;
            part.resource_spans.push(raw::ResourceSpans {
                resource: resource.resource.clone(),
                scope_spans,
                schema_url: resource.schema_url.clone(),
            });
        }
    }
    let parts: Vec<(usize, (raw::ExportTraceServiceRequest, usize))> =
        parts.into_iter().enumerate().filter_map(|(lane, part)| Some((lane, part?))).collect();
    let mut answers = forward.stored.map(|stored| stored.split(parts.len())).unwrap_or_default();
    parts
        .into_iter()
        .map(|(lane, (request, spans))| (lane, Forward { request, spans, stored: answers.pop() }))
        .collect()
}

/// A lane's way out once its endpoint has left the set: the lanes in use, set when it is
/// retired. Only the retired lane's exporter holds the router then, until it has drained.
#[derive(Clone, Default)]
pub struct Reroute {
    router: Arc<Mutex<Option<Router>>>,
    retired: CancellationToken,
}

impl Reroute {
    fn retire(&self, router: Router) {
        if let Ok(mut slot) = self.router.lock() {
            *slot = Some(router);
        }
        self.retired.cancel();
    }

    pub fn is_retired(&self) -> bool {
        self.retired.is_cancelled()
    }

    /// Resolves once the lane is retired.
    pub async fn retiring(&self) {
        self.retired.cancelled().await;
    }

    /// Routes `resource_spans` again over the lanes in use; with `durable`, returns whether
    /// every part was stored there (the caller then lets go of its copy).
    pub async fn send(&self, resource_spans: Vec<raw::ResourceSpans>, spans: usize, durable: bool) -> bool {
        let Some(mut router) = self.router.lock().ok().and_then(|slot| slot.clone()) else { return false };
        let request = raw::ExportTraceServiceRequest { resource_spans };
        tracing::debug!(spans, "a retired endpoint's spans routed again");
        if !durable {
            router.push(Forward { request, spans, stored: None }).await;
            return true;
        }
        let (answer, stored) = StoreAnswer::channel();
        router.push(Forward { request, spans, stored: Some(answer) }).await;
        matches!(stored.await, Ok(Ok(())))
    }
}

/// Opens lanes as endpoints appear and closes them as they go; see the module's comment.
pub struct Routes {
    config: ExportConfig,
    routing: Routing,
    registry: Arc<Registry>,
    hard_stop: CancellationToken,
    publish: watch::Sender<Arc<Lanes>>,
    fill: Arc<LaneFill>,
    exporters: JoinSet<()>,
    /// Open lanes by endpoint: its queue's sending end, and the handle that retires it.
    open: BTreeMap<String, (QueueSender, Reroute)>,
    /// Whether the lanes an earlier run left on disk were looked for.
    looked_for_leftovers: bool,
}

impl Routes {
    /// The routes, the processors' router, and what `/metrics` reads of the lanes.
    pub fn new(
        config: ExportConfig,
        routing: Routing,
        registry: Arc<Registry>,
        hard_stop: CancellationToken,
    ) -> (Self, Router, Arc<LaneFill>) {
        let (publish, lanes) = watch::channel(Arc::new(Lanes::default()));
        let router = Router { lanes, hard_stop: hard_stop.clone(), registry: registry.clone() };
        let fill = Arc::new(LaneFill::default());
        let routes = Self {
            config,
            routing,
            registry,
            hard_stop,
            publish,
            fill: fill.clone(),
            exporters: JoinSet::new(),
            open: BTreeMap::new(),
            looked_for_leftovers: false,
        };
        (routes, router, fill)
    }

    /// Keeps the lanes in step with the endpoints until every router is gone, then lets the
    /// lanes drain.
    pub async fn run(mut self) {
        match self.routing.endpoints.clone() {
            Endpoints::Listed(urls) => {
                let endpoints = urls.iter().map(|url| (url.clone(), url.clone())).collect();
                self.update(endpoints);
                self.publish.closed().await;
            }
            Endpoints::Resolved(name) => {
                let resolver = resolve::Resolver::new(&name);
                loop {
                    match resolver.addresses().await {
                        Ok(endpoints) if !endpoints.is_empty() => self.update(endpoints),
                        Ok(_) => {
                            tracing::warn!(name = %name.host, "the gateway name has no addresses; keeping the last ones")
                        }
                        Err(error) => {
                            tracing::warn!(%error, "cannot resolve the trace endpoints; keeping the last ones")
                        }
                    }
                    tokio::select! {
                        () = tokio::time::sleep(name.every) => {}
                        () = self.publish.closed() => break,
                    }
                }
            }
        }
        self.publish.send_replace(Arc::new(Lanes::default()));
        self.open.clear();
        while self.exporters.join_next().await.is_some() {}
    }

    /// Makes `endpoints` (name → URL) the lanes in use: new ones opened, gone ones retired
    /// (their exporters route again what their endpoint does not take, and end once drained).
    fn update(&mut self, endpoints: BTreeMap<String, String>) {
        if endpoints.keys().eq(self.open.keys()) {
            return;
        }
        tracing::info!(endpoints = ?endpoints.keys().collect::<Vec<_>>(), "trace endpoints changed");
        let gone: Vec<String> =
            self.open.keys().filter(|name| !endpoints.contains_key(*name)).cloned().collect();
        let mut retiring = Vec::new();
        for name in gone {
            if let Some((_, reroute)) = self.open.remove(&name) {
                retiring.push(reroute);
            }
        }
        for (name, url) in &endpoints {
            if self.open.contains_key(name) {
                continue;
            }
            match self.open_lane(name, url) {
                Ok(lane) => {
                    self.open.insert(name.clone(), lane);
                }
                Err(error) => tracing::error!(%error, endpoint = %url, "cannot open a lane to the endpoint"),
            }
        }
        if !self.looked_for_leftovers {
            self.looked_for_leftovers = true;
            retiring.extend(self.leftovers());
        }
        let lanes = self
            .open
            .iter()
            .map(|(name, (sender, _))| Lane { seed: xxh3_64(name.as_bytes()), sender: sender.clone() })
            .collect();
        self.fill.endpoints.store(self.open.len(), std::sync::atomic::Ordering::Relaxed);
        self.publish.send_replace(Arc::new(Lanes { lanes }));
        for reroute in retiring {
            reroute.retire(self.router());
        }
    }

    /// A router over the lanes in use, for a retired lane.
    fn router(&self) -> Router {
        Router {
            lanes: self.publish.subscribe(),
            hard_stop: self.hard_stop.clone(),
            registry: self.registry.clone(),
        }
    }

    /// The lanes an earlier run left on disk for endpoints not in use now, opened to be
    /// drained: their endpoint is tried, and what it does not take is routed again.
    fn leftovers(&mut self) -> Vec<Reroute> {
        let Some(persistent) = self.config.persistent.clone() else { return Vec::new() };
        let Ok(entries) = std::fs::read_dir(persistent.dir.join("endpoints")) else { return Vec::new() };
        let mut retiring = Vec::new();
        for dir in entries.filter_map(Result::ok).map(|entry| entry.path()) {
            let Ok(text) = std::fs::read_to_string(dir.join(ENDPOINT_FILE)) else { continue };
            let Some((name, url)) = text.trim().split_once('\n') else { continue };
            if self.open.contains_key(name) {
                continue;
            }
            tracing::info!(endpoint = %url, "draining what an earlier run queued for an endpoint no longer in use");
            match self.open_lane(name, url) {
                // Its sending end is dropped here: the lane's queue closes once drained.
                Ok((_, reroute)) => retiring.push(reroute),
                Err(error) => tracing::error!(%error, endpoint = %url, "cannot open an earlier run's lane"),
            }
        }
        retiring
    }

    /// A queue and an exporter for one endpoint.
    fn open_lane(&mut self, name: &str, url: &str) -> anyhow::Result<(QueueSender, Reroute)> {
        let config = ExportConfig { endpoint: url.to_owned(), routing: None, ..self.config.clone() };
        let (sender, receiver) = match &config.persistent {
            Some(persistent) => {
                let dir = lane_dir(&persistent.dir, name);
                let disk = Arc::new(
                    DiskQueue::open(&dir, persistent.max_bytes, persistent.fsync)
                        .with_context(|| format!("open the persistent queue {}", dir.display()))?,
                );
                // Which endpoint the queue is for, should a later run no longer use it.
                std::fs::write(dir.join(ENDPOINT_FILE), format!("{name}\n{url}\n"))
                    .with_context(|| format!("write {}", dir.display()))?;
                self.fill.add(name, Fill::Disk(disk.clone()));
                queue::disk_with_writer(disk, self.registry.clone(), self.hard_stop.clone())
                    .context("start a persistent queue's writer")?
            }
            None => {
                let (sender, receiver, gauge) = queue::memory(self.registry.clone());
                self.fill.add(name, Fill::Memory(gauge));
                (sender, receiver)
            }
        };
        let reroute = Reroute::default();
        let exporter = OtlpExporter::new(config, self.registry.clone(), self.hard_stop.clone())
            .context("create the endpoint's exporter")?
            .rerouting(reroute.clone());
        self.exporters.spawn(exporter.run(receiver));
        Ok((sender, reroute))
    }
}

/// In each endpoint's queue directory: the endpoint's name and URL.
const ENDPOINT_FILE: &str = "endpoint";

/// Where an endpoint's persistent queue is kept: a directory named after it.
fn lane_dir(root: &std::path::Path, name: &str) -> PathBuf {
    let safe: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' })
        .collect();
    root.join("endpoints").join(safe)
}

#[cfg(test)]
mod tests;
