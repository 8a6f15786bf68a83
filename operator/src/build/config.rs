//! The brokers' `server.properties`: the user's `spec.config` checked by the broker's own
//! key table, plus what the operator sets for every broker of the cluster. Per-broker
//! values (id, listeners, rack) are not in it: they come as flags and the downward API.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use runnel_config_keys::{
    broker_key, check_value, is_internal, BROKER_ALIASES, IGNORED_KAFKA_KEYS, REPLACED_KAFKA_KEYS,
};

use super::console;
use super::names::{owned_meta, stable_hash, Component, Names};
use crate::crd::KafkaCluster;

/// Keys the operator owns: a value in `spec.config` would fight the pods' wiring.
const OPERATOR_KEYS: &[(&str, &str)] = &[
    ("broker.id", "the pod's ordinal"),
    ("listeners", "spec.listeners"),
    ("advertised.listeners", "spec.listeners.advertisedHost"),
    ("broker.rack", "spec.rack"),
    ("log.dirs", "spec.storage"),
    ("metadata.log.dir", "spec.storage"),
    ("cluster.name", "the KafkaCluster's name"),
    ("etcd.endpoints", "spec.etcd"),
    ("etcd.prefix", "the KafkaCluster's namespace and name"),
    ("http.listener", "the operator (port 9095 on the pod IP)"),
    ("admin.listener", "the operator (port 9096 on the pod IP)"),
    (
        "admin.advertised.listener",
        "the operator (the pod's DNS name)",
    ),
    ("console.enable", "spec.console.enabled"),
    (
        "console.listener",
        "the operator (port 9097 on every interface of the pod)",
    ),
    (
        "console.allowed.hosts",
        "spec.console.allowedHosts and the bootstrap Service's names",
    ),
    ("console.read.only", "spec.console.readOnly"),
];

/// Defaults an operator-managed cluster gets unless `spec.config` sets the key.
/// Auto-creation is off: with Topic resources it would race adoption, and a typo in a
/// producer's topic name should not create a topic.
const OPERATOR_DEFAULTS: &[(&str, &str)] = &[("auto.create.topics.enable", "false")];

/// Why a `spec.config` entry is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("spec.config[{key:?}]: {reason}")]
pub struct InvalidConfig {
    pub key: String,
    pub reason: String,
}

/// Checks every key and value of `spec.config` by the broker's rules, returning every
/// problem (not just the first) so one condition names them all.
pub fn check(config: &BTreeMap<String, String>) -> Vec<InvalidConfig> {
    let mut problems = Vec::new();
    for (key, value) in config {
        let canonical = BROKER_ALIASES
            .iter()
            .find(|(alias, _)| *alias == key.as_str())
            .map_or(key.as_str(), |(_, name)| name);
        let refuse = |reason: String| InvalidConfig {
            key: key.clone(),
            reason,
        };
        if let Some((_, owner)) = OPERATOR_KEYS.iter().find(|(k, _)| *k == canonical) {
            problems.push(refuse(format!("set by the operator from {owner}")));
        } else if let Some((_, runnel)) =
            REPLACED_KAFKA_KEYS.iter().find(|(k, _)| *k == key.as_str())
        {
            problems.push(refuse(format!(
                "has no effect in Runnel; {runnel} replaces it (spec.etcd)"
            )));
        } else if IGNORED_KAFKA_KEYS.contains(&key.as_str()) {
            problems.push(refuse("has no effect in Runnel".to_string()));
        } else if is_internal(key) {
            problems.push(refuse("is an internal test key".to_string()));
        } else if value.contains(['\n', '\r']) {
            problems.push(refuse("a value cannot contain a line break".to_string()));
        } else if let Some(def) = broker_key(canonical) {
            if let Err(reason) = check_value(def.kind, value) {
                problems.push(refuse(format!("{value:?}: {reason}")));
            }
        } else {
            problems.push(refuse(
                "is not a Runnel broker configuration key".to_string(),
            ));
        }
    }
    problems
}

/// A value of the effective config: `spec.config` over the operator's defaults.
pub fn value<'a>(cluster: &'a KafkaCluster, key: &str) -> Option<&'a str> {
    cluster
        .spec
        .config
        .get(key)
        .map(String::as_str)
        .or_else(|| {
            OPERATOR_DEFAULTS
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| *v)
        })
}

/// The text of server.properties (keys sorted, so equal specs give equal files).
pub fn server_properties(
    cluster: &KafkaCluster,
    names: &Names,
    etcd_endpoints: &[String],
) -> String {
    let mut out = format!(
        "# Written by runnel-operator for KafkaCluster {}/{}; edit spec.config instead.\n\
         # broker.id, listeners, broker.rack and log.dirs come per pod as flags.\n",
        names.namespace, names.cluster
    );
    let endpoints = etcd_endpoints.join(",");
    let prefix = names.etcd_prefix();
    let console = console::properties(&cluster.spec.console, names);
    let mut keys: BTreeMap<&str, &str> = BTreeMap::new();
    keys.insert("cluster.name", &names.cluster);
    keys.insert("etcd.endpoints", &endpoints);
    keys.insert("etcd.prefix", &prefix);
    for (key, value) in &console {
        keys.insert(key, value);
    }
    for (key, default) in OPERATOR_DEFAULTS {
        keys.insert(key, default);
    }
    for (key, value) in &cluster.spec.config {
        keys.insert(key, value);
    }
    for (key, value) in keys {
        out.push_str(&format!("{}={}\n", escape(key), escape(value)));
    }
    out
}

