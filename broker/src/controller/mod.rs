//! The controller: one broker at a time, elected through the metadata store, assigns
//! partitions to brokers and elects leaders. It runs the same way on the embedded store
//! (where it elects itself) as on etcd.
//!
//! Fencing: the controller's epoch is the create revision of its election key, and every
//! write it makes is a transaction that compares that key's create revision with its
//! epoch, plus the mod revision of each record it changes. A deposed controller's writes
//! fail; it notices, stops, and campaigns again.

mod admin;
pub mod assignment;
pub mod change;
pub mod election;
pub mod service;
pub mod stats;
mod term;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::defs::{broker_key, check_value, topic_key, Kind};
use crate::config::layers::{is_dynamic, CLUSTER_DEFAULT};
use crate::config::topic;
use crate::config::topic::validate_overrides;
use crate::error::{Error, Result};
use crate::metadata::cache::{MetadataCache, MetadataImage};
use crate::metadata::schema::{
    collision_key, encode, invalid_topic_name, new_id, IsrMember, Keys, PartitionRecord,
    TopicRecord,
};
use crate::metadata::store::{Compare, LeaseId, MetadataStore, Op, Revision, Txn};

/// Most operations per transaction (etcd's default limit is 128).
pub const MAX_TXN_OPS: usize = 100;
/// How long an admin operation waits for this broker's metadata cache to show the
/// controller's own latest write before planning over it.
const CACHE_CATCH_UP: Duration = Duration::from_secs(5);
/// Most partitions one topic may be created with in one request.
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 10_000;

/// What the controller needs from the broker's configuration.
#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    pub num_partitions: i32,
    pub replication_factor: i16,
    /// The static `unclean.leader.election.enable`.
    pub unclean_leader_election: bool,
}

/// This broker's current registration, which the controller's term hangs on: its lease
/// (the election key is put under it) and its broker epoch (every controller write
/// compares it, so a controller whose registration is gone writes nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Incarnation {
    pub lease: LeaseId,
    pub broker_epoch: i64,
}

/// A topic to create.
#[derive(Debug, Clone, Default)]
pub struct TopicSpec {
    pub name: String,
    /// -1: the broker default.
    pub partitions: i32,
    /// -1: the broker default.
    pub replication_factor: i16,
    /// Manual assignment: partition index → replicas (first is the preferred leader).
    pub assignments: BTreeMap<i32, Vec<i32>>,
    pub configs: BTreeMap<String, String>,
}

/// Why an admin operation was refused; each maps to one Kafka error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminError {
    InvalidTopic(String),
    TopicAlreadyExists(String),
    InvalidPartitions(String),
    InvalidReplicationFactor(String),
    InvalidReplicaAssignment(String),
    InvalidConfig(String),
    InvalidRequest(String),
    UnknownTopic(String),
    UnknownTopicId(String),
    TopicDeletionDisabled,
    NotController,
    /// The controller did not answer in time; the change may or may not have been made.
    TimedOut(String),
    /// The store failed; the message is for logs and clients.
    Unavailable(String),
}

fn admin_unavailable(e: Error) -> AdminError {
    match e {
        Error::ControllerFenced { .. } => AdminError::NotController,
        other => AdminError::Unavailable(other.to_string()),
    }
}

/// The live broker ids and epochs the controller assigns from.
fn live_brokers(image: &MetadataImage) -> BTreeMap<i32, i64> {
    image.brokers.iter().map(|(id, b)| (*id, b.epoch)).collect()
}

/// The live broker ids and their racks (`broker.rack`).
fn live_racks(image: &MetadataImage) -> BTreeMap<i32, Option<String>> {
    image
        .brokers
        .iter()
        .map(|(id, b)| (*id, b.registration.rack.clone()))
        .collect()
}

const UNCLEAN: &str = "unclean.leader.election.enable";

impl Controller {
    /// Refuses internal (test-only) keys from clients unless this broker allows them;
    /// the group coordinator's own topic may use them.
    fn check_internal_keys<'a>(
        &self,
        topic: Option<&str>,
        keys: impl IntoIterator<Item = &'a String>,
    ) -> Result<(), AdminError> {
        if self.config.bool("internal.topic.configs.enable")
            || topic.is_some_and(crate::group::is_internal)
        {
            return Ok(());
        }
        match keys.into_iter().find(|k| crate::config::defs::is_internal(k)) {
            Some(key) => Err(AdminError::InvalidConfig(format!(
                "{key} is internal (for tests); the broker refuses it unless internal.topic.configs.enable is set"
            ))),
            None => Ok(()),
        }
    }
}

