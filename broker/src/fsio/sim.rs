//! A simulated file system that can lose power.
//!
//! Every file keeps two images: what the running system reads (the page cache) and what
//! would survive a power cut (the durable prefix), which only `sync_data` advances.
//! Directory entries follow the same rule: a created, renamed or removed entry is durable
//! only after `sync_dir` on its parent. [`SimFs::power_cut`] freezes this instance (every
//! later call fails, so the old broker can make nothing more durable) and returns a new
//! instance holding what a rebooted machine would find, optionally with a torn tail of
//! unsynced bytes, as a real disk may leave.
//!
//! Faults can be injected ([`SimFs::inject`]): a write, an fsync, a syncfs, a rename, a
//! directory sync or a file creation fails (on one path, or at random), or is slowed
//! down. A failed fsync behaves as Linux does after a writeback error: the dirty pages
//! are dropped from what would survive (the running system still reads them), the error
//! is reported once per open file description, and a later fsync of the same file
//! succeeds without making those bytes durable. syncfs reports the same error once per
//! volume handle, so a test can show that a caller which trusted a later success would
//! acknowledge lost data.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::{DirEntry, DirLock, FileSystem, LogFile, OpenMode, Volume};

/// What survives a power cut beyond the durable prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutMode {
    /// Exactly the durable prefix of every file survives.
    LoseUnsynced,
    /// A random part of each file's unsynced appended bytes survives too, and sometimes
    /// its last sector is garbage: the torn writes recovery must cut.
    TornTail { seed: u64 },
}

/// Counters a fault test asserts so that its pass cannot be vacuous.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SimStats {
    pub file_syncs: u64,
    pub dir_syncs: u64,
    /// Whole-file-system syncs (syncfs).
    pub volume_syncs: u64,
    pub bytes_written: u64,
    /// Unsynced bytes dropped by the last power cut.
    pub bytes_lost_at_cut: u64,
    /// Unsynced bytes kept (possibly garbled) by the last power cut.
    pub torn_bytes_kept_at_cut: u64,
    /// Injected failures that fired.
    pub faults_fired: u64,
}

/// An operation a fault can hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultOp {
    /// `write_all_at` on a file.
    Write,
    /// Writeback of a file's dirty pages: its `sync_data`, or a syncfs covering it.
    Sync,
    /// `sync_dir` of a directory.
    SyncDir,
    /// `rename` (matched on the source path).
    Rename,
    /// Creating a file (`open` with a create mode, on a missing file).
    Create,
}

/// Which calls a fault hits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultTarget {
    /// Calls on this path or anything under it.
    Path(PathBuf),
    /// Calls on paths whose file name ends with this suffix (e.g. `.log`).
    Suffix(String),
    /// Any path, with probability 1 in `one_in`, from a seeded generator.
    Random { one_in: u64, seed: u64 },
}

/// What a matching call does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultEffect {
    /// Fails with EIO (a sync also drops the file's dirty pages, as Linux does).
    Fail,
    /// Sleeps this long, then succeeds: a slow disk.
    Delay(Duration),
}

/// One injected fault.
#[derive(Debug, Clone)]
pub struct Fault {
    pub op: FaultOp,
    pub target: FaultTarget,
    pub effect: FaultEffect,
    /// How many calls it hits before it is spent (`None`: every matching call).
    pub times: Option<u64>,
}

#[derive(Debug)]
struct ArmedFault {
    fault: Fault,
    rng: SplitMix,
    fired: u64,
}

impl ArmedFault {
    fn matches(&mut self, op: FaultOp, path: &Path) -> bool {
        if self.fault.op != op || self.fault.times.is_some_and(|t| self.fired >= t) {
            return false;
        }
        let hit = match &self.fault.target {
            FaultTarget::Path(p) => path.starts_with(p),
            FaultTarget::Suffix(s) => path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with(s.as_str())),
            FaultTarget::Random { one_in, .. } => self.rng.next().is_multiple_of((*one_in).max(1)),
        };
        if hit {
            self.fired += 1;
        }
        hit
    }
}

