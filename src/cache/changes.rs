//! Which write touches which cache entries: the one place that says so.
//!
//! Each mutation describes what it changed as a [`Change`]; [`Change::invalidation`]
//! names the entries (by kind and id) and the list groups it makes stale.
//! An entity update costs its own eviction; list groups are touched only by
//! changes to what a list contains or how it is ordered, and of those only
//! the groups whose lists read what changed: `books` pages by the fields
//! their filter and order read, search pages by the trigrams their term can
//! match ([`super::matching`] says why that is never fewer than a change
//! can affect). Each variant has a test below, and each mutation an
//! end-to-end test in `tests/api/invalidation.rs`.
use super::keys::{Group, Kind};
use super::matching::{BookFields, Ranged, SearchBucket};
use crate::domain::cursor::Key;
use entity::{book, borrow_record};
use uuid::Uuid;

/// A book as lists and search see it: its row, and its author's name,
/// which search matches as it matches the title. The write path reads the
/// name in the write's transaction, locked against a concurrent rename.
#[derive(Debug, Clone)]
pub struct Listed {
    /// The row.
    pub book: book::Model,
    /// The name of the book's author.
    pub author: String,
}

/// What one mutation changed, in the terms that decide what it invalidates.
/// A new mutation needs a variant here, and the `match` in
/// [`Change::invalidation`] does not compile until it is mapped.
#[derive(Debug, Clone)]
pub enum Change {
    /// Moves `authors` and statistics; clears a negative entry for the id.
    AuthorCreated {
        /// The new author.
        id: Uuid,
    },
    /// Evicts the author; a new name also reorders `authors` and changes
    /// what search matches, under the old name and the new.
    AuthorUpdated {
        /// The author changed.
        id: Uuid,
        /// The name before the update.
        before: String,
        /// The name after it (the same when only the bio changed).
        after: String,
    },
    /// As a create, and also moves the author's own book pages.
    AuthorDeleted {
        /// The author removed.
        id: Uuid,
    },
    /// Moves `categories` and statistics; clears a negative entry for the id.
    CategoryCreated {
        /// The new category.
        id: Uuid,
    },
    /// Its name orders `categories` and statistics' `booksByCategory`.
    CategoryUpdated {
        /// The category changed.
        id: Uuid,
    },
    /// Moves `categories` and statistics.
    CategoryDeleted {
        /// The category removed.
        id: Uuid,
    },
    /// Moves every book list, the search results its title and author's
    /// name can match, and the two counts the book adds to.
    BookCreated {
        /// The new book: its author and category say which counts move.
        book: Listed,
    },
    /// Both versions, so only the lists that read a changed field move.
    BookUpdated {
        /// The book as it was: where it is leaving (old author, old category).
        before: Listed,
        /// The book as it is now: where it is arriving.
        after: Listed,
    },
    /// With the borrow records deleted along with it.
    BookDeleted {
        /// The book as it was, for its author's and category's counts and pages.
        book: Listed,
        /// (borrow id, user id) of each deleted record: the user's borrow pages move.
        borrows: Vec<(Uuid, Uuid)>,
    },
    /// Moves statistics (it counts members); clears a negative entry for the id.
    UserCreated {
        /// The new user.
        id: Uuid,
    },
    /// An operator changed the user's role: the profile shows it (and the
    /// token generation the change moved: evicting it is what refuses the
    /// user's earlier tokens) and statistics count members by it.
    UserRoleChanged {
        /// The user changed.
        id: Uuid,
    },
    /// An operator reset the user's password. Nothing cached holds the hash,
    /// but the profile holds the token generation the reset moved: evicting
    /// it is what refuses the user's earlier tokens, on every replica.
    UserPasswordChanged {
        /// The user changed.
        id: Uuid,
    },
    /// An operator removed the user, with their returned loans (one with a
    /// loan still out is refused). Evicting the profile refuses their
    /// tokens: no user, no generation to match.
    UserDeleted {
        /// The user removed.
        id: Uuid,
        /// The ids of the returned loans deleted with them.
        borrows: Vec<Uuid>,
    },
    /// The book's available copies change: moves availability pages, the
    /// member's borrows and statistics.
    BookBorrowed {
        /// The new record: which book, which member.
        record: borrow_record::Model,
    },
    /// The reverse of a borrow: touches the same entries.
    BookReturned {
        /// The record as returned.
        record: borrow_record::Model,
    },
}

