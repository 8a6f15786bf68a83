//! Rack awareness. The downward API cannot show a node's labels, so the operator reads
//! the zone of each broker pod's node and writes it into a ConfigMap; the pod's init
//! container (`runnel-operator rack`) waits for its own entry and writes
//! `broker.rack` for the broker. The brokers' ServiceAccount may read that one ConfigMap
//! and nothing else: no broker can read nodes, and everything here is namespaced and
//! garbage-collected with the cluster (no ClusterRoleBinding, no finalizer).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};

use super::names::{owned_meta, Component, Names};
use crate::crd::KafkaCluster;

/// One broker pod's entry: the node it was placed on and that node's rack. The node is
/// in the entry so a pod rescheduled elsewhere never takes its previous node's rack.
pub fn entry(node: &str, rack: &str) -> String {
    format!("{node}={rack}")
}

/// The rack of `entry` if it was written for `node`.
pub fn rack_for<'a>(entry: &'a str, node: &str) -> Option<&'a str> {
    let (for_node, rack) = entry.split_once('=')?;
    (for_node == node).then_some(rack)
}

/// pod name -> entry.
pub fn racks_config_map(
    cluster: &KafkaCluster,
    names: &Names,
    entries: BTreeMap<String, String>,
) -> ConfigMap {
    ConfigMap {
        metadata: owned_meta(cluster, names, names.racks(), Component::Broker),
        data: Some(entries),
        ..ConfigMap::default()
    }
}

pub fn service_account(cluster: &KafkaCluster, names: &Names) -> ServiceAccount {
    ServiceAccount {
        metadata: owned_meta(cluster, names, names.service_account(), Component::Broker),
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    }
}

pub fn role(cluster: &KafkaCluster, names: &Names) -> Role {
    Role {
        metadata: owned_meta(cluster, names, names.service_account(), Component::Broker),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["configmaps".to_string()]),
            resource_names: Some(vec![names.racks()]),
            verbs: vec!["get".to_string()],
            ..PolicyRule::default()
        }]),
    }
}

pub fn role_binding(cluster: &KafkaCluster, names: &Names) -> RoleBinding {
    RoleBinding {
        metadata: owned_meta(cluster, names, names.service_account(), Component::Broker),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_string(),
            kind: "Role".to_string(),
            name: names.service_account(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_string(),
            name: names.service_account(),
            namespace: Some(names.namespace.clone()),
            ..Subject::default()
        }]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::testing::{cluster, names};

    #[test]
    fn an_entry_is_only_good_for_its_node() {
        let e = entry("node-1", "zone-b");
        assert_eq!(rack_for(&e, "node-1"), Some("zone-b"));
        assert_eq!(rack_for(&e, "node-2"), None);
        assert_eq!(rack_for(&entry("node-1", ""), "node-1"), Some(""));
        assert_eq!(rack_for("garbage", "node-1"), None);
    }

    #[test]
    fn brokers_may_read_their_rack_map_and_nothing_else() {
        let kc = cluster("demo", 3);
        let role = role(&kc, &names());
        let rules = role.rules.unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].verbs, ["get"]);
        assert_eq!(
            rules[0].resource_names,
            Some(vec!["demo-racks".to_string()])
        );
        let binding = role_binding(&kc, &names());
        assert_eq!(binding.role_ref.name, "demo-broker");
        assert_eq!(binding.subjects.unwrap()[0].name, "demo-broker");
        // The token is mounted only into pods that need it (the rack init container).
        assert_eq!(
            service_account(&kc, &names()).automount_service_account_token,
            Some(false)
        );
    }
}
