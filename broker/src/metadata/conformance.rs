//! The conformance suite every [`MetadataStore`] must pass (the embedded store's unit
//! test and, with the `test-support` feature, broker/tests/etcd_store.rs against a real
//! etcd): etcd's revision, transaction, lease, watch and pagination rules.
//! Each check uses its own key prefix under the caller's root.
//!
//! NB: the suite compacts the store and closes it at the end: give it a store of its own.

// A test suite: a failed unwrap is a failed check, reported with its line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use super::store::{
    Compare, CompareOp, CompareTarget, MetadataStore, Op, OpResult, PageRequest, Txn, WatchEvent,
    MAX_TXN_OPS,
};
use crate::error::Error;

/// Runs every check against `store` under `root` (e.g. `/conf/`), then closes it; panics
/// in the failing check.
pub async fn run_all(store: &dyn MetadataStore, root: &str) {
    let p = |name: &str| format!("{root}{name}/");
    revisions_count_every_write(store, &p("rev")).await;
    create_if_absent_succeeds_once(store, &p("cas")).await;
    compare_on_mod_revision_guards_updates(store, &p("mod")).await;
    prefix_reads_and_deletes_stay_inside_the_prefix(store, &p("range")).await;
    pages_are_read_at_the_first_pages_revision(store, &p("pages")).await;
    transactions_over_the_op_limit_are_refused(store, &p("limits")).await;
    watches_replay_from_a_revision_in_order(store, &p("watch"), &format!("{root}elsewhere")).await;
    leases_delete_their_keys_on_expiry_and_revoke(store, &p("lease")).await;
    compacted_history_is_refused_to_watchers_and_readers(store, &p("compact")).await;
    closing_ends_calls_and_watches(store, &p("close")).await;
}

async fn revisions_count_every_write(store: &dyn MetadataStore, p: &str) {
    let key = format!("{p}a");
    let r1 = store.put(&key, b"1".to_vec(), None).await.unwrap();
    let r2 = store.put(&key, b"2".to_vec(), None).await.unwrap();
    assert_eq!(r2, r1 + 1, "one revision per write");
    let kv = store.get(&key).await.unwrap().unwrap();
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version),
        (r1, r2, 2)
    );
    let (r3, deleted) = store.delete(&key).await.unwrap();
    assert_eq!((r3, deleted), (r2 + 1, 1));
    assert_eq!(store.get(&key).await.unwrap(), None);
    let r4 = store.put(&key, b"3".to_vec(), None).await.unwrap();
    let kv = store.get(&key).await.unwrap().unwrap();
    assert_eq!(
        (kv.create_revision, kv.version),
        (r4, 1),
        "re-creation starts over"
    );
    let read_only = store
        .txn(Txn::when(vec![]).and_then(vec![Op::Get { key: key.clone() }]))
        .await
        .unwrap();
    assert_eq!(
        read_only.revision, r4,
        "a read-only txn does not advance the revision"
    );
}

async fn create_if_absent_succeeds_once(store: &dyn MetadataStore, p: &str) {
    let key = format!("{p}leader");
    let create = |v: &'static [u8]| {
        Txn::when(vec![Compare::absent(key.clone())])
            .and_then(vec![Op::put(key.clone(), v)])
            .or_else(vec![Op::Get { key: key.clone() }])
    };
    let first = store.txn(create(b"one")).await.unwrap();
    assert!(first.succeeded);
    let second = store.txn(create(b"two")).await.unwrap();
    assert!(!second.succeeded);
    assert_eq!(second.revision, first.revision);
    match &second.results[..] {
        [OpResult::Got(kvs)] => {
            assert_eq!(kvs[0].value, b"one");
            assert_eq!(kvs[0].create_revision, first.revision);
        }
        other => panic!("unexpected results {other:?}"),
    }
}

async fn compare_on_mod_revision_guards_updates(store: &dyn MetadataStore, p: &str) {
    let key = format!("{p}k");
    let rev = store.put(&key, b"v1".to_vec(), None).await.unwrap();
    let stale = Txn::when(vec![Compare::mod_revision(key.clone(), rev - 1)])
        .and_then(vec![Op::put(key.clone(), b"bad".to_vec())]);
    assert!(!store.txn(stale).await.unwrap().succeeded);
    let fresh = Txn::when(vec![Compare::mod_revision(key.clone(), rev)])
        .and_then(vec![Op::put(key.clone(), b"v2".to_vec())]);
    assert!(store.txn(fresh).await.unwrap().succeeded);
    let greater = Txn::when(vec![Compare {
        key: key.clone(),
        op: CompareOp::Greater,
        target: CompareTarget::Version(1),
    }]);
    assert!(store.txn(greater).await.unwrap().succeeded);
    let value = Txn::when(vec![Compare {
        key: format!("{p}missing"),
        op: CompareOp::NotEqual,
        target: CompareTarget::Value(b"x".to_vec()),
    }]);
    assert!(
        !store.txn(value).await.unwrap().succeeded,
        "a value compare on a missing key is false"
    );
}

