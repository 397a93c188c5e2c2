//! Clients that hold connections instead of sending spans: bodies that stall after most of
//! their bytes (HTTP/1 and gRPC streams), request heads sent a byte at a time, connections
//! opened and left idle, HTTP/2 pings left unanswered. The collector stays under its memory
//! limit, closes each such connection and counts why, keeps serving legitimate clients, and
//! `/metrics` stays reachable throughout. A call whose body never starts is refused on its own,
//! and its connection serves on.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::StreamBody;
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::common::{agent_trace, metric_value, request, CollectorProcess};

const MIB: usize = 1 << 20;

/// An HTTP/1 request that declares 16 MiB, sends 15 MiB and then nothing, holding the socket
/// for `hold`. Returns whether the collector took all 15 MiB before answering or closing.
async fn stalled_http_body(address: SocketAddr, hold: Duration) -> bool {
    let Ok(mut stream) = TcpStream::connect(address).await else { return false };
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nhost: collector\r\ncontent-type: application/x-protobuf\r\ncontent-length: {}\r\n\r\n",
        16 * MIB
    );
    if stream.write_all(head.as_bytes()).await.is_err() {
        return false;
    }
    let chunk = vec![0x0a; MIB];
    for _ in 0..15 {
        if stream.write_all(&chunk).await.is_err() {
            return false;
        }
    }
    let mut answer = [0u8; 256];
    let _ = tokio::time::timeout(hold, stream.read(&mut answer)).await;
    true
}

