//! GPU: an NVML sampler on its own thread (NVML calls block) fills a bounded ring of samples
//! per device and rewrites the `gpu_*` gauges at every sample; the processing stage asks the
//! ring for the statistics of each LLM and model-load span's window (`history.rs`) to enrich
//! the span and count GPU-seconds and energy. Processes are attributed to containers through
//! their cgroup and to services through the spans they send (`processes.rs`).
//!
//! Without NVML (no driver, no device, an init error) the collector runs on: one log line,
//! `agentrace_gpu_available 0`, no enrichment.

mod carried;
mod history;
mod nvml;
mod processes;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentrace_semconv::metric;

pub use carried::carried;
pub use history::{History, Skip, WindowStats};
pub use nvml::NvmlSource;
pub use processes::{local_host_name, Identity, ProcessServices};

use crate::args::{self, ArgError};
use crate::metrics::Registry;
use crate::unix_now;

/// How long a process's service stays known after its last span.
const SERVICE_TTL_SECS: f64 = 600.0;

#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error("cannot load NVML: {0}")]
    Init(String),
    #[error("NVML sample failed: {0}")]
    Sample(String),
}

/// One process on one GPU.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcessSample {
    pub pid: u32,
    pub memory_used: Option<u64>,
    /// SM utilization, 0–1, when NVML had a sample for it.
    pub utilization: Option<f64>,
}

/// One device at one instant. Readings a device does not support are `None`.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceSample {
    pub index: u32,
    pub uuid: String,
    pub name: String,
    /// 0–1.
    pub utilization: Option<f64>,
    pub memory_used: Option<u64>,
    pub memory_total: Option<u64>,
    pub temperature_celsius: Option<f64>,
    pub power_watts: Option<f64>,
    /// NVML's energy counter since the driver loaded, on devices that support it.
    pub energy_millijoules: Option<u64>,
    pub processes: Vec<ProcessSample>,
}

/// Where samples come from: NVML in production; the tests load a scripted
/// `libnvidia-ml.so` through the same NVML source.
pub trait GpuSource {
    /// Samples every device now. Blocks.
    fn sample(&mut self) -> Result<Vec<DeviceSample>, GpuError>;
}

#[derive(Clone, Debug)]
pub struct GpuConfig {
    pub enabled: bool,
    /// `libnvidia-ml.so.1` to load instead of the system's.
    pub library: Option<PathBuf>,
    pub interval: Duration,
    /// How far back the ring reaches; spans older than this are not enriched.
    pub history: Duration,
    /// Where `<pid>/cgroup` files are read (`/proc`).
    pub proc_root: PathBuf,
    /// The kubelet's pod log directories, which name the pods of GPU processes.
    pub pod_logs_dir: PathBuf,
    /// This Kubernetes node's name, when on one.
    pub node_name: Option<String>,
}

pub const DEFAULT_SAMPLE_INTERVAL_SECS: f64 = 1.0;
pub const DEFAULT_HISTORY_SECS: f64 = 600.0;
pub const DEFAULT_PROC_ROOT: &str = "/proc";
pub const DEFAULT_POD_LOGS_DIR: &str = "/var/log/pods";

impl Default for GpuConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            library: None,
            interval: Duration::from_secs_f64(DEFAULT_SAMPLE_INTERVAL_SECS),
            history: Duration::from_secs_f64(DEFAULT_HISTORY_SECS),
            proc_root: PathBuf::from(DEFAULT_PROC_ROOT),
            pod_logs_dir: PathBuf::from(DEFAULT_POD_LOGS_DIR),
            node_name: None,
        }
    }
}

#[derive(Clone, Debug, Default, clap::Args)]
#[command(next_help_heading = "GPU")]
#[group(id = "gpu_sampling")]
pub struct Args {
    /// GPU sampling through NVML: `on` or `off` [default: on].
    #[arg(long, env = "AGENTRACE_GPU", value_name = "on|off")]
    pub gpu: Option<String>,

    /// NVML library to load (default: the system's libnvidia-ml.so).
    #[arg(long, env = "AGENTRACE_NVML_LIB", value_name = "PATH")]
    pub nvml_lib: Option<PathBuf>,

    /// Seconds between GPU samples [default: 1].
    #[arg(long, env = "AGENTRACE_GPU_SAMPLE_INTERVAL", value_name = "SECS")]
    pub gpu_sample_interval: Option<f64>,

    /// Seconds of GPU samples kept for enriching spans; older spans are forwarded without
    /// [default: 600].
    #[arg(long, env = "AGENTRACE_GPU_HISTORY_SECS", value_name = "SECS")]
    pub gpu_history_secs: Option<f64>,

    /// Where the process table is read, for container ids of GPU processes [default: /proc].
    #[arg(long, env = "AGENTRACE_PROC_ROOT", value_name = "PATH")]
    pub proc_root: Option<PathBuf>,

    /// The kubelet's pod log directories (`<namespace>_<pod>_<uid>`), read to name the pod
    /// and namespace of a GPU process from the pod UID in its cgroup [default: /var/log/pods].
    #[arg(long, env = "AGENTRACE_POD_LOGS_DIR", value_name = "PATH")]
    pub pod_logs_dir: Option<PathBuf>,

    /// This Kubernetes node's name (from the downward API's `spec.nodeName`): spans whose
    /// resource carries it in `k8s.node.name` come from this machine's processes.
    #[arg(long, env = "AGENTRACE_NODE_NAME", value_name = "NAME")]
    pub node_name: Option<String>,
}

