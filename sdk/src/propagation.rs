//! W3C context propagation over HTTP headers: `traceparent`, `tracestate` and `baggage`, so an
//! agent calling another agent over HTTP yields one trace.
//!
//! ```
//! # let _guard = ();
//! let mut headers = http::HeaderMap::new();
//! let planner = agentrace::agent("planner");
//! planner.in_scope(|| agentrace::inject(&mut headers));
//! // … send `headers` with the request; on the other side:
//! let researcher = agentrace::agent("researcher").continue_from(&headers);
//! # drop(researcher);
//! ```

use opentelemetry::baggage::BaggageExt;
use opentelemetry::propagation::{TextMapCompositePropagator, TextMapPropagator};
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use tracing_opentelemetry::OpenTelemetrySpanExt;

fn propagator() -> TextMapCompositePropagator {
    TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
    ])
}

/// Writes the current span's context (and the current baggage) into `headers`.
pub fn inject(headers: &mut http::HeaderMap) {
    inject_context(&tracing::Span::current().context(), headers);
}

/// Writes `context` into `headers`.
pub fn inject_context(context: &Context, headers: &mut http::HeaderMap) {
    propagator().inject_context(context, &mut HeaderInjector(headers));
}

/// Reads a remote context from `headers`; an empty context when there is none.
pub fn extract(headers: &http::HeaderMap) -> Context {
    propagator().extract(&HeaderExtractor(headers))
}

/// The current context with `entries` added to its baggage; attach it (or pass it to
/// [`inject_context`]) to send them downstream.
pub fn with_baggage(entries: impl IntoIterator<Item = KeyValue>) -> Context {
    tracing::Span::current().context().with_baggage(entries)
}
