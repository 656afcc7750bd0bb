//! What a replica does with what the bus tells it: an event evicts, a
//! heartbeat renews trust, a gap or a disconnection withdraws it.
use super::*;

/// Delivers the bus to the cache without keeping it alive.
pub(in crate::cache) struct SinkHandle(pub(in crate::cache) Weak<Inner>);

impl bus::Sink for SinkHandle {
    fn event(&self, event: Event) {
        let Some(inner) = self.0.upgrade() else {
            return;
        };
        // From invalidations, clears and our own heartbeats (another
        // replica's prove nothing here), and first, so that a heartbeat
        // proves the namespace known before it proves anything else.
        if event.beat.is_none() || event.origin == inner.origin {
            if let Some(namespace) = event.namespace {
                inner.learn_namespace(namespace);
            }
        }
        if event.origin == inner.origin {
            // Our heartbeat came back: everything published before it has
            // arrived. Our own invalidations were evicted before and after
            // their script; the echo would only disturb fills in flight.
            if let Some(beat) = event.beat {
                inner.sync.heard.fetch_max(beat, Ordering::AcqRel);
                if let Some(l1) = &inner.l1 {
                    l1.renew_trust(inner.sync.lease_end());
                }
            }
            return;
        }
        if event.beat.is_some() {
            return;
        }
        inner.metrics.event_received();
        if let Some(lag) = event.lag() {
            inner.metrics.lag(lag);
        }
        // Before anything is evicted: a fill whose guard is taken after the
        // eviction must not read a replica that lacks the write.
        if let (Some(position), Some(db)) = (event.position(), &inner.sync.outbox) {
            db.learn_position(position);
        }
        let groups: Vec<(Group, Option<u64>)> = event
            .groups
            .iter()
            .filter_map(|(name, generation)| Some((Group::parse(name)?, Some(*generation))))
            .collect();
        let entries: Vec<l1::Key> = event
            .keys
            .iter()
            .filter_map(|key| inner.keys.parse_entity(key))
            .map(|(kind, id)| l1::Key::Entity(kind, id))
            .collect();
        let moves: Vec<Move> = match event.moves.as_deref().map(serde_json::from_str) {
            None => Vec::new(),
            Some(Ok(moves)) => moves,
            Some(Err(_)) => {
                // Moves this build cannot read: their groups move whole.
                tracing::warn!("ignoring the unreadable moves of an invalidation event");
                Vec::new()
            }
        };
        inner.evict_locally(&entries, &groups, &moves);
    }

    fn connected(&self) {
        // Events sent while we were not subscribed are lost: forget all.
        if let Some(l1) = self
            .0
            .upgrade()
            .as_ref()
            .and_then(|inner| inner.l1.as_ref())
        {
            l1.clear();
        }
    }

    fn lagged(&self, dropped: u64) {
        let Some(inner) = self.0.upgrade() else {
            return;
        };
        inner.metrics.bus_lagged(dropped);
        // Which events were dropped is unknown: forget all, as after a
        // reconnect. Clearing L1 also ends every kept answer (their stamps
        // include L1's clears).
        if let Some(l1) = &inner.l1 {
            l1.clear();
        }
        *inner.statistics.lock() = None;
    }

    fn disconnected(&self) {
        let Some(inner) = self.0.upgrade() else {
            return;
        };
        if let Some(l1) = &inner.l1 {
            l1.revoke_trust();
        }
        inner.hear_bus(false);
    }
}
