//! What the database is asked and how the pool is doing, for `/metrics`.
//! Statements are counted and timed by sea-orm's metric callback (set in
//! [`Db::connect`](super::Db::connect)), with relaxed atomics; the pool's
//! state is read from sqlx when scraped.
use super::Db;
use crate::metrics::histogram::{Histogram, QUERY_SECONDS};
use crate::metrics::Family;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use sea_orm::DatabaseConnection;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Why a statement ran: the service's own work, or the cache outbox's
/// background bookkeeping (kept apart so that counts of a request's
/// statements are exact).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Reads and writes of the service.
    Service,
    /// The cache outbox (`db::outbox`).
    Outbox,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::Service => "service",
            Purpose::Outbox => "outbox",
        }
    }
}

/// Statements executed, failed and their durations, by [`Purpose`].
#[derive(Debug)]
pub struct Statements {
    executed: [AtomicU64; 2],
    failed: [AtomicU64; 2],
    durations: [Histogram; 2],
}

impl Default for Statements {
    fn default() -> Self {
        Self {
            executed: Default::default(),
            failed: Default::default(),
            durations: [Histogram::new(QUERY_SECONDS), Histogram::new(QUERY_SECONDS)],
        }
    }
}

impl Statements {
    /// Records one statement.
    pub fn record(&self, purpose: Purpose, elapsed: Duration, failed: bool) {
        let i = purpose as usize;
        self.executed[i].fetch_add(1, Ordering::Relaxed);
        if failed {
            self.failed[i].fetch_add(1, Ordering::Relaxed);
        }
        self.durations[i].observe(elapsed);
    }

    /// Statements of `purpose` executed so far.
    pub fn executed(&self, purpose: Purpose) -> u64 {
        self.executed[purpose as usize].load(Ordering::Relaxed)
    }
}

/// The pool's connections: (open, idle, most allowed).
fn pool(conn: &DatabaseConnection) -> Option<(u32, u32, u32)> {
    match conn {
        DatabaseConnection::SqlxSqlitePoolConnection(_) => {
            let pool = conn.get_sqlite_connection_pool();
            Some((
                pool.size(),
                pool.num_idle() as u32,
                pool.options().get_max_connections(),
            ))
        }
        DatabaseConnection::SqlxPostgresPoolConnection(_) => {
            let pool = conn.get_postgres_connection_pool();
            Some((
                pool.size(),
                pool.num_idle() as u32,
                pool.options().get_max_connections(),
            ))
        }
        _ => None,
    }
}

/// The pool's connections as of now, for the dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Pool {
    /// Open connections running a statement or held by a transaction.
    pub in_use: u32,
    /// Open connections waiting for work.
    pub idle: u32,
    /// The most connections the pool opens.
    pub max: u32,
}

impl Db {
    /// The pool's state; `None` for a connection that is not a pool.
    pub fn pool(&self) -> Option<Pool> {
        pool(self.conn()).map(|(open, idle, max)| Pool {
            in_use: open.saturating_sub(idle),
            idle,
            max,
        })
    }
}

/// The database's families for `/metrics`.
#[derive(Debug)]
pub struct Export(pub(super) Db);

impl Collector for Export {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let statements = &self.0.metrics;
        let purposes = [Purpose::Service, Purpose::Outbox];
        {
            let mut family = Family::start(
                &mut encoder,
                "biblio_db_queries",
                "SQL statements executed, by purpose (the service's, or the cache outbox's bookkeeping)",
                MetricType::Counter,
            )?;
            for purpose in purposes {
                family.counter(
                    &[("purpose", purpose.as_str())],
                    statements.executed(purpose),
                )?;
            }
        }
        {
            let mut family = Family::start(
                &mut encoder,
                "biblio_db_query_errors",
                "SQL statements that failed, by purpose",
                MetricType::Counter,
            )?;
            for purpose in purposes {
                let n = statements.failed[purpose as usize].load(Ordering::Relaxed);
                family.counter(&[("purpose", purpose.as_str())], n)?;
            }
        }
        {
            let mut family = Family::start(
                &mut encoder,
                "biblio_db_query_duration_seconds",
                "How long SQL statements took, by purpose",
                MetricType::Histogram,
            )?;
            for purpose in purposes {
                family.histogram(
                    &[("purpose", purpose.as_str())],
                    &statements.durations[purpose as usize],
                )?;
            }
        }
        if let Some(replicas) = self.0.read_replicas() {
            let (to_standbys, to_primary) = replicas.reads();
            {
                let mut family = Family::start(
                    &mut encoder,
                    "biblio_db_reads",
                    "Reads outside write transactions, by where they went: a read replica that \
                     had replayed every invalidation known here, or the primary",
                    MetricType::Counter,
                )?;
                family.counter(&[("target", "replica")], to_standbys)?;
                family.counter(&[("target", "primary")], to_primary)?;
            }
            let report = replicas.report();
            {
                let mut family = Family::start(
                    &mut encoder,
                    "biblio_db_replica_lag_seconds",
                    "How far each read replica's replay lags the primary, at its last poll",
                    MetricType::Gauge,
                )?;
                for standby in &report {
                    family.gauge(
                        &[("replica", standby.name.as_str())],
                        standby.lag.as_secs_f64(),
                    )?;
                }
            }
            let mut family = Family::start(
                &mut encoder,
                "biblio_db_replica_skipped",
                "1 while a read replica is skipped (lagging beyond the limit, or not answering)",
                MetricType::Gauge,
            )?;
            for standby in &report {
                family.gauge(
                    &[("replica", standby.name.as_str())],
                    i64::from(standby.status != "up"),
                )?;
            }
        }
        if let Some((open, idle, max)) = pool(self.0.conn()) {
            {
                let mut family = Family::start(
                    &mut encoder,
                    "biblio_db_pool_connections",
                    "The pool's open connections, in use by a statement or idle",
                    MetricType::Gauge,
                )?;
                family.gauge(&[("state", "in_use")], open.saturating_sub(idle))?;
                family.gauge(&[("state", "idle")], idle)?;
            }
            crate::metrics::gauge(
                &mut encoder,
                "biblio_db_pool_max_connections",
                "The most connections the pool opens",
                max,
            )?;
        }
        Ok(())
    }
}
