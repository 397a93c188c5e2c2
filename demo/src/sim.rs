//! Simulated model and tool work: realistic token counts, streaming first-token delays and
//! injected failures, recorded through the agentrace SDK and tallied so the demo can report
//! exactly what it sent.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use agentrace::ErrorKind;
use rand::rngs::StdRng;
use rand::Rng;
use serde::{Deserialize, Serialize};

pub const PROVIDER: &str = "vllm";

/// Every named error type the collector knows, injected in turn.
const INJECTED: [ErrorKind; 8] = ErrorKind::NAMED;

/// How failures are injected and how fast time runs.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub failure_rate: f64,
    /// Multiplies every simulated delay; below 1 runs faster than life.
    pub latency_scale: f64,
}

impl Settings {
    pub async fn pause(&self, base: Duration) {
        tokio::time::sleep(base.mul_f64(self.latency_scale.max(0.0))).await;
    }
}

/// What one process sent, per the spans it recorded.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub llm_calls: u64,
    pub prompt_tokens: u64,
    pub response_tokens: u64,
    /// Parts of the prompt tokens read from and written to the prompt cache.
    #[serde(default)]
    pub cache_read_tokens: u64,
    #[serde(default)]
    pub cache_write_tokens: u64,
    pub tool_calls: u64,
    pub errors: BTreeMap<String, u64>,
}

impl Tally {
    pub fn merge(&mut self, other: &Tally) {
        self.llm_calls += other.llm_calls;
        self.prompt_tokens += other.prompt_tokens;
        self.response_tokens += other.response_tokens;
        self.cache_read_tokens += other.cache_read_tokens;
        self.cache_write_tokens += other.cache_write_tokens;
        self.tool_calls += other.tool_calls;
        for (kind, count) in &other.errors {
            *self.errors.entry(kind.clone()).or_default() += count;
        }
    }
}

/// Shared by a process's agents.
#[derive(Debug, Default)]
pub struct Books {
    tally: Mutex<Tally>,
    failures: AtomicUsize,
}

impl Books {
    pub fn snapshot(&self) -> Tally {
        self.tally.lock().map(|tally| tally.clone()).unwrap_or_default()
    }

    fn record(&self, update: impl FnOnce(&mut Tally)) {
        if let Ok(mut tally) = self.tally.lock() {
            update(&mut tally);
        }
    }

    /// The next injected error type, cycling through all of them.
    fn next_failure(&self) -> ErrorKind {
        INJECTED[self.failures.fetch_add(1, Ordering::Relaxed) % INJECTED.len()]
    }
}

fn failure_message(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Timeout => "upstream model did not answer within the deadline",
        ErrorKind::Oom => "CUDA out of memory while allocating the KV cache",
        ErrorKind::RateLimited => "429 Too Many Requests",
        ErrorKind::ContextLengthExceeded => "prompt exceeds the model's maximum context length",
        ErrorKind::ContentFiltered => "completion blocked by the content filter",
        ErrorKind::Unavailable => "503 model server unavailable",
        ErrorKind::InvalidRequest => "400 invalid request: unknown parameter",
        ErrorKind::Cancelled => "client cancelled the request",
        ErrorKind::Other => "unexpected failure",
    }
}

/// How a model of some size serves: time to first token (ms) and decode speed (tokens/s) at
/// latency scale 1. A 70B model answers later and decodes slower than an 8B one.
fn profile(model: &str) -> (std::ops::Range<u64>, std::ops::Range<u64>) {
    if model.contains("70b") {
        (150..600, 20..45)
    } else if model.contains("8b") {
        (30..120, 80..150)
    } else {
        (40..150, 70..130)
    }
}

/// One streamed chat call. Returns whether it succeeded.
pub async fn chat(model: &str, rng: &mut StdRng, settings: Settings, books: &Books) -> bool {
    let prompt_tokens = rng.random_range(200..2_000u64);
    let response_tokens = rng.random_range(40..400u64);
    let fails = rng.random_bool(settings.failure_rate.clamp(0.0, 1.0));
    let (first_token, decode) = profile(model);
    let first_token_ms = rng.random_range(first_token);
    let tokens_per_second = rng.random_range(decode);
    // A third of the calls reuse a cached prompt prefix, a third write one.
    let (cache_read, cache_write) = match rng.random_range(0..3u8) {
        0 => (prompt_tokens * 3 / 4, 0),
        1 => (0, prompt_tokens / 2),
        _ => (0, 0),
    };
    let call =
        agentrace::chat(model).provider(PROVIDER).temperature(0.7).max_tokens(1024).streaming(true).start();
    call.instrument(async {
        settings.pause(Duration::from_millis(first_token_ms)).await;
        if fails {
            let kind = books.next_failure();
            call.fail(kind, failure_message(kind));
            books.record(|tally| {
                tally.llm_calls += 1;
                *tally.errors.entry(kind.as_str().to_owned()).or_default() += 1;
            });
            return false;
        }
        call.first_token();
        settings.pause(Duration::from_secs_f64(response_tokens as f64 / tokens_per_second as f64)).await;
        call.record_usage(prompt_tokens, response_tokens);
        if cache_read > 0 {
            call.record_cached_input_tokens(cache_read);
        }
        if cache_write > 0 {
            call.record_cache_write_input_tokens(cache_write);
        }
        call.finish_reasons(&["stop"]);
        books.record(|tally| {
            tally.llm_calls += 1;
            tally.prompt_tokens += prompt_tokens;
            tally.response_tokens += response_tokens;
            tally.cache_read_tokens += cache_read;
            tally.cache_write_tokens += cache_write;
        });
        true
    })
    .await
}

/// One tool call taking `base` (scaled); web tools fail now and then, like the network.
pub async fn tool(name: &str, base: Duration, rng: &mut StdRng, settings: Settings, books: &Books) {
    let fails = rng.random_bool((settings.failure_rate / 2.0).clamp(0.0, 1.0));
    let call = agentrace::tool(name).tool_type("function");
    call.instrument(async {
        settings.pause(base).await;
        if fails {
            call.fail(ErrorKind::Unavailable, "tool backend unavailable");
        }
    })
    .await;
    books.record(|tally| tally.tool_calls += 1);
}
