//! Building metric families sample by sample, and writing them in the Prometheus text
//! format (version 0.0.4) with the `prometheus` crate's encoder, which escapes label
//! values and help text.

use prometheus::proto::{Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily};
use prometheus::{Encoder, TextEncoder};

pub use prometheus::proto::MetricType;

use crate::isc::LatencyHistogram;

/// The `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One metric family under construction.
pub struct Family {
    family: MetricFamily,
}

impl Family {
    pub fn new(name: &str, help: &str, kind: MetricType) -> Family {
        let mut family = MetricFamily::default();
        family.set_name(name.to_owned());
        family.set_help(help.to_owned());
        family.set_field_type(kind);
        Family { family }
    }

    pub fn gauge(name: &str, help: &str) -> Family {
        Family::new(name, help, MetricType::GAUGE)
    }

    pub fn counter(name: &str, help: &str) -> Family {
        Family::new(name, help, MetricType::COUNTER)
    }

    /// Adds one sample of a gauge or counter family.
    pub fn sample(&mut self, labels: &[(&str, &str)], value: f64) {
        let mut metric = Metric::from_label(label_pairs(labels));
        match self.family.get_field_type() {
            MetricType::COUNTER => {
                let mut counter = Counter::default();
                counter.set_value(value);
                metric.set_counter(counter);
            }
            _ => {
                let mut gauge = Gauge::default();
                gauge.set_value(value);
                metric.set_gauge(gauge);
            }
        }
        self.family.mut_metric().push(metric);
    }

    /// Adds one histogram of a histogram family.
    pub fn histogram(&mut self, labels: &[(&str, &str)], histogram: &LatencyHistogram) {
        let buckets = histogram
            .cumulative_buckets()
            .map(|(bound, count)| {
                let mut bucket = Bucket::default();
                bucket.set_upper_bound(bound);
                bucket.set_cumulative_count(count);
                bucket
            })
            .collect();
        let mut proto = Histogram::default();
        proto.set_bucket(buckets);
        proto.set_sample_count(histogram.count);
        proto.set_sample_sum(histogram.sum.as_secs_f64());
        let mut metric = Metric::from_label(label_pairs(labels));
        metric.set_histogram(proto);
        self.family.mut_metric().push(metric);
    }

    pub fn into_inner(self) -> MetricFamily {
        self.family
    }
}

fn label_pairs(labels: &[(&str, &str)]) -> Vec<LabelPair> {
    labels
        .iter()
        .map(|(name, value)| {
            let mut pair = LabelPair::default();
            pair.set_name((*name).to_owned());
            pair.set_value((*value).to_owned());
            pair
        })
        .collect()
}

/// Writes the families in the text format, sorted by name, leaving out empty ones (the
/// format has no way to write a family without samples).
pub fn encode(mut families: Vec<MetricFamily>) -> String {
    families.retain(|family| !family.get_metric().is_empty());
    families.sort_by(|left, right| left.name().cmp(right.name()));
    let mut text = Vec::new();
    if let Err(error) = TextEncoder::new().encode(&families, &mut text) {
        tracing::error!(%error, "cannot encode the metrics");
    }
    String::from_utf8(text).unwrap_or_default()
}

/// Seconds since the Unix epoch, with millisecond precision.
pub fn unix_seconds(instant: chrono::DateTime<chrono::Utc>) -> f64 {
    instant.timestamp_millis() as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn labels_and_help_are_escaped() {
        let mut family = Family::gauge("patrol_test", "A \\ backslash\nand a new line.");
        family.sample(&[("name", "quote \" slash \\ line\n")], 1.0);
        let text = encode(vec![family.into_inner()]);
        assert_eq!(
            text,
            "# HELP patrol_test A \\\\ backslash\\nand a new line.\n\
             # TYPE patrol_test gauge\n\
             patrol_test{name=\"quote \\\" slash \\\\ line\\n\"} 1\n"
        );
    }

    #[test]
    fn histogram_has_buckets_sum_and_count() {
        let mut latency = LatencyHistogram::default();
        latency.observe(Duration::from_millis(30));
        latency.observe(Duration::from_secs(2));
        let mut family = Family::new("patrol_test_seconds", "Latency.", MetricType::HISTOGRAM);
        family.histogram(&[("operation", "list")], &latency);
        let text = encode(vec![family.into_inner()]);
        assert!(
            text.contains("patrol_test_seconds_bucket{operation=\"list\",le=\"0.025\"} 0\n"),
            "{text}"
        );
        assert!(text.contains("patrol_test_seconds_bucket{operation=\"list\",le=\"0.05\"} 1\n"));
        assert!(text.contains("patrol_test_seconds_bucket{operation=\"list\",le=\"2.5\"} 2\n"));
        assert!(text.contains("patrol_test_seconds_bucket{operation=\"list\",le=\"+Inf\"} 2\n"));
        assert!(text.contains("patrol_test_seconds_sum{operation=\"list\"} 2.03\n"));
        assert!(text.contains("patrol_test_seconds_count{operation=\"list\"} 2\n"));
    }

    #[test]
    fn empty_families_are_left_out() {
        let empty = Family::counter("patrol_empty_total", "Nothing.");
        let mut full = Family::counter("patrol_full_total", "Something.");
        full.sample(&[], 2.0);
        let text = encode(vec![empty.into_inner(), full.into_inner()]);
        assert!(!text.contains("patrol_empty_total"), "{text}");
        assert!(text.contains("patrol_full_total 2\n"), "{text}");
    }
}
