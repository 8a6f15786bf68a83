//! Shared helpers for the broker's integration tests: a minimal Kafka client built on
//! the proto-kafka crate, record batch builders, and in-process or child-process brokers.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use proto_kafka::messages::create_topics_request::CreatableTopic;
use proto_kafka::messages::fetch_request::{FetchPartition, FetchTopic};
use proto_kafka::messages::fetch_response::PartitionData;
use proto_kafka::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use proto_kafka::messages::list_offsets_response::ListOffsetsPartitionResponse;
use proto_kafka::messages::metadata_request::MetadataRequestTopic;
use proto_kafka::messages::produce_request::{PartitionProduceData, TopicProduceData};
use proto_kafka::messages::produce_response::PartitionProduceResponse;
use proto_kafka::messages::*;
use proto_kafka::protocol::{encode_request_header_into_buffer, Decodable, Encodable, StrBytes};
use proto_kafka::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use runnel_broker::broker::Broker;
use runnel_broker::config::Config;
use runnel_broker::fsio::FileSystem;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// A test client speaking raw Kafka protocol over one connection.
pub struct Client {
    pub stream: TcpStream,
    correlation: i32,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr)
            .await
            .expect("connect to the broker");
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            correlation: 0,
        }
    }

    /// Encodes a request frame (length prefix included).
    pub fn frame<R: Encodable>(&mut self, api: ApiKey, version: i16, body: &R) -> (i32, Bytes) {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("runnel-test")));
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        encode_request_header_into_buffer(&mut buf, &header).unwrap();
        body.encode(&mut buf, version).unwrap();
        let len = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        (self.correlation, buf.freeze())
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// Reads one response frame; `None` if the broker closed the connection.
    pub async fn read_frame(&mut self) -> Option<Bytes> {
        let mut len = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(30), self.stream.read_exact(&mut len))
            .await
            .expect("a response within 30 s")
            .ok()?;
        let len = i32::from_be_bytes(len) as usize;
        let mut body = vec![0; len];
        self.stream.read_exact(&mut body).await.ok()?;
        Some(Bytes::from(body))
    }

    /// Whether the broker closes the connection within `wait` (reads until EOF).
    pub async fn is_closed_within(&mut self, wait: Duration) -> bool {
        let mut sink = vec![0u8; 65536];
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.stream.read(&mut sink)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }

    /// Sends a request and decodes its response.
    pub async fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        body: &Req,
    ) -> Resp {
        self.try_call(api, version, body)
            .await
            .expect("the broker answered")
    }

    /// Like `call`, but `None` when the connection fails (the broker went away).
    pub async fn try_call<Req: Encodable, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        body: &Req,
    ) -> Option<Resp> {
        let (correlation, frame) = self.frame(api, version, body);
        self.send_raw(&frame).await.ok()?;
        let mut response = self.read_frame().await?;
        let header =
            ResponseHeader::decode(&mut response, api.response_header_version(version)).unwrap();
        assert_eq!(header.correlation_id, correlation);
        Some(Resp::decode(&mut response, version).unwrap())
    }

    pub async fn api_versions(&mut self, version: i16) -> ApiVersionsResponse {
        self.call(ApiKey::ApiVersions, version, &ApiVersionsRequest::default())
            .await
    }

    pub async fn metadata(&mut self, topics: Option<&[&str]>) -> MetadataResponse {
        let request = MetadataRequest::default()
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|t| MetadataRequestTopic::default().with_name(Some(topic_name(t))))
                    .collect()
            }))
            .with_allow_auto_topic_creation(false);
        self.call(ApiKey::Metadata, 12, &request).await
    }

    pub async fn create_topic(&mut self, name: &str, partitions: i32) -> i16 {
        let request = CreateTopicsRequest::default()
            .with_topics(vec![CreatableTopic::default()
                .with_name(topic_name(name))
                .with_num_partitions(partitions)
                .with_replication_factor(-1)])
            .with_timeout_ms(10_000);
        let response: CreateTopicsResponse = self.call(ApiKey::CreateTopics, 7, &request).await;
        response.topics[0].error_code
    }

    /// CreateTopics v7 for one topic with `configs` (replication factor -1: the default).
    pub fn create_topics_request(
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: &[(&str, &str)],
    ) -> CreateTopicsRequest {
        use proto_kafka::messages::create_topics_request::CreatableTopicConfig;
        let s = |v: &str| StrBytes::from_string(v.to_string());
        let topic = CreatableTopic::default()
            .with_name(topic_name(name))
            .with_num_partitions(partitions)
            .with_replication_factor(replication_factor)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(s(k))
                            .with_value(Some(s(v)))
                    })
                    .collect(),
            );
        CreateTopicsRequest::default()
            .with_topics(vec![topic])
            .with_timeout_ms(10_000)
    }

    pub fn produce_request(topic: &str, partition: i32, batch: Bytes, acks: i16) -> ProduceRequest {
        ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic_name(topic))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(batch))])])
    }

    pub async fn produce(
        &mut self,
        topic: &str,
        partition: i32,
        batch: Bytes,
        acks: i16,
    ) -> PartitionProduceResponse {
        let request = Self::produce_request(topic, partition, batch, acks);
        let response: ProduceResponse = self.call(ApiKey::Produce, 9, &request).await;
        response.responses[0].partition_responses[0].clone()
    }

    /// Produce v9 of one batch: its base offset once acknowledged, `None` when the call
    /// failed (the broker went away) or was refused (fault tests stop there).
    pub async fn try_produce(
        &mut self,
        topic: &str,
        partition: i32,
        batch: Bytes,
        acks: i16,
    ) -> Option<i64> {
        let request = Self::produce_request(topic, partition, batch, acks);
        let response = self
            .try_call::<_, ProduceResponse>(ApiKey::Produce, 9, &request)
            .await?;
        let p = &response.responses[0].partition_responses[0];
        (p.error_code == 0).then_some(p.base_offset)
    }

    pub fn fetch_request(
        topic: &str,
        partition: i32,
        offset: i64,
        max_wait_ms: i32,
    ) -> FetchRequest {
        FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(50 << 20)
            .with_isolation_level(1)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(1 << 20)])])
    }

    pub async fn fetch(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_wait_ms: i32,
    ) -> PartitionData {
        let request = Self::fetch_request(topic, partition, offset, max_wait_ms);
        let response: FetchResponse = self.call(ApiKey::Fetch, 12, &request).await;
        response.responses[0].partitions[0].clone()
    }

    /// A new producer id and epoch for an idempotent producer.
    pub async fn init_producer_id(&mut self) -> (i64, i16) {
        let response: InitProducerIdResponse = self
            .call(
                ApiKey::InitProducerId,
                4,
                &InitProducerIdRequest::default()
                    .with_transactional_id(None)
                    .with_transaction_timeout_ms(60_000),
            )
            .await;
        assert_eq!(response.error_code, 0);
        (response.producer_id.0, response.producer_epoch)
    }

    pub async fn list_offsets(
        &mut self,
        topic: &str,
        partition: i32,
        timestamp: i64,
    ) -> ListOffsetsPartitionResponse {
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(partition)
                    .with_timestamp(timestamp)])]);
        let response: ListOffsetsResponse = self.call(ApiKey::ListOffsets, 6, &request).await;
        response.topics[0].partitions[0].clone()
    }

    /// DeleteRecords (v2) on one partition: (error code, low watermark).
    pub async fn delete_records(&mut self, topic: &str, partition: i32, offset: i64) -> (i16, i64) {
        use proto_kafka::messages::delete_records_request::{
            DeleteRecordsPartition, DeleteRecordsTopic,
        };
        let request = DeleteRecordsRequest::default()
            .with_topics(vec![DeleteRecordsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![DeleteRecordsPartition::default()
                    .with_partition_index(partition)
                    .with_offset(offset)])])
            .with_timeout_ms(10_000);
        let r: DeleteRecordsResponse = self.call(ApiKey::DeleteRecords, 2, &request).await;
        let p = &r.topics[0].partitions[0];
        (p.error_code, p.low_watermark)
    }

    /// DeleteTopics (v6) by name: the topic's error code.
    pub async fn delete_topic(&mut self, name: &str) -> i16 {
        use proto_kafka::messages::delete_topics_request::DeleteTopicState;
        let request = DeleteTopicsRequest::default()
            .with_topics(vec![
                DeleteTopicState::default().with_name(Some(topic_name(name)))
            ])
            .with_timeout_ms(10_000);
        let r: DeleteTopicsResponse = self.call(ApiKey::DeleteTopics, 6, &request).await;
        r.responses[0].error_code
    }

    /// Reads every record from `offset` up to the high watermark.
    pub async fn read_all(&mut self, topic: &str, partition: i32, from: i64) -> Vec<(i64, Bytes)> {
        let mut out = Vec::new();
        let mut offset = from;
        let mut stalled = 0;
        loop {
            let data = self.fetch(topic, partition, offset, 100).await;
            assert_eq!(data.error_code, 0, "fetch error at offset {offset}");
            if offset < data.high_watermark && data.records.as_ref().is_none_or(|r| r.is_empty()) {
                stalled += 1;
                assert!(
                    stalled < 20,
                    "no records at offset {offset} below the high watermark {}",
                    data.high_watermark
                );
            } else {
                stalled = 0;
            }
            let records = decode(data.records.clone().unwrap_or_default());
            let before = out.len();
            for (o, v) in records {
                if o >= offset {
                    out.push((o, v));
                    offset = o + 1;
                }
            }
            if out.len() == before && offset >= data.high_watermark {
                return out;
            }
        }
    }
}

