//! Synthetic probes (`--probe-config probes.toml`): for a model server or vendor API that emits
//! no spans, a real Chat Completions request every interval, so that it gets the same metrics
//! and dashboards as an instrumented one.
//!
//! Each probe is an LLM-call span of the agentrace SDK (service `agentrace-probe`), exported to
//! this collector's own OTLP/gRPC receiver over loopback: it is normalised, derived (`llm_*`
//! with time to first token, tokens/s, errors by type, exemplars) and forwarded like any other
//! span. The last probe of each target also sets blackbox-style gauges for alerting:
//! `llm_probe_success`, `llm_probe_duration_seconds{phase}` and
//! `llm_probe_output_tokens_per_second`.
//!
//! One task per target: a target's probes never overlap (the next starts after the last has
//! ended, at the earliest one interval after it started), a slow target delays no other, and
//! the first probe of each waits a random part of its interval, so that targets do not all
//! fire at once; each interval is then stretched or shrunk by up to 10 % at random.

mod args;
mod config;
mod request;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use agentrace_semconv::metric;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::instrument::WithSubscriber;
use tracing_subscriber::layer::SubscriberExt;

pub use self::args::Args;
pub use self::config::Target;
use self::request::Outcome;
use crate::metrics::Registry;

/// The service the probes' spans belong to.
pub const PROBE_SERVICE: &str = "agentrace-probe";

/// The running probes and the SDK pipeline their spans leave through.
pub struct Probes {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    guard: agentrace::Guard,
}

impl std::fmt::Debug for Probes {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Probes").field("targets", &self.tasks.len()).finish_non_exhaustive()
    }
}

/// Where the probes' spans go: this collector's OTLP/gRPC receiver, over loopback when it
/// listens on every address.
fn receiver_url(grpc: SocketAddr) -> String {
    let ip = if grpc.ip().is_unspecified() {
        match grpc {
            SocketAddr::V4(_) => std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            SocketAddr::V6(_) => std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        }
    } else {
        grpc.ip()
    };
    format!("http://{}", SocketAddr::new(ip, grpc.port()))
}

impl Probes {
    /// Starts a task per target, exporting the probes' spans to the receiver at `grpc` (with
    /// the receivers' bearer token when they ask for one).
    pub fn start(
        targets: Vec<Target>,
        registry: Arc<Registry>,
        grpc: SocketAddr,
        token: Option<&str>,
    ) -> anyhow::Result<Self> {
        let mut builder = agentrace::builder()
            .service_name(PROBE_SERVICE)
            .endpoint(receiver_url(grpc))
            .scheduled_delay(Duration::from_millis(500))
            .logs(false);
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        let guard = builder.build()?;
        let dispatch =
            tracing::Dispatch::new(tracing_subscriber::registry().with(agentrace::layer(guard.tracer())));
        let client = request::client()?;
        let stop = CancellationToken::new();
        let tasks = targets
            .into_iter()
            .map(|target| {
                let run = run_target(target, client.clone(), registry.clone(), stop.clone());
                tokio::spawn(run.with_subscriber(dispatch.clone()))
            })
            .collect();
        Ok(Self { stop, tasks, guard })
    }

    /// The probes of `config`, when `--probe-config` lists targets; their spans go to the
    /// receiver at `grpc`, with the receivers' token.
    pub fn configured(
        config: &crate::Config,
        registry: &Arc<Registry>,
        grpc: SocketAddr,
    ) -> anyhow::Result<Option<Self>> {
        if config.probes.is_empty() {
            return Ok(None);
        }
        let token = config.receive.auth_secret.as_deref();
        let probes = Self::start(config.probes.clone(), registry.clone(), grpc, token)
            .map_err(|error| error.context("start the synthetic probes"))?;
        tracing::info!(targets = config.probes.len(), "synthetic probes on");
        Ok(Some(probes))
    }

    /// Stops probing (a probe in flight is abandoned) and sends the spans still queued.
    pub async fn stop(self) {
        self.stop.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
        let guard = self.guard;
        let stats = tokio::task::spawn_blocking(move || guard.shutdown()).await;
        if let Ok(stats) = stats {
            tracing::debug!(ended = stats.ended, exported = stats.exported, "probe spans flushed");
        }
    }
}

/// Sleeps for `duration`; true when told to stop first.
async fn stopped_during(duration: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        () = tokio::time::sleep(duration) => false,
        () = stop.cancelled() => true,
    }
}

async fn run_target(
    target: Target,
    client: request::Client,
    registry: Arc<Registry>,
    stop: CancellationToken,
) {
    if stopped_during(target.interval.mul_f64(rand::random::<f64>()), &stop).await {
        return;
    }
    loop {
        let started = tokio::time::Instant::now();
        let outcome = tokio::select! {
            outcome = request::probe(&client, &target) => outcome,
            () = stop.cancelled() => return,
        };
        record(&registry, &target, &outcome);
        let next = target.interval.mul_f64(0.9 + 0.2 * rand::random::<f64>());
        if stopped_during(next.saturating_sub(started.elapsed()), &stop).await {
            return;
        }
    }
}

/// The gauges of the last probe: success, and its durations and decode rate when it got as far.
fn record(registry: &Registry, target: &Target, outcome: &Outcome) {
    let now = crate::unix_now();
    let (name, model) = (target.name.as_str(), target.model.as_str());
    let success = if outcome.error.is_none() { 1.0 } else { 0.0 };
    registry.add(metric::LLM_PROBE_SUCCESS, &[name, model], success, now);
    registry.add(
        metric::LLM_PROBE_DURATION_SECONDS,
        &[name, model, "total"],
        outcome.total.as_secs_f64(),
        now,
    );
    if let Some(first_token) = outcome.first_token {
        registry.add(
            metric::LLM_PROBE_DURATION_SECONDS,
            &[name, model, "first_token"],
            first_token.as_secs_f64(),
            now,
        );
    }
    if let Some(rate) = outcome.tokens_per_second() {
        registry.add(metric::LLM_PROBE_OUTPUT_TOKENS_PER_SECOND, &[name, model], rate, now);
    }
}
