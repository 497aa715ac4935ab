//! A group's verdict with its partitions': one partition stuck while the others move is
//! the group's problem too.

use serde::Serialize;

use crate::adapter::Backlog;

use super::{evaluate, Evaluation, Observation, Verdict};

/// One partition's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionEvaluation {
    /// The partition, where the broker has partitions.
    pub partition: Option<i32>,
    /// Its verdict over the window, from its own backlog and position (failures are
    /// counted for the group only).
    #[serde(flatten)]
    pub evaluation: Evaluation,
}

/// A group's verdict and each partition's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupEvaluation {
    /// The group's verdict: from all partitions together, except that a partition
    /// `stalled` or `stopped` while the group looks `ok` or `slow` gives the group its
    /// verdict (its reason names the partition): on Kafka one poison key holds one
    /// partition while the summed offsets of the others still grow.
    pub group: Evaluation,
    /// Each partition's verdict (empty where the broker has one partition, or none).
    pub partitions: Vec<PartitionEvaluation>,
}

/// The verdict of the group looked at in `looks` (oldest first), with `group` the
/// group's observations of the same looks (from [`Observation::of_group`], or with a
/// consumer's own counts in them); `None` with fewer than two looks.
pub fn evaluate_group(looks: &[Backlog], group: &[Observation]) -> Option<GroupEvaluation> {
    let mut verdict = evaluate(group)?;
    let last = looks.last()?;
    let mut partitions = Vec::new();
    if last.partitions.len() > 1 {
        for p in &last.partitions {
            // A partition's looks, matched by id (partitions may be added meanwhile).
            let window: Vec<Observation> = looks
                .iter()
                .filter_map(|b| {
                    let q = b.partitions.iter().find(|q| q.partition == p.partition)?;
                    Some(Observation::of_partition(b, q))
                })
                .collect();
            if let Some(evaluation) = evaluate(&window) {
                partitions.push(PartitionEvaluation {
                    partition: p.partition,
                    evaluation,
                });
            }
        }
    }
    if matches!(verdict.verdict, Verdict::Ok | Verdict::Slow) {
        let worst = partitions
            .iter()
            .filter(|p| matches!(p.evaluation.verdict, Verdict::Stalled | Verdict::Stopped))
            .max_by_key(|p| {
                (
                    p.evaluation.verdict == Verdict::Stopped,
                    p.evaluation.backlog,
                )
            });
        if let Some(p) = worst {
            let name = p.partition.map_or("-".to_owned(), |n| n.to_string());
            verdict.verdict = p.evaluation.verdict;
            verdict.reason = format!("partition {name}: {}", p.evaluation.reason);
        }
    }
    Some(GroupEvaluation {
        group: verdict,
        partitions,
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::adapter::PartitionBacklog;

    /// A look at two partitions: (backlog, committed) each.
    fn look(at: u64, parts: [(u64, u64); 2]) -> Backlog {
        let mut b = Backlog::new(
            parts
                .iter()
                .enumerate()
                .map(|(i, &(backlog, settled))| {
                    let mut p = PartitionBacklog::new(Some(i as i32), backlog);
                    p.settled = Some(settled);
                    p
                })
                .collect(),
        );
        b.taken_at = SystemTime::UNIX_EPOCH + Duration::from_secs(at);
        b.consumers = Some(1);
        b
    }

    #[test]
    fn one_stuck_partition_makes_the_group_stalled() {
        let looks = [
            look(0, [(5, 100), (3, 50)]),
            look(5, [(6, 100), (2, 90)]),
            look(10, [(8, 100), (1, 130)]),
        ];
        let group: Vec<Observation> = looks.iter().map(Observation::of_group).collect();
        let e = evaluate_group(&looks, &group).unwrap();
        assert_eq!(e.partitions.len(), 2);
        assert_eq!(e.partitions[0].evaluation.verdict, Verdict::Stalled);
        assert_eq!(e.partitions[1].evaluation.verdict, Verdict::Ok);
        assert_eq!(e.group.verdict, Verdict::Stalled, "{}", e.group.reason);
        assert!(
            e.group.reason.starts_with("partition 0: "),
            "{}",
            e.group.reason
        );
    }

    #[test]
    fn healthy_partitions_leave_the_group_verdict_alone() {
        let looks = [look(0, [(5, 100), (3, 50)]), look(5, [(0, 110), (0, 60)])];
        let group: Vec<Observation> = looks.iter().map(Observation::of_group).collect();
        let e = evaluate_group(&looks, &group).unwrap();
        assert_eq!(e.group.verdict, Verdict::Ok);
        assert!(e
            .partitions
            .iter()
            .all(|p| p.evaluation.verdict == Verdict::Ok));
    }
}
