//! The whole OTLP/HTTP handler: content type and gzip picked by the first byte, the body is
//! the rest. Every answer must be one the OTLP spec allows.
#![no_main]

use std::cell::RefCell;

use agentrace_collector::harness::HttpHarness;

thread_local! {
    static HARNESS: RefCell<HttpHarness> = RefCell::new(HttpHarness::new().expect("runtime"));
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let status = HARNESS.with(|harness| harness.borrow_mut().request(data));
    assert!(matches!(status, 200 | 400 | 413 | 415 | 503), "status {status}");
});
