//! Replica assignment for new topics: round-robin over the live brokers, and checks of a
//! manual assignment. Rack awareness comes with cluster mode.

use std::collections::{BTreeMap, BTreeSet};

/// Assigns `partitions` × `rf` replicas round-robin over `brokers` (sorted ids), starting
/// at a broker chosen from the topic name so that leaders of different topics spread.
/// `rf` must not exceed the number of brokers.
pub fn round_robin(brokers: &[i32], partitions: i32, rf: usize, topic: &str) -> Vec<Vec<i32>> {
    let n = brokers.len();
    if n == 0 {
        return Vec::new();
    }
    let start = topic
        .bytes()
        .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize))
        % n;
    (0..partitions as usize)
        .map(|p| (0..rf).map(|r| brokers[(start + p + r) % n]).collect())
        .collect()
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

    #[test]
    fn round_robin_spreads_leaders_and_never_repeats_a_broker() {
        let plan = round_robin(&[1, 2, 3], 6, 2, "t");
        assert_eq!(plan.len(), 6);
        for replicas in &plan {
            assert_eq!(replicas.len(), 2);
            assert_ne!(replicas[0], replicas[1]);
        }
        let leaders: BTreeSet<i32> = plan.iter().map(|r| r[0]).collect();
        assert_eq!(leaders.len(), 3);
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
