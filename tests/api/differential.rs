//! A differential test: cached replicas against an uncached oracle.
//!
//! Two deployments share one `redis-server`, each with a database of its own
//! and both with the key prefix an operator gets by default:
//!
//! - A: three replicas in cache mode `both`, and an oracle (mode `off`) on
//!   A's database;
//! - B: two replicas in mode `both`, and an oracle on B's database.
//!
//! A seeded random workload runs in bursts: writes of every mutation, in
//! order, on random cached replicas, while reads of every query shape go to
//! random cached replicas alongside them, unchecked, to warm L1 and L2. After
//! each burst every write has been answered; once [`SETTLE`] has passed, each
//! cached replica answers a batch of random reads twice (cold, then warm) and
//! every answer must equal the oracle's answer to the same request by the same
//! viewer. Before the first burst a sweep reads every member's `myBorrows`
//! and every author's `books` on every replica at the same generations (all
//! setup writes went through one replica, each member borrowed two books and
//! each author got the same number of books), and reads B's catalogue after A
//! has filled the cache with its own, so that keys which omit a user, an
//! author or a deployment cannot go unnoticed.
//!
//! Among the writes, some are made with plain SQL on a connection of the
//! test's own, as another program would make them (a retitle, a price,
//! more copies, an author's new name, a price change over the whole
//! catalogue): the triggers record them and the replicas publish their
//! invalidations, within the same bound as the service's own writes.
//!
//! `BIBLIO_DIFF_SEED=S` replays a seed (printed at the start and on failure):
//! it fixes every operation, and since writes run one at a time, their
//! outcomes too; only the interleaving of the unchecked reads with the writes
//! is left to the scheduler. `BIBLIO_DIFF_OPS=N` runs N burst operations
//! (default 300).
use crate::helpers::{isbn, TestApp, TestRedis};
use biblio::cache::{Mode, Settings};
use biblio::seed::Rng;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// The invalidation delivery bound this test states: once every write has
/// been answered, each replica has received the writes' events within this
/// time (docs/caching.md, "The bound": D is the event delivery time while Redis is up).
/// It is not a tuning knob: an answer that differs after it is a defect, or a
/// bound the service does not meet.
const SETTLE: Duration = Duration::from_millis(300);
const DEFAULT_OPS: usize = 300;
/// Operations per burst; a quiescent check follows each burst.
const BURST: usize = 25;
/// Random reads per cached replica at each quiescent check.
const CHECKS_PER_REPLICA: usize = 6;
/// Unchecked reads run in this many concurrent lanes beside the writes.
const READ_LANES: usize = 3;

const ANONYMOUS: usize = 0;
const LIBRARIAN: usize = 1;
const PASSWORD: &str = "member-password";

const BOOK: &str = "id title isbn price publishedYear copiesTotal copiesAvailable \
                    createdAt updatedAt \
                    author { id name bio bookCount } category { id name bookCount }";
const PAGE: &str = "totalCount page pageSize totalPages hasNextPage";
const BORROW: &str = "id borrowedAt dueAt returnedAt \
                      book { id title copiesAvailable author { name } } user { id email name role }";
const USER: &str = "id email name role";
/// A connection's selection, up to its node's.
const CONNECTION: &str = "totalCount pageInfo { hasNextPage hasPreviousPage startCursor \
                          endCursor } edges { cursor";
const STATISTICS: &str = "{ statistics { totalBooks totalAuthors totalCategories totalMembers \
                          activeBorrows averagePrice booksByCategory { count category { id name bookCount } } } }";

