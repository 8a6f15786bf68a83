//! The registration lease is kept alive on a thread and tokio runtime of its own and, on
//! etcd, over a connection of its own: a request runtime busy with blocking work (log
//! recovery, an fsync under `block_in_place`, a slow handler) must not delay keep-alives
//! past the TTL and cost the broker its registration. A connection made on the request
//! runtime would have its I/O driven there, so the keeper opens its own.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::watch;
use tracing::warn;

use super::registration::{keep_alive, Registered};
use crate::error::{Error, Result};
use crate::metadata::etcd::EtcdStore;
use crate::metadata::schema::{BrokerRegistration, Keys};
use crate::metadata::store::MetadataStore;
use crate::metrics::store::StoreMetrics;

/// What the keeper keeps alive and where.
#[derive(Debug)]
pub struct KeeperSpec {
    /// The broker's store; used as is unless `etcd_endpoints` asks for a connection of
    /// the keeper's own.
    pub store: Arc<dyn MetadataStore>,
    /// etcd endpoints to connect to from the keeper's runtime; empty: use `store`.
    pub etcd_endpoints: Vec<String>,
    pub store_metrics: StoreMetrics,
    pub keys: Keys,
    pub registration: BrokerRegistration,
    pub ttl: Duration,
}

/// The running keeper; stopping it lets the lease expire (as a crash would) unless the
/// broker revokes it.
#[derive(Debug)]
pub struct Keeper {
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl Keeper {
    /// Starts the keeper thread, which publishes every (re-)registration on `current`.
    pub fn spawn(spec: KeeperSpec, current: watch::Sender<Option<Registered>>) -> Result<Keeper> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("runnel-lease")
            .build()
            .map_err(|source| Error::Startup {
                reason: format!("failed to build the lease keeper's runtime: {source}"),
            })?;
        let (stop, mut stopped) = watch::channel(false);
        let thread = std::thread::Builder::new()
            .name("runnel-lease".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let (store, own) = keeper_store(&spec).await;
                    tokio::select! {
                        () = keep_alive(
                            store.clone(),
                            spec.keys,
                            spec.registration,
                            spec.ttl,
                            current,
                        ) => {}
                        _ = stopped.wait_for(|s| *s) => {}
                    }
                    if own {
                        store.close();
                    }
                });
            })
            .map_err(|source| Error::Startup {
                reason: format!("failed to start the lease keeper's thread: {source}"),
            })?;
        Ok(Keeper {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops keeping the lease alive (it expires after its TTL unless revoked).
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Stops and waits for the thread.
    pub fn join(mut self) {
        self.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// The keeper's connection to etcd, or the broker's store when there is no etcd to
/// connect to (embedded, or a store the caller passed in). Returns whether it is the
/// keeper's own (to close).
async fn keeper_store(spec: &KeeperSpec) -> (Arc<dyn MetadataStore>, bool) {
    if spec.etcd_endpoints.is_empty() {
        return (spec.store.clone(), false);
    }
    match EtcdStore::connect(&spec.etcd_endpoints, spec.store_metrics.clone()).await {
        Ok(store) => (store, true),
        Err(err) => {
            // The broker's own connection still works for keep-alives; only the
            // isolation from the request runtime is lost.
            warn!(error = %err, "the lease keeper could not open its own etcd connection; sharing the broker's");
            (spec.store.clone(), false)
        }
    }
}
