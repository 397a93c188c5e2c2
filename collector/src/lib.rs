//! agentrace collector: receives OTLP traces, derives LLM, agent, agent-graph and span
//! metrics, serves them to Prometheus with exemplars and forwards the traces.
//!
//! `topology.rs` shows how the stages connect; a span travels
//! `receive` → `process` (`normalize` → `derive` → `metrics`, then `enrich`) → `export`.
//! Everything is private to the crate but what the binary, the load generator, the fuzz
//! targets and the tests use.

#![warn(clippy::too_many_lines)]

pub mod allocator;
mod args;
mod auth;
mod config;
mod cost;
mod derive;
mod enrich;
mod events;
mod export;
mod gpu;
pub mod harness;
mod logs;
mod memory;
mod metrics;
mod normalize;
mod probe;
mod process;
mod receive;
mod serve;
pub mod slo;
mod small_map;
mod tls;
mod topology;
mod view;
mod wire;

use std::time::{SystemTime, UNIX_EPOCH};

pub use config::{first_line, Config, ConfigError, Options};
pub use derive::GraphConfig;
pub use export::otlp::export_grpc;
pub use receive::decode::count_spans;
pub use serve::{bind, raise_open_file_limit};
pub use topology::{run, Listeners};

/// Wall-clock seconds since the Unix epoch; read at the edges, passed into derive.
pub fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |elapsed| elapsed.as_secs_f64())
}
