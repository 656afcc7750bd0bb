use crate::error::{Error, Result};

/// A required free-text field: trimmed, not empty, at most `max` characters.
pub fn required_text(input: &str, field: &str, max: usize) -> Result<String> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(Error::bad_input(format!("{field} must not be empty")));
    }
    if trimmed.chars().count() > max {
        return Err(Error::bad_input(format!(
            "{field} must be at most {max} characters"
        )));
    }
    Ok(trimmed.to_owned())
}

/// An optional free-text field: blank becomes `None`.
pub fn optional_text(input: Option<&str>, field: &str, max: usize) -> Result<Option<String>> {
    match input.map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => required_text(text, field, max).map(Some),
    }
}
