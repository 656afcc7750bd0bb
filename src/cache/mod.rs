//! The read-through cache: request DataLoader -> L1 (this process, moka) ->
//! L2 (Redis, shared) -> database, and the invalidation that keeps it honest.
//!
//! # Reading (`read`, `page`, `catalogue_statistics`)
//! A batch of keys makes one pass over L1, sends all L1 misses to Redis in one
//! MGET, loads all L2 misses with one database query, fills L2 with one script
//! call, then fills L1. Concurrent misses of the same key in this process
//! share one load (`flight`). Absent ids are cached briefly as negative
//! entries. Lists (pages, search results, connections' slices) store ids
//! and a total (and a slice whether items lie before and after it), never
//! objects; their keys carry their group, with its identity, and the group's
//! generation ([`keys`]). A slice lives under its page list's group, its key
//! naming the cursor, so a write moves both alike.
//!
//! # Writing (`sync`)
//! A mutation's statements and the record of what it invalidates (an outbox
//! row) commit in one transaction ([`Cache::commit`]). Then L1 entries are
//! evicted here, one Redis script deletes the L2 entries, bumps their version
//! counters, moves the groups' generations and publishes one event, and L1 is
//! evicted again (a read that refilled L1 from L2 before the script ran
//! cannot survive). Every other replica evicts on receipt of the event. What
//! each mutation touches is written down once, in [`changes`].
//!
//! # Why a fill never resurrects a value a write replaced
//! A fill records, before it reads L2 or the database, the L1 stripe epoch of
//! each key and the Redis version of each entry. An invalidation bumps both.
//! The L1 insert happens under the stripe lock only if the epoch is unchanged;
//! the L2 store happens in a script only if the version is unchanged. So a
//! load that read the database before a write committed cannot store its
//! value after that write's invalidation, here or on another replica,
//! whichever of the event and the fill comes first.
//!
//! # Writes from other programs (`foreign`)
//! Triggers on every table a cached answer reads record each change
//! another program commits (`psql`, an import) in `cache_changes`, in its
//! transaction; biblio's own writes are left out, their outbox row says
//! more. A replica takes the rows (woken by `NOTIFY` on PostgreSQL, polling
//! every 20 ms on SQLite), records their merged invalidation in the outbox
//! in the same transaction, and publishes it as a mutation's: the same
//! bound holds. A backlog too long to name clears the cache ([`foreign`]).
//!
//! # Why a lost or late event cannot break the bound
//! Each replica publishes a heartbeat on the bus every fifth of the silence
//! limit and listens for its own ([`bus`]). Redis delivers one channel's
//! messages in the order it ran them, and a write's event is published
//! before the write is acknowledged, so hearing back a heartbeat sent at `t`
//! proves that every write acknowledged before `t` has been heard. While the
//! last heartbeat heard was sent within the silence limit (500 ms), the
//! replica trusts L1 and reads L2. Otherwise (Redis paused, partitioned or
//! gone, the subscriber dead) it reads neither L2 nor any L1 entry that is
//! not current as of less than the cap (1 s) ago; when it hears itself
//! again, it first publishes every invalidation still in the outbox. Trust
//! is a lease that each heartbeat heard renews to the silence limit after
//! it was sent, so it ends on time by itself: the background task that
//! notices a silence can be held up (a heartbeat call waiting out its
//! timeout, a loaded machine), and L2 and L1 must not be believed
//! meanwhile.
//!
//! A heartbeat proves only what went through the same Redis as it did.
//! Two faults let a replica hear itself while others' events cannot reach
//! it: on a Cluster, a migrating slot refuses the scripts whose keys it
//! splits (the heartbeat's slot answers); on Sentinel, a failover leaves
//! replicas on two primaries until the old one is demoted. So a replica
//! also stops trusting the bus, and forgets L1 (which it may have filled
//! from entries a write should have removed), when its outbox sweep finds
//! an invalidation older than the outbox delay that Redis refuses, and
//! while the sentinels name another primary than its connections use
//! ([`sync`]).
//!
//! # Why a failover cannot bring back what a write deleted
//! On Sentinel ([`crate::redis::topology`]), a promoted replica may lack invalidations
//! the old primary acknowledged (replication is asynchronous), and the
//! outbox row of an acknowledged invalidation is gone. So before a replica
//! trusts the bus again it compares the primary's replication id with the
//! one the dataset records, and if a failover changed it, moves the
//! namespace as a clear does (`redis::scripts` PRIMARY): nothing filled before the
//! failover is read again. See `docs/redis-topologies.md`.
//!
//! # Why an invalidation is never lost
//! It is in the database with the write. The writer publishes it at once;
//! if Redis does not answer, the writer keeps it pending, skips L2 until it
//! is published, and publishes it (evicting its own L1 too) the moment Redis
//! answers. If the writer dies first, any replica publishes outbox entries
//! older than the outbox delay (500 ms).
//!
//! # The bound
//! A read that starts after a write's response has been received sees the
//! write on the writer at once; on any other replica after the event's
//! delivery time while Redis is up, and within the cap (1 s) during any
//! fault: Redis paused, writes paused or refused, subscriber killed, Redis
//! restarted, writer killed during an outage. `statistics` is served
//! stale-while-revalidate only when no write touched it; after a write, the
//! next read waits for the (single) refresh.
//!
//! # Answers that change with time alone
//! An overdue list gains a loan when its due date passes, and no write
//! says so. Its page carries the next such moment (`IdPage::changes_at`),
//! and no tier keeps it past then: L1 and L2 cap the entry's TTL at it, a
//! copy read after it (a tier's rounding, another replica's clock) is
//! loaded afresh, and a kept answer that read it lives no longer ([`stamps`]).
//!
//! # Clearing (`biblio cache clear`)
//! Every entry's key carries the deployment's namespace; a clear moves it
//! in Redis and publishes an event, and every replica that learns the new
//! one (from that event, or from a later event or its own next heartbeat,
//! which carry it) reads and fills under it and drops its L1. So every
//! replica's next read loads afresh within the bound below, as if the clear
//! were a write of everything. The old entries are then removed in the
//! background. Why no fill or write that straddles a clear breaks the bound
//! is argued in [`namespace`].
//!
//! # Watching it (`metrics`, `replica_stats`)
//! Every tier counts its hits, misses and loads per kind, and the race
//! guards, the bus and Redis count what they did, in relaxed atomics
//! ([`Metrics`]) that `/metrics` exports when scraped ([`Export`]). Each
//! replica also publishes a snapshot of them to Redis every few seconds
//! ([`replica_stats`]), so any replica, or `biblio cache stats`, can show them all.
//!
//! # Glossary: every counter that guards a race
//! - **stripe epoch** (`l1::Store`): per stripe of L1 keys, bumped by every
//!   invalidation of a key on it; an L1 fill lands only if it is unchanged
//!   since the fill's [`l1::Ticket`] was taken.
//! - **invalidation count** (`l1::Store`, taken as an `l1::GlobalTicket`):
//!   every change seen here (a key evicted, a group moved, a clear), counted
//!   before the change is made; guards rows primed into L1 from a list
//!   query, whose keys are unknown before the query, and kept answers
//!   ([`stamps`]), which compare it, then their stripe epochs and group
//!   local counters, on every hit.
//! - **clears** (`l1::Store`): how many times L1 forgot everything; part of
//!   a kept answer's stamps, since a group never seen here has no local
//!   counter to move.
//! - **version** (Redis `{key}:ver`): per L2 entry, bumped by the
//!   invalidation script; the fill script stores only if it is unchanged.
//! - **sequence** (Redis `{prefix}:v…:sequence`): bumped by every
//!   invalidation script; guards rows primed into L2 from a list query
//!   (not on a Cluster, where it is in another slot than the rows: see
//!   `l2::Store::fill`).
//! - **generation** (Redis `{prefix}:v…:gen:{group}`): per list group, bumped
//!   when the group is invalidated; part of every list key, so moving it
//!   makes the group's old entries unreachable at once.
//! - **local** (`l1::Store` group state): per group in this process, bumped
//!   on every invalidation of the group seen here; part of L1 list keys.
//! - **heard** (`sync`): when the last heartbeat of this replica that came
//!   back was sent; decides trust, and when L1 entries are current as of.
//! - **outbox id** (`db::outbox`): one write's invalidation until published.
//! - **LSN** (with read replicas; Redis `{prefix}:v…:lsn`, and the
//!   **horizon** in `db::replicas`): the primary's WAL position after a
//!   write, carried by its invalidation; the script keeps the highest, every
//!   MGET of versions and read of the sequence raise the horizon to it, and
//!   so does every event, before it evicts. A miss reads a standby only if
//!   the standby has replayed the horizon ([`crate::db::replicas`]).
//! - **unknown position** (with read replicas; Redis `{prefix}:v…:lsn:unknown`,
//!   and `noticed`/`settled` in `db::replicas`): a random token an
//!   invalidation carries instead of its LSN when the LSN could not be read
//!   after the commit; kept by the script, read with the LSN key, carried by
//!   the event. Noticed before eviction, it keeps every read on the primary
//!   until a position of the primary read after the notice is learnt.
//! - **primary marker** (Redis `{prefix}:primary`, Sentinel and Cluster):
//!   the replication id of the primary the cache last worked on (on a
//!   Cluster, of every primary); a different id found moves the namespace
//!   (`redis::scripts` PRIMARY).
//! - **token generation** (`users.token_generation`, cached in the user's
//!   [`Profile`](crate::db::users::Profile)): moved by a password or role change; a token carries the
//!   one it was issued under and is refused once the cached profile, evicted
//!   by that change, shows another ([`crate::auth`]).
//! - **namespace** (Redis `{prefix}:v…:namespace`, and the highest learnt in
//!   [`crate::redis::Keys`]): bumped by a clear; part of every entry's key (and so
//!   of its version's), never of a counter's. Learnt from every
//!   invalidation and clear event and from the replica's own heartbeats;
//!   the invalidation script refuses to run under an older one, so a write
//!   always deletes where readers look ([`namespace`]).
mod build;
pub mod bus;
mod catalogue_statistics;
pub mod changes;
pub mod codec;
mod flight;
mod foreign;
pub mod keys;
pub mod l1;
pub mod l2;
mod lists;
pub mod matching;
pub mod metrics;
pub mod namespace;
mod read;
pub mod replica_stats;
pub mod settings;
pub mod stamps;
mod status;
mod sync;

