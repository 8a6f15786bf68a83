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
        return Err(Error::Startup {
            reason: format!(
                "broker id {} is already registered by a live broker (key {key})",
                registration.id
            ),
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
