//! The broker's log directories: their identity file, lock, clean-shutdown marker and
//! checkpoints, the partition directories found in them, and where new ones go.
//!
//! Per log directory:
//! - `meta.properties`: `version`, `cluster.id`, `node.id`, `directory.id`, checked at
//!   start so a directory is never served by the wrong broker or cluster;
//! - `.lock`: held while the broker runs;
//! - `.clean-shutdown`: written after a graceful shutdown synced everything, removed at
//!   start; when present, segments are trusted and recovery is skipped;
//! - `recovery-point-offset-checkpoint` and `log-start-offset-checkpoint`, whose entries
//!   carry the topic id: an entry is applied only to the incarnation it was written for.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tracing::{info, warn};
use uuid::Uuid;

use super::checkpoint::{read_offsets, write_offsets, OffsetEntry};
use super::partition_log::{LogConfig, OpenOptions, OpenReport, PartitionLog};
use crate::error::{Error, Result};
use crate::fsio::{create_dir_durable, read_file, sync_parent, write_atomic, DirLock, FileSystem};
use crate::ids::kafka_uuid_string;

pub const META_PROPERTIES: &str = "meta.properties";
pub const CLEAN_SHUTDOWN: &str = ".clean-shutdown";
pub const RECOVERY_POINTS: &str = "recovery-point-offset-checkpoint";
pub const LOG_STARTS: &str = "log-start-offset-checkpoint";

#[derive(Debug)]
struct LogDir {
    path: PathBuf,
    clean_shutdown: bool,
    recovery_points: BTreeMap<String, OffsetEntry>,
    log_starts: BTreeMap<String, OffsetEntry>,
    partitions: AtomicUsize,
    _lock: DirLock,
}

/// A partition directory found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalLog {
    pub path: PathBuf,
    pub topic: String,
    pub partition: i32,
    dir_index: usize,
}

/// One entry of a checkpoint write.
#[derive(Debug, Clone)]
pub struct CheckpointEntry {
    pub dir: PathBuf,
    pub topic: String,
    pub partition: i32,
    pub topic_id: Uuid,
    pub recovery_point: i64,
    pub log_start_offset: i64,
}

#[derive(Debug)]
pub struct LogManager {
    fs: Arc<dyn FileSystem>,
    dirs: Vec<LogDir>,
    broker_id: i32,
}

/// `topic-3` → ("topic", 3). Topic names may contain '-', so split at the last one.
pub fn parse_partition_dir(name: &str) -> Option<(String, i32)> {
    let (topic, partition) = name.rsplit_once('-')?;
    if topic.is_empty() || partition.is_empty() || !partition.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if crate::ids::invalid_topic_name(topic).is_some() {
        return None;
    }
    Some((topic.to_string(), partition.parse().ok()?))
}

