//! Keeping every replica's copies honest: committing a write with its
//! invalidation, publishing it, the heartbeat that decides whether the bus
//! (and so L1 and L2) can be trusted, and publishing what could not be
//! published at once. The argument is in the module documentation of
//! [`crate::cache`].
use super::bus::{self, Event};
use super::changes::Move;
use super::l2::{self, Invalidated};
use super::{l1, Cache, Change, Group, Inner, Invalidation};
use crate::db::replicas::Position;
use crate::db::{outbox, Db, Write};
use crate::error::Result;
use crate::redis::Topology;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Weak;
use std::time::{Duration, Instant};

/// One committed write's invalidation, and its outbox row if it has one.
pub(super) struct Pending {
    pub(super) outbox: Option<i64>,
    pub(super) invalidation: Invalidation,
    /// The primary's WAL position after the write, with read replicas (see
    /// `db::replicas`), or the token of an unknown one; this process's
    /// horizon already holds it, or has noticed the unknown one.
    pub(super) position: Option<Position>,
}

/// What this replica knows of the bus and of its unpublished invalidations.
pub(super) struct State {
    /// The origin of `heard`'s clock.
    started: Instant,
    /// When (nanoseconds since `started`) the last heartbeat of this replica
    /// that came back was sent; 0 before the first.
    heard: AtomicU64,
    /// Invalidations committed here that Redis did not take. While any is
    /// here this replica neither reads nor fills L2 (see `Inner::l2`).
    pending: Mutex<Vec<Pending>>,
    /// Outbox rows published, deleted together at the next tick.
    published: Mutex<Vec<i64>>,
    /// The database whose outbox (and `cache_changes`) this replica
    /// publishes; `None` in the modes without Redis, where writes record no
    /// invalidation.
    pub(super) outbox: Option<Db>,
    /// See [`super::Settings::bus_silence`].
    silence: Duration,
    /// See [`super::Settings::outbox_delay`].
    outbox_delay: Duration,
    /// How many replicas of the deployment the last heartbeat reached (the
    /// subscribers of its channel, this one included); 1 before any did.
    /// Kept through an outage: what sign-in throttling divides its limits
    /// by while Redis cannot count for the whole deployment.
    replicas: AtomicU64,
    /// On Sentinel, whether at the last heartbeat this replica's
    /// connections and the sentinels disagreed about the primary (see
    /// `redis::Gateway::primary_disputed`): the bus is not trusted meanwhile.
    disputed: AtomicBool,
    /// The newest of other programs' changes this replica published before
    /// taking them (see `foreign`): each is published early once.
    pub(super) early_through: AtomicI64,
}

/// How a sweep of the outbox went.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Swept {
    /// Everything old enough was published (or there was nothing).
    Published,
    /// The outbox could not be read: the database, not Redis, is in doubt.
    Unread,
    /// Redis did not take an invalidation another replica (or this one)
    /// committed: one some replicas may not have heard of.
    Refused,
}

impl State {
    pub(super) fn new(settings: &super::Settings, outbox: Option<Db>) -> Self {
        Self {
            started: Instant::now(),
            heard: AtomicU64::new(0),
            pending: Mutex::new(Vec::new()),
            published: Mutex::new(Vec::new()),
            outbox,
            silence: settings.bus_silence,
            outbox_delay: settings.outbox_delay,
            replicas: AtomicU64::new(1),
            disputed: AtomicBool::new(false),
            early_through: AtomicI64::new(0),
        }
    }

    /// How many replicas the last heartbeat that Redis took reached, at
    /// least 1 (this one).
    pub(super) fn replicas(&self) -> u64 {
        self.replicas.load(Ordering::Relaxed).max(1)
    }

    pub(super) fn has_pending(&self) -> bool {
        !self.pending.lock().is_empty()
    }

    pub(super) fn pending_count(&self) -> usize {
        self.pending.lock().len()
    }

