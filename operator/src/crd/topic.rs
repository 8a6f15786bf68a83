//! The `Topic` resource. Its kind and spec are reserved here so the CRD ships with the
//! operator; reconciling it comes with the Topic issue (nothing acts on it yet, which
//! crds/ and the README say).

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
    doc = "A topic of a Runnel cluster (reserved: not reconciled by this version)",
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.clusterRef"),
    printcolumn(name = "Partitions", type_ = "integer", json_path = ".spec.partitions"),
    printcolumn(name = "RF", type_ = "integer", json_path = ".spec.replicationFactor"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct TopicSpec {
    /// The KafkaCluster (same namespace).
    #[x_kube(validation = Rule::new("self == oldSelf").message("clusterRef is immutable"))]
    pub cluster_ref: String,
    /// The topic's name in Kafka; default: metadata.name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("topicName is immutable"))]
    pub topic_name: Option<String>,
    #[x_kube(validation = Rule::new("self >= 1").message("a topic has at least one partition"))]
    #[x_kube(validation = Rule::new("self >= oldSelf").message("partitions can only increase"))]
    pub partitions: i32,
    #[x_kube(validation = Rule::new("self >= 1").message("replicationFactor is at least 1"))]
    pub replication_factor: i32,
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Deleting the Topic deletes the topic and its data.
    #[default]
    Delete,
    /// Deleting the Topic leaves the topic in the cluster.
    Retain,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopicStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
}
