//! OTLP/HTTP receiver: `POST /v1/traces` (and `POST /v1/logs`, for `logs/`), protobuf or JSON by
//! Content-Type, optionally gzip.
//! Answers follow the OTLP/HTTP spec: the response (or a `google.rpc.Status` on failure) in
//! the request's encoding; 400 for undecodable data, 413 over the size limit (after
//! decompression), 415 for an unsupported type or encoding, 503 with Retry-After when full
//! (or when the body does not fit in the in-flight budget), 408 for a body under the rate
//! floor.
//! Next stop: [`Ingest`].

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;

use super::decode::{self, DecodeError};
use super::{Ingest, Refusal, RequestRefusal, Transport};
use crate::logs::{self, LogPipeline};
use crate::serve::BodyError;

/// Where OTLP/HTTP logs are posted.
pub const LOGS_HTTP_PATH: &str = "/v1/logs";

pub use agentrace_semconv::otlp::TRACES_PATH;

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";
/// Seconds a refused client is asked to wait.
const RETRY_AFTER_SECS: &str = "1";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let content_type = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
        let media_type = content_type.split(';').next()?.trim();
        if media_type.eq_ignore_ascii_case(PROTOBUF)
            || media_type.eq_ignore_ascii_case("application/protobuf")
        {
            Some(Self::Protobuf)
        } else if media_type.eq_ignore_ascii_case(JSON) {
            Some(Self::Json)
        } else {
            None
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::Protobuf => PROTOBUF,
            Self::Json => JSON,
        }
    }
}

#[derive(Clone, Debug)]
struct HttpState {
    ingest: Ingest,
    max_request_bytes: usize,
    logs: Option<LogPipeline>,
}

#[derive(Debug)]
pub struct HttpReceiver {
    ingest: Ingest,
    max_request_bytes: usize,
    logs: Option<LogPipeline>,
}

impl HttpReceiver {
    pub fn new(ingest: Ingest, max_request_bytes: usize) -> Self {
        Self { ingest, max_request_bytes, logs: None }
    }

    /// Also `POST /v1/logs`, into `logs`.
    pub fn with_logs(self, logs: Option<LogPipeline>) -> Self {
        Self { logs, ..self }
    }

    pub fn router(self) -> Router {
        let state =
            HttpState { ingest: self.ingest, max_request_bytes: self.max_request_bytes, logs: self.logs };
        Router::new()
            .route(TRACES_PATH, post(export_traces))
            .route(LOGS_HTTP_PATH, post(export_logs))
            // The limit is enforced in the handler, so that the 413 carries an OTLP Status.
            .layer(DefaultBodyLimit::disable())
            .with_state(state)
    }
}

/// The body of an OTLP/HTTP request, checked and inflated: the bearer token, the media type, the
/// size limit (after decompression), the encoding. An answer when any of them fails.
async fn read_body(
    state: &HttpState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Encoding, Result<Bytes, DecodeError>), Response> {
    let authorization = headers.get(header::AUTHORIZATION).map(HeaderValue::as_bytes);
    if !state.ingest.authorized(authorization, Transport::Http) {
        let encoding = Encoding::from_headers(headers).unwrap_or(Encoding::Protobuf);
        let message = "a valid bearer token is required";
        let mut response =
            status_response(encoding, StatusCode::UNAUTHORIZED, tonic::Code::Unauthenticated, message);
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return Err(response);
    }
    let refuse = |reason| state.ingest.refuse_request(reason, Transport::Http);
    let Some(encoding) = Encoding::from_headers(headers) else {
        refuse(RequestRefusal::Unsupported);
        let message = format!("Content-Type must be {PROTOBUF} or {JSON}");
        return Err(status_response(
            Encoding::Protobuf,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            tonic::Code::InvalidArgument,
            &message,
        ));
    };
    let fail = |status: StatusCode, code: tonic::Code, message: &str| {
        status_response(encoding, status, code, message)
    };
    let limit = state.max_request_bytes;
    let raw = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            refuse(RequestRefusal::TooLarge);
            let message = DecodeError::TooLarge { limit }.to_string();
            return Err(fail(StatusCode::PAYLOAD_TOO_LARGE, tonic::Code::InvalidArgument, &message));
        }
        Err(error) => return Err(unread(&state.ingest, encoding, error.as_ref())),
    };
    let content_encoding =
        headers.get(header::CONTENT_ENCODING).and_then(|value| value.to_str().ok()).map(str::trim);
    let inflated = match content_encoding {
        None | Some("") | Some("identity") => Ok(raw),
        Some(gzip) if gzip.eq_ignore_ascii_case("gzip") => decode::gunzip(&raw, limit).map(Bytes::from),
        Some(other) => {
            refuse(RequestRefusal::Unsupported);
            let message = format!("Content-Encoding {other:?} is not supported; use gzip or none");
            return Err(fail(StatusCode::UNSUPPORTED_MEDIA_TYPE, tonic::Code::InvalidArgument, &message));
        }
    };
    Ok((encoding, inflated))
}

