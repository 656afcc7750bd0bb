//! The Redis gateway: every call the service makes to Redis goes through
//! here, whoever makes it (the cache's L2 tier and its bus, the sign-in
//! throttle, persisted documents, the stats snapshots, `biblio cache`).
//!
//! What it guarantees:
//! - **A failed call is a logged warning and a fall-through, never a failed
//!   request.** Every call has a short timeout and answers `Option`: `None`
//!   when Redis did not answer, and callers go on to the next tier (L1, the
//!   database, the process's own count). A request's calls go through a
//!   [`Breaker`]: after a failure Redis is left alone for an interval, then
//!   one call probes it, so a dead Redis costs at most one timeout per
//!   interval. Background calls (heartbeats, replays, clears, snapshots)
//!   are never refused, since they are how recovery is noticed, and a
//!   background failure never opens the breaker. Redis refusing a command
//!   (a script error) is logged as an error: it is a bug, not an outage.
//! - **Topologies are configuration.** [`topology`] reads single server,
//!   Sentinel or Cluster off `--redis-url` once; [`clients`] connects
//!   accordingly (fred follows the sentinels and the Cluster's slot map).
//!   On a Cluster, the keys one script or command touches share a hash slot
//!   ([`keyspace`]'s hash tags), and calls over many keys are split by slot
//!   ([`slots`]); callers ask [`Gateway::topology`] and the slot helpers,
//!   never the URL.
//! - **Scripts are loaded on demand**: every Lua script of the service is in
//!   [`scripts`], run as `EVALSHA` and loaded again on `NOSCRIPT`.
//!
//! Two connections: reads (MGET, GET) on one, writes (fills, invalidations,
//! heartbeats) on the other. Redis answers a connection's commands in order,
//! so a write held up (`CLIENT PAUSE … WRITE`) would otherwise hold up every
//! read queued behind it.
mod breaker;
mod clearing;
pub mod clients;
pub mod keyspace;
mod primaries;
pub mod scripts;
mod sentinels;
pub mod slots;
pub mod stats_snapshots;
mod stored_documents;
pub mod topology;
pub mod windows;

pub use breaker::Breaker;
pub use clients::Connection;
pub use keyspace::Keys;
pub use scripts::Scripts;
pub use topology::Topology;

use fred::bytes::Bytes;
use fred::prelude::*;
use std::sync::Arc;
use std::time::Duration;

/// How one Redis call ended, for the [`Observer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Redis answered.
    Answered,
    /// The call timed out.
    TimedOut,
    /// Anything else: the connection failed, or Redis refused the command.
    Failed,
}

/// Who counts the gateway's calls (the cache's metrics, which `/metrics`
/// exports): the gateway reports, it keeps no counters of its own.
pub trait Observer: Send + Sync {
    /// A request's call went to Redis (one round trip).
    fn round_trip(&self);
    /// A call (`what`, a command or script name) ended as `outcome`.
    fn call(&self, what: &str, outcome: Outcome);
}

/// Whether a call is made for a request (counted as a round trip, refused
/// while the breaker is open) or by the background tasks (heartbeats,
/// replays: never refused, since they are how recovery is noticed, and not
/// counted, so tests can count a request's round trips).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// A request's: counted, and refused while the breaker is open.
    Request,
    /// A background task's: never refused, never counted.
    Background,
}

/// The connections to one Redis deployment, the breaker in front of them
/// and the scripts run on them. Shared (`Arc`) by everyone who calls Redis.
pub struct Gateway {
    /// MGET and GET: never held up behind a paused write.
    reads: Client,
    /// Fills, invalidations, heartbeats and every other write.
    writes: Client,
    /// On Sentinel, the sentinels themselves: which primary they name.
    sentinels: sentinels::Sentinels,
    /// Keeps the connections' supervisors ([`clients::keep_connected`]) going.
    _alive: Arc<()>,
    breaker: Breaker,
    /// Counts every call; see [`Observer`].
    observer: Arc<dyn Observer>,
    scripts: Scripts,
    /// Single server, Sentinel or Cluster: whether a failover can roll the
    /// dataset back, and whether a call must be split by hash slot.
    topology: Topology,
    /// The deployment's key formats, under its prefix and namespace.
    keys: Keys,
}

impl Gateway {
    /// Connects in the background: a Redis that is down at start is an
    /// outage like any other, not a reason not to start.
    pub fn connect(
        connection: &Connection,
        keys: Keys,
        observer: Arc<dyn Observer>,
    ) -> Result<Self, Error> {
        let reads = clients::builder(connection)?.build()?;
        let writes = clients::builder(connection)?.build()?;
        let sentinels = sentinels::Sentinels::of(connection)?;
        let alive = Arc::new(());
        for client in [&reads, &writes].into_iter().chain(sentinels.clients()) {
            clients::keep_connected(client.clone(), Arc::downgrade(&alive));
        }
        Ok(Self {
            reads,
            writes,
            sentinels,
            _alive: alive,
            breaker: Breaker::new(connection.breaker_interval),
            observer,
            scripts: Scripts::default(),
            topology: clients::topology_of(connection),
            keys,
        })
    }

