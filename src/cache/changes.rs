//! Which write touches which cache entries: the one place that says so.
//!
//! Each mutation describes what it changed as a [`Change`]; [`Change::invalidation`]
//! names the entries (by kind and id) and the list groups it makes stale.
//! An entity update costs its own eviction; list groups are touched only by
//! changes to what a list contains or how it is ordered. Each variant has a
//! test below, and each mutation an end-to-end test in `tests/api/invalidation.rs`.
use super::keys::{Group, Kind};
use entity::{book, borrow_record};
use uuid::Uuid;

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
    /// Evicts the author; its name orders `authors` and is matched by search.
    AuthorUpdated {
        /// The author changed.
        id: Uuid,
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
    /// Moves every book list; evicts the two counts the book adds to.
    BookCreated {
        /// The new book: its author and category say which counts move.
        book: book::Model,
    },
    /// Both versions, so only the lists that read a changed field move.
    BookUpdated {
        /// The book as it was: where it is leaving (old author, old category).
        before: book::Model,
        /// The book as it is now: where it is arriving.
        after: book::Model,
    },
    /// With the borrow records deleted along with it.
    BookDeleted {
        /// The book as it was, for its author's and category's counts and pages.
        book: book::Model,
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

/// Entries to evict and groups to move.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Invalidation {
    /// Evicted by (kind, id), here and on every replica.
    pub entries: Vec<(Kind, Uuid)>,
    /// Moved, so every list entry filled under the old generation is unreachable.
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

    /// Adds `other`'s entries and groups (to publish several as one).
    pub fn merge(&mut self, other: &Invalidation) {
        for (kind, id) in &other.entries {
            self.entry(*kind, *id);
        }
        for group in &other.groups {
            self.group(*group);
        }
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
            // The name orders `authors` and is matched by search.
            Change::AuthorUpdated { id } => {
                inv.entry(Kind::Author, *id).group(Authors).group(Search);
            }
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
            Change::BookCreated { book } => {
                inv.entry(Kind::Book, book.id)
                    .entry(Kind::AuthorBookCount, book.author_id)
                    .entry(Kind::CategoryBookCount, book.category_id)
                    .group(Books)
                    .group(BooksByAvailability)
                    .group(Search)
                    .group(Statistics)
                    .group(AuthorBooks(book.author_id));
            }
            Change::BookUpdated { before, after } => {
                inv.entry(Kind::Book, after.id);
                let title = before.title != after.title;
                let price = before.price_cents != after.price_cents;
                let year = before.published_year != after.published_year;
                let author = before.author_id != after.author_id;
                let category = before.category_id != after.category_id;
                let availability = before.copies_available != after.copies_available;
                // Filters and orders of `books` read these fields.
                if title || price || year || author || category {
                    inv.group(Books).group(BooksByAvailability);
                } else if availability {
                    inv.group(BooksByAvailability);
                }
                if title || author {
                    inv.group(Search)
                        .group(AuthorBooks(before.author_id))
                        .group(AuthorBooks(after.author_id));
                }
                if author {
                    inv.entry(Kind::AuthorBookCount, before.author_id)
                        .entry(Kind::AuthorBookCount, after.author_id);
                }
                if category {
                    inv.entry(Kind::CategoryBookCount, before.category_id)
                        .entry(Kind::CategoryBookCount, after.category_id);
                }
                if price || category {
                    inv.group(Statistics);
                }
            }
            Change::BookDeleted { book, borrows } => {
                inv.entry(Kind::Book, book.id)
                    .entry(Kind::AuthorBookCount, book.author_id)
                    .entry(Kind::CategoryBookCount, book.category_id)
                    .group(Books)
                    .group(BooksByAvailability)
                    .group(Search)
                    .group(Statistics)
                    .group(AuthorBooks(book.author_id));
                for (borrow, user) in borrows {
                    inv.entry(Kind::Borrow, *borrow).group(UserBorrows(*user));
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
mod tests {
    use super::*;
    use chrono::Utc;

    fn book() -> book::Model {
        book::Model {
            id: Uuid::now_v7(),
            title: "Solaris".into(),
            isbn: "9780156027601".into(),
            price_cents: 1450,
            published_year: Some(1961),
            copies_total: 2,
            copies_available: 2,
            author_id: Uuid::now_v7(),
            category_id: Uuid::now_v7(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn record(book: &book::Model) -> borrow_record::Model {
        borrow_record::Model {
            id: Uuid::now_v7(),
            user_id: Uuid::now_v7(),
            book_id: book.id,
            borrowed_at: Utc::now(),
            due_at: Utc::now(),
            returned_at: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn an_isbn_only_update_costs_one_entity_eviction() {
        let before = book();
        let after = book::Model {
            isbn: "9780306406157".into(),
            ..before.clone()
        };
        let inv = Change::BookUpdated {
            before: before.clone(),
            after,
        }
        .invalidation();
        assert_eq!(
            inv,
            Invalidation {
                entries: vec![(Kind::Book, before.id)],
                groups: vec![]
            }
        );
    }

    #[test]
    fn a_title_change_moves_pages_search_and_the_authors_books() {
        let before = book();
        let after = book::Model {
            title: "Eden".into(),
            ..before.clone()
        };
        let inv = Change::BookUpdated {
            before: before.clone(),
            after,
        }
        .invalidation();
        assert_eq!(
            inv.groups,
            vec![
                Group::Books,
                Group::BooksByAvailability,
                Group::Search,
                Group::AuthorBooks(before.author_id)
            ]
        );
        assert!(!inv.groups.contains(&Group::Statistics));
    }

    #[test]
    fn moving_a_book_to_another_author_and_category_recounts_both_sides() {
        let before = book();
        let after = book::Model {
            author_id: Uuid::now_v7(),
            category_id: Uuid::now_v7(),
            ..before.clone()
        };
        let inv = Change::BookUpdated {
            before: before.clone(),
            after: after.clone(),
        }
        .invalidation();
        for entry in [
            (Kind::AuthorBookCount, before.author_id),
            (Kind::AuthorBookCount, after.author_id),
            (Kind::CategoryBookCount, before.category_id),
            (Kind::CategoryBookCount, after.category_id),
        ] {
            assert!(inv.entries.contains(&entry), "{entry:?}");
        }
        for group in [
            Group::AuthorBooks(before.author_id),
            Group::AuthorBooks(after.author_id),
            Group::Statistics,
            Group::Search,
        ] {
            assert!(inv.groups.contains(&group), "{group:?}");
        }
    }

    #[test]
    fn a_price_change_moves_pages_and_statistics_but_not_search() {
        let before = book();
        let after = book::Model {
            price_cents: 999,
            ..before.clone()
        };
        let inv = Change::BookUpdated { before, after }.invalidation();
        assert_eq!(
            inv.groups,
            vec![Group::Books, Group::BooksByAvailability, Group::Statistics]
        );
    }

    #[test]
    fn a_copies_change_only_moves_availability_pages() {
        let before = book();
        let after = book::Model {
            copies_total: 5,
            copies_available: 5,
            ..before.clone()
        };
        let inv = Change::BookUpdated { before, after }.invalidation();
        assert_eq!(inv.groups, vec![Group::BooksByAvailability]);
    }

    #[test]
    fn creating_and_deleting_a_book_touch_every_list_it_can_appear_in() {
        let book = book();
        let user = Uuid::now_v7();
        let borrow = Uuid::now_v7();
        for inv in [
            Change::BookCreated { book: book.clone() }.invalidation(),
            Change::BookDeleted {
                book: book.clone(),
                borrows: vec![(borrow, user)],
            }
            .invalidation(),
        ] {
            assert!(inv.entries.contains(&(Kind::Book, book.id)));
            assert!(inv
                .entries
                .contains(&(Kind::AuthorBookCount, book.author_id)));
            assert!(inv
                .entries
                .contains(&(Kind::CategoryBookCount, book.category_id)));
            for group in [
                Group::Books,
                Group::BooksByAvailability,
                Group::Search,
                Group::Statistics,
                Group::AuthorBooks(book.author_id),
            ] {
                assert!(inv.groups.contains(&group), "{group:?}");
            }
        }
        let deleted = Change::BookDeleted {
            book,
            borrows: vec![(borrow, user)],
        }
        .invalidation();
        assert!(deleted.entries.contains(&(Kind::Borrow, borrow)));
        assert!(deleted.groups.contains(&Group::UserBorrows(user)));
    }

    #[test]
    fn borrowing_and_returning_move_the_book_the_record_and_the_borrowers_lists() {
        let book = book();
        let record = record(&book);
        for change in [
            Change::BookBorrowed {
                record: record.clone(),
            },
            Change::BookReturned {
                record: record.clone(),
            },
        ] {
            let inv = change.invalidation();
            assert_eq!(
                inv.entries,
                vec![(Kind::Book, book.id), (Kind::Borrow, record.id)]
            );
            assert_eq!(
                inv.groups,
                vec![
                    Group::BooksByAvailability,
                    Group::UserBorrows(record.user_id),
                    Group::Statistics
                ]
            );
        }
    }

    #[test]
    fn author_changes() {
        let id = Uuid::now_v7();
        let created = Change::AuthorCreated { id }.invalidation();
        assert_eq!(created.groups, vec![Group::Authors, Group::Statistics]);
        let updated = Change::AuthorUpdated { id }.invalidation();
        assert_eq!(
            updated,
            Invalidation {
                entries: vec![(Kind::Author, id)],
                groups: vec![Group::Authors, Group::Search]
            }
        );
        let deleted = Change::AuthorDeleted { id }.invalidation();
        assert!(deleted.groups.contains(&Group::AuthorBooks(id)));
    }

    #[test]
    fn category_changes() {
        let id = Uuid::now_v7();
        for change in [
            Change::CategoryCreated { id },
            Change::CategoryDeleted { id },
        ] {
            let inv = change.invalidation();
            assert_eq!(
                inv.entries,
                vec![(Kind::Category, id), (Kind::CategoryBookCount, id)]
            );
            assert_eq!(inv.groups, vec![Group::Categories, Group::Statistics]);
        }
        let renamed = Change::CategoryUpdated { id }.invalidation();
        assert_eq!(renamed.groups, vec![Group::Categories, Group::Statistics]);
    }

    #[test]
    fn a_new_user_is_a_new_member_in_statistics() {
        let id = Uuid::now_v7();
        let inv = Change::UserCreated { id }.invalidation();
        assert_eq!(
            inv,
            Invalidation {
                entries: vec![(Kind::User, id)],
                groups: vec![Group::Statistics]
            }
        );
    }

    #[test]
    fn a_role_change_evicts_the_profile_and_recounts_members() {
        let id = Uuid::now_v7();
        let inv = Change::UserRoleChanged { id }.invalidation();
        assert_eq!(
            inv,
            Invalidation {
                entries: vec![(Kind::User, id)],
                groups: vec![Group::Statistics]
            }
        );
    }

    #[test]
    fn a_password_reset_evicts_only_the_profile_which_holds_the_token_generation() {
        let id = Uuid::now_v7();
        let inv = Change::UserPasswordChanged { id }.invalidation();
        assert_eq!(
            inv,
            Invalidation {
                entries: vec![(Kind::User, id)],
                groups: vec![]
            }
        );
    }

    #[test]
    fn removing_a_user_evicts_them_their_loans_and_their_lists() {
        let id = Uuid::now_v7();
        let loan = Uuid::now_v7();
        let inv = Change::UserDeleted {
            id,
            borrows: vec![loan],
        }
        .invalidation();
        assert_eq!(
            inv,
            Invalidation {
                entries: vec![(Kind::User, id), (Kind::Borrow, loan)],
                groups: vec![Group::UserBorrows(id), Group::Statistics]
            }
        );
    }
}
