use super::*;

fn value(n: u64) -> Value {
    Some(Arc::new(n))
}

fn key(name: &str) -> Key {
    Key::List(name.into())
}

fn read(store: &Store, name: &str) -> Option<u64> {
    store
        .get(&key(name))
        .flatten()
        .and_then(|v| v.downcast_ref::<u64>().copied())
}

fn entry(n: u64) -> Entry {
    Entry::new(value(n), 8, Duration::from_secs(60), Instant::now())
}

#[test]
fn a_fill_that_began_before_an_invalidation_does_not_land() {
    let store = Store::new(1 << 20, Duration::from_secs(1));
    store.trust_until(Instant::now() + Duration::from_secs(3600));
    let ticket = store.ticket(&key("k"));
    store.invalidate(&key("k"));
    assert!(!store.insert(key("k"), ticket, entry(1)));
    assert_eq!(read(&store, "k"), None);
    let ticket = store.ticket(&key("k"));
    assert!(store.insert(key("k"), ticket, entry(2)));
    assert_eq!(read(&store, "k"), Some(2));
}

#[test]
fn a_move_evicts_the_watched_pages_it_meets_and_those_not_yet_filled() {
    use super::super::matching::{BookFields, Ranged};
    let store = Store::new(1 << 20, Duration::from_secs(1));
    store.trust_until(Instant::now() + Duration::from_secs(3600));
    let group = Group::BooksIn(Ranged::Title, BookFields::NONE);
    let t = |s: &str| SortKey::Title(s.into());
    let span = |a: &str, b: &str| Span::of([t(a), t(b)]);
    let fill = |name: &str, span: Option<Span>| {
        store.watch(group, &key(name));
        let ticket = store.ticket(&key(name));
        store.insert_ranged(key(name), ticket, entry(1), group, span)
    };
    assert!(fill("a-c", span("A", "C")));
    assert!(fill("d-f", span("D", "F")));
    assert!(fill("past the end", None));
    store.watch(group, &key("loading"));
    let loading = store.ticket(&key("loading"));
    let before = store.global_ticket();
    let evicted = store.move_range(&[group], &t("B"), &t("Bz"));
    assert_eq!(read(&store, "a-c"), None, "the move is within its span");
    assert_eq!(read(&store, "d-f"), Some(1), "out of its reach");
    assert_eq!(read(&store, "past the end"), Some(1), "it holds no book");
    assert!(!store.unchanged_since(before), "kept answers see it");
    let mut evicted: Vec<String> = evicted.iter().map(|k| format!("{k:?}")).collect();
    evicted.sort();
    assert_eq!(
        evicted,
        [format!("{:?}", key("a-c")), format!("{:?}", key("loading"))]
    );
    // The load that began before the move lands only if the move meets
    // none of what it loaded (here it does): a write it may have missed.
    let stamp = store.stamp(&key("loading"), store.global_ticket());
    assert!(stamp.is_some());
    assert!(!store.insert_ranged(key("loading"), loading, entry(2), group, span("A", "C")));
    assert_eq!(read(&store, "loading"), None);
    assert!(
        !store.holds(stamp.unwrap()),
        "an answer that read it while it loaded is not kept"
    );
    // The refused page is watched no more: a fill must watch again first.
    let unwatched = store.ticket(&key("loading"));
    assert!(!store.insert_ranged(key("loading"), unwatched, entry(2), group, span("X", "Y")));
    let unwatched = store.ticket(&key("a-c"));
    assert!(!store.insert_ranged(key("a-c"), unwatched, entry(2), group, span("A", "C")));
    // Moving the group whole forgets its watches.
    store.bump_group(group, None);
    assert_eq!(store.watched(), 0);
    assert!(store.move_range(&[group], &t("A"), &t("Z")).is_empty());
}

#[test]
fn a_page_that_loads_while_moves_arrive_lands_if_none_meets_what_it_loaded() {
    use super::super::matching::{BookFields, Ranged};
    let store = Store::new(1 << 20, Duration::from_secs(1));
    store.trust_until(Instant::now() + Duration::from_secs(3600));
    let group = Group::BooksIn(Ranged::Title, BookFields::NONE);
    let t = |s: &str| SortKey::Title(s.into());
    store.watch(group, &key("page 1"));
    let ticket = store.ticket(&key("page 1"));
    let since = store.global_ticket();
    // A stream of retitles far past the page, heard while it loads.
    for n in 0..10 {
        let moved = store.move_range(&[group], &t(&format!("R{n}")), &t(&format!("S{n}")));
        assert_eq!(
            moved,
            [key("page 1")],
            "its flight is not joined after a write"
        );
    }
    let span = Span::of([t("A"), t("B")]);
    assert!(store.insert_ranged(key("page 1"), ticket, entry(1), group, span));
    assert_eq!(read(&store, "page 1"), Some(1));
    assert!(
        store.stamp(&key("page 1"), since).is_some(),
        "an answer built on it while the moves arrived is kept"
    );
    // Filled, it is evicted by the moves that meet it alone.
    assert!(store.move_range(&[group], &t("R"), &t("S")).is_empty());
    assert_eq!(
        store.move_range(&[group], &t("Aa"), &t("Z")),
        [key("page 1")]
    );
    assert_eq!(read(&store, "page 1"), None);
}

