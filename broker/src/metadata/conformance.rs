//! The conformance suite every [`MetadataStore`] must pass (the embedded store now, the
//! etcd store with cluster mode): etcd's revision, transaction, lease and watch rules.
//! Each check uses its own key prefix so the suite can run against a shared etcd.

use std::time::Duration;

use super::store::{
    Compare, CompareOp, CompareTarget, MetadataStore, Op, OpResult, Txn, WatchEvent,
};
use crate::error::Error;

/// Runs every check against `store`; panics with the failing check's name.
pub(crate) async fn run_all(store: &dyn MetadataStore) {
    revisions_count_every_write(store, "/conf/rev/").await;
    create_if_absent_succeeds_once(store, "/conf/cas/").await;
    compare_on_mod_revision_guards_updates(store, "/conf/mod/").await;
    prefix_reads_and_deletes_stay_inside_the_prefix(store, "/conf/range/").await;
    watches_replay_from_a_revision_in_order(store, "/conf/watch/").await;
    leases_delete_their_keys_on_expiry_and_revoke(store, "/conf/lease/").await;
    compacted_history_is_refused_to_watchers(store, "/conf/compact/").await;
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

async fn watches_replay_from_a_revision_in_order(store: &dyn MetadataStore, p: &str) {
    let start = store
        .put(&format!("{p}x"), b"1".to_vec(), None)
        .await
        .unwrap();
    store
        .put(&format!("{p}y"), b"2".to_vec(), None)
        .await
        .unwrap();
    store
        .put("/conf/elsewhere", b"no".to_vec(), None)
        .await
        .unwrap();
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

async fn compacted_history_is_refused_to_watchers(store: &dyn MetadataStore, p: &str) {
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
}