#[derive(Debug, Default)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
    /// Lowest position changed since the last sync; `data[dirty_from..]` is not durable.
    dirty_from: usize,
    /// Writeback errors so far (Linux's per-mapping error sequence).
    errors: u64,
}

impl Inode {
    /// Writeback of the dirty range succeeded: it is durable now.
    fn persist(&mut self) {
        let from = self.dirty_from.min(self.data.len());
        self.durable.truncate(from);
        let tail = self.data[from..].to_vec();
        self.durable.extend_from_slice(&tail);
        self.dirty_from = self.data.len();
    }

    /// Writeback of the dirty range failed: the pages are marked clean without being
    /// written, so they are lost at the next cut and no later sync retries them.
    fn drop_dirty(&mut self) {
        let from = self.dirty_from.min(self.data.len());
        let kept = self.durable.len().min(from);
        self.durable.truncate(kept);
        self.dirty_from = self.data.len();
        self.errors += 1;
    }
}

#[derive(Debug, Clone)]
enum Node {
    Dir,
    File(Arc<Mutex<Inode>>),
}

#[derive(Debug, Default)]
struct State {
    crashed: bool,
    /// The namespace as the running system sees it.
    names: BTreeMap<PathBuf, Node>,
    /// The namespace as it would be after a power cut.
    durable_names: BTreeMap<PathBuf, Node>,
    stats: SimStats,
    faults: Vec<ArmedFault>,
    /// Writeback errors on the whole file system (Linux's superblock error sequence).
    volume_errors: u64,
}

impl State {
    /// The effect of an injected fault on `op` at `path`, if one fires.
    fn fault(&mut self, op: FaultOp, path: &Path) -> Option<FaultEffect> {
        let effect = self
            .faults
            .iter_mut()
            .find_map(|f| f.matches(op, path).then_some(f.fault.effect));
        if effect.is_some() {
            self.stats.faults_fired += 1;
        }
        effect
    }
}

fn injected(op: FaultOp, path: &Path) -> io::Error {
    io::Error::other(format!(
        "simulated I/O error (injected {op:?} fault on {})",
        path.display()
    ))
}

/// Applies a fault's effect outside the state lock: sleeps for a delay; returns whether
/// the call must fail.
fn fires(effect: Option<FaultEffect>) -> bool {
    match effect {
        Some(FaultEffect::Delay(d)) => {
            std::thread::sleep(d);
            false
        }
        Some(FaultEffect::Fail) => true,
        None => false,
    }
}

/// A file system in memory with a durable image per file.
#[derive(Clone)]
pub struct SimFs {
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for SimFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimFs").finish_non_exhaustive()
    }
}

impl Default for SimFs {
    fn default() -> Self {
        Self::new()
    }
}

fn crashed() -> io::Error {
    io::Error::other("simulated power loss: the machine is off")
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} not found", path.display()),
    )
}

fn lock_inode(inode: &Mutex<Inode>) -> MutexGuard<'_, Inode> {
    // A poisoned inode only means a test thread panicked mid-write; the data is still
    // what the simulation should show.
    inode.lock().unwrap_or_else(|e| e.into_inner())
}

