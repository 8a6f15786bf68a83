//! Produce: validate and append each partition's batch in request order (dispatch), then
//! wait for what `acks` asks (the future): acks=1 for the leader's fsync in durable mode,
//! acks=all for the high watermark. acks=0 gets no response at all.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::future::join_all;
use proto_kafka::error::ResponseError;
use proto_kafka::messages::produce_response::{
    BatchIndexAndErrorMessage, LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse,
    TopicProduceResponse,
};
use proto_kafka::messages::{BrokerId, ProduceRequest, ProduceResponse};

use super::errors::{replica, replica_message};
use super::leader_hint;
use super::{now_ms, str_bytes, Context};
use crate::metrics::CodecLabels;
use crate::partition::{Partition, ReplicaError};
use crate::protocol::error_code::code;
use crate::records::batch::BatchHeader;

/// One partition's outcome so far.
#[derive(Debug)]
enum Outcome {
    Failed(i16, Option<String>, Option<usize>),
    Appended {
        partition: Arc<Partition>,
        base_offset: i64,
        end_offset: i64,
        leader_epoch: i32,
        log_append_time_ms: i64,
        log_start_offset: i64,
    },
}

/// A produce request whose batches are appended and whose acknowledgements are pending.
#[derive(Debug)]
pub struct Pending {
    version: i16,
    acks: i16,
    timeout: Duration,
    topics: Vec<(proto_kafka::messages::TopicName, Vec<(i32, Outcome)>)>,
}

fn failure(error: &ReplicaError) -> Outcome {
    let record_index = match error {
        ReplicaError::InvalidRecords(invalid) => invalid.record_index,
        _ => None,
    };
    Outcome::Failed(replica(error), replica_message(error), record_index)
}

fn append_one(
    ctx: &Context,
    topic: &str,
    index: i32,
    records: Option<&bytes::Bytes>,
    acks: i16,
) -> Outcome {
    if crate::group::is_internal(topic) {
        return Outcome::Failed(
            code(ResponseError::InvalidTopicException),
            Some(format!("cannot append to internal topic {topic}")),
            None,
        );
    }
    let partition = match ctx.replicas.replica(&ctx.cache.image(), topic, index) {
        Ok(partition) => partition,
        Err(error) => return failure(&error),
    };
    let Some(records) = records.filter(|r| !r.is_empty()) else {
        return Outcome::Failed(
            code(ResponseError::InvalidRecord),
            Some("the partition's records are missing".into()),
            None,
        );
    };
    let mut batch = BytesMut::from(&records[..]);
    match partition.append_as_leader(&mut batch, acks, now_ms()) {
        Ok(appended) if appended.info.duplicate => {
            ctx.metrics.duplicate_batches.inc();
            Outcome::Appended {
                leader_epoch: partition.state().leader_epoch,
                partition,
                base_offset: appended.info.base_offset,
                end_offset: appended.info.last_offset + 1,
                log_append_time_ms: -1,
                log_start_offset: appended.log_start_offset,
            }
        }
        Ok(appended) => {
            if BatchHeader::parse(&batch).is_some_and(|h| h.has_producer_id()) {
                ctx.metrics.idempotent_batches.inc();
            }
            let codec = BatchHeader::parse(&batch)
                .and_then(|h| h.codec())
                .map_or("unknown", |c| c.name());
            ctx.metrics
                .produce_batches
                .get_or_create(&CodecLabels { codec })
                .inc();
            ctx.metrics.bytes_in.inc_by(batch.len() as u64);
            ctx.metrics
                .messages_in
                .inc_by((appended.info.last_offset - appended.info.base_offset + 1) as u64);
            Outcome::Appended {
                leader_epoch: partition.state().leader_epoch,
                partition,
                base_offset: appended.info.base_offset,
                end_offset: appended.info.last_offset + 1,
                log_append_time_ms: appended.info.log_append_time_ms,
                log_start_offset: appended.log_start_offset,
            }
        }
        Err(error) => failure(&error),
    }
}

