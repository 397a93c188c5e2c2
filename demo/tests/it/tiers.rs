//! The two-tier deployment on loopback: two node-tier collectors route by trace id to three
//! gateways found through DNS (a server on loopback answering with 127.0.0.2–4, as a headless
//! Service would), and a real Prometheus scrapes all five and a single collector that got the
//! same demo run. The demo's planner and researcher export to different nodes, so every trace
//! crosses nodes; the gateways' sums must equal the single collector's figures, with nothing
//! unpaired and nothing unresolved. Then a fourth gateway joins mid-run: about a quarter of the
//! traces move to it, and every acknowledged span reaches the trace store once.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use agentrace_collector::harness::InProcess;
use agentrace_testkit::{eventually, DnsServer, Prometheus, Sink};

const NAME: &str = "gateways.agentrace.test";
/// The pairing window: longer than the demo's longest gap between two spans of a trace (its
/// SDKs export every 0.5 s, and a request runs for up to a few seconds).
const WINDOW_SECS: &str = "5";
const GATEWAYS: &str = "127\\\\.0\\\\.0\\\\.[2-5]:.*";
const SINGLE: &str = "127\\\\.0\\\\.0\\\\.1:.*";
/// A demo run whose request count does not hang on timing: ticks every 200 ms, and the
/// deadline falls between two of them.
const DEMO: [&str; 10] = [
    "--rps",
    "5",
    "--duration-secs",
    "1.9",
    "--seed",
    "7",
    "--failure-rate",
    "0.25",
    "--latency-scale",
    "0.2",
];

/// A port free on every address of `hosts` (gateways share one, as a Service's pods do).
fn shared_port(hosts: &[Ipv4Addr]) -> u16 {
    for _ in 0..50 {
        let first = std::net::TcpListener::bind((hosts[0], 0)).expect("bind");
        let port = first.local_addr().expect("address").port();
        let others: Vec<_> =
            hosts[1..].iter().map(|host| std::net::TcpListener::bind((*host, port))).collect();
        if others.iter().all(Result::is_ok) {
            return port;
        }
    }
    panic!("no port free on all of {hosts:?}");
}

