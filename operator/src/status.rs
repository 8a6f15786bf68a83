//! The KafkaCluster's status, computed from what was observed (pure). Conditions keep
//! their lastTransitionTime while their status holds, so an unchanged cluster computes
//! an equal status and reconcile writes nothing.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::build::console;
use crate::build::names::{Component, Names};
use crate::crd::{BrokerStatus, KafkaCluster, KafkaClusterStatus, RollStatus};
use crate::view::ClusterView;

pub const READY: &str = "Ready";
pub const RECONCILING: &str = "Reconciling";
pub const DEGRADED: &str = "Degraded";
pub const SCALE_BLOCKED: &str = "ScaleBlocked";
/// Something in the spec cannot be carried out (invalid config, a storage decrease); the
/// cluster keeps running as it was.
pub const REFUSED: &str = "Refused";

/// What reconcile observed and decided.
#[derive(Debug, Clone, Default)]
pub struct Observed<'a> {
    /// Broker pods the StatefulSet runs (never lowered while a scale-down is refused).
    pub running: i32,
    /// Pods that exist, and those ready.
    pub pods: i32,
    pub ready_pods: i32,
    pub view: Option<&'a ClusterView>,
    pub roll: Option<RollStatus>,
    /// Why `spec.replicas` is not carried out.
    pub scale_blocked: Option<String>,
    /// (reason, message) of what in the spec is refused.
    pub refused: Option<(String, String)>,
    pub storage_size: Option<Quantity>,
    pub bootstrap: Option<String>,
}

