//! Read replicas: PostgreSQL streaming standbys (`--database-read-url`)
//! that take the cache's misses off the primary without ever putting an
//! old row back into the cache.
//!
//! A standby replays the primary's WAL some time after the primary
//! committed it. A cache fill read from a standby that has not yet replayed
//! a write would put the row as it was before the write back into L1, L2 or
//! a kept answer, after the write's invalidation, and keep it for the whole
//! TTL. So each invalidation carries the primary's WAL position (LSN) read
//! after its write committed, and a read goes to a standby only if that
//! standby is known to have replayed every position this process has been
//! told of (its **horizon**); otherwise it goes to the primary.
//!
//! Why no stale fill is kept. Every fill takes its guard before it reads
//! (an L1 ticket, the L2 version read by the MGET, or the global sequence
//! for primed rows), and an invalidation that lands after the guard was
//! taken makes the fill refused (`cache::flight`, `cache::read`). So the
//! only invalidations a fill can miss are those that landed *before* its
//! guard. For each such invalidation I (of a write committed at or before
//! LSN `I.lsn`):
//! - here (this process wrote, took a foreign change, or heard I's event):
//!   the horizon is raised to `I.lsn` before I evicts anything, so before
//!   any guard taken after the eviction; the read then picks a standby
//!   whose last polled replay position is at least the horizon, and replay
//!   only moves forward, so the standby's snapshot holds the write;
//! - in Redis (another process ran I's script, and this one has not heard
//!   the event yet): the script records `I.lsn` in the deployment's LSN key
//!   in the same atomic step that bumps the versions and the sequence, and
//!   every MGET of versions (and every read of the sequence) reads that key
//!   too and raises the horizon before the database is read.
//!
//! Either way the read reflects I.
//!
//! When the position cannot be read after a write committed (the primary
//! stopped answering that query, or the role may not call
//! `pg_current_wal_lsn()`), the write still answers success: it committed.
//! Its invalidation then carries [`Position::Unknown`], a random token in
//! place of the LSN, and whoever learns of it (the writer before it evicts,
//! a receiver of the event before it evicts, a reader whose MGET finds the
//! token in Redis's unknown-position key, written by the same script)
//! *notices* it: until this process has read the primary's current LSN
//! after the notice (the background poll does, see [`Replicas::settle`]),
//! every read goes to the primary. That LSN, read after the notice, so after
//! the script, so after the commit, is past the write: once it is learnt,
//! the argument above holds for I with `I.lsn` = it.
//!
//! Standbys are polled in the background
//! (every [`POLL`]) for `pg_last_wal_replay_lsn()`, never per read; until a
//! standby's poll has caught up with the horizon, reads go to the primary.
//!
//! Among the standbys that qualify, reads go round-robin: each qualifying
//! standby holds every write the cache could race, so the least-lagged one
//! would be no fresher for the cache, and sending it every read would load
//! one standby while the others idle. A standby whose replay lags the
//! primary by more than `--database-read-max-lag-ms`, or that did not answer
//! its last poll, is skipped and reported in `/readyz` and `/metrics`.
use parking_lot::Mutex;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Weak;
use std::time::Duration;

/// Where the primary's WAL stood after a write committed, as the write's
/// invalidation carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// `pg_current_wal_lsn()` read after the commit: past its commit record.
    At(u64),
    /// The read failed. The token (random, never 0) names this unknown
    /// position in Redis and in the event, so that every process notices it
    /// once (see the module documentation).
    Unknown(u64),
}

impl Position {
    /// The position of several writes published as one: the highest, or
    /// unknown if any is (readers then learn a position read after all of
    /// them).
    pub fn merge(self, other: Self) -> Self {
        match (self, other) {
            (Self::At(a), Self::At(b)) => Self::At(a.max(b)),
            (Self::Unknown(token), _) | (_, Self::Unknown(token)) => Self::Unknown(token),
        }
    }

