//! The metrics endpoint: `/metrics` (OpenMetrics with exemplars when the scraper accepts it,
//! classic text otherwise), `/healthz` (the process serves) and `/readyz` (the pipeline
//! accepts spans).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use agentrace_semconv::metric;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::export::queue::DiskQueue;
use crate::memory::MemoryGuard;
use crate::metrics::{Format, Registry};
use crate::receive::QueueGauge;
use crate::unix_now;

#[derive(Clone, Debug)]
pub struct MetricsServer {
    pub registry: Arc<Registry>,
    pub queues: Vec<Arc<QueueGauge>>,
    pub memory: Option<Arc<MemoryGuard>>,
    pub disk: Option<Arc<DiskQueue>>,
    pub ready: Arc<AtomicBool>,
}

impl MetricsServer {
    pub fn router(self) -> Router {
        Router::new()
            .route("/metrics", get(metrics))
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(ready))
            .with_state(self)
    }

    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router()).with_graceful_shutdown(shutdown).await
    }
}

async fn metrics(State(server): State<MetricsServer>, headers: HeaderMap) -> impl IntoResponse {
    let now = unix_now();
    for queue in &server.queues {
        server.registry.add(metric::SELF_QUEUE_DEPTH, &[queue.name], queue.depth() as f64, now);
        server.registry.add(metric::SELF_QUEUE_CAPACITY, &[queue.name], queue.capacity as f64, now);
    }
    if let Some(disk) = &server.disk {
        server.registry.add(metric::SELF_QUEUE_DEPTH, &["disk"], disk.len() as f64, now);
        server.registry.add(metric::SELF_QUEUE_DISK_BYTES, &[], disk.bytes() as f64, now);
    }
    if let Some(rss) = crate::memory::resident_bytes() {
        server.registry.add(metric::SELF_MEMORY_RSS_BYTES, &[], rss as f64, now);
    }
    if let Some(memory) = &server.memory {
        server.registry.add(metric::SELF_MEMORY_LIMIT_BYTES, &[], memory.limit_bytes() as f64, now);
    }
    let accept = headers.get(header::ACCEPT).and_then(|value| value.to_str().ok());
    let format = Format::from_accept(accept);
    ([(header::CONTENT_TYPE, format.content_type())], server.registry.render(format))
}

async fn ready(State(server): State<MetricsServer>) -> impl IntoResponse {
    if server.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}
