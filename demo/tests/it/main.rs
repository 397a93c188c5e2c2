//! The demo's end-to-end tests, in one test binary: the demo and the batch job against a
//! collector in this process, a real Prometheus reading the dashboards' queries, and the
//! stack's files checked with the real tools.

mod batch_job;
mod common;
mod dashboards;
mod e2e;
mod stack;
mod tiers;
mod view;
