//! The console's Kafka client (`console::calls`) against an in-process broker: every read
//! and every action, compressed batches, and what it does when no broker is live.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use common::{batch, batch_at, start, test_config, Client};
use proto_kafka::messages::consumer_protocol_assignment::{
    ConsumerProtocolAssignment, TopicPartition,
};
use proto_kafka::messages::join_group_request::JoinGroupRequestProtocol;
use proto_kafka::messages::leave_group_request::MemberIdentity;
use proto_kafka::messages::sync_group_request::SyncGroupRequestAssignment;
use proto_kafka::messages::*;
use proto_kafka::protocol::{Encodable, StrBytes};
use proto_kafka::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use runnel_broker::broker::Broker;
use runnel_broker::console::calls::{Calls, Committed, ConfigResource, LogRange};
use runnel_broker::console::kafka::CallError;
use runnel_broker::console::model::ConfigSource;
use runnel_broker::fsio::RealFs;
use runnel_broker::metadata::cache::MetadataCache;

const MEMBER_ID_REQUIRED: i16 = 79;
const TOPIC_ALREADY_EXISTS: i16 = 36;
const INVALID_PARTITIONS: i16 = 37;
const NON_EMPTY_GROUP: i16 = 68;
/// Retried while the group coordinator loads (or the offsets topic is being created).
const COORDINATOR_LOADING: [i16; 3] = [14, 15, 16];

async fn broker(dir: &std::path::Path) -> Broker {
    let config = test_config(
        dir,
        &[
            ("group.initial.rebalance.delay.ms", "0"),
            ("group.min.session.timeout.ms", "100"),
            ("offsets.topic.num.partitions", "3"),
        ],
    );
    start(config, Arc::new(RealFs)).await
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn calls(broker: &Broker) -> (Calls, i32) {
    let id = *broker.cache.image().brokers.keys().next().unwrap();
    let calls = Calls::new(
        broker.cache.clone(),
        "PLAINTEXT".to_string(),
        Duration::from_secs(10),
    )
    .with_local_broker(id);
    (calls, id)
}

/// Runs `f` again while the group coordinator is not ready yet, as clients do.
async fn ready<T, F, Fut>(mut f: F) -> Result<T, CallError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CallError>>,
{
    for _ in 0..200 {
        match f().await {
            Err(e)
                if e.code().is_some_and(|c| COORDINATOR_LOADING.contains(&c))
                    || matches!(e, CallError::NoCoordinator { .. }) =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => return other,
        }
    }
    panic!("the group coordinator never became ready");
}

/// A batch of records with headers (offsets 0..n) with the given codec.
fn header_batch(values: &[&str], compression: Compression) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: false,
            control: false,
            delete_horizon_ms: None,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: 1_700_000_000_000 + i as i64,
            key: Some(Bytes::from(format!("key{i}"))),
            value: Some(Bytes::copy_from_slice(v.as_bytes())),
            headers: vec![(s("trace"), Some(Bytes::from(format!("t{i}"))))],
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .unwrap();
    buf.freeze()
}

fn assignment(topic: &str, partitions: &[i32]) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(1);
    ConsumerProtocolAssignment::default()
        .with_assigned_partitions(vec![TopicPartition::default()
            .with_topic(TopicName(s(topic)))
            .with_partitions(partitions.to_vec())])
        .with_user_data(None)
        .encode(&mut buf, 1)
        .unwrap();
    buf.freeze()
}

fn join_request(group: &str, member: &str) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(30_000)
        .with_rebalance_timeout_ms(30_000)
        .with_member_id(s(member))
        .with_group_instance_id(None)
        .with_protocol_type(s("consumer"))
        .with_reason(None)
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(Bytes::from_static(b"m"))])
}

/// Joins `group` as its only member with partitions 0 and 1 of `topic`: the member id.
async fn form_group(client: &mut Client, group: &str, topic: &str) -> String {
    let mut member = String::new();
    for _ in 0..200 {
        let joined: JoinGroupResponse = client
            .call(ApiKey::JoinGroup, 9, &join_request(group, &member))
            .await;
        match joined.error_code {
            0 => {
                member = joined.member_id.to_string();
                let sync = SyncGroupRequest::default()
                    .with_group_id(GroupId(s(group)))
                    .with_generation_id(joined.generation_id)
                    .with_member_id(s(&member))
                    .with_group_instance_id(None)
                    .with_protocol_type(Some(s("consumer")))
                    .with_protocol_name(Some(s("range")))
                    .with_assignments(vec![SyncGroupRequestAssignment::default()
                        .with_member_id(s(&member))
                        .with_assignment(assignment(topic, &[1, 0]))]);
                let synced: SyncGroupResponse = client.call(ApiKey::SyncGroup, 5, &sync).await;
                assert_eq!(synced.error_code, 0);
                return member;
            }
            MEMBER_ID_REQUIRED => member = joined.member_id.to_string(),
            code if COORDINATOR_LOADING.contains(&code) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            code => panic!("JoinGroup failed with {code}"),
        }
    }
    panic!("the coordinator never let the member join");
}

