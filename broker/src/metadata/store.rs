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
//!   fails with `WatchCompacted` when history before R is gone (the watcher re-reads).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::error::Result;

pub type Revision = i64;
pub type LeaseId = i64;

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
    async fn range(&self, prefix: &str) -> Result<RangeResult>;
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
    /// Forgets history before `revision`.
    async fn compact(&self, revision: Revision) -> Result<()>;
}
