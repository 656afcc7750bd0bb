//! The kept answers of this replica: bytes by operation (and viewer, for private ones), each with what it
//! was built from, its validator and its compressed copies; which
//! operations are known to be private; and the executions in progress that
//! concurrent misses wait for ([`Responses::flight`]).
use super::compression::{Coded, Encoding};
use super::key::Operation;
use super::recording::Reads;
use crate::auth::Viewer;
use crate::cache::{Cache, Dependencies, ResponseEvent};
use axum::body::Bytes;
use axum::http::HeaderValue;
use moka::sync::Cache as Moka;
use moka::Expiry;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

use crate::config::budgets::{LARGEST_KEPT_ANSWER, PRIVATE_OPERATIONS};

/// One kept answer.
pub struct Answer {
    /// The response body, uncompressed.
    pub body: Bytes,
    /// Its strong validator.
    pub etag: HeaderValue,
    /// Whether it depends on who asked (kept under the viewer).
    pub private: bool,
    dependencies: Dependencies,
    /// The body in each coding asked for so far, with its own validator.
    coded: Coded<(Bytes, HeaderValue)>,
}

/// `body` and its validator in `encoding`.
pub(super) fn encode(body: &Bytes, etag: &HeaderValue, encoding: Encoding) -> (Bytes, HeaderValue) {
    if encoding == Encoding::Identity {
        return (body.clone(), etag.clone());
    }
    (
        Bytes::from(encoding.compress(body)),
        super::policy::etag_in(etag, encoding),
    )
}

/// Where an answer is kept.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    operation: Arc<Operation>,
    /// `None` for answers shared by every viewer.
    viewer: Option<Viewer>,
}

/// Each answer lives no longer than the shortest TTL of what it read.
struct ShortestDependency;

impl Expiry<Key, Arc<Answer>> for ShortestDependency {
    fn expire_after_create(&self, _: &Key, answer: &Arc<Answer>, _: Instant) -> Option<Duration> {
        Some(answer.dependencies.ttl)
    }
}

/// The kept answers of this replica.
pub struct Responses {
    answers: Moka<Key, Arc<Answer>, foldhash::fast::RandomState>,
    /// Operations found to depend on who asks; see the module docs.
    private: Moka<Arc<Operation>, (), foldhash::fast::RandomState>,
    /// The executions in progress, by the key their answer would be kept
    /// under; the receiver wakes when the leader has kept its answer, or
    /// has given up (dropped).
    flights: Mutex<HashMap<Key, watch::Receiver<()>>>,
    cache: Cache,
}

/// What a request that missed does: see [`Responses::flight`].
pub(super) enum Flight<'a> {
    /// Execute, and keep the answer before dropping the leader.
    Lead(Leader<'a>),
    /// Wait for the execution in progress, then [`Responses::joined`].
    Wait(watch::Receiver<()>),
}

/// The one request executing a query others may be waiting for: dropping
/// it (after keeping the answer, or on any early return) wakes them.
pub(super) struct Leader<'a> {
    flights: &'a Mutex<HashMap<Key, watch::Receiver<()>>>,
    key: Key,
    _done: watch::Sender<()>,
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        self.flights.lock().remove(&self.key);
    }
}

impl Responses {
    /// At most `max_bytes` of answers (bodies and keys).
    pub fn new(cache: Cache, max_bytes: u64) -> Self {
        Self {
            answers: Moka::builder()
                .max_capacity(max_bytes)
                .weigher(|key: &Key, answer: &Arc<Answer>| {
                    // Compressed copies, made later, are about a fifth
                    // of the body each; half of it is set aside for them.
                    let bytes = key.operation.weight()
                        + answer.body.len() * 3 / 2
                        + answer.dependencies.len() * 16
                        + 256;
                    u32::try_from(bytes).unwrap_or(u32::MAX)
                })
                .expire_after(ShortestDependency)
                .build_with_hasher(foldhash::fast::RandomState::default()),
            // Bounded in bytes too: an operation holds its query text.
            private: Moka::builder()
                .max_capacity(PRIVATE_OPERATIONS)
                .weigher(|operation: &Arc<Operation>, _: &()| {
                    u32::try_from(operation.weight() + 64).unwrap_or(u32::MAX)
                })
                .build_with_hasher(foldhash::fast::RandomState::default()),
            flights: Mutex::new(HashMap::new()),
            cache,
        }
    }

