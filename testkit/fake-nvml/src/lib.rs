//! A fake `libnvidia-ml.so` for tests on machines without a GPU. It exports the NVML entry
//! points the agentrace collector's sampler calls (through the real `nvml-wrapper`) and answers
//! with scripted values:
//!
//! | | GPU 0 | GPU 1 |
//! |---|---|---|
//! | name | `Fake H200 A` | `Fake H200 B` |
//! | UUID | `GPU-fa4e0000-0000-0000-0000-000000000000` | `GPU-fa4e0000-0000-0000-0000-000000000001` |
//! | utilization | 20 %, 80 % from `FAKE_NVML_STEP_UNIX_MS` on | 10 % |
//! | memory used / total | 40 GiB / 141 GiB | 10 GiB / 141 GiB |
//! | temperature | 45 °C | 38 °C |
//! | power | 300 W | 100 W |
//! | energy counter | 300 J per second since load | 100 J per second since load |
//! | compute process | pid `FAKE_NVML_PID` (default 4242), 8 GiB, its utilization | pid 4243, 2 GiB, 10 % |
//!
//! Only the functions the sampler needs exist; nvml-wrapper resolves each symbol lazily, so
//! any other call fails with "function not found", as on an old driver.
#![allow(unsafe_code, non_snake_case, clippy::missing_safety_doc)]

use std::ffi::{c_char, c_uint, c_ulonglong, CStr};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

type NvmlReturn = c_uint;
const SUCCESS: NvmlReturn = 0;
const INVALID_ARGUMENT: NvmlReturn = 2;
const INSUFFICIENT_SIZE: NvmlReturn = 7;

const GIB: u64 = 1 << 30;
const DEVICE_COUNT: usize = 2;

#[repr(C)]
pub struct Utilization {
    gpu: c_uint,
    memory: c_uint,
}

#[repr(C)]
pub struct MemoryV2 {
    version: c_uint,
    total: c_ulonglong,
    reserved: c_ulonglong,
    free: c_ulonglong,
    used: c_ulonglong,
}

#[repr(C)]
pub struct ProcessInfo {
    pid: c_uint,
    used_gpu_memory: c_ulonglong,
    gpu_instance_id: c_uint,
    compute_instance_id: c_uint,
}

#[repr(C)]
pub struct ProcessUtilizationSample {
    pid: c_uint,
    time_stamp: c_ulonglong,
    sm_util: c_uint,
    mem_util: c_uint,
    enc_util: c_uint,
    dec_util: c_uint,
}

/// Device handles are pointers to these; NVML's are opaque, ours carry the index.
pub struct Device {
    index: usize,
}

static DEVICES: [Device; DEVICE_COUNT] = [Device { index: 0 }, Device { index: 1 }];
/// When the library was initialised, in Unix seconds. The energy counter rises with the
/// wall clock, the clock the collector stamps its samples and spans with: counted on the
/// monotonic clock instead, it fell 0.3 to 0.5 % behind them while the system clock was being
/// slewed, and the energy of a window with it.
static LOADED: OnceLock<f64> = OnceLock::new();

fn unix_seconds() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |elapsed| elapsed.as_secs_f64())
}

fn unix_ms() -> u64 {
    (unix_seconds() * 1000.0) as u64
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.trim().parse().ok()
}

fn utilization_percent(index: usize) -> c_uint {
    match index {
        0 => match env_u64("FAKE_NVML_STEP_UNIX_MS") {
            Some(step) if unix_ms() >= step => 80,
            _ => 20,
        },
        _ => 10,
    }
}

fn main_pid() -> c_uint {
    env_u64("FAKE_NVML_PID").map_or(4242, |pid| pid as c_uint)
}

unsafe fn device<'a>(handle: *const Device) -> Option<&'a Device> {
    handle.as_ref()
}

unsafe fn write_str(text: &str, out: *mut c_char, length: c_uint) -> NvmlReturn {
    if out.is_null() || text.len() + 1 > length as usize {
        return INSUFFICIENT_SIZE;
    }
    std::ptr::copy_nonoverlapping(text.as_ptr().cast::<c_char>(), out, text.len());
    *out.add(text.len()) = 0;
    SUCCESS
}

#[no_mangle]
pub extern "C" fn nvmlInit_v2() -> NvmlReturn {
    LOADED.get_or_init(unix_seconds);
    SUCCESS
}

#[no_mangle]
pub extern "C" fn nvmlInitWithFlags(_flags: c_uint) -> NvmlReturn {
    nvmlInit_v2()
}

#[no_mangle]
pub extern "C" fn nvmlShutdown() -> NvmlReturn {
    SUCCESS
}

#[no_mangle]
pub extern "C" fn nvmlErrorString(_result: NvmlReturn) -> *const c_char {
    static MESSAGE: &CStr = c"fake NVML error";
    MESSAGE.as_ptr()
}

