#[test]
fn a_span_meets_the_moves_that_can_change_its_page() {
    let t = |s: &str| Key::Title(s.into());
    let span = Span::of([t("Dune"), t("Babel"), t("Emma")]).unwrap();
    assert_eq!(
        (span.low.clone(), span.high.clone()),
        (t("Babel"), t("Emma"))
    );
    // Both ends before, or both after: the page keeps its books.
    assert!(!span.meets(&t("Aa"), &t("Ab")));
    assert!(!span.meets(&t("Zz"), &t("Faust")));
    // Into, out of, within, or across it; ends included.
    assert!(span.meets(&t("Aa"), &t("Cuckoo")));
    assert!(span.meets(&t("Dune"), &t("Zz")));
    assert!(span.meets(&t("Aa"), &t("Zz")));
    assert!(span.meets(&t("Zz"), &t("Emma")));
    assert!(span.meets(&t("Babel"), &t("Aa")));
    // Bytes, as SQLite's BINARY and PostgreSQL's C collations order:
    // lower case sorts after every capital.
    assert!(!span.meets(&t("apple"), &t("zebra")));
    let prices = Span::of([Key::Price(500), Key::Price(900)]).unwrap();
    assert!(!prices.meets(&Key::Price(100), &Key::Price(499)));
    assert!(prices.meets(&Key::Price(100), &Key::Price(500)));
    // Keys it cannot compare meet, to err towards an eviction.
    assert!(prices.meets(&t("a"), &t("b")));
    assert_eq!(Span::of(std::iter::empty()), None);
}
use super::*;
use crate::domain::Money;
use uuid::Uuid;

#[test]
fn a_page_reads_the_fields_of_its_order_and_its_filter() {
    let none = Filter::default();
    assert_eq!(
        BookFields::read_by(&none, SortOrder::TitleDesc),
        BookFields::TITLE
    );
    assert_eq!(
        BookFields::read_by(&none, SortOrder::PublishedDesc),
        BookFields::TITLE.with(BookFields::YEAR),
        "the title breaks ties between years"
    );
    assert_eq!(
        BookFields::read_by(&none, SortOrder::Newest),
        BookFields::NONE
    );
    let filter = Filter {
        author_id: Some(Uuid::nil()),
        max_price: Some(Money::from_cents(100)),
        ..Filter::default()
    };
    assert_eq!(
        BookFields::read_by(&filter, SortOrder::PriceAsc),
        BookFields::PRICE.with(BookFields::AUTHOR)
    );
}

#[test]
fn an_update_moves_exactly_the_groups_that_read_a_field_it_changed() {
    let moved: Vec<BookFields> = BookFields::groups_reading(BookFields::PRICE).collect();
    assert_eq!(moved.len(), 16, "half of the 32 sets read the price");
    assert!(moved
        .iter()
        .all(|reads| reads.intersects(BookFields::PRICE)));
    assert_eq!(BookFields::groups_reading(BookFields::NONE).count(), 0);
}

#[test]
fn field_sets_name_and_parse_back() {
    for fields in BookFields::all() {
        assert_eq!(BookFields::parse(&fields.letters()), Some(fields));
    }
    assert_eq!(BookFields::parse("pt"), None, "only in order");
    assert_eq!(BookFields::parse("tt"), None);
    assert_eq!(BookFields::parse("x"), None);
}

#[test]
fn buckets_name_and_parse_back() {
    for bucket in [
        SearchBucket::Short,
        SearchBucket::Trigram(0),
        SearchBucket::Trigram(4095),
    ] {
        assert_eq!(SearchBucket::parse(&bucket.name()), Some(bucket));
    }
    for bad in ["4096", "01", "-1", "", "shortx"] {
        assert_eq!(SearchBucket::parse(bad), None, "{bad}");
    }
}

fn term(text: &str) -> SearchText {
    SearchText::parse(text).expect("a valid term")
}

fn moved(text: &str) -> Vec<SearchBucket> {
    let mut out = Vec::new();
    SearchBucket::moved_by(text, &mut out);
    out
}

