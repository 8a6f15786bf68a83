//! A real coordinator for unit tests: broker 0 over a simulated disk, an embedded
//! metadata store naming it the leader of `__consumer_offsets`-0, the replica manager
//! applying that metadata, and a controller that is never called.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::shard::{append, Shard, ShardState};
use super::{CoordinatorConfig, GroupCoordinator, OFFSETS_TOPIC};
use crate::controller::service::{ControllerService, TopicOutcomes};
use crate::controller::{AdminError, ConfigChange, ConfigResource, TopicSpec};
use crate::fsio::sim::SimFs;
use crate::fsio::FileSystem;
use crate::group::state::GroupLimits;
use crate::metadata::cache::{run_loader, MetadataCache};
use crate::metadata::embedded::EmbeddedStore;
use crate::metadata::schema::{encode, IsrMember, Keys, PartitionRecord, TopicRecord};
use crate::metadata::store::MetadataStore;
use crate::partition::manager::ReplicaManager;

/// This broker's epoch: the ISR names broker 0 in it, so the replica leads.
const BROKER_EPOCH: i64 = 7;

/// How long offsets are kept after they stop being used (small: the sweep tests age
/// records by writing old commit timestamps, not by waiting).
pub(super) const RETENTION_MS: i64 = 60_000;

/// A controller nobody should reach: the fixture creates its topics in the store.
#[derive(Debug)]
struct NoController;

#[async_trait]
impl ControllerService for NoController {
    async fn create_topics(
        &self,
        _specs: Vec<TopicSpec>,
        _validate_only: bool,
        _wait: Duration,
    ) -> (TopicOutcomes<TopicRecord>, bool) {
        (Vec::new(), false)
    }

    async fn delete_topics(
        &self,
        _names: Vec<String>,
        _wait: Duration,
    ) -> (TopicOutcomes<()>, bool) {
        (Vec::new(), false)
    }

    async fn create_partitions(
        &self,
        _topic: &str,
        _count: i32,
        _assignments: Option<Vec<Vec<i32>>>,
        _validate_only: bool,
        _wait: Duration,
    ) -> Result<bool, AdminError> {
        Ok(false)
    }

    async fn alter_configs(
        &self,
        _resource: &ConfigResource,
        _change: &ConfigChange,
        _validate_only: bool,
        _wait: Duration,
    ) -> Result<bool, AdminError> {
        Ok(false)
    }
}

pub(super) struct Fixture {
    pub(super) coordinator: Arc<GroupCoordinator>,
    pub(super) replicas: Arc<ReplicaManager>,
    store: Arc<dyn MetadataStore>,
    loader: tokio::task::JoinHandle<()>,
}

fn config() -> CoordinatorConfig {
    CoordinatorConfig {
        limits: GroupLimits {
            min_session_timeout_ms: 100,
            max_session_timeout_ms: 300_000,
            initial_rebalance_delay_ms: 0,
            max_size: 10,
            max_protocol_metadata_bytes: 1 << 20,
        },
        offsets_partitions: 1,
        offsets_replication_factor: 1,
        offsets_segment_bytes: 1 << 20,
        offsets_max_message_bytes: 1 << 20,
        offsets_retention_ms: RETENTION_MS,
        offsets_retention_check: Duration::from_secs(600),
        offset_metadata_max_bytes: 100,
    }
}

async fn put_topic(store: &dyn MetadataStore, keys: &Keys, name: &str, configs: &[(&str, &str)]) {
    let record = TopicRecord {
        id: crate::ids::new_id(),
        partitions: 1,
        replication_factor: 1,
        configs: configs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    let key = keys.topic(name);
    store
        .put(&key, encode("topic", &key, &record).unwrap(), None)
        .await
        .unwrap();
    let partition = PartitionRecord {
        replicas: vec![0],
        leader: 0,
        leader_epoch: 0,
        isr: vec![IsrMember {
            broker: 0,
            broker_epoch: BROKER_EPOCH,
        }],
        partition_epoch: 0,
    };
    let key = keys.partition(name, 0);
    store
        .put(&key, encode("partition", &key, &partition).unwrap(), None)
        .await
        .unwrap();
}

impl Fixture {
    /// A coordinator whose broker leads `__consumer_offsets`-0 (when `with_offsets_topic`)
    /// and `t`-0, with no shard yet: nothing has reconciled.
    pub(super) async fn start(with_offsets_topic: bool) -> Fixture {
        let sim = SimFs::new();
        sim.create_dir_all(Path::new("/meta")).unwrap();
        let fs: Arc<dyn FileSystem> = Arc::new(sim.clone());
        let replicas = Arc::new(crate::partition::manager::tests::manager(&sim));
        replicas.set_broker_epoch(BROKER_EPOCH);

        let store: Arc<dyn MetadataStore> = EmbeddedStore::open(fs, Path::new("/meta")).unwrap();
        let keys = Keys::new("/runnel/");
        if with_offsets_topic {
            put_topic(
                store.as_ref(),
                &keys,
                OFFSETS_TOPIC,
                &[("cleanup.policy", "compact")],
            )
            .await;
        }
        put_topic(store.as_ref(), &keys, "t", &[]).await;
        let cache = Arc::new(MetadataCache::default());
        let loader = tokio::spawn(run_loader(
            store.clone(),
            keys,
            cache.clone(),
            replicas.clone(),
        ));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while cache.image().topic("t").is_none() || replicas.get("t", 0).is_none() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the metadata never applied"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let coordinator = Arc::new(GroupCoordinator::new(
            config(),
            replicas.clone(),
            cache,
            Arc::new(NoController),
        ));
        Fixture {
            coordinator,
            replicas,
            store,
            loader,
        }
    }

    /// A shard over `__consumer_offsets`-0, registered with the coordinator but not
    /// loaded (as `reconcile` leaves it until the replay finishes).
    pub(super) fn unloaded_shard(&self) -> Arc<Shard> {
        let partition = self.replicas.get(OFFSETS_TOPIC, 0).unwrap();
        let leader_epoch = partition.state().leader_epoch;
        let shard = Arc::new(Shard {
            partition,
            leader_epoch,
            state: Mutex::new(ShardState::default()),
        });
        self.coordinator
            .shards
            .write()
            .unwrap()
            .insert(0, shard.clone());
        shard
    }

    /// Appends records to the offsets partition and waits until they are acknowledged.
    pub(super) async fn write(&self, shard: &Shard, records: &[(Bytes, Option<Bytes>)]) {
        let write = append(shard, records).unwrap();
        write.wait().await.unwrap();
    }

    /// Replays the offsets partition into `shard`, as `reconcile`'s load task does.
    pub(super) async fn load(&self, shard: &Arc<Shard>) {
        let coordinator = self.coordinator.clone();
        let shard = shard.clone();
        tokio::task::spawn_blocking(move || coordinator.load(0, &shard))
            .await
            .unwrap();
    }

    pub(super) fn stop(self) {
        self.store.close();
        self.loader.abort();
    }
}
