//! Renders the registry as OpenMetrics 1.0 text (with exemplars and `_created`) or as the
//! classic Prometheus 0.0.4 text format, whichever the scraper asked for.

use std::fmt::Write;

use agentrace_semconv::metric::{self, label};

use super::{Exemplar, Family, Kind, Registry, Series, Value};

/// The exposition format of one scrape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    Classic,
}

impl Format {
    /// Picks the format from an `Accept` header: OpenMetrics when the scraper lists it.
    pub fn from_accept(accept: Option<&str>) -> Self {
        match accept {
            Some(accept) if accept.contains("application/openmetrics-text") => Self::OpenMetrics,
            _ => Self::Classic,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Self::Classic => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

impl Registry {
    pub fn render(&self, format: Format) -> String {
        let mut out = String::with_capacity(64 * 1024);
        self.render_into(&mut out, format, usize::MAX);
        out
    }

    /// Appends the page to `out`, whole metric families only, while it stays within
    /// `max_bytes` (a little more for the closing `# EOF`); returns whether every family fit.
    /// The collector's own families come first, so that a cut page still says it was cut.
    pub fn render_into(&self, out: &mut String, format: Format, max_bytes: usize) -> bool {
        let start = out.len();
        let fits = |out: &mut String, mark: usize| {
            let fit = out.len() - start <= max_bytes;
            if !fit {
                out.truncate(mark);
            }
            fit
        };
        let own = |family: &&Family| family.definition.name.starts_with(metric::SELF_PREFIX);
        let mut complete = true;
        for family in self.families.iter().filter(own) {
            let mark = out.len();
            self.render_family(out, family, format);
            complete &= fits(out, mark);
        }
        let mark = out.len();
        self.render_registry_counters(out, format);
        complete &= fits(out, mark);
        // A family that does not fit is left out; smaller ones after it may still fit.
        for family in self.families.iter().filter(|family| !own(family)) {
            let mark = out.len();
            self.render_family(out, family, format);
            complete &= fits(out, mark);
        }
        if format == Format::OpenMetrics {
            out.push_str("# EOF\n");
        }
        complete
    }

    /// The registry's own bookkeeping: overflowed observations and expired series per metric.
    fn render_registry_counters(&self, out: &mut String, format: Format) {
        type Read = fn(&super::FamilyState) -> u64;
        let counters: [(&str, &str, Read); 2] = [
            (metric::SELF_SERIES_OVERFLOW_TOTAL, "Observations that hit a metric's series cap.", |state| {
                state.overflowed
            }),
            (metric::SELF_SERIES_EXPIRED_TOTAL, "Series removed after the idle timeout.", |state| {
                state.expired
            }),
        ];
        for (name, help, read) in counters {
            write_header(out, name, help, Kind::Counter, format);
            for family in &self.families {
                let count = self.holder(family).read(read);
                if count == 0 {
                    continue;
                }
                let labels = format!("{{{}=\"{}\"}}", label::METRIC, family.definition.name);
                let _ = writeln!(out, "{name}{labels} {count}");
            }
        }
    }

    fn render_family(&self, out: &mut String, family: &Family, format: Format) {
        let definition = family.definition;
        write_header(out, definition.name, definition.help, definition.kind, format);
        self.read_family(family, |state| {
            let mut label_text = String::new();
            for (values, series) in &state.series {
                label_text.clear();
                write_labels(&mut label_text, definition.labels, values.values());
                write_series(out, definition.name, definition.kind, &label_text, series, format);
            }
            if let Some(series) = &state.overflow {
                let overflow_labels = format!("{}=\"true\"", label::OVERFLOW);
                write_series(out, definition.name, definition.kind, &overflow_labels, series, format);
            }
        });
    }
}

/// OpenMetrics names a counter family without `_total`; the classic format names it with.
fn family_name(name: &str, kind: Kind, format: Format) -> &str {
    match (kind, format) {
        (Kind::Counter, Format::OpenMetrics) => name.strip_suffix("_total").unwrap_or(name),
        _ => name,
    }
}

fn write_header(out: &mut String, name: &str, help: &str, kind: Kind, format: Format) {
    let family = family_name(name, kind, format);
    let kind_text = match kind {
        Kind::Counter => "counter",
        Kind::Gauge => "gauge",
        Kind::Histogram(_) => "histogram",
    };
    let _ = writeln!(out, "# HELP {family} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {family} {kind_text}");
}

/// `name="value",…` without braces.
fn write_labels<'v>(out: &mut String, names: &[&str], values: impl Iterator<Item = &'v str>) {
    for (position, (name, value)) in names.iter().zip(values).enumerate() {
        if position > 0 {
            out.push(',');
        }
        let _ = write!(out, "{name}=\"");
        escape_label_value(out, value);
        out.push('"');
    }
}

fn write_series(out: &mut String, name: &str, kind: Kind, labels: &str, series: &Series, format: Format) {
    let braces = |extra: &str| -> String {
        match (labels.is_empty(), extra.is_empty()) {
            (true, true) => String::new(),
            (true, false) => format!("{{{extra}}}"),
            (false, true) => format!("{{{labels}}}"),
            (false, false) => format!("{{{labels},{extra}}}"),
        }
    };
    let openmetrics = format == Format::OpenMetrics;
    match &series.value {
        Value::Counter { total, exemplar } => {
            let _ = write!(out, "{name}{} {}", braces(""), number(*total));
            if openmetrics {
                write_exemplar(out, exemplar.as_ref());
            }
            out.push('\n');
            if openmetrics {
                let family = family_name(name, kind, format);
                let _ = writeln!(out, "{family}_created{} {}", braces(""), number(series.created));
            }
        }
        Value::Gauge(value) => {
            let _ = writeln!(out, "{name}{} {}", braces(""), number(*value));
        }
        Value::Histogram { buckets, sum, negative, .. } => {
            let Kind::Histogram(bounds) = kind else {
                return;
            };
            let mut cumulative = 0u64;
            for (index, bucket) in buckets.iter().enumerate() {
                cumulative = cumulative.saturating_add(bucket.count);
                let bound = bounds.get(index).map_or_else(|| "+Inf".to_owned(), |bound| number(*bound));
                let _ = write!(out, "{name}_bucket{} {cumulative}", braces(&format!("le=\"{bound}\"")));
                if openmetrics {
                    write_exemplar(out, bucket.exemplar.as_ref());
                }
                out.push('\n');
            }
            // OpenMetrics: a sum is a counter, so a histogram that saw a negative value has
            // none, nor a count without it; the +Inf bucket is the count.
            if !(openmetrics && *negative) {
                let _ = writeln!(out, "{name}_count{} {cumulative}", braces(""));
                let _ = writeln!(out, "{name}_sum{} {}", braces(""), number(*sum));
            }
            if openmetrics {
                let _ = writeln!(out, "{name}_created{} {}", braces(""), number(series.created));
            }
        }
    }
}

/// OpenMetrics allows an exemplar's label names and values 128 characters in all.
const MAX_EXEMPLAR_LABEL_CHARS: usize = 128;

fn write_exemplar(out: &mut String, exemplar: Option<&Exemplar>) {
    let Some(exemplar) = exemplar else {
        return;
    };
    let _ = write!(
        out,
        " # {{{}=\"{}\",{}=\"{}\"",
        label::TRACE_ID,
        hex::encode(exemplar.trace_id),
        label::SPAN_ID,
        hex::encode(exemplar.span_id),
    );
    let ids = label::TRACE_ID.len() + 32 + label::SPAN_ID.len() + 16;
    if let Some(conversation) = exemplar.conversation.text() {
        if ids + label::CONVERSATION_ID.len() + conversation.chars().count() <= MAX_EXEMPLAR_LABEL_CHARS {
            let _ = write!(out, ",{}=\"", label::CONVERSATION_ID);
            escape_label_value(out, &conversation);
            out.push('"');
        }
    }
    let _ = write!(out, "}} {} {:.3}", number(exemplar.value), exemplar.timestamp);
}

fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{value}")
    }
}

