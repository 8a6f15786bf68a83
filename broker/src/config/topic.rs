//! Topic-level configuration: a topic's overrides (stored with the topic in the metadata
//! store) resolved over the broker keys that supply their defaults.

use std::collections::BTreeMap;

use super::defs::{check_value, topic_key, TOPIC_KEYS};
use super::layers::{BrokerSource, BrokerView};
use super::Config;
use crate::log::partition_log::LogConfig;
use crate::records::validate::Limits;

/// A topic's effective settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicConfig {
    pub delete: bool,
    pub compact: bool,
    pub max_message_bytes: usize,
    pub segment_bytes: u64,
    pub segment_ms: i64,
    pub index_interval_bytes: u64,
    pub retention_ms: i64,
    pub retention_bytes: i64,
    pub min_insync_replicas: i32,
    pub log_append_time: bool,
    pub timestamp_before_max_ms: i64,
    pub timestamp_after_max_ms: i64,
    pub flush_messages: i64,
    pub flush_ms: i64,
    pub unclean_leader_election: bool,
    pub delete_retention_ms: i64,
    pub min_cleanable_ratio: f64,
    pub min_compaction_lag_ms: i64,
    pub max_compaction_lag_ms: i64,
}

/// Where a topic key's effective value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicSource {
    /// Set on the topic.
    Topic,
    /// Inherited from the broker key that supplies the default.
    Broker(BrokerSource),
    /// The key's own default (keys without a broker synonym).
    Default,
}

impl TopicSource {
    /// Kafka's `ConfigSource` code.
    pub fn kafka_code(self) -> i8 {
        match self {
            TopicSource::Topic => 1,
            TopicSource::Broker(source) => source.kafka_code(),
            TopicSource::Default => 5,
        }
    }
}

/// Every layer that sets topic key `key`, most specific first: the topic's override,
/// then the broker synonym's layers, then the key's own default.
pub fn layers(
    key: &str,
    overrides: &BTreeMap<String, String>,
    broker: &BrokerView<'_>,
) -> Vec<(String, String, TopicSource)> {
    let mut found = Vec::new();
    if let Some(v) = overrides.get(key) {
        found.push((key.to_string(), v.clone(), TopicSource::Topic));
    }
    let Some(def) = topic_key(key) else {
        return found;
    };
    match def.broker_synonym {
        Some(synonym) => {
            for (v, s) in broker.layers(synonym) {
                found.push((synonym.to_string(), v, TopicSource::Broker(s)));
            }
        }
        None => {
            if let Some(d) = def.default {
                found.push((key.to_string(), d.to_string(), TopicSource::Default));
            }
        }
    }
    found
}

/// The effective value of topic key `key` and its source.
pub fn effective(
    key: &str,
    overrides: &BTreeMap<String, String>,
    broker: &BrokerView<'_>,
) -> Option<(String, TopicSource)> {
    layers(key, overrides, broker)
        .into_iter()
        .next()
        .map(|(_, v, s)| (v, s))
}

/// Checks a set of topic overrides; the error names the key and says why.
pub fn validate_overrides(overrides: &BTreeMap<String, String>) -> Result<(), (String, String)> {
    for (key, value) in overrides {
        let Some(def) = topic_key(key) else {
            return Err((key.clone(), format!("unknown topic configuration {key}")));
        };
        check_value(def.kind, value).map_err(|reason| (key.clone(), reason))?;
        if !def.supported && Some(value.trim()) != def.default {
            return Err((
                key.clone(),
                format!("{key} is not supported by Runnel yet; only its default is accepted"),
            ));
        }
        if key == "cleanup.policy" {
            for policy in value.split(',').map(str::trim) {
                match policy {
                    "delete" => {}
                    "compact" => {}
                    other => {
                        return Err((key.clone(), format!("unknown cleanup policy {other:?}")))
                    }
                }
            }
        }
    }
    Ok(())
}

