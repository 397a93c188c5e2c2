//! A load generator for OTLP trace receivers, and a sink that counts what arrives.
//!
//! `send` runs a fixed-seed workload (`workload.rs`) over OTLP/gRPC or OTLP/HTTP (protobuf or
//! JSON, gzip optional), either at a fixed request rate or as a closed loop with N requests in
//! flight, and reports sent, acknowledged and refused counts and latency percentiles. `sink`
//! accepts OTLP/gRPC and counts spans, for end-to-end accounting.
//!
//! Both sides are built to cost little next to the receiver under test: requests are generated
//! and encoded once, before the clock starts, into a pool that the run cycles through, and the
//! sink counts spans by walking the protobuf wire format without decoding them. So that a
//! receiver that groups spans by trace sees each trace once, as in real traffic, a protobuf
//! request sent again gets fresh trace ids: the 8 bytes of each trace id that hold the
//! request's sequence number are overwritten with the number of this send. (Gzip and JSON
//! bodies are sent again as they are: their trace ids repeat once per pool.)

pub mod workload;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use agentrace_semconv::otlp::{GRPC_TRACES_EXPORT_PATH as EXPORT_PATH, GRPC_TRACE_SERVICE};
use anyhow::Context as _;
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use serde::Serialize;

pub use workload::{Generator, Workload};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    Grpc,
    HttpProtobuf,
    HttpJson,
}

/// How requests are paced.
#[derive(Clone, Copy, Debug)]
pub enum Pace {
    /// This many requests per second, whatever the answers take (open loop).
    Rate(f64),
    /// This many requests in flight, each sent as soon as the previous answer came (closed loop).
    InFlight(usize),
}

#[derive(Clone, Debug)]
pub struct SendPlan {
    pub endpoint: String,
    pub protocol: Protocol,
    pub gzip: bool,
    pub workload: Workload,
    pub pace: Pace,
    pub duration: Duration,
    pub seed: u64,
    /// Distinct requests generated and encoded before the run; the run cycles through them.
    pub pool: usize,
}

/// What a run did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub requests_sent: u64,
    pub spans_sent: u64,
    pub spans_acknowledged: u64,
    pub requests_refused: u64,
    pub requests_failed: u64,
    pub elapsed_secs: f64,
    /// From the start to the moment the last request went out: with `elapsed_secs`, which
    /// also waits for the last answers, it tells keeping pace apart from answering late.
    pub sending_secs: f64,
    pub acknowledged_spans_per_sec: f64,
    pub latency_ms_p50: f64,
    pub latency_ms_p90: f64,
    pub latency_ms_p99: f64,
    pub latency_ms_max: f64,
}

// One client per worker, built once: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
enum Client {
    Grpc(tonic::client::Grpc<tonic::transport::Channel>),
    Http {
        client: hyper_util::client::legacy::Client<
            hyper_util::client::legacy::connect::HttpConnector,
            http_body_util::Full<Bytes>,
        >,
        url: http::Uri,
        json: bool,
        gzip: bool,
    },
}

/// The answer to one request.
enum Outcome {
    Acknowledged,
    /// A retryable refusal (UNAVAILABLE, RESOURCE_EXHAUSTED, 429, 503).
    Refused,
    Failed,
}

impl Client {
    async fn connect(plan: &SendPlan) -> anyhow::Result<Self> {
        Ok(match plan.protocol {
            Protocol::Grpc => {
                let channel =
                    tonic::transport::Endpoint::from_shared(plan.endpoint.clone())?.connect().await?;
                let client = tonic::client::Grpc::new(channel);
                Self::Grpc(if plan.gzip {
                    client.send_compressed(tonic::codec::CompressionEncoding::Gzip)
                } else {
                    client
                })
            }
            Protocol::HttpProtobuf | Protocol::HttpJson => {
                let url = agentrace_semconv::otlp::http_traces_url(&plan.endpoint);
                let client =
                    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                        .build(hyper_util::client::legacy::connect::HttpConnector::new());
                Self::Http {
                    client,
                    url: url.parse()?,
                    json: plan.protocol == Protocol::HttpJson,
                    gzip: plan.gzip,
                }
            }
        })
    }

