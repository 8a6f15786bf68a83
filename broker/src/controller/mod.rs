//! The controller: one broker at a time, elected through the metadata store, assigns
//! partitions to brokers and elects leaders. It runs the same way on the embedded store
//! (where it elects itself) as on etcd.
//!
//! Fencing: the controller's epoch is the create revision of its election key, and every
//! write it makes is a transaction that compares that key's create revision with its
//! epoch, plus the mod revision of each record it changes. A deposed controller's writes
//! fail; it notices, stops, and campaigns again.

pub mod assignment;
pub mod election;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::defs::{broker_key, check_value};
use crate::config::layers::{is_dynamic, CLUSTER_DEFAULT};
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
/// Most partitions one topic may be created with in one request.
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 10_000;

/// What the controller needs from the broker's configuration.
#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    pub num_partitions: i32,
    pub replication_factor: i16,
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

/// What an alter-configs request makes of a resource's current dynamic configs.
pub type ConfigChange<'a> = dyn Fn(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, AdminError>
    + Send
    + Sync
    + 'a;

#[derive(Debug)]
pub struct Controller {
    store: Arc<dyn MetadataStore>,
    keys: Keys,
    cache: Arc<MetadataCache>,
    broker_id: i32,
    defaults: Defaults,
    /// The epoch while this broker is controller.
    term: Mutex<Option<i64>>,
    active: watch::Sender<Option<i64>>,
}

impl Controller {
    pub fn new(
        store: Arc<dyn MetadataStore>,
        keys: Keys,
        cache: Arc<MetadataCache>,
        broker_id: i32,
        defaults: Defaults,
    ) -> Controller {
        Controller {
            store,
            keys,
            cache,
            broker_id,
            defaults,
            term: Mutex::new(None),
            active: watch::channel(None).0,
        }
    }

