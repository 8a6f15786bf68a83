//! Chooses the broker's metadata store from its configuration: etcd when `etcd.endpoints`
//! is set, else the embedded store in the metadata directory (a standalone broker).

use std::sync::Arc;

use super::embedded::EmbeddedStore;
use super::etcd::EtcdStore;
use super::store::MetadataStore;
use crate::config::Config;
use crate::error::Result;
use crate::fsio::FileSystem;
use crate::metrics::store::StoreMetrics;

/// Opens the store `config` names. `fs` is the embedded store's I/O seam; `metrics` is
/// where the etcd store records.
pub async fn open_store(
    config: &Config,
    fs: Arc<dyn FileSystem>,
    metrics: &StoreMetrics,
) -> Result<Arc<dyn MetadataStore>> {
    if config.etcd_endpoints.is_empty() {
        let store: Arc<dyn MetadataStore> = EmbeddedStore::open(fs, &config.metadata_store_dir())?;
        return Ok(store);
    }
    let store: Arc<dyn MetadataStore> =
        EtcdStore::connect(&config.etcd_endpoints, metrics.clone()).await?;
    Ok(store)
}
