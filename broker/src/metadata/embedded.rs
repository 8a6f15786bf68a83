//! The embedded metadata store of a standalone broker: a single-node, fsynced
//! implementation of [`MetadataStore`] in the data directory.
//!
//! Every write transaction is appended to a WAL and fsynced (through the I/O seam)
//! before it is applied and acknowledged. Leases live in memory only: a lease holder is
//! this same process, so after a restart its leases are gone as if they had expired, and
//! the keys they held are deleted at open (one revision). History for watches is kept in
//! memory and starts at the revision the store opened with; so do the values keys held
//! before each recent revision, which paginated reads pinned to a past revision need.
//!
//! The WAL is fsynced under the state's lock (its order is the revision order), so the
//! trait's methods run that work with [`crate::blocking::run`], off the async workers,
//! and leases have a lock of their own: a keep-alive never waits for a slow disk.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::{broadcast, mpsc, watch};
use tracing::{info, warn};

use super::store::{
    key_after, KeyValue, LeaseId, MetadataStore, Op, OpResult, PageRequest, RangePage, RangeResult,
    Revision, Txn, TxnResponse, WatchBatch, WatchEvent, WatchStream,
};
use super::wal::{decode_records, decode_snapshot, encode_record, encode_snapshot, Change, Record};
use crate::error::{Error, Result};
use crate::fsio::{create_dir_durable, read_file, write_atomic, FileSystem, LogFile, OpenMode};

const WAL: &str = "store.wal";
const SNAPSHOT: &str = "store.snapshot";
/// Snapshot and restart the WAL once it grows past this.
const WAL_SNAPSHOT_BYTES: u64 = 4 << 20;
/// Revisions kept for watches that start in the past and for reads pinned to a past
/// revision.
const HISTORY_REVISIONS: usize = 10_000;
const REAPER_TICK: Duration = Duration::from_millis(200);

#[derive(Debug)]
struct Lease {
    ttl: Duration,
    deadline: Instant,
    keys: BTreeSet<String>,
}

/// What the keys a revision changed held just before it (`None`: absent), so that a read
/// pinned to an earlier revision can see past them.
#[derive(Debug)]
struct Undo {
    revision: Revision,
    before: Vec<(String, Option<KeyValue>)>,
}

#[derive(Debug)]
struct State {
    kv: BTreeMap<String, KeyValue>,
    revision: Revision,
    /// Watches may start, and reads may be pinned, at revisions above this (reads also
    /// at the current revision).
    compacted: Revision,
    history: VecDeque<Arc<WatchBatch>>,
    /// One entry per revision above `compacted`, oldest first.
    undo: VecDeque<Undo>,
    wal: Arc<dyn LogFile>,
    wal_len: u64,
    closed: bool,
}

#[derive(Debug, Default)]
struct Leases {
    live: HashMap<LeaseId, Lease>,
    next: LeaseId,
}