pub use changes::{Change, Invalidation, Listed};
pub use keys::{
    Group, Kind, List, Of, AUTHOR, AUTHOR_BOOK_COUNT, BOOK, BORROW, CATEGORY, CATEGORY_BOOK_COUNT,
    USER,
};
pub use lists::{IdPage, Item};
pub use metrics::{
    Export, FillTier, Filled, Gauges, KindCounts, Metrics, ResponseCounts, ResponseEvent,
};
pub use read::FillPause;
pub use settings::{Health, Mode, Settings, Ttls};
pub use stamps::{Dependencies, ReadLog};

use crate::redis::Keys;
use parking_lot::Mutex;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// The state every clone of a [`Cache`] shares.
struct Inner {
    mode: Mode,
    /// Builds every key under this deployment's prefix.
    keys: Keys,
    /// Present in every mode but `Off`; in `L2` mode it holds no entries and
    /// only tracks group generations and trust.
    l1: Option<l1::Store>,
    /// Present in `L2` and `Both`.
    l2: Option<l2::Store>,
    metrics: Arc<Metrics>,
    /// L1 TTLs are capped at the entity TTL at construction.
    ttls: Ttls,
    /// Identifies this replica on the bus, so it can ignore its own
    /// invalidation echoes and recognise its own heartbeats.
    origin: String,
    /// Loads in progress in this process, shared by concurrent readers.
    flights: flight::Flights,
    /// The last `statistics` value and the group state it was loaded under,
    /// served while one request refreshes an expired entry.
    statistics: Mutex<Option<catalogue_statistics::Snapshot>>,
    /// Whether a `statistics` refresh is running (at most one at a time).
    refreshing_statistics: AtomicBool,
    /// Trust, pending invalidations and the outbox (see [`sync`]).
    sync: sync::State,
    /// Test hook: holds a fill between its database read and its store.
    pause: Mutex<Option<Arc<FillPause>>>,
    /// Kept so the subscription lives as long as the cache.
    subscriber: Mutex<Option<bus::Subscriber>>,
}

