//! agentrace collector: receives OTLP traces, derives LLM, agent, agent-graph and span
//! metrics, serves them to Prometheus with exemplars and forwards the traces.

pub mod derive;
pub mod metrics;
pub mod normalize;
