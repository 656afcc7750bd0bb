//! L1: decoded values in this process's memory (moka), behind `Arc`, so a hit
//! clones a pointer. Bounded in bytes by a weigher; each entry carries its
//! kind's TTL.
//!
//! It also keeps what makes fills safe against concurrent invalidation. moka
//! alone is not enough: an `invalidate` that lands while a loader runs is
//! forgotten and the loader's older value is inserted afterwards. So keys
//! hash onto stripes, each with a lock and an epoch. An invalidation bumps the
//! epoch under the lock; a fill takes a [`Ticket`] (the epoch) before it reads
//! anything and inserts only if the epoch is unchanged, under the same lock.
//! A stripe shared by unrelated keys only costs a skipped fill.
use super::keys::{Group, Kind};
use super::matching::Span;
use crate::domain::cursor::Key as SortKey;
use moka::sync::Cache;
use moka::Expiry;
use parking_lot::Mutex;
use std::any::Any;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

use groups::Groups;
pub use groups::MAX_GROUPS;

/// Many, so that an unrelated key's eviction rarely moves the stripe of a
/// kept answer's read (each answer stamps dozens of keys; each write evicts
/// a few): about 400 KiB.
const STRIPES: usize = 16_384;

/// How L1 names an entry: entities by kind and id (no string to build or
/// hash on the hot path), lists by their full key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// An entity or count by id, the hot path of DataLoader batches.
    Entity(Kind, Uuid),
    /// A list entry by its L1 key (which carries the group's local counter).
    List(Box<str>),
}

type Hasher = foldhash::fast::FixedState;

/// A cached value: `None` is a negative entry (the id is absent).
pub type Value = Option<Arc<dyn Any + Send + Sync>>;

/// What L1 stores: the value with what moka needs to weigh and expire it,
/// and when it was last known current.
#[derive(Clone)]
pub struct Entry {
    /// The decoded value, shared by every reader that hits it.
    pub value: Value,
    /// Approximate bytes: the encoded size plus bookkeeping.
    weight: u32,
    ttl: Duration,
    /// The moment up to which the value reflects every write: when its fill
    /// began, or earlier, the last time this process knew it had heard every
    /// invalidation (see `sync`). While the bus is not trusted, an entry is
    /// served only until the cap has passed since then.
    current_as_of: Instant,
}

impl Entry {
    /// `encoded_len` weighs the entry (decoded sizes are unknown); `current_as_of`
    /// is when its fill began, or the last moment every invalidation was heard.
    pub fn new(value: Value, encoded_len: usize, ttl: Duration, current_as_of: Instant) -> Self {
        Self {
            value,
            weight: u32::try_from(encoded_len + 96).unwrap_or(u32::MAX),
            ttl,
            current_as_of,
        }
    }
}

struct PerEntryTtl;

impl Expiry<Key, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _: &Key, entry: &Entry, _: Instant) -> Option<Duration> {
        Some(entry.ttl)
    }

    fn expire_after_update(
        &self,
        _: &Key,
        entry: &Entry,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.ttl)
    }
}

struct Stripe {
    lock: Mutex<()>,
    epoch: AtomicU64,
    /// The invalidation count just after the stripe's last eviction (see
    /// [`Store::stamp`]): set before the epoch moves.
    moved_at: AtomicU64,
}

/// The state of a stripe when a fill began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    stripe: usize,
    epoch: u64,
}

impl Ticket {
    /// Orders tickets so an answer's duplicates can be removed.
    pub fn sort_key(&self) -> (usize, u64) {
        (self.stripe, self.epoch)
    }
}

/// The count of all invalidations when a list query began; see [`Store::prime`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GlobalTicket(u64);

/// What a watched page of a ranged group (see `matching`) is known to hold.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reach {
    /// Not yet known (its fill has not landed): the moves heard since the
    /// watch began, which its fill checks against the span it loaded.
    Loading(Vec<(SortKey, SortKey)>),
    /// Books from one sort key to another: moves that meet them evict it.
    Span(Span),
    /// No book (a page past the end): no move changes it.
    Nothing,
}

