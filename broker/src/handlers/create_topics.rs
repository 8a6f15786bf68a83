//! CreateTopics: forwarded to the controller; answered once this broker's metadata has
//! reached the write (read-your-writes), so the caller can use the topic at once.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use proto_kafka::error::ResponseError;
use proto_kafka::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use proto_kafka::messages::{CreateTopicsRequest, CreateTopicsResponse};

use super::errors::admin;
use super::{str_bytes, Context};
use crate::config::topic::describe_all;
use crate::controller::{AdminError, TopicSpec};
use crate::metadata::schema::TopicRecord;
use crate::protocol::error_code::code;

fn spec_of(
    topic: &proto_kafka::messages::create_topics_request::CreatableTopic,
) -> Result<TopicSpec, AdminError> {
    if crate::group::is_internal(topic.name.as_str()) {
        return Err(AdminError::InvalidRequest(format!(
            "creation of internal topic {} is prohibited",
            topic.name.as_str()
        )));
    }
    let mut configs = BTreeMap::new();
    for c in &topic.configs {
        let Some(value) = &c.value else {
            return Err(AdminError::InvalidConfig(format!(
                "{}: a null value is not allowed",
                c.name.as_str()
            )));
        };
        configs.insert(c.name.as_str().to_string(), value.as_str().to_string());
    }
    let assignments = topic
        .assignments
        .iter()
        .map(|a| {
            (
                a.partition_index,
                a.broker_ids.iter().map(|b| b.0).collect(),
            )
        })
        .collect();
    Ok(TopicSpec {
        name: topic.name.0.as_str().to_string(),
        partitions: topic.num_partitions,
        replication_factor: topic.replication_factor,
        assignments,
        configs,
    })
}

pub async fn handle(
    ctx: &Context,
    request: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for t in &request.topics {
        *counts.entry(t.name.0.as_str().to_string()).or_default() += 1;
    }
    let mut early: Vec<(String, Result<TopicRecord, AdminError>)> = Vec::new();
    let mut specs = Vec::new();
    for topic in &request.topics {
        let name = topic.name.0.as_str().to_string();
        if counts.get(&name).copied().unwrap_or(0) > 1 {
            early.push((
                name.clone(),
                Err(AdminError::InvalidRequest(format!(
                    "topic {name} appears more than once in the request"
                ))),
            ));
            continue;
        }
        match spec_of(topic) {
            Ok(spec) => specs.push(spec),
            Err(err) => early.push((name, Err(err))),
        }
    }
    let wait = Duration::from_millis(request.timeout_ms.clamp(1000, 60_000) as u64);
    let (created, caught_up) = ctx
        .admin
        .create_topics(specs, request.validate_only, wait)
        .await;
    let mut outcomes: HashMap<String, Result<TopicRecord, AdminError>> =
        early.into_iter().collect();
    outcomes.extend(created);
    let results = request
        .topics
        .iter()
        .map(|t| {
            let name = t.name.0.as_str();
            let outcome = outcomes
                .get(name)
                .cloned()
                .unwrap_or(Err(AdminError::InvalidRequest(
                    "topic was not processed".into(),
                )));
            result(ctx, t.name.clone(), outcome, caught_up, version)
        })
        .collect();
    CreateTopicsResponse::default().with_topics(results)
}

fn result(
    ctx: &Context,
    name: proto_kafka::messages::TopicName,
    outcome: Result<TopicRecord, AdminError>,
    caught_up: bool,
    version: i16,
) -> CreatableTopicResult {
    let base = CreatableTopicResult::default().with_name(name);
    match outcome {
        Ok(record) if caught_up => {
            let mut ok = base.with_error_message(None);
            if version >= 5 {
                let image = ctx.cache.image();
                let configs = describe_all(&record.configs, &image.broker_view(&ctx.config))
                    .into_iter()
                    .map(|(key, value, source)| {
                        CreatableTopicConfigs::default()
                            .with_name(str_bytes(key))
                            .with_value(Some(str_bytes(value)))
                            .with_config_source(source.kafka_code())
                    })
                    .collect();
                ok = ok
                    .with_num_partitions(record.partitions)
                    .with_replication_factor(record.replication_factor)
                    .with_configs(Some(configs));
            } else {
                ok = ok.with_configs(None);
            }
            if version >= 7 {
                ok = ok.with_topic_id(record.id);
            }
            ok
        }
        Ok(_) => {
            let error = code(ResponseError::RequestTimedOut);
            ctx.metrics.error("CreateTopics", error);
            base.with_error_code(error)
                .with_error_message(Some(str_bytes(
                    "the topic was created but this broker has not seen it yet",
                )))
                .with_configs(None)
        }
        Err(err) => {
            let (error, message) = admin(&err);
            ctx.metrics.error("CreateTopics", error);
            base.with_error_code(error)
                .with_error_message(Some(str_bytes(message)))
                .with_configs(None)
        }
    }
}
