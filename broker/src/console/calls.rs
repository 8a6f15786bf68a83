//! What the console asks other brokers over the Kafka protocol: data only a partition's
//! leader or a group's coordinator knows (offsets, log directories, groups, records),
//! and the console's actions (create topics, alter configs, reset offsets, ...).
//!
//! Brokers are dialled at their advertised endpoint of one listener, and only when this
//! broker's metadata shows them live. Read calls that cover many partitions or groups are
//! best effort: what a broker failed to answer is left out, so a page still renders.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use futures_util::future::join_all;
use proto_kafka::messages::consumer_protocol_assignment::ConsumerProtocolAssignment;
use proto_kafka::messages::create_partitions_request::CreatePartitionsTopic;
use proto_kafka::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use proto_kafka::messages::delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
use proto_kafka::messages::describe_configs_request::DescribeConfigsResource;
use proto_kafka::messages::describe_configs_response::DescribeConfigsResourceResult;
use proto_kafka::messages::describe_groups_response::DescribedGroupMember;
use proto_kafka::messages::fetch_request::{FetchPartition, FetchTopic};
use proto_kafka::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use proto_kafka::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use proto_kafka::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use proto_kafka::messages::offset_fetch_request::OffsetFetchRequestGroup;
use proto_kafka::messages::{
    BrokerId, CreatePartitionsRequest, CreateTopicsRequest, DeleteGroupsRequest,
    DeleteRecordsRequest, DescribeConfigsRequest, DescribeGroupsRequest, DescribeLogDirsRequest,
    DescribeLogDirsResponse, FetchRequest, FindCoordinatorRequest, FindCoordinatorResponse,
    GroupId, IncrementalAlterConfigsRequest, ListGroupsRequest, ListOffsetsRequest,
    ListOffsetsResponse, OffsetCommitRequest, OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use proto_kafka::protocol::{Decodable, StrBytes};
use proto_kafka::records::{Compression, RecordBatchDecoder};
use proto_kafka::ProtoError;
use tracing::debug;

pub use super::kafka::CallError;
use super::kafka::{self, check, error_name, Target, Timeouts};
use super::model::{ConfigRow, ConfigSource, LogDirRow, MemberRow, MessageRow};
use crate::metadata::cache::{MetadataCache, MetadataImage};
use crate::records::batch::{BatchHeader, Codec};
use crate::records::walk::decompress;

// Request versions: the newest this broker itself supports (protocol/api_versions.rs), so
// that every broker of the same build understands them.
const LIST_OFFSETS_VERSION: i16 = 7;
const DESCRIBE_LOG_DIRS_VERSION: i16 = 4;
const DESCRIBE_CONFIGS_VERSION: i16 = 4;
const LIST_GROUPS_VERSION: i16 = 5;
/// v4 batches keys: one request finds the coordinators of many groups.
const FIND_COORDINATOR_VERSION: i16 = 4;
const DESCRIBE_GROUPS_VERSION: i16 = 5;
/// v8 asks for many groups in one request.
const OFFSET_FETCH_VERSION: i16 = 8;
const FETCH_VERSION: i16 = 12;
/// Bytes one message-browser page may decompress in all.
const DECOMPRESSED_PAGE_BUDGET: usize = 16 << 20;
const CREATE_TOPICS_VERSION: i16 = 7;
const CREATE_PARTITIONS_VERSION: i16 = 3;
const INCREMENTAL_ALTER_CONFIGS_VERSION: i16 = 1;
const DELETE_RECORDS_VERSION: i16 = 2;
const OFFSET_COMMIT_VERSION: i16 = 8;
const DELETE_GROUPS_VERSION: i16 = 2;
// The batched forms `committed_offsets` relies on.
const _: () = assert!(OFFSET_FETCH_VERSION >= 8 && FIND_COORDINATOR_VERSION >= 4);

/// ListOffsets' special timestamps.
const EARLIEST: i64 = -2;
const LATEST: i64 = -1;
const READ_UNCOMMITTED: i8 = 0;
/// DescribeConfigs / IncrementalAlterConfigs resource types.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// FindCoordinator key type of a consumer group.
const KEY_TYPE_GROUP: i8 = 0;
/// IncrementalAlterConfigs operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
/// The newest consumer protocol assignment version the protocol crate knows; newer ones
/// only add fields at the end, so they are read as this one (as Kafka's clients do).
const MAX_ASSIGNMENT_VERSION: i16 = 3;
/// A record batch starts with its base offset (8 bytes) and its length (4 bytes).
const BATCH_PREFIX: usize = 12;

/// How long a broker may take over an action (the `timeout_ms` of the request).
const ACTION_TIMEOUT: Duration = Duration::from_secs(10);
/// On top of `ACTION_TIMEOUT` for the whole call: the answer still has to travel back.
const ACTION_MARGIN: Duration = Duration::from_secs(5);
/// A broker that does not accept a connection in this time is treated as down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// A fetch's byte budget is capped well under the response frame bound.
const MAX_FETCH_BYTES: i32 = 32 << 20;

/// A partition's log start and end offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRange {
    pub start: i64,
    pub end: i64,
}

/// One broker's log directories, and the size of each partition in them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BrokerLogDirs {
    pub dirs: Vec<LogDirRow>,
    pub partition_sizes: HashMap<(String, i32), u64>,
}

/// What DescribeConfigs is asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigResource {
    Topic(String),
    Broker(i32),
}

