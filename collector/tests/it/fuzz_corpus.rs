//! The fuzz targets' seed corpora (`fuzz/corpus/<target>/`), replayed through the same entry
//! points without libFuzzer, so every test run covers them; `scripts/fuzz` runs the real
//! fuzzing.

use std::path::PathBuf;

use agentrace_collector::harness::{self, HttpHarness};

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
        ("json.bin", 200),
        ("protobuf-gzip.bin", 200),
        ("protobuf.bin", 200),
        ("text-plain.bin", 415),
    ];
    let expected: Vec<(String, u16)> =
        expected.iter().map(|(name, status)| ((*name).to_owned(), *status)).collect();
    assert_eq!(statuses, expected);
}
