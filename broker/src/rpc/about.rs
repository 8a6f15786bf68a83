//! DescribeBroker's answer: this broker's build, start time and per-topic traffic.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::proto;
use crate::partition::manager::ReplicaManager;

#[derive(Debug)]
pub struct BrokerAbout {
    pub broker_id: i32,
    pub started_at_ms: i64,
    pub replicas: Arc<ReplicaManager>,
}

impl BrokerAbout {
    pub fn describe(&self) -> proto::DescribeBrokerResponse {
        let mut topics: BTreeMap<String, proto::TopicTraffic> = BTreeMap::new();
        for p in self.replicas.all() {
            let entry = topics
                .entry(p.topic.to_string())
                .or_insert_with(|| proto::TopicTraffic {
                    topic: p.topic.to_string(),
                    ..Default::default()
                });
            entry.bytes_in += p.bytes_in.load(Ordering::Relaxed);
            entry.bytes_out += p.bytes_out.load(Ordering::Relaxed);
            entry.messages_in += p.messages_in.load(Ordering::Relaxed);
        }
        proto::DescribeBrokerResponse {
            broker_id: self.broker_id,
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at_ms: self.started_at_ms,
            topics: topics.into_values().collect(),
        }
    }
}
