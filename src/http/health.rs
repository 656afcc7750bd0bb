//! Liveness (`/healthz`: the process answers) and readiness (`/readyz`: each
//! dependency's state, 503 when one the service cannot work without is down,
//! or while `serve --warm` warms the cache). The dashboard shows the same
//! checks, from [`check`].
use super::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::time::Duration;

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
    let database =
        match tokio::time::timeout(Duration::from_secs(2), state.services.db.ping()).await {
            Ok(Ok(())) => json!({ "status": "up" }),
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "readiness: database unreachable");
                json!({ "status": "down", "error": "database unreachable" })
            }
            Err(_) => {
                tracing::warn!("readiness: database ping timed out");
                json!({ "status": "down", "error": "database ping timed out" })
            }
        };
    let up = database["status"] == "up";
    // `serve --warm` keeps the replica out of rotation until its first
    // readers would find the cache warm.
    let warming = state.warming.load(Ordering::Acquire);
    let ready = up && !warming;
    // The cache is otherwise never a reason to take the replica out of
    // rotation: with Redis gone it serves from L1 and the database, and
    // says so.
    let cache = state.services.cache.health();
    let overall = match (up, warming, cache.status) {
        (false, _, _) => "unavailable",
        (true, true, _) => "warming",
        (true, false, "degraded") => "degraded",
        (true, false, _) => "ready",
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
    let body = json!({ "status": overall, "checks": checks });
    (ready, body)
}
