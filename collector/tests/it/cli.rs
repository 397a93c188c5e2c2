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

/// The allocator variables the collector sets, as a running process's environment has them
/// (`NAME=value`, sorted).
#[cfg(target_os = "linux")]
fn allocator_settings(pid: u32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).expect("process environment");
    let mut settings: Vec<String> = raw
        .split(|byte| *byte == 0)
        .map(|entry| String::from_utf8_lossy(entry).into_owned())
        .filter(|entry| {
            crate::common::allocator_variables()
                .any(|name| entry.strip_prefix(name).is_some_and(|rest| rest.starts_with('=')))
        })
        .collect();
    settings.sort();
    settings
}

#[cfg(target_os = "linux")]
#[test]
fn the_allocator_keeps_freed_memory_ten_seconds_without_huge_pages_unless_the_operator_says_otherwise() {
    // The process that was started is the one serving (it logged where it listens), with the
    // variables set: it executed itself again in place, keeping its name and arguments.
    let collector = crate::common::CollectorProcess::spawn(&[]);
    let settings = allocator_settings(collector.pid());
    assert_eq!(settings, ["MIMALLOC_ALLOW_THP=0", "MIMALLOC_PURGE_DELAY=10000"]);
    let name = std::fs::read_to_string(format!("/proc/{}/comm", collector.pid())).expect("process name");
    assert!(name.starts_with("agentrace-coll"), "{name:?}");
    let arguments = std::fs::read(format!("/proc/{}/cmdline", collector.pid())).expect("command line");
    let arguments: Vec<&[u8]> = arguments.split(|byte| *byte == 0).collect();
    assert_eq!(arguments[0], env!("CARGO_BIN_EXE_agentrace-collector").as_bytes(), "the program's name");
    assert!(arguments.contains(&b"--metrics-addr".as_slice()), "arguments kept");
    drop(collector);

    // Each setting of the operator's stands, under any of its names; the other is still added.
    let cases = [
        (("MIMALLOC_PURGE_DELAY", "250"), "MIMALLOC_ALLOW_THP=0"),
        (("MIMALLOC_RESET_DELAY", "0"), "MIMALLOC_ALLOW_THP=0"),
        (("MIMALLOC_ALLOW_THP", "1"), "MIMALLOC_PURGE_DELAY=10000"),
    ];
    for ((name, value), added) in cases {
        let collector = crate::common::CollectorProcess::spawn_with_env(&[], &[(name, value)]);
        let mut expected = vec![format!("{name}={value}"), added.to_owned()];
        expected.sort();
        assert_eq!(allocator_settings(collector.pid()), expected, "the operator's setting stands");
    }
}
