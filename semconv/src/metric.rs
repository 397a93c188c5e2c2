//! Metric names and label names, as served on `/metrics`.
//!
//! Counter names carry their `_total` suffix here; the OpenMetrics encoder strips it for the
//! family name, the classic text format keeps it.

pub const LLM_REQUESTS_TOTAL: &str = "llm_requests_total";
pub const LLM_INFERENCE_LATENCY_SECONDS: &str = "llm_inference_latency_seconds";
pub const LLM_PROMPT_TOKENS_TOTAL: &str = "llm_prompt_tokens_total";
pub const LLM_RESPONSE_TOKENS_TOTAL: &str = "llm_response_tokens_total";
pub const LLM_TIME_TO_FIRST_TOKEN_SECONDS: &str = "llm_time_to_first_token_seconds";
pub const LLM_OUTPUT_TOKENS_PER_SECOND: &str = "llm_output_tokens_per_second";
pub const LLM_INFERENCE_ERRORS_TOTAL: &str = "llm_inference_errors_total";
pub const LLM_MODEL_LOAD_TIME_SECONDS: &str = "llm_model_load_time_seconds";
pub const LLM_COST_USD_TOTAL: &str = "llm_cost_usd_total";
pub const LLM_EVALUATION_SCORE: &str = "llm_evaluation_score";
pub const LLM_CACHE_READ_TOKENS_TOTAL: &str = "llm_cache_read_tokens_total";
pub const LLM_CACHE_WRITE_TOKENS_TOTAL: &str = "llm_cache_write_tokens_total";
pub const LLM_REASONING_TOKENS_TOTAL: &str = "llm_reasoning_tokens_total";
pub const LLM_USAGE_MISSING_TOTAL: &str = "llm_usage_missing_total";
pub const LLM_GUARDRAIL_RESULTS_TOTAL: &str = "llm_guardrail_results_total";

/// MCP operations: the names the MCP semantic conventions give them in Prometheus form.
pub const MCP_CLIENT_OPERATION_DURATION_SECONDS: &str = "mcp_client_operation_duration_seconds";
pub const MCP_SERVER_OPERATION_DURATION_SECONDS: &str = "mcp_server_operation_duration_seconds";

pub const AGENT_INVOCATIONS_TOTAL: &str = "agent_invocations_total";
pub const AGENT_INVOCATION_DURATION_SECONDS: &str = "agent_invocation_duration_seconds";
pub const AGENT_INVOCATION_LLM_CALLS: &str = "agent_invocation_llm_calls";
pub const AGENT_INVOCATION_TOOL_CALLS: &str = "agent_invocation_tool_calls";
pub const AGENT_INVOCATION_TOKENS: &str = "agent_invocation_tokens";
pub const AGENT_STEPS_TOTAL: &str = "agent_steps_total";
pub const AGENT_STEP_DURATION_SECONDS: &str = "agent_step_duration_seconds";
pub const AGENT_TOOL_CALLS_TOTAL: &str = "agent_tool_calls_total";
pub const AGENT_TOOL_CALL_DURATION_SECONDS: &str = "agent_tool_call_duration_seconds";
pub const AGENT_LOOP_DETECTED_TOTAL: &str = "agent_loop_detected_total";
pub const AGENT_CONVERSATION_TURNS: &str = "agent_conversation_turns";
pub const AGENT_CONVERSATION_TOKENS: &str = "agent_conversation_tokens";
pub const AGENT_CONVERSATION_COST_USD: &str = "agent_conversation_cost_usd";
pub const AGENT_CONVERSATION_DURATION_SECONDS: &str = "agent_conversation_duration_seconds";

pub const SERVICE_GRAPH_REQUEST_TOTAL: &str = "traces_service_graph_request_total";
pub const SERVICE_GRAPH_REQUEST_FAILED_TOTAL: &str = "traces_service_graph_request_failed_total";
pub const SERVICE_GRAPH_REQUEST_SERVER_SECONDS: &str = "traces_service_graph_request_server_seconds";

pub const LLM_GPU_SECONDS_TOTAL: &str = "llm_gpu_seconds_total";
pub const LLM_GPU_ENERGY_JOULES_TOTAL: &str = "llm_gpu_energy_joules_total";
pub const LLM_GPU_COST_USD_TOTAL: &str = "llm_gpu_cost_usd_total";
pub const LLM_CACHE_SAVINGS_USD_TOTAL: &str = "llm_cache_savings_usd_total";

