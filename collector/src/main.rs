//! `agentrace-collector`: parse the configuration, set up logging, bind the listeners, run.

use agentrace_collector::{bind, first_line, ConfigError, Listeners, Options};
use anyhow::Context;
use tracing_subscriber::EnvFilter;

// Decoding a request allocates a string or vector per attribute; mimalloc's thread-local
// free lists make that markedly cheaper than glibc's allocator (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    if std::env::args_os().nth(1).is_some_and(|first| first == "slo") {
        return slo(std::env::args_os().skip(1));
    }
    // mimalloc's options (`allocator.rs`): executes itself again to set them, if need be.
    #[cfg(target_os = "linux")]
    let not_settled = {
        use agentrace_collector::allocator::{settle, NO_HUGE_PAGES, PURGE_DELAY};
        settle(&[PURGE_DELAY, NO_HUGE_PAGES])
    };
    // Before the defaults are worked out: the connection caps are a share of this limit.
    let open_files = agentrace_collector::raise_open_file_limit();
    let loaded = Options::load(std::env::args_os()).and_then(Options::validate);
    let config = match loaded {
        Ok(config) => config,
        Err(ConfigError::Usage(error)) if !error.use_stderr() => error.exit(),
        Err(error) => return usage_error(&first_line(&error.to_string())),
    };
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("AGENTRACE_LOG").unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    tracing::debug!(open_files, "open-file limit");
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("agentrace-collector: error: cannot start the runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    #[cfg(target_os = "linux")]
    if let Some(error) = not_settled {
        let _inside = runtime.enter();
        agentrace_collector::allocator::not_settled(&error);
    }
    match runtime.block_on(serve(config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `agentrace-collector slo generate FILE`: prints the rules, or the error on one line.
fn slo(args: impl Iterator<Item = std::ffi::OsString>) -> std::process::ExitCode {
    use clap::Parser;
    let cli = agentrace_collector::slo::Cli::parse_from(args);
    let agentrace_collector::slo::Command::Generate { file } = cli.command;
    match agentrace_collector::slo::generate(&file) {
        Ok(rules) => {
            print!("{rules}");
            std::process::ExitCode::SUCCESS
        }
        Err(error) => usage_error(&first_line(&error.to_string())),
    }
}

/// A configuration error, on one line that names the flag (or file and line).
fn usage_error(message: &str) -> std::process::ExitCode {
    eprintln!("agentrace-collector: {message}");
    std::process::ExitCode::from(2)
}

async fn serve(config: agentrace_collector::Config) -> anyhow::Result<()> {
    let listeners = Listeners {
        otlp_grpc: bind(config.receive.grpc_addr)
            .with_context(|| format!("bind otlp grpc listener on {}", config.receive.grpc_addr))?,
        otlp_http: bind(config.receive.http_addr)
            .with_context(|| format!("bind otlp http listener on {}", config.receive.http_addr))?,
        metrics: bind(config.metrics_addr)
            .with_context(|| format!("bind metrics listener on {}", config.metrics_addr))?,
    };
    tracing::info!(
        otlp_grpc = %listeners.otlp_grpc.local_addr()?,
        otlp_http = %listeners.otlp_http.local_addr()?,
        metrics = %listeners.metrics.local_addr()?,
        traces_endpoint = config.export.as_ref().map_or("none", |export| export.endpoint.as_str()),
        "listening"
    );
    agentrace_collector::run(config, listeners, shutdown_signal()).await
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