pub fn cluster_status(
    cluster: &KafkaCluster,
    names: &Names,
    observed: &Observed<'_>,
    now: &Time,
) -> KafkaClusterStatus {
    let previous = cluster
        .status
        .as_ref()
        .map_or(&[][..], |s| s.conditions.as_slice());
    let generation = cluster.metadata.generation;
    let view = observed.view;
    let mut brokers: Vec<BrokerStatus> = Vec::new();
    let mut ids: Vec<i32> = (0..observed.running).collect();
    if let Some(view) = view {
        ids.extend(
            view.brokers
                .keys()
                .copied()
                .filter(|id| *id >= observed.running),
        );
    }
    for id in ids {
        let info = view.and_then(|v| v.brokers.get(&id));
        let load = view.map(|v| v.load(id)).unwrap_or_default();
        brokers.push(BrokerStatus {
            id,
            pod: (id < observed.running).then(|| names.pod(id)),
            state: if info.is_some() { "live" } else { "absent" }.to_string(),
            rack: info.map(|b| b.rack.clone()).filter(|r| !r.is_empty()),
            partitions: load.replicas,
            leaders: load.leaders,
        });
    }
    let absent: Vec<i32> = brokers
        .iter()
        .filter(|b| b.state == "absent")
        .map(|b| b.id)
        .collect();
    let under = view.map_or(0, ClusterView::under_replicated) as i32;
    let offline = view.map_or(0, ClusterView::offline) as i32;
    let controller = view.map(|v| v.controller).filter(|c| *c >= 0);

    let mut conditions = Vec::new();
    let mut set = |type_: &str, status: &str, reason: &str, message: String| {
        conditions.push(condition(
            previous, generation, now, type_, status, reason, message,
        ));
    };

    let (ready, reason, message) = if observed.ready_pods < observed.running {
        (
            "False",
            "BrokersNotReady",
            format!(
                "{} of {} broker pods ready",
                observed.ready_pods, observed.running
            ),
        )
    } else if view.is_none() {
        (
            "False",
            "NoWatchStream",
            "no watch stream from the cluster's admin service".to_string(),
        )
    } else if !absent.is_empty() {
        (
            "False",
            "BrokersAbsent",
            format!("brokers {absent:?} are not registered"),
        )
    } else if controller.is_none() {
        (
            "False",
            "NoController",
            "the cluster has no controller".to_string(),
        )
    } else if offline > 0 || under > 0 {
        (
            "False",
            "UnderReplicated",
            format!("{under} partition(s) under-replicated, {offline} offline"),
        )
    } else {
        (
            "True",
            "ClusterReady",
            format!(
                "{} brokers ready, every partition fully replicated",
                observed.running
            ),
        )
    };
    set(READY, ready, reason, message);

    if view.is_none() {
        set(
            DEGRADED,
            "Unknown",
            "NoWatchStream",
            "the cluster's health is not known yet".to_string(),
        );
    } else if offline > 0 || under > 0 || !absent.is_empty() {
        let mut message = format!("{under} partition(s) under-replicated, {offline} offline");
        if !absent.is_empty() {
            message.push_str(&format!("; brokers {absent:?} absent"));
        }
        let reason = if offline > 0 {
            "OfflinePartitions"
        } else if under > 0 {
            "UnderReplicatedPartitions"
        } else {
            "BrokersAbsent"
        };
        set(DEGRADED, "True", reason, message);
    } else {
        set(
            DEGRADED,
            "False",
            "Healthy",
            "every broker registered, every partition fully replicated".to_string(),
        );
    }

    match &observed.roll {
        Some(roll) => set(
            RECONCILING,
            "True",
            "RollInProgress",
            format!(
                "{} of {} brokers on revision {}{}",
                roll.done,
                roll.total,
                roll.revision,
                roll.waiting_for
                    .as_ref()
                    .map(|w| format!("; waiting: {w}"))
                    .unwrap_or_default()
            ),
        ),
        None if observed.pods < observed.running => set(
            RECONCILING,
            "True",
            "CreatingBrokers",
            format!(
                "{} of {} broker pods exist",
                observed.pods, observed.running
            ),
        ),
        None => set(
            RECONCILING,
            "False",
            "UpToDate",
            "the cluster matches the spec".to_string(),
        ),
    }
    match &observed.scale_blocked {
        Some(why) => set(SCALE_BLOCKED, "True", "ScaleDownNotSupported", why.clone()),
        None => set(
            SCALE_BLOCKED,
            "False",
            "NotBlocked",
            "spec.replicas is carried out".to_string(),
        ),
    }
    match &observed.refused {
        Some((reason, message)) => set(REFUSED, "True", reason, message.clone()),
        None => set(
            REFUSED,
            "False",
            "Accepted",
            "the spec is carried out".to_string(),
        ),
    }

    KafkaClusterStatus {
        observed_generation: generation,
        conditions,
        replicas: observed.pods,
        ready_replicas: observed.ready_pods,
        label_selector: names.selector_string(Component::Broker),
        bootstrap: observed.bootstrap.clone(),
        controller,
        brokers,
        partitions: view.map_or(0, |v| v.partitions.len() as i32),
        under_replicated_partitions: under,
        offline_partitions: offline,
        storage_size: observed.storage_size.clone(),
        roll: observed.roll.clone(),
        console: console::url(cluster, names),
    }
}

