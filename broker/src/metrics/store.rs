//! Metrics of the etcd metadata store: request latency and errors by operation, the age
//! of the last successful lease keep-alive, and how watches came back after a break.
//!
//! The store records into a [`StoreMetrics`] it is handed; [`Metrics`](super::Metrics)
//! registers the same instance, so a store built without a broker (tests) records into
//! an unregistered one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationErrorLabels {
    pub operation: &'static str,
    /// A gRPC status name, `timeout` or `transport`: static, never error text.
    pub error: &'static str,
}

fn etcd_latency_histogram() -> Histogram {
    // 100 µs to ~26 s: a local etcd answers in a millisecond, a slow disk in seconds.
    Histogram::new(exponential_buckets(0.0001, 2.0, 19))
}

/// When each lease this store keeps alive was last granted or refreshed.
#[derive(Debug, Default, Clone)]
struct Renewals(Arc<Mutex<HashMap<i64, Instant>>>);

impl Renewals {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Instant>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn oldest_age(&self) -> Option<Duration> {
        let now = Instant::now();
        self.lock()
            .values()
            .map(|at| now.saturating_duration_since(*at))
            .max()
    }
}

/// The etcd store's metrics; clones share the same series.
#[derive(Debug, Clone)]
pub struct StoreMetrics {
    requests: Family<OperationLabels, Histogram, fn() -> Histogram>,
    errors: Family<OperationErrorLabels, Counter>,
    /// Watches that resumed from their next revision after a break (no reload needed).
    pub watch_resumes: Counter,
    /// Watches that could not resume (history compacted) and made their reader reload.
    pub watch_reloads: Counter,
    renewals: Renewals,
}

impl Default for StoreMetrics {
    fn default() -> Self {
        StoreMetrics {
            requests: Family::new_with_constructor(etcd_latency_histogram),
            errors: Family::default(),
            watch_resumes: Counter::default(),
            watch_reloads: Counter::default(),
            renewals: Renewals::default(),
        }
    }
}

impl StoreMetrics {
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "runnel_etcd_request_duration_seconds",
            "Time of etcd requests, by operation (failed ones included)",
            self.requests.clone(),
        );
        registry.register(
            "runnel_etcd_request_errors",
            "Failed etcd requests, by operation and gRPC status (or timeout, transport)",
            self.errors.clone(),
        );
        registry.register(
            "runnel_etcd_watch_resumes",
            "Metadata watches that resumed from their next revision after a broken stream",
            self.watch_resumes.clone(),
        );
        registry.register(
            "runnel_etcd_watch_reloads",
            "Metadata watches whose history was compacted, so that their reader read everything again",
            self.watch_reloads.clone(),
        );
        registry.register_collector(Box::new(KeepAliveAge(self.renewals.clone())));
    }

    /// Records one request's time and, when it failed, its error label.
    pub fn observe(&self, operation: &'static str, took: Duration, error: Option<&'static str>) {
        self.requests
            .get_or_create(&OperationLabels { operation })
            .observe(took.as_secs_f64());
        if let Some(error) = error {
            self.errors
                .get_or_create(&OperationErrorLabels { operation, error })
                .inc();
        }
    }

    /// How many `operation` requests failed with `error` (for tests and checks).
    pub fn error_count(&self, operation: &'static str, error: &'static str) -> u64 {
        self.errors
            .get_or_create(&OperationErrorLabels { operation, error })
            .get()
    }

    /// A lease was granted or refreshed now.
    pub fn lease_renewed(&self, lease: i64) {
        self.renewals.lock().insert(lease, Instant::now());
    }

    /// A lease is gone (revoked or expired): its age no longer counts.
    pub fn lease_dropped(&self, lease: i64) {
        self.renewals.lock().remove(&lease);
    }

    /// Seconds since the least recently renewed lease was renewed; `None` with no lease.
    pub fn keep_alive_age(&self) -> Option<Duration> {
        self.renewals.oldest_age()
    }
}

/// Computes the keep-alive age at scrape time, so it grows while etcd does not answer.
#[derive(Debug)]
struct KeepAliveAge(Renewals);

impl Collector for KeepAliveAge {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(age) = self.0.oldest_age() else {
            return Ok(());
        };
        ConstGauge::new(age.as_secs_f64()).encode(encoder.encode_descriptor(
            "runnel_etcd_lease_keepalive_age_seconds",
            "Time since the last successful keep-alive of the lease renewed least recently",
            None,
            MetricType::Gauge,
        )?)
    }
}