const A_AUTHORS: [&str; 4] = [
    "Ursula K. Le Guin",
    "Stanisław Lem",
    "Octavia E. Butler",
    "Philip K. Dick",
];
const A_CATEGORIES: [&str; 4] = ["Science Fiction", "Philosophy", "Poetry", "History"];
const B_AUTHORS: [&str; 3] = ["Ted Chiang", "Iain M. Banks", "N. K. Jemisin"];
const B_CATEGORIES: [&str; 3] = ["Essays", "Fantasy", "Mathematics"];
const WORDS: [&str; 18] = [
    "Solaris",
    "Kindred",
    "Ubik",
    "Dune",
    "Babel",
    "Hyperion",
    "Lathe",
    "Heaven",
    "Exhalation",
    "Cyberiad",
    "Dispossessed",
    "Earthsea",
    "Foundation",
    "Parable",
    "Sower",
    "Excession",
    // Case folding: `İ` lowers to `i` (PostgreSQL) or stays (SQLite); the
    // Kelvin sign lowers to ASCII `k` (PostgreSQL) or stays (SQLite).
    "İstanbul",
    "\u{212A}elvin",
];
const NAMES: [&str; 9] = [
    "Ada", "Borges", "Calvino", "Delany", "Egan", "Frank", "Gibson", "Herbert", "İlhan",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_answers_equal_the_uncached_oracle_on_a_random_workload() {
    let redis = TestRedis::start();
    cached_answers_equal_the_uncached_oracle(&redis.url()).await;
}

/// The random workload and its checks, with every cached replica on the
/// Redis at `redis_url` (`cluster` runs it on a Redis Cluster, `sentinel`
/// through Sentinel).
pub(crate) async fn cached_answers_equal_the_uncached_oracle(redis_url: &str) {
    let seed = seed();
    let ops = ops();
    eprintln!(
        "differential: seed {seed}, {ops} operations \
         (BIBLIO_DIFF_SEED={seed} replays it; BIBLIO_DIFF_OPS=N runs longer)"
    );
    let mut rng = Rng(seed);
    let mut a = deploy("A", redis_url, 3).await;
    let mut b = deploy("B", redis_url, 2).await;
    populate(&mut a, &mut rng, &A_AUTHORS, &A_CATEGORIES, 10, 8).await;
    populate(&mut b, &mut rng, &B_AUTHORS, &B_CATEGORIES, 4, 3).await;
    a.foreign = b.catalogue_ids();
    b.foreign = a.catalogue_ids();
    let mut deployments = [a, b];

    tokio::time::sleep(SETTLE).await;
    let sweep: Vec<Vec<Vec<Request>>> = deployments
        .iter()
        .map(|d| d.replicas.iter().map(|_| sweep(d)).collect())
        .collect();
    check(seed, "the fresh-start sweep", &deployments, &sweep).await;

    let mut done = 0;
    let mut burst = 0;
    while done < ops {
        burst += 1;
        let size = BURST.min(ops - done);
        let plan: Vec<Op> = (0..size)
            .map(|_| random_op(&mut rng, &deployments))
            .collect();
        let outcomes = run_burst(&deployments, &plan).await;
        for (op, body) in plan.iter().filter(|op| op.effect.is_some()).zip(outcomes) {
            let effect = op.effect.as_ref().expect("the filter kept only writes");
            deployments[op.deployment].apply(effect, &body);
        }
        done += size;

        tokio::time::sleep(SETTLE).await;
        let reads: Vec<Vec<Vec<Request>>> = deployments
            .iter()
            .map(|d| {
                d.replicas
                    .iter()
                    .map(|_| {
                        (0..CHECKS_PER_REPLICA)
                            .map(|_| random_read(&mut rng, d))
                            .collect()
                    })
                    .collect()
            })
            .collect();
        let point = format!("the check after burst {burst} ({done} operations)");
        check(seed, &point, &deployments, &reads).await;
    }
    // The comparison covers the response tier only if it answered reads.
    let kept: u64 = deployments
        .iter()
        .flat_map(|d| &d.replicas)
        .map(|replica| replica.cache.metrics().responses().hits)
        .sum();
    eprintln!("differential: {kept} reads answered by the response tier");
    // The comparison covers slices after a cursor only if it made some.
    let cursors: usize = deployments
        .iter()
        .map(|d| {
            d.cursors
                .lock()
                .unwrap()
                .values()
                .map(Vec::len)
                .sum::<usize>()
        })
        .sum();
    eprintln!("differential: {cursors} cursors kept for connection reads");
    assert!(cursors > 0, "no connection read returned a cursor");
    let taken: u64 = deployments
        .iter()
        .flat_map(|d| &d.replicas)
        .map(|replica| replica.cache.metrics().foreign_changes_taken())
        .sum();
    eprintln!("differential: {taken} rows changed with plain SQL taken by the replicas");
    assert!(taken > 0, "no write was made behind the service's back");
    assert!(kept > 0, "the response tier answered no read");
}

// ---------------------------------------------------------------------------
// Deployments and their data

/// Who sends a request.
struct Viewer {
    name: String,
    token: Option<String>,
    email: Option<String>,
}

/// One deployment: cached replicas and an oracle on one database, and what
/// the workload knows of its data (deleted ids stay: reading them is a test too).
struct Deployment {
    name: &'static str,
    oracle: TestApp,
    replicas: Vec<TestApp>,
    /// `[anonymous, librarian, members…]`
    viewers: Vec<Viewer>,
    authors: Vec<String>,
    categories: Vec<String>,
    books: Vec<String>,
    /// (borrower's viewer index, borrow id)
    loans: Vec<(usize, String)>,
    /// Ids that exist only in the other deployment.
    foreign: Vec<String>,
    /// A plain connection to the database, for writes made with SQL
    /// behind the service's back.
    sql: sea_orm::DatabaseConnection,
    /// Cursors the oracle answered, by the list they belong to
    /// ([`cursor_pool`]): connection reads start from them, so that slices
    /// deep in a list, after writes moved it, are compared too.
    cursors: std::sync::Mutex<BTreeMap<String, Vec<String>>>,
}

/// The oracle (mode `off`, owning a fresh database) and `replicas` cached
/// replicas on its database and on the Redis at `redis_url`, all with the
/// default prefix.
async fn deploy(name: &'static str, redis_url: &str, replicas: usize) -> Deployment {
    let default_prefix = Settings::default().prefix;
    let with_default_prefix = move |config: &mut biblio::config::Config| {
        config.cache.prefix = default_prefix.clone();
    };
    let oracle = TestApp::builder()
        .cache_mode(Mode::Off)
        .configure(with_default_prefix.clone())
        .spawn()
        .await;
    let mut cached = Vec::new();
    for _ in 0..replicas {
        let replica = TestApp::builder()
            .shared_database(&oracle.database_url)
            .redis_url(redis_url)
            .cache_mode(Mode::Both)
            .configure(with_default_prefix.clone())
            .spawn()
            .await;
        cached.push(replica);
    }
    let sql = sea_orm::Database::connect(&oracle.database_url)
        .await
        .expect("a plain connection to the database");
    Deployment {
        name,
        oracle,
        replicas: cached,
        viewers: Vec::new(),
        authors: Vec::new(),
        categories: Vec::new(),
        books: Vec::new(),
        loans: Vec::new(),
        foreign: Vec::new(),
        sql,
        cursors: std::sync::Mutex::default(),
    }
}

/// The starting data, all written through replica 0 so that every replica
/// sees every group move the same way: each author gets `books_per_author`
/// books, and each of `members` members borrows two books no one else has.
async fn populate(
    d: &mut Deployment,
    rng: &mut Rng,
    authors: &[&str],
    categories: &[&str],
    books_per_author: usize,
    members: usize,
) {
    let app = &d.replicas[0];
    let librarian = app.librarian().await;
    for name in authors {
        d.authors.push(app.create_author(&librarian, name).await);
    }
    for name in categories {
        d.categories
            .push(app.create_category(&librarian, name).await);
    }
    for i in 0..authors.len() * books_per_author {
        let mut input = book_input(rng, &d.authors[i % authors.len()], &d.categories);
        input["isbn"] = json!(isbn(i as u64));
        let data = app
            .data(Some(&librarian), CREATE_BOOK, json!({ "input": input }))
            .await;
        d.books.push(id_in(&data["createBook"]));
    }
    d.viewers.push(Viewer {
        name: "anonymous".into(),
        token: None,
        email: None,
    });
    d.viewers.push(Viewer {
        name: "the librarian".into(),
        token: Some(librarian),
        email: None,
    });
    assert!(2 * members <= d.books.len(), "two books per member");
    for k in 0..members {
        let email = format!("member{}@{}.test", k + 1, d.name.to_lowercase());
        let token = app.member(&email).await;
        for book in [2 * k, 2 * k + 1] {
            let data = app
                .data(Some(&token), BORROW_BOOK, json!({ "id": d.books[book] }))
                .await;
            d.loans.push((d.viewers.len(), id_in(&data["borrowBook"])));
        }
        d.viewers.push(Viewer {
            name: email.clone(),
            token: Some(token),
            email: Some(email),
        });
    }
}

impl Deployment {
    /// Keeps the cursors of the oracle's `answer` to `request`, under the
    /// list they belong to (at most 40 a list).
    fn harvest(&self, request: &Request, answer: &Value) {
        fn cursors(value: &Value, out: &mut Vec<String>) {
            match value {
                Value::Object(object) => {
                    if let Some(cursor) = object.get("cursor").and_then(Value::as_str) {
                        out.push(cursor.to_owned());
                    }
                    object.values().for_each(|value| cursors(value, out));
                }
                Value::Array(values) => values.iter().for_each(|value| cursors(value, out)),
                _ => {}
            }
        }
        if !request.shape.ends_with("Connection") {
            return;
        }
        let mut found = Vec::new();
        cursors(&answer["data"], &mut found);
        if found.is_empty() {
            return;
        }
        let key = cursor_pool(request.shape, request.viewer, &request.variables);
        let mut pools = self.cursors.lock().unwrap();
        let pool = pools.entry(key).or_default();
        for cursor in found {
            if !pool.contains(&cursor) {
                if pool.len() >= 40 {
                    pool.remove(0);
                }
                pool.push(cursor);
            }
        }
    }

    /// A cursor for a connection read: mostly one of this list's, sometimes
    /// none, another list's or garbage (both refused alike).
    fn cursor(&self, rng: &mut Rng, shape: &str, viewer: usize, variables: &Value) -> Value {
        let pools = self.cursors.lock().unwrap();
        let key = cursor_pool(shape, viewer, variables);
        match rng.below(12) {
            0 | 1 => Value::Null,
            2 if !pools.is_empty() => {
                let others: Vec<&Vec<String>> = pools.values().collect();
                let other = rng.pick(&others);
                json!(rng.pick(other))
            }
            3 if rng.one_in(3) => json!("not-a-cursor"),
            _ => match pools.get(&key) {
                Some(pool) if !pool.is_empty() => json!(rng.pick(pool)),
                _ => Value::Null,
            },
        }
    }

    fn catalogue_ids(&self) -> Vec<String> {
        [&self.books, &self.authors, &self.categories]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }

    /// Records what a successful write created.
    fn apply(&mut self, effect: &Effect, body: &Value) {
        let Some(created) = body["data"]
            .as_object()
            .and_then(|data| data.values().next())
            .filter(|created| !created.is_null())
        else {
            return; // refused: nothing was created (the field is null)
        };
        match effect {
            Effect::Nothing => {}
            Effect::Author => self.authors.push(id_in(created)),
            Effect::Category => self.categories.push(id_in(created)),
            Effect::Book => self.books.push(id_in(created)),
            Effect::Loan(viewer) => self.loans.push((*viewer, id_in(created))),
            Effect::Member(email) => self.viewers.push(Viewer {
                name: email.clone(),
                token: Some(
                    created["token"]
                        .as_str()
                        .unwrap_or_else(|| panic!("register answers a token: {body}"))
                        .to_owned(),
                ),
                email: Some(email.clone()),
            }),
        }
    }
}

/// The list a connection read pages through: its shape, its arguments but
/// the paging ones, and whose it is when private.
fn cursor_pool(shape: &str, viewer: usize, variables: &Value) -> String {
    let mut list = variables.clone();
    if let Some(object) = list.as_object_mut() {
        for paging in ["first", "after", "last", "before"] {
            object.remove(paging);
        }
    }
    let whose = if shape == "myBorrowsConnection" {
        viewer
    } else {
        0
    };
    format!("{shape}|{whose}|{list}")
}

/// `first` with `after`, or `last` with `before`: 0 to 5 items, now and
/// then a size or a combination that is refused.
fn slice_arguments(rng: &mut Rng, cursor: Value) -> Value {
    let size = if rng.one_in(30) {
        *rng.pick(&[-1, 101])
    } else {
        rng.below(6) as i64
    };
    match rng.below(10) {
        0 => json!({ "first": size, "last": size }),
        1..=4 => json!({ "last": size, "before": cursor }),
        _ => json!({ "first": size, "after": cursor }),
    }
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(into), Value::Object(from)) = (into.as_object_mut(), from) {
        into.extend(from);
    }
}

