//! The collector, in process on loopback ports of its own, forwarding to a capturing sink.
#![allow(dead_code)]

use std::net::SocketAddr;

use agentrace_collector::{Listeners, Options};
use agentrace_testkit::Sink;
use tokio::net::TcpListener;

pub struct InProcessCollector {
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    pub metrics: SocketAddr,
    pub sink: Sink,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

async fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.expect("bind loopback")
}

impl InProcessCollector {
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    /// Starts with `options`, forwarding to the sink and with a 1 s agent-graph window.
    pub async fn start_with(options: Options) -> Self {
        let sink = Sink::default();
        let sink_address = sink.start().await;
        let config = Options {
            traces_endpoint: Some(format!("http://{sink_address}")),
            graph_wait_secs: Some(1.0),
            ..options
        }
        .validate()
        .expect("valid config");
        let listeners = Listeners { otlp_grpc: bind().await, otlp_http: bind().await, metrics: bind().await };
        let grpc = listeners.otlp_grpc.local_addr().expect("grpc address");
        let http = listeners.otlp_http.local_addr().expect("http address");
        let metrics = listeners.metrics.local_addr().expect("metrics address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(agentrace_collector::run(config, listeners, async {
            let _ = stopped.await;
        }));
        Self { grpc, http, metrics, sink, stop: Some(stop), task: Some(task) }
    }

    /// The `/metrics` text, classic format.
    pub async fn metrics_text(&self) -> String {
        let url = format!("http://{}/metrics", self.metrics);
        reqwest::get(url).await.expect("scrape").text().await.expect("metrics text")
    }

    /// Stops the collector and waits for it to drain.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("collector task").expect("collector stops cleanly");
        }
    }
}
