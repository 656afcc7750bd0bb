use super::*;
use crate::domain::SearchText;
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

fn listed(book: book::Model) -> Listed {
    Listed {
        book,
        author: "Stanisław Lem".into(),
    }
}

fn updated(before: book::Model, after: book::Model) -> Invalidation {
    Change::BookUpdated {
        before: listed(before),
        after: listed(after),
    }
    .invalidation()
}

/// The title and price `books` page groups an invalidation moves whole.
fn ordered_groups(inv: &Invalidation) -> Vec<Group> {
    inv.groups
        .iter()
        .copied()
        .filter(|group| matches!(group, Group::BooksIn(..)))
        .collect()
}

/// The moves of `books` pages (not of search pages).
fn book_moves(inv: &Invalidation) -> Vec<&Move> {
    inv.moves
        .iter()
        .filter(|moved| matches!(moved.groups[0], Group::BooksIn(..)))
        .collect()
}

#[test]
fn a_retitle_moves_a_range_of_every_title_page_group_and_no_title_group_whole() {
    let before = book();
    let mut after = before.clone();
    after.title = "Return from the Stars".into();
    let inv = updated(before, after);
    assert!(ordered_groups(&inv).is_empty(), "{:?}", inv.groups);
    assert_eq!(book_moves(&inv).len(), 1, "no price moved");
    let moved = book_moves(&inv)[0];
    assert_eq!(moved.order, Ranged::Title);
    assert_eq!(moved.from, Key::Title("Solaris".into()));
    assert_eq!(moved.to, Key::Title("Return from the Stars".into()));
    assert_eq!(
        moved.groups.len(),
        BookFields::filter_sets().count(),
        "every filter keeps a retitled book in or out"
    );
}

#[test]
fn a_retitle_moves_a_range_of_the_search_pages_of_terms_only_the_authors_name_matches() {
    let before = book();
    let mut after = before.clone();
    after.title = "Return from the Stars".into();
    let inv = updated(before, after);
    let bucket = |term: &str| SearchBucket::of_term(&SearchText::parse(term).unwrap());
    // "lem" is in the name alone: the book stays in its results, so its
    // pages move by range and its slices whole.
    let lem = bucket("lem");
    assert!(inv.groups.contains(&Group::Search(lem)));
    assert!(!inv.groups.contains(&Group::SearchIn(lem)));
    let moved: Vec<&Move> = inv
        .moves
        .iter()
        .filter(|moved| moved.groups.contains(&Group::SearchIn(lem)))
        .collect();
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0].order, Ranged::Title);
    assert_eq!(
        (&moved[0].from, &moved[0].to),
        (
            &Key::Title("Solaris".into()),
            &Key::Title("Return from the Stars".into())
        )
    );
    // Terms of either title: the book may enter or leave, so whole.
    for term in ["solaris", "stars", "so"] {
        assert!(
            inv.groups.contains(&Group::SearchIn(bucket(term))),
            "{term}"
        );
        assert!(inv.groups.contains(&Group::Search(bucket(term))), "{term}");
    }
    let whole: std::collections::HashSet<Group> = inv.groups.iter().copied().collect();
    assert!(inv.ranged_groups().all(|group| !whole.contains(&group)));
    // Whatever reaches a term's pages moves its slices whole.
    for group in inv.groups.iter().copied().chain(inv.ranged_groups()) {
        if let Group::SearchIn(bucket) = group {
            assert!(whole.contains(&Group::Search(bucket)), "{bucket:?}");
        }
    }
}

#[test]
fn a_price_change_moves_price_filtered_groups_whole_and_a_range_of_the_others() {
    let before = book();
    let mut after = before.clone();
    after.price_cents = 990;
    let inv = updated(before, after);
    for group in ordered_groups(&inv) {
        let Group::BooksIn(_, filter) = group else {
            unreachable!()
        };
        assert!(filter.intersects(BookFields::PRICE), "{group:?}");
    }
    // Title pages filtered on price, and price pages filtered on it.
    assert_eq!(ordered_groups(&inv).len(), 2 * 8);
    assert_eq!(inv.moves.len(), 1);
    let moved = &inv.moves[0];
    assert_eq!(moved.order, Ranged::Price);
    assert_eq!(
        (&moved.from, &moved.to),
        (&Key::Price(1450), &Key::Price(990))
    );
    assert!(moved
        .groups
        .iter()
        .all(|group| matches!(group, Group::BooksIn(Ranged::Price, f) if !f.intersects(BookFields::PRICE))));
}

#[test]
fn a_new_book_moves_every_title_and_price_group_whole() {
    let inv = Change::BookCreated {
        book: listed(book()),
    }
    .invalidation();
    assert_eq!(ordered_groups(&inv).len(), 2 * 16);
    assert!(inv.moves.is_empty());
}

