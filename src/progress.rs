//! Progress on a terminal, for the operator's long commands (`biblio cache
//! warm`, `biblio seed`).
use std::io::{IsTerminal, Write};

/// A one-line progress bar on standard error, drawn only on a terminal so
/// that logs and pipes get no control characters.
pub struct Bar {
    on: bool,
}

impl Bar {
    const WIDTH: usize = 30;

    pub fn new() -> Self {
        Self {
            on: std::io::stderr().is_terminal(),
        }
    }

    pub fn draw(&self, done: usize, total: usize, next: &str) {
        let filled = (done * Self::WIDTH)
            .checked_div(total)
            .unwrap_or(Self::WIDTH);
        self.say(&format!(
            "[{}{}] {done}/{total} {next}",
            "#".repeat(filled),
            " ".repeat(Self::WIDTH - filled)
        ));
    }

    /// Replaces the line with `line`.
    pub fn say(&self, line: &str) {
        if self.on {
            let mut err = std::io::stderr().lock();
            // Errors ignored: a progress line is not worth failing for.
            let _ = write!(err, "\r\x1b[2K{line}");
            let _ = err.flush();
        }
    }

    pub fn finish(&self) {
        self.say("");
    }
}

impl Default for Bar {
    fn default() -> Self {
        Self::new()
    }
}
