//! Span and resource attribute keys.
//!
//! GenAI keys follow the OpenTelemetry GenAI semantic conventions; the `agentrace.*` keys are
//! this project's own, for what those conventions do not (yet) name.

// --- resource -------------------------------------------------------------------------------
pub const SERVICE_NAME: &str = "service.name";
pub const SERVICE_INSTANCE_ID: &str = "service.instance.id";
pub const PROCESS_PID: &str = "process.pid";
pub const HOST_NAME: &str = "host.name";
/// The Kubernetes node a pod runs on (resource attribute).
pub const K8S_NODE_NAME: &str = "k8s.node.name";

// --- GenAI, current names -------------------------------------------------------------------
pub const GEN_AI_OPERATION_NAME: &str = "gen_ai.operation.name";
pub const GEN_AI_PROVIDER_NAME: &str = "gen_ai.provider.name";
pub const GEN_AI_REQUEST_MODEL: &str = "gen_ai.request.model";
pub const GEN_AI_RESPONSE_MODEL: &str = "gen_ai.response.model";
pub const GEN_AI_RESPONSE_ID: &str = "gen_ai.response.id";
pub const GEN_AI_RESPONSE_FINISH_REASONS: &str = "gen_ai.response.finish_reasons";
pub const GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: &str = "gen_ai.response.time_to_first_chunk";
/// Seconds to the first streamed chunk, as pydantic-ai (2.68) writes it on `chat` spans.
pub const GEN_AI_CLIENT_TIME_TO_FIRST_CHUNK: &str = "gen_ai.client.operation.time_to_first_chunk";
pub const GEN_AI_REQUEST_MAX_TOKENS: &str = "gen_ai.request.max_tokens";
pub const GEN_AI_REQUEST_TEMPERATURE: &str = "gen_ai.request.temperature";
pub const GEN_AI_REQUEST_TOP_P: &str = "gen_ai.request.top_p";
pub const GEN_AI_REQUEST_STREAM: &str = "gen_ai.request.stream";
pub const GEN_AI_USAGE_INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
pub const GEN_AI_USAGE_OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
pub const GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: &str = "gen_ai.usage.cache_read.input_tokens";
pub const GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: &str = "gen_ai.usage.reasoning.output_tokens";
pub const GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: &str = "gen_ai.usage.cache_write.input_tokens";
/// Per-modality usage (GenAI v0.1.0): `gen_ai.usage.{text,image,audio}.{input,output}_tokens`.
pub const GEN_AI_USAGE_TEXT_INPUT_TOKENS: &str = "gen_ai.usage.text.input_tokens";
pub const GEN_AI_USAGE_IMAGE_INPUT_TOKENS: &str = "gen_ai.usage.image.input_tokens";
pub const GEN_AI_USAGE_AUDIO_INPUT_TOKENS: &str = "gen_ai.usage.audio.input_tokens";
pub const GEN_AI_USAGE_TEXT_OUTPUT_TOKENS: &str = "gen_ai.usage.text.output_tokens";
pub const GEN_AI_USAGE_IMAGE_OUTPUT_TOKENS: &str = "gen_ai.usage.image.output_tokens";
pub const GEN_AI_USAGE_AUDIO_OUTPUT_TOKENS: &str = "gen_ai.usage.audio.output_tokens";
pub const GEN_AI_PROMPT_NAME: &str = "gen_ai.prompt.name";
pub const GEN_AI_PROMPT_VERSION: &str = "gen_ai.prompt.version";
pub const GEN_AI_AGENT_NAME: &str = "gen_ai.agent.name";
pub const GEN_AI_AGENT_ID: &str = "gen_ai.agent.id";
pub const GEN_AI_TOOL_NAME: &str = "gen_ai.tool.name";
pub const GEN_AI_TOOL_CALL_ID: &str = "gen_ai.tool.call.id";
pub const GEN_AI_TOOL_TYPE: &str = "gen_ai.tool.type";
pub const GEN_AI_CONVERSATION_ID: &str = "gen_ai.conversation.id";
pub const GEN_AI_INPUT_MESSAGES: &str = "gen_ai.input.messages";
pub const GEN_AI_OUTPUT_MESSAGES: &str = "gen_ai.output.messages";