    /// Sends one pre-encoded request: protobuf for gRPC, the HTTP body (already compressed
    /// when gzip is on) for HTTP.
    async fn send(&mut self, body: Bytes) -> Outcome {
        match self {
            Self::Grpc(client) => match agentrace_collector::export_grpc(client, body).await {
                Ok(_) => Outcome::Acknowledged,
                Err(status)
                    if matches!(status.code(), tonic::Code::Unavailable | tonic::Code::ResourceExhausted) =>
                {
                    Outcome::Refused
                }
                Err(_) => Outcome::Failed,
            },
            Self::Http { client, url, json, gzip } => {
                let content_type = if *json { "application/json" } else { "application/x-protobuf" };
                let mut builder =
                    http::Request::post(url.clone()).header(http::header::CONTENT_TYPE, content_type);
                if *gzip {
                    builder = builder.header(http::header::CONTENT_ENCODING, "gzip");
                }
                let Ok(post) = builder.body(http_body_util::Full::new(body)) else {
                    return Outcome::Failed;
                };
                match client.request(post).await {
                    Ok(response) if response.status().is_success() => Outcome::Acknowledged,
                    Ok(response) if matches!(response.status().as_u16(), 429 | 503) => Outcome::Refused,
                    _ => Outcome::Failed,
                }
            }
        }
    }
}

/// One encoded request of the pool, and where its trace ids' sequence numbers are.
struct Pooled {
    body: Bytes,
    /// Offsets of the first 8 bytes of every trace id (protobuf bodies only).
    trace_id_offsets: Vec<usize>,
}

impl Pooled {
    fn new(plan: &SendPlan, request: &ExportTraceServiceRequest, sequence: u64) -> anyhow::Result<Self> {
        let body = encode(plan, request)?;
        let patchable =
            plan.protocol == Protocol::Grpc || (plan.protocol == Protocol::HttpProtobuf && !plan.gzip);
        // A trace id field: tag 1, length 16, then the id, whose first 8 bytes are `sequence`.
        let mut pattern = vec![0x0a, 0x10];
        pattern.extend_from_slice(&sequence.to_be_bytes());
        let trace_id_offsets = match patchable {
            true => body
                .windows(pattern.len())
                .enumerate()
                .filter(|(_, window)| *window == pattern.as_slice())
                .map(|(offset, _)| offset + 2)
                .collect(),
            false => Vec::new(),
        };
        Ok(Self { body, trace_id_offsets })
    }

    /// The body to send as request number `sequence` of the run.
    fn body(&self, sequence: u64) -> Bytes {
        if self.trace_id_offsets.is_empty() {
            return self.body.clone();
        }
        let mut body = bytes::BytesMut::from(self.body.as_ref());
        for offset in &self.trace_id_offsets {
            body[*offset..*offset + 8].copy_from_slice(&sequence.to_be_bytes());
        }
        body.freeze()
    }
}

/// The body of one request as `plan` sends it.
fn encode(plan: &SendPlan, request: &ExportTraceServiceRequest) -> anyhow::Result<Bytes> {
    let body = match plan.protocol {
        Protocol::Grpc => return Ok(request.encode_to_vec().into()),
        Protocol::HttpJson => serde_json::to_vec(request)?,
        Protocol::HttpProtobuf => request.encode_to_vec(),
    };
    if !plan.gzip {
        return Ok(body.into());
    }
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut encoder, &body)?;
    Ok(encoder.finish()?.into())
}

#[derive(Default)]
struct Tally {
    requests_sent: AtomicU64,
    spans_acknowledged: AtomicU64,
    requests_refused: AtomicU64,
    requests_failed: AtomicU64,
    latencies: Mutex<Vec<Duration>>,
    /// Nanoseconds from the start to the latest request sent.
    last_sent_nanos: AtomicU64,
}

fn unix_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_nanos() as u64)
}