impl Args {
    pub fn validate(self) -> Result<GpuConfig, ArgError> {
        let enabled = match self.gpu.as_deref().map(str::trim) {
            None | Some("on") => true,
            Some("off") => false,
            Some(other) => return Err(ArgError::invalid("gpu", format!("{other:?} is neither on nor off"))),
        };
        Ok(GpuConfig {
            enabled,
            library: self.nvml_lib,
            interval: args::seconds(
                "gpu-sample-interval",
                self.gpu_sample_interval.unwrap_or(DEFAULT_SAMPLE_INTERVAL_SECS),
            )?,
            history: args::seconds(
                "gpu-history-secs",
                self.gpu_history_secs.unwrap_or(DEFAULT_HISTORY_SECS),
            )?,
            proc_root: self.proc_root.unwrap_or_else(|| PathBuf::from(DEFAULT_PROC_ROOT)),
            pod_logs_dir: self.pod_logs_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_POD_LOGS_DIR)),
            node_name: self.node_name.map(|name| name.trim().to_owned()).filter(|name| !name.is_empty()),
        })
    }
}

/// What the sampler shares with the processing stage.
#[derive(Debug)]
pub struct GpuState {
    history: Mutex<History>,
    pub services: ProcessServices,
}

impl GpuState {
    pub fn new(config: &GpuConfig) -> Self {
        let capacity =
            (config.history.as_secs_f64() / config.interval.as_secs_f64().max(1e-3)).ceil() as usize;
        Self {
            history: Mutex::new(History::new(capacity)),
            services: ProcessServices::new(local_host_name(), SERVICE_TTL_SECS)
                .on_node(config.node_name.clone()),
        }
    }

    pub fn window(&self, start: f64, end: f64, pid: Option<u32>) -> Result<WindowStats, Skip> {
        match self.history.lock() {
            Ok(history) => history.window(start, end, pid),
            Err(_) => Err(Skip::NoSamples),
        }
    }

    fn push(&self, at: f64, devices: &[DeviceSample]) {
        if let Ok(mut history) = self.history.lock() {
            history.push(at, devices);
        }
    }
}

/// Samples at a fixed interval until told to stop; owns the source.
pub struct Sampler {
    pub source: Box<dyn GpuSource + Send>,
    pub config: GpuConfig,
    pub state: Arc<GpuState>,
    pub registry: Arc<Registry>,
}

impl Sampler {
    /// Blocks, sampling every interval, until `stop` receives or its sender is dropped. Ticks
    /// are fixed-rate: the time a sample takes does not stretch the period, and a sampler that
    /// fell behind samples at once instead of bursting to catch up.
    pub fn run(mut self, stop: Receiver<()>) {
        let mut containers: HashMap<u32, Identity> = HashMap::new();
        let mut failures = 0u64;
        let mut next_tick = Instant::now();
        loop {
            let at = unix_now();
            match self.source.sample() {
                Ok(devices) => {
                    self.state.push(at, &devices);
                    self.publish(&devices, &mut containers, at);
                }
                Err(error) => {
                    failures += 1;
                    if failures == 1 {
                        tracing::warn!(%error, "gpu sample failed; retrying every interval");
                    } else {
                        tracing::debug!(%error, failures, "gpu sample failed");
                    }
                }
            }
            next_tick += self.config.interval;
            let now = Instant::now();
            next_tick = next_tick.max(now);
            match stop.recv_timeout(next_tick - now) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Rewrites the `gpu_*` gauges from one sample.
    fn publish(&self, devices: &[DeviceSample], containers: &mut HashMap<u32, Identity>, now: f64) {
        type Reading = fn(&DeviceSample) -> Option<f64>;
        let device_gauges: [(&str, Reading); 5] = [
            (metric::GPU_UTILIZATION_RATIO, |device| device.utilization),
            (metric::GPU_MEMORY_USED_BYTES, |device| device.memory_used.map(|bytes| bytes as f64)),
            (metric::GPU_MEMORY_TOTAL_BYTES, |device| device.memory_total.map(|bytes| bytes as f64)),
            (metric::GPU_TEMPERATURE_CELSIUS, |device| device.temperature_celsius),
            (metric::GPU_POWER_WATTS, |device| device.power_watts),
        ];
        for (name, read) in device_gauges {
            let series = devices
                .iter()
                .filter_map(|device| {
                    let labels = vec![device.index.to_string(), device.uuid.clone(), device.name.clone()];
                    read(device).map(|value| (labels, value))
                })
                .collect();
            self.registry.replace_gauges(name, series, now);
        }

        let pids: Vec<u32> =
            devices.iter().flat_map(|device| device.processes.iter().map(|process| process.pid)).collect();
        containers.retain(|pid, _| pids.contains(pid));
        let mut memory = Vec::new();
        let mut utilization = Vec::new();
        for device in devices {
            for process in &device.processes {
                let Identity { container, pod, namespace } = containers
                    .entry(process.pid)
                    .or_insert_with(|| {
                        processes::identity_of(&self.config.proc_root, &self.config.pod_logs_dir, process.pid)
                    })
                    .clone();
                let service = self.state.services.service_of(process.pid, now);
                let labels = vec![
                    device.index.to_string(),
                    process.pid.to_string(),
                    container,
                    pod,
                    namespace,
                    service,
                ];
                if let Some(bytes) = process.memory_used {
                    memory.push((labels.clone(), bytes as f64));
                }
                if let Some(ratio) = process.utilization {
                    utilization.push((labels, ratio));
                }
            }
        }
        self.registry.replace_gauges(metric::GPU_PROCESS_MEMORY_USED_BYTES, memory, now);
        self.registry.replace_gauges(metric::GPU_PROCESS_UTILIZATION_RATIO, utilization, now);
    }
}