impl SimFs {
    /// An empty file system whose root `/` exists durably.
    pub fn new() -> Self {
        let mut state = State::default();
        state.names.insert(PathBuf::from("/"), Node::Dir);
        state.durable_names.insert(PathBuf::from("/"), Node::Dir);
        SimFs {
            state: Arc::new(Mutex::new(state)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn live(&self) -> io::Result<MutexGuard<'_, State>> {
        let state = self.lock();
        if state.crashed {
            return Err(crashed());
        }
        Ok(state)
    }

    pub fn stats(&self) -> SimStats {
        self.lock().stats
    }

    /// Arms a fault; it stays armed until spent or [`SimFs::clear_faults`].
    pub fn inject(&self, fault: Fault) {
        let seed = match fault.target {
            FaultTarget::Random { seed, .. } => seed,
            _ => 0,
        };
        self.lock().faults.push(ArmedFault {
            fault,
            rng: SplitMix(seed),
            fired: 0,
        });
    }

    /// Disarms every fault.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Cuts power: this instance fails every later call, and the returned instance is
    /// the disk as the rebooted machine finds it.
    pub fn power_cut(&self, mode: CutMode) -> SimFs {
        let mut state = self.lock();
        state.crashed = true;
        let mut rng = SplitMix(match mode {
            CutMode::LoseUnsynced => 0,
            CutMode::TornTail { seed } => seed,
        });
        let mut after = State::default();
        let mut lost = 0u64;
        let mut kept = 0u64;
        let durable: Vec<(PathBuf, Node)> = state
            .durable_names
            .iter()
            .map(|(p, n)| (p.clone(), n.clone()))
            .collect();
        for (path, node) in durable {
            let reachable = path
                .ancestors()
                .skip(1)
                .all(|a| matches!(state.durable_names.get(a), Some(Node::Dir)));
            if !reachable {
                continue;
            }
            let node = match node {
                Node::Dir => Node::Dir,
                Node::File(inode) => {
                    let inode = lock_inode(&inode);
                    let mut data = inode.durable.clone();
                    let unsynced_tail = inode.data.len().saturating_sub(data.len());
                    let appended = inode.data.starts_with(&data);
                    if let (CutMode::TornTail { .. }, true, true) =
                        (mode, appended, unsynced_tail > 0)
                    {
                        let keep = (rng.next() % (unsynced_tail as u64 + 1)) as usize;
                        let start = data.len();
                        data.extend_from_slice(&inode.data[start..start + keep]);
                        if keep > 0 && rng.next().is_multiple_of(2) {
                            let garbage_from = data.len().saturating_sub(512).max(start);
                            for byte in &mut data[garbage_from..] {
                                *byte = rng.next() as u8;
                            }
                        }
                        kept += keep as u64;
                        lost += (unsynced_tail - keep) as u64;
                    } else {
                        lost += inode.data.len().abs_diff(data.len()) as u64;
                    }
                    Node::File(Arc::new(Mutex::new(Inode {
                        durable: data.clone(),
                        dirty_from: data.len(),
                        data,
                        errors: 0,
                    })))
                }
            };
            after.names.insert(path.clone(), node.clone());
            after.durable_names.insert(path, node);
        }
        after.stats.bytes_lost_at_cut = lost;
        after.stats.torn_bytes_kept_at_cut = kept;
        SimFs {
            state: Arc::new(Mutex::new(after)),
        }
    }

    /// Bytes written but not yet synced, over all files (0 once the machine is off).
    pub fn unsynced_bytes(&self) -> u64 {
        let state = self.lock();
        state
            .names
            .values()
            .filter_map(|node| match node {
                Node::File(inode) => {
                    let inode = lock_inode(inode);
                    Some(inode.data.len().saturating_sub(inode.dirty_from) as u64)
                }
                Node::Dir => None,
            })
            .sum()
    }

    /// Reads a file as the running system sees it (for tests that corrupt or inspect).
    pub fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let state = self.lock();
        match state.names.get(path) {
            Some(Node::File(inode)) => Ok(lock_inode(inode).data.clone()),
            _ => Err(not_found(path)),
        }
    }
}

impl FileSystem for SimFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn LogFile>> {
        let effect = {
            let mut state = self.live()?;
            let creates = matches!(mode, OpenMode::Create | OpenMode::CreateNew)
                && !state.names.contains_key(path);
            creates
                .then(|| state.fault(FaultOp::Create, path))
                .flatten()
        };
        if fires(effect) {
            return Err(injected(FaultOp::Create, path));
        }
        let mut state = self.live()?;
        let inode = match (state.names.get(path), mode) {
            (Some(Node::Dir), _) => {
                return Err(io::Error::other(format!(
                    "{} is a directory",
                    path.display()
                )))
            }
            (Some(Node::File(_)), OpenMode::CreateNew) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists", path.display()),
                ))
            }
            (Some(Node::File(inode)), _) => inode.clone(),
            (None, OpenMode::Create | OpenMode::CreateNew) => {
                let parent = path.parent().ok_or_else(|| not_found(path))?;
                if !matches!(state.names.get(parent), Some(Node::Dir)) {
                    return Err(not_found(parent));
                }
                let inode = Arc::new(Mutex::new(Inode::default()));
                state
                    .names
                    .insert(path.to_path_buf(), Node::File(inode.clone()));
                inode
            }
            (None, _) => return Err(not_found(path)),
        };
        let seen = lock_inode(&inode).errors;
        Ok(Arc::new(SimFile {
            fs: self.clone(),
            path: path.to_path_buf(),
            inode,
            writable: mode != OpenMode::ReadOnly,
            seen_errors: AtomicU64::new(seen),
        }))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut state = self.live()?;
        let mut missing: Vec<PathBuf> = Vec::new();
        for ancestor in path.ancestors() {
            match state.names.get(ancestor) {
                Some(Node::Dir) => break,
                Some(Node::File(_)) => {
                    return Err(io::Error::other(format!(
                        "{} is a file",
                        ancestor.display()
                    )))
                }
                None => missing.push(ancestor.to_path_buf()),
            }
        }
        for dir in missing {
            state.names.insert(dir, Node::Dir);
        }
        Ok(())
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        let state = self.live()?;
        if !matches!(state.names.get(path), Some(Node::Dir)) {
            return Err(not_found(path));
        }
        Ok(state
            .names
            .iter()
            .filter(|(p, _)| p.parent() == Some(path))
            .map(|(p, node)| DirEntry {
                name: p
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
                is_dir: matches!(node, Node::Dir),
            })
            .collect())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let effect = self.live()?.fault(FaultOp::Rename, from);
        if fires(effect) {
            return Err(injected(FaultOp::Rename, from));
        }
        let mut state = self.live()?;
        let moved: Vec<(PathBuf, Node)> = state
            .names
            .iter()
            .filter(|(p, _)| p.starts_with(from))
            .map(|(p, n)| (p.clone(), n.clone()))
            .collect();
        if moved.is_empty() {
            return Err(not_found(from));
        }
        for (old, node) in moved {
            state.names.remove(&old);
            let suffix = old.strip_prefix(from).map_err(io::Error::other)?;
            let new = if suffix.as_os_str().is_empty() {
                to.to_path_buf()
            } else {
                to.join(suffix)
            };
            state.names.insert(new, node);
        }
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut state = self.live()?;
        match state.names.get(path) {
            Some(Node::File(_)) => {
                state.names.remove(path);
                Ok(())
            }
            _ => Err(not_found(path)),
        }
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut state = self.live()?;
        if !state.names.contains_key(path) {
            return Err(not_found(path));
        }
        state.names.retain(|p, _| !p.starts_with(path));
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let effect = self.live()?.fault(FaultOp::SyncDir, path);
        if fires(effect) {
            return Err(injected(FaultOp::SyncDir, path));
        }
        let mut state = self.live()?;
        if !matches!(state.names.get(path), Some(Node::Dir)) {
            return Err(not_found(path));
        }
        let State {
            names,
            durable_names,
            stats,
            ..
        } = &mut *state;
        durable_names.retain(|p, _| p.parent() != Some(path));
        for (p, node) in names.iter().filter(|(p, _)| p.parent() == Some(path)) {
            durable_names.insert(p.clone(), node.clone());
        }
        stats.dir_syncs += 1;
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        self.lock().names.contains_key(path)
    }

    fn lock_dir(&self, _path: &Path) -> io::Result<DirLock> {
        Ok(DirLock::unguarded())
    }

    fn open_volume(&self, dir: &Path) -> io::Result<Option<Arc<dyn Volume>>> {
        drop(self.live()?);
        if !self.exists(dir) {
            return Err(not_found(dir));
        }
        let seen = self.lock().volume_errors;
        Ok(Some(Arc::new(SimVolume {
            fs: self.clone(),
            seen_errors: AtomicU64::new(seen),
        })))
    }
}

