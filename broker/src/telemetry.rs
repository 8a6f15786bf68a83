//! Logging for the binary: `tracing` to stderr, filtered by `RUST_LOG` (default info).

use tracing_subscriber::EnvFilter;

/// Installs the subscriber. Only `main` calls this; the library never does.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
}
