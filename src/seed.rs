//! A deterministic demo data set: the same plan and seed always give the same
//! authors, books, members and borrows, with the same ids. Timestamps are
//! laid out backwards from the start of the current UTC day, so loans are
//! current whenever it runs. Rows go in with multi-row INSERTs inside one
//! transaction, which is what makes 10,000 books and 30,000 borrows take
//! seconds.
//!
//! Its accounts live under `biblio.test`, a domain reserved for testing
//! (RFC 2606) that no real person's address can be in, which is how a
//! reset tells them from accounts people made. They get random passwords
//! unless the operator sets one ([`Passwords`]).
use crate::db::Db;
use crate::domain::{Isbn, Password};
use crate::error::BoxError;
use entity::user::Role;
use entity::{author, book, borrow_record, category, user};
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, EntityTrait, PaginatorTrait, Set, TransactionTrait,
};
use std::collections::HashSet;
use uuid::Uuid;

pub const LIBRARIAN_EMAIL: &str = "librarian@biblio.test";

/// The e-mail of the `n`th seeded member (from 1).
pub fn member_email(n: usize) -> String {
    format!("member{n}@biblio.test")
}

/// Whether a seed makes accounts with this e-mail.
pub fn is_seeded_email(email: &str) -> bool {
    email == LIBRARIAN_EMAIL
        || email
            .strip_prefix("member")
            .and_then(|rest| rest.strip_suffix("@biblio.test"))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The passwords of the seeded accounts: one for the librarian, one shared
/// by every member (hashing is slow by design, and a thousand members need
/// not pay it a thousand times).
#[derive(Clone)]
pub struct Passwords {
    pub librarian: String,
    pub members: String,
}

impl Passwords {
    /// Two random passwords, to be shown once: a data set that anyone could
    /// sign in to with a password from the README has no place on a server.
    pub fn random() -> Self {
        Self {
            librarian: random_password(),
            members: random_password(),
        }
    }

    /// The same `password` for every account (`seed --password-for-all`),
    /// for benchmarks and scripts that sign in.
    pub fn same(password: &str) -> Self {
        Self {
            librarian: password.to_owned(),
            members: password.to_owned(),
        }
    }
}

/// Sixteen characters from an alphabet without look-alikes (no 0/o, 1/l/i),
/// in groups of four: about 79 bits, and easy to type from a screen.
fn random_password() -> String {
    use rand_core::{OsRng, RngCore};
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut password = String::with_capacity(19);
    for i in 0..16 {
        if i > 0 && i % 4 == 0 {
            password.push('-');
        }
        // Rejection sampling keeps every symbol equally likely.
        let symbol = loop {
            let byte = (OsRng.next_u32() & 0xff) as usize;
            if byte < 256 - 256 % ALPHABET.len() {
                break ALPHABET[byte % ALPHABET.len()];
            }
        };
        password.push(char::from(symbol));
    }
    password
}

/// What to do with what the database already holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Refuse a database that holds anything.
    Refuse,
    /// Delete the catalogue, loans and seeded accounts first; refuse if
    /// there are accounts a seed did not make.
    Replace,
    /// Delete everything first, accounts people made included.
    ReplaceWithUsers,
}

#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub authors: usize,
    pub books: usize,
    pub members: usize,
    pub borrows: usize,
    pub seed: u64,
}

impl Plan {
    /// The small set `serve` puts into an empty database.
    pub fn demo() -> Self {
        Self {
            authors: 40,
            books: 200,
            members: 20,
            borrows: 300,
            seed: 42,
        }
    }
}

pub struct Report {
    pub plan: Plan,
    pub categories: usize,
    pub active_borrows: usize,
}

impl Report {
    /// The counts, as one log line (never the passwords: logs are kept and
    /// shipped where a password has no business).
    pub fn log(&self) {
        tracing::info!(
            authors = self.plan.authors,
            books = self.plan.books,
            categories = self.categories,
            members = self.plan.members,
            borrows = self.plan.borrows,
            active_borrows = self.active_borrows,
            "seeded demo data"
        );
    }

    /// The seeded accounts and their passwords, a few lines for a person.
    pub fn accounts(&self, passwords: &Passwords) -> String {
        let members = match self.plan.members {
            0 => String::new(),
            1 => format!("\n  member:    {} / {}", member_email(1), passwords.members),
            n => format!(
                "\n  members:   {} .. {} / {}",
                member_email(1),
                member_email(n),
                passwords.members
            ),
        };
        format!(
            "  librarian: {LIBRARIAN_EMAIL} / {}{members}",
            passwords.librarian
        )
    }
}

pub async fn is_empty(db: &Db) -> Result<bool, sea_orm::DbErr> {
    Ok(book::Entity::find().count(db.conn()).await? == 0
        && user::Entity::find().count(db.conn()).await? == 0)
}