/// Runs a plan to completion.
pub async fn send(plan: SendPlan) -> anyhow::Result<Report> {
    let tally = Arc::new(Tally::default());
    let next = Arc::new(AtomicU64::new(0));
    let spans_per_request = plan.workload.spans_per_request() as u64;
    let now = unix_nanos();
    let pool: Arc<[Pooled]> = (0..plan.pool.max(1) as u64)
        .map(|sequence| {
            let request =
                Generator::new(plan.workload, plan.seed.wrapping_add(sequence), now).request(sequence);
            Pooled::new(&plan, &request, sequence)
        })
        .collect::<anyhow::Result<Vec<_>>>()?
        .into();
    let started = Instant::now();
    let deadline = started + plan.duration;
    let mut workers = tokio::task::JoinSet::new();
    let one = move |mut client: Client, sequence: u64, tally: Arc<Tally>, pool: Arc<[Pooled]>| async move {
        let body = pool[(sequence % pool.len() as u64) as usize].body(sequence);
        tally.requests_sent.fetch_add(1, Ordering::Relaxed);
        let sent_at = Instant::now();
        let since_start = u64::try_from(sent_at.duration_since(started).as_nanos()).unwrap_or(u64::MAX);
        tally.last_sent_nanos.fetch_max(since_start, Ordering::Relaxed);
        let outcome = client.send(body).await;
        let latency = sent_at.elapsed();
        match outcome {
            Outcome::Acknowledged => {
                tally.spans_acknowledged.fetch_add(spans_per_request, Ordering::Relaxed);
                if let Ok(mut latencies) = tally.latencies.lock() {
                    latencies.push(latency);
                }
            }
            Outcome::Refused => {
                tally.requests_refused.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Failed => {
                tally.requests_failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        client
    };
    match plan.pace {
        Pace::InFlight(in_flight) => {
            for _ in 0..in_flight.max(1) {
                let (tally, next, pool) = (tally.clone(), next.clone(), pool.clone());
                let mut client = Client::connect(&plan).await?;
                workers.spawn(async move {
                    while Instant::now() < deadline {
                        let sequence = next.fetch_add(1, Ordering::Relaxed);
                        client = one(client, sequence, tally.clone(), pool.clone()).await;
                    }
                });
            }
        }
        Pace::Rate(per_second) => {
            let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / per_second.max(0.001)));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            // Both clients are handles to a shared connection pool; a clone is cheap.
            let client = Client::connect(&plan).await?;
            while Instant::now() < deadline {
                ticks.tick().await;
                let sequence = next.fetch_add(1, Ordering::Relaxed);
                let request = one(client.clone(), sequence, tally.clone(), pool.clone());
                workers.spawn(async move {
                    request.await;
                });
            }
        }
    }
    while workers.join_next().await.is_some() {}
    let elapsed = started.elapsed().as_secs_f64();
    let mut latencies = tally.latencies.lock().map(|latencies| latencies.clone()).unwrap_or_default();
    latencies.sort();
    let percentile = |fraction: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let index = ((latencies.len() as f64 * fraction).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[index].as_secs_f64() * 1000.0
    };
    let requests_sent = tally.requests_sent.load(Ordering::Relaxed);
    let spans_acknowledged = tally.spans_acknowledged.load(Ordering::Relaxed);
    Ok(Report {
        requests_sent,
        spans_sent: requests_sent * spans_per_request,
        spans_acknowledged,
        requests_refused: tally.requests_refused.load(Ordering::Relaxed),
        requests_failed: tally.requests_failed.load(Ordering::Relaxed),
        elapsed_secs: elapsed,
        sending_secs: tally.last_sent_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        acknowledged_spans_per_sec: spans_acknowledged as f64 / elapsed.max(1e-9),
        latency_ms_p50: percentile(0.50),
        latency_ms_p90: percentile(0.90),
        latency_ms_p99: percentile(0.99),
        latency_ms_max: percentile(1.0),
    })
}

/// What a decode-only run did.
#[derive(Clone, Debug, Serialize)]
pub struct DecodeReport {
    pub spans_decoded: u64,
    pub elapsed_secs: f64,
    pub spans_per_sec: f64,
}

/// Decodes the workload's encoded requests with prost, one after the other, for `duration`:
/// the most any receiver that decodes its input can do with these bytes on this core.
pub fn decode_only(
    workload: Workload,
    seed: u64,
    pool: usize,
    duration: Duration,
) -> anyhow::Result<DecodeReport> {
    let pool: Vec<Bytes> = (0..pool.max(1) as u64)
        .map(|sequence| Generator::new(workload, seed.wrapping_add(sequence), 0).request(sequence))
        .map(|request| Bytes::from(request.encode_to_vec()))
        .collect();
    let started = Instant::now();
    let mut spans_decoded = 0u64;
    while started.elapsed() < duration {
        for body in &pool {
            let request = ExportTraceServiceRequest::decode(body.clone())?;
            spans_decoded += std::hint::black_box(&request)
                .resource_spans
                .iter()
                .flat_map(|resource| &resource.scope_spans)
                .map(|scope| scope.spans.len() as u64)
                .sum::<u64>();
        }
    }
    let elapsed_secs = started.elapsed().as_secs_f64();
    Ok(DecodeReport { spans_decoded, elapsed_secs, spans_per_sec: spans_decoded as f64 / elapsed_secs })
}

/// An OTLP/gRPC endpoint that acknowledges everything and counts spans, after `delay` (a
/// trace backend's round trip).
#[derive(Clone, Debug, Default)]
pub struct CountingSink {
    pub spans: Arc<AtomicU64>,
    pub requests: Arc<AtomicU64>,
    pub delay: Duration,
}

impl CountingSink {
    /// Serves on `listener` until `shutdown` resolves.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), tonic::transport::Error> {
        tonic::transport::Server::builder()
            .add_service(self.clone())
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                shutdown,
            )
            .await
    }
}