/// A batch of `values` with the given codec (offsets 0..n, CreateTime now).
pub fn batch(values: &[&[u8]], compression: Compression) -> Bytes {
    producer_batch(values, compression, -1, -1, -1)
}

/// A batch from an idempotent producer: id, epoch and the first record's sequence.
pub fn producer_batch(
    values: &[&[u8]],
    compression: Compression,
    producer_id: i64,
    epoch: i16,
    base_sequence: i32,
) -> Bytes {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    encode_batch(values, compression, producer_id, epoch, base_sequence, now)
}

/// A plain batch whose records carry the CreateTime `timestamp`.
/// One record with `key` and `value` (`None`: a tombstone), stamped now.
pub fn keyed_batch(key: &str, value: Option<&[u8]>) -> Bytes {
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon_ms: None,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: runnel_broker::clock::now_ms(),
        key: Some(Bytes::copy_from_slice(key.as_bytes())),
        value: value.map(Bytes::copy_from_slice),
        headers: Vec::new(),
    };
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &[record],
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}

pub fn batch_at(values: &[&[u8]], timestamp: i64) -> Bytes {
    encode_batch(values, Compression::None, -1, -1, -1, timestamp)
}

fn encode_batch(
    values: &[&[u8]],
    compression: Compression,
    producer_id: i64,
    epoch: i16,
    base_sequence: i32,
    timestamp: i64,
) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: false,
            control: false,
            delete_horizon_ms: None,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: if base_sequence < 0 {
                -1
            } else {
                base_sequence + i as i32
            },
            timestamp,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::copy_from_slice(v)),
            headers: Vec::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .unwrap();
    buf.freeze()
}

