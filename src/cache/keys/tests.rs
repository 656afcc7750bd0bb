use super::*;
use crate::redis::keyspace::{Keys, Persisted, SCHEMA_VERSION};
use crate::redis::Topology;

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
    assert_eq!(keys.parse_entity::<Kind>("other:v1:book:x"), None);
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
    let slot = |key: &str| crate::redis::slots::slot(key);
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
            assert!(key.starts_with(&format!("lib:v{SCHEMA_VERSION}:")), "{key}");
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
    // Search pages are ranged (see `matching`): they live in the ranged
    // twin of their slices' group, which every write that reaches them by
    // range or whole moves whole (`changes`).
    let (pages, slices_of) = (
        List::Search {
            text: &text,
            page: request,
        },
        List::SearchSlice { text: &text, slice },
    );
    let bucket = SearchBucket::of_term(&text);
    assert_eq!(pages.group(), Group::SearchIn(bucket));
    assert_eq!(slices_of.group(), Group::Search(bucket));
    assert_eq!(pages.kind(), slices_of.kind());
    let pairs = [
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
        Group::SearchIn(SearchBucket::Short),
        Group::SearchIn(SearchBucket::Trigram(7)),
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
