//! The etcd metadata store: [`MetadataStore`] over etcd v3's gRPC API (`etcd-client`),
//! for brokers that share one cluster's metadata.
//!
//! etcd's model is the trait's, so most calls map one to one. Where etcd needs care:
//! - every unary request is bounded by [`REQUEST_TIMEOUT`]: tonic's balanced channel
//!   waits (forever) for a reachable endpoint otherwise; a timed-out write may still
//!   have been applied, which the callers' compare-and-set already allows for;
//! - reads are paginated ([`range`]) under tonic's 4 MiB decode limit;
//! - transactions are checked against the op limit before they are sent;
//! - keep-alives run on keep-alive streams ([`lease`]), watches on watch streams that
//!   resume after a break ([`watch`]).
//!
//! Request latency and errors by operation, the keep-alive age and watch resumes and
//! reloads go to [`StoreMetrics`].

mod convert;
mod lease;
mod range;
mod watch;

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use etcd_client::{Client, ConnectOptions, PutOptions};
use tokio::sync::watch as signal;
use tracing::{debug, info};

use self::convert::{
    header_revision, is_compacted, is_lease_not_found, key_value, op_result, txn_lease,
};
use self::lease::{KeepAlives, Renewal};
use super::store::{
    KeyValue, LeaseId, MetadataStore, PageRequest, RangePage, Revision, Txn, TxnResponse,
    WatchStream,
};
use crate::error::{Error, Result};
use crate::metrics::store::StoreMetrics;

/// The longest a unary etcd request may take. etcd itself gives up on a proposal after
/// about 5 s plus two election timeouts; a little more covers a slow disk.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(7);
/// The longest a TCP connection to an endpoint may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// HTTP/2 pings on idle connections find a dead etcd even while only a watch is open.
/// NB: etcd answers pings more frequent than its `--grpc-keepalive-min-time` (5 s by
/// default) with GOAWAY, so the interval stays above it.
const HTTP2_PING_INTERVAL: Duration = Duration::from_secs(10);
const HTTP2_PING_TIMEOUT: Duration = Duration::from_secs(5);

/// The etcd store. Cheap to share: one gRPC channel (balanced over the endpoints) for
/// every request, watch and keep-alive.
pub struct EtcdStore {
    client: Client,
    endpoints: Vec<String>,
    metrics: StoreMetrics,
    keep_alives: KeepAlives,
    closed: AtomicBool,
    /// Becomes true on close, ending every watch.
    shutdown: signal::Sender<bool>,
}

impl fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.endpoints)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// A store over `endpoints` (`http://host:port`, or `host:port`). Connections open
    /// lazily: an unreachable etcd shows as the first request's error, not here.
    pub async fn connect(endpoints: &[String], metrics: StoreMetrics) -> Result<Arc<EtcdStore>> {
        let options = ConnectOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_keep_alive(HTTP2_PING_INTERVAL, HTTP2_PING_TIMEOUT)
            .with_keep_alive_while_idle(true);
        let client = Client::connect(endpoints, Some(options))
            .await
            .map_err(|source| Error::ConnectEtcd {
                endpoints: endpoints.join(","),
                source,
            })?;
        info!(endpoints = %endpoints.join(","), "using etcd for metadata");
        Ok(Arc::new(EtcdStore {
            client,
            endpoints: endpoints.to_vec(),
            metrics,
            keep_alives: KeepAlives::default(),
            closed: AtomicBool::new(false),
            shutdown: signal::channel(false).0,
        }))
    }

    /// The store's metrics (shared with the broker's registry when it built the store).
    pub fn metrics(&self) -> &StoreMetrics {
        &self.metrics
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::StoreClosed);
        }
        Ok(())
    }

    /// Runs one request under the timeout and records its time and outcome.
    async fn call<T>(
        &self,
        operation: &'static str,
        request: impl Future<Output = std::result::Result<T, etcd_client::Error>>,
    ) -> Result<T> {
        self.check_open()?;
        let started = Instant::now();
        let (result, error) = match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
            Ok(Ok(value)) => (Ok(value), None),
            Ok(Err(source)) => {
                let label = convert::error_label(&source);
                (Err(Error::EtcdRequest { operation, source }), Some(label))
            }
            Err(_) => (
                Err(Error::EtcdTimeout {
                    operation,
                    after: REQUEST_TIMEOUT,
                }),
                Some("timeout"),
            ),
        };
        self.metrics.observe(operation, started.elapsed(), error);
        result
    }
}

