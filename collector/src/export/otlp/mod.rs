//! Forwards traces over OTLP/gRPC to the trace endpoint (Tempo, or any OTLP receiver).
//!
//! Requests from the processing stage are merged into batches of up to `batch_spans` spans
//! (or whatever arrived within [`BATCH_WINDOW`]) and sent unchanged. Failures are retried
//! only when the OTLP spec calls them retryable, after the delay the server asked for
//! (RetryInfo) or an exponential backoff with jitter, for at most `max_retry`. A batch the
//! endpoint says is too large is split in halves and each half sent on its own. Whatever is
//! given up is counted in `agentrace_spans_dropped_total{reason}`.

use std::sync::Arc;
use std::time::Duration;

use agentrace_semconv::metric;
use bytes::Bytes;
use prost::Message;
use rand::Rng;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};
use tonic::Code;
use tonic_types::StatusExt;

use crate::config::{ExportArgs, ExportProtocol};
use crate::export::queue::DiskQueue;
use crate::export::Forward;
use crate::metrics::Registry;
use crate::otlp::raw::{ExportTraceServiceRequest, ResourceSpans, ScopeSpans};
use crate::otlp::ExportTraceServiceResponse;
use crate::receive::QueueGauge;
use crate::unix_now;

/// How long a partial batch waits for more requests before it is sent.
const BATCH_WINDOW: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How sending a batch whole ended.
enum Attempt {
    /// Exported, or given up on (and counted).
    Done,
    /// The endpoint says it is too large: here it is back, to split.
    TooLarge(Vec<ResourceSpans>),
    /// The hard stop came first.
    Interrupted,
}

/// What to do after a failed attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Try again, after the server's requested delay if it gave one.
    Retry(Option<Duration>),
    /// The message was over the server's size limit: send it in smaller pieces.
    Split,
    /// Give up: retrying cannot help.
    GiveUp,
}

/// Whether a status says the message was over the server's size limit (grpc-go: "received
/// message larger than max", tonic: "decoded message length too large").
fn says_too_large(status: &tonic::Status) -> bool {
    let message = status.message().to_ascii_lowercase();
    ["too large", "larger than", "exceeds"].iter().any(|phrase| message.contains(phrase))
}

/// The OTLP/gRPC retry rules: these codes are transient; RESOURCE_EXHAUSTED only when the
/// server says when to come back (RetryInfo), since otherwise it means "never". A size
/// refusal is neither: the batch is split.
pub fn verdict(status: &tonic::Status) -> Verdict {
    let retry_after = status.get_details_retry_info().and_then(|info| info.retry_delay);
    if retry_after.is_none()
        && matches!(status.code(), Code::ResourceExhausted | Code::OutOfRange | Code::InvalidArgument)
        && says_too_large(status)
    {
        return Verdict::Split;
    }
    match status.code() {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss => Verdict::Retry(retry_after),
        Code::ResourceExhausted if retry_after.is_some() => Verdict::Retry(retry_after),
        _ => Verdict::GiveUp,
    }
}

/// Exponential backoff with jitter: attempt 0 waits about `first`, doubling to MAX_BACKOFF,
/// each delay drawn from [0.5, 1.5) of the nominal value.
pub fn backoff(first: Duration, attempt: u32, jitter: f64) -> Duration {
    let nominal = first.saturating_mul(2u32.saturating_pow(attempt.min(16))).min(MAX_BACKOFF);
    nominal.mul_f64(0.5 + jitter.clamp(0.0, 1.0))
}

/// Splits a batch into two of about half the spans each, keeping each span under its own
/// resource and scope.
pub fn split_in_half(batch: Vec<ResourceSpans>, spans: usize) -> [(Vec<ResourceSpans>, usize); 2] {
    let wanted = spans / 2;
    let mut first: Vec<ResourceSpans> = Vec::new();
    let mut second: Vec<ResourceSpans> = Vec::new();
    let mut taken = 0;
    for mut resource_spans in batch {
        if taken >= wanted {
            second.push(resource_spans);
            continue;
        }
        let scopes = std::mem::take(&mut resource_spans.scope_spans);
        let mut kept = ResourceSpans { scope_spans: Vec::new(), ..resource_spans.clone() };
        let mut moved = ResourceSpans { scope_spans: Vec::new(), ..resource_spans };
        for mut scope_spans in scopes {
            let room = wanted - taken;
            if room == 0 {
                moved.scope_spans.push(scope_spans);
                continue;
            }
            if scope_spans.spans.len() <= room {
                taken += scope_spans.spans.len();
                kept.scope_spans.push(scope_spans);
                continue;
            }
            let rest = scope_spans.spans.split_off(room);
            taken += room;
            moved.scope_spans.push(ScopeSpans { spans: rest, ..scope_spans.clone() });
            kept.scope_spans.push(scope_spans);
        }
        if !kept.scope_spans.is_empty() {
            first.push(kept);
        }
        if !moved.scope_spans.is_empty() {
            second.push(moved);
        }
    }
    [(first, taken), (second, spans - taken)]
}

type HttpClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    http_body_util::Full<bytes::Bytes>,
>;

/// How batches reach the endpoint.
enum Transport {
    Grpc(tonic::client::Grpc<Channel>),
    /// OTLP/HTTP with protobuf bodies, to the full `/v1/traces` URL.
    Http {
        client: Box<HttpClient>,
        url: http::Uri,
    },
}

/// The endpoint's answer to one attempt.
enum Answer {
    Accepted { rejected: usize },
    Failed { verdict: Verdict, detail: String },
}

/// The OTLP/HTTP retry rules: 429, 502, 503 and 504 are transient (after Retry-After, in
/// seconds or as an HTTP date, when given); 413 means too large; anything else is final.
pub fn http_verdict(status: u16, retry_after: Option<&str>) -> Verdict {
    match status {
        429 | 502 | 503 | 504 => Verdict::Retry(retry_after.and_then(parse_retry_after)),
        413 => Verdict::Split,
        _ => Verdict::GiveUp,
    }
}

fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(std::time::SystemTime::now()).unwrap_or(Duration::ZERO))
}

pub struct OtlpExporter {
    args: ExportArgs,
    registry: Arc<Registry>,
    gauge: Arc<QueueGauge>,
    transport: Transport,
    /// Cancelled when the shutdown deadline passes: retries stop and what is left is counted.
    hard_stop: CancellationToken,
}

