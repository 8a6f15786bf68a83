//! The metadata store, defined at etcd's level: a revisioned key-value store with
//! compare-and-set transactions, leases and prefix watches from a revision.
//!
//! Semantics follow etcd v3 so that the embedded store and the etcd store are
//! interchangeable (both pass `conformance`):
//! - every successful write transaction advances the store revision by exactly one;
//! - a key has `create_revision` (revision that created it), `mod_revision` (last
//!   change) and `version` (changes since creation); a missing key compares as 0 on all;
//! - a key put under a lease is deleted when the lease expires or is revoked;
//! - a watch from revision R delivers, in order, every change with revision >= R, or
//!   fails with `WatchCompacted` when history before R is gone (the watcher re-reads);
//! - a large prefix is read in pages, every page at the first page's revision, so the
//!   pages together are one consistent snapshot (or `RangeCompacted` once that revision
//!   is gone);
//! - a transaction holds at most [`MAX_TXN_OPS`] compares, success ops and failure ops,
//!   each counted on its own (etcd's `--max-txn-ops`); callers chunk larger writes.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tracing::warn;

use crate::error::{Error, Result};

pub type Revision = i64;
pub type LeaseId = i64;

/// The most compares, and separately the most success and failure ops, in one
/// transaction: etcd's default `--max-txn-ops`. Both stores refuse more with
/// `TxnTooLarge`, so a caller that fits the embedded store fits etcd.
pub const MAX_TXN_OPS: usize = 128;

/// Keys per page when [`MetadataStore::range`] reads a prefix page by page.
pub const RANGE_PAGE_KEYS: usize = 1000;

/// How often [`MetadataStore::range`] starts over when its first page's revision is
/// compacted between pages (each attempt is a new snapshot).
const RANGE_ATTEMPTS: usize = 3;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    pub create_revision: Revision,
    pub mod_revision: Revision,
    pub version: i64,
    /// The lease the key is attached to, 0 for none.
    pub lease: LeaseId,
}

/// What a comparison looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompareTarget {
    CreateRevision(Revision),
    ModRevision(Revision),
    Version(i64),
    Value(Vec<u8>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Equal,
    NotEqual,
    Greater,
    Less,
}

/// One guard of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compare {
    pub key: String,
    pub op: CompareOp,
    pub target: CompareTarget,
}

impl Compare {
    /// True when `key` does not exist (etcd's create-if-absent idiom).
    pub fn absent(key: impl Into<String>) -> Compare {
        Compare {
            key: key.into(),
            op: CompareOp::Equal,
            target: CompareTarget::CreateRevision(0),
        }
    }

    pub fn create_revision(key: impl Into<String>, revision: Revision) -> Compare {
        Compare {
            key: key.into(),
            op: CompareOp::Equal,
            target: CompareTarget::CreateRevision(revision),
        }
    }

    pub fn mod_revision(key: impl Into<String>, revision: Revision) -> Compare {
        Compare {
            key: key.into(),
            op: CompareOp::Equal,
            target: CompareTarget::ModRevision(revision),
        }
    }

    /// Evaluates the guard against the key's current state.
    pub fn holds(&self, kv: Option<&KeyValue>) -> bool {
        use std::cmp::Ordering;
        let ordering = match &self.target {
            CompareTarget::CreateRevision(r) => kv.map_or(0, |k| k.create_revision).cmp(r),
            CompareTarget::ModRevision(r) => kv.map_or(0, |k| k.mod_revision).cmp(r),
            CompareTarget::Version(v) => kv.map_or(0, |k| k.version).cmp(v),
            CompareTarget::Value(v) => match kv {
                Some(k) => k.value.as_slice().cmp(v.as_slice()),
                // etcd: a value comparison on a missing key is false whatever the op.
                None => return false,
            },
        };
        match self.op {
            CompareOp::Equal => ordering == Ordering::Equal,
            CompareOp::NotEqual => ordering != Ordering::Equal,
            CompareOp::Greater => ordering == Ordering::Greater,
            CompareOp::Less => ordering == Ordering::Less,
        }
    }
}

/// One operation of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put {
        key: String,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    },
    Delete {
        key: String,
    },
    DeletePrefix {
        prefix: String,
    },
    Get {
        key: String,
    },
    GetPrefix {
        prefix: String,
    },
}

impl Op {
    pub fn put(key: impl Into<String>, value: impl Into<Vec<u8>>) -> Op {
        Op::Put {
            key: key.into(),
            value: value.into(),
            lease: None,
        }
    }
}

/// The result of one operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResult {
    Put,
    Deleted(i64),
    Got(Vec<KeyValue>),
}

/// `If(compares) Then(success) Else(failure)`, atomically.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    pub compares: Vec<Compare>,
    pub success: Vec<Op>,
    pub failure: Vec<Op>,
}

impl Txn {
    pub fn when(compares: Vec<Compare>) -> Txn {
        Txn {
            compares,
            ..Txn::default()
        }
    }

    pub fn and_then(mut self, ops: Vec<Op>) -> Txn {
        self.success = ops;
        self
    }

    pub fn or_else(mut self, ops: Vec<Op>) -> Txn {
        self.failure = ops;
        self
    }

