//! The connection layer under all three listeners (OTLP/gRPC, OTLP/HTTP and the metrics
//! endpoint): the accept loop, TLS, HTTP/1 and HTTP/2 (hyper), and the limits that keep a
//! client from holding the collector's memory or sockets. Requests go on to the listener's
//! service (`receive::grpc`, `receive::http`, `export::prometheus`) with a [`RequestBody`].
//!
//! - **Header read**: an HTTP/1 request head must be whole `header_read` after its first byte;
//!   a TLS handshake must finish within the same.
//! - **Idle**: a connection with no request in flight for `idle` is closed.
//! - **Body**: request bytes are reserved against one budget as they arrive, and a body must
//!   keep up a minimum rate (`body.rs`).
//! - **HTTP/2**: at most `max_streams` requests at once per connection; a keep-alive ping every
//!   `keepalive_interval`, unanswered for `keepalive_timeout`, closes the connection.
//! - **Connections**: at most `max_connections` per listener; at the cap the oldest idle one is
//!   closed for the newcomer, and with none idle the newcomer is (`connection.rs`).
//!
//! Every connection the collector closes is counted in
//! `agentrace_connections_closed_total{listener, reason}`.

mod args;
pub mod body;
mod connection;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::rustls;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

pub use self::args::{raise_open_file_limit, Args, ConnectionConfig, Limits};
pub use self::body::{BodyError, BodyLimits, Budget};
pub(crate) use self::connection::Table;
use self::connection::{CloseReason, Connection, Watched};
use crate::events::ConnectionClosed;
use crate::metrics::Registry;

/// The `listener` label of each listening socket.
pub const OTLP_GRPC: &str = "otlp_grpc";
pub const OTLP_HTTP: &str = "otlp_http";
pub const METRICS: &str = "metrics";

/// A request's body as the services see it: metered against the budget and the rate floor.
pub type RequestBody = body::Metered<Incoming>;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a listener serves: a service of metered requests, cloned for each connection.
pub trait Served<B>:
    tower::Service<
        http::Request<RequestBody>,
        Response = http::Response<B>,
        Error = Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + 'static
{
}

impl<S, B> Served<B> for S where
    S: tower::Service<
            http::Request<RequestBody>,
            Response = http::Response<B>,
            Error = Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static
{
}

/// What a listener answers with: any body of bytes that hyper can send.
pub trait Answer: http_body::Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static {}

impl<B> Answer for B where B: http_body::Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static {}

/// How long open connections get to finish their requests at shutdown.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(5);
/// How long a connection closed for a limit gets to send the answer to its request.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// A failed accept (out of file descriptors) is retried after this, not in a spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// Connections the kernel completes and holds for the accept loop (capped by
/// `net.core.somaxconn`). The runtime's default of 128 is too few for a burst from many
/// clients: past it the kernel drops handshakes, and with SYN cookies a client that sends
/// nothing first believes it is connected while the collector never sees it.
const LISTEN_BACKLOG: u32 = 4096;

