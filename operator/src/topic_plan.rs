//! What a Topic's reconcile does to the cluster (pure): create the topic, add partitions,
//! set or remove config overrides; what it refuses (fewer partitions, another replication
//! factor); which config drifted; and which of several Topics naming one topic owns it.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use crate::crd::{ConfigDrift, DriftPolicy, Topic, TopicSpec};
use crate::proto;

/// The topic as the cluster's admin service describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveTopic {
    pub topic_id: String,
    pub partitions: i32,
    pub replication_factor: i32,
    /// The topic's overrides.
    pub configs: BTreeMap<String, String>,
}

impl LiveTopic {
    pub fn from_proto(topic: &proto::Topic) -> LiveTopic {
        LiveTopic {
            topic_id: topic.topic_id.clone(),
            partitions: topic.partitions,
            replication_factor: topic.replication_factor,
            configs: topic
                .configs
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}

/// One config change, as the admin service's incremental AlterConfigs takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigChange {
    Set(String, String),
    Delete(String),
}

/// Something the spec asks that is not done, with the condition reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Create the topic from the spec (it does not exist).
    pub create: bool,
    /// Raise the partition count to this.
    pub partitions: Option<i32>,
    pub config: Vec<ConfigChange>,
    /// What `status.managedConfig` becomes once the changes are made.
    pub managed: BTreeMap<String, String>,
    pub drift: Vec<ConfigDrift>,
    pub refused: Vec<Refusal>,
}

/// The plan for `spec` against the topic as it is (`None`: it does not exist), given the
/// values the operator set before (`managed`).
pub fn plan(
    spec: &TopicSpec,
    live: Option<&LiveTopic>,
    managed: &BTreeMap<String, String>,
) -> Plan {
    let Some(live) = live else {
        return Plan {
            create: true,
            managed: spec.config.clone(),
            ..Plan::default()
        };
    };
    let mut plan = Plan::default();
    if spec.replication_factor != live.replication_factor {
        plan.refused.push(Refusal {
            reason: "ReplicationFactorChange",
            message: format!(
                "replicationFactor {} differs from the topic's {}: changing it needs partition \
                 reassignment, which this version does not have",
                spec.replication_factor, live.replication_factor
            ),
        });
    }
    if spec.partitions < live.partitions {
        plan.refused.push(Refusal {
            reason: "PartitionDecrease",
            message: format!(
                "the topic has {} partitions and the spec asks for {}: Kafka cannot remove \
                 partitions",
                live.partitions, spec.partitions
            ),
        });
    } else if spec.partitions > live.partitions {
        plan.partitions = Some(spec.partitions);
    }
    for (key, wanted) in &spec.config {
        let now = live.configs.get(key);
        if now == Some(wanted) {
            plan.managed.insert(key.clone(), wanted.clone());
            continue;
        }
        // The operator set exactly this value before, and the cluster no longer has it:
        // changed behind the operator's back.
        let drifted = managed.get(key) == Some(wanted);
        if drifted && spec.drift_policy == DriftPolicy::Report {
            plan.drift.push(ConfigDrift {
                key: key.clone(),
                spec: Some(wanted.clone()),
                live: now.cloned(),
            });
            plan.managed.insert(key.clone(), wanted.clone());
            continue;
        }
        plan.config
            .push(ConfigChange::Set(key.clone(), wanted.clone()));
        plan.managed.insert(key.clone(), wanted.clone());
    }
    for key in managed.keys() {
        if !spec.config.contains_key(key) && live.configs.contains_key(key) {
            plan.config.push(ConfigChange::Delete(key.clone()));
        }
    }
    plan
}

/// The Kafka name of a Topic's topic.
pub fn topic_name(topic: &Topic) -> String {
    topic
        .spec
        .topic_name
        .clone()
        .unwrap_or_else(|| topic.name_any())
}