// --- GenAI, deprecated names still sent by older instrumentations ---------------------------
pub const GEN_AI_SYSTEM: &str = "gen_ai.system";
pub const GEN_AI_USAGE_PROMPT_TOKENS: &str = "gen_ai.usage.prompt_tokens";
pub const GEN_AI_USAGE_COMPLETION_TOKENS: &str = "gen_ai.usage.completion_tokens";
pub const GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS_OLD: &str = "gen_ai.usage.cache_read_input_tokens";
pub const GEN_AI_USAGE_REASONING_TOKENS_OLD: &str = "gen_ai.usage.reasoning_tokens";
/// Renamed `gen_ai.usage.cache_write.input_tokens` in GenAI v0.1.0.
pub const GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: &str = "gen_ai.usage.cache_creation.input_tokens";
/// How OpenLLMetry's Anthropic and Bedrock instrumentations spell cache writes.
pub const GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS_OLD: &str = "gen_ai.usage.cache_creation_input_tokens";

// --- GenAI operation names (values of gen_ai.operation.name) --------------------------------
pub mod operation {
    pub const CHAT: &str = "chat";
    pub const TEXT_COMPLETION: &str = "text_completion";
    pub const GENERATE_CONTENT: &str = "generate_content";
    pub const EMBEDDINGS: &str = "embeddings";
    pub const INVOKE_AGENT: &str = "invoke_agent";
    pub const CREATE_AGENT: &str = "create_agent";
    pub const EXECUTE_TOOL: &str = "execute_tool";
    /// Not (yet) a GenAI operation: loading weights into an inference server.
    pub const LOAD_MODEL: &str = "load_model";
    /// Not a GenAI operation: one named step of an agent invocation.
    pub const AGENT_STEP: &str = "agent_step";
    pub const PLAN: &str = "plan";
    pub const RETRIEVAL: &str = "retrieval";
    pub const APPLY_GUARDRAIL: &str = "apply_guardrail";
    /// Memory operations: an agent calls its memory as it calls a tool.
    pub const MEMORY: &[&str] = &[
        "create_memory_store",
        "delete_memory_store",
        "create_memory",
        "update_memory",
        "upsert_memory",
        "search_memory",
        "delete_memory",
    ];
}

// --- guardrails (GenAI `gen_ai.guardrail.result` event) --------------------------------------
pub const GEN_AI_GUARDRAIL_RESULT_EVENT: &str = "gen_ai.guardrail.result";
pub const GEN_AI_GUARDRAIL_COMPONENT_NAME: &str = "gen_ai.guardrail.component.name";
/// Provider-native outcome (`GUARDRAIL_INTERVENED`, `true`, `MATCH_FOUND`): the `decision` label.
pub const GEN_AI_GUARDRAIL_RESULT_VALUE: &str = "gen_ai.guardrail.result.value";

// --- MCP (Model Context Protocol) -----------------------------------------------------------
pub mod mcp {
    pub const METHOD_NAME: &str = "mcp.method.name";
    pub const SESSION_ID: &str = "mcp.session.id";
    pub const RESOURCE_URI: &str = "mcp.resource.uri";
    /// The method of a tool call.
    pub const TOOLS_CALL: &str = "tools/call";
}

// --- A2A (agent-to-agent protocol) ----------------------------------------------------------
pub mod a2a {
    /// On `a2a.client` spans, whose `gen_ai.agent.name` is the remote agent's (from its card).
    pub const METHOD_NAME: &str = "a2a.method.name";
}

pub const SERVER_ADDRESS: &str = "server.address";

// --- errors ---------------------------------------------------------------------------------
pub const ERROR_TYPE: &str = "error.type";
pub const EXCEPTION_EVENT: &str = "exception";
pub const EXCEPTION_TYPE: &str = "exception.type";
pub const EXCEPTION_MESSAGE: &str = "exception.message";

// --- evaluations (GenAI `gen_ai.evaluation.result` event) -------------------------------------
pub const GEN_AI_EVALUATION_RESULT_EVENT: &str = "gen_ai.evaluation.result";
pub const GEN_AI_EVALUATION_NAME: &str = "gen_ai.evaluation.name";
pub const GEN_AI_EVALUATION_SCORE_VALUE: &str = "gen_ai.evaluation.score.value";
pub const GEN_AI_EVALUATION_SCORE_LABEL: &str = "gen_ai.evaluation.score.label";

// --- sampling ---------------------------------------------------------------------------------
/// How many spans this one represents, set by samplers that record their rate.
pub const SAMPLING_ADJUSTED_COUNT: &str = "sampling.adjusted_count";

