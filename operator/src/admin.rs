//! Calls to a cluster's gRPC admin service for Topic reconcile: describe, create, add
//! partitions, alter configs, delete. One lazily connected channel per cluster address,
//! every call bounded in time. Answers carry the metadata revision they reflect: the
//! bootstrap Service may route a describe to a broker whose metadata is behind a change
//! another broker just made. A Kafka error in an answer is an `Outcome`, kept apart
//! from transport failures: the first may be a refusal for a condition, the second is
//! retried.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use crate::proto::admin_client::AdminClient;
use crate::proto::{
    alter_configs_request, config_op, AlterConfigsRequest, ConfigOp, CreatePartitionsRequest,
    CreateTopicsRequest, DeleteTopicsRequest, DescribeTopicsRequest, Outcome, Topic, TopicSpec,
};
use crate::topic_plan::ConfigChange;

const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Kafka error codes the admin service answers with.
pub const UNKNOWN_TOPIC_OR_PARTITION: i32 = 3;
pub const TOPIC_ALREADY_EXISTS: i32 = 36;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("failed to reach the admin service at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("failed to {action} topic {topic}: {source}")]
    Call {
        action: &'static str,
        topic: String,
        #[source]
        source: tonic::Status,
    },
    #[error("failed to {action} topic {topic}: no answer in {seconds} s", seconds = CALL_TIMEOUT.as_secs())]
    TimedOut { action: &'static str, topic: String },
}

/// A Kafka error in an answer: its code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub code: i32,
    pub message: String,
}

impl Refused {
    fn from_outcome(outcome: Option<Outcome>) -> Option<Refused> {
        let outcome = outcome?;
        (outcome.error_code != 0).then_some(Refused {
            code: outcome.error_code,
            message: outcome.error_message,
        })
    }

    /// Whether the spec itself is at fault (an invalid config, partition count or
    /// replication factor, a policy): a condition, not a retry.
    pub fn is_permanent(&self) -> bool {
        // INVALID_TOPIC_EXCEPTION, INVALID_PARTITIONS, INVALID_REPLICATION_FACTOR,
        // INVALID_REPLICA_ASSIGNMENT, INVALID_CONFIG, INVALID_REQUEST, POLICY_VIOLATION.
        matches!(self.code, 17 | 37 | 38 | 39 | 40 | 42 | 44)
    }
}

/// The admin channels of every cluster Topics refer to.
#[derive(Debug, Default)]
pub struct Admin {
    channels: Mutex<HashMap<String, Channel>>,
}

impl Admin {
    fn client(&self, url: &str) -> Result<AdminClient<Channel>, AdminError> {
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(channel) = channels.get(url) {
            return Ok(AdminClient::new(channel.clone()));
        }
        let channel = Endpoint::from_shared(url.to_string())
            .map_err(|source| AdminError::Connect {
                url: url.to_string(),
                source,
            })?
            .connect_timeout(Duration::from_secs(5))
            .connect_lazy();
        channels.insert(url.to_string(), channel.clone());
        Ok(AdminClient::new(channel))
    }

    /// The topic (None when the cluster does not have it) and the revision the answer
    /// reflects.
    pub async fn describe(
        &self,
        url: &str,
        topic: &str,
    ) -> Result<(Option<Topic>, i64), AdminError> {
        let mut client = self.client(url)?;
        let request = DescribeTopicsRequest {
            names: vec![topic.to_string()],
        };
        let answer = bounded("describe", topic, client.describe_topics(request)).await?;
        let revision = answer.revision;
        Ok((
            answer.topics.into_iter().find(|t| t.name == topic),
            revision,
        ))
    }

