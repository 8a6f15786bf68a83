//! Admin APIs against an in-process broker: DeleteTopics, CreatePartitions,
//! DescribeConfigs / AlterConfigs / IncrementalAlterConfigs, DeleteRecords,
//! DescribeLogDirs, DescribeCluster and ListOffsets' max-timestamp lookup.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{batch, batch_at, start, test_config, topic_name, Client, Process};
use proto_kafka::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use proto_kafka::messages::delete_topics_request::DeleteTopicState;
use proto_kafka::messages::describe_configs_request::DescribeConfigsResource;
use proto_kafka::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use proto_kafka::messages::describe_log_dirs_request::DescribableLogDirTopic;
use proto_kafka::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use proto_kafka::messages::*;
use proto_kafka::protocol::StrBytes;
use proto_kafka::records::Compression;
use runnel_broker::broker::Broker;
use runnel_broker::fsio::RealFs;
use uuid::Uuid;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const SET: i8 = 0;
const DELETE: i8 = 1;

// DescribeConfigs sources.
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const DYNAMIC_BROKER_CONFIG: i8 = 2;
const DYNAMIC_DEFAULT_BROKER_CONFIG: i8 = 3;
const STATIC_BROKER_CONFIG: i8 = 4;
const DEFAULT_CONFIG: i8 = 5;

async fn broker(dir: &std::path::Path, extra: &[(&str, &str)]) -> Broker {
    start(test_config(&dir.join("data"), extra), Arc::new(RealFs)).await
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

async fn produce_n(c: &mut Client, topic: &str, partition: i32, n: usize) {
    for i in 0..n {
        let r = c
            .produce(
                topic,
                partition,
                batch(&[format!("v{i}").as_bytes()], Compression::None),
                -1,
            )
            .await;
        assert_eq!(r.error_code, 0);
    }
}

async fn delete_topics(
    c: &mut Client,
    version: i16,
    request: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    c.call(
        ApiKey::DeleteTopics,
        version,
        &request.with_timeout_ms(10_000),
    )
    .await
}

fn by_name(names: &[&str]) -> DeleteTopicsRequest {
    DeleteTopicsRequest::default().with_topics(
        names
            .iter()
            .map(|n| DeleteTopicState::default().with_name(Some(topic_name(n))))
            .collect(),
    )
}

async fn topic_id(c: &mut Client, topic: &str) -> Uuid {
    let m = c.metadata(Some(&[topic])).await;
    assert_eq!(m.topics[0].error_code, 0);
    m.topics[0].topic_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_topic_removes_its_data_and_a_recreated_topic_starts_empty() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), &[]).await;
    let mut c = Client::connect(b.kafka_addrs[0]).await;
    assert_eq!(c.create_topic("doomed", 2).await, 0);
    produce_n(&mut c, "doomed", 1, 5).await;
    let old_id = topic_id(&mut c, "doomed").await;
    assert!(dir.path().join("data/doomed-1").exists());

    let r = delete_topics(&mut c, 6, by_name(&["doomed", "never-was"])).await;
    assert_eq!(r.responses.len(), 2);
    assert_eq!(r.responses[0].error_code, 0);
    assert_eq!(r.responses[0].topic_id, old_id);
    assert_eq!(r.responses[1].error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION");
    assert!(r.responses[1].error_message.is_some());

    // Answered after this broker applied the deletion: metadata and disk agree at once.
    let m = c.metadata(Some(&["doomed"])).await;
    assert_eq!(m.topics[0].error_code, 3);
    assert!(!dir.path().join("data/doomed-0").exists());
    assert!(!dir.path().join("data/doomed-1").exists());
    assert_eq!(c.fetch("doomed", 1, 0, 0).await.error_code, 3);

    assert_eq!(c.create_topic("doomed", 2).await, 0);
    assert_ne!(
        topic_id(&mut c, "doomed").await,
        old_id,
        "a topic id is never reused"
    );
    assert_eq!(c.list_offsets("doomed", 1, -1).await.offset, 0);
    assert!(c.read_all("doomed", 1, 0).await.is_empty());
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_topics_by_id_and_by_old_versions() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), &[]).await;
    let mut c = Client::connect(b.kafka_addrs[0]).await;
    assert_eq!(c.create_topic("by-id", 1).await, 0);
    assert_eq!(c.create_topic("by-v1", 1).await, 0);
    let id = topic_id(&mut c, "by-id").await;

    let r = delete_topics(
        &mut c,
        6,
        DeleteTopicsRequest::default().with_topics(vec![
            DeleteTopicState::default()
                .with_name(None)
                .with_topic_id(id),
            DeleteTopicState::default()
                .with_name(None)
                .with_topic_id(Uuid::from_u128(7)),
        ]),
    )
    .await;
    assert_eq!(r.responses[0].error_code, 0);
    assert_eq!(
        r.responses[0].name.as_ref().map(|n| n.0.as_str()),
        Some("by-id")
    );
    assert_eq!(r.responses[1].error_code, 100, "UNKNOWN_TOPIC_ID");

    let r = delete_topics(
        &mut c,
        1,
        DeleteTopicsRequest::default().with_topic_names(vec![topic_name("by-v1")]),
    )
    .await;
    assert_eq!(r.responses[0].error_code, 0);
    let m = c.metadata(None).await;
    assert!(m.topics.is_empty(), "both topics are gone");
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_topic_enable_false_refuses_deletion() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), &[("delete.topic.enable", "false")]).await;
    let mut c = Client::connect(b.kafka_addrs[0]).await;
    assert_eq!(c.create_topic("kept", 1).await, 0);
    let r = delete_topics(&mut c, 6, by_name(&["kept"])).await;
    assert_eq!(r.responses[0].error_code, 73, "TOPIC_DELETION_DISABLED");
    assert_eq!(c.metadata(Some(&["kept"])).await.topics[0].error_code, 0);
    b.shutdown().await.unwrap();
}

