//! Cursors: opaque positions in one list, for Relay connections.
//!
//! A cursor is the sort key and id of one item, which is all a keyset page
//! needs to start after (or end before) it. On the wire it is
//! `base64url(VERSION ‖ postcard(Wire))`, where [`Wire`] also carries the
//! fingerprint of the list it was made for (which list, its filter, its
//! order: a [`Listing`]).
//!
//! A cursor is refused with `BAD_USER_INPUT`, before any database work, when
//! it does not decode (malformed or forged bytes, trailing bytes, too long),
//! when it comes from another version of the format, when it was made for
//! another list (another order, filter, search text, author or member), or
//! when its key is not what the list sorts by. A cursor that passes is only
//! a position: any position gives a correct page (the items after it), so
//! no signature is needed for the answer to be right, and a cursor stays
//! meaningful after writes, even when its own item is gone.
use crate::error::{Error, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The format's version, the first byte of every cursor. Bump it when
/// [`Wire`] or [`Key`] changes: older cursors are then refused as stale
/// rather than misread.
pub const VERSION: u8 = 1;

/// The longest cursor accepted, in characters: a key of the longest title
/// (500 characters of up to 4 bytes) fits, with room to spare.
pub const MAX_CURSOR_CHARS: usize = 3_000;

/// An item's sort key, typed by what the list sorts by.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Key {
    /// `TITLE_*`, an author's books and search results: the title.
    Title(String),
    /// `PRICE_*`: the price in cents.
    Price(i64),
    /// `PUBLISHED_DESC`: the year (missing years sort last), then the title.
    Published(Option<i32>, String),
    /// `NEWEST` (when added) and `myBorrows` (when borrowed): microseconds
    /// since the epoch, the precision both databases store.
    Time(i64),
}

/// What kind of [`Key`] a list sorts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Title,
    Price,
    Published,
    Time,
}

impl Key {
    pub fn kind(&self) -> KeyKind {
        match self {
            Key::Title(_) => KeyKind::Title,
            Key::Price(_) => KeyKind::Price,
            Key::Published(..) => KeyKind::Published,
            Key::Time(_) => KeyKind::Time,
        }
    }

    /// A time key, or `None` when it is out of chrono's range (a forged one).
    pub fn time(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        match self {
            Key::Time(micros) => chrono::DateTime::from_timestamp_micros(*micros),
            _ => None,
        }
    }
}

/// The list a cursor belongs to: a fingerprint of everything that decides
/// its items and their order, and the kind of key it sorts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listing {
    fingerprint: u64,
    key: KeyKind,
}

impl Listing {
    /// `description` names the list and every parameter of it (the caller
    /// writes each, named, so that two lists never describe themselves
    /// alike); it is hashed, never stored.
    pub fn new(description: &str, key: KeyKind) -> Self {
        let digest = Sha256::digest(description.as_bytes());
        let mut fingerprint = [0u8; 8];
        fingerprint.copy_from_slice(&digest[..8]);
        Self {
            fingerprint: u64::from_le_bytes(fingerprint),
            key,
        }
    }

    pub fn key(&self) -> KeyKind {
        self.key
    }
}

/// A position in a list: an item's sort key and id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cursor {
    pub key: Key,
    pub id: Uuid,
    /// The canonical text of this cursor, what cache keys carry.
    text: String,
}

/// The encoded part of a cursor, after the version byte.
#[derive(Serialize, Deserialize)]
struct Wire {
    list: u64,
    key: Key,
    id: Uuid,
}

impl Cursor {
    /// The cursor of the item with this key and id, in `listing`.
    pub fn new(listing: &Listing, key: Key, id: Uuid) -> Self {
        let wire = Wire {
            list: listing.fingerprint,
            key,
            id,
        };
        let mut bytes = vec![VERSION];
        // Serializing owned enums and integers into a Vec cannot fail.
        bytes.extend(postcard::to_allocvec(&wire).unwrap_or_default());
        Self {
            text: URL_SAFE_NO_PAD.encode(bytes),
            key: wire.key,
            id: wire.id,
        }
    }

