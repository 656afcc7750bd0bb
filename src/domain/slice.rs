//! Relay connection arguments (`first`, `after`, `last`, `before`),
//! validated, and the slice of a list they select.
use super::cursor::{Cursor, Listing};
use super::page::{Page, PageRequest, MAX_PAGE_SIZE};
use crate::error::{Error, Result};

/// How many items a connection returns when neither `first` nor `last` is given.
pub const DEFAULT_SLICE_SIZE: u32 = 20;

/// Which way a slice runs from its cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// `first` (after `after`, or from the start).
    Forward,
    /// `last` (before `before`, or up to the end).
    Backward,
}

/// A validated slice: `size` items (0..=100) from `cursor` (exclusive) in
/// `direction`, or from the end of the list that direction starts at.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SliceRequest {
    pub direction: Direction,
    pub size: u32,
    pub cursor: Option<Cursor>,
}

impl SliceRequest {
    /// Checks the arguments of a connection of `listing`, before any
    /// database work: `first` and `last` within 0..=100 and not both;
    /// `after` only going forward and `before` only backward (so not both
    /// either); each cursor one of this list. With neither size, 20 items
    /// come forward, or backward when only `before` is given.
    pub fn parse(
        first: Option<i32>,
        after: Option<&str>,
        last: Option<i32>,
        before: Option<&str>,
        listing: &Listing,
    ) -> Result<Self> {
        let size = |n: i32, name: &str| {
            if (0..=MAX_PAGE_SIZE).contains(&n) {
                Ok(n as u32)
            } else {
                Err(Error::bad_input(format!(
                    "`{name}` must be between 0 and {MAX_PAGE_SIZE}"
                )))
            }
        };
        let (direction, size) = match (first, last) {
            (Some(_), Some(_)) => {
                return Err(Error::bad_input(
                    "give `first` or `last`, not both: `first` pages forward \
                     (with `after`), `last` backward (with `before`)",
                ))
            }
            (Some(n), None) => (Direction::Forward, size(n, "first")?),
            (None, Some(n)) => (Direction::Backward, size(n, "last")?),
            (None, None) if before.is_some() && after.is_none() => {
                (Direction::Backward, DEFAULT_SLICE_SIZE)
            }
            (None, None) => (Direction::Forward, DEFAULT_SLICE_SIZE),
        };
        let cursor = match (direction, after, before) {
            (_, Some(_), Some(_)) => {
                return Err(Error::bad_input("give `after` or `before`, not both"))
            }
            (Direction::Forward, None, Some(_)) => {
                return Err(Error::bad_input(
                    "`before` goes with `last`: `first` pages forward, from `after`",
                ))
            }
            (Direction::Backward, Some(_), None) => {
                return Err(Error::bad_input(
                    "`after` goes with `first`: `last` pages backward, from `before`",
                ))
            }
            (_, Some(text), None) => Some(Cursor::parse(text, listing, "after")?),
            (_, None, Some(text)) => Some(Cursor::parse(text, listing, "before")?),
            (_, None, None) => None,
        };
        Ok(Self {
            direction,
            size,
            cursor,
        })
    }

    /// How many rows the slice query reads: one more than asked, to tell
    /// whether more lie beyond.
    pub fn limit(&self) -> u64 {
        u64::from(self.size) + 1
    }
}

/// A run of consecutive items of a list, in the list's order, with the
/// list's total and whether items lie before and after the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slice<T> {
    pub items: Vec<T>,
    pub total_count: u64,
    /// Whether the list has items before the first of this slice (before
    /// its cursor, when the slice is empty).
    pub has_previous: bool,
    /// Whether the list has items after the last of this slice.
    pub has_next: bool,
    /// As [`super::Page::changes_at`].
    pub changes_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Where a keyset read stood, for [`Slice::from_keyset`].
#[derive(Debug, Clone, Copy)]
pub struct Keyset {
    /// Rows were read toward the start of the list (`last`/`before`).
    pub backward: bool,
    /// The read started after (or before) a cursor, not at an end.
    pub from_cursor: bool,
    /// Whether the list has items on the cursor's other side.
    pub behind: bool,
}

impl<T> Slice<T> {
    /// The slice of `rows`, read in list order with one row more than
    /// `limit - 1` asked for when the list goes on: that extra row, the one
    /// farthest from the cursor, is dropped and says that more lie beyond.
    pub fn from_keyset(mut items: Vec<T>, limit: u64, read: Keyset, total_count: i64) -> Self {
        let more = items.len() as u64 >= limit;
        if more {
            if read.backward {
                items.remove(0);
            } else {
                items.pop();
            }
        }
        let behind = read.from_cursor && read.behind;
        let (has_previous, has_next) = if read.backward {
            (more, behind)
        } else {
            (behind, more)
        };
        Slice {
            items,
            total_count: total_count.max(0) as u64,
            has_previous,
            has_next,
            changes_at: None,
        }
    }