    /// A fresh unknown position.
    fn unknown() -> Self {
        use rand_core::{OsRng, RngCore};
        Self::Unknown(OsRng.next_u64().max(1))
    }
}

/// How often each standby's replay position and lag are read.
pub const POLL: Duration = Duration::from_millis(20);

/// How long a poll may take before its standby is skipped as not answering.
const POLL_TIMEOUT: Duration = Duration::from_millis(500);

/// The primary's WAL position after everything committed so far, as a
/// number (`pg_lsn - '0/0'`).
const CURRENT_LSN: &str = "SELECT (pg_current_wal_lsn() - '0/0')::bigint";

const IN_RECOVERY: &str = "SELECT pg_is_in_recovery()";

/// A standby's replay position, and how far behind the primary its replay
/// is: 0 when it has replayed all it received, otherwise the age of the
/// last transaction it replayed (so an idle primary is no lag).
const REPLAY: &str = "SELECT (pg_last_wal_replay_lsn() - '0/0')::bigint, \
     CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0::float8 \
     ELSE COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp()), 0)::float8 END";

/// The standbys of one primary and what is known of each.
#[derive(Debug)]
pub struct Replicas {
    standbys: Vec<Standby>,
    /// The highest primary LSN of an invalidation this process has been
    /// told of: a standby serves reads only once it has replayed it.
    horizon: AtomicU64,
    /// Whether this process hears the invalidation bus. While it does not,
    /// invalidations may pass unheard and the horizon prove nothing: every
    /// read goes to the primary (see `cache::sync`).
    bus_heard: AtomicBool,
    /// Invalidations of unknown position noticed here, and how far a
    /// position read afterwards has settled them.
    unknown: Unknowns,
    /// The primary, where [`Replicas::settle`] reads the current LSN.
    primary: DatabaseConnection,
    /// The next standby to try first (round-robin).
    next: AtomicUsize,
    /// Lag beyond which a standby is skipped (`--database-read-max-lag-ms`).
    max_lag: Duration,
    /// Reads sent to a standby and to the primary, for `/metrics`.
    reads_to_standbys: AtomicU64,
    reads_to_primary: AtomicU64,
}

/// What this process knows of invalidations whose position is unknown.
/// While `noticed > settled`, every read goes to the primary.
#[derive(Debug, Default)]
struct Unknowns {
    /// The token of the last unknown position noticed: the same token read
    /// again (from Redis, or in the event after its MGET) is no news.
    last: AtomicU64,
    /// Serialises notices, so that a token is counted before any reader
    /// can see it as `last` and pass it as no news.
    noticing: Mutex<()>,
    /// How many distinct unknown positions were noticed.
    noticed: AtomicU64,
    /// `noticed` as it was before the last LSN that [`Replicas::settle`]
    /// learnt was read: every unknown position up to it is behind that LSN.
    settled: AtomicU64,
    /// Whether the last attempt to settle failed (logged once per spell).
    failing: AtomicBool,
}

/// One standby.
#[derive(Debug)]
struct Standby {
    /// Its URL without the password: how `/readyz` and `/metrics` name it.
    pub name: String,
    conn: DatabaseConnection,
    /// The replay position its last answered poll reported.
    replayed: AtomicU64,
    /// Its replay lag at the last poll, in microseconds.
    lag_micros: AtomicU64,
    /// Whether it answered its last poll.
    answering: AtomicBool,
}

/// What `/readyz` and `/metrics` say of a standby.
#[derive(Debug, Clone)]
pub struct Report {
    pub name: String,
    pub lag: Duration,
    /// `up`, `lagging` (beyond the limit: skipped) or `down` (its last poll
    /// failed: skipped).
    pub status: &'static str,
}