/// Entries to evict, groups to move whole, and ranges of ordered groups a
/// book moved through.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Invalidation {
    /// Evicted by (kind, id), here and on every replica.
    pub entries: Vec<(Kind, Uuid)>,
    /// Moved, so every list entry filled under the old generation is unreachable.
    pub groups: Vec<Group>,
    /// Books that moved within an order (never naming a group of `groups`).
    #[serde(default)]
    pub moves: Vec<Move>,
}

/// A book moved from one sort key to another in `order`, within the lists
/// of `groups` (whose filters it stays in or out of): only their entries
/// whose span meets the range change. Their Redis generations move all the
/// same, since L2 cannot evict by range.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Move {
    /// The order it moved in.
    pub order: Ranged,
    /// Its key before the write.
    pub from: Key,
    /// Its key after.
    pub to: Key,
    /// The groups of that order whose filter the write did not touch.
    pub groups: Vec<Group>,
}

impl Invalidation {
    /// The form kept in the database's outbox until published.
    pub fn to_outbox(&self) -> String {
        serde_json::to_string(self).expect("an invalidation serialises")
    }

    /// Reads back [`Invalidation::to_outbox`]; `None` for a row this build cannot
    /// read, which is skipped rather than blocking the outbox.
    pub fn from_outbox(payload: &str) -> Option<Self> {
        serde_json::from_str(payload).ok()
    }

    /// Adds `other`'s entries and groups (to publish several as one). A
    /// write can move dozens of search buckets and a replay merges
    /// hundreds of writes, so what is already named is looked up in a set.
    pub fn merge(&mut self, other: &Invalidation) {
        let mut entries: std::collections::HashSet<(Kind, Uuid)> =
            self.entries.iter().copied().collect();
        for entry in &other.entries {
            if entries.insert(*entry) {
                self.entries.push(*entry);
            }
        }
        let mut groups: std::collections::HashSet<Group> = self.groups.iter().copied().collect();
        for group in &other.groups {
            if groups.insert(*group) {
                self.groups.push(*group);
            }
        }
        self.moves.extend(other.moves.iter().cloned());
        // A group moved whole by one needs no range of it from the other.
        for moved in &mut self.moves {
            moved.groups.retain(|group| !groups.contains(group));
        }
        self.moves.retain(|moved| !moved.groups.is_empty());
    }

