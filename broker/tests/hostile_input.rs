//! Hostile input, as a table: each case gets its Kafka error code or a closed connection,
//! a well-behaved client keeps producing and fetching on its own connection after every
//! case, the broker never dies, and its resident memory stays bounded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use common::{batch, metric, metrics, Client, Process};
use proto_kafka::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, FetchResponse, ProduceResponse, ResponseHeader,
};
use proto_kafka::protocol::Decodable;
use proto_kafka::records::Compression;

const TOPIC: &str = "hostile";

/// What the broker must do with a case.
enum Expect {
    /// Close the connection.
    Closed,
    /// The client half-closes after its partial frame; the broker must close too.
    ClosedAfterEof,
    /// Answer a Produce (v9) with this error code.
    ProduceError(i16),
    /// Answer a Fetch (v12) with this error code on the partition.
    FetchError(i16),
    /// Answer ApiVersions in v0 with UNSUPPORTED_VERSION and the key list.
    ApiVersionsFallback,
    /// Answer the request (its correlation id) and keep the connection.
    Answered,
}

/// A request frame with a v1 (non-flexible) or v2 (flexible) header around `body`.
fn raw(api: i16, version: i16, flexible: bool, body: &[u8]) -> Bytes {
    let mut frame = BytesMut::new();
    frame.put_i16(api);
    frame.put_i16(version);
    frame.put_i32(77);
    frame.put_i16(4);
    frame.put_slice(b"evil");
    if flexible {
        frame.put_u8(0);
    }
    frame.put_slice(body);
    let mut out = BytesMut::new();
    out.put_i32(frame.len() as i32);
    out.put_slice(&frame);
    out.freeze()
}

fn with_len(declared: i32, body: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i32(declared);
    out.put_slice(body);
    out.freeze()
}

fn produce_frame(client: &mut Client, records: Bytes) -> Bytes {
    let request = Client::produce_request(TOPIC, 0, records, 1);
    client.frame(ApiKey::Produce, 9, &request).1
}

fn corrupt_crc() -> Bytes {
    let mut b = BytesMut::from(&batch(&[b"hello"], Compression::None)[..]);
    let last = b.len() - 1;
    b[last] ^= 0x55;
    b.freeze()
}

/// One record whose value is 512 MiB of zeros, zstd-compressed to a few KiB.
fn compression_bomb() -> Bytes {
    let value_len: i64 = 512 << 20;
    let mut record = vec![0u8];
    for v in [0i64, 0, -1, value_len] {
        put_varlong(&mut record, v);
    }
    let mut plain = Vec::new();
    put_varlong(&mut plain, record.len() as i64 + value_len + 1);
    plain.extend_from_slice(&record);
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    use std::io::Write;
    encoder.write_all(&plain).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..512 {
        encoder.write_all(&zeros).unwrap();
    }
    encoder.write_all(&[0]).unwrap(); // header count
    let compressed = encoder.finish().unwrap();
    assemble_batch(4, &compressed, 1)
}

