//! The one place where the broker's outcomes (a replica's refusal, an admin refusal)
//! become Kafka error codes and messages.

use proto_kafka::error::ResponseError;

use crate::controller::AdminError;
use crate::partition::ReplicaError;
use crate::protocol::error_code::code;
use crate::records::validate::Refusal;

/// A replica's refusal as a code.
pub fn replica(error: &ReplicaError) -> i16 {
    code(match error {
        ReplicaError::UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition,
        ReplicaError::NotLeader => ResponseError::NotLeaderOrFollower,
        ReplicaError::FencedLeaderEpoch => ResponseError::FencedLeaderEpoch,
        ReplicaError::UnknownLeaderEpoch => ResponseError::UnknownLeaderEpoch,
        ReplicaError::OffsetOutOfRange => ResponseError::OffsetOutOfRange,
        ReplicaError::NotEnoughReplicas => ResponseError::NotEnoughReplicas,
        ReplicaError::NotEnoughReplicasAfterAppend => ResponseError::NotEnoughReplicasAfterAppend,
        ReplicaError::Storage => ResponseError::KafkaStorageError,
        ReplicaError::Timeout => ResponseError::RequestTimedOut,
        ReplicaError::InvalidRecords(invalid) => match invalid.refusal {
            Refusal::Corrupt => ResponseError::CorruptMessage,
            Refusal::InvalidRecord => ResponseError::InvalidRecord,
            Refusal::TooLarge => ResponseError::MessageTooLarge,
            Refusal::InvalidTimestamp => ResponseError::InvalidTimestamp,
            Refusal::UnsupportedCompression => ResponseError::UnsupportedCompressionType,
        },
        ReplicaError::OutOfOrderSequence(_) => ResponseError::OutOfOrderSequenceNumber,
        ReplicaError::InvalidProducerEpoch(_) => ResponseError::InvalidProducerEpoch,
        // Non-retriable, the code old brokers gave for transactional batches.
        ReplicaError::Unsupported(_) => ResponseError::UnsupportedForMessageFormat,
    })
}

/// A message to send with a replica's refusal, where the API has a field for one.
pub fn replica_message(error: &ReplicaError) -> Option<String> {
    match error {
        ReplicaError::InvalidRecords(invalid) => Some(invalid.message.clone()),
        ReplicaError::Unsupported(message)
        | ReplicaError::OutOfOrderSequence(message)
        | ReplicaError::InvalidProducerEpoch(message) => Some(message.clone()),
        ReplicaError::Storage => Some("the partition's log is offline after an I/O error".into()),
        _ => None,
    }
}

/// An admin refusal as a code and message.
pub fn admin(error: &AdminError) -> (i16, String) {
    let (e, message) = match error {
        AdminError::InvalidTopic(m) => (ResponseError::InvalidTopicException, m.clone()),
        AdminError::TopicAlreadyExists(m) => (ResponseError::TopicAlreadyExists, m.clone()),
        AdminError::InvalidPartitions(m) => (ResponseError::InvalidPartitions, m.clone()),
        AdminError::InvalidReplicationFactor(m) => {
            (ResponseError::InvalidReplicationFactor, m.clone())
        }
        AdminError::InvalidReplicaAssignment(m) => {
            (ResponseError::InvalidReplicaAssignment, m.clone())
        }
        AdminError::InvalidConfig(m) => (ResponseError::InvalidConfig, m.clone()),
        AdminError::InvalidRequest(m) => (ResponseError::InvalidRequest, m.clone()),
        AdminError::UnknownTopic(m) => (ResponseError::UnknownTopicOrPartition, m.clone()),
        AdminError::UnknownTopicId(m) => (ResponseError::UnknownTopicId, m.clone()),
        AdminError::TopicDeletionDisabled => (
            ResponseError::TopicDeletionDisabled,
            "topic deletion is disabled (delete.topic.enable=false)".to_string(),
        ),
        AdminError::NotController => (
            ResponseError::NotController,
            "this broker is not the controller right now".to_string(),
        ),
        AdminError::TimedOut(m) => (ResponseError::RequestTimedOut, m.clone()),
        AdminError::Unavailable(m) => (ResponseError::UnknownServerError, m.clone()),
    };
    (code(e), message)
}
