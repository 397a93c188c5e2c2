//! `agentrace-collector`: parse the configuration, set up logging, bind the listeners, run.

use agentrace_collector::{bind, first_line, ConfigError, Listeners, Options};
use anyhow::Context;
use tracing_subscriber::EnvFilter;

// Decoding a request allocates a string or vector per attribute; mimalloc's thread-local
// free lists make that markedly cheaper than glibc's allocator (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long mimalloc keeps freed memory before it gives it back to the system.
///
/// Its default, one second, is shorter than the cycle the collector's memory goes through: the
/// agent graph holds a trace's spans for ten seconds (`--graph-wait-secs`), the live view turns
/// its store over in ten, and the queue fills and drains with the exporter. Memory given back
/// that is needed again a moment later is faulted in and zeroed page by page: 18 900 page
/// faults in 10 s at 30 720 spans/s, against 2 900 with ten seconds, and about 3.5 % of the CPU
/// a span costs (0.965× to 0.967× with ten seconds, BENCHMARKS.md). Memory that stays free for
/// ten seconds still goes back.
#[cfg(target_os = "linux")]
mod allocator {
    use std::os::unix::process::CommandExt;

    const PURGE_DELAY_MS: &str = "10000";
    /// The variable and its older name. mimalloc reads them in any case; one that the operator
    /// set, under either name, is left as it is.
    const VARIABLES: [&str; 2] = ["MIMALLOC_PURGE_DELAY", "MIMALLOC_RESET_DELAY"];

    /// mimalloc reads its options from the environment as the process loads, before `main`,
    /// and setting one afterwards takes `unsafe` code: so, when the variable is not set, the
    /// collector executes itself again (the same process id, name, arguments and environment)
    /// with it set. Returns why that failed, if it did: the collector then goes on with
    /// mimalloc's default.
    pub fn settle() -> Option<std::io::Error> {
        let named = |name: &std::ffi::OsStr| {
            name.to_str().is_some_and(|name| VARIABLES.iter().any(|known| name.eq_ignore_ascii_case(known)))
        };
        if std::env::vars_os().any(|(name, _)| named(&name)) {
            return None;
        }
        // The binary by its path, so that the process keeps its name (the kernel names it
        // after the file executed, and `/proc/self/exe` would make it `exe`); that link only
        // when the path no longer leads to the binary.
        let binary = std::env::current_exe()
            .ok()
            .filter(|path| path.is_file())
            .unwrap_or_else(|| "/proc/self/exe".into());
        let mut args = std::env::args_os();
        let program = args.next()?;
        Some(
            std::process::Command::new(binary)
                .arg0(program)
                .args(args)
                .env(VARIABLES[0], PURGE_DELAY_MS)
                .exec(),
        )
    }

    /// After a failed attempt. To execute, the standard library sets SIGPIPE back to its
    /// default (ending the process) and may leave it so when that fails, while a write to a
    /// closed connection must return an error instead: a handler, which tokio keeps for the
    /// life of the process, sees to that.
    pub fn not_settled(error: &std::io::Error, runtime: &tokio::runtime::Runtime) {
        tracing::warn!(%error, "running with the allocator's default purge delay: executing again failed");
        let _inside = runtime.enter();
        if let Err(error) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::pipe()) {
            tracing::warn!(%error, "SIGPIPE left at its default");
        }
    }
}

fn main() -> std::process::ExitCode {
    if std::env::args_os().nth(1).is_some_and(|first| first == "slo") {
        return slo(std::env::args_os().skip(1));
    }
    #[cfg(target_os = "linux")]
    let not_settled = allocator::settle();
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
        allocator::not_settled(&error, &runtime);
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
