//! Liveness (`/healthz`: the process answers) and readiness (`/readyz`: each
//! dependency's state, 503 when one the service cannot work without is down
//! or while `serve --warm` warms the cache; "degraded" while the cache
//! cannot keep its bound, as when an outbox trigger is missing or
//! disabled). The dashboard shows the same checks, from [`check`].
use super::AppState;
use crate::db::cache_changes::{self, Bypasses};
use crate::db::Db;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How long one reading of the triggers answers readiness probes: balancers
/// probe every replica every second or so, and a trigger dropped by hand is
/// not a change that needs noticing within less.
const TRIGGERS_REREAD_AFTER: Duration = Duration::from_secs(2);

/// How long a database call of a probe may take before it counts as down.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn live() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let (ready, body) = check(&state).await;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// Whether this replica can serve, and each dependency's state, as
/// `/readyz` answers them.
pub(super) async fn check(state: &AppState) -> (bool, Value) {
    let db = &state.services.db;
    let (database, triggers) = tokio::join!(database(db), async {
        // Only a replica that takes other programs' writes from the bus
        // (`--cache-mode l2` or `both`) depends on the triggers.
        if state.services.cache.mode().uses_l2() {
            Some(state.triggers.read(db).await)
        } else {
            None
        }
    });
    let up = database["status"] == "up";
    let announced = triggers.as_ref().is_none_or(|t| t["status"] != "down");
    // `serve --warm` keeps the replica out of rotation until its first
    // readers would find the cache warm.
    let warming = state.warming.load(Ordering::Acquire);
    let ready = up && !warming;
    // The cache is otherwise never a reason to take the replica out of
    // rotation: with Redis gone it serves from L1 and the database, and
    // with a trigger missing it cannot hear other programs' writes (every
    // replica alike: taking them out would stop the service). Both say so.
    let cache = state.services.cache.health();
    let overall = match (up, warming, cache.status, announced) {
        (false, _, _, _) => "unavailable",
        (true, true, _, _) => "warming",
        (true, false, "degraded", _) | (true, false, _, false) => "degraded",
        (true, false, _, true) => "ready",
    };
    let mut checks = json!({ "database": database, "cache": cache });
    // Reported, never a reason to leave rotation: a lagging or silent
    // standby is skipped and its reads go to the primary.
    if let Some(replicas) = state.services.db.read_replicas() {
        checks["read_replicas"] = replicas
            .report()
            .into_iter()
            .map(|standby| {
                json!({
                    "replica": standby.name,
                    "status": standby.status,
                    "lag_seconds": standby.lag.as_secs_f64(),
                })
            })
            .collect();
    }
    if let Some(triggers) = triggers {
        checks["triggers"] = triggers;
    }
    (ready, json!({ "status": overall, "checks": checks }))
}

async fn database(db: &Db) -> Value {
    match tokio::time::timeout(PROBE_TIMEOUT, db.ping()).await {
        Ok(Ok(())) => json!({ "status": "up" }),
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "readiness: database unreachable");
            json!({ "status": "down", "error": "database unreachable" })
        }
        Err(_) => {
            tracing::warn!("readiness: database ping timed out");
            json!({ "status": "down", "error": "database ping timed out" })
        }
    }
}

/// The triggers that announce other programs' writes (see
/// `db::cache_changes`), as last read. A missing or disabled one means writes
/// the cache never hears of, stale on every replica for a whole TTL; no
/// error shows it, so readiness does.
#[derive(Default)]
pub struct Triggers {
    /// When they were last read and what `/readyz` said of them. Held
    /// across the read, so that probes arriving together wait for one
    /// read rather than each making its own.
    last: tokio::sync::Mutex<Option<(Instant, Value)>>,
}

impl Triggers {
    /// Their state, read again if the last reading is older than
    /// [`TRIGGERS_REREAD_AFTER`].
    async fn read(&self, db: &Db) -> Value {
        let mut last = self.last.lock().await;
        if let Some((at, state)) = &*last {
            if at.elapsed() < TRIGGERS_REREAD_AFTER {
                return state.clone();
            }
        }
        let state = match tokio::time::timeout(PROBE_TIMEOUT, cache_changes::bypasses(db)).await {
            Ok(Ok(bypasses)) if bypasses.is_empty() => json!({ "status": "up" }),
            Ok(Ok(Bypasses { missing, disabled })) => {
                tracing::warn!(
                    ?missing,
                    ?disabled,
                    "readiness: outbox triggers missing or disabled, so writes by other \
                     programs are not announced and replicas serve them stale; enable them \
                     (ALTER TABLE <table> ENABLE TRIGGER <trigger>) or create them again as \
                     the migration m20261207_000004_cache_changes does"
                );
                json!({
                    "status": "down",
                    "error": "writes by other programs are not announced to the cache",
                    "missing": missing,
                    "disabled": disabled,
                })
            }
            // The database check says whether the database is reachable:
            // an unreadable catalogue alone does not take the replica out.
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "readiness: the outbox triggers could not be read");
                json!({ "status": "unknown", "error": "the triggers could not be read" })
            }
            Err(_) => json!({ "status": "unknown", "error": "reading the triggers timed out" }),
        };
        *last = Some((Instant::now(), state.clone()));
        state
    }
}
