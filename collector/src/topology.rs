//! Wiring: the only place channels are created and tasks spawned. [`Topology::start`] builds
//! the stages and starts them; [`Topology::shutdown`] drains them front to back.
//!
//! ```text
//!  OTLP/gRPC ─┐ receive/grpc.rs    ingest queues, one per worker    export queue (memory or disk)
//!  OTLP/HTTP ─┴─▶ Ingest ──(bounded, refuse when full)──▶ Processor × --workers ──(bounded)──▶ OtlpExporter ──▶ trace endpoint
//!   receive/http.rs  (by trace id)   (a thread each)        │                        export/otlp/
//!                          normalize → derive → Registry ◀── GET /metrics (export/prometheus/)
//!                          GPU window ◀── gpu sampler thread
//!                          enrich: facts added, content redacted → forwarding view
//! ```
//!
//! Under all three listeners, `serve/` owns the connections: TLS, HTTP/1 and HTTP/2, the
//! timeouts and caps, and the budget that request bodies are reserved against as they arrive.
//!
//! A span's walk, thirteen files, none twice: `receive/grpc.rs` (the call) →
//! `receive/decode.rs` (bytes to the `wire.rs` types) → `receive/mod.rs` (`Ingest`: ids
//! checked, queued, acknowledged) → `receive/shard.rs` (its trace's worker) → `process.rs` → `normalize/mod.rs` → `derive/mod.rs` →
//! `derive/graph/mod.rs` (the agent graph; attribution) → `metrics/mod.rs` (the registry that
//! `/metrics` renders) → `enrich.rs` (facts added, content redacted) → `export/queue/mod.rs` →
//! `export/otlp/mod.rs` → `export/otlp/transport.rs`. Not stages, and not counted: the
//! transport under the receivers (`serve/`, in the place of tonic's and axum's servers), the
//! types (`wire.rs`, `metrics/label.rs`), the containers (`small_map.rs`, the graph's waiting
//! index `derive/graph/waiting.rs`), the self-metric events (`events.rs`), and the lookups
//! along the way (the dialect tables and framework rules in `agentrace-semconv`, the price
//! table in `cost.rs`, the graph's parent chains in `derive/graph/chain.rs`, the GPU history).
//!
//! With `--queue-dir` the export queue is on disk and the receiver acknowledges a request once
//! it is written there. With several trace endpoints (`--traces-routing trace-id`), each
//! endpoint has its own export queue and exporter, and the processors cut each request by
//! trace id among them (`export/route/`). Shutdown: the receivers stop accepting and finish their calls, which
//! drops every ingest sender; each processor empties its queue and returns, dropping its copy
//! of the export queue's sender; the exporter sends what is left and returns. If that takes longer than the
//! shutdown timeout, the exporter is told to give up (and counts what it drops; on disk, what
//! is left stays for the next start).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::derive::Deriver;
use crate::events::{BuildInfo, GpuAvailable};
use crate::export::otlp::OtlpExporter;
use crate::export::prometheus::MetricsServer;
use crate::export::queue::{self, DiskQueue};
use crate::export::route::{Destination, Routes};
use crate::gpu::{GpuConfig, GpuState, NvmlSource, Sampler};
use crate::logs::LogPipeline;
use crate::memory::{MemoryGuard, ProcessMemory};
use crate::metrics::{Registry, Reported};
use crate::process::{Forwarding, GraphWindows, Processor};
use crate::receive::grpc::GrpcReceiver;
use crate::receive::http::HttpReceiver;
use crate::receive::{Batch, Ingest, QueueGauge};
use crate::serve::{self, BodyLimits, Budget};
use crate::tls::ServerTls;
use crate::view::View;

/// Grace given to the exporter to count what it drops after the shutdown deadline.
const HARD_STOP_GRACE: Duration = Duration::from_secs(2);

/// The sockets the collector serves on, bound by the caller (tests bind port 0).
#[derive(Debug)]
pub struct Listeners {
    pub otlp_grpc: TcpListener,
    pub otlp_http: TcpListener,
    pub metrics: TcpListener,
}

/// Runs the collector on bound listeners until `shutdown` resolves, then drains.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let topology = Topology::start(config, listeners).await?;
    shutdown.await;
    topology.shutdown().await
}

/// The running stages.
pub struct Topology {
    shutdown_timeout: Duration,
    ready: Arc<AtomicBool>,
    stop_receiving: CancellationToken,
    /// Cancelled when the shutdown deadline passes: the exporter gives up.
    hard_stop: CancellationToken,
    stop_after_drain: CancellationToken,
    grpc: ServeTask,
    http: ServeTask,
    processors: Vec<ProcessorHandle>,
    exporter: Option<JoinHandle<()>>,
    /// Forwards logs; ends once the receivers are gone.
    logs_exporter: Option<JoinHandle<()>>,
    gpu_sampler: Option<SamplerHandle>,
    metrics: ServeTask,
    probes: Option<crate::probe::Probes>,
}

