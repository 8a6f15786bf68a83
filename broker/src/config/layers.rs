//! The broker configuration as it applies at a moment: dynamic configs from the metadata
//! store (this broker's, then the cluster-wide default) over the static configuration
//! (file, environment, flags) over the defaults. DescribeConfigs reports the layer each
//! value comes from, with Kafka's `config_source` codes.

use std::collections::BTreeMap;

use super::defs::{broker_key, TOPIC_KEYS};
use super::{Config, Source};

/// Where a broker key's effective value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerSource {
    /// Set dynamically for this broker.
    DynamicBroker,
    /// Set dynamically for every broker (the cluster default).
    DynamicDefault,
    /// Set in the file, the environment or on the command line.
    Static,
    /// The key's default.
    Default,
}

impl BrokerSource {
    /// Kafka's `ConfigSource` code.
    pub fn kafka_code(self) -> i8 {
        match self {
            BrokerSource::DynamicBroker => 2,
            BrokerSource::DynamicDefault => 3,
            BrokerSource::Static => 4,
            BrokerSource::Default => 5,
        }
    }
}

/// The name under which the cluster-wide dynamic broker configs are stored.
pub const CLUSTER_DEFAULT: &str = "default";

/// Broker keys that can change at runtime: the cluster-wide defaults of topic keys.
pub fn is_dynamic(key: &str) -> bool {
    TOPIC_KEYS.iter().any(|t| t.broker_synonym == Some(key))
}

/// The layered broker configuration.
#[derive(Debug, Clone, Copy)]
pub struct BrokerView<'a> {
    pub config: &'a Config,
    /// Dynamic configs of this broker.
    pub per_broker: Option<&'a BTreeMap<String, String>>,
    /// Dynamic configs of every broker.
    pub cluster: Option<&'a BTreeMap<String, String>>,
}

impl<'a> BrokerView<'a> {
    /// The static configuration alone (no dynamic configs known yet).
    pub fn static_only(config: &'a Config) -> BrokerView<'a> {
        BrokerView {
            config,
            per_broker: None,
            cluster: None,
        }
    }

    /// Every layer that sets `key`, most specific first.
    pub fn layers(&self, key: &str) -> Vec<(String, BrokerSource)> {
        let mut found = Vec::new();
        if let Some(v) = self.per_broker.and_then(|m| m.get(key)) {
            found.push((v.clone(), BrokerSource::DynamicBroker));
        }
        if let Some(v) = self.cluster.and_then(|m| m.get(key)) {
            found.push((v.clone(), BrokerSource::DynamicDefault));
        }
        match self.config.value_with_source(key) {
            Some((v, Source::Default)) => found.push((v.to_string(), BrokerSource::Default)),
            Some((v, _)) => {
                found.push((v.to_string(), BrokerSource::Static));
                if let Some(d) = broker_key(key).and_then(|k| k.default) {
                    found.push((d.to_string(), BrokerSource::Default));
                }
            }
            None => {}
        }
        found
    }

    /// The effective value of `key` and where it comes from.
    pub fn value(&self, key: &str) -> Option<(String, BrokerSource)> {
        self.layers(key).into_iter().next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_layers_win_over_static_ones_in_order() {
        let config = Config::from_pairs([("log.segment.bytes", "1000000000")]).unwrap();
        let cluster: BTreeMap<String, String> =
            [("log.segment.bytes".to_string(), "2000000000".to_string())].into();
        let broker: BTreeMap<String, String> =
            [("log.segment.bytes".to_string(), "1500000000".to_string())].into();
        let view = BrokerView {
            config: &config,
            per_broker: Some(&broker),
            cluster: Some(&cluster),
        };
        let layers: Vec<BrokerSource> = view
            .layers("log.segment.bytes")
            .into_iter()
            .map(|l| l.1)
            .collect();
        assert_eq!(
            layers,
            [
                BrokerSource::DynamicBroker,
                BrokerSource::DynamicDefault,
                BrokerSource::Static,
                BrokerSource::Default
            ]
        );
        assert_eq!(view.value("log.segment.bytes").unwrap().0, "1500000000");
        assert_eq!(
            BrokerView::static_only(&config)
                .value("log.segment.bytes")
                .unwrap()
                .0,
            "1000000000"
        );
        assert!(is_dynamic("log.retention.ms"));
        assert!(!is_dynamic("listeners"));
    }
}
