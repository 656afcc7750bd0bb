//! Logging: `tracing` to standard error, filtered by `RUST_LOG` (default
//! `info`, PostgreSQL's notices at `warn`), as text for people or one JSON object per line for log
//! pipelines (`--log-format`). Colour only when standard error is a
//! terminal: escape codes in a file or a collector are noise. A line that
//! cannot be written is dropped, never a panic.
//!
//! Lines are written off the request path. At `info` every request logs an
//! access line, and a synchronous write to stderr per line cost about a
//! fifth of the throughput of answers from the response tier. So a line is
//! formatted where it is logged, then handed to a bounded queue that one
//! writer thread drains (tracing-appender's `non_blocking`) into a buffer,
//! written out whenever the queue is empty or the buffer full, with a rest
//! of a few milliseconds after each write ([`Paced`]): one write for many
//! lines, and no wake-up per line. The queue is lossy: a line that finds it full is dropped and
//! counted ([`dropped_lines`], exported as `biblio_log_lines_dropped_total`),
//! so a slow or stuck stderr never holds a request up or grows memory.
//!
//! Lines still queued when the process ends would be lost, so [`init`]
//! returns a [`Guard`] that `main` keeps for the life of the process and
//! drops before it exits, on every path: dropping it writes out every line
//! logged before.
use std::io::{IsTerminal, Write};
use std::sync::OnceLock;
use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// Lines the queue holds before new ones are dropped: at a few hundred
/// bytes each, a few megabytes at most, and a second or more of a busy
/// replica's access lines while stderr is slow.
const QUEUED_LINES: usize = 16 * 1024;

/// The writer thread's buffer: many lines per write.
const BUFFER_BYTES: usize = 64 * 1024;

/// How long the writer thread rests after writing out what it drained, so
/// that the next lines gather in the queue: see [`Paced`].
const PAUSE: std::time::Duration = std::time::Duration::from_millis(5);

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per event, its fields at the top level.
    Json,
}

/// Keeps the writer thread; dropping it writes out every line queued so
/// far (waiting a second at most, if stderr does not take them).
#[must_use = "dropping the guard stops writing log lines"]
pub struct Guard {
    _writer: Option<WorkerGuard>,
}

/// The queue's count of dropped lines, once [`init`] installed it.
static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// Lines dropped because the queue was full, since the start; 0 when
/// logging was not installed (as in tests that build the app in-process).
pub fn dropped_lines() -> u64 {
    DROPPED
        .get()
        .map_or(0, |counter| counter.dropped_lines() as u64)
}

/// Installs the subscriber (once; later calls do nothing, and their guard
/// holds nothing).
pub fn init(format: LogFormat) -> Guard {
    // PostgreSQL's notices ("relation ... already exists, skipping", at
    // every start) are noise at `info`.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx::postgres::notice=warn"));
    let ansi = std::io::stderr().is_terminal();
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(QUEUED_LINES)
        .thread_name("biblio-log")
        .finish(Paced(std::io::BufWriter::with_capacity(
            BUFFER_BYTES,
            Quiet(std::io::stderr()),
        )));
    let dropped = writer.error_counter();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        // The queue never refuses a write (a full one drops the line and
        // counts it), and `Quiet` never fails; this stays off so that no
        // future writer can make the subscriber report a failure with
        // `eprintln!`, which panics on a closed stderr.
        .log_internal_errors(false);
    let installed = match format {
        LogFormat::Text => builder.with_ansi(ansi).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .try_init(),
    };
    if installed.is_err() {
        return Guard { _writer: None };
    }
    let _ = DROPPED.set(dropped);
    Guard {
        _writer: Some(guard),
    }
}

/// The writer thread's writer: a buffer, written out when the thread has
/// drained the queue (it flushes then) and followed by a short rest.
///
/// Without the rest, a busy replica's writer thread would wake for every
/// line or two: a system call to write them, and another, on the logging
/// side, to wake the thread that sleeps on the empty queue, for every
/// request. Both cost the CPU the requests need (on two cores, as much as
/// writing synchronously did). Resting [`PAUSE`] after each write lets the
/// lines of the next few milliseconds gather, so a busy replica writes a
/// few hundred lines at once, and a thread that logs rarely finds the
/// writer asleep on the queue. A line waits [`PAUSE`] at most before it
/// is written; the queue holds far more than a pause's worth of lines.
struct Paced<W: Write>(std::io::BufWriter<W>);

impl<W: Write> Write for Paced<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.0.write_all(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let flushed = self.0.flush();
        std::thread::sleep(PAUSE);
        flushed
    }
}

/// Standard error with write errors swallowed: a line that cannot be
/// written (stderr closed, as by `biblio serve 2>&1 | head`) is dropped.
/// The writer thread would otherwise see the error, and its last flush
/// reports a failure with `eprintln!`, which panics on that same closed
/// stderr.
struct Quiet(std::io::Stderr);

impl Write for Quiet {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0.write(buf) {
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => Err(err),
            Err(_) => Ok(buf.len()),
            written => written,
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = self.0.flush();
        Ok(())
    }
}
