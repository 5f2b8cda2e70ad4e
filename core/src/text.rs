//! Free text from clients (names, versions, tokens, metadata): trimmed, bounded, and free of
//! control characters — PostgreSQL refuses NUL in text, and no name needs a newline.

use crate::{Error, Result};

/// Whether `s` holds a control character (including NUL).
pub fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// Checks a required single-line text field of 1 to `max` characters; returns it trimmed.
pub fn required<'a>(field: &str, value: &'a str, max: usize) -> Result<&'a str> {
    let trimmed = value.trim();
    if trimmed.is_empty() || trimmed.chars().count() > max {
        return Err(Error::invalid(
            field,
            format!("must be 1 to {max} characters"),
        ));
    }
    if has_control(trimmed) {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(trimmed)
}

/// Checks an optional text field like `required`.
pub fn optional<'a>(field: &str, value: Option<&'a str>, max: usize) -> Result<Option<&'a str>> {
    value.map(|v| required(field, v, max)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_control_characters_and_bounds_length() {
        assert_eq!(required("name", "  Ann ", 10).ok(), Some("Ann"));
        assert!(required("name", "A\u{0}nn", 10).is_err());
        assert!(required("name", "A\nB", 10).is_err());
        assert!(required("name", "   ", 10).is_err());
        assert!(required("name", "ééééé", 5).is_ok());
        assert!(required("name", "éééééé", 5).is_err());
        assert_eq!(optional("email", None, 5).ok(), Some(None));
    }
}
