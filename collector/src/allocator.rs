//! The options the collector (and the load generator's sender and sink) give mimalloc, their
//! allocator, unless the operator set them.
//!
//! - **Purge delay, 10 s** (`MIMALLOC_PURGE_DELAY`, older name `MIMALLOC_RESET_DELAY`): how
//!   long freed memory is kept before it goes back to the system. mimalloc's default, one
//!   second, is shorter than the cycle the collector's memory goes through: the agent graph
//!   holds a trace's spans for ten seconds (`--graph-wait-secs`), the live view turns its store
//!   over in ten, and the queue fills and drains with the exporter. Memory given back that is
//!   needed again a moment later is faulted in and zeroed page by page: 18 900 page faults in
//!   10 s at 30 720 spans/s, against 2 900 with ten seconds, and about 3.5 % of the CPU a span
//!   costs (BENCHMARKS.md). Memory that stays free for ten seconds still goes back.
//! - **No transparent huge pages** (`MIMALLOC_ALLOW_THP=0`): mimalloc asks the kernel for huge
//!   pages on its arenas by default, and the first touch of each 2 MiB page then zeroes all of
//!   it. At 30 720 spans/s the collector's peak resident size was 129 MiB with them and 98 MiB
//!   without, for a little less CPU a span (0.957×). Zeroing them came in bursts: 15 % of the
//!   collector's samples in the first step of a load that filled its queue, and up to 100 ms at
//!   a time in which the load generator's sender sent nothing and then caught up
//!   (BENCHMARKS.md, "Refusals near saturation").
//!
//! mimalloc reads its options from the environment as the process loads, before `main`, and
//! setting one afterwards takes `unsafe` code: so, when one is not set, the process executes
//! itself again (the same process id, name, arguments and environment) with it set.

/// One option: the variable's names (mimalloc reads any of them, in any case) and its value.
pub struct Setting {
    pub names: &'static [&'static str],
    pub value: &'static str,
}

pub const PURGE_DELAY: Setting =
    Setting { names: &["MIMALLOC_PURGE_DELAY", "MIMALLOC_RESET_DELAY"], value: "10000" };
pub const NO_HUGE_PAGES: Setting = Setting { names: &["MIMALLOC_ALLOW_THP"], value: "0" };

/// Executes the process again with each of `settings` that its environment lacks set, unless
/// it has them all. Returns why that failed, if it did: the process then goes on with
/// mimalloc's defaults, after [`not_settled`].
#[cfg(target_os = "linux")]
pub fn settle(settings: &[Setting]) -> Option<std::io::Error> {
    use std::os::unix::process::CommandExt;
    let named = |setting: &Setting, name: &std::ffi::OsStr| {
        name.to_str().is_some_and(|name| setting.names.iter().any(|known| name.eq_ignore_ascii_case(known)))
    };
    let missing: Vec<&Setting> = settings
        .iter()
        .filter(|setting| !std::env::vars_os().any(|(name, _)| named(setting, &name)))
        .collect();
    if missing.is_empty() {
        return None;
    }
    // The binary by its path, so that the process keeps its name (the kernel names it after
    // the file executed, and `/proc/self/exe` would make it `exe`); that link only when the
    // path no longer leads to the binary.
    let binary =
        std::env::current_exe().ok().filter(|path| path.is_file()).unwrap_or_else(|| "/proc/self/exe".into());
    let mut args = std::env::args_os();
    let program = args.next()?;
    let command = std::process::Command::new(binary)
        .arg0(program)
        .args(args)
        .envs(missing.iter().map(|setting| (setting.names[0], setting.value)))
        .exec();
    Some(command)
}

/// After a failed attempt, inside a tokio runtime. To execute, the standard library sets
/// SIGPIPE back to its default (ending the process) and may leave it so when that fails, while
/// a write to a closed connection must return an error instead: a handler, which tokio keeps
/// for the life of the process, sees to that.
#[cfg(target_os = "linux")]
pub fn not_settled(error: &std::io::Error) {
    tracing::warn!(%error, "running with the allocator's defaults: executing again failed");
    if let Err(error) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::pipe()) {
        tracing::warn!(%error, "SIGPIPE left at its default");
    }
}
