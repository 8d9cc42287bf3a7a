//! A request field that failed validation, named as the client sent it
//! (`email`, `lines[1].quantity`), and the text rules several capabilities share.
//!
//! Every capability's parse functions return this, and the HTTP edge renders
//! it as one problem type (`invalid-field`, 422, with `field`), so clients
//! handle every validation failure the same way.

use std::fmt;

/// A field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The field's path in the request.
    pub field: String,
    /// What is wrong (never echoes the value: it may be personal data).
    pub reason: String,
}

impl Invalid {
    /// `field` is wrong because `reason`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Invalid {
        Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: {}", self.field, self.reason)
    }
}

impl std::error::Error for Invalid {}

/// Display text (a name): 1 to `max_chars` characters, not blank, no control characters.
pub fn display_text(field: &str, value: &str, max_chars: usize) -> Result<String, Invalid> {
    let ok = !value.trim().is_empty()
        && value.chars().count() <= max_chars
        && !value.chars().any(char::is_control);
    if ok {
        Ok(value.to_owned())
    } else {
        Err(Invalid::new(
            field,
            format!("must be 1-{max_chars} characters, not blank, without control characters"),
        ))
    }
}
