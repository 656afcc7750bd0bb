//! What one execution read, so that its answer can be kept whole (the
//! response tier, `http::responses`) and served only while nothing it was
//! built from has changed.
//!
//! # Why a kept answer is never older than the cache
//! An answer is built from entities, counts, list pages and the statistics,
//! each read through this cache. [`Reads`] records every one of them while
//! the query runs, together with the L1 **invalidation count** taken before
//! execution began. When the answer is sealed into [`Dependencies`], the
//! stamp of each read is taken (the L1 stripe epoch of an entity's key, the
//! local counter of a list's group), and only then the count is checked
//! again: every invalidation moves the count before it moves a stamp, so if
//! the count has not moved, no stamp taken moved after execution began, and
//! every stamp describes the state the execution read. If it has moved, a
//! write landed during execution and the answer is not kept.
//!
//! A hit is then valid while either the count is unchanged (nothing at all
//! changed: one atomic load) or every stamp is, which is exactly when every
//! value it read would still be served from L1; an event from another
//! replica moves stamps here the same way. The untrusted-bus rule of L1
//! applies unchanged: while the bus is not heard, an answer is served only
//! within the cap of when it was known current. It lives no longer than the
//! shortest TTL of what it read, nor past the first moment something it
//! read changes with time alone (an overdue list at a loan's due date).
//!
//! Answers are kept only in the modes with a bus (`both`, `l2`): without
//! one, another replica's writes are never heard, and L1 entries there are
//! bounded by the cap from their own fill, which a whole answer cannot track.
use super::keys::{Group, Kind, List};
use super::{l1, lock, Cache};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// One execution's reads, recorded by the request's `Scope` as it makes
/// them.
pub struct Reads {
    /// `None` when answers are not kept (no bus, or the bus is not heard
    /// now): then nothing is recorded.
    start: Option<Start>,
    read: Mutex<Read>,
    /// Set when the execution reads something not through the cache (live
    /// counters, say): its answer is then never kept.
    uncacheable: AtomicBool,
}

/// The state when execution began.
struct Start {
    changes: l1::GlobalTicket,
    clears: u64,
    /// When the bus last proved every earlier write heard: the answer is
    /// current as of then.
    current_as_of: Instant,
}

#[derive(Default)]
struct Read {
    /// Entities and per-id counts, and whether each was found (an absent id
    /// is cached for less time).
    entities: Vec<(Kind, Uuid, bool)>,
    /// List pages and the statistics, by the group that moves them.
    lists: Vec<(Kind, Group)>,
    /// Pages of ranged groups, by their L1 key, which a move evicts.
    pages: Vec<l1::Key>,
    /// Whether the answer depends on who asked.
    private: bool,
    /// The first moment something read changes with time alone.
    changes_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl Reads {
    /// Records nothing: for callers outside a request, and for the modes
    /// that keep no answers.
    pub fn none() -> Self {
        Self {
            start: None,
            read: Mutex::default(),
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
            let mut read = lock(&self.read);
            read.private |= kind.is_private();
            read.entities.push((kind, id, found));
        }
    }

    /// A page of `list` (its items are recorded as entities).
    pub fn list(&self, list: &List<'_>) {
        if self.is_recording() {
            let kind = list.kind();
            let mut read = lock(&self.read);
            read.private |= kind.is_private();
            read.lists.push((kind, list.group()));
        }
    }

    /// A page of a ranged group (see `l1`): a move that reaches it evicts
    /// it by key, as a write evicts an entity.
    pub fn page(&self, key: &l1::Key) {
        if self.is_recording() {
            lock(&self.read).pages.push(key.clone());
        }
    }

    /// Something read changes with time alone at `at` (an overdue list):
    /// the answer is not kept past it.
    pub fn changes_at(&self, at: chrono::DateTime<chrono::Utc>) {
        if self.is_recording() {
            let mut read = lock(&self.read);
            read.changes_at = Some(read.changes_at.map_or(at, |earlier| earlier.min(at)));
        }
    }

    /// The viewer's identity was used: the answer is theirs alone.
    pub fn viewer(&self) {
        if self.is_recording() {
            lock(&self.read).private = true;
        }
    }

    /// Whether the answer depends on who asked.
    pub fn is_private(&self) -> bool {
        lock(&self.read).private
    }
}

/// What a kept answer was built from, stamped; see the module docs.
#[derive(Debug)]
pub struct Dependencies {
    changes: l1::GlobalTicket,
    clears: u64,
    current_as_of: Instant,
    entities: Box<[l1::Ticket]>,
    groups: Box<[(Group, u64)]>,
    /// The shortest TTL of anything read.
    pub ttl: Duration,
    /// Whether the answer depends on who asked.
    pub private: bool,
}

impl Dependencies {
    /// How many distinct values the answer was built from.
    pub fn len(&self) -> usize {
        self.entities.len() + self.groups.len()
    }

