//! The binary's configuration errors: one line on stderr naming the flag (or the file and
//! line), exit code 2, nothing bound.

use std::process::Command;

fn run(args: &[&str]) -> (Option<i32>, String) {
    let output =
        Command::new(env!("CARGO_BIN_EXE_agentrace-collector")).args(args).output().expect("run collector");
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn bad_values_get_one_line_naming_the_flag() {
    let cases: [(&[&str], &str); 4] = [
        (&["--otlp-grpc-addr", "nowhere"], "--otlp-grpc-addr"),
        (&["--traces-endpoint", "tempo:4317"], "--traces-endpoint"),
        (&["--max-series-per-metric", "0"], "--max-series-per-metric"),
        (&["--graph-wait-secs=-1"], "--graph-wait-secs"),
    ];
    for (args, flag) in cases {
        let (code, stderr) = run(args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr:?}");
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
}

#[test]
fn a_bad_config_file_names_the_file_and_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("agentrace.toml");
    std::fs::write(&path, "metrics-addr = \"127.0.0.1:0\"\nmetrics-adr = 1\n").expect("write config");
    let (code, stderr) = run(&["--config", path.to_str().expect("utf-8 path")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(stderr.contains("agentrace.toml") && stderr.contains("line 2"), "{stderr}");
}

#[test]
fn help_goes_to_stdout_and_succeeds() {
    let output = Command::new(env!("CARGO_BIN_EXE_agentrace-collector"))
        .arg("--help")
        .output()
        .expect("run collector");
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("--traces-endpoint"));
}

/// The environment of a running process, as `NAME=value` lines.
fn environment(pid: u32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).expect("process environment");
    raw.split(|byte| *byte == 0).map(|entry| String::from_utf8_lossy(entry).into_owned()).collect()
}

#[test]
fn the_allocator_keeps_freed_memory_ten_seconds_unless_the_operator_says_otherwise() {
    // The process that was started is the one serving (it logged where it listens), with the
    // variable set: it executed itself again in place.
    let collector = crate::common::CollectorProcess::spawn(&[]);
    let set: Vec<String> =
        environment(collector.pid()).into_iter().filter(|entry| entry.starts_with("MIMALLOC_")).collect();
    assert_eq!(set, ["MIMALLOC_PURGE_DELAY=10000"]);
    let arguments = std::fs::read(format!("/proc/{}/cmdline", collector.pid())).expect("command line");
    assert!(String::from_utf8_lossy(&arguments).contains("--metrics-addr"), "arguments kept");
    drop(collector);

    for (name, value) in [("MIMALLOC_PURGE_DELAY", "250"), ("MIMALLOC_RESET_DELAY", "0")] {
        let collector = crate::common::CollectorProcess::spawn_with_env(&[], &[(name, value)]);
        let set: Vec<String> =
            environment(collector.pid()).into_iter().filter(|entry| entry.starts_with("MIMALLOC_")).collect();
        assert_eq!(set, [format!("{name}={value}")], "the operator's setting stands");
    }
}