fn escape_label_value(out: &mut String, value: &str) {
    for character in value.chars() {
        match character {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            other => out.push(other),
        }
    }
}

fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Observation, SeriesLimits};

    fn sample_registry() -> Registry {
        let registry = Registry::new(SeriesLimits::default());
        let exemplar = Exemplar {
            trace_id: [0xab; 16],
            span_id: [0xcd; 8],
            value: 0.5,
            timestamp: 1_700_000_000.25,
            ..Exemplar::default()
        };
        let mut observations = vec![
            Observation::new(
                metric::AGENT_INVOCATIONS_TOTAL,
                smallvec::smallvec!["svc".into(), "plan\"ner".into(), "ok".into()],
                1.0,
                Some(exemplar),
            ),
            Observation::new(
                metric::AGENT_INVOCATION_DURATION_SECONDS,
                smallvec::smallvec!["svc".into(), "planner".into()],
                0.5,
                Some(exemplar),
            ),
        ];
        registry.apply(&mut observations, 1_700_000_000.0);
        registry
    }

    #[test]
    fn openmetrics_has_exemplars_created_and_eof() {
        let text = sample_registry().render(Format::OpenMetrics);
        let trace = "ab".repeat(16);
        let span = "cd".repeat(8);
        assert!(text.contains("# TYPE agent_invocations counter\n"), "{text}");
        assert!(text.contains(&format!(
            "agent_invocations_total{{service=\"svc\",agent=\"plan\\\"ner\",status=\"ok\"}} 1 # {{trace_id=\"{trace}\",span_id=\"{span}\"}} 0.5 1700000000.250\n"
        )));
        assert!(text.contains(
            "agent_invocations_created{service=\"svc\",agent=\"plan\\\"ner\",status=\"ok\"} 1700000000\n"
        ));
        assert!(text.contains(&format!(
            "agent_invocation_duration_seconds_bucket{{service=\"svc\",agent=\"planner\",le=\"0.8\"}} 1 # {{trace_id=\"{trace}\",span_id=\"{span}\"}} 0.5 1700000000.250\n"
        )));
        assert!(text.contains(
            "agent_invocation_duration_seconds_bucket{service=\"svc\",agent=\"planner\",le=\"+Inf\"} 1\n"
        ));
        assert!(
            text.contains("agent_invocation_duration_seconds_count{service=\"svc\",agent=\"planner\"} 1\n")
        );
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn classic_format_has_no_exemplars_created_or_eof() {
        let text = sample_registry().render(Format::Classic);
        assert!(text.contains("# TYPE agent_invocations_total counter\n"));
        assert!(
            text.contains("agent_invocations_total{service=\"svc\",agent=\"plan\\\"ner\",status=\"ok\"} 1\n")
        );
        assert!(!text.contains(" # {"));
        assert!(!text.contains("_created"));
        assert!(!text.contains("# EOF"));
    }

    #[test]
    fn overflow_series_has_only_the_overflow_label() {
        let registry = Registry::new(SeriesLimits {
            max_series_per_metric: 1,
            idle_timeout_secs: 60.0,
            ..SeriesLimits::default()
        });
        registry.add(metric::AGENT_INVOCATIONS_TOTAL, &["svc", "a", "ok"], 1.0, 0.0);
        registry.add(metric::AGENT_INVOCATIONS_TOTAL, &["svc", "b", "ok"], 1.0, 0.0);
        let text = registry.render(Format::Classic);
        assert!(text.contains("agent_invocations_total{otel_metric_overflow=\"true\"} 1\n"), "{text}");
        assert!(
            text.contains("agentrace_metric_series_overflow_total{metric=\"agent_invocations_total\"} 1\n")
        );
    }

    #[test]
    fn accept_header_negotiation() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::from_accept(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::from_accept(Some("text/plain")), Format::Classic);
        assert_eq!(Format::from_accept(None), Format::Classic);
    }
}
