//! Sampling weights: how many spans one received span stands for.
//!
//! Two sources, the first present wins: the `sampling.adjusted_count` attribute, and the
//! OpenTelemetry threshold in the W3C tracestate (`ot=th:<hex>`), where the rejection
//! threshold T (up to 14 hex digits, 56 bits, trailing zeros omitted) means the span was kept
//! with probability (2^56 − T) / 2^56, so it counts 2^56 / (2^56 − T) times.

/// The most spans one span may stand for (sampled at one in a million); a larger weight is
/// counted at this one.
pub const MAX_WEIGHT: f64 = 1_000_000.0;

/// 2^56, the size of the threshold space.
const THRESHOLD_SPACE: f64 = 72_057_594_037_927_936.0;
const MAX_THRESHOLD_DIGITS: usize = 14;

/// The adjusted count carried by a span, when it is a usable number (finite, ≥ 1).
pub fn from_adjusted_count(value: f64) -> Option<f64> {
    (value.is_finite() && value >= 1.0).then_some(value)
}

/// The adjusted count implied by the `th` sub-key of the `ot` tracestate entry, if any.
pub fn from_tracestate(trace_state: &str) -> Option<f64> {
    let ot_value = trace_state
        .split(',')
        .filter_map(|entry| entry.trim().split_once('='))
        .find_map(|(key, value)| (key.trim() == "ot").then_some(value))?;
    let threshold = ot_value.split(';').find_map(|field| field.strip_prefix("th:"))?;
    if threshold.is_empty() || threshold.len() > MAX_THRESHOLD_DIGITS {
        return None;
    }
    let padded = format!("{threshold:0<MAX_THRESHOLD_DIGITS$}");
    let rejection = u64::from_str_radix(&padded, 16).ok()? as f64;
    let kept = THRESHOLD_SPACE - rejection;
    (kept > 0.0).then(|| THRESHOLD_SPACE / kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_become_adjusted_counts() {
        let cases = [
            ("ot=th:0", Some(1.0)),
            ("ot=th:8", Some(2.0)),
            ("ot=th:c", Some(4.0)),
            ("ot=th:e", Some(8.0)),
            ("vendor=x,ot=rv:abcdef12345678;th:8", Some(2.0)),
            ("ot=rv:abcdef12345678", None),
            ("ot=th:", None),
            ("ot=th:123456789abcdef0", None),
            ("ot=th:zz", None),
            ("", None),
        ];
        for (trace_state, expected) in cases {
            let weight = from_tracestate(trace_state);
            match (weight, expected) {
                (Some(weight), Some(expected)) => {
                    assert!((weight - expected).abs() < 1e-9, "{trace_state}: {weight}")
                }
                (None, None) => {}
                other => panic!("{trace_state}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_one_percent_threshold_counts_a_hundred_times() {
        // th:fd70a4 keeps about 1 % (the spec's example).
        let weight = from_tracestate("ot=th:fd70a4").expect("valid threshold");
        assert!((weight - 100.0).abs() < 0.01, "{weight}");
    }

    #[test]
    fn adjusted_counts_below_one_are_ignored() {
        assert_eq!(from_adjusted_count(10.0), Some(10.0));
        assert_eq!(from_adjusted_count(0.0), None);
        assert_eq!(from_adjusted_count(f64::NAN), None);
    }
}
