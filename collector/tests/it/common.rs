//! Fixtures for the collector's end-to-end tests: a collector in this process or as a process of
//! its own, and builders for GenAI-convention traces. The sink, Prometheus and polling come
//! from `agentrace-testkit`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

pub use agentrace_testkit::{eventually, unix_nanos, Prometheus, Sink};

use agentrace_collector::allocator::{NO_HUGE_PAGES, PURGE_DELAY};
use agentrace_collector::harness::InProcess;
use agentrace_semconv::attr;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, status, ResourceSpans, ScopeSpans, Span, Status};

/// Tests that load both cores for seconds (floods, attacks, the live frameworks) take turns,
/// so that none is starved past its deadline by another; the rest run beside them.
pub async fn heavy() -> tokio::sync::MutexGuard<'static, ()> {
    static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    HEAVY.lock().await
}

/// The Python with the OpenTelemetry SDK (`scripts/test` sets `AGENTRACE_PYTHON` to its
/// virtualenv's).
pub fn python() -> String {
    std::env::var("AGENTRACE_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// A collector in this process, on ports it bound itself unless `args` name them.
pub struct Collector {
    inner: InProcess,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    pub metrics: SocketAddr,
}

impl Collector {
    pub async fn start(args: &[&str]) -> Self {
        let inner = InProcess::start(args).await.expect("the collector starts");
        Self { grpc: inner.grpc, http: inner.http, metrics: inner.metrics, inner }
    }

    pub fn grpc_url(&self) -> String {
        self.inner.grpc_url()
    }

    /// The `/metrics` text (classic format).
    pub async fn scrape(&self) -> String {
        scrape(self.metrics).await
    }

    /// POSTs `body` to `/v1/traces`; returns the status, the body and the Retry-After header.
    pub async fn post(
        &self,
        content_type: &str,
        encoding: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, Vec<u8>, Option<String>) {
        let mut builder = reqwest::Client::new()
            .post(format!("http://{}/v1/traces", self.http))
            .header("content-type", content_type)
            .body(body);
        if let Some(encoding) = encoding {
            builder = builder.header("content-encoding", encoding);
        }
        let response = builder.send().await.expect("the collector answers");
        let status = response.status().as_u16();
        let retry_after =
            response.headers().get("retry-after").map(|value| value.to_str().unwrap_or_default().to_owned());
        (status, response.bytes().await.expect("body").to_vec(), retry_after)
    }

    /// Shuts down as on SIGTERM, draining its queues.
    pub async fn stop(self) {
        self.inner.stop().await.expect("the collector drains and stops cleanly");
    }
}

async fn scrape(metrics: SocketAddr) -> String {
    reqwest::get(format!("http://{metrics}/metrics")).await.expect("scrape").text().await.expect("text")
}

/// The collector binary as a process of its own, for what needs one: a kill -9, its own
/// resident memory, environment for the fake NVML. Killed on drop.
pub struct CollectorProcess {
    child: Child,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    pub metrics: SocketAddr,
}

impl CollectorProcess {
    pub fn spawn(extra_args: &[&str]) -> Self {
        Self::spawn_with_env(extra_args, &[])
    }

    /// Like [`Self::spawn`], with extra environment variables for the collector process. It
    /// binds port 0 unless the arguments name an address, and says where in its log.
    pub fn spawn_with_env(extra_args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start(Command::new(env!("CARGO_BIN_EXE_agentrace-collector")), extra_args, env)
    }

    /// Like [`Self::spawn`], under an open-file limit (soft and hard), as `ulimit -n` sets it.
    pub fn spawn_with_open_files(extra_args: &[&str], open_files: u32) -> Self {
        let mut command = Command::new("bash");
        let script = format!("ulimit -n {open_files} && exec \"$0\" \"$@\"");
        command.args(["-c", &script, env!("CARGO_BIN_EXE_agentrace-collector")]);
        Self::start(command, extra_args, &[])
    }

    fn start(mut command: Command, extra_args: &[&str], env: &[(&str, &str)]) -> Self {
        let named = |flag: &str| extra_args.iter().any(|arg| arg.starts_with(flag));
        let mut args: Vec<&str> = Vec::new();
        for flag in ["--otlp-grpc-addr", "--otlp-http-addr", "--metrics-addr"] {
            if !named(flag) {
                args.extend([flag, "127.0.0.1:0"]);
            }
        }
        // The allocator settings the collector makes itself, whatever the tests run under.
        for name in allocator_variables() {
            command.env_remove(name);
        }
        let mut child = command
            .args(args)
            .args(extra_args)
            .env("AGENTRACE_LOG", "info")
            .envs(env.iter().copied())
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
        // Keep draining the log so the collector never blocks on a full pipe; echo it when
        // AGENTRACE_TEST_LOGS is set.
        let echo = std::env::var_os("AGENTRACE_TEST_LOGS").is_some();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if echo {
                    eprintln!("collector: {line}");
                }
            }
        });
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

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The collector process's peak resident set (`VmHWM`), in bytes.
    pub fn peak_rss_bytes(&self) -> u64 {
        self.status_bytes("VmHWM:")
    }

    /// The collector process's resident set now (`VmRSS`), in bytes.
    pub fn rss_bytes(&self) -> u64 {
        self.status_bytes("VmRSS:")
    }

    fn status_bytes(&self, key: &str) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("process status");
        let line = status.lines().find(|line| line.starts_with(key)).expect("memory line");
        line.split_whitespace().nth(1).and_then(|kilobytes| kilobytes.parse::<u64>().ok()).expect("kB") * 1024
    }

    /// The `/metrics` text (classic format).
    pub async fn scrape(&self) -> String {
        scrape(self.metrics).await
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        self.child.wait().expect("wait for collector")
    }

    /// Sends `signal` (`STOP`, `CONT`, …) to the collector process.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args([&format!("-{signal}"), &pid]).status().expect("kill");
        assert!(sent.success(), "kill -{signal} {pid}");
    }

    /// SIGKILL: no chance to drain.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for CollectorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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

