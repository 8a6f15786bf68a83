//! DescribeLogDirs: every log directory with the size of each partition in it and (v4)
//! the volume's total and usable bytes.

use std::collections::BTreeMap;
use std::path::Path;

use proto_kafka::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use proto_kafka::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};

use super::{str_bytes, Context};

/// (total, usable) bytes of the volume holding `dir`, or -1 each when unknown.
fn volume(dir: &Path) -> (i64, i64) {
    match rustix::fs::statvfs(dir) {
        Ok(s) => (
            (s.f_blocks.saturating_mul(s.f_frsize)) as i64,
            (s.f_bavail.saturating_mul(s.f_frsize)) as i64,
        ),
        Err(_) => (-1, -1),
    }
}

pub fn describe_log_dirs(
    ctx: &Context,
    request: DescribeLogDirsRequest,
    version: i16,
) -> DescribeLogDirsResponse {
    let wanted = |topic: &str, partition: i32| {
        request.topics.as_ref().is_none_or(|ts| {
            ts.iter()
                .any(|t| t.topic.0.as_str() == topic && t.partitions.contains(&partition))
        })
    };
    // log dir → topic → [(partition, size)]
    let mut dirs: BTreeMap<std::path::PathBuf, BTreeMap<String, Vec<(i32, u64)>>> = ctx
        .replicas
        .log_dirs()
        .into_iter()
        .map(|d| (d, BTreeMap::new()))
        .collect();
    for partition in ctx.replicas.all() {
        if !wanted(&partition.topic, partition.index) {
            continue;
        }
        let (dir, size) = partition.log_dir_and_size();
        dirs.entry(dir)
            .or_default()
            .entry(partition.topic.to_string())
            .or_default()
            .push((partition.index, size));
    }
    let results = dirs
        .into_iter()
        .map(|(dir, topics)| {
            let absolute = std::fs::canonicalize(&dir).unwrap_or(dir);
            let mut result = DescribeLogDirsResult::default()
                .with_log_dir(str_bytes(absolute.display().to_string()))
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(name, mut partitions)| {
                            partitions.sort_unstable();
                            DescribeLogDirsTopic::default()
                                .with_name(TopicName(str_bytes(name)))
                                .with_partitions(
                                    partitions
                                        .into_iter()
                                        .map(|(index, size)| {
                                            DescribeLogDirsPartition::default()
                                                .with_partition_index(index)
                                                .with_partition_size(size as i64)
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                );
            if version >= 4 {
                let (total, usable) = volume(&absolute);
                result = result.with_total_bytes(total).with_usable_bytes(usable);
            }
            result
        })
        .collect();
    DescribeLogDirsResponse::default().with_results(results)
}
