//! Relay connections: `edges { cursor node }`, `pageInfo`, and the list's
//! `totalCount`, built from a keyset [`Slice`] of a list.
use crate::domain::Slice;
use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::{OutputType, SimpleObject};

/// What every connection adds to the Relay shape.
#[derive(SimpleObject)]
pub struct ConnectionTotal {
    /// Items in the whole list (with its filter), not only in this slice.
    pub total_count: i32,
}

/// A connection of `T` (`BookConnection`, `BookEdge`, ...), whose cursors
/// are opaque strings.
pub type Connected<T> = Connection<String, T, ConnectionTotal, EmptyFields>;

/// The connection of `slice`: each item's edge carries `cursor(item)` and
/// `node(item)`.
pub fn connection<M, T: OutputType>(
    slice: Slice<M>,
    cursor: impl Fn(&M) -> String,
    node: impl Fn(M) -> T,
) -> Connected<T> {
    let total_count = i32::try_from(slice.total_count).unwrap_or(i32::MAX);
    let mut connection = Connection::with_additional_fields(
        slice.has_previous,
        slice.has_next,
        ConnectionTotal { total_count },
    );
    connection.edges = slice
        .items
        .into_iter()
        .map(|item| Edge::new(cursor(&item), node(item)))
        .collect();
    connection
}