    /// Refuses a transaction over [`MAX_TXN_OPS`] in any of its three parts.
    pub fn check_limits(&self) -> Result<()> {
        let parts = [
            ("compares", self.compares.len()),
            ("success ops", self.success.len()),
            ("failure ops", self.failure.len()),
        ];
        for (part, ops) in parts {
            if ops > MAX_TXN_OPS {
                return Err(Error::TxnTooLarge {
                    part,
                    ops,
                    limit: MAX_TXN_OPS,
                });
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnResponse {
    pub succeeded: bool,
    /// The store revision after the transaction.
    pub revision: Revision,
    pub results: Vec<OpResult>,
}

/// A prefix read at one revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeResult {
    pub kvs: Vec<KeyValue>,
    pub revision: Revision,
}

/// One page of a prefix read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub prefix: String,
    /// The first key to return (inclusive, inside `prefix`); `None` for the prefix's start.
    pub start: Option<String>,
    /// The most keys to return; a store may return fewer (etcd does when a page would
    /// not fit a gRPC message), so only [`RangePage::next`] says whether more follow.
    pub limit: usize,
    /// The revision to read at; 0 for the current one (a first page).
    pub revision: Revision,
}

impl PageRequest {
    /// The first page of `prefix`, at the current revision.
    pub fn first(prefix: impl Into<String>, limit: usize) -> PageRequest {
        PageRequest {
            prefix: prefix.into(),
            start: None,
            limit,
            revision: 0,
        }
    }
}

/// Keys of one page, in key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangePage {
    pub kvs: Vec<KeyValue>,
    /// The revision the page was read at; later pages are asked for at this revision.
    pub revision: Revision,
    /// Where the next page starts; `None` when this page ends the prefix.
    pub next: Option<String>,
}

impl RangePage {
    /// The request for the page after this one, at this page's revision.
    pub fn next_request(&self, prefix: &str, limit: usize) -> Option<PageRequest> {
        let start = self.next.clone()?;
        Some(PageRequest {
            prefix: prefix.to_string(),
            start: Some(start),
            limit,
            revision: self.revision,
        })
    }
}

/// The smallest key after `key`: where a page that ended at `key` continues.
pub fn key_after(key: &str) -> String {
    format!("{key}\0")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    Put(KeyValue),
    /// The deleted key, with `mod_revision` set to the deleting revision.
    Delete(KeyValue),
}

impl WatchEvent {
    pub fn key(&self) -> &str {
        match self {
            WatchEvent::Put(kv) | WatchEvent::Delete(kv) => &kv.key,
        }
    }
}

/// The changes of one revision under the watched prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchBatch {
    pub revision: Revision,
    pub events: Vec<WatchEvent>,
}

/// A watch: batches in revision order; an `Err` item ends it.
pub type WatchStream = mpsc::Receiver<Result<WatchBatch>>;

#[async_trait]
pub trait MetadataStore: Send + Sync + fmt::Debug {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;
    /// Reads every key under `prefix` at one revision: page by page with
    /// [`range_page`](Self::range_page), all pages at the first page's revision. When that
    /// revision is compacted between pages, starts over with a new first page.
    async fn range(&self, prefix: &str) -> Result<RangeResult> {
        let mut attempt = 1;
        loop {
            match read_pages(self, prefix).await {
                Err(Error::RangeCompacted { revision }) if attempt < RANGE_ATTEMPTS => {
                    warn!(
                        prefix,
                        revision,
                        attempt,
                        "a paginated read's revision was compacted; reading again"
                    );
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
    /// Reads one page of a prefix; see [`PageRequest`] and [`RangePage`]. Fails with
    /// `RangeCompacted` when the requested revision is compacted.
    async fn range_page(&self, page: &PageRequest) -> Result<RangePage>;
    async fn put(&self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<Revision>;
    /// Deletes `key`; returns the revision after and how many keys were deleted.
    async fn delete(&self, key: &str) -> Result<(Revision, i64)>;
    async fn txn(&self, txn: Txn) -> Result<TxnResponse>;
    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId>;
    /// Refreshes a lease; returns its TTL, or `LeaseNotFound` once it expired.
    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration>;
    async fn revoke_lease(&self, lease: LeaseId) -> Result<()>;
    /// Watches `prefix` from `from_revision` (0: from the next revision).
    async fn watch(&self, prefix: &str, from_revision: Revision) -> Result<WatchStream>;
    /// Forgets history before `revision` (a revision already compacted: nothing to do).
    async fn compact(&self, revision: Revision) -> Result<()>;
    /// Stops the store: later calls fail with `StoreClosed` and open watches end. Leases
    /// are left to expire (a graceful stop revokes its own first).
    fn close(&self);
}

/// Every page of `prefix`, read at the first page's revision.
async fn read_pages<S: MetadataStore + ?Sized>(store: &S, prefix: &str) -> Result<RangeResult> {
    let mut page = store
        .range_page(&PageRequest::first(prefix, RANGE_PAGE_KEYS))
        .await?;
    let revision = page.revision;
    let mut kvs = std::mem::take(&mut page.kvs);
    while let Some(request) = page.next_request(prefix, RANGE_PAGE_KEYS) {
        page = store.range_page(&request).await?;
        kvs.append(&mut page.kvs);
    }
    Ok(RangeResult { kvs, revision })
}