    /// The page this slice was made from by [`From<Page<T>>`], at `request`.
    pub fn into_page(self, request: PageRequest) -> Page<T> {
        Page {
            items: self.items,
            total_count: self.total_count,
            request,
            changes_at: self.changes_at,
        }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Slice<U> {
        Slice {
            items: self.items.into_iter().map(f).collect(),
            total_count: self.total_count,
            has_previous: self.has_previous,
            has_next: self.has_next,
            changes_at: self.changes_at,
        }
    }
}

/// A page is a slice: the caches keep both alike.
impl<T> From<Page<T>> for Slice<T> {
    fn from(page: Page<T>) -> Self {
        Slice {
            has_previous: page.request.page > 1,
            has_next: page.has_next_page(),
            items: page.items,
            total_count: page.total_count,
            changes_at: page.changes_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::cursor::{Key, KeyKind};

    fn listing() -> Listing {
        Listing::new("test", KeyKind::Title)
    }

    fn parse(
        first: Option<i32>,
        after: Option<&str>,
        last: Option<i32>,
        before: Option<&str>,
    ) -> Result<SliceRequest> {
        SliceRequest::parse(first, after, last, before, &listing())
    }

    #[test]
    fn sizes_out_of_range_and_conflicting_arguments_are_bad_input() {
        let cursor = Cursor::new(&listing(), Key::Title("a".into()), uuid::Uuid::nil());
        let c = Some(cursor.as_str());
        for (first, after, last, before) in [
            (Some(-1), None, None, None),
            (Some(MAX_PAGE_SIZE + 1), None, None, None),
            (None, None, Some(-5), None),
            (None, None, Some(i32::MAX), None),
            (Some(1), None, Some(1), None),
            (Some(1), c, None, c),
            (Some(1), None, None, c),
            (None, c, Some(1), None),
            (None, c, None, c),
            (Some(1), Some("nope"), None, None),
        ] {
            let err = parse(first, after, last, before).unwrap_err();
            assert_eq!(err.code(), "BAD_USER_INPUT", "{first:?} {last:?}");
        }
    }

    #[test]
    fn the_defaults_follow_the_cursor_given() {
        let cursor = Cursor::new(&listing(), Key::Title("a".into()), uuid::Uuid::nil());
        let c = Some(cursor.as_str());
        let none = parse(None, None, None, None).unwrap();
        assert_eq!((none.direction, none.size), (Direction::Forward, 20));
        let before = parse(None, None, None, c).unwrap();
        assert_eq!(before.direction, Direction::Backward);
        assert_eq!(before.cursor, Some(cursor.clone()));
        let zero = parse(Some(0), c, None, None).unwrap();
        assert_eq!((zero.size, zero.limit()), (0, 1));
    }

    #[test]
    fn a_keyset_read_drops_the_extra_row_farthest_from_the_cursor_and_says_what_lies_around() {
        let read = |backward, from_cursor, behind| Keyset {
            backward,
            from_cursor,
            behind,
        };
        // Forward from the start, one row beyond the two asked for.
        let first = Slice::from_keyset(vec![1, 2, 3], 3, read(false, false, true), 9);
        assert_eq!(first.items, vec![1, 2]);
        assert_eq!((first.has_previous, first.has_next), (false, true));
        assert_eq!(first.total_count, 9);
        // Forward after a cursor, the list's end reached.
        let tail = Slice::from_keyset(vec![8, 9], 3, read(false, true, true), 9);
        assert_eq!(tail.items, vec![8, 9]);
        assert_eq!((tail.has_previous, tail.has_next), (true, false));
        // Backward before a cursor: the extra row is the first.
        let back = Slice::from_keyset(vec![3, 4, 5], 3, read(true, true, true), 9);
        assert_eq!(back.items, vec![4, 5]);
        assert_eq!((back.has_previous, back.has_next), (true, true));
        // Backward from the end: nothing after it.
        let last = Slice::from_keyset(vec![8, 9], 3, read(true, false, true), -1);
        assert_eq!((last.has_previous, last.has_next), (false, false));
        assert_eq!(last.total_count, 0, "a negative total reads as none");
    }
}
