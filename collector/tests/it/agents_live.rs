//! Seven real agent frameworks from PyPI (pinned, one virtualenv each under `target/agents/`,
//! made by `collector/tests/agents/setup`, which `scripts/test` runs) drive a coordinator that
//! calls a tool and delegates to a researcher, three times, against a local mock of the OpenAI
//! Chat Completions API (`collector/tests/agents/mock_openai.py`: tool calls, streaming with a
//! final usage chunk, a 429 every 7th request). Each exports with its own instrumentation over
//! OTLP to a collector in this process, over gRPC or HTTP in turn. Requests and tokens per
//! agent and model must equal what the mock served, invocations and tool calls per agent what
//! the scenario counted, with the graph's edges and no span left unattributed.

use std::path::PathBuf;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::common::{eventually, Collector};
use crate::frameworks::{disagreements, ATTRIBUTABLE};

const ROUNDS: &str = "3";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn scenarios() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/agents")
}

/// The mock OpenAI API, on a port it picked; killed on drop.
struct Mock {
    _child: tokio::process::Child,
    url: String,
}

async fn start_mock() -> Mock {
    let python = std::env::var("AGENTRACE_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let mut child = tokio::process::Command::new(python)
        .arg(scenarios().join("mock_openai.py"))
        .args(["--port", "0", "--rate-limit-every", "7"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the mock OpenAI API");
    let stdout = child.stdout.take().expect("piped stdout");
    let line = BufReader::new(stdout).lines().next_line().await.expect("read").expect("the port line");
    let port: serde_json::Value = serde_json::from_str(&line).expect("{\"port\": N}");
    Mock { _child: child, url: format!("http://127.0.0.1:{}", port["port"]) }
}

/// Runs one framework's scenario against `collector`; returns its counts and the mock's.
async fn run(framework: &str, mock: &Mock, collector: &Collector, grpc: bool) -> serde_json::Value {
    let python = root().join(format!("target/agents/{framework}/bin/python"));
    assert!(
        python.exists(),
        "{} missing: run collector/tests/agents/setup (scripts/test does)",
        python.display()
    );
    let client = reqwest::Client::new();
    client.post(format!("{}/reset", mock.url)).send().await.expect("reset the mock");
    let (protocol, endpoint) =
        if grpc { ("grpc", collector.grpc_url()) } else { ("http", format!("http://{}", collector.http)) };
    let output = tokio::process::Command::new(&python)
        .arg(scenarios().join(format!("run_{framework}.py")))
        .args(["--openai-base-url", &format!("{}/v1", mock.url)])
        .args(["--otlp-endpoint", &endpoint, "--otlp-protocol", protocol])
        .args(["--service-name", &format!("agents-{framework}"), "--rounds", ROUNDS])
        .env("OPENAI_API_KEY", "test")
        .output()
        .await
        .expect("run the scenario");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{framework}: {}", String::from_utf8_lossy(&output.stderr));
    let scenario: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("the scenario's JSON line");
    let mock_truth: serde_json::Value =
        client.get(format!("{}/truth", mock.url)).send().await.expect("truth").json().await.expect("JSON");
    serde_json::json!({"scenario": scenario, "mock": mock_truth})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seven_agent_frameworks_count_per_agent_exactly_what_the_mock_served() {
    let _turn = crate::common::heavy().await;
    let mock = start_mock().await;
    let mut report = Vec::new();
    for (index, framework) in ATTRIBUTABLE.iter().enumerate() {
        let collector = Collector::start(&["--graph-wait-secs", "1"]).await;
        let grpc = index % 2 == 0;
        let truth = run(framework, &mock, &collector, grpc).await;
        let rate_limited = truth["mock"]["rate_limited"].as_u64().unwrap_or(0);
        let what = format!("{framework}'s series");
        let settled = eventually(&what, async || {
            let wrong = disagreements(framework, &collector.scrape().await, &truth);
            wrong.is_empty().then_some(())
        });
        // The last disagreements, if the deadline passes, say what is wrong.
        let waited = tokio::time::timeout(std::time::Duration::from_secs(60), settled).await;
        if waited.is_err() {
            let wrong = disagreements(framework, &collector.scrape().await, &truth);
            panic!("{framework} ({}): {wrong:#?}", if grpc { "grpc" } else { "http" });
        }
        report.push(format!(
            "{framework} over {}: {} requests served, {rate_limited} answered 429, all counted per agent",
            if grpc { "gRPC" } else { "HTTP" },
            truth["mock"]["requests"]
        ));
        collector.stop().await;
    }
    println!("{}", report.join("\n"));
}