async fn export_traces(State(state): State<HttpState>, headers: HeaderMap, body: Body) -> Response {
    let (encoding, inflated) = match read_body(&state, &headers, body).await {
        Ok(read) => read,
        Err(answer) => return answer,
    };
    let fail = |status: StatusCode, code: tonic::Code, message: &str| {
        status_response(encoding, status, code, message)
    };
    // As over gRPC: while the queue is full, a protobuf body is refused before it is decoded,
    // its spans counted by walking the message (a JSON body has to be parsed to be counted).
    if let (Encoding::Protobuf, Ok(bytes)) = (encoding, &inflated) {
        if state.ingest.queue_full() {
            if let Some(spans) = decode::count_spans(bytes).filter(|spans| *spans > 0) {
                return refused(encoding, state.ingest.refuse_full(spans, Transport::Http));
            }
        }
    }
    let decoded = inflated.and_then(|bytes| match encoding {
        Encoding::Protobuf => decode::protobuf(bytes),
        Encoding::Json => decode::json(&bytes),
    });
    let request = match decoded {
        Ok(request) => request,
        Err(error) => {
            let (reason, status) = refusal_of(&error);
            state.ingest.refuse_request(reason, Transport::Http);
            return fail(status, tonic::Code::InvalidArgument, &error.to_string());
        }
    };
    match state.ingest.accept(request, Transport::Http).await {
        Ok(accepted) => {
            let partial_success = (accepted.rejected_spans > 0).then_some(ExportTracePartialSuccess {
                rejected_spans: accepted.rejected_spans,
                error_message: accepted.message,
            });
            encoded(encoding, StatusCode::OK, &ExportTraceServiceResponse { partial_success })
        }
        Err(refusal) => refused(encoding, refusal),
    }
}

/// `POST /v1/logs`: the same checks as traces, then the logs pipeline (`logs/`).
async fn export_logs(State(state): State<HttpState>, headers: HeaderMap, body: Body) -> Response {
    let Some(logs) = state.logs.clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let (encoding, inflated) = match read_body(&state, &headers, body).await {
        Ok(read) => read,
        Err(answer) => return answer,
    };
    let bytes = match inflated {
        Ok(bytes) => bytes,
        Err(error) => {
            let (reason, status) = refusal_of(&error);
            state.ingest.refuse_request(reason, Transport::Http);
            return status_response(encoding, status, tonic::Code::InvalidArgument, &error.to_string());
        }
    };
    let decoded = match encoding {
        Encoding::Protobuf => logs::decode::protobuf(bytes.clone()).map(|request| (request, Some(bytes))),
        Encoding::Json => logs::decode::json(&bytes).map(|request| (request, None)),
    };
    let (request, received) = match decoded {
        Ok(decoded) => decoded,
        Err(error) => {
            let (reason, status) = match error {
                logs::decode::LogsDecodeError::Amplified => refusal_of(&DecodeError::Amplified),
                logs::decode::LogsDecodeError::Invalid(_) => {
                    (RequestRefusal::Malformed, StatusCode::BAD_REQUEST)
                }
            };
            state.ingest.refuse_request(reason, Transport::Http);
            return status_response(encoding, status, tonic::Code::InvalidArgument, &error.to_string());
        }
    };
    match logs.accept(request, received, Transport::Http) {
        Ok(()) => {
            let body = match encoding {
                Encoding::Protobuf => ExportLogsServiceResponse::default().encode_to_vec(),
                Encoding::Json => b"{}".to_vec(),
            };
            (StatusCode::OK, [(header::CONTENT_TYPE, encoding.content_type())], body).into_response()
        }
        Err(full) => {
            let mut response = status_response(
                encoding,
                StatusCode::SERVICE_UNAVAILABLE,
                tonic::Code::Unavailable,
                &full.to_string(),
            );
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
            response
        }
    }
}

