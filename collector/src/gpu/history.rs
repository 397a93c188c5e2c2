//! A bounded ring of samples per GPU, and the statistics of a time window over it.
//!
//! Values are sample-and-hold: a sample's value holds from its timestamp until the next
//! sample (the newest one until the window's end). GPU-seconds are the integral of
//! utilization over the window. Energy is the rise of NVML's energy counter across the window
//! (linear between samples) where the device has one and samples bracket the window, else
//! the integral of power. Pure: no clock, no I/O.

use std::collections::VecDeque;

use super::DeviceSample;

/// One sample of one device, as kept in the ring.
#[derive(Clone, Debug, PartialEq)]
struct Point {
    at: f64,
    utilization: Option<f64>,
    memory_used: Option<u64>,
    power_watts: Option<f64>,
    energy_millijoules: Option<u64>,
    /// (pid, SM utilization 0–1 if sampled, memory used if known)
    processes: Vec<(u32, Option<f64>, Option<u64>)>,
}

#[derive(Clone, Debug)]
struct DeviceRing {
    uuid: String,
    /// The device's name (`NVIDIA H200`), which its hourly price is looked up by.
    name: String,
    points: VecDeque<Point>,
}

/// Samples of every device, oldest first, each ring at most `capacity` long.
#[derive(Clone, Debug)]
pub struct History {
    capacity: usize,
    devices: Vec<DeviceRing>,
}

/// The GPU picture of one span's window.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowStats {
    /// The GPUs counted, in device order.
    pub uuids: Vec<String>,
    /// Mean over the counted GPUs of their time-averaged utilization, 0–1.
    pub utilization_avg: f64,
    pub utilization_max: f64,
    /// Sum over the counted GPUs of their peak memory used in the window (the process's
    /// memory when attributed to a process).
    pub memory_used_max_bytes: u64,
    /// Sum over the counted GPUs of their time-averaged power.
    pub power_avg_watts: f64,
    /// Integral of utilization over the window, summed over the counted GPUs.
    pub gpu_seconds: f64,
    /// The same per counted GPU, with the GPU's name: what its GPU time costs.
    pub gpu_seconds_by_name: Vec<(String, f64)>,
    /// Integral of power over the window, summed over the counted GPUs.
    pub energy_joules: f64,
}

/// Why a window has no statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// The window starts before the oldest sample kept: the span arrived too late.
    Late,
    /// Nothing has been sampled yet.
    NoSamples,
}

impl Skip {
    pub fn reason(self) -> &'static str {
        match self {
            Self::Late => "window_left_ring",
            Self::NoSamples => "no_samples",
        }
    }
}

