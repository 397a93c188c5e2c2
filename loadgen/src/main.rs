//! `agentrace-loadgen send …` drives an OTLP receiver with a fixed-seed workload and prints a
//! JSON report; `agentrace-loadgen sink …` counts the spans it receives and prints the count
//! four times a second and at the end; `agentrace-loadgen decode …` measures prost decoding
//! the workload's requests, the limit a receiver's throughput is compared with.

use std::time::Duration;

use agentrace_loadgen::{decode_only, send, CountingSink, Pace, Protocol, SendPlan, Workload};
use clap::{Parser, Subcommand};

// The collector's allocator: `decode`, the limit its throughput is compared with, is measured
// with the same one.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "agentrace-loadgen", about = "OTLP load generator and counting sink")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Send a workload and report.
    Send {
        #[arg(long, default_value = "http://127.0.0.1:4317")]
        endpoint: String,
        #[arg(long, value_enum, default_value = "grpc")]
        protocol: Protocol,
        #[arg(long)]
        gzip: bool,
        #[arg(long, value_enum, default_value = "w1")]
        workload: Workload,
        /// Requests per second (open loop). Without it, a closed loop of --in-flight requests.
        #[arg(long)]
        rate: Option<f64>,
        #[arg(long, default_value_t = 8)]
        in_flight: usize,
        #[arg(long, default_value_t = 10.0)]
        duration_secs: f64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Distinct requests generated and encoded before the run starts; the run cycles
        /// through them, so that generating load costs little next to receiving it.
        #[arg(long, default_value_t = 64)]
        pool: usize,
    },
    /// Decode the workload's encoded requests in a tight loop and report spans per second.
    Decode {
        #[arg(long, value_enum, default_value = "w1")]
        workload: Workload,
        #[arg(long, default_value_t = 5.0)]
        duration_secs: f64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 64)]
        pool: usize,
    },
    /// Accept OTLP/gRPC and count spans.
    Sink {
        #[arg(long, default_value = "127.0.0.1:4317")]
        listen: std::net::SocketAddr,
        /// Stop after this many seconds (default: on Ctrl-C).
        #[arg(long)]
        duration_secs: Option<f64>,
        /// Answer each request this many milliseconds after it arrived (a backend's round
        /// trip); requests are answered concurrently.
        #[arg(long, default_value_t = 0)]
        delay_ms: u64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The sender and the sink run without transparent huge pages, as the collector does: with
    // them, the sender zeroed 2 MiB pages for up to 100 ms at a time, sending nothing meanwhile
    // and then catching up in a burst (`allocator.rs` in the collector).
    #[cfg(target_os = "linux")]
    if matches!(cli.command, Command::Send { .. } | Command::Sink { .. }) {
        use agentrace_collector::allocator::{not_settled, settle, NO_HUGE_PAGES};
        if let Some(error) = settle(&[NO_HUGE_PAGES]) {
            eprintln!("agentrace-loadgen: running with the allocator's defaults: {error}");
            not_settled(&error);
        }
    }
    match cli.command {
        Command::Send { endpoint, protocol, gzip, workload, rate, in_flight, duration_secs, seed, pool } => {
            let pace = rate.map_or(Pace::InFlight(in_flight), Pace::Rate);
            let plan = SendPlan {
                endpoint,
                protocol,
                gzip,
                workload,
                pace,
                duration: Duration::from_secs_f64(duration_secs),
                seed,
                pool,
            };
            println!("{}", serde_json::to_string(&send(plan).await?)?);
        }
        Command::Decode { workload, duration_secs, seed, pool } => {
            let report = decode_only(workload, seed, pool, Duration::from_secs_f64(duration_secs))?;
            println!("{}", serde_json::to_string(&report)?);
        }
        Command::Sink { listen, duration_secs, delay_ms } => {
            let sink = CountingSink { delay: Duration::from_millis(delay_ms), ..CountingSink::default() };
            let listener = tokio::net::TcpListener::bind(listen).await?;
            eprintln!("listening {}", listener.local_addr()?);
            let counts = sink.clone();
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(Duration::from_millis(250));
                loop {
                    ticks.tick().await;
                    eprintln!("spans {}", counts.spans.load(std::sync::atomic::Ordering::Relaxed));
                }
            });
            let stop = async move {
                match duration_secs {
                    Some(seconds) => tokio::time::sleep(Duration::from_secs_f64(seconds)).await,
                    None => {
                        let _ = tokio::signal::ctrl_c().await;
                    }
                }
            };
            sink.serve(listener, stop).await?;
            println!(
                "{{\"spans\":{},\"requests\":{}}}",
                sink.spans.load(std::sync::atomic::Ordering::Relaxed),
                sink.requests.load(std::sync::atomic::Ordering::Relaxed)
            );
        }
    }
    Ok(())
}
