//! `biblio cache warm` and `biblio cache clear` as an operator runs them:
//! connect to the deployment's database and Redis as a replica would, do
//! the work ([`crate::warm`], [`Cache::clear`]), show progress on a terminal
//! and print a one-line summary per step on standard output.
//!
//! The cache they build reads and fills Redis only (`Mode::L2`): this
//! process serves nobody, so an L1 would only hold copies it throws away.
//! It publishes no outbox entries either; serving replicas do that.
use crate::auth::throttle::Throttle;
use crate::auth::{Hashers, SigningKey, Tokens};
use crate::cache::replica_stats::bytes;
use crate::cache::{Cache, Mode};
use crate::cli::{ClearArgs, StatsArgs, WarmArgs};
use crate::config::Config;
use crate::db::Db;
use crate::error::BoxError;
use crate::graphql::Services;
use crate::progress::Bar;
use crate::warm::{Plan, Warmer};
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a command waits for Redis (and its own heartbeat on the bus,
/// which tells it the namespace) before it gives up.
const REDIS_WAIT: Duration = Duration::from_secs(5);

/// `biblio cache warm`.
pub async fn warm(database_url: &str, args: WarmArgs) -> Result<(), BoxError> {
    let config = args.cache.into_config(database_url.to_owned());
    let db = crate::startup::open_database(database_url).await?;
    let cache = connect(&config, Some(&db)).await?;
    // Anonymous queries only: the token key is never used, so a random one
    // spares the database a write.
    let key = SigningKey::generate();
    let services = Arc::new(Services {
        db: db.clone(),
        cache: cache.clone(),
        tokens: Tokens::new(key, config.token_ttl),
        throttle: Throttle::new(config.throttle, cache.redis(), cache.replica_counter()),
        hashers: Hashers::new(1),
        loan_period: config.loan_period,
        loader_delay: config.loader_delay,
        db_connections_per_request: config.db_connections_per_request,
    });
    let warmer = Warmer::new(services);
    let plan = Plan {
        book_pages: args.pages,
        page_size: args.page_size,
        most_borrowed: args.most_borrowed,
    };
    let bar = Bar::new();
    let report = warmer
        .run(&plan, |done, total, next| bar.draw(done, total, next))
        .await;
    bar.finish();
    let report = report?;
    writeln!(
        std::io::stdout().lock(),
        "warmed {}: stored {} entries ({}) in Redis in {:.2} s; {} queries, {} reads answered by Redis",
        cache.prefix(),
        report.filled.entries,
        bytes(report.filled.bytes),
        report.elapsed.as_secs_f64(),
        report.steps,
        report.present,
    )?;
    Ok(())
}

/// `biblio cache clear`.
pub async fn clear(database_url: &str, args: ClearArgs) -> Result<(), BoxError> {
    let config = args.cache.into_config(database_url.to_owned());
    let cache = connect(&config, None).await?;
    let before = cache.namespace();
    let Some(namespace) = cache.clear().await else {
        return Err("Redis did not answer: nothing was cleared".into());
    };
    writeln!(
        std::io::stdout().lock(),
        "cleared {}: namespace {before} -> {namespace}; every replica drops its copies as the event reaches it",
        cache.prefix()
    )?;
    let started = Instant::now();
    let bar = Bar::new();
    let removed = cache
        .remove_old_namespaces(|removed| bar.say(&format!("removing old keys: {removed}")))
        .await;
    bar.finish();
    let Some(removed) = removed else {
        return Err(
            "Redis stopped answering while old keys were removed; they are unreachable, \
             and run again, this command removes the rest"
                .into(),
        );
    };
    writeln!(
        std::io::stdout().lock(),
        "removed {removed} keys of older namespaces in {:.2} s",
        started.elapsed().as_secs_f64()
    )?;
    Ok(())
}

/// `biblio cache stats`: every replica's snapshot in Redis and the total,
/// as a table or JSON. Reads Redis with a client of its own, so no replica
/// need be running.
pub async fn stats(database_url: &str, args: StatsArgs) -> Result<(), BoxError> {
    let config = args.cache.into_config(database_url.to_owned());
    let settings = operator_settings(&config)?;
    let prefix = prefix(&settings, &config, None).await?;
    let connection = crate::redis::Connection {
        url: settings.redis_url.clone(),
        ca_file: settings.redis_ca_file.clone(),
        command_timeout: settings.command_timeout,
        breaker_interval: settings.breaker_interval,
    };
    let deployment = crate::cache::replica_stats::read(&connection, &prefix).await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&deployment.report())?
        )?;
    } else {
        write!(out, "{deployment}")?;
    }
    Ok(())
}

/// The cache settings an operator's command runs with: Redis only,
/// patient, since an operator waits gladly for a slow answer rather than a
/// failure, and publishing no stats, since it is not a replica.
fn operator_settings(config: &Config) -> Result<crate::cache::Settings, BoxError> {
    let mut settings = config.cache.clone();
    if !settings.mode.uses_l2() {
        let mode = format!("{:?}", settings.mode).to_lowercase();
        return Err(format!("the cache mode is {mode}: there is no Redis tier to work on").into());
    }
    settings.mode = Mode::L2;
    settings.publishes_stats = false;
    settings.command_timeout = settings.command_timeout.max(Duration::from_secs(2));
    Ok(settings)
}

/// The deployment's key prefix: `--cache-prefix`, or the one `serve`
/// derives from the database's deployment id.
async fn prefix(
    settings: &crate::cache::Settings,
    config: &Config,
    db: Option<&Db>,
) -> Result<String, BoxError> {
    Ok(match (&settings.prefix, db) {
        (Some(prefix), _) => prefix.clone(),
        (None, Some(db)) => settings.key_prefix(&db.deployment_id().await?),
        (None, None) => {
            let db = crate::startup::open_database(&config.database_url).await?;
            settings.key_prefix(&db.deployment_id().await?)
        }
    })
}

/// The deployment's cache, trusted (so its namespace is known): its
/// prefix from `--cache-prefix` or from the database's deployment id.
async fn connect(config: &Config, db: Option<&Db>) -> Result<Cache, BoxError> {
    let settings = operator_settings(config)?;
    let prefix = prefix(&settings, config, db).await?;
    let cache = Cache::new(&settings, &prefix, None)?;
    if !cache.wait_until_trusted(REDIS_WAIT).await {
        return Err(format!(
            "Redis did not answer within {} s (see --redis-url): nothing was done",
            REDIS_WAIT.as_secs()
        )
        .into());
    }
    Ok(cache)
}