impl Replicas {
    /// Connects to each standby at `urls` and checks it is one (in
    /// recovery); the error says which URL is wrong and why.
    pub(super) async fn connect(
        primary: DatabaseConnection,
        urls: &[String],
        max_lag: Duration,
        pool_size: u32,
        instrument: impl Fn(&mut DatabaseConnection),
    ) -> Result<Self, String> {
        let mut standbys = Vec::with_capacity(urls.len());
        debug_assert!(!urls.is_empty(), "connect is called with standbys only");
        for url in urls {
            let name = name_of(url);
            let mut conn = super::connect_postgres(url, pool_size)
                .await
                .map_err(|err| format!("--database-read-url {name}: cannot connect: {err}"))?;
            let in_recovery = conn
                .query_one(Statement::from_string(DbBackend::Postgres, IN_RECOVERY))
                .await
                .and_then(|row| row.map(|row| row.try_get_by_index::<bool>(0)).transpose())
                .map_err(|err| format!("--database-read-url {name}: {err}"))?;
            if in_recovery != Some(true) {
                return Err(format!(
                    "--database-read-url {name} is not a standby (pg_is_in_recovery() is false): \
                     give the URL of a streaming replica of --database-url's server"
                ));
            }
            instrument(&mut conn);
            standbys.push(Standby {
                name,
                conn,
                replayed: AtomicU64::new(0),
                lag_micros: AtomicU64::new(0),
                answering: AtomicBool::new(false),
            });
        }
        let replicas = Self {
            standbys,
            horizon: AtomicU64::new(0),
            bus_heard: AtomicBool::new(true),
            unknown: Unknowns::default(),
            primary,
            next: AtomicUsize::new(0),
            max_lag,
            reads_to_standbys: AtomicU64::new(0),
            reads_to_primary: AtomicU64::new(0),
        };
        replicas.poll().await;
        Ok(replicas)
    }

    /// Raises the horizon to `lsn`: from now on a read goes to a standby
    /// only once it has replayed `lsn`.
    pub fn learn(&self, lsn: u64) {
        self.horizon.fetch_max(lsn, Ordering::SeqCst);
    }

    /// Notices an invalidation whose position is unknown, named by `token`
    /// (a write here, an event, or Redis's unknown-position key): from now
    /// on reads go to the primary until [`Replicas::settle`] has learnt a
    /// position read after this call. A token already noticed last is no
    /// news.
    pub fn notice_unknown(&self, token: u64) {
        let unknown = &self.unknown;
        if token == 0 || unknown.last.load(Ordering::SeqCst) == token {
            return;
        }
        let _noticing = unknown.noticing.lock();
        if unknown.last.load(Ordering::SeqCst) != token {
            // Counted before it is shown as `last`: a reader that finds it
            // there and returns finds it counted too.
            unknown.noticed.fetch_add(1, Ordering::SeqCst);
            unknown.last.store(token, Ordering::SeqCst);
        }
    }

    /// Whether an unknown position noticed here awaits a position read
    /// after it. Read before the horizon (see [`Replicas::settle`]).
    fn unsettled(&self) -> bool {
        let noticed = self.unknown.noticed.load(Ordering::SeqCst);
        self.unknown.settled.load(Ordering::SeqCst) < noticed
    }

