//! The broker-wide flusher: a few threads that fsync dirty partitions.
//!
//! Appends only write to the page cache and ask for a flush. While a partition's flush
//! runs, its new appends queue up and are covered by its next flush: group commit across
//! requests, without a fixed delay. Several workers sync different partitions at once,
//! because devices overlap concurrent fsyncs (on this project's test machine eight files
//! synced in parallel take a third of the time of syncing them one after another); a
//! partition never has two flushes in flight, so its durable offset only covers files
//! that were synced. The workers are plain OS threads because fsync blocks; they never
//! hold a partition lock while syncing.
//!
//! When a worker finds many partitions waiting (`log.flush.bulk.threshold`), it takes
//! them all and syncs each log directory's file system once (syncfs) instead of one
//! fdatasync per file: with 64 dirty partitions that is five times faster and a seventh
//! of the kernel CPU here. syncfs cannot say which file failed, so on an error the
//! worker falls back to syncing the files one by one, which can.
//!
//! Linux reports a writeback error to syncfs once per open file description, and the
//! workers share one directory handle per volume. So a syncfs that fails may have
//! consumed an error that belongs to a file of another batch, and the next syncfs on the
//! handle would report success over pages the kernel dropped. Two rules close that:
//! syncfs calls on one volume never overlap (so a success covers everything written
//! before it since the previous call), and after the first failure the volume is never
//! trusted to syncfs again: every later flush there syncs file by file, and each file's
//! own handle still reports its error.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use tracing::{error, info, warn};

use super::partition_log::FlushTicket;
use crate::error::{Error, Result};
use crate::fsio::{write_atomic, FileSystem, Volume};

/// Something with a log to flush (a partition replica).
pub trait FlushTarget: Send + Sync {
    /// Takes the files to sync, or `None` if the log is clean.
    fn take_flush(&self) -> Option<FlushTicket>;
    /// Records the outcome; `ok` is false if any fsync failed.
    fn finish_flush(&self, ticket: &FlushTicket, ok: bool);
    /// For error logs.
    fn describe(&self) -> String;
}

/// Counters for /metrics and for tests that must show fsync really happened.
#[derive(Debug, Default)]
pub struct FlushStats {
    /// Flushes that synced something (one partition each).
    pub rounds: AtomicU64,
    pub file_syncs: AtomicU64,
    pub dir_syncs: AtomicU64,
    /// syncfs calls, each covering every partition of a bulk flush on that volume.
    pub volume_syncs: AtomicU64,
    pub failures: AtomicU64,
}

#[derive(Default)]
struct Queue {
    targets: VecDeque<Arc<dyn FlushTarget>>,
    queued: HashSet<usize>,
    /// Targets a worker is syncing now; they wait in `targets` until it is done.
    in_flight: HashSet<usize>,
    stop: bool,
}

impl Queue {
    /// Queued targets not being synced, taken out of the queue: all of them when there
    /// are at least `bulk` (0: never), else the first.
    fn next(&mut self, bulk: usize) -> Vec<Arc<dyn FlushTarget>> {
        let eligible = self
            .targets
            .iter()
            .filter(|t| !self.in_flight.contains(&target_id(t)))
            .count();
        let take = if bulk > 0 && eligible >= bulk {
            eligible
        } else {
            eligible.min(1)
        };
        let mut taken = Vec::with_capacity(take);
        let mut kept = VecDeque::with_capacity(self.targets.len() - take);
        for target in self.targets.drain(..) {
            let id = target_id(&target);
            if taken.len() < take && !self.in_flight.contains(&id) {
                self.queued.remove(&id);
                self.in_flight.insert(id);
                taken.push(target);
            } else {
                kept.push_back(target);
            }
        }
        self.targets = kept;
        taken
    }
}

/// A volume handle for syncfs, used by one worker at a time.
struct SharedVolume {
    volume: Arc<dyn Volume>,
    /// Set at the first failed syncfs: the handle may have consumed another file's error.
    poisoned: Mutex<bool>,
}

struct Inner {
    fs: Arc<dyn FileSystem>,
    /// Log directory → its volume, opened at start; empty when bulk flushes are off.
    volumes: HashMap<PathBuf, SharedVolume>,
    bulk_threshold: usize,
    queue: Mutex<Queue>,
    wake: Condvar,
    stats: Arc<FlushStats>,
    running: AtomicUsize,
}

/// A handle to the flusher threads; cheap to clone.
#[derive(Clone)]
pub struct Flusher {
    inner: Arc<Inner>,
}

