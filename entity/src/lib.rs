//! sea-orm entities: one module per table. The schema itself lives in the
//! `migration` crate; these structs mirror it column for column.

pub mod author;
pub mod book;
pub mod borrow_record;
pub mod cache_outbox;
pub mod category;
pub mod persisted_document;
pub mod setting;
pub mod user;

pub mod prelude {
    pub use super::author::Entity as Author;
    pub use super::book::Entity as Book;
    pub use super::borrow_record::Entity as BorrowRecord;
    pub use super::category::Entity as Category;
    pub use super::setting::Entity as Setting;
    pub use super::user::Entity as User;
}
