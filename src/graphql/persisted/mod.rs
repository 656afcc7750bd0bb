//! Persisted queries: a client sends a document's id instead of its text.
//!
//! Two protocols share one store:
//! - **Automatic persisted queries** (APQ), as Apollo Client speaks them: a
//!   request carries `extensions.persistedQuery {version: 1, sha256Hash}`.
//!   With the hash alone, a known document runs and an unknown one is
//!   answered `PERSISTED_QUERY_NOT_FOUND`, on which the client sends the
//!   hash and the text together; the text is checked against the hash,
//!   validated, stored, and run. Hashed queries can go over GET, so a CDN
//!   can keep their answers.
//! - **Trusted documents** (`--persisted-only`): only documents registered
//!   with `biblio documents add` ([`manifest`]) run, sent by id or in full;
//!   nothing is learnt at request time.
//!
//! A document is looked up in this replica's L1 (moka, bounded in bytes),
//! then Redis (shared by the replicas, under the deployment's key prefix),
//! then the database, which holds trusted documents only; a hit fills the
//! tiers above it. Learnt queries live in L1 and Redis only: losing them
//! costs a client one round trip, never an answer. So with Redis down, APQ
//! still works on each replica from its own L1, and a `--persisted-only`
//! replica from its L1 and the database.
//!
//! Nothing here is ever stale: a document's id names its text (the
//! SHA-256, checked before anything is stored), so copies need no
//! invalidation, only a bound on their number.
//!
//! This lives beside the schema rather than in `http` because it is about
//! GraphQL documents: `biblio documents add` validates and stores them
//! without any HTTP, and `http::graphql` only turns an outcome into a
//! response.
pub mod manifest;

use super::Documents;
use crate::db::Db;
use crate::redis::keyspace::Persisted;
use crate::redis::Gateway;
use async_graphql::Value;
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long Redis keeps a query learnt at request time. A client whose
/// query expired sends its text once more; meanwhile the number of texts
/// anyone can make Redis hold stays bounded by what one day brings.
pub const LEARNT_TTL: Duration = Duration::from_secs(24 * 3600);

/// How long Redis keeps its copy of a trusted document (the database keeps
/// the document itself).
pub const TRUSTED_TTL: Duration = Duration::from_secs(24 * 3600);

/// The bound on this replica's copies of persisted documents, in bytes.
const L1_BYTES: u64 = crate::config::budgets::PERSISTED_DOCUMENTS;

/// The longest id accepted. A SHA-256 in hex is 64 characters; manifests
/// with ids of their own rarely come near this.
const MAX_ID_LEN: usize = 128;

