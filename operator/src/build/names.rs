//! Names, labels and addresses of everything the operator creates for one KafkaCluster,
//! in one place so builders, reconcile and tests agree on them.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::Resource;

use crate::crd::KafkaCluster;

/// The broker's HTTP port (/healthz, /readyz, /metrics).
pub const HTTP_PORT: i32 = 9095;
/// The broker's gRPC admin/watch port.
pub const ADMIN_PORT: i32 = 9096;
/// The broker's web console port (`spec.console`).
pub const CONSOLE_PORT: i32 = 9097;
pub const ETCD_CLIENT_PORT: i32 = 2379;
pub const ETCD_PEER_PORT: i32 = 2380;
/// Set by the StatefulSet controller on every pod (Kubernetes 1.28 and later).
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
/// Pod template annotation: a hash of server.properties, so a config change rolls.
pub const CONFIG_HASH_ANNOTATION: &str = "runnel.dev/config-hash";
pub const MANAGED_BY: &str = "runnel-operator";

/// What a broker pod or an etcd member is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Broker,
    Etcd,
}

impl Component {
    fn label(self) -> &'static str {
        match self {
            Component::Broker => "broker",
            Component::Etcd => "etcd",
        }
    }
}

/// The names of one cluster's objects.
#[derive(Debug, Clone)]
pub struct Names {
    pub cluster: String,
    pub namespace: String,
    /// The Kubernetes cluster's DNS domain (`cluster.local`).
    pub domain: String,
}

impl Names {
    pub fn new(cluster: &str, namespace: &str, domain: &str) -> Names {
        Names {
            cluster: cluster.to_string(),
            namespace: namespace.to_string(),
            domain: domain.to_string(),
        }
    }

    pub fn statefulset(&self) -> String {
        self.cluster.clone()
    }

    pub fn headless(&self) -> String {
        format!("{}-brokers", self.cluster)
    }

    pub fn bootstrap(&self) -> String {
        format!("{}-bootstrap", self.cluster)
    }

    /// The ConfigMap of one server.properties, named by its content hash: a pod keeps the
    /// file it started with until the roll replaces the pod (a ConfigMap updated in place
    /// would reach a broker that restarts for any other reason first).
    pub fn config_map(&self, config_hash: &str) -> String {
        format!("{}-config-{config_hash}", self.cluster)
    }

    /// Whether `name` is one of this cluster's server.properties ConfigMaps, including
    /// the single in-place one operators before content naming wrote.
    pub fn is_config_map(&self, name: &str) -> bool {
        let base = format!("{}-config", self.cluster);
        let hashed = |hash: &str| !hash.is_empty() && hash.bytes().all(|b| b.is_ascii_hexdigit());
        name.strip_prefix(&base)
            .is_some_and(|rest| rest.is_empty() || rest.strip_prefix('-').is_some_and(hashed))
    }

    /// The ConfigMap of each broker pod's node and rack, which the operator writes and
    /// the pods' init container reads.
    pub fn racks(&self) -> String {
        format!("{}-racks", self.cluster)
    }

    pub fn service_account(&self) -> String {
        format!("{}-broker", self.cluster)
    }

    pub fn etcd(&self) -> String {
        format!("{}-etcd", self.cluster)
    }

    pub fn pod(&self, ordinal: i32) -> String {
        format!("{}-{ordinal}", self.statefulset())
    }

    /// Whether `name` is the data claim of one of this cluster's brokers or managed etcd
    /// members.
    pub fn is_data_claim(&self, name: &str) -> bool {
        let of = |set: String| {
            name.strip_prefix(&format!("data-{set}-"))
                .is_some_and(|ordinal| ordinal.parse::<u32>().is_ok())
        };
        of(self.statefulset()) || of(self.etcd())
    }

    /// The claim the StatefulSet makes for a broker from its `data` template.
    pub fn data_claim(&self, ordinal: i32) -> String {
        format!("data-{}", self.pod(ordinal))
    }

    /// Every name a Service answers to in the cluster's DNS, shortest first: `svc`,
    /// `svc.ns`, `svc.ns.svc` (the search path completes these) and the full name.
    pub fn service_names(&self, service: &str) -> [String; 4] {
        [
            service.to_string(),
            format!("{service}.{}", self.namespace),
            format!("{service}.{}.svc", self.namespace),
            self.service_host(service),
        ]
    }

    fn service_host(&self, service: &str) -> String {
        format!("{service}.{}.svc.{}", self.namespace, self.domain)
    }

    /// A broker pod's stable DNS name under the headless Service.
    pub fn pod_host(&self, ordinal: i32) -> String {
        self.service_host(&format!("{}.{}", self.pod(ordinal), self.headless()))
    }

    pub fn bootstrap_address(&self, port: i32) -> String {
        format!("{}:{port}", self.service_host(&self.bootstrap()))
    }

    /// The console's page through the bootstrap Service.
    pub fn console_url(&self) -> String {
        format!("http://{}/ui", self.bootstrap_address(CONSOLE_PORT))
    }

    /// Where the operator reaches the cluster's admin/watch service.
    pub fn admin_url(&self) -> String {
        format!(
            "http://{}:{ADMIN_PORT}",
            self.service_host(&self.bootstrap())
        )
    }

