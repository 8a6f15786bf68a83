//! Prometheus metrics, named after Kafka's JMX metrics as the Prometheus JMX exporter
//! renders them (`kafka_network_*`, `kafka_server_*`, `kafka_log_*`), plus `runnel_*` for
//! what Kafka has no name for (frames refused, fsync rounds, recovery).
//!
//! Labels are static strings (API names, error names, codecs) or topic/partition for
//! per-partition gauges, never formatted error text.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::partition::manager::ReplicaManager;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub request: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub request: &'static str,
    pub error: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodecLabels {
    pub codec: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabels {
    topic: String,
    partition: String,
}

fn latency_histogram() -> Histogram {
    // 50 µs to ~26 s.
    Histogram::new(exponential_buckets(0.00005, 2.0, 20))
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub errors: Family<ErrorLabels, Counter>,
    pub request_time: Family<RequestLabels, Histogram, fn() -> Histogram>,
    pub bytes_in: Counter,
    pub bytes_out: Counter,
    pub messages_in: Counter,
    pub produce_batches: Family<CodecLabels, Counter>,
    pub idempotent_batches: Counter,
    pub duplicate_batches: Counter,
    pub producer_ids: Counter,
    pub rejected_frames: Family<ReasonLabels, Counter>,
    pub connections: Gauge,
    live: Arc<LiveStats>,
}

/// Values read from the replica manager at scrape time.
#[derive(Debug, Default)]
struct LiveStats {
    replicas: OnceLock<Arc<ReplicaManager>>,
}

impl Collector for LiveStats {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(replicas) = self.replicas.get() else {
            return Ok(());
        };
        let partitions = replicas.all();
        type Read = dyn Fn(&crate::partition::Partition) -> i64;
        let per_partition: [(&str, &str, &Read); 4] = [
            (
                "kafka_log_size_bytes",
                "Bytes of a partition's log on this broker",
                &|p| p.size_bytes() as i64,
            ),
            (
                "kafka_log_log_end_offset",
                "Log end offset of a partition",
                &|p| p.offsets().log_end,
            ),
            (
                "kafka_log_log_start_offset",
                "Log start offset of a partition",
                &|p| p.offsets().log_start,
            ),
            (
                "kafka_cluster_partition_high_watermark",
                "High watermark of a partition this broker leads",
                &|p| p.offsets().high_watermark,
            ),
        ];
        for (name, help, value) in per_partition {
            let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for p in &partitions {
                let labels = PartitionLabels {
                    topic: p.topic.to_string(),
                    partition: p.index.to_string(),
                };
                ConstGauge::new(value(p)).encode(metric.encode_family(&labels)?)?;
            }
        }
        let offline = partitions.iter().filter(|p| p.offsets().offline).count() as i64;
        ConstGauge::new(offline).encode(encoder.encode_descriptor(
            "kafka_controller_offline_partitions_count",
            "Partitions on this broker whose log is offline after an I/O error",
            None,
            MetricType::Gauge,
        )?)?;
        let flush = replicas.flusher().stats();
        let counters = [
            (
                "runnel_flush_rounds",
                "Rounds of the broker-wide flusher",
                flush.rounds.load(Ordering::Relaxed),
            ),
            (
                "runnel_flush_file_syncs",
                "fsync calls made by the flusher",
                flush.file_syncs.load(Ordering::Relaxed),
            ),
            (
                "runnel_flush_failures",
                "fsync calls that failed (the log went offline)",
                flush.failures.load(Ordering::Relaxed),
            ),
            (
                "runnel_log_opened",
                "Partition logs opened from disk at start",
                replicas.recovery.logs_opened.load(Ordering::Relaxed),
            ),
            (
                "runnel_log_recovered_segments",
                "Segments recovered by CRC scan at start",
                replicas.recovery.segments_recovered.load(Ordering::Relaxed),
            ),
            (
                "runnel_log_truncated_bytes",
                "Bytes cut from torn or corrupt log tails at start",
                replicas.recovery.bytes_truncated.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in counters {
            ConstCounter::new(value).encode(encoder.encode_descriptor(
                name,
                help,
                None,
                MetricType::Counter,
            )?)?;
        }
        Ok(())
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "kafka_network_requests",
            "Requests received, by API",
            requests.clone(),
        );
        let errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "kafka_network_errors",
            "Error codes returned, by API and error",
            errors.clone(),
        );
        let request_time: Family<RequestLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "kafka_network_request_total_time_seconds",
            "Time from a request's arrival to its response being ready, by API",
            request_time.clone(),
        );
        let bytes_in = Counter::default();
        registry.register(
            "kafka_server_brokertopicmetrics_bytes_in",
            "Record batch bytes produced",
            bytes_in.clone(),
        );
        let bytes_out = Counter::default();
        registry.register(
            "kafka_server_brokertopicmetrics_bytes_out",
            "Record batch bytes fetched",
            bytes_out.clone(),
        );
        let messages_in = Counter::default();
        registry.register(
            "kafka_server_brokertopicmetrics_messages_in",
            "Records produced",
            messages_in.clone(),
        );
        let produce_batches = Family::<CodecLabels, Counter>::default();
        registry.register(
            "runnel_produce_batches",
            "Produced batches stored, by compression codec",
            produce_batches.clone(),
        );
        let idempotent_batches = Counter::default();
        registry.register(
            "runnel_produce_idempotent_batches",
            "Batches from idempotent producers whose sequence was checked and appended",
            idempotent_batches.clone(),
        );
        let duplicate_batches = Counter::default();
        registry.register(
            "runnel_produce_duplicate_batches",
            "Producer retries recognised as duplicates and answered with their original offsets",
            duplicate_batches.clone(),
        );
        let producer_ids = Counter::default();
        registry.register(
            "runnel_producer_ids_issued",
            "Producer ids handed out by InitProducerId",
            producer_ids.clone(),
        );
        let rejected_frames = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "runnel_rejected_frames",
            "Request frames that closed their connection, by reason",
            rejected_frames.clone(),
        );
        let connections = Gauge::default();
        registry.register(
            "kafka_server_socket_server_connections",
            "Open client connections",
            connections.clone(),
        );
        let live = Arc::new(LiveStats::default());
        registry.register_collector(Box::new(live.clone()));
        Metrics {
            registry,
            requests,
            errors,
            request_time,
            bytes_in,
            bytes_out,
            messages_in,
            produce_batches,
            idempotent_batches,
            duplicate_batches,
            producer_ids,
            rejected_frames,
            connections,
            live,
        }
    }

    /// Lets scrapes read partition gauges from the replica manager.
    pub fn attach(&self, replicas: Arc<ReplicaManager>) {
        let _ = self.live.replicas.set(replicas);
    }

    /// Counts a non-zero error code in a response.
    pub fn error(&self, request: &'static str, code: i16) {
        if code != 0 {
            self.errors
                .get_or_create(&ErrorLabels {
                    request,
                    error: crate::protocol::error_code::label(code),
                })
                .inc();
        }
    }

    pub fn observe(&self, request: &'static str, elapsed: Duration) {
        self.request_time
            .get_or_create(&RequestLabels { request })
            .observe(elapsed.as_secs_f64());
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
