//! The cache's vocabulary: what a cached value is ([`Kind`]), which values
//! move together ([`Group`]) and every parameter a list's answer depends
//! on ([`List`]). Their names are the segments of the cache's Redis keys,
//! whose layout (prefix, schema version, namespace, hash tags) is
//! [`crate::redis::keyspace`]'s: each type here writes its own segment
//! ([`Segment`], [`Listing`]).
//!
//! A key holds everything that makes its answer differ. Entities: kind and
//! id. Lists: a [`List`] names every parameter, and its [`Group`] (with the
//! user, author or category it belongs to) follows from it, so a list key
//! cannot leave out whose list it is.
use super::matching::{BookFields, Ranged, SearchBucket};
use crate::db::books::{Filter, SortOrder};
use crate::db::borrows::Status;
use crate::db::users::Profile;
use crate::domain::{Direction, PageRequest, SearchText, SliceRequest};
use crate::redis::keyspace::{Listing, Segment};
use entity::{author, book, borrow_record, category};
use std::fmt::Write as _;
use std::marker::PhantomData;
use uuid::Uuid;

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
    /// How many books a search matches, kept in L1 apart from its pages
    /// ([`SearchTotal`]).
    SearchTotal,
}

impl Kind {
    /// Every kind in declaration order, so [`Kind::index`] is a position in it;
    /// sizes the per-kind metrics and is what [`Kind::parse`] searches.
    pub const ALL: [Kind; 15] = [
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
        Kind::SearchTotal,
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
            Kind::SearchTotal => "search_total",
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
    /// Search result connection slices, by their term's first trigram: a
    /// write moves only the buckets its changed titles and names can match
    /// (see [`super::matching`]).
    Search(SearchBucket),
    /// Search result pages (not connection slices), by the same buckets;
    /// in title order, so a retitle that changes only where a book stands
    /// among a term's results moves a range of them, not all (see
    /// [`super::matching`]).
    SearchIn(SearchBucket),
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
            Group::SearchIn(_) => Some(Ranged::Title),
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
        if let Some(bucket) = name.strip_prefix("search_in:") {
            return SearchBucket::parse(bucket).map(Group::SearchIn);
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
            Group::SearchIn(bucket) => {
                out.push_str("search_in:");
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
            // Pages by range, slices (which a cursor also places) whole.
            List::Search { text, .. } => Group::SearchIn(SearchBucket::of_term(text)),
            List::SearchSlice { text, .. } => Group::Search(SearchBucket::of_term(text)),
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
    fn write_params_to(&self, out: &mut String) {
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

/// A kind of entity or count together with the type of its values. Reads
/// name one of the constants below, so reading a kind as the wrong type does
/// not compile (and the `Any` values of L1 and of single flight always
/// downcast).
pub struct Of<V>(Kind, PhantomData<fn() -> V>);

impl<V> Clone for Of<V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<V> Copy for Of<V> {}

impl<V> Of<V> {
    /// The kind, for keys and metrics.
    pub fn kind(self) -> Kind {
        self.0
    }
}

/// Books by id.
pub const BOOK: Of<book::Model> = Of(Kind::Book, PhantomData);
/// Authors by id.
pub const AUTHOR: Of<author::Model> = Of(Kind::Author, PhantomData);
/// Categories by id.
pub const CATEGORY: Of<category::Model> = Of(Kind::Category, PhantomData);
/// Borrow records by id.
pub const BORROW: Of<borrow_record::Model> = Of(Kind::Borrow, PhantomData);
/// Users are cached as profiles: never the password hash.
pub const USER: Of<Profile> = Of(Kind::User, PhantomData);
/// An author's book count, by author id: `Author.bookCount` asks it of every
/// author on a page, so it is cached rather than counted each time.
pub const AUTHOR_BOOK_COUNT: Of<i64> = Of(Kind::AuthorBookCount, PhantomData);
/// A category's book count, by category id, for the same reason.
pub const CATEGORY_BOOK_COUNT: Of<i64> = Of(Kind::CategoryBookCount, PhantomData);

impl Segment for Kind {
    fn write_to(&self, key: &mut String) {
        key.push_str(self.as_str());
    }

    fn parse(name: &str) -> Option<Self> {
        Kind::parse(name)
    }
}

impl Segment for Group {
    fn write_to(&self, key: &mut String) {
        self.write_name(key);
    }

    fn parse(name: &str) -> Option<Self> {
        Group::parse(name)
    }
}

/// The total of a search's results, kept in L1 apart from its pages
/// (`Cache::search_page`): under the pages' group, whose local counter
/// moves only when a write may change which books match (a book moving
/// within the results' title order evicts pages, never the total).
pub struct SearchTotal<'a>(pub &'a SearchText);

impl SearchTotal<'_> {
    /// The group whose local counter its L1 key names.
    pub fn group(&self) -> Group {
        Group::SearchIn(SearchBucket::of_term(self.0))
    }
}

impl Listing for SearchTotal<'_> {
    fn write_kind(&self, key: &mut String) {
        key.push_str(Kind::SearchTotal.as_str());
    }

    fn write_group(&self, key: &mut String) {
        self.group().write_name(key);
    }

    fn write_params(&self, key: &mut String) {
        key.push_str(self.0.as_str());
    }
}

impl Listing for List<'_> {
    fn write_kind(&self, key: &mut String) {
        key.push_str(self.kind().as_str());
    }

    fn write_group(&self, key: &mut String) {
        self.group().write_name(key);
    }

    fn write_params(&self, key: &mut String) {
        self.write_params_to(key);
    }
}

#[cfg(test)]
mod tests;
