//! Writes from anywhere: other programs' changes, recorded by the
//! database's triggers in `cache_changes` (see [`crate::db::cache_changes`] and
//! the migration that creates them), turned into invalidations and
//! published like a mutation's.
//!
//! # How a change reaches every replica
//! Each replica with Redis watches the table: on PostgreSQL it `LISTEN`s
//! to the triggers' `NOTIFY`, a wake-up only (a notification sent while
//! the listener is reconnecting is lost, so the table stays the record and
//! is also read every 200 ms); on SQLite it reads the table's head every
//! 20 ms, one query on the primary key that finds nothing when nothing is
//! new. A replica that finds rows takes them out and records their
//! invalidation in the outbox, in one transaction: exactly one replica
//! takes each row (a concurrent taker's DELETE finds it gone), and from
//! then on it is an outbox row like any mutation's, so the existing
//! machinery applies: published at once, kept pending while Redis does
//! not take it, and published by any replica after the outbox delay if
//! the taker dies first. Every other replica evicts on the event. Since
//! taking is a write, which on a busy SQLite waits behind the writers for
//! the write lock, a replica first publishes what the rows it read
//! invalidate, once per row; the take's publication is then a duplicate.
//!
//! # As precise as biblio's own writes
//! A row carries the old and new values of the columns whose change moves
//! lists (a book's title, price, year, copies, author, category, and its
//! author's name), so it maps to the same [`Change`] a mutation would
//! describe, and [`Change::invalidation`] (the one place that says what a
//! change invalidates) decides, with the same precision. The columns it
//! does not read (an ISBN, timestamps) are placeholders.
//!
//! # Many rows at once
//! A batch of rows becomes one invalidation: their entries and groups
//! merged, each named once. A backlog longer than [`CAP`] rows (a bulk
//! `UPDATE books SET price_cents = …` over the catalogue, or rows piled up
//! while no replica ran) is not named row by row: the replica clears the
//! whole cache (the namespace moves, in O(1), see [`super::namespace`])
//! and then deletes every row recorded before the clear. If Redis does not
//! answer, the rows stay for the next try.
//!
//! # The bound
//! A change committed by another program is taken within the poll
//! interval (at once on PostgreSQL), published in one script call, and
//! heard by every replica as any event: within the 50 ms healthy bound.
//! While Redis is down the bus is silent, so the cap (1 s) applies as for
//! every write, and a replica trusts the bus again only after taking what
//! the table holds.
use super::changes::Listed;
use super::sync::Pending;
use super::{Change, Inner, Invalidation};
use crate::db::cache_changes::{self, Taken};
use crate::db::Db;
use entity::{book, borrow_record};
use serde::Deserialize;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::Notify;
use uuid::Uuid;

/// Rows named one by one in an invalidation; a longer backlog clears the cache.
pub const CAP: u64 = 500;

/// How often the table is read with no wake-up: SQLite has no other way to
/// learn of a row; on PostgreSQL it covers notifications lost while the
/// listener reconnected.
fn interval(db: &Db) -> Duration {
    match db.backend() {
        sea_orm::DbBackend::Postgres => Duration::from_millis(200),
        _ => Duration::from_millis(20),
    }
}