async fn create_partitions(
    c: &mut Client,
    topic: &str,
    count: i32,
    validate_only: bool,
) -> (i16, Option<String>) {
    let request = CreatePartitionsRequest::default()
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(topic_name(topic))
            .with_count(count)
            .with_assignments(None)])
        .with_timeout_ms(10_000)
        .with_validate_only(validate_only);
    let r: CreatePartitionsResponse = c.call(ApiKey::CreatePartitions, 3, &request).await;
    let result = &r.results[0];
    (
        result.error_code,
        result.error_message.as_ref().map(|m| m.to_string()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_partitions_grows_topics_and_refuses_shrinking() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), &[]).await;
    let mut c = Client::connect(b.kafka_addrs[0]).await;
    assert_eq!(c.create_topic("grow", 2).await, 0);
    produce_n(&mut c, "grow", 0, 3).await;

    assert_eq!(create_partitions(&mut c, "grow", 4, true).await.0, 0);
    assert_eq!(
        c.metadata(Some(&["grow"])).await.topics[0].partitions.len(),
        2,
        "validate_only changes nothing"
    );

    assert_eq!(create_partitions(&mut c, "grow", 4, false).await.0, 0);
    assert_eq!(
        c.metadata(Some(&["grow"])).await.topics[0].partitions.len(),
        4
    );
    produce_n(&mut c, "grow", 3, 2).await;
    assert_eq!(c.list_offsets("grow", 3, -1).await.offset, 2);
    assert_eq!(
        c.list_offsets("grow", 0, -1).await.offset,
        3,
        "existing partitions keep their data"
    );

    let (code, message) = create_partitions(&mut c, "grow", 3, false).await;
    assert_eq!(code, 37, "INVALID_PARTITIONS");
    assert!(message.unwrap().contains('4'));
    assert_eq!(
        create_partitions(&mut c, "grow", 4, false).await.0,
        37,
        "the same count is not an increase"
    );
    assert_eq!(create_partitions(&mut c, "absent", 4, false).await.0, 3);

    // Assignments naming a broker that does not exist are refused.
    let request = CreatePartitionsRequest::default()
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(topic_name("grow"))
            .with_count(5)
            .with_assignments(Some(vec![
                CreatePartitionsAssignment::default().with_broker_ids(vec![BrokerId(42)])
            ]))])
        .with_timeout_ms(10_000);
    let r: CreatePartitionsResponse = c.call(ApiKey::CreatePartitions, 3, &request).await;
    assert_ne!(r.results[0].error_code, 0);
    assert_eq!(
        c.metadata(Some(&["grow"])).await.topics[0].partitions.len(),
        4
    );
    b.shutdown().await.unwrap();
}

