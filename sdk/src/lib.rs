//! # agentrace
//!
//! Instrumentation for Rust agents and LLM inference servers. One span per agent invocation,
//! agent step, LLM call, tool call and model load, named and attributed per the OpenTelemetry
//! GenAI semantic conventions, exported over OTLP to the agentrace collector (or any OTLP
//! endpoint). It is built on `tracing`: the helpers open ordinary `tracing` spans, and
//! `#[tracing::instrument]` spans nest among them.
//!
//! ```
//! use agentrace::ErrorKind;
//!
//! # fn main() {
//! // Exports to OTEL_EXPORTER_OTLP_ENDPOINT, or http://localhost:4317.
//! let guard = agentrace::builder().service_name("support-bot").init();
//!
//! let agent = agentrace::agent("planner");
//! agent.in_scope(|| {
//!     let _plan = agentrace::step("plan").entered();
//!     let call = agentrace::chat("llama-3.1-8b").provider("vllm").temperature(0.2).start();
//!     call.first_token();
//!     call.record_usage(812, 64);
//!     call.finish_reasons(&["stop"]);
//!
//!     let search = agentrace::tool("web_search");
//!     search.fail(ErrorKind::Timeout, "search backend did not answer in 10 s");
//! });
//! drop(agent);
//!
//! // Flushes on drop: a batch job that exits now loses nothing.
//! drop(guard);
//! # }
//! ```
//!
//! Errors carry one of the collector's error types ([`ErrorKind`]); prompts and completions
//! are recorded only when [`Builder::capture_message_content`] or
//! `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true` asks for it. Recording never
//! panics and never returns an error into agent code; when the collector is down, spans wait
//! in a bounded queue and what does not fit is dropped and counted ([`Guard::stats`]).
//!
//! Across processes, [`inject`] writes W3C `traceparent`/`tracestate`/`baggage` headers and
//! [`AgentInvocation::continue_from`] continues the trace on the other side.

mod content;
mod logs;
mod propagation;
mod scope;
mod setup;
mod spans;

pub use agentrace_semconv::ErrorType as ErrorKind;
pub use content::{capture_enabled, set_capture, CAPTURE_ENV};
pub use propagation::{extract, inject, inject_context, with_baggage};
pub use scope::{current_agent, AgentScopeLayer};
pub use setup::{builder, init, layer, Builder, ExportStats, Guard, InitError, Protocol};
pub use spans::{
    agent, chat, llm, model_load, step, tool, AgentInvocation, AgentStep, LlmCall, LlmRequest, ModelLoad,
    ToolCall,
};

#[cfg(test)]
mod tests;