impl tonic::server::NamedService for CountingSink {
    const NAME: &'static str = GRPC_TRACE_SERVICE;
}

impl tonic::server::UnaryService<u64> for CountingSink {
    type Response = ExportTraceServiceResponse;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<tonic::Response<Self::Response>, tonic::Status>> + Send>,
    >;

    fn call(&mut self, request: tonic::Request<u64>) -> Self::Future {
        let (spans, requests, delay) = (self.spans.clone(), self.requests.clone(), self.delay);
        Box::pin(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            spans.fetch_add(*request.get_ref(), Ordering::Relaxed);
            requests.fetch_add(1, Ordering::Relaxed);
            Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
        })
    }
}

impl tower::Service<http::Request<tonic::body::Body>> for CountingSink {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>,
    >;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let sink = self.clone();
        Box::pin(async move {
            if request.uri().path() != EXPORT_PATH {
                return Ok(tonic::Status::unimplemented("only trace export").into_http());
            }
            let mut accept = tonic::codec::EnabledCompressionEncodings::default();
            accept.enable(tonic::codec::CompressionEncoding::Gzip);
            let grpc = tonic::server::Grpc::new(CountingCodec)
                .apply_compression_config(accept, tonic::codec::EnabledCompressionEncodings::default());
            let mut grpc = grpc.apply_max_message_size_config(Some(64 * 1024 * 1024), None);
            Ok(grpc.unary(sink, request).await)
        })
    }
}

/// Decodes an export request into its span count only.
#[derive(Clone, Copy, Default)]
struct CountingCodec;

struct SpanCounter;

impl tonic::codec::Decoder for SpanCounter {
    type Item = u64;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<u64>, tonic::Status> {
        let length = bytes::Buf::remaining(src);
        let message = bytes::Buf::copy_to_bytes(src, length);
        count_spans(&message).map(Some).map_err(|error| tonic::Status::invalid_argument(error.to_string()))
    }
}

impl tonic::codec::Codec for CountingCodec {
    type Encode = ExportTraceServiceResponse;
    type Decode = u64;
    type Encoder = tonic_prost::ProstEncoder<ExportTraceServiceResponse>;
    type Decoder = SpanCounter;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        SpanCounter
    }
}

/// Spans in an encoded `ExportTraceServiceRequest`, counted without decoding it (the
/// collector's own walk, which it also uses to count what it refuses undecoded).
pub fn count_spans(message: &[u8]) -> anyhow::Result<u64> {
    agentrace_collector::count_spans(message).context("not an ExportTraceServiceRequest")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(protocol: Protocol) -> SendPlan {
        SendPlan {
            endpoint: String::new(),
            protocol,
            gzip: false,
            workload: Workload::W1,
            pace: Pace::InFlight(1),
            duration: Duration::ZERO,
            seed: 1,
            pool: 1,
        }
    }

    #[test]
    fn a_request_sent_again_carries_fresh_trace_ids_and_nothing_else_changes() {
        let request = Generator::new(Workload::W1, 1, 0).request(3);
        let pooled = Pooled::new(&plan(Protocol::Grpc), &request, 3).expect("encodes");
        assert!(!pooled.trace_id_offsets.is_empty());
        let again = ExportTraceServiceRequest::decode(pooled.body(1_000_003)).expect("decodes");
        let spans = |request: &ExportTraceServiceRequest| -> Vec<_> {
            request.resource_spans.iter().flat_map(|r| &r.scope_spans).flat_map(|s| s.spans.clone()).collect()
        };
        let (before, after) = (spans(&request), spans(&again));
        assert_eq!(before.len(), after.len());
        for (old, new) in before.iter().zip(&after) {
            assert_eq!(new.trace_id[..8], 1_000_003u64.to_be_bytes());
            assert_eq!(new.trace_id[8..], old.trace_id[8..]);
            assert_eq!(
                (&new.span_id, &new.name, &new.attributes),
                (&old.span_id, &old.name, &old.attributes)
            );
        }
    }

    #[test]
    fn spans_are_counted_without_decoding_them() {
        for workload in [Workload::W0, Workload::W1, Workload::W2] {
            let request = Generator::new(workload, 1, 0).request(0);
            assert_eq!(
                count_spans(&request.encode_to_vec()).expect("counts"),
                workload.spans_per_request() as u64
            );
        }
        assert!(count_spans(&[0x0a, 0x05, 0x12]).is_err(), "a length past the end");
    }
}