/// The whole simulated file system: one volume. Like a directory handle passed to
/// syncfs, it reports each writeback error on the file system once.
#[derive(Debug)]
struct SimVolume {
    fs: SimFs,
    seen_errors: AtomicU64,
}

impl Volume for SimVolume {
    fn sync_all(&self) -> io::Result<()> {
        let mut state = self.fs.live()?;
        let files: Vec<(PathBuf, Arc<Mutex<Inode>>)> = state
            .names
            .iter()
            .filter_map(|(p, n)| match n {
                Node::File(inode) => Some((p.clone(), inode.clone())),
                Node::Dir => None,
            })
            .collect();
        let mut delay = Duration::ZERO;
        for (path, inode) in files {
            let mut inode = lock_inode(&inode);
            let dirty = inode.dirty_from < inode.data.len();
            match dirty.then(|| state.fault(FaultOp::Sync, &path)).flatten() {
                Some(FaultEffect::Fail) => {
                    inode.drop_dirty();
                    state.volume_errors += 1;
                }
                Some(FaultEffect::Delay(d)) => {
                    delay += d;
                    inode.persist();
                }
                None => inode.persist(),
            }
        }
        state.durable_names = state.names.clone();
        state.stats.volume_syncs += 1;
        let errors = state.volume_errors;
        drop(state);
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        if self.seen_errors.swap(errors, Ordering::SeqCst) < errors {
            return Err(io::Error::other(
                "simulated I/O error: writeback failed on this file system",
            ));
        }
        Ok(())
    }
}

