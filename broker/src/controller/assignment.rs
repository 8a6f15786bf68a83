//! Replica assignment for new topics and partitions: rack-aware round-robin over the
//! live brokers (Kafka's scheme), and checks of a manual assignment.

use std::collections::{BTreeMap, BTreeSet};

/// Assigns `partitions` × `rf` replicas over `brokers` (id → rack). Brokers are ordered
/// alternating racks (rack a, b, c, a, b, ...), each partition's leader is the next
/// broker in that order from a start chosen by the topic name, so leaders of a topic
/// and of different topics spread; followers take the next brokers whose rack the
/// partition does not have yet (any broker once every rack has one), shifted per round
/// so followers spread too. A broker without a rack counts as a rack of its own. `rf`
/// must not exceed the number of brokers.
pub fn assign(
    brokers: &BTreeMap<i32, Option<String>>,
    partitions: i32,
    rf: usize,
    topic: &str,
) -> Vec<Vec<i32>> {
    let arranged = arrange_by_rack(brokers);
    let n = arranged.len();
    if n == 0 {
        return Vec::new();
    }
    let rack = |b: i32| -> String {
        brokers
            .get(&b)
            .cloned()
            .flatten()
            .unwrap_or_else(|| format!("broker-{b}"))
    };
    let racks: BTreeSet<String> = arranged.iter().map(|b| rack(*b)).collect();
    let start = topic
        .bytes()
        .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize))
        % n;
    (0..partitions as usize)
        .map(|p| {
            let first = (start + p) % n;
            let mut replicas = vec![arranged[first]];
            let mut used: BTreeSet<String> = [rack(arranged[first])].into();
            // Each full round over the brokers starts the followers one further on.
            let shift = if n > 1 { p / n % (n - 1) } else { 0 };
            let candidates: Vec<i32> = (0..n - 1)
                .map(|j| arranged[(first + 1 + (shift + j) % (n - 1)) % n])
                .collect();
            while replicas.len() < rf {
                let all_racks_used = used.len() == racks.len();
                let next = candidates
                    .iter()
                    .find(|b| {
                        !replicas.contains(b) && (all_racks_used || !used.contains(&rack(**b)))
                    })
                    .or_else(|| candidates.iter().find(|b| !replicas.contains(b)));
                let Some(&next) = next else { break };
                used.insert(rack(next));
                replicas.push(next);
            }
            replicas
        })
        .collect()
}

/// Brokers in rack-alternating order: the first of each rack (racks sorted), then the
/// second of each, and so on.
fn arrange_by_rack(brokers: &BTreeMap<i32, Option<String>>) -> Vec<i32> {
    let mut by_rack: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for (id, rack) in brokers {
        let rack = rack.clone().unwrap_or_else(|| format!("broker-{id}"));
        by_rack.entry(rack).or_default().push(*id);
    }
    let mut arranged = Vec::with_capacity(brokers.len());
    for round in 0.. {
        let before = arranged.len();
        arranged.extend(by_rack.values().filter_map(|ids| ids.get(round).copied()));
        if arranged.len() == before {
            break;
        }
    }
    arranged
}

/// Checks a manual assignment: partitions 0..n, every list non-empty and of one length,
/// no broker twice in a list, every broker registered. Returns the lists in order.
pub fn check_manual(
    assignments: &BTreeMap<i32, Vec<i32>>,
    live: &BTreeMap<i32, i64>,
) -> Result<Vec<Vec<i32>>, String> {
    let expected: Vec<i32> = (0..assignments.len() as i32).collect();
    let got: Vec<i32> = assignments.keys().copied().collect();
    if got != expected {
        return Err(format!(
            "partitions must be numbered 0..{} without gaps",
            assignments.len()
        ));
    }
    let rf = assignments.values().next().map_or(0, Vec::len);
    for (partition, replicas) in assignments {
        if replicas.is_empty() {
            return Err(format!("partition {partition} has no replicas"));
        }
        if replicas.len() != rf {
            return Err("all partitions must have the same number of replicas".into());
        }
        let unique: BTreeSet<i32> = replicas.iter().copied().collect();
        if unique.len() != replicas.len() {
            return Err(format!("partition {partition} lists a broker twice"));
        }
        if let Some(missing) = replicas.iter().find(|b| !live.contains_key(b)) {
            return Err(format!("broker {missing} is not registered"));
        }
    }
    Ok(assignments.values().cloned().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brokers(racks: &[(i32, Option<&str>)]) -> BTreeMap<i32, Option<String>> {
        racks
            .iter()
            .map(|(id, rack)| (*id, rack.map(str::to_string)))
            .collect()
    }

    #[test]
    fn without_racks_leaders_spread_and_no_broker_repeats() {
        let plan = assign(&brokers(&[(1, None), (2, None), (3, None)]), 6, 2, "t");
        assert_eq!(plan.len(), 6);
        for replicas in &plan {
            assert_eq!(replicas.len(), 2);
            assert_ne!(replicas[0], replicas[1]);
        }
        let mut leaders: BTreeMap<i32, usize> = BTreeMap::new();
        for replicas in &plan {
            *leaders.entry(replicas[0]).or_default() += 1;
        }
        assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![2, 2, 2]);
    }

    #[test]
    fn replicas_of_a_partition_land_in_different_racks_and_leaders_spread() {
        let six = brokers(&[
            (0, Some("a")),
            (1, Some("a")),
            (2, Some("b")),
            (3, Some("b")),
            (4, Some("c")),
            (5, Some("c")),
        ]);
        let rack = |b: &i32| six[b].clone().unwrap();
        let plan = assign(&six, 12, 3, "orders");
        for replicas in &plan {
            let racks: BTreeSet<String> = replicas.iter().map(rack).collect();
            assert_eq!(racks.len(), 3, "{replicas:?} spans every rack");
        }
        let mut leaders: BTreeMap<i32, usize> = BTreeMap::new();
        let mut followers: BTreeMap<i32, usize> = BTreeMap::new();
        for replicas in &plan {
            *leaders.entry(replicas[0]).or_default() += 1;
            for f in &replicas[1..] {
                *followers.entry(*f).or_default() += 1;
            }
        }
        assert_eq!(leaders.len(), 6, "every broker leads");
        assert!(leaders.values().all(|c| *c == 2));
        assert_eq!(followers.len(), 6, "every broker follows");
        // More replicas than racks: the rest go anywhere, still no broker twice.
        let two_racks = brokers(&[(0, Some("a")), (1, Some("a")), (2, Some("b"))]);
        for replicas in assign(&two_racks, 4, 3, "x") {
            let unique: BTreeSet<i32> = replicas.iter().copied().collect();
            assert_eq!(unique.len(), 3);
        }
    }

    #[test]
    fn manual_assignments_are_checked() {
        let live: BTreeMap<i32, i64> = [(0, 1), (1, 2)].into_iter().collect();
        let ok: BTreeMap<i32, Vec<i32>> = [(0, vec![0, 1]), (1, vec![1, 0])].into_iter().collect();
        assert!(check_manual(&ok, &live).is_ok());
        let gap: BTreeMap<i32, Vec<i32>> = [(1, vec![0])].into_iter().collect();
        assert!(check_manual(&gap, &live).is_err());
        let unknown: BTreeMap<i32, Vec<i32>> = [(0, vec![5])].into_iter().collect();
        assert!(check_manual(&unknown, &live).is_err());
        let twice: BTreeMap<i32, Vec<i32>> = [(0, vec![0, 0])].into_iter().collect();
        assert!(check_manual(&twice, &live).is_err());
    }
}
