use crate::error::{Error, Result};
use uuid::Uuid;

/// Parses an id argument named `what`; every id in the API is a UUID.
pub fn parse_id(id: &str, what: &str) -> Result<Uuid> {
    Uuid::parse_str(id)
        .map_err(|_| Error::bad_input(format!("{what} is not a valid id: expected a UUID")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uuid_parses_and_anything_else_is_bad_input() {
        let id = Uuid::now_v7();
        assert_eq!(parse_id(&id.to_string(), "bookId").unwrap(), id);
        let err = parse_id("42", "bookId").unwrap_err();
        assert_eq!(err.code(), "BAD_USER_INPUT");
        assert!(err.to_string().contains("bookId"));
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_a_uuid_or_a_clear_error_naming_the_argument(input in crate::domain::arbitrary::text()) {
            match parse_id(&input, "bookId") {
                Ok(id) => proptest::prop_assert_eq!(parse_id(&id.to_string(), "bookId").unwrap(), id),
                Err(err) => {
                    proptest::prop_assert_eq!(err.code(), "BAD_USER_INPUT");
                    proptest::prop_assert!(err.to_string().starts_with("bookId "), "{}", err);
                }
            }
        }

        #[test]
        fn every_id_round_trips_in_each_written_form(bits in proptest::num::u128::ANY) {
            let id = Uuid::from_u128(bits);
            for written in [id.to_string(), id.simple().to_string(), id.to_string().to_uppercase()] {
                proptest::prop_assert_eq!(parse_id(&written, "id").unwrap(), id);
            }
        }
    }
}
