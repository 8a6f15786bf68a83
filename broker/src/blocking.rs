//! Blocking work called from async code: file I/O that may be slow, such as an fsync.

use tokio::runtime::{Handle, RuntimeFlavor};

/// Runs `work` where it cannot stall other tasks: on a multi-threaded runtime the worker
/// thread hands its other tasks to a new worker first (`block_in_place`); outside a
/// runtime, or on a current-thread runtime (unit tests), it runs inline.
pub fn run<R>(work: impl FnOnce() -> R) -> R {
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}
