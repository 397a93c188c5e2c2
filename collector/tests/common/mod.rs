//! Shared fixtures for the end-to-end tests: a collector process on free ports, a capturing
//! OTLP sink, a real Prometheus, and builders for GenAI-convention traces.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use agentrace_semconv::attr;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, status, ResourceSpans, ScopeSpans, Span, Status};

pub const DEADLINE: Duration = Duration::from_secs(60);

/// A collector binary running on ports it picked itself; killed on drop.
pub struct Collector {
    child: Child,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    pub metrics: SocketAddr,
}

impl Collector {
    pub fn spawn(extra_args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_agentrace-collector"))
            .args([
                "--otlp-grpc-addr",
                "127.0.0.1:0",
                "--otlp-http-addr",
                "127.0.0.1:0",
                "--metrics-addr",
                "127.0.0.1:0",
            ])
            .args(extra_args)
            .env("AGENTRACE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start agentrace-collector");
        let stderr = child.stderr.take().expect("piped stderr");
        let mut lines = BufReader::new(stderr).lines();
        let listening = loop {
            let line = lines.next().expect("collector exited before listening").expect("read collector log");
            if line.contains(" listening ") {
                break line;
            }
        };
        // Keep draining the log so the collector never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        let address = |key: &str| -> SocketAddr {
            listening
                .split_whitespace()
                .find_map(|field| field.strip_prefix(&format!("{key}=")))
                .unwrap_or_else(|| panic!("{key} in {listening:?}"))
                .parse()
                .expect("socket address")
        };
        Self { grpc: address("otlp_grpc"), http: address("otlp_http"), metrics: address("metrics"), child }
    }

    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        self.child.wait().expect("wait for collector")
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An OTLP/gRPC server that keeps every request it receives.
#[derive(Clone, Default)]
pub struct Sink {
    pub received: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
}

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.received.lock().expect("sink lock").push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Sink {
    /// Serves on a free loopback port from a background task; returns the address.
    pub async fn start(&self) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind sink");
        let address = listener.local_addr().expect("sink address");
        let service = TraceServiceServer::new(self.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        address
    }

    pub fn spans(&self) -> Vec<(Option<Resource>, Span)> {
        let received = self.received.lock().expect("sink lock");
        received
            .iter()
            .flat_map(|request| &request.resource_spans)
            .flat_map(|resource_spans| {
                resource_spans
                    .scope_spans
                    .iter()
                    .flat_map(|scope_spans| &scope_spans.spans)
                    .map(|span| (resource_spans.resource.clone(), span.clone()))
            })
            .collect()
    }
}

/// Polls `probe` until it returns `Some`, or panics with `what` after [`DEADLINE`].
pub async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(started.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub fn unix_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_nanos() as u64
}

pub fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.to_owned())) }),
        ..Default::default()
    }
}

pub fn int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(any_value::Value::IntValue(value)) }),
        ..Default::default()
    }
}

/// One agent trace in GenAI conventions: `invoke_agent researcher` calling the tool
/// `web_search` and making two `chat gpt-4o` calls, the second of which times out.
///
/// Tokens: input 100 + 50, output 40 (the failed call has none).
pub fn agent_trace(service: &str, trace_id: [u8; 16]) -> ResourceSpans {
    let now = unix_nanos();
    let second = 1_000_000_000u64;
    let id = |n: u8| vec![trace_id[0], n, 0, 0, 0, 0, 0, 1];
    let base = |n: u8, parent: Option<u8>, name: &str, kind: span::SpanKind, start: u64, end: u64| Span {
        trace_id: trace_id.to_vec(),
        span_id: id(n),
        parent_span_id: parent.map(id).unwrap_or_default(),
        name: name.to_owned(),
        kind: kind as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        ..Default::default()
    };
    let start = now - 5 * second;
    let mut agent = base(1, None, "invoke_agent researcher", span::SpanKind::Internal, start, now);
    agent.attributes = vec![
        text(attr::GEN_AI_OPERATION_NAME, "invoke_agent"),
        text(attr::GEN_AI_AGENT_NAME, "researcher"),
        text(attr::GEN_AI_PROVIDER_NAME, "openai"),
    ];
    let mut tool = base(
        2,
        Some(1),
        "execute_tool web_search",
        span::SpanKind::Internal,
        start + second / 10,
        start + second,
    );
    tool.attributes = vec![
        text(attr::GEN_AI_OPERATION_NAME, "execute_tool"),
        text(attr::GEN_AI_TOOL_NAME, "web_search"),
        text(attr::GEN_AI_AGENT_NAME, "researcher"),
    ];
    let mut chat =
        base(3, Some(1), "chat gpt-4o", span::SpanKind::Client, start + second, start + 3 * second);
    chat.attributes = vec![
        text(attr::GEN_AI_OPERATION_NAME, "chat"),
        text(attr::GEN_AI_PROVIDER_NAME, "openai"),
        text(attr::GEN_AI_REQUEST_MODEL, "gpt-4o"),
        text(attr::GEN_AI_AGENT_NAME, "researcher"),
        int(attr::GEN_AI_USAGE_INPUT_TOKENS, 100),
        int(attr::GEN_AI_USAGE_OUTPUT_TOKENS, 40),
    ];
    let mut timed_out =
        base(4, Some(1), "chat gpt-4o", span::SpanKind::Client, start + 3 * second, now - second / 10);
    timed_out.attributes = vec![
        text(attr::GEN_AI_OPERATION_NAME, "chat"),
        text(attr::GEN_AI_SYSTEM, "openai"),
        text(attr::GEN_AI_REQUEST_MODEL, "gpt-4o"),
        text(attr::GEN_AI_AGENT_NAME, "researcher"),
        int(attr::GEN_AI_USAGE_PROMPT_TOKENS, 50),
        text(attr::ERROR_TYPE, "openai.APITimeoutError"),
    ];
    timed_out.status =
        Some(Status { code: status::StatusCode::Error as i32, message: "Request timed out.".to_owned() });
    timed_out.events = vec![span::Event {
        name: attr::EXCEPTION_EVENT.to_owned(),
        time_unix_nano: now - second / 10,
        attributes: vec![text(attr::EXCEPTION_TYPE, "openai.APITimeoutError")],
        ..Default::default()
    }];
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![text(attr::SERVICE_NAME, service), int(attr::PROCESS_PID, 4242)],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            // Children first, as a batching SDK exports them: the agent span ends last.
            spans: vec![tool, chat, timed_out, agent],
            ..Default::default()
        }],
        ..Default::default()
    }
}

