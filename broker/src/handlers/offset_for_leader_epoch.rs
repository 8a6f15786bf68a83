//! OffsetForLeaderEpoch (v2-4, KIP-320): where a leader epoch ended in the leader's log,
//! so a consumer that followed an older leader can tell whether its position was
//! truncated away. The answer is the largest epoch at or below the one asked for and
//! the offset where the next epoch starts (the log end for the latest), fenced by
//! `current_leader_epoch` as Fetch is. Followers do not use it: they get the diverging
//! epoch in their fetch answer (KIP-279).

use std::collections::HashSet;

use proto_kafka::error::ResponseError;
use proto_kafka::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use proto_kafka::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::errors::replica;
use super::Context;
use crate::protocol::error_code::code;

pub fn handle(ctx: &Context, request: OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse {
    let image = ctx.cache.image();
    let mut seen: HashSet<(String, i32)> = HashSet::new();
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.topic.0.as_str().to_string();
            let partitions = topic
                .partitions
                .into_iter()
                .map(|p| {
                    let answer = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    let outcome = if !seen.insert((name.clone(), p.partition)) {
                        Err(code(ResponseError::InvalidRequest))
                    } else {
                        ctx.replicas
                            .replica(&image, &name, p.partition)
                            .and_then(|r| r.epoch_end(p.leader_epoch, p.current_leader_epoch))
                            .map_err(|e| replica(&e))
                    };
                    match outcome {
                        Ok(Some((epoch, end))) => {
                            answer.with_leader_epoch(epoch).with_end_offset(end)
                        }
                        Ok(None) => answer,
                        Err(error) => {
                            ctx.metrics.error("OffsetForLeaderEpoch", error);
                            answer.with_error_code(error)
                        }
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