/// `streams` gRPC calls on one HTTP/2 connection, each declaring a 15 MiB message and sending
/// all but its last byte, then holding for `hold`.
async fn stalled_grpc_streams(address: SocketAddr, streams: usize, hold: Duration) {
    let Ok(stream) = TcpStream::connect(address).await else { return };
    let Ok((sender, connection)) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await
    else {
        return;
    };
    tokio::spawn(connection);
    let mut bodies = Vec::new();
    for _ in 0..streams {
        let (frames, body) = mpsc::channel::<Result<Frame<Bytes>, std::convert::Infallible>>(4);
        let request = http::Request::post(format!(
            "http://{address}/opentelemetry.proto.collector.trace.v1.TraceService/Export"
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(StreamBody::new(ReceiverStream::new(body)))
        .expect("request");
        let mut sender = sender.clone();
        tokio::spawn(async move {
            let _ = sender.send_request(request).await;
        });
        let length = (15 * MIB) as u32;
        let mut prefix = vec![0u8];
        prefix.extend_from_slice(&length.to_be_bytes());
        let _ = frames.send(Ok(Frame::data(Bytes::from(prefix)))).await;
        bodies.push(frames);
    }
    let chunk = Bytes::from(vec![0x0a; MIB]);
    for frames in &bodies {
        for _ in 0..14 {
            if frames.send(Ok(Frame::data(chunk.clone()))).await.is_err() {
                break;
            }
        }
    }
    tokio::time::sleep(hold).await;
}

/// Sends `count` small requests one after another, each resent after Retry-After while it is
/// refused; returns the refusals seen and the longest wait for an acknowledgement.
async fn legitimate_client(address: SocketAddr, count: u8) -> (u32, Duration) {
    let client = reqwest::Client::new();
    let (mut refusals, mut longest) = (0, Duration::ZERO);
    for n in 0..count {
        let body = request(vec![agent_trace("legitimate", [0xe0 + n % 16; 16])]).encode_to_vec();
        let started = Instant::now();
        loop {
            // A collector that never takes the request fails the test instead of hanging it.
            assert!(started.elapsed() < Duration::from_secs(60), "legitimate request refused for 60 s");
            let sent = client
                .post(format!("http://{address}/v1/traces"))
                .header("content-type", "application/x-protobuf")
                .body(body.clone())
                .timeout(Duration::from_secs(10))
                .send()
                .await;
            match sent.map(|response| response.status().as_u16()) {
                Ok(200) => break,
                Ok(503) | Err(_) => {
                    refusals += 1;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Ok(other) => panic!("legitimate request answered {other}"),
            }
        }
        longest = longest.max(started.elapsed());
    }
    (refusals, longest)
}

const LIMIT: u64 = 256 * MIB as u64;
/// What the resident set may reach beyond the limit: none.
const MARGIN: u64 = 0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_cannot_take_memory_past_the_limit_and_others_are_served() {
    let _turn = crate::common::heavy().await;
    let collector = CollectorProcess::spawn(&["--memory-limit", "256MiB", "--body-timeout-secs", "2"]);
    let hold = Duration::from_secs(8);
    let started = Instant::now();
    let mut attack = tokio::task::JoinSet::new();
    for _ in 0..40 {
        attack.spawn(stalled_http_body(collector.http, hold));
    }
    for _ in 0..2 {
        let grpc = collector.grpc;
        attack.spawn(async move {
            stalled_grpc_streams(grpc, 16, hold).await;
            false
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (refusals, longest) = legitimate_client(collector.http, 10).await;
    let scrape = tokio::time::timeout(Duration::from_secs(5), collector.scrape()).await;
    let mut fully_sent = 0;
    while let Some(sent) = attack.join_next().await {
        fully_sent += u32::from(sent.expect("attacker"));
    }
    let peak = collector.peak_rss_bytes();
    let metrics = collector.scrape().await;
    eprintln!(
        "slow bodies: peak RSS {:.1} MiB of {} MiB; {fully_sent} of 40 HTTP bodies sent whole; legitimate client: 10 acknowledged, {refusals} refusals, longest {:.2} s; attack {:.1} s",
        peak as f64 / MIB as f64,
        LIMIT / MIB as u64,
        longest.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    assert!(scrape.is_ok(), "/metrics answered during the attack");
    assert!(peak < LIMIT + MARGIN, "peak RSS {peak} over the limit");
    let value = |series: &str| metric_value(&metrics, series).unwrap_or(0.0);
    assert_eq!(value("agentrace_spans_received_total{transport=\"http\"}"), 40.0, "10 × 4 spans: {metrics}");
    assert!(value("agentrace_requests_refused_total{transport=\"http\",reason=\"inflight_bytes\"}") > 0.0);
    let closed = value("agentrace_connections_closed_total{listener=\"otlp_http\",reason=\"body_timeout\"}")
        + value("agentrace_connections_closed_total{listener=\"otlp_grpc\",reason=\"body_timeout\"}");
    assert!(closed > 0.0, "stalled bodies closed: {metrics}");
    assert_eq!(value("agentrace_inflight_request_bytes"), 0.0, "every reservation released");
}

/// A request head sent a byte at a time, every `every`, until the collector closes the socket
/// or `give_up` passes; returns whether the collector closed it.
async fn slowloris(address: SocketAddr, every: Duration, give_up: Duration) -> bool {
    let Ok(mut stream) = TcpStream::connect(address).await else { return true };
    let head = b"POST /v1/traces HTTP/1.1\r\nhost: collector\r\ncontent-type: application/x-protobuf\r\n";
    let deadline = Instant::now() + give_up;
    for byte in head.iter().cycle() {
        if Instant::now() > deadline {
            return false;
        }
        if stream.write_all(&[*byte]).await.is_err() {
            return true;
        }
        let mut answer = [0u8; 64];
        if let Ok(Ok(0) | Err(_)) = tokio::time::timeout(every, stream.read(&mut answer)).await {
            return true;
        }
    }
    false
}

/// A connection that sends nothing; returns whether the collector closed it before `give_up`.
async fn silent(address: SocketAddr, give_up: Duration) -> bool {
    let Ok(mut stream) = TcpStream::connect(address).await else { return true };
    let mut answer = [0u8; 64];
    loop {
        match tokio::time::timeout(give_up, stream.read(&mut answer)).await {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_heads_and_idle_sockets_are_closed_and_metrics_stays_reachable() {
    let _turn = crate::common::heavy().await;
    // 256 open files: 16 connections per OTLP listener by default, 64 for /metrics.
    let collector = CollectorProcess::spawn_with_open_files(
        &["--header-read-timeout-secs", "1", "--idle-timeout-secs", "2"],
        256,
    );
    // Time for the collector to close all 600: on a loaded 2-core machine the last silent gRPC
    // sockets, accepted as others are evicted, were once still open at 8 s.
    let give_up = Duration::from_secs(20);
    let mut attack = tokio::task::JoinSet::new();
    for _ in 0..300 {
        attack.spawn(slowloris(collector.http, Duration::from_millis(200), give_up));
        attack.spawn(silent(collector.grpc, give_up));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut scrape_times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let page = tokio::time::timeout(Duration::from_secs(2), collector.scrape()).await;
        assert!(page.is_ok(), "/metrics answers within 2 s while the OTLP ports are held");
        scrape_times.push(started.elapsed().as_secs_f64());
    }
    let (refusals, longest) = legitimate_client(collector.http, 3).await;
    let mut closed_by_collector = 0;
    while let Some(closed) = attack.join_next().await {
        closed_by_collector += u32::from(closed.expect("attacker"));
    }
    let metrics = collector.scrape().await;
    let closed = |listener: &str, reason: &str| {
        let series =
            format!("agentrace_connections_closed_total{{listener=\"{listener}\",reason=\"{reason}\"}}");
        metric_value(&metrics, &series).unwrap_or(0.0)
    };
    eprintln!(
        "held sockets: {closed_by_collector} of 600 closed by the collector; scrapes {scrape_times:.3?} s; legitimate client: 3 acknowledged, {refusals} refusals, longest {:.2} s; otlp_http: header_timeout {}, evicted {}, over_capacity {}; otlp_grpc: idle_timeout {}, evicted {}, over_capacity {}",
        longest.as_secs_f64(),
        closed("otlp_http", "header_timeout"),
        closed("otlp_http", "evicted"),
        closed("otlp_http", "over_capacity"),
        closed("otlp_grpc", "idle_timeout"),
        closed("otlp_grpc", "evicted"),
        closed("otlp_grpc", "over_capacity"),
    );
    assert_eq!(closed_by_collector, 600, "every held socket was closed by the collector");
    assert!(closed("otlp_http", "header_timeout") > 0.0, "{metrics}");
    assert!(closed("otlp_http", "evicted") > 0.0);
    assert!(closed("otlp_grpc", "idle_timeout") > 0.0);
    assert!(closed("otlp_grpc", "evicted") > 0.0);
    assert_eq!(metric_value(&metrics, "agentrace_spans_received_total{transport=\"http\"}"), Some(12.0));
}

/// A burst of connections larger than the default listen backlog (128), arriving while the
/// collector cannot accept: each waits in the backlog and is accepted, none is lost to the
/// kernel. A silent client whose handshake the kernel dropped would wait forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_connections_while_the_collector_is_paused_is_accepted_in_full() {
    let _turn = crate::common::heavy().await;
    // The kernel caps a backlog at `net.core.somaxconn` (4096 on current Linux).
    let somaxconn = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|text| text.trim().parse::<u32>().ok())
        .unwrap_or(4096);
    let sockets = 400.min(somaxconn.saturating_sub(16));
    let collector = CollectorProcess::spawn(&["--idle-timeout-secs", "1"]);
    collector.signal("STOP");
    let give_up = Duration::from_secs(20);
    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..sockets {
        burst.spawn(silent(collector.grpc, give_up));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    collector.signal("CONT");
    let mut closed_by_collector = 0;
    while let Some(closed) = burst.join_next().await {
        closed_by_collector += u32::from(closed.expect("client"));
    }
    let metrics = collector.scrape().await;
    let closed = |reason: &str| {
        let series =
            format!("agentrace_connections_closed_total{{listener=\"otlp_grpc\",reason=\"{reason}\"}}");
        metric_value(&metrics, &series).unwrap_or(0.0)
    };
    let (idle, evicted) = (closed("idle_timeout"), closed("evicted"));
    eprintln!("burst of {sockets} while paused: {closed_by_collector} closed by the collector; idle_timeout {idle}, evicted {evicted}");
    assert_eq!(closed_by_collector, sockets, "every socket of the burst was accepted and then closed");
    assert_eq!(idle + evicted, f64::from(sockets), "{metrics}");
}

#[tokio::test]
async fn an_unanswered_http2_ping_closes_the_connection() {
    let collector =
        CollectorProcess::spawn(&["--keepalive-interval-secs", "1", "--keepalive-timeout-secs", "1"]);
    let mut stream = TcpStream::connect(collector.grpc).await.expect("connect");
    // The HTTP/2 preface and an empty SETTINGS frame; then nothing, not even a PING's answer.
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    hello.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    stream.write_all(&hello).await.expect("preface");
    let started = Instant::now();
    let mut buffer = [0u8; 1024];
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        while !matches!(stream.read(&mut buffer).await, Ok(0) | Err(_)) {}
    })
    .await;
    assert!(closed.is_ok(), "closed within 10 s");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(2), "a ping after 1 s, unanswered for 1 s: {waited:?}");
    let metrics = collector.scrape().await;
    let series = "agentrace_connections_closed_total{listener=\"otlp_grpc\",reason=\"keepalive_timeout\"}";
    assert_eq!(metric_value(&metrics, series), Some(1.0), "{metrics}");
}

/// A gRPC call whose body never starts, on a connection that another call then uses: the
/// first is refused retryably on its own when its window ends, and the connection serves on.
#[tokio::test]
async fn a_grpc_call_whose_body_never_starts_is_refused_alone_and_its_connection_serves_on() {
    let collector = CollectorProcess::spawn(&["--body-timeout-secs", "1"]);
    let stream = TcpStream::connect(collector.grpc).await.expect("connect");
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.expect("h2");
    tokio::spawn(connection);
    let call = |body: StreamBody<ReceiverStream<Result<Frame<Bytes>, std::convert::Infallible>>>| {
        let request = http::Request::post("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(body)
            .expect("request");
        let mut sender = sender.clone();
        async move { sender.send_request(request).await.expect("an answer") }
    };
    let grpc_status = |response: &http::Response<hyper::body::Incoming>| {
        response.headers().get("grpc-status").map(|value| value.to_str().unwrap_or_default().to_owned())
    };
    // Headers only: the body's sender is kept open and sends nothing.
    let (silent, body) = mpsc::channel(1);
    let started = Instant::now();
    let refused = call(StreamBody::new(ReceiverStream::new(body))).await;
    let waited = started.elapsed();
    assert_eq!(grpc_status(&refused).as_deref(), Some("14"), "UNAVAILABLE, in the headers: {refused:?}");
    assert!(waited >= Duration::from_secs(1), "refused when its 1 s window ended: {waited:?}");
    drop(silent);
    // The same connection then carries a whole call.
    let message = request(vec![agent_trace("after-a-silent-call", [7; 16])]).encode_to_vec();
    let mut framed = vec![0u8];
    framed.extend_from_slice(&u32::try_from(message.len()).expect("small").to_be_bytes());
    framed.extend_from_slice(&message);
    let (frames, body) = mpsc::channel(1);
    frames.send(Ok(Frame::data(Bytes::from(framed)))).await.expect("send");
    drop(frames);
    let answered = call(StreamBody::new(ReceiverStream::new(body))).await;
    let collected = http_body_util::BodyExt::collect(answered.into_body()).await.expect("body");
    let status = collected.trailers().and_then(|trailers| trailers.get("grpc-status").cloned());
    assert_eq!(status.as_ref().map(|value| value.as_bytes()), Some(&b"0"[..]), "{status:?}");
    let metrics = collector.scrape().await;
    let value = |series: &str| metric_value(&metrics, series).unwrap_or(0.0);
    assert_eq!(
        value("agentrace_requests_refused_total{transport=\"grpc\",reason=\"body_not_started\"}"),
        1.0
    );
    assert_eq!(
        value("agentrace_connections_closed_total{listener=\"otlp_grpc\",reason=\"body_timeout\"}"),
        0.0
    );
    assert!(value("agentrace_spans_received_total{transport=\"grpc\"}") > 0.0, "{metrics}");
}
