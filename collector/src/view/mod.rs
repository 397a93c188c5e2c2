//! The live view: a page at `/` on the metrics address, its JSON API under `/api/v1/`, and
//! the recent-trace store behind them, so that a person sees per-agent figures, the agent graph
//! and trace waterfalls without Prometheus, Tempo or Grafana running.
//!
//! The figures are the registry's own (`window.rs`), so they equal what `/metrics` serves; the
//! traces are the processors' canonical spans (`staged.rs`, `store.rs`), so no content reaches
//! the page. The page is three static files built into the binary (`assets/`): plain HTML, CSS
//! and one script that draws with the DOM and SVG, with no framework, no build step and no
//! request beyond this collector, so a strict Content-Security-Policy holds.

mod api;
mod args;
mod staged;
mod store;
mod summary;
mod traces;
mod window;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use self::args::{Args, ViewConfig};
pub use self::staged::Staged;
pub use self::store::Eviction;
use self::store::TraceStore;
use self::window::{Totals, Window, SAMPLE_EVERY};
use crate::auth::BearerToken;
use crate::events::{ViewEvicted, ViewFill};
use crate::metrics::{Registry, Reported};

/// The store turns over at most once in this long: past `--view-traces` new traces in it,
/// ordinary traces are sampled by trace id (failed and slow spans are always kept).
const TURNOVER_SECS: f64 = 10.0;

/// The view's state, shared by the processors (which add traces) and the endpoint.
#[derive(Debug)]
pub struct View {
    config: ViewConfig,
    registry: Arc<Registry>,
    token: Option<BearerToken>,
    store: Mutex<TraceStore>,
    window: Mutex<Window>,
    /// The sample's bound (`staged::sampled`), adjusted every second to the spans offered.
    threshold: AtomicU64,
    /// Spans offered since `since` (Unix seconds).
    offered: Mutex<(f64, u64)>,
}

impl View {
    pub fn new(config: ViewConfig, registry: Arc<Registry>, token: Option<BearerToken>) -> Arc<Self> {
        let store = Mutex::new(TraceStore::new(config.store));
        let window = Mutex::new(Window::new(crate::unix_now()));
        let now = crate::unix_now();
        let (threshold, offered) = (AtomicU64::new(u64::MAX), Mutex::new((now, 0)));
        Arc::new(Self { config, registry, token, store, window, threshold, offered })
    }

    /// The view of `config`, unless `--view off`; its store's fill is read at each scrape.
    pub fn configured(
        config: &crate::Config,
        registry: &Arc<Registry>,
        reported: &mut Vec<Arc<dyn Reported>>,
    ) -> Option<Arc<Self>> {
        let view = Self::new(config.view.clone()?, registry.clone(), config.metrics_endpoint.token.clone());
        reported.push(view.clone());
        Some(view)
    }

    /// Empties `staged` for a request, with the sample it is to stage.
    pub fn prepare(&self, staged: &mut Staged) {
        staged.prepare(self.threshold.load(Ordering::Relaxed), self.config.store.slow_nanos);
    }

    /// Adds a request's staged spans to the store, counts what made room for them or was left
    /// out, and adjusts the sample.
    pub fn insert(&self, staged: &Staged) {
        if staged.offered == 0 {
            return;
        }
        let (evictions, spans_per_trace) = {
            let mut store = lock(&self.store);
            store.insert(staged);
            let spans_per_trace = store.span_count() as f64 / store.len().max(1) as f64;
            (store.take_evictions(), spans_per_trace.max(1.0))
        };
        self.adjust(staged.offered, spans_per_trace, crate::unix_now());
        for (reason, count) in evictions {
            if count > 0 {
                self.registry.emit(ViewEvicted { reason, count });
            }
        }
    }

    /// Once a second, sets the sample so that the spans staged from now on fill the store no
    /// faster than once in [`TURNOVER_SECS`]: all of them while few arrive.
    fn adjust(&self, offered: u64, spans_per_trace: f64, now: f64) {
        let mut counted = lock(&self.offered);
        counted.1 += offered;
        let elapsed = now - counted.0;
        if elapsed < 1.0 {
            return;
        }
        let rate = counted.1 as f64 / elapsed;
        let wanted = self.config.store.max_traces as f64 * spans_per_trace / TURNOVER_SECS;
        let share = (wanted / rate.max(1.0)).min(1.0);
        self.threshold.store((share * u64::MAX as f64) as u64, Ordering::Relaxed);
        *counted = (now, 0);
    }

    /// Keeps a reading of the registry every [`SAMPLE_EVERY`] seconds until `stop`.
    pub async fn sample(self: Arc<Self>, stop: CancellationToken) {
        let mut every = tokio::time::interval(Duration::from_secs_f64(SAMPLE_EVERY));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => {
                    let totals = Totals::read(&self.registry);
                    lock(&self.window).keep(crate::unix_now(), totals);
                }
                () = stop.cancelled() => return,
            }
        }
    }
}

impl Reported for View {
    fn report(&self, registry: &Registry) {
        let store = lock(&self.store);
        let limits = store.limits();
        registry.emit(ViewFill { traces: store.len(), bytes: store.bytes(), max_bytes: limits.max_bytes });
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
