//! Where a refused partition's leader is now (KIP-951): Produce v10+ and Fetch v12+
//! answers to NOT_LEADER_OR_FOLLOWER and FENCED_LEADER_EPOCH carry the current leader
//! and its epoch (Produce also its endpoint), so a client can go there without first
//! asking for Metadata.

use proto_kafka::error::ResponseError;

use super::metadata::advertised_host;
use crate::metadata::cache::MetadataImage;
use crate::protocol::error_code::code;

/// Whether an error code means "the leader is elsewhere or newer".
pub fn points_elsewhere(error_code: i16) -> bool {
    error_code == code(ResponseError::NotLeaderOrFollower)
        || error_code == code(ResponseError::FencedLeaderEpoch)
}

/// The partition's current leader and epoch, if it has a live one.
pub fn current_leader(image: &MetadataImage, topic: &str, partition: i32) -> Option<(i32, i32)> {
    image
        .partition(topic, partition)
        .filter(|r| r.leader >= 0 && image.brokers.contains_key(&r.leader))
        .map(|r| (r.leader, r.leader_epoch))
}

/// A broker's endpoint on `listener`: (host, port, rack).
pub fn endpoint(
    image: &MetadataImage,
    broker: i32,
    listener: &str,
) -> Option<(String, i32, Option<String>)> {
    let live = image.brokers.get(&broker)?;
    let endpoint = live.endpoint(listener)?;
    Some((
        advertised_host(endpoint),
        i32::from(endpoint.port),
        live.registration.rack.clone(),
    ))
}