fn id_in(object: &Value) -> String {
    object["id"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an object with an id, got {object}"))
        .to_owned()
}

// ---------------------------------------------------------------------------
// Requests

/// One GraphQL request by one viewer of a deployment.
#[derive(Clone)]
struct Request {
    /// The root field, for the report.
    shape: &'static str,
    viewer: usize,
    query: String,
    variables: Value,
}

/// What a write creates, recorded when it succeeds.
enum Effect {
    Nothing,
    Author,
    Category,
    Book,
    Loan(usize),
    Member(String),
}

/// A burst operation: a read (`effect: None`) or a write, on one replica.
struct Op {
    deployment: usize,
    replica: usize,
    request: Request,
    effect: Option<Effect>,
}

fn random_op(rng: &mut Rng, deployments: &[Deployment]) -> Op {
    // A gets most of the traffic; B enough to keep it warm and moving.
    let deployment = if rng.below(10) < 7 { 0 } else { 1 };
    let d = &deployments[deployment];
    let replica = rng.below(d.replicas.len());
    if rng.below(10) < 4 {
        let (request, effect) = if rng.one_in(8) {
            sql_write(rng, d)
        } else {
            random_write(rng, d)
        };
        Op {
            deployment,
            replica,
            request,
            effect: Some(effect),
        }
    } else {
        Op {
            deployment,
            replica,
            request: random_read(rng, d),
            effect: None,
        }
    }
}

/// Every query shape of the schema, with nested fields, random arguments
/// and a random viewer (private shapes mostly by someone signed in).
fn random_read(rng: &mut Rng, d: &Deployment) -> Request {
    let anyone = rng.below(d.viewers.len());
    let signed_in = if rng.one_in(8) {
        ANONYMOUS
    } else {
        1 + rng.below(d.viewers.len() - 1)
    };
    let (shape, viewer, query, variables) = match rng.below(17) {
        0 | 1 => (
            "book",
            anyone,
            format!("query($id: ID!) {{ book(id: $id) {{ {BOOK} }} }}"),
            json!({ "id": some_id(rng, d, &d.books) }),
        ),
        2 | 3 => {
            let (page, size) = paging(rng);
            let mut variables = json!({ "page": page, "size": size });
            if !rng.one_in(4) {
                variables["filter"] = book_filter(rng, d);
            }
            if !rng.one_in(4) {
                variables["order"] = json!(rng.pick(&[
                    "TITLE_ASC",
                    "TITLE_DESC",
                    "PRICE_ASC",
                    "PRICE_DESC",
                    "PUBLISHED_DESC",
                    "NEWEST",
                ]));
            }
            (
                "books",
                anyone,
                format!(
                    "query($filter: BookFilter, $order: BookOrder, $page: Int!, $size: Int!) {{ \
                     books(filter: $filter, orderBy: $order, page: $page, pageSize: $size) \
                     {{ {PAGE} items {{ {BOOK} }} }} }}"
                ),
                variables,
            )
        }
        4 => {
            let (page, size) = paging(rng);
            (
                "searchBooks",
                anyone,
                format!(
                    "query($q: String!, $page: Int!, $size: Int!) {{ \
                     searchBooks(query: $q, page: $page, pageSize: $size) \
                     {{ {PAGE} items {{ {BOOK} }} }} }}"
                ),
                json!({ "q": search_text(rng, d), "page": page, "size": size }),
            )
        }
        5 | 6 => {
            let (page, size) = paging(rng);
            (
                "author",
                anyone,
                format!(
                    "query($id: ID!, $page: Int!, $size: Int!) {{ author(id: $id) {{ \
                     id name bio bookCount books(page: $page, pageSize: $size) {{ {PAGE} \
                     items {{ id title price copiesAvailable author {{ id name }} category {{ name }} }} \
                     }} }} }}"
                ),
                json!({ "id": some_id(rng, d, &d.authors), "page": page, "size": size }),
            )
        }
        7 => {
            let (page, size) = paging(rng);
            (
                "authors",
                anyone,
                format!(
                    "query($page: Int!, $size: Int!) {{ authors(page: $page, pageSize: $size) \
                     {{ {PAGE} items {{ id name bio bookCount }} }} }}"
                ),
                json!({ "page": page, "size": size }),
            )
        }
        8 => (
            "category",
            anyone,
            "query($id: ID!) { category(id: $id) { id name bookCount } }".into(),
            json!({ "id": some_id(rng, d, &d.categories) }),
        ),
        9 => (
            "categories",
            anyone,
            "{ categories { id name bookCount } }".into(),
            json!({}),
        ),
        10 => ("statistics", anyone, STATISTICS.into(), json!({})),
        11 => ("me", signed_in, format!("{{ me {{ {USER} }} }}"), json!({})),
        12 => {
            // A few lists, so that cursors are often reused.
            let mut variables = json!({ "order": rng.pick(&[
                "TITLE_ASC",
                "TITLE_DESC",
                "PRICE_ASC",
                "PRICE_DESC",
                "PUBLISHED_DESC",
                "NEWEST",
            ]) });
            match rng.below(4) {
                0 => variables["filter"] = json!({ "available": rng.one_in(2) }),
                1 if !d.categories.is_empty() => {
                    variables["filter"] = json!({ "categoryId": rng.pick(&d.categories) })
                }
                _ => {}
            }
            let shape = "booksConnection";
            let cursor = d.cursor(rng, shape, anyone, &variables);
            merge(&mut variables, slice_arguments(rng, cursor));
            (
                shape,
                anyone,
                format!(
                    "query($filter: BookFilter, $order: BookOrder, $first: Int, $after: String, \
                     $last: Int, $before: String) {{ booksConnection(filter: $filter, \
                     orderBy: $order, first: $first, after: $after, last: $last, \
                     before: $before) {{ {CONNECTION} node {{ {BOOK} }} }} }} }}"
                ),
                variables,
            )
        }
        13 => {
            let shape = "searchBooksConnection";
            let mut variables = json!({ "q": rng.pick(&["e", "le", "so", "ubik"]) });
            let cursor = d.cursor(rng, shape, anyone, &variables);
            merge(&mut variables, slice_arguments(rng, cursor));
            (
                shape,
                anyone,
                format!(
                    "query($q: String!, $first: Int, $after: String, $last: Int, \
                     $before: String) {{ searchBooksConnection(query: $q, first: $first, \
                     after: $after, last: $last, before: $before) \
                     {{ {CONNECTION} node {{ {BOOK} }} }} }} }}"
                ),
                variables,
            )
        }
        14 => {
            let shape = "authorBooksConnection";
            let mut variables = json!({ "id": some_id(rng, d, &d.authors) });
            let cursor = d.cursor(rng, shape, anyone, &variables);
            merge(&mut variables, slice_arguments(rng, cursor));
            (
                shape,
                anyone,
                format!(
                    "query($id: ID!, $first: Int, $after: String, $last: Int, \
                     $before: String) {{ author(id: $id) {{ id bookCount \
                     booksConnection(first: $first, after: $after, last: $last, \
                     before: $before) {{ {CONNECTION} node {{ id title price \
                     copiesAvailable author {{ id name }} }} }} }} }} }}"
                ),
                variables,
            )
        }
        15 => {
            let shape = "myBorrowsConnection";
            let mut variables = json!({});
            if !rng.one_in(3) {
                variables["status"] = json!(rng.pick(&["ALL", "ACTIVE", "RETURNED", "OVERDUE"]));
            }
            let cursor = d.cursor(rng, shape, signed_in, &variables);
            merge(&mut variables, slice_arguments(rng, cursor));
            (
                shape,
                signed_in,
                format!(
                    "query($status: BorrowStatus, $first: Int, $after: String, $last: Int, \
                     $before: String) {{ me {{ id }} myBorrowsConnection(status: $status, \
                     first: $first, after: $after, last: $last, before: $before) \
                     {{ {CONNECTION} node {{ {BORROW} }} }} }} }}"
                ),
                variables,
            )
        }
        _ => {
            let (page, size) = paging(rng);
            let mut variables = json!({ "page": page, "size": size });
            if !rng.one_in(3) {
                variables["status"] = json!(rng.pick(&["ALL", "ACTIVE", "RETURNED", "OVERDUE"]));
            }
            (
                "myBorrows",
                signed_in,
                format!(
                    "query($status: BorrowStatus, $page: Int!, $size: Int!) {{ me {{ id email }} \
                     myBorrows(status: $status, page: $page, pageSize: $size) \
                     {{ {PAGE} items {{ {BORROW} }} }} }}"
                ),
                variables,
            )
        }
    };
    Request {
        shape,
        viewer,
        query,
        variables,
    }
}

const CREATE_BOOK: &str = "mutation($input: CreateBookInput!) { createBook(input: $input) \
                           { id title copiesAvailable author { name bookCount } category { name bookCount } } }";
const BORROW_BOOK: &str = "mutation($id: ID!) { borrowBook(bookId: $id) \
                           { id dueAt book { title copiesAvailable } user { email } } }";

/// Every mutation, with valid and some refused inputs; catalogue writes
/// mostly by the librarian, sometimes by someone who may not.
fn random_write(rng: &mut Rng, d: &Deployment) -> (Request, Effect) {
    let manager = if rng.one_in(12) {
        rng.below(d.viewers.len())
    } else {
        LIBRARIAN
    };
    let (shape, viewer, query, variables, effect): (_, _, &str, _, _) = match rng.below(20) {
        0 => {
            let mut input = json!({ "name": person(rng) });
            if rng.one_in(2) {
                input["bio"] = json!(format!("Wrote {}.", rng.pick(&WORDS)));
            }
            (
                "createAuthor",
                manager,
                "mutation($input: CreateAuthorInput!) { createAuthor(input: $input) { id name bookCount } }",
                json!({ "input": input }),
                Effect::Author,
            )
        }
        1 => {
            let mut input = Map::new();
            if !rng.one_in(3) {
                input.insert("name".into(), json!(person(rng)));
            }
            if rng.one_in(2) {
                let bio = (!rng.one_in(3)).then(|| format!("Loved {}.", rng.pick(&WORDS)));
                input.insert("bio".into(), json!(bio));
            }
            (
                "updateAuthor",
                manager,
                "mutation($id: ID!, $input: UpdateAuthorInput!) { updateAuthor(id: $id, input: $input) { id name bio } }",
                json!({ "id": some_id(rng, d, &d.authors), "input": input }),
                Effect::Nothing,
            )
        }
        2 => (
            "deleteAuthor",
            manager,
            "mutation($id: ID!) { deleteAuthor(id: $id) }",
            json!({ "id": recent_id(rng, d, &d.authors) }),
            Effect::Nothing,
        ),
        3 => (
            "createCategory",
            manager,
            "mutation($input: CreateCategoryInput!) { createCategory(input: $input) { id name bookCount } }",
            json!({ "input": { "name": format!("{} Studies", rng.pick(&WORDS)) } }),
            Effect::Category,
        ),
        4 => (
            "updateCategory",
            manager,
            "mutation($id: ID!, $input: UpdateCategoryInput!) { updateCategory(id: $id, input: $input) { id name } }",
            json!({
                "id": some_id(rng, d, &d.categories),
                "input": { "name": format!("{} Shelf", rng.pick(&WORDS)) },
            }),
            Effect::Nothing,
        ),
        5 => (
            "deleteCategory",
            manager,
            "mutation($id: ID!) { deleteCategory(id: $id) }",
            json!({ "id": recent_id(rng, d, &d.categories) }),
            Effect::Nothing,
        ),
        6 | 7 => {
            let author = some_id(rng, d, &d.authors);
            let mut input = book_input(rng, &author, &d.categories);
            if rng.one_in(10) {
                input["isbn"] = json!(isbn(rng.below(d.books.len()) as u64)); // most likely taken
            }
            (
                "createBook",
                manager,
                CREATE_BOOK,
                json!({ "input": input }),
                Effect::Book,
            )
        }
        8..=10 => {
            let mut input = Map::new();
            while input.is_empty() {
                if rng.one_in(3) {
                    input.insert("title".into(), json!(title(rng)));
                }
                if rng.one_in(3) {
                    input.insert("price".into(), json!(price(rng)));
                }
                if rng.one_in(4) {
                    input.insert("publishedYear".into(), json!(year(rng)));
                }
                if rng.one_in(3) {
                    input.insert("copiesTotal".into(), json!(rng.below(4)));
                }
                if rng.one_in(4) {
                    input.insert("authorId".into(), json!(some_id(rng, d, &d.authors)));
                }
                if rng.one_in(4) {
                    input.insert("categoryId".into(), json!(some_id(rng, d, &d.categories)));
                }
                if rng.one_in(8) {
                    input.insert("isbn".into(), json!(isbn(rng.next_u64() % 1_000_000_000)));
                }
            }
            (
                "updateBook",
                manager,
                "mutation($id: ID!, $input: UpdateBookInput!) { updateBook(id: $id, input: $input) \
                 { id title price copiesTotal copiesAvailable author { name } category { name } } }",
                json!({ "id": some_id(rng, d, &d.books), "input": input }),
                Effect::Nothing,
            )
        }
        11 => (
            "deleteBook",
            manager,
            "mutation($id: ID!) { deleteBook(id: $id) }",
            json!({ "id": some_id(rng, d, &d.books) }),
            Effect::Nothing,
        ),
        12..=15 => {
            let viewer = if rng.one_in(15) {
                ANONYMOUS
            } else {
                1 + rng.below(d.viewers.len() - 1)
            };
            (
                "borrowBook",
                viewer,
                BORROW_BOOK,
                json!({ "id": some_id(rng, d, &d.books) }),
                Effect::Loan(viewer),
            )
        }
        16 | 17 if !d.loans.is_empty() => {
            let (borrower, loan) = rng.pick(&d.loans).clone();
            let viewer = match rng.below(10) {
                0 => LIBRARIAN,
                1 => rng.below(d.viewers.len()),
                _ => borrower,
            };
            (
                "returnBook",
                viewer,
                "mutation($id: ID!) { returnBook(borrowId: $id) \
                 { id returnedAt book { title copiesAvailable } user { email } } }",
                json!({ "id": loan }),
                Effect::Nothing,
            )
        }
        16..=18 => {
            let email = if rng.one_in(6) {
                d.viewers
                    .iter()
                    .filter_map(|viewer| viewer.email.clone())
                    .next()
                    .unwrap_or_else(|| "member1@taken.test".into())
            } else {
                format!("reader-{:x}@{}.test", rng.next_u64(), d.name.to_lowercase())
            };
            (
                "register",
                ANONYMOUS,
                "mutation($input: RegisterInput!) { register(input: $input) { token user { id email role } } }",
                json!({ "input": { "email": email, "name": person(rng), "password": PASSWORD } }),
                Effect::Member(email),
            )
        }
        _ => {
            let members: Vec<&Viewer> = d.viewers.iter().filter(|v| v.email.is_some()).collect();
            let email = rng
                .pick(&members)
                .email
                .clone()
                .expect("members have e-mails");
            let password = if rng.one_in(5) { "wrong-password" } else { PASSWORD };
            (
                "login",
                ANONYMOUS,
                "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token user { id email name role } } }",
                json!({ "e": email, "p": password }),
                Effect::Nothing,
            )
        }
    };
    let request = Request {
        shape,
        viewer,
        query: query.to_owned(),
        variables,
    };
    (request, effect)
}

/// The fresh-start sweep for one replica: every member's and the
/// librarian's `me` and `myBorrows`, every author's `books` (same arguments
/// for all, so only the identity in the key tells them apart), the public
/// lists and ids that exist only in the other deployment.
fn sweep(d: &Deployment) -> Vec<Request> {
    let request = |shape, viewer, query: String, variables| Request {
        shape,
        viewer,
        query,
        variables,
    };
    let mut requests = Vec::new();
    for viewer in LIBRARIAN..d.viewers.len() {
        requests.push(request(
            "myBorrows",
            viewer,
            format!("{{ me {{ {USER} }} myBorrows {{ {PAGE} items {{ {BORROW} }} }} }}"),
            json!({}),
        ));
    }
    for author in &d.authors {
        requests.push(request(
            "author",
            ANONYMOUS,
            format!(
                "query($id: ID!) {{ author(id: $id) {{ id name bookCount \
                 books {{ {PAGE} items {{ id title author {{ name }} }} }} }} }}"
            ),
            json!({ "id": author }),
        ));
    }
    requests.push(request(
        "books",
        ANONYMOUS,
        format!("{{ books {{ {PAGE} items {{ {BOOK} }} }} }}"),
        json!({}),
    ));
    requests.push(request(
        "authors",
        ANONYMOUS,
        format!("{{ authors {{ {PAGE} items {{ id name bookCount }} }} }}"),
        json!({}),
    ));
    requests.push(request(
        "categories",
        ANONYMOUS,
        "{ categories { id name bookCount } }".into(),
        json!({}),
    ));
    requests.push(request(
        "statistics",
        ANONYMOUS,
        STATISTICS.into(),
        json!({}),
    ));
    requests.push(request(
        "searchBooks",
        ANONYMOUS,
        format!("{{ searchBooks(query: \"e\") {{ {PAGE} items {{ id title }} }} }}"),
        json!({}),
    ));
    for id in d.foreign.iter().take(2) {
        requests.push(request(
            "book",
            ANONYMOUS,
            format!("query($id: ID!) {{ book(id: $id) {{ {BOOK} }} }}"),
            json!({ "id": id }),
        ));
    }
    requests
}

// Arguments -----------------------------------------------------------------

/// Mostly a known id (deleted ones included), sometimes one that exists
/// only in the other deployment, an unknown one or a malformed one.
fn some_id(rng: &mut Rng, d: &Deployment, pool: &[String]) -> String {
    match rng.below(20) {
        0 | 1 if !d.foreign.is_empty() => rng.pick(&d.foreign).clone(),
        2 => uuid::Uuid::from_u64_pair(rng.next_u64(), rng.next_u64()).to_string(),
        3 if rng.one_in(4) => "not-an-id".into(),
        _ if !pool.is_empty() => rng.pick(pool).clone(),
        _ => uuid::Uuid::from_u64_pair(rng.next_u64(), rng.next_u64()).to_string(),
    }
}

/// Half the time one of the newest ids, which deletes are likely to free.
fn recent_id(rng: &mut Rng, d: &Deployment, pool: &[String]) -> String {
    if rng.one_in(2) && !pool.is_empty() {
        pool[pool.len() - 1 - rng.below(pool.len().min(3))].clone()
    } else {
        some_id(rng, d, pool)
    }
}

fn paging(rng: &mut Rng) -> (i64, i64) {
    if rng.one_in(30) {
        return *rng.pick(&[(0, 10), (1, 0), (1, 101)]); // BAD_USER_INPUT
    }
    let page = if rng.one_in(2) {
        1
    } else {
        2 + rng.below(3) as i64
    };
    (page, *rng.pick(&[1, 2, 3, 5, 10, 20, 50]))
}

fn book_filter(rng: &mut Rng, d: &Deployment) -> Value {
    let mut filter = Map::new();
    if rng.one_in(3) {
        filter.insert("authorId".into(), json!(some_id(rng, d, &d.authors)));
    }
    if rng.one_in(3) {
        filter.insert("categoryId".into(), json!(some_id(rng, d, &d.categories)));
    }
    if rng.one_in(4) {
        filter.insert("minPrice".into(), json!(price(rng)));
    }
    if rng.one_in(4) {
        filter.insert("maxPrice".into(), json!(price(rng)));
    }
    if rng.one_in(4) {
        filter.insert("publishedFrom".into(), json!(year(rng)));
    }
    if rng.one_in(4) {
        filter.insert("publishedTo".into(), json!(year(rng)));
    }
    if rng.one_in(3) {
        filter.insert("available".into(), json!(rng.one_in(2)));
    }
    Value::Object(filter)
}

/// Words of titles and names, whole or in pieces (which a retitle or a
/// rename can make match or stop matching), and terms that match nothing,
/// match everything or match only under one database's case folding.
fn search_text(rng: &mut Rng, d: &Deployment) -> String {
    let word = rng.pick(&WORDS).to_lowercase();
    match rng.below(9) {
        0 => word.chars().take(3).collect(),
        1 => rng
            .pick(&[
                "le",
                "k.",
                "%",
                "_",
                "zzz",
                " ",
                "e",
                "ist",
                "kel",
                "i\u{307}st",
            ])
            .to_string(),
        2 if rng.one_in(2) => {
            // three or four characters from inside a word
            let skip = 1 + rng.below(3);
            word.chars().skip(skip).take(3 + rng.below(2)).collect()
        }
        2 => rng.pick(&NAMES).to_string(),
        3 => {
            // a piece of one of this deployment's author names, as written
            let names: &[&str] = if d.name == "A" {
                &A_AUTHORS
            } else {
                &B_AUTHORS
            };
            rng.pick(names)
                .split(' ')
                .next_back()
                .unwrap_or("e")
                .to_owned()
        }
        _ => word,
    }
}

fn book_input(rng: &mut Rng, author: &str, categories: &[String]) -> Value {
    let mut input = json!({
        "title": title(rng),
        "isbn": isbn(rng.next_u64() % 1_000_000_000),
        "price": price(rng),
        "copiesTotal": 1 + rng.below(3),
        "authorId": author,
        "categoryId": categories.get(rng.below(categories.len().max(1))).cloned().unwrap_or_default(),
    });
    if !rng.one_in(5) {
        input["publishedYear"] = json!(year(rng));
    }
    input
}

fn title(rng: &mut Rng) -> String {
    format!("{} {}", rng.pick(&WORDS), rng.pick(&WORDS))
}

fn person(rng: &mut Rng) -> String {
    format!("{} {}", rng.pick(&NAMES), rng.pick(&NAMES))
}

fn price(rng: &mut Rng) -> String {
    let cents = rng.below(5_000);
    format!("{}.{:02}", cents / 100, cents % 100)
}

fn year(rng: &mut Rng) -> Option<i64> {
    (!rng.one_in(6)).then(|| 1950 + rng.below(75) as i64)
}

// ---------------------------------------------------------------------------
// Running and comparing

async fn send(d: &Deployment, app: &TestApp, request: &Request) -> (u16, Value) {
    if request.shape == SQL {
        return run_sql(d, &request.variables).await;
    }
    let token = d.viewers[request.viewer].token.as_deref();
    app.post(token, &request.query, request.variables.clone())
        .await
}

/// The shape of a write made with plain SQL, not through the service.
const SQL: &str = "sql";

/// A write another program makes on the deployment's database: one of
/// [`run_sql`]'s statements, with random values.
fn sql_write(rng: &mut Rng, d: &Deployment) -> (Request, Effect) {
    let kind = if d.books.is_empty() { 3 } else { rng.below(5) };
    let id = match kind {
        2 if !d.authors.is_empty() => rng.pick(&d.authors).clone(),
        _ => d
            .books
            .first()
            .map_or_else(String::new, |_| rng.pick(&d.books).clone()),
    };
    let text = match kind {
        2 => person(rng),
        _ => format!("{} {}", rng.pick(&WORDS), rng.pick(&WORDS)),
    };
    let request = Request {
        shape: SQL,
        viewer: ANONYMOUS,
        query: String::new(),
        variables: json!({
            "kind": kind, "id": id, "text": text, "n": 100 + rng.below(4900) as i64,
        }),
    };
    (request, Effect::Nothing)
}

/// Runs a [`sql_write`] on the deployment's plain connection.
async fn run_sql(d: &Deployment, write: &Value) -> (u16, Value) {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    let id = write["id"]
        .as_str()
        .and_then(|id| uuid::Uuid::parse_str(id).ok());
    let text = write["text"].as_str().unwrap_or_default().to_owned();
    let n = write["n"].as_i64().unwrap_or(100);
    let (sql, values): (&str, Vec<sea_orm::Value>) = match (write["kind"].as_u64(), id) {
        (Some(0), Some(id)) => (
            "UPDATE books SET title = ? WHERE id = ?",
            vec![text.into(), id.into()],
        ),
        (Some(1), Some(id)) => (
            "UPDATE books SET price_cents = ? WHERE id = ?",
            vec![n.into(), id.into()],
        ),
        (Some(2), Some(id)) => (
            "UPDATE authors SET name = ? WHERE id = ?",
            vec![text.into(), id.into()],
        ),
        (Some(4), Some(id)) => (
            "UPDATE books SET copies_total = copies_total + 1, \
             copies_available = copies_available + 1 WHERE id = ?",
            vec![id.into()],
        ),
        _ => (
            "UPDATE books SET price_cents = price_cents + ?",
            vec![(n % 7).into()],
        ),
    };
    let backend = d.sql.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            let mut numbered = String::new();
            for (n, part) in sql.split('?').enumerate() {
                if n > 0 {
                    numbered.push_str(&format!("${n}"));
                }
                numbered.push_str(part);
            }
            numbered
        }
        _ => sql.to_owned(),
    };
    d.sql
        .execute(Statement::from_sql_and_values(backend, sql.clone(), values))
        .await
        .unwrap_or_else(|err| panic!("{sql}: {err}"));
    (200, json!({}))
}

