//! The broker-wide flusher: one thread that fsyncs every dirty partition per round.
//!
//! Appends only write to the page cache and ask for a flush. While one round of fsyncs
//! runs, new appends across all partitions queue up and are covered by the next round:
//! group commit across partitions and requests, without a fixed delay. The thread is a
//! plain OS thread because fsync blocks; it never holds a partition lock while syncing.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use tracing::error;

use super::io::FileSystem;
use super::partition_log::FlushTicket;

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
    pub rounds: AtomicU64,
    pub file_syncs: AtomicU64,
    pub dir_syncs: AtomicU64,
    pub failures: AtomicU64,
}

#[derive(Default)]
struct Queue {
    targets: Vec<Arc<dyn FlushTarget>>,
    queued: HashSet<usize>,
    stop: bool,
}

struct Inner {
    fs: Arc<dyn FileSystem>,
    queue: Mutex<Queue>,
    wake: Condvar,
    stats: Arc<FlushStats>,
    running: AtomicBool,
}

/// A handle to the flusher thread; cheap to clone.
#[derive(Clone)]
pub struct Flusher {
    inner: Arc<Inner>,
}

impl fmt::Debug for Flusher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Flusher").finish_non_exhaustive()
    }
}

fn target_id(target: &Arc<dyn FlushTarget>) -> usize {
    Arc::as_ptr(target).cast::<()>() as usize
}

impl Flusher {
    /// Starts the flusher thread.
    pub fn start(fs: Arc<dyn FileSystem>) -> (Flusher, JoinHandle<()>) {
        let inner = Arc::new(Inner {
            fs,
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            stats: Arc::new(FlushStats::default()),
            running: AtomicBool::new(true),
        });
        let thread_inner = inner.clone();
        let handle = std::thread::Builder::new()
            .name("runnel-flusher".into())
            .spawn(move || run(&thread_inner))
            .unwrap_or_else(|err| panic!("failed to start the flusher thread: {err}"));
        (Flusher { inner }, handle)
    }

    /// Asks for `target` to be flushed in the next round.
    pub fn request(&self, target: Arc<dyn FlushTarget>) {
        let mut queue = self.inner.queue.lock().unwrap_or_else(|e| e.into_inner());
        if queue.stop {
            return;
        }
        if queue.queued.insert(target_id(&target)) {
            queue.targets.push(target);
            self.inner.wake.notify_one();
        }
    }

    /// Stops the thread after the round in progress; queued flushes still run.
    pub fn stop(&self) {
        let mut queue = self.inner.queue.lock().unwrap_or_else(|e| e.into_inner());
        queue.stop = true;
        self.inner.wake.notify_one();
    }

    pub fn stats(&self) -> Arc<FlushStats> {
        self.inner.stats.clone()
    }

    pub fn is_running(&self) -> bool {
        self.inner.running.load(Ordering::Relaxed)
    }
}

fn run(inner: &Inner) {
    loop {
        let batch = {
            let mut queue = inner.queue.lock().unwrap_or_else(|e| e.into_inner());
            while queue.targets.is_empty() && !queue.stop {
                queue = inner.wake.wait(queue).unwrap_or_else(|e| e.into_inner());
            }
            if queue.targets.is_empty() && queue.stop {
                inner.running.store(false, Ordering::Relaxed);
                return;
            }
            queue.queued.clear();
            std::mem::take(&mut queue.targets)
        };
        flush_round(inner, batch);
    }
}

fn flush_round(inner: &Inner, batch: Vec<Arc<dyn FlushTarget>>) {
    inner.stats.rounds.fetch_add(1, Ordering::Relaxed);
    let tickets: Vec<(Arc<dyn FlushTarget>, FlushTicket)> = batch
        .into_iter()
        .filter_map(|t| t.take_flush().map(|ticket| (t, ticket)))
        .collect();
    for (target, ticket) in tickets {
        let ok = sync_ticket(inner, &ticket, target.as_ref());
        target.finish_flush(&ticket, ok);
    }
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