#[derive(Debug, thiserror::Error)]
pub enum ExporterError {
    #[error(transparent)]
    Grpc(#[from] tonic::transport::Error),
    #[error("invalid endpoint URL: {0}")]
    Url(#[from] http::uri::InvalidUri),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

impl OtlpExporter {
    pub fn new(
        args: ExportArgs,
        registry: Arc<Registry>,
        gauge: Arc<QueueGauge>,
        hard_stop: CancellationToken,
    ) -> Result<Self, ExporterError> {
        let transport = match args.protocol {
            ExportProtocol::Grpc => {
                let mut endpoint =
                    Endpoint::from_shared(args.endpoint.clone())?.connect_timeout(CONNECT_TIMEOUT);
                if let Some(tls) = &args.tls {
                    endpoint = endpoint.tls_config(tls.grpc())?;
                }
                Transport::Grpc(tonic::client::Grpc::new(endpoint.connect_lazy()))
            }
            ExportProtocol::HttpProtobuf => {
                // TLS (when the URL is https) with the configured roots and client certificate.
                let tls = match &args.tls {
                    Some(tls) => tls.rustls()?,
                    None => crate::tls::plain_http_only()?,
                };
                let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
                connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
                connector.enforce_http(false);
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(tls)
                    .https_or_http()
                    .enable_http1()
                    .enable_http2()
                    .wrap_connector(connector);
                let client =
                    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                        .build(connector);
                Transport::Http { client: Box::new(client), url: args.endpoint.parse()? }
            }
        };
        Ok(Self { args, registry, gauge, transport, hard_stop })
    }

    /// One attempt at sending `request`, an encoded `ExportTraceServiceRequest`.
    async fn attempt(&mut self, request: Bytes) -> Answer {
        match &mut self.transport {
            Transport::Grpc(client) => {
                match tokio::time::timeout(self.args.timeout, export_grpc(client, request)).await {
                    Ok(Ok(response)) => Answer::Accepted { rejected: rejected_spans(response.into_inner()) },
                    Ok(Err(status)) => Answer::Failed {
                        verdict: verdict(&status),
                        detail: format!("{:?}: {}", status.code(), status.message()),
                    },
                    Err(_elapsed) => {
                        Answer::Failed { verdict: Verdict::Retry(None), detail: "timed out".to_owned() }
                    }
                }
            }
            Transport::Http { client, url } => {
                let body = http_body_util::Full::new(request);
                let post = http::Request::post(url.clone())
                    .header(http::header::CONTENT_TYPE, "application/x-protobuf")
                    .body(body);
                let Ok(post) = post else {
                    return Answer::Failed {
                        verdict: Verdict::GiveUp,
                        detail: "cannot build the request".to_owned(),
                    };
                };
                let exchange = async {
                    let response = client.request(post).await.map_err(|error| error.to_string())?;
                    let (parts, body) = response.into_parts();
                    let body =
                        http_body_util::BodyExt::collect(body).await.map_err(|error| error.to_string())?;
                    Ok::<_, String>((parts, body.to_bytes()))
                };
                let (parts, body) = match tokio::time::timeout(self.args.timeout, exchange).await {
                    Ok(Ok(answer)) => answer,
                    // Connection refused, reset, timed out: the endpoint may come back.
                    Ok(Err(detail)) => return Answer::Failed { verdict: Verdict::Retry(None), detail },
                    Err(_elapsed) => {
                        return Answer::Failed {
                            verdict: Verdict::Retry(None),
                            detail: "timed out".to_owned(),
                        }
                    }
                };
                if parts.status.is_success() {
                    let rejected =
                        ExportTraceServiceResponse::decode(body.as_ref()).map_or(0, rejected_spans);
                    return Answer::Accepted { rejected };
                }
                let retry_after =
                    parts.headers.get(http::header::RETRY_AFTER).and_then(|value| value.to_str().ok());
                Answer::Failed {
                    verdict: http_verdict(parts.status.as_u16(), retry_after),
                    detail: format!("HTTP {}", parts.status),
                }
            }
        }
    }

    /// Sends until the input closes and the last batch is out (or given up).
    pub async fn run(mut self, mut input: mpsc::Receiver<Forward>) {
        while let Some(first) = input.recv().await {
            self.gauge.popped();
            let mut spans = first.spans;
            let mut resource_spans = first.request.resource_spans;
            let window_end = Instant::now() + BATCH_WINDOW;
            while spans < self.args.batch_spans {
                match tokio::time::timeout_at(window_end, input.recv()).await {
                    Ok(Some(next)) => {
                        self.gauge.popped();
                        spans += next.spans;
                        resource_spans.extend(next.request.resource_spans);
                    }
                    Ok(None) | Err(_) => break,
                }
            }
            self.send(resource_spans, spans).await;
        }
    }

    /// Sends batches from the persistent queue, oldest first, deleting what was sent (or given
    /// up on), until `draining` is cancelled and the queue is empty, or the hard stop. Whatever
    /// is left stays on disk for the next start.
    pub async fn run_from_disk(mut self, queue: Arc<DiskQueue>, draining: CancellationToken) {
        loop {
            let reader = queue.clone();
            let batch_spans = self.args.batch_spans;
            let stored = match tokio::task::spawn_blocking(move || reader.oldest(batch_spans)).await {
                Ok(Ok(stored)) => stored,
                Ok(Err(error)) => {
                    tracing::warn!(%error, "cannot read the persistent queue");
                    Vec::new()
                }
                Err(error) => {
                    tracing::warn!(%error, "persistent queue reader failed");
                    Vec::new()
                }
            };
            if stored.is_empty() {
                if draining.is_cancelled() || self.hard_stop.is_cancelled() {
                    return;
                }
                tokio::select! {
                    _ = queue.written.notified() => {}
                    _ = tokio::time::sleep(BATCH_WINDOW) => {}
                    _ = draining.cancelled() => {}
                    _ = self.hard_stop.cancelled() => return,
                }
                continue;
            }
            let keys: Vec<u64> = stored.iter().map(|stored| stored.key).collect();
            let spans = stored.iter().map(|stored| stored.spans).sum();
            let resource_spans =
                stored.into_iter().flat_map(|stored| stored.request.resource_spans).collect();
            if !self.send(resource_spans, spans).await {
                return;
            }
            let writer = queue.clone();
            match tokio::task::spawn_blocking(move || writer.remove(&keys)).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::warn!(%error, "cannot delete sent requests from the persistent queue")
                }
                Err(error) => tracing::warn!(%error, "persistent queue writer failed"),
            }
        }
    }

    /// Sends one batch, splitting it while the endpoint says it is too large. Returns false
    /// when the hard stop interrupted it.
    async fn send(&mut self, resource_spans: Vec<ResourceSpans>, spans: usize) -> bool {
        let mut pending = vec![(resource_spans, spans)];
        while let Some((batch, count)) = pending.pop() {
            let too_large = match self.send_whole(batch, count).await {
                Attempt::Done => continue,
                Attempt::Interrupted => return false,
                Attempt::TooLarge(batch) => batch,
            };
            if count < 2 {
                tracing::warn!(endpoint = %self.args.endpoint, "a single span is over the trace endpoint's size limit, dropping it");
                self.count(metric::SELF_SPANS_DROPPED_TOTAL, &["too_large"], count);
                continue;
            }
            tracing::debug!(spans = count, "trace endpoint says the batch is too large, splitting it");
            let [first, second] = split_in_half(too_large, count);
            pending.push(second);
            pending.push(first);
        }
        true
    }

    /// Sends a batch whole, with retries; gives the batch back when it is too large.
    async fn send_whole(&mut self, resource_spans: Vec<ResourceSpans>, spans: usize) -> Attempt {
        let started = Instant::now();
        let mut attempt = 0u32;
        // Encoded once; every retry sends the same bytes.
        let request = ExportTraceServiceRequest { resource_spans };
        let encoded = Bytes::from(request.encode_to_vec());
        loop {
            let wait = match self.attempt(encoded.clone()).await {
                Answer::Accepted { rejected } => {
                    let rejected = rejected.min(spans);
                    self.count(metric::SELF_SPANS_EXPORTED_TOTAL, &[], spans - rejected);
                    if rejected > 0 {
                        tracing::warn!(rejected, endpoint = %self.args.endpoint, "trace endpoint rejected spans");
                        self.count(metric::SELF_SPANS_DROPPED_TOTAL, &["rejected_by_endpoint"], rejected);
                    }
                    return Attempt::Done;
                }
                Answer::Failed { verdict: Verdict::Retry(asked), detail } => {
                    tracing::debug!(%detail, attempt, "otlp export failed, retrying");
                    asked
                }
                Answer::Failed { verdict: Verdict::Split, .. } => {
                    return Attempt::TooLarge(request.resource_spans)
                }
                Answer::Failed { verdict: Verdict::GiveUp, detail } => {
                    tracing::warn!(%detail, spans, "otlp export refused, dropping batch");
                    self.count(metric::SELF_SPANS_DROPPED_TOTAL, &["export_refused"], spans);
                    return Attempt::Done;
                }
            };
            let delay =
                wait.unwrap_or_else(|| backoff(self.args.first_backoff, attempt, rand::rng().random()));
            // On disk, a batch waits for the endpoint as long as the disk budget allows.
            if self.args.persistent.is_none() && started.elapsed() + delay > self.args.max_retry {
                tracing::warn!(spans, endpoint = %self.args.endpoint, "otlp export retries exhausted, dropping batch");
                self.count(metric::SELF_SPANS_DROPPED_TOTAL, &["export_retries_exhausted"], spans);
                return Attempt::Done;
            }
            self.count(metric::SELF_EXPORT_RETRIES_TOTAL, &[], 1);
            attempt += 1;
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.hard_stop.cancelled() => {
                    if self.args.persistent.is_some() {
                        tracing::info!(spans, "shutdown deadline passed, unexported batch stays in the persistent queue");
                    } else {
                        tracing::warn!(spans, "shutdown deadline passed, dropping unexported batch");
                        self.count(metric::SELF_SPANS_DROPPED_TOTAL, &["shutdown"], spans);
                    }
                    return Attempt::Interrupted;
                }
            }
        }
    }