    pub async fn create(
        &self,
        url: &str,
        topic: &str,
        partitions: i32,
        replication_factor: i32,
        configs: &std::collections::BTreeMap<String, String>,
    ) -> Result<Result<(Topic, i64), Refused>, AdminError> {
        let mut client = self.client(url)?;
        let request = CreateTopicsRequest {
            topics: vec![TopicSpec {
                name: topic.to_string(),
                partitions,
                replication_factor,
                configs: configs
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                assignments: HashMap::new(),
            }],
            validate_only: false,
            forwarded: None,
        };
        let answer = bounded("create", topic, client.create_topics(request)).await?;
        let revision = answer.revision;
        let Some(created) = answer.topics.into_iter().find(|t| t.name == topic) else {
            return Ok(Err(Refused {
                code: -1,
                message: format!("the admin service did not answer for topic {topic}"),
            }));
        };
        match Refused::from_outcome(created.outcome) {
            Some(refused) => Ok(Err(refused)),
            // The topic as created; an answer without it leaves the id to the next sync.
            None => Ok(Ok((created.topic.unwrap_or_default(), revision))),
        }
    }

    pub async fn add_partitions(
        &self,
        url: &str,
        topic: &str,
        count: i32,
    ) -> Result<Result<i64, Refused>, AdminError> {
        let mut client = self.client(url)?;
        let request = CreatePartitionsRequest {
            topic: topic.to_string(),
            count,
            validate_only: false,
            forwarded: None,
            assignments: Vec::new(),
        };
        let answer = bounded(
            "add partitions to",
            topic,
            client.create_partitions(request),
        )
        .await?;
        Ok(Refused::from_outcome(answer.outcome).map_or(Ok(answer.revision), Err))
    }

    pub async fn alter_configs(
        &self,
        url: &str,
        topic: &str,
        changes: &[ConfigChange],
    ) -> Result<Result<i64, Refused>, AdminError> {
        let mut client = self.client(url)?;
        let ops = changes
            .iter()
            .map(|change| match change {
                ConfigChange::Set(key, value) => ConfigOp {
                    key: key.clone(),
                    kind: config_op::Kind::Set as i32,
                    value: value.clone(),
                },
                ConfigChange::Delete(key) => ConfigOp {
                    key: key.clone(),
                    kind: config_op::Kind::Delete as i32,
                    value: String::new(),
                },
            })
            .collect();
        let request = AlterConfigsRequest {
            resource: alter_configs_request::Resource::Topic as i32,
            name: topic.to_string(),
            ops,
            replace: false,
            validate_only: false,
            forwarded: None,
        };
        let answer = bounded("alter the config of", topic, client.alter_configs(request)).await?;
        Ok(Refused::from_outcome(answer.outcome).map_or(Ok(answer.revision), Err))
    }

    /// Deletes the topic; a topic already gone is not an error.
    pub async fn delete(&self, url: &str, topic: &str) -> Result<Result<(), Refused>, AdminError> {
        let mut client = self.client(url)?;
        let request = DeleteTopicsRequest {
            names: vec![topic.to_string()],
            forwarded: None,
        };
        let answer = bounded("delete", topic, client.delete_topics(request)).await?;
        let outcome = answer
            .topics
            .into_iter()
            .find(|t| t.name == topic)
            .and_then(|t| t.outcome);
        match Refused::from_outcome(outcome) {
            Some(r) if r.code != UNKNOWN_TOPIC_OR_PARTITION => Ok(Err(r)),
            _ => Ok(Ok(())),
        }
    }

    /// Forgets the channel of a cluster that is gone.
    pub fn forget(&self, url: &str) {
        self.channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(url);
    }
}

async fn bounded<T>(
    action: &'static str,
    topic: &str,
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, AdminError> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(Ok(answer)) => Ok(answer.into_inner()),
        Ok(Err(source)) => Err(AdminError::Call {
            action,
            topic: topic.to_string(),
            source,
        }),
        Err(_) => Err(AdminError::TimedOut {
            action,
            topic: topic.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_errors_are_permanent_and_the_rest_retried() {
        let refused = |code| Refused {
            code,
            message: String::new(),
        };
        assert!(refused(40).is_permanent());
        assert!(refused(37).is_permanent());
        assert!(!refused(41).is_permanent()); // NOT_CONTROLLER
        assert!(!refused(7).is_permanent()); // REQUEST_TIMED_OUT
        assert_eq!(
            Refused::from_outcome(Some(Outcome {
                error_code: 0,
                error_message: String::new()
            })),
            None
        );
    }
}
