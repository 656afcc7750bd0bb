//! What a cached list reads, and which lists a change can reach: the two
//! halves of invalidating no more than a write changes, and never less.
//!
//! # Book pages: the fields they read
//! A `books` page holds ids in an order and the total of its filter. Its
//! answer can change only when a book enters or leaves its filter, or moves
//! in its order, so only through the fields its filter and its order read
//! ([`BookFields::read_by`]). Pages are grouped by that set of fields, and
//! an update moves only the groups that read a field it changed
//! ([`BookFields::groups_reading`]). The item fields a page shows are
//! entities, evicted by id: they move no group. The `available` filter
//! reads the copies, which every borrow and return change, so those pages
//! keep a group of their own (`Group::BooksByAvailability`).
//!
//! # Title and price pages: the keys they span
//! A `books` page in title or price order holds the books whose sort keys
//! fall in one window of that order. A book whose title (or price) moves
//! from k1 to k2 shifts only the books between k1 and k2, so a page whose
//! window ([`Span`]) does not meet [k1, k2] is unchanged: neither its items
//! nor how many come before it move. Such pages are grouped by order and by
//! the fields their filter reads ([`Ranged`], `Group::BooksIn`); a change
//! of a filtered field moves the group (a book may enter or leave it), a
//! change of the order's own key only moves a range ([`super::changes::Move`]),
//! which evicts the pages whose span it meets (see `l1`). Keys are compared
//! as Rust compares them: titles by their bytes, as SQLite's `BINARY` and
//! PostgreSQL's `C` collations do; under any other collation title moves
//! are made whole-group moves before they are published (`harden`).
//!
//! # Search results: the trigrams a term can match
//! A search for term t matches a book when t occurs in its title or its
//! author's name as the database folds case: `lower(x) LIKE '%t%'`, where
//! t was lower-cased by Rust. A result page can change only if t occurs in
//! one of the strings a write changed (the old or new title, the old or new
//! author name, or the name of the author of a retitled book, whose place
//! in the title order moved). So pages are grouped by a bucket of their
//! term's first trigram ([`SearchBucket::of_term`]), and a write moves the
//! bucket of every trigram the changed strings can show
//! ([`SearchBucket::moved_by`]). Terms shorter than three characters have
//! one bucket, which every such write moves.
//!
//! A retitle changes what a term matches only through the titles: for a
//! bucket of the author's name that no trigram of either title reaches, no
//! term of it matches either title, so the book is in its results before
//! and after alike (or in neither), and only its place in their title
//! order moves. Search result pages are then ranged like title pages
//! (`Group::SearchIn`): the retitle is sent as a move from the old title to
//! the new, and evicts only the pages whose span it meets. Connection
//! slices of search results (`Group::Search`), which a cursor places,
//! move whole.
//!
//! The trigrams of a changed string must cover every folding a database
//! may apply, or a match in the database would miss its bucket:
//! - ASCII only: SQLite's `lower()`, and PostgreSQL's under the C locale;
//! - Unicode simple case mapping, one character to one (PostgreSQL with a
//!   libc locale such as `C.UTF-8` or `en_US.UTF-8`: `İ` becomes `i`);
//! - Unicode full case mapping, which can lengthen text (Rust, ICU: `İ`
//!   becomes `i` and a combining dot), and the Turkish and Azeri `I` → `ı`.
//!
//! Trigrams are taken over symbols: an ASCII character is itself, and every
//! other character is one placeholder. Under every folding above an ASCII
//! character of the string folds to its ASCII lower case (or `ı`, a
//! placeholder), and any other character to a placeholder, or to what its
//! full or simple lower case is (`K`, the Kelvin sign, folds to ASCII `k`).
//! So for each character the string's trigrams take every one of those
//! alternatives, and a term's first trigram, as symbols, is a trigram of
//! the string under whichever folding the database applied: a property
//! test below checks it for all three.
use crate::db::books::{Filter, SortOrder};
use crate::domain::cursor::Key;
use crate::domain::SearchText;
use std::cmp::Ordering;

