//! The operator's Prometheus metrics: reconciles by outcome, their duration, and gauge
//! families per cluster and per topic (the figures their status shows).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub kind: &'static str,
    /// ok, error.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterLabels {
    pub namespace: String,
    pub name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabels {
    pub namespace: String,
    pub cluster: String,
    /// The topic's name in Kafka.
    pub topic: String,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub reconciles: Family<OutcomeLabels, Counter>,
    pub reconcile_seconds: Family<KindLabels, Histogram, fn() -> Histogram>,
    pub status_writes: Family<KindLabels, Counter>,
    pub pod_restarts: Counter,
    pub leader: Gauge,
    pub brokers: Family<ClusterLabels, Gauge>,
    pub ready_brokers: Family<ClusterLabels, Gauge>,
    pub under_replicated: Family<ClusterLabels, Gauge>,
    pub offline: Family<ClusterLabels, Gauge>,
    pub controller_present: Family<ClusterLabels, Gauge>,
    pub topic_under_replicated: Family<TopicLabels, Gauge>,
    pub topic_offline: Family<TopicLabels, Gauge>,
}

fn duration_histogram() -> Histogram {
    // 1 ms to ~65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let reconciles = Family::<OutcomeLabels, Counter>::default();
        let reconcile_seconds =
            Family::<KindLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                duration_histogram,
            );
        let status_writes = Family::<KindLabels, Counter>::default();
        let pod_restarts = Counter::default();
        let leader = Gauge::default();
        let brokers = Family::<ClusterLabels, Gauge>::default();
        let ready_brokers = Family::<ClusterLabels, Gauge>::default();
        let under_replicated = Family::<ClusterLabels, Gauge>::default();
        let offline = Family::<ClusterLabels, Gauge>::default();
        let controller_present = Family::<ClusterLabels, Gauge>::default();
        let topic_under_replicated = Family::<TopicLabels, Gauge>::default();
        let topic_offline = Family::<TopicLabels, Gauge>::default();
        registry.register(
            "runnel_operator_reconciles",
            "Reconciles by kind and outcome",
            reconciles.clone(),
        );
        registry.register(
            "runnel_operator_reconcile_duration_seconds",
            "Time one reconcile took",
            reconcile_seconds.clone(),
        );
        registry.register(
            "runnel_operator_status_writes",
            "Status patches sent (only when the status changed)",
            status_writes.clone(),
        );
        registry.register(
            "runnel_operator_broker_restarts",
            "Broker pods deleted by rolls",
            pod_restarts.clone(),
        );
        registry.register(
            "runnel_operator_leader",
            "1 while this replica holds the leader lease",
            leader.clone(),
        );
        registry.register(
            "runnel_cluster_brokers",
            "Broker pods that exist",
            brokers.clone(),
        );
        registry.register(
            "runnel_cluster_ready_brokers",
            "Broker pods that are ready",
            ready_brokers.clone(),
        );
        registry.register(
            "runnel_cluster_under_replicated_partitions",
            "Partitions whose ISR is smaller than their replica set",
            under_replicated.clone(),
        );
        registry.register(
            "runnel_cluster_offline_partitions",
            "Partitions without a leader",
            offline.clone(),
        );
        registry.register(
            "runnel_cluster_controller_present",
            "1 when the cluster has a controller",
            controller_present.clone(),
        );
        registry.register(
            "runnel_topic_under_replicated_partitions",
            "A Topic's partitions whose ISR is smaller than their replica set",
            topic_under_replicated.clone(),
        );
        registry.register(
            "runnel_topic_offline_partitions",
            "A Topic's partitions without a leader",
            topic_offline.clone(),
        );
        Metrics {
            registry,
            reconciles,
            reconcile_seconds,
            status_writes,
            pod_restarts,
            leader,
            brokers,
            ready_brokers,
            under_replicated,
            offline,
            controller_present,
            topic_under_replicated,
            topic_offline,
        }
    }

    /// Drops a deleted Topic's series.
    pub fn forget_topic(&self, labels: &TopicLabels) {
        self.topic_under_replicated.remove(labels);
        self.topic_offline.remove(labels);
    }

    /// Drops a deleted cluster's series.
    pub fn forget_cluster(&self, labels: &ClusterLabels) {
        for family in [
            &self.brokers,
            &self.ready_brokers,
            &self.under_replicated,
            &self.offline,
            &self.controller_present,
        ] {
            family.remove(labels);
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(err) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %err, "failed to encode metrics");
        }
        out
    }
}
