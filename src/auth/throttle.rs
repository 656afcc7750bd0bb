//! Sign-in throttling: at most so many failed sign-ins per e-mail, and so
//! many sign-in attempts (logins and registrations) per client address, in
//! fixed windows. Checked before any password is hashed, so a refusal costs
//! one Redis round trip and no hashing.
//!
//! The counts live in Redis, so every replica of a deployment shares them
//! and an attacker gains nothing by spreading guesses over replicas. Each
//! replica also counts in process (bounded), and a limit is judged on the
//! larger of the two counts: while Redis is down or its breaker is open the
//! process's own count still throttles, and a Redis that comes back empty
//! does not wipe what this replica saw.
//!
//! What is logged, deliberately: a refusal and a failed sign-in are each a
//! warning with the client's address and the e-mail tried, normalised as
//! sign-in reads it ([`logged_email`]), so an operator can see who is being
//! guessed at and from where; never the password. Redis, which operators
//! may share more widely than logs, holds only a hash of the e-mail.
use crate::cache::counters::{Count, Counter};
use crate::cache::{keys::text_hash, Cache};
use crate::error::{Error, Result};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The limits, from the command line.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Failed sign-ins allowed per e-mail in `email_window`.
    pub failures_per_email: u32,
    pub email_window: Duration,
    /// Sign-in attempts (successful or not) allowed per client address in
    /// `address_window`.
    pub attempts_per_address: u32,
    pub address_window: Duration,
}

/// Counters tracked in process at most: beyond it the least used are
/// dropped, which only forgets the quietest clients.
const LOCAL_COUNTERS: u64 = 100_000;

/// The throttle, shared by every request of the process.
pub struct Throttle {
    policy: Policy,
    cache: Cache,
    /// This process's own counts, by counter name.
    local: moka::sync::Cache<String, Arc<Mutex<Window>>>,
}

/// A fixed window counted in process.
struct Window {
    started: Instant,
    n: u64,
}

/// One limit to check: its counter, and the count that refuses.
struct Limit {
    name: String,
    window: Duration,
    bump: bool,
    refuse_at: u64,
}

impl Throttle {
    pub fn new(policy: Policy, cache: Cache) -> Self {
        let longest = policy.email_window.max(policy.address_window);
        Self {
            policy,
            cache,
            local: moka::sync::Cache::builder()
                .max_capacity(LOCAL_COUNTERS)
                .time_to_idle(longest.max(Duration::from_secs(1)))
                .build(),
        }
    }

    /// Counts one sign-in attempt from `client` (a login, for `email`, or a
    /// registration), and refuses it (`TOO_MANY_REQUESTS`, before any
    /// hashing) if the address has made too many attempts or the e-mail has
    /// failed too often.
    pub async fn attempt(&self, client: Option<IpAddr>, email: Option<&str>) -> Result<()> {
        let mut limits = Vec::with_capacity(2);
        if let Some(email) = email {
            limits.push(Limit {
                name: email_counter(email),
                window: self.policy.email_window,
                bump: false,
                refuse_at: u64::from(self.policy.failures_per_email),
            });
        }
        if let Some(address) = client {
            limits.push(Limit {
                name: format!("signin:address:{address}"),
                window: self.policy.address_window,
                bump: true,
                // This attempt is counted before it is judged.
                refuse_at: u64::from(self.policy.attempts_per_address) + 1,
            });
        }
        let counts = self.count(&limits).await;
        let refused = limits
            .iter()
            .zip(&counts)
            .filter(|(limit, count)| count.n >= limit.refuse_at)
            .map(|(_, count)| count.resets_in)
            .max();
        match refused {
            None => Ok(()),
            Some(resets_in) => {
                let retry_after = resets_in.as_secs_f64().ceil().max(1.0) as u64;
                tracing::warn!(
                    client = %logged_client(client),
                    email = email.map(logged_email).as_deref().unwrap_or("-"),
                    retry_after,
                    "sign-in refused: too many attempts"
                );
                Err(Error::too_many_requests(
                    "too many sign-in attempts; try again later",
                    retry_after,
                ))
            }
        }
    }

    /// Counts a failed sign-in for `email`.
    pub async fn failed(&self, email: &str) {
        let limit = Limit {
            name: email_counter(email),
            window: self.policy.email_window,
            bump: true,
            refuse_at: u64::MAX,
        };
        self.count(std::slice::from_ref(&limit)).await;
    }

