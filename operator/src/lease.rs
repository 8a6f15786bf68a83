//! Leader election through a `coordination.k8s.io` Lease, as client-go's leaderelection
//! does it (kube-rs has none): one replica reconciles, the other waits to take over.
//! Takeover and renewal are optimistic writes on the Lease's resourceVersion.
//!
//! Expiry is judged as client-go judges it: by how long this process has seen the
//! holder's record unchanged, on its own monotonic clock, never by comparing the holder's
//! `renewTime` with the local wall clock (two nodes' clocks a few seconds apart would
//! otherwise let a standby take over from a leader that renews on time).
//!
//! A lease does not fence: a paused leader may act after its lease expired. Safety stays
//! with the clusters (the controller's epochs, compare-and-set in etcd); the operator
//! only asks them to do things, and every roll step re-reads what it acts on.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
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
    /// The holder's record as last read, and since when (this process's clock) it has
    /// not changed.
    observed: Arc<Mutex<Option<Observation>>>,
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

/// What identifies one renewal of a lease: any write changes one of these.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    holder: String,
    renew_time: Option<MicroTime>,
    transitions: Option<i32>,
    duration_seconds: i32,
}

impl Record {
    fn of(lease: &LeaseSpec) -> Record {
        Record {
            holder: lease.holder_identity.clone().unwrap_or_default(),
            renew_time: lease.renew_time.clone(),
            transitions: lease.lease_transitions,
            duration_seconds: lease.lease_duration_seconds.unwrap_or(15),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    record: Record,
    since: Instant,
}

/// The observation after reading `lease` at `now`: the same start time while the record
/// is unchanged, `now` when it changed (the holder renewed or someone took over).
pub fn observe(previous: Option<&Observation>, lease: &LeaseSpec, now: Instant) -> Observation {
    let record = Record::of(lease);
    match previous {
        Some(p) if p.record == record => p.clone(),
        _ => Observation { record, since: now },
    }
}

/// Whether the lease is free for `identity` at `now`: no holder, held by us already, or
/// its record unchanged for longer than its duration since this process first saw it.
/// A replica that just started therefore waits one full duration before taking over an
/// expired lease, as client-go's does; a released lease (no holder) is free at once.
pub fn is_free(observed: &Observation, identity: &str, now: Instant) -> bool {
    let holder = observed.record.holder.as_str();
    if holder.is_empty() || holder == identity {
        return true;
    }
    let duration =
        Duration::from_secs(u64::try_from(observed.record.duration_seconds).unwrap_or(15));
    now.saturating_duration_since(observed.since) > duration
}

impl Election {
    pub fn new(
        name: String,
        namespace: String,
        identity: String,
        duration: Duration,
        renew_every: Duration,
    ) -> Election {
        Election {
            name,
            namespace,
            identity,
            duration,
            renew_every,
            observed: Arc::new(Mutex::new(None)),
        }
    }

    /// Records what was read and says whether the lease may be taken.
    fn free_now(&self, lease: &LeaseSpec) -> bool {
        let now = Instant::now();
        let mut observed = self.observed.lock().unwrap_or_else(PoisonError::into_inner);
        let next = observe(observed.as_ref(), lease, now);
        let free = is_free(&next, &self.identity, now);
        *observed = Some(next);
        free
    }

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
                if !self.free_now(&current) {
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
    fn a_lease_is_free_when_unheld_ours_or_unchanged_for_its_duration() {
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        assert!(is_free(
            &observe(None, &LeaseSpec::default(), start),
            "a",
            start
        ));
        assert!(is_free(
            &observe(None, &lease("a", 999, 15), start),
            "a",
            start
        ));
        // The holder's renewTime is never compared with this clock: a record stamped
        // long ago (a skewed clock) is not expired when first seen.
        let first = observe(None, &lease("b", 10, 15), start);
        assert!(!is_free(&first, "a", at(15)));
        assert!(is_free(&first, "a", at(16)));
        // A renewal restarts the wait; an unchanged record keeps its start.
        let same = observe(Some(&first), &lease("b", 10, 15), at(10));
        assert_eq!(same.since, start);
        let renewed = observe(Some(&first), &lease("b", 15, 15), at(10));
        assert_eq!(renewed.since, at(10));
        assert!(!is_free(&renewed, "a", at(20)));
        assert!(is_free(&renewed, "a", at(26)));
    }

    #[test]
    fn taking_over_counts_a_transition_and_renewing_keeps_the_acquire_time() {
        let election = Election::new(
            "runnel-operator".to_string(),
            "ops".to_string(),
            "a".to_string(),
            Duration::from_secs(15),
            Duration::from_secs(5),
        );
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
