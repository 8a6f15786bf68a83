//! Kafka error codes: from the protocol crate's errors, and as metric labels. How the
//! broker's own outcomes map to them lives with the handlers (`handlers/errors.rs`).

use proto_kafka::error::ResponseError;

pub const NONE: i16 = 0;

pub fn code(e: ResponseError) -> i16 {
    e.code()
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
        Some(ResponseError::CoordinatorLoadInProgress) => "COORDINATOR_LOAD_IN_PROGRESS",
        Some(ResponseError::CoordinatorNotAvailable) => "COORDINATOR_NOT_AVAILABLE",
        Some(ResponseError::NotCoordinator) => "NOT_COORDINATOR",
        Some(ResponseError::IllegalGeneration) => "ILLEGAL_GENERATION",
        Some(ResponseError::InconsistentGroupProtocol) => "INCONSISTENT_GROUP_PROTOCOL",
        Some(ResponseError::InvalidGroupId) => "INVALID_GROUP_ID",
        Some(ResponseError::UnknownMemberId) => "UNKNOWN_MEMBER_ID",
        Some(ResponseError::InvalidSessionTimeout) => "INVALID_SESSION_TIMEOUT",
        Some(ResponseError::RebalanceInProgress) => "REBALANCE_IN_PROGRESS",
        Some(ResponseError::OffsetMetadataTooLarge) => "OFFSET_METADATA_TOO_LARGE",
        Some(ResponseError::NonEmptyGroup) => "NON_EMPTY_GROUP",
        Some(ResponseError::GroupIdNotFound) => "GROUP_ID_NOT_FOUND",
        Some(ResponseError::GroupMaxSizeReached) => "GROUP_MAX_SIZE_REACHED",
        Some(ResponseError::MemberIdRequired) => "MEMBER_ID_REQUIRED",
        Some(ResponseError::FencedInstanceId) => "FENCED_INSTANCE_ID",
        Some(ResponseError::GroupSubscribedToTopic) => "GROUP_SUBSCRIBED_TO_TOPIC",
        Some(ResponseError::UnknownProducerId) => "UNKNOWN_PRODUCER_ID",
        Some(_) => "OTHER",
    }
}
