//! What the cache reports of itself, as of now: the gauges `/metrics`
//! shows and the state `/readyz` reports.
use super::{bus, l1, Cache, Gauges, Health, Mode};

impl Cache {
    /// What the cache holds and how it hears the bus, as of now.
    pub fn gauges(&self) -> Gauges {
        let inner = &self.inner;
        let l1 = inner.l1_entries();
        Gauges {
            l1_entries: l1.map_or(0, l1::Store::entry_count),
            l1_bytes: l1.map_or(0, l1::Store::weighted_size),
            pending_invalidations: inner.sync.pending_count() as u64,
            heartbeat_age: inner.l2.as_ref().map(|_| inner.sync.heartbeat_age()),
            subscriber_connected: inner
                .subscriber
                .lock()
                .as_ref()
                .map(bus::Subscriber::is_connected),
            trusted: inner.l1.as_ref().is_some_and(l1::Store::is_trusted),
            breaker_open: inner.l2.as_ref().map(|l2| l2.redis().breaker_open()),
        }
    }

    /// L1 entries that remember an absent id. Counted by walking L1, so
    /// only when scraped.
    pub fn negative_entries(&self) -> u64 {
        self.inner
            .l1_entries()
            .map_or(0, l1::Store::negative_entries)
    }

    /// The mode, as `--cache-mode` spells it.
    pub fn mode_name(&self) -> &'static str {
        match self.inner.mode {
            Mode::Off => "off",
            Mode::L1 => "l1",
            Mode::L2 => "l2",
            Mode::Both => "both",
        }
    }

    /// What `/readyz` reports: whether the tiers answer and the bus is trusted.
    pub fn health(&self) -> Health {
        let inner = &self.inner;
        let (subscriber, subscriber_node) = match &*inner.subscriber.lock() {
            Some(subscriber) if subscriber.is_connected() => ("connected", subscriber.node()),
            Some(_) => ("disconnected", None),
            None => ("none", None),
        };
        let trusted = inner.l1.as_ref().is_some_and(l1::Store::is_trusted);
        let status = match &inner.l2 {
            None if inner.mode == Mode::Off => "disabled",
            None => "up",
            Some(l2) if l2.redis().is_up() && trusted => "up",
            Some(_) => "degraded",
        };
        Health {
            mode: format!("{:?}", inner.mode).to_lowercase(),
            status,
            prefix: inner.keys.prefix().to_owned(),
            l1_bytes: inner.l1.as_ref().map_or(0, l1::Store::weighted_size),
            subscriber,
            topology: inner.l2.as_ref().map(|l2| l2.redis().topology().as_str()),
            primaries: inner
                .l2
                .as_ref()
                .map(|l2| l2.redis().primary_addresses())
                .unwrap_or_default(),
            subscriber_node,
            bus_trusted: trusted,
            pending_invalidations: inner.sync.pending_count(),
            namespace: inner.keys.namespace(),
        }
    }
}