#[test]
fn merging_keeps_a_group_whole_if_either_moves_it_whole() {
    let before = book();
    let mut retitled = before.clone();
    retitled.title = "Eden".into();
    let mut merged = updated(before.clone(), retitled);
    let created = Change::BookCreated {
        book: listed(book()),
    }
    .invalidation();
    merged.merge(&created);
    assert!(merged.moves.is_empty(), "every title group moves whole");
    assert_eq!(ordered_groups(&merged).len(), 2 * 16);
    let back = Invalidation::from_outbox(&merged.to_outbox()).unwrap();
    assert_eq!(back, merged);
}

#[test]
fn hardened_title_moves_become_whole_groups() {
    let before = book();
    let mut after = before.clone();
    after.title = "Eden".into();
    after.price_cents = 100;
    let mut inv = updated(before, after);
    inv.harden(Ranged::Title);
    assert!(inv.moves.iter().all(|moved| moved.order == Ranged::Price));
    assert!(
        ordered_groups(&inv)
            .iter()
            .filter(|group| group.ranged() == Some(Ranged::Title))
            .count()
            == 16
    );
    let whole: std::collections::HashSet<Group> = inv.groups.iter().copied().collect();
    assert!(inv.ranged_groups().all(|group| !whole.contains(&group)));
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

/// The `books` page groups among `groups`.
fn book_pages(groups: &[Group]) -> Vec<BookFields> {
    groups
        .iter()
        .filter_map(|group| match group {
            Group::Books(reads) => Some(*reads),
            _ => None,
        })
        .collect()
}

/// Whether the results of searching `term` are moved by `inv`.
fn moves_search(inv: &Invalidation, term: &str) -> bool {
    let term = SearchText::parse(term).expect("a valid term");
    inv.groups
        .contains(&Group::Search(SearchBucket::of_term(&term)))
}

fn moves_any_search(inv: &Invalidation) -> bool {
    inv.groups
        .iter()
        .any(|group| matches!(group, Group::Search(_)))
}

#[test]
fn an_isbn_only_update_costs_one_entity_eviction() {
    let before = book();
    let after = book::Model {
        isbn: "9780306406157".into(),
        ..before.clone()
    };
    assert_eq!(
        updated(before.clone(), after),
        Invalidation {
            entries: vec![(Kind::Book, before.id)],
            groups: vec![],
            moves: vec![]
        }
    );
}

#[test]
fn a_title_change_moves_title_ordered_pages_searches_it_can_match_and_the_authors_books() {
    let before = book();
    let after = book::Model {
        title: "Eden".into(),
        ..before.clone()
    };
    let inv = updated(before.clone(), after);
    let pages = book_pages(&inv.groups);
    assert_eq!(pages.len(), 16, "the 16 sets of fields with the title");
    assert!(pages
        .iter()
        .all(|reads| reads.intersects(BookFields::TITLE)));
    assert!(
        !pages.contains(&BookFields::PRICE),
        "price-ordered pages stay"
    );
    assert!(
        !pages.contains(&BookFields::NONE),
        "newest-first pages stay"
    );
    assert!(pages.contains(&BookFields::TITLE.with(BookFields::YEAR)));
    assert!(inv.groups.contains(&Group::BooksByAvailability));
    assert!(inv.groups.contains(&Group::AuthorBooks(before.author_id)));
    for term in ["solaris", "sol", "eden", "lem", "stanisław", "so"] {
        assert!(moves_search(&inv, term), "{term}");
    }
    let warm = ["kindred", "ubik", "dune", "babel", "foundation", "zqx"]
        .iter()
        .filter(|term| !moves_search(&inv, term))
        .count();
    assert!(
        warm >= 5,
        "searches for other words stay warm ({warm} of 6)"
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
        before: listed(before.clone()),
        after: Listed {
            book: after.clone(),
            author: "Octavia E. Butler".into(),
        },
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
    ] {
        assert!(inv.groups.contains(&group), "{group:?}");
    }
    let pages = book_pages(&inv.groups);
    assert!(pages.contains(&BookFields::AUTHOR));
    assert!(pages.contains(&BookFields::CATEGORY));
    assert!(!pages.contains(&BookFields::TITLE), "no order moved");
    // Results for either name move; those for its title keep their order.
    assert!(moves_search(&inv, "lem") && moves_search(&inv, "butler"));
    assert!(!moves_search(&inv, "solaris"));
}

#[test]
fn a_price_change_moves_price_pages_and_statistics_but_not_search() {
    let before = book();
    let after = book::Model {
        price_cents: 999,
        ..before.clone()
    };
    let inv = updated(before, after);
    let pages = book_pages(&inv.groups);
    assert_eq!(pages.len(), 16);
    assert!(pages
        .iter()
        .all(|reads| reads.intersects(BookFields::PRICE)));
    assert!(!pages.contains(&BookFields::TITLE));
    assert!(inv.groups.contains(&Group::BooksByAvailability));
    assert!(inv.groups.contains(&Group::Statistics));
    assert!(!moves_any_search(&inv));
}

#[test]
fn a_year_change_moves_year_ordered_and_year_filtered_pages_only() {
    let before = book();
    let after = book::Model {
        published_year: None,
        ..before.clone()
    };
    let inv = updated(before, after);
    let pages = book_pages(&inv.groups);
    assert!(pages.iter().all(|reads| reads.intersects(BookFields::YEAR)));
    assert!(pages.contains(&BookFields::YEAR.with(BookFields::TITLE)));
    assert!(!pages.contains(&BookFields::TITLE));
    assert!(!moves_any_search(&inv));
    assert!(!inv.groups.contains(&Group::Statistics));
}

#[test]
fn a_copies_change_only_moves_availability_pages() {
    let before = book();
    let after = book::Model {
        copies_total: 5,
        copies_available: 5,
        ..before.clone()
    };
    assert_eq!(
        updated(before, after).groups,
        vec![Group::BooksByAvailability]
    );
}

#[test]
fn creating_and_deleting_a_book_touch_every_list_it_can_appear_in() {
    let book = book();
    let user = Uuid::now_v7();
    let borrow = Uuid::now_v7();
    for inv in [
        Change::BookCreated {
            book: listed(book.clone()),
        }
        .invalidation(),
        Change::BookDeleted {
            book: listed(book.clone()),
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
        assert_eq!(
            book_pages(&inv.groups).len(),
            usize::from(BookFields::COUNT),
            "every total moved"
        );
        for group in [
            Group::BooksByAvailability,
            Group::Statistics,
            Group::AuthorBooks(book.author_id),
            Group::Search(SearchBucket::Short),
        ] {
            assert!(inv.groups.contains(&group), "{group:?}");
        }
        for term in ["solaris", "laris", "lem", "ław"] {
            assert!(moves_search(&inv, term), "{term}");
        }
        assert!(!moves_search(&inv, "kindred"));
    }
    let deleted = Change::BookDeleted {
        book: listed(book),
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
    let deleted = Change::AuthorDeleted { id }.invalidation();
    assert!(deleted.groups.contains(&Group::AuthorBooks(id)));
    assert!(
        !moves_any_search(&deleted),
        "an author with books cannot go"
    );
}

#[test]
fn renaming_an_author_moves_the_author_list_and_searches_for_either_name() {
    let id = Uuid::now_v7();
    let renamed = Change::AuthorUpdated {
        id,
        before: "Octavia Butler".into(),
        after: "Octavia E. Butler".into(),
    }
    .invalidation();
    assert_eq!(renamed.entries, vec![(Kind::Author, id)]);
    assert_eq!(renamed.groups[0], Group::Authors);
    for term in ["octavia", "e. b", "butler", "oc"] {
        assert!(moves_search(&renamed, term), "{term}");
    }
    assert!(!moves_search(&renamed, "solaris"));
    assert!(!renamed
        .groups
        .iter()
        .any(|group| matches!(group, Group::Books(_) | Group::Statistics)));
}

#[test]
fn a_new_bio_evicts_only_the_author() {
    let id = Uuid::now_v7();
    let inv = Change::AuthorUpdated {
        id,
        before: "Ted Chiang".into(),
        after: "Ted Chiang".into(),
    }
    .invalidation();
    assert_eq!(
        inv,
        Invalidation {
            entries: vec![(Kind::Author, id)],
            groups: vec![],
            moves: vec![]
        }
    );
}

#[test]
fn merging_keeps_each_entry_and_group_once_in_order() {
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let mut merged = Change::AuthorCreated { id: a }.invalidation();
    merged.merge(&Change::AuthorCreated { id: b }.invalidation());
    merged.merge(&Change::AuthorCreated { id: a }.invalidation());
    assert_eq!(
        merged.entries,
        vec![
            (Kind::Author, a),
            (Kind::AuthorBookCount, a),
            (Kind::Author, b),
            (Kind::AuthorBookCount, b)
        ]
    );
    assert_eq!(merged.groups, vec![Group::Authors, Group::Statistics]);
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
            groups: vec![Group::Statistics],
            moves: vec![]
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
            groups: vec![Group::Statistics],
            moves: vec![]
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
            groups: vec![],
            moves: vec![]
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
            groups: vec![Group::UserBorrows(id), Group::Statistics],
            moves: vec![]
        }
    );
}
