//! The response tier: whole answers to queries, kept per replica as the
//! bytes sent, in front of the executor, so a repeated query skips
//! execution (parsing the variables, running resolvers, building and
//! serialising the response), with the HTTP caching that lets browsers and
//! CDNs keep them too.
//!
//! What it guarantees:
//! - **When a kept answer is served**: only while every value it was built
//!   from would still be served by the cache below, so it is never older
//!   than the cache's staleness bound. An execution records what it reads
//!   ([`Reads`]); the cache stamps those reads when the answer is kept and
//!   checks the stamps on every hit (the argument is in
//!   [`crate::cache::stamps`]).
//! - **What is never kept**: answers with errors, answers of mutations,
//!   answers that read anything not through the cache, answers a write
//!   overtook while they ran, and everything in the modes without a bus.
//! - **When it is dropped**: on the first hit after anything it read
//!   changed, at the shortest TTL of what it read, at the first moment
//!   something it read changes with time alone, or when the store's bound
//!   in bytes (`--response-cache`) evicts it; answers over 1 MiB are never
//!   kept.
//! - **Who gets it**: an answer is keyed by everything that makes it differ
//!   (`key.rs`): the query text, the operation name, the variables in a
//!   canonical form, and, for answers that depend on who asks, the viewer.
//!   Which operations are private is learnt: an execution that read the
//!   viewer or anything of one member's marks its operation private, and
//!   from then on its answers are looked up and kept under the viewer. An
//!   answer kept as shared read nothing private, so it is the same for
//!   everyone while it is valid.
//! - **Concurrent misses of one query execute once**: the first leads, the
//!   others wait for it and then look again, so they are answered by what
//!   it kept, checked exactly as a hit is; when it kept nothing, one of
//!   them leads in turn (up to three leaders), then each
//!   executes itself. Without this a popular page that misses (after a write, or
//!   on a cold start) is executed by every request that arrives while it
//!   runs, which on a large catalogue is what keeps it from ever warming.
//! - **Downstream caches** ([`policy`]): a strong `ETag` per
//!   representation, `If-None-Match` answered 304 (GET, HEAD) or 412
//!   (POST), `Vary` on every request header the answer depends on, and
//!   `Cache-Control` that never lets a copy be used without asking again,
//!   so nothing downstream outlives the bound either.
pub mod compression;
mod key;
pub mod policy;
mod recording;
mod store;

pub use recording::Reads;
pub use store::Responses;

use crate::auth::Viewer;
use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderValue};
use compression::Encoding;
use key::Operation;
use policy::Policy;
use std::sync::Arc;
use store::{encode, Answer, Flight, Leader};

/// How many executions of one query a request waits for, each kept
/// nothing it could serve, before it executes the query itself.
const LEADS_AWAITED: usize = 3;

/// What the tier has for a request: see [`lookup`].
pub enum Lookup<'a> {
    /// A kept answer, valid now: send it without executing.
    Hit(Served<'a>),
    /// Execute, reading through the recorder's [`Reads`], then
    /// [`Recorder::offer`] the answer.
    Miss(Recorder<'a>),
}

/// An answer ready to send, found kept or just executed.
pub struct Served<'a> {
    /// The bytes in `encoding`.
    pub body: Bytes,
    pub encoding: Encoding,
    /// The validator of these bytes; `None` when nobody may keep them.
    pub etag: Option<HeaderValue>,
    /// Who may keep the answer.
    pub policy: Policy,
    /// The store, when the answer is a kept one: a 304 from it is counted.
    kept_in: Option<&'a Responses>,
}

impl Served<'_> {
    /// Counts a revalidation answered 304, if the answer was a kept one.
    pub fn not_modified(&self) {
        if let Some(store) = self.kept_in {
            store.not_modified();
        }
    }
}

/// One request as the tier sees it.
struct Asking<'a> {
    caching: &'a policy::Settings,
    headers: &'a HeaderMap,
    viewer: Viewer,
}

impl<'a> Asking<'a> {
    /// Whether the request carries a token: its answers are then private
    /// downstream, whatever they read.
    fn signed_in(&self) -> bool {
        self.headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .is_some()
    }

