//! Log rules: a rule file (up to the first NUL) is parsed and a log line (after it) goes through
//! the rules and the built-in ones.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    agentrace_collector::harness::log_rules(data);
});
