//! The one place where the broker's outcomes become Kafka error codes.

use proto_kafka::error::ResponseError;

use crate::controller::AdminError;
use crate::partition::ReplicaError;
use crate::records::validate::Refusal;

pub const NONE: i16 = 0;

pub fn code(e: ResponseError) -> i16 {
    e.code()
}

/// A replica's refusal as a code.
pub fn replica(error: &ReplicaError) -> i16 {
    code(match error {
        ReplicaError::NotLeader => ResponseError::NotLeaderOrFollower,
        ReplicaError::FencedLeaderEpoch => ResponseError::FencedLeaderEpoch,
        ReplicaError::UnknownLeaderEpoch => ResponseError::UnknownLeaderEpoch,
        ReplicaError::OffsetOutOfRange => ResponseError::OffsetOutOfRange,
        ReplicaError::NotEnoughReplicas => ResponseError::NotEnoughReplicas,
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
        AdminError::Unavailable(m) => (ResponseError::UnknownServerError, m.clone()),
    };
    (code(e), message)
}

/// A static label for an error code (metrics).
pub fn label(code: i16) -> &'static str {
    match ResponseError::try_from_code(code) {
        None => "NONE",
        Some(ResponseError::UnknownServerError) => "UNKNOWN_SERVER_ERROR",
        Some(ResponseError::OffsetOutOfRange) => "OFFSET_OUT_OF_RANGE",
        Some(ResponseError::CorruptMessage) => "CORRUPT_MESSAGE",
        Some(ResponseError::UnknownTopicOrPartition) => "UNKNOWN_TOPIC_OR_PARTITION",
        Some(ResponseError::LeaderNotAvailable) => "LEADER_NOT_AVAILABLE",
        Some(ResponseError::NotLeaderOrFollower) => "NOT_LEADER_OR_FOLLOWER",
        Some(ResponseError::RequestTimedOut) => "REQUEST_TIMED_OUT",
        Some(ResponseError::MessageTooLarge) => "MESSAGE_TOO_LARGE",
        Some(ResponseError::InvalidTopicException) => "INVALID_TOPIC_EXCEPTION",
        Some(ResponseError::NotEnoughReplicas) => "NOT_ENOUGH_REPLICAS",
        Some(ResponseError::InvalidRequiredAcks) => "INVALID_REQUIRED_ACKS",
        Some(ResponseError::ClusterAuthorizationFailed) => "CLUSTER_AUTHORIZATION_FAILED",
        Some(ResponseError::InvalidTimestamp) => "INVALID_TIMESTAMP",
        Some(ResponseError::UnsupportedVersion) => "UNSUPPORTED_VERSION",
        Some(ResponseError::TopicAlreadyExists) => "TOPIC_ALREADY_EXISTS",
        Some(ResponseError::InvalidPartitions) => "INVALID_PARTITIONS",
        Some(ResponseError::InvalidReplicationFactor) => "INVALID_REPLICATION_FACTOR",
        Some(ResponseError::InvalidReplicaAssignment) => "INVALID_REPLICA_ASSIGNMENT",
        Some(ResponseError::InvalidConfig) => "INVALID_CONFIG",
        Some(ResponseError::NotController) => "NOT_CONTROLLER",
        Some(ResponseError::InvalidRequest) => "INVALID_REQUEST",
        Some(ResponseError::UnsupportedForMessageFormat) => "UNSUPPORTED_FOR_MESSAGE_FORMAT",
        Some(ResponseError::KafkaStorageError) => "KAFKA_STORAGE_ERROR",
        Some(ResponseError::FetchSessionIdNotFound) => "FETCH_SESSION_ID_NOT_FOUND",
        Some(ResponseError::FencedLeaderEpoch) => "FENCED_LEADER_EPOCH",
        Some(ResponseError::UnknownLeaderEpoch) => "UNKNOWN_LEADER_EPOCH",
        Some(ResponseError::UnsupportedCompressionType) => "UNSUPPORTED_COMPRESSION_TYPE",
        Some(ResponseError::InvalidRecord) => "INVALID_RECORD",
        Some(ResponseError::UnknownTopicId) => "UNKNOWN_TOPIC_ID",
        Some(ResponseError::TopicDeletionDisabled) => "TOPIC_DELETION_DISABLED",
        Some(ResponseError::OutOfOrderSequenceNumber) => "OUT_OF_ORDER_SEQUENCE_NUMBER",
        Some(ResponseError::InvalidProducerEpoch) => "INVALID_PRODUCER_EPOCH",
        Some(ResponseError::DuplicateSequenceNumber) => "DUPLICATE_SEQUENCE_NUMBER",
        Some(ResponseError::TransactionalIdAuthorizationFailed) => {
            "TRANSACTIONAL_ID_AUTHORIZATION_FAILED"
        }
        Some(ResponseError::ProducerFenced) => "PRODUCER_FENCED",
        Some(_) => "OTHER",
    }
}