type SamplerHandle = (std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>);
type ProcessorHandle = (oneshot::Receiver<()>, std::thread::JoinHandle<()>);

impl Topology {
    /// Builds every stage and starts it, serving on `listeners`.
    pub async fn start(config: Config, listeners: Listeners) -> anyhow::Result<Self> {
        let stripes = Registry::stripes_for(config.receive.workers);
        let registry = Arc::new(Registry::striped(config.series, stripes));
        registry.emit(BuildInfo);
        let mut reported: Vec<Arc<dyn Reported>> = Vec::new();

        let ingest_gauge = QueueGauge::new("ingest", config.receive.queue_capacity);
        reported.push(ingest_gauge.clone());

        let hard_stop = CancellationToken::new();
        let durable = config.export.as_ref().is_some_and(|export| export.persistent.is_some());
        let (forwarding, exporter) = start_export(&config, &registry, &hard_stop, &mut reported)?;
        let (logs, logs_exporter) = LogPipeline::configured(&config, &registry, &hard_stop)?;
        let (gpu, gpu_sampler) = start_gpu(&config.gpu, &registry).await;
        let windows = GraphWindows::new(config.receive.workers);
        reported.push(windows.clone());
        // The node tier derives nothing for the view to show.
        let view = View::configured(&config, &registry, &mut reported).filter(|_| config.role.derives());
        let workers =
            Workers { registry: &registry, ingest_gauge: &ingest_gauge, gpu: &gpu, windows, view: &view };
        let (ingest_senders, processors) = workers.start(&config, forwarding.as_ref())?;
        drop(forwarding);

        let stop_after_drain = CancellationToken::new();
        let memory = config.receive.memory_limit_bytes.map(MemoryGuard::new);
        if let Some(guard) = &memory {
            tokio::spawn(guard.clone().run(stop_after_drain.clone()));
        }
        reported.push(Arc::new(ProcessMemory { guard: memory.clone() }));
        let ingest = Ingest::new(ingest_senders, ingest_gauge, registry.clone())
            .with_token(config.receive.auth_token.clone())
            .with_memory_guard(memory)
            .waiting_for_store(durable);
        // Request bytes arriving on any connection of any listener.
        let budget = Budget::new(config.connections.max_inflight_bytes);
        reported.push(budget.clone());
        let stop_receiving = CancellationToken::new();
        let receivers =
            Receivers { ingest, logs, registry: &registry, budget: &budget, stop: &stop_receiving };
        let metrics_bodies = BodyLimits { max_bytes: METRICS_MAX_REQUEST_BYTES, ..receivers.bodies(&config) };
        let grpc_address = listeners.otlp_grpc.local_addr().context("the otlp grpc listener's address")?;
        let (grpc, http) = receivers.start(&config, listeners.otlp_grpc, listeners.otlp_http)?;
        let probes = crate::probe::Probes::configured(&config, &registry, grpc_address)?;

        let ready = Arc::new(AtomicBool::new(false));
        let endpoint = &config.metrics_endpoint;
        let metrics_server = MetricsServer::new(registry.clone(), reported, ready.clone(), endpoint);
        let metrics_listener = serve::Listener {
            name: serve::METRICS,
            socket: listeners.metrics,
            tls: endpoint
                .tls
                .as_ref()
                .map(ServerTls::rustls)
                .transpose()
                .context("tls for the metrics endpoint")?,
            limits: config.connections.metrics,
            bodies: metrics_bodies,
            grpc: false,
            registry,
        };
        let shutdown = stop_after_drain.clone().cancelled_owned();
        let mut router = metrics_server.router();
        if let Some(view) = view {
            tokio::spawn(view.clone().sample(stop_after_drain.clone()));
            router = router.merge(view.router());
        }
        let metrics = tokio::spawn(serve::serve(metrics_listener, router, shutdown));
        ready.store(true, Ordering::Relaxed);
        Ok(Self {
            shutdown_timeout: config.shutdown_timeout,
            ready,
            stop_receiving,
            hard_stop,
            stop_after_drain,
            grpc,
            http,
            processors,
            exporter,
            logs_exporter,
            gpu_sampler,
            metrics,
            probes,
        })
    }