/// Of the Topics in one namespace that name the same topic of the same cluster, the one
/// that owns it: the oldest, then the first by name. The others get Conflict. Topics being
/// deleted count only with `include_deleting` (deciding which of them may delete it).
pub fn owner<'a>(
    candidates: impl IntoIterator<Item = &'a Topic>,
    include_deleting: bool,
) -> Option<&'a Topic> {
    candidates
        .into_iter()
        .filter(|t| include_deleting || t.metadata.deletion_timestamp.is_none())
        .min_by(|a, b| {
            let created = |t: &Topic| t.metadata.creation_timestamp.clone().map(|Time(t)| t);
            created(a)
                .cmp(&created(b))
                .then_with(|| a.name_any().cmp(&b.name_any()))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::DeletionPolicy;
    use k8s_openapi::jiff::Timestamp;

    fn spec(partitions: i32, rf: i32, config: &[(&str, &str)]) -> TopicSpec {
        TopicSpec {
            cluster_ref: "demo".to_string(),
            topic_name: None,
            partitions,
            replication_factor: rf,
            config: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            deletion_policy: DeletionPolicy::Delete,
            drift_policy: DriftPolicy::Enforce,
        }
    }

    fn live(partitions: i32, rf: i32, config: &[(&str, &str)]) -> LiveTopic {
        LiveTopic {
            topic_id: "id".to_string(),
            partitions,
            replication_factor: rf,
            configs: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_missing_topic_is_created_with_its_config_managed() {
        let p = plan(
            &spec(6, 3, &[("retention.ms", "1000")]),
            None,
            &BTreeMap::new(),
        );
        assert!(p.create);
        assert_eq!(p.managed, map(&[("retention.ms", "1000")]));
    }

    #[test]
    fn an_adopted_topic_keeps_the_overrides_the_spec_does_not_name() {
        let existing = live(6, 3, &[("cleanup.policy", "compact")]);
        let p = plan(&spec(6, 3, &[]), Some(&existing), &BTreeMap::new());
        assert_eq!(p, Plan::default());
    }

    #[test]
    fn partitions_only_grow_and_the_replication_factor_is_fixed() {
        let p = plan(&spec(8, 3, &[]), Some(&live(6, 3, &[])), &BTreeMap::new());
        assert_eq!(p.partitions, Some(8));
        let p = plan(&spec(4, 2, &[]), Some(&live(6, 3, &[])), &BTreeMap::new());
        assert_eq!(p.partitions, None);
        let reasons: Vec<_> = p.refused.iter().map(|r| r.reason).collect();
        assert_eq!(reasons, ["ReplicationFactorChange", "PartitionDecrease"]);
    }

    #[test]
    fn spec_changes_are_set_and_removed_keys_deleted() {
        let managed = map(&[("retention.ms", "1000"), ("segment.ms", "60000")]);
        let existing = live(6, 3, &[("retention.ms", "1000"), ("segment.ms", "60000")]);
        let p = plan(
            &spec(6, 3, &[("retention.ms", "2000")]),
            Some(&existing),
            &managed,
        );
        assert_eq!(
            p.config,
            [
                ConfigChange::Set("retention.ms".to_string(), "2000".to_string()),
                ConfigChange::Delete("segment.ms".to_string()),
            ]
        );
        assert_eq!(p.managed, map(&[("retention.ms", "2000")]));
    }

    #[test]
    fn drift_is_reset_under_enforce_and_reported_under_report() {
        let managed = map(&[("retention.ms", "1000")]);
        let changed = live(6, 3, &[("retention.ms", "5")]);
        let mut s = spec(6, 3, &[("retention.ms", "1000")]);
        let p = plan(&s, Some(&changed), &managed);
        assert_eq!(
            p.config,
            [ConfigChange::Set(
                "retention.ms".to_string(),
                "1000".to_string()
            )]
        );
        assert!(p.drift.is_empty());
        s.drift_policy = DriftPolicy::Report;
        let p = plan(&s, Some(&changed), &managed);
        assert!(p.config.is_empty());
        assert_eq!(
            p.drift,
            [ConfigDrift {
                key: "retention.ms".to_string(),
                spec: Some("1000".to_string()),
                live: Some("5".to_string()),
            }]
        );
        // A spec edit is not drift: it is applied under Report too.
        s.config
            .insert("retention.ms".to_string(), "3000".to_string());
        let p = plan(&s, Some(&changed), &managed);
        assert_eq!(
            p.config,
            [ConfigChange::Set(
                "retention.ms".to_string(),
                "3000".to_string()
            )]
        );
    }

    #[test]
    fn the_oldest_topic_resource_owns_the_topic() {
        let make = |name: &str, created: i64| {
            let mut t = Topic::new(name, spec(1, 1, &[]));
            t.metadata.creation_timestamp = Some(Time(Timestamp::from_second(created).unwrap()));
            t
        };
        let mut topics = [make("b", 10), make("a", 20), make("c", 10)];
        let owned_by =
            |topics: &[Topic], deleting| owner(topics, deleting).map(ResourceExt::name_any);
        assert_eq!(owned_by(&topics, false).as_deref(), Some("b"));
        topics[0].metadata.deletion_timestamp = Some(Time(Timestamp::from_second(30).unwrap()));
        assert_eq!(owned_by(&topics, false).as_deref(), Some("c"));
        assert_eq!(owned_by(&topics, true).as_deref(), Some("b"));
    }
}
