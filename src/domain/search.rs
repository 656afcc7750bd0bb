use super::text::{readable, Lines};
use crate::error::{Error, Result};

/// Search text must be shorter than this many characters.
pub const MAX_SEARCH_CHARS: usize = 200;

/// A search query, normalized: trimmed, whitespace collapsed, lower-cased.
/// Two queries that differ only in those ways are the same search.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SearchText(String);

impl SearchText {
    pub fn parse(input: &str) -> Result<Self> {
        let normalized = input.split_whitespace().collect::<Vec<_>>().join(" ");
        if normalized.is_empty() {
            return Err(Error::bad_input("query must not be empty"));
        }
        readable(&normalized, "query", Lines::One)?;
        if normalized.chars().count() >= MAX_SEARCH_CHARS {
            return Err(Error::bad_input(format!(
                "query must be shorter than {MAX_SEARCH_CHARS} characters"
            )));
        }
        Ok(Self(normalized.to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A `LIKE` pattern matching the text anywhere, with `\` as the escape
    /// character so that `%` and `_` in the query match themselves.
    pub fn like_pattern(&self) -> String {
        let mut pattern = String::with_capacity(self.0.len() + 2);
        pattern.push('%');
        for c in self.0.chars() {
            if matches!(c, '%' | '_' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('%');
        pattern
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_trimmed_collapsed_and_case_folded() {
        assert_eq!(
            SearchText::parse("  The   Hobbit\t").unwrap().as_str(),
            "the hobbit"
        );
    }

    #[test]
    fn empty_and_overlong_text_is_bad_input() {
        assert!(SearchText::parse("   ").is_err());
        assert!(SearchText::parse(&"a".repeat(MAX_SEARCH_CHARS)).is_err());
        assert!(SearchText::parse(&"a".repeat(MAX_SEARCH_CHARS - 1)).is_ok());
    }

    #[test]
    fn like_metacharacters_are_escaped() {
        assert_eq!(
            SearchText::parse("50%_off").unwrap().like_pattern(),
            r"%50\%\_off%"
        );
    }
}