/// Runs a burst: its writes one after another, its reads in concurrent
/// lanes beside them (unchecked: they warm L1 and L2, and race the writes'
/// invalidations). Returns the writes' bodies in order.
async fn run_burst(deployments: &[Deployment], plan: &[Op]) -> Vec<Value> {
    let target = |op: &Op| {
        let d = &deployments[op.deployment];
        (d, &d.replicas[op.replica])
    };
    let writes = async {
        let mut bodies = Vec::new();
        for op in plan.iter().filter(|op| op.effect.is_some()) {
            let (d, app) = target(op);
            bodies.push(send(d, app, &op.request).await.1);
        }
        bodies
    };
    let reads: Vec<&Op> = plan.iter().filter(|op| op.effect.is_none()).collect();
    let lanes = (0..READ_LANES).map(|lane| {
        let reads = &reads;
        async move {
            for op in reads.iter().skip(lane).step_by(READ_LANES) {
                let (d, app) = target(op);
                send(d, app, &op.request).await;
            }
        }
    });
    let (bodies, _) = tokio::join!(writes, futures_util::future::join_all(lanes));
    bodies
}

/// What a cached replica and the oracle must agree on: the HTTP status, the
/// `data`, and each error's code and path.
fn answer((status, body): (u16, Value)) -> Value {
    let errors: Vec<Value> = body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|error| json!({ "code": error["extensions"]["code"], "path": error["path"] }))
                .collect()
        })
        .unwrap_or_default();
    json!({ "status": status, "data": body["data"], "errors": errors })
}