/// Escapes backslashes, the one character the broker's `.properties` reader would
/// otherwise take as syntax inside a value (line breaks are refused by `check`; the first
/// `=` or `:` separates the key, which never contains one).
fn escape(text: &str) -> String {
    text.replace('\\', "\\\\")
}

/// The hash that names a server.properties' ConfigMap and marks the pod template.
pub fn config_hash(properties: &str) -> String {
    stable_hash(properties.as_bytes())
}

/// One server.properties, named by its hash and immutable: a changed config is a new
/// ConfigMap, which only pods the roll replaces (or new brokers) mount.
pub fn config_map(cluster: &KafkaCluster, names: &Names, properties: &str) -> ConfigMap {
    ConfigMap {
        metadata: owned_meta(
            cluster,
            names,
            names.config_map(&config_hash(properties)),
            Component::Broker,
        ),
        data: Some(BTreeMap::from([(
            "server.properties".to_string(),
            properties.to_string(),
        )])),
        immutable: Some(true),
        ..ConfigMap::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::testing::cluster;

    fn config(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn valid_keys_pass_and_every_problem_is_named() {
        assert!(check(&config(&[
            ("min.insync.replicas", "2"),
            ("log.retention.ms", "1000")
        ]))
        .is_empty());
        let problems = check(&config(&[
            ("min.insync.replicas", "zero"),
            ("broker.id", "3"),
            ("node.id", "3"),
            ("zookeeper.connect", "zk:2181"),
            ("num.network.threads", "8"),
            ("no.such.key", "1"),
            ("log.flush.mode", "sometimes"),
            ("console.read.only", "false"),
        ]));
        let named: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            named,
            [
                "broker.id",
                "console.read.only",
                "log.flush.mode",
                "min.insync.replicas",
                "no.such.key",
                "node.id",
                "num.network.threads",
                "zookeeper.connect"
            ]
        );
        assert!(problems[0].reason.contains("set by the operator"));
        assert!(problems[1].reason.contains("spec.console.readOnly"));
        assert!(problems[3].reason.contains("expected an integer"));
        assert!(problems[7].reason.contains("etcd.endpoints"));
        // The console's other keys are the user's to set.
        assert!(check(&config(&[("console.history.points", "720")])).is_empty());
    }

    #[test]
    fn server_properties_holds_the_cluster_wiring_and_the_user_keys() {
        let mut kc = cluster("demo", 3);
        kc.spec.config = config(&[
            ("min.insync.replicas", "2"),
            ("auto.create.topics.enable", "true"),
        ]);
        let names = Names::new("demo", "kafka", "cluster.local");
        let text = server_properties(&kc, &names, &["http://etcd-0:2379".to_string()]);
        assert!(text.contains("cluster.name=demo\n"));
        assert!(text.contains("etcd.endpoints=http://etcd-0:2379\n"));
        assert!(text.contains("etcd.prefix=/runnel/kafka/demo/\n"));
        assert!(text.contains("min.insync.replicas=2\n"));
        // The user's value wins over the operator's default.
        assert!(text.contains("auto.create.topics.enable=true\n"));
        assert!(!text.contains("auto.create.topics.enable=false"));
        assert_eq!(value(&kc, "auto.create.topics.enable"), Some("true"));
        let plain = cluster("demo", 3);
        assert_eq!(value(&plain, "auto.create.topics.enable"), Some("false"));
        let cm = config_map(&kc, &names, &text);
        assert_eq!(
            cm.metadata.name,
            Some(format!("demo-config-{}", config_hash(&text)))
        );
        assert_eq!(cm.immutable, Some(true));
        assert_ne!(
            config_hash(&text),
            config_hash(&server_properties(&plain, &names, &[]))
        );
        assert_eq!(cm.metadata.owner_references.as_ref().map(Vec::len), Some(1));
    }

    #[test]
    fn server_properties_carries_the_console_and_disabling_it_changes_the_hash() {
        let names = Names::new("demo", "kafka", "cluster.local");
        let mut kc = cluster("demo", 3);
        kc.spec.console.allowed_hosts = vec!["console.example.com".to_string()];
        let on = server_properties(&kc, &names, &[]);
        assert!(on.contains("console.enable=true\n"));
        assert!(on.contains("console.read.only=true\n"));
        assert!(on.contains(
            "console.allowed.hosts=demo-bootstrap:9097,demo-bootstrap,demo-bootstrap.kafka:9097,\
             demo-bootstrap.kafka,demo-bootstrap.kafka.svc:9097,demo-bootstrap.kafka.svc,\
             demo-bootstrap.kafka.svc.cluster.local:9097,demo-bootstrap.kafka.svc.cluster.local,\
             console.example.com\n"
        ));
        // Per pod, as a flag.
        assert!(!on.contains("console.listener"));

        kc.spec.console.enabled = false;
        let off = server_properties(&kc, &names, &[]);
        assert!(off.contains("console.enable=false\n"));
        assert!(!off.contains("console.allowed.hosts") && !off.contains("console.read.only"));
        assert_ne!(config_hash(&on), config_hash(&off));
    }

    #[test]
    fn backslashes_survive_the_properties_format_and_line_breaks_are_refused() {
        assert_eq!(escape("a=b:c\\d"), "a=b:c\\\\d");
        assert_eq!(
            check(&config(&[("log.cleanup.policy", "delete\nx=1")])).len(),
            1
        );
    }
}