/// Waits in Prometheus for the metrics of one [`agent_trace`]-shaped trace sent by `service`
/// (whatever client sent it): tokens 150 / 40, one ok call, one timeout, gpt-4o's list-price
/// cost, one tool call, one invocation with two LLM calls.
pub async fn expect_agent_trace_metrics(prometheus: &Prometheus, service: &str) {
    let llm = format!("service=\"{service}\",agent=\"researcher\",provider=\"openai\",model=\"gpt-4o\"");
    let agent = format!("service=\"{service}\",agent=\"researcher\"");
    let expectations = [
        (format!("llm_prompt_tokens_total{{{llm}}}"), 150.0),
        (format!("llm_response_tokens_total{{{llm}}}"), 40.0),
        (format!("llm_requests_total{{{llm},operation=\"chat\",status=\"ok\"}}"), 1.0),
        (format!("llm_inference_errors_total{{{llm},type=\"timeout\"}}"), 1.0),
        // gpt-4o list price: 150 × 2.50 + 40 × 10.00 = 775 per million tokens.
        (format!("llm_cost_usd_total{{{llm}}} * 1e6"), 775.0),
        (format!("agent_tool_calls_total{{{agent},tool=\"web_search\",status=\"ok\"}}"), 1.0),
        (format!("agent_invocations_total{{{agent},status=\"ok\"}}"), 1.0),
        (format!("agent_invocation_llm_calls_sum{{{agent}}}"), 2.0),
        (format!("traces_service_graph_request_total{{client=\"{service}\",server=\"researcher\"}}"), 1.0),
    ];
    for (query, expected) in expectations {
        prometheus.expect_value(&query, expected).await;
    }
}

