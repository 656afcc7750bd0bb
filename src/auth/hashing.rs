//! Password hashing, bounded per replica.
//!
//! Argon2id is slow and memory-hard on purpose: each hash or check takes
//! [`HASH_MEMORY`] (19 MiB) for tens of milliseconds. Run for every request
//! that asks, 400 concurrent sign-ins took a replica from 59 MiB to 937 MiB
//! resident, on up to 512 blocking threads. So every hash a request makes
//! first takes a [`Permit`] from the replica's [`Hashers`], at most
//! `capacity` at once; when none is free the request is refused at once
//! (`TOO_MANY_REQUESTS`, retry after a second), never queued: a queue would
//! only move the growth from memory to latency, and a guesser would still
//! fill it. The permit travels into the blocking task and is released when
//! the hash ends, not when the request does, so a client that hangs up
//! mid-hash does not free a place while its hash still holds the memory.
//!
//! The commands that hash one password at a time (`biblio user`, `biblio
//! seed`) are their own processes and use [`Permit::unbounded`].
use crate::domain::Password;
use crate::error::{Error, Result};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand_core::{OsRng, RngCore};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// What one Argon2id hash with the crate's default parameters (m = 19456
/// KiB) allocates.
pub const HASH_MEMORY: u64 = 19 * 1024 * 1024;

/// The share of the machine's memory that concurrent hashes may take by
/// default: an eighth.
const MEMORY_SHARE: u64 = 8;

/// The replica's hashing places.
#[derive(Debug)]
pub struct Hashers {
    /// An `Arc` so a permit can be owned by the blocking task that hashes,
    /// outliving the request future that took it.
    places: Arc<Semaphore>,
    capacity: usize,
}

impl Hashers {
    /// At most `capacity` hashes at once (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            places: Arc::new(Semaphore::new(capacity)),
            capacity,
        }
    }

    /// How many hashes may run at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// A place to hash one password, or `TOO_MANY_REQUESTS` (retry after a
    /// second) when every place is taken.
    pub fn permit(&self) -> Result<Permit> {
        match self.places.clone().try_acquire_owned() {
            Ok(place) => Ok(Permit {
                _place: Some(place),
            }),
            Err(_) => Err(Error::too_many_requests(
                "the server is checking too many passwords at once; try again in a moment",
                1,
            )),
        }
    }
}

/// The default number of hashes at once: two per core, so the cores stay
/// busy while a hash waits to be scheduled, and no more than an eighth of
/// the memory this process may use (its cgroup's limit, else the
/// machine's) would hold.
pub fn default_capacity() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let by_cores = 2 * cores;
    let by_memory = memory_limit().map_or(usize::MAX, |bytes| {
        (bytes / MEMORY_SHARE / HASH_MEMORY).max(1) as usize
    });
    by_cores.min(by_memory).max(1)
}

/// The memory this process may use, in bytes: a cgroup v2 `memory.max`
/// when it sets one, else the machine's total; `None` where neither can be
/// read (not Linux).
fn memory_limit() -> Option<u64> {
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|limit| limit.trim().parse::<u64>().ok());
    cgroup.or_else(|| {
        let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
        let kib = meminfo
            .lines()
            .find_map(|line| line.strip_prefix("MemTotal:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse::<u64>()
            .ok()?;
        Some(kib * 1024)
    })
}

/// Leave to hash one password; see the module docs.
#[must_use = "a permit is taken to hash with it"]
pub struct Permit {
    /// Held, never read: dropping it frees the place.
    _place: Option<OwnedSemaphorePermit>,
}

impl Permit {
    /// Outside any bound: for commands that hash one password at a time
    /// in a process of their own.
    pub fn unbounded() -> Self {
        Self { _place: None }
    }

    /// Hashes `password` with Argon2id on the blocking pool, off the
    /// request workers.
    pub async fn hash(self, password: Password) -> Result<String> {
        tokio::task::spawn_blocking(move || {
            let _place = self;
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default()
                .hash_password(password.expose().as_bytes(), &salt)
                .map(|hash| hash.to_string())
                .map_err(|err| Error::internal(err.to_string()))
        })
        .await
        .map_err(Error::internal)?
    }

    /// Checks `password` against a stored hash. Without a user (`None`) it
    /// checks against a dummy hash anyway, so an unknown e-mail takes as
    /// long to refuse as a wrong password.
    pub async fn verify(self, password: String, stored_hash: Option<String>) -> Result<bool> {
        tokio::task::spawn_blocking(move || {
            let _place = self;
            let known = stored_hash.is_some();
            let stored = stored_hash.unwrap_or_else(|| dummy_hash().to_owned());
            let hash =
                PasswordHash::new(&stored).map_err(|err| Error::internal(err.to_string()))?;
            let matches = Argon2::default()
                .verify_password(password.as_bytes(), &hash)
                .is_ok();
            Ok(known && matches)
        })
        .await
        .map_err(Error::internal)?
    }
}

/// [`Permit::hash`] outside any bound, for the commands that hash one
/// password at a time.
pub async fn hash_password(password: Password) -> Result<String> {
    Permit::unbounded().hash(password).await
}

/// [`Permit::verify`] outside any bound.
pub async fn verify_password(password: String, stored_hash: Option<String>) -> Result<bool> {
    Permit::unbounded().verify(password, stored_hash).await
}

/// The hash of a random password nobody knows, made once per process.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        let mut secret = [0u8; 16];
        OsRng.fill_bytes(&mut secret);
        Argon2::default()
            .hash_password(&secret, &SaltString::generate(&mut OsRng))
            .expect("hashing random bytes with a fresh salt succeeds")
            .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passwords_verify_and_unknown_users_never_match() {
        let hash = hash_password(Password::parse("correct horse").unwrap())
            .await
            .unwrap();
        assert!(verify_password("correct horse".into(), Some(hash.clone()))
            .await
            .unwrap());
        assert!(!verify_password("wrong horse!".into(), Some(hash))
            .await
            .unwrap());
        assert!(!verify_password("correct horse".into(), None).await.unwrap());
    }

    #[tokio::test]
    async fn beyond_capacity_a_permit_is_refused_at_once_and_a_finished_hash_frees_its_place() {
        let hashers = Hashers::new(2);
        let first = hashers.permit().unwrap();
        let second = hashers.permit().unwrap();
        match hashers.permit() {
            Err(Error::TooManyRequests { retry_after, .. }) => assert_eq!(retry_after, 1),
            Err(other) => panic!("expected TOO_MANY_REQUESTS, got {other:?}"),
            Ok(_) => panic!("a third permit out of two"),
        }
        drop(first);
        second
            .verify("whatever".into(), None)
            .await
            .expect("a check runs");
        let again: Vec<Permit> = (0..2).map(|_| hashers.permit().unwrap()).collect();
        assert_eq!(again.len(), 2, "both places are free again");
    }

    #[test]
    fn the_default_capacity_is_at_least_one_and_at_most_two_per_core() {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let capacity = default_capacity();
        assert!((1..=2 * cores).contains(&capacity), "{capacity}");
    }
}
