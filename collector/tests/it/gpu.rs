//! GPU sampling through the real `nvml-wrapper` loading a scripted `libnvidia-ml.so`
//! (`testkit/fake-nvml`): the gauges show the scripted values, the per-process metric carries
//! the container id and the pod from a fixture cgroup file (a Kubernetes pod's) and fixture pod
//! log directories, and the service of the spans that process sent, spans get the `agentrace.gpu.*` picture of their window, and GPU-seconds and energy
//! equal a hand computation. Without NVML the collector still serves.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::{int, request, text, Collector, CollectorProcess, Sink};
use agentrace_semconv::attr;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

const GIB: f64 = (1u64 << 30) as f64;
const CONTAINER: &str = "8a1f3c5e7b9d2046e8f0a1b2c3d4e5f60718293a4b5c6d7e8f9012a3b4c5d6e7";
const POD: &str = "pod=\"vllm-server-6d4f9-kx2vq\",namespace=\"inference\"";
const GPU0: &str = "GPU-fa4e0000-0000-0000-0000-000000000000";
const GPU1: &str = "GPU-fa4e0000-0000-0000-0000-000000000001";

fn fake_nvml() -> PathBuf {
    let path = std::env::var_os("AGENTRACE_FAKE_NVML")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/libfake_nvml.so"));
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p fake-nvml` (scripts/test does)",
        path.display()
    );
    path
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_millis() as u64
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").expect("host name").trim().to_owned()
}

use crate::common::metric_value as value;

/// An LLM call by agent `writer` over `[start_ms, end_ms]`.
fn llm_span(id: u8, start_ms: u64, end_ms: u64) -> Span {
    Span {
        trace_id: vec![0x77; 16],
        span_id: vec![id; 8],
        name: "chat llama-3.1-8b-instruct".to_owned(),
        start_time_unix_nano: start_ms * 1_000_000,
        end_time_unix_nano: end_ms * 1_000_000,
        attributes: vec![
            text(attr::GEN_AI_OPERATION_NAME, "chat"),
            text(attr::GEN_AI_REQUEST_MODEL, "llama-3.1-8b-instruct"),
            text(attr::GEN_AI_AGENT_NAME, "writer"),
            int(attr::GEN_AI_USAGE_INPUT_TOKENS, 10),
        ],
        ..Default::default()
    }
}

fn resource(service: &str, pid: Option<i64>) -> Resource {
    let mut attributes = vec![text(attr::SERVICE_NAME, service), text(attr::HOST_NAME, &host_name())];
    if let Some(pid) = pid {
        attributes.push(int(attr::PROCESS_PID, pid));
    }
    Resource { attributes, ..Default::default() }
}

fn double_attribute(span: &Span, key: &str) -> f64 {
    match span.attributes.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.as_ref()?.value.clone()) {
        Some(any_value::Value::DoubleValue(number)) => number,
        Some(any_value::Value::IntValue(number)) => number as f64,
        other => panic!("{key} on {}: {other:?}", hex::encode(&span.span_id)),
    }
}

fn string_attribute(span: &Span, key: &str) -> String {
    match span.attributes.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.as_ref()?.value.clone()) {
        Some(any_value::Value::StringValue(text)) => text,
        other => panic!("{key}: {other:?}"),
    }
}

fn close(actual: f64, expected: f64, tolerance: f64, what: &str) {
    assert!((actual - expected).abs() <= tolerance, "{what}: {actual} is not {expected} ± {tolerance}");
}

fn assert_device_gauges(metrics: &str) {
    assert_eq!(value(metrics, "agentrace_gpu_available"), Some(1.0));
    let gpu1 = format!("{{gpu=\"1\",uuid=\"{GPU1}\",name=\"Fake H200 B\"}}");
    assert_eq!(value(metrics, &format!("gpu_utilization_ratio{gpu1}")), Some(0.1));
    assert_eq!(value(metrics, &format!("gpu_memory_used_bytes{gpu1}")), Some(10.0 * GIB));
    assert_eq!(value(metrics, &format!("gpu_memory_total_bytes{gpu1}")), Some(141.0 * GIB));
    assert_eq!(value(metrics, &format!("gpu_temperature_celsius{gpu1}")), Some(38.0));
    assert_eq!(value(metrics, &format!("gpu_power_watts{gpu1}")), Some(100.0));
}

/// Process on GPU 0: 1 s at 20 %, 1 s at 80 %; 300 W; its own 8 GiB. Unknown process: both
/// GPUs. A span older than the ring: not enriched.
async fn assert_enriched_spans(sink: &Sink) {
    let spans = crate::common::eventually("3 spans at the sink", async || {
        let spans = sink.spans();
        (spans.len() == 3).then_some(spans)
    })
    .await;
    let span =
        |id: u8| spans.iter().map(|(_, span)| span).find(|span| span.span_id == vec![id; 8]).expect("span");
    // Process on GPU 0: 1 s at 20 %, 1 s at 80 %; 300 W; its own 8 GiB.
    let attributed = span(1);
    assert_eq!(string_attribute(attributed, attr::AGENTRACE_GPU_UUID), GPU0);
    close(double_attribute(attributed, attr::AGENTRACE_GPU_UTILIZATION_AVG), 0.5, 0.05, "average");
    assert_eq!(double_attribute(attributed, attr::AGENTRACE_GPU_UTILIZATION_MAX), 0.8);
    assert_eq!(double_attribute(attributed, attr::AGENTRACE_GPU_MEMORY_USED_MAX_BYTES), 8.0 * GIB);
    close(double_attribute(attributed, attr::AGENTRACE_GPU_POWER_AVG_WATTS), 300.0, 1e-6, "power");
    // Unknown process: both GPUs; (0.5 + 0.1) / 2; 300 W + 100 W.
    let host_wide = span(2);
    assert_eq!(string_attribute(host_wide, attr::AGENTRACE_GPU_UUID), format!("{GPU0},{GPU1}"));
    close(double_attribute(host_wide, attr::AGENTRACE_GPU_UTILIZATION_AVG), 0.3, 0.05, "host average");
    close(double_attribute(host_wide, attr::AGENTRACE_GPU_POWER_AVG_WATTS), 400.0, 1e-6, "host power");
    assert!(
        !span(3).attributes.iter().any(|kv| kv.key.starts_with("agentrace.gpu.")),
        "late span not enriched"
    );
}

/// GPU-seconds and energy per service, agent and model, within what a loaded machine's timing
/// allows.
fn assert_gpu_time(metrics: &str) {
    // By hand: GPU-seconds = 0.2 × 1 s + 0.8 × 1 s = 1.0. The last 20 % sample holds until the
    // next one, up to one interval (0.05 s) plus scheduling delay after the step; ± 0.6 × 0.15
    // allows a sample 100 ms late on a loaded machine. Energy = 300 W × 2 s = 600 J, from the
    // energy counter, read a few microseconds after each sample's timestamp; ± 3 J allows that
    // read to be 10 ms late at 300 W.
    let labels = "{service=\"vllm-server\",agent=\"writer\",model=\"llama-3.1-8b-instruct\"}";
    close(
        value(metrics, &format!("llm_gpu_seconds_total{labels}")).expect("gpu seconds"),
        1.0,
        0.09,
        "gpu-seconds",
    );
    close(
        value(metrics, &format!("llm_gpu_energy_joules_total{labels}")).expect("energy"),
        600.0,
        3.0,
        "energy",
    );
    let batch = "{service=\"batch\",agent=\"writer\",model=\"llama-3.1-8b-instruct\"}";
    close(
        value(metrics, &format!("llm_gpu_seconds_total{batch}")).expect("gpu seconds"),
        1.2,
        0.09,
        "host gpu-seconds",
    );
    close(
        value(metrics, &format!("llm_gpu_energy_joules_total{batch}")).expect("energy"),
        800.0,
        3.0,
        "host energy",
    );
    // GPU time at GPU-hour prices: GPU 0 ("Fake H200 A") at 7.20 from the price file, the
    // other at --gpu-hour-price 3.60. The server's call ran on GPU 0 alone.
    let seconds = value(metrics, &format!("llm_gpu_seconds_total{labels}")).expect("gpu seconds");
    let cost = value(metrics, &format!("llm_gpu_cost_usd_total{labels}")).expect("gpu cost");
    close(cost, seconds * 7.2 / 3600.0, 1e-12, "gpu cost on GPU 0");
    let seconds = value(metrics, &format!("llm_gpu_seconds_total{batch}")).expect("gpu seconds");
    let cost = value(metrics, &format!("llm_gpu_cost_usd_total{batch}")).expect("gpu cost");
    assert!(
        cost > seconds * 3.6 / 3600.0 && cost < seconds * 7.2 / 3600.0,
        "the host's call on both GPUs, each at its price: {cost} for {seconds} GPU-seconds"
    );
}

/// The collectors of a scenario: one doing everything, or a node tier (GPUs, span
/// enrichment) forwarding to a gateway tier (attribution, GPU time per agent) that forwards
/// to the sink.
struct Tiers {
    /// Samples the GPUs and receives the spans.
    node: CollectorProcess,
    /// Counts from the spans; `None`: the node does.
    gateway: Option<CollectorProcess>,
}

impl Tiers {
    fn start(tiered: bool, sink: SocketAddr, step: &str, price_file: &Path) -> Self {
        let library = fake_nvml();
        let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let (proc_root, pod_logs) = (fixtures.join("proc"), fixtures.join("pods"));
        let path = |path: &Path| path.to_str().expect("utf-8 path").to_owned();
        let prices = ["--price-file".to_owned(), path(price_file), "--gpu-hour-price".into(), "3.6".into()];
        let sink = format!("http://{sink}");
        let gateway = tiered.then(|| {
            let mut args =
                vec!["--role".to_owned(), "gateway".into(), "--traces-endpoint".into(), sink.clone()];
            args.extend(prices.clone());
            CollectorProcess::spawn(&args.iter().map(String::as_str).collect::<Vec<_>>())
        });
        let mut args = vec![
            "--nvml-lib".to_owned(),
            path(&library),
            "--gpu-sample-interval".into(),
            "0.05".into(),
            "--proc-root".into(),
            path(&proc_root),
            "--pod-logs-dir".into(),
            path(&pod_logs),
            "--traces-endpoint".into(),
        ];
        match &gateway {
            Some(gateway) => args.extend([gateway.grpc_url(), "--role".into(), "node".into()]),
            None => args.extend([
                sink,
                prices[0].clone(),
                prices[1].clone(),
                prices[2].clone(),
                prices[3].clone(),
            ]),
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let node = CollectorProcess::spawn_with_env(
            &args,
            &[("FAKE_NVML_STEP_UNIX_MS", step), ("FAKE_NVML_PID", "4242")],
        );
        Self { node, gateway }
    }

    /// Where the span metrics are counted.
    fn counting(&self) -> &CollectorProcess {
        self.gateway.as_ref().unwrap_or(&self.node)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_nvml_samples_become_gauges_span_attributes_and_gpu_seconds() {
    gpu_scenario(false).await;
}

/// The same figures when a node measures the GPUs and a gateway counts them from the spans.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_measures_the_gpus_and_its_gateway_counts_the_same_gpu_time_per_agent() {
    gpu_scenario(true).await;
}

async fn gpu_scenario(tiered: bool) {
    let sink = Sink::default();
    let sink_address = sink.start().await;
    // GPU 0 steps from 20 % to 80 % utilization two seconds from now.
    let step_ms = unix_ms() + 2_000;
    let prices = tempfile::tempdir().expect("temp dir");
    let price_file = prices.path().join("prices.toml");
    std::fs::write(&price_file, "[gpus.\"Fake H200 A\"]\nhour = 7.2\n").expect("write prices");
    let tiers = Tiers::start(tiered, sink_address, &step_ms.to_string(), &price_file);
    let node = &tiers.node;

    let metrics = crate::common::eventually("gpu 0 at 80 % a second after the step", async || {
        let metrics = node.scrape().await;
        let stepped = value(
            &metrics,
            &format!("gpu_utilization_ratio{{gpu=\"0\",uuid=\"{GPU0}\",name=\"Fake H200 A\"}}"),
        );
        (stepped == Some(0.8) && unix_ms() > step_ms + 1_100).then_some(metrics)
    })
    .await;
    assert_device_gauges(&metrics);

    // Two calls over [step − 1 s, step + 1 s]: one from the process on GPU 0, one from a
    // process NVML does not know. And one that ended an hour ago.
    let window = (step_ms - 1_000, step_ms + 1_000);
    let mut client = TraceServiceClient::connect(node.grpc_url()).await.expect("connect");
    let resource_spans = |service: &str, pid: Option<i64>, span: Span| ResourceSpans {
        resource: Some(resource(service, pid)),
        scope_spans: vec![ScopeSpans { spans: vec![span], ..Default::default() }],
        ..Default::default()
    };
    client
        .export(request(vec![
            resource_spans("vllm-server", Some(4242), llm_span(1, window.0, window.1)),
            resource_spans("batch", None, llm_span(2, window.0, window.1)),
            resource_spans("batch", None, llm_span(3, window.0 - 3_600_000, window.1 - 3_600_000)),
        ]))
        .await
        .expect("accepted");

    assert_enriched_spans(&sink).await;

    let metrics = crate::common::eventually("the process's service on its GPU memory", async || {
        let metrics = node.scrape().await;
        let series = format!("gpu_process_memory_used_bytes{{gpu=\"0\",pid=\"4242\",container=\"{CONTAINER}\",{POD},service=\"vllm-server\"}}");
        (value(&metrics, &series) == Some(8.0 * GIB)).then_some(metrics)
    })
    .await;
    assert_eq!(
        value(&metrics, "agentrace_gpu_enrichment_skipped_total{reason=\"window_left_ring\"}"),
        Some(1.0)
    );
    let utilization = format!("gpu_process_utilization_ratio{{gpu=\"0\",pid=\"4242\",container=\"{CONTAINER}\",{POD},service=\"vllm-server\"}}");
    assert_eq!(value(&metrics, &utilization), Some(0.8));
    let counted = crate::common::eventually("GPU time counted", async || {
        let metrics = tiers.counting().scrape().await;
        metrics.contains("llm_gpu_seconds_total{service=\"batch\"").then_some(metrics)
    })
    .await;
    assert_gpu_time(&counted);
    if tiered {
        assert!(!metrics.lines().any(|line| line.starts_with("llm_")), "the node derives no span metrics");
        let gateway = tiers.counting().scrape().await;
        assert_eq!(value(&gateway, "agentrace_gpu_available"), Some(0.0), "the gateway samples no GPU");
    } else {
        assert_view_gpus(node).await;
    }
}

/// The live view shows the same GPUs, GPU processes and span windows.
async fn assert_view_gpus(collector: &CollectorProcess) {
    let get = async |path: &str| -> serde_json::Value {
        let url = format!("http://{}{path}", collector.metrics);
        reqwest::get(url).await.expect("the view answers").json().await.expect("JSON")
    };
    let gpus = get("/api/v1/summary").await["gpus"].clone();
    let device =
        gpus["devices"].as_array().expect("devices").iter().find(|gpu| gpu["labels"]["gpu"] == "1").cloned();
    let device = device.expect("GPU 1 in the view");
    assert_eq!(device["utilization"]["value"], 0.1);
    assert_eq!(device["memory_used_bytes"]["value"], 10.0 * GIB);
    assert_eq!(device["memory_total_bytes"]["value"], 141.0 * GIB);
    assert!(device["utilization"]["query"]
        .as_str()
        .expect("query")
        .starts_with("gpu_utilization_ratio{gpu=\"1\""));
    let processes = gpus["processes"].as_array().expect("processes");
    let process = processes.iter().find(|process| process["labels"]["pid"] == "4242").expect("pid 4242");
    assert_eq!(process["labels"]["container"], CONTAINER);
    assert_eq!(process["labels"]["pod"], "vllm-server-6d4f9-kx2vq");
    assert_eq!(process["memory_used_bytes"]["value"], 8.0 * GIB);
    let trace = get(&format!("/api/v1/traces/{}", "77".repeat(16))).await;
    let spans = trace["span_list"].as_array().expect("spans");
    let attributed = spans.iter().find(|span| span["span_id"] == "0101010101010101").expect("span 1");
    assert_eq!(attributed["gpu"]["memory_used_max_bytes"], 8.0 * GIB);
    assert_eq!(attributed["gpu"]["utilization_max"], 0.8);
    assert!(spans.iter().any(|span| span["gpu"].is_null()), "the late span has no GPU window");
}

#[tokio::test]
async fn without_nvml_the_collector_serves_and_says_so() {
    for args in [&["--nvml-lib", "/nonexistent/libnvidia-ml.so.1"][..], &["--gpu", "off"][..]] {
        let collector = Collector::start(args).await;
        let mut client = TraceServiceClient::connect(collector.grpc_url()).await.expect("connect");
        let now = unix_ms();
        let span = llm_span(1, now - 1_000, now);
        client
            .export(request(vec![ResourceSpans {
                resource: Some(resource("no-gpu", Some(4242))),
                scope_spans: vec![ScopeSpans { spans: vec![span], ..Default::default() }],
                ..Default::default()
            }]))
            .await
            .expect("accepted without GPU");
        let metrics = crate::common::eventually("the call counted", async || {
            let metrics = collector.scrape().await;
            metrics.contains("llm_requests_total{service=\"no-gpu\"").then_some(metrics)
        })
        .await;
        assert_eq!(value(&metrics, "agentrace_gpu_available"), Some(0.0), "{args:?}");
        assert!(!metrics.lines().any(|line| line.starts_with("gpu_")), "{args:?}: no gpu series");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