async fn leave_group(client: &mut Client, group: &str, member: &str) {
    let left: LeaveGroupResponse = client
        .call(
            ApiKey::LeaveGroup,
            5,
            &LeaveGroupRequest::default()
                .with_group_id(GroupId(s(group)))
                .with_members(vec![MemberIdentity::default()
                    .with_member_id(s(member))
                    .with_group_instance_id(None)
                    .with_reason(None)]),
        )
        .await;
    assert_eq!(left.error_code, 0);
}

#[tokio::test]
async fn topics_records_and_offsets_through_the_console_client() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path()).await;
    let (calls, id) = calls(&broker);
    let mut client = Client::connect(broker.kafka_addrs[0]).await;

    // Create, and create again.
    calls
        .create_topic("orders", 2, 1, &[("retention.ms".into(), "100000".into())])
        .await
        .unwrap();
    assert_eq!(broker.cache.image().topic("orders").unwrap().partitions, 2);
    let err = calls.create_topic("orders", 2, 1, &[]).await.unwrap_err();
    assert_eq!(err.code(), Some(TOPIC_ALREADY_EXISTS), "{err}");
    assert!(err.to_string().contains("TOPIC_ALREADY_EXISTS"), "{err}");

    // Partition 0: a plain batch, a gzip batch with headers, a zstd batch.
    let p0 = client
        .produce("orders", 0, batch(&[b"a", b"b"], Compression::None), -1)
        .await;
    assert_eq!(p0.error_code, 0);
    let p0 = client
        .produce(
            "orders",
            0,
            header_batch(&["c", "d", "e"], Compression::Gzip),
            -1,
        )
        .await;
    assert_eq!((p0.error_code, p0.base_offset), (0, 2));
    let p0 = client
        .produce("orders", 0, batch(&[b"f", b"g"], Compression::Zstd), -1)
        .await;
    assert_eq!((p0.error_code, p0.base_offset), (0, 5));
    // Partition 1: records at known times.
    for (values, at) in [(&[&b"x"[..], b"y"][..], 1_000), (&[&b"z"[..]][..], 2_000)] {
        let r = client.produce("orders", 1, batch_at(values, at), -1).await;
        assert_eq!(r.error_code, 0);
    }

    // Offsets from the leader; a partition that does not exist is simply absent.
    let offsets = calls
        .offsets(&[
            ("orders".into(), 0),
            ("orders".into(), 1),
            ("orders".into(), 0),
            ("missing".into(), 0),
        ])
        .await;
    assert_eq!(offsets.len(), 2);
    assert_eq!(
        offsets[&("orders".into(), 0)],
        LogRange { start: 0, end: 7 }
    );
    assert_eq!(
        offsets[&("orders".into(), 1)],
        LogRange { start: 0, end: 3 }
    );

    // Fetch from inside the compressed batch: earlier records of the batch are dropped.
    let fetched = calls.fetch("orders", 0, 3, 1 << 20, 100).await.unwrap();
    assert_eq!((fetched.high_watermark, fetched.log_start), (7, 0));
    let got: Vec<(i64, Vec<u8>)> = fetched
        .rows
        .iter()
        .map(|r| (r.offset, r.value.clone().unwrap()))
        .collect();
    assert_eq!(
        got,
        vec![
            (3, b"d".to_vec()),
            (4, b"e".to_vec()),
            (5, b"f".to_vec()),
            (6, b"g".to_vec())
        ]
    );
    assert_eq!(fetched.rows[0].key.as_deref(), Some(&b"key1"[..]));
    assert_eq!(fetched.rows[0].timestamp, 1_700_000_000_001);
    assert_eq!(
        fetched.rows[0].headers,
        vec![("trace".to_string(), Some(b"t1".to_vec()))]
    );
    let all = calls.fetch("orders", 0, 0, 1 << 20, 100).await.unwrap();
    assert_eq!(all.rows.len(), 7);
    let end = calls.fetch("orders", 0, 7, 1 << 20, 100).await.unwrap();
    assert!(end.rows.is_empty());
    let err = calls
        .fetch("orders", 0, 99, 1 << 20, 100)
        .await
        .unwrap_err();
    assert!(err.code().is_some(), "{err}");
    assert!(matches!(
        calls.fetch("orders", 5, 0, 1 << 20, 100).await,
        Err(CallError::UnknownPartition { .. })
    ));

    // Offsets by time.
    assert_eq!(
        calls.offset_for_time("orders", 1, 0).await.unwrap(),
        Some(0)
    );
    assert_eq!(
        calls.offset_for_time("orders", 1, 1_500).await.unwrap(),
        Some(2)
    );
    assert_eq!(
        calls.offset_for_time("orders", 1, 9_000).await.unwrap(),
        None
    );

    // Log directories.
    let dirs = calls.log_dirs(id).await.unwrap();
    assert_eq!(dirs.dirs.len(), 1);
    let dir_row = &dirs.dirs[0];
    assert_eq!(dir_row.error, None);
    assert!(dir_row.partitions >= 2);
    assert!(dir_row.total.unwrap() > 0 && dir_row.usable.unwrap() > 0);
    let p0_size = dirs.partition_sizes[&("orders".into(), 0)];
    assert!(p0_size > 0);
    assert!(dir_row.size >= p0_size);
    assert!(matches!(
        calls.log_dirs(id + 100).await,
        Err(CallError::BrokerNotLive { .. })
    ));

    // Configs: the topic's override, then set and deleted; the broker's own.
    let configs = calls
        .configs(ConfigResource::Topic("orders".into()))
        .await
        .unwrap();
    assert!(configs.windows(2).all(|w| w[0].name <= w[1].name));
    let retention = configs.iter().find(|c| c.name == "retention.ms").unwrap();
    assert_eq!(retention.value.as_deref(), Some("100000"));
    assert_eq!(retention.source, ConfigSource::Topic);
    calls
        .alter_topic_config("orders", "retention.ms", Some("200000"))
        .await
        .unwrap();
    calls
        .alter_topic_config("orders", "cleanup.policy", Some("compact"))
        .await
        .unwrap();
    let configs = calls
        .configs(ConfigResource::Topic("orders".into()))
        .await
        .unwrap();
    let value = |name: &str| {
        configs
            .iter()
            .find(|c| c.name == name)
            .map(|c| (c.value.clone(), c.source))
    };
    assert_eq!(
        value("retention.ms"),
        Some((Some("200000".into()), ConfigSource::Topic))
    );
    assert_eq!(
        value("cleanup.policy"),
        Some((Some("compact".into()), ConfigSource::Topic))
    );
    calls
        .alter_topic_config("orders", "retention.ms", None)
        .await
        .unwrap();
    let configs = calls
        .configs(ConfigResource::Topic("orders".into()))
        .await
        .unwrap();
    let retention = configs.iter().find(|c| c.name == "retention.ms").unwrap();
    assert_ne!(retention.source, ConfigSource::Topic);
    let err = calls
        .alter_topic_config("orders", "no.such.config", Some("1"))
        .await
        .unwrap_err();
    assert!(err.code().is_some(), "{err}");
    let broker_configs = calls.configs(ConfigResource::Broker(id)).await.unwrap();
    assert!(!broker_configs.is_empty());
    assert!(broker_configs
        .iter()
        .any(|c| c.source == ConfigSource::Broker || c.source == ConfigSource::Default));
    let err = calls
        .configs(ConfigResource::Topic("missing".into()))
        .await
        .unwrap_err();
    assert!(err.code().is_some(), "{err}");

    // Partitions: grown, and shrinking refused.
    calls.create_partitions("orders", 3).await.unwrap();
    assert_eq!(broker.cache.image().topic("orders").unwrap().partitions, 3);
    let err = calls.create_partitions("orders", 2).await.unwrap_err();
    assert_eq!(err.code(), Some(INVALID_PARTITIONS), "{err}");

    // Delete records: the new log start.
    assert_eq!(calls.delete_records("orders", 0, 4).await.unwrap(), 4);
    let offsets = calls.offsets(&[("orders".into(), 0)]).await;
    assert_eq!(
        offsets[&("orders".into(), 0)],
        LogRange { start: 4, end: 7 }
    );
    let err = calls.delete_records("orders", 0, 100).await.unwrap_err();
    assert!(err.code().is_some(), "{err}");

    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn groups_through_the_console_client() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path()).await;
    let (calls, id) = calls(&broker);
    let mut client = Client::connect(broker.kafka_addrs[0]).await;
    calls.create_topic("events", 2, 1, &[]).await.unwrap();

    // Finding the coordinator creates the offsets topic; the group does not exist yet.
    let unknown = ready(|| calls.describe_group("readers")).await.unwrap();
    assert_eq!(unknown.state, "Dead");
    assert!(unknown.members.is_empty());

    let member = form_group(&mut client, "readers", "events").await;

    let listing = calls.list_groups().await;
    assert!(listing.complete);
    let listed = listing.groups.iter().find(|g| g.id == "readers").unwrap();
    assert_eq!(listed.protocol_type, "consumer");
    assert_eq!(listed.coordinator, id);
    assert_eq!(listed.state, "Stable");

    let described = ready(|| calls.describe_group("readers")).await.unwrap();
    assert_eq!(described.state, "Stable");
    assert_eq!(described.protocol_type, "consumer");
    assert_eq!(described.protocol, "range");
    assert_eq!(described.coordinator, id);
    assert_eq!(described.members.len(), 1);
    let row = &described.members[0];
    assert_eq!(row.member_id, member);
    assert_eq!(row.client_id, "runnel-test");
    assert_eq!(row.assignment, vec![("events".to_string(), vec![0, 1])]);

    // An admin commit is refused while the group has members, and so is deleting it.
    let wanted = [
        Committed {
            topic: "events".into(),
            partition: 0,
            offset: 0,
        },
        Committed {
            topic: "events".into(),
            partition: 1,
            offset: 0,
        },
    ];
    let err = calls.commit_offsets("readers", &wanted).await.unwrap_err();
    assert!(err.code().is_some(), "{err}");
    let err = calls.delete_group("readers").await.unwrap_err();
    assert_eq!(err.code(), Some(NON_EMPTY_GROUP), "{err}");

    leave_group(&mut client, "readers", &member).await;
    let described = calls.describe_group("readers").await.unwrap();
    assert_eq!(described.state, "Empty");
    assert!(described.members.is_empty());

    // Once empty, an admin may commit; only partitions with a commit are listed.
    let wanted = [Committed {
        topic: "events".into(),
        partition: 1,
        offset: 0,
    }];
    calls.commit_offsets("readers", &wanted).await.unwrap();
    ready(|| calls.commit_offsets("other", &wanted))
        .await
        .unwrap();
    let committed = calls
        .committed_offsets(&["readers".into(), "other".into(), "readers".into()])
        .await;
    assert_eq!(committed["readers"], wanted.to_vec());
    assert_eq!(committed["other"], wanted.to_vec());
    let err = calls
        .commit_offsets(
            "readers",
            &[Committed {
                topic: "nope".into(),
                partition: 0,
                offset: 1,
            }],
        )
        .await
        .unwrap_err();
    assert!(err.code().is_some(), "{err}");

    calls.delete_group("readers").await.unwrap();
    let committed = calls.committed_offsets(&["readers".into()]).await;
    assert!(committed.get("readers").is_none_or(|c| c.is_empty()));
    let err = calls.delete_group("readers").await.unwrap_err();
    assert!(err.code().is_some(), "{err}");
    let listing = calls.list_groups().await;
    assert!(listing.groups.iter().all(|g| g.id != "readers"));
    assert!(listing.groups.iter().any(|g| g.id == "other"));

    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn nothing_is_dialled_without_live_brokers() {
    let calls = Calls::new(
        Arc::new(MetadataCache::default()),
        "PLAINTEXT".into(),
        Duration::from_secs(1),
    );
    assert!(calls.offsets(&[("t".into(), 0)]).await.is_empty());
    let listing = calls.list_groups().await;
    assert!(!listing.complete && listing.groups.is_empty());
    assert!(calls.committed_offsets(&["g".into()]).await.is_empty());
    assert!(matches!(
        calls.log_dirs(1).await,
        Err(CallError::BrokerNotLive { broker: 1 })
    ));
    assert!(matches!(
        calls.create_topic("t", 1, 1, &[]).await,
        Err(CallError::NoLiveBroker)
    ));
    assert!(matches!(
        calls.describe_group("g").await,
        Err(CallError::NoLiveBroker)
    ));
    assert!(matches!(
        calls.fetch("t", 0, 0, 100, 100).await,
        Err(CallError::UnknownPartition { .. })
    ));
}