/// SplitMix64: a few lines, fast, and the same sequence on every platform,
/// so a seed reproduces the same data (and the same test workload).
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// True with probability 1/n.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// A UUID v7 at `at`, its random bits from this generator.
    fn uuid_at(&mut self, at: chrono::DateTime<chrono::Utc>) -> Uuid {
        let mut random = [0u8; 10];
        random[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        random[8..].copy_from_slice(&self.next_u64().to_le_bytes()[..2]);
        uuid::Builder::from_unix_timestamp_millis(at.timestamp_millis() as u64, &random).into_uuid()
    }
}

const CATEGORIES: &[&str] = &[
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

/// Inserts in chunks small enough for every backend's parameter limit.
async fn insert_chunked<A, C>(conn: &C, rows: Vec<A>) -> Result<(), sea_orm::DbErr>
where
    A: ActiveModelTrait + Send,
    <A::Entity as EntityTrait>::Model: sea_orm::IntoActiveModel<A>,
    C: ConnectionTrait,
{
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<A> = rows.by_ref().take(1000).collect();
        <A::Entity as EntityTrait>::insert_many(chunk)
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

/// The accounts no seed made, by e-mail.
async fn people(db: &Db) -> Result<Vec<String>, sea_orm::DbErr> {
    use sea_orm::QuerySelect;
    let emails: Vec<String> = user::Entity::find()
        .select_only()
        .column(user::Column::Email)
        .into_tuple()
        .all(db.conn())
        .await?;
    Ok(emails
        .into_iter()
        .filter(|email| !is_seeded_email(email))
        .collect())
}

pub async fn run(
    db: &Db,
    plan: &Plan,
    existing: Existing,
    passwords: &Passwords,
) -> Result<Report, BoxError> {
    if plan.authors == 0 && plan.books > 0 {
        return Err("books need at least one author".into());
    }
    if plan.borrows > 0 && (plan.members == 0 || plan.books == 0) {
        return Err("borrows need at least one member and one book".into());
    }
    let librarian_password = Password::parse(&passwords.librarian)?;
    let member_password = Password::parse(&passwords.members)?;
    let reset = match existing {
        Existing::Refuse if !is_empty(db).await? => {
            return Err("the database already has data; pass --reset to replace it".into())
        }
        Existing::Refuse => false,
        Existing::Replace => {
            let people = people(db).await?;
            if !people.is_empty() {
                let shown: Vec<&str> = people.iter().take(3).map(String::as_str).collect();
                return Err(format!(
                    "--reset would delete {} account{} that no seed made ({}{}), with their \
                     loans; pass --include-users as well to delete them, or remove them first \
                     (biblio user remove EMAIL)",
                    people.len(),
                    if people.len() == 1 { "" } else { "s" },
                    shown.join(", "),
                    if people.len() > shown.len() {
                        ", ..."
                    } else {
                        ""
                    }
                )
                .into());
            }
            true
        }
        Existing::ReplaceWithUsers => true,
    };
    let mut rng = Rng(plan.seed);
    let day = chrono::Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc();
    let year_ago = day - chrono::Duration::days(365);
    let at = |offset_secs: i64| year_ago + chrono::Duration::seconds(offset_secs);

    let categories: Vec<category::ActiveModel> = CATEGORIES
        .iter()
        .enumerate()
        .map(|(i, name)| category::ActiveModel {
            id: Set(rng.uuid_at(at(i as i64))),
            name: Set((*name).to_owned()),
            created_at: Set(at(i as i64)),
            updated_at: Set(at(i as i64)),
        })
        .collect();
    let category_ids: Vec<Uuid> = categories.iter().map(|c| *c.id.as_ref()).collect();

    let authors: Vec<author::ActiveModel> = (0..plan.authors)
        .map(|i| {
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
            let created = at(100 + i as i64);
            author::ActiveModel {
                id: Set(rng.uuid_at(created)),
                bio: Set((rng.below(3) > 0)
                    .then(|| format!("{name} writes about {}.", rng.pick(NOUNS).to_lowercase()))),
                name: Set(name),
                created_at: Set(created),
                updated_at: Set(created),
            }
        })
        .collect();
    let author_ids: Vec<Uuid> = authors.iter().map(|a| *a.id.as_ref()).collect();

    let mut copies_available: Vec<i32> = Vec::with_capacity(plan.books);
    let mut books: Vec<book::ActiveModel> = (0..plan.books)
        .map(|i| {
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
            copies_available.push(copies);
            let created = at(10_000 + i as i64 * 60);
            book::ActiveModel {
                id: Set(rng.uuid_at(created)),
                title: Set(title),
                isbn: Set(Isbn::with_check_digit(978_100_000_000 + i as u64).into_inner()),
                price_cents: Set(499 + rng.below(7_500) as i64),
                published_year: Set((rng.below(20) > 0).then(|| 1900 + rng.below(126) as i32)),
                copies_total: Set(copies),
                copies_available: Set(copies),
                author_id: Set(*rng.pick(&author_ids)),
                category_id: Set(*rng.pick(&category_ids)),
                created_at: Set(created),
                updated_at: Set(created),
            }
        })
        .collect();
    let book_ids: Vec<Uuid> = books.iter().map(|b| *b.id.as_ref()).collect();

    // One hash per password: hashing is slow by design, and a thousand
    // members sharing a demo password need not pay it a thousand times.
    let librarian_hash = crate::auth::hash_password(librarian_password).await?;
    let member_hash = crate::auth::hash_password(member_password).await?;
    let mut users = vec![user::ActiveModel {
        id: Set(rng.uuid_at(at(50))),
        email: Set(LIBRARIAN_EMAIL.to_owned()),
        name: Set("Demo Librarian".to_owned()),
        password_hash: Set(librarian_hash),
        role: Set(Role::Librarian),
        token_generation: Set(0),
        created_at: Set(at(50)),
        updated_at: Set(at(50)),
    }];
    for n in 1..=plan.members {
        let created = at(5_000 + n as i64);
        users.push(user::ActiveModel {
            id: Set(rng.uuid_at(created)),
            email: Set(member_email(n)),
            name: Set(format!(
                "{} {}",
                rng.pick(FIRST_NAMES),
                rng.pick(LAST_NAMES)
            )),
            password_hash: Set(member_hash.clone()),
            role: Set(Role::Member),
            token_generation: Set(0),
            created_at: Set(created),
            updated_at: Set(created),
        });
    }
    let member_ids: Vec<Uuid> = users[1..].iter().map(|u| *u.id.as_ref()).collect();

    // Mostly returned loans over the past year; about one in seven still out,
    // as long as a copy is free and the member does not already hold it.
    let mut active: HashSet<(usize, usize)> = HashSet::new();
    let borrows: Vec<borrow_record::ActiveModel> = (0..plan.borrows)
        .map(|_| {
            let member = rng.below(member_ids.len());
            let book = rng.below(book_ids.len());
            let wants_active = rng.below(7) == 0;
            let can_be_active = copies_available[book] > 0 && !active.contains(&(member, book));
            let (borrowed_at, returned_at) = if wants_active && can_be_active {
                copies_available[book] -= 1;
                active.insert((member, book));
                (
                    day - chrono::Duration::hours(1 + rng.below(30 * 24) as i64),
                    None,
                )
            } else {
                let borrowed = year_ago + chrono::Duration::hours(rng.below(330 * 24) as i64);
                (
                    borrowed,
                    Some(borrowed + chrono::Duration::hours(1 + rng.below(20 * 24) as i64)),
                )
            };
            borrow_record::ActiveModel {
                id: Set(rng.uuid_at(borrowed_at)),
                user_id: Set(member_ids[member]),
                book_id: Set(book_ids[book]),
                borrowed_at: Set(borrowed_at),
                due_at: Set(borrowed_at + chrono::Duration::days(14)),
                returned_at: Set(returned_at),
                created_at: Set(borrowed_at),
                updated_at: Set(returned_at.unwrap_or(borrowed_at)),
            }
        })
        .collect();
    for (book, available) in books.iter_mut().zip(&copies_available) {
        book.copies_available = Set(*available);
    }

    let txn = db.conn().begin().await?;
    if reset {
        borrow_record::Entity::delete_many().exec(&txn).await?;
        book::Entity::delete_many().exec(&txn).await?;
        author::Entity::delete_many().exec(&txn).await?;
        category::Entity::delete_many().exec(&txn).await?;
        user::Entity::delete_many().exec(&txn).await?;
    }
    let report = Report {
        plan: *plan,
        categories: categories.len(),
        active_borrows: active.len(),
    };
    insert_chunked(&txn, categories).await?;
    insert_chunked(&txn, authors).await?;
    insert_chunked(&txn, books).await?;
    insert_chunked(&txn, users).await?;
    insert_chunked(&txn, borrows).await?;
    txn.commit().await?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_seeds_own_addresses_count_as_seeded() {
        assert!(is_seeded_email(LIBRARIAN_EMAIL));
        assert!(is_seeded_email(&member_email(1)));
        assert!(is_seeded_email("member1000@biblio.test"));
        for person in [
            "ann@example.org",
            "member@biblio.test",
            "memberx1@biblio.test",
            "member1@biblio.test.example.org",
            "librarian@example.org",
        ] {
            assert!(!is_seeded_email(person), "{person}");
        }
    }

    #[test]
    fn random_passwords_are_long_valid_and_different() {
        let (a, b) = (random_password(), random_password());
        assert_ne!(a, b);
        assert_eq!(a.len(), 19);
        assert!(Password::parse(&a).is_ok());
        assert!(a
            .chars()
            .all(|c| c == '-' || c.is_ascii_lowercase() || c.is_ascii_digit()));
    }
}