    fn now(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// The moment as of which a value read now reflects every write: with a
    /// bus, when the last heartbeat heard back was sent (everything published
    /// before it has arrived); without one, now.
    pub(super) fn current_as_of(&self) -> Instant {
        if self.outbox.is_none() {
            return Instant::now();
        }
        self.started + Duration::from_nanos(self.heard.load(Ordering::Acquire))
    }

    /// How long ago the last heartbeat heard back was sent; since the
    /// start if none has come back yet.
    pub(super) fn heartbeat_age(&self) -> Duration {
        let heard = self.heard.load(Ordering::Acquire);
        Duration::from_nanos(self.now().saturating_sub(heard))
    }

    /// Until when the last heartbeat heard keeps the bus trusted: the
    /// silence limit after it was sent.
    fn lease_end(&self) -> Instant {
        self.started + Duration::from_nanos(self.heard.load(Ordering::Acquire)) + self.silence
    }

    /// Whether a heartbeat sent within the silence limit has come back.
    fn bus_fresh(&self) -> bool {
        let heard = self.heard.load(Ordering::Acquire);
        heard != 0 && self.now().saturating_sub(heard) <= self.silence.as_nanos() as u64
    }
}

impl Cache {
    /// Commits `write` with the record of what `change` invalidates, then
    /// makes every replica forget it: evict here, run the invalidation script
    /// (which publishes the event), evict here again. If Redis does not
    /// answer, the invalidation stays pending here and in the outbox.
    ///
    /// It runs to its end in a task of its own: a client that goes away
    /// drops its request's future, and a write cut between its COMMIT and
    /// its invalidation would wait for the outbox sweep to be published
    /// (and leave PostgreSQL a COMMIT half-read on a pooled connection).
    pub async fn commit(&self, write: Write, change: Change) -> Result<()> {
        let inner = std::sync::Arc::clone(&self.inner);
        tokio::spawn(async move {
            let invalidation = for_database(change.invalidation(), write.db());
            let payload = inner.sync.outbox.as_ref().map(|_| invalidation.to_outbox());
            let committed = write.commit(payload.as_deref()).await?;
            inner
                .publish(Pending {
                    outbox: committed.outbox,
                    invalidation,
                    position: committed.position,
                })
                .await;
            Ok(())
        })
        .await
        .map_err(crate::error::Error::internal)?
    }
}

/// `invalidation` as `db` can honour it: title moves compare titles as
/// Rust does, so under a collation that orders them otherwise they move
/// their groups whole.
pub(super) fn for_database(mut invalidation: Invalidation, db: &Db) -> Invalidation {
    if !db.orders_text_by_bytes() {
        invalidation.harden(super::matching::Ranged::Title);
    }
    invalidation
}

/// L1's names for an invalidation's entries and its groups (those its
/// moves name too), generations unknown.
fn local_names(invalidation: &Invalidation) -> (Vec<l1::Key>, Vec<(Group, Option<u64>)>) {
    let keys = invalidation
        .entries
        .iter()
        .map(|(kind, id)| l1::Key::Entity(*kind, *id))
        .collect();
    let groups = invalidation
        .groups
        .iter()
        .copied()
        .chain(invalidation.ranged_groups())
        .map(|group| (group, None))
        .collect();
    (keys, groups)
}

impl Inner {
    /// Tells the database whether invalidations are known to arrive: while
    /// they are not, its reads stay on the primary (see `db::replicas`).
    pub(super) fn hear_bus(&self, heard: bool) {
        if let Some(db) = &self.sync.outbox {
            db.hear_bus(heard);
        }
    }

    /// Evicts `pending` here and publishes it; keeps it pending if Redis
    /// does not take it.
    pub(super) async fn publish(&self, pending: Pending) {
        let moves = &pending.invalidation.moves;
        let (local, unknown) = local_names(&pending.invalidation);
        self.evict_locally(&local, &unknown, moves);
        let Some(l2) = &self.l2 else {
            return;
        };
        match self
            .invalidate_in_redis(l2, &pending.invalidation, pending.position, false)
            .await
        {
            Some(generations) => {
                self.metrics.event_published();
                self.evict_locally(&local, &known(generations), moves);
                self.sync.published.lock().extend(pending.outbox);
            }
            None => {
                self.evict_locally(&local, &unknown, moves);
                tracing::warn!("an invalidation could not reach redis: kept pending, L2 skipped until it is published");
                self.sync.pending.lock().push(pending);
            }
        }
    }

