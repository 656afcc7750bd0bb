//! Warming the cache (`biblio cache warm`, `serve --warm`): the reads
//! clients make most, made ahead of them, so that a replica's first
//! requests find Redis (and, for `serve --warm`, its own L1) full.
//!
//! What is read: every category with its book count, the statistics, the
//! first page of authors with their book counts, the first pages of the
//! default book list (default order and page size) with each book's author
//! and category and their counts, and the books lent most often with the
//! same. Each is a GraphQL query executed in process against the service's
//! own schema, as an anonymous client's request would be, rather than a
//! second copy of the loads its resolvers make: the keys (a page's
//! parameters include the defaults the schema fills in), codecs, TTLs,
//! version and sequence guards and priming are then the ones serving uses,
//! and cannot drift from them. An entry already in Redis is read, not
//! replaced.
use crate::auth::Viewer;
use crate::cache::{Filled, Kind};
use crate::db;
use crate::error::BoxError;
use crate::graphql::{build_schema, execute, BiblioSchema, Documents, Limits, Scope, Services};
use crate::responses::Reads;
use async_graphql::{Name, Request, Value, Variables};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How much to warm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Pages of the default book list, from the first.
    pub book_pages: u32,
    /// Their size: it is part of each page's key, so it must be what
    /// clients ask for (the schema's default is 20).
    pub page_size: u32,
    /// How many of the books lent most often.
    pub most_borrowed: u64,
}

impl Default for Plan {
    fn default() -> Self {
        Self {
            book_pages: 5,
            page_size: 20,
            most_borrowed: 50,
        }
    }
}

/// What a warm did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Queries run.
    pub steps: usize,
    /// Entries this warm stored in Redis, and their bytes.
    pub filled: Filled,
    /// Reads Redis answered: entries there already (left as they were), or
    /// stored by an earlier query of this warm.
    pub present: u64,
    /// How long it took.
    pub elapsed: Duration,
}

/// The selection made of every book warmed: the entities and counts a
/// book's readers usually ask for with it.
const BOOK_FIELDS: &str =
    "fragment WarmBook on Book { id title author { id name bookCount } category { id name bookCount } }";

/// Books by id per query: within the default limits (a test checks).
const BOOKS_PER_QUERY: usize = 20;

/// One query of the warm and its name, for progress.
struct Step {
    label: String,
    query: String,
    variables: Variables,
}

/// Runs warms through one deployment's services.
pub struct Warmer {
    services: Arc<Services>,
    /// A schema and document checker of the warm's own, with the default
    /// limits its queries are written within: they are the service's own,
    /// run in process, so the limits a deployment sets on clients'
    /// documents (any value is accepted, down to 0) are not theirs to meet.
    schema: BiblioSchema,
    documents: Documents,
}

impl Warmer {
    /// Warms through `services`' cache.
    pub fn new(services: Arc<Services>) -> Self {
        let limits = Limits::default();
        Self {
            services,
            schema: build_schema(limits),
            documents: Documents::new(1024 * 1024, limits),
        }
    }

    /// Runs `plan`, calling `progress` with (queries done, queries in all,
    /// what runs next) before each query and once at the end. Fails on the
    /// first query that fails, naming it; what was warmed stays warm.
    pub async fn run(
        &self,
        plan: &Plan,
        mut progress: impl FnMut(usize, usize, &str),
    ) -> Result<Report, BoxError> {
        let started = Instant::now();
        let metrics = self.services.cache.metrics();
        let (filled, present) = (metrics.filled(), l2_hits(self));
        let steps = self.steps(plan).await?;
        for (done, step) in steps.iter().enumerate() {
            progress(done, steps.len(), &step.label);
            self.execute(step).await?;
        }
        progress(steps.len(), steps.len(), "done");
        let now = metrics.filled();
        Ok(Report {
            steps: steps.len(),
            filled: Filled {
                entries: now.entries - filled.entries,
                bytes: now.bytes - filled.bytes,
            },
            present: l2_hits(self) - present,
            elapsed: started.elapsed(),
        })
    }

