//! Bad input gets the OTLP spec's answer and the collector keeps serving: malformed
//! protobuf and JSON, wrong content type, empty and oversize bodies, gzip bombs, invalid span
//! ids (partial success), bodies of empty messages, over both OTLP/HTTP and OTLP/gRPC. Each
//! refusal is counted under its reason.

use std::io::Write;

use crate::common::{agent_trace, request, value, Collector};
use bytes::BufMut;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::Code;

const LIMIT: usize = 4096;
const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

async fn collector() -> Collector {
    Collector::start(&["--max-request-bytes", &LIMIT.to_string()]).await
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).expect("gzip in memory");
    encoder.finish().expect("gzip in memory")
}

fn small_request() -> Vec<u8> {
    request(vec![agent_trace("status-test", [0x33; 16])]).encode_to_vec()
}

#[tokio::test]
async fn http_answers_follow_the_otlp_spec() {
    let collector = collector().await;
    assert!(small_request().len() < LIMIT);

    let (status, body, _) = collector.post(PROTOBUF, None, vec![0x0a, 0xff, 0xff, 0xff]).await;
    assert_eq!(status, 400, "malformed protobuf");
    let rpc_status = tonic_types::Status::decode(body.as_slice()).expect("google.rpc.Status body");
    assert_eq!(rpc_status.code, Code::InvalidArgument as i32);
    assert!(rpc_status.message.contains("protobuf"), "{}", rpc_status.message);

    let (status, body, _) = collector.post(JSON, None, b"{\"resourceSpans\": [".to_vec()).await;
    assert_eq!(status, 400, "malformed JSON");
    let rpc_status: serde_json::Value = serde_json::from_slice(&body).expect("JSON Status body");
    assert_eq!(rpc_status["code"], Code::InvalidArgument as i32);

    let (status, _, _) = collector.post("text/plain", None, small_request()).await;
    assert_eq!(status, 415, "wrong content type");

    let (status, _, _) = collector.post(PROTOBUF, Some("br"), small_request()).await;
    assert_eq!(status, 415, "unsupported content encoding");

    let (status, body, _) = collector.post(PROTOBUF, None, Vec::new()).await;
    assert_eq!(status, 200, "an empty protobuf body is a valid empty request");
    assert_eq!(
        ExportTraceServiceResponse::decode(body.as_slice()).expect("response"),
        ExportTraceServiceResponse::default()
    );
    let (status, _, _) = collector.post(JSON, None, Vec::new()).await;
    assert_eq!(status, 400, "an empty JSON body is not a JSON document");

    let (status, body, _) = collector.post(PROTOBUF, None, vec![0u8; LIMIT + 1]).await;
    assert_eq!(status, 413, "oversize body");
    assert!(tonic_types::Status::decode(body.as_slice()).expect("Status").message.contains("limit"));
    let bomb = gzip(&vec![0u8; 1024 * 1024]);
    assert!(bomb.len() < LIMIT, "the bomb itself is small");
    let (status, _, _) = collector.post(PROTOBUF, Some("gzip"), bomb).await;
    assert_eq!(status, 413, "gzip bomb stops at the limit after decompression");
    let (status, _, _) = collector.post(PROTOBUF, Some("gzip"), b"not gzip".to_vec()).await;
    assert_eq!(status, 400, "corrupt gzip");

    let (status, _, _) = collector.post(PROTOBUF, Some("gzip"), gzip(&small_request())).await;
    assert_eq!(status, 200, "gzip protobuf");
    let json = serde_json::to_vec(&request(vec![agent_trace("status-test", [0x34; 16])])).expect("json");
    let (status, body, _) = collector.post(JSON, None, json).await;
    assert_eq!((status, body.as_slice()), (200, b"{}".as_slice()), "JSON in, JSON out");

    let health = reqwest::get(format!("http://{}/healthz", collector.metrics)).await.expect("healthz");
    assert_eq!(health.status(), 200, "still serving");
    let ready = reqwest::get(format!("http://{}/readyz", collector.metrics)).await.expect("readyz");
    assert_eq!(ready.status(), 200);
    let metrics = collector.scrape().await;
    assert!(metrics.contains("agentrace_spans_received_total{transport=\"http\"} 8\n"), "{metrics}");
}

