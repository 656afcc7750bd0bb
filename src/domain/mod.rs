//! Validated values. Each `parse` is the one place its rule is checked, so
//! resolvers and the database layer only ever see values that passed.
mod credentials;
mod ids;
mod isbn;
mod money;
mod page;
mod search;
mod text;

pub use credentials::{Email, Password};
pub use ids::parse_id;
pub use isbn::Isbn;
pub use money::Money;
pub use page::{Page, PageRequest, MAX_PAGE_SIZE};
pub use search::SearchText;
pub use text::{optional_multiline_text, required_text};
