//! Protocol behaviour against an in-process broker: version negotiation, in-order
//! pipelined responses, produce acks, fetch rules (long poll, KIP-74, HW, errors),
//! ListOffsets, CreateTopics refusals, Metadata auto-creation.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{batch, decode, start, test_config, topic_name, Client};
use proto_kafka::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use proto_kafka::messages::metadata_request::MetadataRequestTopic;
use proto_kafka::messages::*;
use proto_kafka::protocol::{Decodable, StrBytes};
use proto_kafka::records::Compression;
use runnel_broker::broker::Broker;
use runnel_broker::fsio::RealFs;

async fn broker(dir: &std::path::Path, extra: &[(&str, &str)]) -> Broker {
    start(test_config(&dir.join("data"), extra), Arc::new(RealFs)).await
}

#[tokio::test]
async fn every_advertised_api_versions_version_answers_with_kafka_minimums() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), &[]).await;
    let mut c = Client::connect(b.kafka_addrs[0]).await;
    for version in 0..=4 {
        let r = c.api_versions(version).await;
        assert_eq!(r.error_code, 0);
        let produce = r
            .api_keys
            .iter()
            .find(|k| k.api_key == ApiKey::Produce as i16)
            .unwrap();
        assert_eq!((produce.min_version, produce.max_version), (0, 11));
        let fetch = r
            .api_keys
            .iter()
            .find(|k| k.api_key == ApiKey::Fetch as i16)
            .unwrap();
        assert_eq!(fetch.min_version, 4);
    }
    b.abort();
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_and_acks_0_gets_no_answer() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), &[]).await;
    let mut c = Client::connect(b.kafka_addrs[0]).await;
    assert_eq!(c.create_topic("pipe", 1).await, 0);
    let mut expected = Vec::new();
    let mut burst = Vec::new();
    for i in 0..30 {
        let (correlation, frame) = match i % 3 {
            0 => c.frame(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default()),
            1 => {
                let request = Client::produce_request(
                    "pipe",
                    0,
                    batch(&[format!("v{i}").as_bytes()], Compression::None),
                    1,
                );
                c.frame(ApiKey::Produce, 9, &request)
            }
            _ => {
                let request = Client::produce_request(
                    "pipe",
                    0,
                    batch(&[b"fire and forget"], Compression::None),
                    0,
                );
                c.frame(ApiKey::Produce, 9, &request)
            }
        };
        if i % 3 != 2 {
            expected.push(correlation);
        }
        burst.extend_from_slice(&frame);
    }
    c.send_raw(&burst).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..expected.len() {
        let frame = c.read_frame().await.unwrap();
        seen.push(i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]));
    }
    assert_eq!(
        seen, expected,
        "responses follow request order; acks=0 produces none"
    );
    let records = c.read_all("pipe", 0, 0).await;
    assert_eq!(records.len(), 20, "acks=0 records were still written");
    let values: Vec<Bytes> = records.into_iter().map(|(_, v)| v).collect();
    assert_eq!(values[0], Bytes::from("v1"));
    b.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_wakes_up_when_data_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), &[]).await;
    let addr = b.kafka_addrs[0];
    let mut c = Client::connect(addr).await;
    assert_eq!(c.create_topic("poll", 1).await, 0);
    let waiter = tokio::spawn(async move {
        let mut c = Client::connect(addr).await;
        c.fetch("poll", 0, 0, 30_000).await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiter.is_finished(), "an empty fetch waits for data");
    let r = c
        .produce("poll", 0, batch(&[b"wake up"], Compression::None), 1)
        .await;
    assert_eq!(r.error_code, 0);
    let data = tokio::time::timeout(Duration::from_secs(20), waiter)
        .await
        .unwrap()
        .unwrap();
    let records = decode(data.records.unwrap());
    assert_eq!(records, vec![(0, Bytes::from("wake up"))]);
    assert_eq!(data.high_watermark, 1);
    assert_eq!(data.last_stable_offset, 1);
    b.abort();
}

