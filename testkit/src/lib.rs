//! Test fixtures shared by the workspace's end-to-end tests: a capturing OTLP/gRPC sink, a
//! real Prometheus (Debian's `prometheus` package) with exemplar storage on, and polling
//! with a deadline instead of sleeps; a DNS server whose answers a test changes (`dns.rs`).

mod dns;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{LogsService, LogsServiceServer};
use opentelemetry_proto::tonic::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;

pub use dns::DnsServer;

/// How long any `eventually` waits before failing the test.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// An OTLP/gRPC server that keeps every request it receives (traces, and logs), answering each
/// trace request `delay` after it arrived, and notes the most requests it held at once.
#[derive(Clone, Default)]
pub struct Sink {
    pub received: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
    pub logs: Arc<Mutex<Vec<ExportLogsServiceRequest>>>,
    pub delay: Duration,
    pub in_flight: Arc<std::sync::atomic::AtomicUsize>,
    pub most_in_flight: Arc<std::sync::atomic::AtomicUsize>,
}

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        use std::sync::atomic::Ordering;
        let now_in_flight = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_in_flight.fetch_max(now_in_flight, Ordering::SeqCst);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        self.received.lock().expect("sink lock").push(request.into_inner());
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl LogsService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        self.logs.lock().expect("sink lock").push(request.into_inner());
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
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
                .add_service(LogsServiceServer::new(self.clone()))
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

/// A real Prometheus, from the `prometheus` package, scraping `targets` every second with
/// exemplar storage on; killed on drop.
pub struct Prometheus {
    child: Child,
    pub address: SocketAddr,
    _reserved: ReservedAddress,
    _data: tempfile::TempDir,
}

impl Prometheus {
    pub async fn start(targets: &[SocketAddr]) -> Self {
        Self::start_with_rules(targets, None).await
    }

    /// The same, evaluating `rules` (a rules file's text) every second.
    pub async fn start_with_rules(targets: &[SocketAddr], rules: Option<&str>) -> Self {
        let binary = std::env::var("PROMETHEUS_BIN").unwrap_or_else(|_| "prometheus".to_owned());
        let data = tempfile::tempdir().expect("prometheus data dir");
        let targets: Vec<String> = targets.iter().map(|target| format!("\"{target}\"")).collect();
        let mut config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: agentrace\n    static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        );
        if let Some(rules) = rules {
            let rules_path = data.path().join("rules.yml");
            std::fs::write(&rules_path, rules).expect("write rules");
            config.push_str(&format!("rule_files:\n  - {}\n", rules_path.display()));
        }
        let config_path = data.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write prometheus config");
        let reserved = reserve_address();
        let address = reserved.address;
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
        let prometheus = Self { child, address, _reserved: reserved, _data: data };
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

    /// Every series of an instant query, by its labels (in name order, `name=value` joined by
    /// commas); empty until the query has results.
    pub async fn vector(&self, query: &str) -> std::collections::BTreeMap<String, f64> {
        let url = format!("http://{}/api/v1/query", self.address);
        let response = reqwest::Client::new().get(url).query(&[("query", query)]).send().await;
        let Ok(body) = (match response {
            Ok(response) => response.json::<serde_json::Value>().await,
            Err(error) => Err(error),
        }) else {
            return Default::default();
        };
        let series = body["data"]["result"].as_array().cloned().unwrap_or_default();
        series
            .iter()
            .filter_map(|series| {
                let labels = series["metric"].as_object()?;
                let mut pairs: Vec<String> = labels
                    .iter()
                    .map(|(name, value)| format!("{name}={}", value.as_str().unwrap_or_default()))
                    .collect();
                pairs.sort();
                let value = series["value"][1].as_str()?.parse().ok()?;
                Some((pairs.join(","), value))
            })
            .collect()
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

/// A loopback port held for a program that binds it later: bound with SO_REUSEADDR but not
/// listening, so nothing else takes it, connections to it are refused until the program
/// listens, and the program (which sets SO_REUSEADDR too, as tokio and Go do) can bind it.
pub struct ReservedAddress {
    pub address: SocketAddr,
    _socket: tokio::net::TcpSocket,
}

pub fn reserve_address() -> ReservedAddress {
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket.set_reuseaddr(true).expect("SO_REUSEADDR");
    socket.bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind a free port");
    let address = socket.local_addr().expect("local address");
    ReservedAddress { address, _socket: socket }
}
