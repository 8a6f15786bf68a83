//! Forwarding admin requests to the controller broker over gRPC: the same calls, with
//! this broker's id and epoch and the controller term it addresses, so the controller
//! can refuse a stale sender or a request meant for a deposed controller.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tonic::transport::Channel;
use tracing::debug;

use super::channels::Channels;
use super::convert;
use super::proto::admin_client::AdminClient;
use super::proto::{self, Forwarded};
use crate::controller::service::{Forward, TopicOutcomes};
use crate::controller::{AdminError, ConfigChange, ConfigResource, TopicSpec};
use crate::metadata::cache::MetadataCache;
use crate::metadata::schema::TopicRecord;
use crate::metadata::store::Revision;
use crate::partition::manager::ReplicaManager;

/// How long a forwarded call may take (the controller waits for nothing but its write).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct GrpcForward {
    broker_id: i32,
    cache: Arc<MetadataCache>,
    replicas: Arc<ReplicaManager>,
    channels: Channels,
    /// Calls that failed to reach the controller or that it refused, for `/metrics`.
    failures: AtomicU64,
}

impl GrpcForward {
    pub fn new(
        broker_id: i32,
        cache: Arc<MetadataCache>,
        replicas: Arc<ReplicaManager>,
    ) -> GrpcForward {
        GrpcForward {
            broker_id,
            cache,
            replicas,
            channels: Channels::default(),
            failures: AtomicU64::new(0),
        }
    }

    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// A failed call as the caller's error. Clients retry NOT_CONTROLLER, which is right
    /// when the controller moved, refused a stale stamp or cannot be reached. A call that
    /// timed out may have been done, so it is REQUEST_TIMED_OUT (as Kafka answers a
    /// CreateTopics whose timeout passed); one the controller could not read will not
    /// succeed by retrying, so it is INVALID_REQUEST.
    fn unreachable(&self, status: tonic::Status) -> AdminError {
        use tonic::Code;
        self.failures.fetch_add(1, Ordering::Relaxed);
        debug!(code = ?status.code(), message = status.message(), "forwarded admin request failed");
        match status.code() {
            Code::DeadlineExceeded | Code::Cancelled => AdminError::TimedOut(format!(
                "the controller did not answer in time ({}); the change may have been made",
                status.message()
            )),
            Code::InvalidArgument | Code::OutOfRange => AdminError::InvalidRequest(format!(
                "the controller could not take the forwarded request: {}",
                status.message()
            )),
            _ => AdminError::NotController,
        }
    }

    /// A client for the controller broker and the stamp its requests carry.
    fn controller(&self) -> Result<(AdminClient<Channel>, Forwarded), AdminError> {
        // The raw image: the controller and its address as the store has them now, not
        // as this broker has finished applying.
        let image = self.cache.raw_image();
        let (id, epoch) = image.controller.ok_or(AdminError::NotController)?;
        let address = image
            .brokers
            .get(&id)
            .and_then(|b| b.registration.admin_endpoint.clone())
            .ok_or(AdminError::NotController)?;
        let channel = self
            .channels
            .get(&address, |e| {
                e.connect_timeout(Duration::from_secs(5))
                    .timeout(CALL_TIMEOUT)
            })
            .map_err(|e| AdminError::Unavailable(format!("bad admin endpoint {address}: {e}")))?;
        debug!(controller = id, %address, "forwarding an admin request");
        Ok((
            // Answers are bounded by the cluster's size, not by a request limit.
            AdminClient::new(channel).max_decoding_message_size(usize::MAX),
            Forwarded {
                broker_id: self.broker_id,
                broker_epoch: self.replicas.broker_epoch(),
                controller_epoch: epoch,
            },
        ))
    }
}

fn outcomes<T>(
    topics: Vec<proto::TopicOutcome>,
    ok: impl Fn(&proto::TopicOutcome) -> Result<T, AdminError>,
) -> TopicOutcomes<T> {
    topics
        .into_iter()
        .map(|t| {
            let result = match t.outcome.as_ref().and_then(convert::admin_error) {
                Some(err) => Err(err),
                None => ok(&t),
            };
            (t.name.clone(), result)
        })
        .collect()
}

#[async_trait]
impl Forward for GrpcForward {
    async fn create_topics(
        &self,
        specs: Vec<TopicSpec>,
        validate_only: bool,
    ) -> Result<(TopicOutcomes<TopicRecord>, Revision), AdminError> {
        let (mut client, stamp) = self.controller()?;
        let request = proto::CreateTopicsRequest {
            topics: specs.iter().map(convert::spec_message).collect(),
            validate_only,
            forwarded: Some(stamp),
        };
        let response = client
            .create_topics(request)
            .await
            .map_err(|s| self.unreachable(s))?
            .into_inner();
        let topics = outcomes(response.topics, |t| match &t.topic {
            Some(topic) => convert::record_of(topic),
            None => Err(AdminError::Unavailable(
                "the controller answered without the topic".into(),
            )),
        });
        Ok((topics, response.revision))
    }

    async fn delete_topics(
        &self,
        names: Vec<String>,
    ) -> Result<(TopicOutcomes<()>, Revision), AdminError> {
        let (mut client, stamp) = self.controller()?;
        let request = proto::DeleteTopicsRequest {
            names,
            forwarded: Some(stamp),
        };
        let response = client
            .delete_topics(request)
            .await
            .map_err(|s| self.unreachable(s))?
            .into_inner();
        Ok((outcomes(response.topics, |_| Ok(())), response.revision))
    }

    async fn create_partitions(
        &self,
        topic: &str,
        count: i32,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    ) -> Result<Revision, AdminError> {
        let (mut client, stamp) = self.controller()?;
        let request = proto::CreatePartitionsRequest {
            topic: topic.to_string(),
            count,
            validate_only,
            forwarded: Some(stamp),
            assignments: convert::replicas_message(&assignments),
        };
        let response = client
            .create_partitions(request)
            .await
            .map_err(|s| self.unreachable(s))?
            .into_inner();
        match response.outcome.as_ref().and_then(convert::admin_error) {
            Some(err) => Err(err),
            None => Ok(response.revision),
        }
    }

    async fn alter_configs(
        &self,
        resource: &ConfigResource,
        change: &ConfigChange,
        validate_only: bool,
    ) -> Result<Revision, AdminError> {
        let (mut client, stamp) = self.controller()?;
        let mut request = convert::change_message(resource, change);
        request.validate_only = validate_only;
        request.forwarded = Some(stamp);
        let response = client
            .alter_configs(request)
            .await
            .map_err(|s| self.unreachable(s))?
            .into_inner();
        match response.outcome.as_ref().and_then(convert::admin_error) {
            Some(err) => Err(err),
            None => Ok(response.revision),
        }
    }
}