#[no_mangle]
pub unsafe extern "C" fn nvmlSystemGetDriverVersion(version: *mut c_char, length: c_uint) -> NvmlReturn {
    write_str("550.00.fake", version, length)
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetCount_v2(count: *mut c_uint) -> NvmlReturn {
    if count.is_null() {
        return INVALID_ARGUMENT;
    }
    *count = DEVICE_COUNT as c_uint;
    SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetHandleByIndex_v2(
    index: c_uint,
    handle: *mut *const Device,
) -> NvmlReturn {
    match DEVICES.get(index as usize) {
        Some(device) if !handle.is_null() => {
            *handle = device;
            SUCCESS
        }
        _ => INVALID_ARGUMENT,
    }
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetUUID(
    handle: *const Device,
    uuid: *mut c_char,
    length: c_uint,
) -> NvmlReturn {
    let Some(device) = device(handle) else { return INVALID_ARGUMENT };
    write_str(&format!("GPU-fa4e0000-0000-0000-0000-00000000000{}", device.index), uuid, length)
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetName(
    handle: *const Device,
    name: *mut c_char,
    length: c_uint,
) -> NvmlReturn {
    let Some(device) = device(handle) else { return INVALID_ARGUMENT };
    let letter = if device.index == 0 { "A" } else { "B" };
    write_str(&format!("Fake H200 {letter}"), name, length)
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetUtilizationRates(
    handle: *const Device,
    utilization: *mut Utilization,
) -> NvmlReturn {
    let Some(device) = device(handle) else { return INVALID_ARGUMENT };
    if utilization.is_null() {
        return INVALID_ARGUMENT;
    }
    *utilization = Utilization { gpu: utilization_percent(device.index), memory: 30 };
    SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetMemoryInfo_v2(
    handle: *const Device,
    memory: *mut MemoryV2,
) -> NvmlReturn {
    let Some(device) = device(handle) else { return INVALID_ARGUMENT };
    if memory.is_null() {
        return INVALID_ARGUMENT;
    }
    let total = 141 * GIB;
    let used = if device.index == 0 { 40 * GIB } else { 10 * GIB };
    let version = (*memory).version;
    *memory = MemoryV2 { version, total, reserved: 0, free: total - used, used };
    SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetTemperature(
    handle: *const Device,
    _sensor: c_uint,
    temperature: *mut c_uint,
) -> NvmlReturn {
    let Some(device) = device(handle) else { return INVALID_ARGUMENT };
    if temperature.is_null() {
        return INVALID_ARGUMENT;
    }
    *temperature = if device.index == 0 { 45 } else { 38 };
    SUCCESS
}

fn power_milliwatts(index: usize) -> c_uint {
    if index == 0 {
        300_000
    } else {
        100_000
    }
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetPowerUsage(handle: *const Device, power: *mut c_uint) -> NvmlReturn {
    let Some(device) = device(handle) else { return INVALID_ARGUMENT };
    if power.is_null() {
        return INVALID_ARGUMENT;
    }
    *power = power_milliwatts(device.index);
    SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetTotalEnergyConsumption(
    handle: *const Device,
    energy: *mut c_ulonglong,
) -> NvmlReturn {
    let Some(device) = device(handle) else { return INVALID_ARGUMENT };
    if energy.is_null() {
        return INVALID_ARGUMENT;
    }
    let elapsed = (unix_seconds() - *LOADED.get_or_init(unix_seconds)).max(0.0);
    // mW × s = mJ
    *energy = (f64::from(power_milliwatts(device.index)) * elapsed) as c_ulonglong;
    SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetComputeRunningProcesses_v3(
    handle: *const Device,
    count: *mut c_uint,
    infos: *mut ProcessInfo,
) -> NvmlReturn {
    let Some(device) = device(handle) else { return INVALID_ARGUMENT };
    if count.is_null() {
        return INVALID_ARGUMENT;
    }
    if infos.is_null() || *count < 1 {
        *count = 1;
        return INSUFFICIENT_SIZE;
    }
    let (pid, memory) = if device.index == 0 { (main_pid(), 8 * GIB) } else { (4243, 2 * GIB) };
    *infos = ProcessInfo {
        pid,
        used_gpu_memory: memory,
        gpu_instance_id: u32::MAX,
        compute_instance_id: u32::MAX,
    };
    *count = 1;
    SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetProcessUtilization(
    handle: *const Device,
    samples: *mut ProcessUtilizationSample,
    count: *mut c_uint,
    _last_seen_timestamp: c_ulonglong,
) -> NvmlReturn {
    let Some(device) = device(handle) else { return INVALID_ARGUMENT };
    if count.is_null() {
        return INVALID_ARGUMENT;
    }
    if samples.is_null() || *count < 1 {
        *count = 1;
        return INSUFFICIENT_SIZE;
    }
    let pid = if device.index == 0 { main_pid() } else { 4243 };
    *samples = ProcessUtilizationSample {
        pid,
        time_stamp: unix_ms() * 1000,
        sm_util: utilization_percent(device.index),
        mem_util: 30,
        enc_util: 0,
        dec_util: 0,
    };
    *count = 1;
    SUCCESS
}