impl fmt::Debug for Flusher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Flusher").finish_non_exhaustive()
    }
}

/// The flusher's threads, to join at shutdown.
#[derive(Debug)]
pub struct FlusherThreads(Vec<JoinHandle<()>>);

impl FlusherThreads {
    pub fn join(self) {
        for thread in self.0 {
            let _ = thread.join();
        }
    }
}

fn target_id(target: &Arc<dyn FlushTarget>) -> usize {
    Arc::as_ptr(target).cast::<()>() as usize
}

impl Flusher {
    /// Starts `threads` flusher threads (at least one). With `bulk_threshold` > 0, that
    /// many waiting partitions are synced with one syncfs per log directory in `log_dirs`.
    pub fn start(
        fs: Arc<dyn FileSystem>,
        threads: usize,
        log_dirs: &[PathBuf],
        bulk_threshold: usize,
    ) -> Result<(Flusher, FlusherThreads)> {
        let threads = threads.max(1);
        let mut volumes: HashMap<PathBuf, SharedVolume> = HashMap::new();
        if bulk_threshold > 0 {
            for dir in log_dirs {
                match fs.open_volume(dir) {
                    Ok(Some(volume)) => {
                        volumes.insert(
                            dir.clone(),
                            SharedVolume {
                                volume,
                                poisoned: Mutex::new(false),
                            },
                        );
                    }
                    Ok(None) => {
                        info!(dir = %dir.display(), "syncfs does not report errors on this kernel; flushing file by file")
                    }
                    Err(source) => {
                        return Err(Error::OpenFile {
                            path: dir.clone(),
                            source,
                        })
                    }
                }
            }
        }
        let bulk_threshold = if volumes.is_empty() {
            0
        } else {
            bulk_threshold
        };
        let inner = Arc::new(Inner {
            fs,
            volumes,
            bulk_threshold,
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            stats: Arc::new(FlushStats::default()),
            running: AtomicUsize::new(threads),
        });
        let mut handles = Vec::with_capacity(threads);
        for n in 0..threads {
            let thread_inner = inner.clone();
            let handle = std::thread::Builder::new()
                .name(format!("runnel-flusher-{n}"))
                .spawn(move || run(&thread_inner))
                .map_err(|source| Error::StartThread {
                    name: "runnel-flusher",
                    source,
                })?;
            handles.push(handle);
        }
        Ok((Flusher { inner }, FlusherThreads(handles)))
    }

    /// Asks for `target` to be flushed soon (once, however often it is asked before).
    pub fn request(&self, target: Arc<dyn FlushTarget>) {
        let mut queue = self.inner.queue.lock().unwrap_or_else(|e| e.into_inner());
        if queue.stop {
            return;
        }
        if queue.queued.insert(target_id(&target)) {
            queue.targets.push_back(target);
            self.inner.wake.notify_one();
        }
    }

    /// Stops the threads once the queue is empty; queued flushes still run.
    pub fn stop(&self) {
        let mut queue = self.inner.queue.lock().unwrap_or_else(|e| e.into_inner());
        queue.stop = true;
        self.inner.wake.notify_all();
    }

    pub fn stats(&self) -> Arc<FlushStats> {
        self.inner.stats.clone()
    }

    pub fn is_running(&self) -> bool {
        self.inner.running.load(Ordering::Relaxed) > 0
    }
}

fn run(inner: &Inner) {
    loop {
        let target = {
            let mut queue = inner.queue.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                let taken = queue.next(inner.bulk_threshold);
                if !taken.is_empty() {
                    break taken;
                }
                if queue.stop && queue.targets.is_empty() {
                    inner.running.fetch_sub(1, Ordering::Relaxed);
                    return;
                }
                queue = inner.wake.wait(queue).unwrap_or_else(|e| e.into_inner());
            }
        };
        flush(inner, &target);
        let mut queue = inner.queue.lock().unwrap_or_else(|e| e.into_inner());
        for t in &target {
            queue.in_flight.remove(&target_id(t));
        }
        // A request for this target that arrived meanwhile may be waiting for it.
        if !queue.targets.is_empty() || queue.stop {
            inner.wake.notify_all();
        }
    }
}

