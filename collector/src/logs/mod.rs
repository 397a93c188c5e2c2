//! OTLP logs: the receivers accept them too (gRPC `LogsService/Export`, `POST /v1/logs` with
//! protobuf or JSON). Each record with an error severity counts in
//! `llm_log_errors_total{service,type}`, its type from the same normaliser as spans; the log
//! rules (`rules.rs`) turn the lines of servers that emit no spans into metrics. With
//! `--logs-endpoint` the requests are forwarded (`export.rs`) with the traces' retry rules and
//! their redaction: content attributes are removed, and so is the body of a GenAI event
//! (`gen_ai.*`) unless `--keep-content`. A request nothing was removed from leaves as the bytes
//! that arrived; records keep their trace ids, so Grafana links a log line to its trace.

mod args;
pub mod decode;
mod export;
mod receive;
mod rules;

use std::sync::Arc;

use agentrace_semconv::{attr, metric, ErrorType};
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use prost::Message;
use smallvec::smallvec;
use tokio::sync::mpsc;

pub use self::args::{Args, LogsConfig};
pub use self::export::LogsExporter;
pub use self::receive::{grpc_export, LOGS_PATH};
pub use self::rules::LogRules;
use crate::enrich::Enricher;
use crate::events::{LogRecordsReceived, Transport};
use crate::metrics::{Label, Observation, Registry};

/// The lowest severity number of an error (OTLP: ERROR is 17 to 20, FATAL 21 to 24).
const ERROR_SEVERITY: i32 = 17;

/// A request waiting to be forwarded: its protobuf encoding and its record count.
#[derive(Debug)]
pub struct Forwarded {
    pub body: Bytes,
    pub records: u64,
}

/// What the receivers hand logs to.
#[derive(Clone, Debug)]
pub struct LogPipeline {
    rules: Arc<LogRules>,
    registry: Arc<Registry>,
    enricher: Enricher,
    /// `None` without `--logs-endpoint`.
    forward: Option<mpsc::Sender<Forwarded>>,
}

/// Why a logs request was not taken: the forwarding queue is full (retryable).
#[derive(Debug, thiserror::Error)]
#[error("the logs forwarding queue is full; retry later")]
pub struct QueueFull;

impl LogPipeline {
    pub fn new(
        rules: Arc<LogRules>,
        registry: Arc<Registry>,
        enricher: Enricher,
        forward: Option<mpsc::Sender<Forwarded>>,
    ) -> Self {
        Self { rules, registry, enricher, forward }
    }

    /// Derives the request's metrics and queues it for forwarding. `received` is the protobuf
    /// the request arrived as (none when it came as JSON). Refused, before anything is counted,
    /// when the forwarding queue is full.
    pub fn accept(
        &self,
        mut request: ExportLogsServiceRequest,
        received: Option<Bytes>,
        transport: Transport,
    ) -> Result<(), QueueFull> {
        let permit = match &self.forward {
            Some(queue) => Some(queue.try_reserve().map_err(|_| QueueFull)?),
            None => None,
        };
        let records = derive(&self.rules, &self.registry, &request);
        self.registry.emit(LogRecordsReceived { transport, records });
        if let Some(permit) = permit {
            let changed = redact(&self.enricher, &mut request);
            let body = match received {
                Some(bytes) if !changed => bytes,
                _ => Bytes::from(request.encode_to_vec()),
            };
            permit.send(Forwarded { body, records });
        }
        Ok(())
    }

    /// The pipeline of `config`, and the exporter forwarding its logs when `--logs-endpoint`
    /// is set (its queue closes when the last receiver holding the pipeline is gone).
    pub fn configured(
        config: &crate::Config,
        registry: &Arc<Registry>,
        hard_stop: &tokio_util::sync::CancellationToken,
    ) -> anyhow::Result<(Self, Option<tokio::task::JoinHandle<()>>)> {
        let (forward, exporter) = match &config.logs.endpoint {
            Some(endpoint) => {
                let max_retry = config
                    .export
                    .as_ref()
                    .and_then(|export| export.max_retry)
                    .unwrap_or(std::time::Duration::from_secs_f64(crate::export::DEFAULT_MAX_RETRY_SECS));
                let exporter = LogsExporter::new(endpoint, registry.clone(), max_retry)?;
                let (sender, receiver) = mpsc::channel(export::QUEUE_CAPACITY);
                (Some(sender), Some(tokio::spawn(exporter.run(receiver, hard_stop.clone()))))
            }
            None => (None, None),
        };
        let pipeline =
            Self::new(config.logs.rules.clone(), registry.clone(), config.enricher.clone(), forward);
        Ok((pipeline, exporter))
    }
}