pub const GPU_UTILIZATION_RATIO: &str = "gpu_utilization_ratio";
pub const GPU_MEMORY_USED_BYTES: &str = "gpu_memory_used_bytes";
pub const GPU_MEMORY_TOTAL_BYTES: &str = "gpu_memory_total_bytes";
pub const GPU_TEMPERATURE_CELSIUS: &str = "gpu_temperature_celsius";
pub const GPU_POWER_WATTS: &str = "gpu_power_watts";
pub const GPU_PROCESS_MEMORY_USED_BYTES: &str = "gpu_process_memory_used_bytes";
pub const GPU_PROCESS_UTILIZATION_RATIO: &str = "gpu_process_utilization_ratio";
pub const LLM_PROBE_SUCCESS: &str = "llm_probe_success";
pub const LLM_LOG_ERRORS_TOTAL: &str = "llm_log_errors_total";
pub const LLM_LOG_EVENTS_TOTAL: &str = "llm_log_events_total";
pub const LLM_LOG_VALUE: &str = "llm_log_value";
pub const LLM_LOG_SECONDS: &str = "llm_log_seconds";
pub const LLM_PROBE_DURATION_SECONDS: &str = "llm_probe_duration_seconds";
pub const LLM_PROBE_OUTPUT_TOKENS_PER_SECOND: &str = "llm_probe_output_tokens_per_second";

pub const SPANMETRICS_CALLS_TOTAL: &str = "traces_spanmetrics_calls_total";
pub const SPANMETRICS_LATENCY: &str = "traces_spanmetrics_latency";

/// The GenAI conventions' metrics (v0.1.0) under the names and labels the OpenTelemetry
/// Collector's Prometheus exporter gives them (dots to underscores, the unit as a suffix,
/// `_total` on counters), served with `--metric-names otel|both`.
pub mod spec {
    pub const INFERENCE_DURATION: &str = "gen_ai_client_inference_duration_seconds";
    /// Non-inference model operations (embeddings).
    pub const OPERATION_DURATION: &str = "gen_ai_client_operation_duration_seconds";
    pub const TIME_TO_FIRST_CHUNK: &str = "gen_ai_client_inference_time_to_first_chunk_seconds";
    pub const TIME_PER_OUTPUT_CHUNK: &str = "gen_ai_client_inference_time_per_output_chunk_seconds";
    pub const USAGE_INPUT_TOKENS: &str = "gen_ai_client_inference_usage_input_tokens_total";
    pub const USAGE_OUTPUT_TOKENS: &str = "gen_ai_client_inference_usage_output_tokens_total";
    pub const USAGE_CACHE_READ_INPUT_TOKENS: &str =
        "gen_ai_client_inference_usage_cache_read_input_tokens_total";
    pub const USAGE_CACHE_WRITE_INPUT_TOKENS: &str =
        "gen_ai_client_inference_usage_cache_write_input_tokens_total";
    pub const USAGE_REASONING_OUTPUT_TOKENS: &str =
        "gen_ai_client_inference_usage_reasoning_output_tokens_total";
    pub const OPERATION_INPUT_TOKENS: &str = "gen_ai_client_inference_operation_input_tokens";
    pub const OPERATION_OUTPUT_TOKENS: &str = "gen_ai_client_inference_operation_output_tokens";
    pub const INVOKE_AGENT_DURATION: &str = "gen_ai_invoke_agent_duration_seconds";
    pub const INVOKE_AGENT_INFERENCE_CALLS: &str = "gen_ai_invoke_agent_inference_calls";
    pub const INVOKE_AGENT_TOOL_CALLS: &str = "gen_ai_invoke_agent_tool_calls";
    pub const EXECUTE_TOOL_DURATION: &str = "gen_ai_execute_tool_duration_seconds";

    pub mod label {
        /// The resource's `service.name`, as the exporter's resource-to-label conversion names it.
        pub const SERVICE_NAME: &str = "service_name";
        pub const OPERATION_NAME: &str = "gen_ai_operation_name";
        pub const PROVIDER_NAME: &str = "gen_ai_provider_name";
        pub const REQUEST_MODEL: &str = "gen_ai_request_model";
        pub const ERROR_TYPE: &str = "error_type";
        pub const TOKEN_MODALITY: &str = "gen_ai_token_modality";
        pub const AGENT_NAME: &str = "gen_ai_agent_name";
        pub const TOOL_NAME: &str = "gen_ai_tool_name";
    }

    /// `gen_ai.token.modality` when the usage is not broken down.
    pub const UNKNOWN_MODALITY: &str = "unknown";
}