    async fn steps(&self, plan: &Plan) -> Result<Vec<Step>, BoxError> {
        let size = Value::from(plan.page_size);
        let mut steps = vec![
            Step {
                label: "categories".into(),
                query: "query WarmCategories { categories { id name bookCount } }".into(),
                variables: Variables::default(),
            },
            Step {
                label: "statistics".into(),
                query: "query WarmStatistics { statistics { totalBooks totalAuthors \
                        totalCategories totalMembers activeBorrows averagePrice \
                        booksByCategory { category { id name } count } } }"
                    .into(),
                variables: Variables::default(),
            },
            Step {
                label: "authors, page 1".into(),
                query: "query WarmAuthors($size: Int!) { authors(pageSize: $size) \
                        { totalCount items { id name bio bookCount } } }"
                    .into(),
                variables: variables([("size", size.clone())]),
            },
        ];
        for page in 1..=plan.book_pages {
            steps.push(Step {
                label: format!("books, page {page}"),
                query: format!(
                    "query WarmBooks($page: Int!, $size: Int!) {{ books(page: $page, pageSize: $size) \
                     {{ totalCount items {{ ...WarmBook }} }} }} {BOOK_FIELDS}"
                ),
                variables: variables([("page", Value::from(page)), ("size", size.clone())]),
            });
        }
        let popular = db::borrows::most_borrowed(&self.services.db, plan.most_borrowed).await?;
        let batches = popular.len().div_ceil(BOOKS_PER_QUERY);
        for (n, ids) in popular.chunks(BOOKS_PER_QUERY).enumerate() {
            steps.push(books_by_id(
                ids,
                format!("most borrowed books, {}/{batches}", n + 1),
            ));
        }
        Ok(steps)
    }

    async fn execute(&self, step: &Step) -> Result<(), BoxError> {
        let scope = Scope::new(
            self.services.clone(),
            Viewer::Anonymous,
            None,
            Arc::new(Reads::none()),
        );
        let request = Request::new(step.query.as_str())
            .variables(step.variables.clone())
            .data(scope);
        let response = execute(&self.schema, &self.documents, request).await;
        match response.errors.first() {
            None => Ok(()),
            Some(error) => Err(format!("warming {}: {}", step.label, error.message).into()),
        }
    }
}

/// How long `serve --warm` waits for Redis before it gives up warming.
const REDIS_WAIT: Duration = Duration::from_secs(10);

/// `serve --warm`: waits until the cache trusts Redis, warms with the
/// default plan, then clears `warming`, which holds `/readyz` at 503. The
/// cache is never a reason to keep a replica out of rotation, so a warm
/// that cannot reach Redis, or fails, is logged and the replica reports
/// ready all the same.
pub async fn at_start(warmer: Warmer, warming: Arc<AtomicBool>) {
    if warmer.services.cache.wait_until_trusted(REDIS_WAIT).await {
        match warmer.run(&Plan::default(), |_, _, _| {}).await {
            Ok(report) => tracing::info!(
                entries = report.filled.entries,
                bytes = report.filled.bytes,
                answered_by_redis = report.present,
                seconds = report.elapsed.as_secs_f64(),
                "cache warmed"
            ),
            Err(err) => tracing::warn!(error = %err, "warming the cache failed; serving cold"),
        }
    } else {
        tracing::warn!("--warm: Redis could not be reached or is not used; serving cold");
    }
    warming.store(false, Ordering::Release);
}

/// `b0: book(id: $b0) { ...WarmBook }` for each id, in one query.
fn books_by_id(ids: &[Uuid], label: String) -> Step {
    let mut parameters = Vec::with_capacity(ids.len());
    let mut fields = Vec::with_capacity(ids.len());
    let mut bound = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        parameters.push(format!("$b{i}: ID!"));
        fields.push(format!("b{i}: book(id: $b{i}) {{ ...WarmBook }}"));
        bound.push((format!("b{i}"), Value::from(id.to_string())));
    }
    Step {
        label,
        query: format!(
            "query WarmMostBorrowed({}) {{ {} }} {BOOK_FIELDS}",
            parameters.join(", "),
            fields.join(" ")
        ),
        variables: variables(bound),
    }
}

fn variables<K: AsRef<str>>(pairs: impl IntoIterator<Item = (K, Value)>) -> Variables {
    let mut variables = Variables::default();
    for (name, value) in pairs {
        variables.insert(Name::new(name), value);
    }
    variables
}

/// Every L2 hit so far: entries a warm found already there.
fn l2_hits(warmer: &Warmer) -> u64 {
    let metrics = warmer.services.cache.metrics();
    Kind::ALL
        .into_iter()
        .map(|kind| metrics.kind(kind).l2_hits)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn books_by_id_binds_one_variable_per_alias_within_the_alias_limit() {
        let ids: Vec<Uuid> = (0..BOOKS_PER_QUERY).map(|_| Uuid::now_v7()).collect();
        let step = books_by_id(&ids, "x".into());
        let document = async_graphql::parser::parse_query(&step.query).expect("it parses");
        crate::graphql::Limits::default()
            .check_document(&document)
            .expect("within the default limits");
        assert_eq!(step.variables.len(), ids.len());
        assert_eq!(
            step.variables.get(&Name::new("b19")),
            Some(&Value::from(ids[19].to_string()))
        );
    }
}
