//! A Topic's status from the cluster's watch view and what reconcile decided (pure). An
//! unchanged topic computes an equal status, so reconcile writes nothing.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::crd::{ConfigDrift, PartitionStatus, Topic, TopicStatus};
use crate::status::condition;
use crate::topic_plan::{LiveTopic, Refusal};
use crate::view::ClusterView;

pub const READY: &str = "Ready";
pub const DEGRADED: &str = "Degraded";
pub const CONFLICT: &str = "Conflict";
pub const REFUSED: &str = "Refused";

/// Partitions listed one by one in status; beyond, only unhealthy ones, up to this many.
pub const MAX_LISTED: usize = 100;

/// What the Topic's reconcile found and decided.
#[derive(Debug, Clone, Default)]
pub struct TopicObserved<'a> {
    /// The topic's name in Kafka.
    pub name: String,
    /// Why the topic cannot be reconciled at all.
    pub blocked: Option<Blocked>,
    pub view: Option<&'a ClusterView>,
    /// The topic as last described (this reconcile or before).
    pub live: Option<LiveTopic>,
    pub refused: Vec<Refusal>,
    pub drift: Vec<ConfigDrift>,
    pub managed_config: BTreeMap<String, String>,
    pub adopted_config: Option<BTreeMap<String, String>>,
}

/// What keeps a Topic from being reconciled, with a message for its condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocked {
    /// Another Topic names the same topic of the same cluster and owns it.
    Conflict(String),
    /// The KafkaCluster does not exist (or is being deleted).
    NoCluster(String),
}

