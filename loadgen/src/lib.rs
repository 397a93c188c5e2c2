//! A load generator for OTLP trace receivers, and a sink that counts what arrives.
//!
//! `send` runs a fixed-seed workload (`workload.rs`) over OTLP/gRPC or OTLP/HTTP (protobuf or
//! JSON, gzip optional), either at a fixed request rate or as a closed loop with N requests in
//! flight, and reports sent, acknowledged and refused counts and latency percentiles. `sink`
//! accepts OTLP/gRPC and counts spans, for end-to-end accounting.

pub mod workload;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
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
    Grpc(TraceServiceClient<tonic::transport::Channel>),
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
                let client = TraceServiceClient::new(channel);
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

    async fn send(&mut self, request: ExportTraceServiceRequest) -> Outcome {
        match self {
            Self::Grpc(client) => match client.export(request).await {
                Ok(_) => Outcome::Acknowledged,
                Err(status)
                    if matches!(status.code(), tonic::Code::Unavailable | tonic::Code::ResourceExhausted) =>
                {
                    Outcome::Refused
                }
                Err(_) => Outcome::Failed,
            },
            Self::Http { client, url, json, gzip } => {
                let (content_type, mut body) = if *json {
                    ("application/json", serde_json::to_vec(&request).unwrap_or_default())
                } else {
                    ("application/x-protobuf", request.encode_to_vec())
                };
                let mut builder =
                    http::Request::post(url.clone()).header(http::header::CONTENT_TYPE, content_type);
                if *gzip {
                    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                    if std::io::Write::write_all(&mut encoder, &body).is_ok() {
                        body = encoder.finish().unwrap_or_default();
                    }
                    builder = builder.header(http::header::CONTENT_ENCODING, "gzip");
                }
                let Ok(post) = builder.body(http_body_util::Full::new(Bytes::from(body))) else {
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

#[derive(Default)]
struct Tally {
    requests_sent: AtomicU64,
    spans_acknowledged: AtomicU64,
    requests_refused: AtomicU64,
    requests_failed: AtomicU64,
    latencies: Mutex<Vec<Duration>>,
}

fn unix_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_nanos() as u64)
}

/// Runs a plan to completion.
pub async fn send(plan: SendPlan) -> anyhow::Result<Report> {
    let tally = Arc::new(Tally::default());
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + plan.duration;
    let spans_per_request = plan.workload.spans_per_request() as u64;
    let mut workers = tokio::task::JoinSet::new();
    let one = move |mut client: Client, sequence: u64, tally: Arc<Tally>, plan: SendPlan| async move {
        let request =
            Generator::new(plan.workload, plan.seed.wrapping_add(sequence), unix_nanos()).request(sequence);
        tally.requests_sent.fetch_add(1, Ordering::Relaxed);
        let sent_at = Instant::now();
        let outcome = client.send(request).await;
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
                let (plan, tally, next) = (plan.clone(), tally.clone(), next.clone());
                let mut client = Client::connect(&plan).await?;
                workers.spawn(async move {
                    while Instant::now() < deadline {
                        let sequence = next.fetch_add(1, Ordering::Relaxed);
                        client = one(client, sequence, tally.clone(), plan.clone()).await;
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
                let request = one(client.clone(), sequence, tally.clone(), plan.clone());
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
        acknowledged_spans_per_sec: spans_acknowledged as f64 / elapsed.max(1e-9),
        latency_ms_p50: percentile(0.50),
        latency_ms_p90: percentile(0.90),
        latency_ms_p99: percentile(0.99),
        latency_ms_max: percentile(1.0),
    })
}

/// An OTLP/gRPC endpoint that acknowledges everything and counts spans.
#[derive(Clone, Debug, Default)]
pub struct CountingSink {
    pub spans: Arc<AtomicU64>,
    pub requests: Arc<AtomicU64>,
}

#[tonic::async_trait]
impl TraceService for CountingSink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans: usize = request
            .get_ref()
            .resource_spans
            .iter()
            .flat_map(|resource| &resource.scope_spans)
            .map(|scope| scope.spans.len())
            .sum();
        self.spans.fetch_add(spans as u64, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl CountingSink {
    /// Serves on `listener` until `shutdown` resolves.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), tonic::transport::Error> {
        tonic::transport::Server::builder()
            .add_service(
                TraceServiceServer::new(self.clone())
                    .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
                    .max_decoding_message_size(64 * 1024 * 1024),
            )
            .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), shutdown)
            .await
    }
}