/// A set of the book fields a `books` page's filter and order read, among
/// those an update can change. Creation time (the `NEWEST` order) never
/// changes, and `available` pages are grouped apart.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct BookFields(u8);

impl BookFields {
    /// No field: unfiltered pages in `NEWEST` order change only when a
    /// book is created or deleted.
    pub const NONE: Self = Self(0);
    /// The title: title orders, and `PUBLISHED_DESC`, whose tiebreak it is.
    pub const TITLE: Self = Self(1);
    /// The price: price orders and the price filters.
    pub const PRICE: Self = Self(1 << 1);
    /// The publication year: `PUBLISHED_DESC` and the year filters.
    pub const YEAR: Self = Self(1 << 2);
    /// The author: the author filter.
    pub const AUTHOR: Self = Self(1 << 3);
    /// The category: the category filter.
    pub const CATEGORY: Self = Self(1 << 4);
    /// Every field, in the order of their letters in a group's name.
    const NAMED: [(Self, char); 5] = [
        (Self::TITLE, 't'),
        (Self::PRICE, 'p'),
        (Self::YEAR, 'y'),
        (Self::AUTHOR, 'a'),
        (Self::CATEGORY, 'c'),
    ];
    /// How many distinct sets there are: every subset of the five fields.
    pub const COUNT: u8 = 1 << 5;

    /// The fields a page with `filter` (without `available`) in `order` reads.
    pub fn read_by(filter: &Filter, order: SortOrder) -> Self {
        let fields = match order {
            SortOrder::TitleAsc | SortOrder::TitleDesc => Self::TITLE,
            SortOrder::PriceAsc | SortOrder::PriceDesc => Self::PRICE,
            SortOrder::PublishedDesc => Self::YEAR.with(Self::TITLE),
            SortOrder::Newest => Self::NONE,
        };
        fields.with(Self::filtered_by(filter))
    }

    /// The fields `filter` (without `available`) reads.
    pub fn filtered_by(filter: &Filter) -> Self {
        let mut fields = Self::NONE;
        let reads = [
            (filter.author_id.is_some(), Self::AUTHOR),
            (filter.category_id.is_some(), Self::CATEGORY),
            (
                filter.min_price.is_some() || filter.max_price.is_some(),
                Self::PRICE,
            ),
            (
                filter.published_from.is_some() || filter.published_to.is_some(),
                Self::YEAR,
            ),
        ];
        for (read, field) in reads {
            if read {
                fields = fields.with(field);
            }
        }
        fields
    }

    /// Both sets together.
    pub const fn with(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Whether the two sets share a field.
    pub const fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    /// Every set of fields a page can read.
    pub fn all() -> impl Iterator<Item = Self> {
        (0..Self::COUNT).map(Self)
    }

    /// Every set of fields a filter can read (the title is never filtered on).
    pub fn filter_sets() -> impl Iterator<Item = Self> {
        Self::all().filter(|fields| !fields.intersects(Self::TITLE))
    }

    /// Every set of fields that reads at least one of `changed`: the page
    /// groups an update of those fields moves.
    pub fn groups_reading(changed: Self) -> impl Iterator<Item = Self> {
        Self::all().filter(move |reads| reads.intersects(changed))
    }

    /// The set's letters in a group's name (`tp` for title and price; empty
    /// for none).
    pub fn letters(self) -> String {
        Self::NAMED
            .iter()
            .filter(|(field, _)| self.intersects(*field))
            .map(|(_, letter)| *letter)
            .collect()
    }

    /// Reads back [`BookFields::letters`]; `None` unless they are in order.
    pub fn parse(letters: &str) -> Option<Self> {
        let mut fields = Self::NONE;
        for letter in letters.chars() {
            let (field, _) = Self::NAMED.iter().find(|(_, named)| *named == letter)?;
            fields = fields.with(*field);
        }
        (fields.letters() == letters).then_some(fields)
    }
}

/// An order whose pages are invalidated by the range a book moves through,
/// not whole (see the module docs).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Ranged {
    /// `TITLE_ASC` and `TITLE_DESC`.
    Title,
    /// `PRICE_ASC` and `PRICE_DESC`.
    Price,
}