    /// Runs the invalidation script under the namespace current in Redis:
    /// if the cache was cleared since this replica learnt its namespace, the
    /// script does nothing and says so; the replica learns the new one
    /// (dropping L1) and names the entries again. Deleting them under the
    /// old one would leave the entries readers now fill stale. `None` if
    /// Redis did not answer.
    async fn invalidate_in_redis(
        &self,
        l2: &l2::Store,
        invalidation: &Invalidation,
        position: Option<Position>,
        replay: bool,
    ) -> Option<Vec<(Group, u64)>> {
        // Only a clear between two tries sends this round again.
        for _ in 0..3 {
            let namespace = self.keys.namespace();
            let outcome = if replay {
                l2.replay(&self.origin, namespace, invalidation, position)
                    .await
            } else {
                l2.invalidate(&self.origin, namespace, invalidation, position)
                    .await
            };
            match outcome? {
                Invalidated::Done(generations) => return Some(generations),
                Invalidated::Cleared(current) => self.learn_namespace(current),
            }
        }
        tracing::warn!("the cache was cleared three times during one invalidation; retrying later");
        None
    }

    /// Publishes a copy of an invalidation of other programs' changes
    /// before they are taken, which publishes it again (see `foreign`), and
    /// evicts it here; nothing is kept if Redis does not take it.
    pub(super) async fn publish_copy(
        &self,
        invalidation: &Invalidation,
        position: Option<Position>,
    ) {
        let Some(l2) = &self.l2 else {
            return;
        };
        let (local, unknown) = local_names(invalidation);
        self.evict_locally(&local, &unknown, &invalidation.moves);
        if let Some(generations) = self
            .invalidate_in_redis(l2, invalidation, position, false)
            .await
        {
            self.metrics.foreign_published_early();
            self.evict_locally(&local, &known(generations), &invalidation.moves);
        }
    }

    /// Publishes `invalidation` (gathered from elsewhere: this replica's
    /// pending ones, or the outbox) and evicts it here. Returns whether Redis
    /// took it.
    async fn replay(&self, invalidation: &Invalidation, position: Option<Position>) -> bool {
        let Some(l2) = &self.l2 else {
            return true;
        };
        match self
            .invalidate_in_redis(l2, invalidation, position, true)
            .await
        {
            Some(generations) => {
                let (local, _) = local_names(invalidation);
                self.evict_locally(&local, &known(generations), &invalidation.moves);
                self.metrics.replayed(1);
                true
            }
            None => false,
        }
    }

    /// Publishes this replica's pending invalidations, a batch per script
    /// call (a long outage can leave many). They stay pending (and L2
    /// skipped) until Redis has taken them. Returns whether none is left.
    async fn replay_pending(&self) -> bool {
        /// Writes merged into one script call.
        const BATCH: usize = 256;
        loop {
            let (count, merged, ids, position) = {
                let pending = self.sync.pending.lock();
                let batch = &pending[..pending.len().min(BATCH)];
                let mut merged = Invalidation::default();
                for p in batch {
                    merged.merge(&p.invalidation);
                }
                let ids: Vec<i64> = batch.iter().filter_map(|p| p.outbox).collect();
                let position = batch
                    .iter()
                    .filter_map(|p| p.position)
                    .reduce(Position::merge);
                (batch.len(), merged, ids, position)
            };
            if count == 0 {
                return true;
            }
            if !self.replay(&merged, position).await {
                return false;
            }
            // Only this task removes entries, and new ones are appended, so
            // the first `count` are the ones just published.
            self.sync.pending.lock().drain(..count);
            self.sync.published.lock().extend(ids);
            tracing::info!(
                writes = count,
                "redis answers again: published the invalidations it missed"
            );
        }
    }

