//! The one seam every byte of file I/O passes through.
//!
//! Logs, indexes, checkpoints and the embedded metadata store never touch `std::fs`
//! directly: they hold an `Arc<dyn FileSystem>`. Production uses [`RealFs`]; the fault
//! tests use [`sim::SimFs`], which keeps a durable prefix per file that only
//! `sync_data` advances and can cut power, so that a test proves fsync ordering rather
//! than page-cache luck (kill -9 leaves the page cache intact and only proves recovery).

pub mod sim;

use std::fmt;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};

/// How a file is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Read and write; create the file if it is missing, keep its contents otherwise.
    Create,
    /// Read and write; fail if the file exists.
    CreateNew,
    /// Read and write an existing file.
    Existing,
    /// Read an existing file.
    ReadOnly,
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub is_dir: bool,
}

/// A file handle. Positional reads and writes only, so handles can be shared between
/// the appender, readers and the flusher without a cursor to fight over.
pub trait LogFile: Send + Sync + fmt::Debug {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize>;
    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()>;
    /// fdatasync: after it returns, everything written before the call survives power loss.
    fn sync_data(&self) -> io::Result<()>;
    fn set_len(&self, len: u64) -> io::Result<()>;
    fn len(&self) -> io::Result<u64>;
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
}

/// The file system holding a directory, synced as a whole.
pub trait Volume: Send + Sync + fmt::Debug {
    /// syncfs: every file's data and every directory entry on the file system becomes
    /// durable. An error means some writeback on it failed since this handle was opened,
    /// not which file: callers find out by syncing files one by one.
    fn sync_all(&self) -> io::Result<()>;
}

/// Directory operations. A new directory entry (created, renamed or removed file) is
/// durable only after `sync_dir` on its parent.
pub trait FileSystem: Send + Sync + fmt::Debug {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn LogFile>>;
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    fn list_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    fn exists(&self, path: &Path) -> bool;
    /// Takes an exclusive lock that keeps a second broker out of the directory.
    fn lock_dir(&self, path: &Path) -> io::Result<DirLock>;
    /// A handle on the file system holding `dir`, or `None` where syncing a whole file
    /// system cannot be trusted to report errors.
    fn open_volume(&self, dir: &Path) -> io::Result<Option<Arc<dyn Volume>>>;
}

/// Held for as long as the broker uses a log directory.
#[derive(Debug)]
pub struct DirLock {
    _file: Option<std::fs::File>,
}

impl DirLock {
    /// A lock that guards nothing, for file systems without other processes.
    pub fn unguarded() -> Self {
        DirLock { _file: None }
    }
}

/// The operating system's file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

#[derive(Debug)]
struct RealFile {
    file: std::fs::File,
}

impl LogFile for RealFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        self.file.read_at(buf, pos)
    }

    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        self.file.write_all_at(buf, pos)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
}

/// A directory handle kept open so that syncfs reports every writeback error since the
/// broker started (Linux samples the file system's error sequence when it is opened).
#[derive(Debug)]
struct RealVolume {
    dir: std::fs::File,
}

impl Volume for RealVolume {
    fn sync_all(&self) -> io::Result<()> {
        rustix::fs::syncfs(&self.dir).map_err(io::Error::from)
    }
}

/// syncfs reports writeback errors only from Linux 5.8 on; before that it can return
/// success after losing data.
fn syncfs_reports_errors() -> bool {
    let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") else {
        return false;
    };
    let mut parts = release
        .trim()
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (5, 8)
}

impl FileSystem for RealFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn LogFile>> {
        let mut options = std::fs::OpenOptions::new();
        options.read(true);
        match mode {
            OpenMode::Create => options.write(true).create(true),
            OpenMode::CreateNew => options.write(true).create_new(true),
            OpenMode::Existing => options.write(true),
            OpenMode::ReadOnly => &mut options,
        };
        let file = options.open(path)?;
        Ok(Arc::new(RealFile { file }))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(path)? {
            let entry = entry?;
            entries.push(DirEntry {
                name: entry.file_name().to_string_lossy().into_owned(),
                is_dir: entry.file_type()?.is_dir(),
            });
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir_all(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::File::open(path)?.sync_all()
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn lock_dir(&self, path: &Path) -> io::Result<DirLock> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path.join(".lock"))?;
        match file.try_lock() {
            Ok(()) => Ok(DirLock { _file: Some(file) }),
            Err(std::fs::TryLockError::WouldBlock) => Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "the directory is locked by another process",
            )),
            Err(std::fs::TryLockError::Error(err)) => Err(err),
        }
    }

    fn open_volume(&self, dir: &Path) -> io::Result<Option<Arc<dyn Volume>>> {
        if !syncfs_reports_errors() {
            return Ok(None);
        }
        let dir = std::fs::File::open(dir)?;
        Ok(Some(Arc::new(RealVolume { dir })))
    }
}