/// One recorded change: the table and the row before and after.
#[derive(Deserialize)]
struct Recorded {
    t: String,
    #[serde(default)]
    old: Option<serde_json::Value>,
    #[serde(default)]
    new: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct BookRow {
    id: Uuid,
    title: String,
    price: i64,
    year: Option<i32>,
    copies: i32,
    author_id: Uuid,
    category_id: Uuid,
    /// Absent when the author row is missing (no foreign key stops
    /// another program in the middle of its transaction).
    author: Option<String>,
}

impl BookRow {
    fn listed(self) -> Listed {
        let epoch = chrono::DateTime::<chrono::Utc>::default();
        Listed {
            book: book::Model {
                id: self.id,
                title: self.title,
                isbn: String::new(),
                price_cents: self.price,
                published_year: self.year,
                copies_total: self.copies,
                copies_available: self.copies,
                author_id: self.author_id,
                category_id: self.category_id,
                created_at: epoch,
                updated_at: epoch,
            },
            author: self.author.unwrap_or_default(),
        }
    }
}

#[derive(Deserialize)]
struct AuthorRow {
    id: Uuid,
    name: String,
}

#[derive(Deserialize)]
struct IdRow {
    id: Uuid,
}

#[derive(Deserialize)]
struct LoanRow {
    id: Uuid,
    user_id: Uuid,
    book_id: Uuid,
}

impl LoanRow {
    fn record(self) -> borrow_record::Model {
        let epoch = chrono::DateTime::<chrono::Utc>::default();
        borrow_record::Model {
            id: self.id,
            user_id: self.user_id,
            book_id: self.book_id,
            borrowed_at: epoch,
            due_at: epoch,
            returned_at: None,
            created_at: epoch,
            updated_at: epoch,
        }
    }
}

fn side<T: serde::de::DeserializeOwned>(value: Option<serde_json::Value>) -> Option<Option<T>> {
    match value {
        None | Some(serde_json::Value::Null) => Some(None),
        Some(value) => serde_json::from_value(value).ok().map(Some),
    }
}

/// The changes one recorded row describes (an update that moved a row's
/// id is a delete and an insert); `None` if it cannot be read.
fn described(recorded: &str) -> Option<Vec<Change>> {
    let Recorded { t, old, new } = serde_json::from_str(recorded).ok()?;
    let mut out = Vec::with_capacity(2);
    match t.as_str() {
        "books" => match (side::<BookRow>(old)?, side::<BookRow>(new)?) {
            (Some(before), Some(after)) if before.id == after.id => {
                out.push(Change::BookUpdated {
                    before: before.listed(),
                    after: after.listed(),
                });
            }
            (before, after) => {
                out.extend(before.map(|book| Change::BookDeleted {
                    book: book.listed(),
                    borrows: Vec::new(),
                }));
                out.extend(after.map(|book| Change::BookCreated {
                    book: book.listed(),
                }));
            }
        },
        "authors" => match (side::<AuthorRow>(old)?, side::<AuthorRow>(new)?) {
            (Some(before), Some(after)) if before.id == after.id => {
                out.push(Change::AuthorUpdated {
                    id: after.id,
                    before: before.name,
                    after: after.name,
                });
            }
            (before, after) => {
                out.extend(before.map(|author| Change::AuthorDeleted { id: author.id }));
                out.extend(after.map(|author| Change::AuthorCreated { id: author.id }));
            }
        },
        "categories" => match (side::<IdRow>(old)?, side::<IdRow>(new)?) {
            (Some(before), Some(after)) if before.id == after.id => {
                out.push(Change::CategoryUpdated { id: after.id });
            }
            (before, after) => {
                out.extend(before.map(|row| Change::CategoryDeleted { id: row.id }));
                out.extend(after.map(|row| Change::CategoryCreated { id: row.id }));
            }
        },
        // Any column of a user may have changed: the role change evicts
        // the profile and recounts members, which covers the rest.
        "users" => match (side::<IdRow>(old)?, side::<IdRow>(new)?) {
            (Some(before), Some(after)) if before.id == after.id => {
                out.push(Change::UserRoleChanged { id: after.id });
            }
            (before, after) => {
                out.extend(before.map(|row| Change::UserDeleted {
                    id: row.id,
                    borrows: Vec::new(),
                }));
                out.extend(after.map(|row| Change::UserCreated { id: row.id }));
            }
        },
        // A loan's book, member and lists, as it was and as it is.
        "borrow_records" => {
            let (before, after) = (side::<LoanRow>(old)?, side::<LoanRow>(new)?);
            for loan in before.into_iter().chain(after) {
                out.push(Change::BookBorrowed {
                    record: loan.record(),
                });
            }
        }
        _ => return None,
    }
    (!out.is_empty()).then_some(out)
}

/// What the recorded rows invalidate, merged into one; `None` if any row
/// cannot be read.
pub(super) fn invalidation(rows: &[String]) -> Option<Invalidation> {
    let mut merged = Invalidation::default();
    for row in rows {
        for change in described(row)? {
            merged.merge(&change.invalidation());
        }
    }
    Some(merged)
}

impl Inner {
    /// Takes every change other programs recorded and publishes its
    /// invalidation (see the module documentation). Returns whether the
    /// table was read and emptied of what it held.
    pub(super) async fn take_foreign_changes(&self) -> bool {
        let Some(db) = &self.sync.outbox else {
            return true;
        };
        loop {
            let head = match cache_changes::head(db, CAP + 1).await {
                Ok(head) => head,
                Err(err) => {
                    tracing::warn!(error = %err, "could not read other programs' changes");
                    return false;
                }
            };
            let Some(&(last, _)) = head.last() else {
                return true;
            };
            if head.len() as u64 <= CAP {
                self.publish_early(db, &head).await;
                let mut merged = None;
                let taken = cache_changes::take(db, last, |rows| {
                    let found = super::sync::for_database(invalidation(rows)?, db);
                    let payload = found.to_outbox();
                    merged = Some(found);
                    Some(payload)
                })
                .await;
                match (taken, merged) {
                    (Ok(Taken::Nothing), _) => continue,
                    (Ok(Taken::Recorded { outbox, rows }), Some(invalidation)) => {
                        self.metrics.foreign_changes(rows as u64);
                        // Past the commits of the changes taken (theirs came
                        // before the take's), or unknown.
                        let position = db.position_after_commit().await;
                        self.publish(Pending {
                            outbox: Some(outbox),
                            invalidation,
                            position,
                        })
                        .await;
                        continue;
                    }
                    (Ok(_), _) => {
                        tracing::error!("a change recorded by the triggers could not be read: clearing the cache instead");
                    }
                    (Err(err), _) => {
                        tracing::warn!(error = %err, "could not take other programs' changes");
                        return false;
                    }
                }
            }
            if !self.clear_for_changes(db).await {
                return false;
            }
        }
    }

