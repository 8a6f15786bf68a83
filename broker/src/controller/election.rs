//! Leader election for one partition, as a pure function of its record and the live
//! brokers (id → broker epoch).
//!
//! Rules:
//! 1. A live leader whose ISR entry carries its current broker epoch stays leader; ISR
//!    members that are gone or came back as a new incarnation leave the ISR (a dead
//!    follower must not hold up acks=all until a lag timeout, and a restarted one must
//!    catch up before it counts again).
//! 2. Otherwise the first replica (in replica order) that is in the ISR, alive and of the
//!    same incarnation becomes leader; the ISR keeps only such members.
//! 3. Otherwise, if an ISR member is alive in a new incarnation (it restarted), it becomes
//!    leader with its new epoch. Runnel acknowledges writes only after fsync by default,
//!    so a restarted last in-sync replica still holds every acknowledged record. (With
//!    `log.flush.mode=interval` this is the KIP-966 "last replica standing" case: it may
//!    have lost unflushed records, which the documentation states.)
//! 4. Otherwise, with `unclean.leader.election.enable`, the first live replica leads
//!    (acknowledged records it lacks are lost: the topic's owner asked for availability).
//! 5. Otherwise the partition is offline (leader -1) and the ISR keeps its last members,
//!    so one of them can lead again when it returns.
//!
//! Every change bumps the partition epoch; a leadership change bumps the leader epoch.

use std::collections::{BTreeMap, BTreeSet};

use crate::metadata::schema::{IsrMember, PartitionRecord};

/// The record after election, or `None` if nothing changes. `unclean` allows an
/// out-of-sync replica to lead when no ISR member can.
pub fn elect(
    current: &PartitionRecord,
    live: &BTreeMap<i32, i64>,
    unclean: bool,
) -> Option<PartitionRecord> {
    let in_sync = |m: &IsrMember| live.get(&m.broker) == Some(&m.broker_epoch);
    let leader_ok = current.leader >= 0
        && current
            .isr
            .iter()
            .any(|m| m.broker == current.leader && in_sync(m));
    let mut next = current.clone();
    next.partition_epoch += 1;
    if leader_ok {
        if current.isr.iter().all(in_sync) {
            return None;
        }
        next.isr = current.isr.iter().copied().filter(in_sync).collect();
        return Some(next);
    }
    let isr_member = |b: i32| current.isr.iter().find(|m| m.broker == b);
    let same_incarnation = current
        .replicas
        .iter()
        .copied()
        .find(|b| isr_member(*b).is_some_and(in_sync));
    if let Some(leader) = same_incarnation {
        next.leader = leader;
        next.leader_epoch += 1;
        next.isr = current.isr.iter().copied().filter(in_sync).collect();
        return Some(next);
    }
    let restarted = current
        .replicas
        .iter()
        .copied()
        .find(|b| isr_member(*b).is_some() && live.contains_key(b));
    if let Some(leader) = restarted {
        next.leader = leader;
        next.leader_epoch += 1;
        next.isr = vec![IsrMember {
            broker: leader,
            broker_epoch: live[&leader],
        }];
        return Some(next);
    }
    let out_of_sync = current
        .replicas
        .iter()
        .copied()
        .find(|b| live.contains_key(b))
        .filter(|_| unclean);
    if let Some(leader) = out_of_sync {
        next.leader = leader;
        next.leader_epoch += 1;
        next.isr = vec![IsrMember {
            broker: leader,
            broker_epoch: live[&leader],
        }];
        return Some(next);
    }
    if current.leader == -1 {
        return None;
    }
    next.leader = -1;
    next.leader_epoch += 1;
    Some(next)
}