impl Ranged {
    /// Every ranged order.
    pub const ALL: [Self; 2] = [Self::Title, Self::Price];

    /// The ranged order `order` is, if it is one.
    pub fn of(order: SortOrder) -> Option<Self> {
        match order {
            SortOrder::TitleAsc | SortOrder::TitleDesc => Some(Self::Title),
            SortOrder::PriceAsc | SortOrder::PriceDesc => Some(Self::Price),
            SortOrder::PublishedDesc | SortOrder::Newest => None,
        }
    }

    /// The field whose change moves a book in this order.
    pub fn field(self) -> BookFields {
        match self {
            Self::Title => BookFields::TITLE,
            Self::Price => BookFields::PRICE,
        }
    }

    /// Its letter in a group's name.
    pub fn letter(self) -> char {
        match self {
            Self::Title => 't',
            Self::Price => 'p',
        }
    }

    /// Reads back [`Ranged::letter`].
    pub fn parse(letter: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|order| letter.len() == 1 && letter.starts_with(order.letter()))
    }

    /// A book's key in this order.
    pub fn key(self, book: &entity::book::Model) -> Key {
        match self {
            Self::Title => Key::Title(book.title.clone()),
            Self::Price => Key::Price(book.price_cents),
        }
    }
}

/// The first and last sort keys of a page's items: the window a move must
/// meet to change it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Span {
    /// The lowest key (the first book's in an ascending order).
    pub low: Key,
    /// The highest.
    pub high: Key,
}

