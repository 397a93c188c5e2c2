//! Span and resource attribute keys.
//!
//! GenAI keys follow the OpenTelemetry GenAI semantic conventions; the `agentrace.*` keys are
//! this project's own, for what those conventions do not (yet) name.

// --- resource -------------------------------------------------------------------------------
pub const SERVICE_NAME: &str = "service.name";
pub const SERVICE_INSTANCE_ID: &str = "service.instance.id";
pub const PROCESS_PID: &str = "process.pid";
pub const HOST_NAME: &str = "host.name";

// --- GenAI, current names -------------------------------------------------------------------
pub const GEN_AI_OPERATION_NAME: &str = "gen_ai.operation.name";
pub const GEN_AI_PROVIDER_NAME: &str = "gen_ai.provider.name";
pub const GEN_AI_REQUEST_MODEL: &str = "gen_ai.request.model";
pub const GEN_AI_RESPONSE_MODEL: &str = "gen_ai.response.model";
pub const GEN_AI_RESPONSE_ID: &str = "gen_ai.response.id";
pub const GEN_AI_RESPONSE_FINISH_REASONS: &str = "gen_ai.response.finish_reasons";
pub const GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: &str = "gen_ai.response.time_to_first_chunk";
pub const GEN_AI_REQUEST_MAX_TOKENS: &str = "gen_ai.request.max_tokens";
pub const GEN_AI_REQUEST_TEMPERATURE: &str = "gen_ai.request.temperature";
pub const GEN_AI_REQUEST_TOP_P: &str = "gen_ai.request.top_p";
pub const GEN_AI_REQUEST_STREAM: &str = "gen_ai.request.stream";
pub const GEN_AI_USAGE_INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
pub const GEN_AI_USAGE_OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
pub const GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: &str = "gen_ai.usage.cache_read.input_tokens";
pub const GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: &str = "gen_ai.usage.reasoning.output_tokens";
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
}

// --- errors ---------------------------------------------------------------------------------
pub const ERROR_TYPE: &str = "error.type";
pub const EXCEPTION_EVENT: &str = "exception";
pub const EXCEPTION_TYPE: &str = "exception.type";
pub const EXCEPTION_MESSAGE: &str = "exception.message";

// --- agentrace's own ------------------------------------------------------------------------
/// Low-cardinality name of an agent step (plan, act, reflect…).
pub const AGENTRACE_STEP_NAME: &str = "agentrace.step.name";