async fn prefix_reads_and_deletes_stay_inside_the_prefix(store: &dyn MetadataStore, p: &str) {
    for k in ["a/1", "a/2", "b/1"] {
        store
            .put(&format!("{p}{k}"), b"x".to_vec(), None)
            .await
            .unwrap();
    }
    let a = store.range(&format!("{p}a/")).await.unwrap();
    assert_eq!(a.kvs.len(), 2);
    assert!(
        a.kvs.windows(2).all(|w| w[0].key < w[1].key),
        "sorted by key"
    );
    let txn = Txn::when(vec![]).and_then(vec![Op::DeletePrefix {
        prefix: format!("{p}a/"),
    }]);
    let response = store.txn(txn).await.unwrap();
    assert_eq!(response.results, vec![OpResult::Deleted(2)]);
    assert_eq!(store.range(p).await.unwrap().kvs.len(), 1);
}

async fn watches_replay_from_a_revision_in_order(
    store: &dyn MetadataStore,
    p: &str,
    elsewhere: &str,
) {
    let start = store
        .put(&format!("{p}x"), b"1".to_vec(), None)
        .await
        .unwrap();
    store
        .put(&format!("{p}y"), b"2".to_vec(), None)
        .await
        .unwrap();
    store.put(elsewhere, b"no".to_vec(), None).await.unwrap();
    let mut watch = store.watch(p, start).await.unwrap();
    store.delete(&format!("{p}x")).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let batch = tokio::time::timeout(Duration::from_secs(5), watch.recv())
            .await
            .expect("watch delivers within 5 s")
            .expect("watch open")
            .expect("no watch error");
        for event in batch.events {
            seen.push((batch.revision, event));
        }
    }
    assert!(
        seen.windows(2).all(|w| w[0].0 < w[1].0),
        "in revision order"
    );
    assert!(matches!(&seen[0].1, WatchEvent::Put(kv) if kv.key.ends_with('x')));
    assert!(matches!(&seen[1].1, WatchEvent::Put(kv) if kv.key.ends_with('y')));
    assert!(matches!(&seen[2].1, WatchEvent::Delete(kv) if kv.key.ends_with('x')));
}

async fn leases_delete_their_keys_on_expiry_and_revoke(store: &dyn MetadataStore, p: &str) {
    let short = store.grant_lease(Duration::from_secs(2)).await.unwrap();
    let key = format!("{p}short");
    store.put(&key, b"x".to_vec(), Some(short)).await.unwrap();
    assert_eq!(store.get(&key).await.unwrap().unwrap().lease, short);
    let mut gone = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if store.get(&key).await.unwrap().is_none() {
            gone = true;
            break;
        }
    }
    assert!(gone, "an expired lease deletes its keys");
    assert!(matches!(
        store.keep_alive(short).await,
        Err(Error::LeaseNotFound { .. })
    ));

    let kept = store.grant_lease(Duration::from_secs(2)).await.unwrap();
    let key = format!("{p}kept");
    store.put(&key, b"x".to_vec(), Some(kept)).await.unwrap();
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        store.keep_alive(kept).await.unwrap();
    }
    assert!(
        store.get(&key).await.unwrap().is_some(),
        "keep-alive extends the lease"
    );
    store.revoke_lease(kept).await.unwrap();
    assert_eq!(
        store.get(&key).await.unwrap(),
        None,
        "revoking deletes the keys"
    );
    assert!(store.put(&key, b"x".to_vec(), Some(kept)).await.is_err());
}

async fn compacted_history_is_refused_to_watchers_and_readers(store: &dyn MetadataStore, p: &str) {
    let first = store
        .put(&format!("{p}a"), b"1".to_vec(), None)
        .await
        .unwrap();
    let second = store
        .put(&format!("{p}a"), b"2".to_vec(), None)
        .await
        .unwrap();
    store.compact(second).await.unwrap();
    assert!(matches!(
        store.watch(p, first).await,
        Err(Error::WatchCompacted { .. })
    ));
    assert!(store.watch(p, second).await.is_ok());
    let mut pinned = PageRequest::first(p, 10);
    pinned.revision = first;
    assert!(matches!(
        store.range_page(&pinned).await,
        Err(Error::RangeCompacted { revision }) if revision == first
    ));
    pinned.revision = second;
    let page = store.range_page(&pinned).await.unwrap();
    assert_eq!(page.kvs.len(), 1);
    assert_eq!(page.kvs[0].value, b"2");
    store.compact(second).await.unwrap();
    pinned.revision = second + 1_000_000;
    assert!(matches!(
        store.range_page(&pinned).await,
        Err(Error::RangeFutureRevision { .. })
    ));
}

