//! The metrics endpoint: `/metrics` (OpenMetrics with exemplars when the scraper accepts it,
//! classic text otherwise), `/healthz` (the process serves) and `/readyz` (the pipeline
//! accepts spans).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::metrics::{Format, Registry, Reported};

#[derive(Clone)]
pub struct MetricsServer {
    pub registry: Arc<Registry>,
    /// States read at each scrape: the queues' fill, the process's memory.
    pub reported: Vec<Arc<dyn Reported>>,
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
    for reported in &server.reported {
        reported.report(&server.registry);
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