    /// Every group a move names: generations to move in Redis, and groups
    /// whose local entries are evicted by range.
    pub fn ranged_groups(&self) -> impl Iterator<Item = Group> + '_ {
        self.moves
            .iter()
            .flat_map(|moved| moved.groups.iter().copied())
    }

    /// Makes the moves in `order` whole-group moves: for a database whose
    /// order of titles Rust cannot reproduce (a collation other than
    /// bytes), a range would be compared wrongly.
    pub fn harden(&mut self, order: Ranged) {
        let (hard, kept): (Vec<Move>, Vec<Move>) = std::mem::take(&mut self.moves)
            .into_iter()
            .partition(|moved| moved.order == order);
        self.moves = kept;
        for moved in hard {
            for group in moved.groups {
                self.group(group);
            }
        }
        let groups: std::collections::HashSet<Group> = self.groups.iter().copied().collect();
        for moved in &mut self.moves {
            moved.groups.retain(|group| !groups.contains(group));
        }
        self.moves.retain(|moved| !moved.groups.is_empty());
    }

    fn entry(&mut self, kind: Kind, id: Uuid) -> &mut Self {
        if !self.entries.contains(&(kind, id)) {
            self.entries.push((kind, id));
        }
        self
    }

    fn group(&mut self, group: Group) -> &mut Self {
        if !self.groups.contains(&group) {
            self.groups.push(group);
        }
        self
    }

    /// Every `books` page group that reads one of `changed`.
    fn book_pages(&mut self, changed: BookFields) -> &mut Self {
        for reads in BookFields::groups_reading(changed) {
            self.group(Group::Books(reads));
        }
        self
    }

    /// Every `books` page group: a book came or went, so every total moved.
    fn every_book_page(&mut self) -> &mut Self {
        for reads in BookFields::all() {
            self.group(Group::Books(reads));
        }
        for order in Ranged::ALL {
            for filter in BookFields::filter_sets() {
                self.group(Group::BooksIn(order, filter));
            }
        }
        self.group(Group::BooksByAvailability)
    }

    /// Title and price pages after an update of `changed`: a group whose
    /// filter reads a changed field moves whole (the book may have entered
    /// or left it); in the others the book can only have moved within the
    /// order, from its old key to its new one.
    fn ordered_pages(&mut self, changed: BookFields, was: &book::Model, is: &book::Model) {
        for order in Ranged::ALL {
            let moved = changed.intersects(order.field());
            let mut within = Vec::new();
            for filter in BookFields::filter_sets() {
                let group = Group::BooksIn(order, filter);
                if filter.intersects(changed) {
                    self.group(group);
                } else if moved {
                    within.push(group);
                }
            }
            if !within.is_empty() {
                self.moves.push(Move {
                    order,
                    from: order.key(was),
                    to: order.key(is),
                    groups: within,
                });
            }
        }
    }

    /// The search buckets of every term that can match `texts` (titles or
    /// author names as they were or are), so whose results a change of
    /// them can change.
    fn search_matching(&mut self, texts: &[&str]) -> &mut Self {
        for bucket in buckets_of(texts) {
            self.group(Group::Search(bucket))
                .group(Group::SearchIn(bucket));
        }
        self
    }

    /// A retitle from `was` to `is` of a book by `author`: the terms the
    /// titles can match change whole (the book may enter or leave their
    /// results); for those only the author's name can match, the book is in
    /// the results before and after alike, so their pages (title ordered)
    /// change only where the move from the old title to the new meets them.
    /// Their slices, which a cursor places, move whole.
    fn search_retitled(&mut self, was: &str, is: &str, author: &str) {
        let titles = buckets_of(&[was, is]);
        self.search_matching(&[was, is]);
        let mut within = Vec::new();
        for bucket in buckets_of(&[author]) {
            self.group(Group::Search(bucket));
            if !titles.contains(&bucket) {
                within.push(Group::SearchIn(bucket));
            }
        }
        if !within.is_empty() {
            self.moves.push(Move {
                order: Ranged::Title,
                from: Key::Title(was.to_owned()),
                to: Key::Title(is.to_owned()),
                groups: within,
            });
        }
    }
}

/// The search buckets of every term that can match one of `texts`.
fn buckets_of(texts: &[&str]) -> Vec<SearchBucket> {
    let mut buckets = Vec::new();
    for text in texts {
        SearchBucket::moved_by(text, &mut buckets);
    }
    buckets
}

