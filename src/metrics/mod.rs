//! What `/metrics` shows, in the Prometheus text format, through the
//! `prometheus-client` crate.
//!
//! Each part of the service keeps its own counters where it counts them,
//! as plain atomics on its hot path, and says once how they are exported:
//! the cache in `cache::metrics` (tiers, invalidation, Redis), the database
//! in `db::instrumentation`, requests in `http::requests`. This module holds the
//! [`Registry`] they are gathered in, the one lock-free [`Histogram`] they
//! all use, the last-minute [`Window`] behind the stats snapshots'
//! percentiles, and the helpers that write a family from a collector.
//!
//! Names follow Prometheus's conventions: `biblio_` first, base units
//! (`_seconds`, `_bytes`) in the name, `_total` on counters (added by the
//! encoder). Label values come from closed sets (tiers, kinds, commands,
//! statuses) or, for operation names, from a bounded one; never from
//! request text.
pub mod histogram;
pub mod window;

pub use histogram::Histogram;
pub use window::{Summary, Window};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, EncodeLabelSet, EncodeMetric,
    MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;

/// Every exported metric of this process.
pub struct Registry(prometheus_client::registry::Registry);

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Registry")
    }
}

/// The content type of [`Registry::render`]'s Prometheus text.
pub const PROMETHEUS_TEXT: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
/// The content type of [`Registry::render`]'s OpenMetrics text.
pub const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

impl Default for Registry {
    fn default() -> Self {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(Process::default()));
        Self(registry)
    }
}

impl Registry {
    /// Adds a part's collector: it writes its families on every scrape.
    pub fn collect(&mut self, collector: Box<dyn Collector>) {
        self.0.register_collector(collector);
    }

    /// The registry itself, for parts that register live metric families.
    pub fn inner(&mut self) -> &mut prometheus_client::registry::Registry {
        &mut self.0
    }

    /// Everything, in the Prometheus text format (0.0.4), or in OpenMetrics
    /// text if `openmetrics`.
    pub fn render(&self, openmetrics: bool) -> String {
        let mut out = String::with_capacity(32 * 1024);
        let written = if openmetrics {
            prometheus_client::encoding::text::encode(&mut out, &self.0)
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.0)
        };
        if let Err(err) = written {
            // Writing to a String fails only if a metric's encoder does.
            tracing::error!(error = %err, "could not encode the metrics");
        }
        out
    }
}

/// When the process started, which build it is, and the log lines it
/// could not write.
#[derive(Debug)]
struct Process {
    started: f64,
}

impl Default for Process {
    fn default() -> Self {
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |since| since.as_secs_f64());
        Self { started }
    }
}

impl Collector for Process {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        gauge(
            &mut encoder,
            "biblio_start_time_seconds",
            "When this process started, in seconds since the Unix epoch",
            self.started,
        )?;
        let mut info = encoder.encode_descriptor(
            "biblio_build_info",
            "The running build: always 1, labelled with its version",
            None,
            MetricType::Gauge,
        )?;
        let mut labelled = info.encode_family(&[("version", env!("CARGO_PKG_VERSION"))])?;
        labelled.encode_gauge(&1u64)?;
        counter(
            &mut encoder,
            "biblio_log_lines_dropped",
            "Log lines dropped because the log writer was 4 MiB behind (stderr slower than the lines logged)",
            crate::telemetry::dropped_lines(),
        )
    }
}

/// Writes one unlabelled gauge.
pub fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: impl EncodeGaugeValue,
) -> Result<(), std::fmt::Error> {
    encoder
        .encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&value)
}

/// Writes one unlabelled counter; `name` without `_total`.
pub fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: impl EncodeCounterValue,
) -> Result<(), std::fmt::Error> {
    encoder
        .encode_descriptor(name, help, None, MetricType::Counter)?
        .encode_counter::<NoLabelSet, _, u64>(&value, None)
}

/// Writes one unlabelled histogram.
pub fn histogram(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    histogram: &Histogram,
) -> Result<(), std::fmt::Error> {
    histogram.encode(encoder.encode_descriptor(name, help, None, MetricType::Histogram)?)
}

/// A family being written: its descriptor is out, each [`Family::counter`]
/// or [`Family::gauge`] adds one labelled sample.
pub struct Family<'a>(MetricEncoder<'a>);

impl<'a> Family<'a> {
    /// Starts a family of `ty`; counters' names go without `_total`.
    pub fn start(
        encoder: &'a mut DescriptorEncoder,
        name: &'a str,
        help: &str,
        ty: MetricType,
    ) -> Result<Self, std::fmt::Error> {
        Ok(Self(encoder.encode_descriptor(name, help, None, ty)?))
    }

    /// One counter sample.
    pub fn counter(
        &mut self,
        labels: &impl EncodeLabelSet,
        value: impl EncodeCounterValue,
    ) -> Result<(), std::fmt::Error> {
        self.0
            .encode_family(labels)?
            .encode_counter::<NoLabelSet, _, u64>(&value, None)
    }

    /// One gauge sample.
    pub fn gauge(
        &mut self,
        labels: &impl EncodeLabelSet,
        value: impl EncodeGaugeValue,
    ) -> Result<(), std::fmt::Error> {
        self.0.encode_family(labels)?.encode_gauge(&value)
    }

    /// One histogram.
    pub fn histogram(
        &mut self,
        labels: &impl EncodeLabelSet,
        histogram: &Histogram,
    ) -> Result<(), std::fmt::Error> {
        histogram.encode(self.0.encode_family(labels)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Sample;

    impl Collector for Sample {
        fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
            counter(&mut encoder, "biblio_sample", "A sample", 3u64)?;
            let mut family = Family::start(
                &mut encoder,
                "biblio_sample_seconds",
                "Sampled durations",
                MetricType::Histogram,
            )?;
            let histogram = Histogram::new(&[0.5]);
            histogram.observe(std::time::Duration::from_millis(100));
            family.histogram(&[("tier", "l1")], &histogram)
        }
    }

    #[test]
    fn collectors_render_as_prometheus_text() {
        let mut registry = Registry::default();
        registry.collect(Box::new(Sample));
        let text = registry.render(false);
        for line in [
            "# TYPE biblio_sample_total counter",
            "biblio_sample_total 3",
            "# TYPE biblio_sample_seconds histogram",
            "biblio_sample_seconds_bucket{tier=\"l1\",le=\"0.5\"} 1",
            "biblio_sample_seconds_bucket{tier=\"l1\",le=\"+Inf\"} 1",
            "biblio_sample_seconds_count{tier=\"l1\"} 1",
            "# TYPE biblio_build_info gauge",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        assert!(registry.render(true).ends_with("# EOF\n"));
    }
}