// --- agentrace's own ------------------------------------------------------------------------
/// The call's cost in US dollars, added by the collector to forwarded LLM spans.
pub const AGENTRACE_COST_USD: &str = "agentrace.cost.usd";
/// GPU picture of an LLM or model-load span's time window, added by the collector: the GPUs
/// counted (comma-separated UUIDs), their utilization (ratio, 0–1) averaged over the window
/// and at its peak, the peak memory used, and the average power they drew together.
pub const AGENTRACE_GPU_UUID: &str = "agentrace.gpu.uuid";
pub const AGENTRACE_GPU_UTILIZATION_AVG: &str = "agentrace.gpu.utilization.avg";
pub const AGENTRACE_GPU_UTILIZATION_MAX: &str = "agentrace.gpu.utilization.max";
pub const AGENTRACE_GPU_MEMORY_USED_MAX_BYTES: &str = "agentrace.gpu.memory.used.max_bytes";
pub const AGENTRACE_GPU_POWER_AVG_WATTS: &str = "agentrace.gpu.power.avg_watts";
/// The same window's GPU time (utilization integrated over it, seconds, summed over the GPUs
/// counted), the energy they drew (joules), and their model names (comma-separated, in the
/// order of the UUIDs): what a gateway collector counts per agent for spans a node enriched.
pub const AGENTRACE_GPU_SECONDS: &str = "agentrace.gpu.seconds";
pub const AGENTRACE_GPU_ENERGY_JOULES: &str = "agentrace.gpu.energy_joules";
pub const AGENTRACE_GPU_NAME: &str = "agentrace.gpu.name";
/// Low-cardinality name of an agent step (plan, act, reflect…).
pub const AGENTRACE_STEP_NAME: &str = "agentrace.step.name";

// --- other dialects' own keys ---------------------------------------------------------------

/// OpenInference (Arize Phoenix) semantic conventions.
pub mod openinference {
    pub const SPAN_KIND: &str = "openinference.span.kind";
    pub const LLM_MODEL_NAME: &str = "llm.model_name";
    pub const LLM_REQUEST_MODEL_NAME: &str = "llm.request.model_name";
    pub const LLM_RESPONSE_MODEL_NAME: &str = "llm.response.model_name";
    pub const EMBEDDING_MODEL_NAME: &str = "embedding.model_name";
    pub const LLM_PROVIDER: &str = "llm.provider";
    pub const LLM_SYSTEM: &str = "llm.system";
    pub const TOKEN_COUNT_PROMPT: &str = "llm.token_count.prompt";
    pub const TOKEN_COUNT_COMPLETION: &str = "llm.token_count.completion";
    pub const TOKEN_COUNT_TOTAL: &str = "llm.token_count.total";
    pub const TOKEN_COUNT_CACHE_READ: &str = "llm.token_count.prompt_details.cache_read";
    pub const TOKEN_COUNT_REASONING: &str = "llm.token_count.completion_details.reasoning";
    pub const TOOL_NAME: &str = "tool.name";
    pub const AGENT_NAME: &str = "agent.name";
    /// A node of the agent graph: the agent's name on agent spans (openai-agents, CrewAI).
    pub const GRAPH_NODE_ID: &str = "graph.node.id";
    pub const SESSION_ID: &str = "session.id";
    pub const USER_ID: &str = "user.id";
    pub const TOKEN_COUNT_CACHE_WRITE: &str = "llm.token_count.prompt_details.cache_write";
    /// Span event the OpenInference instrumentations add on the first streamed chunk.
    pub const FIRST_TOKEN_EVENT: &str = "First Token Stream Event";
    /// Evaluation results on the judged span: `evaluations.<i>.evaluation.{name,score,…}`, and
    /// the same under `annotations.<i>.annotation.`.
    pub const EVALUATIONS_PREFIX: &str = "evaluations.";
    pub const EVALUATION_NAME_SUFFIX: &str = ".evaluation.name";
    pub const EVALUATION_SCORE_SUFFIX: &str = ".evaluation.score";
    pub const ANNOTATIONS_PREFIX: &str = "annotations.";
    pub const ANNOTATION_NAME_SUFFIX: &str = ".annotation.name";
    pub const ANNOTATION_SCORE_SUFFIX: &str = ".annotation.score";
}

/// OpenLLMetry (Traceloop) semantic conventions; its `gen_ai.*` keys are the deprecated GenAI
/// names.
/// Attributes that only one agent framework writes, read by the framework rules
/// (`dialect/frameworks.rs`).
pub mod framework {
    /// AG2: what a span records (`agent`, `llm`, `tool`, `usage`).
    pub const AG2_SPAN_TYPE: &str = "ag2.span.type";
    pub const AG2_USAGE: &str = "usage";
    /// LangChain (OpenInference): a JSON object of run metadata on every span.
    pub const LANGCHAIN_METADATA: &str = "metadata";
    /// ...which names the agent (a graph made with `create_agent(name=…)`) under this key.
    pub const LANGCHAIN_AGENT_NAME: &str = "lc_agent_name";
    /// Strands writes the framework's own name here, not the model provider's.
    pub const STRANDS_SYSTEM: &str = "strands-agents";
}

