//! Stamps: how something built from cached reads (a whole answer, kept by
//! [`crate::responses`]) is later told whether every one of those reads
//! would still be served as it was. The cache does not keep such things
//! itself; it only says when its own values moved.
//!
//! # Why a kept answer is never older than the cache
//! An answer is built from entities, counts, list pages and the statistics,
//! each read through this cache. The recorder notes every one of them
//! ([`Read`]) while the query runs, together with the L1 **invalidation
//! count** taken before execution began ([`Cache::start_reads`]). When the
//! answer is sealed into [`Dependencies`], the stamp of each read is taken
//! (the L1 stripe epoch of an entity's key, the local counter of a list's
//! group) with the count at which that stamp last moved. A stamp that
//! moved after execution began (or whose eviction was under way then: the
//! count moves again once the entry is gone, see `l1::Store::invalidate`)
//! means a write may have landed between its read and its stamp, and the
//! answer is not kept; otherwise every stamp describes the state the
//! execution read. Only what the answer read counts: a write elsewhere
//! during execution does not keep it from being kept (under a steady
//! stream of writes, that kept almost no answer that took milliseconds).
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
//! Stamps are given only in the modes with a bus (`both`, `l2`): without
//! one, another replica's writes are never heard, and L1 entries there are
//! bounded by the cap from their own fill, which a whole answer cannot track.
use super::keys::{Group, Kind, List};
use super::{l1, Cache};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Told of the list pages the cache serves, which only the cache can name
/// (a ranged page by its L1 key): the response tier's recorder.
pub trait ReadLog: Sync {
    /// A page of `list` was read (its items are reported as entities by
    /// whoever resolves them).
    fn list(&self, list: &List<'_>);
    /// A page of a ranged group (see `l1`) was read: a move that reaches it
    /// evicts it by key, as a write evicts an entity.
    fn page(&self, group: Group, key: &l1::Key);
}

/// The state when an execution began; see the module docs.
pub struct Start {
    changes: l1::GlobalTicket,
    clears: u64,
    /// When the bus last proved every earlier write heard: the answer is
    /// current as of then.
    current_as_of: Instant,
}

/// What one execution read through the cache, to be stamped.
#[derive(Default)]
pub struct Read {
    /// Entities and per-id counts, and whether each was found (an absent id
    /// is cached for less time).
    pub entities: Vec<(Kind, Uuid, bool)>,
    /// List pages and the statistics, by the group that moves them.
    pub lists: Vec<(Kind, Group)>,
    /// Pages of ranged groups, by group and L1 key, which a move evicts.
    pub pages: Vec<(Group, l1::Key)>,
    /// The first moment something read changes with time alone.
    pub changes_at: Option<chrono::DateTime<chrono::Utc>>,
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
    /// Taken before an execution begins, so that what it reads can be
    /// stamped; `None` when nothing built from reads may be kept now (no
    /// bus, the bus not heard, or writes of this replica not yet sent).
    pub fn start_reads(&self) -> Option<Start> {
        let inner = &self.inner;
        let l1 = inner.l1.as_ref().filter(|_| inner.mode.uses_l2())?;
        if !l1.is_trusted() || inner.sync.has_pending() {
            return None;
        }
        // The count first: a change after it is seen when sealing.
        Some(Start {
            changes: l1.global_ticket(),
            clears: l1.clears(),
            current_as_of: inner.sync.current_as_of(),
        })
    }

    /// Stamps what an execution that began at `start` read, or `None` when
    /// its answer must not be kept: something changed while it ran.
    pub fn dependencies(&self, start: &Start, read: &Read) -> Option<Dependencies> {
        let l1 = self.inner.l1.as_ref()?;
        let ttls = &self.inner.ttls;
        let mut ttl = ttls.l1_max;
        let since = start.changes;
        let mut entities: Vec<l1::Ticket> = Vec::with_capacity(read.entities.len());
        for (kind, id, found) in &read.entities {
            ttl = ttl.min(ttls.l1(*kind, !found));
            entities.push(l1.stamp(&l1::Key::Entity(*kind, *id), since)?);
        }
        for (group, key) in &read.pages {
            entities.push(l1.page_stamp(group, key, since)?);
        }
        let mut groups: Vec<(Group, u64)> = Vec::with_capacity(read.lists.len());
        for (kind, group) in &read.lists {
            ttl = ttl.min(ttls.l1(*kind, false));
            groups.push((*group, l1.group_stamp(group, since)?));
        }
        if let Some(at) = read.changes_at {
            match (at - chrono::Utc::now()).to_std() {
                Ok(left) if !left.is_zero() => ttl = ttl.min(left),
                // It has changed already.
                _ => return None,
            }
        }
        // After every stamp: see the module docs.
        if l1.clears() != start.clears {
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