    fn count(&self, name: &'static str, labels: &[&str], value: usize) {
        self.registry.add(name, labels, value as f64, unix_now());
    }
}

/// `TraceService/Export` of an already encoded request (the load generator sends with it too).
pub async fn export_grpc(
    client: &mut tonic::client::Grpc<Channel>,
    request: Bytes,
) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
    client.ready().await.map_err(|error| tonic::Status::unavailable(format!("not ready: {error}")))?;
    let path = http::uri::PathAndQuery::from_static(agentrace_semconv::otlp::GRPC_TRACES_EXPORT_PATH);
    client.unary(tonic::Request::new(request), path, EncodedCodec).await
}

/// Sends bytes that already are an encoded message; decodes the answer with prost.
#[derive(Clone, Copy, Debug, Default)]
struct EncodedCodec;

#[derive(Debug)]
struct EncodedEncoder;

impl tonic::codec::Encoder for EncodedEncoder {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), tonic::Status> {
        bytes::BufMut::put(dst, item);
        Ok(())
    }
}

impl tonic::codec::Codec for EncodedCodec {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = EncodedEncoder;
    type Decoder = tonic_prost::ProstDecoder<ExportTraceServiceResponse>;

    fn encoder(&mut self) -> Self::Encoder {
        EncodedEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstDecoder::default()
    }
}