fn text(value: Option<&AnyValue>) -> Option<&str> {
    match value?.value.as_ref()? {
        any_value::Value::StringValue(text) => Some(text),
        _ => None,
    }
}

fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| text(kv.value.as_ref()))
}

/// Applies the rules and the error count to every record; returns how many there were.
pub fn derive(rules: &LogRules, registry: &Registry, request: &ExportLogsServiceRequest) -> u64 {
    let mut out = Vec::new();
    let mut records = 0u64;
    for resource_logs in &request.resource_logs {
        let resource = resource_logs.resource.as_ref().map(|resource| resource.attributes.as_slice());
        let service = resource
            .and_then(|attributes| attribute(attributes, attr::SERVICE_NAME))
            .unwrap_or("unknown_service");
        for record in resource_logs.scope_logs.iter().flat_map(|scope| &scope.log_records) {
            records += 1;
            let body = text(record.body.as_ref()).unwrap_or_default();
            let applied = rules.apply(service, body, &mut out);
            let severe = record.severity_number >= ERROR_SEVERITY
                || (record.severity_number == 0
                    && matches!(
                        record.severity_text.to_ascii_uppercase().as_str(),
                        "ERROR" | "FATAL" | "CRITICAL"
                    ));
            if severe && !applied.counted_error {
                let texts = [
                    attribute(&record.attributes, attr::EXCEPTION_TYPE).unwrap_or_default(),
                    attribute(&record.attributes, attr::EXCEPTION_MESSAGE).unwrap_or_default(),
                    body,
                ];
                let kind = ErrorType::classify_all(texts).unwrap_or(ErrorType::Other);
                let labels = smallvec![Label::Borrowed(service), Label::Borrowed(kind.as_str())];
                out.push(Observation::new(metric::LLM_LOG_ERRORS_TOTAL, labels, 1.0, None));
            }
        }
    }
    registry.apply(&mut out, crate::unix_now());
    records
}

/// Removes what forwarded spans would not carry: content attributes, and a GenAI event's body
/// unless content is kept. True when anything was removed.
fn redact(enricher: &Enricher, request: &mut ExportLogsServiceRequest) -> bool {
    let mut changed = false;
    for record in request
        .resource_logs
        .iter_mut()
        .flat_map(|resource| &mut resource.scope_logs)
        .flat_map(|scope| &mut scope.log_records)
    {
        let before = record.attributes.len();
        record.attributes.retain(|kv| !enricher.redacts(kv.key.as_bytes()));
        changed |= record.attributes.len() != before;
        let event = if record.event_name.is_empty() {
            attribute(&record.attributes, "event.name").unwrap_or_default()
        } else {
            record.event_name.as_str()
        };
        if event.starts_with("gen_ai.") && !enricher.keeps_content() && record.body.is_some() {
            record.body = None;
            changed = true;
        }
    }
    changed
}

/// The fuzz target's entry: `input` up to its first NUL is a rule file, after it a log line.
/// Parsing the rules must not panic; the line goes through the rules that parsed (or the
/// built-in ones) and through the built-in ones, which must not panic either.
pub fn fuzz_rules(input: &[u8]) -> usize {
    let text = String::from_utf8_lossy(input);
    let (rules_text, line) = text.split_once('\0').unwrap_or((text.as_ref(), text.as_ref()));
    let builtin = LogRules::builtin();
    let mut out = Vec::new();
    let mut matched = builtin.apply("fuzz", line, &mut out).matched;
    if let Ok(rules) = LogRules::parse(rules_text) {
        matched += rules.apply("fuzz", line, &mut out).matched;
    }
    matched
}

#[cfg(test)]
mod tests;