    /// Publishes outbox entries recorded at least `age` ago: those whose
    /// writer died, or could not reach Redis when others could.
    async fn sweep(&self, age: Duration) -> Swept {
        /// Rows published per script call.
        const BATCH: u64 = 1000;
        let Some(db) = &self.sync.outbox else {
            return Swept::Published;
        };
        loop {
            let rows = match outbox::older_than(db, age, BATCH).await {
                Ok(rows) => rows,
                Err(err) => {
                    tracing::warn!(error = %err, "could not read the cache outbox");
                    return Swept::Unread;
                }
            };
            if rows.is_empty() {
                return Swept::Published;
            }
            // Read after the rows: past the commit of every write they record.
            let position = db.position_after_commit().await;
            let mut merged = Invalidation::default();
            for row in &rows {
                match Invalidation::from_outbox(&row.payload) {
                    Some(invalidation) => merged.merge(&invalidation),
                    None => tracing::error!(id = row.id, "ignoring a malformed cache outbox entry"),
                }
            }
            if !self.replay(&merged, position).await {
                return Swept::Refused;
            }
            tracing::info!(
                entries = rows.len(),
                "published invalidations left in the outbox"
            );
            // Deleted before the next batch is read, which would otherwise
            // be this one again.
            let ids: Vec<i64> = rows.iter().map(|row| row.id).collect();
            if let Err(err) = outbox::remove(db, &ids).await {
                tracing::warn!(error = %err, "could not delete published outbox entries");
                self.sync.published.lock().extend(ids);
                return Swept::Unread;
            }
            if (rows.len() as u64) < BATCH {
                return Swept::Published;
            }
        }
    }

    /// Deletes the outbox rows published since the last call.
    async fn forget_published(&self) {
        let Some(db) = &self.sync.outbox else {
            return;
        };
        let ids = std::mem::take(&mut *self.sync.published.lock());
        if let Err(err) = outbox::remove(db, &ids).await {
            tracing::debug!(error = %err, "could not delete published outbox entries; retrying");
            self.sync.published.lock().extend(ids);
        }
    }

    fn subscriber_connected(&self) -> bool {
        self.subscriber
            .lock()
            .as_ref()
            .is_some_and(bus::Subscriber::is_connected)
    }

    /// Moves trust with the bus. Trust is regained only after this replica's
    /// pending invalidations, other programs' changes and the whole outbox
    /// have been published, so nothing a silent spell hid can be read from
    /// L2 afterwards.
    async fn follow_the_bus(&self, l1: &l1::Store) {
        let fresh = self.subscriber_connected()
            && self.sync.bus_fresh()
            && !self.sync.disputed.load(Ordering::Acquire);
        let trusted = l1.is_trusted();
        if fresh && !trusted {
            if self.replay_pending().await
                && self.take_foreign_changes().await
                && self.sweep(Duration::ZERO).await == Swept::Published
                && self.settle_primary().await
            {
                l1.trust_until(self.sync.lease_end());
                self.hear_bus(true);
                tracing::info!("the invalidation bus is heard: L1 and L2 trusted");
            }
        } else if !fresh && l1.is_trust_claimed() {
            // Its lease has run out already if the silence began more than
            // the limit ago; this says so and tells the database.
            l1.revoke_trust();
            self.hear_bus(false);
            tracing::warn!(
                "the invalidation bus is silent: skipping L2, L1 entries served within the cap"
            );
        }
    }
}

impl Inner {
    /// Stops trusting the bus at once, and forgets L1 (with it every kept
    /// answer): unlike a silence, `why` means this replica may have filled
    /// L1 from L2 entries a write should have removed, while it still heard
    /// its heartbeats, so its entries' stamps prove nothing.
    fn distrust(&self, l1: &l1::Store, why: &'static str) {
        l1.revoke_trust();
        l1.clear();
        *self.statistics.lock() = None;
        self.hear_bus(false);
        tracing::warn!("{why}: skipping L2 and forgetting L1 until it is resolved");
    }

    /// Before trusting the bus again: on Sentinel, a primary a failover
    /// promoted may lack invalidations the old one acknowledged, so the
    /// namespace moves (once, by whichever replica finds it first) and every
    /// replica learns it. Returns whether Redis answered.
    async fn settle_primary(&self) -> bool {
        let Some(l2) = &self.l2 else {
            return true;
        };
        let Some((namespace, moved)) = l2.settle_primary(self.keys.namespace()).await else {
            return false;
        };
        if moved {
            self.metrics.failover();
            tracing::warn!(
                namespace,
                "redis: a failover promoted another primary, which may have lost acknowledged \
                 writes: the cache moved to a new namespace"
            );
        }
        self.learn_namespace(namespace);
        true
    }
}

fn known(generations: Vec<(Group, u64)>) -> Vec<(Group, Option<u64>)> {
    generations
        .into_iter()
        .map(|(group, generation)| (group, Some(generation)))
        .collect()
}

mod bus_events;
mod maintenance;

pub(super) use bus_events::SinkHandle;
pub(super) use maintenance::maintain;

#[cfg(test)]
mod tests;
