//! How an encoded request reaches the trace endpoint: OTLP/gRPC (tonic) or OTLP/HTTP with a
//! protobuf body (hyper), with TLS when the URL is https. One attempt in, the endpoint's answer
//! out; what to do with a failure is `retry.rs`'s call.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use prost::Message;
use tonic::transport::{Channel, Endpoint};

use super::retry::{http_verdict, verdict, Verdict};
use crate::export::args::{ExportConfig, ExportProtocol};
use crate::export::queue::Payload;
use crate::wire::ExportTraceServiceResponse;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub type HttpClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    http_body_util::Full<Bytes>,
>;

/// An HTTP/1 and HTTP/2 client for http:// and https:// URLs with `tls`: the OTLP/HTTP
/// exporters' (traces and logs) and the synthetic probes'.
pub fn http_client(tls: tokio_rustls::rustls::ClientConfig) -> HttpClient {
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
    connector.enforce_http(false);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(connector);
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector)
}

/// [`http_client`] trusting the system's roots (or, where it has none, usable for http://
/// only): the logs exporter's and the probes'.
pub fn system_http_client() -> Result<HttpClient, crate::tls::TlsError> {
    let tls = crate::tls::ClientTls { ca_pem: None, identity: None }
        .rustls()
        .or_else(|_| crate::tls::plain_http_only())?;
    Ok(http_client(tls))
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error(transparent)]
    Grpc(#[from] tonic::transport::Error),
    #[error("invalid endpoint URL: {0}")]
    Url(#[from] http::uri::InvalidUri),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

/// A connection (made lazily) to the trace endpoint.
pub enum Transport {
    Grpc(tonic::client::Grpc<Channel>),
    /// OTLP/HTTP with protobuf bodies, to the full `/v1/traces` URL.
    Http {
        client: Box<HttpClient>,
        url: http::Uri,
    },
}

/// The endpoint's answer to one attempt.
pub enum Answer {
    Accepted { rejected: usize },
    Failed { verdict: Verdict, detail: String },
}

impl Answer {
    fn retry(detail: impl Into<String>) -> Self {
        Self::Failed { verdict: Verdict::Retry(None), detail: detail.into() }
    }
}

impl Transport {
    pub fn new(config: &ExportConfig) -> Result<Self, TransportError> {
        Ok(match config.protocol {
            ExportProtocol::Grpc => {
                let mut endpoint =
                    Endpoint::from_shared(config.endpoint.clone())?.connect_timeout(CONNECT_TIMEOUT);
                if let Some(tls) = &config.tls {
                    endpoint = endpoint.tls_config(tls.grpc())?;
                }
                Self::Grpc(tonic::client::Grpc::new(endpoint.connect_lazy()))
            }
            ExportProtocol::HttpProtobuf => {
                // TLS (when the URL is https) with the configured roots and client certificate.
                let tls = match &config.tls {
                    Some(tls) => tls.rustls()?,
                    None => crate::tls::plain_http_only()?,
                };
                Self::Http { client: Box::new(http_client(tls)), url: config.endpoint.parse()? }
            }
        })
    }

    /// One attempt at sending a batch within `timeout`. Over gRPC the batch is encoded straight
    /// into the connection's buffer; over HTTP into the body.
    pub async fn attempt(&self, payload: &Arc<Payload>, timeout: Duration) -> Answer {
        match self {
            // A clone shares the connection; each batch in flight sends on its own clone.
            Self::Grpc(client) => {
                match tokio::time::timeout(timeout, export_grpc(&mut client.clone(), payload.clone())).await {
                    Ok(Ok(response)) => Answer::Accepted { rejected: rejected_spans(response.into_inner()) },
                    Ok(Err(status)) => Answer::Failed {
                        verdict: verdict(&status),
                        detail: format!("{:?}: {}", status.code(), status.message()),
                    },
                    Err(_elapsed) => Answer::retry("timed out"),
                }
            }
            Self::Http { client, url } => post(client, url, payload.encoded(), timeout).await,
        }
    }
}

async fn post(client: &HttpClient, url: &http::Uri, request: Bytes, timeout: Duration) -> Answer {
    let post = http::Request::post(url.clone())
        .header(http::header::CONTENT_TYPE, "application/x-protobuf")
        .body(http_body_util::Full::new(request));
    let Ok(post) = post else {
        return Answer::Failed { verdict: Verdict::GiveUp, detail: "cannot build the request".to_owned() };
    };
    let exchange = async {
        let response = client.request(post).await.map_err(|error| error.to_string())?;
        let (parts, body) = response.into_parts();
        let body = http_body_util::BodyExt::collect(body).await.map_err(|error| error.to_string())?;
        Ok::<_, String>((parts, body.to_bytes()))
    };
    let (parts, body) = match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(answer)) => answer,
        // Connection refused, reset, timed out: the endpoint may come back.
        Ok(Err(detail)) => return Answer::retry(detail),
        Err(_elapsed) => return Answer::retry("timed out"),
    };
    if parts.status.is_success() {
        let rejected = ExportTraceServiceResponse::decode(body.as_ref()).map_or(0, rejected_spans);
        return Answer::Accepted { rejected };
    }
    let retry_after = parts.headers.get(http::header::RETRY_AFTER).and_then(|value| value.to_str().ok());
    Answer::Failed {
        verdict: http_verdict(parts.status.as_u16(), retry_after),
        detail: format!("HTTP {}", parts.status),
    }
}