#[tokio::test]
async fn fetch_returns_whole_batches_at_least_one_and_errors_for_bad_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), &[]).await;
    let mut c = Client::connect(b.kafka_addrs[0]).await;
    assert_eq!(c.create_topic("f", 1).await, 0);
    let big = vec![b'x'; 10_000];
    for _ in 0..3 {
        c.produce("f", 0, batch(&[&big, &big], Compression::None), 1)
            .await;
    }
    // An offset inside the second batch returns that whole batch first.
    let mut request = Client::fetch_request("f", 0, 3, 0);
    request.topics[0].partitions[0].partition_max_bytes = 1;
    let response: FetchResponse = c.call(ApiKey::Fetch, 12, &request).await;
    let data = &response.responses[0].partitions[0];
    let records = decode(data.records.clone().unwrap());
    assert_eq!(
        records.iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![2, 3],
        "one whole batch despite max bytes 1"
    );

    let out_of_range = c.fetch("f", 0, 99, 0).await;
    assert_eq!(out_of_range.error_code, 1);
    assert_eq!(out_of_range.high_watermark, 6);
    let unknown = c.fetch("nope", 0, 0, 0).await;
    assert_eq!(unknown.error_code, 3);
    let mut future_epoch = Client::fetch_request("f", 0, 0, 0);
    future_epoch.topics[0].partitions[0].current_leader_epoch = 50;
    let response: FetchResponse = c.call(ApiKey::Fetch, 12, &future_epoch).await;
    assert_eq!(
        response.responses[0].partitions[0].error_code, 75,
        "UNKNOWN_LEADER_EPOCH"
    );
    b.abort();
}

#[tokio::test]
async fn list_offsets_answers_earliest_latest_and_by_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), &[]).await;
    let mut c = Client::connect(b.kafka_addrs[0]).await;
    assert_eq!(c.create_topic("lo", 1).await, 0);
    let empty = c.list_offsets("lo", 0, -1).await;
    assert_eq!((empty.error_code, empty.offset), (0, 0));
    c.produce("lo", 0, batch(&[b"a", b"b"], Compression::None), 1)
        .await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let before_second = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    tokio::time::sleep(Duration::from_millis(20)).await;
    c.produce("lo", 0, batch(&[b"c"], Compression::Gzip), 1)
        .await;
    assert_eq!(c.list_offsets("lo", 0, -2).await.offset, 0);
    let latest = c.list_offsets("lo", 0, -1).await;
    assert_eq!(latest.offset, 3);
    assert!(latest.leader_epoch >= 0);
    let by_time = c.list_offsets("lo", 0, before_second).await;
    assert_eq!(by_time.offset, 2);
    assert!(by_time.timestamp >= before_second);
    let none = c.list_offsets("lo", 0, before_second + 3_600_000).await;
    assert_eq!((none.offset, none.timestamp), (-1, -1));
    assert_eq!(
        c.list_offsets("lo", 0, -3).await.error_code,
        42,
        "MAX_TIMESTAMP is not advertised"
    );
    b.abort();
}

async fn create(
    c: &mut Client,
    topic: CreatableTopic,
    validate_only: bool,
) -> (i16, Option<String>) {
    let request = CreateTopicsRequest::default()
        .with_topics(vec![topic])
        .with_timeout_ms(5000)
        .with_validate_only(validate_only);
    let response: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &request).await;
    let t = &response.topics[0];
    (
        t.error_code,
        t.error_message.as_ref().map(|m| m.as_str().to_string()),
    )
}

fn topic(name: &str, partitions: i32, rf: i16) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(topic_name(name))
        .with_num_partitions(partitions)
        .with_replication_factor(rf)
}