    /// Whether a request that missed leads the execution of `operation`
    /// or waits for the one in progress. Waiting is as exact as a hit: the
    /// leader's answer is served to it only if kept and still valid when
    /// it wakes ([`Responses::joined`]).
    pub(super) fn flight(&self, operation: &Arc<Operation>, viewer: Viewer) -> Flight<'_> {
        let key = Key {
            operation: operation.clone(),
            viewer: self.private.contains_key(operation).then_some(viewer),
        };
        let mut flights = self.flights.lock();
        if let Some(done) = flights.get(&key) {
            return Flight::Wait(done.clone());
        }
        let (done, waiting) = watch::channel(());
        flights.insert(key.clone(), waiting);
        Flight::Lead(Leader {
            flights: &self.flights,
            key,
            _done: done,
        })
    }

    /// After waiting for a leader: the answer it kept for `viewer`, if
    /// still valid, counted as joined; `None` (not counted: the caller
    /// waits again or executes) if there is none.
    pub(super) fn joined(&self, operation: &Arc<Operation>, viewer: Viewer) -> Option<Arc<Answer>> {
        let shared = Key {
            operation: operation.clone(),
            viewer: None,
        };
        let found = self.valid(&shared).or_else(|| {
            self.valid(&Key {
                operation: operation.clone(),
                viewer: Some(viewer),
            })
        });
        if found.is_some() {
            self.cache.metrics().response(ResponseEvent::Joined);
        }
        found
    }

    /// Counts a query that waits for an execution of the same query.
    pub(super) fn waited(&self) {
        self.cache.metrics().response(ResponseEvent::Waited);
    }

    /// The valid answer to `operation` for `viewer`, if one is kept.
    pub(super) fn get(&self, operation: &Arc<Operation>, viewer: Viewer) -> Option<Arc<Answer>> {
        let shared = Key {
            operation: operation.clone(),
            viewer: None,
        };
        let found = self.valid(&shared).or_else(|| {
            if !self.private.contains_key(operation) {
                return None;
            }
            self.valid(&Key {
                operation: operation.clone(),
                viewer: Some(viewer),
            })
        })?;
        self.cache.metrics().response(ResponseEvent::Hit);
        Some(found)
    }

    /// Starts recording an execution whose answer may be kept.
    pub(super) fn reads(&self) -> Reads {
        Reads::start(&self.cache)
    }

    /// Counts a query executed because no valid answer was kept (a
    /// mutation's lookup is not one).
    pub(super) fn missed(&self) {
        self.cache.metrics().response(ResponseEvent::Miss);
    }

    fn valid(&self, key: &Key) -> Option<Arc<Answer>> {
        let answer = self.answers.get(key)?;
        if self.cache.still_valid(&answer.dependencies) {
            return Some(answer);
        }
        self.answers.invalidate(key);
        None
    }

    /// Keeps a successful answer to a query, if what it read allows, and
    /// returns it.
    pub(super) fn keep(
        &self,
        operation: Arc<Operation>,
        viewer: Viewer,
        body: Bytes,
        etag: HeaderValue,
        reads: &Reads,
    ) -> Option<Arc<Answer>> {
        if !reads.is_recording() {
            return None;
        }
        let dependencies = match reads.dependencies(&self.cache) {
            Some(dependencies) if body.len() <= LARGEST_KEPT_ANSWER => dependencies,
            _ => {
                self.cache.metrics().response(ResponseEvent::Refused);
                return None;
            }
        };
        let private = reads.is_private();
        if private {
            self.private.insert(operation.clone(), ());
        }
        let key = Key {
            operation,
            viewer: private.then_some(viewer),
        };
        let answer = Arc::new(Answer {
            body,
            etag,
            private,
            dependencies,
            coded: Coded::new(),
        });
        self.answers.insert(key, answer.clone());
        self.cache.metrics().response(ResponseEvent::Stored);
        Some(answer)
    }

    /// A kept answer's body in `encoding` and its validator: compressed on
    /// the first request for that coding, then kept with the answer.
    pub(super) fn in_encoding(&self, answer: &Answer, encoding: Encoding) -> (Bytes, HeaderValue) {
        match answer.coded.slot(encoding) {
            None => (answer.body.clone(), answer.etag.clone()),
            Some(slot) => slot
                .get_or_init(|| {
                    self.cache.metrics().response(ResponseEvent::Compressed);
                    encode(&answer.body, &answer.etag, encoding)
                })
                .clone(),
        }
    }

    /// Counts a revalidation answered 304 from a kept answer.
    pub(super) fn not_modified(&self) {
        self.cache.metrics().response(ResponseEvent::NotModified);
    }
}
