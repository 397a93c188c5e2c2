//! Logs requests decoded by prost, once a walk of their bytes has found that they would not
//! take more memory than a trace request of their size may (`receive::decode`): a body of empty
//! log records, 2 bytes each on the wire and 184 in memory, took 3 GB for 16 MiB. The walk
//! follows the messages that hold lists and charges each element of a list what it takes (a
//! vector that grows may hold up to twice that); strings and numbers take no more than their
//! bytes, and are not charged.

use std::mem::size_of;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, EntityRef, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use prost::Message;

use crate::receive::decode::{decoded_budget, json_decoded_bytes, DecodeError};
use crate::receive::walk::{weigh, Shape, LEAF};

static REQUEST: Shape = Shape(&[(1, size_of::<ResourceLogs>(), &RESOURCE_LOGS)]);
static RESOURCE_LOGS: Shape = Shape(&[(1, 0, &RESOURCE), (2, size_of::<ScopeLogs>(), &SCOPE_LOGS)]);
static RESOURCE: Shape =
    Shape(&[(1, size_of::<KeyValue>(), &KEY_VALUE), (3, size_of::<EntityRef>(), &ENTITY)]);
/// Its lists of keys are strings, each a `String` in memory however short.
static ENTITY: Shape = Shape(&[(3, size_of::<String>(), &LEAF), (4, size_of::<String>(), &LEAF)]);
static SCOPE_LOGS: Shape = Shape(&[(1, 0, &SCOPE), (2, size_of::<LogRecord>(), &LOG_RECORD)]);
static SCOPE: Shape = Shape(&[(3, size_of::<KeyValue>(), &KEY_VALUE)]);
static LOG_RECORD: Shape = Shape(&[(5, 0, &ANY_VALUE), (6, size_of::<KeyValue>(), &KEY_VALUE)]);
static KEY_VALUE: Shape = Shape(&[(2, 0, &ANY_VALUE)]);
static ANY_VALUE: Shape = Shape(&[(5, 0, &ARRAY), (6, 0, &MAP)]);
static ARRAY: Shape = Shape(&[(1, size_of::<AnyValue>(), &ANY_VALUE)]);
static MAP: Shape = Shape(&[(1, size_of::<KeyValue>(), &KEY_VALUE)]);

/// Why a logs body was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LogsDecodeError {
    #[error("{}", DecodeError::Amplified)]
    Amplified,
    #[error("not an OTLP logs request: {0}")]
    Invalid(String),
}

/// Decodes a protobuf logs request.
pub fn protobuf(body: Bytes) -> Result<ExportLogsServiceRequest, LogsDecodeError> {
    if weigh(&body, &REQUEST).is_some_and(|bytes| bytes > decoded_budget(body.len())) {
        return Err(LogsDecodeError::Amplified);
    }
    ExportLogsServiceRequest::decode(body).map_err(|error| LogsDecodeError::Invalid(error.to_string()))
}

/// Decodes an OTLP/JSON logs request.
pub fn json(body: &[u8]) -> Result<ExportLogsServiceRequest, LogsDecodeError> {
    if json_decoded_bytes(body) > decoded_budget(body.len()) {
        return Err(LogsDecodeError::Amplified);
    }
    serde_json::from_slice(body).map_err(|error| LogsDecodeError::Invalid(format!("OTLP/JSON: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{any_value, ArrayValue};

    fn request(records: Vec<LogRecord>) -> ExportLogsServiceRequest {
        let scope_logs = vec![ScopeLogs { log_records: records, ..Default::default() }];
        ExportLogsServiceRequest { resource_logs: vec![ResourceLogs { scope_logs, ..Default::default() }] }
    }

    #[test]
    fn the_walk_charges_every_list_element_and_nothing_else() {
        let attribute = KeyValue { key: "k".to_owned(), ..Default::default() };
        let listed = AnyValue {
            value: Some(any_value::Value::ArrayValue(ArrayValue { values: vec![AnyValue::default(); 3] })),
        };
        let record = LogRecord { attributes: vec![attribute; 2], body: Some(listed), ..Default::default() };
        let body = request(vec![record.clone(), LogRecord::default()]).encode_to_vec();
        let expected = size_of::<ResourceLogs>()
            + size_of::<ScopeLogs>()
            + 2 * size_of::<LogRecord>()
            + 2 * size_of::<KeyValue>()
            + 3 * size_of::<AnyValue>();
        assert_eq!(weigh(&body, &REQUEST), Some(expected));
        assert_eq!(
            protobuf(Bytes::from(body)).expect("decodes").resource_logs[0].scope_logs[0].log_records[0],
            record
        );
    }

    #[test]
    fn empty_records_past_the_budget_are_refused_and_real_ones_taken() {
        let empty = request(vec![LogRecord::default(); 200_000]).encode_to_vec();
        assert!(matches!(protobuf(Bytes::from(empty)), Err(LogsDecodeError::Amplified)));
        let line = LogRecord {
            time_unix_nano: 1,
            severity_text: "INFO".to_owned(),
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue("GET /v1/chat 200".to_owned())),
            }),
            ..Default::default()
        };
        let lines = request(vec![line; 200_000]).encode_to_vec();
        assert!(protobuf(Bytes::from(lines)).is_ok());
        assert!(matches!(protobuf(Bytes::from_static(&[0x0a, 0xff])), Err(LogsDecodeError::Invalid(_))));
        let json_empty = format!(
            r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{}]}}]}}]}}"#,
            vec!["{}"; 100_000].join(",")
        );
        assert!(matches!(json(json_empty.as_bytes()), Err(LogsDecodeError::Amplified)));
        // A record written as a list of its fields is a record too.
        let json_lists = json_empty.replace("{}", "[]");
        assert!(matches!(json(json_lists.as_bytes()), Err(LogsDecodeError::Amplified)));
        assert!(json(b"{\"resourceLogs\":[{\"scopeLogs\":[]}]}").is_ok());
    }

    #[test]
    fn a_string_that_is_no_message_does_not_end_the_walk() {
        // "a" read as a message would be a 64-bit field cut short: the walk steps over strings.
        let entity = EntityRef { id_keys: vec!["a".to_owned()], ..Default::default() };
        let mut empty = request(vec![LogRecord::default(); 200_000]);
        empty.resource_logs[0].resource = Some(opentelemetry_proto::tonic::resource::v1::Resource {
            entity_refs: vec![entity],
            ..Default::default()
        });
        let body = empty.encode_to_vec();
        assert!(weigh(&body, &REQUEST).is_some());
        assert!(matches!(protobuf(Bytes::from(body)), Err(LogsDecodeError::Amplified)));
    }
}