/// Two keys of one ranged order compared as the database orders them
/// (titles by bytes); `None` for keys of different kinds.
fn compare(a: &Key, b: &Key) -> Option<Ordering> {
    match (a, b) {
        (Key::Title(a), Key::Title(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
        (Key::Price(a), Key::Price(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

impl Span {
    /// The span of `keys`; `None` for no keys (an empty page, which no
    /// move changes: only its total could, and moves keep totals).
    pub fn of(keys: impl IntoIterator<Item = Key>) -> Option<Self> {
        let mut span: Option<Self> = None;
        for key in keys {
            span = Some(match span {
                None => Self {
                    low: key.clone(),
                    high: key,
                },
                Some(Self { low, high }) => {
                    let low = if compare(&key, &low) == Some(Ordering::Less) {
                        key.clone()
                    } else {
                        low
                    };
                    let high = if compare(&key, &high) == Some(Ordering::Greater) {
                        key
                    } else {
                        high
                    };
                    Self { low, high }
                }
            });
        }
        span
    }

    /// Whether a book moving from `from` to `to` can change a page of this
    /// span: the closed ranges meet. Ties count as meeting (the id, which
    /// breaks them, is not compared), and so do keys that cannot be
    /// compared: erring only towards an eviction.
    pub fn meets(&self, from: &Key, to: &Key) -> bool {
        let (first, last) = match compare(from, to) {
            Some(Ordering::Greater) => (to, from),
            Some(_) => (from, to),
            None => return true,
        };
        let starts_after = compare(first, &self.high) == Some(Ordering::Greater);
        let ends_before = compare(last, &self.low) == Some(Ordering::Less);
        let comparable = compare(first, &self.high).is_some() && compare(last, &self.low).is_some();
        !comparable || !(starts_after || ends_before)
    }
}

/// Which search result pages a group holds: by the first trigram of their
/// term, hashed into [`SearchBucket::TRIGRAM_BUCKETS`], or the terms too
/// short to have one.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum SearchBucket {
    /// Terms of one or two characters: moved by every change to a title or
    /// an author's name.
    Short,
    /// Terms whose first trigram hashes here.
    Trigram(u16),
}

/// A character that is not ASCII, as a symbol: every such character is
/// the same one (a byte no ASCII character is).
const OTHER: u8 = 0x80;

/// One character as a symbol (ASCII is itself, anything else [`OTHER`]).
fn symbol(c: char) -> u8 {
    if c.is_ascii() {
        c as u8
    } else {
        OTHER
    }
}

/// What one character of a stored string can fold to, as symbols, under
/// any of the foldings the module docs list. At most two symbols each.
fn foldings(c: char) -> Vec<Vec<u8>> {
    if c.is_ascii() {
        let lower = c.to_ascii_lowercase() as u8;
        // Turkish and Azeri locales lower `I` to the dotless `ı`.
        return if c == 'I' {
            vec![vec![lower], vec![OTHER]]
        } else {
            vec![vec![lower]]
        };
    }
    // Left as it is (an ASCII-only lower()), or lower-cased one character
    // to one (the simple mapping: the first of the full one), or in full.
    let full: Vec<u8> = c.to_lowercase().map(symbol).collect();
    let mut out = vec![vec![OTHER], vec![full[0]]];
    if full.len() > 1 {
        out.push(full);
    }
    out.sort_unstable();
    out.dedup();
    out
}

impl SearchBucket {
    /// Buckets for terms of three characters or more.
    pub const TRIGRAM_BUCKETS: u16 = 4096;

    /// The bucket whose group holds the result pages of `term`.
    pub fn of_term(term: &SearchText) -> Self {
        let mut chars = term.as_str().chars().map(symbol);
        match (chars.next(), chars.next(), chars.next()) {
            (Some(a), Some(b), Some(c)) => Self::of_trigram([a, b, c]),
            _ => Self::Short,
        }
    }

    fn of_trigram(trigram: [u8; 3]) -> Self {
        // FNV-1a: the same on every replica and build.
        let mut hash: u32 = 0x811c_9dc5;
        for byte in trigram {
            hash ^= u32::from(byte);
            hash = hash.wrapping_mul(0x0100_0193);
        }
        Self::Trigram((hash % u32::from(Self::TRIGRAM_BUCKETS)) as u16)
    }

    /// Adds to `out` the buckets of every term a change of `text` (as it
    /// was, or as it is now) can make match or stop matching: the bucket
    /// of each trigram it shows under any folding, and the short terms'.
    pub fn moved_by(text: &str, out: &mut Vec<SearchBucket>) {
        out.push(Self::Short);
        // The last two symbols so far, for each way of folding the text
        // read so far that ends differently (rarely more than one).
        let mut tails: Vec<Vec<u8>> = vec![Vec::new()];
        for c in text.chars() {
            let foldings = foldings(c);
            let mut next = Vec::with_capacity(tails.len() * foldings.len());
            for tail in &tails {
                for folded in &foldings {
                    let mut run = tail.clone();
                    run.extend_from_slice(folded);
                    for window in run.windows(3) {
                        let bucket = Self::of_trigram([window[0], window[1], window[2]]);
                        if !out.contains(&bucket) {
                            out.push(bucket);
                        }
                    }
                    let keep = run.len().saturating_sub(2);
                    next.push(run.split_off(keep));
                }
            }
            next.sort_unstable();
            next.dedup();
            tails = next;
        }
    }

    /// The bucket's name in a group's name: `short`, or the bucket number.
    pub fn name(self) -> String {
        match self {
            Self::Short => "short".into(),
            Self::Trigram(bucket) => bucket.to_string(),
        }
    }

    /// Reads back [`SearchBucket::name`].
    pub fn parse(name: &str) -> Option<Self> {
        if name == "short" {
            return Some(Self::Short);
        }
        let bucket: u16 = name.parse().ok()?;
        (bucket < Self::TRIGRAM_BUCKETS && bucket.to_string() == name)
            .then_some(Self::Trigram(bucket))
    }
}

#[cfg(test)]
mod tests;
