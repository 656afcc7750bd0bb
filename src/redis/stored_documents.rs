//! Persisted GraphQL documents in Redis, for `graphql::persisted`: learnt
//! queries and copies of trusted documents, by id ([`Persisted`]). A
//! document's text is fixed by its id, so no write ever changes it and no
//! invalidation can make a copy stale: these reads skip the bus-trust
//! check that guards the cache's L2 reads, and these writes need no guard.
use super::keyspace::Persisted;
use super::slots::mget;
use super::{value_bytes, Gateway};
use fred::bytes::Bytes;
use fred::prelude::*;
use std::time::Duration;

impl Gateway {
    /// What Redis holds for each of `documents`, in order, in one round
    /// trip; `None` if Redis did not answer.
    pub async fn documents(&self, documents: &[Persisted<'_>]) -> Option<Vec<Option<Bytes>>> {
        let keys = documents
            .iter()
            .map(|document| self.keys.persisted(*document))
            .collect();
        self.get_values(keys).await
    }

    /// Stores `document`'s text for `ttl`; whether Redis took it.
    pub async fn store_document(&self, document: Persisted<'_>, text: &str, ttl: Duration) -> bool {
        let key = self.keys.persisted(document);
        self.set_value(key, Bytes::copy_from_slice(text.as_bytes()), ttl)
            .await
    }

    /// The values at `keys`, in one MGET. For values no write changes
    /// (persisted documents, named by their hash), which carry no version.
    async fn get_values(&self, keys: Vec<String>) -> Option<Vec<Option<Bytes>>> {
        if keys.is_empty() {
            return Some(Vec::new());
        }
        let values = self
            .call("mget values", mget(self.topology, &self.reads, keys))
            .await?;
        Some(values.iter().map(value_bytes).collect())
    }

    /// Stores `bytes` at `key` for `ttl`, unguarded: only for values that
    /// no write changes, so no fill can race an invalidation. Whether Redis
    /// took it.
    async fn set_value(&self, key: String, bytes: Bytes, ttl: Duration) -> bool {
        let expire = Expiration::PX(ttl.as_millis().max(1) as i64);
        self.call::<(), _>(
            "set value",
            self.writes.set(key, bytes, Some(expire), None, false),
        )
        .await
        .is_some()
    }
}
