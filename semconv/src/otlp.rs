//! OTLP addressing shared by the SDK, the collector and the load generator.

/// The path of the OTLP/HTTP traces endpoint.
pub const TRACES_PATH: &str = "/v1/traces";

/// The gRPC method path of a trace export.
pub const GRPC_TRACES_EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// The gRPC service name of trace export.
pub const GRPC_TRACE_SERVICE: &str = "opentelemetry.proto.collector.trace.v1.TraceService";

/// `http://host:4318` → `http://host:4318/v1/traces`; a URL that has a path is kept.
pub fn http_traces_url(endpoint: &str) -> String {
    let trimmed = endpoint.trim_end_matches('/');
    let has_path = trimmed.split_once("://").is_some_and(|(_, rest)| rest.contains('/'));
    if has_path {
        trimmed.to_owned()
    } else {
        format!("{trimmed}{TRACES_PATH}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_endpoints_get_the_traces_path_when_they_have_none() {
        assert_eq!(http_traces_url("http://collector:4318"), "http://collector:4318/v1/traces");
        assert_eq!(http_traces_url("http://collector:4318/"), "http://collector:4318/v1/traces");
        assert_eq!(
            http_traces_url("http://collector:4318/custom/traces"),
            "http://collector:4318/custom/traces"
        );
    }
}
