//! Committed offsets: OffsetCommit (answered once the record is stored), OffsetFetch
//! (one group before v8, several from v8) and OffsetDelete.

use proto_kafka::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use proto_kafka::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use proto_kafka::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use proto_kafka::messages::{
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    OffsetFetchRequest, OffsetFetchResponse, TopicName,
};

use super::{str_bytes, Context};
use crate::group::coordinator::{FetchedOffset, OffsetToCommit};

pub async fn offset_commit(
    ctx: &Context,
    request: OffsetCommitRequest,
    version: i16,
) -> OffsetCommitResponse {
    let offsets: Vec<OffsetToCommit> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| OffsetToCommit {
                topic: t.name.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: if version >= 6 {
                    p.committed_leader_epoch
                } else {
                    -1
                },
                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
            })
        })
        .collect();
    let instance = request
        .group_instance_id
        .as_ref()
        .filter(|_| version >= 7)
        .map(|s| s.to_string());
    let outcome = ctx
        .groups
        .commit(
            request.group_id.as_str(),
            request.generation_id_or_member_epoch,
            request.member_id.as_str(),
            instance.as_deref(),
            offsets,
        )
        .await;
    let mut codes = match &outcome {
        Ok(codes) => codes.clone().into_iter(),
        Err(_) => Vec::new().into_iter(),
    };
    let topics = request
        .topics
        .iter()
        .map(|t| {
            OffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            let error = match &outcome {
                                Ok(_) => codes.next().unwrap_or(0),
                                Err(e) => *e,
                            };
                            if error != 0 {
                                ctx.metrics.error("OffsetCommit", error);
                            }
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(error)
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// (group, requested partitions or all) of an OffsetFetch, whichever version.
type GroupQuery = (String, Option<Vec<(String, Vec<i32>)>>);

fn queries(request: &OffsetFetchRequest, version: i16) -> Vec<GroupQuery> {
    if version >= 8 {
        return request
            .groups
            .iter()
            .map(|g| {
                (
                    g.group_id.to_string(),
                    g.topics.as_ref().map(|ts| {
                        ts.iter()
                            .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
                            .collect()
                    }),
                )
            })
            .collect();
    }
    vec![(
        request.group_id.to_string(),
        request.topics.as_ref().map(|ts| {
            ts.iter()
                .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
                .collect()
        }),
    )]
}

/// Offsets grouped by topic, in the order they came.
fn by_topic(offsets: Vec<FetchedOffset>) -> Vec<(String, Vec<FetchedOffset>)> {
    let mut out: Vec<(String, Vec<FetchedOffset>)> = Vec::new();
    for o in offsets {
        match out.iter_mut().find(|(t, _)| *t == o.topic) {
            Some((_, list)) => list.push(o),
            None => out.push((o.topic.clone(), vec![o])),
        }
    }
    out
}

pub fn offset_fetch(
    ctx: &Context,
    request: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    let mut response = OffsetFetchResponse::default();
    for (group, partitions) in queries(&request, version) {
        let requested = partitions.clone();
        let result = ctx.groups.fetch_offsets(&group, partitions);
        if let Err(error) = &result {
            ctx.metrics.error("OffsetFetch", *error);
        }
        if version >= 8 {
            let (error, offsets) = match result {
                Ok(o) => (0, o),
                Err(e) => (e, Vec::new()),
            };
            let topics = by_topic(offsets)
                .into_iter()
                .map(|(topic, list)| {
                    OffsetFetchResponseTopics::default()
                        .with_name(TopicName(str_bytes(topic)))
                        .with_partitions(
                            list.into_iter()
                                .map(|o| {
                                    OffsetFetchResponsePartitions::default()
                                        .with_partition_index(o.partition)
                                        .with_committed_offset(o.offset)
                                        .with_committed_leader_epoch(o.leader_epoch)
                                        .with_metadata(Some(str_bytes(o.metadata)))
                                })
                                .collect(),
                        )
                })
                .collect();
            response.groups.push(
                OffsetFetchResponseGroup::default()
                    .with_group_id(proto_kafka::messages::GroupId(str_bytes(group)))
                    .with_topics(topics)
                    .with_error_code(error),
            );
            continue;
        }
        // Before v8 one group; before v2 a group error can only go on each partition.
        let (error, offsets) = match result {
            Ok(o) => (0, o),
            Err(e) => (
                e,
                requested
                    .unwrap_or_default()
                    .into_iter()
                    .flat_map(|(t, ps)| {
                        ps.into_iter().map(move |p| FetchedOffset {
                            topic: t.clone(),
                            partition: p,
                            offset: -1,
                            leader_epoch: -1,
                            metadata: String::new(),
                        })
                    })
                    .collect(),
            ),
        };
        let partition_error = if version < 2 { error } else { 0 };
        response.topics = by_topic(offsets)
            .into_iter()
            .map(|(topic, list)| {
                OffsetFetchResponseTopic::default()
                    .with_name(TopicName(str_bytes(topic)))
                    .with_partitions(
                        list.into_iter()
                            .map(|o| {
                                OffsetFetchResponsePartition::default()
                                    .with_partition_index(o.partition)
                                    .with_committed_offset(o.offset)
                                    .with_committed_leader_epoch(o.leader_epoch)
                                    .with_metadata(Some(str_bytes(o.metadata)))
                                    .with_error_code(partition_error)
                            })
                            .collect(),
                    )
            })
            .collect();
        response.error_code = error;
    }
    response
}

pub async fn offset_delete(ctx: &Context, request: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let partitions: Vec<(String, i32)> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.to_string(), p.partition_index))
        })
        .collect();
    match ctx
        .groups
        .delete_offsets(request.group_id.as_str(), partitions)
        .await
    {
        Err(error) => {
            ctx.metrics.error("OffsetDelete", error);
            OffsetDeleteResponse::default().with_error_code(error)
        }
        Ok(codes) => {
            let mut codes = codes.into_iter();
            let topics = request
                .topics
                .iter()
                .map(|t| {
                    OffsetDeleteResponseTopic::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    let error = codes.next().unwrap_or(0);
                                    if error != 0 {
                                        ctx.metrics.error("OffsetDelete", error);
                                    }
                                    OffsetDeleteResponsePartition::default()
                                        .with_partition_index(p.partition_index)
                                        .with_error_code(error)
                                })
                                .collect(),
                        )
                })
                .collect();
            OffsetDeleteResponse::default().with_topics(topics)
        }
    }
}
