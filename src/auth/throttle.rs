//! Sign-in throttling: at most so many failed sign-ins per e-mail, and so
//! many sign-in attempts (logins and registrations) per client address, in
//! fixed windows. Judged before any password is hashed, so a refusal costs
//! one Redis round trip and no hashing.
//!
//! # Why the limits hold under concurrency
//! An attempt does not read the counts and write them after its password
//! is judged: between the two, every concurrent attempt would read the
//! same count, and 30 guesses at once would all be judged under a limit of
//! 10. Instead an attempt *reserves* its place before hashing, in one step
//! that judges and counts together ([`Gateway::reserve`], one Redis script):
//! the attempt takes one of the e-mail's failures and one of the
//! address's attempts, or is refused. A sign-in that succeeds gives its
//! e-mail reservation back ([`Throttle::refund`]); one that fails keeps it,
//! as the failure it was. So at most `failures_per_email` passwords are
//! ever being judged or failed for one e-mail in a window, however many
//! arrive at once.
//!
//! # Replicas and Redis
//! The counts live in Redis, so every replica of a deployment shares them
//! and an attacker gains nothing by spreading guesses over replicas. Each
//! replica also counts its own attempts in process (bounded), and hands
//! that count to the script as a floor, so a Redis that comes back empty
//! does not wipe what this replica saw.
//!
//! While Redis does not answer (down, or its breaker open), the replica
//! judges alone, on its own counts, reserving as the script does. Alone,
//! N replicas would each allow the whole limit, N times it in all; so each
//! allows its share instead, the limit divided by the number of replicas
//! it last saw alive (how many subscribers its last heartbeat on the bus
//! reached, `Cache::replicas_seen`, which the throttle is given as
//! `replicas`), rounded down and never below 1. The
//! deployment-wide limit then holds as long as the load balancer spreads
//! an attacker's guesses; one that pins them to one replica gets only that
//! replica's share.
//!
//! # What is logged
//! A refusal and a failed sign-in are each a warning with the client's
//! address and a hash of the e-mail tried ([`email_hash`], 16 hex digits),
//! never the e-mail itself nor the password: logs travel further than the
//! database (shippers, dashboards, support tickets), and an e-mail is
//! personal data. The hash is the one the e-mail's counter in Redis is
//! named by, of the e-mail as sign-in reads it (trimmed, lower-cased), so
//! every line about one account carries the same one and an operator can
//! correlate them, or find a known account's lines by hashing its e-mail
//! (`biblio user email-hash EMAIL`). It is not a secret: anyone holding a
//! candidate e-mail can compute it.
use crate::error::{Error, Result};
use crate::redis::keyspace::text_hash;
use crate::redis::windows::{address_attempts, email_failures, Count, Counter};
use crate::redis::Gateway;
use parking_lot::Mutex;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
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
    /// IPv6 clients are counted by network, their first `ipv6_prefix` bits
    /// (64 by default: one host or one LAN is given a /64, so counting each
    /// /128 would give one attacker 2^64 budgets).
    pub ipv6_prefix: u8,
}

/// Counters tracked in process at most: beyond it the least used are
/// dropped, which only forgets the quietest clients.
const LOCAL_COUNTERS: u64 = 100_000;

/// The throttle, shared by every request of the process.
pub struct Throttle {
    policy: Policy,
    /// The deployment's shared counts; `None` without Redis.
    redis: Option<Arc<Gateway>>,
    /// How many replicas this one last saw alive, for its share of a limit
    /// while Redis does not answer.
    replicas: Box<dyn Fn() -> u64 + Send + Sync>,
    /// This process's own counts, by counter name. A `Mutex` per window:
    /// held for a few arithmetic steps, never across an `await`.
    local: moka::sync::Cache<String, Arc<Mutex<Window>>>,
    /// Held while an attempt is judged in process, which reads every one
    /// of its windows before it counts in any: two attempts judged at once
    /// could otherwise both see the last place free.
    judging: Mutex<()>,
}

/// A fixed window counted in process.
struct Window {
    started: Instant,
    n: u64,
}

/// One limit an attempt is judged against.
struct Limit {
    name: String,
    window: Duration,
    limit: u64,
    /// Whether a refused attempt counts too (see [`Counter`]).
    counts_refused: bool,
}

/// An attempt let through: the e-mail failure it reserved, if any, to be
/// given back ([`Throttle::refund`]) when the sign-in succeeds or no
/// password was judged after all. Dropped, the reservation stays: a
/// failure.
#[derive(Debug)]
#[must_use = "refund the reservation when the sign-in succeeds"]
pub struct Reservation {
    /// The e-mail's counter.
    email: Option<String>,
    /// Whether Redis counted it (otherwise only this process did).
    shared: bool,
}

impl Throttle {
    /// A throttle counting in `redis` (and in process), that divides a
    /// limit by `replicas()` while Redis does not answer.
    pub fn new(
        policy: Policy,
        redis: Option<Arc<Gateway>>,
        replicas: impl Fn() -> u64 + Send + Sync + 'static,
    ) -> Self {
        let longest = policy.email_window.max(policy.address_window);
        Self {
            policy,
            redis,
            replicas: Box::new(replicas),
            local: moka::sync::Cache::builder()
                .max_capacity(LOCAL_COUNTERS)
                .time_to_idle(longest.max(Duration::from_secs(1)))
                .build(),
            judging: Mutex::new(()),
        }
    }

