//! Metadata: brokers, controller, cluster id, and topics with their partitions' leaders,
//! leader epochs, replicas and ISR. Creates unknown topics when the broker allows it and
//! the request does (v4+; always for older versions), as librdkafka and kafka-python
//! expect.

use std::time::Duration;

use proto_kafka::error::ResponseError;
use proto_kafka::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use proto_kafka::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use uuid::Uuid;

use super::errors::admin;
use super::{str_bytes, Connection, Context};
use crate::controller::TopicSpec;
use crate::group::is_internal;
use crate::metadata::cache::MetadataImage;
use crate::metadata::schema::{invalid_topic_name, kafka_uuid_string, Endpoint};
use crate::protocol::error_code::code;

/// `authorized_operations` when the client did not ask for them.
pub(crate) const NOT_REQUESTED: i32 = i32::MIN;
/// Without an authorizer every operation is allowed: READ(3), WRITE(4), CREATE(5),
/// DELETE(6), ALTER(7), DESCRIBE(8), DESCRIBE_CONFIGS(10), ALTER_CONFIGS(11).
const TOPIC_OPERATIONS: i32 =
    (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11);
/// CREATE(5), ALTER(7), DESCRIBE(8), CLUSTER_ACTION(9), DESCRIBE_CONFIGS(10),
/// ALTER_CONFIGS(11), IDEMPOTENT_WRITE(12).
pub(crate) const CLUSTER_OPERATIONS: i32 =
    (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12);

/// How long a Metadata request waits for an auto-created topic to appear locally.
const AUTO_CREATE_WAIT: Duration = Duration::from_secs(10);

pub async fn handle(
    ctx: &Context,
    connection: &Connection,
    request: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    let mut image = ctx.cache.image();
    // v0: an empty list means all topics; v1+: null means all, empty means none.
    let wanted: Option<Vec<(Option<String>, Uuid)>> = match request.topics {
        None => None,
        Some(ref topics) if version == 0 && topics.is_empty() => None,
        Some(topics) => Some(
            topics
                .into_iter()
                .map(|t| (t.name.map(|n| n.0.as_str().to_string()), t.topic_id))
                .collect(),
        ),
    };
    let auto_create =
        ctx.config.auto_create_topics && (version < 4 || request.allow_auto_topic_creation);
    if let (Some(wanted), true) = (&wanted, auto_create) {
        let missing: Vec<TopicSpec> = wanted
            .iter()
            .filter_map(|(name, _)| name.as_ref())
            .filter(|name| {
                image.topic(name).is_none()
                    && invalid_topic_name(name).is_none()
                    && !is_internal(name)
            })
            .map(|name| TopicSpec {
                name: name.clone(),
                partitions: -1,
                replication_factor: -1,
                ..TopicSpec::default()
            })
            .collect();
        if !missing.is_empty() {
            let (outcomes, _) = ctx
                .admin
                .create_topics(missing, false, AUTO_CREATE_WAIT)
                .await;
            for (name, outcome) in &outcomes {
                if let Err(err) = outcome {
                    let (code, message) = admin(err);
                    tracing::debug!(topic = %name, code, %message, "auto-creation refused");
                }
            }
            image = ctx.cache.image();
        }
    }
    let include_ops = version >= 8 && request.include_topic_authorized_operations;
    let topics = match wanted {
        None => image
            .topics
            .keys()
            .map(|name| describe_topic(&image, name, version, include_ops))
            .collect(),
        Some(wanted) => wanted
            .into_iter()
            .map(|(name, id)| match name {
                Some(name) => describe_topic(&image, &name, version, include_ops),
                None => match image.topic_by_id(id) {
                    Some((name, _)) => describe_topic(&image, name, version, include_ops),
                    None => MetadataResponseTopic::default()
                        .with_error_code(code(ResponseError::UnknownTopicId))
                        .with_topic_id(id)
                        .with_name(None),
                },
            })
            .collect::<Vec<_>>(),
    };
    for topic in &topics {
        ctx.metrics.error("Metadata", topic.error_code);
    }
    let mut response = MetadataResponse::default()
        .with_brokers(brokers(ctx, &image, &connection.listener))
        .with_topics(topics);
    if version >= 1 {
        response = response.with_controller_id(BrokerId(image.controller.map_or(-1, |c| c.0)));
    }
    if version >= 2 {
        response = response.with_cluster_id(image.cluster_id.clone().map(str_bytes));
    }
    if (8..=10).contains(&version) {
        response = response.with_cluster_authorized_operations(
            if request.include_cluster_authorized_operations {
                CLUSTER_OPERATIONS
            } else {
                NOT_REQUESTED
            },
        );
    }
    response
}

fn brokers(ctx: &Context, image: &MetadataImage, listener: &str) -> Vec<MetadataResponseBroker> {
    image
        .brokers
        .values()
        .filter_map(|b| {
            let endpoint = b.endpoint(listener)?;
            Some(
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(b.registration.id))
                    .with_host(str_bytes(advertised_host(endpoint)))
                    .with_port(i32::from(endpoint.port))
                    .with_rack(b.registration.rack.clone().map(str_bytes)),
            )
        })
        .filter(|_| !ctx.config.listeners.is_empty())
        .collect()
}

/// The host clients should dial: an empty or wildcard host becomes this machine's name.
pub fn advertised_host(endpoint: &Endpoint) -> String {
    match endpoint.host.as_str() {
        "" | "0.0.0.0" | "::" => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into()),
        host => host.to_string(),
    }
}

fn describe_topic(
    image: &MetadataImage,
    name: &str,
    version: i16,
    include_ops: bool,
) -> MetadataResponseTopic {
    let base = MetadataResponseTopic::default().with_name(Some(TopicName(str_bytes(name))));
    let base = if version >= 8 {
        base.with_topic_authorized_operations(if include_ops {
            TOPIC_OPERATIONS
        } else {
            NOT_REQUESTED
        })
    } else {
        base
    };
    if let Some(reason) = invalid_topic_name(name) {
        tracing::debug!(topic = %name, %reason, "metadata for an invalid topic name");
        return base.with_error_code(code(ResponseError::InvalidTopicException));
    }
    let Some(topic) = image.topic(name) else {
        return base.with_error_code(code(ResponseError::UnknownTopicOrPartition));
    };
    let partitions = image
        .topic_partitions(name)
        .map(|(index, record)| {
            let offline: Vec<BrokerId> = record
                .replicas
                .iter()
                .filter(|b| !image.brokers.contains_key(b))
                .map(|b| BrokerId(*b))
                .collect();
            let mut partition = MetadataResponsePartition::default()
                .with_partition_index(index)
                .with_leader_id(BrokerId(record.leader))
                .with_replica_nodes(record.replicas.iter().map(|b| BrokerId(*b)).collect())
                .with_isr_nodes(record.isr.iter().map(|m| BrokerId(m.broker)).collect());
            if record.leader < 0 {
                partition = partition.with_error_code(code(ResponseError::LeaderNotAvailable));
            }
            if version >= 5 {
                partition = partition.with_offline_replicas(offline);
            }
            if version >= 7 {
                partition = partition.with_leader_epoch(record.leader_epoch);
            }
            partition
        })
        .collect();
    let mut described = base
        .with_partitions(partitions)
        .with_is_internal(is_internal(name));
    if version >= 10 {
        described = described.with_topic_id(topic.id);
    }
    tracing::trace!(topic = %name, id = %kafka_uuid_string(topic.id), "described topic");
    described
}