/// The cache, cheap to clone: every clone shares one state.
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("mode", &self.inner.mode)
            .field("prefix", &self.inner.keys.prefix())
            .finish_non_exhaustive()
    }
}

impl Cache {
    /// A user's current token generation, read with their profile (an L1
    /// hit when warm), for checking an access token on every request;
    /// `None` when there is no such user.
    pub async fn token_generation(
        &self,
        db: &crate::db::Db,
        id: uuid::Uuid,
    ) -> Result<Option<i64>, crate::error::LoadError> {
        let profile = match self.peek(USER, id) {
            Some(hit) => hit,
            None => self
                .entities(USER, &[id], |missing| async move {
                    Ok(crate::db::users::profiles(db, missing).await?)
                })
                .await?
                .remove(&id),
        };
        Ok(profile.map(|profile| profile.token_generation))
    }
}

impl Cache {
    /// The tiers this cache was built with.
    pub fn mode(&self) -> Mode {
        self.inner.mode
    }

    /// Hits, misses, loads and round trips, for tests and monitoring.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The cache's families for `/metrics` (see [`Export`]).
    pub fn export(&self) -> Export {
        Export(self.clone())
    }

    /// This replica's id on the bus, and in the stats snapshots.
    pub fn origin(&self) -> &str {
        &self.inner.origin
    }