    /// Whether it was built from nothing cached (only `__typename`, say).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Cache {
    /// Starts recording an execution's reads: taken before it begins.
    pub fn reads(&self) -> Reads {
        let inner = &self.inner;
        let Some(l1) = inner.l1.as_ref().filter(|_| inner.mode.uses_l2()) else {
            return Reads::none();
        };
        if !l1.is_trusted() || inner.sync.has_pending() {
            return Reads::none();
        }
        Reads {
            // The count first: a change after it is seen when sealing.
            start: Some(Start {
                changes: l1.global_ticket(),
                clears: l1.clears(),
                current_as_of: inner.sync.current_as_of(),
            }),
            read: Mutex::default(),
            uncacheable: AtomicBool::new(false),
        }
    }

    /// Stamps what `reads` recorded, or `None` when the answer must not be
    /// kept: nothing was recorded, or something changed while it ran.
    pub fn dependencies(&self, reads: &Reads) -> Option<Dependencies> {
        if !reads.is_recording() {
            return None;
        }
        let start = reads.start.as_ref()?;
        let l1 = self.inner.l1.as_ref()?;
        let ttls = &self.inner.ttls;
        let read = lock(&reads.read);
        let mut ttl = ttls.l1_max;
        let mut entities: Vec<l1::Ticket> = Vec::with_capacity(read.entities.len());
        for (kind, id, found) in &read.entities {
            ttl = ttl.min(ttls.l1(*kind, !found));
            entities.push(l1.ticket(&l1::Key::Entity(*kind, *id)));
        }
        entities.extend(read.pages.iter().map(|key| l1.ticket(key)));
        let mut groups: Vec<(Group, u64)> = Vec::with_capacity(read.lists.len());
        for (kind, group) in &read.lists {
            ttl = ttl.min(ttls.l1(*kind, false));
            groups.push((*group, l1.group_local(group)));
        }
        if let Some(at) = read.changes_at {
            match (at - chrono::Utc::now()).to_std() {
                Ok(left) if !left.is_zero() => ttl = ttl.min(left),
                // It has changed already.
                _ => return None,
            }
        }
        // After every stamp: see the module docs.
        if !l1.unchanged_since(start.changes) || l1.clears() != start.clears {
            return None;
        }
        entities.sort_unstable_by_key(|ticket| ticket.sort_key());
        entities.dedup();
        groups.sort_unstable();
        groups.dedup();
        Some(Dependencies {
            changes: start.changes,
            clears: start.clears,
            current_as_of: start.current_as_of,
            entities: entities.into_boxed_slice(),
            groups: groups.into_boxed_slice(),
            ttl,
            private: read.private,
        })
    }

    /// Whether an answer built from `dependencies` may still be served: it
    /// is current enough for the bus's state, and nothing it read has been
    /// invalidated since before it was built.
    pub fn still_valid(&self, dependencies: &Dependencies) -> bool {
        let Some(l1) = self.inner.l1.as_ref() else {
            return false;
        };
        if !l1.is_current(dependencies.current_as_of) {
            return false;
        }
        if l1.unchanged_since(dependencies.changes) {
            return true;
        }
        l1.clears() == dependencies.clears
            && dependencies.entities.iter().all(|ticket| l1.holds(*ticket))
            && dependencies
                .groups
                .iter()
                .all(|(group, local)| l1.group_local(group) == *local)
    }
}
