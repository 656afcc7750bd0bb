//! L2: encoded values in Redis, shared by every replica, through the Redis
//! gateway ([`crate::redis`]): entries read with their versions, fills
//! guarded by them, invalidations, heartbeats and the failover check, each
//! one round trip (or one per hash slot on a Cluster). The gateway's
//! breaker and timeouts apply: callers treat "no answer" as a miss, and
//! nothing here ever fails a request.
use super::keys::Group;
use super::metrics::{FillTier, Metrics};
use crate::db::replicas::Position;
use crate::redis::slots::{by_slot, mget};
use crate::redis::{self, value_bytes, Caller, Gateway, Topology};

mod invalidations;

use fred::bytes::Bytes;
use fred::prelude::*;
pub use invalidations::Invalidated;
use std::sync::Arc;
use std::time::Duration;

/// One entry to fill: its key, the guard key and the value it held before
/// the load, its TTL and bytes.
pub struct Fill {
    /// Where the encoded value goes.
    pub key: String,
    /// The entry's **version** key, or the **sequence** for a row primed from a
    /// list query.
    pub guard: String,
    /// What the guard held before the load read anything (empty if unset): the
    /// fill lands only if it still does.
    pub expected: Bytes,
    /// Jittered by the caller, so entries filled together do not expire
    /// together.
    pub ttl: Duration,
    /// The value as [`codec`](super::codec) encoded it.
    pub bytes: Vec<u8>,
}

/// What an MGET of (entry, version) pairs found for one key.
pub struct Found {
    /// The encoded entry; `None` is a miss.
    pub bytes: Option<Bytes>,
    /// The entry's **version** as read with it: the `expected` of its [`Fill`]
    /// if the entry must be loaded.
    pub version: Option<Bytes>,
}

/// L2: the cache's entries, versions and counters in Redis, through the
/// gateway. A failed call is a miss, never an error.
pub struct Store {
    /// Connections, breaker and scripts, shared with the other callers.
    redis: Arc<Gateway>,
    metrics: Arc<Metrics>,
    /// How long version and generation counters outlive the entries they guard.
    counter_ttl: Duration,
    /// With read replicas, the database whose horizon every MGET of
    /// versions and every read of the sequence raises to the LSN key's
    /// value (see `db::replicas`); `None` without them.
    horizon: Option<crate::db::Db>,
}

/// The cache's metrics count the gateway's calls.
impl redis::Observer for Metrics {
    fn round_trip(&self) {
        self.redis_round_trip();
    }

    fn call(&self, what: &str, outcome: redis::Outcome) {
        self.redis_call(what, outcome);
    }
}

impl Store {
    /// The L2 tier on `redis` (and its keys), counted in `metrics`.
    pub fn new(redis: Arc<Gateway>, metrics: Arc<Metrics>, counter_ttl: Duration) -> Self {
        Self {
            redis,
            metrics,
            counter_ttl,
            horizon: None,
        }
    }

    /// The gateway this tier calls Redis through.
    pub fn redis(&self) -> &Arc<Gateway> {
        &self.redis
    }

    /// Makes reads of versions and of the sequence raise `db`'s horizon to
    /// the highest LSN an invalidation was published with, if `db` sends
    /// reads to replicas.
    pub fn follow_lsns(mut self, db: Option<crate::db::Db>) -> Self {
        self.horizon = db.filter(|db| db.read_replicas().is_some());
        self
    }

    /// Records `position` in Redis as an invalidation would (a known LSN
    /// in the LSN key if it is higher than the one there, an unknown one's
    /// token in the unknown-position key): for a clear, whose readers must
    /// not fill from a replica behind the changes it clears for. Returns
    /// whether Redis answered.
    pub async fn record_position(&self, position: Position) -> bool {
        let (lsn, unknown) = position_texts(Some(position));
        let recorded: Option<i64> = self
            .redis
            .background_write("record lsn", |writes| {
                self.redis.scripts().record_lsn.evalsha_with_reload(
                    writes,
                    vec![
                        self.redis.keys().lsn(),
                        self.redis.keys().unknown_position(),
                    ],
                    vec![lsn, unknown],
                )
            })
            .await;
        recorded.is_some()
    }

