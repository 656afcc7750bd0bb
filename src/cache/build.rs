//! Building a [`Cache`]: the tiers its mode asks for, the Redis gateway
//! they share with the throttle and persisted documents, and the background
//! tasks that keep L1 honest (the bus subscriber, heartbeats and outbox
//! sweeps, the foreign-change watch, the stats publisher). Every task holds
//! the cache weakly and ends when the last clone is dropped.
use super::{
    bus, flight, foreign, l1, l2, replica_stats, sync, Cache, Inner, Metrics, Mode, Settings,
};
use crate::db::Db;
use crate::redis::Keys;
use parking_lot::Mutex;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use uuid::Uuid;

impl Cache {
    /// The cache of the deployment whose database is `db`: the key prefix
    /// holds the database's deployment id unless `settings.prefix` is set.
    /// Redis is connected in the background: if it is down, the cache starts
    /// degraded and recovers by itself.
    pub async fn connect(settings: &Settings, db: &Db) -> Result<Self, crate::error::BoxError> {
        let prefix = match &settings.prefix {
            Some(prefix) => prefix.clone(),
            None => settings.key_prefix(&db.deployment_id().await?),
        };
        Ok(Self::new(settings, &prefix, Some(db.clone()))?)
    }

    /// Refuses, without connecting, a Redis URL or CA file this cache could
    /// not use, so that start-up reports it before touching anything.
    pub fn check(settings: &Settings) -> Result<(), fred::error::Error> {
        if !settings.mode.uses_l2() {
            return Ok(());
        }
        crate::redis::clients::check(&crate::redis::Connection {
            url: settings.redis_url.clone(),
            ca_file: settings.redis_ca_file.clone(),
            command_timeout: settings.command_timeout,
            breaker_interval: settings.breaker_interval,
        })
    }

    /// Waits up to `within` for Redis to be reached for the first time;
    /// the reason when it is not. `Ok` in modes without Redis.
    pub async fn redis_first_contact(&self, within: std::time::Duration) -> Result<(), String> {
        match &self.inner.l2 {
            Some(l2) => l2.redis().first_contact(within).await,
            None => Ok(()),
        }
    }

    /// Builds the tiers `settings.mode` asks for under `prefix`. `outbox` is
    /// the database whose outbox this replica publishes; without it (unit
    /// tests) writes record nothing there.
    pub fn new(
        settings: &Settings,
        prefix: &str,
        outbox: Option<Db>,
    ) -> Result<Self, fred::error::Error> {
        let metrics = Arc::new(Metrics::default());
        let connection = crate::redis::Connection {
            url: settings.redis_url.clone(),
            ca_file: settings.redis_ca_file.clone(),
            command_timeout: settings.command_timeout,
            breaker_interval: settings.breaker_interval,
        };
        let keys = Keys::for_topology(prefix, crate::redis::clients::topology_of(&connection))
            .map_err(|message| fred::error::Error::new(fred::error::ErrorKind::Config, message))?;
        let l1 = (settings.mode != Mode::Off)
            .then(|| l1::Store::new(settings.l1_max_bytes, settings.untrusted_cap));
        let l2 = if settings.mode.uses_l2() {
            let counter_ttl = settings
                .ttls
                .entity
                .max(settings.ttls.list)
                .max(settings.ttls.statistics)
                * 2;
            let redis = crate::redis::Gateway::connect(&connection, keys.clone(), metrics.clone())?;
            Some(
                l2::Store::new(Arc::new(redis), metrics.clone(), counter_ttl)
                    .follow_lsns(outbox.clone()),
            )
        } else {
            None
        };
        let mut ttls = settings.ttls;
        ttls.l1_max = ttls.l1_max.min(ttls.entity);
        let inner = Arc::new(Inner {
            mode: settings.mode,
            keys: keys.clone(),
            l1,
            l2,
            metrics,
            ttls,
            origin: Uuid::now_v7().to_string(),
            flights: flight::Flights::default(),
            statistics: Mutex::new(None),
            refreshing_statistics: AtomicBool::new(false),
            sync: sync::State::new(settings, outbox.filter(|_| settings.mode.uses_l2())),
            pause: Mutex::new(None),
            subscriber: Mutex::new(None),
        });
        if inner.l2.is_some() {
            // Until the bus is first heard, as when it falls silent.
            inner.hear_bus(false);
            let sink = Arc::new(sync::SinkHandle(Arc::downgrade(&inner)));
            let subscriber = bus::Subscriber::start(&connection, keys.channel().to_owned(), sink)?;
            *inner.subscriber.lock() = Some(subscriber);
            tokio::spawn(sync::maintain(Arc::downgrade(&inner)));
            if let Some(db) = inner.sync.outbox.clone() {
                let wake = Arc::new(tokio::sync::Notify::new());
                tokio::spawn(foreign::watch(Arc::downgrade(&inner), wake.clone()));
                tokio::spawn(foreign::listen(Arc::downgrade(&inner), db, wake));
            }
            if settings.publishes_stats {
                tokio::spawn(replica_stats::publish(
                    Arc::downgrade(&inner),
                    settings.stats_interval,
                ));
            }
        }
        Ok(Self { inner })
    }
}