// --- the collector's own --------------------------------------------------------------------
/// Every metric about the collector itself starts with this.
pub const SELF_PREFIX: &str = "agentrace_";
pub const SELF_SPANS_RECEIVED_TOTAL: &str = "agentrace_spans_received_total";
pub const SELF_SPANS_REFUSED_TOTAL: &str = "agentrace_spans_refused_total";
pub const SELF_SPANS_EXPORTED_TOTAL: &str = "agentrace_spans_exported_total";
pub const SELF_SPANS_DROPPED_TOTAL: &str = "agentrace_spans_dropped_total";
pub const SELF_REQUESTS_UNAUTHENTICATED_TOTAL: &str = "agentrace_requests_unauthenticated_total";
pub const SELF_EXPORT_RETRIES_TOTAL: &str = "agentrace_export_retries_total";
pub const SELF_QUEUE_DEPTH: &str = "agentrace_queue_depth";
pub const SELF_QUEUE_CAPACITY: &str = "agentrace_queue_capacity";
pub const SELF_QUEUE_DISK_BYTES: &str = "agentrace_queue_disk_bytes";
pub const SELF_EXPORT_ENDPOINTS: &str = "agentrace_export_endpoints";
pub const SELF_SERIES_OVERFLOW_TOTAL: &str = "agentrace_metric_series_overflow_total";
pub const SELF_SERIES_EXPIRED_TOTAL: &str = "agentrace_metric_series_expired_total";
pub const SELF_GRAPH_UNPAIRED_TOTAL: &str = "agentrace_graph_unpaired_total";
pub const SELF_GRAPH_BYTES: &str = "agentrace_graph_bytes";
pub const SELF_GRAPH_MAX_BYTES: &str = "agentrace_graph_max_bytes";
pub const SELF_BUILD_INFO: &str = "agentrace_build_info";
pub const SELF_MEMORY_RSS_BYTES: &str = "agentrace_memory_rss_bytes";
pub const SELF_MEMORY_LIMIT_BYTES: &str = "agentrace_memory_limit_bytes";
pub const SELF_GPU_AVAILABLE: &str = "agentrace_gpu_available";
pub const SELF_GPU_ENRICHMENT_SKIPPED_TOTAL: &str = "agentrace_gpu_enrichment_skipped_total";
pub const SELF_ATTRIBUTION_PENDING_SPANS: &str = "agentrace_attribution_pending_spans";
pub const SELF_ATTRIBUTION_UNRESOLVED_TOTAL: &str = "agentrace_attribution_unresolved_total";
pub const SELF_SPANS_INVALID_TOTAL: &str = "agentrace_spans_invalid_total";
pub const SELF_LLM_SPANS_DEDUPLICATED_TOTAL: &str = "agentrace_llm_spans_deduplicated_total";
pub const SELF_CONVERSATIONS_OPEN: &str = "agentrace_conversations_open";
pub const SELF_CONVERSATIONS_OVERFLOW_TOTAL: &str = "agentrace_conversations_overflow_total";
pub const SELF_MCP_SPANS_DEDUPLICATED_TOTAL: &str = "agentrace_mcp_spans_deduplicated_total";
pub const SELF_CONNECTIONS_CLOSED_TOTAL: &str = "agentrace_connections_closed_total";
pub const SELF_REQUESTS_REFUSED_TOTAL: &str = "agentrace_requests_refused_total";
pub const SELF_INFLIGHT_REQUEST_BYTES: &str = "agentrace_inflight_request_bytes";
pub const SELF_INFLIGHT_REQUEST_BYTES_LIMIT: &str = "agentrace_inflight_request_bytes_limit";
pub const SELF_SCRAPE_TRUNCATED_TOTAL: &str = "agentrace_scrape_truncated_total";
pub const SELF_VIEW_TRACES: &str = "agentrace_view_traces";
pub const SELF_LOG_RECORDS_RECEIVED_TOTAL: &str = "agentrace_log_records_received_total";
pub const SELF_LOG_RECORDS_EXPORTED_TOTAL: &str = "agentrace_log_records_exported_total";
pub const SELF_LOG_RECORDS_DROPPED_TOTAL: &str = "agentrace_log_records_dropped_total";
pub const SELF_VIEW_BYTES: &str = "agentrace_view_bytes";
pub const SELF_VIEW_MAX_BYTES: &str = "agentrace_view_max_bytes";
pub const SELF_VIEW_SPANS_DROPPED_TOTAL: &str = "agentrace_view_spans_dropped_total";

