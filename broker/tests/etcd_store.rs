//! The etcd metadata store against a real etcd 3.6, a fresh one per test (the
//! `test-support` feature starts it; see scripts/build-etcd.sh): the conformance suite
//! every store passes, and what only a real etcd shows — a watch and a keep-alive across
//! an etcd restart, compaction while a watch is cut off, pagination over 10,000 keys and
//! over values too large for one gRPC message, and a lease that expires while the broker
//! holding it is stopped (SIGSTOP).
//!
//! Outside CI a machine without etcd (and without Go to build it) skips these, saying so;
//! under `CI=true` that is a failure.

// Test helpers: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use runnel_broker::error::Error;
use runnel_broker::metadata::conformance;
use runnel_broker::metadata::etcd::EtcdStore;
use runnel_broker::metadata::store::{
    KeyValue, MetadataStore, Op, PageRequest, Revision, Txn, WatchBatch, WatchStream, MAX_TXN_OPS,
};
use runnel_broker::metrics::store::StoreMetrics;
use runnel_broker::test_support::etcd::TestEtcd;
use runnel_broker::test_support::proxy::TcpProxy;
use rustix::process::{kill_process, Pid, Signal};

async fn connect(endpoint: String) -> Arc<EtcdStore> {
    EtcdStore::connect(&[endpoint], StoreMetrics::default())
        .await
        .expect("store connects")
}

/// The next item of a watch, failing the test after 15 s.
async fn next(watch: &mut WatchStream) -> Result<WatchBatch, Error> {
    tokio::time::timeout(Duration::from_secs(15), watch.recv())
        .await
        .expect("the watch delivers within 15 s")
        .expect("the watch is open")
}