/// Reads exactly `buf.len()` bytes at `pos`, failing on a short file.
pub fn read_exact_at(file: &dyn LogFile, buf: &mut [u8], pos: u64) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let n = file.read_at(&mut buf[done..], pos + done as u64)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file ended before the requested range",
            ));
        }
        done += n;
    }
    Ok(())
}

/// Reads a whole (small) file.
pub fn read_file(fs: &dyn FileSystem, path: &Path) -> Result<Vec<u8>> {
    let read = || -> io::Result<Vec<u8>> {
        let file = fs.open(path, OpenMode::ReadOnly)?;
        let len = usize::try_from(file.len()?).map_err(io::Error::other)?;
        let mut buf = vec![0; len];
        read_exact_at(file.as_ref(), &mut buf, 0)?;
        Ok(buf)
    };
    read().map_err(|source| Error::ReadFile {
        path: path.to_path_buf(),
        source,
    })
}

/// Replaces `path` with `contents` so that a crash leaves either the old or the new file:
/// write a temporary file, fsync it, rename it over the target, fsync the directory.
pub fn write_atomic(fs: &dyn FileSystem, path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    let write = || -> io::Result<()> {
        if fs.exists(&tmp) {
            fs.remove_file(&tmp)?;
        }
        let file = fs.open(&tmp, OpenMode::CreateNew)?;
        file.write_all_at(contents, 0)?;
        file.sync_data()
    };
    write().map_err(|source| Error::WriteFile {
        path: tmp.clone(),
        source,
    })?;
    fs.rename(&tmp, path).map_err(|source| Error::RenameFile {
        from: tmp.clone(),
        to: path.to_path_buf(),
        source,
    })?;
    sync_parent(fs, path)
}

/// Creates `dir` (and missing parents) and makes every created entry durable: each new
/// directory's entry in its parent, from the outermost new one in.
pub fn create_dir_durable(fs: &dyn FileSystem, dir: &Path) -> Result<()> {
    let missing: Vec<&Path> = dir.ancestors().take_while(|a| !fs.exists(a)).collect();
    fs.create_dir_all(dir).map_err(|source| Error::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    for created in missing.into_iter().rev() {
        sync_parent(fs, created)?;
    }
    Ok(())
}

/// fsyncs the directory holding `path`.
pub fn sync_parent(fs: &dyn FileSystem, path: &Path) -> Result<()> {
    let parent = path.parent().unwrap_or(Path::new("."));
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    fs.sync_dir(parent).map_err(|source| Error::SyncDir {
        path: parent.to_path_buf(),
        source,
    })
}

/// The name of the temporary file `write_atomic` uses for `path`.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_contents_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint");
        write_atomic(&RealFs, &path, b"one").unwrap();
        write_atomic(&RealFs, &path, b"two").unwrap();
        assert_eq!(read_file(&RealFs, &path).unwrap(), b"two");
        assert!(!tmp_path(&path).exists());
    }

    #[test]
    fn a_second_lock_on_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = RealFs.lock_dir(dir.path()).unwrap();
        assert!(RealFs.lock_dir(dir.path()).is_err());
    }

    #[test]
    fn create_dir_durable_makes_every_new_level_durable() {
        use crate::fsio::sim::{CutMode, SimFs};
        let fs = SimFs::new();
        create_dir_durable(&fs, Path::new("/a/b/c")).unwrap();
        let after = fs.power_cut(CutMode::LoseUnsynced);
        assert!(
            after.exists(Path::new("/a/b/c")),
            "all three levels survive a cut"
        );
    }
}
