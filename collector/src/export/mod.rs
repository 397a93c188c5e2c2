//! Export: traces to an OTLP endpoint (`otlp.rs`), metrics to Prometheus (`prometheus.rs`).

pub mod otlp;
pub mod prometheus;
pub mod queue;

use crate::otlp::raw;

/// A processed request on its way to the trace endpoint: its forwarding view (spans as
/// encoded bytes) and how many spans it holds.
#[derive(Debug)]
pub struct Forward {
    pub request: raw::ExportTraceServiceRequest,
    pub spans: usize,
}