    /// Publishes the invalidation of `head` (rows just read) before they
    /// are taken: taking them is a write, which on a busy SQLite waits for
    /// the write lock behind the writers, for hundreds of milliseconds. The
    /// take publishes again (a duplicate every replica evicts harmlessly),
    /// and stays the record that makes the rows' publication certain. Each
    /// row is published early at most once by each replica; a failure here
    /// is left to the take.
    async fn publish_early(&self, db: &Db, head: &[(i64, String)]) {
        let Some(&(last, _)) = head.last() else {
            return;
        };
        if self.sync.early_through.fetch_max(last, Ordering::AcqRel) >= last {
            return;
        }
        let rows: Vec<String> = head.iter().map(|(_, change)| change.clone()).collect();
        let Some(found) = invalidation(&rows) else {
            return;
        };
        // Read after the rows: past the commits of the changes they record.
        let position = db.position_after_commit().await;
        self.publish_copy(&super::sync::for_database(found, db), position)
            .await;
    }

    /// Clears the cache for every change recorded so far, then deletes
    /// them. False if Redis or the database did not answer (the rows stay).
    async fn clear_for_changes(&self, db: &Db) -> bool {
        let cleared = || async {
            // Readers after the clear must not fill from a replica that
            // lacks the changes it clears for: the position (or the token
            // of an unknown one) goes first.
            if let (Some(position), Some(l2)) = (db.position_after_commit().await, &self.l2) {
                if !l2.record_position(position).await {
                    return false;
                }
            }
            self.clear().await.is_some()
        };
        match cache_changes::remove_cleared(db, cleared).await {
            Ok(Some(0)) => true,
            Ok(Some(rows)) => {
                self.metrics.foreign_cleared();
                tracing::info!(
                    rows,
                    "other programs changed more rows than one invalidation names: cleared the cache"
                );
                true
            }
            Ok(None) => false,
            Err(err) => {
                tracing::warn!(error = %err, "could not delete other programs' changes after a clear");
                false
            }
        }
    }
}

/// The background task that takes other programs' changes: every
/// [`interval`], or at once when `wake` is notified. Ends when the cache is
/// dropped.
pub(super) async fn watch(inner: Weak<Inner>, wake: Arc<Notify>) {
    let every = match inner.upgrade().and_then(|inner| inner.sync.outbox.clone()) {
        Some(db) => interval(&db),
        None => return,
    };
    loop {
        {
            let Some(inner) = inner.upgrade() else {
                return;
            };
            inner.take_foreign_changes().await;
        }
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(every) => {}
        }
    }
}

