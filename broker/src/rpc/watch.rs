//! The watch stream: brokers and partitions as the broker's metadata shows them, first a
//! snapshot, then what changed with each new image, in revision order. Built from the
//! broker's own cache, so watchers cost etcd nothing and need no credentials.

use std::collections::BTreeMap;

use super::proto;
use crate::metadata::cache::{LiveBroker, MetadataImage};
use crate::metadata::schema::PartitionRecord;

/// A broker as the admin API shows it.
pub fn broker(id: i32, live: &LiveBroker) -> proto::Broker {
    proto::Broker {
        id,
        rack: live.registration.rack.clone().unwrap_or_default(),
        state: "live".into(),
        epoch: live.epoch,
        endpoints: live
            .registration
            .endpoints
            .iter()
            .map(|e| proto::Endpoint {
                listener: e.name.clone(),
                host: e.host.clone(),
                port: i32::from(e.port),
            })
            .collect(),
        admin_endpoint: live.registration.admin_endpoint.clone().unwrap_or_default(),
    }
}

/// A partition's state: under-replicated when its ISR is smaller than its replica set,
/// offline when it has no live leader.
pub fn partition(
    image: &MetadataImage,
    topic: &str,
    index: i32,
    record: &PartitionRecord,
) -> proto::Partition {
    let leader_live = record.leader >= 0 && image.brokers.contains_key(&record.leader);
    proto::Partition {
        topic: topic.to_string(),
        partition: index,
        leader: record.leader,
        leader_epoch: record.leader_epoch,
        replicas: record.replicas.clone(),
        isr: record.isr_brokers(),
        under_replicated: record.isr.len() < record.replicas.len(),
        offline: !leader_live,
    }
}

/// Every partition's state in `image`.
fn partitions(image: &MetadataImage) -> BTreeMap<(String, i32), proto::Partition> {
    image
        .partitions
        .iter()
        .flat_map(|(topic, ps)| {
            ps.iter().map(move |(index, record)| {
                (
                    (topic.clone(), *index),
                    partition(image, topic, *index, &record.value),
                )
            })
        })
        .collect()
}

fn controller(image: &MetadataImage) -> (i32, i64) {
    image.controller.map_or((-1, 0), |(id, epoch)| (id, epoch))
}

/// The first event of a stream: everything as of `image`.
pub fn snapshot(image: &MetadataImage) -> proto::WatchEvent {
    let (controller_id, controller_epoch) = controller(image);
    proto::WatchEvent {
        revision: image.revision,
        snapshot: true,
        brokers: image
            .brokers
            .iter()
            .map(|(id, live)| broker(*id, live))
            .collect(),
        brokers_gone: Vec::new(),
        partitions: partitions(image).into_values().collect(),
        topics_gone: Vec::new(),
        controller_id,
        controller_epoch,
    }
}

/// What changed from `old` to `new`, or `None` when nothing the stream carries did.
/// Partition states are compared as shown (a broker dying changes the `offline` flag of
/// the partitions it led, even before the controller rewrites their records).
pub fn changes(old: &MetadataImage, new: &MetadataImage) -> Option<proto::WatchEvent> {
    let brokers: Vec<proto::Broker> = new
        .brokers
        .iter()
        .filter(|(id, live)| old.brokers.get(id) != Some(live))
        .map(|(id, live)| broker(*id, live))
        .collect();
    let brokers_gone: Vec<i32> = old
        .brokers
        .keys()
        .filter(|id| !new.brokers.contains_key(id))
        .copied()
        .collect();
    let before = partitions(old);
    let partitions: Vec<proto::Partition> = partitions(new)
        .into_iter()
        .filter(|(key, state)| before.get(key) != Some(state))
        .map(|(_, state)| state)
        .collect();
    let topics_gone: Vec<String> = old
        .topics
        .keys()
        .filter(|t| !new.topics.contains_key(*t))
        .cloned()
        .collect();
    let (controller_id, controller_epoch) = controller(new);
    let controller_moved = controller(old) != (controller_id, controller_epoch);
    let nothing = brokers.is_empty()
        && brokers_gone.is_empty()
        && partitions.is_empty()
        && topics_gone.is_empty()
        && !controller_moved;
    (!nothing).then_some(proto::WatchEvent {
        revision: new.revision,
        snapshot: false,
        brokers,
        brokers_gone,
        partitions,
        topics_gone,
        controller_id,
        controller_epoch,
    })
}