pub fn topic_status(topic: &Topic, observed: &TopicObserved<'_>, now: &Time) -> TopicStatus {
    let previous = topic
        .status
        .as_ref()
        .map_or(&[][..], |s| s.conditions.as_slice());
    let generation = topic.metadata.generation;
    let mut conditions = Vec::new();
    let mut set = |type_: &str, status: &str, reason: &str, message: String| {
        conditions.push(condition(
            previous, generation, now, type_, status, reason, message,
        ));
    };

    // (partition, under-replicated, offline), the flags as the brokers report them.
    let partitions: Vec<(PartitionStatus, bool, bool)> = observed
        .view
        .map(|v| {
            v.partitions
                .range((observed.name.clone(), i32::MIN)..=(observed.name.clone(), i32::MAX))
                .map(|((_, index), p)| {
                    let state = PartitionStatus {
                        partition: *index,
                        leader: p.leader,
                        leader_epoch: p.leader_epoch,
                        replicas: p.replicas.clone(),
                        isr: p.isr.clone(),
                    };
                    (state, p.under_replicated, p.offline)
                })
                .collect()
        })
        .unwrap_or_default();
    let under = partitions.iter().filter(|(_, u, o)| *u && !*o).count() as i32;
    let offline = partitions.iter().filter(|(_, _, o)| *o).count() as i32;
    let leaders: BTreeSet<i32> = partitions
        .iter()
        .map(|(p, _, _)| p.leader)
        .filter(|l| *l >= 0)
        .collect();
    let truncated = partitions.len() > MAX_LISTED;
    let listed: Vec<PartitionStatus> = partitions
        .iter()
        .filter(|(_, u, o)| !truncated || *u || *o)
        .take(MAX_LISTED)
        .map(|(p, _, _)| p.clone())
        .collect();
    let exists = !partitions.is_empty();
    let count = if exists {
        partitions.len() as i32
    } else {
        observed.live.as_ref().map_or(0, |l| l.partitions)
    };

    match &observed.blocked {
        Some(Blocked::Conflict(message)) => {
            set(CONFLICT, "True", "DuplicateTopic", message.clone());
            set(READY, "False", "Conflict", message.clone());
        }
        Some(Blocked::NoCluster(message)) => {
            set(READY, "False", "ClusterNotFound", message.clone());
        }
        None => {
            set(
                CONFLICT,
                "False",
                "Owner",
                "this Topic owns the topic".to_string(),
            );
            let (status, reason, message) = if observed.view.is_none() {
                (
                    "False",
                    "NoWatchStream",
                    "the cluster's watch stream is not connected".to_string(),
                )
            } else if !exists {
                (
                    "False",
                    "NotCreated",
                    format!("topic {} does not exist yet", observed.name),
                )
            } else if offline > 0 {
                (
                    "False",
                    "OfflinePartitions",
                    format!("{offline} of {count} partition(s) have no leader"),
                )
            } else {
                (
                    "True",
                    "TopicReady",
                    format!("{count} partition(s), each with a leader"),
                )
            };
            set(READY, status, reason, message);
        }
    }
    if observed.view.is_none() || !exists {
        set(
            DEGRADED,
            "Unknown",
            "NotKnown",
            "the partitions' health is not known".to_string(),
        );
    } else if under > 0 || offline > 0 {
        set(
            DEGRADED,
            "True",
            if offline > 0 {
                "OfflinePartitions"
            } else {
                "UnderReplicatedPartitions"
            },
            format!("{under} partition(s) under-replicated, {offline} offline"),
        );
    } else {
        set(
            DEGRADED,
            "False",
            "Healthy",
            "every partition fully replicated".to_string(),
        );
    }
    if observed.refused.is_empty() {
        set(
            REFUSED,
            "False",
            "Accepted",
            "the spec is carried out".to_string(),
        );
    } else {
        let reasons: Vec<&str> = observed.refused.iter().map(|r| r.reason).collect();
        let messages: Vec<&str> = observed
            .refused
            .iter()
            .map(|r| r.message.as_str())
            .collect();
        set(REFUSED, "True", &reasons.join(","), messages.join("; "));
    }

    TopicStatus {
        observed_generation: generation,
        conditions,
        topic_name: Some(observed.name.clone()),
        topic_id: observed
            .live
            .as_ref()
            .map(|l| l.topic_id.clone())
            .filter(|id| !id.is_empty()),
        partitions: count,
        replication_factor: partitions
            .first()
            .map(|(p, _, _)| p.replicas.len() as i32)
            .or(observed.live.as_ref().map(|l| l.replication_factor))
            .unwrap_or(0),
        under_replicated_partitions: under,
        offline_partitions: offline,
        leaders_on: (!leaders.is_empty()).then(|| {
            leaders
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        }),
        partition_states: listed,
        partition_states_truncated: truncated,
        adopted_config: observed.adopted_config.clone(),
        managed_config: observed.managed_config.clone(),
        config_drift: observed.drift.clone(),
    }
}

