//! Every PromQL target of every dashboard, run against a real Prometheus scraping the
//! collector while the demo sends traffic, must return data. The collector samples the fake
//! `libnvidia-ml.so` (no GPU here), so the GPU panels have data too; the dcgm-exporter panels
//! read a recorded dcgm-exporter exposition served by the test, since dcgm-exporter itself
//! needs a GPU. Tempo targets (the node graph, the trace table) need Tempo, which does not run
//! here: they are counted and listed, not queried. The collector prices the demo's GPU time
//! from `demo/prices.toml`, ends conversations after 5 s idle, and Prometheus evaluates the
//! SLO rules of `prometheus/rules/slo.yml`, so the cost, conversation and SLO panels have data.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::common::InProcessCollector;
use agentrace_testkit::{Prometheus, DEADLINE};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fake_nvml() -> PathBuf {
    let path = std::env::var_os("AGENTRACE_FAKE_NVML")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/debug/libfake_nvml.so"));
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p fake-nvml` (scripts/test does)",
        path.display()
    );
    path
}

/// Grafana's variables and intervals as a dashboard opened on "All" would send them.
fn as_grafana_sends(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$service", ".*")
        .replace("$agent", ".*")
        .replace("$model", ".*")
        .replace("$target", ".*")
}

/// A Chat Completions endpoint for the probe panels: `/ok/v1` streams five tokens at 50
/// tokens/s, `/limited/v1` refuses with 429.
async fn openai_like_server() -> std::net::SocketAddr {
    let streamed = || async {
        let (sender, receiver) = tokio::sync::mpsc::channel::<Result<String, std::convert::Infallible>>(8);
        tokio::spawn(async move {
            for token in 0..5 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let chunk = format!(
                    "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"t{token}\"}}}}]}}\n\n"
                );
                let _ = sender.send(Ok(chunk)).await;
            }
            let usage = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":5}}\n\ndata: [DONE]\n\n";
            let _ = sender.send(Ok(usage.to_owned())).await;
        });
        let body = axum::body::Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(receiver));
        ([("content-type", "text/event-stream")], body)
    };
    let limited =
        || async { (axum::http::StatusCode::TOO_MANY_REQUESTS, "{\"error\":{\"message\":\"rate limit\"}}") };
    let app = axum::Router::new()
        .route("/ok/v1/chat/completions", axum::routing::post(streamed))
        .route("/limited/v1/chat/completions", axum::routing::post(limited));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    address
}

/// A vLLM server's log lines over OTLP/HTTP JSON, for the log panels: its weights load, a CUDA
/// out-of-memory error and a throughput line.
async fn send_server_logs(http: std::net::SocketAddr) {
    let record = |severity: u32, text: &str| serde_json::json!({"severityNumber": severity, "body": {"stringValue": text}});
    let body = serde_json::json!({"resourceLogs": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "vllm-server"}}]},
        "scopeLogs": [{"logRecords": [
            record(9, "Loading weights took 5.21 seconds"),
            record(17, "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB."),
            record(9, "Engine 000: Avg prompt throughput: 1234.5 tokens/s, Avg generation throughput: 456.7 tokens/s"),
        ]}]
    }]});
    let response = reqwest::Client::new()
        .post(format!("http://{http}/v1/logs"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("the collector answers");
    assert_eq!(response.status().as_u16(), 200, "{:?}", response.text().await);
}

/// A fresh directory under the target folder, for the probe file.
fn probe_dir() -> PathBuf {
    let dir = root().join("target/dashboards-test").join(std::process::id().to_string());
    std::fs::create_dir_all(&dir).expect("create the directory");
    dir
}

/// Serves the recorded dcgm-exporter exposition on a loopback port.
async fn dcgm_exporter_recording() -> std::net::SocketAddr {
    let body =
        std::fs::read_to_string(root().join("demo/tests/fixtures/dcgm-exporter.metrics")).expect("recording");
    let app =
        axum::Router::new().route("/metrics", axum::routing::get(move || std::future::ready(body.clone())));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    address
}

async fn result_count(prometheus: &Prometheus, query: &str) -> Result<usize, String> {
    let url = format!("http://{}/api/v1/query", prometheus.address);
    let response = reqwest::Client::new()
        .get(url)
        .query(&[("query", query)])
        .send()
        .await
        .map_err(|error| error.to_string())?;
    let body: serde_json::Value = response.json().await.map_err(|error| error.to_string())?;
    if body["status"] != "success" {
        return Err(format!("{}: {}", body["errorType"], body["error"]));
    }
    Ok(body["data"]["result"].as_array().map_or(0, Vec::len))
}

async fn label_values(prometheus: &Prometheus, label: &str, matcher: &str) -> usize {
    let url = format!("http://{}/api/v1/label/{label}/values", prometheus.address);
    let Ok(response) = reqwest::Client::new().get(url).query(&[("match[]", matcher)]).send().await else {
        return 0;
    };
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    body["data"].as_array().map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_returns_data_from_demo_traffic() {
    let library = fake_nvml();
    let library = library.to_str().expect("utf-8 path");
    let prices = root().join("demo/prices.toml");
    // Two probe targets for the probe panels: one answering, one rate limited.
    let server = openai_like_server().await;
    let probes = probe_dir().join("probes.toml");
    let target = |name: &str| {
        format!("[[target]]\nname = \"{name}\"\nurl = \"http://{server}/{name}/v1\"\nmodel = \"probe-model\"\ninterval_secs = 1\ntimeout_secs = 1\n")
    };
    std::fs::write(&probes, target("ok") + &target("limited")).expect("write the probe file");
    let collector = InProcessCollector::start_with(&[
        "--probe-config",
        probes.to_str().expect("utf-8 path"),
        "--nvml-lib",
        library,
        "--gpu-sample-interval",
        "0.2",
        // The demo's GPU-hour prices, and one for the fake GPUs, which no price list names.
        "--price-file",
        prices.to_str().expect("utf-8 path"),
        "--gpu-hour-price",
        "3.5",
        // Conversations end within the run.
        "--conversation-idle-secs",
        "5",
    ])
    .await;
    let dcgm = dcgm_exporter_recording().await;
    // The SLO panels read the recording rules `slo generate` made of prometheus/slo.toml.
    let slo_rules = std::fs::read_to_string(root().join("prometheus/rules/slo.yml")).expect("slo rules");
    let prometheus = Prometheus::start_with_rules(&[collector.metrics, dcgm], Some(&slo_rules)).await;

    send_server_logs(collector.http).await;
    let mut demo = tokio::process::Command::new(env!("CARGO_BIN_EXE_agentrace-demo"))
        .args(["--endpoint", &format!("http://{}", collector.grpc)])
        .args(["--rps", "4", "--duration-secs", "40", "--failure-rate", "0.3", "--latency-scale", "0.3"])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the demo");

    let mut queried = 0;
    let mut tempo_targets = Vec::new();
    let mut failures = Vec::new();
    let started = Instant::now();
    for entry in std::fs::read_dir(root().join("grafana/dashboards")).expect("dashboards") {
        let path = entry.expect("entry").path();
        let board: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("dashboard")).expect("json");
        for variable in board["templating"]["list"].as_array().expect("variables") {
            let query = variable["definition"].as_str().expect("variable query");
            let inner = query.trim_start_matches("label_values(").trim_end_matches(')');
            let (matcher, label) = inner.rsplit_once(", ").expect("label_values(metric, label)");
            let matcher = as_grafana_sends(matcher);
            let deadline = Instant::now() + DEADLINE;
            while label_values(&prometheus, label, &matcher).await == 0 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            if label_values(&prometheus, label, &matcher).await == 0 {
                failures.push(format!("{}: variable {label} has no values", path.display()));
            }
        }
        for panel in board["panels"].as_array().expect("panels").iter().filter(|panel| panel["type"] != "row")
        {
            for target in panel["targets"].as_array().expect("targets") {
                let title = panel["title"].as_str().unwrap_or_default();
                // Tempo (no expression) and Loki (LogQL) do not run here.
                let logql = target["datasource"]["uid"] == "agentrace-loki";
                let Some(expr) = target["expr"].as_str().filter(|_| !logql) else {
                    tempo_targets.push(format!("{} / {title}", board["title"].as_str().unwrap_or_default()));
                    continue;
                };
                queried += 1;
                let query = as_grafana_sends(expr);
                let deadline = Instant::now() + DEADLINE;
                let outcome = loop {
                    let outcome = result_count(&prometheus, &query).await;
                    if matches!(outcome, Ok(count) if count > 0) || Instant::now() > deadline {
                        break outcome;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                };
                match outcome {
                    Ok(count) if count > 0 => {}
                    Ok(_) => failures.push(format!("{title}: no data for {query}")),
                    Err(error) => failures.push(format!("{title}: {error} for {query}")),
                }
            }
        }
    }
    // The demo looks like real models: the 70B model is slower than the 8B one, and decode
    // speed stays inside the histogram (below its top bucket) at this latency scale.
    let median = |model: &str| {
        format!("histogram_quantile(0.5, sum by (le) (rate(llm_inference_latency_seconds_bucket{{model=\"{model}\"}}[1m])))")
    };
    let slower = format!("{} > {}", median("llama-3.1-70b-instruct"), median("llama-3.1-8b-instruct"));
    let fastest =
        "histogram_quantile(0.99, sum by (le) (rate(llm_output_tokens_per_second_bucket[1m]))) < 2000";
    for check in [slower.as_str(), fastest] {
        if !matches!(result_count(&prometheus, check).await, Ok(1)) {
            failures.push(format!("not true: {check}"));
        }
    }
    let _ = demo.kill().await;
    println!(
        "{queried} PromQL targets returned data in {:.1} s; Tempo and Loki targets not queried: {tempo_targets:?}",
        started.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(queried >= 40, "{queried} targets");
    assert_eq!(tempo_targets.len(), 3, "{tempo_targets:?}");
    collector.stop().await;
}