/// Polls `check` every 50 ms until it returns `Some`, failing after `limit`.
async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Puts, retrying while the store reconnects (after an etcd restart).
async fn put_until_it_works(store: &EtcdStore, key: &str, value: &[u8]) -> Revision {
    eventually(&format!("put {key}"), Duration::from_secs(30), || async {
        store.put(key, value.to_vec(), None).await.ok()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_etcd_store_passes_the_conformance_suite() {
    let Some(etcd) = TestEtcd::start_or_skip("conformance") else {
        return;
    };
    let store = connect(etcd.endpoint()).await;
    conformance::run_all(store.as_ref(), "/conf/").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_and_a_keep_alive_carry_on_across_an_etcd_restart() {
    let Some(etcd) = TestEtcd::start_or_skip("restart") else {
        return;
    };
    let store = connect(etcd.endpoint()).await;
    let lease = store.grant_lease(Duration::from_secs(30)).await.unwrap();
    store.keep_alive(lease).await.unwrap();
    let first = store
        .put("/restart/leased", b"x".to_vec(), Some(lease))
        .await
        .unwrap();
    let mut watch = store.watch("/restart/", first).await.unwrap();
    assert_eq!(next(&mut watch).await.unwrap().revision, first);

    let etcd = tokio::task::spawn_blocking(move || {
        let mut etcd = etcd;
        etcd.stop().expect("etcd stops");
        etcd.restart().expect("etcd starts again");
        etcd
    })
    .await
    .unwrap();

    let mut written = Vec::new();
    for i in 0..5 {
        written.push(put_until_it_works(&store, &format!("/restart/k{i}"), b"v").await);
    }
    let mut seen = Vec::new();
    while seen.len() < written.len() {
        let batch = next(&mut watch).await.expect("no watch error");
        assert_eq!(batch.events.len(), 1);
        seen.push(batch.revision);
    }
    assert_eq!(
        seen, written,
        "every revision once, in order, across the restart"
    );
    assert!(
        store.metrics().watch_resumes.get() >= 1,
        "the watch resumed"
    );
    assert_eq!(store.metrics().watch_reloads.get(), 0, "no reload needed");

    let ttl = store
        .keep_alive(lease)
        .await
        .expect("a new keep-alive stream");
    assert!(ttl > Duration::ZERO);
    assert!(
        store.get("/restart/leased").await.unwrap().is_some(),
        "the lease outlived the restart"
    );
    drop(etcd);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_while_a_watch_is_cut_off_makes_its_reader_reload() {
    let Some(etcd) = TestEtcd::start_or_skip("compaction") else {
        return;
    };
    let proxy = TcpProxy::start(etcd.client_addr()).await.unwrap();
    let watcher = connect(proxy.endpoint()).await;
    let writer = connect(etcd.endpoint()).await;

    let start = writer
        .put("/compaction/a", b"0".to_vec(), None)
        .await
        .unwrap();
    let mut watch = watcher.watch("/compaction/", start).await.unwrap();
    assert_eq!(next(&mut watch).await.unwrap().revision, start);
    // Compacting history the watch already has does not disturb it.
    let r1 = writer
        .put("/compaction/a", b"1".to_vec(), None)
        .await
        .unwrap();
    writer.compact(r1).await.unwrap();
    let r2 = writer
        .put("/compaction/a", b"2".to_vec(), None)
        .await
        .unwrap();
    assert_eq!(next(&mut watch).await.unwrap().revision, r1);
    assert_eq!(next(&mut watch).await.unwrap().revision, r2);

    // Cut off, the watch misses r3 and r4, and etcd forgets them.
    proxy.cut();
    writer
        .put("/compaction/a", b"3".to_vec(), None)
        .await
        .unwrap();
    let r4 = writer
        .put("/compaction/a", b"4".to_vec(), None)
        .await
        .unwrap();
    writer.compact(r4).await.unwrap();
    proxy.heal();

    match next(&mut watch).await {
        Err(Error::WatchCompacted { requested, oldest }) => {
            assert_eq!((requested, oldest), (r2 + 1, r4));
        }
        other => panic!("expected WatchCompacted, got {other:?}"),
    }
    assert_eq!(watcher.metrics().watch_reloads.get(), 1);
    assert!(
        tokio::time::timeout(Duration::from_secs(5), watch.recv())
            .await
            .unwrap()
            .is_none(),
        "a compacted watch ends"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_keys_are_read_in_pages_at_one_revision() {
    let Some(etcd) = TestEtcd::start_or_skip("pagination") else {
        return;
    };
    let store = connect(etcd.endpoint()).await;
    let key = |i: usize| format!("/many/{i:05}");
    let all: Vec<usize> = (0..10_000).collect();
    for chunk in all.chunks(MAX_TXN_OPS) {
        let puts = chunk
            .iter()
            .map(|&i| Op::put(key(i), format!("v{i}").into_bytes()))
            .collect();
        store.txn(Txn::when(vec![]).and_then(puts)).await.unwrap();
    }

    let mut page = store
        .range_page(&PageRequest::first("/many/", 1000))
        .await
        .unwrap();
    let pinned = page.revision;
    let mut kvs: Vec<KeyValue> = page.kvs.clone();
    let mut pages = 1;
    while let Some(request) = page.next_request("/many/", 1000) {
        // Writes between pages, ahead of and behind the cursor, are not in this read.
        store
            .put(
                &format!("{}x", key(pages * 1000 - 1)),
                b"new".to_vec(),
                None,
            )
            .await
            .unwrap();
        store.delete(&key(9_999 - pages)).await.unwrap();
        page = store.range_page(&request).await.unwrap();
        assert_eq!(page.revision, pinned);
        kvs.extend(page.kvs.iter().cloned());
        pages += 1;
    }
    assert_eq!(pages, 10);
    let keys: Vec<String> = kvs.iter().map(|kv| kv.key.clone()).collect();
    let expected: Vec<String> = all.iter().map(|&i| key(i)).collect();
    assert_eq!(keys, expected);

    let now = store.range("/many/").await.unwrap();
    assert_eq!(now.kvs.len(), 10_000, "nine deleted, nine added");
    assert!(now.revision > pinned);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_too_large_for_one_grpc_message_are_split() {
    let Some(etcd) = TestEtcd::start_or_skip("large pages") else {
        return;
    };
    let store = connect(etcd.endpoint()).await;
    // Eight 1 MiB values (etcd takes requests up to 1.5 MiB): one page of all of them
    // would be 8 MiB, twice tonic's 4 MiB decode limit.
    for i in 0..8u8 {
        store
            .put(&format!("/big/{i}"), vec![i; 1 << 20], None)
            .await
            .unwrap();
    }
    let all = store.range("/big/").await.unwrap();
    assert_eq!(all.kvs.len(), 8);
    for (i, kv) in all.kvs.iter().enumerate() {
        assert_eq!(kv.value.len(), 1 << 20);
        assert!(kv.value.iter().all(|&b| b == i as u8));
    }
    assert!(
        store.metrics().error_count("range", "out_of_range") >= 1,
        "a page was refused as too large and asked again smaller"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_raises_a_ttl_under_its_minimum_and_keep_alives_report_it() {
    let Some(etcd) = TestEtcd::start_or_skip("lease minimum") else {
        return;
    };
    let store = connect(etcd.endpoint()).await;
    // etcd's minimum TTL is 1.5 election timeouts rounded up: 2 s with its defaults.
    let lease = store.grant_lease(Duration::from_secs(1)).await.unwrap();
    assert_eq!(
        store.keep_alive(lease).await.unwrap(),
        Duration::from_secs(2)
    );
    assert_eq!(
        store.keep_alive(lease).await.unwrap(),
        Duration::from_secs(2)
    );
    let age = store
        .metrics()
        .keep_alive_age()
        .expect("a lease is tracked");
    assert!(age < Duration::from_secs(1), "{age:?}");
    store.revoke_lease(lease).await.unwrap();
    assert!(matches!(
        store.keep_alive(lease).await,
        Err(Error::LeaseNotFound { .. })
    ));
    assert_eq!(store.metrics().keep_alive_age(), None);
}

/// A child process killed when the test ends, however it ends.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = kill_process(Pid::from_child(&self.0), Signal::CONT);
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn signal(process: &Process, signal: Signal) {
    kill_process(Pid::from_child(&process.0), signal).expect("signal the broker");
}

fn start_broker(etcd: &TestEtcd, data: &Path) -> Process {
    let log = File::create(data.join("broker.log")).unwrap();
    let logs = data.join("logs");
    let child = Command::new(env!("CARGO_BIN_EXE_runnel-broker"))
        .args(["--etcd.endpoints", &etcd.endpoint()])
        .args(["--metadata.lease.ttl.ms", "2000"])
        .args(["--listeners", "PLAINTEXT://127.0.0.1:0"])
        .args(["--http.listener", "127.0.0.1:0"])
        .args(["--admin.listener", "127.0.0.1:0"])
        .args(["--console.listener", "127.0.0.1:0"])
        .arg("--log.dirs")
        .arg(&logs)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("runnel-broker starts");
    Process(child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_expires_while_its_holder_is_stopped_and_the_holder_learns_it_lost_it() {
    let Some(etcd) = TestEtcd::start_or_skip("stopped lease holder") else {
        return;
    };
    let store = connect(etcd.endpoint()).await;
    let data = tempfile::tempdir().unwrap();
    let broker = start_broker(&etcd, data.path());
    // The broker registers under a 2 s lease (the default prefix with etcd).
    let key = "/runnel/runnel/brokers/0";
    let registered = eventually("the broker registers", Duration::from_secs(30), || async {
        store.get(key).await.ok().flatten()
    })
    .await;
    assert_ne!(registered.lease, 0);

    signal(&broker, Signal::STOP);
    let stopped = Instant::now();
    eventually(
        "etcd expires the stopped broker's lease",
        Duration::from_secs(15),
        || async {
            store
                .get(key)
                .await
                .ok()
                .map(|kv| kv.is_none())
                .filter(|gone| *gone)
        },
    )
    .await;
    let expired_after = stopped.elapsed();
    assert!(
        matches!(
            store.keep_alive(registered.lease).await,
            Err(Error::LeaseNotFound { .. })
        ),
        "the lease is gone"
    );
    eprintln!("the lease expired {expired_after:?} after SIGSTOP");

    signal(&broker, Signal::CONT);
    // Its own keep-alive now gets TTL 0: it registers again, with a new broker epoch.
    let again = eventually(
        "the broker registers again",
        Duration::from_secs(15),
        || async {
            store
                .get(key)
                .await
                .ok()
                .flatten()
                .filter(|kv| kv.create_revision > registered.create_revision)
        },
    )
    .await;
    assert_ne!(again.lease, registered.lease);
    let log = eventually(
        "the broker logs the lost lease",
        Duration::from_secs(5),
        || async {
            let log = std::fs::read_to_string(data.path().join("broker.log")).unwrap_or_default();
            log.contains("registration lease lost").then_some(log)
        },
    )
    .await;
    assert!(!log.contains("panicked"), "{log}");
    signal(&broker, Signal::TERM);
}
