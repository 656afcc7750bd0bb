//! The log's writer: every line is appended to one shared buffer, and one
//! writer thread takes the whole buffer at a time (swapping in an empty
//! one), writes it out in one call and rests [`PAUSE`] before taking the
//! next.
//!
//! Why not a queue of lines (tracing-appender's `non_blocking`, used
//! before): a queue allocates every line on the thread that logs it and
//! frees it on the writer thread, and passes each through a channel; at a
//! line per request that cost about 6% of the throughput of answers from
//! the response tier on two cores, on top of writing. Appending to a shared
//! buffer is a copy under a lock held for that copy.
//!
//! The rest after each write is what makes a busy replica write hundreds of
//! lines at once, without waking the writer thread for every line or two;
//! a line waits [`PAUSE`] at most. The thread sleeps while nothing is
//! pending, and the first line after it took the buffer wakes it.
//!
//! Lossy by design: when the buffer already holds [`MAX_PENDING`] bytes
//! (stderr slow or stuck), a new line is dropped and counted
//! ([`Lines::dropped`]), so a stuck stderr never holds a request up or
//! grows memory. A line that cannot be written (stderr closed, as by
//! `biblio serve 2>&1 | head`) is dropped silently.
use parking_lot::Mutex;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// Bytes held for the writer before new lines are dropped: a few thousand
/// lines, a fraction of a second of a busy replica's access lines.
pub(super) const MAX_PENDING: usize = 4 * 1024 * 1024;

/// How long the writer thread rests after each write, so that the next
/// lines gather.
const PAUSE: Duration = Duration::from_millis(5);

/// How long a stop waits for the last lines to be written.
const LAST_WRITE: Duration = Duration::from_secs(1);

/// What a taken buffer keeps of its capacity for the next time: a burst
/// does not pin its peak size for the life of the process.
const KEPT_CAPACITY: usize = 256 * 1024;

/// Where lines go: cheap to clone, shared by every thread that logs.
#[derive(Clone)]
pub struct Lines {
    shared: Arc<Shared>,
}

struct Shared {
    pending: Mutex<Vec<u8>>,
    dropped: AtomicU64,
    stopping: AtomicBool,
    writer: std::thread::Thread,
}

/// Keeps the writer thread; dropping it writes out every line appended so
/// far (waiting [`LAST_WRITE`] at most, if `out` does not take them).
pub struct Stop {
    shared: Arc<Shared>,
    finished: mpsc::Receiver<()>,
}

impl Lines {
    /// Starts the writer thread, writing to `out`.
    pub fn start(out: impl Write + Send + 'static) -> std::io::Result<(Lines, Stop)> {
        let (finished_tx, finished) = mpsc::channel::<()>();
        let (shared_tx, shared_rx) = mpsc::channel::<Arc<Shared>>();
        let thread = std::thread::Builder::new()
            .name("biblio-log".into())
            .spawn(move || {
                // Dropped when the thread ends, however it ends.
                let _finished = finished_tx;
                let Ok(shared) = shared_rx.recv() else {
                    return;
                };
                write_until_stopped(&shared, out);
            })?;
        let shared = Arc::new(Shared {
            pending: Mutex::new(Vec::with_capacity(KEPT_CAPACITY)),
            dropped: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            writer: thread.thread().clone(),
        });
        let _ = shared_tx.send(shared.clone());
        Ok((
            Lines {
                shared: shared.clone(),
            },
            Stop { shared, finished },
        ))
    }

    /// Appends `line` (whole lines only), or drops it if the writer is
    /// [`MAX_PENDING`] bytes behind.
    pub fn push(&self, line: &[u8]) {
        let was_empty = {
            let mut pending = self.shared.pending.lock();
            if pending.len() + line.len() > MAX_PENDING {
                drop(pending);
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            let was_empty = pending.is_empty();
            pending.extend_from_slice(line);
            was_empty
        };
        // The writer sleeps only on an empty buffer; waking a thread that
        // is not asleep costs one atomic swap.
        if was_empty {
            self.shared.writer.unpark();
        }
    }

    /// Lines dropped because the writer was behind, since the start.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

fn write_until_stopped(shared: &Shared, mut out: impl Write) {
    let mut batch = Vec::with_capacity(KEPT_CAPACITY);
    loop {
        std::mem::swap(&mut *shared.pending.lock(), &mut batch);
        if batch.is_empty() {
            if shared.stopping.load(Ordering::Acquire) {
                return;
            }
            // Woken by the next line, or by the stop (`park` may also
            // return for no reason: the loop looks again).
            std::thread::park();
            continue;
        }
        let _ = out.write_all(&batch);
        let _ = out.flush();
        batch.clear();
        batch.shrink_to(KEPT_CAPACITY);
        if !shared.stopping.load(Ordering::Acquire) {
            std::thread::sleep(PAUSE);
        }
    }
}

impl Drop for Stop {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::Release);
        self.shared.writer.unpark();
        let _ = self.finished.recv_timeout(LAST_WRITE);
    }
}

/// One event's writer for the subscriber: it formats an event into a
/// buffer of its own and writes it with one `write_all`, so one call is
/// one line.
impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Lines {
    type Writer = &'a Lines;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

impl Write for &Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.push(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes nothing until `open` is set, then keeps it all.
    #[derive(Clone, Default)]
    struct Gate {
        open: Arc<AtomicBool>,
        kept: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Gate {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            while !self.open.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(1));
            }
            self.kept.lock().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_pushed_before_the_stop_is_written_in_order() {
        let gate = Gate::default();
        gate.open.store(true, Ordering::Release);
        let (lines, stop) = Lines::start(gate.clone()).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|thread| {
                let lines = lines.clone();
                std::thread::spawn(move || {
                    for n in 0..5_000 {
                        lines.push(format!("{thread} {n}\n").as_bytes());
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        drop(stop);
        let kept = String::from_utf8(gate.kept.lock().clone()).unwrap();
        let mut next = [0u32; 4];
        for line in kept.lines() {
            let (thread, n) = line.split_once(' ').expect("whole lines");
            let thread: usize = thread.parse().unwrap();
            assert_eq!(n.parse::<u32>().unwrap(), next[thread], "{line}");
            next[thread] += 1;
        }
        assert_eq!(next, [5_000; 4]);
        assert_eq!(lines.dropped(), 0);
    }

    #[test]
    fn lines_past_the_limit_while_the_writer_is_stuck_are_dropped_and_counted() {
        let gate = Gate::default();
        let (lines, stop) = Lines::start(gate.clone()).unwrap();
        let line = [b'x'; 1023]
            .iter()
            .chain(b"\n")
            .copied()
            .collect::<Vec<u8>>();
        // The writer takes what was pushed before it woke (at most what the
        // buffer holds), then waits at the gate; after that the buffer
        // holds MAX_PENDING bytes: of three buffers' worth, one at least
        // is dropped.
        let pushed = 3 * MAX_PENDING / line.len();
        for _ in 0..pushed {
            lines.push(&line);
        }
        let dropped = lines.dropped() as usize;
        let held = MAX_PENDING / line.len();
        assert!(
            dropped >= held && dropped <= pushed - held,
            "{dropped} of {pushed} dropped"
        );
        gate.open.store(true, Ordering::Release);
        drop(stop);
        let kept = gate.kept.lock().len();
        assert_eq!(kept, (pushed - dropped) * line.len(), "written: the rest");
    }
}