/// The groups every live broker coordinates.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GroupListing {
    pub groups: Vec<ListedGroup>,
    /// False when a broker did not answer: groups may be missing.
    pub complete: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedGroup {
    pub id: String,
    pub state: String,
    pub protocol_type: String,
    /// The broker that listed it.
    pub coordinator: i32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DescribedGroup {
    pub id: String,
    /// Kafka's state name (`Dead` for a group that does not exist).
    pub state: String,
    pub protocol_type: String,
    /// The assignor of the current generation (e.g. `range`).
    pub protocol: String,
    pub coordinator: i32,
    pub members: Vec<MemberRow>,
}

/// A group's committed offset of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// Records read from a partition, with the offsets the leader reported alongside.
#[derive(Debug, Clone, PartialEq)]
pub struct Fetched {
    pub rows: Vec<MessageRow>,
    /// Where the next page starts (see `DecodedPage::next`).
    pub next: Option<i64>,
    pub high_watermark: i64,
    pub log_start: i64,
}

/// The console's Kafka client over this broker's view of the cluster.
#[derive(Debug, Clone)]
pub struct Calls {
    cache: Arc<MetadataCache>,
    /// The listener whose advertised endpoint is dialled on each broker.
    listener: String,
    /// The whole-call timeout of reads.
    timeout: Duration,
    /// This broker's id: actions go to it, so that the page the console redirects to,
    /// built from this broker's metadata, already shows their effect (the broker answers
    /// an admin request once its own metadata has it).
    local: Option<i32>,
}

impl Calls {
    pub fn new(cache: Arc<MetadataCache>, listener: String, timeout: Duration) -> Calls {
        Calls {
            cache,
            listener,
            timeout,
            local: None,
        }
    }

    /// Sends actions (and other requests any broker can answer) to broker `id`, this one.
    /// Without it they go to the controller, else to any live broker.
    pub fn with_local_broker(mut self, id: i32) -> Calls {
        self.local = Some(id);
        self
    }

    /// The listener whose advertised endpoints are dialled.
    pub fn listener(&self) -> &str {
        &self.listener
    }

    fn read_timeouts(&self) -> Timeouts {
        Timeouts {
            connect: CONNECT_TIMEOUT.min(self.timeout),
            call: self.timeout,
        }
    }

    fn action_timeouts(&self) -> Timeouts {
        Timeouts {
            connect: CONNECT_TIMEOUT.min(self.timeout),
            call: self.timeout.max(ACTION_TIMEOUT + ACTION_MARGIN),
        }
    }

    /// Log start and end offsets of `wanted`, from their leaders (all of a leader's
    /// partitions in one request per timestamp, leaders concurrently). A partition whose
    /// leader is offline or did not answer is absent.
    pub async fn offsets(&self, wanted: &[(String, i32)]) -> HashMap<(String, i32), LogRange> {
        let image = self.cache.image();
        let mut by_leader: BTreeMap<i32, (Target, Vec<(String, i32)>)> = BTreeMap::new();
        let unique: BTreeSet<&(String, i32)> = wanted.iter().collect();
        for (topic, partition) in unique {
            match leader_target(&image, &self.listener, topic, *partition) {
                Ok(target) => by_leader
                    .entry(target.broker)
                    .or_insert_with(|| (target, Vec::new()))
                    .1
                    .push((topic.clone(), *partition)),
                Err(e) => debug!(topic, partition, cause = %e, "offsets skipped"),
            }
        }
        let asks = by_leader
            .into_values()
            .map(|(target, partitions)| self.leader_offsets(target, partitions));
        join_all(asks).await.into_iter().flatten().collect()
    }

    async fn leader_offsets(
        &self,
        target: Target,
        partitions: Vec<(String, i32)>,
    ) -> Vec<((String, i32), LogRange)> {
        // One request per timestamp: Kafka refuses a partition named twice in a request.
        let earliest = list_offsets_request(&partitions, EARLIEST);
        let latest = list_offsets_request(&partitions, LATEST);
        let timeouts = self.read_timeouts();
        let (earliest, latest) = tokio::join!(
            kafka::call(&target, &earliest, LIST_OFFSETS_VERSION, timeouts),
            kafka::call(&target, &latest, LIST_OFFSETS_VERSION, timeouts),
        );
        match (earliest, latest) {
            (Ok(earliest), Ok(latest)) => log_ranges(&earliest, &latest),
            (Err(e), _) | (_, Err(e)) => {
                debug!(broker = target.broker, cause = %e, "offsets unanswered");
                Vec::new()
            }
        }
    }

    /// The offset of the first record at or after `timestamp_ms`; None when there is none.
    pub async fn offset_for_time(
        &self,
        topic: &str,
        partition: i32,
        timestamp_ms: i64,
    ) -> Result<Option<i64>, CallError> {
        let target = leader_target(&self.cache.image(), &self.listener, topic, partition)?;
        let request = list_offsets_request(&[(topic.to_string(), partition)], timestamp_ms);
        let response = kafka::call(
            &target,
            &request,
            LIST_OFFSETS_VERSION,
            self.read_timeouts(),
        )
        .await?;
        let answer = response
            .topics
            .iter()
            .filter(|t| t.name.as_str() == topic)
            .flat_map(|t| &t.partitions)
            .find(|p| p.partition_index == partition)
            .ok_or_else(|| missing("ListOffsets", &target, format!("{topic}-{partition}")))?;
        check(answer.error_code, None, || {
            format!("find the offset of {topic}-{partition} at {timestamp_ms}")
        })?;
        Ok((answer.offset >= 0).then_some(answer.offset))
    }

    /// The log directories of `broker` (all topics).
    pub async fn log_dirs(&self, broker: i32) -> Result<BrokerLogDirs, CallError> {
        let target = broker_target(&self.cache.image(), &self.listener, broker)?;
        let request = DescribeLogDirsRequest::default().with_topics(None);
        let response = kafka::call(
            &target,
            &request,
            DESCRIBE_LOG_DIRS_VERSION,
            self.read_timeouts(),
        )
        .await?;
        broker_log_dirs(&response, broker)
    }

    /// A topic's or a broker's configuration, sorted by name; sensitive values hidden.
    pub async fn configs(&self, resource: ConfigResource) -> Result<Vec<ConfigRow>, CallError> {
        let image = self.cache.image();
        let (target, kind, name, what) = match &resource {
            ConfigResource::Topic(topic) => (
                self.admin_target(&image)?,
                RESOURCE_TOPIC,
                topic.clone(),
                format!("topic {topic}"),
            ),
            // A broker's own configuration is only known to that broker.
            ConfigResource::Broker(id) => (
                broker_target(&image, &self.listener, *id)?,
                RESOURCE_BROKER,
                id.to_string(),
                format!("broker {id}"),
            ),
        };
        let request = DescribeConfigsRequest::default()
            .with_resources(vec![DescribeConfigsResource::default()
                .with_resource_type(kind)
                .with_resource_name(str_bytes(&name))
                .with_configuration_keys(None)])
            .with_include_synonyms(false)
            .with_include_documentation(false);
        let response = kafka::call(
            &target,
            &request,
            DESCRIBE_CONFIGS_VERSION,
            self.read_timeouts(),
        )
        .await?;
        let result = response
            .results
            .iter()
            .find(|r| r.resource_type == kind && r.resource_name.as_str() == name)
            .ok_or_else(|| missing("DescribeConfigs", &target, what.clone()))?;
        check(result.error_code, result.error_message.as_ref(), || {
            format!("describe the configs of {what}")
        })?;
        Ok(config_rows(&result.configs))
    }

    /// The groups of every live broker, asked concurrently.
    pub async fn list_groups(&self) -> GroupListing {
        let image = self.cache.image();
        let targets: Vec<Target> = image
            .brokers
            .keys()
            .filter_map(|id| broker_target(&image, &self.listener, *id).ok())
            .collect();
        if targets.is_empty() {
            return GroupListing::default();
        }
        let asks = targets.iter().map(|t| self.broker_groups(t));
        let mut listing = GroupListing {
            groups: Vec::new(),
            complete: true,
        };
        for answer in join_all(asks).await {
            match answer {
                Ok(groups) => listing.groups.extend(groups),
                Err(e) => {
                    debug!(cause = %e, "groups unanswered");
                    listing.complete = false;
                }
            }
        }
        listing
            .groups
            .sort_by(|a, b| (&a.id, a.coordinator).cmp(&(&b.id, b.coordinator)));
        listing
    }

    async fn broker_groups(&self, target: &Target) -> Result<Vec<ListedGroup>, CallError> {
        let request = ListGroupsRequest::default()
            .with_states_filter(Vec::new())
            .with_types_filter(Vec::new());
        let response =
            kafka::call(target, &request, LIST_GROUPS_VERSION, self.read_timeouts()).await?;
        check(response.error_code, None, || {
            format!("list the groups of broker {}", target.broker)
        })?;
        Ok(response
            .groups
            .iter()
            .map(|g| ListedGroup {
                id: g.group_id.as_str().to_string(),
                state: g.group_state.as_str().to_string(),
                protocol_type: g.protocol_type.as_str().to_string(),
                coordinator: target.broker,
            })
            .collect())
    }

    /// A group's state and members, from its coordinator.
    pub async fn describe_group(&self, group: &str) -> Result<DescribedGroup, CallError> {
        let coordinator = self.coordinator(group).await?;
        let request = DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(str_bytes(group))])
            .with_include_authorized_operations(false);
        let response = kafka::call(
            &coordinator,
            &request,
            DESCRIBE_GROUPS_VERSION,
            self.read_timeouts(),
        )
        .await?;
        let described = response
            .groups
            .iter()
            .find(|g| g.group_id.as_str() == group)
            .ok_or_else(|| missing("DescribeGroups", &coordinator, format!("group {group}")))?;
        check(
            described.error_code,
            described.error_message.as_ref(),
            || format!("describe group {group}"),
        )?;
        let consumer = described.protocol_type.as_str() == "consumer";
        Ok(DescribedGroup {
            id: group.to_string(),
            state: described.group_state.as_str().to_string(),
            protocol_type: described.protocol_type.as_str().to_string(),
            protocol: described.protocol_data.as_str().to_string(),
            coordinator: coordinator.broker,
            members: described
                .members
                .iter()
                .map(|m| member_row(m, consumer))
                .collect(),
        })
    }

    /// The committed offsets of `groups` (partitions with none committed left out), one
    /// OffsetFetch per coordinator. A group whose coordinator failed is absent.
    pub async fn committed_offsets(&self, groups: &[String]) -> HashMap<String, Vec<Committed>> {
        let unique: BTreeSet<&String> = groups.iter().collect();
        if unique.is_empty() {
            return HashMap::new();
        }
        let image = self.cache.image();
        let found = match self.find_coordinators(&image, &unique).await {
            Ok(found) => found,
            Err(e) => {
                debug!(cause = %e, "coordinators unanswered");
                return HashMap::new();
            }
        };
        let mut by_coordinator: BTreeMap<i32, (Target, Vec<String>)> = BTreeMap::new();
        for (group, node) in coordinators_of(&found, &unique) {
            match broker_target(&image, &self.listener, node) {
                Ok(target) => by_coordinator
                    .entry(node)
                    .or_insert_with(|| (target, Vec::new()))
                    .1
                    .push(group),
                Err(e) => debug!(group, cause = %e, "committed offsets skipped"),
            }
        }
        let asks = by_coordinator
            .into_values()
            .map(|(target, groups)| self.coordinator_offsets(target, groups));
        join_all(asks).await.into_iter().flatten().collect()
    }

    async fn coordinator_offsets(
        &self,
        target: Target,
        groups: Vec<String>,
    ) -> HashMap<String, Vec<Committed>> {
        let request = offset_fetch_request(&groups);
        match kafka::call(
            &target,
            &request,
            OFFSET_FETCH_VERSION,
            self.read_timeouts(),
        )
        .await
        {
            Ok(response) => committed_from(&response),
            Err(e) => {
                debug!(broker = target.broker, cause = %e, "committed offsets unanswered");
                HashMap::new()
            }
        }
    }

    /// At most `limit` records of a partition from `offset` on (from at most about
    /// `max_bytes` of batches), from its leader.
    pub async fn fetch(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: i32,
        limit: usize,
    ) -> Result<Fetched, CallError> {
        let target = leader_target(&self.cache.image(), &self.listener, topic, partition)?;
        let request = fetch_request(topic, partition, offset, max_bytes);
        let response = kafka::call(&target, &request, FETCH_VERSION, self.read_timeouts()).await?;
        let action = || format!("fetch from {topic}-{partition} at {offset}");
        check(response.error_code, None, action)?;
        let data = response
            .responses
            .iter()
            .filter(|t| t.topic.as_str() == topic)
            .flat_map(|t| &t.partitions)
            .find(|p| p.partition_index == partition)
            .ok_or_else(|| missing("Fetch", &target, format!("{topic}-{partition}")))?;
        check(data.error_code, None, action)?;
        let page = decode_records(
            data.records.clone().unwrap_or_default(),
            offset,
            limit,
            DECOMPRESSED_PAGE_BUDGET,
        )
        .map_err(|e| CallError::Decode {
            api: "Fetch",
            broker: target.broker,
            detail: format!("records of {topic}-{partition}: {e}"),
        })?;
        Ok(Fetched {
            rows: page.rows,
            next: page.next,
            high_watermark: data.high_watermark,
            log_start: data.log_start_offset,
        })
    }

    /// Creates a topic (`replication_factor` -1: the cluster's default).
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: &[(String, String)],
    ) -> Result<(), CallError> {
        let target = self.admin_target(&self.cache.image())?;
        let request = create_topic_request(name, partitions, replication_factor, configs);
        let response = kafka::call(
            &target,
            &request,
            CREATE_TOPICS_VERSION,
            self.action_timeouts(),
        )
        .await?;
        let result = response
            .topics
            .iter()
            .find(|t| t.name.as_str() == name)
            .ok_or_else(|| missing("CreateTopics", &target, format!("topic {name}")))?;
        check(result.error_code, result.error_message.as_ref(), || {
            format!("create topic {name}")
        })?;
        check(result.topic_config_error_code, None, || {
            format!("read the configs of the new topic {name}")
        })
    }

    /// Grows a topic to `count` partitions in all.
    pub async fn create_partitions(&self, topic: &str, count: i32) -> Result<(), CallError> {
        let target = self.admin_target(&self.cache.image())?;
        let request = CreatePartitionsRequest::default()
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(topic_name(topic))
                .with_count(count)
                .with_assignments(None)])
            .with_timeout_ms(timeout_ms(ACTION_TIMEOUT))
            .with_validate_only(false);
        let response = kafka::call(
            &target,
            &request,
            CREATE_PARTITIONS_VERSION,
            self.action_timeouts(),
        )
        .await?;
        let result = response
            .results
            .iter()
            .find(|r| r.name.as_str() == topic)
            .ok_or_else(|| missing("CreatePartitions", &target, format!("topic {topic}")))?;
        check(result.error_code, result.error_message.as_ref(), || {
            format!("grow topic {topic} to {count} partitions")
        })
    }

    /// Sets a topic config (`Some`) or deletes its override (`None`).
    pub async fn alter_topic_config(
        &self,
        topic: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<(), CallError> {
        let target = self.admin_target(&self.cache.image())?;
        let request = alter_topic_config_request(topic, key, value);
        let response = kafka::call(
            &target,
            &request,
            INCREMENTAL_ALTER_CONFIGS_VERSION,
            self.action_timeouts(),
        )
        .await?;
        let result = response
            .responses
            .iter()
            .find(|r| r.resource_type == RESOURCE_TOPIC && r.resource_name.as_str() == topic)
            .ok_or_else(|| missing("IncrementalAlterConfigs", &target, format!("topic {topic}")))?;
        check(
            result.error_code,
            result.error_message.as_ref(),
            || match value {
                Some(_) => format!("set config {key} of topic {topic}"),
                None => format!("delete config {key} of topic {topic}"),
            },
        )
    }

    /// Deletes a partition's records before offset `before`: the new log start offset.
    pub async fn delete_records(
        &self,
        topic: &str,
        partition: i32,
        before: i64,
    ) -> Result<i64, CallError> {
        let target = leader_target(&self.cache.image(), &self.listener, topic, partition)?;
        let request = DeleteRecordsRequest::default()
            .with_topics(vec![DeleteRecordsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![DeleteRecordsPartition::default()
                    .with_partition_index(partition)
                    .with_offset(before)])])
            .with_timeout_ms(timeout_ms(ACTION_TIMEOUT));
        let response = kafka::call(
            &target,
            &request,
            DELETE_RECORDS_VERSION,
            self.action_timeouts(),
        )
        .await?;
        let result = response
            .topics
            .iter()
            .filter(|t| t.name.as_str() == topic)
            .flat_map(|t| &t.partitions)
            .find(|p| p.partition_index == partition)
            .ok_or_else(|| missing("DeleteRecords", &target, format!("{topic}-{partition}")))?;
        check(result.error_code, None, || {
            format!("delete the records of {topic}-{partition} before {before}")
        })?;
        Ok(result.low_watermark)
    }

    /// Commits offsets for a group as an admin (generation -1, no member id), which Kafka
    /// accepts only while the group has no members.
    pub async fn commit_offsets(
        &self,
        group: &str,
        offsets: &[Committed],
    ) -> Result<(), CallError> {
        if offsets.is_empty() {
            return Ok(());
        }
        let coordinator = self.coordinator(group).await?;
        let request = offset_commit_request(group, offsets);
        let response = kafka::call(
            &coordinator,
            &request,
            OFFSET_COMMIT_VERSION,
            self.action_timeouts(),
        )
        .await?;
        let mut answered = BTreeSet::new();
        for topic in &response.topics {
            for p in &topic.partitions {
                let name = topic.name.as_str();
                check(p.error_code, None, || {
                    format!(
                        "commit the offset of group {group} on {name}-{}",
                        p.partition_index
                    )
                })?;
                answered.insert((name.to_string(), p.partition_index));
            }
        }
        if let Some(c) = offsets
            .iter()
            .find(|c| !answered.contains(&(c.topic.clone(), c.partition)))
        {
            return Err(missing(
                "OffsetCommit",
                &coordinator,
                format!("{}-{}", c.topic, c.partition),
            ));
        }
        Ok(())
    }

    /// Deletes a group (Kafka refuses while it has members).
    pub async fn delete_group(&self, group: &str) -> Result<(), CallError> {
        let coordinator = self.coordinator(group).await?;
        let request =
            DeleteGroupsRequest::default().with_groups_names(vec![GroupId(str_bytes(group))]);
        let response = kafka::call(
            &coordinator,
            &request,
            DELETE_GROUPS_VERSION,
            self.action_timeouts(),
        )
        .await?;
        let result = response
            .results
            .iter()
            .find(|r| r.group_id.as_str() == group)
            .ok_or_else(|| missing("DeleteGroups", &coordinator, format!("group {group}")))?;
        check(result.error_code, None, || format!("delete group {group}"))
    }

    /// Where requests any broker can answer go: this broker, else the controller, else
    /// the first live broker.
    fn admin_target(&self, image: &MetadataImage) -> Result<Target, CallError> {
        let preferred = [self.local, image.controller.map(|(id, _)| id)];
        preferred
            .into_iter()
            .flatten()
            .chain(image.brokers.keys().copied())
            .find_map(|id| broker_target(image, &self.listener, id).ok())
            .ok_or(CallError::NoLiveBroker)
    }

    async fn find_coordinators(
        &self,
        image: &MetadataImage,
        groups: &BTreeSet<&String>,
    ) -> Result<FindCoordinatorResponse, CallError> {
        let target = self.admin_target(image)?;
        let request = FindCoordinatorRequest::default()
            .with_key_type(KEY_TYPE_GROUP)
            .with_coordinator_keys(groups.iter().map(|g| str_bytes(g)).collect());
        kafka::call(
            &target,
            &request,
            FIND_COORDINATOR_VERSION,
            self.read_timeouts(),
        )
        .await
    }

    /// The live coordinator of `group`.
    async fn coordinator(&self, group: &str) -> Result<Target, CallError> {
        let image = self.cache.image();
        let key = group.to_string();
        let keys = BTreeSet::from([&key]);
        let response = self.find_coordinators(&image, &keys).await?;
        let found = response
            .coordinators
            .iter()
            .find(|c| c.key.as_str() == group)
            .ok_or_else(|| CallError::NoCoordinator {
                group: group.to_string(),
            })?;
        check(found.error_code, found.error_message.as_ref(), || {
            format!("find the coordinator of group {group}")
        })?;
        broker_target(&image, &self.listener, found.node_id.0).map_err(|_| {
            CallError::NoCoordinator {
                group: group.to_string(),
            }
        })
    }
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn topic_name(s: &str) -> TopicName {
    TopicName(str_bytes(s))
}

