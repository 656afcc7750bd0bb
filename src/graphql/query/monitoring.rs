//! Operators' queries: `cacheStats`, for librarians.
use crate::error::{Error, Result};
use crate::graphql::types::CacheStats;
use crate::graphql::{current_user, scope, services};
use async_graphql::{Context, Object};
use std::sync::Arc;

#[derive(Default)]
pub struct MonitoringQuery;

#[Object]
impl MonitoringQuery {
    /// The cache's hits, misses, latency and invalidation lag, per replica
    /// and in total, with Redis's own figures. Librarians only.
    async fn cache_stats(&self, ctx: &Context<'_>) -> Result<CacheStats> {
        let scope = scope(ctx)?;
        // Live counters and Redis, read past the cache: nothing an
        // invalidation would tell the response tier about.
        scope.uncacheable();
        if current_user(ctx).await?.role != entity::user::Role::Librarian {
            return Err(Error::forbidden(
                "only librarians may read the cache's stats",
            ));
        }
        let deployment = services(ctx)?.cache.deployment_stats().await;
        Ok(CacheStats(Arc::new(deployment)))
    }
}
