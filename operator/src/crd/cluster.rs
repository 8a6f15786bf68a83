//! The `KafkaCluster` resource: what a user asks for (spec) and what the operator reports
//! (status). Checks that need only the object itself are CEL rules in the schema, so the
//! apiserver refuses a bad manifest at `kubectl apply`; checks that need the running
//! cluster (a storage decrease, a config key's value) become conditions.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The broker image when the spec names none. It must carry `runnel-broker` and
/// `runnel-operator` (the init container that reads the node's zone runs the latter).
pub const DEFAULT_IMAGE: &str = "ghcr.io/runnel-dev/runnel:0.1.0";
/// etcd 3.6, the version the cluster tests run (3.4 ships with auto-compaction off).
pub const DEFAULT_ETCD_IMAGE: &str = "quay.io/coreos/etcd:v3.6.16";
pub const DEFAULT_KAFKA_PORT: i32 = 9092;
pub const DEFAULT_TOPOLOGY_KEY: &str = "topology.kubernetes.io/zone";
/// Host names a console may list in `allowedHosts`: a DNS name's limit.
pub const MAX_CONSOLE_HOST_LEN: usize = 253;

/// A Runnel cluster: brokers in a StatefulSet, their metadata in etcd.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "runnel.dev",
    version = "v1alpha1",
    kind = "KafkaCluster",
    namespaced,
    status = "KafkaClusterStatus",
    shortname = "kc",
    category = "runnel",
    category = "all",
    doc = "A Runnel cluster: Kafka-compatible brokers with their metadata in etcd",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.labelSelector"
    ),
    printcolumn(
        name = "Replicas",
        type_ = "integer",
        json_path = ".status.replicas",
        description = "Broker pods that exist"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Controller",
        type_ = "integer",
        json_path = ".status.controller",
        description = "The broker that is the cluster's controller"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Console",
        type_ = "string",
        json_path = ".status.console",
        description = "Where the brokers' web console answers (kubectl get -o wide)",
        priority = 1
    )
)]
#[serde(rename_all = "camelCase")]
pub struct KafkaClusterSpec {
    /// Number of brokers. Brokers are added by raising it; lowering it is refused for now
    /// (condition ScaleBlocked): no broker that holds data is removed.
    #[x_kube(validation = Rule::new("self >= 1").message("a cluster needs at least one broker"))]
    pub replicas: i32,
    /// Image carrying runnel-broker and runnel-operator.
    #[serde(default = "default_image")]
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<String>,
    /// Requests and limits of each broker container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Each broker's data volume.
    pub storage: Storage,
    /// Broker configuration: server.properties keys, checked by the broker's own rules.
    /// Keys the operator sets itself (broker.id, listeners, log.dirs, etcd.*, ...) are
    /// refused.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    #[serde(default)]
    pub listeners: Listeners,
    /// Rack awareness: each broker's `broker.rack` is its node's value of this label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<Rack>,
    /// Where the cluster's metadata lives.
    pub etcd: Etcd,
    /// The brokers' web console (port 9097 on every broker and on the cluster's Services).
    #[serde(default)]
    pub console: Console,
}

fn default_image() -> String {
    DEFAULT_IMAGE.to_string()
}

/// A persistent volume per pod.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
// A rule on the struct, not the field: a field's transition rule is skipped when the
// field is absent on either side, which would let an unset class be set later.
#[x_kube(validation = Rule::new("has(self.class) == has(oldSelf.class) && (!has(self.class) || self.class == oldSelf.class)").message("storage.class cannot change"))]
#[serde(rename_all = "camelCase")]
pub struct Storage {
    /// Size of each volume. Raising it expands the existing claims (when the storage class
    /// allows expansion); lowering it is refused.
    pub size: Quantity,
    /// StorageClass of the claims (the cluster's default when unset). Fixed at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// Whether deleting the KafkaCluster deletes the claims (and with them the data), the
    /// managed etcd's included. Default false: the claims stay until deleted by hand.
    /// Deleting only the StatefulSet never deletes them.
    #[serde(default)]
    pub delete_claim: bool,
}

/// The Kafka listener (PLAINTEXT; TLS and SASL are not supported yet).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Listeners {
    /// Port brokers listen on, and the bootstrap Service's port.
    #[serde(default = "default_kafka_port")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 65535").message("port is a port number"))]
    #[x_kube(validation = Rule::new("self != 9095 && self != 9096 && self != 9097").message("9095 (HTTP), 9096 (admin gRPC) and 9097 (console) are the brokers' other ports"))]
    pub port: i32,
    /// The host each broker advertises to clients. `{pod}`, `{ordinal}`, `{namespace}`
    /// and `{cluster}` are replaced; default: the pod's stable DNS name,
    /// `{pod}.<cluster>-brokers.{namespace}.svc.<cluster domain>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9.{}-]+$')").message("advertisedHost is a host name, optionally with {pod}, {ordinal}, {namespace} or {cluster}"))]
    pub advertised_host: Option<String>,
    /// The port each broker advertises. Default: `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 65535").message("advertisedPort is a port number"))]
    pub advertised_port: Option<i32>,
}

impl Default for Listeners {
    fn default() -> Self {
        Listeners {
            port: DEFAULT_KAFKA_PORT,
            advertised_host: None,
            advertised_port: None,
        }
    }
}

fn default_kafka_port() -> i32 {
    DEFAULT_KAFKA_PORT
}