/// [`elect`] while the brokers in `draining` shut down (controlled shutdown): they lead
/// nothing and leave every ISR, unless no other broker can lead a partition, which then
/// stays as it is until they are gone (and the ordinary rules apply).
pub fn elect_avoiding(
    current: &PartitionRecord,
    live: &BTreeMap<i32, i64>,
    draining: &BTreeSet<i32>,
    unclean: bool,
) -> Option<PartitionRecord> {
    if draining.is_empty() {
        return elect(current, live, unclean);
    }
    let eligible: BTreeMap<i32, i64> = live
        .iter()
        .filter(|(broker, _)| !draining.contains(broker))
        .map(|(b, e)| (*b, *e))
        .collect();
    match elect(current, &eligible, false) {
        Some(next) if next.leader >= 0 => Some(next),
        _ => elect(current, live, unclean),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(leader: i32, isr: &[(i32, i64)]) -> PartitionRecord {
        PartitionRecord {
            replicas: vec![0, 1, 2],
            leader,
            leader_epoch: 5,
            isr: isr
                .iter()
                .map(|&(broker, broker_epoch)| IsrMember {
                    broker,
                    broker_epoch,
                })
                .collect(),
            partition_epoch: 9,
        }
    }

    fn live(brokers: &[(i32, i64)]) -> BTreeMap<i32, i64> {
        brokers.iter().copied().collect()
    }

    #[test]
    fn a_healthy_leader_is_left_alone() {
        let r = record(0, &[(0, 10), (1, 11)]);
        assert_eq!(elect(&r, &live(&[(0, 10), (1, 11)]), false), None);
    }

    #[test]
    fn a_dead_leader_is_replaced_by_the_next_in_sync_replica() {
        let r = record(0, &[(0, 10), (1, 11)]);
        let next = elect(&r, &live(&[(1, 11), (2, 12)]), false).unwrap();
        assert_eq!(next.leader, 1);
        assert_eq!(next.leader_epoch, 6);
        assert_eq!(next.partition_epoch, 10);
        assert_eq!(next.isr_brokers(), vec![1]);
    }

    #[test]
    fn a_restarted_sole_member_leads_again_in_its_new_incarnation() {
        let r = record(0, &[(0, 10)]);
        let next = elect(&r, &live(&[(0, 42)]), false).unwrap();
        assert_eq!(next.leader, 0);
        assert_eq!(next.leader_epoch, 6);
        assert_eq!(
            next.isr,
            vec![IsrMember {
                broker: 0,
                broker_epoch: 42
            }]
        );
    }

    #[test]
    fn with_no_isr_member_alive_the_partition_goes_offline_once() {
        let r = record(0, &[(0, 10)]);
        let next = elect(&r, &live(&[(2, 12)]), false).unwrap();
        assert_eq!(next.leader, -1);
        assert_eq!(next.isr_brokers(), vec![0], "the last member is remembered");
        assert_eq!(elect(&next, &live(&[(2, 12)]), false), None);
    }

    #[test]
    fn a_dead_follower_leaves_the_isr_and_the_leader_stays() {
        let r = record(0, &[(0, 10), (1, 11), (2, 12)]);
        let next = elect(&r, &live(&[(0, 10), (1, 11)]), false).unwrap();
        assert_eq!(
            (next.leader, next.leader_epoch),
            (0, 5),
            "same leader, same epoch"
        );
        assert_eq!(next.partition_epoch, 10);
        assert_eq!(next.isr_brokers(), vec![0, 1]);
        // A follower back as a new incarnation leaves too: it must catch up first.
        let next = elect(&r, &live(&[(0, 10), (1, 11), (2, 99)]), false).unwrap();
        assert_eq!(next.isr_brokers(), vec![0, 1]);
    }

    #[test]
    fn unclean_election_lets_an_out_of_sync_replica_lead_only_when_allowed() {
        let r = record(0, &[(0, 10)]);
        let clean = elect(&r, &live(&[(2, 12)]), false).unwrap();
        assert_eq!(clean.leader, -1);
        let unclean = elect(&r, &live(&[(2, 12)]), true).unwrap();
        assert_eq!(unclean.leader, 2);
        assert_eq!(
            unclean.isr,
            vec![IsrMember {
                broker: 2,
                broker_epoch: 12
            }]
        );
        assert_eq!(
            elect(&clean, &live(&[(2, 12)]), true).map(|n| n.leader),
            Some(2)
        );
    }

    #[test]
    fn a_draining_broker_hands_its_leadership_to_an_in_sync_follower_and_leaves_the_isr() {
        let r = record(0, &[(0, 10), (1, 11), (2, 12)]);
        let all = live(&[(0, 10), (1, 11), (2, 12)]);
        let draining: BTreeSet<i32> = [0].into();
        let next = elect_avoiding(&r, &all, &draining, false).unwrap();
        assert_eq!((next.leader, next.leader_epoch), (1, 6));
        assert_eq!(next.isr_brokers(), vec![1, 2]);
        // As a follower it leaves the ISR and the leader stays.
        let r = record(1, &[(0, 10), (1, 11), (2, 12)]);
        let next = elect_avoiding(&r, &all, &draining, false).unwrap();
        assert_eq!((next.leader, next.leader_epoch), (1, 5));
        assert_eq!(next.isr_brokers(), vec![1, 2]);
    }

    #[test]
    fn a_draining_broker_keeps_what_nobody_else_can_lead() {
        let r = record(0, &[(0, 10)]);
        let all = live(&[(0, 10), (1, 11), (2, 12)]);
        let draining: BTreeSet<i32> = [0].into();
        assert_eq!(elect_avoiding(&r, &all, &draining, false), None);
        assert_eq!(
            elect_avoiding(&r, &all, &draining, true),
            None,
            "a draining broker is no reason for an unclean election"
        );
        assert_eq!(elect_avoiding(&r, &all, &BTreeSet::new(), false), None);
    }
}