fn parse_properties(raw: &[u8]) -> BTreeMap<String, String> {
    String::from_utf8_lossy(raw)
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

impl LogManager {
    /// Opens and locks every log directory, checks its broker id, and takes the
    /// clean-shutdown marker (removing it, so a crash from now on means recovery).
    pub fn open(fs: Arc<dyn FileSystem>, paths: &[PathBuf], broker_id: i32) -> Result<LogManager> {
        let mut dirs = Vec::with_capacity(paths.len());
        for path in paths {
            create_dir_durable(fs.as_ref(), path)?;
            let lock = fs.lock_dir(path).map_err(|source| Error::LockDir {
                path: path.clone(),
                source,
            })?;
            let meta_path = path.join(META_PROPERTIES);
            if fs.exists(&meta_path) {
                let meta = parse_properties(&read_file(fs.as_ref(), &meta_path)?);
                let found = meta.get("node.id").or_else(|| meta.get("broker.id"));
                if found.map(String::as_str) != Some(broker_id.to_string().as_str()) {
                    return Err(Error::DataDirIdentity {
                        path: path.clone(),
                        expected: format!("broker {broker_id}"),
                        found: format!("broker {}", found.map_or("(none)", String::as_str)),
                    });
                }
            }
            let marker = path.join(CLEAN_SHUTDOWN);
            let clean_shutdown = fs.exists(&marker);
            let checkpoint = |name: &str| match read_offsets(fs.as_ref(), &path.join(name)) {
                Ok(found) => found.unwrap_or_default(),
                Err(err) => {
                    warn!(dir = %path.display(), error = %err, "ignoring a damaged checkpoint; affected logs are recovered in full");
                    BTreeMap::new()
                }
            };
            let recovery_points = checkpoint(RECOVERY_POINTS);
            let log_starts = checkpoint(LOG_STARTS);
            if clean_shutdown {
                fs.remove_file(&marker)
                    .map_err(|source| Error::RemoveFile {
                        path: marker.clone(),
                        source,
                    })?;
                sync_parent(fs.as_ref(), &marker)?;
            }
            info!(dir = %path.display(), clean_shutdown, "opened log directory");
            dirs.push(LogDir {
                path: path.clone(),
                clean_shutdown,
                recovery_points,
                log_starts,
                partitions: AtomicUsize::new(0),
                _lock: lock,
            });
        }
        Ok(LogManager {
            fs,
            dirs,
            broker_id,
        })
    }

    /// Writes `meta.properties` where missing and checks the cluster id where present.
    pub fn ensure_cluster_id(&self, cluster_id: &str) -> Result<()> {
        for dir in &self.dirs {
            let meta_path = dir.path.join(META_PROPERTIES);
            if self.fs.exists(&meta_path) {
                let meta = parse_properties(&read_file(self.fs.as_ref(), &meta_path)?);
                let found = meta.get("cluster.id").map_or("(none)", String::as_str);
                if found != cluster_id {
                    return Err(Error::DataDirIdentity {
                        path: dir.path.clone(),
                        expected: format!("cluster {cluster_id}"),
                        found: format!("cluster {found}"),
                    });
                }
                continue;
            }
            let text = format!(
                "version=1\ncluster.id={cluster_id}\nnode.id={}\ndirectory.id={}\n",
                self.broker_id,
                kafka_uuid_string(Uuid::new_v4())
            );
            write_atomic(self.fs.as_ref(), &meta_path, text.as_bytes())?;
        }
        Ok(())
    }

    /// Every partition directory on disk.
    pub fn discover(&self) -> Result<Vec<LocalLog>> {
        let mut found = Vec::new();
        for (dir_index, dir) in self.dirs.iter().enumerate() {
            let entries = self
                .fs
                .list_dir(&dir.path)
                .map_err(|source| Error::ReadDir {
                    path: dir.path.clone(),
                    source,
                })?;
            for entry in entries.into_iter().filter(|e| e.is_dir) {
                if let Some((topic, partition)) = parse_partition_dir(&entry.name) {
                    found.push(LocalLog {
                        path: dir.path.join(&entry.name),
                        topic,
                        partition,
                        dir_index,
                    });
                }
            }
        }
        Ok(found)
    }

    /// Opens a partition found on disk, recovering what the shutdown left untrusted.
    pub fn open_log(
        &self,
        local: &LocalLog,
        topic_id: Uuid,
        config: LogConfig,
    ) -> Result<(PartitionLog, OpenReport)> {
        let dir = &self.dirs[local.dir_index];
        let name = format!("{}-{}", local.topic, local.partition);
        // An entry of another incarnation (or without an id) is ignored: recovering in
        // full is always safe, trusting a stranger's recovery point or log start is not.
        let mine = |map: &BTreeMap<String, OffsetEntry>| {
            map.get(&name)
                .filter(|e| e.topic_id == Some(topic_id))
                .map(|e| e.offset)
        };
        let options = OpenOptions {
            clean_shutdown: dir.clean_shutdown,
            recovery_point: mine(&dir.recovery_points),
            log_start_offset: mine(&dir.log_starts),
        };
        let opened = PartitionLog::open(self.fs.clone(), &local.path, topic_id, config, options)?;
        dir.partitions.fetch_add(1, Ordering::Relaxed);
        Ok(opened)
    }

    /// Creates a new partition in the log directory holding the fewest partitions.
    pub fn create_log(
        &self,
        topic: &str,
        partition: i32,
        topic_id: Uuid,
        config: LogConfig,
    ) -> Result<PartitionLog> {
        let dir = self
            .dirs
            .iter()
            .min_by_key(|d| d.partitions.load(Ordering::Relaxed))
            .ok_or_else(|| Error::Startup {
                reason: "no log directory".into(),
            })?;
        let path = dir.path.join(format!("{topic}-{partition}"));
        let log = PartitionLog::create(self.fs.clone(), &path, topic_id, config)?;
        dir.partitions.fetch_add(1, Ordering::Relaxed);
        Ok(log)
    }

    /// Moves a partition directory that belongs to another topic incarnation aside
    /// (Kafka's "stray" logs), so a new one can be created in its place.
    pub fn set_aside(&self, local: &LocalLog, found_id: Option<Uuid>) -> Result<()> {
        let suffix = found_id.map_or_else(|| "unknown".to_string(), kafka_uuid_string);
        let mut name = local
            .path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        name.push_str(&format!(".{suffix}-stray"));
        let to = local.path.with_file_name(name);
        warn!(from = %local.path.display(), to = %to.display(), "setting aside a partition directory of another topic incarnation");
        self.fs
            .rename(&local.path, &to)
            .map_err(|source| Error::RenameFile {
                from: local.path.clone(),
                to: to.clone(),
                source,
            })?;
        sync_parent(self.fs.as_ref(), &local.path)
    }

    /// Writes the recovery-point and log-start checkpoints of every log directory: the
    /// open logs' `entries`, plus the entries read at start for `unopened` logs (found on
    /// disk, not opened yet or failed to open), so those are not recovered in full later
    /// only because a checkpoint was written meanwhile.
    pub fn write_checkpoints(
        &self,
        entries: &[CheckpointEntry],
        unopened: &[LocalLog],
    ) -> Result<()> {
        for (index, dir) in self.dirs.iter().enumerate() {
            let mine: Vec<&CheckpointEntry> = entries
                .iter()
                .filter(|e| e.dir.parent() == Some(dir.path.as_path()))
                .collect();
            let carried = |map: &BTreeMap<String, OffsetEntry>| -> Vec<(String, i32, i64, Uuid)> {
                unopened
                    .iter()
                    .filter(|l| l.dir_index == index)
                    .filter_map(|l| {
                        let e = map.get(&format!("{}-{}", l.topic, l.partition))?;
                        Some((l.topic.clone(), l.partition, e.offset, e.topic_id?))
                    })
                    .collect()
            };
            let mut recovery: Vec<(String, i32, i64, Uuid)> = mine
                .iter()
                .map(|e| (e.topic.clone(), e.partition, e.recovery_point, e.topic_id))
                .collect();
            recovery.extend(carried(&dir.recovery_points));
            let mut starts: Vec<(String, i32, i64, Uuid)> = mine
                .iter()
                .map(|e| (e.topic.clone(), e.partition, e.log_start_offset, e.topic_id))
                .collect();
            starts.extend(carried(&dir.log_starts));
            write_offsets(self.fs.as_ref(), &dir.path.join(RECOVERY_POINTS), &recovery)?;
            write_offsets(self.fs.as_ref(), &dir.path.join(LOG_STARTS), &starts)?;
        }
        Ok(())
    }

    /// Writes the clean-shutdown marker in every directory; call after every log was
    /// closed (synced) and the checkpoints written.
    pub fn mark_clean_shutdown(&self) -> Result<()> {
        for dir in &self.dirs {
            write_atomic(self.fs.as_ref(), &dir.path.join(CLEAN_SHUTDOWN), b"")?;
        }
        Ok(())
    }

    pub fn fs(&self) -> &Arc<dyn FileSystem> {
        &self.fs
    }

    pub fn dirs(&self) -> Vec<&Path> {
        self.dirs.iter().map(|d| d.path.as_path()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsio::RealFs;

    #[test]
    fn partition_directories_split_at_the_last_dash() {
        assert_eq!(
            parse_partition_dir("my-topic-12"),
            Some(("my-topic".into(), 12))
        );
        assert_eq!(parse_partition_dir("runnel-metadata"), None);
        assert_eq!(parse_partition_dir("t-0.abc-stray"), None);
        assert_eq!(parse_partition_dir("-1"), None);
    }

    #[test]
    fn a_directory_of_another_broker_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let fs: Arc<dyn FileSystem> = Arc::new(RealFs);
        let manager = LogManager::open(fs.clone(), &[dir.path().to_path_buf()], 1).unwrap();
        manager.ensure_cluster_id("c1").unwrap();
        drop(manager);
        let err = LogManager::open(fs.clone(), &[dir.path().to_path_buf()], 2).unwrap_err();
        assert!(matches!(err, Error::DataDirIdentity { .. }), "{err}");
        let manager = LogManager::open(fs, &[dir.path().to_path_buf()], 1).unwrap();
        assert!(manager.ensure_cluster_id("c2").is_err());
    }

    #[test]
    fn the_clean_shutdown_marker_is_taken_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let fs: Arc<dyn FileSystem> = Arc::new(RealFs);
        let manager = LogManager::open(fs.clone(), &[dir.path().to_path_buf()], 0).unwrap();
        manager.mark_clean_shutdown().unwrap();
        drop(manager);
        let manager = LogManager::open(fs, &[dir.path().to_path_buf()], 0).unwrap();
        assert!(manager.dirs[0].clean_shutdown);
        assert!(!dir.path().join(CLEAN_SHUTDOWN).exists());
    }
}