/// A listening socket on `address`, with [`LISTEN_BACKLOG`].
pub fn bind(address: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket =
        if address.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

/// One listening socket and what its connections are held to.
pub struct Listener {
    /// `otlp_grpc`, `otlp_http` or `metrics`: the `listener` label.
    pub name: &'static str,
    pub socket: TcpListener,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub limits: Limits,
    pub bodies: BodyLimits,
    /// Read gRPC length prefixes to reserve a message's bytes at once.
    pub grpc: bool,
    pub registry: Arc<Registry>,
}

/// Serves `service` on `listener` until `shutdown` resolves, then lets open connections finish
/// their requests for up to [`SHUTDOWN_DRAIN`].
pub async fn serve<S, B>(
    listener: Listener,
    service: S,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()>
where
    S: Served<B>,
    B: Answer,
{
    let listener = Arc::new(listener);
    let table = Arc::new(Table::new(listener.limits.max_connections));
    let stop = CancellationToken::new();
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.socket.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        tracing::debug!(%error, listener = listener.name, "accept failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                };
                match table.admit() {
                    Ok(connection) => {
                        let task = handle(listener.clone(), stream, connection, service.clone(), stop.clone());
                        let table = table.clone();
                        connections.spawn(async move {
                            let connection = task.await;
                            table.remove(&connection);
                        });
                    }
                    Err(reason) => listener.closed(reason),
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = &mut shutdown => break,
        }
    }
    stop.cancel();
    let _ = tokio::time::timeout(SHUTDOWN_DRAIN, async { while connections.join_next().await.is_some() {} })
        .await;
    Ok(())
}

impl Listener {
    fn closed(&self, reason: CloseReason) {
        self.registry.emit(ConnectionClosed { listener: self.name, reason: reason.as_str() });
    }
}

/// One connection from accept to close; returns it for the table to forget.
async fn handle<S, B>(
    listener: Arc<Listener>,
    stream: TcpStream,
    connection: Arc<Connection>,
    service: S,
    stop: CancellationToken,
) -> Arc<Connection>
where
    S: Served<B>,
    B: Answer,
{
    // Without TCP_NODELAY a small answer can wait for the client's delayed ACK (~40 ms).
    let _ = stream.set_nodelay(true);
    let closed = match listener.tls.clone() {
        None => drive(&listener, Watched::new(stream, connection.clone()), &connection, service, &stop).await,
        Some(tls) => {
            let handshake = tokio_rustls::TlsAcceptor::from(tls).accept(stream);
            match tokio::time::timeout(listener.limits.header_read, handshake).await {
                Ok(Ok(stream)) => {
                    let stream = Watched::new(stream, connection.clone());
                    drive(&listener, stream, &connection, service, &stop).await
                }
                Ok(Err(error)) => {
                    tracing::debug!(%error, listener = listener.name, "tls handshake failed");
                    Some(CloseReason::HandshakeFailed)
                }
                Err(_) => Some(CloseReason::HandshakeTimeout),
            }
        }
    };
    if let Some(reason) = closed {
        listener.closed(reason);
    }
    connection
}

/// Serves HTTP on one connection until it ends; returns why the collector closed it, if it did.
async fn drive<IO, S, B>(
    listener: &Listener,
    io: Watched<IO>,
    connection: &Arc<Connection>,
    service: S,
    stop: &CancellationToken,
) -> Option<CloseReason>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Served<B>,
    B: Answer,
{
    let limits = listener.limits;
    let builder = http_builder(&limits);
    let tracked = Tracked {
        inner: service,
        connection: connection.clone(),
        bodies: listener.bodies.clone(),
        grpc: listener.grpc,
    };
    let served = builder.serve_connection(TokioIo::new(io), tracked);
    let mut served = std::pin::pin!(served);
    let mut ticks =
        tokio::time::interval((limits.header_read.min(limits.idle) / 4).max(Duration::from_millis(10)));
    let mut draining: Option<Pin<Box<tokio::time::Sleep>>> = None;
    loop {
        tokio::select! {
            ended = served.as_mut() => {
                let keepalive = ended.err().is_some_and(|error| keepalive_timed_out(error.as_ref()));
                return connection.reason().or(keepalive.then_some(CloseReason::KeepaliveTimeout));
            }
            _ = ticks.tick() => {
                if let Some(reason) = connection.overdue(limits.header_read, limits.idle) {
                    connection.close(reason);
                }
            }
            () = connection.closing().cancelled(), if draining.is_none() => {
                if connection.is_idle() {
                    return connection.reason();
                }
                served.as_mut().graceful_shutdown();
                draining = Some(Box::pin(tokio::time::sleep(CLOSE_GRACE)));
            }
            () = stop.cancelled(), if draining.is_none() => {
                served.as_mut().graceful_shutdown();
                draining = Some(Box::pin(tokio::time::sleep(SHUTDOWN_DRAIN)));
            }
            () = async { draining.as_mut().expect("guarded").await }, if draining.is_some() => {
                return connection.reason();
            }
        }
    }
}

/// HTTP/1 and HTTP/2 as the limits say. HTTP/1 request heads are timed by the connection
/// (from their first byte, `connection.rs`), not by hyper, whose timer would also run while
/// a keep-alive connection waits for its next request.
fn http_builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(None);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_streams)
        .keep_alive_interval(Some(limits.keepalive_interval))
        .keep_alive_timeout(limits.keepalive_timeout);
    builder
}

/// hyper reports an unanswered HTTP/2 ping with a private error type; its text is the only
/// thing that tells it apart.
fn keepalive_timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if error.to_string() == "keep-alive timed out" {
            return true;
        }
        current = error.source();
    }
    false
}

/// The listener's service, told when each request begins and ends, its body metered.
#[derive(Clone)]
struct Tracked<S> {
    inner: S,
    connection: Arc<Connection>,
    bodies: BodyLimits,
    grpc: bool,
}

impl<S, B> hyper::service::Service<http::Request<Incoming>> for Tracked<S>
where
    // The response type names `B` here, which the trait alone would not.
    S: tower::Service<http::Request<RequestBody>, Response = http::Response<B>> + Served<B>,
{
    type Response = http::Response<B>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<http::Response<B>, Infallible>> + Send>>;

    fn call(&self, request: http::Request<Incoming>) -> Self::Future {
        let in_flight = self.connection.begin();
        let (connection, bodies, grpc) = (self.connection.clone(), self.bodies.clone(), self.grpc);
        let request = request.map(|body| body::Metered::new(body, bodies, connection, grpc));
        let answered = self.inner.clone().oneshot(request);
        Box::pin(async move {
            let response = answered.await;
            drop(in_flight);
            response
        })
    }
}