#[derive(Debug)]
pub struct EmbeddedStore {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    /// Taken before `leases` when both are needed.
    state: Mutex<State>,
    leases: Mutex<Leases>,
    /// Mirrors `State::closed` for the lease calls, which never take the state's lock.
    closed: AtomicBool,
    events: broadcast::Sender<Arc<WatchBatch>>,
    /// Becomes true on close, ending every watch.
    shutdown: watch::Sender<bool>,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::WriteFile {
        path: path.to_path_buf(),
        source,
    }
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `dir` and starts its lease reaper on the current
    /// tokio runtime.
    pub fn open(fs: Arc<dyn FileSystem>, dir: &Path) -> Result<Arc<EmbeddedStore>> {
        create_dir_durable(fs.as_ref(), dir)?;
        let mut kv = BTreeMap::new();
        let mut revision = 0;
        let snapshot_path = dir.join(SNAPSHOT);
        if fs.exists(&snapshot_path) {
            let raw = read_file(fs.as_ref(), &snapshot_path)?;
            let (rev, kvs) = decode_snapshot(&raw).ok_or_else(|| Error::ParseFile {
                path: snapshot_path.clone(),
                reason: "metadata snapshot is damaged".into(),
            })?;
            revision = rev;
            kv = kvs.into_iter().map(|k| (k.key.clone(), k)).collect();
        }
        let wal_path = dir.join(WAL);
        let wal = fs
            .open(&wal_path, OpenMode::Create)
            .map_err(io_error(&wal_path))?;
        if !fs.exists(&snapshot_path) {
            crate::fsio::sync_parent(fs.as_ref(), &wal_path)?;
        }
        let raw = read_file(fs.as_ref(), &wal_path)?;
        let (records, valid) = decode_records(&raw);
        if valid < raw.len() {
            warn!(path = %wal_path.display(), cut_bytes = raw.len() - valid, "metadata WAL had a torn tail; cutting it");
            wal.set_len(valid as u64).map_err(io_error(&wal_path))?;
            wal.sync_data().map_err(io_error(&wal_path))?;
        }
        let snapshot_revision = revision;
        for record in records
            .into_iter()
            .filter(|r| r.revision > snapshot_revision)
        {
            revision = record.revision;
            for change in record.changes {
                match change {
                    Change::Put(k) => {
                        kv.insert(k.key.clone(), k);
                    }
                    Change::Delete(key) => {
                        kv.remove(&key);
                    }
                }
            }
        }
        let (events, _) = broadcast::channel(4096);
        let store = Arc::new(EmbeddedStore {
            fs,
            dir: dir.to_path_buf(),
            state: Mutex::new(State {
                kv,
                revision,
                compacted: revision,
                history: VecDeque::new(),
                undo: VecDeque::new(),
                wal,
                wal_len: valid as u64,
                closed: false,
            }),
            leases: Mutex::new(Leases {
                live: HashMap::new(),
                next: 1,
            }),
            closed: AtomicBool::new(false),
            events,
            shutdown: watch::channel(false).0,
        });
        store.drop_orphaned_lease_keys()?;
        info!(dir = %dir.display(), revision, "opened the embedded metadata store");
        let weak = Arc::downgrade(&store);
        tokio::spawn(reap_leases(weak));
        Ok(store)
    }