fn flush(inner: &Inner, targets: &[Arc<dyn FlushTarget>]) {
    let mut tickets: Vec<(&Arc<dyn FlushTarget>, FlushTicket)> = Vec::new();
    for target in targets {
        let Some(ticket) = target.take_flush() else {
            continue;
        };
        if write_files(inner, &ticket, target.as_ref()) {
            tickets.push((target, ticket));
        } else {
            target.finish_flush(&ticket, false);
        }
    }
    inner
        .stats
        .rounds
        .fetch_add(tickets.len() as u64, Ordering::Relaxed);
    if tickets.len() > 1 && sync_volumes(inner, &tickets) {
        for (target, ticket) in &tickets {
            target.finish_flush(ticket, true);
        }
        return;
    }
    for (target, ticket) in &tickets {
        let ok = sync_ticket(inner, ticket, target.as_ref());
        target.finish_flush(ticket, ok);
    }
}

/// Writes the ticket's small files (snapshots, epoch checkpoint), each replaced
/// atomically; false if one failed (the log then goes offline).
fn write_files(inner: &Inner, ticket: &FlushTicket, target: &dyn FlushTarget) -> bool {
    if ticket.writes.is_empty() {
        return true;
    }
    // The partition may have been deleted (and its topic created again under the same
    // name) since the ticket was taken: never write one incarnation's files into another's.
    let owner = super::partition_log::read_topic_id(inner.fs.as_ref(), &ticket.partition_dir);
    if !matches!(owner, Ok(Some(id)) if id == ticket.topic_id) {
        warn!(partition = %target.describe(), "not writing a log's files: its directory belongs to another incarnation or is gone");
        return false;
    }
    for (path, contents) in &ticket.writes {
        if let Err(err) = write_atomic(inner.fs.as_ref(), path, contents) {
            inner.stats.failures.fetch_add(1, Ordering::Relaxed);
            error!(partition = %target.describe(), path = %path.display(), error = %err, "failed to write a log file; taking the log offline");
            return false;
        }
    }
    true
}

/// One syncfs per volume the tickets' partitions live on; false when any partition is
/// outside a known log directory, a volume was poisoned by an earlier failure, or a
/// syncfs failed (the caller then syncs per file).
fn sync_volumes(inner: &Inner, tickets: &[(&Arc<dyn FlushTarget>, FlushTicket)]) -> bool {
    let mut volumes: Vec<(&PathBuf, &SharedVolume)> = Vec::new();
    for (_, ticket) in tickets {
        let Some((dir, volume)) = ticket
            .partition_dir
            .parent()
            .and_then(|d| inner.volumes.get_key_value(d))
        else {
            return false;
        };
        if !volumes.iter().any(|(d, _)| *d == dir) {
            volumes.push((dir, volume));
        }
    }
    for (dir, shared) in volumes {
        let mut poisoned = shared.poisoned.lock().unwrap_or_else(|e| e.into_inner());
        if *poisoned {
            return false;
        }
        inner.stats.volume_syncs.fetch_add(1, Ordering::Relaxed);
        if let Err(err) = shared.volume.sync_all() {
            *poisoned = true;
            warn!(dir = %dir.display(), error = %err, "syncfs failed; syncing file by file on this volume from now on, to find the failed files and never miss another's error");
            return false;
        }
    }
    true
}