    /// The keys every MGET of versions (and read of the sequence) reads
    /// after its own, with read replicas: the LSN key and the
    /// unknown-position key.
    fn position_keys(&self) -> [String; 2] {
        [
            self.redis.keys().lsn(),
            self.redis.keys().unknown_position(),
        ]
    }

    /// Raises the horizon to the LSN key's value and notices the unknown
    /// position named in the unknown-position key, both read with others.
    fn learn_position(&self, lsn: Option<&Value>, unknown: Option<&Value>) {
        let Some(db) = &self.horizon else {
            return;
        };
        let number = |value: Option<&Value>| {
            value
                .and_then(Value::as_str)
                .and_then(|text| u64::from_str_radix(&text, 16).ok())
        };
        if let Some(lsn) = number(lsn) {
            db.learn_lsn(lsn);
        }
        if let Some(token) = number(unknown) {
            db.notice_unknown_position(token);
        }
    }

    /// Entries and their versions for `keys`, in one MGET.
    pub async fn get_many(&self, keys: &[&str]) -> Option<Vec<Found>> {
        if keys.is_empty() {
            return Some(Vec::new());
        }
        let mut request: Vec<String> = Vec::with_capacity(keys.len() * 2 + 1);
        for key in keys {
            request.push((*key).to_owned());
            request.push(self.redis.keys().version(key));
        }
        if self.horizon.is_some() {
            request.extend(self.position_keys());
        }
        let mut values = self
            .redis
            .call(
                "mget",
                mget(self.redis.topology(), self.redis.reads(), request),
            )
            .await?;
        if self.horizon.is_some() {
            let unknown = values.pop();
            let lsn = values.pop();
            self.learn_position(lsn.as_ref(), unknown.as_ref());
        }
        Some(
            values
                .chunks(2)
                .map(|pair| Found {
                    bytes: pair.first().and_then(value_bytes),
                    version: pair.get(1).and_then(value_bytes),
                })
                .collect(),
        )
    }

    /// Stores entries in one script call; an entry whose version moved since
    /// it was read (a write invalidated it meanwhile) is skipped.
    pub async fn fill(&self, fills: Vec<Fill>) {
        if fills.is_empty() {
            return;
        }
        let asked = fills.len();
        let calls = by_slot(self.redis.topology(), fills, |fill| &fill.key)
            .into_iter()
            .map(|fills| {
                let mut keys: Vec<String> = Vec::with_capacity(fills.len() * 2);
                let mut args: Vec<Value> = Vec::with_capacity(fills.len() * 3);
                for fill in fills {
                    // On a Cluster a guard in another slot than its entry
                    // (the sequence, guarding rows primed from a list
                    // query) cannot be checked in the same step: such an
                    // entry is not filled, and counts as refused.
                    if self.redis.topology() == Topology::Cluster
                        && redis::slots::slot(&fill.guard) != redis::slots::slot(&fill.key)
                    {
                        continue;
                    }
                    keys.push(fill.key);
                    keys.push(fill.guard);
                    args.push(Value::Bytes(fill.expected));
                    args.push(Value::from(fill.ttl.as_millis().max(1) as i64));
                    args.push(Value::Bytes(Bytes::from(fill.bytes)));
                }
                async move {
                    if keys.is_empty() {
                        return Ok((0, 0));
                    }
                    self.redis
                        .scripts()
                        .fill
                        .evalsha_with_reload::<(u64, u64), _, _>(self.redis.writes(), keys, args)
                        .await
                }
            });
        let stored: Option<(u64, u64)> = self
            .redis
            .call("fill", async move {
                let stored = futures_util::future::try_join_all(calls).await?;
                Ok(stored
                    .into_iter()
                    .fold((0, 0), |(n, b), (entries, bytes)| (n + entries, b + bytes)))
            })
            .await;
        if let Some((entries, bytes)) = stored {
            self.metrics.l2_filled(entries, bytes);
            self.metrics.fills_refused(
                FillTier::L2,
                asked.saturating_sub(usize::try_from(entries).unwrap_or(0)),
            );
        }
    }

