use super::*;
use std::io::Write;
use std::sync::{Arc, Mutex};

/// What a subscriber wrote, for comparison.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What the subscriber, configured as [`init`] configures it, writes
/// for the events `log` logs.
fn written(format: LogFormat, log: impl FnOnce()) -> String {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = subscriber(
        format,
        false,
        move || writer.clone(),
        EnvFilter::new("info"),
    );
    tracing::subscriber::with_default(subscriber, log);
    let line = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    line
}

/// The line the subscriber writes for one access event, with the
/// timestamp cut off.
fn through_the_subscriber(format: LogFormat, path: &str, id: &str) -> String {
    let line = written(format, || {
        tracing::info!(
            target: "biblio::access",
            method = %axum::http::Method::POST,
            path,
            operation = "Book",
            status = 200u64,
            duration_ms = 0.125,
            request_id = id,
            "request"
        )
    });
    without_timestamp(&line)
}

#[test]
fn a_line_logged_inside_a_request_carries_its_id_as_the_last_field() {
    use futures_util::FutureExt;
    let inside = |format| {
        written(format, || {
            crate::telemetry::in_request("abc-\"1\"", async {
                tracing::warn!(target: "biblio::auth", email_hash = "0869", "sign-in failed");
            })
            .now_or_never()
            .expect("logging does not wait");
            tracing::warn!(target: "biblio::auth", "outside");
        })
    };
    let json = inside(LogFormat::Json);
    let lines: Vec<serde_json::Value> = json
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines[0]["request_id"], "abc-\"1\"", "{json}");
    assert_eq!(lines[0]["email_hash"], "0869", "{json}");
    assert_eq!(lines[0]["message"], "sign-in failed", "{json}");
    assert_eq!(lines[1].get("request_id"), None, "{json}");
    let text = inside(LogFormat::Text);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].ends_with(r#"sign-in failed email_hash="0869" request_id="abc-\"1\"""#),
        "{text}"
    );
    assert!(lines[1].ends_with("outside"), "{text}");
}

fn directly(format: LogFormat, path: &str, id: &str) -> String {
    let mut line = String::new();
    format_line(
        &mut line,
        format,
        std::time::SystemTime::now(),
        "biblio::access",
        "request",
        |fields| {
            fields.display("method", "POST");
            fields.str("path", path);
            fields.str("operation", "Book");
            fields.u64("status", 200);
            fields.millis("duration_ms", 125);
            fields.str("request_id", id);
        },
    );
    without_timestamp(&line)
}

fn without_timestamp(line: &str) -> String {
    let at = line.find("Z").expect("a timestamp");
    line[at..].to_owned()
}

#[test]
fn an_access_line_written_directly_is_what_the_subscriber_writes() {
    for format in [LogFormat::Text, LogFormat::Json] {
        for (path, id) in [
            ("/graphql", "abc-123"),
            ("/we\"ird\\path", "caf\u{e9} \n\"id\""),
        ] {
            assert_eq!(
                directly(format, path, id),
                through_the_subscriber(format, path, id),
                "{format:?} {path:?} {id:?}"
            );
        }
    }
}

#[test]
fn timestamps_are_rfc3339_in_utc_with_microseconds() {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_micros(1_796_425_509_622_755);
    for at in [
        at,
        at + std::time::Duration::from_micros(1),
        at + std::time::Duration::from_secs(1),
    ] {
        let mut out = String::new();
        timestamp(&mut out, at);
        let expected = chrono::DateTime::<chrono::Utc>::from(at)
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        assert_eq!(out, expected);
    }
}

#[test]
fn milliseconds_are_written_as_the_subscriber_writes_the_float() {
    let samples = (0..200_000u64)
        .chain((0..40).map(|bit| 1u64 << bit))
        .chain([999_999_999, 1_234_567_891_011 % (1 << 40), (1 << 40) - 1]);
    for micros in samples {
        let mut out = String::new();
        millis(&mut out, micros);
        assert_eq!(out, format!("{:?}", micros as f64 / 1000.0), "{micros}");
    }
}
