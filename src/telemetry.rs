//! Logging: `tracing` to standard error, filtered by `RUST_LOG`
//! (default `info`).
use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // A line that cannot be written (stderr closed, as by `biblio serve
        // 2>&1 | head`) is dropped. By default the subscriber reports the
        // failure with `eprintln!`, which panics on that same closed stderr,
        // wherever the event was logged (in the middle of a migration, say).
        .log_internal_errors(false)
        .try_init();
}