    fn leases(&self) -> MutexGuard<'_, Leases> {
        self.leases.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.closed {
            return Err(Error::StoreClosed);
        }
        Ok(state)
    }

    /// The current revision.
    pub fn revision(&self) -> Result<Revision> {
        Ok(self.lock()?.revision)
    }

    fn drop_orphaned_lease_keys(&self) -> Result<()> {
        let mut state = self.lock()?;
        let orphaned: Vec<String> = state
            .kv
            .values()
            .filter(|k| k.lease != 0)
            .map(|k| k.key.clone())
            .collect();
        if orphaned.is_empty() {
            return Ok(());
        }
        let ops = orphaned.into_iter().map(|key| Op::Delete { key }).collect();
        self.commit(&mut state, ops)?;
        Ok(())
    }

    /// Applies write and read ops as one revision (when anything changes): stages the
    /// changes, appends and fsyncs the WAL record, then applies and publishes.
    fn commit(&self, state: &mut State, ops: Vec<Op>) -> Result<(Revision, Vec<OpResult>)> {
        let next = state.revision + 1;
        let mut staged: BTreeMap<String, Option<KeyValue>> = BTreeMap::new();
        let mut results = Vec::with_capacity(ops.len());
        let current =
            |staged: &BTreeMap<String, Option<KeyValue>>, key: &str| -> Option<KeyValue> {
                match staged.get(key) {
                    Some(entry) => entry.clone(),
                    None => state.kv.get(key).cloned(),
                }
            };
        for op in ops {
            match op {
                Op::Put { key, value, lease } => {
                    let lease = lease.unwrap_or(0);
                    if lease != 0 && !self.leases().live.contains_key(&lease) {
                        return Err(Error::LeaseNotFound { lease });
                    }
                    let old = current(&staged, &key);
                    let kv = KeyValue {
                        key: key.clone(),
                        value,
                        create_revision: old.as_ref().map_or(next, |o| o.create_revision),
                        mod_revision: next,
                        version: old.as_ref().map_or(1, |o| o.version + 1),
                        lease,
                    };
                    staged.insert(key, Some(kv));
                    results.push(OpResult::Put);
                }
                Op::Delete { key } => {
                    let existed = current(&staged, &key).is_some();
                    if existed {
                        staged.insert(key, None);
                    }
                    results.push(OpResult::Deleted(i64::from(existed)));
                }
                Op::DeletePrefix { prefix } => {
                    let mut keys: BTreeSet<String> = state
                        .kv
                        .range(prefix.clone()..)
                        .take_while(|(k, _)| k.starts_with(&prefix))
                        .map(|(k, _)| k.clone())
                        .collect();
                    keys.extend(staged.keys().filter(|k| k.starts_with(&prefix)).cloned());
                    let mut deleted = 0;
                    for key in keys {
                        if current(&staged, &key).is_some() {
                            staged.insert(key, None);
                            deleted += 1;
                        }
                    }
                    results.push(OpResult::Deleted(deleted));
                }
                Op::Get { key } => {
                    results.push(OpResult::Got(current(&staged, &key).into_iter().collect()));
                }
                Op::GetPrefix { prefix } => {
                    let mut found: BTreeMap<String, KeyValue> = state
                        .kv
                        .range(prefix.clone()..)
                        .take_while(|(k, _)| k.starts_with(&prefix))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    for (k, v) in staged.iter().filter(|(k, _)| k.starts_with(&prefix)) {
                        match v {
                            Some(v) => found.insert(k.clone(), v.clone()),
                            None => found.remove(k),
                        };
                    }
                    results.push(OpResult::Got(found.into_values().collect()));
                }
            }
        }
        if staged.is_empty() {
            return Ok((state.revision, results));
        }
        let changes: Vec<Change> = staged
            .iter()
            .map(|(k, v)| match v {
                Some(kv) => Change::Put(kv.clone()),
                None => Change::Delete(k.clone()),
            })
            .collect();
        let record = encode_record(&Record {
            revision: next,
            changes,
        });
        let wal_path = self.dir.join(WAL);
        state
            .wal
            .write_all_at(&record, state.wal_len)
            .and_then(|()| state.wal.sync_data())
            .map_err(io_error(&wal_path))?;
        state.wal_len += record.len() as u64;
        let mut events = Vec::with_capacity(staged.len());
        let mut before = Vec::with_capacity(staged.len());
        let mut leases = self.leases();
        for (key, value) in staged {
            let old = state.kv.remove(&key);
            before.push((key.clone(), old.clone()));
            if let Some(old) = &old {
                if old.lease != 0 {
                    if let Some(lease) = leases.live.get_mut(&old.lease) {
                        lease.keys.remove(&key);
                    }
                }
            }
            match value {
                Some(kv) => {
                    if kv.lease != 0 {
                        if let Some(lease) = leases.live.get_mut(&kv.lease) {
                            lease.keys.insert(key.clone());
                        }
                    }
                    events.push(WatchEvent::Put(kv.clone()));
                    state.kv.insert(key, kv);
                }
                None => {
                    if let Some(mut old) = old {
                        old.mod_revision = next;
                        events.push(WatchEvent::Delete(old));
                    }
                }
            }
        }
        drop(leases);
        state.revision = next;
        let batch = Arc::new(WatchBatch {
            revision: next,
            events,
        });
        state.history.push_back(batch.clone());
        state.undo.push_back(Undo {
            revision: next,
            before,
        });
        while state.history.len() > HISTORY_REVISIONS {
            if let Some(dropped) = state.history.pop_front() {
                state.compacted = dropped.revision;
            }
        }
        trim_undo(state);
        // No receiver is fine: nobody is watching.
        let _ = self.events.send(batch);
        if state.wal_len > WAL_SNAPSHOT_BYTES {
            self.snapshot(state)?;
        }
        Ok((next, results))
    }

    fn snapshot(&self, state: &mut State) -> Result<()> {
        let kvs: Vec<&KeyValue> = state.kv.values().collect();
        let raw = encode_snapshot(state.revision, &kvs);
        write_atomic(self.fs.as_ref(), &self.dir.join(SNAPSHOT), &raw)?;
        let wal_path = self.dir.join(WAL);
        state
            .wal
            .set_len(0)
            .and_then(|()| state.wal.sync_data())
            .map_err(io_error(&wal_path))?;
        state.wal_len = 0;
        Ok(())
    }

    fn range_now(&self, prefix: &str) -> Result<RangeResult> {
        let state = self.lock()?;
        let kvs = state
            .kv
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v.clone())
            .collect();
        Ok(RangeResult {
            kvs,
            revision: state.revision,
        })
    }

    /// One page of a prefix as of `page.revision`: the current keys with the changes made
    /// after that revision undone.
    fn page_at(&self, page: &PageRequest) -> Result<RangePage> {
        let state = self.lock()?;
        let revision = if page.revision <= 0 {
            state.revision
        } else {
            page.revision
        };
        if revision > state.revision {
            return Err(Error::RangeFutureRevision { revision });
        }
        if revision < state.revision && revision <= state.compacted {
            return Err(Error::RangeCompacted { revision });
        }
        let prefix = page.prefix.as_str();
        let start = page.start.as_deref().unwrap_or(prefix);
        let wanted = |key: &str| key >= start && key.starts_with(prefix);
        // Walking the undo log newest first, the last "before" seen for a key is what it
        // held at `revision`.
        let mut past: BTreeMap<&str, Option<&KeyValue>> = BTreeMap::new();
        for undo in state.undo.iter().rev() {
            if undo.revision <= revision {
                break;
            }
            for (key, before) in &undo.before {
                if wanted(key) {
                    past.insert(key, before.as_ref());
                }
            }
        }
        let limit = page.limit.max(1);
        // The first `limit + 1` unchanged keys and every changed key hold the first
        // `limit + 1` keys of the page.
        let mut kvs: Vec<&KeyValue> = state
            .kv
            .range::<str, _>((Bound::Included(start), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(k, _)| !past.contains_key(k.as_str()))
            .take(limit + 1)
            .map(|(_, v)| v)
            .collect();
        kvs.extend(past.values().flatten().copied());
        kvs.sort_by(|a, b| a.key.cmp(&b.key));
        let next = (kvs.len() > limit).then(|| key_after(&kvs[limit - 1].key));
        kvs.truncate(limit);
        Ok(RangePage {
            kvs: kvs.into_iter().cloned().collect(),
            revision,
            next,
        })
    }

    fn expire_leases(&self) -> Result<()> {
        let now = Instant::now();
        let expired: Vec<LeaseId> = self
            .leases()
            .live
            .iter()
            .filter(|(_, l)| l.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        if expired.is_empty() {
            return Ok(());
        }
        let mut state = self.lock()?;
        for id in expired {
            // A keep-alive may have come in while this waited for the state's lock.
            let still_expired = self
                .leases()
                .live
                .get(&id)
                .is_some_and(|l| l.deadline <= Instant::now());
            if still_expired {
                self.revoke_locked(&mut state, id)?;
            }
        }
        Ok(())
    }

    fn revoke_locked(&self, state: &mut State, id: LeaseId) -> Result<()> {
        let ops: Vec<Op> = {
            let leases = self.leases();
            let Some(lease) = leases.live.get(&id) else {
                return Err(Error::LeaseNotFound { lease: id });
            };
            lease
                .keys
                .iter()
                .map(|k| Op::Delete { key: k.clone() })
                .collect()
        };
        if !ops.is_empty() {
            self.commit(state, ops)?;
        }
        self.leases().live.remove(&id);
        Ok(())
    }
}

/// Drops undo entries at or below the compacted revision: no read may be pinned there.
fn trim_undo(state: &mut State) {
    while state
        .undo
        .front()
        .is_some_and(|u| u.revision <= state.compacted)
    {
        state.undo.pop_front();
    }
}

async fn reap_leases(store: Weak<EmbeddedStore>) {
    let mut tick = tokio::time::interval(REAPER_TICK);
    loop {
        tick.tick().await;
        let Some(store) = store.upgrade() else {
            return;
        };
        // Expiry commits (a WAL fsync): off the async workers, like every write.
        match crate::blocking::run(|| store.expire_leases()) {
            Ok(()) => {}
            Err(Error::StoreClosed) => return,
            Err(err) => warn!(error = %err, "failed to expire metadata leases"),
        }
    }
}

fn in_prefix(prefix: &str) -> impl Fn(&WatchEvent) -> bool + '_ {
    move |e| e.key().starts_with(prefix)
}