/// `LeaseNotFound` for etcd's "requested lease not found", else the error as it was.
fn lease_gone(err: Error, lease: Option<LeaseId>) -> Error {
    match (&err, lease) {
        (Error::EtcdRequest { source, .. }, Some(lease)) if is_lease_not_found(source) => {
            Error::LeaseNotFound { lease }
        }
        _ => err,
    }
}

#[async_trait]
impl MetadataStore for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let mut kv = self.client.kv_client();
        let response = self.call("get", kv.get(key.as_bytes(), None)).await?;
        Ok(response.kvs().first().map(key_value))
    }

    async fn range_page(&self, page: &PageRequest) -> Result<RangePage> {
        range::read_page(self, page).await
    }

    async fn put(&self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<Revision> {
        let mut kv = self.client.kv_client();
        let options = lease.map(|l| PutOptions::new().with_lease(l));
        let response = self
            .call("put", kv.put(key.as_bytes(), value, options))
            .await
            .map_err(|e| lease_gone(e, lease))?;
        header_revision(response.header(), "put")
    }

    async fn delete(&self, key: &str) -> Result<(Revision, i64)> {
        let mut kv = self.client.kv_client();
        let response = self.call("delete", kv.delete(key.as_bytes(), None)).await?;
        Ok((
            header_revision(response.header(), "delete")?,
            response.deleted(),
        ))
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        txn.check_limits()?;
        let mut kv = self.client.kv_client();
        let response = self
            .call("txn", kv.txn(convert::txn(&txn)))
            .await
            .map_err(|e| lease_gone(e, txn_lease(&txn)))?;
        Ok(TxnResponse {
            succeeded: response.succeeded(),
            revision: header_revision(response.header(), "txn")?,
            results: response.op_responses().iter().map(op_result).collect(),
        })
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId> {
        // etcd counts whole seconds and raises a TTL below its minimum (1.5 election
        // timeouts, 2 s with default flags); keep-alives report the TTL it granted.
        let seconds = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        let seconds = seconds.max(1) as i64;
        let mut leases = self.client.lease_client();
        let response = self
            .call("lease_grant", leases.grant(seconds, None))
            .await?;
        if response.ttl() != seconds {
            debug!(
                lease = response.id(),
                asked = seconds,
                granted = response.ttl(),
                "etcd granted another lease TTL"
            );
        }
        self.metrics.lease_renewed(response.id());
        Ok(response.id())
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration> {
        let renewal = self
            .call(
                "lease_keep_alive",
                self.keep_alives.refresh(&self.client, lease),
            )
            .await;
        match renewal {
            Ok(Renewal::Alive(ttl)) => {
                self.metrics.lease_renewed(lease);
                Ok(ttl)
            }
            Ok(Renewal::Gone) => {
                self.metrics.lease_dropped(lease);
                self.keep_alives.forget(lease);
                Err(Error::LeaseNotFound { lease })
            }
            Err(err) => Err(err),
        }
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        let mut leases = self.client.lease_client();
        let revoked = self
            .call("lease_revoke", leases.revoke(lease))
            .await
            .map_err(|e| lease_gone(e, Some(lease)));
        self.keep_alives.forget(lease);
        self.metrics.lease_dropped(lease);
        revoked.map(|_| ())
    }

    async fn watch(&self, prefix: &str, from_revision: Revision) -> Result<WatchStream> {
        self.check_open()?;
        let started = Instant::now();
        let watch = watch::Watch {
            client: self.client.clone(),
            prefix: prefix.to_string(),
            metrics: self.metrics.clone(),
            shutdown: self.shutdown.subscribe(),
        };
        let opened = watch.start(from_revision).await;
        let error = match &opened {
            Ok(_) | Err(Error::WatchCompacted { .. }) => None,
            Err(Error::EtcdRequest { source, .. }) => Some(convert::error_label(source)),
            Err(Error::EtcdTimeout { .. }) => Some("timeout"),
            Err(_) => Some("client"),
        };
        self.metrics.observe("watch", started.elapsed(), error);
        opened
    }

    /// Compacting at or below the compacted revision is a no-op, as on the embedded store.
    async fn compact(&self, revision: Revision) -> Result<()> {
        let mut kv = self.client.kv_client();
        match self.call("compact", kv.compact(revision, None)).await {
            Ok(_) => Ok(()),
            Err(Error::EtcdRequest { source, .. }) if is_compacted(&source) => Ok(()),
            Err(err) => Err(err),
        }
    }

    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.shutdown.send_replace(true);
        self.keep_alives.clear();
    }
}
