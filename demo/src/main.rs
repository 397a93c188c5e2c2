//! `agentrace-demo`: a planner delegates to a researcher (a second process, tools
//! `web_search` and `calculator`) and a writer, with simulated LLM calls, streaming delays and
//! injected failures of every error type. It prints, as JSON, exactly what it sent.

mod planner;
mod researcher;
mod sim;

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, Subcommand};

pub const PLANNER_SERVICE: &str = "demo-planner";
pub const RESEARCHER_SERVICE: &str = "demo-researcher";

#[derive(Debug, Parser)]
#[command(
    name = "agentrace-demo",
    about = "A small multi-agent system that sends GenAI traces to an OTLP endpoint"
)]
struct Cli {
    /// OTLP/gRPC endpoint (default: OTEL_EXPORTER_OTLP_ENDPOINT, or http://localhost:4317).
    #[arg(long, global = true)]
    endpoint: Option<String>,
    /// Share of LLM calls that fail (error types in turn), 0 to 1.
    #[arg(long, global = true, default_value_t = 0.05)]
    failure_rate: f64,
    /// Multiplies every simulated delay (0.1 runs ten times faster).
    #[arg(long, global = true, default_value_t = 1.0)]
    latency_scale: f64,
    #[arg(long, global = true, default_value_t = 42)]
    seed: u64,
    #[command(subcommand)]
    role: Option<Role>,
    /// OTLP/gRPC endpoint of the researcher process the planner starts (default: --endpoint),
    /// as when the two agents run on different machines.
    #[arg(long)]
    researcher_endpoint: Option<String>,
    /// Planner requests per second.
    #[arg(long, default_value_t = 2.0)]
    rps: f64,
    /// How long to send, in seconds.
    #[arg(long, default_value_t = 30.0)]
    duration_secs: f64,
}

#[derive(Debug, Subcommand)]
enum Role {
    /// The researcher service (started by the planner; not for direct use).
    Researcher {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
    },
}

fn settings(cli: &Cli) -> sim::Settings {
    sim::Settings { failure_rate: cli.failure_rate, latency_scale: cli.latency_scale }
}

fn sdk(service: &str, endpoint: Option<&String>) -> agentrace::Guard {
    let mut builder = agentrace::builder().service_name(service).scheduled_delay(Duration::from_millis(500));
    if let Some(endpoint) = endpoint {
        builder = builder.endpoint(endpoint.clone());
    }
    builder.init()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.role {
        Some(Role::Researcher { listen }) => {
            let guard = sdk(RESEARCHER_SERVICE, cli.endpoint.as_ref());
            researcher::serve(listen, settings(&cli), cli.seed).await?;
            drop(guard);
        }
        None => {
            let guard = sdk(PLANNER_SERVICE, cli.endpoint.as_ref());
            let run = planner::Run {
                rate_per_sec: cli.rps,
                duration: Duration::from_secs_f64(cli.duration_secs.max(0.0)),
                settings: settings(&cli),
                seed: cli.seed,
                endpoint: cli.researcher_endpoint.clone().or_else(|| cli.endpoint.clone()),
            };
            let report = run.run().await?;
            let stats = guard.shutdown();
            tracing::info!(ended = stats.ended, exported = stats.exported, "planner spans flushed");
            println!("{}", serde_json::to_string(&report)?);
        }
    }
    Ok(())
}