fn timeout_ms(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

fn missing(api: &'static str, target: &Target, item: String) -> CallError {
    CallError::MissingAnswer {
        api,
        broker: target.broker,
        item,
    }
}

/// Broker `id`'s endpoint on `listener`, if it is live.
fn broker_target(image: &MetadataImage, listener: &str, id: i32) -> Result<Target, CallError> {
    let endpoint = image
        .brokers
        .get(&id)
        .and_then(|b| b.endpoint(listener))
        .ok_or(CallError::BrokerNotLive { broker: id })?;
    Ok(Target {
        broker: id,
        host: endpoint.host.clone(),
        port: endpoint.port,
    })
}

/// The live leader of a partition.
fn leader_target(
    image: &MetadataImage,
    listener: &str,
    topic: &str,
    partition: i32,
) -> Result<Target, CallError> {
    let record = image
        .partition(topic, partition)
        .ok_or_else(|| CallError::UnknownPartition {
            topic: topic.to_string(),
            partition,
        })?;
    let no_leader = || CallError::NoLeader {
        topic: topic.to_string(),
        partition,
    };
    if record.leader < 0 {
        return Err(no_leader());
    }
    broker_target(image, listener, record.leader).map_err(|_| no_leader())
}

/// ListOffsets for `partitions` at one timestamp (read_uncommitted: the log end, not the
/// last stable offset).
fn list_offsets_request(partitions: &[(String, i32)], timestamp: i64) -> ListOffsetsRequest {
    let mut topics: BTreeMap<&str, Vec<ListOffsetsPartition>> = BTreeMap::new();
    for (topic, partition) in partitions {
        topics.entry(topic).or_default().push(
            ListOffsetsPartition::default()
                .with_partition_index(*partition)
                .with_current_leader_epoch(-1)
                .with_timestamp(timestamp),
        );
    }
    ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(READ_UNCOMMITTED)
        .with_topics(
            topics
                .into_iter()
                .map(|(name, partitions)| {
                    ListOffsetsTopic::default()
                        .with_name(topic_name(name))
                        .with_partitions(partitions)
                })
                .collect(),
        )
}

/// The answered offsets of a ListOffsets response (errors and -1 left out).
fn answered_offsets(response: &ListOffsetsResponse) -> HashMap<(String, i32), i64> {
    let mut out = HashMap::new();
    for topic in &response.topics {
        for p in &topic.partitions {
            if p.error_code != 0 || p.offset < 0 {
                debug!(
                    topic = topic.name.as_str(),
                    partition = p.partition_index,
                    error = %error_name(p.error_code),
                    "offset unanswered"
                );
                continue;
            }
            out.insert(
                (topic.name.as_str().to_string(), p.partition_index),
                p.offset,
            );
        }
    }
    out
}

/// Log ranges of the partitions both responses answered.
fn log_ranges(
    earliest: &ListOffsetsResponse,
    latest: &ListOffsetsResponse,
) -> Vec<((String, i32), LogRange)> {
    let ends = answered_offsets(latest);
    answered_offsets(earliest)
        .into_iter()
        .filter_map(|(key, start)| {
            let end = *ends.get(&key)?;
            Some((key, LogRange { start, end }))
        })
        .collect()
}

fn known(bytes: i64) -> Option<u64> {
    u64::try_from(bytes).ok()
}

/// A DescribeLogDirs answer as rows; a failed directory keeps its error name.
fn broker_log_dirs(
    response: &DescribeLogDirsResponse,
    broker: i32,
) -> Result<BrokerLogDirs, CallError> {
    check(response.error_code, None, || {
        format!("describe the log dirs of broker {broker}")
    })?;
    let mut out = BrokerLogDirs::default();
    for result in &response.results {
        let mut partitions = 0;
        let mut size = 0u64;
        for topic in &result.topics {
            // A future replica is a copy being moved in; its partition counts where it is.
            for p in topic.partitions.iter().filter(|p| !p.is_future_key) {
                let bytes = known(p.partition_size).unwrap_or(0);
                partitions += 1;
                size = size.saturating_add(bytes);
                out.partition_sizes
                    .insert((topic.name.as_str().to_string(), p.partition_index), bytes);
            }
        }
        out.dirs.push(LogDirRow {
            path: result.log_dir.as_str().to_string(),
            error: (result.error_code != 0).then(|| error_name(result.error_code)),
            partitions,
            size,
            total: known(result.total_bytes),
            usable: known(result.usable_bytes),
        });
    }
    Ok(out)
}

/// Kafka's `config_source` codes.
fn config_source(code: i8) -> ConfigSource {
    match code {
        1 => ConfigSource::Topic,
        2 => ConfigSource::BrokerDynamic,
        3 => ConfigSource::ClusterDynamic,
        4 => ConfigSource::Broker,
        5 => ConfigSource::Default,
        _ => ConfigSource::Unknown,
    }
}

fn config_rows(configs: &[DescribeConfigsResourceResult]) -> Vec<ConfigRow> {
    let mut rows: Vec<ConfigRow> = configs
        .iter()
        .map(|c| ConfigRow {
            name: c.name.as_str().to_string(),
            value: if c.is_sensitive {
                None
            } else {
                c.value.as_ref().map(|v| v.as_str().to_string())
            },
            source: config_source(c.config_source),
            read_only: c.read_only,
        })
        .collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    rows
}

fn member_row(member: &DescribedGroupMember, consumer: bool) -> MemberRow {
    MemberRow {
        member_id: member.member_id.as_str().to_string(),
        group_instance_id: member
            .group_instance_id
            .as_ref()
            .map(|i| i.as_str().to_string()),
        client_id: member.client_id.as_str().to_string(),
        client_host: member.client_host.as_str().to_string(),
        assignment: if consumer {
            decode_assignment(&member.member_assignment)
        } else {
            Vec::new()
        },
    }
}

/// A consumer protocol assignment as (topic, sorted partitions), sorted by topic; empty
/// when the bytes are empty (not synced yet) or do not decode.
pub fn decode_assignment(bytes: &Bytes) -> Vec<(String, Vec<i32>)> {
    let mut buf = bytes.clone();
    if buf.remaining() < 2 {
        return Vec::new();
    }
    let version = buf.get_i16();
    if version < 0 {
        return Vec::new();
    }
    let Ok(assignment) =
        ConsumerProtocolAssignment::decode(&mut buf, version.min(MAX_ASSIGNMENT_VERSION))
    else {
        return Vec::new();
    };
    let mut topics: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
    for tp in &assignment.assigned_partitions {
        topics
            .entry(tp.topic.as_str().to_string())
            .or_default()
            .extend(tp.partitions.iter().copied());
    }
    topics
        .into_iter()
        .map(|(t, ps)| (t, ps.into_iter().collect()))
        .collect()
}

fn offset_fetch_request(groups: &[String]) -> OffsetFetchRequest {
    OffsetFetchRequest::default()
        .with_groups(
            groups
                .iter()
                .map(|g| {
                    OffsetFetchRequestGroup::default()
                        .with_group_id(GroupId(str_bytes(g)))
                        .with_topics(None)
                })
                .collect(),
        )
        .with_require_stable(false)
}

/// The groups a FindCoordinator answer placed on a broker: (group, node id).
fn coordinators_of(
    response: &FindCoordinatorResponse,
    groups: &BTreeSet<&String>,
) -> Vec<(String, i32)> {
    response
        .coordinators
        .iter()
        .filter(|c| groups.contains(&c.key.as_str().to_string()))
        .filter_map(|c| {
            if c.error_code != 0 || c.node_id.0 < 0 {
                debug!(group = c.key.as_str(), error = %error_name(c.error_code), "no coordinator");
                return None;
            }
            Some((c.key.as_str().to_string(), c.node_id.0))
        })
        .collect()
}

/// The committed offsets of an OffsetFetch (v8+) answer, sorted; a failed group is
/// absent, a failed partition and one with nothing committed (-1) left out.
fn committed_from(response: &OffsetFetchResponse) -> HashMap<String, Vec<Committed>> {
    let mut out = HashMap::new();
    for group in &response.groups {
        let id = group.group_id.as_str();
        if group.error_code != 0 {
            debug!(group = id, error = %error_name(group.error_code), "committed offsets failed");
            continue;
        }
        let mut committed = Vec::new();
        for topic in &group.topics {
            for p in &topic.partitions {
                if p.error_code != 0 {
                    debug!(
                        group = id,
                        topic = topic.name.as_str(),
                        partition = p.partition_index,
                        error = %error_name(p.error_code),
                        "committed offset failed"
                    );
                    continue;
                }
                if p.committed_offset < 0 {
                    continue;
                }
                committed.push(Committed {
                    topic: topic.name.as_str().to_string(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                });
            }
        }
        committed.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        out.insert(id.to_string(), committed);
    }
    out
}

/// A consumer's one-partition fetch that answers at once (no session, read_uncommitted).
fn fetch_request(topic: &str, partition: i32, offset: i64, max_bytes: i32) -> FetchRequest {
    let max_bytes = max_bytes.clamp(1, MAX_FETCH_BYTES);
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_isolation_level(READ_UNCOMMITTED)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_current_leader_epoch(-1)
                .with_fetch_offset(offset)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(max_bytes)])])
}

