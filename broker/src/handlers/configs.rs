//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics and brokers.
//!
//! Topic configs are the topic's overrides in its metadata record; broker configs layer
//! dynamic values (per broker, and `default` for all) from the metadata store over the
//! static configuration. Only cluster-wide log defaults (the broker synonyms of topic
//! keys) are dynamic; the rest are reported read-only.

use std::collections::BTreeMap;
use std::time::Duration;

use proto_kafka::messages::alter_configs_response::AlterConfigsResourceResponse;
use proto_kafka::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use proto_kafka::messages::{
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use proto_kafka::protocol::StrBytes;

use super::errors::admin;
use super::{str_bytes, Context};
use crate::config::defs::{is_internal, Kind, BROKER_KEYS, TOPIC_KEYS};
use crate::config::layers::{is_dynamic, BrokerView, CLUSTER_DEFAULT};
use crate::config::topic;
use crate::controller::{AdminError, ConfigChange, ConfigOp, ConfigOpKind, ConfigResource};
use crate::metadata::cache::MetadataImage;

/// Kafka's `ConfigResource.Type` codes.
const TOPIC: i8 = 2;
const BROKER: i8 = 4;

/// IncrementalAlterConfigs operations.
const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

/// Kafka's `ConfigType` code of a key kind.
fn config_type(kind: Kind) -> i8 {
    match kind {
        Kind::Bool => 1,
        Kind::String | Kind::Enum(_) => 2,
        Kind::Int { .. } => 3,
        Kind::Long { .. } => 5,
        Kind::Double { .. } => 6,
        Kind::List => 7,
    }
}

fn wanted(keys: &Option<Vec<StrBytes>>, name: &str) -> bool {
    keys.as_ref()
        .is_none_or(|ks| ks.iter().any(|k| k.as_str() == name))
}

fn synonyms(layers: Vec<(String, String, i8)>) -> Vec<DescribeConfigsSynonym> {
    layers
        .into_iter()
        .map(|(name, value, source)| {
            DescribeConfigsSynonym::default()
                .with_name(str_bytes(name))
                .with_value(Some(str_bytes(value)))
                .with_source(source)
        })
        .collect()
}

struct Entry {
    name: &'static str,
    kind: Kind,
    doc: &'static str,
    read_only: bool,
    /// (synonym name, value, source code), most specific first; the first is the value.
    layers: Vec<(String, String, i8)>,
}

fn entry_result(
    entry: Entry,
    request: &DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResourceResult {
    let (value, source) = entry
        .layers
        .first()
        .map_or((None, 5), |(_, v, s)| (Some(str_bytes(v.clone())), *s));
    let mut result = DescribeConfigsResourceResult::default()
        .with_name(str_bytes(entry.name))
        .with_value(value)
        .with_read_only(entry.read_only)
        .with_config_source(source);
    if request.include_synonyms {
        result = result.with_synonyms(synonyms(entry.layers));
    }
    if version >= 3 {
        result = result
            .with_config_type(config_type(entry.kind))
            .with_documentation(request.include_documentation.then(|| str_bytes(entry.doc)));
    } else {
        result = result.with_documentation(None);
    }
    result
}

fn topic_entries(
    image: &MetadataImage,
    view: &BrokerView<'_>,
    name: &str,
) -> Result<Vec<Entry>, AdminError> {
    let record = image
        .topic(name)
        .ok_or_else(|| AdminError::UnknownTopic(format!("topic {name} does not exist")))?;
    Ok(TOPIC_KEYS
        .iter()
        .filter(|k| !is_internal(k.name))
        .map(|k| Entry {
            name: k.name,
            kind: k.kind,
            doc: k.doc,
            read_only: false,
            layers: topic::layers(k.name, &record.configs, view)
                .into_iter()
                .map(|(n, v, s)| (n, v, s.kafka_code()))
                .collect(),
        })
        .collect())
}

fn broker_entries(view: &BrokerView<'_>, default_only: bool) -> Vec<Entry> {
    BROKER_KEYS
        .iter()
        .filter(|k| !is_internal(k.name))
        .filter_map(|k| {
            let layers: Vec<(String, String, i8)> = view
                .layers(k.name)
                .into_iter()
                .map(|(v, s)| (k.name.to_string(), v, s.kafka_code()))
                .filter(|l| !default_only || l.2 == 3)
                .collect();
            // The cluster-default resource lists only what is set dynamically for all.
            (!default_only || !layers.is_empty()).then_some(Entry {
                name: k.name,
                kind: k.kind,
                doc: k.doc,
                read_only: !is_dynamic(k.name),
                layers,
            })
        })
        .collect()
}

pub fn describe(
    ctx: &Context,
    request: DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    let image = ctx.cache.image();
    let view = image.broker_view(&ctx.config);
    let results = request
        .resources
        .iter()
        .map(|resource| {
            let name = resource.resource_name.as_str();
            let entries = match resource.resource_type {
                TOPIC => topic_entries(&image, &view, name),
                BROKER if name.is_empty() => Ok(broker_entries(&view, true)),
                BROKER if name == ctx.config.broker_id.to_string() => {
                    Ok(broker_entries(&view, false))
                }
                BROKER => Err(AdminError::InvalidRequest(format!(
                    "this is broker {}; ask broker {name} for its configs",
                    ctx.config.broker_id
                ))),
                other => Err(AdminError::InvalidRequest(format!(
                    "resource type {other} is not supported"
                ))),
            };
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone())
                .with_error_message(None);
            match entries {
                Ok(entries) => result.with_configs(
                    entries
                        .into_iter()
                        .filter(|e| wanted(&resource.configuration_keys, e.name))
                        .map(|e| entry_result(e, &request, version))
                        .collect(),
                ),
                Err(err) => {
                    let (code, message) = admin(&err);
                    ctx.metrics.error("DescribeConfigs", code);
                    result
                        .with_error_code(code)
                        .with_error_message(Some(str_bytes(message)))
                }
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// The broker resource an alter request names: its id or "" for the cluster default.
fn broker_target(ctx: &Context, name: &str) -> Result<String, AdminError> {
    if name.is_empty() {
        return Ok(CLUSTER_DEFAULT.to_string());
    }
    if name == ctx.config.broker_id.to_string() {
        return Ok(name.to_string());
    }
    Err(AdminError::InvalidRequest(format!(
        "broker {name} is not this broker"
    )))
}

/// Alters a topic's or a broker's dynamic configs through the controller; answered once
/// this broker reflects the change.
async fn alter(
    ctx: &Context,
    resource_type: i8,
    name: &str,
    change: &ConfigChange,
    validate_only: bool,
) -> Result<(), AdminError> {
    let resource = match resource_type {
        TOPIC => ConfigResource::Topic(name.to_string()),
        BROKER => ConfigResource::Broker(broker_target(ctx, name)?),
        other => {
            return Err(AdminError::InvalidRequest(format!(
                "resource type {other} is not supported"
            )))
        }
    };
    ctx.admin
        .alter_configs(&resource, change, validate_only, Duration::from_secs(10))
        .await
        .map(|_| ())
}

/// The error code and message of an alter outcome (0 and none on success).
fn alter_error(
    ctx: &Context,
    api: &'static str,
    outcome: &Result<(), AdminError>,
) -> (i16, Option<StrBytes>) {
    match outcome {
        Ok(_) => (0, None),
        Err(err) => {
            let (code, message) = admin(err);
            ctx.metrics.error(api, code);
            (code, Some(str_bytes(message)))
        }
    }
}

/// AlterConfigs (legacy): the resource's dynamic configs become exactly the given set.
pub async fn alter_configs(ctx: &Context, request: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in &request.resources {
        let mut replacement = BTreeMap::new();
        let mut null = None;
        for c in &resource.configs {
            match &c.value {
                Some(v) => {
                    replacement.insert(c.name.as_str().to_string(), v.as_str().to_string());
                }
                None => null = Some(c.name.as_str().to_string()),
            }
        }
        let outcome = match null {
            Some(key) => Err(AdminError::InvalidConfig(format!(
                "{key}: a null value is not allowed"
            ))),
            None => {
                let change = ConfigChange::Replace(replacement);
                alter(
                    ctx,
                    resource.resource_type,
                    resource.resource_name.as_str(),
                    &change,
                    request.validate_only,
                )
                .await
            }
        };
        let (error, message) = alter_error(ctx, "AlterConfigs", &outcome);
        responses.push(
            AlterConfigsResourceResponse::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone())
                .with_error_code(error)
                .with_error_message(message),
        );
    }
    AlterConfigsResponse::default().with_responses(responses)
}

/// IncrementalAlterConfigs: SET, DELETE, APPEND and SUBTRACT on the current overrides.
pub async fn incremental_alter_configs(
    ctx: &Context,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in &request.resources {
        let resource_type = resource.resource_type;
        let ops: Result<Vec<ConfigOp>, AdminError> = resource
            .configs
            .iter()
            .map(|c| {
                let kind = match c.config_operation {
                    SET => ConfigOpKind::Set,
                    DELETE => ConfigOpKind::Delete,
                    APPEND => ConfigOpKind::Append,
                    SUBTRACT => ConfigOpKind::Subtract,
                    op => {
                        return Err(AdminError::InvalidRequest(format!(
                            "unknown config operation {op}"
                        )))
                    }
                };
                Ok(ConfigOp {
                    key: c.name.as_str().to_string(),
                    kind,
                    value: c.value.as_ref().map(|v| v.as_str().to_string()),
                })
            })
            .collect();
        let outcome = match ops {
            Ok(ops) => {
                alter(
                    ctx,
                    resource_type,
                    resource.resource_name.as_str(),
                    &ConfigChange::Ops(ops),
                    request.validate_only,
                )
                .await
            }
            Err(err) => Err(err),
        };
        let (error, message) = alter_error(ctx, "IncrementalAlterConfigs", &outcome);
        responses.push(
            proto_kafka::messages::incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(resource_type)
                .with_resource_name(resource.resource_name.clone())
                .with_error_code(error)
                .with_error_message(message),
        );
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
