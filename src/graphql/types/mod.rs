//! The schema's object, input and enum types. Objects wrap entity models and
//! resolve their relations through the request's loaders.
mod author;
mod book;
mod borrow;
mod cache_stats;
mod category;
mod connection;
mod inputs;
mod paged;
mod statistics;
mod user;

pub use author::Author;
pub use book::{books_connection, Book, BookOrder, BookSliceOf};
pub use borrow::{BorrowRecord, BorrowStatus};
pub use cache_stats::CacheStats;
pub use category::Category;
pub use connection::{connection, Connected};
pub use inputs::*;
pub use paged::Paged;
pub use statistics::LibraryStatistics;
pub use user::{AuthPayload, User};

use async_graphql::ID;
use uuid::Uuid;

pub(crate) fn id(uuid: Uuid) -> ID {
    ID(uuid.to_string())
}
