//! The collector's own metric families: what it received, refused, dropped and exported, its
//! queues, memory, connections and windows. They never expire.

use agentrace_semconv::metric::{self, label};

use super::{own, Definition, Kind};

pub(super) const OWN: &[Definition] = &[
    own(
        metric::SELF_SPANS_RECEIVED_TOTAL,
        "Spans received, by transport.",
        Kind::Counter,
        &[label::TRANSPORT],
    ),
    own(
        metric::SELF_SPANS_REFUSED_TOTAL,
        "Spans refused with a retryable answer, by transport and reason.",
        Kind::Counter,
        &[label::TRANSPORT, label::REASON],
    ),
    own(
        metric::SELF_REQUESTS_UNAUTHENTICATED_TOTAL,
        "Requests refused for a missing or wrong bearer token, by transport.",
        Kind::Counter,
        &[label::TRANSPORT],
    ),
    own(metric::SELF_SPANS_EXPORTED_TOTAL, "Spans forwarded to the trace endpoint.", Kind::Counter, &[]),
    own(
        metric::SELF_SPANS_DROPPED_TOTAL,
        "Spans dropped after being received, by reason.",
        Kind::Counter,
        &[label::REASON],
    ),
    own(metric::SELF_EXPORT_RETRIES_TOTAL, "Export attempts retried.", Kind::Counter, &[]),
    own(metric::SELF_QUEUE_DEPTH, "Batches waiting in each queue.", Kind::Gauge, &[label::QUEUE]),
    own(metric::SELF_QUEUE_CAPACITY, "Capacity of each queue, in batches.", Kind::Gauge, &[label::QUEUE]),
    own(metric::SELF_QUEUE_DISK_BYTES, "Bytes held by the persistent export queue.", Kind::Gauge, &[]),
    own(
        metric::SELF_EXPORT_ENDPOINTS,
        "Trace endpoints that spans are routed to by trace id (the gateways found).",
        Kind::Gauge,
        &[],
    ),
    own(
        metric::SELF_GRAPH_UNPAIRED_TOTAL,
        "Agent-graph edges whose caller never arrived within the pairing window.",
        Kind::Counter,
        &[],
    ),
    own(
        metric::SELF_GRAPH_BYTES,
        "Bytes the agent-graph window holds: open traces, their spans, and what waits in them.",
        Kind::Gauge,
        &[],
    ),
    own(
        metric::SELF_GRAPH_MAX_BYTES,
        "Most bytes the agent-graph window may hold (--graph-max-bytes); past it the oldest traces close early.",
        Kind::Gauge,
        &[],
    ),
    own(metric::SELF_BUILD_INFO, "Collector build.", Kind::Gauge, &[label::VERSION]),
    own(metric::SELF_MEMORY_RSS_BYTES, "Resident memory of the collector.", Kind::Gauge, &[]),
    own(
        metric::SELF_MEMORY_LIMIT_BYTES,
        "The resident memory the collector stays under (--memory-limit); receivers refuse above 80 % of it.",
        Kind::Gauge,
        &[],
    ),
    own(
        metric::SELF_GPU_AVAILABLE,
        "1 when NVML is sampling the host's GPUs, 0 otherwise.",
        Kind::Gauge,
        &[],
    ),
    own(
        metric::SELF_GPU_ENRICHMENT_SKIPPED_TOTAL,
        "LLM and model-load spans forwarded without GPU attributes, by reason.",
        Kind::Counter,
        &[label::REASON],
    ),
    own(
        metric::SELF_ATTRIBUTION_PENDING_SPANS,
        "Spans waiting for their agent span to arrive, to be counted under that agent.",
        Kind::Gauge,
        &[],
    ),
    own(
        metric::SELF_ATTRIBUTION_UNRESOLVED_TOTAL,
        "Spans counted without an agent because their enclosing agent span never arrived, by reason.",
        Kind::Counter,
        &[label::REASON],
    ),
    own(
        metric::SELF_SPANS_INVALID_TOTAL,
        "Figures of spans not recorded because they cannot be true, by reason.",
        Kind::Counter,
        &[label::REASON],
    ),
    own(
        metric::SELF_LLM_SPANS_DEDUPLICATED_TOTAL,
        "Inference-server LLM spans not counted because the application's LLM span of the same call counts it.",
        Kind::Counter,
        &[],
    ),
    own(
        metric::SELF_CONVERSATIONS_OPEN,
        "Conversations followed until they go idle.",
        Kind::Gauge,
        &[],
    ),
    own(
        metric::SELF_CONVERSATIONS_OVERFLOW_TOTAL,
        "Conversations not followed because --conversation-max-open were open.",
        Kind::Counter,
        &[],
    ),
    own(
        metric::SELF_MCP_SPANS_DEDUPLICATED_TOTAL,
        "MCP client spans not counted because an MCP client span of the same call above them counts it.",
        Kind::Counter,
        &[],
    ),
    own(
        metric::SELF_CONNECTIONS_CLOSED_TOTAL,
        "Connections the collector closed, by listener and reason (a timeout, the connection cap).",
        Kind::Counter,
        &[label::LISTENER, label::REASON],
    ),
    own(
        metric::SELF_REQUESTS_REFUSED_TOTAL,
        "Requests refused before their spans could be counted, by transport and reason: inflight_bytes (retryable), too_large, malformed, unsupported.",
        Kind::Counter,
        &[label::TRANSPORT, label::REASON],
    ),
    own(
        metric::SELF_INFLIGHT_REQUEST_BYTES,
        "Request body bytes reserved by requests still arriving.",
        Kind::Gauge,
        &[],
    ),
    own(
        metric::SELF_INFLIGHT_REQUEST_BYTES_LIMIT,
        "Most request body bytes that may be arriving at once (--max-inflight-bytes).",
        Kind::Gauge,
        &[],
    ),
    own(
        metric::SELF_SCRAPE_TRUNCATED_TOTAL,
        "Scrapes of /metrics cut at --metrics-max-bytes.",
        Kind::Counter,
        &[],
    ),
    own(metric::SELF_VIEW_TRACES, "Traces the live view's store holds.", Kind::Gauge, &[]),
    own(metric::SELF_VIEW_BYTES, "Memory the live view's store takes, by its account.", Kind::Gauge, &[]),
    own(metric::SELF_VIEW_MAX_BYTES, "Most memory the live view's store may take.", Kind::Gauge, &[]),
    own(
        metric::SELF_VIEW_SPANS_DROPPED_TOTAL,
        "Spans the live view's store let go to stay within its bounds, or did not keep, by reason.",
        Kind::Counter,
        &[label::REASON],
    ),
    own(
        metric::SELF_LOG_RECORDS_RECEIVED_TOTAL,
        "Log records received, by transport.",
        Kind::Counter,
        &[label::TRANSPORT],
    ),
    own(metric::SELF_LOG_RECORDS_EXPORTED_TOTAL, "Log records forwarded to the logs endpoint.", Kind::Counter, &[]),
    own(
        metric::SELF_LOG_RECORDS_DROPPED_TOTAL,
        "Log records given up on after they were received, by reason.",
        Kind::Counter,
        &[label::REASON],
    ),
];
