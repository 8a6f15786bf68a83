//! Checkpoint files in Kafka's text format, written atomically.
//!
//! ```text
//! 0                      <- format version
//! 2                      <- entry count
//! orders 0 1500          <- one entry per line
//! orders 1 1490
//! ```
//!
//! Offset checkpoints (`recovery-point-offset-checkpoint`, `log-start-offset-checkpoint`)
//! hold `topic partition offset` lines; the `leader-epoch-checkpoint` of a partition holds
//! `epoch start_offset` lines. A file that does not parse is an error for the caller to
//! handle (offset checkpoints fall back to full recovery), never a panic.

use std::collections::BTreeMap;
use std::path::Path;

use super::io::{read_file, write_atomic, FileSystem};
use crate::error::{Error, Result};

const VERSION: &str = "0";

/// Writes `lines` under the version and count header.
pub fn write_lines(fs: &dyn FileSystem, path: &Path, lines: &[String]) -> Result<()> {
    let mut text = format!("{VERSION}\n{}\n", lines.len());
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    write_atomic(fs, path, text.as_bytes())
}

/// Reads the entry lines, or `None` if the file does not exist.
pub fn read_lines(fs: &dyn FileSystem, path: &Path) -> Result<Option<Vec<String>>> {
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
    if lines.next() != Some(VERSION) {
        return Err(bad("unknown version"));
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| bad("missing entry count"))?;
    let entries: Vec<String> = lines.map(str::to_string).collect();
    if entries.len() != count {
        return Err(bad("entry count does not match the entries"));
    }
    Ok(Some(entries))
}

/// `topic partition offset` entries keyed by partition directory name (`topic-partition`).
pub fn read_offsets(fs: &dyn FileSystem, path: &Path) -> Result<Option<BTreeMap<String, i64>>> {
    let Some(lines) = read_lines(fs, path)? else {
        return Ok(None);
    };
    let mut offsets = BTreeMap::new();
    for line in lines {
        // Topic names cannot contain spaces, so splitting from the right is unambiguous.
        let mut parts = line.rsplitn(3, ' ');
        let (Some(offset), Some(partition), Some(topic)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(Error::ParseFile {
                path: path.to_path_buf(),
                reason: format!("bad entry {line:?}"),
            });
        };
        let (Ok(offset), Ok(partition)) = (offset.parse::<i64>(), partition.parse::<i32>()) else {
            return Err(Error::ParseFile {
                path: path.to_path_buf(),
                reason: format!("bad entry {line:?}"),
            });
        };
        offsets.insert(format!("{topic}-{partition}"), offset);
    }
    Ok(Some(offsets))
}

/// Writes `(topic, partition, offset)` entries.
pub fn write_offsets(
    fs: &dyn FileSystem,
    path: &Path,
    entries: &[(String, i32, i64)],
) -> Result<()> {
    let lines: Vec<String> = entries
        .iter()
        .map(|(t, p, o)| format!("{t} {p} {o}"))
        .collect();
    write_lines(fs, path, &lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::io::RealFs;

    #[test]
    fn offsets_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("recovery-point-offset-checkpoint");
        assert_eq!(read_offsets(&RealFs, &path).unwrap(), None);
        write_offsets(
            &RealFs,
            &path,
            &[("a.b-c".into(), 0, 10), ("x".into(), 12, 0)],
        )
        .unwrap();
        let read = read_offsets(&RealFs, &path).unwrap().unwrap();
        assert_eq!(read.get("a.b-c-0"), Some(&10));
        assert_eq!(read.get("x-12"), Some(&0));
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