struct SimFile {
    fs: SimFs,
    path: PathBuf,
    inode: Arc<Mutex<Inode>>,
    writable: bool,
    /// The inode's writeback errors this handle has reported (its open file description).
    seen_errors: AtomicU64,
}

impl fmt::Debug for SimFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimFile").finish_non_exhaustive()
    }
}

impl LogFile for SimFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        drop(self.fs.live()?);
        let inode = lock_inode(&self.inode);
        let pos = usize::try_from(pos).map_err(io::Error::other)?;
        if pos >= inode.data.len() {
            return Ok(0);
        }
        let n = buf.len().min(inode.data.len() - pos);
        buf[..n].copy_from_slice(&inode.data[pos..pos + n]);
        Ok(n)
    }

    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        let effect = self.fs.live()?.fault(FaultOp::Write, &self.path);
        if fires(effect) {
            return Err(injected(FaultOp::Write, &self.path));
        }
        let mut state = self.fs.live()?;
        if !self.writable {
            return Err(io::Error::other("file opened read-only"));
        }
        state.stats.bytes_written += buf.len() as u64;
        let mut inode = lock_inode(&self.inode);
        let pos = usize::try_from(pos).map_err(io::Error::other)?;
        if inode.data.len() < pos + buf.len() {
            inode.data.resize(pos + buf.len(), 0);
        }
        inode.data[pos..pos + buf.len()].copy_from_slice(buf);
        inode.dirty_from = inode.dirty_from.min(pos);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut state = self.fs.live()?;
        state.stats.file_syncs += 1;
        let mut inode = lock_inode(&self.inode);
        let dirty = inode.dirty_from < inode.data.len();
        let effect = dirty
            .then(|| state.fault(FaultOp::Sync, &self.path))
            .flatten();
        match effect {
            Some(FaultEffect::Fail) => {
                inode.drop_dirty();
                state.volume_errors += 1;
            }
            _ => inode.persist(),
        }
        let errors = inode.errors;
        drop(inode);
        drop(state);
        if let Some(FaultEffect::Delay(d)) = effect {
            std::thread::sleep(d);
        }
        if self.seen_errors.swap(errors, Ordering::SeqCst) < errors {
            return Err(io::Error::other(format!(
                "simulated I/O error: writeback of {} failed",
                self.path.display()
            )));
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        drop(self.fs.live()?);
        let mut inode = lock_inode(&self.inode);
        let len = usize::try_from(len).map_err(io::Error::other)?;
        inode.data.resize(len, 0);
        inode.dirty_from = inode.dirty_from.min(len);
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        drop(self.fs.live()?);
        Ok(lock_inode(&self.inode).data.len() as u64)
    }
}

