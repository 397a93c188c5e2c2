//! The fixed-seed workloads: the same seed gives the same requests, byte for byte.
//!
//! | workload | per request |
//! |---|---|
//! | W0 | 100 minimal spans (ids, name, times) under one resource |
//! | W1 | 512 LLM-like spans under 3 resources: agent invocations, tool calls and chat calls with about 20 GenAI attributes each |
//! | W2 | 10 minimal spans |

use agentrace_semconv::attr;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    W0,
    W1,
    W2,
}

impl Workload {
    pub fn spans_per_request(self) -> usize {
        match self {
            Self::W0 => 100,
            Self::W1 => 512,
            Self::W2 => 10,
        }
    }
}

const MODELS: [&str; 4] =
    ["llama-3.1-8b-instruct", "llama-3.1-70b-instruct", "qwen2.5-7b-instruct", "gpt-4o"];
const AGENTS: [&str; 3] = ["planner", "researcher", "writer"];
const TOOLS: [&str; 3] = ["web_search", "calculator", "retriever"];

fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.to_owned())) }),
        ..Default::default()
    }
}

fn int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(any_value::Value::IntValue(value)) }),
        ..Default::default()
    }
}

fn double(key: &str, value: f64) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(any_value::Value::DoubleValue(value)) }),
        ..Default::default()
    }
}

/// Builds request number `sequence` of a run seeded with `seed`. Span ids encode the
/// sequence, so a sink can count distinct spans.
pub struct Generator {
    workload: Workload,
    rng: StdRng,
    now_nanos: u64,
}

impl Generator {
    pub fn new(workload: Workload, seed: u64, now_nanos: u64) -> Self {
        Self { workload, rng: StdRng::seed_from_u64(seed), now_nanos }
    }

    pub fn request(&mut self, sequence: u64) -> ExportTraceServiceRequest {
        match self.workload {
            Workload::W0 => self.minimal(sequence, 100),
            Workload::W2 => self.minimal(sequence, 10),
            Workload::W1 => self.llm_like(sequence),
        }
    }

    /// The trace id of trace `group` of request `sequence` (`salt`, drawn once per request,
    /// fills the rest), and the span id of span `index`: unique across a run (up to 65 536
    /// spans a request).
    fn ids(sequence: u64, salt: u64, group: usize, index: usize) -> (Vec<u8>, Vec<u8>) {
        let mut trace_id = [0u8; 16];
        trace_id[..8].copy_from_slice(&sequence.to_be_bytes());
        trace_id[8..].copy_from_slice(&(((group as u64) << 48) | (salt >> 16) | 1).to_be_bytes());
        let span_id = ((sequence << 16) | index as u64 | 1 << 63).to_be_bytes().to_vec();
        (trace_id.to_vec(), span_id)
    }

