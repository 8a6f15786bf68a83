//! The rolling restart, decided step by step from what is observed, so an operator that
//! restarts mid-roll picks up where the last one stopped. One broker at a time, highest
//! ordinal first; the next one only when every broker is ready and registered, nothing is
//! under-replicated or offline, and the broker restarted last is back with a new epoch
//! and in the ISR of every partition it holds. A broker that does not come back (stuck in
//! log recovery, crash-looping) holds the roll: it is never restarted again by the roll.

use crate::crd::RollStatus;
use crate::view::ClusterView;

/// A broker pod as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodState {
    pub ordinal: i32,
    /// The StatefulSet revision the pod was made from (`controller-revision-hash`).
    pub revision: Option<String>,
    pub ready: bool,
    pub terminating: bool,
}

/// What the roll does now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Every pod runs the StatefulSet's update revision.
    Done,
    /// Nothing may be restarted yet, for this reason.
    Wait(String),
    /// Delete this broker's pod (the StatefulSet controller recreates it from the update
    /// revision).
    Restart(i32),
}

/// The broker restarted last and its registration epoch before the restart: the next
/// restart waits until the watch stream shows it back with a newer one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastRestart {
    pub broker: i32,
    pub epoch: i64,
}

impl LastRestart {
    pub fn from_status(roll: &RollStatus) -> Option<LastRestart> {
        Some(LastRestart {
            broker: roll.current?,
            epoch: roll.current_epoch?,
        })
    }
}

/// Why the broker restarted last is not back yet (None: it is, or it was never
/// restarted: its pod still runs the old revision, so the intent was recorded but the
/// pod was not deleted, and deleting it is what the roll wants anyway).
pub fn not_back(
    last: &LastRestart,
    update_revision: &str,
    pods: &[PodState],
    view: &ClusterView,
) -> Option<String> {
    let pod = pods.iter().find(|p| p.ordinal == last.broker);
    if pod.is_some_and(|p| p.revision.as_deref() != Some(update_revision) && !p.terminating) {
        return None;
    }
    match view.brokers.get(&last.broker) {
        Some(b) if b.epoch > last.epoch => {}
        _ => return Some(format!("broker {} has not registered again", last.broker)),
    }
    let missing = view.missing_from_isr(last.broker);
    (missing > 0).then(|| {
        format!(
            "broker {} is not back in the ISR of {missing} partition(s)",
            last.broker
        )
    })
}

