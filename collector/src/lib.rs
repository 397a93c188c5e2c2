//! agentrace collector: receives OTLP traces, derives LLM, agent, agent-graph and span
//! metrics, serves them to Prometheus with exemplars and forwards the traces.
//!
//! `topology.rs` shows how the stages connect; a span travels
//! `receive` → `process` (`normalize` → `derive` → `metrics`) → `export`.

pub mod config;
pub mod cost;
pub mod derive;
pub mod enrich;
pub mod export;
pub mod gpu;
pub mod harness;
pub mod memory;
pub mod metrics;
pub mod normalize;
pub mod otlp;
pub mod process;
pub mod receive;
pub mod redact;
pub mod tls;
pub mod topology;

use std::future::Future;
use std::time::{SystemTime, UNIX_EPOCH};

pub use config::{Config, Options};
pub use topology::Listeners;

/// Runs the collector on bound listeners until `shutdown` resolves, then drains.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    topology::run(config, listeners, shutdown).await
}

/// Wall-clock seconds since the Unix epoch; read at the edges, passed into derive.
pub fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |elapsed| elapsed.as_secs_f64())
}