    fn minimal(&mut self, sequence: u64, count: usize) -> ExportTraceServiceRequest {
        let salt = self.rng.random::<u64>();
        let spans = (0..count)
            .map(|index| {
                let (trace_id, span_id) = Self::ids(sequence, salt, index, index);
                Span {
                    trace_id,
                    span_id,
                    name: "GET /".to_owned(),
                    kind: span::SpanKind::Server as i32,
                    start_time_unix_nano: self.now_nanos,
                    end_time_unix_nano: self.now_nanos + 1_000_000,
                    ..Default::default()
                }
            })
            .collect();
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![text(attr::SERVICE_NAME, "loadgen")],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
                ..Default::default()
            }],
        }
    }

    /// 512 spans in 3 resources; in each trace an agent invocation, a tool call and chat calls.
    fn llm_like(&mut self, sequence: u64) -> ExportTraceServiceRequest {
        let mut resources: Vec<ResourceSpans> = (0..3)
            .map(|resource| ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        text(attr::SERVICE_NAME, &format!("agents-{resource}")),
                        int(attr::PROCESS_PID, 1000 + resource),
                        text(attr::HOST_NAME, "loadgen-host"),
                        text("deployment.environment.name", "bench"),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans::default()],
                ..Default::default()
            })
            .collect();
        let mut parent = Vec::new();
        let salt = self.rng.random::<u64>();
        for index in 0..Workload::W1.spans_per_request() {
            // Eight spans a trace: an agent invocation, a tool call and six chat calls under it.
            let (trace_id, span_id) = Self::ids(sequence, salt, index / 8, index);
            let agent = AGENTS[self.rng.random_range(0..AGENTS.len())];
            let model = MODELS[self.rng.random_range(0..MODELS.len())];
            let start = self.now_nanos + self.rng.random_range(0..1_000_000_000u64);
            let duration = self.rng.random_range(50_000_000..4_000_000_000u64);
            let (name, attributes) = match index % 8 {
                0 => {
                    parent = span_id.clone();
                    (
                        format!("invoke_agent {agent}"),
                        vec![
                            text(attr::GEN_AI_OPERATION_NAME, "invoke_agent"),
                            text(attr::GEN_AI_AGENT_NAME, agent),
                            text(attr::GEN_AI_AGENT_ID, &format!("{agent}-{}", index % 5)),
                            text(attr::GEN_AI_CONVERSATION_ID, &format!("conv-{}", sequence % 97)),
                            text(attr::GEN_AI_PROVIDER_NAME, "vllm"),
                        ],
                    )
                }
                1 => {
                    let tool = TOOLS[self.rng.random_range(0..TOOLS.len())];
                    (
                        format!("execute_tool {tool}"),
                        vec![
                            text(attr::GEN_AI_OPERATION_NAME, "execute_tool"),
                            text(attr::GEN_AI_TOOL_NAME, tool),
                            text(attr::GEN_AI_TOOL_CALL_ID, &format!("call-{index}")),
                            text(attr::GEN_AI_TOOL_TYPE, "function"),
                            text(attr::GEN_AI_AGENT_NAME, agent),
                        ],
                    )
                }
                _ => {
                    let input = self.rng.random_range(100..4000);
                    let output = self.rng.random_range(10..800);
                    let mut attributes = vec![
                        text(attr::GEN_AI_OPERATION_NAME, "chat"),
                        text(attr::GEN_AI_PROVIDER_NAME, "vllm"),
                        text(attr::GEN_AI_REQUEST_MODEL, model),
                        text(attr::GEN_AI_RESPONSE_MODEL, model),
                        text(attr::GEN_AI_AGENT_NAME, agent),
                        text(attr::GEN_AI_RESPONSE_ID, &format!("cmpl-{sequence}-{index}")),
                        double(attr::GEN_AI_REQUEST_TEMPERATURE, 0.7),
                        double(attr::GEN_AI_REQUEST_TOP_P, 0.95),
                        int(attr::GEN_AI_REQUEST_MAX_TOKENS, 1024),
                        int(attr::GEN_AI_USAGE_INPUT_TOKENS, input),
                        int(attr::GEN_AI_USAGE_OUTPUT_TOKENS, output),
                        int(attr::GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, input / 4),
                        double(attr::GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, self.rng.random_range(0.02..0.8)),
                        text(attr::GEN_AI_RESPONSE_FINISH_REASONS, "stop"),
                        text(attr::GEN_AI_CONVERSATION_ID, &format!("conv-{}", sequence % 97)),
                        text("server.address", "vllm.internal"),
                        int("server.port", 8000),
                        text("http.request.method", "POST"),
                        text("url.path", "/v1/chat/completions"),
                    ];
                    if self.rng.random_range(0..50) == 0 {
                        attributes.push(text(attr::ERROR_TYPE, "timeout"));
                    }
                    (format!("chat {model}"), attributes)
                }
            };
            let span = Span {
                trace_id,
                span_id,
                parent_span_id: if index % 8 == 0 { Vec::new() } else { parent.clone() },
                name,
                kind: if index % 8 >= 2 { span::SpanKind::Client } else { span::SpanKind::Internal } as i32,
                start_time_unix_nano: start,
                end_time_unix_nano: start + duration,
                attributes,
                ..Default::default()
            };
            resources[index % 3].scope_spans[0].spans.push(span);
        }
        ExportTraceServiceRequest { resource_spans: resources }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn spans(request: &ExportTraceServiceRequest) -> Vec<&Span> {
        request
            .resource_spans
            .iter()
            .flat_map(|resource| &resource.scope_spans)
            .flat_map(|scope| &scope.spans)
            .collect()
    }

    #[test]
    fn workloads_have_their_shapes() {
        for workload in [Workload::W0, Workload::W1, Workload::W2] {
            let request = Generator::new(workload, 1, 0).request(0);
            assert_eq!(spans(&request).len(), workload.spans_per_request(), "{workload:?}");
        }
        let w1 = Generator::new(Workload::W1, 1, 0).request(0);
        assert_eq!(w1.resource_spans.len(), 3);
        let attributes: usize = spans(&w1).iter().map(|span| span.attributes.len()).sum();
        let average = attributes as f64 / 512.0;
        assert!((14.0..=20.0).contains(&average), "about 20 attributes per span: {average}");
        // 64 traces of 8 spans; every child's parent is the agent span of its own trace.
        let by_id: std::collections::HashMap<&[u8], &Span> =
            spans(&w1).into_iter().map(|span| (span.span_id.as_slice(), span)).collect();
        let traces: std::collections::HashSet<&[u8]> =
            by_id.values().map(|span| span.trace_id.as_slice()).collect();
        assert_eq!(traces.len(), 64);
        for span in by_id.values().filter(|span| !span.parent_span_id.is_empty()) {
            let parent = by_id[span.parent_span_id.as_slice()];
            assert_eq!(parent.trace_id, span.trace_id, "{} is in its parent's trace", span.name);
            assert!(parent.name.starts_with("invoke_agent "), "{}", parent.name);
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_bytes_and_span_ids_are_distinct() {
        let first = Generator::new(Workload::W1, 7, 0).request(3).encode_to_vec();
        let again = Generator::new(Workload::W1, 7, 0).request(3).encode_to_vec();
        assert_eq!(first, again);
        let mut generator = Generator::new(Workload::W1, 7, 0);
        let mut ids = std::collections::HashSet::new();
        for sequence in 0..4 {
            for span in spans(&generator.request(sequence)) {
                assert!(ids.insert(span.span_id.clone()), "span ids are distinct across requests");
            }
        }
    }
}
