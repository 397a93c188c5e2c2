//! OTLP protobuf decode (held to prost's decoder and to the span count of the walk that refuses a request undecoded), then normalize, derive and exposition of whatever decodes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    agentrace_collector::harness::protobuf_request(data);
});