impl Controller {
    /// Whether `topic` allows unclean leader election: its override, else the dynamic
    /// cluster default, else this controller's static setting.
    fn unclean_allowed(&self, image: &MetadataImage, topic: &str) -> bool {
        let from_topic = image
            .topic(topic)
            .and_then(|t| t.configs.get(UNCLEAN).cloned());
        let from_cluster = || {
            image
                .broker_configs
                .get(crate::config::layers::CLUSTER_DEFAULT)
                .and_then(|c| c.value.get(UNCLEAN).cloned())
        };
        from_topic
            .or_else(from_cluster)
            .map_or(self.defaults.unclean_leader_election, |v| {
                v.trim() == "true"
            })
    }
}

pub use change::{split_list, ConfigChange, ConfigOp, ConfigOpKind, ConfigResource};

#[derive(Debug)]
pub struct Controller {
    /// This broker's configuration: the static layer under dynamic configs.
    config: Arc<crate::config::Config>,
    store: Arc<dyn MetadataStore>,
    keys: Keys,
    cache: Arc<MetadataCache>,
    broker_id: i32,
    defaults: Defaults,
    /// The epoch while this broker is controller, and the broker epoch it leads as.
    term: Mutex<Option<(i64, i64)>>,
    active: watch::Sender<Option<i64>>,
    /// The newest store revision any of this controller's transactions saw (applied or
    /// refused). Admin operations plan over an image at least this new.
    written: AtomicI64,
    pub stats: stats::ControllerStats,
}

impl Controller {
    pub fn new(
        config: Arc<crate::config::Config>,
        store: Arc<dyn MetadataStore>,
        keys: Keys,
        cache: Arc<MetadataCache>,
        broker_id: i32,
        defaults: Defaults,
    ) -> Controller {
        Controller {
            config,
            store,
            keys,
            cache,
            broker_id,
            defaults,
            term: Mutex::new(None),
            active: watch::channel(None).0,
            written: AtomicI64::new(0),
            stats: stats::ControllerStats::default(),
        }
    }

    fn epoch(&self) -> Option<i64> {
        self.term
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map(|(epoch, _)| epoch)
    }

    /// The broker epoch of the current term.
    fn broker_epoch(&self) -> Option<i64> {
        self.term
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map(|(_, broker_epoch)| broker_epoch)
    }

    fn set_term(&self, term: Option<(i64, i64)>) {
        *self.term.lock().unwrap_or_else(|e| e.into_inner()) = term;
        self.active.send_replace(term.map(|(epoch, _)| epoch));
    }

    /// The controller epoch while this broker is the controller.
    pub fn current_epoch(&self) -> Option<i64> {
        self.epoch()
    }

    /// Whether this broker is the controller right now.
    pub fn is_active(&self) -> bool {
        self.epoch().is_some()
    }

    /// Notes the revision a transaction of this controller answered with.
    fn saw_revision(&self, revision: Revision) {
        self.written.fetch_max(revision, Ordering::SeqCst);
    }

    /// The metadata image, once it shows every write this controller has made. The
    /// cache follows the store through a watch, so it can lag this controller's own
    /// last transaction: a request forwarded from another broker (answered there only
    /// once that broker's cache caught up) can arrive before this one's has. Planning
    /// over the older image would refuse a valid change (a partition count or a topic
    /// it cannot see yet) or fail its compare-and-set as a conflict.
    async fn current_image(&self) -> Result<Arc<MetadataImage>, AdminError> {
        let revision = self.written.load(Ordering::SeqCst);
        if !self.cache.wait_for_raw(revision, CACHE_CATCH_UP).await {
            warn!(
                revision,
                applied = self.cache.raw_image().revision,
                "metadata cache did not catch up with the controller's last write"
            );
            return Err(AdminError::Unavailable(format!(
                "this broker's metadata has not caught up with revision {revision}; retry"
            )));
        }
        Ok(self.cache.raw_image())
    }

    /// Changes to whether (and in which epoch) this broker is controller.
    pub fn subscribe(&self) -> watch::Receiver<Option<i64>> {
        self.active.subscribe()
    }
}
