//! Values computed at scrape time: per-partition log gauges, per-topic throughput,
//! replica health and the controller's view of offline partitions, read from the
//! replica manager and the metadata image rather than kept in the registry.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use crate::controller::service::Controllers;
use crate::group::GroupCoordinator;
use crate::metadata::cache::{MetadataCache, MetadataImage};
use crate::partition::manager::ReplicaManager;
use crate::partition::{Partition, Role};
use crate::rpc::admin::RefusedForwards;
use crate::rpc::forward::GrpcForward;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabels {
    topic: String,
    partition: String,
}

/// Broker-wide throughput counters; kept here (not in the registry) so that each family
/// carries its unlabelled total and its per-topic series together, as Kafka's
/// BrokerTopicMetrics do.
#[derive(Debug, Default, Clone)]
pub(super) struct Throughput {
    pub(super) bytes_in: Counter,
    pub(super) bytes_out: Counter,
    pub(super) messages_in: Counter,
}

#[derive(Debug, Default)]
pub(super) struct LiveStats {
    pub(super) throughput: Throughput,
    pub(super) replicas: OnceLock<Arc<ReplicaManager>>,
    pub(super) cluster: OnceLock<(Arc<MetadataCache>, i32)>,
    pub(super) groups: OnceLock<Arc<GroupCoordinator>>,
    pub(super) controller: OnceLock<Arc<crate::controller::Controller>>,
    pub(super) admin: OnceLock<(Arc<Controllers>, Arc<GrpcForward>, Arc<RefusedForwards>)>,
    pub(super) replication: OnceLock<(
        Arc<crate::replication::ReplicationStats>,
        Arc<crate::replication::fetcher::Fetchers>,
    )>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LagLabels {
    group: String,
    topic: String,
    partition: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

pub(super) fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    ConstGauge::new(value).encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

pub(super) fn counter(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    ConstCounter::new(value).encode(encoder.encode_descriptor(
        name,
        help,
        None,
        MetricType::Counter,
    )?)
}

/// Partitions whose leader is gone: none named, or one without a live registration.
fn offline_partitions(image: &MetadataImage) -> i64 {
    image
        .partitions
        .values()
        .flat_map(|ps| ps.values())
        .filter(|p| image.is_offline(&p.value))
        .count() as i64
}

fn is_under_replicated(p: &Partition) -> bool {
    let state = p.state();
    state.role == Role::Leader && state.isr.len() < state.replicas.len()
}

impl LiveStats {
    fn encode_throughput(
        &self,
        encoder: &mut DescriptorEncoder<'_>,
        partitions: &[Arc<Partition>],
    ) -> Result<(), std::fmt::Error> {
        type Read = fn(&Partition) -> u64;
        // Clients' traffic has a broker-wide counter (it also counts what no partition
        // kept, e.g. a refused batch); replication's total is the sum over partitions.
        let families: [(&str, &str, Option<&Counter>, Read); 5] = [
            (
                "kafka_server_brokertopicmetrics_bytes_in",
                "Record batch bytes produced by clients (all topics, and per topic)",
                Some(&self.throughput.bytes_in),
                |p| p.bytes_in.load(Ordering::Relaxed),
            ),
            (
                "kafka_server_brokertopicmetrics_bytes_out",
                "Record batch bytes fetched by clients (all topics, and per topic)",
                Some(&self.throughput.bytes_out),
                |p| p.bytes_out.load(Ordering::Relaxed),
            ),
            (
                "kafka_server_brokertopicmetrics_messages_in",
                "Records produced (all topics, and per topic)",
                Some(&self.throughput.messages_in),
                |p| p.messages_in.load(Ordering::Relaxed),
            ),
            (
                "kafka_server_brokertopicmetrics_replication_bytes_in",
                "Record batch bytes this broker appended as a follower (all topics, and per topic)",
                None,
                |p| p.replication_bytes_in.load(Ordering::Relaxed),
            ),
            (
                "kafka_server_brokertopicmetrics_replication_bytes_out",
                "Record batch bytes this broker sent its followers (all topics, and per topic)",
                None,
                |p| p.replication_bytes_out.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, total, read) in families {
            let mut per_topic: BTreeMap<&str, u64> = BTreeMap::new();
            for p in partitions {
                *per_topic.entry(&p.topic).or_default() += read(p);
            }
            let total = total.map_or_else(|| per_topic.values().sum(), Counter::get);
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            let none: Vec<(&str, &str)> = Vec::new();
            ConstCounter::new(total).encode(family.encode_family(&none)?)?;
            for (topic, value) in per_topic {
                ConstCounter::new(value).encode(family.encode_family(&vec![("topic", topic)])?)?;
            }
        }
        Ok(())
    }

    fn encode_partitions(
        &self,
        encoder: &mut DescriptorEncoder<'_>,
        partitions: &[Arc<Partition>],
    ) -> Result<(), std::fmt::Error> {
        type Read = fn(&Partition) -> i64;
        let per_partition: [(&str, &str, Read); 4] = [
            (
                "kafka_log_size_bytes",
                "Bytes of a partition's log on this broker",
                |p| p.size_bytes() as i64,
            ),
            (
                "kafka_log_log_end_offset",
                "Log end offset of a partition",
                |p| p.offsets().log_end,
            ),
            (
                "kafka_log_log_start_offset",
                "Log start offset of a partition",
                |p| p.offsets().log_start,
            ),
            (
                "kafka_cluster_partition_high_watermark",
                "High watermark of a partition this broker leads",
                |p| p.offsets().high_watermark,
            ),
        ];
        for (name, help, value) in per_partition {
            let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for p in partitions {
                let labels = PartitionLabels {
                    topic: p.topic.to_string(),
                    partition: p.index.to_string(),
                };
                ConstGauge::new(value(p)).encode(metric.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }

    fn encode_replicas(
        &self,
        encoder: &mut DescriptorEncoder<'_>,
        replicas: &ReplicaManager,
        partitions: &[Arc<Partition>],
    ) -> Result<(), std::fmt::Error> {
        let leaders = partitions
            .iter()
            .filter(|p| p.state().role == Role::Leader)
            .count();
        gauge(
            encoder,
            "kafka_server_replicamanager_partition_count",
            "Partition replicas on this broker",
            partitions.len() as i64,
        )?;
        gauge(
            encoder,
            "kafka_server_replicamanager_leader_count",
            "Partitions this broker leads",
            leaders as i64,
        )?;
        counter(
            encoder,
            "runnel_replica_leadership_lost",
            "Times a replica here stopped leading (new leader, offline, or a new incarnation of this broker)",
            partitions
                .iter()
                .map(|p| p.leadership_lost.load(Ordering::Relaxed))
                .sum(),
        )?;
        gauge(
            encoder,
            "kafka_server_replicamanager_under_replicated_partitions",
            "Partitions this broker leads whose in-sync replicas are fewer than their replicas",
            partitions.iter().filter(|p| is_under_replicated(p)).count() as i64,
        )?;
        let offline_here =
            partitions.iter().filter(|p| p.offsets().offline).count() + replicas.failed_count();
        gauge(
            encoder,
            "runnel_log_offline_partitions",
            "Partition replicas on this broker whose log failed to open or went offline after an I/O error",
            offline_here as i64,
        )?;
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
                "runnel_flush_volume_syncs",
                "syncfs calls that flushed many partitions at once",
                flush.volume_syncs.load(Ordering::Relaxed),
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
                "runnel_log_open_failures",
                "Partition logs that failed to open and stayed offline until tried again",
                replicas.recovery.open_failures.load(Ordering::Relaxed),
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
            (
                "runnel_log_cleaner_swaps_completed",
                "Cleaning swaps a crash interrupted, completed at start",
                replicas.recovery.swaps_completed.load(Ordering::Relaxed),
            ),
            (
                "runnel_log_cleaner_passes",
                "Log cleaner passes that compacted a partition",
                replicas.cleaner.passes.load(Ordering::Relaxed),
            ),
            (
                "runnel_log_cleaner_segments_in",
                "Segments read by the cleaner",
                replicas.cleaner.segments_in.load(Ordering::Relaxed),
            ),
            (
                "runnel_log_cleaner_segments_out",
                "Segments written by the cleaner",
                replicas.cleaner.segments_out.load(Ordering::Relaxed),
            ),
            (
                "runnel_log_cleaner_bytes_in",
                "Bytes of segments read by the cleaner",
                replicas.cleaner.bytes_in.load(Ordering::Relaxed),
            ),
            (
                "runnel_log_cleaner_bytes_out",
                "Bytes of segments written by the cleaner",
                replicas.cleaner.bytes_out.load(Ordering::Relaxed),
            ),
            (
                "runnel_log_cleaner_records_removed",
                "Records compacted away (superseded or expired tombstones)",
                replicas.cleaner.records_removed.load(Ordering::Relaxed),
            ),
            (
                "runnel_log_cleaner_tombstones_removed",
                "Tombstones removed after delete.retention.ms",
                replicas.cleaner.tombstones_removed.load(Ordering::Relaxed),
            ),
            (
                "runnel_log_cleaner_failures",
                "Cleaner passes that failed",
                replicas.cleaner.failures.load(Ordering::Relaxed),
            ),
            (
                "runnel_log_dropped_segments",
                "Segments dropped at start because they follow a short (torn) one",
                replicas.recovery.segments_dropped.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in counters {
            counter(encoder, name, help, value)?;
        }
        Ok(())
    }

    /// Kafka reports controller gauges from the active controller only (0 elsewhere), so
    /// summing them across brokers counts each partition once.
    fn encode_controller(
        &self,
        encoder: &mut DescriptorEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        let Some((cache, me)) = self.cluster.get() else {
            return Ok(());
        };
        let image = cache.image();
        let active = image.controller.is_some_and(|(id, _)| id == *me);
        gauge(
            encoder,
            "kafka_controller_active_controller_count",
            "1 on the broker that is the active controller",
            i64::from(active),
        )?;
        gauge(
            encoder,
            "kafka_controller_offline_partitions_count",
            "Partitions without a live leader (reported by the active controller)",
            if active {
                offline_partitions(&image)
            } else {
                0
            },
        )?;
        gauge(
            encoder,
            "kafka_controller_global_partition_count",
            "Partitions in the cluster (reported by the active controller)",
            if active {
                image.partitions.values().map(|ps| ps.len() as i64).sum()
            } else {
                0
            },
        )
    }
}

impl LiveStats {
    /// Lag per group and partition (kafka-exporter's name), groups by state, and the
    /// coordinator's counters.
    fn encode_groups(&self, encoder: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(groups) = self.groups.get() else {
            return Ok(());
        };
        let mut metric = encoder.encode_descriptor(
            "kafka_consumergroup_lag",
            "High watermark minus the group's committed offset, per partition",
            None,
            MetricType::Gauge,
        )?;
        for (group, topic, partition, lag) in groups.lag() {
            let labels = LagLabels {
                group,
                topic,
                partition: partition.to_string(),
            };
            ConstGauge::new(lag).encode(metric.encode_family(&labels)?)?;
        }
        let mut metric = encoder.encode_descriptor(
            "runnel_consumer_groups",
            "Consumer groups this broker coordinates, by state",
            None,
            MetricType::Gauge,
        )?;
        for (state, count) in groups.group_counts() {
            let labels = StateLabels {
                state: state.to_string(),
            };
            ConstGauge::new(count as i64).encode(metric.encode_family(&labels)?)?;
        }
        let stats = &groups.stats;
        let counters = [
            (
                "runnel_group_offsets_committed",
                "Offsets committed and stored",
                stats.offsets_committed.load(Ordering::Relaxed),
            ),
            (
                "runnel_group_offsets_expired",
                "Committed offsets removed by offsets.retention.minutes",
                stats.offsets_expired.load(Ordering::Relaxed),
            ),
            (
                "runnel_group_rebalances",
                "Rebalances started",
                stats.rebalances.load(Ordering::Relaxed),
            ),
            (
                "runnel_group_partitions_loaded",
                "Offsets partitions loaded by this coordinator",
                stats.shards_loaded.load(Ordering::Relaxed),
            ),
            (
                "runnel_group_records_loaded",
                "Records replayed from __consumer_offsets while loading",
                stats.records_loaded.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in counters {
            counter(encoder, name, help, value)?;
        }
        Ok(())
    }
}

impl LiveStats {
    /// Admin requests forwarded to the controller, and gRPC requests the admin service
    /// refused (nothing was written for any of them).
    fn encode_admin(&self, encoder: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some((controllers, forward, refused)) = self.admin.get() else {
            return Ok(());
        };
        counter(
            encoder,
            "runnel_admin_forwarded",
            "Admin requests this broker forwarded to the controller over gRPC",
            controllers.forwarded.load(Ordering::Relaxed),
        )?;
        counter(
            encoder,
            "runnel_admin_forward_failures",
            "Forwarded admin requests that failed to reach the controller or were refused by it",
            forward.failures(),
        )?;
        let mut family = encoder.encode_descriptor(
            "runnel_admin_refused",
            "gRPC admin requests refused before anything was done, by reason",
            None,
            MetricType::Counter,
        )?;
        for (reason, value) in [
            (
                "stale_broker_epoch",
                refused.stale_broker.load(Ordering::Relaxed),
            ),
            (
                "stale_controller_epoch",
                refused.stale_controller.load(Ordering::Relaxed),
            ),
            (
                "unknown_fields",
                crate::rpc::codec::refused_unknown_fields(),
            ),
            ("oversized", refused.oversized.load(Ordering::Relaxed)),
        ] {
            ConstCounter::new(value).encode(family.encode_family(&vec![("reason", reason)])?)?;
        }
        Ok(())
    }
}

impl LiveStats {
    /// The controller's own counters (on every broker: a broker that was controller
    /// keeps what it did).
    fn encode_controller_work(
        &self,
        encoder: &mut DescriptorEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        let Some(controller) = self.controller.get() else {
            return Ok(());
        };
        let stats = &controller.stats;
        for (name, help, value) in [
            (
                "runnel_controller_elections",
                "Times this broker became the controller",
                &stats.terms,
            ),
            (
                "runnel_controller_leader_changes",
                "Partition leadership changes this broker wrote as controller",
                &stats.leader_changes,
            ),
            (
                "runnel_controller_unclean_leader_elections",
                "Leaders this broker elected as controller from outside the ISR (unclean.leader.election.enable)",
                &stats.unclean_elections,
            ),
            (
                "runnel_controller_fenced_transactions",
                "Controller transactions refused because its term was over",
                &stats.fenced,
            ),
            (
                "runnel_controller_conflicted_transactions",
                "Controller transactions refused because a record changed under them",
                &stats.conflicts,
            ),
        ] {
            counter(encoder, name, help, value.load(Ordering::Relaxed))?;
        }
        stats.transactions.encode(encoder.encode_descriptor(
            "runnel_controller_transaction_seconds",
            "Time of the controller's fenced etcd transactions",
            None,
            MetricType::Histogram,
        )?)
    }
}

impl Collector for LiveStats {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let replicas = self.replicas.get();
        let partitions = replicas.map(|r| r.all()).unwrap_or_default();
        self.encode_throughput(&mut encoder, &partitions)?;
        if let Some(replicas) = replicas {
            self.encode_partitions(&mut encoder, &partitions)?;
            self.encode_replicas(&mut encoder, replicas, &partitions)?;
            self.encode_replication(&mut encoder, &partitions)?;
        }
        self.encode_groups(&mut encoder)?;
        self.encode_admin(&mut encoder)?;
        self.encode_controller_work(&mut encoder)?;
        self.encode_controller(&mut encoder)
    }
}
