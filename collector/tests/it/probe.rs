//! Synthetic probes against a local OpenAI-compatible server whose first-token delay, decode
//! rate and failures the test sets: the probe's timings and decode rate, its error types, the
//! success gauge across an outage, and a slow target that delays no other.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::common::{eventually, metric_value, Collector};

/// What the mock server does with the next requests.
#[derive(Clone, Debug)]
struct Behaviour {
    first_token: Duration,
    tokens_per_second: f64,
    tokens: u32,
    /// Answer with this status (and an error body) instead.
    fail: Option<u16>,
    /// Never answer.
    hang: bool,
}

#[derive(Debug, Default)]
struct Seen {
    arrivals: Vec<Instant>,
    in_flight: u32,
    most_in_flight: u32,
}

#[derive(Clone)]
struct Mock {
    behaviour: Arc<Mutex<Behaviour>>,
    seen: Arc<Mutex<Seen>>,
}

impl Mock {
    async fn start(behaviour: Behaviour) -> (Self, SocketAddr) {
        let mock = Self { behaviour: Arc::new(Mutex::new(behaviour)), seen: Arc::default() };
        let router = axum::Router::new()
            .route("/v1/chat/completions", axum::routing::post(answer))
            .with_state(mock.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move { axum::serve(listener, router).await });
        (mock, address)
    }

    fn set(&self, change: impl FnOnce(&mut Behaviour)) {
        change(&mut self.behaviour.lock().expect("behaviour"));
    }

    fn seen<T>(&self, read: impl FnOnce(&Seen) -> T) -> T {
        read(&self.seen.lock().expect("seen"))
    }
}

/// Counts a request in flight until dropped.
struct InFlight(Arc<Mutex<Seen>>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.lock().expect("seen").in_flight -= 1;
    }
}

