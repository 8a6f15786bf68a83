//! The broker's view of cluster metadata: an immutable image rebuilt from a range read
//! and then kept current by a watch, published with the revision it reflects.
//!
//! Before an image is published, the listener (the replica manager) applies it, so
//! "the cache has reached revision R" also means "this broker's partitions reflect R".
//! Admin handlers wait for the revision of their write before answering
//! (read-your-writes), so a client that created a topic can produce to it at once.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;
use tracing::{info, warn};
use uuid::Uuid;

use super::schema::{
    decode, BrokerRegistration, Endpoint, KeyKind, Keys, PartitionRecord, TopicRecord,
};
use super::store::{KeyValue, MetadataStore, Revision, WatchEvent};
use crate::config::layers::{BrokerView, CLUSTER_DEFAULT};
use crate::config::Config;
use crate::error::{Error, Result};

/// A registered broker and its epoch (its registration's create revision).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveBroker {
    pub registration: BrokerRegistration,
    pub epoch: i64,
}

impl LiveBroker {
    /// The endpoint a client that came in on `listener` should dial: the broker's
    /// endpoint of that name, else its first.
    pub fn endpoint(&self, listener: &str) -> Option<&Endpoint> {
        let endpoints = &self.registration.endpoints;
        endpoints
            .iter()
            .find(|e| e.name == listener)
            .or_else(|| endpoints.first())
    }
}

/// A stored record with the revision it was last written at (for compare-and-set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    pub value: T,
    pub mod_revision: Revision,
}

/// The metadata as of one revision.
#[derive(Debug, Clone, Default)]
pub struct MetadataImage {
    pub revision: Revision,
    pub cluster_id: Option<String>,
    /// (broker id, controller epoch).
    pub controller: Option<(i32, i64)>,
    pub brokers: BTreeMap<i32, LiveBroker>,
    pub topics: BTreeMap<String, Versioned<TopicRecord>>,
    pub topic_names: HashMap<Uuid, String>,
    pub partitions: BTreeMap<String, BTreeMap<i32, Versioned<PartitionRecord>>>,
    /// Dynamic broker configs by broker id or `default`.
    pub broker_configs: BTreeMap<String, Versioned<BTreeMap<String, String>>>,
}

impl MetadataImage {
    /// Whether a partition has no leader to serve it: none named, or one without a live
    /// registration.
    pub fn is_offline(&self, partition: &PartitionRecord) -> bool {
        partition.leader < 0 || !self.brokers.contains_key(&partition.leader)
    }

