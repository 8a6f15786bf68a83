//! Cluster metadata: the etcd-level store trait and its implementations (etcd, and the
//! embedded store of a standalone broker), the choice between them, the schema of keys
//! and records, and the broker's cached view fed by a watch.

pub mod cache;
pub mod embedded;
pub mod etcd;
pub mod open;
pub mod producer_ids;
pub mod schema;
pub mod store;
pub mod wal;

#[cfg(any(test, feature = "test-support"))]
pub mod conformance;
