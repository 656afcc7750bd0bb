//! What one execution read, recorded as it reads, so that its answer can be
//! kept and served only while nothing it was built from has changed. The
//! cache stamps what is recorded here ([`crate::cache::stamps`], which also
//! gives the argument why a kept answer is never older than the cache).
use crate::cache::stamps::{Read, ReadLog, Start};
use crate::cache::{l1, Cache, Dependencies, Group, Kind, List};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use uuid::Uuid;

/// One execution's reads, recorded by the request's `Scope` (and, for list
/// pages, by the cache) as it makes them.
pub struct Reads {
    /// `None` when answers are not kept (no bus, the bus is not heard now,
    /// the tier is off, or the operation is a mutation): then nothing is
    /// recorded.
    start: Option<Start>,
    read: Mutex<Read>,
    /// Whether the answer depends on who asked.
    private: AtomicBool,
    /// Set when the execution reads something not through the cache (live
    /// counters, say): its answer is then never kept.
    uncacheable: AtomicBool,
}

impl Reads {
    /// Records nothing: for callers outside a request, and for the modes
    /// that keep no answers.
    pub fn none() -> Self {
        Self::starting(None)
    }

    /// Starts recording an execution's reads: made before it begins.
    pub fn start(cache: &Cache) -> Self {
        Self::starting(cache.start_reads())
    }

    fn starting(start: Option<Start>) -> Self {
        Self {
            start,
            read: Mutex::default(),
            private: AtomicBool::new(false),
            uncacheable: AtomicBool::new(false),
        }
    }

    /// Whether this execution's answer may be kept at all.
    pub fn is_recording(&self) -> bool {
        self.start.is_some() && !self.uncacheable.load(Ordering::Relaxed)
    }

    /// The execution read something not through the cache, which no
    /// invalidation tracks: its answer must not be kept.
    pub fn uncacheable(&self) {
        self.uncacheable.store(true, Ordering::Relaxed);
    }

    /// An entity or count of `kind` by id; `found` is false for an absent id.
    pub fn entity(&self, kind: Kind, id: Uuid, found: bool) {
        if self.is_recording() {
            self.private_if(kind);
            self.read.lock().entities.push((kind, id, found));
        }
    }

    /// Something read changes with time alone at `at` (an overdue list):
    /// the answer is not kept past it.
    pub fn changes_at(&self, at: chrono::DateTime<chrono::Utc>) {
        if self.is_recording() {
            let mut read = self.read.lock();
            read.changes_at = Some(read.changes_at.map_or(at, |earlier| earlier.min(at)));
        }
    }

    /// The viewer's identity was used: the answer is theirs alone.
    pub fn viewer(&self) {
        if self.is_recording() {
            self.private.store(true, Ordering::Relaxed);
        }
    }

    /// Whether the answer depends on who asked.
    pub fn is_private(&self) -> bool {
        self.private.load(Ordering::Relaxed)
    }

    /// Stamps what was recorded, or `None` when the answer must not be
    /// kept: nothing was recorded, or something changed while it ran.
    pub fn dependencies(&self, cache: &Cache) -> Option<Dependencies> {
        if !self.is_recording() {
            return None;
        }
        cache.dependencies(self.start.as_ref()?, &self.read.lock())
    }

    fn private_if(&self, kind: Kind) {
        if kind.is_private() {
            self.private.store(true, Ordering::Relaxed);
        }
    }
}

impl ReadLog for Reads {
    fn list(&self, list: &List<'_>) {
        if self.is_recording() {
            let kind = list.kind();
            self.private_if(kind);
            self.read.lock().lists.push((kind, list.group()));
        }
    }

    fn page(&self, group: Group, key: &l1::Key) {
        if self.is_recording() {
            self.read.lock().pages.push((group, key.clone()));
        }
    }
}
