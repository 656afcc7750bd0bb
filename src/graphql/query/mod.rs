//! Read operations, by feature.
//!
//! # What a query costs
//! async-graphql refuses a query over `--max-complexity` before it runs any
//! of it. Every field costs 1 and a page multiplies what it holds by its page
//! size; a field that runs a query of its own when the cache misses also
//! costs what that query costs, in the same units, so that one request
//! within the limit cannot run more than a few dozen of them. The weights
//! were measured on the demo-sized data set (10,000 books, 2,000 authors,
//! 30,000 borrows; SQLite, release build, cache off, the process's CPU
//! clock): a cold page of 100 books with their authors and categories (500
//! units) took 18 ms, about 36 µs a unit; one uncached search 11 ms (24 ms
//! for a term matching most titles); a page of `books`, filtered or not,
//! 9 to 14 ms, when its total (`COUNT(*) OVER ()`) still read every
//! matching row (totals now come from tallies or an index walk, so the
//! weight errs on the safe side); a page of `authors` 2.5 ms; a page of `myBorrows` 0.17 ms. At the
//! default limit of 5,000 a request runs at most 16 searches or book pages.
//! A connection costs what its page list costs, its size (`first` or
//! `last`, 20 when neither) in place of `pageSize`: a slice is cheaper than
//! a deep page, never dearer.
mod catalogue;
mod monitoring;
mod viewer;

use async_graphql::MergedObject;

/// `searchBooks` and `books`: 9 to 24 ms a query, 250 to 650 units.
pub(super) const SCAN_COST: usize = 300;
/// `authors`: 2.5 ms a query, about 70 units.
pub(super) const AUTHORS_COST: usize = 70;
/// `myBorrows`: read by the member's index, 0.17 ms, about 5 units.
pub(super) const MY_BORROWS_COST: usize = 5;
/// `Author.books`: read by the author index, with its total; a little more
/// than `myBorrows` (estimated from it, not measured on its own), and once
/// per author of a page, so a page of 100 authors with their books costs
/// about 1,700 units.
pub(crate) const AUTHOR_BOOKS_COST: usize = 15;

#[derive(MergedObject, Default)]
pub struct Query(
    catalogue::CatalogueQuery,
    viewer::ViewerQuery,
    monitoring::MonitoringQuery,
);
