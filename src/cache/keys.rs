//! Every cache key is built here:
//! `{prefix}:v{SCHEMA_VERSION}:n{namespace}:{kind}:{...}`.
//!
//! The prefix lets several deployments share one Redis (by default it holds
//! the deployment id of the database, so two databases never share keys).
//! The schema version changes whenever a cached value's layout changes, so a
//! deploy never decodes bytes written by an older build: it simply misses.
//! The namespace moves when the cache is cleared (`biblio cache clear`, see
//! [`super::namespace`]): every entry, its version counter and every stored
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
//! A key holds everything that makes its answer differ. Entities: kind and
//! id. Lists: a [`List`] names every parameter, and its [`Group`] (with the
//! user, author or category it belongs to) follows from it, so a list key
//! cannot leave out whose list it is.
use super::matching::{BookFields, Ranged, SearchBucket};
use super::topology::Topology;
use crate::db::books::{Filter, SortOrder};
use crate::db::borrows::Status;
use crate::domain::{Direction, PageRequest, SearchText, SliceRequest};
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use uuid::Uuid;

/// Bump when any cached struct (entity models, `IdPage`, `Statistics`) changes.
pub const SCHEMA_VERSION: u32 = 5;

/// What a cached value is. Entities and counts are keyed by id; lists by
/// their parameters under a group generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Kind {
    /// A book by id; book pages hold its id, not a copy.
    Book,
    /// An author by id.
    Author,
    /// A category by id.
    Category,
    /// A user's profile by id (never the password hash).
    User,
    /// One borrow record by id.
    Borrow,
    /// How many books one author has, by author id.
    AuthorBookCount,
    /// How many books one category has, by category id.
    CategoryBookCount,
    /// A page of `books`, under `Books` or `BooksByAvailability`.
    BookPage,
    /// A page of search results.
    SearchPage,
    /// A page of `authors`.
    AuthorPage,
    /// A page of one author's books, under that author's group.
    AuthorBooksPage,
    /// Every category, as one entry.
    CategoryList,
    /// The catalogue aggregate, served stale-while-revalidate.
    Statistics,
    /// A page of one user's borrows (`myBorrows`), under that user's group.
    BorrowPage,
}

impl Kind {
    /// Every kind in declaration order, so [`Kind::index`] is a position in it;
    /// sizes the per-kind metrics and is what [`Kind::parse`] searches.
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

    /// The kind's segment in keys and its metrics label. Renaming one only
    /// makes old entries unreachable (they miss and expire).
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