/// Validates and appends every partition's batch, in request order.
pub fn append(ctx: &Context, request: ProduceRequest, version: i16) -> Pending {
    let acks = request.acks;
    let refuse_all = if !matches!(acks, -1..=1) {
        Some(Outcome::Failed(
            code(ResponseError::InvalidRequiredAcks),
            None,
            None,
        ))
    } else if request.transactional_id.is_some() {
        Some(failure(&ReplicaError::Unsupported(
            "transactional produce is not supported yet".into(),
        )))
    } else {
        None
    };
    let topics = request
        .topic_data
        .into_iter()
        .map(|topic| {
            let name = topic.name.0.as_str().to_string();
            let partitions = topic
                .partition_data
                .into_iter()
                .map(|p| {
                    let outcome = match &refuse_all {
                        Some(Outcome::Failed(c, m, _)) => Outcome::Failed(*c, m.clone(), None),
                        _ => append_one(ctx, &name, p.index, p.records.as_ref(), acks),
                    };
                    (p.index, outcome)
                })
                .collect();
            (topic.name, partitions)
        })
        .collect();
    Pending {
        version,
        acks,
        timeout: Duration::from_millis(request.timeout_ms.max(0) as u64),
        topics,
    }
}

async fn settle(outcome: Outcome, acks: i16, deadline: tokio::time::Instant) -> Outcome {
    let Outcome::Appended {
        partition,
        end_offset,
        leader_epoch,
        ..
    } = &outcome
    else {
        return outcome;
    };
    let waited = tokio::time::timeout_at(
        deadline,
        partition.wait_for_acks(*end_offset, acks, *leader_epoch),
    )
    .await;
    match waited {
        Ok(Ok(())) => outcome,
        Ok(Err(error)) => failure(&error),
        Err(_) => failure(&ReplicaError::Timeout),
    }
}

/// Waits for the acknowledgements and builds the response (`None` for acks=0).
pub async fn complete(ctx: &Context, pending: Pending, listener: &str) -> Option<ProduceResponse> {
    if pending.acks == 0 {
        return None;
    }
    let Pending {
        version,
        acks,
        timeout,
        topics,
    } = pending;
    // One deadline for the whole request, as Kafka's timeout_ms means: every partition
    // of every topic waits at the same time.
    let deadline = tokio::time::Instant::now() + timeout;
    let settled = join_all(topics.into_iter().map(|(name, partitions)| async move {
        let settled =
            join_all(partitions.into_iter().map(|(index, outcome)| async move {
                (index, settle(outcome, acks, deadline).await)
            }))
            .await;
        (name, settled)
    }))
    .await;
    let image = ctx.cache.image();
    let mut leaders: BTreeSet<i32> = BTreeSet::new();
    let responses = settled
        .into_iter()
        .map(|(name, settled)| {
            let partition_responses = settled
                .into_iter()
                .map(|(index, outcome)| {
                    let response = partition_response(ctx, index, outcome, version);
                    if version < 10 || !leader_hint::points_elsewhere(response.error_code) {
                        return response;
                    }
                    match leader_hint::current_leader(&image, name.0.as_str(), index) {
                        Some((leader, epoch)) => {
                            leaders.insert(leader);
                            response.with_current_leader(
                                LeaderIdAndEpoch::default()
                                    .with_leader_id(BrokerId(leader))
                                    .with_leader_epoch(epoch),
                            )
                        }
                        None => response,
                    }
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(name)
                .with_partition_responses(partition_responses)
        })
        .collect();
    let node_endpoints = leaders
        .into_iter()
        .filter_map(|leader| {
            let (host, port, rack) = leader_hint::endpoint(&image, leader, listener)?;
            Some(
                NodeEndpoint::default()
                    .with_node_id(BrokerId(leader))
                    .with_host(str_bytes(host))
                    .with_port(port)
                    .with_rack(rack.map(str_bytes)),
            )
        })
        .collect();
    Some(
        ProduceResponse::default()
            .with_responses(responses)
            .with_node_endpoints(node_endpoints),
    )
}

fn partition_response(
    ctx: &Context,
    index: i32,
    outcome: Outcome,
    version: i16,
) -> PartitionProduceResponse {
    let response = PartitionProduceResponse::default().with_index(index);
    match outcome {
        Outcome::Appended {
            base_offset,
            log_append_time_ms,
            log_start_offset,
            ..
        } => {
            let response = response
                .with_base_offset(base_offset)
                .with_log_append_time_ms(log_append_time_ms);
            if version >= 5 {
                response.with_log_start_offset(log_start_offset)
            } else {
                response
            }
        }
        Outcome::Failed(error_code, message, record_index) => {
            ctx.metrics.error("Produce", error_code);
            let mut response = response.with_error_code(error_code).with_base_offset(-1);
            if version >= 8 {
                response = response.with_error_message(message.clone().map(str_bytes));
                if let Some(batch_index) = record_index {
                    response =
                        response.with_record_errors(vec![BatchIndexAndErrorMessage::default()
                            .with_batch_index(batch_index as i32)
                            .with_batch_index_error_message(message.map(str_bytes))]);
                }
            }
            response
        }
    }
}
