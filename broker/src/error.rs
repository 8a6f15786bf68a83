//! The crate's error type: one enum, each variant named after the action that failed.
//!
//! Expected conditions on the Kafka path (an unknown topic, a batch that fails validation,
//! a stale leader epoch) are not errors here: they are values that become Kafka error codes
//! in `handlers/errors.rs`. This type is for things that went wrong.

use std::io;
use std::path::PathBuf;

/// Result with the crate's error as the default.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to open {path}")]
    OpenFile { path: PathBuf, source: io::Error },

    #[error("failed to read {path}")]
    ReadFile { path: PathBuf, source: io::Error },

    #[error("failed to write {path}")]
    WriteFile { path: PathBuf, source: io::Error },

    #[error("failed to sync {path}")]
    SyncFile { path: PathBuf, source: io::Error },

    #[error("failed to truncate {path}")]
    TruncateFile { path: PathBuf, source: io::Error },

    #[error("failed to create directory {path}")]
    CreateDir { path: PathBuf, source: io::Error },

    #[error("failed to list directory {path}")]
    ReadDir { path: PathBuf, source: io::Error },

    #[error("failed to sync directory {path}")]
    SyncDir { path: PathBuf, source: io::Error },

    #[error("failed to rename {from} to {to}")]
    RenameFile {
        from: PathBuf,
        to: PathBuf,
        source: io::Error,
    },

    #[error("failed to remove {path}")]
    RemoveFile { path: PathBuf, source: io::Error },

    #[error("failed to start thread {name}")]
    StartThread {
        name: &'static str,
        source: io::Error,
    },

    #[error("failed to lock log directory {path}: is another broker using it?")]
    LockDir { path: PathBuf, source: io::Error },

    #[error("failed to parse {path}: {reason}")]
    ParseFile { path: PathBuf, reason: String },

    #[error("log directory {path} belongs to {found}, but this broker is {expected}")]
    DataDirIdentity {
        path: PathBuf,
        expected: String,
        found: String,
    },

    #[error("invalid value {value:?} for configuration {key}: {reason}")]
    InvalidConfig {
        key: String,
        value: String,
        reason: String,
    },

    #[error("failed to read configuration file {path}")]
    ReadConfigFile { path: PathBuf, source: io::Error },

    #[error("failed to bind {what} listener on {addr}")]
    BindListener {
        what: &'static str,
        addr: String,
        source: io::Error,
    },

    #[error("failed to encode {what} for key {key}")]
    EncodeMetadata {
        what: &'static str,
        key: String,
        source: serde_json::Error,
    },

    #[error("failed to decode {what} at key {key}")]
    DecodeMetadata {
        what: &'static str,
        key: String,
        source: serde_json::Error,
    },

    #[error(
        "failed to watch metadata: revision {requested} was compacted (oldest kept is {oldest})"
    )]
    WatchCompacted { requested: i64, oldest: i64 },

    #[error("failed to find lease {lease}")]
    LeaseNotFound { lease: i64 },

    #[error("failed to read metadata at revision {revision}: it was compacted")]
    RangeCompacted { revision: i64 },

    #[error("failed to read metadata at revision {revision}: the store has not reached it")]
    RangeFutureRevision { revision: i64 },

    #[error(
        "failed to run a metadata transaction: {ops} {part} exceed the limit of {limit} per transaction"
    )]
    TxnTooLarge {
        part: &'static str,
        ops: usize,
        limit: usize,
    },

    #[error("failed to connect to etcd at {endpoints}")]
    ConnectEtcd {
        endpoints: String,
        source: etcd_client::Error,
    },

    #[error("failed to run etcd {operation}")]
    EtcdRequest {
        operation: &'static str,
        source: etcd_client::Error,
    },

    #[error("failed to run etcd {operation}: no answer within {after:?}")]
    EtcdTimeout {
        operation: &'static str,
        after: std::time::Duration,
    },

    #[error("failed to use the metadata store: it has stopped")]
    StoreClosed,

    #[error("failed to act as controller: leadership (epoch {epoch}) was lost")]
    ControllerFenced { epoch: i64 },

    #[error("failed to register: broker id {id} is registered by a live broker")]
    BrokerIdTaken { id: i32 },

    #[error("failed to start: {reason}")]
    Startup { reason: String },

    #[error("failed to reach the controller: {reason}")]
    ControllerUnavailable { reason: String },

    #[error("failed to encode {api} response v{version}")]
    EncodeResponse {
        api: &'static str,
        version: i16,
        source: proto_kafka::error::ProtoError,
    },

    #[error("failed to append to {partition}: the log is offline after an I/O error")]
    LogOffline { partition: String },
}

impl Error {
    /// A short static name for metrics labels (never formatted error text).
    pub fn category(&self) -> &'static str {
        match self {
            Error::OpenFile { .. }
            | Error::ReadFile { .. }
            | Error::WriteFile { .. }
            | Error::SyncFile { .. }
            | Error::TruncateFile { .. }
            | Error::CreateDir { .. }
            | Error::ReadDir { .. }
            | Error::SyncDir { .. }
            | Error::RenameFile { .. }
            | Error::RemoveFile { .. }
            | Error::LockDir { .. } => "io",
            Error::ParseFile { .. } | Error::DataDirIdentity { .. } => "data_dir",
            Error::InvalidConfig { .. } | Error::ReadConfigFile { .. } => "config",
            Error::BindListener { .. } => "listener",
            Error::EncodeMetadata { .. }
            | Error::DecodeMetadata { .. }
            | Error::WatchCompacted { .. }
            | Error::LeaseNotFound { .. }
            | Error::RangeCompacted { .. }
            | Error::RangeFutureRevision { .. }
            | Error::TxnTooLarge { .. }
            | Error::StoreClosed => "metadata",
            Error::ConnectEtcd { .. } | Error::EtcdRequest { .. } | Error::EtcdTimeout { .. } => {
                "etcd"
            }
            Error::ControllerFenced { .. } | Error::ControllerUnavailable { .. } => "controller",
            Error::Startup { .. } | Error::StartThread { .. } | Error::BrokerIdTaken { .. } => {
                "startup"
            }
            Error::EncodeResponse { .. } => "protocol",
            Error::LogOffline { .. } => "log_offline",
        }
    }
}
