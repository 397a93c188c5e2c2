//! Routing by trace id to two gateways, one of them down: the node keeps the down gateway's
//! share on disk (`--queue-dir`) and retries it there, never sending it to the other gateway
//! (which would cut its traces in two). The node is killed with SIGKILL meanwhile and started
//! again on the same queue; once the gateway is up, every acknowledged span reaches it, and
//! each trace is whole at one gateway.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use crate::common::{eventually, CollectorProcess, Sink};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

const TRACES: u32 = 400;

/// Two spans of each of `traces`, in requests of 100 spans.
fn requests(traces: std::ops::Range<u32>) -> Vec<ExportTraceServiceRequest> {
    let now = agentrace_testkit::unix_nanos();
    let spans: Vec<Span> = traces
        .flat_map(|trace| {
            let mut trace_id = [0x3c; 16];
            trace_id[..4].copy_from_slice(&trace.to_be_bytes());
            (1..=2u8).map(move |part| Span {
                trace_id: trace_id.to_vec(),
                span_id: [part; 8].to_vec(),
                name: format!("step {part}"),
                start_time_unix_nano: now,
                end_time_unix_nano: now + 1_000,
                ..Default::default()
            })
        })
        .collect();
    spans
        .chunks(100)
        .map(|spans| ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource::default()),
                scope_spans: vec![ScopeSpans { spans: spans.to_vec(), ..Default::default() }],
                ..Default::default()
            }],
        })
        .collect()
}

fn node(gateways: &str, queue_dir: &str, address: Option<&str>) -> CollectorProcess {
    let mut args = vec![
        "--role",
        "node",
        "--gpu",
        "off",
        "--traces-endpoint",
        gateways,
        "--queue-dir",
        queue_dir,
        "--export-first-backoff-secs",
        "0.05",
    ];
    if let Some(address) = address {
        args.extend(["--otlp-grpc-addr", address]);
    }
    CollectorProcess::spawn(&args)
}