#[tokio::test]
async fn create_topics_refuses_with_kafka_error_codes() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), &[("num.partitions", "3")]).await;
    let mut c = Client::connect(b.kafka_addrs[0]).await;
    assert_eq!(create(&mut c, topic("ok.topic", -1, -1), false).await.0, 0);
    let metadata = c.metadata(Some(&["ok.topic"])).await;
    assert_eq!(
        metadata.topics[0].partitions.len(),
        3,
        "-1 partitions means num.partitions"
    );
    assert_eq!(create(&mut c, topic("ok.topic", 1, 1), false).await.0, 36);
    assert_eq!(
        create(&mut c, topic("ok_topic", 1, 1), false).await.0,
        17,
        "'.' and '_' collide"
    );
    assert_eq!(create(&mut c, topic("bad/name", 1, 1), false).await.0, 17);
    assert_eq!(create(&mut c, topic("zero", 0, 1), false).await.0, 37);
    let (code, message) = create(&mut c, topic("rf3", 1, 3), false).await;
    assert_eq!(code, 38);
    assert!(message.unwrap().contains("only 1 broker"));
    let with_config = topic("cfg", 1, 1).with_configs(vec![CreatableTopicConfig::default()
        .with_name(StrBytes::from_static_str("retention.ms"))
        .with_value(Some(StrBytes::from_static_str("soon")))]);
    let (code, message) = create(&mut c, with_config, false).await;
    assert_eq!(code, 40);
    assert!(message.unwrap().contains("retention.ms"));
    assert_eq!(create(&mut c, topic("dry", 2, 1), true).await.0, 0);
    assert_eq!(
        c.metadata(Some(&["dry"])).await.topics[0].error_code,
        3,
        "validate_only creates nothing"
    );

    let twice = CreateTopicsRequest::default()
        .with_topics(vec![topic("dup", 1, 1), topic("dup", 1, 1)])
        .with_timeout_ms(5000);
    let response: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &twice).await;
    assert!(response.topics.iter().all(|t| t.error_code == 42));
    b.abort();
}

#[tokio::test]
async fn metadata_creates_topics_only_when_broker_and_client_allow_it() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), &[]).await;
    let mut c = Client::connect(b.kafka_addrs[0]).await;
    let ask = |allow: bool| {
        MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic_name("auto")))
            ]))
            .with_allow_auto_topic_creation(allow)
    };
    let r: MetadataResponse = c.call(ApiKey::Metadata, 12, &ask(false)).await;
    assert_eq!(r.topics[0].error_code, 3);
    let r: MetadataResponse = c.call(ApiKey::Metadata, 12, &ask(true)).await;
    assert_eq!(r.topics[0].error_code, 0);
    assert_eq!(r.topics[0].partitions[0].leader_id.0, 0);
    assert!(!r.topics[0].topic_id.is_nil());
    assert!(r.cluster_id.is_some());
    assert_eq!(r.controller_id.0, 0);
    b.abort();

    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), &[("auto.create.topics.enable", "false")]).await;
    let mut c = Client::connect(b.kafka_addrs[0]).await;
    let r: MetadataResponse = c.call(ApiKey::Metadata, 12, &ask(true)).await;
    assert_eq!(r.topics[0].error_code, 3);
    b.abort();
}

#[tokio::test]
async fn produce_refusals_carry_kafka_codes_and_messages() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), &[]).await;
    let mut c = Client::connect(b.kafka_addrs[0]).await;
    let small = topic("small", 1, 1).with_configs(vec![CreatableTopicConfig::default()
        .with_name(StrBytes::from_static_str("max.message.bytes"))
        .with_value(Some(StrBytes::from_static_str("200")))]);
    assert_eq!(create(&mut c, small, false).await.0, 0);
    let too_big = c
        .produce("small", 0, batch(&[&[b'z'; 500]], Compression::None), 1)
        .await;
    assert_eq!(too_big.error_code, 10);
    assert!(too_big
        .error_message
        .unwrap()
        .as_str()
        .contains("max.message.bytes"));
    assert_eq!(
        c.produce("small", 7, batch(&[b"x"], Compression::None), 1)
            .await
            .error_code,
        3
    );
    assert_eq!(
        c.produce("small", 0, batch(&[b"x"], Compression::None), 2)
            .await
            .error_code,
        21
    );

    b.abort();
}