    /// Drains front to back within the shutdown timeout, then stops the rest.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        tracing::info!(timeout_secs = self.shutdown_timeout.as_secs_f64(), "shutting down, draining queues");
        self.ready.store(false, Ordering::Relaxed);
        // The probes' last spans still reach the receivers before they stop.
        if let Some(probes) = self.probes {
            probes.stop().await;
        }
        self.stop_receiving.cancel();
        let (grpc, http, processors) = (self.grpc, self.http, self.processors);
        let exporters = [self.exporter, self.logs_exporter];
        let drain = async move {
            grpc.await.context("grpc receiver task")?.context("otlp grpc receiver")?;
            http.await.context("http receiver task")?.context("otlp http receiver")?;
            for (processor_stopped, processor_thread) in processors {
                processor_stopped.await.context("processor thread ended early")?;
                if tokio::task::spawn_blocking(move || processor_thread.join()).await.is_err() {
                    tracing::warn!("processor thread did not stop cleanly");
                }
            }
            for exporter in exporters.into_iter().flatten() {
                exporter.await.context("exporter task")?;
            }
            anyhow::Ok(())
        };
        match tokio::time::timeout(self.shutdown_timeout, drain).await {
            Ok(result) => result?,
            Err(_) => {
                tracing::warn!("shutdown timeout passed before the queues drained");
                self.hard_stop.cancel();
                tokio::time::sleep(HARD_STOP_GRACE).await;
            }
        }
        if let Some((stop, thread)) = self.gpu_sampler {
            drop(stop);
            if tokio::task::spawn_blocking(move || thread.join()).await.is_err() {
                tracing::warn!("gpu sampler thread did not stop cleanly");
            }
        }
        self.stop_after_drain.cancel();
        self.metrics.await.context("metrics server task")?.context("metrics server")?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The export queue (in memory, or on disk with `--queue-dir`) and the exporter reading it;
/// nothing when traces are not forwarded.
fn start_export(
    config: &Config,
    registry: &Arc<Registry>,
    hard_stop: &CancellationToken,
    reported: &mut Vec<Arc<dyn Reported>>,
) -> anyhow::Result<(Option<Forwarding>, Option<JoinHandle<()>>)> {
    let Some(export) = &config.export else { return Ok((None, None)) };
    if let Some(routing) = &export.routing {
        let (routes, router, fill) =
            Routes::new(export.clone(), routing.clone(), registry.clone(), hard_stop.clone());
        reported.push(fill);
        let forwarding = Forwarding { enricher: config.enricher.clone(), queue: Destination::Routed(router) };
        return Ok((Some(forwarding), Some(tokio::spawn(routes.run()))));
    }
    let (sender, receiver) = match &export.persistent {
        Some(persistent) => {
            let disk = DiskQueue::open(&persistent.dir, persistent.max_bytes, persistent.fsync)
                .context("open the persistent queue")?;
            let disk = Arc::new(disk);
            reported.push(disk.clone());
            queue::disk_with_writer(disk, registry.clone(), hard_stop.clone())
                .context("start the persistent queue's writer")?
        }
        None => {
            let (sender, receiver, gauge) = queue::memory(registry.clone());
            reported.push(gauge);
            (sender, receiver)
        }
    };
    let exporter = OtlpExporter::new(export.clone(), registry.clone(), hard_stop.clone())
        .context("create otlp trace exporter")?;
    let forwarding = Forwarding { enricher: config.enricher.clone(), queue: Destination::Queue(sender) };
    Ok((Some(forwarding), Some(tokio::spawn(exporter.run(receiver)))))
}

/// The processor runs on a thread of its own: deriving a large request takes milliseconds
/// without an await, and on a runtime with one worker (one core) that would hold up the
/// receivers' acknowledgements; as a thread of its own, the OS shares the core between them.
/// What every processing worker shares.
struct Workers<'a> {
    registry: &'a Arc<Registry>,
    ingest_gauge: &'a Arc<QueueGauge>,
    gpu: &'a Option<Arc<GpuState>>,
    windows: Arc<GraphWindows>,
    view: &'a Option<Arc<View>>,
}

impl Workers<'_> {
    /// One processing thread per worker, each with its ingest queue and its share of the
    /// agent-graph window; the conversation table is one for all.
    fn start(
        self,
        config: &Config,
        forwarding: Option<&Forwarding>,
    ) -> anyhow::Result<(Vec<mpsc::Sender<Batch>>, Vec<ProcessorHandle>)> {
        let conversations = crate::derive::Conversations::new(config.graph.conversations);
        let mut senders = Vec::new();
        let mut processors = Vec::new();
        for worker in 0..config.receive.workers {
            // Full: receivers refuse with gRPC UNAVAILABLE / HTTP 503 + Retry-After, counted as refused.
            let (sender, receiver) = mpsc::channel(config.receive.queue_capacity);
            senders.push(sender);
            let deriver = Deriver::new(config.graph.share(config.receive.workers), config.prices.clone())
                .sharing_conversations(conversations.clone());
            let processor = Processor::new(
                deriver,
                self.registry.clone(),
                self.ingest_gauge.clone(),
                self.gpu.clone(),
                forwarding.cloned(),
            )
            .worker(worker, self.windows.clone())
            .viewing(self.view.clone())
            .deriving(config.role.derives());
            processors.push(start_processor(processor, receiver, worker)?);
        }
        Ok((senders, processors))
    }
}