/// The web console every broker serves on port 9097, behind the bootstrap Service.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Console {
    /// Serve the console. Default true.
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// Hide and refuse the console's actions (creating topics, changing configs,
    /// resetting offsets, deleting records or groups). Default **true** here, unlike a
    /// broker run by hand: the console has no authentication yet, and anything in the
    /// Kubernetes cluster that reaches the Service could otherwise change the cluster.
    #[serde(default = "enabled_by_default")]
    pub read_only: bool,
    /// Host header values (host or host:port) the console answers besides `localhost`
    /// (`kubectl port-forward`) and the bootstrap Service's names, which are always
    /// allowed (`<cluster>-bootstrap`, with `.<namespace>`, `.<namespace>.svc` and the
    /// full name, each with and without `:9097`); any other Host gets 421, against DNS
    /// rebinding. List here the names an Ingress or a proxy in front of the console uses.
    #[serde(default)]
    #[schemars(length(max = 64), inner(length(min = 1, max = 253)))]
    #[x_kube(validation = Rule::new(r"self.all(h, !h.matches('[\\s,]'))").message("allowedHosts entries are host or host:port, without whitespace or commas"))]
    pub allowed_hosts: Vec<String>,
}

impl Default for Console {
    fn default() -> Self {
        Console {
            enabled: true,
            read_only: true,
            allowed_hosts: Vec::new(),
        }
    }
}

fn enabled_by_default() -> bool {
    true
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rack {
    /// The node label whose value becomes `broker.rack`.
    #[serde(default = "default_topology_key")]
    pub topology_key: String,
}

fn default_topology_key() -> String {
    DEFAULT_TOPOLOGY_KEY.to_string()
}

/// Either the endpoints of an etcd that exists, or an etcd the operator runs.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("has(self.endpoints) != has(self.managed)").message("set exactly one of etcd.endpoints and etcd.managed"))]
// Brokers restarted onto another store would find it empty: the store is fixed.
#[x_kube(validation = Rule::new("has(self.endpoints) == has(oldSelf.endpoints) && (!has(self.endpoints) || self.endpoints == oldSelf.endpoints)").message("the cluster's etcd cannot change (brokers would restart onto a store without their metadata)"))]
#[serde(rename_all = "camelCase")]
pub struct Etcd {
    /// Client URLs (http://host:port) of an existing etcd 3.5 or later. Run it with
    /// auto-compaction on: etcd otherwise keeps every revision until its quota fills.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("size(self) >= 1").message("etcd.endpoints needs at least one URL"))]
    #[x_kube(validation = Rule::new("self.all(u, u.startsWith('http://'))").message("etcd endpoints are http:// URLs (TLS is not supported yet)"))]
    pub endpoints: Option<Vec<String>>,
    /// An etcd of 1 or 3 members the operator runs beside the brokers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<ManagedEtcd>,
}

/// A static etcd cluster with revision auto-compaction; its size cannot change.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ManagedEtcd {
    #[x_kube(validation = Rule::new("self == 1 || self == 3").message("a managed etcd has 1 or 3 members"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("the managed etcd's member count cannot change (v1alpha1 does not resize etcd)"))]
    pub members: i32,
    #[serde(default = "default_etcd_image")]
    pub image: String,
    #[x_kube(validation = Rule::new("self == oldSelf").message("the managed etcd's storage cannot change (v1alpha1)"))]
    pub storage: EtcdStorage,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

/// The managed etcd's volumes. Their claims follow `storage.deleteClaim`: the brokers'
/// data and the metadata that describes it are kept or deleted together (a cluster
/// re-created over metadata whose data was deleted would name partitions no disk holds).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EtcdStorage {
    /// Size of each member's volume.
    pub size: Quantity,
    /// StorageClass of the claims (the cluster's default when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
}

fn default_etcd_image() -> String {
    DEFAULT_ETCD_IMAGE.to_string()
}

/// What the operator observed. `replicas` is the number of broker pods that exist, which
/// stays above `spec.replicas` while a scale-down is refused.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaClusterStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    #[serde(default)]
    pub replicas: i32,
    #[serde(default)]
    pub ready_replicas: i32,
    /// The broker pods' label selector (the scale subresource's, for an HPA).
    #[serde(default)]
    pub label_selector: String,
    /// host:port for clients' bootstrap.servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<String>,
    /// The controller's broker id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<i32>,
    #[serde(default)]
    pub brokers: Vec<BrokerStatus>,
    #[serde(default)]
    pub partitions: i32,
    #[serde(default)]
    pub under_replicated_partitions: i32,
    #[serde(default)]
    pub offline_partitions: i32,
    /// The storage size the claims were last expanded to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_size: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roll: Option<RollStatus>,
    /// The web console's address inside the Kubernetes cluster (absent when
    /// `spec.console.enabled` is false); from outside, `kubectl port-forward
    /// svc/<cluster>-bootstrap 9097` and http://localhost:9097/ui.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BrokerStatus {
    pub id: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// `live` while registered in the metadata store, `absent` otherwise.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<String>,
    /// Partitions this broker holds a replica of.
    pub partitions: i32,
    /// Partitions this broker leads.
    pub leaders: i32,
}

/// A rolling restart the operator paces: one broker at a time, highest ordinal first.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RollStatus {
    /// The StatefulSet revision the brokers are being moved to.
    pub revision: String,
    /// Brokers already on it.
    pub done: i32,
    /// Brokers in the cluster.
    pub total: i32,
    /// The broker restarted last (or being restarted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<i32>,
    /// That broker's registration epoch before its restart: the roll goes on only once
    /// the watch stream shows a newer one (the stream can lag the pod's readiness).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_epoch: Option<i64>,
    /// What the roll waits for before the next restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<String>,
}