#[async_trait]
impl MetadataStore for EmbeddedStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        crate::blocking::run(|| Ok(self.lock()?.kv.get(key).cloned()))
    }

    /// One read under the state's lock is already a snapshot: no pages needed.
    async fn range(&self, prefix: &str) -> Result<RangeResult> {
        crate::blocking::run(|| self.range_now(prefix))
    }

    async fn range_page(&self, page: &PageRequest) -> Result<RangePage> {
        crate::blocking::run(|| self.page_at(page))
    }

    async fn put(&self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<Revision> {
        crate::blocking::run(|| {
            let mut state = self.lock()?;
            let op = Op::Put {
                key: key.to_string(),
                value,
                lease,
            };
            Ok(self.commit(&mut state, vec![op])?.0)
        })
    }

    async fn delete(&self, key: &str) -> Result<(Revision, i64)> {
        crate::blocking::run(|| {
            let mut state = self.lock()?;
            let (revision, results) = self.commit(
                &mut state,
                vec![Op::Delete {
                    key: key.to_string(),
                }],
            )?;
            let deleted = match results.first() {
                Some(OpResult::Deleted(n)) => *n,
                _ => 0,
            };
            Ok((revision, deleted))
        })
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        txn.check_limits()?;
        crate::blocking::run(|| {
            let mut state = self.lock()?;
            let succeeded = txn.compares.iter().all(|c| c.holds(state.kv.get(&c.key)));
            let ops = if succeeded { txn.success } else { txn.failure };
            let (revision, results) = self.commit(&mut state, ops)?;
            Ok(TxnResponse {
                succeeded,
                revision,
                results,
            })
        })
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::StoreClosed);
        }
        let mut leases = self.leases();
        let id = leases.next;
        leases.next += 1;
        leases.live.insert(
            id,
            Lease {
                ttl,
                deadline: Instant::now() + ttl,
                keys: BTreeSet::new(),
            },
        );
        Ok(id)
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::StoreClosed);
        }
        let mut leases = self.leases();
        let entry = leases
            .live
            .get_mut(&lease)
            .ok_or(Error::LeaseNotFound { lease })?;
        entry.deadline = Instant::now() + entry.ttl;
        Ok(entry.ttl)
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        crate::blocking::run(|| {
            let mut state = self.lock()?;
            self.revoke_locked(&mut state, lease)
        })
    }

    async fn watch(&self, prefix: &str, from_revision: Revision) -> Result<WatchStream> {
        let (tx, rx) = mpsc::channel(256);
        let (replay, mut live, seen) = {
            let state = self.lock()?;
            let start = if from_revision <= 0 {
                state.revision + 1
            } else {
                from_revision
            };
            if start <= state.compacted {
                return Err(Error::WatchCompacted {
                    requested: start,
                    oldest: state.compacted + 1,
                });
            }
            let replay: Vec<Arc<WatchBatch>> = state
                .history
                .iter()
                .filter(|b| b.revision >= start)
                .cloned()
                .collect();
            (replay, self.events.subscribe(), state.revision)
        };
        let prefix = prefix.to_string();
        let mut shutdown = self.shutdown.subscribe();
        tokio::spawn(async move {
            let matches = in_prefix(&prefix);
            let filtered = |b: &WatchBatch| -> Option<WatchBatch> {
                let events: Vec<WatchEvent> =
                    b.events.iter().filter(|e| matches(e)).cloned().collect();
                (!events.is_empty()).then_some(WatchBatch {
                    revision: b.revision,
                    events,
                })
            };
            for batch in replay {
                if let Some(b) = filtered(&batch) {
                    if tx.send(Ok(b)).await.is_err() {
                        return;
                    }
                }
            }
            loop {
                let received = tokio::select! {
                    received = live.recv() => received,
                    // Closed (or the store dropped): end the watch.
                    _ = shutdown.wait_for(|closed| *closed) => return,
                };
                match received {
                    Ok(batch) if batch.revision <= seen => {}
                    Ok(batch) => {
                        if let Some(b) = filtered(&batch) {
                            if tx.send(Ok(b)).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let _ = tx
                            .send(Err(Error::WatchCompacted {
                                requested: seen + 1,
                                oldest: seen + 1,
                            }))
                            .await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Ok(rx)
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let mut state = self.lock()?;
        while state.history.front().is_some_and(|b| b.revision < revision) {
            state.history.pop_front();
        }
        state.compacted = state.compacted.max(revision - 1).min(state.revision);
        trim_undo(&mut state);
        Ok(())
    }

    fn close(&self) {
        if let Ok(mut state) = self.lock() {
            state.closed = true;
        }
        self.closed.store(true, Ordering::SeqCst);
        self.shutdown.send_replace(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsio::sim::{CutMode, SimFs};
    use crate::fsio::RealFs;
    use crate::metadata::conformance;

    fn open_real(dir: &Path) -> Arc<EmbeddedStore> {
        EmbeddedStore::open(Arc::new(RealFs), dir).unwrap()
    }

    #[tokio::test]
    async fn the_embedded_store_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_real(&dir.path().join("store"));
        conformance::run_all(store.as_ref(), "/conf/").await;
    }

    #[tokio::test]
    async fn committed_revisions_survive_a_restart_and_leased_keys_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let store = open_real(&path);
        store.put("/a", b"1".to_vec(), None).await.unwrap();
        let lease = store.grant_lease(Duration::from_secs(60)).await.unwrap();
        let rev = store
            .put("/leased", b"x".to_vec(), Some(lease))
            .await
            .unwrap();
        store.close();
        drop(store);

        let store = open_real(&path);
        let a = store.get("/a").await.unwrap().unwrap();
        assert_eq!(a.value, b"1");
        assert_eq!(store.get("/leased").await.unwrap(), None);
        assert!(
            store.revision().unwrap() > rev,
            "dropping leased keys is a revision"
        );
    }

    #[tokio::test]
    async fn power_loss_keeps_every_acknowledged_write() {
        let sim = SimFs::new();
        let root = PathBuf::from("/data");
        sim.create_dir_all(&root).unwrap();
        sim.sync_dir(Path::new("/")).unwrap();
        let store = EmbeddedStore::open(Arc::new(sim.clone()), &root.join("meta")).unwrap();
        for i in 0..50 {
            store
                .put(&format!("/k{i:03}"), vec![i as u8; 100], None)
                .await
                .unwrap();
        }
        let after = sim.power_cut(CutMode::TornTail { seed: 7 });
        let store = EmbeddedStore::open(Arc::new(after), &root.join("meta")).unwrap();
        let all = store.range("/k").await.unwrap();
        assert_eq!(all.kvs.len(), 50);
        assert_eq!(all.revision, 50);
    }

    #[tokio::test]
    async fn snapshots_keep_the_store_small_and_complete() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let store = open_real(&path);
        let value = vec![7u8; 64 * 1024];
        for i in 0..100 {
            store
                .put(&format!("/k{}", i % 10), value.clone(), None)
                .await
                .unwrap();
        }
        assert!(std::fs::metadata(path.join(WAL)).unwrap().len() < WAL_SNAPSHOT_BYTES + 70_000);
        store.close();
        drop(store);
        let store = open_real(&path);
        assert_eq!(store.range("/k").await.unwrap().kvs.len(), 10);
        assert_eq!(store.revision().unwrap(), 100);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;
        use std::collections::BTreeMap;

        #[derive(Debug, Clone)]
        enum Step {
            Put(u8, u8),
            Delete(u8),
            CreateIfAbsent(u8, u8),
        }

        fn step() -> impl Strategy<Value = Step> {
            prop_oneof![
                (0u8..8, any::<u8>()).prop_map(|(k, v)| Step::Put(k, v)),
                (0u8..8).prop_map(Step::Delete),
                (0u8..8, any::<u8>()).prop_map(|(k, v)| Step::CreateIfAbsent(k, v)),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(60))]

            /// The store agrees with a map model, before and after a restart, and counts
            /// one revision per change.
            #[test]
            fn the_store_matches_a_map_model_across_restarts(steps in proptest::collection::vec(step(), 1..40)) {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                runtime.block_on(async {
                    let dir = tempfile::tempdir().unwrap();
                    let path = dir.path().join("store");
                    let store = open_real(&path);
                    let mut model: BTreeMap<String, Vec<u8>> = BTreeMap::new();
                    let mut revision = store.revision().unwrap();
                    for s in &steps {
                        match s {
                            Step::Put(k, v) => {
                                let key = format!("/m/{k}");
                                let r = store.put(&key, vec![*v], None).await.unwrap();
                                revision += 1;
                                assert_eq!(r, revision);
                                model.insert(key, vec![*v]);
                            }
                            Step::Delete(k) => {
                                let key = format!("/m/{k}");
                                let (_, n) = store.delete(&key).await.unwrap();
                                assert_eq!(n == 1, model.remove(&key).is_some());
                                if n == 1 {
                                    revision += 1;
                                }
                            }
                            Step::CreateIfAbsent(k, v) => {
                                let key = format!("/m/{k}");
                                let txn = Txn::when(vec![crate::metadata::store::Compare::absent(key.clone())])
                                    .and_then(vec![Op::put(key.clone(), vec![*v])]);
                                let response = store.txn(txn).await.unwrap();
                                assert_eq!(response.succeeded, !model.contains_key(&key));
                                if response.succeeded {
                                    revision += 1;
                                    model.insert(key, vec![*v]);
                                }
                            }
                        }
                    }
                    store.close();
                    drop(store);
                    let store = open_real(&path);
                    let all = store.range("/m/").await.unwrap();
                    let got: BTreeMap<String, Vec<u8>> = all.kvs.into_iter().map(|kv| (kv.key, kv.value)).collect();
                    assert_eq!(got, model);
                    assert_eq!(all.revision, revision);
                });
            }
        }
    }

    /// A slow disk delays writes, never the lease keep-alive that keeps a broker
    /// registered: it takes no lock a WAL fsync holds.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_keep_alive_never_waits_for_a_slow_wal_fsync() {
        use crate::fsio::sim::{Fault, FaultEffect, FaultOp, FaultTarget};
        let sim = SimFs::new();
        sim.create_dir_all(Path::new("/meta")).unwrap();
        let store = EmbeddedStore::open(Arc::new(sim.clone()), Path::new("/meta")).unwrap();
        let lease = store.grant_lease(Duration::from_secs(10)).await.unwrap();
        sim.inject(Fault {
            op: FaultOp::Sync,
            target: FaultTarget::Path(PathBuf::from("/meta").join(WAL)),
            effect: FaultEffect::Delay(Duration::from_secs(2)),
            times: Some(1),
        });
        let writer = {
            let store = store.clone();
            tokio::spawn(async move { store.put("/k", b"v".to_vec(), None).await })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        store.keep_alive(lease).await.unwrap();
        let took = started.elapsed();
        assert!(
            took < Duration::from_millis(200),
            "keep-alive took {took:?}"
        );
        assert!(!writer.is_finished(), "the write was still in its fsync");
        writer.await.unwrap().unwrap();
    }
}
