//! Free text a client sends: titles, names, bios, e-mail addresses, search
//! queries. [`readable`] is the one rule every such parser applies: text
//! must show what it holds. NUL and the other control characters cannot be
//! shown (and NUL ends a string in SQLite's `LIKE` and is refused by
//! PostgreSQL), and the bidirectional embeddings, overrides and isolates
//! (U+202A–U+202E, U+2066–U+2069) make text display in another order than
//! it is stored, so a title could read as something it is not.
use crate::error::{Error, Result};

/// Whether a piece of text may span lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    /// A title, a name, an address: no line break and no tab.
    One,
    /// Prose such as a bio: `\n`, `\r` and `\t` are allowed, and so are
    /// U+2028/U+2029 (line and paragraph separators).
    Many,
}

/// Refuses `input` if it holds a character that cannot be read or that
/// reorders how it displays; the error names `field` and the character.
pub fn readable(input: &str, field: &str, lines: Lines) -> Result<()> {
    match input.chars().find(|c| !allowed(*c, lines)) {
        None => Ok(()),
        Some(c) => Err(Error::bad_input(format!(
            "{field} must not contain control or bidirectional formatting characters \
             (found U+{:04X})",
            u32::from(c)
        ))),
    }
}

fn allowed(c: char, lines: Lines) -> bool {
    let bidi_formatting = matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    let line_layout = matches!(c, '\t' | '\n' | '\r' | '\u{2028}' | '\u{2029}');
    match lines {
        _ if bidi_formatting => false,
        Lines::Many if line_layout => true,
        Lines::One if line_layout => false,
        _ => !c.is_control(),
    }
}

/// A required one-line text field: trimmed, readable, not empty, at most
/// `max` characters.
pub fn required_text(input: &str, field: &str, max: usize) -> Result<String> {
    text(input, field, max, Lines::One)
}

/// An optional text field that may span lines (a bio): blank becomes
/// `None`; otherwise trimmed, readable, at most `max` characters.
pub fn optional_multiline_text(
    input: Option<&str>,
    field: &str,
    max: usize,
) -> Result<Option<String>> {
    match input.map(str::trim) {
        None | Some("") => Ok(None),
        Some(input) => text(input, field, max, Lines::Many).map(Some),
    }
}

fn text(input: &str, field: &str, max: usize, lines: Lines) -> Result<String> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(Error::bad_input(format!("{field} must not be empty")));
    }
    if trimmed.chars().count() > max {
        return Err(Error::bad_input(format!(
            "{field} must be at most {max} characters"
        )));
    }
    readable(trimmed, field, lines)?;
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_controls_and_bidirectional_formatting_are_refused_naming_the_field() {
        for bad in [
            "\u{0}", "\u{1b}", "\u{7f}", "\u{85}", "\u{9b}", "\u{202A}", "\u{202E}", "\u{2066}",
            "\u{2069}",
        ] {
            for lines in [Lines::One, Lines::Many] {
                let err = readable(&format!("a{bad}b"), "title", lines).unwrap_err();
                assert_eq!(err.code(), "BAD_USER_INPUT", "{bad:?}");
                assert!(err.to_string().starts_with("title "), "{err}");
            }
        }
        let err = required_text("Solaris\u{0}", "title", 500).unwrap_err();
        assert!(err.to_string().contains("U+0000"), "{err}");
    }

    #[test]
    fn line_breaks_and_tabs_are_allowed_only_in_text_of_many_lines() {
        for layout in ["\n", "\r\n", "\t", "\u{2028}", "\u{2029}"] {
            let text = format!("one{layout}two");
            assert!(readable(&text, "bio", Lines::Many).is_ok(), "{layout:?}");
            assert!(readable(&text, "name", Lines::One).is_err(), "{layout:?}");
        }
        assert_eq!(
            optional_multiline_text(Some(" Born 1929.\n\tWrote. "), "bio", 100).unwrap(),
            Some("Born 1929.\n\tWrote.".to_owned())
        );
    }

    #[test]
    fn other_scripts_marks_and_emoji_are_text_like_any_other() {
        for good in [
            "Stanisław Lem",
            "村上 春樹",
            "عربي",
            "Zoë\u{301}",
            "📚 and ☕",
            "a\u{200D}b",
        ] {
            assert_eq!(required_text(good, "name", 200).unwrap(), good);
        }
    }

    #[test]
    fn blank_text_is_empty_or_none_and_long_text_is_refused() {
        assert!(required_text(" \t ", "name", 10).is_err());
        assert_eq!(
            optional_multiline_text(Some("  "), "bio", 10).unwrap(),
            None
        );
        assert_eq!(optional_multiline_text(None, "bio", 10).unwrap(), None);
        assert!(required_text(&"é".repeat(11), "name", 10).is_err());
        assert_eq!(
            required_text(&"é".repeat(10), "name", 10).unwrap().len(),
            20
        );
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_clean_text_or_a_clear_error_naming_the_field(
            input in crate::domain::arbitrary::text(),
            max in 0usize..4000,
            many in proptest::bool::ANY,
        ) {
            let parsed = if many {
                optional_multiline_text(Some(&input), "bio", max).map(|text| text.unwrap_or_default())
            } else {
                required_text(&input, "title", max)
            };
            let lines = if many { Lines::Many } else { Lines::One };
            match parsed {
                Ok(text) if text.is_empty() => proptest::prop_assert!(many && input.trim().is_empty()),
                Ok(text) => {
                    proptest::prop_assert_eq!(text.as_str(), input.trim());
                    proptest::prop_assert!(text.chars().count() <= max);
                    proptest::prop_assert!(readable(&text, "t", lines).is_ok());
                    // Accepted text is accepted again unchanged.
                    proptest::prop_assert_eq!(super::text(&text, "t", max, lines).unwrap(), text);
                }
                Err(err) => {
                    proptest::prop_assert_eq!(err.code(), "BAD_USER_INPUT");
                    let field = if many { "bio " } else { "title " };
                    proptest::prop_assert!(err.to_string().starts_with(field), "{}", err);
                }
            }
        }

        #[test]
        fn one_unreadable_character_anywhere_is_refused(
            input in crate::domain::arbitrary::text(),
            at in proptest::num::usize::ANY,
            bad in proptest::sample::select(vec!['\u{0}', '\u{1}', '\u{7f}', '\u{9f}', '\u{202A}', '\u{202E}', '\u{2066}', '\u{2069}']),
        ) {
            let mut chars: Vec<char> = format!("x{input}x").chars().collect();
            chars.insert(1 + at % (chars.len() - 1), bad);
            let text = String::from_iter(chars);
            proptest::prop_assert!(readable(&text, "name", Lines::One).is_err());
            proptest::prop_assert!(readable(&text, "bio", Lines::Many).is_err());
        }
    }
}