impl History {
    pub fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(2), devices: Vec::new() }
    }

    pub fn push(&mut self, at: f64, devices: &[DeviceSample]) {
        for device in devices {
            let position = match self.devices.iter().position(|ring| ring.uuid == device.uuid) {
                Some(position) => position,
                None => {
                    let ring = DeviceRing {
                        uuid: device.uuid.clone(),
                        name: device.name.clone(),
                        points: VecDeque::new(),
                    };
                    self.devices.push(ring);
                    self.devices.len() - 1
                }
            };
            let ring = &mut self.devices[position];
            if ring.points.len() == self.capacity {
                ring.points.pop_front();
            }
            ring.points.push_back(Point {
                at,
                utilization: device.utilization,
                memory_used: device.memory_used,
                power_watts: device.power_watts,
                energy_millijoules: device.energy_millijoules,
                processes: device
                    .processes
                    .iter()
                    .map(|process| (process.pid, process.utilization, process.memory_used))
                    .collect(),
            });
        }
    }

    /// Statistics of `[start, end]` (Unix seconds). With `pid`, only the GPUs where that
    /// process ran inside the window count, with its own utilization and memory where
    /// sampled; when it ran on none of them, every GPU counts.
    pub fn window(&self, start: f64, end: f64, pid: Option<u32>) -> Result<WindowStats, Skip> {
        let end = end.max(start);
        let sampled: Vec<&DeviceRing> = self.devices.iter().filter(|ring| !ring.points.is_empty()).collect();
        if sampled.is_empty() {
            return Err(Skip::NoSamples);
        }
        if sampled.iter().any(|ring| ring.points.front().is_some_and(|oldest| oldest.at > start)) {
            return Err(Skip::Late);
        }
        let runs_on = |ring: &DeviceRing| {
            ring.points.iter().filter(|point| point.at <= end).any(|point| {
                pid.is_some_and(|pid| point.processes.iter().any(|(process, ..)| *process == pid))
            })
        };
        let process_gpus: Vec<&DeviceRing> = sampled.iter().copied().filter(|ring| runs_on(ring)).collect();
        let (counted, process) = if process_gpus.is_empty() { (sampled, None) } else { (process_gpus, pid) };

        let mut stats = WindowStats {
            uuids: Vec::new(),
            utilization_avg: 0.0,
            utilization_max: 0.0,
            memory_used_max_bytes: 0,
            power_avg_watts: 0.0,
            gpu_seconds: 0.0,
            gpu_seconds_by_name: Vec::new(),
            energy_joules: 0.0,
        };
        let duration = end - start;
        for ring in &counted {
            let segments = segments(ring, start, end);
            let utilization = |point: &Point| match process {
                Some(pid) => point
                    .processes
                    .iter()
                    .find(|(process, ..)| *process == pid)
                    .map_or(Some(0.0), |(_, utilization, _)| utilization.or(point.utilization)),
                None => point.utilization,
            };
            let memory = |point: &Point| match process {
                Some(pid) => point
                    .processes
                    .iter()
                    .find(|(process, ..)| *process == pid)
                    .and_then(|(.., memory)| *memory),
                None => point.memory_used,
            };
            let busy: f64 =
                segments.iter().map(|(point, seconds)| utilization(point).unwrap_or(0.0) * seconds).sum();
            let power_integral: f64 =
                segments.iter().map(|(point, seconds)| point.power_watts.unwrap_or(0.0) * seconds).sum();
            let energy = energy_from_counter(ring, start, end).unwrap_or(power_integral);
            let utilization_max =
                segments.iter().filter_map(|(point, _)| utilization(point)).fold(0.0, f64::max);
            let memory_max = segments.iter().filter_map(|(point, _)| memory(point)).max().unwrap_or(0);
            let (utilization_avg, power_avg) = if duration > 0.0 {
                (busy / duration, power_integral / duration)
            } else {
                let first = segments.first().map(|(point, _)| *point);
                (
                    first.and_then(utilization).unwrap_or(0.0),
                    first.and_then(|point| point.power_watts).unwrap_or(0.0),
                )
            };
            stats.uuids.push(ring.uuid.clone());
            stats.utilization_avg += utilization_avg / counted.len() as f64;
            stats.utilization_max = stats.utilization_max.max(utilization_max);
            stats.memory_used_max_bytes += memory_max;
            stats.power_avg_watts += power_avg;
            stats.gpu_seconds += busy;
            stats.gpu_seconds_by_name.push((ring.name.clone(), busy));
            stats.energy_joules += energy;
        }
        Ok(stats)
    }
}

/// Joules between `start` and `end` from the energy counter, interpolated linearly between the
/// samples around each end; `None` unless samples with a counter bracket both ends.
fn energy_from_counter(ring: &DeviceRing, start: f64, end: f64) -> Option<f64> {
    let at = |time: f64| -> Option<f64> {
        let after = ring.points.iter().position(|point| point.at >= time)?;
        let next = &ring.points[after];
        let next_energy = next.energy_millijoules? as f64;
        if next.at == time || after == 0 {
            return (next.at == time).then_some(next_energy);
        }
        let previous = &ring.points[after - 1];
        let previous_energy = previous.energy_millijoules? as f64;
        let fraction = (time - previous.at) / (next.at - previous.at);
        Some(previous_energy + (next_energy - previous_energy) * fraction)
    };
    let joules = (at(end)? - at(start)?) / 1000.0;
    (joules >= 0.0).then_some(joules)
}