fn host(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

async fn gateway(last: u8, port: u16, store: &str) -> InProcess {
    let grpc = SocketAddr::from((host(last), port)).to_string();
    let metrics = SocketAddr::from((host(last), 0)).to_string();
    let http = metrics.clone();
    let args = [
        "--role",
        "gateway",
        "--otlp-grpc-addr",
        &grpc,
        "--otlp-http-addr",
        &http,
        "--metrics-addr",
        &metrics,
        "--traces-endpoint",
        store,
        "--graph-wait-secs",
        WINDOW_SECS,
    ];
    InProcess::start(&args).await.expect("a gateway starts")
}

async fn node(last: u8, gateways: &str) -> InProcess {
    let metrics = SocketAddr::from((host(last), 0)).to_string();
    let args = [
        "--role",
        "node",
        "--metrics-addr",
        &metrics,
        "--traces-endpoint",
        gateways,
        "--traces-resolve-secs",
        "0.2",
        "--gpu",
        "off",
    ];
    InProcess::start(&args).await.expect("a node starts")
}

async fn demo(planner: SocketAddr, researcher: SocketAddr, extra: &[&str]) -> serde_json::Value {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_agentrace-demo"))
        .args([
            "--endpoint",
            &format!("http://{planner}"),
            "--researcher-endpoint",
            &format!("http://{researcher}"),
        ])
        .args(DEMO)
        .args(extra)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("run the demo");
    assert!(output.status.success(), "demo failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("JSON report")
}

/// `metric` summed by `by` over the instances matching `instances`.
fn sum(metric: &str, by: &str, instances: &str) -> String {
    format!("sum by ({by}) ({metric}{{instance=~\"{instances}\"}})")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_and_three_gateways_add_up_to_one_collector() {
    let store = Sink::default();
    let store_url = format!("http://{}", store.start().await);
    let single_args = ["--traces-endpoint", &store_url, "--graph-wait-secs", WINDOW_SECS, "--gpu", "off"];
    let single = InProcess::start(&single_args).await.expect("the single collector starts");
    let hosts = [host(2), host(3), host(4)];
    let port = shared_port(&hosts);
    let dns = DnsServer::start(NAME, &hosts).await;
    let stores = [Sink::default(), Sink::default(), Sink::default()];
    let mut urls = Vec::new();
    for store in &stores {
        urls.push(format!("http://{}", store.start().await));
    }
    let gateways = [
        gateway(2, port, &urls[0]).await,
        gateway(3, port, &urls[1]).await,
        gateway(4, port, &urls[2]).await,
    ];
    let route = format!("dns://{}/{NAME}:{port}", dns.address);
    let nodes = [node(6, &route).await, node(7, &route).await];
    let mut targets = vec![single.metrics];
    targets.extend(gateways.iter().map(|gateway| gateway.metrics));
    targets.extend(nodes.iter().map(|node| node.metrics));
    let prometheus = Prometheus::start(&targets).await;
    eventually("both nodes found the three gateways", async || {
        let found = prometheus.value("sum(agentrace_export_endpoints)").await;
        (found == Some(6.0)).then_some(())
    })
    .await;

    let tiered = demo(nodes[0].grpc, nodes[1].grpc, &[]).await;
    let alone = demo(single.grpc, single.grpc, &[]).await;
    assert_eq!(tiered["services"], alone["services"], "the same seed sends the same calls");
    let sent = tiered["total"]["prompt_tokens"].as_u64().expect("tokens") as f64;
    prometheus.expect_value(&format!("sum(llm_prompt_tokens_total{{instance=~\"{GATEWAYS}\"}})"), sent).await;
    prometheus.expect_value(&format!("sum(llm_prompt_tokens_total{{instance=~\"{SINGLE}\"}})"), sent).await;

    let compared = [
        ("llm_prompt_tokens_total", "service, agent, model"),
        ("llm_response_tokens_total", "service, agent, model"),
        ("llm_requests_total", "service, agent, model, status"),
        ("agent_tool_calls_total", "service, agent, tool, status"),
        ("llm_inference_errors_total", "service, agent, model, type"),
        ("traces_service_graph_request_total", "client, server, client_service, server_service"),
    ];
    for (metric, by) in compared {
        let started = std::time::Instant::now();
        let figures = loop {
            let tiers = prometheus.vector(&sum(metric, by, GATEWAYS)).await;
            let single = prometheus.vector(&sum(metric, by, SINGLE)).await;
            if !tiers.is_empty() && tiers == single {
                break tiers;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{metric} by {by}: tiers {tiers:#?}, single {single:#?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        assert!(figures.values().all(|value| *value > 0.0), "{metric}: {figures:?}");
    }
    // Past the pairing and attribution windows, flushed every second.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let (homes, received) = homes(&stores);
    assert!(homes.values().all(|home| home.len() == 1), "every trace whole on one gateway");
    assert_eq!(received, store.spans().len(), "the gateways forwarded what the single collector did");
    for (what, metric) in [
        ("unpaired edges", "agentrace_graph_unpaired_total"),
        ("unresolved attributions", "agentrace_attribution_unresolved_total"),
    ] {
        let tiers =
            prometheus.value(&format!("sum({metric}{{instance=~\"{GATEWAYS}\"}}) or vector(0)")).await;
        let single = prometheus.value(&format!("sum({metric}{{instance=~\"{SINGLE}\"}}) or vector(0)")).await;
        assert_eq!(
            (tiers, single),
            (Some(0.0), Some(0.0)),
            "{what} on the gateways and on the single collector"
        );
    }
    for node in &nodes {
        let text = reqwest::get(node.metrics_url()).await.expect("scrape").text().await.expect("text");
        assert!(!text.lines().any(|line| line.starts_with("llm_")), "a node derives no span metrics");
    }
    for collector in nodes.into_iter().chain(gateways) {
        collector.stop().await.expect("stops cleanly");
    }
    single.stop().await.expect("stops cleanly");
}

/// Which gateways (by their sinks) each trace's spans reached, and how many spans in all.
fn homes(sinks: &[Sink]) -> (HashMap<Vec<u8>, BTreeSet<usize>>, usize) {
    let mut homes: HashMap<Vec<u8>, BTreeSet<usize>> = HashMap::new();
    let mut spans = BTreeSet::new();
    let mut received = 0;
    for (index, sink) in sinks.iter().enumerate() {
        for (_, span) in sink.spans() {
            homes.entry(span.trace_id.clone()).or_default().insert(index);
            spans.insert((span.trace_id, span.span_id));
            received += 1;
        }
    }
    assert_eq!(spans.len(), received, "no span arrived twice");
    (homes, received)
}

/// Span `part` (1 or 2) of each of `traces` traces, in requests of 250 spans.
async fn send_parts(node: SocketAddr, traces: u32, part: u8) {
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    let mut client =
        TraceServiceClient::connect(format!("http://{node}")).await.expect("connect to the node");
    let now = agentrace_testkit::unix_nanos();
    let ids: Vec<u32> = (0..traces).collect();
    for chunk in ids.chunks(250) {
        let spans = chunk
            .iter()
            .map(|trace| {
                let mut trace_id = [0x5a; 16];
                trace_id[..4].copy_from_slice(&trace.to_be_bytes());
                Span {
                    trace_id: trace_id.to_vec(),
                    span_id: [part; 8].to_vec(),
                    parent_span_id: if part == 2 { [1; 8].to_vec() } else { Vec::new() },
                    name: format!("step {part}"),
                    start_time_unix_nano: now,
                    end_time_unix_nano: now + 1_000_000,
                    ..Default::default()
                }
            })
            .collect();
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource::default()),
                scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
                ..Default::default()
            }],
        };
        client.export(request).await.expect("the node acknowledges");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fourth_gateway_takes_about_a_quarter_of_the_traces_and_no_span_is_lost() {
    let hosts = [host(2), host(3), host(4), host(5)];
    let port = shared_port(&hosts);
    let sinks = [Sink::default(), Sink::default(), Sink::default(), Sink::default()];
    let mut gateways = Vec::new();
    for (sink, last) in sinks.iter().zip(2..) {
        let url = format!("http://{}", sink.start().await);
        gateways.push(gateway(last, port, &url).await);
    }
    let dns = DnsServer::start(NAME, &hosts[..3]).await;
    let route = format!("dns://{}/{NAME}:{port}", dns.address);
    let nodes = [node(6, &route).await, node(7, &route).await];
    let endpoints = async |expected: f64| {
        eventually("the nodes' gateways", async || {
            let mut total = 0.0;
            for node in &nodes {
                let text = reqwest::get(node.metrics_url()).await.ok()?.text().await.ok()?;
                let line = text.lines().find_map(|line| line.strip_prefix("agentrace_export_endpoints "))?;
                total += line.parse::<f64>().ok()?;
            }
            (total == expected).then_some(())
        })
        .await;
    };
    endpoints(6.0).await;

    // Each trace's first span through one node before the fourth gateway appears, its second
    // through the other node after: a trace whose spans end on two gateways moved.
    let traces = 2000;
    send_parts(nodes[0].grpc, traces, 1).await;
    dns.set(&hosts);
    endpoints(8.0).await;
    send_parts(nodes[1].grpc, traces, 2).await;
    for collector in nodes.into_iter().chain(gateways) {
        collector.stop().await.expect("stops cleanly, every lane drained");
    }

    let (homes, received) = homes(&sinks);
    assert_eq!(received, 2 * traces as usize, "every acknowledged span reached a gateway's store");
    let moved: Vec<&BTreeSet<usize>> = homes.values().filter(|home| home.len() > 1).collect();
    assert!(moved.iter().all(|home| home.contains(&3)), "traces move only to the new gateway");
    let share = moved.len() as f64 / f64::from(traces);
    let per_gateway: BTreeMap<usize, usize> = homes.values().fold(BTreeMap::new(), |mut counts, home| {
        *counts.entry(*home.first().expect("a home")).or_default() += 1;
        counts
    });
    eprintln!("{} of {traces} traces moved ({share:.3}); first homes {per_gateway:?}", moved.len());
    assert!((0.2..0.3).contains(&share), "about a quarter of the traces moved: {share}");
}
