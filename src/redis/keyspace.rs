//! Every Redis key of the service is built here:
//! `{prefix}:v{SCHEMA_VERSION}:n{namespace}:{kind}:{...}`.
//!
//! The prefix lets several deployments share one Redis (by default it holds
//! the deployment id of the database, so two databases never share keys).
//! The schema version changes whenever a cached value's layout changes, so a
//! deploy never decodes bytes written by an older build: it simply misses.
//! The namespace moves when the cache is cleared (`biblio cache clear`, see
//! `cache::namespace`): every entry, its version counter and every stored
//! document carry it, so moving it makes all of them unreachable at once.
//! The counters that guard races (group generations, the sequence) and
//! the sign-in windows carry no namespace: a clear changes no data, so it
//! must not restart them.
//!
//! On a Redis Cluster ([`Keys::for_topology`]) keys carry hash tags, so
//! that the keys one script touches share a slot while entries still
//! spread over every slot: an entry's part after the namespace is its tag
//! (`…:n0:{book:0190…}`), which its version (`…:n0:{book:0190…}:ver`)
//! shares; the counters the scripts move together (namespace, sequence,
//! generations, heartbeat, sign-in windows) share the deployment's tag
//! (`{prefix}:v…:{prefix}:sequence`), as do the stats snapshots and their
//! index (`{prefix}:stats:{prefix}`). Elsewhere keys carry no tag.
//!
//! What names a value inside a key (a kind, a group, a list's parameters)
//! is the cache's vocabulary (`cache::keys`): it writes itself into the key
//! being built through [`Segment`] and [`Listing`], so the layout stays
//! here and building a key allocates once.
use super::Topology;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use uuid::Uuid;

/// The layout of the cache's values: bump when any cached struct
/// (entity models, `IdPage`, `Statistics`; see `cache::codec`) changes.
pub const SCHEMA_VERSION: u32 = 5;

/// A name written into a key as one segment (a kind of entry, a group),
/// and read back from keys and events.
pub trait Segment: Sized {
    /// Appends the name to `key`.
    fn write_to(&self, key: &mut String);
    /// Reads back what [`Segment::write_to`] wrote.
    fn parse(name: &str) -> Option<Self>;
}

/// A cached list as its key names it: its kind, its group, then every
/// parameter its answer depends on.
pub trait Listing {
    /// Appends the kind the entry is keyed under.
    fn write_kind(&self, key: &mut String);
    /// Appends the group whose generation the entry lives under.
    fn write_group(&self, key: &mut String);
    /// Appends every parameter, each named; free text last, verbatim, so
    /// no two parameter sets write the same string.
    fn write_params(&self, key: &mut String);
}

/// A `SCAN` pattern: `literal` with its glob characters escaped (a prefix
/// is free text), then the glob `tail`.
fn glob_pattern(literal: &str, tail: &str) -> String {
    let mut pattern = String::with_capacity(literal.len() + tail.len() + 4);
    for c in literal.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push_str(tail);
    pattern
}

/// Builds keys for one deployment prefix. Clones share the namespace.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
    /// `{prefix}:v{SCHEMA_VERSION}:`
    base: String,
    /// Where the counters go: `base`, or on a Cluster `base` and the
    /// deployment's hash tag, so that every script's counters share a slot.
    control: String,
    /// Whether entries carry a hash tag of their own (Cluster only).
    tagged: bool,
    channel: String,
    /// The **namespace** this process reads and fills under: the highest it
    /// has learnt (see `cache::namespace`). Shared by every clone, so the
    /// L2 store and the cache never build keys under different ones for long.
    namespace: Arc<AtomicU64>,
}

