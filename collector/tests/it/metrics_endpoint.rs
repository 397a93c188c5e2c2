//! `/metrics` guarded like the receivers: a bearer token, a page that cannot grow without
//! bound (cut at `--metrics-max-bytes`, counted), and one scrape at a time however many
//! scrapers ask at once. (TLS on the metrics port: `tls.rs`.)

use std::net::SocketAddr;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

use crate::common::{eventually, metric_value, request, text, CollectorProcess};
use crate::exposition::check_page_with;

const TOKEN: &str = "scrape-secret";
const MIB: f64 = (1 << 20) as f64;

/// `count` spans, each with its own 128-byte name and model: a series of its own in every
/// span and LLM metric, as far as the caps allow.
async fn flood(collector: &CollectorProcess, count: u32) {
    let mut client = TraceServiceClient::connect(collector.grpc_url()).await.expect("connect");
    for chunk in 0..count.div_ceil(500) {
        let spans = (0..500u32)
            .map(|offset| chunk * 500 + offset)
            .take_while(|n| *n < count)
            .map(|n| {
                let mut id = [0u8; 8];
                id[..4].copy_from_slice(&(n + 1).to_be_bytes());
                let name = format!("{n:0>128}");
                Span {
                    trace_id: [0xbb; 16].to_vec(),
                    span_id: id.to_vec(),
                    name: format!("chat {name}"),
                    kind: 3, // CLIENT
                    attributes: vec![
                        text("gen_ai.operation.name", "chat"),
                        text("gen_ai.request.model", &name),
                        text("gen_ai.agent.name", &name),
                        crate::common::int("gen_ai.usage.input_tokens", 10),
                        crate::common::int("gen_ai.usage.output_tokens", 5),
                    ],
                    start_time_unix_nano: crate::common::unix_nanos() - 1_000_000_000,
                    end_time_unix_nano: crate::common::unix_nanos(),
                    ..Default::default()
                }
            })
            .collect();
        let resource_spans = ResourceSpans {
            scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
            ..Default::default()
        };
        client.export(request(vec![resource_spans])).await.expect("accepted");
    }
}

async fn scrape(metrics: SocketAddr, authorization: Option<&str>) -> (u16, String) {
    let mut get = reqwest::Client::new()
        .get(format!("http://{metrics}/metrics"))
        .header("accept", "application/openmetrics-text;version=1.0.0");
    if let Some(authorization) = authorization {
        get = get.header("authorization", authorization);
    }
    let response = get.send().await.expect("scrape");
    let status = response.status().as_u16();
    (status, response.text().await.expect("page"))
}

fn token_file() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("metrics.token");
    std::fs::write(&path, format!("{TOKEN}\n")).expect("token file");
    let path = path.to_str().expect("utf-8 path").to_owned();
    (dir, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_need_the_token_and_the_page_stops_at_its_ceiling() {
    let _turn = crate::common::heavy().await;
    let (_dir, token_path) = token_file();
    let collector =
        CollectorProcess::spawn(&["--metrics-auth-token-file", &token_path, "--metrics-max-bytes", "256KiB"]);
    flood(&collector, 4_000).await;
    let bearer = format!("Bearer {TOKEN}");
    eventually("every span counted", async || {
        let (_, page) = scrape(collector.metrics, Some(&bearer)).await;
        let received = metric_value(&page, "agentrace_spans_received_total{transport=\"grpc\"}")?;
        (received == 4_000.0).then_some(())
    })
    .await;
    assert_eq!(scrape(collector.metrics, None).await.0, 401, "no token");
    assert_eq!(scrape(collector.metrics, Some("Bearer wrong")).await.0, 401, "wrong token");
    let (status, page) = scrape(collector.metrics, Some(&format!("bearer {TOKEN}"))).await;
    assert_eq!(status, 200, "the scheme in any case");
    assert!(page.len() <= 256 * 1024 + 6, "{} bytes", page.len());
    assert!(page.ends_with("# EOF\n"));
    let health = reqwest::get(format!("http://{}/healthz", collector.metrics)).await.expect("healthz");
    assert_eq!(health.status(), 200, "probes stay open");
    let samples = check_page_with(collector.metrics, Some(TOKEN)).await;
    let (_, page) = scrape(collector.metrics, Some(&bearer)).await;
    let truncated = metric_value(&page, "agentrace_scrape_truncated_total").unwrap_or(0.0);
    println!("metrics ceiling: 4 000 unique 128-byte names, page cut to {} bytes ({samples} samples), {truncated} scrapes cut", page.len());
    assert!(truncated >= 3.0, "counted: {truncated}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_scrapes_do_not_multiply_the_page_in_memory() {
    let _turn = crate::common::heavy().await;
    let collector = CollectorProcess::spawn(&[]);
    flood(&collector, 6_000).await;
    // Until every span is derived: two pages in a row of the same length.
    let mut last = 0;
    let page = eventually("every span counted", async || {
        let (_, page) = scrape(collector.metrics, None).await;
        let received = metric_value(&page, "agentrace_spans_received_total{transport=\"grpc\"}")?;
        let stable = std::mem::replace(&mut last, page.len()) == page.len();
        (received == 6_000.0 && stable).then_some(page)
    })
    .await;
    let before = collector.rss_bytes();
    let mut scrapes = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let metrics = collector.metrics;
        scrapes.spawn(async move { scrape(metrics, None).await });
    }
    // The resident set, every 10 ms while the scrapes run.
    let mut after = before;
    let mut answered = 0;
    while answered < 8 {
        tokio::select! {
            scraped = scrapes.join_next() => {
                let (status, body) = scraped.expect("a scrape").expect("scrape task");
                assert_eq!(status, 200);
                assert!(body.ends_with("# EOF\n"), "whole pages");
                answered += 1;
            }
            () = tokio::time::sleep(std::time::Duration::from_millis(10)) => after = after.max(collector.rss_bytes()),
        }
    }
    let growth = after.saturating_sub(before) as f64;
    println!(
        "parallel scrapes: page {:.1} MiB, 8 at once, RSS {:.1} → at most {:.1} MiB (+{:.1} MiB, {:.2} pages)",
        page.len() as f64 / MIB,
        before as f64 / MIB,
        after as f64 / MIB,
        growth / MIB,
        growth / page.len() as f64
    );
    assert!(growth < 3.0 * page.len() as f64, "8 scrapes grew RSS by {growth} bytes");
}