#[test]
fn a_change_moves_the_buckets_of_the_terms_it_can_match_and_few_others() {
    let buckets = moved("The Left Hand of Darkness");
    for hit in ["left", "hand of", "darkness", "the", "ness", "e l"] {
        assert!(
            buckets.contains(&SearchBucket::of_term(&term(hit))),
            "{hit}"
        );
    }
    assert!(buckets.contains(&SearchBucket::of_term(&term("le"))));
    // 23 distinct trigrams and the short terms' bucket, among 4097.
    assert!(buckets.len() <= 24, "{}", buckets.len());
    let unrelated = ["zqx", "solaris", "kindred", "ubik"]
        .iter()
        .filter(|miss| !buckets.contains(&SearchBucket::of_term(&term(miss))))
        .count();
    assert!(unrelated >= 3, "most unrelated terms stay warm");
}

#[test]
fn case_foldings_that_reach_ascii_are_covered() {
    // The Kelvin sign lower-cases to ASCII `k` (PostgreSQL with a libc
    // or ICU locale), `İ` to `i` (simple) or `i` and a combining dot.
    let kelvin = moved("\u{212A}indred");
    assert!(kelvin.contains(&SearchBucket::of_term(&term("kin"))));
    let dotted = moved("\u{130}stanbul");
    assert!(dotted.contains(&SearchBucket::of_term(&term("ist"))));
    assert!(dotted.contains(&SearchBucket::of_term(&term("i\u{307}s"))));
    // Turkish `I` → `ı`.
    let turkish = moved("IRMAK");
    assert!(turkish.contains(&SearchBucket::of_term(&term("\u{131}rm"))));
    assert!(turkish.contains(&SearchBucket::of_term(&term("irm"))));
}

/// The foldings a database may apply to a stored string before `LIKE`.
fn fold(kind: usize, text: &str) -> String {
    match kind {
        0 => text.to_ascii_lowercase(),
        1 => text.to_lowercase(),
        _ => text
            .chars()
            .map(|c| c.to_lowercase().next().expect("never empty"))
            .collect(),
    }
}

fn tricky_text() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let chars = prop_oneof![
        proptest::char::range('a', 'e'),
        proptest::char::range('A', 'E'),
        Just('I'),
        Just('i'),
        Just('K'),
        Just(' '),
        Just('%'),
        Just('_'),
        Just('\u{212A}'), // Kelvin sign
        Just('\u{130}'),  // İ
        Just('\u{131}'),  // ı
        Just('\u{307}'),  // combining dot above
        Just('\u{3A3}'),  // Σ
        Just('\u{DF}'),   // ß
        Just('\u{1E9E}'), // ẞ
        Just('\u{212B}'), // Ångström sign
        Just('\u{141}'),  // Ł
        Just('\u{142}'),  // ł
        Just('\u{1F600}'),
    ];
    proptest::collection::vec(chars, 0..12).prop_map(|chars| chars.into_iter().collect())
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
    /// If the database can match a term against a string under any of
    /// the foldings, the term's bucket is among those the string moves.
    #[test]
    fn a_term_that_matches_under_any_folding_has_its_bucket_moved(
        text in tricky_text(),
        kind in 0usize..3,
        start in 0usize..16,
        len in 1usize..8,
    ) {
        let folded: Vec<char> = fold(kind, &text).chars().collect();
        let start = start.min(folded.len());
        let end = (start + len).min(folded.len());
        let piece: String = folded[start..end].iter().collect();
        if let Ok(term) = SearchText::parse(&piece) {
            for kind in 0..3 {
                if fold(kind, &text).contains(term.as_str()) {
                    let bucket = SearchBucket::of_term(&term);
                    proptest::prop_assert!(
                        moved(&text).contains(&bucket),
                        "{:?} matches {:?} folded by {} but {:?} is not moved",
                        term.as_str(), text, kind, bucket
                    );
                }
            }
        }
    }
}