/// `TraceService/Export` of a request: a batch, encoded straight into the buffer tonic sends
/// from, or bytes already encoded (the load generator sends with it too).
pub async fn export_grpc<B: Outgoing>(
    client: &mut tonic::client::Grpc<Channel>,
    request: B,
) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
    client.ready().await.map_err(|error| tonic::Status::unavailable(format!("not ready: {error}")))?;
    let path = http::uri::PathAndQuery::from_static(agentrace_semconv::otlp::GRPC_TRACES_EXPORT_PATH);
    client.unary(tonic::Request::new(request), path, EncodedCodec::default()).await
}

/// A request body: bytes that already are an encoded message, or a batch encoded on its way
/// out.
pub trait Outgoing: Send + Sync + 'static {
    fn encoded_len(&self) -> usize;
    fn encode_into(&self, buf: &mut tonic::codec::EncodeBuf<'_>);
}

impl Outgoing for Bytes {
    fn encoded_len(&self) -> usize {
        self.len()
    }

    fn encode_into(&self, buf: &mut tonic::codec::EncodeBuf<'_>) {
        bytes::BufMut::put_slice(buf, self);
    }
}

/// Encoded straight into tonic's buffer: encoding a batch into a buffer of its own first cost
/// a second allocation and copy of every batch.
impl Outgoing for Arc<Payload> {
    fn encoded_len(&self) -> usize {
        Payload::encoded_len(self)
    }

    fn encode_into(&self, buf: &mut tonic::codec::EncodeBuf<'_>) {
        Payload::encode_into(self, buf);
    }
}

/// Sends an [`Outgoing`] body `B` (its whole length reserved first), and decodes the answer `R` with
/// prost. The logs exporter and the load generator send encoded bytes with it too.
#[derive(Debug)]
pub struct EncodedCodec<R = ExportTraceServiceResponse, B = Bytes>(std::marker::PhantomData<fn() -> (R, B)>);

impl<R, B> Default for EncodedCodec<R, B> {
    fn default() -> Self {
        Self(std::marker::PhantomData)
    }
}

#[derive(Debug)]
pub struct OutgoingEncoder<B>(std::marker::PhantomData<fn() -> B>);

impl<B: Outgoing> tonic::codec::Encoder for OutgoingEncoder<B> {
    type Item = B;
    type Error = tonic::Status;

    fn encode(&mut self, item: B, dst: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.reserve(item.encoded_len());
        item.encode_into(dst);
        Ok(())
    }
}

impl<R: prost::Message + Default + Send + 'static, B: Outgoing> tonic::codec::Codec for EncodedCodec<R, B> {
    type Encode = B;
    type Decode = R;
    type Encoder = OutgoingEncoder<B>;
    type Decoder = tonic_prost::ProstDecoder<R>;

    fn encoder(&mut self) -> Self::Encoder {
        OutgoingEncoder(std::marker::PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstDecoder::default()
    }
}

fn rejected_spans(response: ExportTraceServiceResponse) -> usize {
    response.partial_success.map_or(0, |partial| usize::try_from(partial.rejected_spans).unwrap_or(0))
}
