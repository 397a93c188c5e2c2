//! Export: traces to an OTLP endpoint (`otlp.rs`), metrics to Prometheus (`prometheus.rs`).

pub mod otlp;
pub mod prometheus;
pub mod queue;
