//! DeleteRecords: moves partitions' log start offsets; the new start is checkpointed at
//! once, so deleted records do not come back after a crash.

use proto_kafka::error::ResponseError;
use proto_kafka::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use proto_kafka::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use tracing::warn;

use super::errors::replica;
use super::Context;
use crate::protocol::error_code::code;

pub async fn delete_records(ctx: &Context, request: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let image = ctx.cache.image();
    let mut moved = false;
    let topics: Vec<DeleteRecordsTopicResult> = request
        .topics
        .iter()
        .map(|topic| {
            let name = topic.name.0.as_str();
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let result = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_low_watermark(-1);
                    let outcome = if crate::group::is_internal(name) {
                        // As Kafka: the group coordinator owns the internal topic.
                        Err(code(ResponseError::InvalidTopicException))
                    } else {
                        ctx.replicas
                            .replica(&image, name, p.partition_index)
                            .and_then(|partition| {
                                crate::blocking::run(|| partition.delete_records(p.offset))
                            })
                            .map_err(|e| replica(&e))
                    };
                    match outcome {
                        Ok(low) => {
                            moved = true;
                            result.with_low_watermark(low)
                        }
                        Err(error) => {
                            ctx.metrics.error("DeleteRecords", error);
                            result.with_error_code(error)
                        }
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    if moved {
        let replicas = ctx.replicas.clone();
        let written = tokio::task::spawn_blocking(move || replicas.write_checkpoints()).await;
        if !matches!(written, Ok(Ok(()))) {
            // Unpersisted, a new log start would come back after a crash: never answer
            // success for it.
            warn!(outcome = ?written, "failed to checkpoint the new log start offsets");
            let error = code(ResponseError::KafkaStorageError);
            let topics = topics
                .into_iter()
                .map(|mut t: DeleteRecordsTopicResult| {
                    let partitions = std::mem::take(&mut t.partitions)
                        .into_iter()
                        .map(|p| {
                            if p.error_code == 0 {
                                ctx.metrics.error("DeleteRecords", error);
                                p.with_error_code(error).with_low_watermark(-1)
                            } else {
                                p
                            }
                        })
                        .collect();
                    t.with_partitions(partitions)
                })
                .collect();
            return DeleteRecordsResponse::default().with_topics(topics);
        }
    }
    DeleteRecordsResponse::default().with_topics(topics)
}