/// Decoded records of a fetch, and where the next page starts.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedPage {
    pub rows: Vec<MessageRow>,
    /// The offset after the last record returned, or after the last whole batch looked
    /// at when that batch held nothing to show (control records, compacted away).
    pub next: Option<i64>,
}

fn codec_of(compression: Compression) -> Codec {
    match compression {
        Compression::None => Codec::None,
        Compression::Gzip => Codec::Gzip,
        Compression::Snappy => Codec::Snappy,
        Compression::Lz4 => Codec::Lz4,
        Compression::Zstd => Codec::Zstd,
    }
}

/// The records of a fetch's record batches at or after `from`, control records left out,
/// at most `limit` of them, decompressing at most `budget` bytes in all (a few kilobytes
/// of zeros can claim 128 MiB each: a page must not cost the broker that). A batch may
/// start before `from` (a compressed batch is sent whole), and the last batch may be cut
/// short by the fetch's byte limit: it is dropped, as Kafka's consumers do.
pub fn decode_records(
    mut records: Bytes,
    from: i64,
    limit: usize,
    budget: usize,
) -> Result<DecodedPage, ProtoError> {
    let mut page = DecodedPage {
        rows: Vec::new(),
        next: None,
    };
    let remaining = Cell::new(budget);
    while records.len() >= BATCH_PREFIX && page.rows.len() < limit {
        let length = i32::from_be_bytes([records[8], records[9], records[10], records[11]]);
        let length = usize::try_from(length).map_err(|_| ProtoError::NegativeLength {
            field: "batchLength",
            value: i64::from(length),
        })?;
        let Some(total) = BATCH_PREFIX
            .checked_add(length)
            .filter(|t| *t <= records.len())
        else {
            break;
        };
        let mut batch = records.split_to(total);
        let after_batch = BatchHeader::parse(&batch).map(|h| {
            h.base_offset
                .saturating_add(i64::from(h.last_offset_delta))
                .saturating_add(1)
        });
        let decompress = |compressed: &mut Bytes, compression: Compression| {
            let codec = codec_of(compression);
            let out = decompress(compressed, codec, remaining.get()).map_err(|e| {
                ProtoError::Compression {
                    operation: "decompress",
                    codec: codec.name(),
                    source: Box::new(std::io::Error::other(format!("{e:?}"))),
                }
            })?;
            remaining.set(remaining.get().saturating_sub(out.len()));
            Ok(Bytes::from(out))
        };
        let set = RecordBatchDecoder::decode_with_custom_compression(&mut batch, Some(decompress))?;
        let mut cut = false;
        for record in set.records {
            if record.control || record.offset < from {
                continue;
            }
            if page.rows.len() == limit {
                cut = true;
                break;
            }
            page.next = Some(record.offset.saturating_add(1));
            page.rows.push(MessageRow {
                offset: record.offset,
                timestamp: record.timestamp,
                key: record.key.map(|k| k.to_vec()),
                value: record.value.map(|v| v.to_vec()),
                headers: record
                    .headers
                    .into_iter()
                    .map(|(k, v)| (k.as_str().to_string(), v.map(|v| v.to_vec())))
                    .collect(),
            });
        }
        if !cut {
            page.next = after_batch.or(page.next);
        }
    }
    Ok(page)
}

