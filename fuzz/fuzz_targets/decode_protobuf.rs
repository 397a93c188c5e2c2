//! OTLP protobuf decode (held to prost's decoder), then normalize, derive and exposition of whatever decodes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    agentrace_collector::harness::protobuf_request(data);
});
