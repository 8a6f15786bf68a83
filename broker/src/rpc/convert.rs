//! Between the gRPC messages and the controller's types, both ways: the admin service
//! reads requests, and a forwarding broker reads the controller's answers.

use std::collections::BTreeMap;

use tonic::Status;

use super::proto;
use crate::controller::{
    AdminError, ConfigChange, ConfigOp, ConfigOpKind, ConfigResource, TopicSpec,
};
use crate::ids::{kafka_uuid_string, parse_kafka_uuid};
use crate::metadata::schema::TopicRecord;

fn small(value: i32, what: &str) -> Result<i16, Status> {
    i16::try_from(value)
        .map_err(|_| Status::invalid_argument(format!("{what} {value} is out of range")))
}

pub fn topic_spec(spec: &proto::TopicSpec) -> Result<TopicSpec, Status> {
    Ok(TopicSpec {
        name: spec.name.clone(),
        partitions: spec.partitions,
        replication_factor: small(spec.replication_factor, "replication factor")?,
        assignments: spec
            .assignments
            .iter()
            .map(|(p, r)| (*p, r.brokers.clone()))
            .collect(),
        configs: spec.configs.clone().into_iter().collect(),
    })
}

pub fn spec_message(spec: &TopicSpec) -> proto::TopicSpec {
    proto::TopicSpec {
        name: spec.name.clone(),
        partitions: spec.partitions,
        replication_factor: i32::from(spec.replication_factor),
        configs: spec.configs.clone().into_iter().collect(),
        assignments: spec
            .assignments
            .iter()
            .map(|(p, brokers)| {
                (
                    *p,
                    proto::Replicas {
                        brokers: brokers.clone(),
                    },
                )
            })
            .collect(),
    }
}

/// A topic record as the admin API shows it (partition states added by the caller).
pub fn topic_record(name: &str, record: &TopicRecord) -> proto::Topic {
    proto::Topic {
        name: name.to_string(),
        topic_id: kafka_uuid_string(record.id),
        partitions: record.partitions,
        replication_factor: i32::from(record.replication_factor),
        configs: record.configs.clone().into_iter().collect(),
        partition_states: Vec::new(),
    }
}

/// Back from the message (a forwarding broker reading the controller's answer).
pub fn record_of(topic: &proto::Topic) -> Result<TopicRecord, AdminError> {
    let bad = || {
        AdminError::Unavailable(format!(
            "the controller answered topic {} with a bad id",
            topic.name
        ))
    };
    Ok(TopicRecord {
        id: parse_kafka_uuid(&topic.topic_id).ok_or_else(bad)?,
        partitions: topic.partitions,
        replication_factor: i16::try_from(topic.replication_factor).map_err(|_| bad())?,
        configs: topic.configs.clone().into_iter().collect(),
    })
}

pub fn assignments(replicas: &[proto::Replicas]) -> Option<Vec<Vec<i32>>> {
    (!replicas.is_empty()).then(|| replicas.iter().map(|r| r.brokers.clone()).collect())
}

pub fn replicas_message(assignments: &Option<Vec<Vec<i32>>>) -> Vec<proto::Replicas> {
    assignments
        .iter()
        .flatten()
        .map(|brokers| proto::Replicas {
            brokers: brokers.clone(),
        })
        .collect()
}