/// One answer of a cached replica that differs from the oracle's.
struct Mismatch {
    deployment: &'static str,
    shape: &'static str,
    /// Where and by whom: the replica, its cache state, the viewer, which read.
    context: String,
    request: String,
    difference: String,
    cached: String,
    oracle: String,
}

/// At a quiescent point: sends `requests[deployment][replica]` to each cached
/// replica, twice each (cold, then warm), and the same requests to the
/// deployment's oracle; fails on any difference, reporting them all.
async fn check(seed: u64, point: &str, deployments: &[Deployment], requests: &[Vec<Vec<Request>>]) {
    let mut mismatches = Vec::new();
    for (d, per_replica) in deployments.iter().zip(requests) {
        for (replica, (app, requests)) in d.replicas.iter().zip(per_replica).enumerate() {
            for request in requests {
                let first = answer(send(d, app, request).await);
                let repeated = answer(send(d, app, request).await);
                let oracle = answer(send(d, &d.oracle, request).await);
                d.harvest(request, &oracle);
                for (read, cached) in [("first read", first), ("repeated (warm) read", repeated)] {
                    if cached != oracle {
                        let health = app.cache.health();
                        mismatches.push(Mismatch {
                            deployment: d.name,
                            shape: request.shape,
                            context: format!(
                                "deployment {name}, replica {name}{n} (cache {status}, pending \
                                 invalidations: {pending}), viewer {viewer}, {read}",
                                name = d.name,
                                n = replica + 1,
                                status = health.status,
                                pending = health.pending_invalidations,
                                viewer = d.viewers[request.viewer].name,
                            ),
                            request: format!("{} variables: {}", request.query, request.variables),
                            difference: first_difference("", &cached, &oracle).unwrap_or_default(),
                            cached: cached.to_string(),
                            oracle: oracle.to_string(),
                        });
                    }
                }
            }
        }
    }
    if mismatches.is_empty() {
        return;
    }
    // (deployment, shape) -> (how many, the index of the first)
    let mut tally: BTreeMap<(&str, &str), (usize, usize)> = BTreeMap::new();
    for (index, mismatch) in mismatches.iter().enumerate() {
        tally
            .entry((mismatch.deployment, mismatch.shape))
            .or_insert((0, index))
            .0 += 1;
    }
    let mut report = format!(
        "cached answers differ from the oracle at {point}: {} of them \
         (seed {seed}: rerun with BIBLIO_DIFF_SEED={seed})\n",
        mismatches.len()
    );
    for ((deployment, shape), (count, _)) in &tally {
        let _ = writeln!(report, "  deployment {deployment}, {shape}: {count}");
    }
    report.push_str("The first of each, in the order met (answers clipped after the first):\n");
    let mut firsts: Vec<usize> = tally.values().map(|(_, first)| *first).collect();
    firsts.sort_unstable();
    for (i, m) in firsts
        .into_iter()
        .map(|index| &mismatches[index])
        .enumerate()
    {
        let limit = if i == 0 { usize::MAX } else { 400 };
        let _ = writeln!(
            report,
            "--- {}\nrequest: {}\nfirst difference: {}\ncached: {}\noracle: {}",
            m.context,
            m.request,
            clip(&m.difference, limit),
            clip(&m.cached, limit),
            clip(&m.oracle, limit),
        );
    }
    panic!("{report}");
}

