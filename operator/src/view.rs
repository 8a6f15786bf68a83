//! What the operator knows of one running cluster, kept from the brokers' watch stream
//! (a snapshot, then every change in revision order). Pure: `apply` folds one event in.

use std::collections::BTreeMap;

use crate::proto::{Broker, Partition, WatchEvent};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub rack: String,
    pub state: String,
    /// The registration's epoch: higher after every restart.
    pub epoch: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub under_replicated: bool,
    pub offline: bool,
}

/// The cluster as of `revision`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterView {
    pub revision: i64,
    /// -1 when there is none.
    pub controller: i32,
    pub brokers: BTreeMap<i32, BrokerInfo>,
    pub partitions: BTreeMap<(String, i32), PartitionInfo>,
}

/// Counts per broker: (replicas held, partitions led).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Load {
    pub replicas: i32,
    pub leaders: i32,
}

impl ClusterView {
    /// Folds one watch event in: a snapshot replaces everything, a change updates what it
    /// names.
    pub fn apply(&mut self, event: &WatchEvent) {
        if event.snapshot {
            *self = ClusterView::default();
        }
        self.revision = self.revision.max(event.revision);
        self.controller = event.controller_id;
        for broker in &event.brokers {
            self.brokers.insert(broker.id, broker_info(broker));
        }
        for id in &event.brokers_gone {
            self.brokers.remove(id);
        }
        for topic in &event.topics_gone {
            self.partitions.retain(|(t, _), _| t != topic);
        }
        for partition in &event.partitions {
            self.partitions.insert(
                (partition.topic.clone(), partition.partition),
                partition_info(partition),
            );
        }
    }

    pub fn under_replicated(&self) -> usize {
        self.partitions
            .values()
            .filter(|p| p.under_replicated)
            .count()
    }

    pub fn offline(&self) -> usize {
        self.partitions.values().filter(|p| p.offline).count()
    }

    pub fn load(&self, broker: i32) -> Load {
        let mut load = Load::default();
        for p in self.partitions.values() {
            if p.replicas.contains(&broker) {
                load.replicas += 1;
            }
            if p.leader == broker {
                load.leaders += 1;
            }
        }
        load
    }

    /// Partitions `broker` is a replica of but not in the ISR of.
    pub fn missing_from_isr(&self, broker: i32) -> usize {
        self.partitions
            .values()
            .filter(|p| p.replicas.contains(&broker) && !p.isr.contains(&broker))
            .count()
    }
}

fn broker_info(broker: &Broker) -> BrokerInfo {
    BrokerInfo {
        rack: broker.rack.clone(),
        state: broker.state.clone(),
        epoch: broker.epoch,
    }
}

fn partition_info(p: &Partition) -> PartitionInfo {
    PartitionInfo {
        leader: p.leader,
        leader_epoch: p.leader_epoch,
        replicas: p.replicas.clone(),
        isr: p.isr.clone(),
        under_replicated: p.under_replicated,
        offline: p.offline,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn broker(id: i32, epoch: i64) -> Broker {
        Broker {
            id,
            rack: format!("zone-{id}"),
            state: "live".to_string(),
            epoch,
            ..Broker::default()
        }
    }

    pub(crate) fn partition(
        topic: &str,
        index: i32,
        leader: i32,
        replicas: &[i32],
        isr: &[i32],
    ) -> Partition {
        Partition {
            topic: topic.to_string(),
            partition: index,
            leader,
            leader_epoch: 1,
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            under_replicated: isr.len() < replicas.len(),
            offline: leader < 0,
        }
    }

    #[test]
    fn a_snapshot_then_changes() {
        let mut view = ClusterView::default();
        view.apply(&WatchEvent {
            revision: 10,
            snapshot: true,
            brokers: vec![broker(0, 5), broker(1, 6), broker(2, 7)],
            partitions: vec![
                partition("a", 0, 0, &[0, 1, 2], &[0, 1, 2]),
                partition("a", 1, 1, &[1, 2, 0], &[1, 2, 0]),
                partition("b", 0, 2, &[2, 0, 1], &[2, 0, 1]),
            ],
            controller_id: 0,
            ..WatchEvent::default()
        });
        assert_eq!(view.under_replicated(), 0);
        assert_eq!(
            view.load(1),
            Load {
                replicas: 3,
                leaders: 1
            }
        );

        view.apply(&WatchEvent {
            revision: 11,
            brokers_gone: vec![2],
            partitions: vec![
                partition("a", 0, 0, &[0, 1, 2], &[0, 1]),
                partition("b", 0, 0, &[2, 0, 1], &[0, 1]),
            ],
            controller_id: 0,
            ..WatchEvent::default()
        });
        assert!(!view.brokers.contains_key(&2));
        assert_eq!(view.under_replicated(), 2);
        assert_eq!(view.missing_from_isr(2), 2);

        view.apply(&WatchEvent {
            revision: 12,
            topics_gone: vec!["b".to_string()],
            controller_id: 1,
            ..WatchEvent::default()
        });
        assert_eq!(view.partitions.len(), 2);
        assert_eq!(view.controller, 1);
        assert_eq!(view.revision, 12);

        // A new snapshot (after a reconnect) replaces everything.
        view.apply(&WatchEvent {
            revision: 20,
            snapshot: true,
            brokers: vec![broker(0, 5)],
            controller_id: 0,
            ..WatchEvent::default()
        });
        assert_eq!(view.brokers.len(), 1);
        assert!(view.partitions.is_empty());
    }
}
