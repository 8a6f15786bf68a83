//! Operating the binary: configuration from a file and the environment, the HTTP
//! endpoints and the metric families operators scrape.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{batch, free_port, http_get, metrics, Client, Process};
use proto_kafka::records::Compression;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Process::start(&dir.path().join("data"), &[]).await;
    assert_eq!(
        http_get(broker.http, "/healthz").await,
        (200, "ok\n".to_string())
    );
    assert_eq!(http_get(broker.http, "/readyz").await.0, 200);
    let mut client = Client::connect(broker.kafka).await;
    assert_eq!(client.create_topic("ops", 2).await, 0);
    assert_eq!(client.create_topic("quiet", 1).await, 0);
    let gzip = batch(&[b"a", b"b"], Compression::Gzip);
    let gzip_len = gzip.len();
    client.produce("ops", 1, gzip, -1).await;
    client
        .produce("quiet", 0, batch(&[b"c"], Compression::None), -1)
        .await;
    let fetched = client.fetch("ops", 1, 0, 0).await.records.unwrap().len();
    assert_eq!(fetched, gzip_len);
    client.fetch("missing", 0, 0, 0).await;
    let text = metrics(broker.http).await;
    let per_topic = [
        format!("kafka_server_brokertopicmetrics_bytes_in_total{{topic=\"ops\"}} {gzip_len}"),
        format!("kafka_server_brokertopicmetrics_bytes_out_total{{topic=\"ops\"}} {fetched}"),
        "kafka_server_brokertopicmetrics_bytes_out_total{topic=\"quiet\"} 0".to_string(),
        "kafka_server_brokertopicmetrics_messages_in_total{topic=\"ops\"} 2".to_string(),
        "kafka_server_brokertopicmetrics_messages_in_total{topic=\"quiet\"} 1".to_string(),
        "kafka_server_brokertopicmetrics_messages_in_total 3".to_string(),
    ];
    for needle in &per_topic {
        assert!(
            text.lines().any(|l| l == needle),
            "missing {needle:?} in\n{text}"
        );
    }
    for needle in [
        "kafka_network_requests_total{request=\"Produce\"} 2",
        "kafka_network_requests_total{request=\"Fetch\"} 2",
        "kafka_network_errors_total{request=\"Fetch\",error=\"UNKNOWN_TOPIC_OR_PARTITION\"} 1",
        "kafka_network_request_total_time_seconds_bucket{request=\"Produce\",le=",
        "kafka_server_replicamanager_partition_count 3",
        "kafka_server_replicamanager_leader_count 3",
        "kafka_server_replicamanager_under_replicated_partitions 0",
        "kafka_controller_active_controller_count 1",
        "kafka_controller_offline_partitions_count 0",
        "kafka_controller_global_partition_count 3",
        "runnel_log_offline_partitions 0",
        "kafka_log_size_bytes{topic=\"ops\",partition=\"1\"}",
        "kafka_log_log_end_offset{topic=\"ops\",partition=\"1\"} 2",
        "kafka_cluster_partition_high_watermark{topic=\"ops\",partition=\"0\"} 0",
        "runnel_produce_batches_total{codec=\"gzip\"} 1",
        "runnel_flush_rounds_total",
        "runnel_log_opened_total 0",
        "runnel_log_open_failures_total 0",
        "runnel_log_recovered_segments_total 0",
        "runnel_log_truncated_bytes_total 0",
        "runnel_log_dropped_segments_total 0",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    let histogram = text
        .lines()
        .find(|l| {
            l.starts_with("kafka_network_request_total_time_seconds_count{request=\"Produce\"}")
        })
        .unwrap();
    assert!(histogram.ends_with(" 2"), "{histogram}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_comes_from_a_file_overridden_by_the_environment_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let kafka = free_port();
    let http = free_port();
    let file = dir.path().join("server.properties");
    std::fs::write(
        &file,
        format!(
            "listeners=PLAINTEXT://127.0.0.1:{kafka}\nhttp.listener=127.0.0.1:{http}\nadmin.listener=127.0.0.1:0\nconsole.listener=127.0.0.1:0\nlog.dirs={}\nnum.partitions=2\nsome.unknown.key=1\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("broker.log")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_runnel-broker"))
        .arg("--config")
        .arg(&file)
        .arg("--auto.create.topics.enable=true")
        .env("RUNNEL_NUM_PARTITIONS", "3")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let http_addr = format!("127.0.0.1:{http}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(http_addr).await.is_err()
        || http_get(http_addr, "/readyz").await.0 != 200
    {
        assert!(Instant::now() < deadline, "not ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut client = Client::connect(format!("127.0.0.1:{kafka}").parse().unwrap()).await;
    let request = proto_kafka::messages::MetadataRequest::default()
        .with_topics(Some(vec![
            proto_kafka::messages::metadata_request::MetadataRequestTopic::default()
                .with_name(Some(common::topic_name("auto"))),
        ]))
        .with_allow_auto_topic_creation(true);
    let metadata: proto_kafka::messages::MetadataResponse = client
        .call(proto_kafka::messages::ApiKey::Metadata, 12, &request)
        .await;
    assert_eq!(
        metadata.topics[0].partitions.len(),
        3,
        "the environment wins over the file"
    );
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    assert!(child.wait().unwrap().success());
    let log = std::fs::read_to_string(dir.path().join("broker.log")).unwrap();
    assert!(
        log.contains("some.unknown.key"),
        "unknown keys are warned about"
    );
}