/// The SHA-256 of `text`, in lower-case hex: the id Apollo Client and the
/// manifest generators give a document.
pub fn sha256_hex(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest {
        use std::fmt::Write as _;
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// Whether `id` looks like a SHA-256 in hex (either case); such an id must
/// be the hash of its document.
pub fn looks_like_sha256(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A document's id as a client sends it: a SHA-256 in lower-case hex, or
/// an opaque id a manifest gave it (printable ASCII, at most 128 bytes), so
/// that no id can be empty, huge, or hold what a log or key should not.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DocumentId(String);

impl DocumentId {
    /// Checks `id`; the error is a message for the client.
    pub fn parse(id: &str) -> Result<Self, String> {
        if id.is_empty() || id.len() > MAX_ID_LEN {
            return Err(format!(
                "a persisted document id must be 1 to {MAX_ID_LEN} characters long"
            ));
        }
        if !id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("a persisted document id must be printable ASCII".into());
        }
        if looks_like_sha256(id) && id.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err("a sha256Hash must be written in lower-case hex".into());
        }
        Ok(Self(id.to_owned()))
    }

    /// The id of `text` by its SHA-256.
    pub fn of(text: &str) -> Self {
        Self(sha256_hex(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What `extensions.persistedQuery` of a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    /// `sha256Hash`: the document's id.
    pub id: DocumentId,
}

impl Extension {
    /// Reads `extensions.persistedQuery`: `Ok(None)` when there is none; a
    /// version other than 1 or a malformed hash is refused.
    pub fn from_extensions(
        extensions: &async_graphql::Extensions,
    ) -> Result<Option<Self>, Refusal> {
        let Some(persisted) = extensions.get("persistedQuery") else {
            return Ok(None);
        };
        let Value::Object(fields) = persisted else {
            return Err(Refusal::Malformed(
                "extensions.persistedQuery must be an object".into(),
            ));
        };
        match fields.get("version") {
            Some(Value::Number(n)) if n.as_i64() == Some(1) => {}
            Some(other) => return Err(Refusal::UnsupportedVersion(other.to_string())),
            None => return Err(Refusal::UnsupportedVersion("none".into())),
        }
        let Some(Value::String(hash)) = fields.get("sha256Hash") else {
            return Err(Refusal::Malformed(
                "extensions.persistedQuery.sha256Hash must be a string".into(),
            ));
        };
        let id = DocumentId::parse(hash).map_err(Refusal::Malformed)?;
        Ok(Some(Self { id }))
    }
}

/// Why a request's document could not be resolved. Each is what the client
/// sees; `http::graphql` picks the status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// APQ: the hash alone, and no replica knows it. The client should send
    /// the text with it (`PERSISTED_QUERY_NOT_FOUND`, message
    /// `PersistedQueryNotFound`: Apollo Client retries on either).
    NotFound,
    /// `--persisted-only`: an id that is not registered, with or without
    /// text (`PERSISTED_QUERY_NOT_IN_LIST`, as Apollo's router says).
    NotInList,
    /// `--persisted-only`: a text that is not a registered document
    /// (`QUERY_NOT_IN_SAFELIST`, as Apollo's router says).
    NotInSafelist,
    /// The text sent with a hash is not what the hash names.
    HashMismatch,
    /// `extensions.persistedQuery.version` is not 1; holds what was sent.
    UnsupportedVersion(String),
    /// `extensions.persistedQuery` is not what the protocol says.
    Malformed(String),
    /// The database could not be asked (`--persisted-only` only; APQ takes
    /// that as a miss). Logged where it happened.
    Internal,
}

impl Refusal {
    /// The `extensions.code` the client sees.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "PERSISTED_QUERY_NOT_FOUND",
            Self::NotInList => "PERSISTED_QUERY_NOT_IN_LIST",
            Self::NotInSafelist => "QUERY_NOT_IN_SAFELIST",
            Self::HashMismatch | Self::UnsupportedVersion(_) | Self::Malformed(_) => {
                "BAD_USER_INPUT"
            }
            Self::Internal => "INTERNAL",
        }
    }

    /// The message the client sees.
    pub fn message(&self) -> String {
        match self {
            // The exact text Apollo Client matches on.
            Self::NotFound => "PersistedQueryNotFound".into(),
            Self::NotInList => {
                "this server runs only registered documents, and this id is not one".into()
            }
            Self::NotInSafelist => {
                "this server runs only registered documents, and this query is not one".into()
            }
            Self::HashMismatch => {
                "extensions.persistedQuery.sha256Hash is not the SHA-256 of the query".into()
            }
            Self::UnsupportedVersion(version) => {
                let version: String = version.chars().take(20).collect();
                format!("persisted query version {version} is not supported; only version 1 is")
            }
            Self::Malformed(message) => message.clone(),
            Self::Internal => "internal error".into(),
        }
    }
}

/// The store's counters, for tests and monitoring. Relaxed atomics: each is
/// read on its own.
#[derive(Default)]
struct Counters {
    l1_hits: AtomicU64,
    l2_hits: AtomicU64,
    db_hits: AtomicU64,
    misses: AtomicU64,
    registered: AtomicU64,
    refused: AtomicU64,
}

/// A snapshot of the store's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Ids this replica's L1 knew.
    pub l1_hits: u64,
    /// Ids L1 did not know and Redis did (another replica learnt them, or
    /// this one before a restart).
    pub l2_hits: u64,
    /// Ids found only in the database (trusted documents).
    pub db_hits: u64,
    /// Hashes sent alone that nobody knew (`PERSISTED_QUERY_NOT_FOUND`).
    pub misses: u64,
    /// Queries stored after the client sent their text with their hash.
    pub registered: u64,
    /// Requests `--persisted-only` refused.
    pub refused: u64,
}