fn create_topic_request(
    name: &str,
    partitions: i32,
    replication_factor: i16,
    configs: &[(String, String)],
) -> CreateTopicsRequest {
    CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name(name))
            .with_num_partitions(partitions)
            .with_replication_factor(replication_factor)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(str_bytes(k))
                            .with_value(Some(str_bytes(v)))
                    })
                    .collect(),
            )])
        .with_timeout_ms(timeout_ms(ACTION_TIMEOUT))
        .with_validate_only(false)
}

fn alter_topic_config_request(
    topic: &str,
    key: &str,
    value: Option<&str>,
) -> IncrementalAlterConfigsRequest {
    let config = AlterableConfig::default()
        .with_name(str_bytes(key))
        .with_config_operation(if value.is_some() { OP_SET } else { OP_DELETE })
        .with_value(value.map(str_bytes));
    IncrementalAlterConfigsRequest::default()
        .with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(str_bytes(topic))
            .with_configs(vec![config])])
        .with_validate_only(false)
}

/// OffsetCommit as an admin: generation -1 and no member id.
fn offset_commit_request(group: &str, offsets: &[Committed]) -> OffsetCommitRequest {
    let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for c in offsets {
        topics.entry(&c.topic).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(c.partition)
                .with_committed_offset(c.offset)
                .with_committed_leader_epoch(-1)
                .with_committed_metadata(Some(StrBytes::default())),
        );
    }
    OffsetCommitRequest::default()
        .with_group_id(GroupId(str_bytes(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(StrBytes::default())
        .with_group_instance_id(None)
        .with_topics(
            topics
                .into_iter()
                .map(|(name, partitions)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(topic_name(name))
                        .with_partitions(partitions)
                })
                .collect(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::cache::LiveBroker;
    use crate::metadata::schema::{BrokerRegistration, Endpoint, PartitionRecord};
    use crate::protocol::api_versions::support;
    use bytes::{BufMut, BytesMut};
    use proto_kafka::messages::consumer_protocol_assignment::TopicPartition;
    use proto_kafka::messages::describe_configs_response::DescribeConfigsResourceResult;
    use proto_kafka::messages::describe_log_dirs_response::{
        DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
    };
    use proto_kafka::messages::list_offsets_response::{
        ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
    };
    use proto_kafka::messages::offset_fetch_response::{
        OffsetFetchResponseGroup, OffsetFetchResponsePartitions, OffsetFetchResponseTopics,
    };
    use proto_kafka::messages::ApiKey;
    use proto_kafka::protocol::Encodable;
    use proto_kafka::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    #[test]
    fn request_versions_are_ones_this_broker_accepts() {
        for (key, version) in [
            (ApiKey::ListOffsets, LIST_OFFSETS_VERSION),
            (ApiKey::DescribeLogDirs, DESCRIBE_LOG_DIRS_VERSION),
            (ApiKey::DescribeConfigs, DESCRIBE_CONFIGS_VERSION),
            (ApiKey::ListGroups, LIST_GROUPS_VERSION),
            (ApiKey::FindCoordinator, FIND_COORDINATOR_VERSION),
            (ApiKey::DescribeGroups, DESCRIBE_GROUPS_VERSION),
            (ApiKey::OffsetFetch, OFFSET_FETCH_VERSION),
            (ApiKey::Fetch, FETCH_VERSION),
            (ApiKey::CreateTopics, CREATE_TOPICS_VERSION),
            (ApiKey::CreatePartitions, CREATE_PARTITIONS_VERSION),
            (
                ApiKey::IncrementalAlterConfigs,
                INCREMENTAL_ALTER_CONFIGS_VERSION,
            ),
            (ApiKey::DeleteRecords, DELETE_RECORDS_VERSION),
            (ApiKey::OffsetCommit, OFFSET_COMMIT_VERSION),
            (ApiKey::DeleteGroups, DELETE_GROUPS_VERSION),
        ] {
            let s = support(key as i16).unwrap();
            assert!(
                (s.min_accepted..=s.max).contains(&version),
                "{key:?} v{version}"
            );
        }
    }

    fn record(offset: i64, value: &str, control: bool) -> Record {
        Record {
            transactional: control,
            control,
            delete_horizon_ms: None,
            partition_leader_epoch: 0,
            producer_id: if control { 7 } else { -1 },
            producer_epoch: if control { 0 } else { -1 },
            timestamp_type: TimestampType::Creation,
            offset,
            sequence: -1,
            timestamp: 1_700_000_000_000 + offset,
            key: Some(Bytes::from(format!("k{offset}"))),
            value: Some(Bytes::copy_from_slice(value.as_bytes())),
            headers: vec![(
                StrBytes::from_static_str("h"),
                Some(Bytes::from_static(b"v")),
            )],
        }
    }

    fn encode(records: &[Record], compression: Compression) -> Bytes {
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            records,
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .unwrap();
        buf.freeze()
    }

    fn offsets(page: &DecodedPage) -> Vec<i64> {
        page.rows.iter().map(|r| r.offset).collect()
    }

    #[test]
    fn records_decode_from_plain_and_compressed_batches_from_the_wanted_offset() {
        let mut all = BytesMut::new();
        all.put(encode(
            &[record(0, "a", false), record(1, "b", false)],
            Compression::None,
        ));
        all.put(encode(
            &[
                record(2, "c", false),
                record(3, "d", false),
                record(4, "e", false),
            ],
            Compression::Zstd,
        ));
        all.put(encode(&[record(5, "f", false)], Compression::Gzip));
        let rows = decode_records(all.freeze(), 3, 100, 1 << 20).unwrap().rows;
        let got: Vec<(i64, &[u8])> = rows
            .iter()
            .map(|r| (r.offset, r.value.as_deref().unwrap()))
            .collect();
        assert_eq!(got, vec![(3, &b"d"[..]), (4, b"e"), (5, b"f")]);
        assert_eq!(rows[0].key.as_deref(), Some(&b"k3"[..]));
        assert_eq!(rows[0].timestamp, 1_700_000_000_003);
        assert_eq!(
            rows[0].headers,
            vec![("h".to_string(), Some(b"v".to_vec()))]
        );
    }

    #[test]
    fn control_records_are_skipped() {
        let mut all = BytesMut::new();
        all.put(encode(&[record(0, "a", false)], Compression::None));
        all.put(encode(
            &[record(1, "\0\0\0\0\0\0", true)],
            Compression::None,
        ));
        all.put(encode(&[record(2, "b", false)], Compression::Lz4));
        let page = decode_records(all.freeze(), 0, 100, 1 << 20).unwrap();
        assert_eq!(offsets(&page), vec![0, 2]);
    }

    #[test]
    fn a_batch_cut_short_by_the_byte_budget_is_dropped() {
        let first = encode(&[record(0, "a", false)], Compression::None);
        let second = encode(&[record(1, "b", false)], Compression::Snappy);
        for cut in 0..second.len() {
            let mut all = BytesMut::new();
            all.put(first.clone());
            all.put(second.slice(..cut));
            let page = decode_records(all.freeze(), 0, 100, 1 << 20).unwrap();
            assert_eq!(page.rows.len(), 1, "cut at {cut}");
            assert_eq!(page.next, Some(1), "the next page starts at the cut batch");
        }
    }

    #[test]
    fn corrupt_records_are_errors_not_panics() {
        let batch = encode(&[record(0, "a", false)], Compression::None);
        for i in BATCH_PREFIX..batch.len() {
            let mut bad = batch.to_vec();
            bad[i] ^= 0x5a;
            let _ = decode_records(Bytes::from(bad), 0, 100, 1 << 20);
        }
        let mut negative = batch.to_vec();
        negative[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(decode_records(Bytes::from(negative), 0, 100, 1 << 20).is_err());
        let empty = decode_records(Bytes::new(), 0, 100, 1 << 20).unwrap();
        assert!(empty.rows.is_empty() && empty.next.is_none());
    }

    #[test]
    fn decompression_is_bounded_by_the_page_budget() {
        let big = "0".repeat(1 << 20);
        let records: Vec<Record> = (0..4).map(|i| record(i, &big, false)).collect();
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let batch = encode(&records, codec);
            assert!(batch.len() < (1 << 20), "{codec:?} compresses the zeros");
            let refused = decode_records(batch.clone(), 0, 100, 1 << 20);
            assert!(refused.is_err(), "{codec:?}: 4 MiB out of a 1 MiB budget");
            let page = decode_records(batch, 0, 100, 8 << 20).unwrap();
            assert_eq!(page.rows.len(), 4, "{codec:?}");
        }
    }

    #[test]
    fn a_page_stops_at_its_limit_and_says_where_the_next_starts() {
        let mut all = BytesMut::new();
        all.put(encode(
            &[
                record(0, "a", false),
                record(1, "b", false),
                record(2, "c", false),
            ],
            Compression::Zstd,
        ));
        all.put(encode(&[record(3, "d", false)], Compression::None));
        let page = decode_records(all.clone().freeze(), 0, 2, 1 << 20).unwrap();
        assert_eq!(offsets(&page), vec![0, 1]);
        assert_eq!(page.next, Some(2));
        let page = decode_records(all.freeze(), 1, 10, 1 << 20).unwrap();
        assert_eq!(offsets(&page), vec![1, 2, 3]);
        assert_eq!(page.next, Some(4));
        let markers = encode(&[record(5, "\0\0\0\0\0\0", true)], Compression::None);
        let page = decode_records(markers, 5, 10, 1 << 20).unwrap();
        assert!(page.rows.is_empty());
        assert_eq!(page.next, Some(6), "past a batch of control records only");
    }

    #[test]
    fn corrupt_compressed_payloads_with_a_valid_crc_are_errors_not_panics() {
        let records: Vec<Record> = (0..20).map(|i| record(i, "some value", false)).collect();
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let batch = encode(&records, codec);
            // The CRC (bytes 17..21) covers everything from the attributes (byte 21) on.
            for i in (61..batch.len()).step_by(3) {
                let mut bad = batch.to_vec();
                bad[i] ^= 0xa5;
                let crc = crc32c::crc32c(&bad[21..]);
                bad[17..21].copy_from_slice(&crc.to_be_bytes());
                let _ = decode_records(Bytes::from(bad), 0, 100, 1 << 20);
            }
        }
    }

    fn assignment_bytes(version: i16, partitions: &[(&str, &[i32])]) -> Bytes {
        let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(
            partitions
                .iter()
                .map(|(t, ps)| {
                    TopicPartition::default()
                        .with_topic(topic_name(t))
                        .with_partitions(ps.to_vec())
                })
                .collect(),
        );
        let mut buf = BytesMut::new();
        buf.put_i16(version);
        assignment
            .encode(&mut buf, version.min(MAX_ASSIGNMENT_VERSION))
            .unwrap();
        buf.freeze()
    }

    #[test]
    fn consumer_assignments_decode_sorted_and_merged() {
        let bytes = assignment_bytes(1, &[("b", &[2, 0]), ("a", &[1]), ("b", &[1])]);
        assert_eq!(
            decode_assignment(&bytes),
            vec![("a".to_string(), vec![1]), ("b".to_string(), vec![0, 1, 2])]
        );
    }

    #[test]
    fn a_newer_assignment_version_reads_as_the_newest_known() {
        let bytes = assignment_bytes(9, &[("t", &[0])]);
        assert_eq!(decode_assignment(&bytes), vec![("t".to_string(), vec![0])]);
    }

    #[test]
    fn undecodable_assignments_are_empty() {
        let good = assignment_bytes(0, &[("topic", &[0, 1, 2])]);
        for cut in 0..good.len() {
            let _ = decode_assignment(&good.slice(..cut));
        }
        assert!(decode_assignment(&Bytes::new()).is_empty());
        assert!(decode_assignment(&Bytes::from_static(&[0xff, 0xff, 1, 2])).is_empty());
        assert!(decode_assignment(&Bytes::from_static(&[0, 0, 0x7f, 0xff, 0xff, 0xff])).is_empty());
    }

    #[test]
    fn non_consumer_groups_have_no_decoded_assignment() {
        let member = DescribedGroupMember::default()
            .with_member_id(str_bytes("m"))
            .with_client_id(str_bytes("c"))
            .with_client_host(str_bytes("/10.0.0.1"))
            .with_member_assignment(assignment_bytes(0, &[("t", &[0])]));
        assert!(member_row(&member, false).assignment.is_empty());
        let row = member_row(&member, true);
        assert_eq!(row.assignment, vec![("t".to_string(), vec![0])]);
        assert_eq!(row.client_host, "/10.0.0.1");
        assert_eq!(row.group_instance_id, None);
    }

    #[test]
    fn config_sources_map_and_sensitive_values_are_hidden() {
        let configs = vec![
            DescribeConfigsResourceResult::default()
                .with_name(str_bytes("z.secret"))
                .with_value(Some(str_bytes("hunter2")))
                .with_is_sensitive(true)
                .with_config_source(2),
            DescribeConfigsResourceResult::default()
                .with_name(str_bytes("a.plain"))
                .with_value(Some(str_bytes("1")))
                .with_read_only(true)
                .with_config_source(1),
        ];
        let rows = config_rows(&configs);
        assert_eq!(rows[0].name, "a.plain");
        assert_eq!(rows[0].value.as_deref(), Some("1"));
        assert_eq!(rows[0].source, ConfigSource::Topic);
        assert!(rows[0].read_only);
        assert_eq!(rows[1].value, None);
        assert_eq!(rows[1].source, ConfigSource::BrokerDynamic);
        let sources: Vec<ConfigSource> = (0..=8).map(config_source).collect();
        assert_eq!(
            sources,
            vec![
                ConfigSource::Unknown,
                ConfigSource::Topic,
                ConfigSource::BrokerDynamic,
                ConfigSource::ClusterDynamic,
                ConfigSource::Broker,
                ConfigSource::Default,
                ConfigSource::Unknown,
                ConfigSource::Unknown,
                ConfigSource::Unknown,
            ]
        );
    }

    fn offsets_response(answers: &[(&str, i32, i16, i64)]) -> ListOffsetsResponse {
        ListOffsetsResponse::default().with_topics(
            answers
                .iter()
                .map(|(t, p, code, offset)| {
                    ListOffsetsTopicResponse::default()
                        .with_name(topic_name(t))
                        .with_partitions(vec![ListOffsetsPartitionResponse::default()
                            .with_partition_index(*p)
                            .with_error_code(*code)
                            .with_offset(*offset)])
                })
                .collect(),
        )
    }

    #[test]
    fn log_ranges_need_both_ends_without_errors() {
        let earliest = offsets_response(&[("t", 0, 0, 3), ("t", 1, 0, 0), ("t", 2, 6, -1)]);
        let latest = offsets_response(&[("t", 0, 0, 9), ("t", 1, 3, -1), ("t", 2, 0, 4)]);
        let ranges: HashMap<_, _> = log_ranges(&earliest, &latest).into_iter().collect();
        assert_eq!(ranges.len(), 1);
        assert_eq!(ranges[&("t".to_string(), 0)], LogRange { start: 3, end: 9 });
    }

    #[test]
    fn list_offsets_requests_group_partitions_by_topic() {
        let request = list_offsets_request(
            &[("b".into(), 1), ("a".into(), 0), ("b".into(), 0)],
            EARLIEST,
        );
        assert_eq!(request.replica_id, BrokerId(-1));
        assert_eq!(request.isolation_level, READ_UNCOMMITTED);
        let names: Vec<&str> = request.topics.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, vec!["a", "b"]);
        assert_eq!(request.topics[1].partitions.len(), 2);
        assert!(request.topics[1]
            .partitions
            .iter()
            .all(|p| p.timestamp == EARLIEST));
        request
            .encode(&mut BytesMut::new(), LIST_OFFSETS_VERSION)
            .unwrap();
    }

    #[test]
    fn log_dirs_keep_failed_dirs_and_sizes() {
        let response = DescribeLogDirsResponse::default().with_results(vec![
            DescribeLogDirsResult::default()
                .with_log_dir(str_bytes("/data/a"))
                .with_total_bytes(1000)
                .with_usable_bytes(400)
                .with_topics(vec![DescribeLogDirsTopic::default()
                    .with_name(topic_name("t"))
                    .with_partitions(vec![
                        DescribeLogDirsPartition::default()
                            .with_partition_index(0)
                            .with_partition_size(100),
                        DescribeLogDirsPartition::default()
                            .with_partition_index(1)
                            .with_partition_size(50),
                        DescribeLogDirsPartition::default()
                            .with_partition_index(2)
                            .with_partition_size(7)
                            .with_is_future_key(true),
                    ])]),
            DescribeLogDirsResult::default()
                .with_log_dir(str_bytes("/data/b"))
                .with_error_code(56)
                .with_total_bytes(-1)
                .with_usable_bytes(-1),
        ]);
        let dirs = broker_log_dirs(&response, 1).unwrap();
        assert_eq!(dirs.dirs[0].partitions, 2);
        assert_eq!(dirs.dirs[0].size, 150);
        assert_eq!(dirs.dirs[0].total, Some(1000));
        assert_eq!(dirs.dirs[0].usable, Some(400));
        assert_eq!(dirs.dirs[0].error, None);
        assert_eq!(dirs.dirs[1].error.as_deref(), Some("KAFKA_STORAGE_ERROR"));
        assert_eq!(dirs.dirs[1].total, None);
        assert_eq!(dirs.partition_sizes[&("t".to_string(), 1)], 50);
        assert_eq!(dirs.partition_sizes.len(), 2);
        let failed = DescribeLogDirsResponse::default().with_error_code(31);
        assert_eq!(broker_log_dirs(&failed, 1).unwrap_err().code(), Some(31));
    }

    #[test]
    fn committed_offsets_leave_out_failures_and_uncommitted_partitions() {
        let partition = |p: i32, offset: i64, code: i16| {
            OffsetFetchResponsePartitions::default()
                .with_partition_index(p)
                .with_committed_offset(offset)
                .with_error_code(code)
        };
        let response = OffsetFetchResponse::default().with_groups(vec![
            OffsetFetchResponseGroup::default()
                .with_group_id(GroupId(str_bytes("g")))
                .with_topics(vec![OffsetFetchResponseTopics::default()
                    .with_name(topic_name("t"))
                    .with_partitions(vec![
                        partition(1, 5, 0),
                        partition(0, 7, 0),
                        partition(2, -1, 0),
                        partition(3, 9, 3),
                    ])]),
            OffsetFetchResponseGroup::default()
                .with_group_id(GroupId(str_bytes("broken")))
                .with_error_code(16),
        ]);
        let committed = committed_from(&response);
        assert!(!committed.contains_key("broken"));
        let offsets: Vec<(i32, i64)> = committed["g"]
            .iter()
            .map(|c| (c.partition, c.offset))
            .collect();
        assert_eq!(offsets, vec![(0, 7), (1, 5)]);
    }

    #[test]
    fn admin_commits_carry_no_generation_or_member() {
        let request = offset_commit_request(
            "g",
            &[
                Committed {
                    topic: "t".into(),
                    partition: 1,
                    offset: 4,
                },
                Committed {
                    topic: "t".into(),
                    partition: 0,
                    offset: 2,
                },
            ],
        );
        assert_eq!(request.generation_id_or_member_epoch, -1);
        assert!(request.member_id.is_empty());
        assert_eq!(request.topics.len(), 1);
        assert_eq!(request.topics[0].partitions.len(), 2);
        request
            .encode(&mut BytesMut::new(), OFFSET_COMMIT_VERSION)
            .unwrap();
    }

    #[test]
    fn config_alterations_set_or_delete() {
        let set = alter_topic_config_request("t", "retention.ms", Some("5"));
        let c = &set.resources[0].configs[0];
        assert_eq!(
            (c.config_operation, c.value.as_deref()),
            (OP_SET, Some("5"))
        );
        let delete = alter_topic_config_request("t", "retention.ms", None);
        let c = &delete.resources[0].configs[0];
        assert_eq!((c.config_operation, c.value.as_ref()), (OP_DELETE, None));
        assert_eq!(delete.resources[0].resource_type, RESOURCE_TOPIC);
    }

    #[test]
    fn fetches_are_consumer_reads_that_do_not_wait() {
        let request = fetch_request("t", 3, 42, i32::MAX);
        assert_eq!(request.replica_id, BrokerId(-1));
        assert_eq!(request.max_wait_ms, 0);
        assert_eq!(request.isolation_level, READ_UNCOMMITTED);
        assert_eq!(request.max_bytes, MAX_FETCH_BYTES);
        let p = &request.topics[0].partitions[0];
        assert_eq!((p.partition, p.fetch_offset), (3, 42));
        request.encode(&mut BytesMut::new(), FETCH_VERSION).unwrap();
        let topic = create_topic_request("t", 3, -1, &[("a".into(), "b".into())]);
        assert_eq!(topic.timeout_ms, 10_000);
        topic
            .encode(&mut BytesMut::new(), CREATE_TOPICS_VERSION)
            .unwrap();
    }

    fn image(leader: i32) -> MetadataImage {
        let mut image = MetadataImage::default();
        image.brokers.insert(
            1,
            LiveBroker {
                registration: BrokerRegistration {
                    id: 1,
                    endpoints: vec![
                        Endpoint {
                            name: "INTERNAL".into(),
                            host: "10.0.0.1".into(),
                            port: 9093,
                        },
                        Endpoint {
                            name: "PLAINTEXT".into(),
                            host: "b1".into(),
                            port: 9092,
                        },
                    ],
                    rack: None,
                    admin_endpoint: None,
                    shutting_down: false,
                },
                epoch: 1,
            },
        );
        let mut partitions = BTreeMap::new();
        partitions.insert(
            0,
            crate::metadata::cache::Versioned {
                value: PartitionRecord {
                    replicas: vec![1, 2],
                    leader,
                    leader_epoch: 0,
                    isr: Vec::new(),
                    partition_epoch: 0,
                },
                mod_revision: 1,
            },
        );
        image.partitions.insert("t".into(), partitions);
        image
    }

    #[test]
    fn targets_are_live_brokers_on_the_listener() {
        let image = image(1);
        let t = broker_target(&image, "PLAINTEXT", 1).unwrap();
        assert_eq!((t.host.as_str(), t.port), ("b1", 9092));
        let t = leader_target(&image, "INTERNAL", "t", 0).unwrap();
        assert_eq!(t.address(), "10.0.0.1:9093");
        assert!(matches!(
            broker_target(&image, "PLAINTEXT", 2),
            Err(CallError::BrokerNotLive { broker: 2 })
        ));
        assert!(matches!(
            leader_target(&image, "PLAINTEXT", "t", 1),
            Err(CallError::UnknownPartition { .. })
        ));
        assert!(matches!(
            leader_target(&self::image(2), "PLAINTEXT", "t", 0),
            Err(CallError::NoLeader { .. })
        ));
        assert!(matches!(
            leader_target(&self::image(-1), "PLAINTEXT", "t", 0),
            Err(CallError::NoLeader { .. })
        ));
    }

    #[test]
    fn actions_prefer_this_broker_then_the_controller() {
        let mut image = image(1);
        let calls = Calls::new(
            Arc::new(MetadataCache::default()),
            "PLAINTEXT".into(),
            Duration::from_secs(1),
        );
        assert_eq!(calls.admin_target(&image).unwrap().broker, 1);
        let mut second = image.brokers[&1].clone();
        second.registration.id = 2;
        image.brokers.insert(2, second);
        image.controller = Some((2, 1));
        assert_eq!(calls.admin_target(&image).unwrap().broker, 2);
        let calls = calls.with_local_broker(1);
        assert_eq!(calls.admin_target(&image).unwrap().broker, 1);
        let calls = calls.with_local_broker(7);
        assert_eq!(calls.admin_target(&image).unwrap().broker, 2);
        assert!(matches!(
            calls.admin_target(&MetadataImage::default()),
            Err(CallError::NoLiveBroker)
        ));
    }
}