    /// Reads a cursor a client sent for `listing`; `argument` names it in
    /// the error (`after` or `before`).
    pub fn parse(text: &str, listing: &Listing, argument: &str) -> Result<Self> {
        let invalid = || {
            Error::bad_input(format!(
                "`{argument}` is not a cursor of this list: pass a cursor this list \
                 returned (with the same filter and order), or none to start again"
            ))
        };
        if text.is_empty() || text.len() > MAX_CURSOR_CHARS {
            return Err(invalid());
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
        let (&version, rest) = bytes.split_first().ok_or_else(invalid)?;
        if version != VERSION {
            return Err(Error::bad_input(format!(
                "`{argument}` is a cursor of another version of this service: \
                 start again from the first page"
            )));
        }
        let (wire, trailing): (Wire, _) = postcard::take_from_bytes(rest).map_err(|_| invalid())?;
        if !trailing.is_empty()
            || wire.list != listing.fingerprint
            || wire.key.kind() != listing.key
            || (wire.key.kind() == KeyKind::Time && wire.key.time().is_none())
        {
            return Err(invalid());
        }
        // Re-encoded, so that two spellings of one position share a cache entry.
        Ok(Self::new(listing, wire.key, wire.id))
    }

    /// The cursor's canonical text.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn titles() -> Listing {
        Listing::new("books|order=TitleAsc", KeyKind::Title)
    }

    #[test]
    fn a_cursor_round_trips_in_its_own_list() {
        let id = Uuid::now_v7();
        let cursor = Cursor::new(&titles(), Key::Title("Solaris".into()), id);
        let parsed = Cursor::parse(cursor.as_str(), &titles(), "after").unwrap();
        assert_eq!(parsed, cursor);
        assert_eq!(parsed.key, Key::Title("Solaris".into()));
        assert_eq!(parsed.id, id);
    }

    #[test]
    fn a_cursor_of_another_list_version_or_key_is_bad_input() {
        let id = Uuid::now_v7();
        let cursor = Cursor::new(&titles(), Key::Title("Solaris".into()), id);
        let other_order = Listing::new("books|order=TitleDesc", KeyKind::Title);
        let by_price = Listing::new("books|order=TitleAsc", KeyKind::Price);
        for listing in [other_order, by_price] {
            let err = Cursor::parse(cursor.as_str(), &listing, "after").unwrap_err();
            assert_eq!(err.code(), "BAD_USER_INPUT");
        }
        let mut bytes = URL_SAFE_NO_PAD.decode(cursor.as_str()).unwrap();
        bytes[0] = VERSION + 1;
        let err = Cursor::parse(&URL_SAFE_NO_PAD.encode(&bytes), &titles(), "after").unwrap_err();
        assert!(err.to_string().contains("another version"), "{err}");
        bytes[0] = VERSION;
        bytes.push(0);
        let trailing = URL_SAFE_NO_PAD.encode(&bytes);
        assert!(Cursor::parse(&trailing, &titles(), "after").is_err());
        let huge_time = Listing::new("t", KeyKind::Time);
        let forged = Cursor::new(&huge_time, Key::Time(i64::MAX), id);
        assert!(Cursor::parse(forged.as_str(), &huge_time, "before").is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_a_cursor_of_this_list_or_bad_input(text in crate::domain::arbitrary::text()) {
            match Cursor::parse(&text, &titles(), "after") {
                Ok(cursor) => proptest::prop_assert_eq!(cursor.key.kind(), KeyKind::Title),
                Err(err) => proptest::prop_assert_eq!(err.code(), "BAD_USER_INPUT"),
            }
        }

        #[test]
        fn any_bytes_are_a_cursor_of_this_list_or_bad_input(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..80),
        ) {
            let text = URL_SAFE_NO_PAD.encode(&bytes);
            if let Err(err) = Cursor::parse(&text, &titles(), "after") {
                proptest::prop_assert_eq!(err.code(), "BAD_USER_INPUT");
            }
        }
    }
}