pub mod openllmetry {
    pub const SPAN_KIND: &str = "traceloop.span.kind";
    pub const ENTITY_NAME: &str = "traceloop.entity.name";
    pub const WORKFLOW_NAME: &str = "traceloop.workflow.name";
    pub const REQUEST_TYPE: &str = "llm.request.type";
    pub const USAGE_TOTAL_TOKENS: &str = "llm.usage.total_tokens";
    pub const IS_STREAMING: &str = "llm.is_streaming";
    /// Span event per streamed chunk; the first one marks the first token.
    pub const COMPLETION_CHUNK_EVENT: &str = "llm.content.completion.chunk";
    /// Association properties on every span of the context: the session, or conversation.
    pub const SESSION_ID: &str = "traceloop.association.properties.session_id";
    pub const CONVERSATION_ID: &str = "traceloop.association.properties.conversation_id";
}

/// OpenLIT; most of its keys are GenAI names, current or deprecated.
pub mod openlit {
    pub const SERVER_TIME_TO_FIRST_TOKEN: &str = "gen_ai.server.time_to_first_token";
    pub const USAGE_TOTAL_TOKENS: &str = "gen_ai.usage.total_tokens";
    pub const USAGE_COST: &str = "gen_ai.usage.cost";
}

/// vLLM's request span (`llm_request`, kind SERVER).
pub mod vllm {
    pub const LATENCY_TIME_TO_FIRST_TOKEN: &str = "gen_ai.latency.time_to_first_token";
    pub const LATENCY_E2E: &str = "gen_ai.latency.e2e";
    pub const LATENCY_TIME_IN_QUEUE: &str = "gen_ai.latency.time_in_queue";
    pub const USAGE_CACHED_TOKENS: &str = "gen_ai.usage.cached_tokens";
    pub const REQUEST_ID: &str = "gen_ai.request.id";
    /// What vLLM is, as a provider: it serves its own models.
    pub const PROVIDER: &str = "vllm";
}

/// Attributes that carry prompt, completion, tool-argument or document content, in every
/// dialect. The collector drops them before forwarding unless told to keep content. A key
/// ending in `.` is a prefix (OpenInference and OpenLLMetry index their messages:
/// `llm.input_messages.0.message.content`, `gen_ai.prompt.0.content`).
pub const CONTENT_KEYS: &[&str] = &[
    // GenAI, current and deprecated
    GEN_AI_INPUT_MESSAGES,
    GEN_AI_OUTPUT_MESSAGES,
    "gen_ai.system_instructions",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
    "gen_ai.prompt",
    "gen_ai.completion",
    "gen_ai.prompt.",
    "gen_ai.completion.",
    // OpenLIT
    "gen_ai.content.prompt",
    "gen_ai.content.completion",
    // OpenInference
    "input.value",
    "output.value",
    "llm.input_messages.",
    "llm.output_messages.",
    "llm.prompts",
    "llm.prompt_template.template",
    "llm.prompt_template.variables",
    "retrieval.documents.",
    "reranker.input_documents.",
    "reranker.output_documents.",
    "embedding.embeddings.",
    // OpenLLMetry
    "traceloop.entity.input",
    "traceloop.entity.output",
    // Event bodies as attributes (GenAI events, and instrumentations that name them so)
    "content",
    "gen_ai.event.content",
    // The Vercel AI SDK
    "ai.prompt",
    "ai.prompt.",
    "ai.response.text",
    "ai.response.object",
    "ai.response.toolCalls",
    "ai.response.reasoning",
    "ai.toolCall.args",
    "ai.toolCall.result",
    "ai.value",
    "ai.values",
];

/// Where each dialect puts a tool call's arguments (content: read only to compare calls).
pub const TOOL_ARGUMENTS_KEYS: &[&str] =
    &["gen_ai.tool.call.arguments", "input.value", "traceloop.entity.input"];

/// Keys under a content prefix that are names, not content: `gen_ai.prompt.name` is a template's
/// name, while `gen_ai.prompt.0.content` is a message.
pub const NOT_CONTENT_KEYS: &[&str] = &[GEN_AI_PROMPT_NAME, GEN_AI_PROMPT_VERSION];

/// Whether `key` is listed in `keys`, where an entry ending in `.` matches as a prefix.
pub fn matches_key(keys: &[impl AsRef<str>], key: &str) -> bool {
    keys.iter().any(|entry| {
        let entry = entry.as_ref();
        if entry.ends_with('.') {
            key.starts_with(entry)
        } else {
            key == entry
        }
    })
}