impl Counts {
    /// Ids found in any tier.
    pub fn hits(&self) -> u64 {
        self.l1_hits + self.l2_hits + self.db_hits
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The persisted documents this replica knows, and the tiers behind them.
pub struct Store {
    /// Texts by id: an APQ hit costs no round trip, and APQ works without
    /// Redis. Bounded by the bytes of ids and texts.
    l1: moka::sync::Cache<String, Arc<str>>,
    /// The Redis tier, through the gateway's connection, breaker and
    /// round-trip counter; `None` without Redis.
    redis: Option<Arc<Gateway>>,
    /// Where trusted documents are kept.
    db: Db,
    /// Run only registered documents, and learn nothing.
    persisted_only: bool,
    counters: Counters,
}

impl Store {
    /// A store on `redis` and `db`; with `persisted_only`, trusted
    /// documents only.
    pub fn new(redis: Option<Arc<Gateway>>, db: Db, persisted_only: bool) -> Self {
        Self {
            l1: moka::sync::Cache::builder()
                .max_capacity(L1_BYTES)
                .weigher(|id: &String, text: &Arc<str>| {
                    u32::try_from(id.len() + text.len() + 64).unwrap_or(u32::MAX)
                })
                .build(),
            redis,
            db,
            persisted_only,
            counters: Counters::default(),
        }
    }

    /// Whether only registered documents run.
    pub fn persisted_only(&self) -> bool {
        self.persisted_only
    }

    /// The counters so far.
    pub fn counts(&self) -> Counts {
        let c = &self.counters;
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Counts {
            l1_hits: get(&c.l1_hits),
            l2_hits: get(&c.l2_hits),
            db_hits: get(&c.db_hits),
            misses: get(&c.misses),
            registered: get(&c.registered),
            refused: get(&c.refused),
        }
    }

    /// The text a request runs: `query` as sent (empty when absent), or
    /// the document `extension` names. A hash sent with its text is checked
    /// and, if `documents` accepts the text (it parses and is within the
    /// limits), stored for every replica. Requests without
    /// `extension` cost nothing here unless `--persisted-only`.
    pub async fn resolve(
        &self,
        documents: &Documents,
        query: String,
        extension: Option<Extension>,
    ) -> Result<String, Refusal> {
        let query = (!query.is_empty()).then_some(query);
        match (query, extension) {
            (None, None) if !self.persisted_only => Ok(String::new()),
            (Some(query), None) if !self.persisted_only => Ok(query),
            (query, None) => {
                // `--persisted-only` and a text alone: it runs if it is a
                // registered document.
                let query = query.unwrap_or_default();
                match self.lookup(&DocumentId::of(&query)).await? {
                    Some(_) => Ok(query),
                    None => self.refuse(Refusal::NotInSafelist),
                }
            }
            (None, Some(Extension { id })) => match self.lookup(&id).await? {
                Some(text) => Ok(text.to_string()),
                None if self.persisted_only => self.refuse(Refusal::NotInList),
                None => {
                    bump(&self.counters.misses);
                    Err(Refusal::NotFound)
                }
            },
            (Some(query), Some(Extension { id })) => {
                if sha256_hex(&query) != id.as_str() {
                    return Err(Refusal::HashMismatch);
                }
                if self.persisted_only {
                    return match self.lookup(&id).await? {
                        Some(_) => Ok(query),
                        None => self.refuse(Refusal::NotInList),
                    };
                }
                // A text that does not parse or breaks a limit is not
                // stored; execution reports why.
                if documents.get(&query).is_ok() {
                    self.register(id, &query).await;
                }
                Ok(query)
            }
        }
    }

    fn refuse(&self, refusal: Refusal) -> Result<String, Refusal> {
        bump(&self.counters.refused);
        Err(refusal)
    }

    /// The text under `id`, from the first tier that has it, filling the
    /// tiers above. A learnt query is taken only when learning is allowed.
    /// Redis failing is a miss there; the database failing is a miss for
    /// APQ (the client sends the text) and a refusal for trusted documents.
    async fn lookup(&self, id: &DocumentId) -> Result<Option<Arc<str>>, Refusal> {
        if let Some(text) = self.l1.get(id.as_str()) {
            bump(&self.counters.l1_hits);
            return Ok(Some(text));
        }
        let trusted = Persisted::Trusted(id.as_str());
        let found = match &self.redis {
            Some(redis) if self.persisted_only => redis.documents(&[trusted]).await,
            Some(redis) => {
                redis
                    .documents(&[trusted, Persisted::Learnt(id.as_str())])
                    .await
            }
            None => None,
        };
        let from_redis = found
            .unwrap_or_default()
            .into_iter()
            .flatten()
            .find_map(|bytes| String::from_utf8(bytes.to_vec()).ok());
        if let Some(text) = from_redis {
            bump(&self.counters.l2_hits);
            return Ok(Some(self.remember(id, text)));
        }
        match crate::db::documents::body(&self.db, id.as_str()).await {
            Ok(Some(text)) => {
                bump(&self.counters.db_hits);
                if let Some(redis) = &self.redis {
                    redis.store_document(trusted, &text, TRUSTED_TTL).await;
                }
                Ok(Some(self.remember(id, text)))
            }
            Ok(None) => Ok(None),
            Err(err) if self.persisted_only => {
                tracing::error!(error = %err, "could not read a trusted document");
                Err(Refusal::Internal)
            }
            Err(err) => {
                tracing::warn!(error = %err, "could not read trusted documents: a persisted-query miss");
                Ok(None)
            }
        }
    }

    fn remember(&self, id: &DocumentId, text: String) -> Arc<str> {
        let text: Arc<str> = text.into();
        self.l1.insert(id.as_str().to_owned(), text.clone());
        text
    }

    /// Stores a learnt query here and in Redis. Redis not taking it only
    /// means other replicas will ask the client for the text too.
    async fn register(&self, id: DocumentId, text: &str) {
        if let Some(redis) = &self.redis {
            redis
                .store_document(Persisted::Learnt(id.as_str()), text, LEARNT_TTL)
                .await;
        }
        self.l1.insert(id.0, text.into());
        bump(&self.counters.registered);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extensions(value: serde_json::Value) -> async_graphql::Extensions {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn sha256_is_lower_case_hex_of_the_text() {
        // The empty string's SHA-256, as every implementation writes it.
        assert_eq!(
            sha256_hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(looks_like_sha256(&sha256_hex("{ books { totalCount } }")));
    }

    #[test]
    fn the_extension_is_read_as_apollo_client_sends_it() {
        let hash = sha256_hex("{ a }");
        let read = Extension::from_extensions(&extensions(serde_json::json!({
            "persistedQuery": { "version": 1, "sha256Hash": hash }
        })));
        assert_eq!(read.unwrap().unwrap().id.as_str(), hash);
        assert_eq!(
            Extension::from_extensions(&extensions(serde_json::json!({}))),
            Ok(None)
        );
    }

    #[test]
    fn a_version_other_than_1_or_a_malformed_hash_is_refused() {
        let hash = sha256_hex("{ a }");
        for (value, expected) in [
            (
                serde_json::json!({ "version": 2, "sha256Hash": hash }),
                Refusal::UnsupportedVersion("2".into()),
            ),
            (
                serde_json::json!({ "version": "1", "sha256Hash": hash }),
                Refusal::UnsupportedVersion("\"1\"".into()),
            ),
            (
                serde_json::json!({ "sha256Hash": hash }),
                Refusal::UnsupportedVersion("none".into()),
            ),
        ] {
            let read = Extension::from_extensions(&extensions(
                serde_json::json!({ "persistedQuery": value }),
            ));
            assert_eq!(read, Err(expected));
        }
        for value in [
            serde_json::json!({ "version": 1 }),
            serde_json::json!({ "version": 1, "sha256Hash": 7 }),
            serde_json::json!({ "version": 1, "sha256Hash": "" }),
            serde_json::json!({ "version": 1, "sha256Hash": "x".repeat(129) }),
            serde_json::json!({ "version": 1, "sha256Hash": "has space" }),
            serde_json::json!({ "version": 1, "sha256Hash": hash.to_uppercase() }),
            serde_json::json!("not an object"),
        ] {
            let read = Extension::from_extensions(&extensions(
                serde_json::json!({ "persistedQuery": value }),
            ));
            assert!(
                matches!(read, Err(Refusal::Malformed(_))),
                "{value}: {read:?}"
            );
        }
    }

    #[test]
    fn every_refusal_has_a_code_and_not_found_has_the_text_apollo_matches() {
        assert_eq!(Refusal::NotFound.code(), "PERSISTED_QUERY_NOT_FOUND");
        assert_eq!(Refusal::NotFound.message(), "PersistedQueryNotFound");
        // Refusals of --persisted-only must not make Apollo Client send the
        // text to register: neither the code nor the message it matches.
        for refusal in [Refusal::NotInList, Refusal::NotInSafelist] {
            assert_ne!(refusal.code(), "PERSISTED_QUERY_NOT_FOUND");
            assert_ne!(refusal.message(), "PersistedQueryNotFound");
        }
    }
}
