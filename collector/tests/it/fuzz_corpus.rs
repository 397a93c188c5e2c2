//! The fuzz targets' seed corpora (`fuzz/corpus/<target>/`), replayed through the same entry
//! points without libFuzzer, so every test run covers them; `scripts/fuzz` runs the real
//! fuzzing.

use std::path::PathBuf;

use agentrace_collector::harness::{self, HttpHarness, SlowBodyHarness};

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let directory = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target);
    let mut inputs: Vec<(String, Vec<u8>)> = std::fs::read_dir(&directory)
        .unwrap_or_else(|error| panic!("{}: {error}", directory.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .map(|path| (path.display().to_string(), std::fs::read(&path).expect("corpus file")))
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "{target}: empty corpus");
    inputs
}

#[test]
fn decode_seeds_replay_without_panicking() {
    for (_, input) in corpus("decode_protobuf") {
        harness::protobuf_request(&input);
    }
    for (_, input) in corpus("decode_json") {
        harness::json_request(&input);
    }
}

#[test]
fn http_seeds_get_the_spec_answers() {
    let mut http = HttpHarness::new().expect("runtime");
    let mut statuses = Vec::new();
    for (path, input) in corpus("http_handler") {
        let status = http.request(&input);
        assert!(matches!(status, 200 | 400 | 413 | 415 | 503), "{path}: {status}");
        let name = path.rsplit('/').next().unwrap_or_default().to_owned();
        statuses.push((name, status));
    }
    let expected = [
        ("gzip-bomb.bin", 413),
        ("impossible-numbers-json.bin", 200),
        ("json.bin", 200),
        ("protobuf-gzip.bin", 200),
        ("protobuf.bin", 200),
        ("text-plain.bin", 415),
    ];
    let expected: Vec<(String, u16)> =
        expected.iter().map(|(name, status)| ((*name).to_owned(), *status)).collect();
    assert_eq!(statuses, expected);
}

/// Paused time: the seeds' pauses (up to seconds) pass at once.
#[tokio::test(start_paused = true)]
async fn slow_body_seeds_get_their_answers_and_release_their_budget() {
    let mut harness = SlowBodyHarness::new();
    let mut answers = Vec::new();
    for (path, input) in corpus("http_body_slow") {
        let (status, reserved) = harness.request(&input).await;
        assert_eq!(reserved, 0, "{path}: bytes left reserved");
        answers.push((path.rsplit('/').next().unwrap_or_default().to_owned(), status));
    }
    let expected = [
        ("declared-never-sent.bin", 503),
        ("json-declared-slow.bin", 408),
        ("json-in-chunks.bin", 200),
        ("over-budget.bin", 503),
        ("protobuf-garbage.bin", 400),
        ("stall.bin", 408),
        ("text-plain.bin", 415),
    ];
    let expected: Vec<(String, u16)> =
        expected.iter().map(|(name, status)| ((*name).to_owned(), *status)).collect();
    assert_eq!(answers, expected);
}

#[test]
fn the_exposition_check_reads_labels_and_rejects_what_strict_parsers_reject() {
    let good = "# TYPE a histogram\na_bucket{le=\"1\",x=\"} 2 \\\"{\"} 3\na_count 3\nb_total{y=\"z\"} 1.5 # {trace_id=\"ab\"} 1.0\n# EOF\n";
    assert_eq!(harness::check_exposition(good), Ok(()));
    for bad in ["a_bucket{le=\"1\"} 1.5\n", "a_count -1\n", "b_total +Inf\n", "c NaN\n", "d{x=\"1\" 2\n"] {
        assert!(harness::check_exposition(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn log_rule_seeds_replay_and_the_shipped_lines_match() {
    let mut matched = 0;
    for (path, input) in corpus("log_rules") {
        let found = harness::log_rules(&input);
        if path.ends_with("custom-rule") || path.ends_with("builtin-and-vllm-line") {
            assert!(found >= 1, "{path}: {found} rules matched");
        }
        matched += usize::from(found > 0);
    }
    assert!(matched >= 25, "{matched} seeds matched a rule");
}