pub fn config_change(
    request: &proto::AlterConfigsRequest,
) -> Result<(ConfigResource, ConfigChange), Status> {
    use proto::alter_configs_request::Resource;
    use proto::config_op::Kind;
    let resource = match Resource::try_from(request.resource) {
        Ok(Resource::Topic) => ConfigResource::Topic(request.name.clone()),
        Ok(Resource::Broker) if request.name.is_empty() => {
            ConfigResource::Broker(crate::config::layers::CLUSTER_DEFAULT.to_string())
        }
        Ok(Resource::Broker) => ConfigResource::Broker(request.name.clone()),
        Err(_) => {
            return Err(Status::invalid_argument(format!(
                "unknown resource {}",
                request.resource
            )))
        }
    };
    if request.replace {
        let all: BTreeMap<String, String> = request
            .ops
            .iter()
            .map(|o| (o.key.clone(), o.value.clone()))
            .collect();
        return Ok((resource, ConfigChange::Replace(all)));
    }
    let ops = request
        .ops
        .iter()
        .map(|o| {
            let kind = match Kind::try_from(o.kind) {
                Ok(Kind::Set) => ConfigOpKind::Set,
                Ok(Kind::Delete) => ConfigOpKind::Delete,
                Ok(Kind::Append) => ConfigOpKind::Append,
                Ok(Kind::Subtract) => ConfigOpKind::Subtract,
                Err(_) => {
                    return Err(Status::invalid_argument(format!(
                        "unknown config operation {}",
                        o.kind
                    )))
                }
            };
            Ok(ConfigOp {
                key: o.key.clone(),
                kind,
                value: (kind != ConfigOpKind::Delete).then(|| o.value.clone()),
            })
        })
        .collect::<Result<Vec<_>, Status>>()?;
    Ok((resource, ConfigChange::Ops(ops)))
}

pub fn change_message(
    resource: &ConfigResource,
    change: &ConfigChange,
) -> proto::AlterConfigsRequest {
    use proto::alter_configs_request::Resource;
    use proto::config_op::Kind;
    let (kind, name) = match resource {
        ConfigResource::Topic(name) => (Resource::Topic, name.clone()),
        ConfigResource::Broker(target) if target == crate::config::layers::CLUSTER_DEFAULT => {
            (Resource::Broker, String::new())
        }
        ConfigResource::Broker(target) => (Resource::Broker, target.clone()),
    };
    let (ops, replace) = match change {
        ConfigChange::Replace(all) => (
            all.iter()
                .map(|(k, v)| proto::ConfigOp {
                    key: k.clone(),
                    kind: Kind::Set as i32,
                    value: v.clone(),
                })
                .collect(),
            true,
        ),
        ConfigChange::Ops(ops) => (
            ops.iter()
                .map(|o| proto::ConfigOp {
                    key: o.key.clone(),
                    kind: match o.kind {
                        ConfigOpKind::Set => Kind::Set,
                        ConfigOpKind::Delete => Kind::Delete,
                        ConfigOpKind::Append => Kind::Append,
                        ConfigOpKind::Subtract => Kind::Subtract,
                    } as i32,
                    value: o.value.clone().unwrap_or_default(),
                })
                .collect(),
            false,
        ),
    };
    proto::AlterConfigsRequest {
        resource: kind as i32,
        name,
        ops,
        replace,
        validate_only: false,
        forwarded: None,
    }
}

/// The controller's refusal as the forwarding broker's own (same code, same message).
pub fn admin_error(outcome: &proto::Outcome) -> Option<AdminError> {
    use proto_kafka::error::ResponseError;
    if outcome.error_code == 0 {
        return None;
    }
    let message = outcome.error_message.clone();
    let code = i16::try_from(outcome.error_code).unwrap_or(-1);
    Some(match ResponseError::try_from_code(code) {
        Some(ResponseError::InvalidTopicException) => AdminError::InvalidTopic(message),
        Some(ResponseError::TopicAlreadyExists) => AdminError::TopicAlreadyExists(message),
        Some(ResponseError::InvalidPartitions) => AdminError::InvalidPartitions(message),
        Some(ResponseError::InvalidReplicationFactor) => {
            AdminError::InvalidReplicationFactor(message)
        }
        Some(ResponseError::InvalidReplicaAssignment) => {
            AdminError::InvalidReplicaAssignment(message)
        }
        Some(ResponseError::InvalidConfig) => AdminError::InvalidConfig(message),
        Some(ResponseError::InvalidRequest) => AdminError::InvalidRequest(message),
        Some(ResponseError::UnknownTopicOrPartition) => AdminError::UnknownTopic(message),
        Some(ResponseError::UnknownTopicId) => AdminError::UnknownTopicId(message),
        Some(ResponseError::TopicDeletionDisabled) => AdminError::TopicDeletionDisabled,
        Some(ResponseError::NotController) => AdminError::NotController,
        Some(ResponseError::RequestTimedOut) => AdminError::TimedOut(message),
        _ => AdminError::Unavailable(message),
    })
}
