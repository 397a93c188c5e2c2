//! OTLP/gRPC receiver: the `TraceService/Export` method, served by tonic with gzip accepted and
//! the decode size limit set. Next stop: [`Ingest`].
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
use tokio::net::TcpListener;
use tonic::codec::{CompressionEncoding, DecodeBuf, EnabledCompressionEncodings};
use tonic::server::{NamedService, UnaryService};
use tonic::transport::server::TcpIncoming;
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::decode;
use super::{Ingest, Transport};
use crate::wire::{Decoded, ExportTracePartialSuccess, ExportTraceServiceResponse};

/// How long a refused client is asked to wait before retrying.
const RETRY_AFTER: Duration = Duration::from_secs(1);

#[derive(Clone, Debug)]
pub struct GrpcReceiver {
    ingest: Ingest,
    max_request_bytes: usize,
    tls: Option<tonic::transport::ServerTlsConfig>,
}

impl GrpcReceiver {
    pub fn new(
        ingest: Ingest,
        max_request_bytes: usize,
        tls: Option<tonic::transport::ServerTlsConfig>,
    ) -> Self {
        Self { ingest, max_request_bytes, tls }
    }

    /// Serves until `shutdown` resolves, then finishes the calls in flight.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), tonic::transport::Error> {
        // A bound on the streams of one connection bounds the request bodies HTTP/2 buffers
        // before the memory limit can refuse them; clients queue the rest.
        let mut builder =
            tonic::transport::Server::builder().max_concurrent_streams(MAX_STREAMS_PER_CONNECTION);
        if let Some(tls) = self.tls.clone() {
            builder = builder.tls_config(tls)?;
        }
        builder
            .layer(tower::util::MapResponseLayer::new(otlp_status_codes))
            .add_service(self)
            .serve_with_incoming_shutdown(TcpIncoming::from(listener).with_nodelay(Some(true)), shutdown)
            .await
    }
}

const MAX_STREAMS_PER_CONNECTION: u32 = 128;

/// tonic answers an oversize message with OUT_OF_RANGE and an undecodable one with INTERNAL.
/// OTLP clients retry OUT_OF_RANGE forever, and the spec asks for INVALID_ARGUMENT on bad
/// data; the service itself never returns either code, so every such answer is tonic's and
/// is rewritten: oversize to RESOURCE_EXHAUSTED without RetryInfo (not retryable), bad data
/// to INVALID_ARGUMENT. Errors before the first message are trailers-only, so the status is
/// in the headers.
fn otlp_status_codes<B>(mut response: http::Response<B>) -> http::Response<B> {
    let code = response
        .headers()
        .get(GRPC_STATUS)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<i32>().ok())
        .map(Code::from_i32);
    let replacement = match code {
        Some(Code::OutOfRange) => Code::ResourceExhausted,
        Some(Code::Internal) => Code::InvalidArgument,
        _ => return response,
    };
    response.headers_mut().insert(GRPC_STATUS, http::HeaderValue::from(replacement as i32));
    response
}

const GRPC_STATUS: &str = "grpc-status";
const AUTHORIZATION: &str = "authorization";

impl NamedService for GrpcReceiver {
    const NAME: &'static str = GRPC_TRACE_SERVICE;
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl tower::Service<http::Request<tonic::body::Body>> for GrpcReceiver {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let receiver = self.clone();
        Box::pin(async move {
            if request.uri().path() != EXPORT_PATH {
                return Ok(Status::unimplemented("only TraceService/Export is served").into_http());
            }
            // Before the body is read: an unauthenticated request costs no decoding.
            let authorization = request.headers().get(AUTHORIZATION).map(|value| value.as_bytes());
            if !receiver.ingest.authorized(authorization, Transport::Grpc) {
                return Ok(Status::unauthenticated("a valid bearer token is required").into_http());
            }
            let mut gzip = EnabledCompressionEncodings::default();
            gzip.enable(CompressionEncoding::Gzip);
            let codec = RequestCodec { ingest: receiver.ingest.clone() };
            let mut grpc = tonic::server::Grpc::new(codec)
                .apply_compression_config(gzip, gzip)
                .apply_max_message_size_config(Some(receiver.max_request_bytes), None);
            Ok(grpc.unary(receiver, request).await)
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
                return Err(unavailable(self.ingest.refuse_full(spans, Transport::Grpc)));
            }
        }
        decode::protobuf(message).map(Some).map_err(|error| Status::invalid_argument(error.to_string()))
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
            Err(refusal) => Err(unavailable(refusal)),
        }
    }
}

/// A retryable refusal, with how long to wait.
fn unavailable(refusal: super::Refusal) -> Status {
    Status::with_error_details(
        Code::Unavailable,
        refusal.to_string(),
        ErrorDetails::with_retry_info(Some(RETRY_AFTER)),
    )
}