/// The samples in effect during `[start, end]`, each with the seconds it held inside it. An
/// instant window yields the one sample in effect, for zero seconds.
fn segments(ring: &DeviceRing, start: f64, end: f64) -> Vec<(&Point, f64)> {
    let points: Vec<&Point> = ring.points.iter().collect();
    let mut segments = Vec::new();
    for (position, point) in points.iter().enumerate() {
        let held_until = points.get(position + 1).map_or(f64::INFINITY, |next| next.at);
        let from = point.at.max(start);
        let to = held_until.min(end);
        let in_effect_at_instant = start == end && point.at <= start && start < held_until;
        if to > from || in_effect_at_instant {
            segments.push((*point, (to - from).max(0.0)));
        }
    }
    segments
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::ProcessSample;

    fn device(uuid: &str, utilization: f64, power: f64, processes: Vec<ProcessSample>) -> DeviceSample {
        DeviceSample {
            index: 0,
            uuid: uuid.to_owned(),
            name: "test".to_owned(),
            utilization: Some(utilization),
            memory_used: Some(40),
            memory_total: Some(100),
            temperature_celsius: Some(40.0),
            power_watts: Some(power),
            energy_millijoules: None,
            processes,
        }
    }

    fn process(pid: u32, utilization: f64, memory: u64) -> ProcessSample {
        ProcessSample { pid, utilization: Some(utilization), memory_used: Some(memory) }
    }

    /// GPU A steps from 20 % to 80 % at t = 10; GPU B stays at 10 %. Samples every second.
    fn stepped() -> History {
        let mut history = History::new(100);
        for second in 0..=20 {
            let a = if second < 10 { 0.2 } else { 0.8 };
            let devices = [
                device("A", a, 300.0, vec![process(42, a, 8)]),
                device("B", 0.1, 100.0, vec![process(43, 0.1, 2)]),
            ];
            history.push(f64::from(second), &devices);
        }
        history
    }

    #[test]
    fn a_window_across_the_step_averages_and_peaks() {
        let stats = stepped().window(9.0, 11.0, Some(42)).expect("in the ring");
        assert_eq!(stats.uuids, vec!["A".to_owned()]);
        assert!((stats.utilization_avg - 0.5).abs() < 1e-12);
        assert_eq!(stats.utilization_max, 0.8);
        // 0.2 × 1 s + 0.8 × 1 s
        assert!((stats.gpu_seconds - 1.0).abs() < 1e-12);
        assert!((stats.energy_joules - 600.0).abs() < 1e-9);
        assert!((stats.power_avg_watts - 300.0).abs() < 1e-9);
        assert_eq!(stats.memory_used_max_bytes, 8, "the process's memory");
    }

    #[test]
    fn without_a_known_process_every_gpu_counts() {
        for pid in [None, Some(7)] {
            let stats = stepped().window(9.0, 11.0, pid).expect("in the ring");
            assert_eq!(stats.uuids, vec!["A".to_owned(), "B".to_owned()]);
            assert!((stats.utilization_avg - 0.3).abs() < 1e-12, "(0.5 + 0.1) / 2");
            assert!((stats.gpu_seconds - 1.2).abs() < 1e-12);
            assert!((stats.energy_joules - 800.0).abs() < 1e-9);
            assert!((stats.power_avg_watts - 400.0).abs() < 1e-9);
            assert_eq!(stats.memory_used_max_bytes, 80);
        }
    }

    #[test]
    fn the_newest_sample_holds_until_the_window_ends() {
        let stats = stepped().window(19.5, 22.0, Some(42)).expect("in the ring");
        assert!((stats.gpu_seconds - 0.8 * 2.5).abs() < 1e-12);
    }

    #[test]
    fn an_instant_window_reads_the_sample_in_effect() {
        let stats = stepped().window(10.5, 10.5, Some(42)).expect("in the ring");
        assert_eq!((stats.utilization_avg, stats.gpu_seconds), (0.8, 0.0));
    }

    #[test]
    fn the_energy_counter_wins_when_samples_bracket_the_window() {
        let mut history = History::new(100);
        for second in 0..=4u32 {
            // The counter says 250 W while the power reading says 300 W.
            let mut sample = device("A", 0.5, 300.0, Vec::new());
            sample.energy_millijoules = Some(u64::from(second) * 250_000);
            history.push(f64::from(second), &[sample]);
        }
        let stats = history.window(0.5, 2.5, None).expect("in the ring");
        assert!((stats.energy_joules - 500.0).abs() < 1e-9, "{}", stats.energy_joules);
        assert!((stats.power_avg_watts - 300.0).abs() < 1e-9);
        let past_the_newest = history.window(3.5, 5.0, None).expect("in the ring");
        assert!((past_the_newest.energy_joules - 450.0).abs() < 1e-9, "falls back to power × time");
    }

    #[test]
    fn windows_older_than_the_ring_are_late() {
        let mut history = History::new(5);
        for second in 0..10 {
            history.push(f64::from(second), &[device("A", 0.5, 100.0, Vec::new())]);
        }
        assert_eq!(history.window(2.0, 3.0, None), Err(Skip::Late), "samples 0–4 were dropped");
        assert!(history.window(6.0, 7.0, None).is_ok());
        assert_eq!(History::new(5).window(0.0, 1.0, None), Err(Skip::NoSamples));
    }
}
