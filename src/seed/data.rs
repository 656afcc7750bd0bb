//! The rows of a seed, drawn from one [`Rng`] in a fixed order (categories,
//! authors, books, the librarian and members, borrows), so the same plan
//! and seed give the same rows, ids included.
//!
//! Books are drawn twice from a saved generator state rather than kept: the
//! first pass learns their ids and copies (what borrows pick from), the
//! second, once the borrows have taken their copies, streams them to the
//! database with their final availability. A million books are never in
//! memory at once; borrows are (compactly), because they go in sorted by id
//! (see [`Borrow`]).
use super::Rng;
use crate::domain::Isbn;
use chrono::{DateTime, Duration, Utc};
use std::collections::HashSet;
use uuid::Uuid;

pub(super) const CATEGORIES: &[&str] = &[
    "Art",
    "Biography",
    "Children",
    "Classics",
    "Cooking",
    "Fantasy",
    "History",
    "Mystery",
    "Philosophy",
    "Poetry",
    "Romance",
    "Science",
    "Science Fiction",
    "Technology",
    "Travel",
];
const FIRST_NAMES: &[&str] = &[
    "Ada", "Alan", "Anna", "Boris", "Chidi", "Clara", "Dmitri", "Elena", "Emil", "Fatima", "Grace",
    "Hiro", "Ines", "Jonas", "Kofi", "Lena", "Marta", "Nadia", "Omar", "Paula", "Quentin", "Rosa",
    "Sven", "Tariq", "Ursula", "Vera", "Wen", "Yusuf", "Zofia", "Mei",
];
const LAST_NAMES: &[&str] = &[
    "Abe",
    "Bauer",
    "Castillo",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Hughes",
    "Ivanova",
    "Jensen",
    "Kowalski",
    "Lindqvist",
    "Moreau",
    "Nakamura",
    "Okafor",
    "Petrov",
    "Quinn",
    "Rossi",
    "Silva",
    "Tanaka",
    "Umarov",
    "Varga",
    "Weber",
    "Xu",
    "Yilmaz",
    "Zhang",
    "Novak",
    "Haddad",
    "Mensah",
    "Kaur",
];
const ADJECTIVES: &[&str] = &[
    "Silent",
    "Broken",
    "Golden",
    "Hidden",
    "Last",
    "Lost",
    "Crimson",
    "Distant",
    "Quiet",
    "Endless",
    "Northern",
    "Forgotten",
    "Burning",
    "Winter",
    "Secret",
    "Paper",
    "Glass",
    "Iron",
    "Wandering",
    "Electric",
];
const NOUNS: &[&str] = &[
    "River",
    "Garden",
    "Library",
    "Kingdom",
    "Machine",
    "Harbor",
    "Mountain",
    "Orchard",
    "Lighthouse",
    "Archive",
    "Empire",
    "Circle",
    "Voyage",
    "Atlas",
    "Theorem",
    "Letters",
    "Island",
    "Forest",
    "City",
    "Clock",
];
const PLACES: &[&str] = &[
    "the North",
    "Lisbon",
    "the Sea",
    "Kyoto",
    "the Stars",
    "Prague",
    "the Desert",
    "Lagos",
    "Tomorrow",
    "Yesterday",
];

/// The clock a seed lays its rows out on: a year back from the start of the
/// current UTC day, so that loans are current whenever it runs.
#[derive(Debug, Clone, Copy)]
pub(super) struct Clock {
    pub day: DateTime<Utc>,
    pub year_ago: DateTime<Utc>,
}

impl Clock {
    pub fn today() -> Self {
        let day = Utc::now()
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc();
        Self {
            day,
            year_ago: day - Duration::days(365),
        }
    }

    /// `offset_secs` after the start of the year.
    pub fn at(&self, offset_secs: i64) -> DateTime<Utc> {
        self.year_ago + Duration::seconds(offset_secs)
    }
}

pub(super) struct Category {
    pub id: Uuid,
    pub name: &'static str,
    pub at: DateTime<Utc>,
}

pub(super) struct Author {
    pub id: Uuid,
    pub name: String,
    pub bio: Option<String>,
    pub at: DateTime<Utc>,
}

pub(super) struct Book {
    pub id: Uuid,
    pub title: String,
    pub isbn: String,
    pub price_cents: i64,
    pub published_year: Option<i32>,
    pub copies_total: i32,
    pub copies_available: i32,
    pub author_id: Uuid,
    pub category_id: Uuid,
    pub at: DateTime<Utc>,
}

pub(super) struct User {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub librarian: bool,
    pub at: DateTime<Utc>,
}

