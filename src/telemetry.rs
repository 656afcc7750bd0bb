//! Logging: `tracing` to standard error, filtered by `RUST_LOG` (default
//! `info`, PostgreSQL's notices at `warn`), as text for people or one JSON object per line for log
//! pipelines (`--log-format`). Colour only when standard error is a
//! terminal: escape codes in a file or a collector are noise. A line that
//! cannot be written is dropped, never a panic.
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per event, its fields at the top level.
    Json,
}

/// Installs the subscriber (once; later calls do nothing).
pub fn init(format: LogFormat) {
    // PostgreSQL's notices ("relation ... already exists, skipping", at
    // every start) are noise at `info`.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx::postgres::notice=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // A line that cannot be written (stderr closed, as by `biblio serve
        // 2>&1 | head`) is dropped. By default the subscriber reports the
        // failure with `eprintln!`, which panics on that same closed stderr,
        // wherever the event was logged (in the middle of a migration, say).
        .log_internal_errors(false);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .try_init(),
    };
}
