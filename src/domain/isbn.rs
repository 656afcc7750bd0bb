use crate::error::{Error, Result};

/// An ISBN-13 with a valid check digit, held as its 13 digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Isbn(String);

impl Isbn {
    /// Accepts the digits with optional hyphens or spaces between them
    /// ("978-0-306-40615-7"); stores the bare digits.
    pub fn parse(input: &str) -> Result<Self> {
        let digits: String = input.chars().filter(|c| *c != '-' && *c != ' ').collect();
        if digits.len() != 13 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::bad_input(format!(
                "isbn {input:?} is not an ISBN-13: expected 13 digits"
            )));
        }
        if !digits.starts_with("978") && !digits.starts_with("979") {
            return Err(Error::bad_input(format!(
                "isbn {input:?} is not an ISBN-13: it must start with 978 or 979"
            )));
        }
        let sum: u32 = digits
            .bytes()
            .enumerate()
            .map(|(i, b)| u32::from(b - b'0') * if i % 2 == 0 { 1 } else { 3 })
            .sum();
        if sum % 10 != 0 {
            return Err(Error::bad_input(format!(
                "isbn {input:?} has a wrong check digit"
            )));
        }
        Ok(Self(digits))
    }

    /// The ISBN-13 whose first twelve digits are `prefix12`, with its check
    /// digit computed (for generated demo data).
    pub fn with_check_digit(prefix12: u64) -> Self {
        let body = format!("{prefix12:012}");
        let sum: u32 = body
            .bytes()
            .enumerate()
            .map(|(i, b)| u32::from(b - b'0') * if i % 2 == 0 { 1 } else { 3 })
            .sum();
        Self(format!("{body}{}", (10 - sum % 10) % 10))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_isbns_parse_with_or_without_hyphens() {
        assert_eq!(
            Isbn::parse("9780306406157").unwrap().as_str(),
            "9780306406157"
        );
        assert_eq!(
            Isbn::parse("978-0-306-40615-7").unwrap().as_str(),
            "9780306406157"
        );
        assert_eq!(
            Isbn::parse("979-10-90636-07-1").unwrap().as_str(),
            "9791090636071"
        );
    }

    #[test]
    fn a_wrong_check_digit_is_rejected() {
        assert_eq!(
            Isbn::parse("9780306406158").unwrap_err().code(),
            "BAD_USER_INPUT"
        );
    }

    #[test]
    fn wrong_lengths_letters_and_prefixes_are_rejected() {
        for bad in [
            "",
            "978030640615",
            "97803064061577",
            "97803064O6157",
            "0306406152",
            "1230306406157",
        ] {
            assert!(Isbn::parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn generated_isbns_are_valid() {
        for prefix in [978_000_000_000, 978_030_640_615, 979_123_456_789] {
            let isbn = Isbn::with_check_digit(prefix);
            assert_eq!(Isbn::parse(isbn.as_str()).unwrap(), isbn);
        }
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_an_isbn_of_thirteen_digits_or_a_clear_error(input in crate::domain::arbitrary::text()) {
            match Isbn::parse(&input) {
                Ok(isbn) => {
                    proptest::prop_assert_eq!(isbn.as_str().len(), 13);
                    proptest::prop_assert!(isbn.as_str().bytes().all(|b| b.is_ascii_digit()));
                    proptest::prop_assert_eq!(Isbn::parse(isbn.as_str()).unwrap(), isbn);
                }
                Err(err) => proptest::prop_assert_eq!(err.code(), "BAD_USER_INPUT"),
            }
        }

        #[test]
        fn hyphenated_and_spaced_forms_parse_to_the_same_digits(
            body in 0u64..1_000_000_000,
            prefix in proptest::sample::select(vec![978u64, 979]),
            separators in proptest::collection::vec(proptest::sample::select(vec!["", "", "-", " "]), 13),
        ) {
            let isbn = Isbn::with_check_digit(prefix * 1_000_000_000 + body);
            let written: String = isbn
                .as_str()
                .chars()
                .zip(&separators)
                .map(|(digit, separator)| format!("{digit}{separator}"))
                .collect();
            proptest::prop_assert_eq!(Isbn::parse(&written).unwrap(), isbn);
        }

        #[test]
        fn any_single_wrong_digit_is_caught(
            body in 0u64..1_000_000_000,
            at in 3usize..13,
            change in 1u8..=9,
        ) {
            let isbn = Isbn::with_check_digit(978_000_000_000 + body);
            let mut digits = isbn.into_inner().into_bytes();
            digits[at] = b'0' + (digits[at] - b'0' + change) % 10;
            let wrong = String::from_utf8(digits).unwrap();
            proptest::prop_assert_eq!(Isbn::parse(&wrong).unwrap_err().code(), "BAD_USER_INPUT");
        }
    }
}
