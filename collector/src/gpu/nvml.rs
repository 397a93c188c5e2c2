//! The NVML source, on `nvml-wrapper`: every device, and per device its running compute
//! processes with their memory and utilization samples. Calls block; the sampler runs this on
//! its own thread.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::Path;

use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::Nvml;

use super::{DeviceSample, GpuError, GpuSource, ProcessSample};

pub struct NvmlSource {
    nvml: Nvml,
    /// Per device index, the newest process-utilization timestamp already read (NVML returns
    /// the samples newer than the one passed in).
    last_seen: HashMap<u32, u64>,
}

impl NvmlSource {
    /// Loads NVML from `library` (a path to `libnvidia-ml.so.1`), or from the system default.
    pub fn open(library: Option<&Path>) -> Result<Self, GpuError> {
        let mut builder = Nvml::builder();
        if let Some(path) = library {
            builder.lib_path(OsStr::new(path));
        }
        let nvml = builder.init().map_err(|error| GpuError::Init(error.to_string()))?;
        Ok(Self { nvml, last_seen: HashMap::new() })
    }
}

/// Optional readings: a device that does not support one (or an old driver without the call)
/// leaves it out rather than failing the sample.
fn optional<T>(reading: Result<T, NvmlError>) -> Option<T> {
    reading.ok()
}

impl GpuSource for NvmlSource {
    fn sample(&mut self) -> Result<Vec<DeviceSample>, GpuError> {
        let count = self.nvml.device_count().map_err(|error| GpuError::Sample(error.to_string()))?;
        let mut devices = Vec::with_capacity(count as usize);
        for index in 0..count {
            let device =
                self.nvml.device_by_index(index).map_err(|error| GpuError::Sample(error.to_string()))?;
            let uuid = device.uuid().map_err(|error| GpuError::Sample(error.to_string()))?;
            let memory = optional(device.memory_info());
            let mut processes: Vec<ProcessSample> = optional(device.running_compute_processes())
                .unwrap_or_default()
                .into_iter()
                .map(|process| ProcessSample {
                    pid: process.pid,
                    memory_used: match process.used_gpu_memory {
                        UsedGpuMemory::Used(bytes) => Some(bytes),
                        UsedGpuMemory::Unavailable => None,
                    },
                    utilization: None,
                })
                .collect();
            let since = self.last_seen.get(&index).copied();
            for utilization in optional(device.process_utilization_stats(since)).unwrap_or_default() {
                self.last_seen.insert(index, utilization.timestamp.max(since.unwrap_or(0)));
                let ratio = f64::from(utilization.sm_util) / 100.0;
                match processes.iter_mut().find(|process| process.pid == utilization.pid) {
                    Some(process) => process.utilization = Some(ratio),
                    None => processes.push(ProcessSample {
                        pid: utilization.pid,
                        memory_used: None,
                        utilization: Some(ratio),
                    }),
                }
            }
            devices.push(DeviceSample {
                index,
                uuid,
                name: optional(device.name()).unwrap_or_default(),
                utilization: optional(device.utilization_rates()).map(|rates| f64::from(rates.gpu) / 100.0),
                memory_used: memory.as_ref().map(|memory| memory.used),
                memory_total: memory.as_ref().map(|memory| memory.total),
                temperature_celsius: optional(device.temperature(TemperatureSensor::Gpu)).map(f64::from),
                power_watts: optional(device.power_usage()).map(|milliwatts| f64::from(milliwatts) / 1000.0),
                energy_millijoules: optional(device.total_energy_consumption()),
                processes,
            });
        }
        Ok(devices)
    }
}