/// The next step towards `update_revision` for a StatefulSet of `replicas` pods.
/// `last` is the broker the roll restarted last (whatever revision that was for);
/// `view` is None while the operator has no current watch stream from the cluster.
pub fn next_step(
    update_revision: &str,
    replicas: i32,
    pods: &[PodState],
    view: Option<&ClusterView>,
    last: Option<&LastRestart>,
) -> Step {
    let mut outdated: Vec<i32> = pods
        .iter()
        .filter(|p| p.revision.as_deref() != Some(update_revision))
        .map(|p| p.ordinal)
        .collect();
    if outdated.is_empty() && pods.len() as i32 >= replicas {
        return Step::Done;
    }
    for ordinal in 0..replicas {
        match pods.iter().find(|p| p.ordinal == ordinal) {
            None => return Step::Wait(format!("broker {ordinal} has no pod yet")),
            Some(p) if p.terminating => return Step::Wait(format!("broker {ordinal} is stopping")),
            Some(p) if !p.ready => return Step::Wait(format!("broker {ordinal} is not ready")),
            Some(_) => {}
        }
    }
    let Some(view) = view else {
        return Step::Wait("no watch stream from the cluster yet".to_string());
    };
    if let Some(reason) = last.and_then(|l| not_back(l, update_revision, pods, view)) {
        return Step::Wait(reason);
    }
    // Without a controller a controlled shutdown cannot move leadership away.
    if view.controller < 0 {
        return Step::Wait("the cluster has no controller".to_string());
    }
    for ordinal in 0..replicas {
        if !view.brokers.contains_key(&ordinal) {
            return Step::Wait(format!("broker {ordinal} is not registered"));
        }
    }
    let offline = view.offline();
    if offline > 0 {
        return Step::Wait(format!("{offline} partition(s) offline"));
    }
    let under = view.under_replicated();
    if under > 0 {
        return Step::Wait(format!("{under} partition(s) under-replicated"));
    }
    outdated.sort_unstable();
    match outdated.last() {
        Some(ordinal) => Step::Restart(*ordinal),
        // Fewer pods than replicas, all current: the StatefulSet is still creating some.
        None => Step::Wait("the StatefulSet is creating pods".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::WatchEvent;
    use crate::view::tests::{broker, partition};

    fn pod(ordinal: i32, revision: &str) -> PodState {
        PodState {
            ordinal,
            revision: Some(revision.to_string()),
            ready: true,
            terminating: false,
        }
    }

    fn healthy(epochs: [i64; 3]) -> ClusterView {
        let mut view = ClusterView::default();
        view.apply(&WatchEvent {
            revision: 10,
            snapshot: true,
            brokers: (0..3).map(|i| broker(i, epochs[i as usize])).collect(),
            partitions: vec![
                partition("a", 0, 0, &[0, 1, 2], &[0, 1, 2]),
                partition("a", 1, 1, &[1, 2, 0], &[1, 2, 0]),
            ],
            controller_id: 0,
            ..WatchEvent::default()
        });
        view
    }

    #[test]
    fn highest_ordinal_first_then_down() {
        let view = healthy([1, 2, 3]);
        let pods = [pod(0, "old"), pod(1, "old"), pod(2, "old")];
        assert_eq!(
            next_step("new", 3, &pods, Some(&view), None),
            Step::Restart(2)
        );
        let pods = [pod(0, "old"), pod(1, "old"), pod(2, "new")];
        assert_eq!(
            next_step("new", 3, &pods, Some(&view), None),
            Step::Restart(1)
        );
        let pods = [pod(0, "new"), pod(1, "new"), pod(2, "new")];
        assert_eq!(next_step("new", 3, &pods, Some(&view), None), Step::Done);
    }

    #[test]
    fn a_broker_that_is_not_ready_holds_the_roll() {
        let view = healthy([1, 2, 3]);
        let mut pods = vec![pod(0, "old"), pod(1, "old"), pod(2, "new")];
        pods[2].ready = false;
        assert_eq!(
            next_step("new", 3, &pods, Some(&view), None),
            Step::Wait("broker 2 is not ready".to_string())
        );
        pods[2].ready = true;
        pods[2].terminating = true;
        assert!(matches!(
            next_step("new", 3, &pods, Some(&view), None),
            Step::Wait(_)
        ));
        let pods = [pod(0, "old"), pod(1, "old")];
        assert_eq!(
            next_step("new", 3, &pods, Some(&view), None),
            Step::Wait("broker 2 has no pod yet".to_string())
        );
    }

    #[test]
    fn under_replication_or_a_stale_view_holds_the_roll() {
        let pods = [pod(0, "old"), pod(1, "old"), pod(2, "old")];
        assert!(matches!(
            next_step("new", 3, &pods, None, None),
            Step::Wait(_)
        ));
        let mut view = healthy([1, 2, 3]);
        view.apply(&WatchEvent {
            revision: 11,
            partitions: vec![partition("a", 0, 0, &[0, 1, 2], &[0, 1])],
            ..WatchEvent::default()
        });
        assert_eq!(
            next_step("new", 3, &pods, Some(&view), None),
            Step::Wait("1 partition(s) under-replicated".to_string())
        );
    }

    #[test]
    fn the_restarted_broker_must_come_back_with_a_new_epoch_and_in_every_isr() {
        let pods = [pod(0, "old"), pod(1, "old"), pod(2, "new")];
        let previous = LastRestart {
            broker: 2,
            epoch: 3,
        };
        // The pod is ready but the view still shows the broker's old registration: the
        // watch stream lags the API, so nothing may be restarted yet.
        let stale = healthy([1, 2, 3]);
        assert_eq!(
            next_step("new", 3, &pods, Some(&stale), Some(&previous)),
            Step::Wait("broker 2 has not registered again".to_string())
        );
        let mut back = healthy([1, 2, 9]);
        back.apply(&WatchEvent {
            revision: 12,
            partitions: vec![partition("a", 1, 1, &[1, 2, 0], &[1, 0])],
            ..WatchEvent::default()
        });
        assert_eq!(
            next_step("new", 3, &pods, Some(&back), Some(&previous)),
            Step::Wait("broker 2 is not back in the ISR of 1 partition(s)".to_string())
        );
        let caught_up = healthy([1, 2, 9]);
        assert_eq!(
            next_step("new", 3, &pods, Some(&caught_up), Some(&previous)),
            Step::Restart(1)
        );
        // A restart recorded for another revision still guards the next roll.
        let next_roll = [pod(0, "old"), pod(1, "old"), pod(2, "newer")];
        assert_eq!(
            next_step("newer", 3, &next_roll, Some(&stale), Some(&previous)),
            Step::Wait("broker 2 has not registered again".to_string())
        );
    }

    #[test]
    fn an_intent_recorded_before_the_delete_does_not_hold_the_roll_forever() {
        // The operator recorded "restarting broker 2" and stopped before deleting it: the
        // pod still runs the old revision, so the roll restarts it.
        let pods = [pod(0, "old"), pod(1, "old"), pod(2, "old")];
        let intent = LastRestart {
            broker: 2,
            epoch: 3,
        };
        assert_eq!(
            next_step("new", 3, &pods, Some(&healthy([1, 2, 3])), Some(&intent)),
            Step::Restart(2)
        );
    }

    #[test]
    fn no_restart_without_a_controller() {
        let mut view = healthy([1, 2, 3]);
        view.controller = -1;
        let pods = [pod(0, "old"), pod(1, "old"), pod(2, "old")];
        assert_eq!(
            next_step("new", 3, &pods, Some(&view), None),
            Step::Wait("the cluster has no controller".to_string())
        );
    }
}