    fn epoch(&self) -> Option<i64> {
        *self.term.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_epoch(&self, epoch: Option<i64>) {
        *self.term.lock().unwrap_or_else(|e| e.into_inner()) = epoch;
        self.active.send_replace(epoch);
    }

    /// Changes to whether (and in which epoch) this broker is controller.
    pub fn subscribe(&self) -> watch::Receiver<Option<i64>> {
        self.active.subscribe()
    }

    /// Campaigns while `lease` holds a lease; leads until fenced or the lease changes.
    pub async fn run(self: Arc<Self>, mut lease: watch::Receiver<Option<LeaseId>>) {
        let mut changes = self.cache.subscribe();
        loop {
            let current = *lease.borrow_and_update();
            let Some(lease_id) = current else {
                if lease.changed().await.is_err() {
                    return;
                }
                continue;
            };
            match self.campaign(lease_id).await {
                Ok(Some(epoch)) => {
                    info!(broker = self.broker_id, epoch, "became controller");
                    self.set_epoch(Some(epoch));
                    self.lead(epoch, &mut lease, &mut changes).await;
                    self.set_epoch(None);
                    info!(broker = self.broker_id, epoch, "stopped being controller");
                }
                Ok(None) => {
                    // Someone else leads: wait for a change (their key may disappear).
                    tokio::select! {
                        r = changes.changed() => if r.is_err() { return },
                        r = lease.changed() => if r.is_err() { return },
                    }
                }
                Err(Error::StoreClosed) => return,
                Err(err) => {
                    warn!(error = %err, "controller campaign failed");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    async fn campaign(&self, lease: LeaseId) -> Result<Option<i64>> {
        let key = self.keys.controller();
        let value = encode("controller", &key, &self.broker_id)?;
        let txn = Txn::when(vec![Compare::absent(key.clone())]).and_then(vec![Op::Put {
            key,
            value,
            lease: Some(lease),
        }]);
        let response = self.store.txn(txn).await?;
        Ok(response.succeeded.then_some(response.revision))
    }

    async fn lead(
        &self,
        epoch: i64,
        lease: &mut watch::Receiver<Option<LeaseId>>,
        changes: &mut watch::Receiver<Revision>,
    ) {
        loop {
            let image = self.cache.image();
            if image.revision >= epoch {
                match self.reconcile_leaders(&image, epoch).await {
                    Err(Error::ControllerFenced { .. }) | Err(Error::StoreClosed) => return,
                    Err(err) => warn!(error = %err, "leader reconciliation failed"),
                    Ok(()) => {}
                }
            }
            tokio::select! {
                r = changes.changed() => if r.is_err() { return },
                r = lease.changed() => if r.is_err() || lease.borrow().is_none() { return },
            }
            if image.controller.is_some_and(|(_, e)| e != epoch) && image.revision >= epoch {
                return;
            }
        }
    }

    fn fence(&self, epoch: i64) -> Compare {
        Compare::create_revision(self.keys.controller(), epoch)
    }

    /// Commits `ops` (each guarded by its compare) in transactions fenced by `epoch`.
    /// Returns the last revision, or `ControllerFenced` if leadership is gone.
    async fn commit(
        &self,
        epoch: i64,
        guarded: Vec<(Option<Compare>, Op)>,
    ) -> Result<(bool, Revision)> {
        let mut all_ok = true;
        let mut revision = 0;
        for chunk in guarded.chunks(MAX_TXN_OPS) {
            let mut compares = vec![self.fence(epoch)];
            compares.extend(chunk.iter().filter_map(|(c, _)| c.clone()));
            let ops = chunk.iter().map(|(_, op)| op.clone()).collect();
            let response = self.store.txn(Txn::when(compares).and_then(ops)).await?;
            revision = response.revision;
            if !response.succeeded {
                let ours = self.store.get(&self.keys.controller()).await?;
                if ours.is_none_or(|kv| kv.create_revision != epoch) {
                    return Err(Error::ControllerFenced { epoch });
                }
                all_ok = false;
            }
        }
        Ok((all_ok, revision))
    }

    async fn reconcile_leaders(&self, image: &MetadataImage, epoch: i64) -> Result<()> {
        let live = live_brokers(image);
        let mut guarded = Vec::new();
        for (topic, partitions) in &image.partitions {
            for (partition, current) in partitions {
                let Some(next) = election::elect(&current.value, &live) else {
                    continue;
                };
                let key = self.keys.partition(topic, *partition);
                info!(
                    topic = %topic,
                    partition,
                    leader = next.leader,
                    leader_epoch = next.leader_epoch,
                    isr = ?next.isr_brokers(),
                    "changing partition leadership"
                );
                let value = encode("partition", &key, &next)?;
                guarded.push((
                    Some(Compare::mod_revision(key.clone(), current.mod_revision)),
                    Op::put(key, value),
                ));
            }
        }
        if !guarded.is_empty() {
            self.commit(epoch, guarded).await?;
        }
        Ok(())
    }

    /// Validates and creates topics. Returns each topic's outcome and the revision the
    /// caller should wait for before answering.
    pub async fn create_topics(
        &self,
        specs: Vec<TopicSpec>,
        validate_only: bool,
    ) -> (Vec<(String, Result<TopicRecord, AdminError>)>, Revision) {
        let Some(epoch) = self.epoch() else {
            return (
                specs
                    .into_iter()
                    .map(|s| (s.name, Err(AdminError::NotController)))
                    .collect(),
                0,
            );
        };
        let image = self.cache.image();
        let live = live_brokers(&image);
        let mut outcomes = Vec::with_capacity(specs.len());
        let mut revision = image.revision;
        let mut names_in_request: BTreeSet<String> = BTreeSet::new();
        for spec in specs {
            let name = spec.name.clone();
            let planned = self.plan_topic(&image, &live, spec, &names_in_request);
            let outcome = match planned {
                Err(err) => Err(err),
                Ok(plan) if validate_only => Ok(plan.0),
                Ok((record, partitions)) => {
                    match self.write_topic(epoch, &name, &record, partitions).await {
                        Ok(rev) => {
                            revision = revision.max(rev);
                            info!(topic = %name, partitions = record.partitions, replication_factor = record.replication_factor, "created topic");
                            Ok(record)
                        }
                        Err(err) => Err(err),
                    }
                }
            };
            names_in_request.insert(collision_key(&name));
            outcomes.push((name, outcome));
        }
        (outcomes, revision)
    }

    fn plan_topic(
        &self,
        image: &MetadataImage,
        live: &BTreeMap<i32, i64>,
        spec: TopicSpec,
        earlier: &BTreeSet<String>,
    ) -> Result<(TopicRecord, Vec<PartitionRecord>), AdminError> {
        if let Some(reason) = invalid_topic_name(&spec.name) {
            return Err(AdminError::InvalidTopic(reason));
        }
        if image.topics.contains_key(&spec.name) {
            return Err(AdminError::TopicAlreadyExists(format!(
                "topic {} already exists",
                spec.name
            )));
        }
        let collision = collision_key(&spec.name);
        if let Some(other) = image.topics.keys().find(|t| collision_key(t) == collision) {
            return Err(AdminError::InvalidTopic(format!(
                "topic {} collides with existing topic {other} ('.' and '_' are interchangeable in metric names)",
                spec.name
            )));
        }
        if earlier.contains(&collision) {
            return Err(AdminError::InvalidTopic(format!(
                "topic {} collides with another topic in the same request",
                spec.name
            )));
        }
        validate_overrides(&spec.configs)
            .map_err(|(key, reason)| AdminError::InvalidConfig(format!("{key}: {reason}")))?;
        let replicas = if spec.assignments.is_empty() {
            let partitions = if spec.partitions == -1 {
                self.defaults.num_partitions
            } else {
                spec.partitions
            };
            if partitions < 1 {
                return Err(AdminError::InvalidPartitions(format!(
                    "number of partitions must be at least 1, not {partitions}"
                )));
            }
            if partitions > MAX_PARTITIONS_PER_TOPIC {
                return Err(AdminError::InvalidPartitions(format!(
                    "{partitions} partitions is more than the {MAX_PARTITIONS_PER_TOPIC} one topic may have"
                )));
            }
            let rf = if spec.replication_factor == -1 {
                self.defaults.replication_factor
            } else {
                spec.replication_factor
            };
            if rf < 1 {
                return Err(AdminError::InvalidReplicationFactor(format!(
                    "replication factor must be at least 1, not {rf}"
                )));
            }
            if rf as usize > live.len() {
                return Err(AdminError::InvalidReplicationFactor(format!(
                    "unable to replicate the partition {rf} time(s): the target replication factor of {rf} cannot be reached because only {} broker(s) are registered",
                    live.len()
                )));
            }
            let brokers: Vec<i32> = live.keys().copied().collect();
            assignment::round_robin(&brokers, partitions, rf as usize, &spec.name)
        } else {
            if spec.partitions != -1 || spec.replication_factor != -1 {
                return Err(AdminError::InvalidRequest(
                    "a replica assignment cannot be combined with a partition count or replication factor".into(),
                ));
            }
            if spec.assignments.len() > MAX_PARTITIONS_PER_TOPIC as usize {
                return Err(AdminError::InvalidPartitions(format!(
                    "{} partitions is more than the {MAX_PARTITIONS_PER_TOPIC} one topic may have",
                    spec.assignments.len()
                )));
            }
            assignment::check_manual(&spec.assignments, live)
                .map_err(AdminError::InvalidReplicaAssignment)?
        };
        let partitions: Vec<PartitionRecord> = replicas
            .into_iter()
            .map(|replicas| PartitionRecord {
                leader: replicas[0],
                leader_epoch: 0,
                isr: replicas
                    .iter()
                    .filter_map(|b| {
                        live.get(b).map(|epoch| IsrMember {
                            broker: *b,
                            broker_epoch: *epoch,
                        })
                    })
                    .collect(),
                replicas,
                partition_epoch: 0,
            })
            .collect();
        let record = TopicRecord {
            id: new_id(),
            partitions: partitions.len() as i32,
            replication_factor: partitions.first().map_or(0, |p| p.replicas.len() as i16),
            configs: spec.configs,
        };
        Ok((record, partitions))
    }

    /// The current record of topic `name` and its mod revision.
    fn topic_of(
        &self,
        image: &MetadataImage,
        name: &str,
    ) -> Result<(TopicRecord, Revision), AdminError> {
        image
            .topics
            .get(name)
            .map(|t| (t.value.clone(), t.mod_revision))
            .ok_or_else(|| AdminError::UnknownTopic(format!("topic {name} does not exist")))
    }

    fn epoch_or_refuse(&self) -> Result<i64, AdminError> {
        self.epoch().ok_or(AdminError::NotController)
    }

    /// Deletes topics: their topic record and every partition record, in one fenced
    /// transaction each (guarded by the topic record's mod revision). Brokers delete the
    /// logs when they see it. Topic ids are random and never reused.
    pub async fn delete_topics(
        &self,
        names: Vec<String>,
    ) -> (Vec<(String, Result<(), AdminError>)>, Revision) {
        let image = self.cache.image();
        let mut revision = image.revision;
        let mut outcomes = Vec::with_capacity(names.len());
        for name in names {
            let outcome = async {
                let epoch = self.epoch_or_refuse()?;
                let (_, mod_revision) = self.topic_of(&image, &name)?;
                let topic_key = self.keys.topic(&name);
                let txn = Txn::when(vec![
                    self.fence(epoch),
                    Compare::mod_revision(topic_key.clone(), mod_revision),
                ])
                .and_then(vec![
                    Op::Delete { key: topic_key },
                    Op::DeletePrefix {
                        prefix: self.keys.topic_partitions(&name),
                    },
                ]);
                let response = self
                    .store
                    .txn(txn)
                    .await
                    .map_err(|e| AdminError::Unavailable(e.to_string()))?;
                if !response.succeeded {
                    return Err(AdminError::Unavailable(format!(
                        "topic {name} changed while being deleted; retry"
                    )));
                }
                info!(topic = %name, "deleted topic");
                Ok(response.revision)
            }
            .await;
            outcomes.push((
                name,
                outcome.map(|r| {
                    revision = revision.max(r);
                }),
            ));
        }
        (outcomes, revision)
    }

    /// Adds partitions to a topic up to `count` (partitions never decrease).
    pub async fn create_partitions(
        &self,
        name: &str,
        count: i32,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    ) -> Result<Revision, AdminError> {
        let epoch = self.epoch_or_refuse()?;
        let image = self.cache.image();
        let (mut record, mod_revision) = self.topic_of(&image, name)?;
        let current = image.topic_partitions(name).count() as i32;
        if count < current {
            return Err(AdminError::InvalidPartitions(format!(
                "topic {name} has {current} partitions, which is more than the requested {count}; partitions never decrease"
            )));
        }
        if count == current {
            return Err(AdminError::InvalidPartitions(format!(
                "topic {name} already has {current} partitions"
            )));
        }
        if count > MAX_PARTITIONS_PER_TOPIC {
            return Err(AdminError::InvalidPartitions(format!(
                "{count} partitions is more than the {MAX_PARTITIONS_PER_TOPIC} one topic may have"
            )));
        }
        let live = live_brokers(&image);
        let rf = record.replication_factor.max(1) as usize;
        let added = (count - current) as usize;
        let replicas = match assignments {
            Some(lists) => {
                if lists.len() != added {
                    return Err(AdminError::InvalidReplicaAssignment(format!(
                        "{} assignments given for {added} new partitions",
                        lists.len()
                    )));
                }
                let numbered: BTreeMap<i32, Vec<i32>> = lists
                    .into_iter()
                    .enumerate()
                    .map(|(i, r)| (i as i32, r))
                    .collect();
                let checked = assignment::check_manual(&numbered, &live)
                    .map_err(AdminError::InvalidReplicaAssignment)?;
                if checked.first().is_some_and(|r| r.len() != rf) {
                    return Err(AdminError::InvalidReplicaAssignment(format!(
                        "new partitions must have the topic's replication factor {rf}"
                    )));
                }
                checked
            }
            None => {
                if rf > live.len() {
                    return Err(AdminError::InvalidReplicationFactor(format!(
                        "the topic's replication factor {rf} cannot be reached: only {} broker(s) are registered",
                        live.len()
                    )));
                }
                let brokers: Vec<i32> = live.keys().copied().collect();
                let mut plan = assignment::round_robin(&brokers, count, rf, name);
                plan.drain(..current as usize);
                plan
            }
        };
        if validate_only {
            return Ok(image.revision);
        }
        let mut guarded = Vec::with_capacity(added + 1);
        for (i, replicas) in replicas.into_iter().enumerate() {
            let index = current + i as i32;
            let partition = PartitionRecord {
                leader: replicas[0],
                leader_epoch: 0,
                isr: replicas
                    .iter()
                    .filter_map(|b| {
                        live.get(b).map(|e| IsrMember {
                            broker: *b,
                            broker_epoch: *e,
                        })
                    })
                    .collect(),
                replicas,
                partition_epoch: 0,
            };
            let key = self.keys.partition(name, index);
            let value = encode("partition", &key, &partition)
                .map_err(|e| AdminError::Unavailable(e.to_string()))?;
            guarded.push((Some(Compare::absent(key.clone())), Op::put(key, value)));
        }
        self.commit(epoch, guarded)
            .await
            .map_err(admin_unavailable)?;
        record.partitions = count;
        let revision = self
            .put_topic_if_unchanged(
                epoch,
                name,
                &record,
                mod_revision,
                "while adding partitions",
            )
            .await?;
        info!(topic = %name, partitions = count, "added partitions");
        Ok(revision)
    }

    /// Rewrites a topic's record if nobody changed it since `mod_revision`; otherwise
    /// the client is told the topic changed `how` and to retry.
    async fn put_topic_if_unchanged(
        &self,
        epoch: i64,
        name: &str,
        record: &TopicRecord,
        mod_revision: Revision,
        how: &str,
    ) -> Result<Revision, AdminError> {
        let key = self.keys.topic(name);
        let value =
            encode("topic", &key, record).map_err(|e| AdminError::Unavailable(e.to_string()))?;
        let (ok, revision) = self
            .commit(
                epoch,
                vec![(
                    Some(Compare::mod_revision(key.clone(), mod_revision)),
                    Op::put(key, value),
                )],
            )
            .await
            .map_err(admin_unavailable)?;
        if !ok {
            return Err(AdminError::Unavailable(format!(
                "topic {name} changed {how}; retry"
            )));
        }
        Ok(revision)
    }

    /// Replaces a topic's overrides with what `change` makes of the current ones.
    pub async fn alter_topic_configs(
        &self,
        name: &str,
        change: &ConfigChange<'_>,
        validate_only: bool,
    ) -> Result<Revision, AdminError> {
        let epoch = self.epoch_or_refuse()?;
        let image = self.cache.image();
        let (mut record, mod_revision) = self.topic_of(&image, name)?;
        let configs = change(&record.configs)?;
        validate_overrides(&configs)
            .map_err(|(key, reason)| AdminError::InvalidConfig(format!("{key}: {reason}")))?;
        if validate_only {
            return Ok(image.revision);
        }
        record.configs = configs;
        let revision = self
            .put_topic_if_unchanged(epoch, name, &record, mod_revision, "concurrently")
            .await?;
        info!(topic = %name, "altered topic configs");
        Ok(revision)
    }

    /// Replaces the dynamic configs of broker `target` (an id or `default`) with what
    /// `change` makes of the current ones. Only cluster-wide log defaults are dynamic.
    pub async fn alter_broker_configs(
        &self,
        target: &str,
        change: &ConfigChange<'_>,
        validate_only: bool,
    ) -> Result<Revision, AdminError> {
        let epoch = self.epoch_or_refuse()?;
        if target != CLUSTER_DEFAULT && target.parse::<i32>().is_err() {
            return Err(AdminError::InvalidRequest(format!(
                "{target:?} is neither a broker id nor the default"
            )));
        }
        let image = self.cache.image();
        let current = image.broker_configs.get(target);
        let empty = BTreeMap::new();
        let configs = change(current.map_or(&empty, |c| &c.value))?;
        for (key, value) in &configs {
            let Some(def) = broker_key(key) else {
                return Err(AdminError::InvalidConfig(format!(
                    "unknown broker configuration {key}"
                )));
            };
            if !is_dynamic(key) {
                return Err(AdminError::InvalidRequest(format!(
                    "{key} cannot be changed at runtime; set it in the broker's configuration"
                )));
            }
            check_value(def.kind, value)
                .map_err(|reason| AdminError::InvalidConfig(format!("{key}: {reason}")))?;
        }
        if validate_only {
            return Ok(image.revision);
        }
        let key = self.keys.broker_config(target);
        let guard = match current {
            Some(c) => Compare::mod_revision(key.clone(), c.mod_revision),
            None => Compare::absent(key.clone()),
        };
        let op = if configs.is_empty() {
            Op::Delete { key: key.clone() }
        } else {
            Op::put(
                key.clone(),
                encode("broker configs", &key, &configs)
                    .map_err(|e| AdminError::Unavailable(e.to_string()))?,
            )
        };
        let (ok, revision) = self
            .commit(epoch, vec![(Some(guard), op)])
            .await
            .map_err(admin_unavailable)?;
        if !ok {
            return Err(AdminError::Unavailable(
                "broker configs changed concurrently; retry".into(),
            ));
        }
        info!(broker = target, "altered dynamic broker configs");
        Ok(revision)
    }

    /// Writes partition records first and the topic record last (guarded by its
    /// absence), so readers see a topic only once all its partitions exist.
    async fn write_topic(
        &self,
        epoch: i64,
        name: &str,
        record: &TopicRecord,
        partitions: Vec<PartitionRecord>,
    ) -> Result<Revision, AdminError> {
        let unavailable = |e: Error| match e {
            Error::ControllerFenced { .. } => AdminError::NotController,
            other => AdminError::Unavailable(other.to_string()),
        };
        let mut guarded = Vec::with_capacity(partitions.len());
        for (index, partition) in partitions.iter().enumerate() {
            let key = self.keys.partition(name, index as i32);
            let value = encode("partition", &key, partition).map_err(unavailable)?;
            guarded.push((None, Op::put(key, value)));
        }
        self.commit(epoch, guarded).await.map_err(unavailable)?;
        let key = self.keys.topic(name);
        let value = encode("topic", &key, record).map_err(unavailable)?;
        let (ok, revision) = self
            .commit(
                epoch,
                vec![(Some(Compare::absent(key.clone())), Op::put(key, value))],
            )
            .await
            .map_err(unavailable)?;
        if !ok {
            return Err(AdminError::TopicAlreadyExists(format!(
                "topic {name} already exists"
            )));
        }
        Ok(revision)
    }
}
