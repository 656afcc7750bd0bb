use super::{Author, Book, BorrowRecord};
use crate::domain::Page;
use async_graphql::{OutputType, SimpleObject};

/// One page of a list, and where it sits in the whole.
#[derive(SimpleObject)]
#[graphql(concrete(name = "BookPage", params(Book)))]
#[graphql(concrete(name = "AuthorPage", params(Author)))]
#[graphql(concrete(name = "BorrowPage", params(BorrowRecord)))]
pub struct Paged<T: OutputType> {
    pub items: Vec<T>,
    /// Items in the whole list.
    pub total_count: i32,
    pub page: i32,
    pub page_size: i32,
    pub total_pages: i32,
    pub has_next_page: bool,
}

impl<T: OutputType> Paged<T> {
    pub fn new(page: Page<T>) -> Self {
        let clamp = |n: u64| i32::try_from(n).unwrap_or(i32::MAX);
        Self {
            total_count: clamp(page.total_count),
            page: page.request.page as i32,
            page_size: page.request.size as i32,
            total_pages: clamp(page.total_pages()),
            has_next_page: page.has_next_page(),
            items: page.items,
        }
    }
}
