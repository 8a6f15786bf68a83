//! Leader election through a `coordination.k8s.io` Lease, as client-go's leaderelection
//! does it (kube-rs has none): one replica reconciles, the other waits to take over.
//! Takeover and renewal are optimistic writes on the Lease's resourceVersion.
//!
//! A lease does not fence: a paused leader may act after its lease expired. Safety stays
//! with the clusters (the controller's epochs, compare-and-set in etcd); the operator
//! only asks them to do things, and every roll step re-reads what it acts on.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use kube::Client;
use tracing::{info, warn};

#[derive(Debug, Clone)]
pub struct Election {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    /// How long a lease holds without renewal.
    pub duration: Duration,
    /// How often the holder renews (well inside `duration`).
    pub renew_every: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("failed to read or write Lease {0}: {1}")]
    Api(String, #[source] kube::Error),
    #[error("lost Lease {lease} to {holder}")]
    Lost { lease: String, holder: String },
    #[error("could not renew Lease {0} before its renew deadline")]
    Expired(String),
    #[error("a request on Lease {0} timed out")]
    TimedOut(String),
}

/// Whether `lease` is free for `identity` at `now`: no holder, held by us already, or
/// not renewed within its duration.
pub fn is_free(lease: &LeaseSpec, identity: &str, now: Timestamp) -> bool {
    let holder = lease.holder_identity.as_deref().unwrap_or("");
    if holder.is_empty() || holder == identity {
        return true;
    }
    let seconds = i64::from(lease.lease_duration_seconds.unwrap_or(15));
    match &lease.renew_time {
        Some(MicroTime(renewed)) => *renewed + SignedDuration::from_secs(seconds) < now,
        None => true,
    }
}

impl Election {
    fn api(&self, client: &Client) -> Api<Lease> {
        Api::namespaced(client.clone(), &self.namespace)
    }

    fn spec(&self, previous: Option<&LeaseSpec>, now: Timestamp) -> LeaseSpec {
        let ours =
            previous.and_then(|p| p.holder_identity.as_deref()) == Some(self.identity.as_str());
        let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.duration.as_secs() as i32),
            acquire_time: if ours {
                previous.and_then(|p| p.acquire_time.clone())
            } else {
                Some(MicroTime(now))
            },
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(if ours || previous.is_none() {
                transitions
            } else {
                transitions + 1
            }),
            ..LeaseSpec::default()
        }
    }

    /// One attempt to take or renew the lease, bounded by `renew_every` (a hung request
    /// must not keep a leader acting past its lease); Ok(false) when someone else holds it.
    async fn try_acquire(&self, client: &Client) -> Result<bool, LeaseError> {
        match tokio::time::timeout(self.renew_every, self.try_acquire_once(client)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(LeaseError::TimedOut(self.name.clone())),
        }
    }

    async fn try_acquire_once(&self, client: &Client) -> Result<bool, LeaseError> {
        let api = self.api(client);
        let now = Timestamp::now();
        let fail = |e| LeaseError::Api(self.name.clone(), e);
        match api.get_opt(&self.name).await.map_err(fail)? {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        namespace: Some(self.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(self.spec(None, now)),
                };
                match api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
                    Err(e) => Err(fail(e)),
                }
            }
            Some(mut lease) => {
                let current = lease.spec.clone().unwrap_or_default();
                if !is_free(&current, &self.identity, now) {
                    return Ok(false);
                }
                lease.spec = Some(self.spec(Some(&current), now));
                // resourceVersion is kept: a concurrent writer makes this a 409.
                match api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
                {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
                    Err(e) => Err(fail(e)),
                }
            }
        }
    }

    /// Waits until this replica holds the lease.
    pub async fn acquire(&self, client: &Client) {
        let mut waiting_logged = false;
        loop {
            match self.try_acquire(client).await {
                Ok(true) => {
                    info!(lease = %self.name, identity = %self.identity, "leader lease acquired");
                    return;
                }
                Ok(false) if !waiting_logged => {
                    info!(lease = %self.name, "another replica leads; standing by");
                    waiting_logged = true;
                }
                Ok(false) => {}
                Err(err) => warn!(error = %err, "leader election attempt failed"),
            }
            tokio::time::sleep(self.renew_every).await;
        }
    }

    /// Renews the lease until it is lost or cannot be renewed within its duration.
    pub async fn hold(&self, client: &Client) -> LeaseError {
        let mut last_renewed = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.renew_every).await;
            match self.try_acquire(client).await {
                Ok(true) => last_renewed = tokio::time::Instant::now(),
                Ok(false) => {
                    let holder = self
                        .api(client)
                        .get_opt(&self.name)
                        .await
                        .ok()
                        .flatten()
                        .and_then(|l| l.spec.and_then(|s| s.holder_identity))
                        .unwrap_or_default();
                    return LeaseError::Lost {
                        lease: self.name.clone(),
                        holder,
                    };
                }
                Err(err) => {
                    warn!(error = %err, "leader lease renewal failed");
                    // Give up one renewal period before the lease can expire, so this
                    // replica stops acting before another may take over.
                    if last_renewed.elapsed() + self.renew_every >= self.duration {
                        return LeaseError::Expired(self.name.clone());
                    }
                }
            }
        }
    }

    /// Gives the lease up (on shutdown) so the standby takes over at once.
    pub async fn release(&self, client: &Client) {
        let api = self.api(client);
        let Ok(Some(mut lease)) = api.get_opt(&self.name).await else {
            return;
        };
        let Some(spec) = lease.spec.as_mut() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        if let Err(err) = api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            warn!(error = %err, "failed to release the leader lease");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str, renewed: i64, duration: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.to_string()),
            renew_time: Some(MicroTime(Timestamp::from_second(renewed).unwrap())),
            lease_duration_seconds: Some(duration),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_lease_is_free_when_unheld_ours_or_expired() {
        let now = Timestamp::from_second(1000).unwrap();
        assert!(is_free(&LeaseSpec::default(), "a", now));
        assert!(is_free(&lease("a", 999, 15), "a", now));
        assert!(!is_free(&lease("b", 990, 15), "a", now));
        assert!(is_free(&lease("b", 980, 15), "a", now));
    }

    #[test]
    fn taking_over_counts_a_transition_and_renewing_keeps_the_acquire_time() {
        let election = Election {
            name: "runnel-operator".to_string(),
            namespace: "ops".to_string(),
            identity: "a".to_string(),
            duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(5),
        };
        let now = Timestamp::from_second(1000).unwrap();
        let mut theirs = lease("b", 900, 15);
        theirs.lease_transitions = Some(2);
        let taken = election.spec(Some(&theirs), now);
        assert_eq!(taken.lease_transitions, Some(3));
        assert_eq!(taken.acquire_time, Some(MicroTime(now)));
        let later = Timestamp::from_second(1005).unwrap();
        let renewed = election.spec(Some(&taken), later);
        assert_eq!(renewed.lease_transitions, Some(3));
        assert_eq!(renewed.acquire_time, Some(MicroTime(now)));
        assert_eq!(renewed.renew_time, Some(MicroTime(later)));
    }
}
