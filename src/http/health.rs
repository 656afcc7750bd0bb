//! Liveness (`/healthz`: the process answers) and readiness (`/readyz`: each
//! dependency's state, 503 when one the service cannot work without is down).
use super::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use std::time::Duration;

pub async fn live() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
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
    let ready = database["status"] == "up";
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ready { "ready" } else { "unavailable" },
        "checks": { "database": database },
    });
    (status, Json(body))
}
