use super::text::{readable, Lines};
use crate::error::{Error, Result};

/// An e-mail address, lower-cased so that sign-in and uniqueness ignore case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(input: &str) -> Result<Self> {
        readable(input.trim(), "email", Lines::One)?;
        let email = input.trim().to_lowercase();
        let valid = email.len() <= 254
            && !email.contains(char::is_whitespace)
            && email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            });
        if !valid {
            return Err(Error::bad_input("email is not a valid e-mail address"));
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A new password: at least 8 characters (and a sane upper bound, since
/// hashing cost grows with length).
pub struct Password(String);

pub const MIN_PASSWORD_CHARS: usize = 8;
const MAX_PASSWORD_CHARS: usize = 256;

impl Password {
    pub fn parse(input: &str) -> Result<Self> {
        let chars = input.chars().count();
        if chars < MIN_PASSWORD_CHARS {
            return Err(Error::bad_input(format!(
                "password must be at least {MIN_PASSWORD_CHARS} characters"
            )));
        }
        if chars > MAX_PASSWORD_CHARS {
            return Err(Error::bad_input(format!(
                "password must be at most {MAX_PASSWORD_CHARS} characters"
            )));
        }
        Ok(Self(input.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_lower_cased_and_checked() {
        assert_eq!(
            Email::parse(" Ada@Example.ORG ").unwrap().as_str(),
            "ada@example.org"
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.org",
            "ada@example",
            "a da@example.org",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn short_passwords_are_rejected() {
        assert!(Password::parse("1234567").is_err());
        assert!(Password::parse("12345678").is_ok());
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_a_normalized_email_or_a_clear_error(input in crate::domain::arbitrary::text()) {
            match Email::parse(&input) {
                Ok(email) => {
                    let text = email.as_str();
                    proptest::prop_assert!(text.len() <= 254);
                    proptest::prop_assert_eq!(text.to_lowercase(), text);
                    proptest::prop_assert!(text.contains('@'));
                    // Normalizing again changes nothing.
                    proptest::prop_assert_eq!(Email::parse(text).unwrap(), email.clone());
                }
                Err(err) => {
                    proptest::prop_assert_eq!(err.code(), "BAD_USER_INPUT");
                    proptest::prop_assert!(err.to_string().starts_with("email "), "{}", err);
                }
            }
        }

        #[test]
        fn an_address_in_any_case_and_padding_is_the_same_email(
            local in "[A-Za-z0-9._+-]{1,30}",
            domain in "[A-Za-z0-9-]{1,20}(\\.[A-Za-z0-9-]{1,10}){1,3}",
            padding in "[ \t\n]{0,3}",
        ) {
            let address = format!("{local}@{domain}");
            let email = Email::parse(&format!("{padding}{address}{padding}")).unwrap();
            proptest::prop_assert_eq!(email.as_str(), address.to_lowercase());
            proptest::prop_assert_eq!(Email::parse(&address.to_uppercase()).unwrap(), email);
        }

        #[test]
        fn any_text_is_a_password_exactly_when_its_length_fits(input in crate::domain::arbitrary::text()) {
            let chars = input.chars().count();
            match Password::parse(&input) {
                Ok(password) => {
                    proptest::prop_assert!((MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars));
                    proptest::prop_assert_eq!(password.expose(), input.as_str());
                }
                Err(err) => {
                    proptest::prop_assert!(!(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars));
                    proptest::prop_assert_eq!(err.code(), "BAD_USER_INPUT");
                }
            }
        }
    }
}
