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
        // Counted after folding, which can lengthen text ("İ" becomes two
        // characters), so that the text kept is within the limit too.
        let folded = normalized.to_lowercase();
        if folded.chars().count() >= MAX_SEARCH_CHARS {
            return Err(Error::bad_input(format!(
                "query must be shorter than {MAX_SEARCH_CHARS} characters"
            )));
        }
        Ok(Self(folded))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The length in characters (Unicode scalar values), as a trigram
    /// index counts them.
    pub fn chars(&self) -> usize {
        self.0.chars().count()
    }

    /// The text as one FTS5 phrase (a string in double quotes, each `"`
    /// doubled): every character in it is literal, none is query syntax.
    pub fn fts5_phrase(&self) -> String {
        format!("\"{}\"", self.0.replace('"', "\"\""))
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
    fn the_length_limit_holds_for_the_text_as_folded() {
        // "İ" folds to two characters ("i" and a combining dot above).
        let folded_longer = "İ".repeat(MAX_SEARCH_CHARS / 2 + 1);
        if let Ok(search) = SearchText::parse(&folded_longer) {
            assert!(search.as_str().chars().count() < MAX_SEARCH_CHARS);
            assert_eq!(SearchText::parse(search.as_str()).unwrap(), search);
        }
    }

    #[test]
    fn like_metacharacters_are_escaped() {
        assert_eq!(
            SearchText::parse("50%_off").unwrap().like_pattern(),
            r"%50\%\_off%"
        );
    }

    #[test]
    fn an_fts5_phrase_quotes_the_text_and_doubles_its_quotes() {
        assert_eq!(
            SearchText::parse(r#"say "hi" *"#).unwrap().fts5_phrase(),
            r#""say ""hi"" *""#
        );
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_a_normalized_search_or_a_clear_error(input in crate::domain::arbitrary::text()) {
            match SearchText::parse(&input) {
                Ok(search) => {
                    let text = search.as_str();
                    proptest::prop_assert!(!text.is_empty());
                    proptest::prop_assert!(text.chars().count() < MAX_SEARCH_CHARS);
                    proptest::prop_assert_eq!(text.to_lowercase(), text);
                    proptest::prop_assert!(!text.contains("  ") && text.trim() == text);
                    // The normalized text is the same search again.
                    proptest::prop_assert_eq!(SearchText::parse(text).unwrap(), search.clone());
                    // Its pattern matches only itself: every `%`, `_` and `\` but the
                    // two at the ends is escaped.
                    let pattern = search.like_pattern();
                    let inner = &pattern[1..pattern.len() - 1];
                    let mut unescaped = String::new();
                    let mut chars = inner.chars();
                    while let Some(c) = chars.next() {
                        proptest::prop_assert!(!matches!(c, '%' | '_'), "{}", pattern);
                        unescaped.push(if c == '\\' { chars.next().unwrap() } else { c });
                    }
                    proptest::prop_assert_eq!(unescaped, text);
                }
                Err(err) => {
                    proptest::prop_assert_eq!(err.code(), "BAD_USER_INPUT");
                    proptest::prop_assert!(err.to_string().starts_with("query "), "{}", err);
                }
            }
        }
    }
}
