//! `LogsService/Export` over gRPC, for the receiver in `receive/grpc.rs` (which checks the
//! token and owns the connection). The request keeps the bytes it arrived as, so that it can be
//! forwarded as it came.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::{Buf, Bytes};
use opentelemetry_proto::tonic::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use tonic::codec::{CompressionEncoding, DecodeBuf, EnabledCompressionEncodings};
use tonic::server::UnaryService;
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::decode::{self, LogsDecodeError};
use super::LogPipeline;
use crate::events::Transport;

pub const LOGS_PATH: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";

/// How long a refused client is asked to wait before retrying.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Serves one `LogsService/Export` call.
pub async fn grpc_export(
    pipeline: LogPipeline,
    request: http::Request<tonic::body::Body>,
    max_request_bytes: usize,
) -> http::Response<tonic::body::Body> {
    let mut gzip = EnabledCompressionEncodings::default();
    gzip.enable(CompressionEncoding::Gzip);
    let mut grpc = tonic::server::Grpc::new(LogsCodec)
        .apply_compression_config(gzip, gzip)
        .apply_max_message_size_config(Some(max_request_bytes), None);
    grpc.unary(LogsService { pipeline }, request).await
}

struct LogsService {
    pipeline: LogPipeline,
}

type Decoded = (ExportLogsServiceRequest, Bytes);

impl UnaryService<Decoded> for LogsService {
    type Response = ExportLogsServiceResponse;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ExportLogsServiceResponse>, Status>> + Send>>;

    fn call(&mut self, request: Request<Decoded>) -> Self::Future {
        let (decoded, received) = request.into_inner();
        let accepted = self.pipeline.accept(decoded, Some(received), Transport::Grpc);
        Box::pin(async move {
            match accepted {
                Ok(()) => Ok(Response::new(ExportLogsServiceResponse::default())),
                Err(full) => Err(Status::with_error_details(
                    Code::Unavailable,
                    full.to_string(),
                    ErrorDetails::with_retry_info(Some(RETRY_AFTER)),
                )),
            }
        })
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct LogsCodec;

#[derive(Debug)]
struct LogsDecoder;

impl tonic::codec::Decoder for LogsDecoder {
    type Item = Decoded;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Decoded>, Status> {
        let message = src.copy_to_bytes(src.remaining());
        let request = decode::protobuf(message.clone()).map_err(|error| match error {
            LogsDecodeError::Amplified => Status::out_of_range(error.to_string()),
            LogsDecodeError::Invalid(_) => Status::invalid_argument(error.to_string()),
        })?;
        Ok(Some((request, message)))
    }
}

impl tonic::codec::Codec for LogsCodec {
    type Encode = ExportLogsServiceResponse;
    type Decode = Decoded;
    type Encoder = tonic_prost::ProstEncoder<ExportLogsServiceResponse>;
    type Decoder = LogsDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        LogsDecoder
    }
}
