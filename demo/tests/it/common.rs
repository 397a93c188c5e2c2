//! The collector, in process on loopback ports of its own, forwarding to a capturing sink.

use std::net::SocketAddr;

use agentrace_collector::harness::InProcess;
use agentrace_testkit::Sink;

pub struct InProcessCollector {
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    pub metrics: SocketAddr,
    pub sink: Sink,
    inner: InProcess,
}

impl InProcessCollector {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts with `args` (flags as on the command line), forwarding to the sink and with a
    /// 1 s agent-graph window.
    pub async fn start_with(args: &[&str]) -> Self {
        let sink = Sink::default();
        let sink_url = format!("http://{}", sink.start().await);
        let mut all = vec!["--traces-endpoint", sink_url.as_str(), "--graph-wait-secs", "1"];
        all.extend_from_slice(args);
        let inner = InProcess::start(&all).await.expect("the collector starts");
        Self { grpc: inner.grpc, http: inner.http, metrics: inner.metrics, sink, inner }
    }

    /// The `/metrics` text, classic format.
    pub async fn metrics_text(&self) -> String {
        let url = format!("http://{}/metrics", self.metrics);
        reqwest::get(url).await.expect("scrape").text().await.expect("metrics text")
    }

    /// Stops the collector and waits for it to drain.
    pub async fn stop(self) {
        self.inner.stop().await.expect("collector stops cleanly");
    }
}
