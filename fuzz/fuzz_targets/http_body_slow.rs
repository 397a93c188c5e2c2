//! The OTLP/HTTP handler reading a body that arrives in chunks with pauses, on paused time:
//! whatever the timing, the answer is one the OTLP spec allows (or 408 for a body under the
//! rate floor) and no byte stays reserved against the in-flight budget afterwards.
#![no_main]

use std::cell::RefCell;

use agentrace_collector::harness::SlowBodyHarness;

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    static HARNESS: RefCell<SlowBodyHarness> = RefCell::new(SlowBodyHarness::new());
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (status, reserved) =
        RUNTIME.with(|runtime| HARNESS.with(|harness| runtime.block_on(harness.borrow_mut().request(data))));
    assert!(matches!(status, 200 | 400 | 408 | 413 | 415 | 503), "status {status}");
    assert_eq!(reserved, 0, "bytes left reserved after the request");
});