fn rejected_spans(response: ExportTraceServiceResponse) -> usize {
    response.partial_success.map_or(0, |partial| usize::try_from(partial.rejected_spans).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::ErrorDetails;

    #[test]
    fn retries_follow_the_otlp_rules() {
        let retry_info = |code| {
            tonic::Status::with_error_details(
                code,
                "x",
                ErrorDetails::with_retry_info(Some(Duration::from_secs(3))),
            )
        };
        let cases = [
            (tonic::Status::new(Code::Unavailable, "x"), Verdict::Retry(None)),
            (tonic::Status::new(Code::DeadlineExceeded, "x"), Verdict::Retry(None)),
            (tonic::Status::new(Code::Cancelled, "x"), Verdict::Retry(None)),
            (tonic::Status::new(Code::Aborted, "x"), Verdict::Retry(None)),
            (tonic::Status::new(Code::OutOfRange, "x"), Verdict::Retry(None)),
            (tonic::Status::new(Code::DataLoss, "x"), Verdict::Retry(None)),
            (retry_info(Code::Unavailable), Verdict::Retry(Some(Duration::from_secs(3)))),
            (tonic::Status::new(Code::ResourceExhausted, "x"), Verdict::GiveUp),
            (retry_info(Code::ResourceExhausted), Verdict::Retry(Some(Duration::from_secs(3)))),
            (tonic::Status::new(Code::InvalidArgument, "x"), Verdict::GiveUp),
            (tonic::Status::new(Code::FailedPrecondition, "x"), Verdict::GiveUp),
            (tonic::Status::new(Code::Unauthenticated, "x"), Verdict::GiveUp),
            (tonic::Status::new(Code::PermissionDenied, "x"), Verdict::GiveUp),
            (tonic::Status::new(Code::Unimplemented, "x"), Verdict::GiveUp),
            (tonic::Status::new(Code::Internal, "x"), Verdict::GiveUp),
        ];
        for (status, expected) in cases {
            assert_eq!(verdict(&status), expected, "{:?}", status.code());
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let first = Duration::from_millis(500);
        assert_eq!(backoff(first, 0, 0.5), first);
        assert_eq!(backoff(first, 1, 0.5), first * 2);
        assert_eq!(backoff(first, 0, 0.0), first / 2);
        assert_eq!(backoff(first, 20, 0.5), MAX_BACKOFF);
        assert!(backoff(first, 20, 1.0) <= MAX_BACKOFF.mul_f64(1.5));
    }

    #[test]
    fn size_refusals_split_and_other_refusals_do_not() {
        let grpc_go =
            tonic::Status::new(Code::ResourceExhausted, "grpc: received message larger than max (9 vs. 4)");
        let tonic_server =
            tonic::Status::new(Code::OutOfRange, "Error, decoded message length too large: found 9 bytes");
        assert_eq!(verdict(&grpc_go), Verdict::Split);
        assert_eq!(verdict(&tonic_server), Verdict::Split);
        let quota = tonic::Status::new(Code::ResourceExhausted, "quota exceeded for project");
        assert_eq!(verdict(&quota), Verdict::GiveUp, "'exceeded' is not a size");
    }

    fn batch(shape: &[&[usize]]) -> (Vec<ResourceSpans>, usize) {
        let mut next = 0u8;
        let resource_spans = shape
            .iter()
            .map(|scopes| ResourceSpans {
                scope_spans: scopes
                    .iter()
                    .map(|count| ScopeSpans {
                        spans: (0..*count)
                            .map(|_| {
                                next += 1;
                                let span =
                                    crate::otlp::Span { span_id: vec![next; 8].into(), ..Default::default() };
                                Bytes::from(span.encode_to_vec())
                            })
                            .collect(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect();
        (resource_spans, shape.iter().flat_map(|scopes| scopes.iter()).sum())
    }

    fn ids(batch: &[ResourceSpans]) -> Vec<u8> {
        batch
            .iter()
            .flat_map(|resource_spans| &resource_spans.scope_spans)
            .flat_map(|scope_spans| &scope_spans.spans)
            .map(|span| crate::otlp::Span::decode(span.clone()).expect("a span").span_id[0])
            .collect()
    }

    #[test]
    fn splitting_keeps_every_span_once_under_its_resource_and_scope() {
        for shape in [&[&[4usize][..]][..], &[&[1, 2], &[3]], &[&[5], &[0, 2]], &[&[1], &[1], &[1]]] {
            let (whole, spans) = batch(shape);
            let [(first, first_count), (second, second_count)] = split_in_half(whole, spans);
            assert_eq!(first_count, spans / 2, "{shape:?}");
            assert_eq!(first_count + second_count, spans);
            let mut all = ids(&first);
            assert_eq!(all.len(), first_count);
            all.extend(ids(&second));
            assert_eq!(all, (1..=spans as u8).collect::<Vec<_>>(), "{shape:?}: order and completeness");
        }
    }
}
