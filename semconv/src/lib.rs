//! Names shared by the agentrace SDK and collector: every attribute key and metric name, the
//! span classes, the normalised error types and the dialect tables that map each
//! instrumentation's attributes onto one canonical view.
//!
//! The SDK writes spans with these keys; the collector reads them back through
//! [`dialect::FieldReader`]. No key is typed anywhere else.

pub mod attr;
pub mod buckets;
pub mod dialect;
pub mod error;
pub mod metric;
pub mod otlp;

pub use dialect::{AttrValue, Attribute, FieldReader, GenAiFields};
pub use error::ErrorType;

/// What a span does, as far as the metrics are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SpanClass {
    /// A generative model call: chat, text completion, content generation.
    Llm,
    /// An embeddings call.
    Embedding,
    /// One invocation of an agent.
    Agent,
    /// A named step inside an agent invocation (plan, act, reflect…).
    Step,
    /// A tool executed by an agent.
    Tool,
    /// Loading model weights into an inference server.
    ModelLoad,
    /// Anything else; it still counts in the span metrics.
    Other,
}

impl SpanClass {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Llm => "llm",
            Self::Embedding => "embedding",
            Self::Agent => "agent",
            Self::Step => "step",
            Self::Tool => "tool",
            Self::ModelLoad => "model_load",
            Self::Other => "other",
        }
    }
}
