//! Every cache key is built here: `{prefix}:v{SCHEMA_VERSION}:{kind}:{...}`.
//!
//! The prefix lets several deployments share one Redis. The schema version
//! changes whenever a cached value's layout changes, so a deploy never
//! decodes bytes written by an older build: it simply misses.
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use uuid::Uuid;

/// Bump when any cached struct (entity models, `IdPage`, `Statistics`) changes.
pub const SCHEMA_VERSION: u32 = 1;

/// What a cached value is. Entities and counts are keyed by id; lists by
/// their parameters under a group generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Book,
    Author,
    Category,
    User,
    Borrow,
    AuthorBookCount,
    CategoryBookCount,
    BookPage,
    SearchPage,
    AuthorPage,
    AuthorBooksPage,
    CategoryList,
    Statistics,
    BorrowPage,
}

impl Kind {
    pub const ALL: [Kind; 14] = [
        Kind::Book,
        Kind::Author,
        Kind::Category,
        Kind::User,
        Kind::Borrow,
        Kind::AuthorBookCount,
        Kind::CategoryBookCount,
        Kind::BookPage,
        Kind::SearchPage,
        Kind::AuthorPage,
        Kind::AuthorBooksPage,
        Kind::CategoryList,
        Kind::Statistics,
        Kind::BorrowPage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Book => "book",
            Kind::Author => "author",
            Kind::Category => "category",
            Kind::User => "user",
            Kind::Borrow => "borrow",
            Kind::AuthorBookCount => "author_book_count",
            Kind::CategoryBookCount => "category_book_count",
            Kind::BookPage => "books",
            Kind::SearchPage => "search",
            Kind::AuthorPage => "authors",
            Kind::AuthorBooksPage => "author_books",
            Kind::CategoryList => "categories",
            Kind::Statistics => "statistics",
            Kind::BorrowPage => "my_borrows",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Kind::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// A set of list entries invalidated together, in O(1), by moving its
/// generation: entries live under the generation current when they were
/// filled, and readers only look under the current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Group {
    /// `books` pages without the `available` filter.
    Books,
    /// `books` pages with the `available` filter (they move on every borrow
    /// and return, so they are kept apart from the rest).
    BooksByAvailability,
    Search,
    Authors,
    Categories,
    Statistics,
    /// One author's `books` pages.
    AuthorBooks(Uuid),
    /// One user's `myBorrows` pages (private).
    UserBorrows(Uuid),
}

impl Group {
    /// The group's name in keys and events.
    pub fn name(&self) -> String {
        let mut name = String::with_capacity(50);
        self.write_name(&mut name);
        name
    }

    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "books" => Group::Books,
            "books_available" => Group::BooksByAvailability,
            "search" => Group::Search,
            "authors" => Group::Authors,
            "categories" => Group::Categories,
            "statistics" => Group::Statistics,
            _ => {
                let (kind, id) = name.split_once(':')?;
                let id = Uuid::parse_str(id).ok()?;
                match kind {
                    "author_books" => Group::AuthorBooks(id),
                    "user_borrows" => Group::UserBorrows(id),
                    _ => return None,
                }
            }
        })
    }

    fn write_name(&self, out: &mut String) {
        match self {
            Group::Books => out.push_str("books"),
            Group::BooksByAvailability => out.push_str("books_available"),
            Group::Search => out.push_str("search"),
            Group::Authors => out.push_str("authors"),
            Group::Categories => out.push_str("categories"),
            Group::Statistics => out.push_str("statistics"),
            Group::AuthorBooks(id) => {
                let _ = write!(out, "author_books:{id}");
            }
            Group::UserBorrows(id) => {
                let _ = write!(out, "user_borrows:{id}");
            }
        }
    }
}

/// Builds keys for one deployment prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    /// `{prefix}:v{SCHEMA_VERSION}:`
    base: String,
    channel: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self {
            base: format!("{prefix}:v{SCHEMA_VERSION}:"),
            channel: format!("{prefix}:invalidate"),
        }
    }

    /// The pub/sub channel for invalidation events.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// An entity or count by id: `biblio:v1:book:0190…`.
    pub fn entity(&self, kind: Kind, id: Uuid) -> String {
        let mut key = String::with_capacity(self.base.len() + 24 + 36);
        key.push_str(&self.base);
        key.push_str(kind.as_str());
        key.push(':');
        let _ = write!(key, "{id}");
        key
    }

    /// The kind and id of an entity key built by [`Keys::entity`].
    pub fn parse_entity(&self, key: &str) -> Option<(Kind, Uuid)> {
        let (kind, id) = key.strip_prefix(&self.base)?.split_once(':')?;
        Some((Kind::parse(kind)?, Uuid::parse_str(id).ok()?))
    }

    /// A list entry: `biblio:v1:books:g{generation}:{params}`. Parameters that
    /// are free text (search) are hashed by the caller so keys stay short.
    pub fn list(&self, kind: Kind, generation: u64, params: &str) -> String {
        let mut key = String::with_capacity(self.base.len() + 32 + params.len());
        key.push_str(&self.base);
        key.push_str(kind.as_str());
        let _ = write!(key, ":g{generation}:{params}");
        key
    }

    /// The Redis counter holding a group's generation.
    pub fn generation(&self, group: &Group) -> String {
        let mut key = String::with_capacity(self.base.len() + 60);
        key.push_str(&self.base);
        key.push_str("gen:");
        group.write_name(&mut key);
        key
    }

    /// The Redis counter bumped by every invalidation; guards entities
    /// primed from list queries, which have no version read beforehand.
    pub fn sequence(&self) -> String {
        format!("{}sequence", self.base)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_prefix_schema_version_and_kind() {
        let keys = Keys::new("lib");
        let id = Uuid::nil();
        assert_eq!(
            keys.entity(Kind::Book, id),
            format!("lib:v{SCHEMA_VERSION}:book:{id}")
        );
        assert_eq!(
            keys.list(Kind::BookPage, 7, "p1"),
            format!("lib:v{SCHEMA_VERSION}:books:g7:p1")
        );
        assert_eq!(
            keys.generation(&Group::UserBorrows(id)),
            format!("lib:v{SCHEMA_VERSION}:gen:user_borrows:{id}")
        );
        assert_eq!(keys.channel(), "lib:invalidate");
        assert_eq!(
            keys.parse_entity(&keys.entity(Kind::Borrow, id)),
            Some((Kind::Borrow, id))
        );
        assert_eq!(keys.parse_entity("other:v1:book:x"), None);
    }

    #[test]
    fn group_names_round_trip() {
        let id = Uuid::now_v7();
        for group in [
            Group::Books,
            Group::BooksByAvailability,
            Group::Search,
            Group::Authors,
            Group::Categories,
            Group::Statistics,
            Group::AuthorBooks(id),
            Group::UserBorrows(id),
        ] {
            assert_eq!(Group::parse(&group.name()), Some(group));
        }
        assert_eq!(Group::parse("nope"), None);
    }

    #[test]
    fn text_hashes_are_stable() {
        assert_eq!(text_hash("le guin"), text_hash("le guin"));
        assert_ne!(text_hash("le guin"), text_hash("le guim"));
    }
}
