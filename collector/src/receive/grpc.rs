//! OTLP/gRPC receiver: the `TraceService/Export` method, with gzip accepted and the decode size
//! limit set, on the connections `serve` accepts. Next stop: [`Ingest`].
//!
//! The service is written out rather than generated so that requests decode into the
//! pipeline's zero-copy types (`wire.rs`); it behaves as the generated one does.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use agentrace_semconv::otlp::{GRPC_TRACES_EXPORT_PATH as EXPORT_PATH, GRPC_TRACE_SERVICE};
use bytes::Buf;
use tonic::codec::{CompressionEncoding, DecodeBuf, EnabledCompressionEncodings};
use tonic::server::{NamedService, UnaryService};
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::decode;
use super::{Ingest, RequestRefusal, Transport};
use crate::logs::{grpc_export, LogPipeline, LOGS_PATH};
use crate::serve::{BodyError, RequestBody};
use crate::wire::{Decoded, ExportTracePartialSuccess, ExportTraceServiceResponse};

/// How long a refused client is asked to wait before retrying.
const RETRY_AFTER: Duration = Duration::from_secs(1);

#[derive(Clone, Debug)]
pub struct GrpcReceiver {
    ingest: Ingest,
    max_request_bytes: usize,
    logs: Option<LogPipeline>,
}

impl GrpcReceiver {
    /// Served by `serve::serve`, which owns the connections, TLS and their limits.
    pub fn new(ingest: Ingest, max_request_bytes: usize) -> Self {
        Self { ingest, max_request_bytes, logs: None }
    }

    /// Also `LogsService/Export`, into `logs`.
    pub fn with_logs(self, logs: Option<LogPipeline>) -> Self {
        Self { logs, ..self }
    }
}

/// A body that could not be read: over the in-flight budget, or not started in its first
/// window, is the retryable refusal (and counted); too slow is DEADLINE_EXCEEDED (its
/// connection is being closed).
fn body_status(ingest: &Ingest, error: BodyError) -> Status {
    let reason = match error {
        BodyError::OverBudget => RequestRefusal::InflightBytes,
        BodyError::NotStarted => RequestRefusal::BodyNotStarted,
        BodyError::TooSlow => return Status::deadline_exceeded(error.to_string()),
        BodyError::Read(source) => return Status::from_error(source),
    };
    ingest.refuse_request(reason, Transport::Grpc);
    unavailable(error.to_string())
}

/// tonic answers an oversize message with OUT_OF_RANGE and an undecodable one with INTERNAL;
/// the request decoders answer an amplified one with OUT_OF_RANGE too, and a malformed one
/// with INVALID_ARGUMENT. OTLP clients retry OUT_OF_RANGE forever, and the spec asks for
/// INVALID_ARGUMENT on bad data; the service itself never returns OUT_OF_RANGE or INTERNAL, so
/// every such answer is the decoding's and is rewritten: oversize to RESOURCE_EXHAUSTED
/// without RetryInfo (not retryable), bad data to INVALID_ARGUMENT. Each refusal is counted:
/// those, and UNIMPLEMENTED, which tonic answers to a `grpc-encoding` it does not read (an
/// unknown method never gets here). A stream that ended before its message (the client went
/// away) is not a refusal. Errors before the first message are trailers-only, so the status is
/// in the headers.
fn otlp_status_codes<B>(ingest: &Ingest, mut response: http::Response<B>) -> http::Response<B> {
    let headers = response.headers();
    let code = headers
        .get(GRPC_STATUS)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<i32>().ok())
        .map(Code::from_i32);
    let ended_early = headers.get(GRPC_MESSAGE).is_some_and(|message| message.as_bytes().starts_with(EOF));
    let (refusal, replacement) = match code {
        Some(Code::OutOfRange) => (Some(RequestRefusal::TooLarge), Some(Code::ResourceExhausted)),
        Some(Code::Internal) => {
            ((!ended_early).then_some(RequestRefusal::Malformed), Some(Code::InvalidArgument))
        }
        Some(Code::InvalidArgument) => (Some(RequestRefusal::Malformed), None),
        Some(Code::Unimplemented) => (Some(RequestRefusal::Unsupported), None),
        _ => return response,
    };
    if let Some(refusal) = refusal {
        ingest.refuse_request(refusal, Transport::Grpc);
    }
    if let Some(replacement) = replacement {
        response.headers_mut().insert(GRPC_STATUS, http::HeaderValue::from(replacement as i32));
    }
    response
}

/// How tonic's message for a stream that ended before its message begins (percent-encoded).
const EOF: &[u8] = b"Unexpected%20EOF";
const GRPC_MESSAGE: &str = "grpc-message";
const GRPC_STATUS: &str = "grpc-status";
const AUTHORIZATION: &str = "authorization";