/// Trace id → (the sinks it reached, its spans there).
fn arrivals(sinks: &[&Sink]) -> HashMap<Vec<u8>, (BTreeSet<usize>, usize)> {
    let mut arrivals: HashMap<Vec<u8>, (BTreeSet<usize>, usize)> = HashMap::new();
    for (index, sink) in sinks.iter().enumerate() {
        for (_, span) in sink.spans() {
            let entry = arrivals.entry(span.trace_id).or_default();
            entry.0.insert(index);
            entry.1 += 1;
        }
    }
    arrivals
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_gateways_share_waits_on_the_nodes_disk_through_a_kill_and_is_never_sprayed() {
    let (up, later) = (Sink::default(), Sink::default());
    let up_address = up.start().await;
    let down = agentrace_testkit::reserve_address();
    let gateways = format!("http://{up_address},http://{}", down.address);
    let queue = tempfile::tempdir().expect("queue dir");
    let queue_dir = queue.path().display().to_string();

    let first = node(&gateways, &queue_dir, None);
    let address = first.grpc.to_string();
    let mut client = TraceServiceClient::connect(first.grpc_url()).await.expect("connect");
    for request in requests(0..TRACES) {
        client.export(request).await.expect("the node stores and acknowledges");
    }
    let reached = eventually("the live gateway's share", async || {
        let spans = up.spans().len();
        let metrics = first.scrape().await;
        let queued = crate::common::metric_value(&metrics, "agentrace_queue_depth{queue=\"disk\"}")?;
        (spans > 0 && queued > 0.0).then_some(spans)
    })
    .await;
    assert!(reached < 2 * TRACES as usize, "the down gateway's share did not go to the live one");
    first.kill();

    let second = node(&gateways, &queue_dir, Some(&address));
    // The restarted node reads the down gateway's share back from disk and retries it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let down_address = down.address;
    drop(down);
    serve_at(&later, down_address).await;

    let all = eventually("every acknowledged span at its gateway", async || {
        let arrivals = arrivals(&[&up, &later]);
        let spans: usize = arrivals.values().map(|(_, spans)| spans).sum();
        (spans >= 2 * TRACES as usize).then_some(arrivals)
    })
    .await;
    assert_eq!(all.len(), TRACES as usize, "every trace arrived");
    assert!(all.values().all(|(sinks, _)| sinks.len() == 1), "each trace whole at one gateway");
    let late = all.values().filter(|(sinks, _)| sinks.contains(&1)).count();
    assert!(late > TRACES as usize / 4, "the down gateway's share was held for it: {late} traces");
    second.kill();
}

/// Serves `sink` on `address` (a port released a moment ago).
async fn serve_at(sink: &Sink, address: std::net::SocketAddr) {
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceServiceServer;
    let listener = tokio::net::TcpListener::bind(address).await.expect("bind the gateway's port");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(sink.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
}

/// A gateway that leaves the DNS answer while it is down: its share, in memory or on disk, is
/// routed again to the gateway left, and nothing is lost. On disk, the node is also killed
/// while the share waits, and its next start (the name now resolving to one gateway) drains
/// what the earlier run queued for the gone one.
async fn a_gateway_leaves(queue: Option<&std::path::Path>) {
    let name = "gateways.routing.test";
    let (live, gone) = (std::net::Ipv4Addr::new(127, 0, 0, 2), std::net::Ipv4Addr::new(127, 0, 0, 3));
    let listener = std::net::TcpListener::bind((live, 0)).expect("bind");
    let port = listener.local_addr().expect("address").port();
    drop(listener);
    let sink = Sink::default();
    serve_at(&sink, (live, port).into()).await;
    let dns = agentrace_testkit::DnsServer::start(name, &[live, gone]).await;
    let route = format!("dns://{}/{name}:{port}", dns.address);
    let queue_dir = queue.map(|dir| dir.display().to_string());
    let start = |address: Option<&str>| {
        let mut args = vec!["--role", "node", "--gpu", "off", "--traces-endpoint", &route];
        args.extend(["--traces-resolve-secs", "0.2", "--export-first-backoff-secs", "0.05"]);
        if let Some(dir) = &queue_dir {
            args.extend(["--queue-dir", dir.as_str()]);
        }
        if let Some(address) = address {
            args.extend(["--otlp-grpc-addr", address]);
        }
        CollectorProcess::spawn(&args)
    };
    let node = start(None);
    let address = node.grpc.to_string();
    eventually("both gateways found", async || {
        let metrics = node.scrape().await;
        (crate::common::metric_value(&metrics, "agentrace_export_endpoints") == Some(2.0)).then_some(())
    })
    .await;
    let mut client = TraceServiceClient::connect(node.grpc_url()).await.expect("connect");
    for request in requests(0..TRACES) {
        client.export(request).await.expect("the node acknowledges");
    }
    let before = eventually("the live gateway's share", async || {
        let spans = sink.spans().len();
        (spans > 0 && spans < 2 * TRACES as usize).then_some(spans)
    })
    .await;
    let node = if queue.is_some() {
        node.kill();
        dns.set(&[live]);
        start(Some(&address))
    } else {
        dns.set(&[live]);
        node
    };
    let all = eventually("the gone gateway's share at the live one", async || {
        let spans: std::collections::HashSet<(Vec<u8>, Vec<u8>)> =
            sink.spans().into_iter().map(|(_, span)| (span.trace_id, span.span_id)).collect();
        (spans.len() == 2 * TRACES as usize).then_some(spans)
    })
    .await;
    let traces: BTreeSet<&Vec<u8>> = all.iter().map(|(trace, _)| trace).collect();
    assert_eq!(traces.len(), TRACES as usize, "every trace arrived");
    assert!(before < 2 * TRACES as usize);
    eprintln!("{before} of {} spans at the live gateway before the change, all after", 2 * TRACES);
    let metrics = node.scrape().await;
    assert!(!metrics
        .lines()
        .any(|line| line.starts_with("agentrace_spans_dropped_total{") && !line.ends_with(" 0")));
    node.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_leaves_the_dns_answer_hands_its_share_to_the_others() {
    a_gateway_leaves(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_an_earlier_run_queued_for_a_gone_gateway_is_drained_to_the_others() {
    let queue = tempfile::tempdir().expect("queue dir");
    a_gateway_leaves(Some(queue.path())).await;
}