    /// Settles the unknown positions noticed so far: reads the primary's
    /// current LSN (past every commit whose unknown position was noticed
    /// before the read) and raises the horizon to it, then marks them
    /// settled. The horizon is raised first, so a reader that sees them
    /// settled sees the horizon that settled them. If the primary does not
    /// answer, reads stay on it.
    async fn settle(&self) {
        let noticed = self.unknown.noticed.load(Ordering::SeqCst);
        if self.unknown.settled.load(Ordering::SeqCst) >= noticed {
            return;
        }
        // Bounded as a poll is: the standbys' polls wait for this one.
        let read = tokio::time::timeout(POLL_TIMEOUT, current_lsn(&self.primary))
            .await
            .unwrap_or_else(|_| Err(DbErr::Custom("the read timed out".into())));
        match read {
            Ok(lsn) => {
                self.learn(lsn);
                self.unknown.settled.fetch_max(noticed, Ordering::SeqCst);
                if self.unknown.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("the primary's WAL position is read again: reads may go to the read replicas");
                }
            }
            Err(err) => {
                if !self.unknown.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %err, "cannot read the primary's WAL position after a write whose position is unknown: reads go to the primary");
                }
            }
        }
    }

    /// Set by the cache when its invalidation bus is heard or falls silent.
    pub fn hear_bus(&self, heard: bool) {
        self.bus_heard.store(heard, Ordering::SeqCst);
    }

    /// The highest LSN this process has been told of.
    pub fn horizon(&self) -> u64 {
        self.horizon.load(Ordering::SeqCst)
    }

    /// A standby that has replayed the horizon and lags within the limit,
    /// round-robin; `None`: read from the primary. Counts the read.
    pub(super) fn choose(&self) -> Option<&DatabaseConnection> {
        // Unknown positions first, then the horizon (see `settle`).
        let trusted = self.bus_heard.load(Ordering::SeqCst) && !self.unsettled();
        let horizon = self.horizon();
        let n = self.standbys.len();
        let first = self.next.fetch_add(1, Ordering::Relaxed);
        let chosen = (0..n)
            .map(|i| &self.standbys[(first + i) % n])
            .filter(|_| trusted)
            .find(|standby| standby.serves(horizon, self.max_lag));
        match chosen {
            Some(standby) => {
                self.reads_to_standbys.fetch_add(1, Ordering::Relaxed);
                Some(&standby.conn)
            }
            None => {
                self.reads_to_primary.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Whether some standby would serve a read now.
    pub fn serves_now(&self) -> bool {
        let trusted = self.bus_heard.load(Ordering::SeqCst) && !self.unsettled();
        let horizon = self.horizon();
        trusted
            && self
                .standbys
                .iter()
                .any(|standby| standby.serves(horizon, self.max_lag))
    }

    /// Reads sent to a standby, and to the primary, since start.
    pub fn reads(&self) -> (u64, u64) {
        (
            self.reads_to_standbys.load(Ordering::Relaxed),
            self.reads_to_primary.load(Ordering::Relaxed),
        )
    }

    /// Each standby's state, for `/readyz` and `/metrics`.
    pub fn report(&self) -> Vec<Report> {
        self.standbys
            .iter()
            .map(|standby| Report {
                name: standby.name.clone(),
                lag: standby.lag(),
                status: if !standby.answering.load(Ordering::Acquire) {
                    "down"
                } else if standby.lag() > self.max_lag {
                    "lagging"
                } else {
                    "up"
                },
            })
            .collect()
    }

    /// Reads every standby's replay position and lag once, all at once.
    async fn poll(&self) {
        futures_util::future::join_all(self.standbys.iter().map(Standby::poll)).await;
    }

    /// Polls the standbys, and settles unknown positions, every [`POLL`]
    /// until `replicas` is dropped.
    pub(super) async fn follow(replicas: Weak<Self>) {
        loop {
            tokio::time::sleep(POLL).await;
            let Some(replicas) = replicas.upgrade() else {
                return;
            };
            futures_util::future::join(replicas.poll(), replicas.settle()).await;
        }
    }

    /// The primary's WAL position now, read after a write committed, as
    /// its invalidation carries it; this process's horizon is raised to it
    /// first. If it cannot be read, an unknown position, which this process
    /// notices before returning it.
    pub(super) async fn position_after_commit(&self, primary: &DatabaseConnection) -> Position {
        match current_lsn(primary).await {
            Ok(lsn) => {
                self.learn(lsn);
                Position::At(lsn)
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the primary's WAL position after a commit: the invalidation goes out with its position unknown, and reads stay on the primary until one is read");
                let position = Position::unknown();
                if let Position::Unknown(token) = position {
                    self.notice_unknown(token);
                }
                position
            }
        }
    }
}

impl Standby {
    fn lag(&self) -> Duration {
        Duration::from_micros(self.lag_micros.load(Ordering::Acquire))
    }

    fn serves(&self, horizon: u64, max_lag: Duration) -> bool {
        self.answering.load(Ordering::Acquire)
            && self.replayed.load(Ordering::Acquire) >= horizon
            && self.lag() <= max_lag
    }

    async fn poll(&self) {
        let query = self
            .conn
            .query_one(Statement::from_string(DbBackend::Postgres, REPLAY));
        // A standby that stops answering is skipped after this long, not
        // after the pool's acquire timeout: reads sent to it meanwhile fail.
        let polled = tokio::time::timeout(POLL_TIMEOUT, query)
            .await
            .unwrap_or_else(|_| Err(DbErr::Custom("the poll timed out".into())))
            .and_then(|row| {
                let row = row.ok_or_else(|| DbErr::Custom("no row".into()))?;
                Ok((
                    row.try_get_by_index::<Option<i64>>(0)?,
                    row.try_get_by_index::<f64>(1)?,
                ))
            });
        match polled {
            Ok((Some(replayed), lag)) => {
                // Stored, not maxed: a standby rebuilt from a new base
                // backup starts behind where the old one was.
                self.replayed
                    .store(u64::try_from(replayed).unwrap_or(0), Ordering::Release);
                let micros = (lag.max(0.0) * 1e6) as u64;
                self.lag_micros.store(micros, Ordering::Release);
                self.answering.store(true, Ordering::Release);
            }
            Ok((None, _)) => {
                // Promoted: it no longer replays the primary's WAL.
                tracing::warn!(standby = %self.name, "the read replica is no longer a standby: skipped");
                self.answering.store(false, Ordering::Release);
            }
            Err(err) => {
                if self.answering.swap(false, Ordering::AcqRel) {
                    tracing::warn!(standby = %self.name, error = %err, "the read replica does not answer: reads go to the primary");
                }
            }
        }
    }
}

/// The primary's current WAL position, which is past the commit record of
/// every transaction committed before the call.
pub async fn current_lsn(conn: &impl ConnectionTrait) -> Result<u64, DbErr> {
    let lsn = conn
        .query_one(Statement::from_string(DbBackend::Postgres, CURRENT_LSN))
        .await?
        .map(|row| row.try_get_by_index::<i64>(0))
        .transpose()?
        .unwrap_or(0);
    Ok(u64::try_from(lsn).unwrap_or(0))
}

/// Refuses read URLs the service could not use: any with a SQLite primary
/// (read replicas are PostgreSQL streaming standbys), and any that is not a
/// PostgreSQL URL. Says what to fix.
pub fn check_urls(primary: &str, reads: &[String]) -> Result<(), String> {
    let Some(first) = reads.first() else {
        return Ok(());
    };
    if !is_postgres_url(primary) {
        return Err(format!(
            "--database-read-url {} needs a PostgreSQL --database-url: read replicas are \
             PostgreSQL streaming standbys, and {} is not PostgreSQL",
            name_of(first),
            name_of(primary)
        ));
    }
    match reads.iter().find(|url| !is_postgres_url(url)) {
        Some(url) => Err(format!(
            "--database-read-url {} is not a PostgreSQL URL (postgres://...): a read replica \
             must be a streaming standby of --database-url's PostgreSQL server",
            name_of(url)
        )),
        None => Ok(()),
    }
}

fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Whether `sql` is one of this module's polls or LSN reads: cache
/// bookkeeping, counted apart from the service's statements.
pub(super) fn is_bookkeeping(sql: &str) -> bool {
    sql == CURRENT_LSN || sql == REPLAY || sql == IN_RECOVERY
}

/// How a standby is named in logs, `/readyz` and `/metrics`: its URL,
/// password hidden.
fn name_of(url: &str) -> String {
    crate::redact::url(url).into_owned()
}

#[cfg(test)]
mod tests;
