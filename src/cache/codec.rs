//! The byte format of L2 values, in one place: a tag byte, then the value in
//! postcard (serde, varint integers, no field names). In the `codec`
//! criterion benchmark postcard decodes a book as fast as bincode, within
//! the noise (reads dominate), and is 30% smaller (115 bytes against 163; JSON: 347, and four
//! times slower to decode); see BENCHMARKS.md.
//!
//! Tag `0` is a negative entry: the id is known to be absent.
use serde::de::DeserializeOwned;
use serde::Serialize;

const ABSENT: u8 = 0;
const PRESENT: u8 = 1;

/// What a cache slot holds: a value, or the knowledge that there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot<V> {
    /// The entry as loaded.
    Present(V),
    /// A negative entry: the id was looked up and does not exist, cached
    /// briefly so repeated misses do not each reach the database.
    Absent,
}

/// The bytes stored in L2 for `slot`; the only writer of that format.
pub fn encode<V: Serialize>(slot: &Slot<V>) -> Result<Vec<u8>, postcard::Error> {
    match slot {
        Slot::Absent => Ok(vec![ABSENT]),
        Slot::Present(value) => postcard::to_extend(value, vec![PRESENT]),
    }
}

/// Reads bytes written by [`encode`]. Anything else (another format, a
/// truncated value) is an error the caller treats as a miss, never a panic.
pub fn decode<V: DeserializeOwned>(bytes: &[u8]) -> Result<Slot<V>, postcard::Error> {
    match bytes.split_first() {
        Some((&ABSENT, [])) => Ok(Slot::Absent),
        Some((&PRESENT, rest)) => postcard::from_bytes(rest).map(Slot::Present),
        _ => Err(postcard::Error::DeserializeBadEncoding),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_absence_round_trip() {
        let bytes = encode(&Slot::Present((42u64, "x".to_string()))).unwrap();
        assert_eq!(
            decode::<(u64, String)>(&bytes).unwrap(),
            Slot::Present((42, "x".into()))
        );
        let bytes = encode::<u64>(&Slot::Absent).unwrap();
        assert_eq!(decode::<u64>(&bytes).unwrap(), Slot::Absent);
    }

    /// postcard cannot decode what asks for `deserialize_any`, which
    /// `Decimal`'s own `Deserialize` does: such a value would encode, then
    /// miss in L2 on every read.
    #[test]
    fn the_statistics_round_trip_with_an_average_price() {
        use crate::db::aggregates::{Statistics, Totals};
        let statistics = Statistics {
            totals: Totals {
                books: 3,
                authors: 2,
                categories: 1,
                members: 4,
                active_borrows: 1,
                average_price: Some(rust_decimal::Decimal::new(4029, 2)),
            },
            books_by_category: vec![(uuid::Uuid::now_v7(), 3)],
        };
        for value in [
            statistics.clone(),
            Statistics {
                totals: Totals {
                    average_price: None,
                    ..statistics.totals.clone()
                },
                ..statistics.clone()
            },
        ] {
            let bytes = encode(&Slot::Present(&value)).unwrap();
            assert_eq!(decode::<Statistics>(&bytes).unwrap(), Slot::Present(value));
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode::<u64>(&[]).is_err());
        assert!(decode::<u64>(&[7, 1, 2]).is_err());
        assert!(decode::<String>(&[PRESENT, 200]).is_err());
    }
}