/// PostgreSQL: listens to the triggers' notifications and wakes
/// [`watch`]. Reconnects by itself; a wake-up after each (re)connection
/// covers what was committed meanwhile. Ends when the cache is dropped.
pub(super) async fn listen(inner: Weak<Inner>, db: Db, wake: Arc<Notify>) {
    use sea_orm::sqlx::postgres::PgListener;
    let Some(pool) = (db.backend() == sea_orm::DbBackend::Postgres)
        .then(|| db.conn().get_postgres_connection_pool().clone())
    else {
        return;
    };
    drop(db);
    while inner.strong_count() > 0 {
        let listening = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(cache_changes::CHANNEL).await?;
            Ok::<_, sea_orm::sqlx::Error>(listener)
        };
        let mut listener = match listening.await {
            Ok(listener) => listener,
            Err(err) => {
                tracing::warn!(error = %err, "could not listen for other programs' changes; reading them every interval");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        wake.notify_one();
        while inner.strong_count() > 0 {
            match listener.try_recv().await {
                // A notification, or the connection lost (the next call
                // reconnects, and what was sent meanwhile is lost): read.
                Ok(_) => wake.notify_one(),
                Err(err) => {
                    tracing::warn!(error = %err, "lost the listener for other programs' changes");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{Group, Kind};

    fn book(id: Uuid, title: &str, price: i64, author: Uuid) -> serde_json::Value {
        serde_json::json!({
            "id": id.simple().to_string(), "title": title, "price": price, "year": 1969,
            "copies": 2, "author_id": author.to_string(),
            "category_id": Uuid::nil().to_string(), "author": "Ursula K. Le Guin",
        })
    }

    fn row(table: &str, old: Option<serde_json::Value>, new: Option<serde_json::Value>) -> String {
        serde_json::json!({ "t": table, "old": old, "new": new }).to_string()
    }

    #[test]
    fn a_foreign_retitle_invalidates_as_the_mutation_would() {
        let (id, author) = (Uuid::now_v7(), Uuid::now_v7());
        let before = book(id, "The Dispossessed", 1000, author);
        let after = book(id, "Always Coming Home", 1000, author);
        let found = invalidation(&[row("books", Some(before), Some(after))]).unwrap();
        let listed = |title: &str| {
            let mut listed = serde_json::from_value::<BookRow>(book(id, title, 1000, author))
                .unwrap()
                .listed();
            listed.author = "Ursula K. Le Guin".into();
            listed
        };
        let expected = Change::BookUpdated {
            before: listed("The Dispossessed"),
            after: listed("Always Coming Home"),
        }
        .invalidation();
        assert_eq!(found, expected);
        assert!(found.groups.contains(&Group::AuthorBooks(author)));
        assert!(!found.groups.contains(&Group::Statistics), "no price moved");
    }

    #[test]
    fn rows_of_a_batch_merge_into_one_invalidation_naming_each_entry_once() {
        let author = Uuid::now_v7();
        let rows: Vec<String> = (0..50)
            .map(|i| {
                let id = Uuid::now_v7();
                row(
                    "books",
                    Some(book(id, &format!("Book {i}"), 1000, author)),
                    Some(book(id, &format!("Book {i}"), 1100, author)),
                )
            })
            .collect();
        let found = invalidation(&rows).unwrap();
        assert_eq!(
            found
                .entries
                .iter()
                .filter(|(kind, _)| *kind == Kind::Book)
                .count(),
            50
        );
        assert!(found.groups.contains(&Group::Statistics));
        let mut groups = found.groups.clone();
        groups.dedup();
        assert_eq!(groups.len(), found.groups.len());
    }

    #[test]
    fn inserts_deletes_loans_users_and_renames_are_each_described() {
        let (id, author) = (Uuid::now_v7(), Uuid::now_v7());
        let created =
            invalidation(&[row("books", None, Some(book(id, "Lathe", 1, author)))]).unwrap();
        assert!(created.groups.contains(&Group::Statistics));
        assert!(created.entries.contains(&(Kind::AuthorBookCount, author)));
        let user = Uuid::now_v7();
        let loan = serde_json::json!({ "id": Uuid::now_v7().to_string(), "user_id": user.to_string(), "book_id": id.to_string() });
        let lent = invalidation(&[row("borrow_records", Some(loan.clone()), Some(loan))]).unwrap();
        assert!(lent.entries.contains(&(Kind::Book, id)));
        assert!(lent.groups.contains(&Group::UserBorrows(user)));
        let renamed = invalidation(&[row(
            "authors",
            Some(serde_json::json!({ "id": author.to_string(), "name": "A" })),
            Some(serde_json::json!({ "id": author.to_string(), "name": "B" })),
        )])
        .unwrap();
        assert!(renamed.entries.contains(&(Kind::Author, author)));
        assert!(renamed.groups.contains(&Group::Authors));
        let removed = invalidation(&[row(
            "users",
            Some(serde_json::json!({ "id": user.to_string() })),
            None,
        )])
        .unwrap();
        assert!(removed.entries.contains(&(Kind::User, user)));
    }

    #[test]
    fn an_unreadable_row_is_refused_rather_than_guessed() {
        for bad in [
            "not json",
            r#"{"t":"books","new":{"id":"x"}}"#,
            r#"{"t":"nope","new":{"id":"00000000000000000000000000000000"}}"#,
            r#"{"t":"users"}"#,
        ] {
            assert!(invalidation(&[bad.to_owned()]).is_none(), "{bad}");
        }
    }
}
