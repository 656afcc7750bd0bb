//! Logging: `tracing` to standard error, filtered by `RUST_LOG` (default
//! `info`, PostgreSQL's notices at `warn`), as text for people or one JSON object per line for log
//! pipelines (`--log-format`). Colour only when standard error is a
//! terminal: escape codes in a file or a collector are noise. A line that
//! cannot be written is dropped, never a panic.
//!
//! Lines are written off the request path. At `info` every request logs an
//! access line, and a synchronous write to stderr per line cost about a
//! fifth of the throughput of answers from the response tier. So a line is
//! formatted where it is logged, then appended to a buffer that one writer
//! thread takes whole every few milliseconds ([`writer`]): one write for
//! many lines, and no allocation, message or wake-up per line. It is
//! lossy: past a few megabytes behind, a line is dropped and counted
//! ([`dropped_lines`], exported as `biblio_log_lines_dropped_total`), so a
//! slow or stuck stderr never holds a request up or grows memory.
//!
//! That alone left most of the cost: formatting the access line through the
//! subscriber (its field visitor escapes every string character by
//! character, its timestamp is worked out from the epoch for every line)
//! took most of the fifth. So the access line, the one event logged for
//! every request, is written by [`access_line`] straight into the same
//! buffer, in exactly the form the subscriber gives it (a test holds the
//! two side by side), with the parts that do not change from line to line
//! done once: the timestamp's date and time to the second once a second,
//! strings copied as they are unless they need escaping. It is still
//! filtered by `RUST_LOG` (its caller asks `tracing::enabled!`); with
//! colours (a terminal: a person reading, not a collector) it goes through
//! the subscriber as every other line does.
//!
//! Lines still pending when the process ends would be lost, so [`init`]
//! returns a [`Guard`] that `main` keeps for the life of the process and
//! drops before it exits, on every path: dropping it writes out every line
//! logged before.
use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::sync::OnceLock;
use tracing_subscriber::EnvFilter;
use writer::Lines;

mod writer;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per event, its fields at the top level.
    Json,
}

/// Keeps the writer thread; dropping it writes out every line logged so
/// far (waiting a second at most, if stderr does not take them).
#[must_use = "dropping the guard stops writing log lines"]
pub struct Guard {
    _writer: Option<writer::Stop>,
}

/// The subscriber [`init`] installs, writing to `writer`.
fn subscriber<W>(
    format: LogFormat,
    ansi: bool,
    writer: W,
    filter: EnvFilter,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        // The writer never refuses a write (when it is behind it drops the
        // line and counts it); this stays off so that no
        // future writer can make the subscriber report a failure with
        // `eprintln!`, which panics on a closed stderr.
        .log_internal_errors(false);
    match format {
        LogFormat::Text => Box::new(
            builder
                .with_ansi(ansi)
                .event_format(WithRequestId::new(
                    tracing_subscriber::fmt::format().with_ansi(ansi),
                    format,
                ))
                .finish(),
        ),
        LogFormat::Json => Box::new(
            builder
                .json()
                .event_format(WithRequestId::new(
                    tracing_subscriber::fmt::format()
                        .json()
                        .flatten_event(true)
                        .with_current_span(false)
                        .with_span_list(true),
                    format,
                ))
                .finish(),
        ),
    }
}

/// Where lines go, once [`init`] installed the subscriber, and whether
/// [`access_line`] writes there itself (not when lines are coloured).
static LINES: OnceLock<(Lines, Option<LogFormat>)> = OnceLock::new();

/// Lines dropped because the writer was behind, since the start; 0 when
/// logging was not installed (as in tests that build the app in-process).
pub fn dropped_lines() -> u64 {
    LINES.get().map_or(0, |(lines, _)| lines.dropped())
}

