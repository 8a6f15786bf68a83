//! ListOffsets: earliest (-2) is the log start offset, latest (-1) the high watermark
//! (never the log end: consumers and lag must not see unacknowledged offsets), max
//! timestamp (-3, v7) the record with the largest timestamp, and a timestamp finds the
//! first record at or after it.

use std::collections::HashSet;

use proto_kafka::error::ResponseError;
use proto_kafka::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use proto_kafka::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::errors::replica;
use super::Context;
use crate::protocol::error_code::code;

pub fn handle(ctx: &Context, request: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    let mut seen: HashSet<(String, i32)> = HashSet::new();
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.name.0.as_str().to_string();
            let partitions = topic
                .partitions
                .into_iter()
                .map(|p| {
                    let response = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    let epoch = if version >= 4 {
                        p.current_leader_epoch
                    } else {
                        -1
                    };
                    let outcome = if !seen.insert((name.clone(), p.partition_index)) {
                        Err(code(ResponseError::InvalidRequest))
                    } else {
                        lookup(ctx, &name, p.partition_index, p.timestamp, epoch, version)
                    };
                    match outcome {
                        Ok((offset, timestamp, leader_epoch)) => {
                            let response = response.with_offset(offset).with_timestamp(timestamp);
                            if version >= 4 {
                                response.with_leader_epoch(leader_epoch)
                            } else {
                                response
                            }
                        }
                        Err(error) => {
                            ctx.metrics.error("ListOffsets", error);
                            response.with_error_code(error)
                        }
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

fn lookup(
    ctx: &Context,
    topic: &str,
    index: i32,
    timestamp: i64,
    epoch: i32,
    version: i16,
) -> Result<(i64, i64, i32), i16> {
    let partition = ctx
        .replicas
        .replica(&ctx.cache.image(), topic, index)
        .map_err(|e| replica(&e))?;
    // -3 (max timestamp) needs v7; -4/-5 (tiered storage) need v8+, not advertised.
    if timestamp < -3 || (timestamp == -3 && version < 7) {
        return Err(code(ResponseError::InvalidRequest));
    }
    // Timestamp lookups read segment files: off the async workers.
    let answer = crate::blocking::run(|| partition.list_offset(timestamp, epoch))
        .map_err(|e| replica(&e))?;
    Ok((answer.offset, answer.timestamp, answer.leader_epoch))
}
