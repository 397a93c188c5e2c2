//! GPU figures carried on a span: what the node tier's collector measured for its window and
//! added as `agentrace.gpu.*` attributes, read back by the gateway tier, which samples no GPU,
//! so that GPU-seconds, energy and GPU cost per agent are counted where the trace is whole.

use agentrace_semconv::attr;

use super::WindowStats;
use crate::normalize::{number_attribute, string_attribute};
use crate::wire::KeyValue;

/// The window statistics a span carries; `None` unless it has the GPUs and their seconds.
/// Each counted GPU's share of the seconds, for its price, is taken as equal when the span
/// names GPUs of different models (the node only writes the total).
pub fn carried(attributes: &[KeyValue]) -> Option<WindowStats> {
    let uuids: Vec<String> =
        string_attribute(attributes, attr::AGENTRACE_GPU_UUID)?.split(',').map(str::to_owned).collect();
    let gpu_seconds = number_attribute(attributes, attr::AGENTRACE_GPU_SECONDS)?;
    if !gpu_seconds.is_finite() || gpu_seconds < 0.0 {
        return None;
    }
    let number = |key| number_attribute(attributes, key).filter(|value| value.is_finite() && *value >= 0.0);
    let names: Vec<&str> = string_attribute(attributes, attr::AGENTRACE_GPU_NAME)
        .map(|names| names.split(',').collect())
        .unwrap_or_default();
    let share = gpu_seconds / names.len().max(1) as f64;
    Some(WindowStats {
        uuids,
        utilization_avg: number(attr::AGENTRACE_GPU_UTILIZATION_AVG).unwrap_or(0.0),
        utilization_max: number(attr::AGENTRACE_GPU_UTILIZATION_MAX).unwrap_or(0.0),
        memory_used_max_bytes: number(attr::AGENTRACE_GPU_MEMORY_USED_MAX_BYTES).unwrap_or(0.0) as u64,
        power_avg_watts: number(attr::AGENTRACE_GPU_POWER_AVG_WATTS).unwrap_or(0.0),
        gpu_seconds,
        gpu_seconds_by_name: names.iter().map(|name| ((*name).to_owned(), share)).collect(),
        energy_joules: number(attr::AGENTRACE_GPU_ENERGY_JOULES).unwrap_or(0.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::any_value::Value;

    fn kv(key: &'static str, value: Value) -> KeyValue {
        KeyValue::new(bytes::Bytes::from_static(key.as_bytes()), value)
    }

    #[test]
    fn what_a_node_wrote_reads_back_whole() {
        let attributes = vec![
            KeyValue::string(bytes::Bytes::from_static(attr::AGENTRACE_GPU_UUID.as_bytes()), "GPU-a,GPU-b"),
            KeyValue::string(
                bytes::Bytes::from_static(attr::AGENTRACE_GPU_NAME.as_bytes()),
                "NVIDIA H200,NVIDIA H200",
            ),
            kv(attr::AGENTRACE_GPU_SECONDS, Value::DoubleValue(3.0)),
            kv(attr::AGENTRACE_GPU_ENERGY_JOULES, Value::DoubleValue(1200.0)),
            kv(attr::AGENTRACE_GPU_MEMORY_USED_MAX_BYTES, Value::IntValue(1 << 30)),
        ];
        let stats = carried(&attributes).expect("carried");
        assert_eq!(stats.uuids, ["GPU-a", "GPU-b"]);
        assert_eq!((stats.gpu_seconds, stats.energy_joules), (3.0, 1200.0));
        assert_eq!(stats.memory_used_max_bytes, 1 << 30);
        assert_eq!(
            stats.gpu_seconds_by_name,
            [("NVIDIA H200".to_owned(), 1.5), ("NVIDIA H200".to_owned(), 1.5)]
        );
    }

    #[test]
    fn without_seconds_or_with_impossible_ones_nothing_is_counted() {
        let uuid = KeyValue::string(bytes::Bytes::from_static(attr::AGENTRACE_GPU_UUID.as_bytes()), "GPU-a");
        assert!(carried(std::slice::from_ref(&uuid)).is_none());
        let negative = kv(attr::AGENTRACE_GPU_SECONDS, Value::DoubleValue(-1.0));
        assert!(carried(&[uuid, negative]).is_none());
    }
}
