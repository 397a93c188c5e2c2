//! A short batch job, such as a nightly evaluation run, configured only through the standard
//! `OTEL_*` environment variables. It records a few LLM calls and exits at once: the guard's
//! flush on drop is what gets its spans out (no Pushgateway needed).
//!
//! Usage: `agentrace-batch-job [CALLS]` (default 5), each call 100 input and 10 output tokens.

const PROMPT: &str =
    r#"[{"role":"user","parts":[{"type":"text","content":"Grade this answer from 1 to 5."}]}]"#;

fn main() {
    let guard = agentrace::init();
    let calls: u64 = std::env::args().nth(1).and_then(|count| count.parse().ok()).unwrap_or(5);
    let evaluator = agentrace::agent("evaluator");
    evaluator.in_scope(|| {
        for _ in 0..calls {
            let call = agentrace::chat("judge-model").start();
            call.record_input_messages(PROMPT);
            call.record_usage(100, 10);
        }
    });
    drop(evaluator);
    drop(guard);
}