/// How a body that did not decode is counted and answered: too large (after inflating, or
/// decoded) is 413, anything else 400.
fn refusal_of(error: &DecodeError) -> (RequestRefusal, StatusCode) {
    match error {
        DecodeError::TooLarge { .. } | DecodeError::Amplified => {
            (RequestRefusal::TooLarge, StatusCode::PAYLOAD_TOO_LARGE)
        }
        _ => (RequestRefusal::Malformed, StatusCode::BAD_REQUEST),
    }
}

/// A body that could not be read: over the in-flight budget, or not started in its first
/// window, is the retryable refusal (and counted); too slow is 408 (its connection is being
/// closed); anything else 400.
fn unread(ingest: &Ingest, encoding: Encoding, error: &(dyn std::error::Error + 'static)) -> Response {
    let message = error.to_string();
    let reason = match BodyError::find(error) {
        Some(BodyError::OverBudget) => RequestRefusal::InflightBytes,
        Some(BodyError::NotStarted) => RequestRefusal::BodyNotStarted,
        Some(BodyError::TooSlow) => {
            return status_response(
                encoding,
                StatusCode::REQUEST_TIMEOUT,
                tonic::Code::DeadlineExceeded,
                &message,
            )
        }
        _ => {
            return status_response(encoding, StatusCode::BAD_REQUEST, tonic::Code::InvalidArgument, &message)
        }
    };
    ingest.refuse_request(reason, Transport::Http);
    retry_later(encoding, &message)
}

fn refused(encoding: Encoding, refusal: Refusal) -> Response {
    retry_later(encoding, &refusal.to_string())
}

/// 503 with Retry-After: the client should send the same request again later.
fn retry_later(encoding: Encoding, message: &str) -> Response {
    let mut response =
        status_response(encoding, StatusCode::SERVICE_UNAVAILABLE, tonic::Code::Unavailable, message);
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
    response
}

fn encoded(encoding: Encoding, status: StatusCode, response: &ExportTraceServiceResponse) -> Response {
    let body = match encoding {
        Encoding::Protobuf => response.encode_to_vec(),
        // Full success is `{}`: the serde mapping would write `"partialSuccess":null`.
        Encoding::Json if response.partial_success.is_none() => b"{}".to_vec(),
        Encoding::Json => serde_json::to_vec(response).unwrap_or_else(|_| b"{}".to_vec()),
    };
    (status, [(header::CONTENT_TYPE, encoding.content_type())], body).into_response()
}

/// An error answer: a `google.rpc.Status` in the request's encoding.
fn status_response(encoding: Encoding, status: StatusCode, code: tonic::Code, message: &str) -> Response {
    let body = match encoding {
        Encoding::Protobuf => {
            tonic_types::Status { code: code as i32, message: message.to_owned(), details: Vec::new() }
                .encode_to_vec()
        }
        Encoding::Json => {
            serde_json::json!({ "code": code as i32, "message": message }).to_string().into_bytes()
        }
    };
    (status, [(header::CONTENT_TYPE, encoding.content_type())], body).into_response()
}