    /// Each limit's count, the larger of Redis's and this process's, after
    /// bumping those asked in both.
    async fn count(&self, limits: &[Limit]) -> Vec<Count> {
        let counters: Vec<Counter<'_>> = limits
            .iter()
            .map(|limit| Counter {
                name: &limit.name,
                window: limit.window,
                bump: limit.bump,
            })
            .collect();
        let shared = self.cache.shared_counters(&counters).await;
        limits
            .iter()
            .enumerate()
            .map(|(i, limit)| {
                let local = self.count_locally(limit);
                match shared.as_ref().and_then(|shared| shared.get(i)) {
                    Some(shared) if shared.n >= local.n => *shared,
                    _ => local,
                }
            })
            .collect()
    }

    fn count_locally(&self, limit: &Limit) -> Count {
        let window = self.local.get_with_by_ref(&limit.name, || {
            Arc::new(Mutex::new(Window {
                started: Instant::now(),
                n: 0,
            }))
        });
        let mut window = window
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        if now.duration_since(window.started) >= limit.window {
            *window = Window { started: now, n: 0 };
        }
        if limit.bump {
            window.n += 1;
        }
        Count {
            n: window.n,
            resets_in: limit
                .window
                .saturating_sub(now.duration_since(window.started)),
        }
    }
}

/// The longest e-mail logged: the longest a valid one can be.
const MAX_LOGGED_EMAIL: usize = 254;

/// An e-mail as it is logged: trimmed and lower-cased as sign-in reads it,
/// so every line about one account shows it the same way; cut at the
/// longest valid length, with anything but visible ASCII shown as `?`, so
/// what a client typed cannot forge or break a log line.
pub fn logged_email(email: &str) -> String {
    email
        .trim()
        .to_lowercase()
        .chars()
        .take(MAX_LOGGED_EMAIL)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect()
}

/// A client's address as it is logged; `-` when it is not known.
pub fn logged_client(client: Option<IpAddr>) -> String {
    client.map_or_else(|| "-".to_owned(), |address| address.to_string())
}

/// The counter of an e-mail's failures. The address is hashed so that Redis
/// holds no one's e-mail; it is normalised (case, spaces) as sign-in does.
fn email_counter(email: &str) -> String {
    format!(
        "signin:email:{:016x}",
        text_hash(&email.trim().to_lowercase())
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{Mode, Settings};

    fn throttle(failures: u32, attempts: u32) -> Throttle {
        let settings = Settings {
            mode: Mode::L1,
            ..Settings::default()
        };
        let cache = Cache::new(&settings, "throttle-test", None).unwrap();
        Throttle::new(
            Policy {
                failures_per_email: failures,
                email_window: Duration::from_secs(60),
                attempts_per_address: attempts,
                address_window: Duration::from_secs(60),
            },
            cache,
        )
    }

    fn code(result: Result<()>) -> Option<&'static str> {
        result.err().map(|err| err.code())
    }

    #[test]
    fn emails_are_logged_as_sign_in_reads_them_and_cannot_break_a_line() {
        assert_eq!(logged_email(" Ann@Example.ORG "), "ann@example.org");
        assert_eq!(logged_email("a@b.c\nWARN forged"), "a@b.c?warn?forged");
        assert_eq!(logged_email(&"x".repeat(1000)).len(), MAX_LOGGED_EMAIL);
        assert_eq!(logged_client(None), "-");
        assert_eq!(
            logged_client(Some(IpAddr::from([192, 0, 2, 1]))),
            "192.0.2.1"
        );
    }

    #[tokio::test]
    async fn an_email_is_refused_once_it_has_failed_the_limit_whatever_its_case() {
        let throttle = throttle(2, 100);
        let client = Some(IpAddr::from([192, 0, 2, 1]));
        for _ in 0..2 {
            assert_eq!(
                code(throttle.attempt(client, Some("a@example.org")).await),
                None
            );
            throttle.failed(" A@Example.org").await;
        }
        assert_eq!(
            code(throttle.attempt(client, Some("a@example.org")).await),
            Some("TOO_MANY_REQUESTS")
        );
        assert_eq!(
            code(throttle.attempt(client, Some("b@example.org")).await),
            None
        );
    }

    #[tokio::test]
    async fn an_address_is_refused_after_its_attempts_and_retries_within_the_window() {
        let throttle = throttle(100, 3);
        let client = Some(IpAddr::from([192, 0, 2, 2]));
        for i in 0..3 {
            let email = format!("u{i}@example.org");
            assert_eq!(code(throttle.attempt(client, Some(&email)).await), None);
        }
        match throttle.attempt(client, Some("u9@example.org")).await {
            Err(Error::TooManyRequests { retry_after, .. }) => {
                assert!((1..=60).contains(&retry_after), "{retry_after}")
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        let other = Some(IpAddr::from([192, 0, 2, 3]));
        assert_eq!(
            code(throttle.attempt(other, Some("u9@example.org")).await),
            None
        );
    }
}
