//! Validated values. Each `parse` is the one place its rule is checked, so
//! resolvers and the database layer only ever see values that passed.
mod credentials;
pub mod cursor;
mod ids;
mod isbn;
mod money;
mod page;
mod search_text;
mod slice;
mod text;

pub use credentials::{Email, Password};
pub use ids::parse_id;
pub use isbn::Isbn;
pub use money::Money;
pub use page::{Page, PageRequest, MAX_PAGE_SIZE};
pub use search_text::SearchText;
pub use slice::{Direction, Keyset, Slice, SliceRequest, DEFAULT_SLICE_SIZE};
pub use text::{optional_multiline_text, required_text};

/// Strategies the domain's property tests share: client input as it may
/// arrive, not as it should.
#[cfg(test)]
mod arbitrary {
    use proptest::prelude::*;

    /// Any text: every Unicode class (controls, bidirectional formatting,
    /// combining marks, astral planes), empty, short, and long; and text
    /// built mostly from the characters parsers look for, so that near
    /// misses are common too.
    pub fn text() -> impl Strategy<Value = String> {
        let near = prop_oneof![
            4 => proptest::char::range('0', '9'),
            2 => Just('-'),
            2 => Just(' '),
            1 => Just('@'),
            1 => Just('.'),
            1 => Just('%'),
            1 => Just('\u{0}'),
            1 => Just('\u{202E}'),
            1 => Just('İ'),
            2 => proptest::char::range('a', 'z'),
            1 => any::<char>(),
        ];
        prop_oneof![
            3 => proptest::collection::vec(any::<char>(), 0..40),
            3 => proptest::collection::vec(near.clone(), 0..40),
            1 => proptest::collection::vec(near, 150..260),
            1 => proptest::collection::vec(any::<char>(), 0..1200),
        ]
        .prop_map(String::from_iter)
    }
}
