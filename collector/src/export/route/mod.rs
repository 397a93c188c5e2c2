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
//!
//! The endpoints are a fixed list or a name looked up every few seconds (`resolve.rs`). The
//! lanes in use are published through a watch channel; [`Routes::run`] owns its sending end
//! and ends once every processor has dropped its [`Router`]: then the lanes' queues close, and
//! it waits for their exporters to drain.

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

use crate::events::{DiskQueueFill, DropReason, ExportEndpoints, QueueFill, SpansDropped};
use crate::export::args::{Endpoints, ExportConfig, Routing};
use crate::export::otlp::OtlpExporter;
use crate::export::queue::{self, DiskQueue, Forward, QueueSender};
use crate::metrics::{Registry, Reported};
use crate::receive::{QueueGauge, Refusal};
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
        .map(|span| lanes.pick(&trace_id(span)))
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
            let mut spans: Vec<Vec<Bytes>> = (0..parts.len()).map(|_| Vec::new()).collect();
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

/// Opens lanes as endpoints appear and closes them as they go; see the module's comment.
pub struct Routes {
    config: ExportConfig,
    routing: Routing,
    registry: Arc<Registry>,
    hard_stop: CancellationToken,
    publish: watch::Sender<Arc<Lanes>>,
    fill: Arc<LaneFill>,
    exporters: JoinSet<()>,
    /// Open lanes by endpoint: its URL and its queue's sending end.
    open: BTreeMap<String, (String, QueueSender)>,
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

    /// Makes `endpoints` (name → URL) the lanes in use: new ones opened, gone ones closed
    /// (their exporters send what they hold and end).
    fn update(&mut self, endpoints: BTreeMap<String, String>) {
        if endpoints.keys().eq(self.open.keys()) {
            return;
        }
        tracing::info!(endpoints = ?endpoints.keys().collect::<Vec<_>>(), "trace endpoints changed");
        self.open.retain(|name, _| endpoints.contains_key(name));
        for (name, url) in endpoints {
            if self.open.contains_key(&name) {
                continue;
            }
            match self.open_lane(&name, &url) {
                Ok(sender) => {
                    self.open.insert(name, (url, sender));
                }
                Err(error) => tracing::error!(%error, endpoint = %url, "cannot open a lane to the endpoint"),
            }
        }
        let lanes = self
            .open
            .iter()
            .map(|(name, (_, sender))| Lane { seed: xxh3_64(name.as_bytes()), sender: sender.clone() })
            .collect();
        self.fill.endpoints.store(self.open.len(), std::sync::atomic::Ordering::Relaxed);
        self.publish.send_replace(Arc::new(Lanes { lanes }));
    }

    /// A queue and an exporter for one endpoint.
    fn open_lane(&mut self, name: &str, url: &str) -> anyhow::Result<QueueSender> {
        let config = ExportConfig { endpoint: url.to_owned(), routing: None, ..self.config.clone() };
        let (sender, receiver) = match &config.persistent {
            Some(persistent) => {
                let dir = lane_dir(&persistent.dir, name);
                let disk = Arc::new(
                    DiskQueue::open(&dir, persistent.max_bytes, persistent.fsync)
                        .with_context(|| format!("open the persistent queue {}", dir.display()))?,
                );
                self.fill.add(name, Fill::Disk(disk.clone()));
                let (sender, receiver, writer) =
                    queue::disk(disk, self.registry.clone(), self.hard_stop.clone());
                std::thread::Builder::new()
                    .name("agentrace-queue-writer".into())
                    .spawn(move || writer.run())
                    .context("start a persistent queue's writer")?;
                (sender, receiver)
            }
            None => {
                let (sender, receiver, gauge) = queue::memory(self.registry.clone());
                self.fill.add(name, Fill::Memory(gauge));
                (sender, receiver)
            }
        };
        let exporter = OtlpExporter::new(config, self.registry.clone(), self.hard_stop.clone())
            .context("create the endpoint's exporter")?;
        self.exporters.spawn(exporter.run(receiver));
        Ok(sender)
    }
}

/// Where an endpoint's persistent queue is kept: a directory named after it.
fn lane_dir(root: &std::path::Path, name: &str) -> PathBuf {
    let safe: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' })
        .collect();
    root.join("endpoints").join(safe)
}

/// The lanes' queues and how many endpoints are in use, for `/metrics`: the lanes' queues
/// read as the one export queue they replace. A closed lane's queue is still read while it
/// drains, until a lane to the same endpoint takes its place.
#[derive(Default)]
pub struct LaneFill {
    endpoints: std::sync::atomic::AtomicUsize,
    queues: Mutex<BTreeMap<String, Fill>>,
}

enum Fill {
    Memory(Arc<QueueGauge>),
    Disk(Arc<DiskQueue>),
}

impl LaneFill {
    fn add(&self, endpoint: &str, fill: Fill) {
        if let Ok(mut queues) = self.queues.lock() {
            queues.insert(endpoint.to_owned(), fill);
        }
    }
}

impl Reported for LaneFill {
    fn report(&self, registry: &Registry) {
        let endpoints = self.endpoints.load(std::sync::atomic::Ordering::Relaxed);
        registry.emit(ExportEndpoints { endpoints });
        let Ok(queues) = self.queues.lock() else { return };
        let (mut depth, mut capacity, mut requests, mut bytes, mut disk) = (0, 0, 0, 0, false);
        for fill in queues.values() {
            match fill {
                Fill::Memory(gauge) => (depth, capacity) = (depth + gauge.depth(), capacity + gauge.capacity),
                Fill::Disk(queue) => {
                    (requests, bytes, disk) = (requests + queue.len(), bytes + queue.bytes(), true);
                }
            }
        }
        if disk {
            registry.emit(DiskQueueFill { requests, bytes });
        } else {
            registry.emit(QueueFill { queue: "export", depth, capacity });
        }
    }
}

#[cfg(test)]
mod tests;