#[tokio::test]
async fn log_append_time_topics_stamp_the_broker_clock() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), &[]).await;
    let mut c = Client::connect(b.kafka_addrs[0]).await;
    let lat = topic("lat", 1, 1).with_configs(vec![CreatableTopicConfig::default()
        .with_name(StrBytes::from_static_str("message.timestamp.type"))
        .with_value(Some(StrBytes::from_static_str("LogAppendTime")))]);
    assert_eq!(create(&mut c, lat, false).await.0, 0);
    let r = c
        .produce("lat", 0, batch(&[b"stamped"], Compression::Snappy), 1)
        .await;
    assert!(r.log_append_time_ms > 0);
    let data = c.fetch("lat", 0, 0, 0).await;
    let mut raw = data.records.unwrap();
    // Consumers take a LogAppendTime record's timestamp from the batch's maxTimestamp
    // (bytes 35..43 of a v2 batch); the decoder here keeps the producer's own.
    let max_timestamp = i64::from_be_bytes(raw[35..43].try_into().unwrap());
    assert_eq!(max_timestamp, r.log_append_time_ms);
    let sets = proto_kafka::records::RecordBatchDecoder::decode_all(&mut raw).unwrap();
    let record = &sets[0].records[0];
    assert_eq!(
        record.timestamp_type,
        proto_kafka::records::TimestampType::LogAppend
    );
    b.abort();
}

