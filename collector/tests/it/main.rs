//! The collector's end-to-end tests, in one test binary: a collector in this process (or, where
//! the process itself is under test, the binary) on loopback ports of its own, real clients,
//! a real Prometheus, and a capturing trace endpoint.

#![warn(clippy::too_many_lines)]

mod agents_live;
mod alerts;
mod attribution;
mod auth;
mod backend_down;
mod bucket_quantiles;
mod cli;
mod common;
mod connections;
mod crash;
mod dialects;
mod export_retry;
mod export_retry_http;
mod exposition;
mod forward;
mod frameworks;
mod fuzz_corpus;
mod gpu;
mod graph_window;
mod hostile_input;
mod limits;
mod logs;
mod mcp;
mod metrics_endpoint;
mod overload;
mod probe;
mod prometheus_e2e;
mod python_sdk;
mod receive_status;
mod routing;
mod slo;
mod tls;
mod view;