/// How many pages of one ranged group are watched at most; past it the
/// group's watches are dropped and their pages evicted.
const MAX_WATCHED: usize = 4096;

/// How many pages of all ranged groups together are watched at most (search
/// buckets are ranged groups, thousands of them); past it the group with
/// the most watches has them dropped and its pages evicted. A watch holds
/// its key and the two titles its page spans: a few hundred bytes.
const MAX_WATCHED_IN_ALL: usize = 65_536;

/// How many moves a loading page remembers; one more evicts it.
const MAX_PENDING_MOVES: usize = 64;

/// L1, and the counters and trust that guard its fills (see the module docs).
///
/// # Ranged pages
/// Pages of a ranged group are not made unreachable when a book moves
/// within their order; the move evicts, by key, those whose span it meets.
/// So each such page is **watched** from before it is read until its fill
/// records its span; a move evicts (moving the stripe's epoch) every filled
/// page it can change and forgets the watch. A move heard while a page
/// loads is remembered with the watch, and the fill lands only if its page
/// is still watched, its stripe unmoved and none of those moves meets the
/// span it loaded; else the fill evicts the page instead. That is exact
/// whenever the write committed: before the load read (then the load saw
/// it) or after (then, meeting none of the page's span, it changed nothing
/// there). Under a stream of writes, evicting every loading page on any
/// move would keep the pages of a busy group from ever filling. A kept
/// answer stamps the page's stripe like an entity's, so the same eviction
/// invalidates it.
pub struct Store {
    cache: Cache<Key, Entry, foldhash::fast::RandomState>,
    stripes: Box<[Stripe]>,
    groups: Mutex<Groups>,
    /// Whether invalidation events are known to arrive (this process hears
    /// its own heartbeats on the bus), until `lease` runs out. While they
    /// are not (Redis paused or gone, the subscriber disconnected, no Redis
    /// at all), entries current as of longer ago than `untrusted_cap` are
    /// misses, which bounds staleness then.
    trusted: AtomicBool,
    /// When trust lapses unless a heartbeat heard renews it (nanoseconds
    /// since `origin`): trust ends at the silence limit by itself, even
    /// when the task that watches the bus is held up and has not noticed.
    lease: AtomicU64,
    origin: Instant,
    untrusted_cap: Duration,
    /// Every change seen here (a key evicted, a group moved, everything
    /// cleared), counted before the change itself is made; guards
    /// [`Store::prime`], which cannot take per-key tickets because it learns
    /// its keys from the query, and tells a kept response at a glance that
    /// nothing changed since it was built (see `cache::stamps`).
    invalidations: AtomicU64,
    /// How many times everything was cleared: a group this store has never
    /// seen has no counter of its own to move.
    clears: AtomicU64,
    /// The watched pages of ranged groups (see above), by group and key.
    ranges: Mutex<HashMap<Group, HashMap<Key, Reach>>>,
}