#[tokio::test]
async fn an_invalid_configuration_stops_start_up_naming_the_key() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_runnel-broker"))
        .args(["--num.partitions=0", "--listeners=PLAINTEXT://127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("num.partitions"), "{stderr}");

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_runnel-broker"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("log.flush.mode"));
}

#[tokio::test]
async fn metadata_v0_with_an_empty_list_means_every_topic() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), &[]).await;
    let mut c = Client::connect(b.kafka_addrs[0]).await;
    assert_eq!(c.create_topic("one", 1).await, 0);
    assert_eq!(c.create_topic("two", 2).await, 0);
    let (_, frame) = c.frame(
        ApiKey::Metadata,
        0,
        &MetadataRequest::default().with_topics(Some(vec![])),
    );
    c.send_raw(&frame).await.unwrap();
    let mut response = c.read_frame().await.unwrap();
    ResponseHeader::decode(&mut response, 0).unwrap();
    let response = MetadataResponse::decode(&mut response, 0).unwrap();
    assert_eq!(response.topics.len(), 2);
    let v1 = c.metadata(Some(&[])).await;
    assert!(v1.topics.is_empty(), "v1+: an empty list means none");
    b.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_by_size_moves_the_log_start_and_earliest_follows() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(
        dir.path(),
        &[
            ("log.retention.check.interval.ms", "50"),
            ("internal.topic.configs.enable", "true"),
        ],
    )
    .await;
    let mut c = Client::connect(b.kafka_addrs[0]).await;
    let configs = [
        ("internal.segment.bytes", "2000"),
        ("retention.bytes", "4000"),
    ]
    .iter()
    .map(|(k, v)| {
        CreatableTopicConfig::default()
            .with_name(StrBytes::from_static_str(k))
            .with_value(Some(StrBytes::from_static_str(v)))
    })
    .collect();
    assert_eq!(
        create(&mut c, topic("ret", 1, 1).with_configs(configs), false)
            .await
            .0,
        0
    );
    for i in 0..60 {
        let r = c
            .produce(
                "ret",
                0,
                batch(&[format!("{i:0>200}").as_bytes()], Compression::None),
                1,
            )
            .await;
        assert_eq!(r.error_code, 0);
    }
    let mut earliest = 0;
    for _ in 0..200 {
        earliest = c.list_offsets("ret", 0, -2).await.offset;
        if earliest > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(earliest > 0, "retention never ran");
    assert_eq!(
        c.fetch("ret", 0, 0, 0).await.error_code,
        1,
        "offset 0 is gone"
    );
    let rest = c.read_all("ret", 0, earliest).await;
    assert_eq!(rest.first().map(|r| r.0), Some(earliest));
    assert_eq!(rest.last().map(|r| r.0), Some(59));
    b.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_by_time_deletes_segments_whose_newest_record_is_too_old() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(
        dir.path(),
        &[
            ("log.retention.check.interval.ms", "50"),
            ("internal.topic.configs.enable", "true"),
        ],
    )
    .await;
    let mut c = Client::connect(b.kafka_addrs[0]).await;
    let configs = [
        ("internal.segment.bytes", "1000"),
        ("retention.ms", "60000"),
    ]
    .iter()
    .map(|(k, v)| {
        CreatableTopicConfig::default()
            .with_name(StrBytes::from_static_str(k))
            .with_value(Some(StrBytes::from_static_str(v)))
    })
    .collect();
    assert_eq!(
        create(&mut c, topic("aged", 1, 1).with_configs(configs), false)
            .await
            .0,
        0
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // Twenty records an hour old fill several segments; then ten fresh ones.
    for i in 0..30 {
        let ts = if i < 20 { now - 3_600_000 } else { now };
        let value = format!("{i:0>200}");
        let r = c
            .produce("aged", 0, common::batch_at(&[value.as_bytes()], ts), 1)
            .await;
        assert_eq!(r.error_code, 0);
    }
    for _ in 0..200 {
        if c.list_offsets("aged", 0, -2).await.offset > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A few more retention rounds, then the log start must have settled: whole segments
    // go, and the one holding offset 20 also holds old records and stays.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let earliest = c.list_offsets("aged", 0, -2).await.offset;
    assert!((15..=20).contains(&earliest), "log start {earliest}");
    let rest = c.read_all("aged", 0, earliest).await;
    assert_eq!(rest.last().map(|r| r.0), Some(29));
    b.abort();
}

#[tokio::test]
async fn idempotent_producers_get_sequence_checks_and_retries_are_not_written_twice() {
    use common::producer_batch;
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), &[]).await;
    let mut c = Client::connect(b.kafka_addrs[0]).await;
    assert_eq!(c.create_topic("idem", 1).await, 0);
    let (pid, epoch) = c.init_producer_id().await;
    let (other, _) = c.init_producer_id().await;
    assert_ne!(pid, other, "every InitProducerId gets a new id");
    assert_eq!(epoch, 0);

    let first = producer_batch(&[b"a", b"b", b"c"], Compression::Lz4, pid, 0, 0);
    let r = c.produce("idem", 0, first.clone(), -1).await;
    assert_eq!((r.error_code, r.base_offset), (0, 0));
    let retry = c.produce("idem", 0, first, -1).await;
    assert_eq!(
        (retry.error_code, retry.base_offset),
        (0, 0),
        "a retry gets the original offset"
    );
    let gap = c
        .produce(
            "idem",
            0,
            producer_batch(&[b"x"], Compression::None, pid, 0, 5),
            -1,
        )
        .await;
    assert_eq!(gap.error_code, 45, "OUT_OF_ORDER_SEQUENCE_NUMBER");
    assert!(gap.error_message.unwrap().as_str().contains("after 2"));
    let next = c
        .produce(
            "idem",
            0,
            producer_batch(&[b"d"], Compression::None, pid, 0, 3),
            -1,
        )
        .await;
    assert_eq!((next.error_code, next.base_offset), (0, 3));
    let bumped = c
        .produce(
            "idem",
            0,
            producer_batch(&[b"e"], Compression::None, pid, 1, 0),
            -1,
        )
        .await;
    assert_eq!(bumped.error_code, 0);
    let stale = c
        .produce(
            "idem",
            0,
            producer_batch(&[b"f"], Compression::None, pid, 0, 4),
            -1,
        )
        .await;
    assert_eq!(stale.error_code, 47, "INVALID_PRODUCER_EPOCH");
    let new_epoch_mid_sequence = c
        .produce(
            "idem",
            0,
            producer_batch(&[b"g"], Compression::None, pid, 2, 7),
            -1,
        )
        .await;
    assert_eq!(new_epoch_mid_sequence.error_code, 45);

    let values: Vec<Bytes> = c
        .read_all("idem", 0, 0)
        .await
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(values, ["a", "b", "c", "d", "e"].map(Bytes::from));
    let text = common::metrics(b.http_addr).await;
    assert_eq!(
        common::metric(&text, "runnel_produce_duplicate_batches_total"),
        1.0
    );
    assert_eq!(
        common::metric(&text, "runnel_produce_idempotent_batches_total"),
        3.0
    );
    assert_eq!(
        common::metric(&text, "runnel_producer_ids_issued_total"),
        2.0
    );

    let transactional: InitProducerIdResponse = c
        .call(
            ApiKey::InitProducerId,
            4,
            &InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("tx")))),
        )
        .await;
    assert_eq!(
        transactional.error_code, 53,
        "a clear, non-retriable refusal"
    );
    b.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_assignment_obeys_the_partition_limit_too() {
    use proto_kafka::messages::create_topics_request::CreatableReplicaAssignment;
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), &[]).await;
    let mut c = Client::connect(b.kafka_addrs[0]).await;
    let assignments = (0..10_001)
        .map(|p| {
            CreatableReplicaAssignment::default()
                .with_partition_index(p)
                .with_broker_ids(vec![BrokerId(0)])
        })
        .collect();
    let spec = topic("many", -1, -1).with_assignments(assignments);
    let (error, message) = create(&mut c, spec, true).await;
    assert_eq!(error, 37, "INVALID_PARTITIONS: {message:?}");
    b.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_configs_are_refused_from_clients_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), &[]).await;
    let mut c = Client::connect(b.kafka_addrs[0]).await;
    let configs = vec![CreatableTopicConfig::default()
        .with_name(StrBytes::from_static_str("internal.segment.bytes"))
        .with_value(Some(StrBytes::from_static_str("100")))];
    let (error, message) = create(&mut c, topic("tiny", 1, 1).with_configs(configs), false).await;
    assert_eq!(error, 40, "INVALID_CONFIG: {message:?}");
    b.abort();
}