/// Installs the subscriber (once; later calls do nothing, and their guard
/// holds nothing).
pub fn init(format: LogFormat) -> Guard {
    // PostgreSQL's notices ("relation ... already exists, skipping", at
    // every start) are noise at `info`.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx::postgres::notice=warn"));
    let ansi = std::io::stderr().is_terminal();
    let Ok((lines, stop)) = Lines::start(std::io::stderr()) else {
        // No thread for the writer: lines are written as they are logged.
        let _ = tracing::subscriber::set_global_default(subscriber(
            format,
            ansi,
            std::io::stderr,
            filter,
        ));
        return Guard { _writer: None };
    };
    let direct = (format == LogFormat::Json || !ansi).then_some(format);
    let installed =
        tracing::subscriber::set_global_default(subscriber(format, ansi, lines.clone(), filter));
    if installed.is_err() {
        return Guard { _writer: None };
    }
    let _ = LINES.set((lines, direct));
    Guard {
        _writer: Some(stop),
    }
}

/// Writes one `info` line of `target` with `message` and the fields
/// `fields` adds, as the subscriber would format that event outside any
/// span, straight into the writer's buffer (see the module docs).
/// Returns `false`, having written nothing, when there is no such path
/// (logging not installed, or coloured): the caller then logs the event
/// through `tracing`. The caller checks that the line is enabled.
pub fn access_line(target: &str, message: &str, fields: impl FnOnce(&mut Fields<'_>)) -> bool {
    let Some((lines, Some(format))) = LINES.get() else {
        return false;
    };
    thread_local! {
        static LINE: RefCell<String> = const { RefCell::new(String::new()) };
    }
    LINE.with(|line| {
        let Ok(mut line) = line.try_borrow_mut() else {
            return false;
        };
        line.clear();
        format_line(
            &mut line,
            *format,
            std::time::SystemTime::now(),
            target,
            message,
            fields,
        );
        lines.push(line.as_bytes());
        true
    })
}

tokio::task_local! {
    /// The id of the request the current task serves: see [`in_request`].
    static REQUEST_ID: Box<str>;
}

/// Runs `future` as the request `id`: every line it logs carries the id
/// (`request_id`, as the access line does), so a request's lines can be
/// matched with its access line. A task-local, not a span: a span per
/// request, entered and left on every poll, cost about a tenth of the
/// throughput of answers from the response tier (the filter takes a shared
/// lock on each), and only the rare line logged inside a request needs it.
pub async fn in_request<F: std::future::Future>(id: &str, future: F) -> F::Output {
    REQUEST_ID.scope(id.into(), future).await
}

/// Formats each event with `inner`, adding the id of the request it was
/// logged in ([`in_request`]), if any, as the last field.
struct WithRequestId<F> {
    inner: F,
    json: bool,
}

impl<F> WithRequestId<F> {
    fn new(inner: F, format: LogFormat) -> Self {
        Self {
            inner,
            json: format == LogFormat::Json,
        }
    }
}

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for WithRequestId<F>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
    F: tracing_subscriber::fmt::FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let Ok(Some(id)) = REQUEST_ID.try_with(|id| Some(id.clone())) else {
            return self.inner.format_event(ctx, writer, event);
        };
        // The inner format ends the line (`}` in JSON, then a newline); the
        // id goes in before that end. Colours are the inner format's own.
        let mut line = String::with_capacity(256);
        self.inner.format_event(
            ctx,
            tracing_subscriber::fmt::format::Writer::new(&mut line),
            event,
        )?;
        let end = line.trim_end_matches('\n').len();
        let end = if self.json && line[..end].ends_with('}') {
            end - 1
        } else {
            end
        };
        let mut field = String::with_capacity(id.len() + 16);
        Fields {
            out: &mut field,
            json: self.json,
        }
        .str("request_id", &id);
        line.insert_str(end, &field);
        writer.write_str(&line)
    }
}

/// The fields of a line [`access_line`] writes, in the order added.
pub struct Fields<'a> {
    out: &'a mut String,
    json: bool,
}