impl Keys {
    /// Keys under `prefix` and the current [`SCHEMA_VERSION`], in namespace 0
    /// until a higher one is learnt.
    pub fn new(prefix: &str) -> Self {
        let base = format!("{prefix}:v{SCHEMA_VERSION}:");
        Self {
            prefix: prefix.to_owned(),
            control: base.clone(),
            base,
            tagged: false,
            channel: format!("{prefix}:invalidate"),
            namespace: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Keys for `topology`: with hash tags on a Cluster (see the module's
    /// documentation), without elsewhere. A Cluster prefix with braces is
    /// refused: it would make a hash tag of its own and could split the
    /// keys of one script over slots.
    pub fn for_topology(prefix: &str, topology: Topology) -> Result<Self, String> {
        let keys = Self::new(prefix);
        if topology != Topology::Cluster {
            return Ok(keys);
        }
        if prefix.contains(['{', '}']) {
            return Err(format!(
                "the cache prefix {prefix:?} contains a brace, which on a Redis Cluster makes a \
                 hash tag of its own: choose a prefix without {{ or }}"
            ));
        }
        Ok(Self {
            control: format!("{}{{{prefix}}}:", keys.base),
            tagged: true,
            ..keys
        })
    }

    /// The namespace keys are built under now.
    pub fn namespace(&self) -> u64 {
        self.namespace.load(Ordering::Acquire)
    }

    /// Moves to `namespace` if it is newer than the one known; namespaces
    /// only move forward. Returns whether it moved.
    pub fn advance_namespace(&self, namespace: u64) -> bool {
        self.namespace.fetch_max(namespace, Ordering::AcqRel) < namespace
    }

    /// The Redis counter holding the namespace: `{base}namespace`. Outside
    /// every namespace, and never expiring.
    pub fn namespace_counter(&self) -> String {
        format!("{}namespace", self.control)
    }

    /// The last heartbeat any replica sent: `{base}heartbeat`. Written by
    /// every heartbeat only so that a Redis refusing writes fails them.
    pub fn last_heartbeat(&self) -> String {
        format!("{}heartbeat", self.control)
    }

    /// Which primary's dataset this is: `{base}primary`, the replication id
    /// of the Redis primary the cache last found (Sentinel only; see
    /// [`super::scripts`] PRIMARY). Outside every namespace, and never expiring.
    pub fn primary_marker(&self) -> String {
        format!("{}primary", self.control)
    }

    /// A `SCAN` pattern matching every key of this deployment that carries
    /// a namespace (and, since a prefix is free text, its glob characters
    /// escaped): `{base}n*`. It also matches the namespace counter, which
    /// [`Keys::namespace_of`] tells apart.
    pub fn namespaced_pattern(&self) -> String {
        glob_pattern(&self.base, "n*")
    }

    /// The namespace a key of this deployment was built under; `None` for
    /// keys that carry none (counters) or belong to another prefix.
    pub fn namespace_of(&self, key: &str) -> Option<u64> {
        let rest = key.strip_prefix(&self.base)?.strip_prefix('n')?;
        let (digits, _) = rest.split_once(':')?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }

    /// `{base}n{namespace}:`, the start of every namespaced key, then on
    /// a Cluster the `{` of its hash tag, which [`Keys::end`] closes.
    fn start(&self, namespace: u64, capacity: usize) -> String {
        let mut key = String::with_capacity(self.base.len() + 10 + capacity);
        key.push_str(&self.base);
        let _ = write!(key, "n{namespace}:");
        if self.tagged {
            key.push('{');
        }
        key
    }

    /// Closes the hash tag [`Keys::start`] opened, if any.
    fn end(&self, mut key: String) -> String {
        if self.tagged {
            key.push('}');
        }
        key
    }

    /// The deployment's prefix, as shown by health and `Debug`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The pub/sub channel for invalidation events.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// A replica's stats snapshot: `{prefix}:stats:{replica}`. Outside the
    /// versioned part: any build reads any build's snapshots.
    pub fn stats(&self, replica: &str) -> String {
        format!("{}:{replica}", self.stats_index())
    }

    /// The index of the replicas that published stats: `{prefix}:stats`.
    pub fn stats_index(&self) -> String {
        if self.tagged {
            format!("{0}:stats:{{{0}}}", self.prefix)
        } else {
            format!("{}:stats", self.prefix)
        }
    }

    /// A `SCAN` pattern matching every key of this deployment and no
    /// other's: `{prefix}:*`, the prefix's glob characters escaped.
    pub fn everything(&self) -> String {
        glob_pattern(&self.prefix, ":*")
    }

    /// An entity or count by id, in the current namespace:
    /// `biblio-…:v4:n0:book:0190…`.
    pub fn entity(&self, kind: impl Segment, id: Uuid) -> String {
        self.entity_in(self.namespace(), kind, id)
    }

    /// An entity or count by id in `namespace`: for the invalidation script,
    /// which must name the namespace its keys were built under.
    pub fn entity_in(&self, namespace: u64, kind: impl Segment, id: Uuid) -> String {
        let mut key = self.start(namespace, 24 + 36);
        kind.write_to(&mut key);
        key.push(':');
        let _ = write!(key, "{id}");
        self.end(key)
    }

    /// The kind and id of an entity key built by [`Keys::entity`], in any
    /// namespace: an event names what a write changed, wherever it was kept.
    pub fn parse_entity<K: Segment>(&self, key: &str) -> Option<(K, Uuid)> {
        let rest = key.strip_prefix(&self.base)?.strip_prefix('n')?;
        let (namespace, rest) = rest.split_once(':')?;
        if !namespace.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // Tagged or not: an event may come from a replica of either kind.
        let rest = rest
            .strip_prefix('{')
            .and_then(|tagged| tagged.strip_suffix('}'))
            .unwrap_or(rest);
        let (kind, id) = rest.split_once(':')?;
        Some((K::parse(kind)?, Uuid::parse_str(id).ok()?))
    }

    /// A list entry: `{base}n{namespace}:{kind}:{group}:g{generation}:{params}`,
    /// e.g. `biblio-…:v4:n0:my_borrows:user_borrows:0190…:g3:p1:s20:st=All`.
    pub fn list(&self, list: &impl Listing, generation: u64) -> String {
        let mut key = self.start(self.namespace(), 128);
        list.write_kind(&mut key);
        key.push(':');
        list.write_group(&mut key);
        let _ = write!(key, ":g{generation}:");
        list.write_params(&mut key);
        self.end(key)
    }

    /// The Redis counter holding a group's generation.
    pub fn generation(&self, group: &impl Segment) -> String {
        let mut key = String::with_capacity(self.control.len() + 60);
        key.push_str(&self.control);
        key.push_str("gen:");
        group.write_to(&mut key);
        key
    }

    /// The Redis counter bumped by every invalidation; guards entities
    /// primed from list queries, which have no version read beforehand.
    pub fn sequence(&self) -> String {
        format!("{}sequence", self.control)
    }

    /// The highest primary WAL position (LSN, 16 hex digits) an
    /// invalidation was published with: read with every version, so a
    /// reader learns of a write before deciding whether a read replica may
    /// serve it (see `db::replicas`).
    pub fn lsn(&self) -> String {
        format!("{}lsn", self.control)
    }

    /// The token (16 hex digits) of the last invalidation published with
    /// its WAL position unknown: read with the LSN key, so a reader learns
    /// of that write and keeps its reads on the primary until it has read
    /// a position after it (see `db::replicas`).
    pub fn unknown_position(&self) -> String {
        format!("{}lsn:unknown", self.control)
    }

    /// A fixed-window counter shared by the replicas (sign-in throttling):
    /// `{base}counter:{name}`.
    pub fn counter(&self, name: &str) -> String {
        format!("{}counter:{name}", self.control)
    }

    /// The Redis counter bumped whenever `key` is invalidated; a fill only
    /// lands if it still holds the value read before the database was.
    pub fn version(&self, key: &str) -> String {
        let mut version = String::with_capacity(key.len() + 4);
        version.push_str(key);
        version.push_str(":ver");
        version
    }
}

/// A stable 64-bit hash of free text, for keys. FNV-1a: the same on every
/// platform and build, unlike `DefaultHasher`, which replicas must agree on.
pub fn text_hash(text: &str) -> u64 {
    struct Fnv(u64);
    impl Hasher for Fnv {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, bytes: &[u8]) {
            for byte in bytes {
                self.0 ^= u64::from(*byte);
                self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
            }
        }
    }
    let mut hasher = Fnv(0xcbf2_9ce4_8422_2325);
    text.hash(&mut hasher);
    hasher.finish()
}

/// A persisted GraphQL document in Redis, by the id clients send for it
/// (`extensions.persistedQuery.sha256Hash`). Its text is fixed by its id, so
/// no write ever changes it and nothing invalidates it: it only expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persisted<'a> {
    /// Learnt at request time (automatic persisted queries): kept in Redis
    /// and L1 only, and never run by a `--persisted-only` replica.
    Learnt(&'a str),
    /// Registered by `biblio documents add`: a copy of its database row.
    Trusted(&'a str),
}

impl Keys {
    /// `{base}n{namespace}:apq:{id}` for a learnt query, `…:doc:{id}` for a
    /// trusted document: apart, so a learnt query can never pass for a
    /// trusted one. The id goes last, verbatim. In the namespace like any
    /// entry, so a clear forgets them too (they are read again from the
    /// client or the database).
    pub fn persisted(&self, document: Persisted<'_>) -> String {
        let (kind, id) = match document {
            Persisted::Learnt(id) => ("apq:", id),
            Persisted::Trusted(id) => ("doc:", id),
        };
        let mut key = self.start(self.namespace(), kind.len() + id.len());
        key.push_str(kind);
        key.push_str(id);
        self.end(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_keys_are_the_deployments_and_its_pattern_matches_no_other_prefix() {
        let keys = Keys::new("lib");
        assert_eq!(keys.stats("r1"), "lib:stats:r1");
        assert_eq!(keys.stats_index(), "lib:stats");
        assert_eq!(keys.everything(), "lib:*");
        assert_eq!(Keys::new("a*b?[c]\\").everything(), "a\\*b\\?\\[c\\]\\\\:*");
    }

    #[test]
    fn text_hashes_are_stable() {
        assert_eq!(text_hash("le guin"), text_hash("le guin"));
        assert_ne!(text_hash("le guin"), text_hash("le guim"));
    }

    #[test]
    fn learnt_and_trusted_documents_never_share_a_key() {
        let keys = Keys::new("lib");
        let id = "a".repeat(64);
        let learnt = keys.persisted(Persisted::Learnt(&id));
        let trusted = keys.persisted(Persisted::Trusted(&id));
        assert_eq!(learnt, format!("lib:v{SCHEMA_VERSION}:n0:apq:{id}"));
        assert_eq!(trusted, format!("lib:v{SCHEMA_VERSION}:n0:doc:{id}"));
        assert_ne!(
            keys.persisted(Persisted::Learnt("x")),
            Keys::new("other").persisted(Persisted::Learnt("x"))
        );
    }
}