impl TopicConfig {
    /// Resolves `overrides` (already validated) over the broker configuration.
    pub fn resolve(overrides: &BTreeMap<String, String>, broker: &BrokerView<'_>) -> TopicConfig {
        let get = |key: &str| {
            effective(key, overrides, broker)
                .map(|(v, _)| v)
                .unwrap_or_default()
        };
        let long = |key: &str| get(key).trim().parse::<i64>().unwrap_or(0);
        let policy = get("cleanup.policy");
        TopicConfig {
            delete: policy.split(',').any(|p| p.trim() == "delete"),
            compact: policy.split(',').any(|p| p.trim() == "compact"),
            max_message_bytes: long("max.message.bytes").max(0) as usize,
            segment_bytes: match long("internal.segment.bytes") {
                internal if internal > 0 => internal as u64,
                _ => long("segment.bytes").max(1) as u64,
            },
            segment_ms: long("segment.ms").max(1),
            index_interval_bytes: long("index.interval.bytes").max(0) as u64,
            retention_ms: long("retention.ms"),
            retention_bytes: long("retention.bytes"),
            min_insync_replicas: long("min.insync.replicas").max(1) as i32,
            log_append_time: get("message.timestamp.type") == "LogAppendTime",
            timestamp_before_max_ms: long("message.timestamp.before.max.ms"),
            timestamp_after_max_ms: long("message.timestamp.after.max.ms"),
            flush_messages: long("flush.messages").max(1),
            flush_ms: long("flush.ms").max(0),
            unclean_leader_election: get("unclean.leader.election.enable") == "true",
            delete_retention_ms: long("delete.retention.ms").max(0),
            min_cleanable_ratio: get("min.cleanable.dirty.ratio")
                .trim()
                .parse::<f64>()
                .unwrap_or(0.5),
            min_compaction_lag_ms: long("min.compaction.lag.ms").max(0),
            max_compaction_lag_ms: long("max.compaction.lag.ms").max(1),
        }
    }

    /// The log's settings under this topic configuration.
    pub fn log_config(&self, broker: &Config) -> LogConfig {
        LogConfig {
            segment_bytes: self.segment_bytes,
            segment_ms: self.segment_ms,
            index_interval_bytes: self.index_interval_bytes,
            decompression_budget: broker.decompression_max_bytes,
        }
    }

    /// The rules produced batches are checked against at `now_ms`.
    pub fn limits(&self, broker: &Config, now_ms: i64) -> Limits {
        Limits {
            max_batch_bytes: self.max_message_bytes,
            max_decompressed_bytes: broker.decompression_max_bytes,
            timestamp_before_max_ms: self.timestamp_before_max_ms,
            timestamp_after_max_ms: self.timestamp_after_max_ms,
            create_time: !self.log_append_time,
            require_keys: self.compact,
            now_ms,
        }
    }
}

/// Every topic key with its effective value and source, in table order.
pub fn describe_all(
    overrides: &BTreeMap<String, String>,
    broker: &BrokerView<'_>,
) -> Vec<(&'static str, String, TopicSource)> {
    TOPIC_KEYS
        .iter()
        .filter_map(|k| effective(k.name, overrides, broker).map(|(v, s)| (k.name, v, s)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_win_and_broker_keys_supply_defaults() {
        let config = Config::from_pairs([
            ("log.segment.bytes", "2097152"),
            ("log.retention.hours", "2"),
        ])
        .unwrap();
        let broker = BrokerView::static_only(&config);
        let mut overrides = BTreeMap::new();
        overrides.insert("max.message.bytes".to_string(), "500".to_string());
        let topic = TopicConfig::resolve(&overrides, &broker);
        assert_eq!(topic.max_message_bytes, 500);
        assert_eq!(topic.segment_bytes, 2_097_152);
        assert_eq!(topic.retention_ms, 7_200_000);
        assert!(topic.delete && !topic.compact);
        assert_eq!(
            effective("segment.bytes", &overrides, &broker),
            Some((
                "2097152".to_string(),
                TopicSource::Broker(BrokerSource::Static)
            ))
        );
        assert_eq!(
            effective("max.message.bytes", &overrides, &broker).map(|e| e.1),
            Some(TopicSource::Topic)
        );
    }

    #[test]
    fn invalid_overrides_name_the_key() {
        let bad = |k: &str, v: &str| {
            let mut m = BTreeMap::new();
            m.insert(k.to_string(), v.to_string());
            validate_overrides(&m).unwrap_err().0
        };
        assert_eq!(bad("retention.ms", "soon"), "retention.ms");
        assert_eq!(bad("no.such.key", "1"), "no.such.key");
        assert_eq!(bad("cleanup.policy", "compress"), "cleanup.policy");
        assert_eq!(bad("preallocate", "true"), "preallocate");
        let mut ok = BTreeMap::new();
        ok.insert(
            "message.timestamp.type".to_string(),
            "LogAppendTime".to_string(),
        );
        assert!(validate_overrides(&ok).is_ok());
    }
}