    /// Reserves one sign-in attempt from `client` (a login, for `email`, or
    /// a registration): one of the address's attempts and one of the
    /// e-mail's failures. Refused (`TOO_MANY_REQUESTS`, before any hashing)
    /// when either has none left.
    pub async fn attempt(
        &self,
        client: Option<IpAddr>,
        email: Option<&str>,
    ) -> Result<Reservation> {
        let mut limits = Vec::with_capacity(2);
        if let Some(email) = email {
            limits.push(Limit {
                name: email_counter(email),
                window: self.policy.email_window,
                limit: u64::from(self.policy.failures_per_email),
                counts_refused: false,
            });
        }
        if let Some(address) = client {
            limits.push(Limit {
                name: address_attempts(&counted_client(address, self.policy.ipv6_prefix)),
                window: self.policy.address_window,
                limit: u64::from(self.policy.attempts_per_address),
                counts_refused: true,
            });
        }
        let (counts, shared) = self.reserve(&limits).await;
        let refused = counts
            .iter()
            .filter(|count| count.refused)
            .map(|count| count.resets_in)
            .max();
        match refused {
            None => Ok(Reservation {
                email: email.map(email_counter),
                shared,
            }),
            Some(resets_in) => {
                let retry_after = resets_in.as_secs_f64().ceil().max(1.0) as u64;
                tracing::warn!(
                    client = %logged_client(client),
                    email_hash = email.map(email_hash).as_deref().unwrap_or("-"),
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

    /// Gives back the e-mail failure `reservation` took: the sign-in
    /// succeeded, or no password was judged.
    pub async fn refund(&self, reservation: Reservation) {
        let Some(name) = reservation.email else {
            return;
        };
        if let Some(window) = self.local.get(&name) {
            let mut window = window.lock();
            window.n = window.n.saturating_sub(1);
        }
        if let Some(redis) = self.redis.as_ref().filter(|_| reservation.shared) {
            redis.release(&name).await;
        }
    }

    /// Judges and counts an attempt against `limits`: in Redis when it
    /// answers (then mirrored here), else here alone. The counts, and
    /// whether Redis made them.
    async fn reserve(&self, limits: &[Limit]) -> (Vec<Count>, bool) {
        let now = Instant::now();
        let floors: Vec<(u64, Duration)> = limits
            .iter()
            .map(|limit| current(&mut self.window(limit).lock(), limit, now))
            .collect();
        let counters: Vec<Counter<'_>> = limits
            .iter()
            .zip(floors)
            .map(|(limit, (floor, floor_resets_in))| Counter {
                name: &limit.name,
                window: limit.window,
                limit: limit.limit,
                counts_refused: limit.counts_refused,
                floor,
                floor_resets_in,
            })
            .collect();
        let shared = match &self.redis {
            Some(redis) => redis.reserve(&counters).await,
            None => None,
        };
        match shared {
            Some(shared) => {
                let allowed = !shared.iter().any(|count| count.refused);
                self.count_locally(limits, Some(allowed));
                (shared, true)
            }
            None => (self.count_locally(limits, None), false),
        }
    }

    /// `limit` as this replica applies it alone, while Redis cannot count
    /// for the deployment: its share, the limit divided by the replicas it
    /// last saw alive, rounded down so the shares add up to no more than
    /// the limit, and never below 1.
    fn share(&self, limit: u64) -> u64 {
        (limit / (self.replicas)().max(1)).max(1)
    }

    /// Counts an attempt in process: as Redis judged it (`Some(allowed)`),
    /// or judged here (`None`) by the same rule as the script, on this
    /// replica's [`share`](Self::share) of each limit, every window read
    /// before any is counted in.
    fn count_locally(&self, limits: &[Limit], allowed: Option<bool>) -> Vec<Count> {
        let _judging = self.judging.lock();
        let windows: Vec<_> = limits.iter().map(|limit| self.window(limit)).collect();
        let now = Instant::now();
        let over: Vec<bool> = windows
            .iter()
            .zip(limits)
            .map(|(window, limit)| {
                let n = current(&mut window.lock(), limit, now).0;
                match allowed {
                    Some(_) => n >= limit.limit,
                    None => n >= self.share(limit.limit),
                }
            })
            .collect();
        let allowed = allowed.unwrap_or_else(|| !over.contains(&true));
        windows
            .iter()
            .zip(limits)
            .zip(over)
            .map(|((window, limit), over)| {
                let mut window = window.lock();
                if allowed || limit.counts_refused {
                    window.n += 1;
                }
                Count {
                    n: window.n,
                    resets_in: current(&mut window, limit, now).1,
                    refused: over,
                }
            })
            .collect()
    }

    /// The in-process window of `limit`'s counter.
    fn window(&self, limit: &Limit) -> Arc<Mutex<Window>> {
        self.local.get_with_by_ref(&limit.name, || {
            Arc::new(Mutex::new(Window {
                started: Instant::now(),
                n: 0,
            }))
        })
    }
}

/// A window's count as of `now`, restarting it if it ended, and the time
/// until it ends.
fn current(window: &mut Window, limit: &Limit, now: Instant) -> (u64, Duration) {
    let age = now.saturating_duration_since(window.started);
    if age >= limit.window {
        *window = Window { started: now, n: 0 };
    }
    let age = now.saturating_duration_since(window.started);
    (window.n, limit.window.saturating_sub(age))
}
/// The hash an e-mail is logged and counted by: of the e-mail trimmed and
/// lower-cased as sign-in reads it, as 16 hex digits (see the module docs).
pub fn email_hash(email: &str) -> String {
    format!("{:016x}", text_hash(&email.trim().to_lowercase()))
}

/// A client's address as it is logged; `-` when it is not known.
pub fn logged_client(client: Option<IpAddr>) -> String {
    client.map_or_else(|| "-".to_owned(), |address| address.to_string())
}

/// The client a per-address limit counts: an IPv4 address as it is (an
/// IPv4-mapped IPv6 one, `::ffff:192.0.2.1`, as the IPv4 address it is),
/// an IPv6 one as its network of `ipv6_prefix` bits (`2001:db8::/64`).
pub fn counted_client(address: IpAddr, ipv6_prefix: u8) -> String {
    match address.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let prefix = ipv6_prefix.clamp(1, 128);
            let mask = u128::MAX << (128 - u32::from(prefix));
            format!("{}/{prefix}", Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

/// The counter of an e-mail's failures: named by its hash, so that Redis
/// holds no one's e-mail.
fn email_counter(email: &str) -> String {
    email_failures(&email_hash(email))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(failures: u32, attempts: u32) -> Throttle {
        Throttle::new(
            Policy {
                failures_per_email: failures,
                email_window: Duration::from_secs(60),
                attempts_per_address: attempts,
                address_window: Duration::from_secs(60),
                ipv6_prefix: 64,
            },
            None,
            || 1,
        )
    }

    fn code(result: Result<Reservation>) -> Option<&'static str> {
        result.err().map(|err| err.code())
    }

    #[test]
    fn an_email_is_logged_as_a_hash_of_it_as_sign_in_reads_it() {
        let hash = email_hash("ann@example.org");
        assert_eq!(hash.len(), 16);
        assert!(hash.chars().all(|c| c.is_ascii_hexdigit()), "{hash}");
        assert_eq!(email_hash(" Ann@Example.ORG "), hash);
        assert_ne!(email_hash("bob@example.org"), hash);
        assert_eq!(
            email_counter("ann@example.org"),
            format!("signin:email:{hash}")
        );
        assert_eq!(email_hash("a@b.c\nWARN forged").len(), 16);
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
        for email in ["a@example.org", " A@Example.org"] {
            let failed = throttle.attempt(client, Some(email)).await;
            assert!(failed.is_ok(), "{failed:?}");
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
    async fn a_refunded_reservation_is_not_a_failure() {
        let throttle = throttle(1, 100);
        for _ in 0..3 {
            let succeeded = throttle.attempt(None, Some("a@example.org")).await.unwrap();
            throttle.refund(succeeded).await;
        }
        let failed = throttle.attempt(None, Some("a@example.org")).await;
        assert!(failed.is_ok(), "{failed:?}");
        assert_eq!(
            code(throttle.attempt(None, Some("a@example.org")).await),
            Some("TOO_MANY_REQUESTS")
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_attempts_in_process_reserve_no_more_than_the_limit() {
        let throttle = Arc::new(throttle(10, 1000));
        let attempts: Vec<_> = (0..30)
            .map(|i| {
                let throttle = throttle.clone();
                tokio::spawn(async move {
                    let client = Some(IpAddr::from([192, 0, 2, i]));
                    throttle
                        .attempt(client, Some("a@example.org"))
                        .await
                        .is_ok()
                })
            })
            .collect();
        let mut let_through = 0;
        for attempt in attempts {
            let_through += usize::from(attempt.await.unwrap());
        }
        assert_eq!(let_through, 10);
    }

    #[test]
    fn ipv6_clients_are_counted_by_network_and_ipv4_mapped_ones_as_ipv4() {
        let counted = |address: &str, prefix| counted_client(address.parse().unwrap(), prefix);
        assert_eq!(counted("192.0.2.1", 64), "192.0.2.1");
        assert_eq!(counted("::ffff:192.0.2.1", 64), "192.0.2.1");
        assert_eq!(counted("2001:db8:1:2:3:4:5:6", 64), "2001:db8:1:2::/64");
        assert_eq!(counted("2001:db8:1:2:ffff::1", 64), "2001:db8:1:2::/64");
        assert_eq!(counted("2001:db8:1:3::1", 64), "2001:db8:1:3::/64");
        assert_eq!(counted("2001:db8:1:2:3:4:5:6", 48), "2001:db8:1::/48");
        assert_eq!(counted("2001:db8::1", 128), "2001:db8::1/128");
        assert_eq!(counted("2001:db8::1", 0), "::/1", "at least one bit");
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