async fn pages_are_read_at_the_first_pages_revision(store: &dyn MetadataStore, p: &str) {
    for i in 0..25 {
        store
            .put(&format!("{p}k{i:02}"), vec![i], None)
            .await
            .unwrap();
    }
    store
        .put(&format!("{p}z"), b"outside".to_vec(), None)
        .await
        .unwrap();
    let prefix = format!("{p}k");
    let first = store
        .range_page(&PageRequest::first(prefix.clone(), 10))
        .await
        .unwrap();
    assert_eq!(first.kvs.len(), 10);
    let pinned = first.revision;
    // Changes after the first page: in a later page, before it and a new key.
    store.delete(&format!("{p}k20")).await.unwrap();
    store
        .put(&format!("{p}k03"), b"new".to_vec(), None)
        .await
        .unwrap();
    store
        .put(&format!("{p}k30"), b"new".to_vec(), None)
        .await
        .unwrap();
    store
        .put(&format!("{p}k15"), b"new".to_vec(), None)
        .await
        .unwrap();
    let mut kvs = first.kvs.clone();
    let mut page = first;
    while let Some(request) = page.next_request(&prefix, 10) {
        page = store.range_page(&request).await.unwrap();
        assert_eq!(
            page.revision, pinned,
            "every page at the first page's revision"
        );
        kvs.extend(page.kvs.iter().cloned());
    }
    let keys: Vec<String> = kvs.iter().map(|kv| kv.key.clone()).collect();
    let expected: Vec<String> = (0..25).map(|i| format!("{p}k{i:02}")).collect();
    assert_eq!(keys, expected, "the snapshot of the first page's revision");
    assert!(kvs
        .iter()
        .all(|kv| kv.value != b"new" && kv.mod_revision <= pinned));

    let now = store.range(&prefix).await.unwrap();
    assert_eq!(now.kvs.len(), 25, "k20 deleted, k30 added");
    assert!(now.revision > pinned);
    let one = store
        .range_page(&PageRequest::first(prefix.clone(), 1))
        .await
        .unwrap();
    assert_eq!(one.kvs.len(), 1);
    assert_eq!(
        one.next.as_deref().map(|n| n > one.kvs[0].key.as_str()),
        Some(true)
    );
}

async fn transactions_over_the_op_limit_are_refused(store: &dyn MetadataStore, p: &str) {
    let puts = |n: usize| -> Vec<Op> {
        (0..n)
            .map(|i| Op::put(format!("{p}{i:03}"), b"x".to_vec()))
            .collect()
    };
    let absent = |n: usize| -> Vec<Compare> {
        (0..n)
            .map(|i| Compare::absent(format!("{p}{i:03}")))
            .collect()
    };
    let full = Txn::when(absent(MAX_TXN_OPS))
        .and_then(puts(MAX_TXN_OPS))
        .or_else(puts(MAX_TXN_OPS));
    let response = store.txn(full).await.unwrap();
    assert!(response.succeeded, "{MAX_TXN_OPS} of each is allowed");
    assert_eq!(store.range(p).await.unwrap().kvs.len(), MAX_TXN_OPS);

    let too_many = [
        ("compares", Txn::when(absent(MAX_TXN_OPS + 1))),
        (
            "success ops",
            Txn::when(vec![]).and_then(puts(MAX_TXN_OPS + 1)),
        ),
        (
            "failure ops",
            Txn::when(vec![]).or_else(puts(MAX_TXN_OPS + 1)),
        ),
    ];
    for (part, txn) in too_many {
        match store.txn(txn).await {
            Err(Error::TxnTooLarge {
                part: got,
                ops,
                limit,
            }) => {
                assert_eq!((got, ops, limit), (part, MAX_TXN_OPS + 1, MAX_TXN_OPS));
            }
            other => panic!("{part}: expected TxnTooLarge, got {other:?}"),
        }
    }
    assert_eq!(
        store.range(p).await.unwrap().revision,
        response.revision,
        "refused transactions write nothing"
    );
}

async fn closing_ends_calls_and_watches(store: &dyn MetadataStore, p: &str) {
    let key = format!("{p}k");
    store.put(&key, b"x".to_vec(), None).await.unwrap();
    let mut watch = store.watch(p, 0).await.unwrap();
    store.close();
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(item) = watch.recv().await {
            if item.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "a watch ends when its store closes");
    assert!(matches!(store.get(&key).await, Err(Error::StoreClosed)));
    assert!(matches!(
        store.put(&key, b"y".to_vec(), None).await,
        Err(Error::StoreClosed)
    ));
    assert!(matches!(
        store.grant_lease(Duration::from_secs(5)).await,
        Err(Error::StoreClosed)
    ));
}
