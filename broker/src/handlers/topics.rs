//! DeleteTopics and CreatePartitions: forwarded to the controller, answered once this
//! broker's metadata reflects the change (read-your-writes).

use std::time::Duration;

use proto_kafka::messages::create_partitions_response::CreatePartitionsTopicResult;
use proto_kafka::messages::delete_topics_response::DeletableTopicResult;
use proto_kafka::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    TopicName,
};
use uuid::Uuid;

use super::errors::admin;
use super::{str_bytes, Context};
use crate::controller::AdminError;

fn wait_time(timeout_ms: i32) -> Duration {
    Duration::from_millis(timeout_ms.clamp(1000, 60_000) as u64)
}

pub async fn delete_topics(
    ctx: &Context,
    request: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    let image = ctx.cache.image();
    // v6 names topics by name or id; older versions by name.
    let wanted: Vec<(Option<String>, Uuid)> = if version >= 6 {
        request
            .topics
            .iter()
            .map(|t| {
                (
                    t.name.as_ref().map(|n| n.0.as_str().to_string()),
                    t.topic_id,
                )
            })
            .collect()
    } else {
        request
            .topic_names
            .iter()
            .map(|n| (Some(n.0.as_str().to_string()), Uuid::nil()))
            .collect()
    };
    let mut results: Vec<(Option<String>, Uuid, Result<(), AdminError>)> = Vec::new();
    let mut names = Vec::new();
    for (name, id) in wanted {
        let resolved = match name {
            Some(n) => Ok(n),
            None => image
                .topic_by_id(id)
                .map(|(n, _)| n.to_string())
                .ok_or_else(|| AdminError::UnknownTopicId(format!("no topic has id {id}"))),
        };
        match resolved {
            Ok(name) if crate::group::is_internal(&name) => results.push((
                Some(name.clone()),
                id,
                Err(AdminError::InvalidRequest(format!(
                    "deletion of internal topic {name} is prohibited"
                ))),
            )),
            Ok(name) if !ctx.config.bool("delete.topic.enable") => {
                results.push((Some(name), id, Err(AdminError::TopicDeletionDisabled)))
            }
            Ok(name) => {
                names.push(name.clone());
                results.push((Some(name), id, Ok(())));
            }
            Err(err) => results.push((None, id, Err(err))),
        }
    }
    let ids: std::collections::HashMap<String, Uuid> = names
        .iter()
        .filter_map(|n| image.topic(n).map(|t| (n.clone(), t.id)))
        .collect();
    let (outcomes, _) = ctx
        .admin
        .delete_topics(names, wait_time(request.timeout_ms))
        .await;
    let mut outcomes: std::collections::HashMap<String, Result<(), AdminError>> =
        outcomes.into_iter().collect();
    let responses = results
        .into_iter()
        .map(|(name, id, early)| {
            let outcome = match (&name, early) {
                (Some(n), Ok(())) => outcomes.remove(n).unwrap_or(Ok(())),
                (_, err) => err,
            };
            let topic_id = name
                .as_ref()
                .and_then(|n| ids.get(n).copied())
                .unwrap_or(id);
            let mut result = DeletableTopicResult::default()
                .with_name(name.map(|n| TopicName(str_bytes(n))))
                .with_error_message(None);
            if version >= 6 {
                result = result.with_topic_id(topic_id);
            }
            if let Err(err) = outcome {
                let (code, message) = admin(&err);
                ctx.metrics.error("DeleteTopics", code);
                result = result.with_error_code(code);
                if version >= 5 {
                    result = result.with_error_message(Some(str_bytes(message)));
                }
            }
            result
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}

pub async fn create_partitions(
    ctx: &Context,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let assignments = topic.assignments.as_ref().map(|a| {
            a.iter()
                .map(|x| x.broker_ids.iter().map(|b| b.0).collect())
                .collect()
        });
        let outcome = ctx
            .admin
            .create_partitions(
                topic.name.0.as_str(),
                topic.count,
                assignments,
                request.validate_only,
                wait_time(request.timeout_ms),
            )
            .await;
        let result = CreatePartitionsTopicResult::default()
            .with_name(topic.name.clone())
            .with_error_message(None);
        results.push(match outcome {
            Ok(_) => result,
            Err(err) => {
                let (code, message) = admin(&err);
                ctx.metrics.error("CreatePartitions", code);
                result
                    .with_error_code(code)
                    .with_error_message(Some(str_bytes(message)))
            }
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}
