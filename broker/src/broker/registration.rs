//! Broker registration: `brokers/<id>` created only if absent, under a lease kept alive
//! on its own task. Its create revision is the broker epoch. If the lease is lost the
//! broker registers again, so with a new epoch, and everything keyed to the old epoch
//! (leadership, ISR membership, the controller role) is given up.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};

use crate::error::{Error, Result};
use crate::metadata::schema::{encode, BrokerRegistration, Keys};
use crate::metadata::store::{Compare, LeaseId, MetadataStore, Op, Txn};

/// The current registration: lease and broker epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registered {
    pub lease: LeaseId,
    pub epoch: i64,
}

/// Registers once. Fails if another live broker holds the id.
pub async fn register(
    store: &dyn MetadataStore,
    keys: &Keys,
    registration: &BrokerRegistration,
    ttl: Duration,
) -> Result<Registered> {
    let key = keys.broker(registration.id);
    let value = encode("broker registration", &key, registration)?;
    let lease = store.grant_lease(ttl).await?;
    let txn = Txn::when(vec![Compare::absent(key.clone())]).and_then(vec![Op::Put {
        key: key.clone(),
        value,
        lease: Some(lease),
    }]);
    let response = store.txn(txn).await?;
    if !response.succeeded {
        let _ = store.revoke_lease(lease).await;
        return Err(Error::BrokerIdTaken {
            id: registration.id,
        });
    }
    info!(
        broker = registration.id,
        epoch = response.revision,
        "registered"
    );
    Ok(Registered {
        lease,
        epoch: response.revision,
    })
}

/// Registers at start-up. A broker restarted after kill -9 finds its previous
/// registration alive until that lease's TTL runs out, so a taken id is retried for up to
/// twice the TTL before start-up fails: a pod restart must not crash-loop, and a second
/// live process with the same id must still be refused.
pub async fn register_at_start(
    store: &dyn MetadataStore,
    keys: &Keys,
    registration: &BrokerRegistration,
    ttl: Duration,
) -> Result<Registered> {
    let deadline = tokio::time::Instant::now() + ttl * 2;
    let mut waited = false;
    loop {
        match register(store, keys, registration, ttl).await {
            Err(Error::BrokerIdTaken { .. }) if tokio::time::Instant::now() < deadline => {
                if !waited {
                    warn!(
                        broker = registration.id,
                        ttl_ms = ttl.as_millis() as u64,
                        "broker id registered by a live lease (a previous run of this broker?); waiting for it to expire"
                    );
                    waited = true;
                }
                tokio::time::sleep(ttl / 4).await;
            }
            Err(Error::BrokerIdTaken { id }) => {
                return Err(Error::Startup {
                    reason: format!(
                        "broker id {id} is registered by another live broker: its lease did not expire within twice the lease TTL ({} ms). Stop the other process or give this broker another broker.id",
                        (ttl * 2).as_millis()
                    ),
                })
            }
            other => return other,
        }
    }
}

/// Marks this broker's registration as shutting down (controlled shutdown), under the
/// same lease and so with the same create revision (the broker epoch). `Ok(false)` when
/// the registration is no longer this incarnation's.
pub async fn announce_shutdown(
    store: &dyn MetadataStore,
    keys: &Keys,
    registration: &BrokerRegistration,
    registered: Registered,
) -> Result<bool> {
    let key = keys.broker(registration.id);
    let stopping = BrokerRegistration {
        shutting_down: true,
        ..registration.clone()
    };
    let value = encode("broker registration", &key, &stopping)?;
    let txn = Txn::when(vec![Compare::create_revision(
        key.clone(),
        registered.epoch,
    )])
    .and_then(vec![Op::Put {
        key,
        value,
        lease: Some(registered.lease),
    }]);
    Ok(store.txn(txn).await?.succeeded)
}

/// Keeps the lease alive; on loss, registers again and publishes the new registration.
pub async fn keep_alive(
    store: Arc<dyn MetadataStore>,
    keys: Keys,
    registration: BrokerRegistration,
    ttl: Duration,
    current: watch::Sender<Option<Registered>>,
) {
    let period = ttl / 3;
    loop {
        tokio::time::sleep(period).await;
        let Some(registered) = *current.borrow() else {
            return;
        };
        match store.keep_alive(registered.lease).await {
            Ok(_) => {}
            Err(Error::LeaseNotFound { .. }) => {
                warn!(
                    broker = registration.id,
                    "registration lease lost; registering again"
                );
                current.send_replace(None);
                loop {
                    match register(store.as_ref(), &keys, &registration, ttl).await {
                        Ok(again) => {
                            current.send_replace(Some(again));
                            break;
                        }
                        Err(Error::StoreClosed) => return,
                        Err(err) => {
                            warn!(error = %err, "failed to register again");
                            tokio::time::sleep(period).await;
                        }
                    }
                }
            }
            Err(Error::StoreClosed) => return,
            Err(err) => warn!(error = %err, "failed to keep the registration lease alive"),
        }
    }
}
