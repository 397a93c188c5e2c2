//! Wiring: the only place channels are created and tasks spawned.
//!
//! ```text
//!  OTLP/gRPC ─┐                  ingest queue                      export queue
//!  OTLP/HTTP ─┴─▶ Ingest ──(bounded, refuse when full)──▶ Processor ──(bounded)──▶ OtlpExporter ──▶ trace endpoint
//!                                 normalize → derive → Registry ◀── GET /metrics
//!                                 enrich (cost, gpu.* from the GPU sampler thread) → redact
//!
//!  with --queue-dir:   Processor ──▶ DiskQueue (redb, fsync) ──▶ OtlpExporter; the receiver
//!                      acknowledges once the request is on disk
//! ```
//!
//! Shutdown drains front to back: the receivers stop accepting and finish their calls, which
//! drops every ingest sender; the processor empties its queue and returns, dropping the export
//! sender; the exporter sends what is left and returns. If that takes longer than the shutdown
//! timeout, the exporter is told to give up (and counts what it drops; with the disk queue,
//! what is left stays on disk for the next start).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agentrace_semconv::metric;
use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::derive::Deriver;
use crate::export::otlp::OtlpExporter;
use crate::export::prometheus::MetricsServer;
use crate::export::queue::DiskQueue;
use crate::gpu::{GpuConfig, GpuState, NvmlSource, Sampler};
use crate::memory::MemoryGuard;
use crate::metrics::Registry;
use crate::normalize::Normalizer;
use crate::process::Processor;
use crate::receive::grpc::GrpcReceiver;
use crate::receive::http::HttpReceiver;
use crate::receive::{Ingest, QueueGauge};
use crate::unix_now;

/// Batches between the processor and the exporter. When full, the processor waits, the ingest
/// queue fills, and the receivers refuse with a retryable answer.
const EXPORT_QUEUE_CAPACITY: usize = 64;
/// Grace given to the exporter to count what it drops after the shutdown deadline.
const HARD_STOP_GRACE: Duration = Duration::from_secs(2);

/// The sockets the collector serves on, bound by the caller (tests bind port 0).
#[derive(Debug)]
pub struct Listeners {
    pub otlp_grpc: TcpListener,
    pub otlp_http: TcpListener,
    pub metrics: TcpListener,
}

pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let registry = Arc::new(Registry::new(config.series));
    registry.add(metric::SELF_BUILD_INFO, &[env!("CARGO_PKG_VERSION")], 1.0, unix_now());

    // Full: receivers refuse with gRPC UNAVAILABLE / HTTP 503 + Retry-After, counted as refused.
    let (ingest_sender, ingest_receiver) = mpsc::channel(config.receive.queue_capacity);
    let ingest_gauge = QueueGauge::new("ingest", config.receive.queue_capacity);
    let mut queues = vec![ingest_gauge.clone()];

    let hard_stop = CancellationToken::new();
    let draining = CancellationToken::new();
    let disk = match config.export.as_ref().and_then(|args| args.persistent.as_ref()) {
        None => None,
        Some(queue) => Some(Arc::new(
            DiskQueue::open(&queue.dir, queue.max_bytes, queue.fsync).context("open the persistent queue")?,
        )),
    };
    let (export, exporter) = match &config.export {
        None => (None, None),
        Some(args) if disk.is_some() => {
            // The queue is on disk, bounded by its byte budget; the exporter reads it.
            let gauge = QueueGauge::new("export", EXPORT_QUEUE_CAPACITY);
            let exporter = OtlpExporter::new(args.clone(), registry.clone(), gauge, hard_stop.clone())
                .context("create otlp trace exporter")?;
            let queue = disk.clone().context("persistent queue")?;
            (None, Some(tokio::spawn(exporter.run_from_disk(queue, draining.clone()))))
        }
        Some(args) => {
            // Full: the processor waits, which fills the ingest queue (see above).
            let (sender, receiver) = mpsc::channel(EXPORT_QUEUE_CAPACITY);
            let gauge = QueueGauge::new("export", EXPORT_QUEUE_CAPACITY);
            queues.push(gauge.clone());
            let exporter =
                OtlpExporter::new(args.clone(), registry.clone(), gauge.clone(), hard_stop.clone())
                    .context("create otlp trace exporter")?;
            (Some((sender, gauge)), Some(tokio::spawn(exporter.run(receiver))))
        }
    };

    let (gpu, gpu_sampler) = start_gpu(&config.gpu, &registry).await;
    let processor = Processor {
        normalizer: Normalizer::default(),
        deriver: Deriver::new(config.graph, config.prices.clone()),
        registry: registry.clone(),
        input_gauge: ingest_gauge.clone(),
        export,
        gpu,
        redactor: config.redactor.clone(),
        disk: disk.clone(),
        disk_full_logged_at: None,
        observations: Vec::new(),
    };
    // Its own thread: deriving a large request takes milliseconds without an await, and on a
    // runtime with one worker (one core) that would hold up the receivers' acknowledgements;
    // as a thread of its own, the OS shares the core between them.
    let (processor_done, processor_stopped) = tokio::sync::oneshot::channel::<()>();
    let processor_thread = std::thread::Builder::new().name("agentrace-process".into()).spawn(move || {
        match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime.block_on(processor.run(ingest_receiver)),
            Err(error) => tracing::error!(%error, "cannot start the processing runtime"),
        }
        let _ = processor_done.send(());
    })?;

    let ready = Arc::new(AtomicBool::new(false));
    let stop_receiving = CancellationToken::new();
    let stop_metrics = CancellationToken::new();
    let memory = config.receive.memory_limit_bytes.map(MemoryGuard::new);
    let stop_memory = CancellationToken::new();
    if let Some(guard) = &memory {
        tokio::spawn(guard.clone().run(stop_memory.clone()));
    }
    let ingest = Ingest::new(ingest_sender, ingest_gauge, registry.clone())
        .with_token(config.receive.auth_token.clone())
        .with_memory_guard(memory.clone())
        .waiting_for_store(disk.is_some());
    let max_bytes = config.receive.max_request_bytes;
    let tls = config.receive.tls.clone();
    let grpc_tls = tls.as_ref().map(|tls| tls.grpc());
    let grpc = tokio::spawn(
        GrpcReceiver::new(ingest.clone(), max_bytes, grpc_tls)
            .run(listeners.otlp_grpc, stop_receiving.clone().cancelled_owned()),
    );
    let http_receiver = HttpReceiver::new(ingest, max_bytes);
    let http_shutdown = stop_receiving.clone().cancelled_owned();
    let http = match tls.map(|tls| tls.rustls()).transpose().context("tls for the otlp http receiver")? {
        Some(rustls) => tokio::spawn(http_receiver.run_tls(listeners.otlp_http, rustls, http_shutdown)),
        None => tokio::spawn(http_receiver.run(listeners.otlp_http, http_shutdown)),
    };
    let metrics_server = MetricsServer { registry, queues, memory, disk, ready: ready.clone() };
    let metrics = tokio::spawn(metrics_server.run(listeners.metrics, stop_metrics.clone().cancelled_owned()));
    ready.store(true, Ordering::Relaxed);

    shutdown.await;
    tracing::info!(timeout_secs = config.shutdown_timeout.as_secs_f64(), "shutting down, draining queues");
    ready.store(false, Ordering::Relaxed);
    stop_receiving.cancel();

    let drain = async {
        if let Err(error) = grpc.await.context("grpc receiver task")? {
            tracing::warn!(%error, "otlp grpc receiver ended with an error");
        }
        http.await.context("http receiver task")?.context("otlp http receiver")?;
        processor_stopped.await.context("processor thread ended early")?;
        if tokio::task::spawn_blocking(move || processor_thread.join()).await.is_err() {
            tracing::warn!("processor thread did not stop cleanly");
        }
        // Everything received is now written; the disk exporter may stop once the queue is empty.
        draining.cancel();
        anyhow::Ok(())
    };
    let drained = tokio::time::timeout(config.shutdown_timeout, async {
        drain.await?;
        if let Some(exporter) = exporter {
            exporter.await.context("exporter task")?;
        }
        anyhow::Ok(())
    })
    .await;
    match drained {
        Ok(result) => result?,
        Err(_) => {
            tracing::warn!("shutdown timeout passed before the queues drained");
            hard_stop.cancel();
            tokio::time::sleep(HARD_STOP_GRACE).await;
        }
    }
    if let Some((stop, thread)) = gpu_sampler {
        drop(stop);
        if tokio::task::spawn_blocking(move || thread.join()).await.is_err() {
            tracing::warn!("gpu sampler thread did not stop cleanly");
        }
    }
    stop_memory.cancel();
    stop_metrics.cancel();
    metrics.await.context("metrics server task")?.context("metrics server")?;
    tracing::info!("stopped");
    Ok(())
}

type SamplerHandle = (std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>);

/// Loads NVML (off the runtime: it blocks) and starts the sampler thread. Without NVML, says so
/// once and runs on; `agentrace_gpu_available` tells which happened.
async fn start_gpu(
    config: &GpuConfig,
    registry: &Arc<Registry>,
) -> (Option<Arc<GpuState>>, Option<SamplerHandle>) {
    registry.add(metric::SELF_GPU_AVAILABLE, &[], 0.0, unix_now());
    if !config.enabled {
        tracing::info!("gpu sampling off");
        return (None, None);
    }
    let library = config.library.clone();
    let opened = tokio::task::spawn_blocking(move || NvmlSource::open(library.as_deref())).await;
    let source = match opened {
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
    let spawned =
        std::thread::Builder::new().name("agentrace-gpu".to_owned()).spawn(move || sampler.run(stopped));
    match spawned {
        Ok(thread) => {
            registry.add(metric::SELF_GPU_AVAILABLE, &[], 1.0, unix_now());
            tracing::info!(interval_secs = config.interval.as_secs_f64(), "gpu sampling on");
            (Some(state), Some((stop, thread)))
        }
        Err(error) => {
            tracing::warn!(%error, "no gpu sampling: cannot start the sampler thread");
            (None, None)
        }
    }
}
