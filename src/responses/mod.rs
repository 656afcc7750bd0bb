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
//!   ([`key`]): the query text, the operation name, the variables in a
//!   canonical form, and, for answers that depend on who asks, the viewer.
//!   Which operations are private is learnt: an execution that read the
//!   viewer or anything of one member's marks its operation private, and
//!   from then on its answers are looked up and kept under the viewer. An
//!   answer kept as shared read nothing private, so it is the same for
//!   everyone while it is valid.
//! - **Concurrent misses of one query execute once**: the first leads, the
//!   others wait for it and then look again, so they are answered by what
//!   it kept, checked exactly as a hit is, or, when it kept nothing, execute
//!   themselves. Without this a popular page that misses (after a write, or
//!   on a cold start) is executed by every request that arrives while it
//!   runs, which on a large catalogue is what keeps it from ever warming.
//! - **Downstream caches** ([`policy`]): a strong `ETag` per
//!   representation, `If-None-Match` answered 304 (GET, HEAD) or 412
//!   (POST), `Vary` on every request header the answer depends on, and
//!   `Cache-Control` that never lets a copy be used without asking again,
//!   so nothing downstream outlives the bound either.
pub mod compression;
pub mod key;
pub mod policy;
mod reads;
mod store;

pub use reads::Reads;
pub use store::{encode, Answer, Flight, Responses};