#[tokio::test]
async fn invalid_span_ids_are_a_partial_success() {
    let collector = collector().await;
    let mut trace = agent_trace("status-test", [0x35; 16]);
    trace.scope_spans[0].spans[0].span_id = vec![1, 2, 3];
    let mut client = TraceServiceClient::connect(collector.grpc_url()).await.expect("connect");
    let response = client.export(request(vec![trace.clone()])).await.expect("accepted").into_inner();
    let partial = response.partial_success.expect("partial success");
    assert_eq!(partial.rejected_spans, 1);
    assert!(partial.error_message.contains("span_id"), "{}", partial.error_message);

    let (status, body, _) = collector.post(PROTOBUF, None, request(vec![trace]).encode_to_vec()).await;
    assert_eq!(status, 200);
    let response = ExportTraceServiceResponse::decode(body.as_slice()).expect("response");
    assert_eq!(response.partial_success.map(|partial| partial.rejected_spans), Some(1));
}

/// Sends raw bytes as the request message, so malformed protobuf reaches the server.
#[derive(Clone, Copy)]
struct RawCodec;
struct RawEncoder;
struct ResponseDecoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for ResponseDecoder {
    type Item = ExportTraceServiceResponse;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, tonic::Status> {
        Message::decode(src).map(Some).map_err(|error| tonic::Status::internal(error.to_string()))
    }
}

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = ExportTraceServiceResponse;
    type Encoder = RawEncoder;
    type Decoder = ResponseDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> ResponseDecoder {
        ResponseDecoder
    }
}

async fn grpc_raw(
    collector: &Collector,
    bytes: Vec<u8>,
) -> Result<ExportTraceServiceResponse, tonic::Status> {
    let channel = tonic::transport::Endpoint::from_shared(collector.grpc_url())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let path =
        http::uri::PathAndQuery::from_static("/opentelemetry.proto.collector.trace.v1.TraceService/Export");
    grpc.unary(tonic::Request::new(bytes), path, RawCodec).await.map(tonic::Response::into_inner)
}

#[tokio::test]
async fn grpc_answers_are_not_retryable_for_bad_or_oversize_data() {
    let collector = collector().await;
    let malformed = grpc_raw(&collector, vec![0x0a, 0xff, 0xff, 0xff]).await.expect_err("malformed");
    assert_eq!(malformed.code(), Code::InvalidArgument, "{malformed:?}");

    let oversize = grpc_raw(&collector, vec![0u8; LIMIT + 1]).await.expect_err("oversize");
    assert_eq!(oversize.code(), Code::ResourceExhausted, "{oversize:?}");
    assert!(
        tonic_types::StatusExt::get_details_retry_info(&oversize).is_none(),
        "no RetryInfo: not retryable"
    );

    let accepted = grpc_raw(&collector, small_request()).await.expect("a valid request still goes through");
    assert_eq!(accepted.partial_success, None);
    let metrics = collector.scrape().await;
    assert_eq!(value(&metrics, &grpc_refused("malformed")), 1.0, "{metrics}");
    assert_eq!(value(&metrics, &grpc_refused("too_large")), 1.0, "{metrics}");
}

fn grpc_refused(reason: &str) -> String {
    format!("agentrace_requests_refused_total{{transport=\"grpc\",reason=\"{reason}\"}}")
}

/// A body of empty spans, two bytes each on the wire and hundreds in memory, is refused as
/// too large before it is decoded whole, and not retryably.
#[tokio::test]
async fn grpc_refuses_a_body_that_decodes_too_large() {
    let collector = Collector::start(&[]).await;
    // 100 000 empty spans in one scope: 200 kB, which would take 31 MB decoded.
    let spans = [0x12u8, 0x00].repeat(100_000);
    let mut scope = vec![0x12];
    prost::encoding::encode_varint(spans.len() as u64, &mut scope);
    scope.extend_from_slice(&spans);
    let mut body = vec![0x0a];
    prost::encoding::encode_varint(scope.len() as u64, &mut body);
    body.extend_from_slice(&scope);
    let refused = grpc_raw(&collector, body).await.expect_err("amplified");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("decoded"), "{refused:?}");
    assert!(tonic_types::StatusExt::get_details_retry_info(&refused).is_none(), "not retryable");
    grpc_raw(&collector, small_request()).await.expect("a valid request still goes through");
    let metrics = collector.scrape().await;
    assert_eq!(value(&metrics, &grpc_refused("too_large")), 1.0, "{metrics}");
}