impl Change {
    /// What this change makes stale: the one place that says so.
    pub fn invalidation(&self) -> Invalidation {
        use Group::*;
        let mut inv = Invalidation::default();
        match self {
            // A create also clears any negative entry cached for the id.
            Change::AuthorCreated { id } => {
                inv.entry(Kind::Author, *id)
                    .entry(Kind::AuthorBookCount, *id)
                    .group(Authors)
                    .group(Statistics);
            }
            // The name orders `authors` and is matched by search; the bio
            // is read through the entity alone.
            Change::AuthorUpdated { id, before, after } => {
                inv.entry(Kind::Author, *id);
                if before != after {
                    inv.group(Authors).search_matching(&[before, after]);
                }
            }
            // Only an author without books can go (the foreign key), so no
            // search result or `books` page held one of theirs.
            Change::AuthorDeleted { id } => {
                inv.entry(Kind::Author, *id)
                    .entry(Kind::AuthorBookCount, *id)
                    .group(Authors)
                    .group(Statistics)
                    .group(AuthorBooks(*id));
            }
            Change::CategoryCreated { id } | Change::CategoryDeleted { id } => {
                inv.entry(Kind::Category, *id)
                    .entry(Kind::CategoryBookCount, *id)
                    .group(Categories)
                    .group(Statistics);
            }
            // The name orders `categories` and statistics' booksByCategory.
            Change::CategoryUpdated { id } => {
                inv.entry(Kind::Category, *id)
                    .group(Categories)
                    .group(Statistics);
            }
            // Every total moves: every page of every list it can be in.
            Change::BookCreated { book: listed } | Change::BookDeleted { book: listed, .. } => {
                let book = &listed.book;
                inv.entry(Kind::Book, book.id)
                    .entry(Kind::AuthorBookCount, book.author_id)
                    .entry(Kind::CategoryBookCount, book.category_id)
                    .every_book_page()
                    .search_matching(&[&book.title, &listed.author])
                    .group(Statistics)
                    .group(AuthorBooks(book.author_id));
                if let Change::BookDeleted { borrows, .. } = self {
                    for (borrow, user) in borrows {
                        inv.entry(Kind::Borrow, *borrow).group(UserBorrows(*user));
                    }
                }
            }
            Change::BookUpdated { before, after } => {
                let (was, is) = (&before.book, &after.book);
                inv.entry(Kind::Book, is.id);
                let title = was.title != is.title;
                let author = was.author_id != is.author_id;
                let category = was.category_id != is.category_id;
                let price = was.price_cents != is.price_cents;
                let changed = [
                    (title, BookFields::TITLE),
                    (price, BookFields::PRICE),
                    (was.published_year != is.published_year, BookFields::YEAR),
                    (author, BookFields::AUTHOR),
                    (category, BookFields::CATEGORY),
                ]
                .into_iter()
                .filter(|(changed, _)| *changed)
                .fold(BookFields::NONE, |fields, (_, field)| fields.with(field));
                inv.book_pages(changed);
                inv.ordered_pages(changed, was, is);
                // Pages filtered on availability are one group, for every field.
                if changed != BookFields::NONE || was.copies_available != is.copies_available {
                    inv.group(BooksByAvailability);
                }
                // A retitled book moves in the results of terms in its
                // author's name too (they are ordered by title); a book
                // moved to another author leaves one name's results for
                // the other's, and keeps its place in its title's.
                if title && !author && before.author == after.author {
                    inv.search_retitled(&was.title, &is.title, &after.author);
                } else if title {
                    inv.search_matching(&[&was.title, &is.title, &before.author, &after.author]);
                } else if author {
                    inv.search_matching(&[&before.author, &after.author]);
                }
                if title || author {
                    inv.group(AuthorBooks(was.author_id))
                        .group(AuthorBooks(is.author_id));
                }
                if author {
                    inv.entry(Kind::AuthorBookCount, was.author_id)
                        .entry(Kind::AuthorBookCount, is.author_id);
                }
                if category {
                    inv.entry(Kind::CategoryBookCount, was.category_id)
                        .entry(Kind::CategoryBookCount, is.category_id);
                }
                if price || category {
                    inv.group(Statistics);
                }
            }
            Change::UserCreated { id } | Change::UserRoleChanged { id } => {
                inv.entry(Kind::User, *id).group(Statistics);
            }
            Change::UserPasswordChanged { id } => {
                inv.entry(Kind::User, *id);
            }
            Change::UserDeleted { id, borrows } => {
                inv.entry(Kind::User, *id);
                for borrow in borrows {
                    inv.entry(Kind::Borrow, *borrow);
                }
                inv.group(UserBorrows(*id)).group(Statistics);
            }
            Change::BookBorrowed { record } | Change::BookReturned { record } => {
                inv.entry(Kind::Book, record.book_id)
                    .entry(Kind::Borrow, record.id)
                    .group(BooksByAvailability)
                    .group(UserBorrows(record.user_id))
                    .group(Statistics);
            }
        }
        inv
    }
}

#[cfg(test)]
mod tests;