/// A loan, compactly: 3,000,000 of them are held at once, to be written in
/// the order of their ids (random in the order they are drawn, since an id
/// carries its loan's time), which keeps the primary key's index an append
/// rather than a random insert per row.
#[derive(Clone, Copy)]
pub(super) struct Borrow {
    pub id: Uuid,
    pub member: u32,
    pub book: u32,
    pub borrowed_at: DateTime<Utc>,
    pub returned_at: Option<DateTime<Utc>>,
}

pub(super) fn categories(rng: &mut Rng, clock: &Clock) -> Vec<Category> {
    CATEGORIES
        .iter()
        .enumerate()
        .map(|(i, name)| Category {
            id: rng.uuid_at(clock.at(i as i64)),
            name,
            at: clock.at(i as i64),
        })
        .collect()
}

pub(super) fn author(rng: &mut Rng, clock: &Clock, i: usize) -> Author {
    let first = rng.pick(FIRST_NAMES);
    let last = rng.pick(LAST_NAMES);
    let name = if i < FIRST_NAMES.len() * LAST_NAMES.len() {
        format!("{first} {last}")
    } else {
        format!(
            "{first} {last} {}",
            i / (FIRST_NAMES.len() * LAST_NAMES.len()) + 1
        )
    };
    let at = clock.at(100 + i as i64);
    let id = rng.uuid_at(at);
    let bio = (rng.below(3) > 0)
        .then(|| format!("{name} writes about {}.", rng.pick(NOUNS).to_lowercase()));
    Author { id, name, bio, at }
}

/// The `i`th book, with all its copies free.
pub(super) fn book(
    rng: &mut Rng,
    clock: &Clock,
    i: usize,
    author_ids: &[Uuid],
    category_ids: &[Uuid],
) -> Book {
    let title = match rng.below(3) {
        0 => format!("The {} {}", rng.pick(ADJECTIVES), rng.pick(NOUNS)),
        1 => format!("{} of {}", rng.pick(NOUNS), rng.pick(PLACES)),
        _ => format!(
            "A {} {} in {}",
            rng.pick(ADJECTIVES),
            rng.pick(NOUNS),
            rng.pick(PLACES)
        ),
    };
    let copies = 1 + rng.below(5) as i32;
    let at = clock.at(10_000 + i as i64 * 60);
    let id = rng.uuid_at(at);
    let price_cents = 499 + rng.below(7_500) as i64;
    let published_year = (rng.below(20) > 0).then(|| 1900 + rng.below(126) as i32);
    Book {
        id,
        title,
        isbn: Isbn::with_check_digit(978_100_000_000 + i as u64).into_inner(),
        price_cents,
        published_year,
        copies_total: copies,
        copies_available: copies,
        author_id: *rng.pick(author_ids),
        category_id: *rng.pick(category_ids),
        at,
    }
}

pub(super) fn librarian(rng: &mut Rng, clock: &Clock) -> User {
    User {
        id: rng.uuid_at(clock.at(50)),
        email: super::LIBRARIAN_EMAIL.to_owned(),
        name: "Demo Librarian".to_owned(),
        librarian: true,
        at: clock.at(50),
    }
}

/// The `n`th member (from 1).
pub(super) fn member(rng: &mut Rng, clock: &Clock, n: usize) -> User {
    let at = clock.at(5_000 + n as i64);
    User {
        id: rng.uuid_at(at),
        email: super::member_email(n),
        name: format!("{} {}", rng.pick(FIRST_NAMES), rng.pick(LAST_NAMES)),
        librarian: false,
        at,
    }
}

/// Mostly returned loans over the past year; about one in seven still out,
/// as long as a copy is free (`available`, per book, is taken from) and the
/// member does not already hold the book.
pub(super) fn borrows(
    rng: &mut Rng,
    clock: &Clock,
    count: usize,
    members: usize,
    available: &mut [i32],
) -> (Vec<Borrow>, usize) {
    let mut active: HashSet<(u32, u32)> = HashSet::new();
    let borrows = (0..count)
        .map(|_| {
            let member = rng.below(members) as u32;
            let book = rng.below(available.len()) as u32;
            let wants_active = rng.below(7) == 0;
            let can_be_active = available[book as usize] > 0 && !active.contains(&(member, book));
            let (borrowed_at, returned_at) = if wants_active && can_be_active {
                available[book as usize] -= 1;
                active.insert((member, book));
                (
                    clock.day - Duration::hours(1 + rng.below(30 * 24) as i64),
                    None,
                )
            } else {
                let borrowed = clock.year_ago + Duration::hours(rng.below(330 * 24) as i64);
                (
                    borrowed,
                    Some(borrowed + Duration::hours(1 + rng.below(20 * 24) as i64)),
                )
            };
            Borrow {
                id: rng.uuid_at(borrowed_at),
                member,
                book,
                borrowed_at,
                returned_at,
            }
        })
        .collect();
    (borrows, active.len())
}
