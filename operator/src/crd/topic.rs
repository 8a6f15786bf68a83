//! The `Topic` resource: one Kafka topic of a KafkaCluster in the same namespace. Its
//! status carries what no other Kafka operator's topic resource shows: who leads each
//! partition, its replicas and ISR, live from the brokers' watch stream.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A Kafka topic of a KafkaCluster in the same namespace.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "runnel.dev",
    version = "v1alpha1",
    kind = "Topic",
    namespaced,
    status = "TopicStatus",
    category = "runnel",
    category = "all",
    doc = "A topic of a Runnel cluster, with its partitions' leaders and ISR in status",
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.clusterRef"),
    printcolumn(
        name = "Partitions",
        type_ = "integer",
        json_path = ".status.partitions",
        description = "Partitions the topic has"
    ),
    printcolumn(
        name = "RF",
        type_ = "integer",
        json_path = ".status.replicationFactor"
    ),
    printcolumn(
        name = "Under-replicated",
        type_ = "integer",
        json_path = ".status.underReplicatedPartitions"
    ),
    printcolumn(
        name = "Leaders-on",
        type_ = "string",
        json_path = ".status.leadersOn",
        description = "Brokers leading at least one partition"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
// On the struct: a field's transition rule is skipped when the field is absent on either
// side, which would let topicName be added or removed later (switching the topic).
#[x_kube(validation = Rule::new("has(self.topicName) == has(oldSelf.topicName)").message("topicName is immutable"))]
#[serde(rename_all = "camelCase")]
pub struct TopicSpec {
    /// The KafkaCluster (same namespace).
    #[x_kube(validation = Rule::new("self == oldSelf").message("clusterRef is immutable"))]
    pub cluster_ref: String,
    /// The topic's name in Kafka; default: metadata.name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("topicName is immutable"))]
    #[x_kube(validation = Rule::new("self.matches('^[a-zA-Z0-9._-]{1,249}$')").message("a topic name is 1 to 249 of a-z, A-Z, 0-9, '.', '_' and '-'"))]
    pub topic_name: Option<String>,
    #[x_kube(validation = Rule::new("self >= 1").message("a topic has at least one partition"))]
    #[x_kube(validation = Rule::new("self >= oldSelf").message("partitions can only increase"))]
    pub partitions: i32,
    /// Fixed once the topic exists (changing it needs partition reassignment).
    #[x_kube(validation = Rule::new("self >= 1").message("replicationFactor is at least 1"))]
    pub replication_factor: i32,
    /// Topic config overrides (Kafka's topic-level keys).
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    #[serde(default)]
    pub drift_policy: DriftPolicy,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Deleting the Topic deletes the topic and its data.
    #[default]
    Delete,
    /// Deleting the Topic leaves the topic in the cluster.
    Retain,
}

/// What happens when a config key the spec sets is changed in the cluster behind the
/// operator's back (kafka-configs, an admin client).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DriftPolicy {
    /// Set it back to the spec's value.
    #[default]
    Enforce,
    /// Leave it, and list it in `status.configDrift`.
    Report,
}

/// One partition as the brokers' watch stream last showed it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PartitionStatus {
    pub partition: i32,
    /// -1 when offline.
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// A config key whose value in the cluster is not the spec's.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigDrift {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<String>,
    /// None: the override is not set in the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopicStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The topic's name in Kafka.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_name: Option<String>,
    /// Kafka's topic id (base64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<String>,
    #[serde(default)]
    pub partitions: i32,
    #[serde(default)]
    pub replication_factor: i32,
    #[serde(default)]
    pub under_replicated_partitions: i32,
    #[serde(default)]
    pub offline_partitions: i32,
    /// Broker ids leading at least one partition, comma-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaders_on: Option<String>,
    /// Every partition while there are at most 100; beyond that only the unhealthy ones
    /// (under-replicated or offline, up to 100), and `partitionStatesTruncated` is true.
    #[serde(default)]
    pub partition_states: Vec<PartitionStatus>,
    #[serde(default)]
    pub partition_states_truncated: bool,
    /// The topic's config overrides when the operator adopted a topic that existed
    /// before this resource; kept for reference (nothing is changed until the spec asks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopted_config: Option<BTreeMap<String, String>>,
    /// The config values the operator has set: removing a key from the spec removes it
    /// from the topic, a value changed in the cluster since is drift; keys it never set
    /// are left alone.
    #[serde(default)]
    pub managed_config: BTreeMap<String, String>,
    /// Keys the spec sets whose value in the cluster differs (drift policy Report).
    #[serde(default)]
    pub config_drift: Vec<ConfigDrift>,
}