fn sync_ticket(inner: &Inner, ticket: &FlushTicket, target: &dyn FlushTarget) -> bool {
    for file in &ticket.files {
        inner.stats.file_syncs.fetch_add(1, Ordering::Relaxed);
        if let Err(err) = file.sync_data() {
            inner.stats.failures.fetch_add(1, Ordering::Relaxed);
            error!(partition = %target.describe(), error = %err, "fsync failed; taking the log offline");
            return false;
        }
    }
    if let Some(dir) = &ticket.dir {
        inner.stats.dir_syncs.fetch_add(1, Ordering::Relaxed);
        if let Err(err) = inner.fs.sync_dir(Path::new(dir)) {
            inner.stats.failures.fetch_add(1, Ordering::Relaxed);
            error!(partition = %target.describe(), error = %err, "directory fsync failed; taking the log offline");
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    use super::*;
    use crate::fsio::RealFs;

    /// Records overlapping flushes and requests not yet covered by a flush.
    #[derive(Default)]
    struct Probe {
        flushing: AtomicBool,
        overlaps: AtomicU64,
        flushes: AtomicU64,
        dirty: AtomicBool,
    }

    impl FlushTarget for Probe {
        fn take_flush(&self) -> Option<FlushTicket> {
            if self.flushing.swap(true, Ordering::SeqCst) {
                self.overlaps.fetch_add(1, Ordering::SeqCst);
            }
            self.dirty.store(false, Ordering::SeqCst);
            std::thread::sleep(Duration::from_micros(200));
            Some(FlushTicket {
                writes: Vec::new(),
                files: Vec::new(),
                dir: None,
                partition_dir: PathBuf::from("/nowhere/p-0"),
                topic_id: uuid::Uuid::nil(),
                target_offset: 0,
                recovery_point: 0,
            })
        }

        fn finish_flush(&self, _ticket: &FlushTicket, ok: bool) {
            assert!(ok);
            self.flushes.fetch_add(1, Ordering::SeqCst);
            self.flushing.store(false, Ordering::SeqCst);
        }

        fn describe(&self) -> String {
            "probe".into()
        }
    }

    #[test]
    fn partitions_flush_in_parallel_but_never_twice_at_once_and_every_request_is_covered() {
        let (flusher, threads) = Flusher::start(Arc::new(RealFs), 4, &[], 0).unwrap();
        let probes: Vec<Arc<Probe>> = (0..6).map(|_| Arc::new(Probe::default())).collect();
        std::thread::scope(|scope| {
            for _ in 0..4 {
                let flusher = flusher.clone();
                let probes = probes.clone();
                scope.spawn(move || {
                    for i in 0..2000 {
                        let probe = &probes[i % probes.len()];
                        probe.dirty.store(true, Ordering::SeqCst);
                        flusher.request(probe.clone());
                    }
                });
            }
        });
        flusher.stop();
        threads.join();
        assert!(!flusher.is_running());
        for probe in &probes {
            assert_eq!(
                probe.overlaps.load(Ordering::SeqCst),
                0,
                "two flushes of one partition overlapped"
            );
            assert!(probe.flushes.load(Ordering::SeqCst) > 0);
            assert!(
                !probe.dirty.load(Ordering::SeqCst),
                "a request was never followed by a flush"
            );
        }
        let flushes: u64 = probes
            .iter()
            .map(|p| p.flushes.load(Ordering::SeqCst))
            .sum();
        assert!(
            flushes < 8000,
            "requests during a flush are grouped into the next one ({flushes})"
        );
    }

    #[derive(Debug)]
    struct FailingVolume;

    impl Volume for FailingVolume {
        fn sync_all(&self) -> std::io::Result<()> {
            Err(std::io::Error::other("simulated writeback error"))
        }
    }

    #[derive(Debug)]
    struct GoodVolume;

    impl Volume for GoodVolume {
        fn sync_all(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn inner_with(volume: Arc<dyn Volume>) -> Inner {
        Inner {
            fs: Arc::new(RealFs),
            volumes: [(
                PathBuf::from("/nowhere"),
                SharedVolume {
                    volume,
                    poisoned: Mutex::new(false),
                },
            )]
            .into(),
            bulk_threshold: 2,
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            stats: Arc::new(FlushStats::default()),
            running: AtomicUsize::new(0),
        }
    }

    /// A target whose ticket holds one real file, so file-by-file syncs are counted.
    struct FileProbe {
        file: Arc<dyn crate::fsio::LogFile>,
        partition_dir: PathBuf,
        finished_ok: AtomicU64,
    }

    impl FlushTarget for FileProbe {
        fn take_flush(&self) -> Option<FlushTicket> {
            Some(FlushTicket {
                writes: Vec::new(),
                files: vec![self.file.clone()],
                dir: None,
                partition_dir: self.partition_dir.clone(),
                topic_id: uuid::Uuid::nil(),
                target_offset: 0,
                recovery_point: 0,
            })
        }

        fn finish_flush(&self, _ticket: &FlushTicket, ok: bool) {
            if ok {
                self.finished_ok.fetch_add(1, Ordering::SeqCst);
            }
        }

        fn describe(&self) -> String {
            "file-probe".into()
        }
    }

    #[test]
    fn a_bulk_flush_syncs_the_volume_once_and_falls_back_to_files_when_it_fails() {
        use crate::fsio::{FileSystem, OpenMode};
        let dir = tempfile::tempdir().unwrap();
        let probes: Vec<Arc<FileProbe>> = (0..3)
            .map(|i| {
                let path = dir.path().join(format!("f{i}"));
                Arc::new(FileProbe {
                    file: RealFs.open(&path, OpenMode::Create).unwrap(),
                    partition_dir: PathBuf::from(format!("/nowhere/p-{i}")),
                    finished_ok: AtomicU64::new(0),
                })
            })
            .collect();
        let targets: Vec<Arc<dyn FlushTarget>> = probes
            .iter()
            .map(|p| p.clone() as Arc<dyn FlushTarget>)
            .collect();
        let flushed = || {
            probes
                .iter()
                .map(|p| p.finished_ok.load(Ordering::SeqCst))
                .sum::<u64>()
        };

        let good = inner_with(Arc::new(GoodVolume));
        flush(&good, &targets);
        assert_eq!(
            good.stats.volume_syncs.load(Ordering::SeqCst),
            1,
            "one syncfs for the volume"
        );
        assert_eq!(
            good.stats.file_syncs.load(Ordering::SeqCst),
            0,
            "no file was synced on its own"
        );
        assert_eq!(flushed(), 3);

        let failing = inner_with(Arc::new(FailingVolume));
        flush(&failing, &targets);
        assert_eq!(failing.stats.volume_syncs.load(Ordering::SeqCst), 1);
        assert_eq!(
            failing.stats.file_syncs.load(Ordering::SeqCst),
            3,
            "the fallback synced every file"
        );
        assert_eq!(flushed(), 6);

        // A partition outside every known log directory is synced file by file.
        let unknown = Inner {
            volumes: HashMap::new(),
            ..inner_with(Arc::new(GoodVolume))
        };
        flush(&unknown, &targets);
        assert_eq!(unknown.stats.volume_syncs.load(Ordering::SeqCst), 0);
        assert_eq!(unknown.stats.file_syncs.load(Ordering::SeqCst), 3);
    }

    /// The race the review found: a bulk flush's syncfs consumes the writeback error of
    /// a file that belongs to another batch; that batch's own syncfs would then succeed
    /// over pages the kernel dropped. After the first failure the volume is synced file
    /// by file, and the file's own handle still reports the error.
    #[test]
    fn a_syncfs_error_consumed_by_one_batch_is_never_lost_to_another() {
        use crate::fsio::sim::{CutMode, Fault, FaultEffect, FaultOp, FaultTarget, SimFs};
        use crate::fsio::{FileSystem, OpenMode};
        let sim = SimFs::new();
        let dir = PathBuf::from("/data");
        sim.create_dir_all(&dir).unwrap();
        sim.sync_dir(Path::new("/")).unwrap();
        let probe = |name: &str| {
            let file = sim.open(&dir.join(name), OpenMode::Create).unwrap();
            file.write_all_at(name.as_bytes(), 0).unwrap();
            Arc::new(FileProbe {
                file,
                partition_dir: dir.join(name),
                finished_ok: AtomicU64::new(0),
            })
        };
        let (a, c, bad, d) = (probe("a-0"), probe("c-0"), probe("bad-0"), probe("d-0"));
        sim.sync_dir(&dir).unwrap();
        let inner = Inner {
            fs: Arc::new(sim.clone()),
            volumes: [(
                dir.clone(),
                SharedVolume {
                    volume: sim.open_volume(&dir).unwrap().unwrap(),
                    poisoned: Mutex::new(false),
                },
            )]
            .into(),
            bulk_threshold: 2,
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            stats: Arc::new(FlushStats::default()),
            running: AtomicUsize::new(0),
        };
        // The bad file's writeback fails during the first batch's syncfs.
        sim.inject(Fault {
            op: FaultOp::Sync,
            target: FaultTarget::Path(dir.join("bad-0")),
            effect: FaultEffect::Fail,
            times: Some(1),
        });
        let first: Vec<Arc<dyn FlushTarget>> = vec![a.clone(), c.clone()];
        flush(&inner, &first);
        assert_eq!(
            a.finished_ok.load(Ordering::SeqCst),
            1,
            "its own files were fine"
        );
        assert_eq!(c.finished_ok.load(Ordering::SeqCst), 1);
        let second: Vec<Arc<dyn FlushTarget>> = vec![bad.clone(), d.clone()];
        flush(&inner, &second);
        assert_eq!(
            bad.finished_ok.load(Ordering::SeqCst),
            0,
            "the file whose pages were dropped is never acknowledged"
        );
        assert_eq!(d.finished_ok.load(Ordering::SeqCst), 1);
        assert_eq!(
            inner.stats.volume_syncs.load(Ordering::SeqCst),
            1,
            "no syncfs is trusted after the first failure"
        );
        let after = sim.power_cut(CutMode::LoseUnsynced);
        assert_eq!(
            after.read(&dir.join("bad-0")).unwrap(),
            b"",
            "its bytes were lost"
        );
    }
}