fn start_processor(
    processor: Processor,
    input: mpsc::Receiver<Batch>,
    worker: usize,
) -> anyhow::Result<ProcessorHandle> {
    let (done, stopped) = oneshot::channel::<()>();
    // Built here, not on the thread: there it could fail after the listeners took connections
    // (no file descriptor left), and the worker's queue then refused every request.
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("processing runtime")?;
    let thread =
        std::thread::Builder::new().name(format!("agentrace-process-{worker}")).spawn(move || {
            runtime.block_on(processor.run(input));
            let _ = done.send(());
        })?;
    Ok((stopped, thread))
}

/// A listener's serving task.
type ServeTask = JoinHandle<std::io::Result<()>>;

/// A scrape is a GET: its body, if any, is never read.
const METRICS_MAX_REQUEST_BYTES: u64 = 64 * 1024;

/// What the two OTLP receivers share.
struct Receivers<'a> {
    ingest: Ingest,
    logs: LogPipeline,
    registry: &'a Arc<Registry>,
    budget: &'a Arc<Budget>,
    stop: &'a CancellationToken,
}

impl Receivers<'_> {
    fn bodies(&self, config: &Config) -> BodyLimits {
        let limits = &config.connections.otlp;
        BodyLimits {
            budget: self.budget.clone(),
            max_bytes: config.receive.max_request_bytes as u64,
            window: limits.body_window,
            min_rate: limits.min_body_rate,
        }
    }

    fn start(
        self,
        config: &Config,
        grpc_socket: TcpListener,
        http_socket: TcpListener,
    ) -> anyhow::Result<(ServeTask, ServeTask)> {
        let max_bytes = config.receive.max_request_bytes;
        let tls = config
            .receive
            .tls
            .as_ref()
            .map(ServerTls::rustls)
            .transpose()
            .context("tls for the otlp receivers")?;
        let listener = |name, socket, grpc| serve::Listener {
            name,
            socket,
            tls: tls.clone(),
            limits: config.connections.otlp,
            bodies: self.bodies(config),
            grpc,
            registry: self.registry.clone(),
        };
        let grpc_listener = listener(serve::OTLP_GRPC, grpc_socket, true);
        let http_listener = listener(serve::OTLP_HTTP, http_socket, false);
        let grpc_service =
            GrpcReceiver::new(self.ingest.clone(), max_bytes).with_logs(Some(self.logs.clone()));
        let http_service = HttpReceiver::new(self.ingest, max_bytes).with_logs(Some(self.logs)).router();
        let grpc =
            tokio::spawn(serve::serve(grpc_listener, grpc_service, self.stop.clone().cancelled_owned()));
        let http =
            tokio::spawn(serve::serve(http_listener, http_service, self.stop.clone().cancelled_owned()));
        Ok((grpc, http))
    }
}

/// Loads NVML (off the runtime: it blocks) and starts the sampler thread. Without NVML, says so
/// once and runs on; `agentrace_gpu_available` tells which happened.
async fn start_gpu(
    config: &GpuConfig,
    registry: &Arc<Registry>,
) -> (Option<Arc<GpuState>>, Option<SamplerHandle>) {
    registry.emit(GpuAvailable { available: false });
    if !config.enabled {
        tracing::info!("gpu sampling off");
        return (None, None);
    }
    let library = config.library.clone();
    let source = match tokio::task::spawn_blocking(move || NvmlSource::open(library.as_deref())).await {
        Ok(Ok(source)) => source,
        Ok(Err(error)) => {
            tracing::warn!(%error, "no gpu sampling: NVML is not available; everything else runs");
            return (None, None);
        }
        Err(error) => {
            tracing::warn!(%error, "no gpu sampling: loading NVML failed");
            return (None, None);
        }
    };
    let state = Arc::new(GpuState::new(config));
    let sampler = Sampler {
        source: Box::new(source),
        config: config.clone(),
        state: state.clone(),
        registry: registry.clone(),
    };
    let (stop, stopped) = std::sync::mpsc::channel();
    match std::thread::Builder::new().name("agentrace-gpu".to_owned()).spawn(move || sampler.run(stopped)) {
        Ok(thread) => {
            registry.emit(GpuAvailable { available: true });
            tracing::info!(interval_secs = config.interval.as_secs_f64(), "gpu sampling on");
            (Some(state), Some((stop, thread)))
        }
        Err(error) => {
            tracing::warn!(%error, "no gpu sampling: cannot start the sampler thread");
            (None, None)
        }
    }
}