    /// The global invalidation sequence, bumped by every invalidation.
    pub async fn sequence(&self) -> Option<Bytes> {
        if self.horizon.is_some() {
            let [lsn, unknown] = self.position_keys();
            let values: Vec<Value> = self
                .redis
                .call(
                    "get sequence",
                    self.redis
                        .reads()
                        .mget(vec![self.redis.keys().sequence(), lsn, unknown]),
                )
                .await?;
            self.learn_position(values.get(1), values.get(2));
            return Some(
                values
                    .first()
                    .and_then(Value::as_bytes)
                    .map(Bytes::copy_from_slice)
                    .unwrap_or_default(),
            );
        }
        let value: Option<Option<Bytes>> = self
            .redis
            .call(
                "get sequence",
                self.redis.reads().get(self.redis.keys().sequence()),
            )
            .await;
        value.map(Option::unwrap_or_default)
    }

    /// A group's current generation (0 if it never moved).
    pub async fn generation(&self, group: &Group) -> Option<u64> {
        let value: Option<Option<u64>> = self
            .redis
            .call(
                "get generation",
                self.redis.reads().get(self.redis.keys().generation(group)),
            )
            .await;
        value.map(Option::unwrap_or_default)
    }

    /// Publishes a heartbeat (see [`Event::heartbeat_head`](super::bus::Event::heartbeat_head))
    /// carrying the current namespace, restored to `namespace` if Redis lost it.
    /// How many subscribers it reached (every replica's bus, this one's
    /// included), or `None` if Redis did not take it.
    pub async fn heartbeat(&self, head: String, namespace: u64) -> Option<u64> {
        let args: Vec<Value> = vec![
            Value::from(self.redis.keys().channel()),
            Value::from(head),
            Value::from(namespace as i64),
        ];
        self.redis
            .run::<i64, _>(
                Caller::Background,
                "heartbeat",
                self.redis.scripts().heartbeat.evalsha_with_reload(
                    self.redis.writes(),
                    vec![
                        self.redis.keys().namespace_counter(),
                        self.redis.keys().last_heartbeat(),
                    ],
                    args,
                ),
            )
            .await
            .map(|reached| reached.max(0) as u64)
    }

    /// After a silence, before the bus is trusted again: on Sentinel, makes
    /// sure the dataset is the one the cache worked on, moving the namespace
    /// if a failover promoted another (see the `PRIMARY` script in `crate::redis::scripts`). The namespace current
    /// (at least `namespace`) and whether this call moved it; on a single
    /// server, `namespace` unchanged. `None` if Redis did not answer.
    pub async fn settle_primary(&self, namespace: u64) -> Option<(u64, bool)> {
        let mut args = vec![Value::from(namespace as i64)];
        match self.redis.topology() {
            Topology::Single => return Some((namespace, false)),
            Topology::Sentinel => {}
            Topology::Cluster => args.push(Value::from(self.redis.replication_ids().await?)),
        }
        let (current, moved): (u64, u8) = self
            .redis
            .run(
                Caller::Background,
                "primary",
                self.redis.scripts().primary.evalsha_with_reload(
                    self.redis.writes(),
                    vec![
                        self.redis.keys().namespace_counter(),
                        self.redis.keys().primary_marker(),
                    ],
                    args,
                ),
            )
            .await?;
        Some((current, moved == 1))
    }
}

/// An LSN as the scripts compare it: 16 hex digits, so that the order of
/// strings is the order of positions. Unknown positions' tokens are written
/// the same way.
pub(super) fn lsn_text(lsn: u64) -> String {
    format!("{lsn:016x}")
}

/// The scripts' two arguments for `position`: the LSN and the unknown
/// position's token, each empty when it does not apply.
fn position_texts(position: Option<Position>) -> (String, String) {
    match position {
        None => (String::new(), String::new()),
        Some(Position::At(lsn)) => (lsn_text(lsn), String::new()),
        Some(Position::Unknown(token)) => (String::new(), lsn_text(token)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsns_as_the_scripts_compare_them_order_as_wal_positions() {
        let positions = [0, 9, 0x10, 0x1_0000_0000, 0x16_B374_D848, u64::MAX >> 1];
        for pair in positions.windows(2) {
            assert!(lsn_text(pair[0]) < lsn_text(pair[1]), "{pair:x?}");
        }
        assert_eq!(lsn_text(0x16_B374_D848), "00000016b374d848");
    }
}