impl Fields<'_> {
    /// A string, quoted (as a `&str` field is).
    pub fn str(&mut self, name: &str, value: &str) {
        self.name(name);
        quoted(self.out, value, self.json);
    }

    /// A string shown bare in text, as a `%value` field is (JSON quotes
    /// it all the same).
    pub fn display(&mut self, name: &str, value: &str) {
        self.name(name);
        if self.json {
            quoted(self.out, value, true);
        } else {
            self.out.push_str(value);
        }
    }

    pub fn u64(&mut self, name: &str, value: u64) {
        self.name(name);
        self.out.push_str(itoa::Buffer::new().format(value));
    }

    /// `micros` microseconds in milliseconds, written as the subscriber
    /// writes the `f64` `micros as f64 / 1000.0` (`12.5`, `3.0`), without
    /// formatting a float: `Debug` of an `f64` was a tenth of the line's
    /// cost.
    pub fn millis(&mut self, name: &str, micros: u64) {
        self.name(name);
        millis(self.out, micros);
    }

    fn name(&mut self, name: &str) {
        if self.json {
            self.out.push_str(",\"");
            self.out.push_str(name);
            self.out.push_str("\":");
        } else {
            self.out.push(' ');
            self.out.push_str(name);
            self.out.push('=');
        }
    }
}

/// See [`Fields::millis`]. The same text below 2^40 microseconds (12
/// days, far past any request): there the shortest decimal that reads back
/// as the `f64` nearest `micros / 1000` is that quotient's own decimal.
/// Beyond, the float would drop digits this keeps.
fn millis(out: &mut String, micros: u64) {
    out.push_str(itoa::Buffer::new().format(micros / 1000));
    out.push('.');
    let fraction = micros % 1000;
    if fraction == 0 {
        out.push('0');
        return;
    }
    let digits = [fraction / 100, fraction / 10 % 10, fraction % 10];
    let used = if digits[2] != 0 {
        3
    } else if digits[1] != 0 {
        2
    } else {
        1
    };
    for digit in &digits[..used] {
        out.push(char::from(b'0' + *digit as u8));
    }
}

/// `value` in quotes: copied as it is when nothing in it needs escaping
/// (printable ASCII but quote and backslash), else escaped as the
/// subscriber escapes it (`Debug` in text, JSON's rules in JSON).
fn quoted(out: &mut String, value: &str, json: bool) {
    // Every byte looked at, without stopping at the first bad one: the
    // compiler then checks many bytes per instruction.
    let escaped = value.bytes().fold(false, |escaped, b| {
        escaped | !(0x20..0x7f).contains(&b) | (b == b'"') | (b == b'\\')
    });
    if !escaped {
        out.reserve(value.len() + 2);
        out.push('"');
        out.push_str(value);
        out.push('"');
    } else if json {
        out.push_str(&serde_json::Value::from(value).to_string());
    } else {
        let _ = write!(out, "{value:?}");
    }
}

/// The line of an `info` event at `now`, as the subscriber formats it in
/// `format` (without colours, outside any span), newline included.
fn format_line(
    out: &mut String,
    format: LogFormat,
    now: std::time::SystemTime,
    target: &str,
    message: &str,
    fields: impl FnOnce(&mut Fields<'_>),
) {
    let json = format == LogFormat::Json;
    if json {
        out.push_str("{\"timestamp\":\"");
        timestamp(out, now);
        out.push_str("\",\"level\":\"INFO\",\"message\":");
        quoted(out, message, true);
    } else {
        timestamp(out, now);
        out.push_str("  INFO ");
        out.push_str(target);
        out.push_str(": ");
        out.push_str(message);
    }
    fields(&mut Fields { out, json });
    if json {
        out.push_str(",\"target\":");
        quoted(out, target, true);
        out.push('}');
    }
    out.push('\n');
}

/// `now` as the subscriber writes it (RFC 3339, UTC, microseconds): the
/// part to the second is formatted once a second per thread.
fn timestamp(out: &mut String, now: std::time::SystemTime) {
    thread_local! {
        static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let since = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = since.as_secs();
    SECOND.with(|second| {
        let mut second = second.borrow_mut();
        if second.0 != seconds {
            let at = chrono::DateTime::from_timestamp(seconds as i64, 0).unwrap_or_default();
            second.1 = at.format("%Y-%m-%dT%H:%M:%S").to_string();
            second.0 = seconds;
        }
        out.push_str(&second.1);
    });
    // Six digits, zeros first: 1,000,000 + micros without its leading 1.
    let micros = 1_000_000 + since.subsec_micros();
    out.push('.');
    out.push_str(&itoa::Buffer::new().format(micros)[1..]);
    out.push('Z');
}

#[cfg(test)]
mod tests;
