//! The fixed set of error types that `llm_inference_errors_total{type}` uses, and the mapping
//! from whatever an instrumentation wrote (an `error.type`, an exception type or message, an
//! HTTP or gRPC code) onto it.

/// Why a call failed, normalised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
///
/// Declared from the most specific to the least: when several texts of one span classify
/// differently, the first in this order wins (`Ord` is that order).
pub enum ErrorType {
    Oom,
    ContextLengthExceeded,
    ContentFiltered,
    RateLimited,
    Timeout,
    Cancelled,
    Unavailable,
    InvalidRequest,
    Other,
}

impl ErrorType {
    /// Every type but `Other`: the failures that have a name.
    pub const NAMED: [ErrorType; 8] = [
        Self::Oom,
        Self::ContextLengthExceeded,
        Self::ContentFiltered,
        Self::RateLimited,
        Self::Timeout,
        Self::Cancelled,
        Self::Unavailable,
        Self::InvalidRequest,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Oom => "oom",
            Self::RateLimited => "rate_limited",
            Self::ContextLengthExceeded => "context_length_exceeded",
            Self::ContentFiltered => "content_filtered",
            Self::Unavailable => "unavailable",
            Self::InvalidRequest => "invalid_request",
            Self::Cancelled => "cancelled",
            Self::Other => "other",
        }
    }

    /// The canonical name itself, as the agentrace SDK writes it in `error.type`.
    pub fn from_canonical(text: &str) -> Option<Self> {
        Self::NAMED.into_iter().chain([Self::Other]).find(|kind| kind.as_str() == text)
    }

    /// Classifies free text from `error.type`, `exception.type`, `exception.message` or a
    /// status message. `None` when nothing in it is recognisable.
    pub fn classify(text: &str) -> Option<Self> {
        if let Some(kind) = Self::from_canonical(text) {
            return Some(kind);
        }
        let trimmed = text.trim();
        if let Some((_, kind)) = EXACT_CODES.iter().find(|(code, _)| code.eq_ignore_ascii_case(trimmed)) {
            return Some(*kind);
        }
        let lower = trimmed.to_ascii_lowercase();
        KEYWORDS
            .iter()
            .find(|(_, words)| words.iter().any(|word| lower.contains(word)))
            .map(|(kind, _)| *kind)
    }

    /// Classifies several texts; the most specific category found in any of them wins
    /// (a `BadRequestError` whose message says the context is too long is
    /// `context_length_exceeded`, not `invalid_request`).
    pub fn classify_all<'a>(texts: impl IntoIterator<Item = &'a str> + Clone) -> Option<Self> {
        for text in texts.clone() {
            if let Some(kind) = Self::from_canonical(text) {
                return Some(kind);
            }
        }
        texts.into_iter().filter_map(Self::classify).min()
    }
}

/// Whole-text codes: HTTP statuses and gRPC code names as instrumentations write them in
/// `error.type`.
const EXACT_CODES: &[(&str, ErrorType)] = &[
    ("OOM", ErrorType::Oom),
    ("408", ErrorType::Timeout),
    ("504", ErrorType::Timeout),
    ("DEADLINE_EXCEEDED", ErrorType::Timeout),
    ("429", ErrorType::RateLimited),
    ("RESOURCE_EXHAUSTED", ErrorType::RateLimited),
    ("502", ErrorType::Unavailable),
    ("503", ErrorType::Unavailable),
    ("UNAVAILABLE", ErrorType::Unavailable),
    ("400", ErrorType::InvalidRequest),
    ("404", ErrorType::InvalidRequest),
    ("413", ErrorType::ContextLengthExceeded),
    ("422", ErrorType::InvalidRequest),
    ("INVALID_ARGUMENT", ErrorType::InvalidRequest),
    ("499", ErrorType::Cancelled),
    ("CANCELLED", ErrorType::Cancelled),
];

/// Substrings of lowercased text, checked in the order of specificity.
const KEYWORDS: &[(ErrorType, &[&str])] = &[
    (ErrorType::Oom, &["out of memory", "outofmemory", "out_of_memory"]),
    (
        ErrorType::ContextLengthExceeded,
        &[
            "context_length",
            "context length",
            "context window",
            "contextwindow",
            "maximum context",
            "prompt is too long",
            "too many tokens",
        ],
    ),
    (
        ErrorType::ContentFiltered,
        &["content_filter", "content filter", "contentfilter", "content policy", "safety"],
    ),
    (ErrorType::RateLimited, &["rate limit", "ratelimit", "rate_limit", "too many requests", "quota"]),
    (ErrorType::Timeout, &["timeout", "timed out", "time out", "deadline"]),
    (ErrorType::Cancelled, &["cancel"]),
    (ErrorType::Unavailable, &["unavailable", "overloaded", "connection", "connecterror", "bad gateway"]),
    (ErrorType::InvalidRequest, &["badrequest", "bad request", "invalid", "validation", "unprocessable"]),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_what_instrumentations_write() {
        let cases: &[(&str, Option<ErrorType>)] = &[
            ("timeout", Some(ErrorType::Timeout)),
            ("openai.APITimeoutError", Some(ErrorType::Timeout)),
            ("Request timed out.", Some(ErrorType::Timeout)),
            ("DEADLINE_EXCEEDED", Some(ErrorType::Timeout)),
            ("504", Some(ErrorType::Timeout)),
            ("torch.OutOfMemoryError", Some(ErrorType::Oom)),
            ("CUDA out of memory. Tried to allocate 2.00 GiB", Some(ErrorType::Oom)),
            ("openai.RateLimitError", Some(ErrorType::RateLimited)),
            ("429", Some(ErrorType::RateLimited)),
            ("context_length_exceeded", Some(ErrorType::ContextLengthExceeded)),
            ("ContextWindowExceededError", Some(ErrorType::ContextLengthExceeded)),
            ("ContentFilterFinishReasonError", Some(ErrorType::ContentFiltered)),
            ("503", Some(ErrorType::Unavailable)),
            ("openai.APIConnectionError", Some(ErrorType::Unavailable)),
            ("anthropic.OverloadedError", Some(ErrorType::Unavailable)),
            ("openai.BadRequestError", Some(ErrorType::InvalidRequest)),
            ("asyncio.CancelledError", Some(ErrorType::Cancelled)),
            ("_OTHER", None),
            ("ValueError", None),
            ("", None),
        ];
        for (text, expected) in cases {
            assert_eq!(ErrorType::classify(text), *expected, "{text:?}");
        }
    }

    #[test]
    fn the_most_specific_text_wins() {
        let texts = ["openai.BadRequestError", "This model's maximum context length is 8192 tokens"];
        assert_eq!(ErrorType::classify_all(texts), Some(ErrorType::ContextLengthExceeded));
    }

    #[test]
    fn a_canonical_error_type_wins_over_any_message() {
        let texts = ["rate_limited", "connection reset"];
        assert_eq!(ErrorType::classify_all(texts), Some(ErrorType::RateLimited));
    }

    #[test]
    fn every_kind_round_trips_through_its_name() {
        for kind in ErrorType::NAMED.into_iter().chain([ErrorType::Other]) {
            assert_eq!(ErrorType::from_canonical(kind.as_str()), Some(kind));
        }
    }
}
