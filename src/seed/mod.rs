//! A deterministic demo data set: the same plan and seed always give the same
//! authors, books, members and borrows, with the same ids. Timestamps are
//! laid out backwards from the start of the current UTC day, so loans are
//! current whenever it runs.
//!
//! It goes in as one transaction (all or nothing), fast enough for a
//! million books and three million loans in under a minute on SQLite: the
//! rows are drawn as they are written ([`data`]) and written in bulk with
//! the indexes built afterwards ([`load`], which says where the time went).
//!
//! Its accounts live under `biblio.test`, a domain reserved for testing
//! (RFC 2606) that no real person's address can be in, which is how a
//! reset tells them from accounts people made. They get random passwords
//! unless the operator sets one ([`Passwords`]).
mod data;
mod load;

use crate::db::Db;
use crate::domain::Password;
use crate::error::BoxError;
use entity::{book, user};
use load::{Account, Load, Loan, Row};
use sea_orm::{EntityTrait, PaginatorTrait};
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
#[derive(Debug, Clone)]
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

/// Seeds `plan` into `db` as one transaction.
pub async fn run(
    db: &Db,
    plan: &Plan,
    existing: Existing,
    passwords: &Passwords,
) -> Result<Report, BoxError> {
    run_with_progress(db, plan, existing, passwords, |_, _, _| {}).await
}

/// [`run`], calling `progress(done, total, doing)` as it goes: `done` of
/// `total` units of work (a row written, or an index built over a row).
pub async fn run_with_progress(
    db: &Db,
    plan: &Plan,
    existing: Existing,
    passwords: &Passwords,
    progress: impl Fn(usize, usize, &str),
) -> Result<Report, BoxError> {
    if plan.authors == 0 && plan.books > 0 {
        return Err("books need at least one author".into());
    }
    if plan.borrows > 0 && (plan.members == 0 || plan.books == 0) {
        return Err("borrows need at least one member and one book".into());
    }
    let librarian_password = Password::parse(&passwords.librarian)?;
    let member_password = Password::parse(&passwords.members)?;
    if existing == Existing::Replace {
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
    }

    // What the rows are drawn from, in the order the generator is used.
    let mut rng = Rng(plan.seed);
    let clock = data::Clock::today();
    let categories = data::categories(&mut rng, &clock);
    let category_ids: Vec<Uuid> = categories.iter().map(|c| c.id).collect();
    let authors: Vec<data::Author> = (0..plan.authors)
        .map(|i| data::author(&mut rng, &clock, i))
        .collect();
    let author_ids: Vec<Uuid> = authors.iter().map(|a| a.id).collect();
    // Books: a first pass for what borrows need; the rows are drawn again
    // from `books_rng` as they are written.
    let books_rng = rng.clone();
    let mut book_ids = Vec::with_capacity(plan.books);
    let mut available = Vec::with_capacity(plan.books);
    for i in 0..plan.books {
        let book = data::book(&mut rng, &clock, i, &author_ids, &category_ids);
        book_ids.push(book.id);
        available.push(book.copies_total);
    }
    let mut users = vec![data::librarian(&mut rng, &clock)];
    users.extend((1..=plan.members).map(|n| data::member(&mut rng, &clock, n)));
    let (mut borrows, active_borrows) =
        data::borrows(&mut rng, &clock, plan.borrows, plan.members, &mut available);
    borrows.sort_unstable_by_key(|borrow| borrow.id);

    // One hash per password: hashing is slow by design, and a thousand
    // members sharing a demo password need not pay it a thousand times.
    let librarian_hash = crate::auth::hash_password(librarian_password).await?;
    let member_hash = crate::auth::hash_password(member_password).await?;
    let accounts: Vec<Account> = users
        .iter()
        .map(|user| Account {
            user,
            password_hash: if user.librarian {
                &librarian_hash
            } else {
                &member_hash
            },
        })
        .collect();

    let rows = categories.len() + authors.len() + users.len() + plan.books + plan.borrows;
    // An index or trigger built again costs about what writing its table's
    // rows did; counted as that many units.
    let table_rows = |table: &str| match table {
        "categories" => categories.len(),
        "authors" => authors.len(),
        "users" => users.len(),
        "books" => plan.books,
        _ => plan.borrows,
    };
    let mut load = Load::begin(db).await?;
    if existing == Existing::Refuse && !load.is_empty().await? {
        return Err("the database already has data; pass --reset to replace it".into());
    }
    let suspended = load.suspend().await?;
    // The tallies count every book, and the search's own table (FTS5 on
    // SQLite, the titles on PostgreSQL) is filled with them afterwards.
    let search = plan.books;
    let total = rows
        + suspended
            .iter()
            .map(|item| table_rows(item.table()))
            .sum::<usize>()
        + plan.books
        + search;
    let mut done = 0;
    progress(done, total, "clearing");
    load.clear().await?;

    async fn write<R: Row>(
        load: &mut Load,
        rows: &[R],
        done: &mut usize,
        total: usize,
        progress: &impl Fn(usize, usize, &str),
    ) -> Result<(), BoxError> {
        // In slices, for the progress bar; each is several statements.
        for slice in rows.chunks(50_000) {
            load.insert(slice).await?;
            *done += slice.len();
            progress(*done, total, R::TABLE);
        }
        Ok(())
    }
    write(&mut load, &categories, &mut done, total, &progress).await?;
    write(&mut load, &authors, &mut done, total, &progress).await?;
    write(&mut load, &accounts, &mut done, total, &progress).await?;
    let mut rng = books_rng;
    let mut next = 0;
    while next < plan.books {
        let end = (next + 50_000).min(plan.books);
        let slice: Vec<data::Book> = (next..end)
            .map(|i| data::Book {
                copies_available: available[i],
                ..data::book(&mut rng, &clock, i, &author_ids, &category_ids)
            })
            .collect();
        write(&mut load, &slice, &mut done, total, &progress).await?;
        next = end;
    }
    let member_ids: Vec<Uuid> = users[1..].iter().map(|user| user.id).collect();
    for slice in borrows.chunks(50_000) {
        let loans: Vec<Loan> = slice
            .iter()
            .map(|borrow| Loan {
                id: borrow.id,
                user_id: member_ids[borrow.member as usize],
                book_id: book_ids[borrow.book as usize],
                borrowed_at: borrow.borrowed_at,
                due_at: borrow.borrowed_at + chrono::Duration::days(14),
                returned_at: borrow.returned_at,
            })
            .collect();
        write(&mut load, &loans, &mut done, total, &progress).await?;
    }
    drop(borrows);

    load.restore(&suspended, |item| {
        done += table_rows(item.table());
        progress(done, total, item.name());
    })
    .await?;
    progress(done, total, "tallies");
    load.recount().await?;
    done += plan.books;
    progress(done, total, "search index");
    load.rebuild_search().await?;
    progress(total, total, "committing");
    load.commit().await?;
    Ok(Report {
        plan: *plan,
        categories: categories.len(),
        active_borrows,
    })
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