    /// Single server, Sentinel or Cluster.
    pub fn topology(&self) -> Topology {
        self.topology
    }

    /// The deployment's keys: its prefix, namespace and key formats.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Every script, to run on [`Gateway::reads`] or [`Gateway::writes`].
    pub fn scripts(&self) -> &Scripts {
        &self.scripts
    }

    /// The connection for reads (MGET, GET).
    pub fn reads(&self) -> &Client {
        &self.reads
    }

    /// The connection for writes and scripts.
    pub fn writes(&self) -> &Client {
        &self.writes
    }

    /// Waits up to `within` for the first connection to Redis; the reason
    /// when it fails or does not come, for the warning at start.
    pub async fn first_contact(&self, within: Duration) -> Result<(), String> {
        // Subscribed before looking, so an attempt failing in between is heard.
        let mut errors = self.reads.error_rx();
        if self.reads.is_connected() {
            return Ok(());
        }
        let reason = tokio::select! {
            connected = tokio::time::timeout(within, self.reads.wait_for_connect()) => match connected {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(err)) => err.to_string(),
                Err(_) => format!("no connection within {} ms", within.as_millis()),
            },
            Ok((err, _)) = errors.recv() => err.to_string(),
        };
        match self.sentinels.say().await {
            Some(diagnosis) => Err(format!("{reason}; {diagnosis}")),
            None => Err(reason),
        }
    }

    /// Whether Redis answered the last call.
    pub fn is_up(&self) -> bool {
        self.breaker.is_closed() && self.reads.is_connected() && self.writes.is_connected()
    }

    /// Whether the breaker is open: requests skip Redis until a probe
    /// gets through.
    pub fn breaker_open(&self) -> bool {
        !self.breaker.is_closed()
    }

    /// Runs one round trip for a request through the breaker; `None` if
    /// refused or failed.
    pub async fn call<T, F>(&self, what: &str, call: F) -> Option<T>
    where
        F: std::future::Future<Output = Result<T, Error>>,
    {
        self.run(Caller::Request, what, call).await
    }

    pub async fn run<T, F>(&self, caller: Caller, what: &str, call: F) -> Option<T>
    where
        F: std::future::Future<Output = Result<T, Error>>,
    {
        if caller == Caller::Request {
            if !self.breaker.allow() {
                return None;
            }
            self.observer.round_trip();
        }
        let result = call.await;
        self.observer.call(
            what,
            match &result {
                Ok(_) => Outcome::Answered,
                Err(err) if *err.kind() == ErrorKind::Timeout => Outcome::TimedOut,
                Err(_) => Outcome::Failed,
            },
        );
        match result {
            Ok(value) => {
                if self.breaker.success() {
                    tracing::info!("redis answers again: cache tier L2 restored");
                }
                Some(value)
            }
            // Redis refusing a command (a script error, say) is a bug here,
            // not an outage: it must not take the tier offline.
            Err(err)
                if !matches!(
                    err.kind(),
                    ErrorKind::IO
                        | ErrorKind::Timeout
                        | ErrorKind::Canceled
                        | ErrorKind::Backpressure
                ) =>
            {
                tracing::error!(error = %err, during = what, "redis refused a command");
                None
            }
            // A background call that fails (a heartbeat timing out on a
            // saturated machine, say) does not open the breaker: requests
            // find out for themselves, and the bus's silence already stops
            // trusting L2.
            Err(err) if caller == Caller::Background => {
                tracing::debug!(error = %err, during = what, "redis call failed");
                None
            }
            Err(err) => {
                if self.breaker.failure() {
                    tracing::warn!(error = %err, during = what, "redis unreachable: serving from L1 and the database");
                } else {
                    tracing::debug!(error = %err, during = what, "redis call failed");
                }
                None
            }
        }
    }

    /// Runs `work` on the reads connection as a background call: not counted
    /// as a request's round trip, and never opening the breaker.
    pub async fn background<'a, T, F, Fut>(&'a self, what: &str, work: F) -> Option<T>
    where
        F: FnOnce(&'a Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        self.run(Caller::Background, what, work(&self.reads)).await
    }

    /// [`Gateway::background`] on the writes connection.
    pub async fn background_write<'a, T, F, Fut>(&'a self, what: &str, work: F) -> Option<T>
    where
        F: FnOnce(&'a Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        self.run(Caller::Background, what, work(&self.writes)).await
    }
}

/// A value MGET read, as bytes; `None` for a missing key.
pub fn value_bytes(value: &Value) -> Option<Bytes> {
    match value {
        Value::Null => None,
        Value::Bytes(bytes) => Some(bytes.clone()),
        other => other.as_bytes().map(Bytes::copy_from_slice),
    }
}
