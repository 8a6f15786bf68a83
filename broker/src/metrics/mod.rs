//! Prometheus metrics, named after Kafka's JMX metrics as the Prometheus JMX exporter
//! renders them (`kafka_network_*`, `kafka_server_*`, `kafka_log_*`), plus `runnel_*` for
//! what Kafka has no name for (frames refused, fsync rounds, recovery).
//!
//! Labels are static strings (API names, error names, codecs) or topic/partition for
//! per-topic and per-partition series, never formatted error text.

mod live;
mod replication;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::metadata::cache::MetadataCache;
use crate::partition::manager::ReplicaManager;
use live::{LiveStats, Throughput};
use store::StoreMetrics;

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
    /// The etcd store's series (registered whichever store runs; empty on the embedded one).
    pub store: StoreMetrics,
    live: Arc<LiveStats>,
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
        let live = Arc::new(LiveStats::default());
        let Throughput {
            bytes_in,
            bytes_out,
            messages_in,
        } = live.throughput.clone();
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
        registry.register_collector(Box::new(live.clone()));
        let store = StoreMetrics::default();
        store.register(&mut registry);
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
            store,
            live,
        }
    }

    /// Lets scrapes read partition gauges from the replica manager.
    pub fn attach(&self, replicas: Arc<ReplicaManager>) {
        let _ = self.live.replicas.set(replicas);
    }

    /// Lets scrapes read group lag and states from the coordinator.
    /// Lets scrapes read replication's counters and fetch sessions.
    pub fn attach_replication(
        &self,
        stats: Arc<crate::replication::ReplicationStats>,
        fetchers: Arc<crate::replication::fetcher::Fetchers>,
    ) {
        let _ = self.live.replication.set((stats, fetchers));
    }

    pub fn attach_groups(&self, groups: Arc<crate::group::GroupCoordinator>) {
        let _ = self.live.groups.set(groups);
    }

    /// Lets scrapes read the admin service's counters: forwarded calls and refusals.
    pub fn attach_admin(
        &self,
        controllers: Arc<crate::controller::service::Controllers>,
        forward: Arc<crate::rpc::forward::GrpcForward>,
        refused: Arc<crate::rpc::admin::RefusedForwards>,
    ) {
        let _ = self.live.admin.set((controllers, forward, refused));
    }

    /// Lets scrapes read the controller's counters.
    pub fn attach_controller(&self, controller: Arc<crate::controller::Controller>) {
        let _ = self.live.controller.set(controller);
    }

    /// Lets scrapes read the controller's gauges from the metadata image.
    pub fn attach_cluster(&self, cache: Arc<MetadataCache>, broker_id: i32) {
        let _ = self.live.cluster.set((cache, broker_id));
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