    /// Reads back [`Kind::as_str`], for keys that arrive in invalidation events.
    pub fn parse(name: &str) -> Option<Self> {
        Kind::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// Whether a value of this kind belongs to one member (a profile, a
    /// loan, a member's loans): an answer that read one is kept for that
    /// viewer only.
    pub fn is_private(self) -> bool {
        matches!(self, Kind::User | Kind::Borrow | Kind::BorrowPage)
    }

    /// The kind's slot in the per-kind counters of [`Metrics`](super::Metrics).
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A set of list entries invalidated together, in O(1), by moving its
/// generation: entries live under the generation current when they were
/// filled, and readers only look under the current one.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Group {
    /// `books` pages without the `available` filter, by the book fields
    /// their filter and order read: an update moves only the groups that
    /// read a field it changed (see [`super::matching`]).
    Books(BookFields),
    /// `books` pages (not connection slices) in a title or price order,
    /// without the `available` filter, by the fields their filter reads: a
    /// change of those moves the group, a change of the order's key only a
    /// range of it (see [`super::matching`]).
    BooksIn(Ranged, BookFields),
    /// `books` pages with the `available` filter (they move on every borrow
    /// and return, so they are kept apart from the rest).
    BooksByAvailability,
    /// Search result pages, by their term's first trigram: a write moves
    /// only the buckets its changed titles and names can match (see
    /// [`super::matching`]).
    Search(SearchBucket),
    /// `authors` pages.
    Authors,
    /// The category list.
    Categories,
    /// The `statistics` aggregate: its local counter tells a replaced value from
    /// one that has only expired.
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

    /// The order whose moves evict this group's entries by range, if any.
    pub fn ranged(&self) -> Option<Ranged> {
        match self {
            Group::BooksIn(order, _) => Some(*order),
            _ => None,
        }
    }

    /// Reads back [`Group::name`], for groups that arrive in invalidation events.
    pub fn parse(name: &str) -> Option<Self> {
        if let Some(letters) = name.strip_prefix("books:") {
            return BookFields::parse(letters).map(Group::Books);
        }
        if let Some(rest) = name.strip_prefix("books_in:") {
            let (order, letters) = rest.split_once(':')?;
            let filter = BookFields::parse(letters)?;
            return (!filter.intersects(BookFields::TITLE))
                .then_some(Group::BooksIn(Ranged::parse(order)?, filter));
        }
        if let Some(bucket) = name.strip_prefix("search:") {
            return SearchBucket::parse(bucket).map(Group::Search);
        }
        Some(match name {
            "books_available" => Group::BooksByAvailability,
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
            Group::Books(fields) => {
                out.push_str("books:");
                out.push_str(&fields.letters());
            }
            Group::BooksIn(order, filter) => {
                out.push_str("books_in:");
                out.push(order.letter());
                out.push(':');
                out.push_str(&filter.letters());
            }
            Group::BooksByAvailability => out.push_str("books_available"),
            Group::Search(bucket) => {
                out.push_str("search:");
                out.push_str(&bucket.name());
            }
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

/// A cached list and every parameter its answer depends on.
#[derive(Debug, Clone, Copy)]
pub enum List<'a> {
    /// `books` pages, filtered and sorted.
    Books {
        /// Every filter is in the key; `available` also picks the group.
        filter: &'a Filter,
        /// The order decides which ids fall on a page.
        order: SortOrder,
        /// Page number and size.
        page: PageRequest,
    },
    /// Search result pages.
    Search {
        /// Written last and verbatim, so no text can pass for other parameters.
        text: &'a SearchText,
        /// Page number and size.
        page: PageRequest,
    },
    /// `authors` pages.
    Authors {
        /// Page number and size.
        page: PageRequest,
    },
    /// One author's books, by title.
    AuthorBooks {
        /// Whose books: picks the group, so a write to one author moves only theirs.
        author: Uuid,
        /// Page number and size.
        page: PageRequest,
    },
    /// Every category, by name.
    Categories,
    /// One user's borrows (private).
    UserBorrows {
        /// Whose borrows: part of the key, so one member's list is never read as
        /// another's.
        user: Uuid,
        /// Which borrows the page lists (all, active, returned, overdue).
        status: Status,
        /// Page number and size.
        page: PageRequest,
    },
    /// The catalogue aggregate: one entry, no parameters.
    Statistics,
    /// A slice of `booksConnection`: the books of [`List::Books`], under
    /// its group and kind, so the same writes move both.
    BookSlice {
        /// Every filter is in the key; `available` also picks the group.
        filter: &'a Filter,
        /// The order decides which ids follow the cursor.
        order: SortOrder,
        /// Direction, size and cursor.
        slice: &'a SliceRequest,
    },
    /// A slice of `searchBooksConnection`, as [`List::Search`].
    SearchSlice {
        /// Written last and verbatim, so no text can pass for other parameters.
        text: &'a SearchText,
        /// Direction, size and cursor.
        slice: &'a SliceRequest,
    },
    /// A slice of `Author.booksConnection`, as [`List::AuthorBooks`].
    AuthorBooksSlice {
        /// Whose books: picks the group, so a write to one author moves only theirs.
        author: Uuid,
        /// Direction, size and cursor.
        slice: &'a SliceRequest,
    },
    /// A slice of `myBorrowsConnection`, as [`List::UserBorrows`] (private).
    UserBorrowsSlice {
        /// Whose borrows: part of the key, so one member's list is never read as
        /// another's.
        user: Uuid,
        /// Which borrows the slice lists (all, active, returned, overdue).
        status: Status,
        /// Direction, size and cursor.
        slice: &'a SliceRequest,
    },
}

impl List<'_> {
    /// The kind the entry is keyed and counted under.
    pub fn kind(&self) -> Kind {
        match self {
            List::Books { .. } | List::BookSlice { .. } => Kind::BookPage,
            List::Search { .. } | List::SearchSlice { .. } => Kind::SearchPage,
            List::Authors { .. } => Kind::AuthorPage,
            List::AuthorBooks { .. } | List::AuthorBooksSlice { .. } => Kind::AuthorBooksPage,
            List::Categories => Kind::CategoryList,
            List::UserBorrows { .. } | List::UserBorrowsSlice { .. } => Kind::BorrowPage,
            List::Statistics => Kind::Statistics,
        }
    }

    /// The group whose generation every entry of this list lives under.
    pub fn group(&self) -> Group {
        match self {
            // Pages that filter on availability move with every borrow and
            // return; the rest do not.
            List::Books { filter, .. } | List::BookSlice { filter, .. }
                if filter.available.is_some() =>
            {
                Group::BooksByAvailability
            }
            // Pages of a title or price order are invalidated by range;
            // connection slices, which a cursor also places, whole.
            List::Books { filter, order, .. } => match Ranged::of(*order) {
                Some(ranged) => Group::BooksIn(ranged, BookFields::filtered_by(filter)),
                None => Group::Books(BookFields::read_by(filter, *order)),
            },
            List::BookSlice { filter, order, .. } => {
                Group::Books(BookFields::read_by(filter, *order))
            }
            List::Search { text, .. } | List::SearchSlice { text, .. } => {
                Group::Search(SearchBucket::of_term(text))
            }
            List::Authors { .. } => Group::Authors,
            List::AuthorBooks { author, .. } | List::AuthorBooksSlice { author, .. } => {
                Group::AuthorBooks(*author)
            }
            List::Categories => Group::Categories,
            List::UserBorrows { user, .. } | List::UserBorrowsSlice { user, .. } => {
                Group::UserBorrows(*user)
            }
            List::Statistics => Group::Statistics,
        }
    }

    /// The parameters, each named; free text goes last, verbatim, so no two
    /// parameter sets can write the same string.
    fn write_params(&self, out: &mut String) {
        fn page(out: &mut String, page: &PageRequest) {
            let _ = write!(out, "p{}:s{}", page.page, page.size);
        }
        // Never starts with `p`, so no slice shares a page's key. A cursor
        // is base64url: it holds no `:`.
        fn slice(out: &mut String, slice: &SliceRequest) {
            let way = match slice.direction {
                Direction::Forward => 'f',
                Direction::Backward => 'l',
            };
            let cursor = slice.cursor.as_ref().map_or("", |cursor| cursor.as_str());
            let _ = write!(out, "{way}{}:c={cursor}", slice.size);
        }
        fn filter_params(out: &mut String, filter: &Filter) {
            opt(out, "a", filter.author_id);
            opt(out, "c", filter.category_id);
            opt(out, "min", filter.min_price.map(|money| money.cents()));
            opt(out, "max", filter.max_price.map(|money| money.cents()));
            opt(out, "from", filter.published_from);
            opt(out, "to", filter.published_to);
            opt(out, "av", filter.available);
        }
        fn opt<T: std::fmt::Display>(out: &mut String, name: &str, value: Option<T>) {
            match value {
                Some(value) => {
                    let _ = write!(out, ":{name}={value}");
                }
                None => {
                    let _ = write!(out, ":{name}=");
                }
            }
        }
        match self {
            List::Books {
                filter,
                order,
                page: request,
            } => {
                page(out, request);
                let _ = write!(out, ":o={order:?}");
                filter_params(out, filter);
            }
            List::BookSlice {
                filter,
                order,
                slice: request,
            } => {
                slice(out, request);
                let _ = write!(out, ":o={order:?}");
                filter_params(out, filter);
            }
            List::SearchSlice {
                text,
                slice: request,
            } => {
                slice(out, request);
                let _ = write!(out, ":q={}", text.as_str());
            }
            List::AuthorBooksSlice { slice: request, .. } => slice(out, request),
            List::UserBorrowsSlice {
                status,
                slice: request,
                ..
            } => {
                slice(out, request);
                let _ = write!(out, ":st={status:?}");
            }
            List::Search {
                text,
                page: request,
            } => {
                page(out, request);
                let _ = write!(out, ":q={}", text.as_str());
            }
            List::Authors { page: request } | List::AuthorBooks { page: request, .. } => {
                page(out, request);
            }
            List::UserBorrows {
                status,
                page: request,
                ..
            } => {
                page(out, request);
                let _ = write!(out, ":st={status:?}");
            }
            List::Categories | List::Statistics => out.push_str("all"),
        }
    }
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
    /// has learnt (see [`super::namespace`]). Shared by every clone, so the
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

    /// The hash slot key `key` is stored in on a Cluster: that of its hash
    /// tag if it has one.
    pub fn slot(key: &str) -> u16 {
        fred::util::redis_keyslot(key.as_bytes())
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
    /// `l2::PRIMARY`). Outside every namespace, and never expiring.
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
    pub fn entity(&self, kind: Kind, id: Uuid) -> String {
        self.entity_in(self.namespace(), kind, id)
    }

    /// An entity or count by id in `namespace`: for the invalidation script,
    /// which must name the namespace its keys were built under.
    pub fn entity_in(&self, namespace: u64, kind: Kind, id: Uuid) -> String {
        let mut key = self.start(namespace, 24 + 36);
        key.push_str(kind.as_str());
        key.push(':');
        let _ = write!(key, "{id}");
        self.end(key)
    }

    /// The kind and id of an entity key built by [`Keys::entity`], in any
    /// namespace: an event names what a write changed, wherever it was kept.
    pub fn parse_entity(&self, key: &str) -> Option<(Kind, Uuid)> {
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
        Some((Kind::parse(kind)?, Uuid::parse_str(id).ok()?))
    }

    /// A list entry: `{base}n{namespace}:{kind}:{group}:g{generation}:{params}`,
    /// e.g. `biblio-…:v4:n0:my_borrows:user_borrows:0190…:g3:p1:s20:st=All`.
    pub fn list(&self, list: &List<'_>, generation: u64) -> String {
        let mut key = self.start(self.namespace(), 128);
        key.push_str(list.kind().as_str());
        key.push(':');
        list.group().write_name(&mut key);
        let _ = write!(key, ":g{generation}:");
        list.write_params(&mut key);
        self.end(key)
    }

    /// The Redis counter holding a group's generation.
    pub fn generation(&self, group: &Group) -> String {
        let mut key = String::with_capacity(self.control.len() + 60);
        key.push_str(&self.control);
        key.push_str("gen:");
        group.write_name(&mut key);
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
    fn keys_carry_prefix_schema_version_and_kind() {
        let keys = Keys::new("lib");
        let id = Uuid::nil();
        assert_eq!(
            keys.entity(Kind::Book, id),
            format!("lib:v{SCHEMA_VERSION}:n0:book:{id}")
        );
        assert_eq!(
            keys.list(&List::Authors { page: page(1, 20) }, 7),
            format!("lib:v{SCHEMA_VERSION}:n0:authors:authors:g7:p1:s20")
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
    fn a_namespace_moves_every_entry_and_no_counter() {
        let keys = Keys::new("lib");
        let id = Uuid::now_v7();
        let list = List::Authors { page: page(1, 20) };
        let before = (
            keys.entity(Kind::Book, id),
            keys.list(&list, 3),
            keys.version(&keys.entity(Kind::Book, id)),
            keys.persisted(Persisted::Learnt("x")),
        );
        let counters = (
            keys.generation(&Group::Books(BookFields::TITLE)),
            keys.sequence(),
            keys.counter("c"),
            keys.namespace_counter(),
        );
        let shared = keys.clone();
        assert!(shared.advance_namespace(4), "a clone moves them all");
        assert!(!keys.advance_namespace(2), "never backwards");
        assert_eq!(keys.namespace(), 4);
        let after = (
            keys.entity(Kind::Book, id),
            keys.list(&list, 3),
            keys.version(&keys.entity(Kind::Book, id)),
            keys.persisted(Persisted::Learnt("x")),
        );
        assert_ne!(before.0, after.0);
        assert_ne!(before.1, after.1);
        assert_ne!(before.2, after.2);
        assert_ne!(before.3, after.3);
        assert_eq!(
            counters,
            (
                keys.generation(&Group::Books(BookFields::TITLE)),
                keys.sequence(),
                keys.counter("c"),
                keys.namespace_counter(),
            )
        );
        // Events name entities in whatever namespace their writer used.
        assert_eq!(keys.parse_entity(&before.0), Some((Kind::Book, id)));
        assert_eq!(keys.parse_entity(&after.0), Some((Kind::Book, id)));
        assert_eq!(keys.entity_in(0, Kind::Book, id), before.0);
    }

    #[test]
    fn the_sweep_pattern_and_parser_find_only_this_deployments_namespaced_keys() {
        let keys = Keys::new("lib*[1]");
        let id = Uuid::nil();
        assert_eq!(
            keys.namespaced_pattern(),
            format!("lib\\*\\[1\\]:v{SCHEMA_VERSION}:n*")
        );
        assert_eq!(keys.namespace_of(&keys.entity(Kind::Book, id)), Some(0));
        assert_eq!(
            keys.namespace_of(&keys.version(&keys.entity_in(12, Kind::Book, id))),
            Some(12)
        );
        for counter in [
            keys.namespace_counter(),
            keys.sequence(),
            keys.generation(&Group::Books(BookFields::NONE)),
            keys.counter("n1:x"),
        ] {
            assert_eq!(keys.namespace_of(&counter), None, "{counter}");
        }
        let other = Keys::new("lib*[1]x");
        assert_eq!(keys.namespace_of(&other.entity(Kind::Book, id)), None);
        assert_eq!(keys.namespace_of("lib*[1]:v1:n0:book:x"), None);
    }

    fn page(page: u32, size: u32) -> PageRequest {
        PageRequest::parse(page as i32, size as i32).expect("a valid page")
    }

    /// Slices that differ in direction, size, or cursor (two positions, and
    /// none), the sizes written like page numbers.
    fn slices() -> Vec<SliceRequest> {
        use crate::domain::cursor::{Cursor, Key, KeyKind, Listing};
        let listing = Listing::new("keys", KeyKind::Title);
        let at = |title: &str| {
            Cursor::new(&listing, Key::Title(title.into()), Uuid::nil())
                .as_str()
                .to_owned()
        };
        let (one, two) = (at("p1:s20"), at("Solaris"));
        let mut slices = Vec::new();
        for size in [1, 12, 20] {
            for cursor in [None, Some(one.as_str()), Some(two.as_str())] {
                slices.push(SliceRequest::parse(Some(size), cursor, None, None, &listing).unwrap());
                slices.push(SliceRequest::parse(None, None, Some(size), cursor, &listing).unwrap());
            }
        }
        slices
    }

    /// Every kind of list, with inputs that differ in exactly one parameter
    /// or in whose list it is: no two may share a key, at any generation.
    #[test]
    fn on_a_cluster_each_scripts_keys_share_a_slot_and_entries_spread() {
        let keys = Keys::for_topology("lib", Topology::Cluster).unwrap();
        let slot = |key: &str| Keys::slot(key);
        let control = slot(&keys.namespace_counter());
        for counter in [
            keys.sequence(),
            keys.last_heartbeat(),
            keys.primary_marker(),
            keys.counter("sign-in:a"),
            keys.counter("sign-in:b"),
            keys.generation(&Group::Authors),
            keys.generation(&Group::UserBorrows(Uuid::now_v7())),
        ] {
            assert_eq!(slot(&counter), control, "{counter}");
        }
        assert_eq!(slot(&keys.stats("r1")), slot(&keys.stats_index()));
        let list = List::Authors { page: page(1, 20) };
        let text = SearchText::parse("a}b{c").unwrap();
        let search = List::Search {
            text: &text,
            page: page(1, 20),
        };
        let mut entries = std::collections::BTreeSet::new();
        for key in (0..64)
            .map(|_| keys.entity(Kind::Book, Uuid::now_v7()))
            .chain([keys.list(&list, 3), keys.list(&search, 4)])
            .chain([keys.persisted(Persisted::Learnt("x{y}"))])
        {
            assert_eq!(slot(&key), slot(&keys.version(&key)), "{key}");
            assert_eq!(keys.namespace_of(&key), Some(0), "{key}");
            entries.insert(slot(&key));
        }
        assert!(
            entries.len() > 32,
            "entries spread: {} slots",
            entries.len()
        );
        let id = Uuid::now_v7();
        assert_eq!(
            keys.entity(Kind::Book, id),
            format!("lib:v{SCHEMA_VERSION}:n0:{{book:{id}}}")
        );
        assert_eq!(
            keys.parse_entity(&keys.entity(Kind::Book, id)),
            Some((Kind::Book, id))
        );
        assert_eq!(keys.namespace_of(&keys.namespace_counter()), None);
        assert!(Keys::for_topology("a{b", Topology::Cluster).is_err());
        assert!(Keys::for_topology("a{b", Topology::Single).is_ok());
        assert_eq!(
            Keys::for_topology("lib", Topology::Sentinel)
                .unwrap()
                .sequence(),
            Keys::new("lib").sequence(),
            "only a Cluster tags keys"
        );
    }

    #[test]
    fn different_lists_never_share_a_key() {
        use crate::domain::Money;
        let keys = Keys::new("lib");
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let filters: Vec<Filter> = vec![
            Filter::default(),
            Filter {
                author_id: Some(a),
                ..Filter::default()
            },
            Filter {
                author_id: Some(b),
                ..Filter::default()
            },
            Filter {
                category_id: Some(a),
                ..Filter::default()
            },
            Filter {
                min_price: Some(Money::from_cents(500)),
                ..Filter::default()
            },
            Filter {
                max_price: Some(Money::from_cents(500)),
                ..Filter::default()
            },
            Filter {
                published_from: Some(1990),
                ..Filter::default()
            },
            Filter {
                published_to: Some(1990),
                ..Filter::default()
            },
            Filter {
                available: Some(true),
                ..Filter::default()
            },
            Filter {
                available: Some(false),
                ..Filter::default()
            },
        ];
        let texts = [
            SearchText::parse("le guin").unwrap(),
            SearchText::parse("le gui").unwrap(),
            SearchText::parse("p1:s20").unwrap(),
        ];
        let pages = [page(1, 20), page(2, 20), page(1, 10), page(12, 1)];
        let slices = slices();
        let mut lists: Vec<List<'_>> = vec![List::Categories, List::Statistics];
        for slice in &slices {
            for filter in &filters {
                for order in [SortOrder::TitleAsc, SortOrder::PriceDesc] {
                    lists.push(List::BookSlice {
                        filter,
                        order,
                        slice,
                    });
                }
            }
            for text in &texts {
                lists.push(List::SearchSlice { text, slice });
            }
            for author in [a, b] {
                lists.push(List::AuthorBooksSlice { author, slice });
                for status in [Status::All, Status::Overdue] {
                    lists.push(List::UserBorrowsSlice {
                        user: author,
                        status,
                        slice,
                    });
                }
            }
        }
        for page in pages {
            for filter in &filters {
                for order in [SortOrder::TitleAsc, SortOrder::PriceDesc] {
                    lists.push(List::Books {
                        filter,
                        order,
                        page,
                    });
                }
            }
            for text in &texts {
                lists.push(List::Search { text, page });
            }
            lists.push(List::Authors { page });
            for author in [a, b] {
                lists.push(List::AuthorBooks { author, page });
                for status in [
                    Status::All,
                    Status::Active,
                    Status::Returned,
                    Status::Overdue,
                ] {
                    lists.push(List::UserBorrows {
                        user: author,
                        status,
                        page,
                    });
                }
            }
        }
        let mut seen = std::collections::HashMap::new();
        for generation in [0, 1, 10] {
            for list in &lists {
                let key = keys.list(list, generation);
                assert!(key.starts_with(&keys.base), "{key}");
                if let Some(other) = seen.insert(key.clone(), (generation, format!("{list:?}"))) {
                    panic!("{list:?} at g{generation} and {other:?} share the key {key}");
                }
            }
        }
        // The group's identity is in the key: a user's or an author's list
        // can never be read under another's, whatever their generations.
        let mine = keys.list(
            &List::UserBorrows {
                user: a,
                status: Status::All,
                page: page(1, 20),
            },
            0,
        );
        assert!(mine.contains(&a.to_string()), "{mine}");
        let theirs = keys.list(
            &List::AuthorBooks {
                author: b,
                page: page(1, 20),
            },
            0,
        );
        assert!(theirs.contains(&b.to_string()), "{theirs}");
    }

    /// A write moves a connection's slices exactly when it moves the pages
    /// of the same list: they share its group (and kind, for the metrics).
    #[test]
    fn a_slice_lives_under_the_group_and_kind_of_its_pages() {
        let (user, request) = (Uuid::now_v7(), page(1, 20));
        let slices = slices();
        let slice = &slices[3];
        let text = SearchText::parse("dune").unwrap();
        for available in [None, Some(true)] {
            let filter = Filter {
                available,
                ..Filter::default()
            };
            let order = SortOrder::Newest;
            let pair = [
                List::Books {
                    filter: &filter,
                    order,
                    page: request,
                },
                List::BookSlice {
                    filter: &filter,
                    order,
                    slice,
                },
            ];
            assert_eq!(pair[0].group(), pair[1].group());
            assert_eq!(pair[0].kind(), pair[1].kind());
        }
        let pairs = [
            (
                List::Search {
                    text: &text,
                    page: request,
                },
                List::SearchSlice { text: &text, slice },
            ),
            (
                List::AuthorBooks {
                    author: user,
                    page: request,
                },
                List::AuthorBooksSlice {
                    author: user,
                    slice,
                },
            ),
            (
                List::UserBorrows {
                    user,
                    status: Status::Active,
                    page: request,
                },
                List::UserBorrowsSlice {
                    user,
                    status: Status::Active,
                    slice,
                },
            ),
        ];
        for (page, slice) in pairs {
            assert_eq!(page.group(), slice.group(), "{slice:?}");
            assert_eq!(page.kind(), slice.kind(), "{slice:?}");
        }
    }

    #[test]
    fn stats_keys_are_the_deployments_and_its_pattern_matches_no_other_prefix() {
        let keys = Keys::new("lib");
        assert_eq!(keys.stats("r1"), "lib:stats:r1");
        assert_eq!(keys.stats_index(), "lib:stats");
        assert_eq!(keys.everything(), "lib:*");
        assert_eq!(Keys::new("a*b?[c]\\").everything(), "a\\*b\\?\\[c\\]\\\\:*");
    }

    #[test]
    fn deployments_with_different_prefixes_share_no_key() {
        let (one, two) = (Keys::new("biblio-aaaa"), Keys::new("biblio-bbbb"));
        let id = Uuid::now_v7();
        assert_ne!(one.entity(Kind::Book, id), two.entity(Kind::Book, id));
        assert_ne!(
            one.list(&List::Statistics, 0),
            two.list(&List::Statistics, 0)
        );
        assert_ne!(one.channel(), two.channel());
        let books = Group::Books(BookFields::NONE);
        assert_ne!(one.generation(&books), two.generation(&books));
    }

    #[test]
    fn group_names_round_trip() {
        let id = Uuid::now_v7();
        for group in [
            Group::Books(BookFields::NONE),
            Group::Books(BookFields::TITLE.with(BookFields::CATEGORY)),
            Group::BooksByAvailability,
            Group::Search(SearchBucket::Short),
            Group::Search(SearchBucket::Trigram(4095)),
            Group::Authors,
            Group::Categories,
            Group::Statistics,
            Group::AuthorBooks(id),
            Group::UserBorrows(id),
        ] {
            assert_eq!(Group::parse(&group.name()), Some(group));
        }
        for bad in [
            "nope",
            "books",
            "search",
            "books:pt",
            "search:4096",
            "author_books:x",
        ] {
            assert_eq!(Group::parse(bad), None, "{bad}");
        }
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