/// Label names. A metric's labels are always a fixed subset of these.
pub mod label {
    pub const SERVICE: &str = "service";
    pub const AGENT: &str = "agent";
    pub const PROVIDER: &str = "provider";
    pub const MODEL: &str = "model";
    pub const OPERATION: &str = "operation";
    pub const STATUS: &str = "status";
    pub const TYPE: &str = "type";
    pub const TOOL: &str = "tool";
    pub const STEP: &str = "step";
    pub const CLIENT: &str = "client";
    pub const SERVER: &str = "server";
    /// The service that runs a graph edge's caller.
    pub const CLIENT_SERVICE: &str = "client_service";
    /// The service that runs a graph edge's callee.
    pub const SERVER_SERVICE: &str = "server_service";
    pub const CONNECTION_TYPE: &str = "connection_type";
    pub const SPAN_NAME: &str = "span_name";
    pub const SPAN_KIND: &str = "span_kind";
    pub const STATUS_CODE: &str = "status_code";
    pub const TRANSPORT: &str = "transport";
    pub const REASON: &str = "reason";
    /// Which listening socket: `otlp_grpc`, `otlp_http` or `metrics`.
    pub const LISTENER: &str = "listener";
    pub const QUEUE: &str = "queue";
    pub const METRIC: &str = "metric";
    pub const EVALUATION: &str = "evaluation";
    pub const GPU: &str = "gpu";
    /// A synthetic probe's target, and which part of the probe a duration covers.
    pub const TARGET: &str = "target";
    pub const PHASE: &str = "phase";
    /// The log rule that wrote a series.
    pub const RULE: &str = "rule";
    pub const UUID: &str = "uuid";
    pub const NAME: &str = "name";
    pub const PID: &str = "pid";
    pub const CONTAINER: &str = "container";
    pub const POD: &str = "pod";
    pub const NAMESPACE: &str = "namespace";
    pub const VERSION: &str = "version";
    /// The only label of a metric's overflow series.
    pub const OVERFLOW: &str = "otel_metric_overflow";
    pub const GUARDRAIL: &str = "guardrail";
    /// A guardrail's provider-native outcome.
    pub const DECISION: &str = "decision";
    /// An MCP method (`tools/call`, `tools/list`).
    pub const METHOD: &str = "method";
    pub const KIND: &str = "kind";
    pub const TRACE_ID: &str = "trace_id";
    pub const SPAN_ID: &str = "span_id";
    /// An exemplar label only: a conversation id is never a series label.
    pub const CONVERSATION_ID: &str = "conversation_id";
}

/// Why a span's agent stayed unknown (`agentrace_attribution_unresolved_total`).
pub mod unresolved {
    /// The parent chain was still incomplete when the attribution wait ran out.
    pub const WAIT_EXPIRED: &str = "wait_expired";
    /// The trace was closed early to make room in the window.
    pub const EVICTED: &str = "evicted";
    /// The trace had more spans than the window keeps for one trace.
    pub const SPAN_CAP: &str = "span_cap";
}

/// Why a figure of a span was not recorded (`agentrace_spans_invalid_total`).
pub mod invalid {
    /// A time to first token longer than the call itself.
    pub const FIRST_TOKEN_AFTER_END: &str = "first_token_after_end";
    /// A token count above the ceiling one call can have.
    pub const TOKENS_OVER_CEILING: &str = "tokens_over_ceiling";
    /// A span lasting more than a day: its durations are not recorded.
    pub const DURATION_OVER_A_DAY: &str = "duration_over_a_day";
    /// A span ending further in the future than clocks drift: its durations are not recorded.
    pub const FUTURE_TIMESTAMP: &str = "future_timestamp";
    /// A sampling weight above the maximum, counted at the maximum.
    pub const WEIGHT_CLAMPED: &str = "weight_clamped";
    /// An observation that would have made a series infinite or not a number.
    pub const NOT_FINITE: &str = "not_finite";
}

/// Values of the `kind` label of `agent_loop_detected_total`.
pub mod loop_kind {
    pub const REPEATED_TOOL_CALL: &str = "repeated_tool_call";
    pub const DELEGATION_CYCLE: &str = "delegation_cycle";
    pub const CONTEXT_GROWTH: &str = "context_growth";
}

/// Values of the `status` label.
pub mod status {
    pub const OK: &str = "ok";
    pub const ERROR: &str = "error";
}

/// Node-name prefixes in the agent graph, so tools and models read apart from agents.
pub mod graph_node {
    pub const TOOL_PREFIX: &str = "tool:";
    pub const MODEL_PREFIX: &str = "model:";
    /// An MCP server, by `server.address` or the server span's service.
    pub const MCP_PREFIX: &str = "mcp:";
}
