//! OTLP/gRPC receiver: the `TraceService/Export` method, served by tonic with gzip accepted and
//! the decode size limit set. Next stop: [`Ingest`].

use std::future::Future;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::codec::CompressionEncoding;
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::{Ingest, Transport};

/// How long a refused client is asked to wait before retrying.
const RETRY_AFTER: Duration = Duration::from_secs(1);

#[derive(Debug)]
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
        let max_request_bytes = self.max_request_bytes;
        // A bound on the streams of one connection bounds the request bodies HTTP/2 buffers
        // before the memory limit can refuse them; clients queue the rest.
        let mut builder =
            tonic::transport::Server::builder().max_concurrent_streams(MAX_STREAMS_PER_CONNECTION);
        if let Some(tls) = self.tls.clone() {
            builder = builder.tls_config(tls)?;
        }
        let service = TraceServiceServer::new(self)
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(max_request_bytes);
        builder
            .layer(tower::util::MapResponseLayer::new(otlp_status_codes))
            .add_service(service)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
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

#[tonic::async_trait]
impl TraceService for GrpcReceiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let authorization = request.metadata().get(AUTHORIZATION).map(|value| value.as_bytes());
        if !self.ingest.authorized(authorization, Transport::Grpc) {
            return Err(Status::unauthenticated("a valid bearer token is required"));
        }
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
            Err(refusal) => Err(Status::with_error_details(
                Code::Unavailable,
                refusal.to_string(),
                ErrorDetails::with_retry_info(Some(RETRY_AFTER)),
            )),
        }
    }
}