/// Decodes every record in a fetch response's records: (offset, value).
pub fn decode(mut records: Bytes) -> Vec<(i64, Bytes)> {
    let mut out = Vec::new();
    while records.has_remaining() {
        let sets = RecordBatchDecoder::decode_all(&mut records).unwrap();
        for set in sets {
            for r in set.records {
                out.push((r.offset, r.value.unwrap_or_default()));
            }
        }
    }
    out
}

/// A configuration for an in-process broker on ephemeral loopback ports.
pub fn test_config(data: &Path, extra: &[(&str, &str)]) -> Config {
    let dir = data.display().to_string();
    let mut pairs: Vec<(&str, &str)> = vec![
        ("listeners", "PLAINTEXT://127.0.0.1:0"),
        ("http.listener", "127.0.0.1:0"),
        ("admin.listener", "127.0.0.1:0"),
        ("console.listener", "127.0.0.1:0"),
        ("log.dirs", &dir),
    ];
    pairs.extend_from_slice(extra);
    let pairs: Vec<(String, String)> = pairs
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    Config::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))).unwrap()
}

/// Starts a broker in this process and waits for it to be ready.
pub async fn start(config: Config, fs: Arc<dyn FileSystem>) -> Broker {
    let broker = Broker::start(config, fs, None)
        .await
        .expect("broker starts");
    assert!(
        broker.wait_ready(Duration::from_secs(20)).await,
        "broker ready in 20 s"
    );
    broker
}

/// Fetches /metrics from a broker's HTTP port.
pub async fn metrics(http: SocketAddr) -> String {
    http_get(http, "/metrics").await.1
}

/// A tiny HTTP/1.0 GET: (status, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    let status = raw
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = raw.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
    (status, body)
}

/// The value of an unlabelled metric (or one whose label set is given as in the text).
pub fn metric(text: &str, name: &str) -> f64 {
    let value = text
        .lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok());
    // A labelled series appears with its first event; an unlabelled one always exists, so
    // its absence is a misspelt or unregistered metric, never a zero.
    match value {
        Some(v) => v,
        None if name.contains('{') => 0.0,
        None => panic!("metric {name} is not exported"),
    }
}

/// A broker running as a child process (for kill -9 and RSS tests).
pub struct Process {
    pub child: Child,
    pub kafka: SocketAddr,
    pub http: SocketAddr,
    pub data: PathBuf,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Process {
    /// Starts `runnel-broker` on fresh ports over `data` and waits for /readyz.
    pub async fn start(data: &Path, extra: &[&str]) -> Process {
        let kafka_port = free_port();
        let http_port = free_port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data.with_extension("log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_runnel-broker"))
            .arg(format!("--listeners=PLAINTEXT://127.0.0.1:{kafka_port}"))
            .arg(format!("--http.listener=127.0.0.1:{http_port}"))
            .arg("--admin.listener=127.0.0.1:0")
            .arg("--console.listener=127.0.0.1:0")
            .arg(format!("--log.dirs={}", data.display()))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let process = Process {
            child,
            kafka: format!("127.0.0.1:{kafka_port}").parse().unwrap(),
            http: format!("127.0.0.1:{http_port}").parse().unwrap(),
            data: data.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if TcpStream::connect(process.http).await.is_ok()
                && http_get(process.http, "/readyz").await.0 == 200
            {
                return process;
            }
            assert!(
                Instant::now() < deadline,
                "broker not ready within 30 s; see {}",
                data.with_extension("log").display()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident set size in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        self.child.wait().unwrap()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
