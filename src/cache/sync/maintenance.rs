//! The background task of a replica with Redis: heartbeats that decide
//! whether the bus is trusted, replays of pending invalidations, and the
//! outbox sweep.
use super::*;

/// The background task of a replica with Redis: heartbeats, trust, replays
/// of its pending invalidations (every 25 ms while there are any), and the
/// outbox sweep. Ends when the cache is dropped.
pub(in crate::cache) async fn maintain(inner: Weak<Inner>) {
    let (beat, sweep_every) = match inner.upgrade() {
        Some(inner) => (
            (inner.sync.silence / 5).max(Duration::from_millis(10)),
            (inner.sync.outbox_delay / 2).max(Duration::from_millis(10)),
        ),
        None => return,
    };
    let mut next_beat = Instant::now();
    let mut next_sweep = Instant::now() + sweep_every;
    loop {
        {
            let Some(inner) = inner.upgrade() else {
                return;
            };
            let (Some(l1), Some(l2)) = (&inner.l1, &inner.l2) else {
                return;
            };
            if inner.sync.has_pending() {
                inner.replay_pending().await;
            }
            if Instant::now() >= next_beat {
                next_beat = Instant::now() + beat;
                let head = Event::heartbeat_head(&inner.origin, inner.sync.now());
                if let Some(reached) = l2.heartbeat(head, inner.keys.namespace()).await {
                    inner.sync.replicas.store(reached.max(1), Ordering::Relaxed);
                }
                // A failover quicker than the silence limit never costs the
                // bus its trust, so the primary is also checked while
                // trusted, every beat (on Sentinel and Cluster; nothing
                // otherwise). On a Cluster the heartbeat reaches one
                // primary only: one that stops answering may hold entries
                // a write could not remove, whose event therefore waits,
                // so the bus is not trusted until every primary answers.
                let subscriber = inner
                    .subscriber
                    .lock()
                    .as_ref()
                    .and_then(bus::Subscriber::node);
                let disputed = l2.redis().primary_disputed(subscriber).await;
                inner.sync.disputed.store(disputed, Ordering::Release);
                if disputed && l1.is_trusted() {
                    inner.distrust(
                        l1,
                        "redis: the sentinels name another primary than this replica's \
                         connections (a failover under way)",
                    );
                }
                if l1.is_trusted()
                    && !inner.settle_primary().await
                    && l2.redis().topology() == Topology::Cluster
                {
                    l1.revoke_trust();
                    tracing::warn!(
                        "a Redis Cluster primary does not answer: skipping L2, L1 entries served \
                         within the cap"
                    );
                }
            }
            inner.follow_the_bus(l1).await;
            if Instant::now() >= next_sweep && l1.is_trusted() {
                next_sweep = Instant::now() + sweep_every;
                // An invalidation older than the outbox delay that Redis
                // refuses now (a slot migrating on a Cluster, a primary
                // refusing writes to some replicas): others' heartbeats may
                // still come back, so without this they would read the L2
                // entries it should have removed.
                if inner.sweep(inner.sync.outbox_delay).await == Swept::Refused {
                    inner.distrust(
                        l1,
                        "redis refused an invalidation left in the outbox by a replica that \
                         could not publish it",
                    );
                }
            }
            inner.forget_published().await;
        }
        let pending = inner
            .upgrade()
            .is_some_and(|inner| inner.sync.has_pending());
        let tick = if pending {
            beat.min(Duration::from_millis(25))
        } else {
            next_beat.saturating_duration_since(Instant::now())
        };
        tokio::time::sleep(tick).await;
    }
}