/// A small deterministic generator so a failing cut can be replayed from its seed.
#[derive(Debug)]
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsio::{read_file, write_atomic};

    fn data_dir(fs: &SimFs) -> PathBuf {
        let dir = PathBuf::from("/data");
        fs.create_dir_all(&dir).unwrap();
        fs.sync_dir(Path::new("/")).unwrap();
        dir
    }

    #[test]
    fn unsynced_writes_are_lost_and_synced_writes_survive() {
        let fs = SimFs::new();
        let dir = data_dir(&fs);
        let file = fs.open(&dir.join("a"), OpenMode::CreateNew).unwrap();
        fs.sync_dir(&dir).unwrap();
        file.write_all_at(b"durable", 0).unwrap();
        file.sync_data().unwrap();
        file.write_all_at(b"-lost", 7).unwrap();

        let after = fs.power_cut(CutMode::LoseUnsynced);
        assert_eq!(after.read(&dir.join("a")).unwrap(), b"durable");
        assert_eq!(after.stats().bytes_lost_at_cut, 5);
        assert!(
            file.write_all_at(b"x", 0).is_err(),
            "the old machine is off"
        );
    }

    #[test]
    fn a_file_whose_directory_entry_was_never_synced_disappears() {
        let fs = SimFs::new();
        let dir = data_dir(&fs);
        let file = fs.open(&dir.join("a"), OpenMode::CreateNew).unwrap();
        file.write_all_at(b"data", 0).unwrap();
        file.sync_data().unwrap();
        let after = fs.power_cut(CutMode::LoseUnsynced);
        assert!(!after.exists(&dir.join("a")));
    }

    #[test]
    fn write_atomic_survives_a_cut_with_the_new_contents() {
        let fs = SimFs::new();
        let dir = data_dir(&fs);
        write_atomic(&fs, &dir.join("cp"), b"old").unwrap();
        write_atomic(&fs, &dir.join("cp"), b"new").unwrap();
        let after = fs.power_cut(CutMode::LoseUnsynced);
        assert_eq!(read_file(&after, &dir.join("cp")).unwrap(), b"new");
    }

    #[test]
    fn torn_tail_keeps_part_of_the_unsynced_bytes() {
        let mut kept_some = false;
        for seed in 0..32 {
            let fs = SimFs::new();
            let dir = data_dir(&fs);
            let file = fs.open(&dir.join("a"), OpenMode::CreateNew).unwrap();
            fs.sync_dir(&dir).unwrap();
            file.write_all_at(&[1; 100], 0).unwrap();
            file.sync_data().unwrap();
            file.write_all_at(&[2; 1000], 100).unwrap();
            let after = fs.power_cut(CutMode::TornTail { seed });
            let data = after.read(&dir.join("a")).unwrap();
            assert!(data.len() >= 100 && data.len() <= 1100);
            assert_eq!(&data[..100], &[1; 100][..]);
            kept_some |= data.len() > 100;
        }
        assert!(kept_some);
    }

    fn fail(op: FaultOp, path: &Path, times: Option<u64>) -> Fault {
        Fault {
            op,
            target: FaultTarget::Path(path.to_path_buf()),
            effect: FaultEffect::Fail,
            times,
        }
    }

    #[test]
    fn a_failed_fsync_drops_the_dirty_pages_and_a_retry_reports_success_over_the_loss() {
        let fs = SimFs::new();
        let dir = data_dir(&fs);
        let path = dir.join("a");
        let file = fs.open(&path, OpenMode::CreateNew).unwrap();
        fs.sync_dir(&dir).unwrap();
        file.write_all_at(b"kept", 0).unwrap();
        file.sync_data().unwrap();
        file.write_all_at(b"-dropped", 4).unwrap();
        fs.inject(fail(FaultOp::Sync, &path, Some(1)));
        assert!(file.sync_data().is_err(), "the writeback error is reported");
        assert!(
            file.sync_data().is_ok(),
            "as on Linux, the retry succeeds: the pages were marked clean"
        );
        assert_eq!(
            file.len().unwrap(),
            12,
            "the running system still reads them"
        );
        let after = fs.power_cut(CutMode::LoseUnsynced);
        assert_eq!(after.read(&path).unwrap(), b"kept");
    }

    #[test]
    fn syncfs_reports_an_error_once_per_handle_and_the_file_still_reports_its_own() {
        let fs = SimFs::new();
        let dir = data_dir(&fs);
        let (a, b) = (dir.join("a"), dir.join("b"));
        let fa = fs.open(&a, OpenMode::CreateNew).unwrap();
        let fb = fs.open(&b, OpenMode::CreateNew).unwrap();
        let first = fs.open_volume(&dir).unwrap().unwrap();
        let second = fs.open_volume(&dir).unwrap().unwrap();
        fa.write_all_at(b"aaaa", 0).unwrap();
        fb.write_all_at(b"bbbb", 0).unwrap();
        fs.inject(fail(FaultOp::Sync, &a, Some(1)));
        assert!(first.sync_all().is_err());
        assert!(
            first.sync_all().is_ok(),
            "the error was consumed by the first call on this handle"
        );
        assert!(second.sync_all().is_err(), "each handle sees it once");
        assert!(fb.sync_data().is_ok());
        assert!(
            fa.sync_data().is_err(),
            "the file's own handle still reports it"
        );
        let after = fs.power_cut(CutMode::LoseUnsynced);
        assert_eq!(after.read(&b).unwrap(), b"bbbb");
        assert_eq!(after.read(&a).unwrap(), b"");
    }

    #[test]
    fn injected_write_rename_create_and_dir_sync_failures_change_nothing() {
        let fs = SimFs::new();
        let dir = data_dir(&fs);
        let path = dir.join("a");
        let file = fs.open(&path, OpenMode::CreateNew).unwrap();
        fs.inject(fail(FaultOp::Write, &path, Some(1)));
        assert!(file.write_all_at(b"x", 0).is_err());
        assert_eq!(file.len().unwrap(), 0);
        file.write_all_at(b"x", 0).unwrap();
        fs.inject(fail(FaultOp::Rename, &path, Some(1)));
        assert!(fs.rename(&path, &dir.join("b")).is_err());
        assert!(fs.exists(&path));
        fs.inject(fail(FaultOp::SyncDir, &dir, Some(1)));
        assert!(fs.sync_dir(&dir).is_err());
        let c = dir.join("c");
        fs.inject(fail(FaultOp::Create, &c, None));
        assert!(fs.open(&c, OpenMode::Create).is_err());
        assert!(!fs.exists(&c));
        assert_eq!(fs.stats().faults_fired, 4);
        let after = fs.power_cut(CutMode::LoseUnsynced);
        assert!(
            !after.exists(&path),
            "the failed directory sync made nothing durable"
        );
    }

    #[test]
    fn random_faults_replay_from_their_seed() {
        let run = |seed| {
            let fs = SimFs::new();
            let dir = data_dir(&fs);
            let file = fs.open(&dir.join("a"), OpenMode::CreateNew).unwrap();
            fs.inject(Fault {
                op: FaultOp::Write,
                target: FaultTarget::Random { one_in: 3, seed },
                effect: FaultEffect::Fail,
                times: None,
            });
            (0..64)
                .map(|i| file.write_all_at(b"x", i).is_ok())
                .collect::<Vec<bool>>()
        };
        assert_eq!(run(5), run(5));
        assert_ne!(run(5), run(6));
        assert!(run(5).iter().any(|ok| !ok) && run(5).iter().any(|ok| *ok));
    }
}
