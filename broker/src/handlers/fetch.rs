//! Fetch for consumers: whole batches from the one holding the fetch offset, capped at
//! the high watermark, at least one batch even above `max_bytes` (KIP-74), long-polling
//! up to `max_wait_ms` for `min_bytes`. Without transactions the last stable offset is
//! the high watermark, which librdkafka's read_committed consumers need to see data.
//!
//! A Fetch claiming to come from a replica (`replica_id >= 0`) is refused with
//! CLUSTER_AUTHORIZATION_FAILED: replication runs over gRPC, never on the client port
//! (CVE-2018-1288). Fetch sessions (KIP-227) are not offered: every response carries
//! session id 0, which clients treat as "full fetches only".

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::select_all;
use proto_kafka::error::ResponseError;
use proto_kafka::messages::fetch_request::FetchTopic;
use proto_kafka::messages::fetch_response::{
    FetchableTopicResponse, LeaderIdAndEpoch, PartitionData,
};
use proto_kafka::messages::{BrokerId, FetchRequest, FetchResponse};
use tokio::sync::watch;

use super::errors::replica;
use super::leader_hint;
use super::Context;
use crate::partition::{Offsets, Partition, ReadLimit};
use crate::protocol::error_code::code;

struct Read {
    topics: Vec<FetchableTopicResponse>,
    bytes: usize,
    errors: bool,
    /// Bytes read per partition, counted once the response is final (a long poll may
    /// read again).
    served: Vec<(Arc<Partition>, usize)>,
}

fn refused(request: &FetchRequest, error: i16) -> Vec<FetchableTopicResponse> {
    request
        .topics
        .iter()
        .map(|t| {
            FetchableTopicResponse::default()
                .with_topic(t.topic.clone())
                .with_topic_id(t.topic_id)
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| errored(p.partition, error))
                        .collect(),
                )
        })
        .collect()
}

fn errored(partition: i32, error: i16) -> PartitionData {
    PartitionData::default()
        .with_partition_index(partition)
        .with_error_code(error)
        .with_high_watermark(-1)
        .with_aborted_transactions(None)
        .with_records(Some(Bytes::new()))
}

pub async fn handle(ctx: &Context, request: FetchRequest, version: i16) -> FetchResponse {
    let replica_id = if version >= 15 {
        request.replica_state.replica_id.0
    } else {
        request.replica_id.0
    };
    let mut response = FetchResponse::default();
    if replica_id >= 0 {
        let error = code(ResponseError::ClusterAuthorizationFailed);
        ctx.metrics.error("Fetch", error);
        if version >= 7 {
            response = response.with_error_code(error);
        }
        return response.with_responses(refused(&request, error));
    }
    if version >= 7 && request.session_id != 0 {
        let error = code(ResponseError::FetchSessionIdNotFound);
        ctx.metrics.error("Fetch", error);
        return response.with_error_code(error);
    }
    let read_committed = request.isolation_level == 1;
    let min_bytes = request.min_bytes.max(0) as usize;
    // The broker's fetch.max.bytes caps what a client may ask for (Kafka's rule).
    let max_bytes = if request.max_bytes <= 0 {
        0
    } else {
        (request.max_bytes as usize).min(ctx.config.fetch_max_bytes)
    };
    let deadline = Instant::now() + Duration::from_millis(request.max_wait_ms.max(0) as u64);
    let mut shutdown = ctx.shutdown.clone();
    loop {
        // Subscribe before reading, so an append between the read and the wait wakes us.
        let mut receivers: Vec<watch::Receiver<Offsets>> = request
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(move |p| (t, p.partition)))
            .filter_map(|(t, p)| {
                ctx.replicas
                    .get(t.topic.0.as_str(), p)
                    .map(|p| p.subscribe())
            })
            .collect();
        let read = read_all(ctx, &request.topics, max_bytes, read_committed, version);
        let done = read.bytes >= min_bytes
            || read.errors
            || receivers.is_empty()
            || Instant::now() >= deadline
            || *shutdown.borrow();
        if done {
            ctx.metrics.bytes_out.inc_by(read.bytes as u64);
            for (partition, bytes) in &read.served {
                partition
                    .bytes_out
                    .fetch_add(*bytes as u64, Ordering::Relaxed);
            }
            return response.with_responses(read.topics);
        }
        let changed = select_all(receivers.iter_mut().map(|r| Box::pin(r.changed())));
        tokio::select! {
            _ = changed => {}
            _ = tokio::time::sleep_until(deadline.into()) => {}
            _ = shutdown.changed() => {}
        }
    }
}

fn read_all(
    ctx: &Context,
    topics: &[FetchTopic],
    max_bytes: usize,
    read_committed: bool,
    version: i16,
) -> Read {
    let mut read = Read {
        topics: Vec::with_capacity(topics.len()),
        bytes: 0,
        errors: false,
        served: Vec::new(),
    };
    for topic in topics {
        let name = topic.topic.0.as_str();
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            let data = read_partition(ctx, name, p, max_bytes, read_committed, version, &mut read);
            if data.error_code != 0 {
                ctx.metrics.error("Fetch", data.error_code);
                read.errors = true;
            }
            partitions.push(data);
        }
        read.topics.push(
            FetchableTopicResponse::default()
                .with_topic(topic.topic.clone())
                .with_topic_id(topic.topic_id)
                .with_partitions(partitions),
        );
    }
    read
}

fn read_partition(
    ctx: &Context,
    name: &str,
    p: &proto_kafka::messages::fetch_request::FetchPartition,
    max_bytes: usize,
    read_committed: bool,
    version: i16,
    read: &mut Read,
) -> PartitionData {
    let image = ctx.cache.image();
    // KIP-951: a refusal that says the leader is elsewhere says where (v12+).
    let hinted = |data: PartitionData| {
        if version < 12 || !leader_hint::points_elsewhere(data.error_code) {
            return data;
        }
        match leader_hint::current_leader(&image, name, p.partition) {
            Some((leader, epoch)) => data.with_current_leader(
                LeaderIdAndEpoch::default()
                    .with_leader_id(BrokerId(leader))
                    .with_leader_epoch(epoch),
            ),
            None => data,
        }
    };
    let partition = match ctx.replicas.replica(&image, name, p.partition) {
        Ok(partition) => partition,
        Err(error) => return hinted(errored(p.partition, replica(&error))),
    };
    let current_leader_epoch = if version >= 9 {
        p.current_leader_epoch
    } else {
        -1
    };
    let limit = (p.partition_max_bytes.max(0) as usize).min(max_bytes.saturating_sub(read.bytes));
    let min_one = read.bytes == 0;
    let data = match partition.read(
        p.fetch_offset,
        limit,
        min_one,
        current_leader_epoch,
        ReadLimit::HighWatermark,
    ) {
        Ok(data) => data,
        Err(error) => {
            let offsets = partition.offsets();
            return hinted(
                errored(p.partition, replica(&error))
                    .with_high_watermark(offsets.high_watermark)
                    .with_log_start_offset(if version >= 5 { offsets.log_start } else { -1 }),
            );
        }
    };
    read.bytes += data.records.len();
    if !data.records.is_empty() {
        read.served.push((partition.clone(), data.records.len()));
    }
    let mut response = PartitionData::default()
        .with_partition_index(p.partition)
        .with_high_watermark(data.high_watermark)
        .with_last_stable_offset(data.high_watermark)
        .with_aborted_transactions(read_committed.then(Vec::new))
        .with_records(Some(data.records));
    if version >= 5 {
        response = response.with_log_start_offset(data.log_start);
    }
    response
}