#[tokio::test]
async fn offset_for_leader_epoch_answers_where_an_epoch_ends_fenced_by_the_current_one() {
    use proto_kafka::messages::offset_for_leader_epoch_request::{
        OffsetForLeaderPartition, OffsetForLeaderTopic,
    };
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), &[]).await;
    let mut c = Client::connect(b.kafka_addrs[0]).await;
    assert_eq!(c.create_topic("ep", 1).await, 0);
    c.produce("ep", 0, batch(&[b"a", b"b", b"c"], Compression::None), 1)
        .await;
    // A standalone topic is led in epoch 0 from its creation (a stale epoch cannot be
    // shown here; the cluster tests move leaders).
    let current = c.list_offsets("ep", 0, -1).await.leader_epoch;
    assert_eq!(current, 0);
    let ask = |leader_epoch: i32, current_leader_epoch: i32| {
        OffsetForLeaderEpochRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![OffsetForLeaderTopic::default()
                .with_topic(topic_name("ep"))
                .with_partitions(vec![OffsetForLeaderPartition::default()
                    .with_partition(0)
                    .with_leader_epoch(leader_epoch)
                    .with_current_leader_epoch(current_leader_epoch)])])
    };
    for version in 2..=4 {
        let answer: OffsetForLeaderEpochResponse = c
            .call(
                ApiKey::OffsetForLeaderEpoch,
                version,
                &ask(current, current),
            )
            .await;
        let p = &answer.topics[0].partitions[0];
        assert_eq!(
            (p.error_code, p.leader_epoch, p.end_offset),
            (0, current, 3),
            "v{version}: the latest epoch ends at the log end"
        );
    }
    // An epoch newer than any here: the latest one at or below it.
    let answer: OffsetForLeaderEpochResponse = c
        .call(ApiKey::OffsetForLeaderEpoch, 4, &ask(current + 5, -1))
        .await;
    let p = &answer.topics[0].partitions[0];
    assert_eq!(
        (p.error_code, p.leader_epoch, p.end_offset),
        (0, current, 3)
    );
    // A client ahead of this broker's epoch.
    let answer: OffsetForLeaderEpochResponse = c
        .call(ApiKey::OffsetForLeaderEpoch, 4, &ask(current, current + 1))
        .await;
    assert_eq!(
        answer.topics[0].partitions[0].error_code, 75,
        "UNKNOWN_LEADER_EPOCH"
    );
    b.abort();
}
