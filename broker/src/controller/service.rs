//! The controller as its callers (the Kafka handlers, the group coordinator, the gRPC
//! admin service) see it: admin operations done by the controller wherever it runs, and
//! answered once this broker's own metadata reflects them (read-your-writes).
//!
//! [`Controllers`] routes each call: to the controller in this process while it is
//! active, otherwise to the controller broker over gRPC ([`Forward`]), which answers with
//! the revision of its write; either way the caller then waits for its local cache.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{AdminError, ConfigChange, ConfigResource, Controller, TopicSpec};
use crate::metadata::cache::MetadataCache;
use crate::metadata::schema::TopicRecord;
use crate::metadata::store::Revision;

/// One outcome per named topic.
pub type TopicOutcomes<T> = Vec<(String, Result<T, AdminError>)>;

/// Admin operations, answered once this broker reflects them. `caught_up` is false when
/// the write happened but this broker did not see it within `wait`.
#[async_trait]
pub trait ControllerService: Send + Sync + fmt::Debug {
    async fn create_topics(
        &self,
        specs: Vec<TopicSpec>,
        validate_only: bool,
        wait: Duration,
    ) -> (TopicOutcomes<TopicRecord>, bool);

    async fn delete_topics(&self, names: Vec<String>, wait: Duration) -> (TopicOutcomes<()>, bool);

    async fn create_partitions(
        &self,
        topic: &str,
        count: i32,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
        wait: Duration,
    ) -> Result<bool, AdminError>;

    async fn alter_configs(
        &self,
        resource: &ConfigResource,
        change: &ConfigChange,
        validate_only: bool,
        wait: Duration,
    ) -> Result<bool, AdminError>;
}

/// The controller broker's side of a forwarded call: its outcomes and the revision of
/// its write. Implemented over gRPC (`rpc::forward`).
#[async_trait]
pub trait Forward: Send + Sync + fmt::Debug {
    async fn create_topics(
        &self,
        specs: Vec<TopicSpec>,
        validate_only: bool,
    ) -> Result<(TopicOutcomes<TopicRecord>, Revision), AdminError>;
    async fn delete_topics(
        &self,
        names: Vec<String>,
    ) -> Result<(TopicOutcomes<()>, Revision), AdminError>;
    async fn create_partitions(
        &self,
        topic: &str,
        count: i32,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    ) -> Result<Revision, AdminError>;
    async fn alter_configs(
        &self,
        resource: &ConfigResource,
        change: &ConfigChange,
        validate_only: bool,
    ) -> Result<Revision, AdminError>;
}

/// Routes admin calls to the local controller or forwards them.
#[derive(Debug)]
pub struct Controllers {
    local: Arc<Controller>,
    cache: Arc<MetadataCache>,
    forward: Option<Arc<dyn Forward>>,
    /// Calls forwarded to another broker, for `/metrics`.
    pub forwarded: AtomicU64,
}

impl Controllers {
    /// `forward` is `None` where no other broker can be the controller (standalone).
    pub fn new(
        local: Arc<Controller>,
        cache: Arc<MetadataCache>,
        forward: Option<Arc<dyn Forward>>,
    ) -> Controllers {
        Controllers {
            local,
            cache,
            forward,
            forwarded: AtomicU64::new(0),
        }
    }

    /// The forwarder, when the controller is not in this process.
    fn remote(&self) -> Option<&Arc<dyn Forward>> {
        if self.local.is_active() {
            return None;
        }
        let forward = self.forward.as_ref()?;
        self.forwarded.fetch_add(1, Ordering::Relaxed);
        Some(forward)
    }

    async fn caught_up(&self, revision: Revision, wait: Duration) -> bool {
        self.cache.wait_for(revision, wait).await
    }
}

fn all_failed<T>(names: Vec<String>, error: &AdminError) -> TopicOutcomes<T> {
    names.into_iter().map(|n| (n, Err(error.clone()))).collect()
}

#[async_trait]
impl ControllerService for Controllers {
    async fn create_topics(
        &self,
        specs: Vec<TopicSpec>,
        validate_only: bool,
        wait: Duration,
    ) -> (TopicOutcomes<TopicRecord>, bool) {
        let (outcomes, revision) = match self.remote() {
            None => self.local.create_topics(specs, validate_only).await,
            Some(forward) => {
                let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
                match forward.create_topics(specs, validate_only).await {
                    Ok(done) => done,
                    Err(err) => return (all_failed(names, &err), true),
                }
            }
        };
        let caught_up = validate_only || self.caught_up(revision, wait).await;
        (outcomes, caught_up)
    }

    async fn delete_topics(&self, names: Vec<String>, wait: Duration) -> (TopicOutcomes<()>, bool) {
        let (outcomes, revision) = match self.remote() {
            None => self.local.delete_topics(names).await,
            Some(forward) => match forward.delete_topics(names.clone()).await {
                Ok(done) => done,
                Err(err) => return (all_failed(names, &err), true),
            },
        };
        let caught_up = self.caught_up(revision, wait).await;
        (outcomes, caught_up)
    }

    async fn create_partitions(
        &self,
        topic: &str,
        count: i32,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
        wait: Duration,
    ) -> Result<bool, AdminError> {
        let revision = match self.remote() {
            None => {
                self.local
                    .create_partitions(topic, count, assignments, validate_only)
                    .await?
            }
            Some(forward) => {
                forward
                    .create_partitions(topic, count, assignments, validate_only)
                    .await?
            }
        };
        Ok(validate_only || self.caught_up(revision, wait).await)
    }

    async fn alter_configs(
        &self,
        resource: &ConfigResource,
        change: &ConfigChange,
        validate_only: bool,
        wait: Duration,
    ) -> Result<bool, AdminError> {
        let revision = match self.remote() {
            None => {
                self.local
                    .alter_configs(resource, change, validate_only)
                    .await?
            }
            Some(forward) => {
                forward
                    .alter_configs(resource, change, validate_only)
                    .await?
            }
        };
        Ok(validate_only || self.caught_up(revision, wait).await)
    }
}
