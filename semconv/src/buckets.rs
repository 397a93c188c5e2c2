//! Histogram bucket boundaries. Where the GenAI semantic conventions recommend boundaries the
//! same ones are used, so dashboards built for those metrics read ours unchanged.

/// `gen_ai.client.operation.duration`: 0.01 s doubling to 81.92 s.
pub const LLM_DURATION_SECONDS: &[f64] =
    &[0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92];

/// `gen_ai.server.time_to_first_token`.
pub const TIME_TO_FIRST_TOKEN_SECONDS: &[f64] =
    &[0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0];

/// `invoke_agent` durations: 0.1 s doubling to 409.6 s.
pub const AGENT_DURATION_SECONDS: &[f64] =
    &[0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 51.2, 102.4, 204.8, 409.6];

/// Decode speed of one call, in output tokens per second.
pub const OUTPUT_TOKENS_PER_SECOND: &[f64] =
    &[1.0, 2.5, 5.0, 10.0, 20.0, 35.0, 50.0, 75.0, 100.0, 150.0, 200.0, 300.0, 500.0, 1000.0, 2000.0, 5000.0];

/// `gen_ai.client.token.usage`: powers of four.
pub const TOKENS: &[f64] = &[
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];

/// Calls per agent invocation; the tail is where runaway loops show. One apart up to 6, where
/// most invocations are, so that a quantile rounded up (`ceil`) is the count itself.
pub const CALLS_PER_INVOCATION: &[f64] =
    &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 16.0, 20.0, 24.0, 32.0, 48.0, 64.0, 128.0];

/// Tokens of one agent invocation or conversation: steps of 1.25× (×4 put a p95 at three times
/// the mean).
pub const TOKENS_PER_INVOCATION: &[f64] = &[
    64.0, 80.0, 100.0, 128.0, 160.0, 200.0, 256.0, 320.0, 400.0, 512.0, 640.0, 800.0, 1024.0, 1280.0, 1600.0,
    2048.0, 2560.0, 3200.0, 4096.0, 5120.0, 6400.0, 8192.0, 10240.0, 12800.0, 16384.0, 20480.0, 25600.0,
    32768.0, 65536.0, 131072.0, 262144.0, 1048576.0,
];

/// Cost of one conversation, in US dollars.
pub const CONVERSATION_COST_USD: &[f64] =
    &[0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 50.0];

/// Length of one conversation, first request to last answer.
pub const CONVERSATION_SECONDS: &[f64] =
    &[1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 86400.0];

/// Tempo metrics-generator defaults, for span metrics and service-graph latencies.
pub const TEMPO_SECONDS: &[f64] =
    &[0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192, 16.384];

/// MCP operation and session durations (the MCP semantic conventions' advice).
pub const MCP_SECONDS: &[f64] =
    &[0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];

/// Evaluation scores, mostly in [0, 1].
pub const EVALUATION_SCORE: &[f64] = &[0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bucket_list_is_strictly_increasing() {
        for list in [
            LLM_DURATION_SECONDS,
            TIME_TO_FIRST_TOKEN_SECONDS,
            AGENT_DURATION_SECONDS,
            OUTPUT_TOKENS_PER_SECOND,
            TOKENS,
            CALLS_PER_INVOCATION,
            TOKENS_PER_INVOCATION,
            CONVERSATION_COST_USD,
            CONVERSATION_SECONDS,
            TEMPO_SECONDS,
            EVALUATION_SCORE,
            MCP_SECONDS,
        ] {
            assert!(list.windows(2).all(|pair| pair[0] < pair[1]), "{list:?}");
        }
    }

    #[test]
    fn agent_buckets_span_the_documented_range() {
        assert_eq!(AGENT_DURATION_SECONDS.first(), Some(&0.1));
        assert_eq!(AGENT_DURATION_SECONDS.last(), Some(&409.6));
        assert_eq!(LLM_DURATION_SECONDS.last(), Some(&81.92));
    }
}
