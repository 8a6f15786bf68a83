//! The leader's side of the `Replication` service: each follower fetch session is a task
//! that answers one request at a time, holding a request that has nothing new for the
//! follower until records arrive, the high watermark moves, or `max_wait_ms` passes.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use proto_kafka::error::ResponseError;
use tokio::sync::{mpsc, watch as signal};
use tonic::{Request, Response, Status, Streaming};
use uuid::Uuid;

use super::proto::replication_server::Replication;
use super::proto::{self, DivergingEpoch, ReplicaFetchRequest, ReplicaFetchResponse};
use crate::handlers::errors::replica as replica_code;
use crate::metadata::cache::MetadataCache;
use crate::partition::manager::ReplicaManager;
use crate::partition::replication::{FollowerFetch, FollowerReply};
use crate::partition::ReplicaError;
use crate::protocol::error_code::code;
use crate::replication::ReplicationStats;

/// The longest a leader holds a follower's fetch, whatever the follower asks.
const MAX_WAIT_CAP: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct ReplicationService {
    replicas: Arc<ReplicaManager>,
    cache: Arc<MetadataCache>,
    stats: Arc<ReplicationStats>,
    shutdown: signal::Receiver<bool>,
}

impl ReplicationService {
    pub fn new(
        replicas: Arc<ReplicaManager>,
        cache: Arc<MetadataCache>,
        stats: Arc<ReplicationStats>,
        shutdown: signal::Receiver<bool>,
    ) -> ReplicationService {
        ReplicationService {
            replicas,
            cache,
            stats,
            shutdown,
        }
    }
}

type FetchStream = Pin<Box<dyn Stream<Item = Result<ReplicaFetchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Replication for ReplicationService {
    type FetchStream = FetchStream;

    async fn fetch(
        &self,
        request: Request<Streaming<ReplicaFetchRequest>>,
    ) -> Result<Response<Self::FetchStream>, Status> {
        let mut inbound = request.into_inner();
        let service = self.clone();
        let mut shutdown = self.shutdown.clone();
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    next = inbound.message() => next,
                    () = async { let _ = shutdown.wait_for(|stop| *stop).await; } => return,
                };
                let request = match next {
                    Ok(Some(request)) => request,
                    Ok(None) => return,
                    Err(status) => {
                        tracing::debug!(code = ?status.code(), message = status.message(), "a follower's fetch session ended");
                        return;
                    }
                };
                let answer = tokio::select! {
                    answer = service.answer(&request) => answer,
                    () = tx.closed() => return,
                };
                if tx.send(Ok(answer)).await.is_err() {
                    return;
                }
            }
        });
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|answer| (answer, rx))
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

fn refusal(fetch_offset: i64, error: ResponseError, message: String) -> ReplicaFetchResponse {
    ReplicaFetchResponse {
        error_code: i32::from(code(error)),
        error_message: message,
        fetch_offset,
        ..ReplicaFetchResponse::default()
    }
}

