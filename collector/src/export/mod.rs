//! Export: traces to an OTLP endpoint through the export queue (`queue/`, `otlp/`), metrics to
//! Prometheus (`prometheus.rs`).

mod args;
pub mod otlp;
pub mod prometheus;
pub mod queue;
pub mod route;

pub use self::args::{Args, ExportConfig, DEFAULT_MAX_RETRY_SECS};
