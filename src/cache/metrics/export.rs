//! The cache's counters and gauges as Prometheus families, written on
//! every scrape of `/metrics`.
use super::*;
use crate::metrics::Family;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;

/// The cache's families for `/metrics`, written from its counters and
/// gauges on every scrape.
#[derive(Debug)]
pub struct Export(pub(in crate::cache) crate::cache::Cache);

impl Collector for Export {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let cache = &self.0;
        let metrics = cache.metrics();
        let responses = metrics.responses();
        let kinds = || Kind::ALL.into_iter().map(|kind| (kind, metrics.kind(kind)));
        {
            let mut hits = Family::start(
                &mut encoder,
                "biblio_cache_hits",
                "Reads a tier answered, by tier (response: whole answers, kind `answer`; l1; l2) and kind",
                MetricType::Counter,
            )?;
            hits.counter(&[("tier", "response"), ("kind", "answer")], responses.hits)?;
            for (kind, counts) in kinds() {
                hits.counter(&[("tier", "l1"), ("kind", kind.as_str())], counts.l1_hits)?;
            }
            for (kind, counts) in kinds() {
                hits.counter(&[("tier", "l2"), ("kind", kind.as_str())], counts.l2_hits)?;
            }
        }
        {
            let mut misses = Family::start(
                &mut encoder,
                "biblio_cache_misses",
                "Reads a tier could not answer, by tier and kind (a response-tier miss is a query executed)",
                MetricType::Counter,
            )?;
            misses.counter(
                &[("tier", "response"), ("kind", "answer")],
                responses.misses,
            )?;
            for (kind, counts) in kinds() {
                misses.counter(&[("tier", "l1"), ("kind", kind.as_str())], counts.l1_misses)?;
            }
            for (kind, counts) in kinds() {
                misses.counter(&[("tier", "l2"), ("kind", kind.as_str())], counts.l2_misses)?;
            }
        }
        {
            let mut loads = Family::start(
                &mut encoder,
                "biblio_cache_loads",
                "Values loaded from the database after missing every tier, by kind",
                MetricType::Counter,
            )?;
            for (kind, counts) in kinds() {
                loads.counter(&[("kind", kind.as_str())], counts.loads)?;
            }
        }
        {
            let mut joins = Family::start(
                &mut encoder,
                "biblio_cache_flight_joins",
                "Readers that waited for another reader's load of the same key instead of loading it, by kind",
                MetricType::Counter,
            )?;
            for kind in Kind::ALL {
                joins.counter(&[("kind", kind.as_str())], metrics.flight_joins(kind))?;
            }
        }
        {
            let mut refused = Family::start(
                &mut encoder,
                "biblio_cache_fills_refused",
                "Fills a race guard refused because a write invalidated the key while it was loaded, by tier",
                MetricType::Counter,
            )?;
            refused.counter(&[("tier", "l1")], metrics.refused_fills(FillTier::L1))?;
            refused.counter(&[("tier", "l2")], metrics.refused_fills(FillTier::L2))?;
        }
        {
            let mut events = Family::start(
                &mut encoder,
                "biblio_response_tier_events",
                "What the response tier did besides hits and misses: answers stored, refused (something they read changed, or too large), revalidations answered 304, codings compressed, queries that waited for the same query's execution, and those it answered",
                MetricType::Counter,
            )?;
            for (event, n) in [
                ("stored", responses.stored),
                ("refused", responses.refused),
                ("not_modified", responses.not_modified),
                ("compressed", responses.compressed),
                ("waited", responses.waited),
                ("joined", responses.joined),
            ] {
                events.counter(&[("event", event)], n)?;
            }
        }
        let gauges = cache.gauges();
        crate::metrics::gauge(
            &mut encoder,
            "biblio_cache_l1_entries",
            "Entries in this replica's L1",
            gauges.l1_entries,
        )?;
        crate::metrics::gauge(
            &mut encoder,
            "biblio_cache_l1_bytes",
            "L1's weighted size: encoded values plus bookkeeping",
            gauges.l1_bytes,
        )?;
        crate::metrics::gauge(
            &mut encoder,
            "biblio_cache_l1_negative_entries",
            "L1 entries that remember an absent id",
            cache.negative_entries(),
        )?;
        crate::metrics::counter(
            &mut encoder,
            "biblio_cache_invalidations_published",
            "Writes' invalidation events this replica published at once",
            metrics.events_published(),
        )?;
        crate::metrics::counter(
            &mut encoder,
            "biblio_cache_invalidations_received",
            "Invalidation events from other replicas heard here",
            metrics.events_received(),
        )?;
        crate::metrics::counter(
            &mut encoder,
            "biblio_cache_invalidations_replayed",
            "Invalidations published late: after a Redis outage, or from the outbox",
            metrics.replays(),
        )?;
        let (lagged, dropped) = metrics.bus_lags();
        crate::metrics::counter(
            &mut encoder,
            "biblio_cache_bus_lagged",
            "Times the bus's subscriber fell behind and messages were dropped unread; each dropped L1 and the kept answers",
            lagged,
        )?;
        crate::metrics::counter(
            &mut encoder,
            "biblio_cache_bus_dropped_messages",
            "Bus messages dropped unread because the subscriber fell behind",
            dropped,
        )?;
        crate::metrics::counter(
            &mut encoder,
            "biblio_cache_redis_failovers",
            "Promoted Redis primaries (Sentinel failovers) found here, for which the namespace moved",
            metrics.failovers(),
        )?;
        crate::metrics::counter(
            &mut encoder,
            "biblio_cache_foreign_changes",
            "Rows changed by other programs (recorded by the database's triggers) this replica turned into invalidations",
            metrics.foreign_changes_taken(),
        )?;
        crate::metrics::counter(
            &mut encoder,
            "biblio_cache_foreign_published_early",
            "Invalidations of other programs' changes published before the rows were taken (each a harmless duplicate of the taker's)",
            metrics.foreign_early(),
        )?;
        crate::metrics::counter(
            &mut encoder,
            "biblio_cache_foreign_clears",
            "Backlogs of other programs' changes too long to name row by row, answered by clearing the cache",
            metrics.foreign_clears(),
        )?;
        crate::metrics::gauge(
            &mut encoder,
            "biblio_cache_invalidations_pending",
            "Invalidations committed here (and in the outbox) that Redis has not taken yet",
            gauges.pending_invalidations,
        )?;
        crate::metrics::histogram(
            &mut encoder,
            "biblio_cache_invalidation_lag_seconds",
            "From an event's publication (the publisher's clock) to its receipt here (this clock), clamped at 0",
            &metrics.lag,
        )?;
        if let Some(age) = gauges.heartbeat_age {
            crate::metrics::gauge(
                &mut encoder,
                "biblio_cache_bus_heartbeat_age_seconds",
                "How long ago the last heartbeat of this replica heard back on the bus was sent",
                age.as_secs_f64(),
            )?;
        }
        if let Some(connected) = gauges.subscriber_connected {
            crate::metrics::gauge(
                &mut encoder,
                "biblio_cache_bus_subscriber_connected",
                "1 while the bus's subscriber is connected",
                u64::from(connected),
            )?;
        }
        crate::metrics::gauge(
            &mut encoder,
            "biblio_cache_bus_trusted",
            "1 while the bus is heard: L1 trusted, L2 read",
            u64::from(gauges.trusted),
        )?;
        for (index, name, help) in [
            (
                0,
                "biblio_redis_commands",
                "Redis calls, requests' and background ones, by command",
            ),
            (
                1,
                "biblio_redis_timeouts",
                "Redis calls that timed out, by command",
            ),
            (
                2,
                "biblio_redis_errors",
                "Redis calls that failed otherwise (connection lost, command refused), by command",
            ),
        ] {
            let mut family = Family::start(&mut encoder, name, help, MetricType::Counter)?;
            for (command, (_, label)) in COMMANDS.iter().enumerate() {
                let n = metrics.redis_calls[index][command].load(Ordering::Relaxed);
                family.counter(&[("command", *label)], n)?;
            }
        }
        crate::metrics::counter(
            &mut encoder,
            "biblio_redis_request_round_trips",
            "Redis round trips made for requests (reads and fills), as the tests that prove batching count them",
            metrics.redis_round_trips(),
        )?;
        if let Some(open) = gauges.breaker_open {
            crate::metrics::gauge(
                &mut encoder,
                "biblio_redis_breaker_open",
                "1 while the breaker in front of Redis is open (requests skip L2)",
                u64::from(open),
            )?;
        }
        let mut info = Family::start(
            &mut encoder,
            "biblio_cache_info",
            "The cache's configuration: always 1, labelled with its mode and key prefix",
            MetricType::Gauge,
        )?;
        info.gauge(
            &[("mode", cache.mode_name()), ("prefix", cache.prefix())],
            1u64,
        )
    }
}
