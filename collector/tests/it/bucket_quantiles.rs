//! What the agents dashboard's calls-per-invocation and tokens-per-invocation panels show,
//! before and after the bucket change, against the exact quantiles: a real Prometheus scrapes
//! the same 1000 invocations binned into the old and the new buckets and computes
//! `histogram_quantile` (the panels' query) over each. The invocations follow the demo: one
//! LLM call each; two tool calls, seven in the 5 % that loop; prompt and response tokens drawn
//! as the demo draws them. Run with `--nocapture` for the table (TEST_SUMMARY.md has it).

use std::fmt::Write;

use agentrace_semconv::buckets;

use crate::common::Prometheus;

const OLD_CALLS: &[f64] = &[0.0, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 34.0, 55.0, 89.0, 144.0];
const OLD_TOKENS: &[f64] = &[
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];

/// The demo's draws, from a fixed linear congruential sequence.
fn sample() -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut state: u64 = 0x5eed;
    let mut next = |low: u64, high: u64| {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        low + (state >> 33) % (high - low)
    };
    let (mut llm, mut tools, mut tokens) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..1000 {
        llm.push(1.0);
        tools.push(if next(0, 100) < 5 { 7.0 } else { 2.0 });
        tokens.push((next(200, 2000) + next(40, 400)) as f64);
    }
    (llm, tools, tokens)
}

/// A histogram's exposition lines, binned into `bounds`.
fn histogram(out: &mut String, name: &str, bounds: &[f64], values: &[f64]) {
    let _ = writeln!(out, "# TYPE {name} histogram");
    for bound in bounds {
        let count = values.iter().filter(|value| *value <= bound).count();
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {count}");
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", values.len());
    let _ = writeln!(out, "{name}_sum {}", values.iter().sum::<f64>());
    let _ = writeln!(out, "{name}_count {}", values.len());
}

/// The nearest-rank quantile of `values`.
fn exact(values: &[f64], quantile: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((quantile * sorted.len() as f64).ceil() as usize).saturating_sub(1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finer_buckets_bring_the_panels_quantiles_to_the_exact_values() {
    let (llm, tools, tokens) = sample();
    let mut page = String::new();
    for (name, old, new, values) in [
        ("llm_calls", OLD_CALLS, buckets::CALLS_PER_INVOCATION, &llm),
        ("tool_calls", OLD_CALLS, buckets::CALLS_PER_INVOCATION, &tools),
        ("tokens", OLD_TOKENS, buckets::TOKENS_PER_INVOCATION, &tokens),
    ] {
        histogram(&mut page, &format!("old_{name}"), old, values);
        histogram(&mut page, &format!("new_{name}"), new, values);
    }
    let app =
        axum::Router::new().route("/metrics", axum::routing::get(move || std::future::ready(page.clone())));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    let prometheus = Prometheus::start(&[address]).await;

    let mut table =
        String::from("| panel | quantile | exact | old buckets | new buckets |\n|---|---|---|---|---|\n");
    for (name, values, quantile, rounded) in [
        ("llm_calls", &llm, 0.5, true),
        ("llm_calls", &llm, 0.99, true),
        ("tool_calls", &tools, 0.5, true),
        ("tool_calls", &tools, 0.99, true),
        ("tokens", &tokens, 0.5, false),
        ("tokens", &tokens, 0.95, false),
    ] {
        let query = |generation: &str| {
            let inner = format!("histogram_quantile({quantile}, sum by (le) ({generation}_{name}_bucket))");
            if rounded {
                format!("ceil({inner})")
            } else {
                inner
            }
        };
        let raw = |generation: &str| {
            format!("histogram_quantile({quantile}, sum by (le) ({generation}_{name}_bucket))")
        };
        let value = |query: String| {
            let prometheus = &prometheus;
            async move { crate::common::eventually(&query.clone(), async || prometheus.value(&query).await).await }
        };
        let exact = exact(values, quantile);
        let (old, new) = (value(raw("old")).await, value(query("new")).await);
        let _ = writeln!(table, "| {name} | {quantile} | {exact} | {old:.1} | {new:.1} |");
        // Above 6 the count buckets are two wide: p99 of 7 tool calls reads 8 (the bucket's
        // top), where the old (5, 8] bucket happened to interpolate 7.5.
        if name != "tool_calls" || quantile < 0.9 {
            let closer = (new - exact).abs() <= (old - exact).abs();
            assert!(closer, "{name} p{quantile}: {new} no closer to {exact} than {old}");
            // Within the width of the bucket the exact value falls in.
            let above = buckets::TOKENS_PER_INVOCATION.iter().position(|bound| *bound >= exact).unwrap_or(0);
            let width = buckets::TOKENS_PER_INVOCATION[above]
                - buckets::TOKENS_PER_INVOCATION[above.saturating_sub(1)];
            let tolerance = if rounded { 0.0 } else { width };
            assert!((new - exact).abs() <= tolerance, "{name} p{quantile}: {new}, exact {exact}");
        }
    }
    println!("{table}");
}