    pub fn etcd_member(&self, ordinal: i32) -> String {
        format!("{}-{ordinal}", self.etcd())
    }

    pub fn etcd_member_host(&self, ordinal: i32) -> String {
        self.service_host(&format!("{}.{}", self.etcd_member(ordinal), self.etcd()))
    }

    pub fn etcd_client_urls(&self, members: i32) -> Vec<String> {
        (0..members)
            .map(|i| format!("http://{}:{ETCD_CLIENT_PORT}", self.etcd_member_host(i)))
            .collect()
    }

    /// The cluster's key prefix in etcd: unique per namespace and name, so several
    /// clusters can share one etcd.
    pub fn etcd_prefix(&self) -> String {
        format!("/runnel/{}/{}/", self.namespace, self.cluster)
    }

    /// Labels that select one component's pods (stable: a StatefulSet's selector is
    /// immutable).
    pub fn selector(&self, component: Component) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app.kubernetes.io/name".to_string(), "runnel".to_string()),
            (
                "app.kubernetes.io/instance".to_string(),
                self.cluster.clone(),
            ),
            (
                "app.kubernetes.io/component".to_string(),
                component.label().to_string(),
            ),
        ])
    }

    /// Every labelled object of the cluster, brokers' and etcd's alike.
    pub fn instance_selector_string(&self) -> String {
        format!(
            "app.kubernetes.io/instance={},app.kubernetes.io/name=runnel",
            self.cluster
        )
    }

    /// The selector as `kubectl -l` and the scale subresource write it.
    pub fn selector_string(&self, component: Component) -> String {
        self.selector(component)
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn label_selector(&self, component: Component) -> LabelSelector {
        LabelSelector {
            match_labels: Some(self.selector(component)),
            ..LabelSelector::default()
        }
    }

    /// Labels of every object: the selector plus who manages it.
    pub fn labels(&self, component: Component) -> BTreeMap<String, String> {
        let mut labels = self.selector(component);
        labels.insert(
            "app.kubernetes.io/managed-by".to_string(),
            MANAGED_BY.to_string(),
        );
        labels
    }
}

/// Metadata of an object owned (and garbage-collected with) the cluster.
pub fn owned_meta(
    cluster: &KafkaCluster,
    names: &Names,
    name: String,
    component: Component,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(names.namespace.clone()),
        labels: Some(names.labels(component)),
        owner_references: owner_reference(cluster).map(|r| vec![r]),
        ..ObjectMeta::default()
    }
}

/// The controller reference to the cluster (none for an object the API has not stored,
/// which has no uid yet).
pub fn owner_reference(cluster: &KafkaCluster) -> Option<OwnerReference> {
    let mut reference = cluster.controller_owner_ref(&())?;
    reference.block_owner_deletion = Some(true);
    Some(reference)
}

/// A 64-bit FNV-1a hash in hex: stable across Rust versions (std's hasher is not), so an
/// operator upgrade never changes a pod template and restarts brokers.
pub fn stable_hash(bytes: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_addresses_follow_the_cluster() {
        let names = Names::new("demo", "kafka", "cluster.local");
        assert_eq!(names.pod(2), "demo-2");
        assert_eq!(
            names.pod_host(2),
            "demo-2.demo-brokers.kafka.svc.cluster.local"
        );
        assert_eq!(
            names.bootstrap_address(9092),
            "demo-bootstrap.kafka.svc.cluster.local:9092"
        );
        assert_eq!(
            names.etcd_client_urls(3)[2],
            "http://demo-etcd-2.demo-etcd.kafka.svc.cluster.local:2379"
        );
        assert_eq!(names.etcd_prefix(), "/runnel/kafka/demo/");
        assert_eq!(
            names.service_names("demo-bootstrap"),
            [
                "demo-bootstrap",
                "demo-bootstrap.kafka",
                "demo-bootstrap.kafka.svc",
                "demo-bootstrap.kafka.svc.cluster.local"
            ]
        );
        assert_eq!(
            names.console_url(),
            "http://demo-bootstrap.kafka.svc.cluster.local:9097/ui"
        );
        assert_eq!(
            names.selector_string(Component::Broker),
            "app.kubernetes.io/component=broker,app.kubernetes.io/instance=demo,app.kubernetes.io/name=runnel"
        );
        assert_eq!(names.data_claim(1), "data-demo-1");
        assert_eq!(names.config_map("00ff"), "demo-config-00ff");
        assert!(names.is_config_map("demo-config-00ff"));
        assert!(names.is_config_map("demo-config"));
        assert!(!names.is_config_map("demo-racks"));
        assert!(!names.is_config_map("demo-config-extra"));
        assert!(!names.is_config_map("demo-config-"));
        assert!(names.is_data_claim("data-demo-3"));
        assert!(names.is_data_claim("data-demo-etcd-0"));
        assert!(!names.is_data_claim("data-demo-x"));
        assert!(!names.is_data_claim("data-other-0"));
    }

    #[test]
    fn the_hash_is_fnv1a() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(stable_hash(b""), "cbf29ce484222325");
        assert_eq!(stable_hash(b"a"), "af63dc4c8601ec8c");
    }
}
