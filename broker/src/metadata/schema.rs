//! The cluster's metadata schema: every key the brokers and the controller use, and the
//! records stored under them (JSON). One prefix per cluster; `schema_version` says which
//! layout a store holds.
//!
//! ```text
//! <prefix>schema_version                 "1"
//! <prefix>cluster_id                     cluster id (Kafka's 22-character form)
//! <prefix>brokers/<id>                   BrokerRegistration, under the broker's lease;
//!                                        its create_revision is the broker epoch
//! <prefix>controller                     broker id of the controller, under its lease;
//!                                        its create_revision is the controller epoch
//! <prefix>topics/<name>                  TopicRecord (id, partition count, configs)
//! <prefix>partitions/<topic>/<partition> PartitionRecord (replicas, leader, epochs, ISR)
//! <prefix>producer_id_block              end of the last claimed producer-id block
//! <prefix>configs/brokers/<id|default>   dynamic broker configs (JSON map)
//! ```

use std::collections::BTreeMap;

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};

pub const SCHEMA_VERSION: &str = "1";

/// Key builders for one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// `prefix` must end with `/`.
    pub fn new(prefix: impl Into<String>) -> Keys {
        let mut prefix = prefix.into();
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        Keys { prefix }
    }

    /// The whole cluster: every key below is under it.
    pub fn root(&self) -> &str {
        &self.prefix
    }

    pub fn schema_version(&self) -> String {
        format!("{}schema_version", self.prefix)
    }

    pub fn cluster_id(&self) -> String {
        format!("{}cluster_id", self.prefix)
    }

    pub fn brokers(&self) -> String {
        format!("{}brokers/", self.prefix)
    }

    pub fn broker(&self, id: i32) -> String {
        format!("{}brokers/{id}", self.prefix)
    }

    pub fn controller(&self) -> String {
        format!("{}controller", self.prefix)
    }

    pub fn topics(&self) -> String {
        format!("{}topics/", self.prefix)
    }

    pub fn topic(&self, name: &str) -> String {
        format!("{}topics/{name}", self.prefix)
    }

    pub fn partitions(&self) -> String {
        format!("{}partitions/", self.prefix)
    }

    pub fn topic_partitions(&self, topic: &str) -> String {
        format!("{}partitions/{topic}/", self.prefix)
    }

    pub fn partition(&self, topic: &str, partition: i32) -> String {
        format!("{}partitions/{topic}/{partition}", self.prefix)
    }

    pub fn broker_configs(&self) -> String {
        format!("{}configs/brokers/", self.prefix)
    }

    /// Dynamic configs of broker `name` (a broker id, or `default` for every broker).
    pub fn broker_config(&self, name: &str) -> String {
        format!("{}configs/brokers/{name}", self.prefix)
    }

    /// The end of the last claimed producer-id block.
    pub fn producer_id_block(&self) -> String {
        format!("{}producer_id_block", self.prefix)
    }

    /// Classifies a key under this cluster's prefix.
    pub fn parse(&self, key: &str) -> Option<KeyKind> {
        let rest = key.strip_prefix(&self.prefix)?;
        if rest == "cluster_id" {
            return Some(KeyKind::ClusterId);
        }
        if rest == "controller" {
            return Some(KeyKind::Controller);
        }
        if let Some(id) = rest.strip_prefix("brokers/") {
            return id.parse().ok().map(KeyKind::Broker);
        }
        if let Some(name) = rest.strip_prefix("configs/brokers/") {
            return Some(KeyKind::BrokerConfig(name.to_string()));
        }
        if let Some(name) = rest.strip_prefix("topics/") {
            return Some(KeyKind::Topic(name.to_string()));
        }
        if let Some(tp) = rest.strip_prefix("partitions/") {
            let (topic, partition) = tp.rsplit_once('/')?;
            return Some(KeyKind::Partition(
                topic.to_string(),
                partition.parse().ok()?,
            ));
        }
        None
    }
}

/// What a key holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyKind {
    ClusterId,
    Controller,
    Broker(i32),
    Topic(String),
    Partition(String, i32),
    /// Dynamic configs of a broker id or of `default`.
    BrokerConfig(String),
}

/// An endpoint clients connect to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub name: String,
    pub host: String,
    pub port: u16,
}

/// A live broker, stored under its lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    pub id: i32,
    pub endpoints: Vec<Endpoint>,
    pub rack: Option<String>,
    /// host:port of the broker's admin gRPC service (absent in registrations written
    /// before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_endpoint: Option<String>,
    /// Set by a broker stopping on SIGTERM (controlled shutdown): the controller moves
    /// its leaderships to in-sync followers and takes it out of the ISRs before it goes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shutting_down: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRecord {
    pub id: Uuid,
    pub partitions: i32,
    pub replication_factor: i16,
    /// Topic-level overrides.
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
}

/// An ISR member: a broker in one incarnation (KIP-903: a rebooted broker with a new
/// epoch is not the member that was in sync).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IsrMember {
    pub broker: i32,
    pub broker_epoch: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRecord {
    pub replicas: Vec<i32>,
    /// The leader's broker id, -1 when offline.
    pub leader: i32,
    /// Bumped on every leadership change.
    pub leader_epoch: i32,
    pub isr: Vec<IsrMember>,
    /// Bumped on every change of this record.
    pub partition_epoch: i32,
}

impl PartitionRecord {
    pub fn isr_brokers(&self) -> Vec<i32> {
        self.isr.iter().map(|m| m.broker).collect()
    }
}

/// Encodes a record as the JSON stored at `key`.
pub fn encode<T: Serialize>(what: &'static str, key: &str, value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|source| Error::EncodeMetadata {
        what,
        key: key.to_string(),
        source,
    })
}

/// Decodes the JSON stored at `key`.
pub fn decode<T: DeserializeOwned>(what: &'static str, key: &str, raw: &[u8]) -> Result<T> {
    serde_json::from_slice(raw).map_err(|source| Error::DecodeMetadata {
        what,
        key: key.to_string(),
        source,
    })
}

pub use crate::ids::{invalid_topic_name, kafka_uuid_string, new_id, parse_kafka_uuid};

/// Kafka refuses topics whose names differ only in '.' versus '_' (metric names collide).
pub fn collision_key(name: &str) -> String {
    name.replace('.', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_back_to_what_they_hold() {
        let keys = Keys::new("/runnel/c1");
        assert_eq!(keys.parse(&keys.broker(3)), Some(KeyKind::Broker(3)));
        assert_eq!(
            keys.parse(&keys.partition("a/b-c", 7)),
            None.or(Some(KeyKind::Partition("a/b-c".into(), 7)))
        );
        assert_eq!(
            keys.parse(&keys.topic("orders")),
            Some(KeyKind::Topic("orders".into()))
        );
        assert_eq!(keys.parse("/other/topics/x"), None);
    }

    #[test]
    fn kafka_uuids_are_22_url_safe_characters() {
        let id = new_id();
        let text = kafka_uuid_string(id);
        assert_eq!(text.len(), 22);
        assert_eq!(parse_kafka_uuid(&text), Some(id));
        assert_eq!(parse_kafka_uuid("not a uuid"), None);
    }

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert_eq!(invalid_topic_name("orders.v1_x-y"), None);
        assert!(invalid_topic_name("").is_some());
        assert!(invalid_topic_name("..").is_some());
        assert!(invalid_topic_name("a b").is_some());
        assert!(invalid_topic_name("a/b").is_some());
        assert!(invalid_topic_name(&"x".repeat(250)).is_some());
        assert_eq!(collision_key("a.b"), collision_key("a_b"));
    }
}
