//! Prompt and completion capture. Off unless asked for — by
//! [`crate::Builder::capture_message_content`] or by
//! `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true` — and cut to a size cap when on.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Environment switch defined by the OTel GenAI instrumentations.
pub const CAPTURE_ENV: &str = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT";
/// Default cap on one captured attribute, in bytes.
pub const DEFAULT_MAX_BYTES: usize = 16 * 1024;

static CAPTURE: AtomicBool = AtomicBool::new(false);
static MAX_BYTES: AtomicUsize = AtomicUsize::new(DEFAULT_MAX_BYTES);

/// Turns capture on or off for the whole process, with a cap in bytes per attribute.
pub fn set_capture(enabled: bool, max_bytes: usize) {
    MAX_BYTES.store(max_bytes, Ordering::Relaxed);
    CAPTURE.store(enabled, Ordering::Relaxed);
}

pub fn capture_enabled() -> bool {
    CAPTURE.load(Ordering::Relaxed)
}

/// Whether the environment asks for capture (`true`, case-insensitive).
pub fn capture_from_env() -> bool {
    std::env::var(CAPTURE_ENV).is_ok_and(|value| value.trim().eq_ignore_ascii_case("true"))
}

/// `text` cut to the cap at a character boundary, when capture is on.
pub(crate) fn captured(text: &str) -> Option<String> {
    if !capture_enabled() {
        return None;
    }
    let max_bytes = MAX_BYTES.load(Ordering::Relaxed);
    if text.len() <= max_bytes {
        return Some(text.to_owned());
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Some(text[..end].to_owned())
}