#[test]
fn priming_is_skipped_after_any_invalidation() {
    let store = Store::new(1 << 20, Duration::from_secs(1));
    let ticket = store.global_ticket();
    store.invalidate(&Key::Entity(Kind::Book, Uuid::now_v7()));
    assert!(!store.prime(key("other"), ticket, entry(1)));
    assert!(store.prime(key("other"), store.global_ticket(), entry(1)));
}

#[test]
fn untrusted_entries_expire_after_the_cap() {
    let store = Store::new(1 << 20, Duration::from_millis(50));
    let ticket = store.ticket(&key("k"));
    store.insert(key("k"), ticket, entry(1));
    assert_eq!(read(&store, "k"), Some(1));
    std::thread::sleep(Duration::from_millis(80));
    assert_eq!(
        read(&store, "k"),
        None,
        "older than the cap while untrusted"
    );
    store.trust_until(Instant::now() + Duration::from_secs(3600));
    assert_eq!(read(&store, "k"), Some(1), "trusted again: TTL rules");
}

#[test]
fn generations_only_move_forward_and_clear_forgets_them() {
    let store = Store::new(1 << 20, Duration::from_secs(1));
    store.trust_until(Instant::now() + Duration::from_secs(3600));
    let authors = Group::Authors;
    store.learn_generation(authors, 5);
    store.learn_generation(authors, 3);
    assert_eq!(store.group(&authors), (0, Some(5)));
    store.bump_group(authors, Some(6));
    assert_eq!(store.group(&authors), (1, Some(6)));
    store.clear();
    assert_eq!(store.group(&authors), (2, None));
}

#[test]
fn the_group_state_is_bounded_however_many_groups_are_seen() {
    let store = Store::new(1 << 20, Duration::from_secs(1));
    for _ in 0..3 * MAX_GROUPS {
        store.learn_generation(Group::UserBorrows(Uuid::now_v7()), 1);
    }
    assert!(
        store.group_count() <= MAX_GROUPS,
        "{} groups kept",
        store.group_count()
    );
}

#[test]
fn a_forgotten_group_never_again_reads_a_counter_its_old_entries_used() {
    let store = Store::new(1 << 20, Duration::from_secs(1));
    store.trust_until(Instant::now() + Duration::from_secs(3600));
    let member = Group::UserBorrows(Uuid::now_v7());
    let mut used = vec![store.group_local(&member)];
    store.bump_group(member, Some(1));
    used.push(store.group_local(&member));
    // Many other members crowd it out of the group state.
    for _ in 0..MAX_GROUPS {
        store.learn_generation(Group::UserBorrows(Uuid::now_v7()), 1);
    }
    assert_eq!(store.group(&member).1, None, "it was forgotten");
    let now = store.group_local(&member);
    assert!(!used.contains(&now), "{now} was used before: {used:?}");
}

#[test]
fn the_byte_bound_evicts() {
    let store = Store::new(10_000, Duration::from_secs(1));
    for i in 0..1000 {
        let name = key(&format!("key-{i}"));
        let ticket = store.ticket(&name);
        store.insert(
            name,
            ticket,
            Entry::new(value(i), 100, Duration::from_secs(60), Instant::now()),
        );
    }
    assert!(store.weighted_size() <= 10_000, "{}", store.weighted_size());
}

#[test]
fn the_watches_of_all_ranged_groups_together_stay_bounded() {
    use super::super::matching::{BookFields, Ranged};
    let store = Store::new(1 << 20, Duration::from_secs(1));
    let fields = [
        BookFields::TITLE,
        BookFields::PRICE,
        BookFields::YEAR,
        BookFields::AUTHOR,
        BookFields::CATEGORY,
    ];
    // 2 orders x 32 field sets: 64 groups, each watched up to its own cap.
    let mut groups = Vec::new();
    for ranged in [Ranged::Title, Ranged::Price] {
        for set in 0..32u8 {
            let chosen = fields
                .iter()
                .enumerate()
                .filter(|(bit, _)| set & (1 << bit) != 0)
                .fold(BookFields::NONE, |all, (_, field)| all.with(*field));
            groups.push(Group::BooksIn(ranged, chosen));
        }
    }
    for (g, group) in groups.iter().enumerate() {
        for page in 0..MAX_WATCHED - 1 {
            store.watch(*group, &key(&format!("{g}:{page}")));
        }
    }
    assert!(
        store.watched() <= MAX_WATCHED_IN_ALL + MAX_WATCHED,
        "{} watches",
        store.watched()
    );
}