impl Store {
    /// An empty L1 of `max_bytes`, untrusted until the bus is heard (so until
    /// then entries are served for at most `untrusted_cap`).
    pub fn new(max_bytes: u64, untrusted_cap: Duration) -> Self {
        let cache = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &Key, entry: &Entry| {
                let key_len = match key {
                    Key::Entity(..) => 24,
                    Key::List(key) => key.len(),
                };
                entry
                    .weight
                    .saturating_add(u32::try_from(key_len).unwrap_or(u32::MAX))
            })
            .expire_after(PerEntryTtl)
            .build_with_hasher(foldhash::fast::RandomState::default());
        let stripes = (0..STRIPES)
            .map(|_| Stripe {
                lock: Mutex::new(()),
                epoch: AtomicU64::new(0),
                moved_at: AtomicU64::new(0),
            })
            .collect();
        Self {
            cache,
            stripes,
            groups: Mutex::new(Groups {
                states: HashMap::new(),
                sequence: 0,
                floor: 0,
                forgot_at: 0,
            }),
            trusted: AtomicBool::new(false),
            lease: AtomicU64::new(0),
            origin: Instant::now(),
            untrusted_cap,
            invalidations: AtomicU64::new(0),
            clears: AtomicU64::new(0),
            ranges: Mutex::new(HashMap::new()),
        }
    }

    fn stripe_of(key: &Key) -> usize {
        (Hasher::default().hash_one(key) % STRIPES as u64) as usize
    }

    /// Whether a value current as of then may still be served: always
    /// while the bus is trusted, within the cap otherwise.
    pub fn is_current(&self, current_as_of: Instant) -> bool {
        self.fresh_enough(current_as_of)
    }

    fn fresh_enough(&self, current_as_of: Instant) -> bool {
        self.is_trusted() || current_as_of.elapsed() <= self.untrusted_cap
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX)
    }

    /// `None` for a miss, including an entry older than the cap while the bus is
    /// not trusted; `Some(None)` for a negative entry.
    pub fn get(&self, key: &Key) -> Option<Value> {
        let entry = self.cache.get(key)?;
        if self.fresh_enough(entry.current_as_of) {
            Some(entry.value)
        } else {
            None
        }
    }

    /// Taken before a fill reads L2 or the database.
    pub fn ticket(&self, key: &Key) -> Ticket {
        let stripe = Self::stripe_of(key);
        Ticket {
            stripe,
            epoch: self.stripes[stripe].epoch.load(Ordering::Acquire),
        }
    }

    /// Inserts `entry` if `unchanged` still holds, checked under the key's
    /// stripe lock, which every invalidation of the key takes too: so an
    /// invalidation lands either before the check or after the insert.
    fn insert_if(&self, key: Key, entry: Entry, unchanged: impl FnOnce(&Stripe) -> bool) -> bool {
        let stripe = &self.stripes[Self::stripe_of(&key)];
        let _guard = stripe.lock.lock();
        if !unchanged(stripe) {
            return false;
        }
        self.cache.insert(key, entry);
        true
    }

    /// Inserts unless the key was invalidated since `ticket` was taken.
    pub fn insert(&self, key: Key, ticket: Ticket, entry: Entry) -> bool {
        self.insert_if(key, entry, |stripe| {
            stripe.epoch.load(Ordering::Acquire) == ticket.epoch
        })
    }

    /// Whether no invalidation of the key has landed since `ticket` was taken.
    pub fn holds(&self, ticket: Ticket) -> bool {
        self.stripes[ticket.stripe].epoch.load(Ordering::Acquire) == ticket.epoch
    }

    /// Evicts `key` and moves its stripe's epoch under the stripe lock, so no fill
    /// that began before this lands afterwards. The change count moves
    /// first: whoever sees the new epoch sees the new count too. It moves
    /// again once the entry is gone, and that count is the stripe's
    /// `moved_at`, stored before the epoch moves: so a reader that saw the
    /// old entry (after the first count, before the eviction) began before
    /// the second count, and whoever sees the new epoch sees a `moved_at`
    /// later than that reader's start ([`Store::stamp`]).
    pub fn invalidate(&self, key: &Key) {
        let stripe = &self.stripes[Self::stripe_of(key)];
        let _guard = stripe.lock.lock();
        self.evict_under_lock(stripe, key);
    }

    /// [`Store::invalidate`] with the stripe's lock held.
    fn evict_under_lock(&self, stripe: &Stripe, key: &Key) {
        self.invalidations.fetch_add(1, Ordering::AcqRel);
        self.cache.invalidate(key);
        let after = self.invalidations.fetch_add(1, Ordering::AcqRel) + 1;
        stripe.moved_at.store(after, Ordering::Release);
        stripe.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// The stamp of `key` for something built from reads that began at
    /// `since`: its stripe's epoch, or `None` if the stripe moved after
    /// `since` (an eviction landed while the reads ran, or was under way
    /// when they began), so what was read of it may be older than its stamp.
    pub fn stamp(&self, key: &Key, since: GlobalTicket) -> Option<Ticket> {
        let index = Self::stripe_of(key);
        let stripe = &self.stripes[index];
        let epoch = stripe.epoch.load(Ordering::Acquire);
        (stripe.moved_at.load(Ordering::Acquire) <= since.0).then_some(Ticket {
            stripe: index,
            epoch,
        })
    }

    /// [`Store::stamp`] of `key`, a page of the ranged `group`: `None`
    /// unless its fill has landed (its watch knows what it spans). Moves
    /// heard while a page loads are only remembered, moving no stamp, so an
    /// answer built on a page that never landed (its fill refused, or
    /// dropped) could not learn of them.
    pub fn page_stamp(&self, group: &Group, key: &Key, since: GlobalTicket) -> Option<Ticket> {
        let landed = self
            .ranges
            .lock()
            .get(group)
            .and_then(|watched| watched.get(key))
            .is_some_and(|reach| !matches!(reach, Reach::Loading(_)));
        if landed {
            self.stamp(key, since)
        } else {
            None
        }
    }

    /// Starts watching `key`, a page of the ranged `group`, before it is
    /// read: until its fill says what it spans, every move in the group
    /// evicts it.
    pub fn watch(&self, group: Group, key: &Key) {
        let dropped: Vec<Key> = {
            let mut ranges = self.ranges.lock();
            if ranges
                .get(&group)
                .is_some_and(|watched| watched.contains_key(key))
            {
                return;
            }
            // A new watch is a page about to load from the database, so
            // counting every group's here costs little next to it.
            let total: usize = ranges.values().map(HashMap::len).sum();
            let full = if total >= MAX_WATCHED_IN_ALL {
                ranges
                    .iter()
                    .max_by_key(|(_, watched)| watched.len())
                    .map(|(group, _)| *group)
            } else {
                None
            };
            let watched = ranges.entry(group).or_default();
            let mut dropped: Vec<Key> = if watched.len() >= MAX_WATCHED {
                watched.drain().map(|(key, _)| key).collect()
            } else {
                Vec::new()
            };
            watched.insert(key.clone(), Reach::Loading(Vec::new()));
            if let Some(full) = full.filter(|full| *full != group) {
                if let Some(watched) = ranges.get_mut(&full) {
                    dropped.extend(watched.drain().map(|(key, _)| key));
                }
            }
            dropped
        };
        // An unwatched page must not be served, nor a kept answer built on it.
        for key in &dropped {
            self.invalidate(key);
        }
    }

    /// Inserts a watched page holding books of `span` (`None`: no book)
    /// unless it was invalidated since `ticket` or is watched no more; from
    /// then on only moves meeting `span` evict it.
    pub fn insert_ranged(
        &self,
        key: Key,
        ticket: Ticket,
        entry: Entry,
        group: Group,
        span: Option<Span>,
    ) -> bool {
        let stripe = &self.stripes[Self::stripe_of(&key)];
        let _guard = stripe.lock.lock();
        if stripe.epoch.load(Ordering::Acquire) != ticket.epoch {
            return false;
        }
        let mut ranges = self.ranges.lock();
        let Some(watched) = ranges.get_mut(&group) else {
            return false;
        };
        let Some(reach) = watched.get_mut(&key) else {
            return false;
        };
        let moved_over = match (&*reach, &span) {
            (Reach::Loading(moves), Some(span)) => {
                moves.iter().any(|(from, to)| span.meets(from, to))
            }
            // No book: no move changes it.
            (Reach::Loading(_), None) => false,
            // Filled already by a load of its own: its span holds.
            (Reach::Span(_) | Reach::Nothing, _) => false,
        };
        if moved_over {
            // A write this load may not have seen reached it: a reader that
            // read it while it loaded must not keep an answer built on it.
            watched.remove(&key);
            drop(ranges);
            self.evict_under_lock(stripe, &key);
            return false;
        }
        *reach = span.map_or(Reach::Nothing, Reach::Span);
        self.cache.insert(key, entry);
        true
    }

    /// A book moved from `from` to `to` within the lists of `groups`:
    /// evicts the filled pages it can change (and forgets their watch), and
    /// tells each loading page of it (see the type's docs); returns the
    /// keys of both, whose loads in flight must not be joined by readers
    /// that begin after the write.
    pub fn move_range(&self, groups: &[Group], from: &SortKey, to: &SortKey) -> Vec<Key> {
        let mut met = Vec::new();
        let mut loading = Vec::new();
        {
            let mut ranges = self.ranges.lock();
            for group in groups {
                if let Some(watched) = ranges.get_mut(group) {
                    watched.retain(|key, reach| {
                        let meets = match reach {
                            Reach::Loading(moves) if moves.len() < MAX_PENDING_MOVES => {
                                moves.push((from.clone(), to.clone()));
                                loading.push(key.clone());
                                false
                            }
                            Reach::Loading(_) => true,
                            Reach::Span(span) => span.meets(from, to),
                            Reach::Nothing => false,
                        };
                        if meets {
                            met.push(key.clone());
                        }
                        !meets
                    });
                }
            }
        }
        for key in &met {
            self.invalidate(key);
        }
        met.extend(loading);
        met
    }

    /// How many pages of ranged groups are watched (for tests).
    pub fn watched(&self) -> usize {
        self.ranges.lock().values().map(HashMap::len).sum()
    }

    /// Taken before a list query whose rows will be primed: the **invalidation
    /// count**, for [`Store::prime`].
    pub fn global_ticket(&self) -> GlobalTicket {
        GlobalTicket(self.invalidations.load(Ordering::Acquire))
    }

    /// Whether anything at all changed since `ticket` was taken.
    pub fn unchanged_since(&self, ticket: GlobalTicket) -> bool {
        self.invalidations.load(Ordering::Acquire) == ticket.0
    }

    /// How many times everything was cleared.
    pub fn clears(&self) -> u64 {
        self.clears.load(Ordering::Acquire)
    }

    /// Inserts a value a list query returned, unless any key was invalidated
    /// since `ticket` (conservative: a write anywhere skips the priming).
    /// Checked under the key's stripe lock, which every invalidation takes.
    pub fn prime(&self, key: Key, ticket: GlobalTicket, entry: Entry) -> bool {
        self.insert_if(key, entry, |_| self.unchanged_since(ticket))
    }

    /// Forgets everything: entries, and what it knew of Redis generations.
    /// Every stripe's epoch moves, so fills in flight do not land either.
    pub fn clear(&self) {
        self.invalidations.fetch_add(1, Ordering::AcqRel);
        self.clears.fetch_add(1, Ordering::AcqRel);
        let mut groups = self.groups.lock();
        // Counted under the groups' lock: a reader of an old local counter
        // read it before this (see `invalidate`).
        let moved_at = self.invalidations.fetch_add(1, Ordering::AcqRel) + 1;
        for stripe in self.stripes.iter() {
            let _guard = stripe.lock.lock();
            stripe.epoch.fetch_add(1, Ordering::AcqRel);
        }
        for state in groups.states.values_mut() {
            state.remote = None;
        }
        let locals: Vec<Group> = groups.states.keys().copied().collect();
        for group in locals {
            let local = groups.next();
            if let Some(state) = groups.states.get_mut(&group) {
                state.local = local;
                state.moved_at = moved_at;
            }
        }
        groups.floor = groups.next();
        groups.forgot_at = moved_at;
        self.ranges.lock().clear();
        self.cache.invalidate_all();
        // Once every entry is gone, as `invalidate` does for one key.
        let after = self.invalidations.fetch_add(1, Ordering::AcqRel) + 1;
        for stripe in self.stripes.iter() {
            let _guard = stripe.lock.lock();
            stripe.moved_at.store(after, Ordering::Release);
            stripe.epoch.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Trusts the bus until `until` (see [`Store::renew_trust`]): set by
    /// `sync` when the bus is heard again.
    pub fn trust_until(&self, until: Instant) {
        self.lease.store(self.nanos(until), Ordering::Release);
        self.trusted.store(true, Ordering::Release);
    }

    /// Moves the end of a lease that has not run out to `until` (a
    /// heartbeat heard); a lease that ran out stays out until `sync` has
    /// published what the silence may have hidden and calls
    /// [`Store::trust_until`].
    pub fn renew_trust(&self, until: Instant) {
        let until = self.nanos(until);
        let now = self.nanos(Instant::now());
        let _ = self
            .lease
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |lease| {
                (lease >= now && until > lease).then_some(until)
            });
    }

    /// Set by `sync` when the bus falls silent or cannot be believed; entries
    /// are then served only within the cap.
    pub fn revoke_trust(&self) {
        self.trusted.store(false, Ordering::Release);
    }

    /// Whether events are known to arrive: L2 is read and L1 served past the cap
    /// only then.
    pub fn is_trusted(&self) -> bool {
        self.trusted.load(Ordering::Acquire)
            && self.nanos(Instant::now()) <= self.lease.load(Ordering::Acquire)
    }

    /// Whether trust was given and not revoked, its lease run out or not:
    /// `sync` revokes it (and says so) when it notices.
    pub fn is_trust_claimed(&self) -> bool {
        self.trusted.load(Ordering::Acquire)
    }

    /// The group's local counter and, if known and fresh enough, its Redis
    /// generation.
    pub fn group(&self, group: &Group) -> (u64, Option<u64>) {
        let mut groups = self.groups.lock();
        let floor = groups.floor;
        let Some(state) = groups.states.get_mut(group) else {
            return (floor, None);
        };
        state.touched = Instant::now();
        let remote = state
            .remote
            .filter(|(_, learned)| self.fresh_enough(*learned))
            .map(|(generation, _)| generation);
        (state.local, remote)
    }

    /// The group's local counter alone: what a kept response compares.
    pub fn group_local(&self, group: &Group) -> u64 {
        let groups = self.groups.lock();
        groups
            .states
            .get(group)
            .map_or(groups.floor, |state| state.local)
    }

    /// The group's local counter as a stamp for reads that began at
    /// `since` (see [`Store::stamp`]): `None` if it moved after `since`,
    /// or may have (its state was forgotten since).
    pub fn group_stamp(&self, group: &Group, since: GlobalTicket) -> Option<u64> {
        let groups = self.groups.lock();
        let (local, moved_at) = groups
            .states
            .get(group)
            .map_or((groups.floor, groups.forgot_at), |state| {
                (state.local, state.moved_at)
            });
        (moved_at <= since.0).then_some(local)
    }

    /// How many groups have state here (at most [`MAX_GROUPS`]).
    pub fn group_count(&self) -> usize {
        self.groups.lock().states.len()
    }

    /// Records a Redis generation read or announced; generations only move
    /// forward, so a late, older answer never replaces a newer one.
    pub fn learn_generation(&self, group: Group, generation: u64) {
        let mut groups = self.groups.lock();
        let state = groups.entry(group, self.invalidations.load(Ordering::Acquire));
        let newest = state
            .remote
            .map_or(generation, |(known, _)| known.max(generation));
        state.remote = Some((newest, Instant::now()));
    }

    /// Invalidates a group here: older L1 entries of it become unreachable.
    pub fn bump_group(&self, group: Group, remote: Option<u64>) {
        let mut groups = self.groups.lock();
        let moved_at = self.invalidations.fetch_add(1, Ordering::AcqRel) + 1;
        let local = groups.next();
        let state = groups.entry(group, moved_at);
        state.local = local;
        state.moved_at = moved_at;
        // Its pages' keys named the old counter: nothing watches them now.
        if group.ranged().is_some() {
            self.ranges.lock().remove(&group);
        }
        if let Some(generation) = remote {
            let newest = state
                .remote
                .map_or(generation, |(known, _)| known.max(generation));
            state.remote = Some((newest, Instant::now()));
        }
    }

    /// How many entries are held.
    pub fn entry_count(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }

    /// How many entries remember an absent id: a walk over every entry.
    pub fn negative_entries(&self) -> u64 {
        self.cache
            .iter()
            .filter(|(_, entry)| entry.value.is_none())
            .count() as u64
    }

    /// Approximate bytes held (for tests and health output).
    pub fn weighted_size(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.weighted_size()
    }
}

mod groups;

#[cfg(test)]
mod tests;
