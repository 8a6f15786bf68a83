//! What the controller does for admin requests: create and delete topics, add
//! partitions, change topic and broker configs, each one fenced transaction.

use super::*;

/// The ISR of a new partition: every live replica, as this incarnation (their logs are
/// all empty, so all are in sync). The leader's high watermark counts a follower only
/// once it has fetched, so acks=all never outruns a member that has not.
fn initial_isr(replicas: &[i32], live: &BTreeMap<i32, i64>) -> Vec<IsrMember> {
    replicas
        .iter()
        .filter_map(|broker| {
            live.get(broker).map(|epoch| IsrMember {
                broker: *broker,
                broker_epoch: *epoch,
            })
        })
        .collect()
}

impl Controller {
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
        let image = match self.current_image().await {
            Ok(image) => image,
            Err(err) => {
                return (
                    specs
                        .into_iter()
                        .map(|s| (s.name, Err(err.clone())))
                        .collect(),
                    0,
                )
            }
        };
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
        self.check_internal_keys(Some(&spec.name), spec.configs.keys())?;
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
            assignment::assign(&live_racks(image), partitions, rf as usize, &spec.name)
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
                isr: initial_isr(&replicas, live),
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
        let image = match self.current_image().await {
            Ok(image) => image,
            Err(err) => {
                return (
                    names.into_iter().map(|n| (n, Err(err.clone()))).collect(),
                    0,
                )
            }
        };
        let mut revision = image.revision;
        let mut outcomes = Vec::with_capacity(names.len());
        for name in names {
            let outcome = async {
                let epoch = self.epoch_or_refuse()?;
                let (_, mod_revision) = self.topic_of(&image, &name)?;
                let topic_key = self.keys.topic(&name);
                let mut guards = self.fences(epoch);
                guards.push(Compare::mod_revision(topic_key.clone(), mod_revision));
                let txn = Txn::when(guards).and_then(vec![
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
                self.saw_revision(response.revision);
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
        let image = self.current_image().await?;
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
                let mut plan = assignment::assign(&live_racks(&image), count, rf, name);
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
                isr: initial_isr(&replicas, &live),
                replicas,
                partition_epoch: 0,
            };
            let key = self.keys.partition(name, index);
            let value = encode("partition", &key, &partition)
                .map_err(|e| AdminError::Unavailable(e.to_string()))?;
            guarded.push((Some(Compare::absent(key.clone())), Op::put(key, value)));
        }
        let (created, _) = self
            .commit(epoch, guarded)
            .await
            .map_err(admin_unavailable)?;
        if !created {
            // Another request added partitions first: the topic record must not claim
            // a count whose partition records are someone else's.
            return Err(AdminError::Unavailable(format!(
                "partitions of topic {name} were added concurrently; retry"
            )));
        }
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

    /// Changes a topic's or a broker's dynamic configs.
    pub async fn alter_configs(
        &self,
        resource: &ConfigResource,
        change: &ConfigChange,
        validate_only: bool,
    ) -> Result<Revision, AdminError> {
        match resource {
            ConfigResource::Topic(name) => {
                self.alter_topic_configs(name, change, validate_only).await
            }
            ConfigResource::Broker(target) => {
                self.alter_broker_configs(target, change, validate_only)
                    .await
            }
        }
    }

    /// Replaces a topic's overrides with what `change` makes of the current ones.
    pub async fn alter_topic_configs(
        &self,
        name: &str,
        change: &ConfigChange,
        validate_only: bool,
    ) -> Result<Revision, AdminError> {
        let epoch = self.epoch_or_refuse()?;
        let image = self.current_image().await?;
        let (mut record, mod_revision) = self.topic_of(&image, name)?;
        let view = image.broker_view(&self.config);
        let configs = change.apply(
            &record.configs,
            |key| topic_key(key).is_some_and(|k| k.kind == Kind::List),
            |key, overrides| {
                topic::effective(key, overrides, &view)
                    .map(|(v, _)| split_list(&v))
                    .unwrap_or_default()
            },
        )?;
        validate_overrides(&configs)
            .map_err(|(key, reason)| AdminError::InvalidConfig(format!("{key}: {reason}")))?;
        self.check_internal_keys(
            Some(name),
            configs
                .iter()
                .filter(|(k, v)| record.configs.get(*k) != Some(*v))
                .map(|(k, _)| k),
        )?;
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
        change: &ConfigChange,
        validate_only: bool,
    ) -> Result<Revision, AdminError> {
        let epoch = self.epoch_or_refuse()?;
        if target != CLUSTER_DEFAULT && target.parse::<i32>().is_err() {
            return Err(AdminError::InvalidRequest(format!(
                "{target:?} is neither a broker id nor the default"
            )));
        }
        let image = self.current_image().await?;
        let current = image.broker_configs.get(target);
        let empty = BTreeMap::new();
        let view = image.broker_view(&self.config);
        let configs = change.apply(
            current.map_or(&empty, |c| &c.value),
            |key| broker_key(key).is_some_and(|k| k.kind == Kind::List),
            |key, _| {
                view.value(key)
                    .map(|(v, _)| split_list(&v))
                    .unwrap_or_default()
            },
        )?;
        self.check_internal_keys(
            None,
            configs
                .iter()
                .filter(|(k, v)| current.and_then(|c| c.value.get(*k)) != Some(*v))
                .map(|(k, _)| k),
        )?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_partition_has_every_live_replica_in_sync_in_replica_order() {
        let live: BTreeMap<i32, i64> = [(0, 10), (1, 11), (2, 12)].into();
        let member = |broker, broker_epoch| IsrMember {
            broker,
            broker_epoch,
        };
        assert_eq!(
            initial_isr(&[1, 2, 0], &live),
            vec![member(1, 11), member(2, 12), member(0, 10)]
        );
        // A replica that is not registered is not in sync.
        assert_eq!(initial_isr(&[5, 1], &live), vec![member(1, 11)]);
        assert_eq!(initial_isr(&[], &live), vec![]);
    }
}