impl ReplicationService {
    /// Answers one fetch: at once when there is something for the follower, otherwise
    /// when something arrives or the wait is over.
    async fn answer(&self, request: &ReplicaFetchRequest) -> ReplicaFetchResponse {
        let offset = request.fetch_offset;
        let image = self.cache.image();
        let Some(topic_id) = Uuid::from_slice(&request.topic_id).ok() else {
            return refusal(
                offset,
                ResponseError::InvalidRequest,
                "topic_id is not 16 bytes".into(),
            );
        };
        match image.topic(&request.topic) {
            None => {
                return refusal(
                    offset,
                    ResponseError::UnknownTopicOrPartition,
                    format!("no topic {}", request.topic),
                )
            }
            Some(topic) if topic.id != topic_id => {
                return refusal(
                    offset,
                    ResponseError::InconsistentTopicId,
                    format!("topic {} has another id here", request.topic),
                )
            }
            Some(_) => {}
        }
        // Only a registered follower in its registered incarnation: an older one (it
        // restarted since) must not count as in sync, nor one this broker has not seen
        // register yet (it asks again). The epochs are not echoed back.
        let registered = image
            .brokers
            .get(&request.broker_id)
            .is_some_and(|live| live.epoch == request.broker_epoch);
        if !registered {
            self.stats
                .fenced_stale_broker_epoch
                .fetch_add(1, Ordering::Relaxed);
            return refusal(
                offset,
                ResponseError::StaleBrokerEpoch,
                format!(
                    "broker {} is not registered in that incarnation here",
                    request.broker_id
                ),
            );
        }
        let partition = match self.replicas.get(&request.topic, request.partition) {
            Some(p) if p.topic_id() == topic_id => p,
            _ => {
                self.stats.fenced_not_leader.fetch_add(1, Ordering::Relaxed);
                return refusal(
                    offset,
                    ResponseError::NotLeaderOrFollower,
                    "this broker holds no replica of the partition".into(),
                );
            }
        };
        let fetch = FollowerFetch {
            broker: request.broker_id,
            broker_epoch: request.broker_epoch,
            current_leader_epoch: request.current_leader_epoch,
            fetch_offset: offset,
            last_fetched_epoch: request.last_fetched_epoch,
            durable_offset: request.durable_offset,
            max_bytes: usize::try_from(request.max_bytes.max(1)).unwrap_or(1),
        };
        let wait = Duration::from_millis(u64::try_from(request.max_wait_ms.max(0)).unwrap_or(0))
            .min(MAX_WAIT_CAP);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Subscribed before reading, so a change between the read and the wait wakes it.
            let mut offsets = partition.subscribe();
            let reply = match partition.fetch_for_follower(&fetch) {
                Ok(reply) => reply,
                Err(error) => {
                    match error {
                        ReplicaError::FencedLeaderEpoch | ReplicaError::UnknownLeaderEpoch => self
                            .stats
                            .fenced_leader_epoch
                            .fetch_add(1, Ordering::Relaxed),
                        ReplicaError::NotLeader => {
                            self.stats.fenced_not_leader.fetch_add(1, Ordering::Relaxed)
                        }
                        _ => 0,
                    };
                    return ReplicaFetchResponse {
                        error_code: i32::from(replica_code(&error)),
                        error_message: format!("{error:?}"),
                        fetch_offset: offset,
                        ..ReplicaFetchResponse::default()
                    };
                }
            };
            // Only a higher high watermark is news: a follower may have heard a higher
            // one from the previous leader, and answering that at once would spin.
            let nothing_new = matches!(
                &reply,
                FollowerReply::Records { records, high_watermark, .. }
                    if records.is_empty() && *high_watermark <= request.high_watermark
            );
            if !nothing_new || tokio::time::Instant::now() >= deadline {
                return response(offset, partition.offsets().leader_epoch, reply);
            }
            let epoch = request.current_leader_epoch;
            let known = request.high_watermark;
            let changed = offsets.wait_for(|o| {
                o.log_end > offset
                    || o.high_watermark > known
                    || !o.is_leader
                    || o.leader_epoch != epoch
                    || o.offline
            });
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                // Time is up: the last pass answers with whatever there is.
                continue;
            }
        }
    }
}

fn response(fetch_offset: i64, leader_epoch: i32, reply: FollowerReply) -> ReplicaFetchResponse {
    match reply {
        FollowerReply::Records {
            records,
            high_watermark,
            log_start,
            log_end,
        } => ReplicaFetchResponse {
            fetch_offset,
            records,
            high_watermark,
            log_start_offset: log_start,
            log_end_offset: log_end,
            leader_epoch,
            ..ReplicaFetchResponse::default()
        },
        FollowerReply::Diverging { epoch, end_offset } => ReplicaFetchResponse {
            fetch_offset,
            leader_epoch,
            diverging: Some(DivergingEpoch { epoch, end_offset }),
            ..ReplicaFetchResponse::default()
        },
        FollowerReply::OutOfRange { log_start, log_end } => ReplicaFetchResponse {
            error_code: i32::from(code(ResponseError::OffsetOutOfRange)),
            error_message: format!(
                "fetch offset {fetch_offset} is outside [{log_start}, {log_end}]"
            ),
            fetch_offset,
            log_start_offset: log_start,
            log_end_offset: log_end,
            leader_epoch,
            ..ReplicaFetchResponse::default()
        },
    }
}

/// The generated server with this service.
pub fn server(
    service: ReplicationService,
    max_message: usize,
) -> proto::replication_server::ReplicationServer<ReplicationService> {
    proto::replication_server::ReplicationServer::new(service)
        .max_decoding_message_size(max_message)
        .max_encoding_message_size(usize::MAX)
}