impl NamedService for GrpcReceiver {
    const NAME: &'static str = GRPC_TRACE_SERVICE;
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl tower::Service<http::Request<RequestBody>> for GrpcReceiver {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<RequestBody>) -> Self::Future {
        let receiver = self.clone();
        let ingest = self.ingest.clone();
        let request = request.map(|body| {
            tonic::body::Body::new(http_body_util::BodyExt::map_err(body, move |error| {
                body_status(&ingest, error)
            }))
        });
        Box::pin(async move {
            let logs = match (request.uri().path(), &receiver.logs) {
                (EXPORT_PATH, _) => None,
                (LOGS_PATH, Some(logs)) => Some(logs.clone()),
                _ => {
                    return Ok(Status::unimplemented("TraceService/Export and LogsService/Export are served")
                        .into_http())
                }
            };
            // Before the body is read: an unauthenticated request costs no decoding.
            let authorization = request.headers().get(AUTHORIZATION).map(|value| value.as_bytes());
            if !receiver.ingest.authorized(authorization, Transport::Grpc) {
                return Ok(Status::unauthenticated("a valid bearer token is required").into_http());
            }
            if let Some(logs) = logs {
                let response = grpc_export(logs, request, receiver.max_request_bytes).await;
                return Ok(otlp_status_codes(&receiver.ingest, response));
            }
            let mut gzip = EnabledCompressionEncodings::default();
            gzip.enable(CompressionEncoding::Gzip);
            let codec = RequestCodec { ingest: receiver.ingest.clone() };
            let mut grpc = tonic::server::Grpc::new(codec)
                .apply_compression_config(gzip, gzip)
                .apply_max_message_size_config(Some(receiver.max_request_bytes), None);
            let ingest = receiver.ingest.clone();
            Ok(otlp_status_codes(&ingest, grpc.unary(receiver, request).await))
        })
    }
}

impl UnaryService<Decoded> for GrpcReceiver {
    type Response = ExportTraceServiceResponse;
    type Future = BoxFuture<Result<Response<ExportTraceServiceResponse>, Status>>;

    fn call(&mut self, request: Request<Decoded>) -> Self::Future {
        let receiver = self.clone();
        Box::pin(async move { receiver.export(request).await })
    }
}

/// Requests decode into `wire.rs`'s types (strings as views of the message); answers encode
/// with prost. When the ingest queue is full, a request is refused before it is decoded.
#[derive(Clone, Debug)]
struct RequestCodec {
    ingest: Ingest,
}

#[derive(Debug)]
struct RequestDecoder {
    ingest: Ingest,
}

impl tonic::codec::Decoder for RequestDecoder {
    type Item = Decoded;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        let message = src.copy_to_bytes(src.remaining());
        if self.ingest.queue_full() {
            // Counting spans walks the message without decoding it; a message that cannot be
            // walked is decoded, and refused as invalid.
            if let Some(spans) = decode::count_spans(&message).filter(|spans| *spans > 0) {
                return Err(unavailable(self.ingest.refuse_full(spans, Transport::Grpc).to_string()));
            }
        }
        decode::protobuf(message).map(Some).map_err(|error| match error {
            decode::DecodeError::Amplified => Status::out_of_range(error.to_string()),
            error => Status::invalid_argument(error.to_string()),
        })
    }
}

impl tonic::codec::Codec for RequestCodec {
    type Encode = ExportTraceServiceResponse;
    type Decode = Decoded;
    type Encoder = tonic_prost::ProstEncoder<ExportTraceServiceResponse>;
    type Decoder = RequestDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        RequestDecoder { ingest: self.ingest.clone() }
    }
}

impl GrpcReceiver {
    async fn export(
        &self,
        request: Request<Decoded>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        match self.ingest.accept(request.into_inner(), Transport::Grpc).await {
            Ok(accepted) if accepted.rejected_spans == 0 => {
                Ok(Response::new(ExportTraceServiceResponse::default()))
            }
            Ok(accepted) => Ok(Response::new(ExportTraceServiceResponse {
                partial_success: Some(ExportTracePartialSuccess {
                    rejected_spans: accepted.rejected_spans,
                    error_message: accepted.message,
                }),
            })),
            Err(refusal) => Err(unavailable(refusal.to_string())),
        }
    }
}

/// A retryable refusal, with how long to wait.
fn unavailable(message: String) -> Status {
    Status::with_error_details(Code::Unavailable, message, ErrorDetails::with_retry_info(Some(RETRY_AFTER)))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::metrics::{Registry, SeriesLimits};
    use crate::receive::QueueGauge;
    use agentrace_semconv::metric;

    fn answer(code: Code, message: &str) -> http::Response<()> {
        let status = Status::new(code, message);
        let mut response = http::Response::new(());
        status.add_header(response.headers_mut()).expect("status headers");
        response
    }

    #[test]
    fn decoding_refusals_are_rewritten_and_counted_and_a_client_gone_is_not() {
        let registry = Arc::new(Registry::new(SeriesLimits::default()));
        let (sender, _receiver) = tokio::sync::mpsc::channel(1);
        let ingest = Ingest::new(vec![sender], QueueGauge::new("ingest", 1), registry.clone());
        let cases = [
            (Code::OutOfRange, "Error, decoded message length too large", Code::ResourceExhausted),
            (Code::Internal, "Error decompressing: invalid gzip header", Code::InvalidArgument),
            (Code::Internal, "Unexpected EOF decoding stream.", Code::InvalidArgument),
            (Code::InvalidArgument, "invalid protobuf", Code::InvalidArgument),
            (
                Code::Unimplemented,
                "Content is compressed with `br` which isn't supported",
                Code::Unimplemented,
            ),
            (Code::Unavailable, "the collector's queue is full", Code::Unavailable),
        ];
        for (code, message, sent) in cases {
            let response = otlp_status_codes(&ingest, answer(code, message));
            let status = response.headers().get(GRPC_STATUS).and_then(|value| value.to_str().ok());
            assert_eq!(status, Some((sent as i32).to_string().as_str()), "{message}");
        }
        let refused = |reason| registry.value(metric::SELF_REQUESTS_REFUSED_TOTAL, &["grpc", reason]);
        assert_eq!(refused("too_large"), Some(1.0));
        assert_eq!(refused("malformed"), Some(2.0), "bad gzip and bad protobuf, not the stream cut short");
        assert_eq!(refused("unsupported"), Some(1.0));
    }
}
