//! Stats snapshots: two replicas on one Redis publish theirs; `cacheStats`
//! and `biblio cache stats` (the real binary) show both and their sum; a
//! stopped replica's snapshot expires.
use crate::binary::{biblio, finish_within_10s};
use crate::helpers::{catalogue, eventually, TestApp, TestRedis};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;

/// Snapshots every 100 ms, so they expire 300 ms after a replica stops.
const INTERVAL: Duration = Duration::from_millis(100);

async fn replicas() -> (Vec<TestApp>, TestRedis) {
    TestApp::builder()
        .replicas(2)
        .configure(|config| config.cache.stats_interval = INTERVAL)
        .spawn_replicas()
        .await
}

const STATS: &str = "{ cacheStats { prefix
    replicas { replica mode figures { requests l1Bytes tiers { tier hits misses } } }
    total { requests l1Bytes latencyP50Seconds latencyP99Seconds tiers { tier hits misses hitRate } }
    redis { version usedMemoryBytes connectedClients keys keysComplete } } }";

async fn cache_stats(app: &TestApp, token: &str) -> Value {
    app.data(Some(token), STATS, json!({})).await["cacheStats"].clone()
}

fn replica_ids(stats: &Value) -> HashSet<String> {
    stats["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|replica| replica["replica"].as_str().unwrap().to_owned())
        .collect()
}

fn origins(apps: &[TestApp]) -> HashSet<String> {
    apps.iter()
        .map(|app| app.cache.origin().to_owned())
        .collect()
}

/// A tier's hits across `replicas`, read from their own entries.
fn hits(stats: &Value, tier: &str) -> u64 {
    stats["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|replica| replica["figures"]["tiers"].as_array().unwrap().clone())
        .filter(|t| t["tier"] == tier)
        .map(|t| t["hits"].as_u64().unwrap())
        .sum()
}

#[tokio::test]
async fn every_replica_publishes_a_snapshot_and_cache_stats_totals_are_their_sum() {
    let (apps, _redis) = replicas().await;
    let (a, b) = (&apps[0], &apps[1]);
    let cat = catalogue(a, 2).await;
    let book = "query Book($id: ID!) { book(id: $id) { title } }";
    for app in [a, b] {
        for id in &cat.books {
            app.data(None, book, json!({ "id": id })).await;
            app.data(None, book, json!({ "id": id })).await;
        }
    }
    // B's snapshot is in Redis once it shows B's four requests.
    let expected = origins(&apps);
    let b_id = b.cache.origin().to_owned();
    eventually(|| async {
        let stats = cache_stats(a, &cat.librarian).await;
        replica_ids(&stats) == expected
            && stats["replicas"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["replica"] == b_id.as_str() && r["figures"]["requests"] == 4)
    })
    .await;

    let stats = cache_stats(a, &cat.librarian).await;
    assert_eq!(stats["prefix"], a.cache.prefix());
    let sum = |field: &str| -> u64 {
        stats["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["figures"][field].as_u64().unwrap())
            .sum()
    };
    let total = &stats["total"];
    assert_eq!(total["requests"].as_u64().unwrap(), sum("requests"));
    assert_eq!(total["l1Bytes"].as_u64().unwrap(), sum("l1Bytes"));
    for tier in ["response", "l1", "l2"] {
        let in_total: u64 = total["tiers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["tier"] == tier)
            .map(|t| t["hits"].as_u64().unwrap())
            .sum();
        assert_eq!(in_total, hits(&stats, tier), "{tier} hits");
    }
    // Each replica read each book twice: a miss, then a kept answer; on B
    // a first read that A's catalogue events overtook is (rightly) not
    // kept. The figures are what the replicas themselves counted.
    let counted: u64 = apps
        .iter()
        .map(|app| app.cache.metrics().responses().hits)
        .sum();
    assert!(counted >= 2, "A's second reads were kept answers");
    assert_eq!(hits(&stats, "response"), counted);
    assert!(total["latencyP50Seconds"].as_f64().unwrap() > 0.0);
    assert!(
        total["latencyP99Seconds"].as_f64().unwrap()
            >= total["latencyP50Seconds"].as_f64().unwrap()
    );
    let redis = &stats["redis"];
    assert!(redis["version"]
        .as_str()
        .unwrap()
        .starts_with(char::is_numeric));
    assert!(redis["usedMemoryBytes"].as_u64().unwrap() > 0);
    assert!(
        redis["connectedClients"].as_u64().unwrap() >= 6,
        "two replicas' connections"
    );
    assert!(redis["keys"].as_u64().unwrap() > 0);
    assert_eq!(redis["keysComplete"], true);
}

#[tokio::test]
async fn cache_stats_is_for_librarians_and_never_kept_by_the_response_tier() {
    let (apps, _redis) = replicas().await;
    let a = &apps[0];
    let librarian = a.librarian().await;
    let member = a.member("reader@biblio.test").await;
    assert_eq!(
        a.error_code(None, STATS, json!({})).await,
        "UNAUTHENTICATED"
    );
    assert_eq!(
        a.error_code(Some(&member), STATS, json!({})).await,
        "FORBIDDEN"
    );

    let before = a.cache.metrics().responses();
    let first = cache_stats(a, &librarian).await;
    let second = cache_stats(a, &librarian).await;
    let after = a.cache.metrics().responses();
    assert_eq!(after.hits, before.hits, "never served from the tier");
    assert_eq!(after.stored, before.stored, "never kept");
    assert_eq!(after.refused, before.refused, "not even counted as refused");
    let requests = |stats: &Value| -> u64 {
        stats["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["replica"] == a.cache.origin())
            .map(|r| r["figures"]["requests"].as_u64().unwrap())
            .unwrap()
    };
    assert_eq!(
        requests(&second),
        requests(&first) + 1,
        "the second answer is live: it counts the first request"
    );
}

#[tokio::test]
async fn biblio_cache_stats_reads_every_replica_from_redis_with_no_replica_asked() {
    // The prefix left to serve's default, so the CLI must derive it from
    // the database as serve does.
    let (apps, redis) = TestApp::builder()
        .replicas(2)
        .configure(|config| {
            config.cache.stats_interval = INTERVAL;
            config.cache.prefix = None;
        })
        .spawn_replicas()
        .await;
    for app in &apps {
        app.data(None, "{ categories { name } }", json!({})).await;
    }
    // Off the runtime's thread: the replicas keep publishing meanwhile.
    let run = |json_output: bool| {
        let mut command = biblio(&apps[0].database_url);
        command
            .args(["cache", "stats", "--redis-url", &redis.url()])
            .env_remove("BIBLIO_CACHE_PREFIX");
        if json_output {
            command.arg("--json");
        }
        async move {
            let output = tokio::task::spawn_blocking(move || finish_within_10s(&mut command))
                .await
                .unwrap();
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            String::from_utf8(output.stdout).unwrap()
        }
    };
    let expected = origins(&apps);
    let complete = |report: &Value| {
        replica_ids(report) == expected
            && report["replicas"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["requests"] == 1)
    };
    let mut report = Value::Null;
    for _ in 0..50 {
        report = serde_json::from_str(&run(true).await).expect("--json prints JSON");
        if complete(&report) {
            break;
        }
        tokio::time::sleep(INTERVAL).await;
    }
    assert!(complete(&report), "both replicas, each with its request");
    assert_eq!(report["prefix"], apps[0].cache.prefix());
    assert_eq!(report["total"]["requests"], 2);
    assert_eq!(report["redis"]["keys_complete"], true);
    let table = run(false).await;
    for app in &apps {
        assert!(
            table.contains(app.cache.origin()),
            "a row per replica:\n{table}"
        );
    }
    assert!(table.contains("total (2 replicas)"));
}

#[tokio::test]
async fn a_stopped_replicas_snapshot_expires() {
    let (mut apps, redis) = replicas().await;
    let librarian = apps[0].librarian().await;
    let expected = origins(&apps);
    eventually(|| async { replica_ids(&cache_stats(&apps[0], &librarian).await) == expected })
        .await;
    let stopped = apps.pop().expect("two replicas");
    let key = format!(
        "{}:stats:{}",
        stopped.cache.prefix(),
        stopped.cache.origin()
    );
    let ttl: u64 = redis
        .command(&["PTTL", &key])
        .trim_start_matches(':')
        .parse()
        .unwrap();
    assert!(
        ttl <= 3 * INTERVAL.as_millis() as u64,
        "a snapshot lives three intervals, not {ttl} ms"
    );
    drop(stopped);
    let remaining = origins(&apps);
    eventually(|| async { replica_ids(&cache_stats(&apps[0], &librarian).await) == remaining })
        .await;
    assert_eq!(redis.command(&["EXISTS", &key]), ":0");
}