async fn answer(State(mock): State<Mock>, body: Bytes) -> Response {
    let request: serde_json::Value = serde_json::from_slice(&body).expect("a JSON request");
    assert_eq!(request["stream"], true);
    assert_eq!(request["messages"][0]["content"], "Say OK.");
    let in_flight = {
        let mut seen = mock.seen.lock().expect("seen");
        seen.arrivals.push(Instant::now());
        seen.in_flight += 1;
        seen.most_in_flight = seen.most_in_flight.max(seen.in_flight);
        InFlight(mock.seen.clone())
    };
    let behaviour = mock.behaviour.lock().expect("behaviour").clone();
    if behaviour.hang {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    if let Some(status) = behaviour.fail {
        let body = r#"{"error":{"message":"Rate limit reached for requests","type":"requests"}}"#;
        return (StatusCode::from_u16(status).expect("a status"), body).into_response();
    }
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::convert::Infallible>>(64);
    tokio::spawn(async move {
        let _in_flight = in_flight;
        let start = tokio::time::Instant::now();
        let gap = Duration::from_secs_f64(1.0 / behaviour.tokens_per_second);
        for token in 0..behaviour.tokens {
            tokio::time::sleep_until(start + behaviour.first_token + gap * token).await;
            let chunk = format!(
                "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"t{token} \"}}}}]}}\n\n"
            );
            if sender.send(Ok(Bytes::from(chunk))).await.is_err() {
                return;
            }
        }
        let usage = format!(
            "data: {{\"choices\":[],\"usage\":{{\"prompt_tokens\":12,\"completion_tokens\":{}}}}}\n\ndata: [DONE]\n\n",
            behaviour.tokens
        );
        let _ = sender.send(Ok(Bytes::from(usage))).await;
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(receiver);
    ([("content-type", "text/event-stream")], axum::body::Body::from_stream(stream)).into_response()
}

fn gauge(page: &str, metric: &str, target: &str, extra: &str) -> Option<f64> {
    metric_value(page, &format!("{metric}{{target=\"{target}\",model=\"mock-llm\"{extra}}}"))
}

fn close(actual: f64, expected: f64, what: &str) {
    eprintln!("probe {what}: {actual:.4} (server set {expected})");
    assert!((actual - expected).abs() <= expected * 0.1, "{what}: {actual} is not within 10 % of {expected}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_time_classify_and_recover_and_a_slow_target_delays_no_other() {
    let _heavy = crate::common::heavy().await;
    // First token after 500 ms, then 20 more tokens at 20 tokens/s: 1.5 s in all.
    let (fast, fast_address) = Mock::start(Behaviour {
        first_token: Duration::from_millis(500),
        tokens_per_second: 20.0,
        tokens: 21,
        fail: None,
        hang: false,
    })
    .await;
    let (slow, slow_address) = Mock::start(Behaviour {
        first_token: Duration::from_millis(2500),
        tokens_per_second: 100.0,
        tokens: 5,
        fail: None,
        hang: false,
    })
    .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("probes.toml");
    std::fs::write(
        &config,
        format!(
            "[[target]]\nname = \"fast\"\nurl = \"http://{fast_address}/v1\"\nmodel = \"mock-llm\"\nprompt = \"Say OK.\"\ninterval_secs = 2\ntimeout_secs = 2\n\n\
             [[target]]\nname = \"slow\"\nurl = \"http://{slow_address}/v1\"\nmodel = \"mock-llm\"\nprompt = \"Say OK.\"\ninterval_secs = 4\ntimeout_secs = 4\n"
        ),
    )
    .expect("write the probe file");
    let collector =
        Collector::start(&["--probe-config", config.to_str().expect("utf-8"), "--graph-wait-secs", "1"])
            .await;

    let page = eventually("a fast probe done", async || {
        let page = collector.scrape().await;
        (gauge(&page, "llm_probe_success", "fast", "") == Some(1.0)).then_some(page)
    })
    .await;
    close(
        gauge(&page, "llm_probe_duration_seconds", "fast", ",phase=\"first_token\"").expect("first token"),
        0.5,
        "time to first token",
    );
    close(
        gauge(&page, "llm_probe_duration_seconds", "fast", ",phase=\"total\"").expect("total"),
        1.5,
        "total",
    );
    close(
        gauge(&page, "llm_probe_output_tokens_per_second", "fast", "").expect("decode rate"),
        20.0,
        "tokens/s",
    );

    // The probes' spans went through the pipeline as service agentrace-probe.
    let requests = "llm_requests_total{service=\"agentrace-probe\",agent=\"\",provider=\"openai\",model=\"mock-llm\",operation=\"chat\",status=\"ok\"}";
    eventually("the probe's span derived", async || {
        (metric_value(&collector.scrape().await, requests)? >= 1.0).then_some(())
    })
    .await;

    // The slow target (2.5 s to its first token) has been probed alongside: the fast one kept
    // its pace, and no target ever had two probes in flight.
    eventually("the slow target probed twice, the fast one thrice", async || {
        (slow.seen(|seen| seen.arrivals.len()) >= 2 && fast.seen(|seen| seen.arrivals.len()) >= 3)
            .then_some(())
    })
    .await;
    let gaps: Vec<f64> =
        fast.seen(|seen| seen.arrivals.windows(2).map(|pair| (pair[1] - pair[0]).as_secs_f64()).collect());
    assert!(
        gaps.len() >= 2 && gaps.iter().all(|gap| (1.7..=2.5).contains(gap)),
        "the fast target's probes every 2 s ± 10 %: {gaps:?}"
    );
    assert_eq!(fast.seen(|seen| seen.most_in_flight), 1);
    assert_eq!(slow.seen(|seen| seen.most_in_flight), 1);

    outage(&fast, &collector).await;
    collector.stop().await;
}

/// Rate limited, then no answer, then back: the success gauge goes 1 → 0 → 1 and each failure
/// is counted under its type.
async fn outage(fast: &Mock, collector: &Collector) {
    // An outage: rate limited, then no answer, then back.
    fast.set(|behaviour| behaviour.fail = Some(429));
    let errors = |kind: &str| {
        format!("llm_inference_errors_total{{service=\"agentrace-probe\",agent=\"\",provider=\"openai\",model=\"mock-llm\",type=\"{kind}\"}}")
    };
    eventually("a 429 as rate_limited, and the probe failing", async || {
        let page = collector.scrape().await;
        (gauge(&page, "llm_probe_success", "fast", "") == Some(0.0)
            && metric_value(&page, &errors("rate_limited"))? >= 1.0)
            .then_some(())
    })
    .await;
    fast.set(|behaviour| (behaviour.fail, behaviour.hang) = (None, true));
    eventually("no answer within 2 s as timeout", async || {
        let page = collector.scrape().await;
        (metric_value(&page, &errors("timeout"))? >= 1.0
            && gauge(&page, "llm_probe_success", "fast", "") == Some(0.0))
        .then_some(())
    })
    .await;
    fast.set(|behaviour| behaviour.hang = false);
    eventually("the probe succeeding again", async || {
        (gauge(&collector.scrape().await, "llm_probe_success", "fast", "") == Some(1.0)).then_some(())
    })
    .await;
}