async fn describe(
    c: &mut Client,
    kind: i8,
    name: &str,
    keys: Option<&[&str]>,
) -> DescribeConfigsResult {
    let request = DescribeConfigsRequest::default()
        .with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(kind)
            .with_resource_name(s(name))
            .with_configuration_keys(
                keys.map(|ks| ks.iter().map(|k| s(k)).collect()),
            )])
        .with_include_synonyms(true)
        .with_include_documentation(true);
    let r: DescribeConfigsResponse = c.call(ApiKey::DescribeConfigs, 4, &request).await;
    r.results[0].clone()
}

fn entry<'a>(result: &'a DescribeConfigsResult, key: &str) -> &'a DescribeConfigsResourceResult {
    result
        .configs
        .iter()
        .find(|e| e.name.as_str() == key)
        .unwrap_or_else(|| panic!("{key} is described"))
}

fn value(e: &DescribeConfigsResourceResult) -> (&str, i8) {
    (e.value.as_ref().map_or("", |v| v.as_str()), e.config_source)
}

fn synonyms(e: &DescribeConfigsResourceResult) -> Vec<(String, i8)> {
    e.synonyms
        .iter()
        .map(|s| (s.name.to_string(), s.source))
        .collect()
}

async fn alter(
    c: &mut Client,
    kind: i8,
    name: &str,
    ops: &[(&str, i8, Option<&str>)],
) -> (i16, Option<String>) {
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(kind)
            .with_resource_name(s(name))
            .with_configs(
                ops.iter()
                    .map(|(k, op, v)| {
                        AlterableConfig::default()
                            .with_name(s(k))
                            .with_config_operation(*op)
                            .with_value(v.map(s))
                    })
                    .collect(),
            ),
    ]);
    let r: IncrementalAlterConfigsResponse =
        c.call(ApiKey::IncrementalAlterConfigs, 1, &request).await;
    (
        r.responses[0].error_code,
        r.responses[0].error_message.as_ref().map(|m| m.to_string()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_configs_reports_each_layer_with_its_source_and_synonyms() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), &[("log.retention.hours", "48")]).await;
    let mut c = Client::connect(b.kafka_addrs[0]).await;
    assert_eq!(c.create_topic("layered", 1).await, 0);

    let topic = describe(&mut c, TOPIC, "layered", None).await;
    assert_eq!(topic.error_code, 0);
    let retention = entry(&topic, "retention.ms");
    assert_eq!(value(retention), ("172800000", STATIC_BROKER_CONFIG));
    assert!(!retention.read_only);
    assert!(retention
        .documentation
        .as_ref()
        .is_some_and(|d| !d.is_empty()));
    assert_eq!(
        value(entry(&topic, "cleanup.policy")),
        ("delete", DEFAULT_CONFIG)
    );

    assert_eq!(
        alter(
            &mut c,
            BROKER,
            "",
            &[("log.retention.ms", SET, Some("3600000"))]
        )
        .await
        .0,
        0
    );
    assert_eq!(
        alter(
            &mut c,
            BROKER,
            "0",
            &[("log.retention.ms", SET, Some("7200000"))]
        )
        .await
        .0,
        0
    );
    assert_eq!(
        alter(
            &mut c,
            TOPIC,
            "layered",
            &[("retention.ms", SET, Some("60000"))]
        )
        .await
        .0,
        0
    );

    let topic = describe(&mut c, TOPIC, "layered", Some(&["retention.ms"])).await;
    assert_eq!(topic.configs.len(), 1, "only the asked-for key");
    let retention = entry(&topic, "retention.ms");
    assert_eq!(value(retention), ("60000", DYNAMIC_TOPIC_CONFIG));
    let layers = synonyms(retention);
    assert_eq!(
        layers[0],
        ("retention.ms".to_string(), DYNAMIC_TOPIC_CONFIG)
    );
    assert_eq!(
        layers[1],
        ("log.retention.ms".to_string(), DYNAMIC_BROKER_CONFIG)
    );
    assert_eq!(
        layers[2],
        (
            "log.retention.ms".to_string(),
            DYNAMIC_DEFAULT_BROKER_CONFIG
        )
    );
    // log.retention.hours=48 is reported as the log.retention.ms it resolves to.
    assert!(layers.contains(&("log.retention.ms".to_string(), STATIC_BROKER_CONFIG)));
    assert_eq!(layers.len(), 4, "{layers:?}");

    let broker_cfg = describe(
        &mut c,
        BROKER,
        "0",
        Some(&["log.retention.ms", "log.dirs", "broker.id"]),
    )
    .await;
    assert_eq!(broker_cfg.error_code, 0);
    assert_eq!(
        value(entry(&broker_cfg, "log.retention.ms")),
        ("7200000", DYNAMIC_BROKER_CONFIG)
    );
    assert!(entry(&broker_cfg, "log.dirs").read_only);
    let defaults = describe(&mut c, BROKER, "", None).await;
    assert_eq!(defaults.error_code, 0);
    assert_eq!(
        value(entry(&defaults, "log.retention.ms")),
        ("3600000", DYNAMIC_DEFAULT_BROKER_CONFIG)
    );
    assert_eq!(
        defaults.configs.len(),
        1,
        "the cluster default resource lists only what was set"
    );

    assert_eq!(describe(&mut c, TOPIC, "absent", None).await.error_code, 3);
    assert_ne!(
        describe(&mut c, BROKER, "9", None).await.error_code,
        0,
        "another broker's id"
    );
    assert_ne!(
        describe(&mut c, 99, "x", None).await.error_code,
        0,
        "an unknown resource type"
    );
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_configs_validates_and_legacy_alter_replaces_the_whole_set() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), &[]).await;
    let mut c = Client::connect(b.kafka_addrs[0]).await;
    assert_eq!(c.create_topic("strict", 1).await, 0);

    let (code, message) = alter(
        &mut c,
        TOPIC,
        "strict",
        &[("retention.ms", SET, Some("soon"))],
    )
    .await;
    assert_eq!(code, 40, "INVALID_CONFIG");
    assert!(message.unwrap().contains("retention.ms"));
    assert_eq!(
        alter(&mut c, TOPIC, "strict", &[("no.such.key", SET, Some("1"))])
            .await
            .0,
        40
    );
    assert_eq!(
        alter(&mut c, TOPIC, "absent", &[("retention.ms", SET, Some("1"))])
            .await
            .0,
        3
    );
    let (code, message) = alter(
        &mut c,
        BROKER,
        "0",
        &[("log.dirs", SET, Some("/elsewhere"))],
    )
    .await;
    assert_ne!(code, 0);
    assert!(message.unwrap().contains("log.dirs"));
    // One bad op fails the whole resource: nothing from it is applied.
    let (code, _) = alter(
        &mut c,
        TOPIC,
        "strict",
        &[
            ("retention.ms", SET, Some("1000")),
            ("segment.bytes", SET, Some("-5")),
        ],
    )
    .await;
    assert_eq!(code, 40);
    assert_eq!(
        value(entry(
            &describe(&mut c, TOPIC, "strict", None).await,
            "retention.ms"
        ))
        .1,
        DEFAULT_CONFIG
    );

    assert_eq!(
        alter(
            &mut c,
            TOPIC,
            "strict",
            &[
                ("retention.ms", SET, Some("1000")),
                ("segment.ms", SET, Some("5000"))
            ]
        )
        .await
        .0,
        0
    );
    assert_eq!(
        alter(&mut c, TOPIC, "strict", &[("segment.ms", DELETE, None)])
            .await
            .0,
        0
    );
    let d = describe(&mut c, TOPIC, "strict", None).await;
    assert_eq!(
        value(entry(&d, "retention.ms")),
        ("1000", DYNAMIC_TOPIC_CONFIG)
    );
    assert_eq!(value(entry(&d, "segment.ms")).1, DEFAULT_CONFIG);

    // AlterConfigs (legacy) replaces every override of the resource with the given set.
    use proto_kafka::messages::alter_configs_request::{
        AlterConfigsResource as Legacy, AlterableConfig as LegacyConfig,
    };
    let request = AlterConfigsRequest::default().with_resources(vec![Legacy::default()
        .with_resource_type(TOPIC)
        .with_resource_name(s("strict"))
        .with_configs(vec![LegacyConfig::default()
            .with_name(s("retention.bytes"))
            .with_value(Some(s("1000000")))])]);
    let r: AlterConfigsResponse = c.call(ApiKey::AlterConfigs, 2, &request).await;
    assert_eq!(r.responses[0].error_code, 0);
    let d = describe(&mut c, TOPIC, "strict", None).await;
    assert_eq!(
        value(entry(&d, "retention.bytes")),
        ("1000000", DYNAMIC_TOPIC_CONFIG)
    );
    assert_eq!(
        value(entry(&d, "retention.ms")).1,
        DEFAULT_CONFIG,
        "dropped by the legacy replace"
    );
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamic_broker_default_reaches_running_partitions_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let extra = [
        ("log.retention.check.interval.ms", "50"),
        ("internal.topic.configs.enable", "true"),
    ];
    let b = broker(dir.path(), &extra).await;
    let mut c = Client::connect(b.kafka_addrs[0]).await;
    assert_eq!(c.create_topic("shrinks", 1).await, 0);
    assert_eq!(
        alter(
            &mut c,
            TOPIC,
            "shrinks",
            &[("internal.segment.bytes", SET, Some("2000"))]
        )
        .await
        .0,
        0
    );
    for i in 0..60 {
        let r = c
            .produce(
                "shrinks",
                0,
                batch(&[format!("{i:0>200}").as_bytes()], Compression::None),
                1,
            )
            .await;
        assert_eq!(r.error_code, 0);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        c.list_offsets("shrinks", 0, -2).await.offset,
        0,
        "no retention limit yet"
    );

    // The cluster-wide default, not a topic override, limits the topic's size.
    assert_eq!(
        alter(
            &mut c,
            BROKER,
            "",
            &[("log.retention.bytes", SET, Some("4000"))]
        )
        .await
        .0,
        0
    );
    let mut earliest = 0;
    for _ in 0..200 {
        earliest = c.list_offsets("shrinks", 0, -2).await.offset;
        if earliest > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        earliest > 0,
        "the dynamic default never reached the partition"
    );
    b.shutdown().await.unwrap();

    let b = broker(dir.path(), &extra).await;
    let mut c = Client::connect(b.kafka_addrs[0]).await;
    let d = describe(&mut c, TOPIC, "shrinks", Some(&["retention.bytes"])).await;
    assert_eq!(
        value(entry(&d, "retention.bytes")),
        ("4000", DYNAMIC_DEFAULT_BROKER_CONFIG)
    );
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_records_moves_the_log_start_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let p = Process::start(&data, &[]).await;
    let mut c = Client::connect(p.kafka).await;
    assert_eq!(c.create_topic("trim", 1).await, 0);
    produce_n(&mut c, "trim", 0, 20).await;

    assert_eq!(c.delete_records("trim", 0, 7).await, (0, 7));
    assert_eq!(
        c.delete_records("trim", 0, 3).await,
        (0, 7),
        "the log start never moves back"
    );
    assert_eq!(
        c.delete_records("trim", 0, 21).await.0,
        1,
        "OFFSET_OUT_OF_RANGE past the high watermark"
    );
    assert_eq!(c.delete_records("absent", 0, 1).await.0, 3);
    assert_eq!(c.list_offsets("trim", 0, -2).await.offset, 7);
    assert_eq!(c.fetch("trim", 0, 6, 0).await.error_code, 1);
    let rest = c.read_all("trim", 0, 7).await;
    assert_eq!(rest.first().unwrap().0, 7);
    assert_eq!(rest.len(), 13);

    // No clean shutdown to write checkpoints: the new start was checkpointed when answered.
    p.kill9();
    let p = Process::start(&data, &[]).await;
    let mut c = Client::connect(p.kafka).await;
    assert_eq!(c.list_offsets("trim", 0, -2).await.offset, 7);
    assert_eq!(c.fetch("trim", 0, 0, 0).await.error_code, 1);

    // -1 deletes up to the high watermark.
    assert_eq!(c.delete_records("trim", 0, -1).await, (0, 20));
    assert!(c.read_all("trim", 0, 20).await.is_empty());
    produce_n(&mut c, "trim", 0, 1).await;
    assert_eq!(c.read_all("trim", 0, 20).await.len(), 1);
    assert!(p.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_log_dirs_reports_partition_sizes_and_volume_space() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), &[]).await;
    let mut c = Client::connect(b.kafka_addrs[0]).await;
    assert_eq!(c.create_topic("sized", 2).await, 0);
    assert_eq!(c.create_topic("other", 1).await, 0);
    produce_n(&mut c, "sized", 0, 10).await;

    let request =
        DescribeLogDirsRequest::default()
            .with_topics(Some(vec![DescribableLogDirTopic::default()
                .with_topic(topic_name("sized"))
                .with_partitions(vec![0, 1])]));
    let r: DescribeLogDirsResponse = c.call(ApiKey::DescribeLogDirs, 4, &request).await;
    assert_eq!(r.results.len(), 1);
    let result = &r.results[0];
    assert_eq!(result.error_code, 0);
    let expected = std::fs::canonicalize(dir.path().join("data")).unwrap();
    assert_eq!(result.log_dir.as_str(), expected.display().to_string());
    assert!(
        result.total_bytes > 0
            && result.usable_bytes > 0
            && result.usable_bytes <= result.total_bytes
    );
    assert_eq!(result.topics.len(), 1, "only the asked-for topic");
    let sizes: Vec<(i32, i64)> = result.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.partition_size))
        .collect();
    assert_eq!(sizes.len(), 2);
    assert!(
        sizes[0].1 > sizes[1].1,
        "partition 0 holds the records: {sizes:?}"
    );

    let all: DescribeLogDirsResponse = c
        .call(
            ApiKey::DescribeLogDirs,
            1,
            &DescribeLogDirsRequest::default().with_topics(None),
        )
        .await;
    assert_eq!(all.results[0].topics.len(), 2);
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_cluster_names_this_broker_as_controller() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), &[]).await;
    let mut c = Client::connect(b.kafka_addrs[0]).await;
    let r: DescribeClusterResponse = c
        .call(
            ApiKey::DescribeCluster,
            1,
            &DescribeClusterRequest::default().with_endpoint_type(1),
        )
        .await;
    assert_eq!(r.error_code, 0);
    assert_eq!(r.controller_id, BrokerId(0));
    assert_eq!(r.brokers.len(), 1);
    assert_eq!(r.brokers[0].port, i32::from(b.kafka_addrs[0].port()));
    let m = c.metadata(None).await;
    assert_eq!(
        r.cluster_id.as_str(),
        m.cluster_id.as_ref().unwrap().as_str()
    );

    // Runnel's controller runs inside a broker, so asking for controllers (2) names the same
    // endpoints; anything else is UNSUPPORTED_ENDPOINT_TYPE.
    let ask = |t: i8| DescribeClusterRequest::default().with_endpoint_type(t);
    let r: DescribeClusterResponse = c.call(ApiKey::DescribeCluster, 1, &ask(2)).await;
    assert_eq!((r.error_code, r.brokers.len()), (0, 1));
    let r: DescribeClusterResponse = c.call(ApiKey::DescribeCluster, 1, &ask(3)).await;
    assert_eq!(r.error_code, 115);
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_offsets_max_timestamp_finds_the_newest_record() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), &[]).await;
    let mut c = Client::connect(b.kafka_addrs[0]).await;
    assert_eq!(c.create_topic("times", 1).await, 0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // Timestamps out of order: the largest is in the middle batch.
    for (i, ts) in [now - 5000, now + 1000, now - 2000].into_iter().enumerate() {
        let one = batch_at(&[format!("r{i}").as_bytes()], ts);
        assert_eq!(c.produce("times", 0, one, -1).await.error_code, 0);
    }
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
            .with_name(topic_name("times"))
            .with_partitions(vec![
                list_offsets_request::ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(-3),
            ])]);
    let r: ListOffsetsResponse = c.call(ApiKey::ListOffsets, 7, &request).await;
    let p = &r.topics[0].partitions[0];
    assert_eq!(p.error_code, 0);
    assert_eq!((p.offset, p.timestamp), (1, now + 1000));

    // Before v7 the special value is not defined.
    let r: ListOffsetsResponse = c.call(ApiKey::ListOffsets, 6, &request).await;
    assert_ne!(r.topics[0].partitions[0].error_code, 0);

    b.shutdown().await.unwrap();
}
