//! The metrics endpoint: `/metrics` (OpenMetrics with exemplars when the scraper accepts it,
//! classic text otherwise), `/healthz` (the process serves) and `/readyz` (the pipeline
//! accepts spans), on the connections `serve` accepts.
//!
//! `/metrics` is guarded like the receivers: a bearer token when `--metrics-auth-token-file`
//! is set, TLS when configured. One scrape runs at a time, from rendering to the last byte
//! sent, so concurrent scrapes cannot multiply the page in memory; it is rendered into one
//! reused buffer and cut at `--metrics-max-bytes`.

mod args;

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub use self::args::{Args, EndpointConfig};
use crate::auth::BearerToken;
use crate::events::ScrapeTruncated;
use crate::metrics::{Format, Registry, Reported};

/// How long a scrape waits for the one before it (Prometheus' default scrape timeout).
const SCRAPE_WAIT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct MetricsServer {
    registry: Arc<Registry>,
    /// States read at each scrape: the queues' fill, the process's memory.
    reported: Vec<Arc<dyn Reported>>,
    ready: Arc<AtomicBool>,
    token: Option<BearerToken>,
    max_bytes: usize,
    /// One permit: the scrape that holds it renders and sends.
    scrape: Arc<Semaphore>,
    /// The page, rendered in place scrape after scrape.
    buffer: Arc<Mutex<String>>,
}

impl MetricsServer {
    pub fn new(
        registry: Arc<Registry>,
        reported: Vec<Arc<dyn Reported>>,
        ready: Arc<AtomicBool>,
        endpoint: &EndpointConfig,
    ) -> Self {
        Self {
            registry,
            reported,
            ready,
            token: endpoint.token.clone(),
            max_bytes: endpoint.max_bytes,
            scrape: Arc::new(Semaphore::new(1)),
            buffer: Arc::new(Mutex::new(String::new())),
        }
    }

    pub fn router(self) -> Router {
        Router::new()
            .route("/metrics", get(metrics))
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(ready))
            .with_state(self)
    }

    /// Renders the page into the reused buffer, which the returned page carries while it is
    /// sent and then puts back.
    fn render(&self, format: Format, permit: OwnedSemaphorePermit) -> Page {
        for reported in &self.reported {
            reported.report(&self.registry);
        }
        let mut buffer = std::mem::take(&mut *lock(&self.buffer));
        buffer.clear();
        let complete = self.registry.render_into(&mut buffer, format, self.max_bytes);
        if !complete {
            tracing::warn!(max_bytes = self.max_bytes, "metrics page cut at --metrics-max-bytes");
            self.registry.emit(ScrapeTruncated);
        }
        Page { buffer, sent: 0, home: self.buffer.clone(), _permit: permit }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn metrics(State(server): State<MetricsServer>, headers: HeaderMap) -> Response {
    if let Some(token) = &server.token {
        if !token.admits(headers.get(header::AUTHORIZATION).map(HeaderValue::as_bytes)) {
            let challenge = [(header::WWW_AUTHENTICATE, "Bearer")];
            return (StatusCode::UNAUTHORIZED, challenge, "a valid bearer token is required\n")
                .into_response();
        }
    }
    let permit = match tokio::time::timeout(SCRAPE_WAIT, server.scrape.clone().acquire_owned()).await {
        Ok(Ok(permit)) => permit,
        _ => return (StatusCode::SERVICE_UNAVAILABLE, "another scrape is still running\n").into_response(),
    };
    let accept = headers.get(header::ACCEPT).and_then(|value| value.to_str().ok());
    let format = Format::from_accept(accept);
    let body = axum::body::Body::new(server.render(format, permit));
    ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
}

async fn ready(State(server): State<MetricsServer>) -> impl IntoResponse {
    if server.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

/// A rendered page, sent in slices copied out of the buffer as hyper takes them (so only a
/// slice at a time exists twice). It holds the scrape permit until the last slice is taken,
/// then puts the buffer back for the next scrape.
struct Page {
    buffer: String,
    sent: usize,
    home: Arc<Mutex<String>>,
    _permit: OwnedSemaphorePermit,
}

/// The slice of the page handed to hyper at a time.
const PAGE_SLICE: usize = 64 * 1024;

impl Body for Page {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let page = self.get_mut();
        let rest = &page.buffer.as_bytes()[page.sent..];
        if rest.is_empty() {
            return Poll::Ready(None);
        }
        let slice = Bytes::copy_from_slice(&rest[..PAGE_SLICE.min(rest.len())]);
        page.sent += slice.len();
        Poll::Ready(Some(Ok(Frame::data(slice))))
    }

    fn is_end_stream(&self) -> bool {
        self.sent == self.buffer.len()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact((self.buffer.len() - self.sent) as u64)
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        *lock(&self.home) = std::mem::take(&mut self.buffer);
    }
}
