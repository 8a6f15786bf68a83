//! Checkpoint files in Kafka's text format, written atomically.
//!
//! ```text
//! 1                      <- format version
//! 2                      <- entry count
//! orders 0 1500 <id>     <- one entry per line
//! orders 1 1490 <id>
//! ```
//!
//! Offset checkpoints (`recovery-point-offset-checkpoint`, `log-start-offset-checkpoint`)
//! hold `topic partition offset topic-id` lines (version 1; Kafka's version 0 has no
//! topic id and is still read). The topic id ties an entry to one incarnation of the
//! topic: a topic deleted and created again under the same name gets a new id, so the
//! old incarnation's offsets are never applied to the new directory. The
//! `leader-epoch-checkpoint` of a partition holds `epoch start_offset` lines (version 0).
//! A file that does not parse is an error for the caller to handle (offset checkpoints
//! fall back to full recovery), never a panic.

use std::collections::BTreeMap;
use std::path::Path;

use uuid::Uuid;

use crate::error::{Error, Result};
use crate::fsio::{read_file, write_atomic, FileSystem};
use crate::ids::{kafka_uuid_string, parse_kafka_uuid};

const VERSION: &str = "0";
/// Offset checkpoints with topic ids.
const OFFSETS_VERSION: &str = "1";

/// Writes `lines` under the version and count header.
pub fn write_lines(fs: &dyn FileSystem, path: &Path, lines: &[String]) -> Result<()> {
    write_atomic(fs, path, &encode_lines(lines))
}

/// `lines` under the version and count header.
pub fn encode_lines(lines: &[String]) -> Vec<u8> {
    encode_versioned(VERSION, lines)
}

fn encode_versioned(version: &str, lines: &[String]) -> Vec<u8> {
    let mut text = format!("{version}\n{}\n", lines.len());
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    text.into_bytes()
}

/// Reads the entry lines, or `None` if the file does not exist.
pub fn read_lines(fs: &dyn FileSystem, path: &Path) -> Result<Option<Vec<String>>> {
    match read_versioned(fs, path)? {
        Some((version, lines)) if version == VERSION => Ok(Some(lines)),
        Some(_) => Err(Error::ParseFile {
            path: path.to_path_buf(),
            reason: "unknown version".into(),
        }),
        None => Ok(None),
    }
}

fn read_versioned(fs: &dyn FileSystem, path: &Path) -> Result<Option<(String, Vec<String>)>> {
    if !fs.exists(path) {
        return Ok(None);
    }
    let bad = |reason: &str| Error::ParseFile {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let raw = read_file(fs, path)?;
    let text = String::from_utf8(raw).map_err(|_| bad("not UTF-8"))?;
    let mut lines = text.lines();
    let version = lines
        .next()
        .filter(|v| *v == VERSION || *v == OFFSETS_VERSION)
        .ok_or_else(|| bad("unknown version"))?
        .to_string();
    let count: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| bad("missing entry count"))?;
    let entries: Vec<String> = lines.map(str::to_string).collect();
    if entries.len() != count {
        return Err(bad("entry count does not match the entries"));
    }
    Ok(Some((version, entries)))
}

/// One offset checkpoint entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    pub offset: i64,
    /// The topic incarnation it belongs to (`None` in Kafka's version 0 files).
    pub topic_id: Option<Uuid>,
}

/// Offset entries keyed by partition directory name (`topic-partition`).
pub fn read_offsets(
    fs: &dyn FileSystem,
    path: &Path,
) -> Result<Option<BTreeMap<String, OffsetEntry>>> {
    let Some((version, lines)) = read_versioned(fs, path)? else {
        return Ok(None);
    };
    let bad = |line: &str| Error::ParseFile {
        path: path.to_path_buf(),
        reason: format!("bad entry {line:?}"),
    };
    let mut offsets = BTreeMap::new();
    for line in lines {
        // Topic names cannot contain spaces, so splitting from the right is unambiguous.
        let (rest, topic_id) = if version == OFFSETS_VERSION {
            let (rest, id) = line.rsplit_once(' ').ok_or_else(|| bad(&line))?;
            (rest, Some(parse_kafka_uuid(id).ok_or_else(|| bad(&line))?))
        } else {
            (line.as_str(), None)
        };
        let mut parts = rest.rsplitn(3, ' ');
        let (Some(offset), Some(partition), Some(topic)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad(&line));
        };
        let (Ok(offset), Ok(partition)) = (offset.parse::<i64>(), partition.parse::<i32>()) else {
            return Err(bad(&line));
        };
        offsets.insert(
            format!("{topic}-{partition}"),
            OffsetEntry { offset, topic_id },
        );
    }
    Ok(Some(offsets))
}

/// Writes `(topic, partition, offset, topic id)` entries.
pub fn write_offsets(
    fs: &dyn FileSystem,
    path: &Path,
    entries: &[(String, i32, i64, Uuid)],
) -> Result<()> {
    let lines: Vec<String> = entries
        .iter()
        .map(|(t, p, o, id)| format!("{t} {p} {o} {}", kafka_uuid_string(*id)))
        .collect();
    write_atomic(fs, path, &encode_versioned(OFFSETS_VERSION, &lines))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsio::RealFs;

    #[test]
    fn offsets_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("recovery-point-offset-checkpoint");
        assert_eq!(read_offsets(&RealFs, &path).unwrap(), None);
        let (a, x) = (Uuid::new_v4(), Uuid::new_v4());
        write_offsets(
            &RealFs,
            &path,
            &[("a.b-c".into(), 0, 10, a), ("x".into(), 12, 0, x)],
        )
        .unwrap();
        let read = read_offsets(&RealFs, &path).unwrap().unwrap();
        assert_eq!(
            read.get("a.b-c-0"),
            Some(&OffsetEntry {
                offset: 10,
                topic_id: Some(a)
            })
        );
        assert_eq!(read.get("x-12").map(|e| e.topic_id), Some(Some(x)));
    }

    #[test]
    fn kafkas_version_0_is_read_without_topic_ids() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp");
        std::fs::write(&path, "0\n1\norders 3 42\n").unwrap();
        let read = read_offsets(&RealFs, &path).unwrap().unwrap();
        assert_eq!(
            read.get("orders-3"),
            Some(&OffsetEntry {
                offset: 42,
                topic_id: None
            })
        );
    }

    #[test]
    fn a_truncated_checkpoint_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp");
        std::fs::write(&path, "0\n3\na 0 1\n").unwrap();
        assert!(read_offsets(&RealFs, &path).is_err());
        std::fs::write(&path, "").unwrap();
        assert!(read_offsets(&RealFs, &path).is_err());
    }
}