pub fn request(resource_spans: Vec<ResourceSpans>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest { resource_spans }
}

/// A real Prometheus, from the `prometheus` package, scraping `targets` every second with
/// exemplar storage on; killed on drop.
pub struct Prometheus {
    child: Child,
    pub address: SocketAddr,
    _data: tempfile::TempDir,
}

impl Prometheus {
    pub async fn start(targets: &[SocketAddr]) -> Self {
        let binary = std::env::var("PROMETHEUS_BIN").unwrap_or_else(|_| "prometheus".to_owned());
        let data = tempfile::tempdir().expect("prometheus data dir");
        let targets: Vec<String> = targets.iter().map(|target| format!("\"{target}\"")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: agentrace\n    static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        );
        let config_path = data.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write prometheus config");
        let address = free_address();
        let child = Command::new(&binary)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", data.path().join("tsdb").display()))
            .arg(format!("--web.listen-address={address}"))
            .arg("--enable-feature=exemplar-storage")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("cannot start {binary:?} ({error}); install Debian's prometheus package (scripts/test does)")
            });
        let prometheus = Self { child, address, _data: data };
        let client = reqwest::Client::new();
        let ready_url = format!("http://{address}/-/ready");
        eventually("prometheus ready", async || {
            let response = client.get(&ready_url).send().await.ok()?;
            response.status().is_success().then_some(())
        })
        .await;
        prometheus
    }

    /// The single value of an instant query, once it exists.
    pub async fn value(&self, query: &str) -> Option<f64> {
        let url = format!("http://{}/api/v1/query", self.address);
        let body: serde_json::Value = reqwest::Client::new()
            .get(url)
            .query(&[("query", query)])
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let result = body["data"]["result"].as_array()?;
        if result.len() != 1 {
            return None;
        }
        result[0]["value"][1].as_str()?.parse().ok()
    }

    /// Waits until `query` returns exactly `expected`.
    pub async fn expect_value(&self, query: &str, expected: f64) {
        let mut last = None;
        let started = Instant::now();
        loop {
            last = self.value(query).await.or(last);
            if last == Some(expected) {
                return;
            }
            assert!(started.elapsed() < DEADLINE, "{query}: expected {expected}, last seen {last:?}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Trace ids of the exemplars stored for `query` over the last 10 minutes.
    pub async fn exemplar_trace_ids(&self, query: &str) -> Vec<String> {
        let url = format!("http://{}/api/v1/query_exemplars", self.address);
        let now = unix_nanos() / 1_000_000_000;
        let params = [
            ("query", query.to_owned()),
            ("start", (now - 600).to_string()),
            ("end", (now + 60).to_string()),
        ];
        let Ok(response) = reqwest::Client::new().get(url).query(&params).send().await else {
            return Vec::new();
        };
        let Ok(body) = response.json::<serde_json::Value>().await else { return Vec::new() };
        let mut trace_ids: Vec<String> = body["data"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|series| series["exemplars"].as_array().into_iter().flatten())
            .filter_map(|exemplar| exemplar["labels"]["trace_id"].as_str().map(str::to_owned))
            .collect();
        trace_ids.sort();
        trace_ids.dedup();
        trace_ids
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback address whose port was free a moment ago (for programs that cannot report
/// the port they bound).
pub fn free_address() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address")
}
