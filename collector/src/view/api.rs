//! The view's routes: the page's three files and the JSON API. Behind the metrics endpoint's
//! bearer token when one is set; a browser, which cannot send a bearer header, is asked for it
//! as the password of HTTP Basic authentication (any user name).

use std::sync::{Arc, LazyLock};

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::summary::{self, MAX_ROWS};
use super::traces::{self, TraceQuery};
use super::window::Totals;
use super::{lock, View};

/// The page's policy: its own script, style and API only; nothing inline, nothing from
/// elsewhere, not framed.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
const API_POLICY: &str = "default-src 'none'; frame-ancestors 'none'";

/// One of the page's files, with its validator.
struct Asset {
    body: &'static str,
    content_type: &'static str,
    etag: LazyLock<String>,
}

macro_rules! asset {
    ($file:literal, $content_type:literal) => {
        Asset {
            body: include_str!(concat!("assets/", $file)),
            content_type: $content_type,
            etag: LazyLock::new(|| {
                let digest = Sha256::digest(include_str!(concat!("assets/", $file)).as_bytes());
                format!("\"{}\"", hex::encode(&digest[..12]))
            }),
        }
    };
}

static INDEX: Asset = asset!("index.html", "text/html; charset=utf-8");
static SCRIPT: Asset = asset!("view.js", "text/javascript; charset=utf-8");
static STYLE: Asset = asset!("view.css", "text/css; charset=utf-8");

impl View {
    /// The page and the API, guarded by the token when set.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/", get(|headers: HeaderMap| async move { serve_asset(&INDEX, &headers) }))
            .route("/view.js", get(|headers: HeaderMap| async move { serve_asset(&SCRIPT, &headers) }))
            .route("/view.css", get(|headers: HeaderMap| async move { serve_asset(&STYLE, &headers) }))
            .route("/api/v1/summary", get(summary_json))
            .route("/api/v1/graph", get(graph_json))
            .route("/api/v1/traces", get(traces_json))
            .route("/api/v1/traces/{id}", get(trace_json))
            .route_layer(middleware::from_fn_with_state(self.clone(), guard))
            .with_state(self)
    }

    /// The totals now and where the window starts, with its length in seconds.
    fn window(&self) -> (Totals, Option<Totals>, f64) {
        let now_totals = Totals::read(&self.registry);
        let now = crate::unix_now();
        let window = lock(&self.window);
        let (start, baseline) = window.start(now);
        (now_totals, baseline.cloned(), (now - start).max(1.0))
    }
}

async fn guard(State(view): State<Arc<View>>, request: Request, next: Next) -> Response {
    if let Some(token) = &view.token {
        let presented = request.headers().get(header::AUTHORIZATION).map(HeaderValue::as_bytes);
        if !token.admits_bearer_or_basic(presented) {
            let challenge = [(header::WWW_AUTHENTICATE, "Basic realm=\"agentrace\", charset=\"UTF-8\"")];
            return (StatusCode::UNAUTHORIZED, challenge, "the metrics token is required\n").into_response();
        }
    }
    next.run(request).await
}

fn serve_asset(asset: &Asset, headers: &HeaderMap) -> Response {
    let etag = asset.etag.as_str();
    let common = [
        (header::CACHE_CONTROL, "no-cache"),
        (header::ETAG, etag),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::CONTENT_SECURITY_POLICY, PAGE_POLICY),
        (header::REFERRER_POLICY, "no-referrer"),
    ];
    let matches = headers.get(header::IF_NONE_MATCH).is_some_and(|value| value.as_bytes() == etag.as_bytes());
    if matches {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (common, [(header::CONTENT_TYPE, asset.content_type)], asset.body).into_response()
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let headers = [
        (header::CONTENT_TYPE, "application/json"),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::CONTENT_SECURITY_POLICY, API_POLICY),
    ];
    (status, headers, body.to_string()).into_response()
}

fn bad_request(reason: &str) -> Response {
    json_response(StatusCode::BAD_REQUEST, &json!({ "error": reason }))
}

/// The refusal of any query parameter: the summary and the graph take none.
fn no_parameters(pairs: &[(String, String)]) -> Option<Response> {
    let (key, _) = pairs.first()?;
    Some(bad_request(&format!("unknown parameter {key:?}: this endpoint takes none")))
}

async fn summary_json(State(view): State<Arc<View>>, Query(pairs): Query<Vec<(String, String)>>) -> Response {
    if let Some(refused) = no_parameters(&pairs) {
        return refused;
    }
    let (now, start, seconds) = view.window();
    let (traces, bytes) = {
        let store = lock(&view.store);
        (store.len(), store.bytes())
    };
    let limits = view.config.store;
    let body = json!({
        "window_seconds": seconds,
        "max_rows": MAX_ROWS,
        "prometheus_url": view.config.prometheus_url,
        "tempo": view.config.tempo_url.is_some(),
        "agents": summary::agents(&view.registry, &now, start.as_ref(), seconds),
        "gpus": summary::gpus(&view.registry),
        "store": {
            "traces": traces, "bytes": bytes,
            "max_traces": limits.max_traces, "max_bytes": limits.max_bytes,
            "slow_seconds": limits.slow_nanos as f64 / 1e9,
        },
    });
    json_response(StatusCode::OK, &body)
}

async fn graph_json(State(view): State<Arc<View>>, Query(pairs): Query<Vec<(String, String)>>) -> Response {
    if let Some(refused) = no_parameters(&pairs) {
        return refused;
    }
    let (now, start, seconds) = view.window();
    json_response(StatusCode::OK, &summary::graph(&now, start.as_ref(), seconds))
}

async fn traces_json(State(view): State<Arc<View>>, Query(pairs): Query<Vec<(String, String)>>) -> Response {
    let query = match TraceQuery::parse(&pairs) {
        Ok(query) => query,
        Err(reason) => return bad_request(&reason),
    };
    let body = traces::list(&lock(&view.store), &query, view.config.tempo_url.as_deref());
    json_response(StatusCode::OK, &body)
}

async fn trace_json(State(view): State<Arc<View>>, Path(id): Path<String>) -> Response {
    let id = match traces::parse_trace_id(&id) {
        Ok(id) => id,
        Err(reason) => return bad_request(&reason),
    };
    let store = lock(&view.store);
    match store.get(&id) {
        Some(trace) => {
            json_response(StatusCode::OK, &traces::detail(&id, trace, view.config.tempo_url.as_deref()))
        }
        None => json_response(
            StatusCode::NOT_FOUND,
            &json!({ "error": "no such trace in the view's store (evicted, or never received)" }),
        ),
    }
}