/// A condition that keeps the previous transition time while its status is unchanged.
pub fn condition(
    previous: &[Condition],
    generation: Option<i64>,
    now: &Time,
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
) -> Condition {
    let since = previous
        .iter()
        .find(|c| c.type_ == type_)
        .filter(|c| c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.clone());
    Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        // The API limits a condition message to 32768 bytes.
        message: truncate(message, 4096),
        observed_generation: generation,
        last_transition_time: since,
    }
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// The status of condition `type_`, if set.
pub fn condition_status<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a str> {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.as_str())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::Timestamp;

    use super::*;
    use crate::build::testing::{cluster, names};
    use crate::proto::WatchEvent;
    use crate::view::tests::{broker, partition};

    fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).unwrap())
    }

    fn view(isr: &[i32]) -> ClusterView {
        let mut view = ClusterView::default();
        view.apply(&WatchEvent {
            revision: 3,
            snapshot: true,
            brokers: vec![broker(0, 1), broker(1, 2), broker(2, 3)],
            partitions: vec![partition("a", 0, 1, &[1, 2, 0], isr)],
            controller_id: 1,
            ..WatchEvent::default()
        });
        view
    }

    fn observed(view: &ClusterView) -> Observed<'_> {
        Observed {
            running: 3,
            pods: 3,
            ready_pods: 3,
            view: Some(view),
            ..Observed::default()
        }
    }

    #[test]
    fn a_healthy_cluster_is_ready_and_a_lost_replica_degrades_it() {
        let kc = cluster("demo", 3);
        let healthy = view(&[1, 2, 0]);
        let status = cluster_status(&kc, &names(), &observed(&healthy), &at(100));
        assert_eq!(condition_status(&status.conditions, READY), Some("True"));
        assert_eq!(
            condition_status(&status.conditions, DEGRADED),
            Some("False")
        );
        assert_eq!(status.controller, Some(1));
        assert_eq!(status.brokers[1].leaders, 1);
        assert_eq!(status.brokers[2].rack.as_deref(), Some("zone-2"));
        assert_eq!(status.observed_generation, Some(1));

        let degraded = view(&[1, 0]);
        let status = cluster_status(&kc, &names(), &observed(&degraded), &at(100));
        assert_eq!(condition_status(&status.conditions, READY), Some("False"));
        assert_eq!(condition_status(&status.conditions, DEGRADED), Some("True"));
        assert_eq!(status.under_replicated_partitions, 1);
    }

    #[test]
    fn an_unchanged_cluster_computes_an_equal_status() {
        let mut kc = cluster("demo", 3);
        let healthy = view(&[1, 2, 0]);
        let first = cluster_status(&kc, &names(), &observed(&healthy), &at(100));
        kc.status = Some(first.clone());
        let again = cluster_status(&kc, &names(), &observed(&healthy), &at(200));
        assert_eq!(first, again);
        // A change moves only the conditions whose status changed.
        let degraded = view(&[1, 0]);
        let changed = cluster_status(&kc, &names(), &observed(&degraded), &at(300));
        let ready = changed
            .conditions
            .iter()
            .find(|c| c.type_ == READY)
            .unwrap();
        assert_eq!(ready.last_transition_time, at(300));
        let refused = changed
            .conditions
            .iter()
            .find(|c| c.type_ == REFUSED)
            .unwrap();
        assert_eq!(refused.last_transition_time, at(100));
    }

    #[test]
    fn a_refused_scale_down_keeps_the_real_count() {
        let mut kc = cluster("demo", 2);
        kc.spec.replicas = 2;
        let healthy = view(&[1, 2, 0]);
        let mut obs = observed(&healthy);
        obs.scale_blocked = Some("scale-down from 3 to 2 is not supported yet".to_string());
        let status = cluster_status(&kc, &names(), &obs, &at(1));
        assert_eq!(status.replicas, 3);
        assert_eq!(status.brokers.len(), 3);
        assert_eq!(
            condition_status(&status.conditions, SCALE_BLOCKED),
            Some("True")
        );
    }

    #[test]
    fn status_names_the_console_only_while_it_is_enabled() {
        let mut kc = cluster("demo", 3);
        let healthy = view(&[1, 2, 0]);
        let status = cluster_status(&kc, &names(), &observed(&healthy), &at(1));
        assert_eq!(
            status.console.as_deref(),
            Some("http://demo-bootstrap.kafka.svc.cluster.local:9097/ui")
        );
        kc.spec.console.enabled = false;
        let status = cluster_status(&kc, &names(), &observed(&healthy), &at(1));
        assert_eq!(status.console, None);
        assert!(!serde_json::to_value(&status)
            .unwrap()
            .as_object()
            .unwrap()
            .contains_key("console"));
    }

    #[test]
    fn without_a_watch_stream_health_is_unknown() {
        let kc = cluster("demo", 3);
        let obs = Observed {
            running: 3,
            pods: 3,
            ready_pods: 3,
            ..Observed::default()
        };
        let status = cluster_status(&kc, &names(), &obs, &at(1));
        assert_eq!(condition_status(&status.conditions, READY), Some("False"));
        assert_eq!(
            condition_status(&status.conditions, DEGRADED),
            Some("Unknown")
        );
        assert!(status.brokers.iter().all(|b| b.state == "absent"));
    }
}