fn clip(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        Some((end, _)) => format!("{}… ({} more bytes)", &text[..end], text.len() - end),
        None => text.to_owned(),
    }
}

/// The path of the first place where two answers differ, with both values.
fn first_difference(path: &str, cached: &Value, oracle: &Value) -> Option<String> {
    match (cached, oracle) {
        (Value::Object(c), Value::Object(o)) => {
            let keys: std::collections::BTreeSet<&String> = c.keys().chain(o.keys()).collect();
            keys.into_iter().find_map(|key| {
                let path = format!("{path}.{key}");
                first_difference(
                    &path,
                    c.get(key).unwrap_or(&Value::Null),
                    o.get(key).unwrap_or(&Value::Null),
                )
            })
        }
        (Value::Array(c), Value::Array(o)) => (0..c.len().max(o.len())).find_map(|i| {
            let path = format!("{path}[{i}]");
            first_difference(
                &path,
                c.get(i).unwrap_or(&Value::Null),
                o.get(i).unwrap_or(&Value::Null),
            )
        }),
        _ if cached == oracle => None,
        _ => Some(format!("{path}: cached {cached}, oracle {oracle}")),
    }
}

// ---------------------------------------------------------------------------
// Seed and size

fn seed() -> u64 {
    match std::env::var("BIBLIO_DIFF_SEED") {
        Ok(seed) => seed.trim().parse().unwrap_or_else(|_| {
            panic!("BIBLIO_DIFF_SEED must be an unsigned integer, not {seed:?}")
        }),
        Err(_) => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|elapsed| elapsed.as_nanos() as u64)
                .unwrap_or_default();
            Rng(nanos ^ (u64::from(std::process::id()) << 32)).next_u64()
        }
    }
}

fn ops() -> usize {
    match std::env::var("BIBLIO_DIFF_OPS") {
        Ok(ops) => ops.trim().parse().unwrap_or_else(|_| {
            panic!("BIBLIO_DIFF_OPS must be a count of operations, not {ops:?}")
        }),
        Err(_) => DEFAULT_OPS,
    }
}