/// The partitions whose leader changed between two statuses, as "partition: old→new".
pub fn leader_changes(before: &[PartitionStatus], after: &[PartitionStatus]) -> Vec<String> {
    let old: BTreeMap<i32, i32> = before.iter().map(|p| (p.partition, p.leader)).collect();
    after
        .iter()
        .filter_map(|p| {
            let was = *old.get(&p.partition)?;
            (was != p.leader).then(|| format!("{}: {was}→{}", p.partition, p.leader))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::Timestamp;

    use super::*;
    use crate::crd::{DeletionPolicy, DriftPolicy, TopicSpec};
    use crate::status::condition_status;
    use crate::view::PartitionInfo;

    fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).unwrap())
    }

    fn topic() -> Topic {
        let mut t = Topic::new(
            "orders",
            TopicSpec {
                cluster_ref: "demo".to_string(),
                topic_name: None,
                partitions: 3,
                replication_factor: 3,
                config: BTreeMap::new(),
                deletion_policy: DeletionPolicy::Delete,
                drift_policy: DriftPolicy::Enforce,
            },
        );
        t.metadata.generation = Some(2);
        t
    }

    fn view(partitions: &[(i32, i32, &[i32])]) -> ClusterView {
        let mut view = ClusterView::default();
        for (index, leader, isr) in partitions {
            view.partitions.insert(
                ("orders".to_string(), *index),
                PartitionInfo {
                    leader: *leader,
                    leader_epoch: 1,
                    replicas: vec![0, 1, 2],
                    isr: isr.to_vec(),
                    under_replicated: isr.len() < 3,
                    offline: *leader < 0,
                },
            );
        }
        // Another topic's partition: never in this Topic's status.
        view.partitions.insert(
            ("other".to_string(), 0),
            PartitionInfo {
                leader: 5,
                leader_epoch: 1,
                replicas: vec![5],
                isr: vec![5],
                under_replicated: false,
                offline: false,
            },
        );
        view
    }

    fn observed(view: &ClusterView) -> TopicObserved<'_> {
        TopicObserved {
            name: "orders".to_string(),
            view: Some(view),
            ..TopicObserved::default()
        }
    }

    #[test]
    fn the_status_lists_leaders_replicas_and_isr_per_partition() {
        let v = view(&[(0, 0, &[0, 1, 2]), (1, 1, &[1, 2, 0]), (2, 1, &[1, 0])]);
        let status = topic_status(&topic(), &observed(&v), &at(10));
        assert_eq!(status.partitions, 3);
        assert_eq!(status.replication_factor, 3);
        assert_eq!(status.under_replicated_partitions, 1);
        assert_eq!(status.leaders_on.as_deref(), Some("0,1"));
        assert_eq!(status.partition_states[2].isr, [1, 0]);
        assert_eq!(condition_status(&status.conditions, READY), Some("True"));
        assert_eq!(condition_status(&status.conditions, DEGRADED), Some("True"));
        assert_eq!(status.observed_generation, Some(2));
        // Computed again from the same view: equal, so nothing is written.
        let mut t = topic();
        t.status = Some(status.clone());
        assert_eq!(topic_status(&t, &observed(&v), &at(20)), status);
    }

    #[test]
    fn beyond_the_bound_only_unhealthy_partitions_are_listed() {
        let mut v = ClusterView::default();
        for index in 0..150 {
            v.partitions.insert(
                ("orders".to_string(), index),
                PartitionInfo {
                    leader: if index == 7 { -1 } else { 0 },
                    leader_epoch: 0,
                    replicas: vec![0, 1],
                    isr: if index % 50 == 1 { vec![0] } else { vec![0, 1] },
                    under_replicated: index % 50 == 1,
                    offline: index == 7,
                },
            );
        }
        let status = topic_status(&topic(), &observed(&v), &at(1));
        assert!(status.partition_states_truncated);
        let listed: Vec<i32> = status
            .partition_states
            .iter()
            .map(|p| p.partition)
            .collect();
        assert_eq!(listed, [1, 7, 51, 101]);
        assert_eq!(status.offline_partitions, 1);
        assert_eq!(condition_status(&status.conditions, READY), Some("False"));
    }

    #[test]
    fn a_conflict_blocks_readiness_and_says_who_owns_the_topic() {
        let v = view(&[(0, 0, &[0, 1, 2])]);
        let mut o = observed(&v);
        o.blocked = Some(Blocked::Conflict("Topic first owns orders".to_string()));
        let status = topic_status(&topic(), &o, &at(1));
        assert_eq!(condition_status(&status.conditions, CONFLICT), Some("True"));
        assert_eq!(condition_status(&status.conditions, READY), Some("False"));
    }

    #[test]
    fn leader_changes_name_each_partition() {
        let p = |partition, leader| PartitionStatus {
            partition,
            leader,
            ..PartitionStatus::default()
        };
        assert_eq!(
            leader_changes(&[p(0, 1), p(1, 1), p(2, 0)], &[p(0, 2), p(1, 1), p(2, -1)]),
            ["0: 1→2", "2: 0→-1"]
        );
    }
}
