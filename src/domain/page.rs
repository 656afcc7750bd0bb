use crate::error::{Error, Result};

/// The largest `pageSize` accepted; query complexity counts a page as this
/// many items at most.
pub const MAX_PAGE_SIZE: i32 = 100;

/// A validated `page`/`pageSize` pair: page >= 1, page size 1..=100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PageRequest {
    pub page: u32,
    pub size: u32,
}

impl PageRequest {
    pub fn parse(page: i32, page_size: i32) -> Result<Self> {
        if page < 1 {
            return Err(Error::bad_input("page must be at least 1"));
        }
        if !(1..=MAX_PAGE_SIZE).contains(&page_size) {
            return Err(Error::bad_input(format!(
                "pageSize must be between 1 and {MAX_PAGE_SIZE}"
            )));
        }
        Ok(Self {
            page: page as u32,
            size: page_size as u32,
        })
    }

    pub fn offset(self) -> u64 {
        u64::from(self.page - 1) * u64::from(self.size)
    }

    pub fn limit(self) -> u64 {
        u64::from(self.size)
    }
}

/// One page of results and the total they were cut from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total_count: u64,
    pub request: PageRequest,
    /// The next moment the page's answer changes with time alone, no write
    /// happening (an overdue list gains a loan at its due date); `None`
    /// when only writes change it. The cache keeps no copy past it.
    pub changes_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl<T> Page<T> {
    pub fn total_pages(&self) -> u64 {
        self.total_count.div_ceil(u64::from(self.request.size))
    }

    pub fn has_next_page(&self) -> bool {
        u64::from(self.request.page) < self.total_pages()
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            total_count: self.total_count,
            request: self.request,
            changes_at: self.changes_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_pages_and_sizes_are_bad_input() {
        for (page, size) in [(0, 20), (-1, 20), (1, 0), (1, 101), (1, -5)] {
            assert_eq!(
                PageRequest::parse(page, size).unwrap_err().code(),
                "BAD_USER_INPUT"
            );
        }
        assert_eq!(PageRequest::parse(3, 100).unwrap().offset(), 200);
    }

    #[test]
    fn total_pages_and_next_page_follow_the_total() {
        let page = |n, total| Page::<()> {
            items: vec![],
            total_count: total,
            request: PageRequest::parse(n, 20).unwrap(),
            changes_at: None,
        };
        assert_eq!(page(1, 0).total_pages(), 0);
        assert!(!page(1, 0).has_next_page());
        assert_eq!(page(1, 41).total_pages(), 3);
        assert!(page(2, 41).has_next_page());
        assert!(!page(3, 41).has_next_page());
    }

    proptest::proptest! {
        #[test]
        fn any_page_and_size_is_a_page_request_or_a_clear_error(
            page in proptest::num::i32::ANY,
            size in proptest::prop_oneof![proptest::num::i32::ANY, -2i32..=102],
            total in proptest::num::u64::ANY,
        ) {
            match PageRequest::parse(page, size) {
                Ok(request) => {
                    proptest::prop_assert!(page >= 1 && (1..=MAX_PAGE_SIZE).contains(&size));
                    proptest::prop_assert_eq!((request.page as i32, request.size as i32), (page, size));
                    proptest::prop_assert_eq!(request.offset(), (page as u64 - 1) * size as u64);
                    let page = Page::<()> { items: vec![], total_count: total, request, changes_at: None };
                    proptest::prop_assert!(page.total_pages() * request.limit() >= total);
                    proptest::prop_assert_eq!(page.has_next_page(), request.offset() + request.limit() < total);
                }
                Err(err) => {
                    proptest::prop_assert!(page < 1 || !(1..=MAX_PAGE_SIZE).contains(&size));
                    proptest::prop_assert_eq!(err.code(), "BAD_USER_INPUT");
                }
            }
        }
    }
}