    pub fn topic(&self, name: &str) -> Option<&TopicRecord> {
        self.topics.get(name).map(|t| &t.value)
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<(&str, &TopicRecord)> {
        let name = self.topic_names.get(&id)?;
        self.topic(name).map(|t| (name.as_str(), t))
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionRecord> {
        self.partitions
            .get(topic)
            .and_then(|ps| ps.get(&partition))
            .map(|p| &p.value)
    }

    /// The partitions of a topic that has a topic record (partition records written
    /// ahead of their topic record are not visible).
    pub fn topic_partitions(&self, topic: &str) -> impl Iterator<Item = (i32, &PartitionRecord)> {
        let visible = self.topics.contains_key(topic);
        self.partitions
            .get(topic)
            .into_iter()
            .filter(move |_| visible)
            .flat_map(|ps| ps.iter().map(|(p, r)| (*p, &r.value)))
    }

    /// The configuration of broker `config.broker_id` with the dynamic layers of this image.
    pub fn broker_view<'a>(&'a self, config: &'a Config) -> BrokerView<'a> {
        BrokerView {
            config,
            per_broker: self
                .broker_configs
                .get(&config.broker_id.to_string())
                .map(|v| &v.value),
            cluster: self.broker_configs.get(CLUSTER_DEFAULT).map(|v| &v.value),
        }
    }

    fn apply(&mut self, keys: &Keys, event: &WatchEvent) {
        let (kv, deleted) = match event {
            WatchEvent::Put(kv) => (kv, false),
            WatchEvent::Delete(kv) => (kv, true),
        };
        if let Err(err) = self.apply_kv(keys, kv, deleted) {
            warn!(key = %kv.key, error = %err, "ignoring a metadata record that does not decode");
        }
    }

    fn apply_kv(&mut self, keys: &Keys, kv: &KeyValue, deleted: bool) -> Result<()> {
        let Some(kind) = keys.parse(&kv.key) else {
            return Ok(());
        };
        match kind {
            KeyKind::ClusterId => {
                self.cluster_id =
                    (!deleted).then(|| String::from_utf8_lossy(&kv.value).into_owned());
            }
            KeyKind::Controller => {
                self.controller = if deleted {
                    None
                } else {
                    let id: i32 = decode("controller", &kv.key, &kv.value)?;
                    Some((id, kv.create_revision))
                };
            }
            KeyKind::Broker(id) => {
                if deleted {
                    self.brokers.remove(&id);
                } else {
                    let registration = decode("broker registration", &kv.key, &kv.value)?;
                    self.brokers.insert(
                        id,
                        LiveBroker {
                            registration,
                            epoch: kv.create_revision,
                        },
                    );
                }
            }
            KeyKind::Topic(name) => {
                if let Some(old) = self.topics.remove(&name) {
                    self.topic_names.remove(&old.value.id);
                }
                if !deleted {
                    let record: TopicRecord = decode("topic", &kv.key, &kv.value)?;
                    self.topic_names.insert(record.id, name.clone());
                    self.topics.insert(
                        name,
                        Versioned {
                            value: record,
                            mod_revision: kv.mod_revision,
                        },
                    );
                }
            }
            KeyKind::BrokerConfig(name) => {
                if deleted {
                    self.broker_configs.remove(&name);
                } else {
                    let value = decode("broker configs", &kv.key, &kv.value)?;
                    self.broker_configs.insert(
                        name,
                        Versioned {
                            value,
                            mod_revision: kv.mod_revision,
                        },
                    );
                }
            }
            KeyKind::Partition(topic, partition) => {
                if deleted {
                    if let Some(ps) = self.partitions.get_mut(&topic) {
                        ps.remove(&partition);
                        if ps.is_empty() {
                            self.partitions.remove(&topic);
                        }
                    }
                } else {
                    let record = decode("partition", &kv.key, &kv.value)?;
                    self.partitions.entry(topic).or_default().insert(
                        partition,
                        Versioned {
                            value: record,
                            mod_revision: kv.mod_revision,
                        },
                    );
                }
            }
        }
        Ok(())
    }
}

/// Applies a new image before it is published (the replica manager).
#[async_trait]
pub trait ImageListener: Send + Sync {
    async fn on_image(&self, old: &MetadataImage, new: &Arc<MetadataImage>);
}

/// The metadata as this broker knows it, twice: the raw image, published as soon as it is
/// read from the store (what the controller works from: it must not wait for this
/// broker's disks), and the applied image, published once the replica manager has acted
/// on it (opened, created or deleted logs; what the handlers answer from, so a client
/// that sees a partition here can use it).
#[derive(Debug)]
pub struct MetadataCache {
    image: RwLock<Arc<MetadataImage>>,
    applied: watch::Sender<Revision>,
    raw: RwLock<Arc<MetadataImage>>,
    loaded: watch::Sender<Revision>,
}

impl Default for MetadataCache {
    fn default() -> Self {
        MetadataCache {
            image: RwLock::new(Arc::new(MetadataImage::default())),
            applied: watch::channel(0).0,
            raw: RwLock::new(Arc::new(MetadataImage::default())),
            loaded: watch::channel(0).0,
        }
    }
}

impl MetadataCache {
    /// The applied image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The raw image: the store's state, whether or not this broker has applied it yet.
    pub fn raw_image(&self) -> Arc<MetadataImage> {
        self.raw.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn publish_raw(&self, image: Arc<MetadataImage>) {
        let revision = image.revision;
        *self.raw.write().unwrap_or_else(|e| e.into_inner()) = image;
        self.loaded.send_replace(revision);
    }

    fn publish(&self, image: Arc<MetadataImage>) {
        let revision = image.revision;
        *self.image.write().unwrap_or_else(|e| e.into_inner()) = image;
        self.applied.send_replace(revision);
    }

    /// Waits until the raw image reflects `revision`; false on timeout.
    pub async fn wait_for_raw(&self, revision: Revision, timeout: Duration) -> bool {
        let mut rx = self.loaded.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|r| *r >= revision))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// A receiver that changes whenever a new raw image is published.
    pub fn subscribe_raw(&self) -> watch::Receiver<Revision> {
        self.loaded.subscribe()
    }

    /// Waits until the cache reflects `revision`; false on timeout.
    pub async fn wait_for(&self, revision: Revision, timeout: Duration) -> bool {
        let mut rx = self.applied.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|r| *r >= revision))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// A receiver that changes whenever a new image is published.
    pub fn subscribe(&self) -> watch::Receiver<Revision> {
        self.applied.subscribe()
    }
}

/// Keeps `cache` current: range read, then watch from the next revision; a compacted or
/// broken watch starts over with a fresh read. Returns when the store closes.
pub async fn run_loader(
    store: Arc<dyn MetadataStore>,
    keys: Keys,
    cache: Arc<MetadataCache>,
    listener: Arc<dyn ImageListener>,
) {
    loop {
        match load_and_follow(&store, &keys, &cache, listener.as_ref()).await {
            Err(Error::StoreClosed) => return,
            Err(Error::WatchCompacted { .. }) => {
                info!("metadata watch fell behind; reloading");
            }
            Err(err) => {
                warn!(error = %err, "metadata watch failed; reloading");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok(()) => return,
        }
    }
}

async fn load_and_follow(
    store: &Arc<dyn MetadataStore>,
    keys: &Keys,
    cache: &MetadataCache,
    listener: &dyn ImageListener,
) -> Result<()> {
    let range = store.range(keys.root()).await?;
    let mut image = MetadataImage {
        revision: range.revision,
        ..MetadataImage::default()
    };
    for kv in &range.kvs {
        image.apply(keys, &WatchEvent::Put(kv.clone()));
    }
    let image = Arc::new(image);
    cache.publish_raw(image.clone());
    let old = cache.image();
    listener.on_image(&old, &image).await;
    cache.publish(image);
    let mut watch = store.watch(keys.root(), range.revision + 1).await?;
    while let Some(batch) = watch.recv().await {
        let batch = batch?;
        // The raw image is the applied one plus whatever is still being applied: build
        // on it, so the two never diverge.
        let mut image = (*cache.raw_image()).clone();
        for event in &batch.events {
            image.apply(keys, event);
        }
        image.revision = batch.revision;
        let image = Arc::new(image);
        cache.publish_raw(image.clone());
        let old = cache.image();
        listener.on_image(&old, &image).await;
        cache.publish(image);
    }
    Err(Error::StoreClosed)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use tokio::sync::Semaphore;

    use super::*;
    use crate::fsio::sim::SimFs;
    use crate::fsio::FileSystem;
    use crate::metadata::embedded::EmbeddedStore;
    use crate::metadata::schema::encode;

    /// Applies images only when the test lets it, like a broker recovering a big log.
    struct SlowListener {
        permits: Semaphore,
    }

    #[async_trait]
    impl ImageListener for SlowListener {
        async fn on_image(&self, _old: &MetadataImage, _new: &Arc<MetadataImage>) {
            if let Ok(permit) = self.permits.acquire().await {
                permit.forget();
            }
        }
    }

    #[tokio::test]
    async fn the_raw_image_is_published_before_the_slow_apply_finishes() {
        let sim = SimFs::new();
        sim.create_dir_all(Path::new("/meta")).unwrap();
        let store = EmbeddedStore::open(Arc::new(sim), Path::new("/meta")).unwrap();
        let store: Arc<dyn MetadataStore> = store;
        let keys = Keys::new("/runnel/");
        let cache = Arc::new(MetadataCache::default());
        let listener = Arc::new(SlowListener {
            permits: Semaphore::new(1),
        });
        let loader = tokio::spawn(run_loader(
            store.clone(),
            keys.clone(),
            cache.clone(),
            listener.clone(),
        ));
        // The first (empty) image is applied with the one permit.
        while listener.permits.available_permits() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let record = TopicRecord {
            id: crate::ids::new_id(),
            partitions: 1,
            replication_factor: 1,
            configs: BTreeMap::new(),
        };
        let revision = store
            .put(
                &keys.topic("t"),
                encode("topic", &keys.topic("t"), &record).unwrap(),
                None,
            )
            .await
            .unwrap();
        assert!(cache.wait_for_raw(revision, Duration::from_secs(5)).await);
        assert!(cache.raw_image().topic("t").is_some());
        assert!(
            !cache.wait_for(revision, Duration::from_millis(200)).await,
            "not applied while the listener is stuck"
        );
        assert!(cache.image().topic("t").is_none());
        listener.permits.add_permits(1);
        assert!(cache.wait_for(revision, Duration::from_secs(5)).await);
        assert!(cache.image().topic("t").is_some());
        store.close();
        let _ = loader.await;
    }
}