    /// A kept `answer`, found by the lookup or kept by the execution the
    /// request waited for.
    fn serve(&self, store: &'a Responses, answer: &Answer) -> Served<'a> {
        let policy = self.caching.policy(answer.private || self.signed_in());
        let encoding = Encoding::choose(self.headers, answer.body.len());
        let (body, etag) = store.in_encoding(answer, encoding);
        Served {
            body,
            encoding,
            etag: Some(etag),
            policy,
            kept_in: Some(store),
        }
    }
}

/// Looks for a valid kept answer to `request` from `viewer` in `store`
/// (`None` with `--response-cache off`), as [`Lookup::Hit`]; else, as
/// [`Lookup::Miss`], what records the execution. Concurrent misses of one
/// query execute once: this waits for the execution in progress, if any,
/// and looks again. `is_mutation` is asked only on a miss; a mutation's
/// answer is never kept.
pub async fn lookup<'a>(
    store: Option<&'a Responses>,
    caching: &'a policy::Settings,
    headers: &'a HeaderMap,
    viewer: Viewer,
    request: &async_graphql::Request,
    is_mutation: impl FnOnce() -> bool,
) -> Lookup<'a> {
    let asking = Asking {
        caching,
        headers,
        viewer,
    };
    // Only query answers are ever kept, so a hit needs no look at the
    // document: a mutation simply finds nothing.
    let operation = store.map(|_| {
        Operation::new(
            &request.query,
            request.operation_name.as_deref(),
            &request.variables,
        )
    });
    if let (Some(store), Some(operation)) = (store, &operation) {
        if let Some(answer) = store.get(operation, viewer) {
            return Lookup::Hit(asking.serve(store, &answer));
        }
    }
    let mutation = is_mutation();
    let keeping = store.filter(|_| !mutation).zip(operation);
    let mut leader = None;
    if let Some((store, operation)) = &keeping {
        // A leader that kept nothing (a write overtook it) hands the lead
        // on: one waiter executes and the others wait for it, a few times
        // over before each executes itself, so a popular query that misses
        // under a stream of writes is not executed by every request at once.
        for waits in 0..LEADS_AWAITED {
            if waits > 0 {
                // Another waiter may have led and kept an answer already.
                if let Some(answer) = store.get(operation, viewer) {
                    return Lookup::Hit(asking.serve(store, &answer));
                }
            }
            match store.flight(operation, viewer) {
                Flight::Lead(lead) => {
                    leader = Some(lead);
                    break;
                }
                Flight::Wait(mut done) => {
                    // Counted once, however many executions it waits for.
                    if waits == 0 {
                        store.waited();
                    }
                    let _ = done.changed().await;
                    if let Some(answer) = store.joined(operation, viewer) {
                        return Lookup::Hit(asking.serve(store, &answer));
                    }
                }
            }
        }
        // It executes: one miss, whether it leads or waited for executions
        // that kept nothing it could serve.
        store.missed();
    }
    let reads = Arc::new(match &keeping {
        Some((store, _)) => store.reads(),
        None => Reads::none(),
    });
    Lookup::Miss(Recorder {
        asking,
        keeping,
        mutation,
        leader,
        reads,
    })
}

/// A request that missed, executing: what it reads is recorded, and its
/// answer is then offered to the store.
pub struct Recorder<'a> {
    asking: Asking<'a>,
    /// Where the answer would be kept; `None` when the tier is off or the
    /// operation is a mutation.
    keeping: Option<(&'a Responses, Arc<Operation>)>,
    mutation: bool,
    /// Held while this request executes a query others wait for; dropped
    /// once the answer is kept (or not), which wakes them.
    leader: Option<Leader<'a>>,
    reads: Arc<Reads>,
}

impl<'a> Recorder<'a> {
    /// What the execution's scope records its reads into.
    pub fn reads(&self) -> Arc<Reads> {
        self.reads.clone()
    }

    /// Offers the executed answer, `body`; `succeeded` when it is to be
    /// sent 200 with no errors. Keeps it if it may be kept (a successful
    /// query that read only through the cache, with nothing changed while
    /// it ran), wakes the requests waiting for it, and returns it ready to
    /// send.
    pub fn offer(self, body: Bytes, succeeded: bool) -> Served<'a> {
        let Self {
            asking,
            keeping,
            mutation,
            leader,
            reads,
        } = self;
        let policy = if succeeded && !mutation {
            asking
                .caching
                .policy(asking.signed_in() || reads.is_private())
        } else {
            Policy::NoStore
        };
        let etag = (policy != Policy::NoStore).then(|| policy::etag(&body));
        let kept = match (keeping, &etag) {
            (Some((store, operation)), Some(etag)) => store
                .keep(operation, asking.viewer, body.clone(), etag.clone(), &reads)
                .map(|answer| (store, answer)),
            _ => None,
        };
        // Kept (or not): the requests waiting for this execution look now.
        drop(leader);
        let encoding = Encoding::choose(asking.headers, body.len());
        let (body, etag) = match (kept, etag) {
            (Some((store, answer)), _) => {
                let (body, etag) = store.in_encoding(&answer, encoding);
                (body, Some(etag))
            }
            (None, Some(etag)) => {
                let (body, etag) = encode(&body, &etag, encoding);
                (body, Some(etag))
            }
            (None, None) if encoding == Encoding::Identity => (body, None),
            (None, None) => (Bytes::from(encoding.compress(&body)), None),
        };
        Served {
            body,
            encoding,
            etag,
            policy,
            kept_in: None,
        }
    }
}