fn put_varlong(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn assemble_batch(codec: i16, records: &[u8], count: i32) -> Bytes {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut b = BytesMut::new();
    b.put_i64(0);
    b.put_i32((49 + records.len()) as i32);
    b.put_i32(-1);
    b.put_i8(2);
    b.put_u32(0);
    b.put_i16(codec);
    b.put_i32(count - 1);
    b.put_i64(now);
    b.put_i64(now);
    b.put_i64(-1);
    b.put_i16(-1);
    b.put_i32(-1);
    b.put_i32(count);
    b.put_slice(records);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b.freeze()
}

/// Metadata v1 with a topics array claiming i32::MAX entries in a 20-byte frame.
fn huge_array_count() -> Bytes {
    let mut body = BytesMut::new();
    body.put_i32(i32::MAX);
    raw(ApiKey::Metadata as i16, 1, false, &body)
}

/// Metadata v1 whose one topic name claims 32767 bytes but has 3.
fn string_longer_than_frame() -> Bytes {
    let mut body = BytesMut::new();
    body.put_i32(1);
    body.put_i16(i16::MAX);
    body.put_slice(b"abc");
    raw(ApiKey::Metadata as i16, 1, false, &body)
}

async fn assert_good_client_works(good: &mut Client, round: usize) {
    let r = good
        .produce(
            TOPIC,
            0,
            batch(&[format!("good-{round}").as_bytes()], Compression::Lz4),
            1,
        )
        .await;
    assert_eq!(
        r.error_code, 0,
        "the good client's produce failed after case {round}"
    );
    let fetched = good.fetch(TOPIC, 0, r.base_offset, 100).await;
    assert_eq!(fetched.error_code, 0);
    assert!(!fetched.records.unwrap_or_default().is_empty());
}

async fn run_case(addr: std::net::SocketAddr, name: &str, frame: Bytes, expect: Expect) {
    let mut client = Client::connect(addr).await;
    // Partial writes are fine: the broker may close before reading everything.
    let _ = client.send_raw(&frame).await;
    match expect {
        Expect::Closed => {
            assert!(
                client.is_closed_within(Duration::from_secs(5)).await,
                "{name}: connection not closed"
            );
        }
        Expect::ClosedAfterEof => {
            use tokio::io::AsyncWriteExt;
            client.stream.shutdown().await.unwrap();
            assert!(
                client.is_closed_within(Duration::from_secs(5)).await,
                "{name}: connection not closed"
            );
        }
        Expect::ProduceError(code) => {
            let mut response = client
                .read_frame()
                .await
                .unwrap_or_else(|| panic!("{name}: no response"));
            ResponseHeader::decode(&mut response, 1).unwrap();
            let response = ProduceResponse::decode(&mut response, 9).unwrap();
            let p = &response.responses[0].partition_responses[0];
            assert_eq!(p.error_code, code, "{name}: {:?}", p.error_message);
        }
        Expect::FetchError(code) => {
            let mut response = client
                .read_frame()
                .await
                .unwrap_or_else(|| panic!("{name}: no response"));
            ResponseHeader::decode(&mut response, 1).unwrap();
            let response = FetchResponse::decode(&mut response, 12).unwrap();
            assert_eq!(
                response.responses[0].partitions[0].error_code, code,
                "{name}"
            );
        }
        Expect::Answered => {
            let mut response = client
                .read_frame()
                .await
                .unwrap_or_else(|| panic!("{name}: no response"));
            let header = ResponseHeader::decode(&mut response, 0).unwrap();
            assert_eq!(header.correlation_id, 77, "{name}");
        }
        Expect::ApiVersionsFallback => {
            let mut response = client
                .read_frame()
                .await
                .unwrap_or_else(|| panic!("{name}: no response"));
            ResponseHeader::decode(&mut response, 0).unwrap();
            let response = ApiVersionsResponse::decode(&mut response, 0).unwrap();
            assert_eq!(response.error_code, 35, "{name}");
            assert!(response
                .api_keys
                .iter()
                .any(|k| k.api_key == ApiKey::Produce as i16));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_inputs_get_errors_or_closed_connections_and_the_broker_stays_healthy() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Process::start(
        &dir.path().join("data"),
        &["--message.decompression.max.bytes=33554432"],
    )
    .await;
    let addr = broker.kafka;
    let mut good = Client::connect(addr).await;
    assert_eq!(good.create_topic(TOPIC, 1).await, 0);
    assert_good_client_works(&mut good, 0).await;
    let rss_start = broker.rss_kib();

    let mut helper = Client::connect(addr).await;
    let mut replica_fetch = Client::fetch_request(TOPIC, 0, 0, 0);
    replica_fetch.replica_id = BrokerId(1);
    let cases: Vec<(&str, Bytes, Expect)> = vec![
        (
            "frame length i32::MAX",
            with_len(i32::MAX, b"abcd"),
            Expect::Closed,
        ),
        (
            "frame length 200 MiB",
            with_len(200 << 20, b"abcd"),
            Expect::Closed,
        ),
        (
            "negative frame length",
            with_len(-5, b"abcd"),
            Expect::Closed,
        ),
        (
            "frame shorter than a header",
            with_len(3, b"abc"),
            Expect::Closed,
        ),
        (
            "truncated frame then close",
            with_len(100, b"only part of it"),
            Expect::ClosedAfterEof,
        ),
        ("unknown API key", raw(9999, 0, false, b""), Expect::Closed),
        (
            "API key not implemented (DescribeAcls)",
            raw(29, 1, false, b""),
            Expect::Closed,
        ),
        (
            "Metadata v99",
            raw(ApiKey::Metadata as i16, 99, true, b""),
            Expect::Closed,
        ),
        (
            "Produce v2 (advertised, refused)",
            raw(
                ApiKey::Produce as i16,
                2,
                false,
                &[0, 1, 0, 0, 0, 0, 0, 0, 0, 0],
            ),
            Expect::Closed,
        ),
        (
            "ApiVersions v99",
            raw(ApiKey::ApiVersions as i16, 99, true, b"\x00\x00\x00"),
            Expect::ApiVersionsFallback,
        ),
        (
            "bytes after a request's fields (ignored, as Kafka does)",
            raw(ApiKey::ApiVersions as i16, 0, false, b"garbage"),
            Expect::Answered,
        ),
        (
            "array count i32::MAX in a 20-byte frame",
            huge_array_count(),
            Expect::Closed,
        ),
        (
            "string longer than the frame",
            string_longer_than_frame(),
            Expect::Closed,
        ),
        (
            "batch with a bad CRC",
            produce_frame(&mut helper, corrupt_crc()),
            Expect::ProduceError(2),
        ),
        (
            "records that are not a batch",
            produce_frame(
                &mut helper,
                Bytes::from_static(
                    b"not a record batch at all, just bytes that go on for a while......",
                ),
            ),
            Expect::ProduceError(87),
        ),
        (
            "compression bomb (512 MiB of zeros)",
            produce_frame(&mut helper, compression_bomb()),
            Expect::ProduceError(87),
        ),
        (
            "replica fetch from a client",
            helper.frame(ApiKey::Fetch, 12, &replica_fetch).1,
            Expect::FetchError(31),
        ),
    ];
    for (round, (name, frame, expect)) in cases.into_iter().enumerate() {
        run_case(addr, name, frame, expect).await;
        assert_good_client_works(&mut good, round + 1).await;
        println!("ok: {name}");
    }

    // Many connections each promising a near-maximal frame and sending a trickle: the
    // budget bounds buffered bytes, and unread promises cost no resident memory.
    let mut promises = Vec::new();
    for _ in 0..20 {
        let mut c = Client::connect(addr).await;
        c.send_raw(&with_len(90 << 20, &[0u8; 1000])).await.unwrap();
        promises.push(c);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_good_client_works(&mut good, 100).await;
    drop(promises);

    // Random frames with valid lengths and random headers and bodies.
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..300 {
        let api = (next() % 70) as i16;
        let version = (next() % 16) as i16;
        let len = (next() % 200) as usize;
        let body: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let mut c = Client::connect(addr).await;
        let _ = c.send_raw(&raw(api, version, next() % 2 == 0, &body)).await;
        let _ = tokio::time::timeout(Duration::from_millis(200), c.read_frame()).await;
    }
    assert_good_client_works(&mut good, 200).await;

    let text = metrics(broker.http).await;
    for reason in [
        "frame_too_large",
        "unknown_api",
        "unsupported_version",
        "bad_body",
    ] {
        let line = format!("runnel_rejected_frames_total{{reason=\"{reason}\"}}");
        assert!(metric(&text, &line) > 0.0, "no {reason} rejection counted");
    }
    let rss_end = broker.rss_kib();
    println!("broker RSS: {rss_start} KiB at start of the table, {rss_end} KiB at the end");
    assert!(
        rss_end < rss_start + 64 * 1024,
        "RSS grew from {rss_start} to {rss_end} KiB"
    );
    assert!(std::process::Command::new("kill")
        .arg("-0")
        .arg(broker.pid().to_string())
        .status()
        .unwrap()
        .success());
}

/// Times one produce and one fetch of the good client.
async fn good_client_latency(good: &mut Client, round: usize) -> Duration {
    let started = std::time::Instant::now();
    assert_good_client_works(good, round).await;
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_stalling_inside_frames_never_stall_the_others() {
    let dir = tempfile::tempdir().unwrap();
    // The reproduction: a 2 MiB budget, frames up to 1 MiB.
    let broker = Process::start(
        &dir.path().join("data"),
        &[
            "--queued.max.request.bytes=2097152",
            "--socket.request.max.bytes=1048576",
            "--message.max.bytes=1000000",
            "--socket.request.read.timeout.ms=3000",
        ],
    )
    .await;
    let addr = broker.kafka;
    let mut good = Client::connect(addr).await;
    assert_eq!(good.create_topic(TOPIC, 1).await, 0);
    assert_good_client_works(&mut good, 0).await;
    let rss_start = broker.rss_kib();

    // Four clients each send 750 KB of a 1 MB frame and stop: more than the budget.
    let mut attackers = Vec::new();
    for _ in 0..4 {
        let mut c = Client::connect(addr).await;
        c.send_raw(&with_len(1 << 20, &vec![0u8; 750_000]))
            .await
            .unwrap();
        attackers.push(c);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut worst = Duration::ZERO;
    for round in 1..=5 {
        worst = worst.max(good_client_latency(&mut good, round).await);
    }
    println!("good client's slowest produce+fetch during the attack: {worst:?}");
    assert!(
        worst < Duration::from_secs(1),
        "another client waited {worst:?} while frames stalled"
    );
    // A medium frame needs the budget: it is served once the stalled frames time out.
    let big = vec![b'm'; 200_000];
    let started = std::time::Instant::now();
    let r = good
        .produce(TOPIC, 0, batch(&[&big], Compression::None), 1)
        .await;
    assert_eq!(r.error_code, 0);
    println!(
        "a 200 KB produce waited {:?} for the stalled frames to time out",
        started.elapsed()
    );
    for c in &mut attackers {
        assert!(
            c.is_closed_within(Duration::from_secs(10)).await,
            "a client stalled inside a frame was not disconnected"
        );
    }
    let text = metrics(broker.http).await;
    assert!(
        metric(
            &text,
            "runnel_rejected_frames_total{reason=\"stalled_frame\"}"
        ) >= 4.0,
        "stalled frames were not counted"
    );
    let rss_end = broker.rss_kib();
    println!("broker RSS {rss_start} KiB before the attack, {rss_end} KiB after");
    assert!(
        rss_end < rss_start + 32 * 1024,
        "RSS grew from {rss_start} to {rss_end} KiB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_never_read_their_responses_never_stall_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Process::start(
        &dir.path().join("data"),
        &[
            "--socket.write.timeout.ms=3000",
            "--fetch.max.bytes=4194304",
        ],
    )
    .await;
    let addr = broker.kafka;
    let mut good = Client::connect(addr).await;
    assert_eq!(good.create_topic(TOPIC, 1).await, 0);
    // 8 MB of records to fetch.
    let value = vec![b'r'; 100_000];
    for _ in 0..80 {
        let r = good
            .produce(TOPIC, 0, batch(&[&value], Compression::None), 1)
            .await;
        assert_eq!(r.error_code, 0);
    }
    let rss_start = broker.rss_kib();

    // Eight clients pipeline fetches asking for 50 MB each and never read.
    let mut readers = Vec::new();
    for _ in 0..8 {
        let mut c = Client::connect(addr).await;
        let mut request = Client::fetch_request(TOPIC, 0, 0, 0);
        request.max_bytes = 50 << 20;
        for p in &mut request.topics[0].partitions {
            p.partition_max_bytes = 50 << 20;
        }
        for _ in 0..20 {
            let (_, frame) = c.frame(ApiKey::Fetch, 12, &request);
            c.send_raw(&frame).await.unwrap();
        }
        readers.push(c);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut worst = Duration::ZERO;
    for round in 1..=5 {
        worst = worst.max(good_client_latency(&mut good, round).await);
    }
    println!("good client's slowest produce+fetch while 8 clients do not read: {worst:?}");
    assert!(
        worst < Duration::from_secs(1),
        "another client waited {worst:?}"
    );
    let rss_during = broker.rss_kib();
    // fetch.max.bytes (4 MiB) per connection, one fetch at a time, plus socket buffers.
    println!("broker RSS {rss_start} KiB before, {rss_during} KiB while they do not read");
    assert!(
        rss_during < rss_start + 64 * 1024,
        "RSS grew from {rss_start} to {rss_during} KiB"
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    for c in &mut readers {
        // Whatever was written before the timeout is in the socket; then the broker closes.
        let mut buf = vec![0u8; 1 << 20];
        let closed = tokio::time::timeout(Duration::from_secs(10), async {
            use tokio::io::AsyncReadExt;
            loop {
                match c.stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return true,
                    Ok(_) => {}
                }
            }
        })
        .await
        .unwrap_or(false);
        assert!(closed, "a client that does not read was not disconnected");
    }
    assert_good_client_works(&mut good, 10).await;
}