    /// The prefix of every key of this deployment.
    pub fn prefix(&self) -> &str {
        self.inner.keys.prefix()
    }

    /// The Redis gateway this cache's L2 tier uses, for the other callers
    /// of Redis (the throttle, persisted documents); `None` in modes
    /// without Redis.
    pub fn redis(&self) -> Option<Arc<crate::redis::Gateway>> {
        self.inner.l2.as_ref().map(|l2| l2.redis().clone())
    }

    /// How many replicas of the deployment this one last saw alive: the
    /// subscribers its last heartbeat reached, kept while Redis is away;
    /// 1 without Redis or before the first heartbeat.
    pub fn replicas_seen(&self) -> u64 {
        self.inner.sync.replicas()
    }

    /// [`Cache::replicas_seen`] as a function to keep (the throttle's).
    pub fn replica_counter(&self) -> impl Fn() -> u64 + Send + Sync + 'static {
        let cache = self.clone();
        move || cache.replicas_seen()
    }
}

impl Inner {
    /// L1 when it holds entries (not in `L2` mode, where it only tracks
    /// generations).
    fn l1_entries(&self) -> Option<&l1::Store> {
        match self.mode {
            Mode::L1 | Mode::Both => self.l1.as_ref(),
            Mode::Off | Mode::L2 => None,
        }
    }

    /// L2, when it may be read and filled: the bus is trusted (so no write
    /// acknowledged more than the silence limit ago can be missing from it)
    /// and none of this replica's own invalidations is waiting to be
    /// published.
    fn l2(&self) -> Option<&l2::Store> {
        let trusted = self.l1.as_ref().is_some_and(l1::Store::is_trusted);
        self.l2
            .as_ref()
            .filter(|_| trusted && !self.sync.has_pending())
    }

    /// Evicts keys from L1, moves groups locally (those `moves` name only
    /// learn their generation) and evicts the pages the moves reach, then
    /// cancels the flights of all it evicted, so no later reader joins a
    /// load that began before the write.
    fn evict_locally(
        &self,
        keys: &[l1::Key],
        groups: &[(Group, Option<u64>)],
        moves: &[changes::Move],
    ) {
        let mut evicted = keys.to_vec();
        // Pages are watched, and moves followed by range, only where L1
        // holds them; otherwise (mode `l2`) a move moves its groups whole.
        let by_range = self.l1_entries().is_some();
        if let Some(l1) = &self.l1 {
            for key in keys {
                l1.invalidate(key);
            }
            for (group, generation) in groups {
                let ranged = by_range && moves.iter().any(|moved| moved.groups.contains(group));
                match (ranged, generation) {
                    (true, Some(generation)) => l1.learn_generation(*group, *generation),
                    (true, None) => {}
                    (false, _) => l1.bump_group(*group, *generation),
                }
            }
            // After the generations: a reader whose watch began after this
            // eviction reads L2 under them.
            for moved in moves.iter().filter(|_| by_range) {
                evicted.extend(l1.move_range(&moved.groups, &moved.from, &moved.to));
            }
        }
        self.flights.cancel(&evicted);
    }
}