/// Waits until Prometheus's exemplars for the LLM latency buckets hold exactly `sent`.
pub async fn expect_exemplar_trace_ids(prometheus: &Prometheus, mut sent: Vec<String>) {
    sent.sort();
    let found = eventually("exemplars of every trace sent", async || {
        let found = prometheus.exemplar_trace_ids("llm_inference_latency_seconds_bucket").await;
        sent.iter().all(|trace_id| found.contains(trace_id)).then_some(found)
    })
    .await;
    assert_eq!(found, sent);
}

pub fn request(resource_spans: Vec<ResourceSpans>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest { resource_spans }
}

/// A request of `count` spans whose ids are sequence numbers `first`, `first + 1`, … (plus
/// one, so no id is zero), for span-level accounting.
pub fn sequenced_request(first: u64, count: u64) -> ExportTraceServiceRequest {
    let spans = (first..first + count)
        .map(|sequence| Span {
            trace_id: [0x5e; 16].to_vec(),
            span_id: (sequence + 1).to_be_bytes().to_vec(),
            name: "chat llama".to_owned(),
            attributes: vec![
                text(attr::GEN_AI_OPERATION_NAME, "chat"),
                text(attr::GEN_AI_REQUEST_MODEL, "llama"),
            ],
            start_time_unix_nano: 1,
            end_time_unix_nano: 2,
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![text(attr::SERVICE_NAME, "load")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
            ..Default::default()
        }],
    }
}

/// Waits until every acknowledged sequence number reached the sink; returns the distinct
/// sequence numbers received and the number of arrivals (duplicates included).
pub async fn await_sequences(
    sink: &Sink,
    acknowledged: &std::collections::HashSet<u64>,
) -> (std::collections::HashSet<u64>, usize) {
    let received = eventually("every acknowledged span at the sink", async || {
        let received: std::collections::HashSet<u64> = sink
            .spans()
            .iter()
            .map(|(_, span)| u64::from_be_bytes(span.span_id.as_slice().try_into().expect("8-byte id")) - 1)
            .collect();
        acknowledged.is_subset(&received).then_some(received)
    })
    .await;
    (received, sink.spans().len())
}

/// The value of one series (name and labels, exactly as rendered) in `/metrics` text.
pub fn metric_value(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// [`metric_value`], 0 for a series not on the page.
pub fn value(metrics: &str, series: &str) -> f64 {
    metric_value(metrics, series).unwrap_or(0.0)
}

pub const EXPORTED: &str = "agentrace_spans_exported_total";
pub const RETRIES: &str = "agentrace_export_retries_total";

/// What a collector did with one 4-span agent trace, as seen by a recording trace endpoint.
pub struct ExportOutcome {
    /// (when, spans) per export call the endpoint received.
    pub calls: Vec<(std::time::Instant, usize)>,
    pub metrics: String,
}

/// Starts a collector with `args` (its trace endpoint among them), sends it one 4-span agent
/// trace over gRPC, waits until the endpoint has recorded `expected_calls` calls (and a little
/// more, for a wrong extra retry to show), then scrapes the collector.
pub async fn export_once(
    args: &[&str],
    expected_calls: usize,
    calls: impl Fn() -> Vec<(std::time::Instant, usize)>,
) -> ExportOutcome {
    let collector = Collector::start(args).await;
    let mut client =
        opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient::connect(
            collector.grpc_url(),
        )
        .await
        .expect("connect");
    client.export(request(vec![agent_trace("retry", [0xc0; 16])])).await.expect("accepted");
    eventually("the expected export attempts", async || (calls().len() >= expected_calls).then_some(()))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    ExportOutcome { calls: calls(), metrics: collector.scrape().await }
}

/// Every name of every allocator variable the collector sets for itself.
pub fn allocator_variables() -> impl Iterator<Item = &'static str> {
    [PURGE_DELAY, NO_HUGE_PAGES].into_iter().flat_map(|setting| setting.names.iter().copied())
}
