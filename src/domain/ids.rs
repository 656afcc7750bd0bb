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
}
