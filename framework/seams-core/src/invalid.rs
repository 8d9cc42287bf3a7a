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

/// Display text (a name): 1 to `max_chars` characters, not blank, no
/// control, invisible or direction-override characters.
pub fn display_text(field: &str, value: &str, max_chars: usize) -> Result<String, Invalid> {
    let ok = !value.trim().is_empty()
        && value.chars().count() <= max_chars
        && !value.chars().any(|c| c.is_control() || hidden(c));
    if ok {
        Ok(value.to_owned())
    } else {
        Err(Invalid::new(
            field,
            format!(
                "must be 1-{max_chars} characters, not blank, without control, invisible or direction-override characters"
            ),
        ))
    }
}

/// Whether `c` changes how text around it is shown, or takes no visible
/// space, so a name containing it can pass for another or reorder what a
/// reader sees next to it (Trojan Source, CVE-2021-42574): the bidirectional
/// marks, embeddings, overrides and isolates, zero-width and invisible
/// characters, and the tag characters.
///
/// Listed rather than taken from a Unicode property: the format category
/// (`Cf`) would also refuse the zero-width joiner and non-joiner, which
/// Persian, the Indic scripts and emoji sequences need, and variation
/// selectors are allowed for the same reason.
pub fn hidden(c: char) -> bool {
    matches!(c,
        '\u{00AD}'                     // soft hyphen
        | '\u{034F}'                   // combining grapheme joiner
        | '\u{061C}'                   // Arabic letter mark
        | '\u{115F}' | '\u{1160}'       // Hangul fillers
        | '\u{180E}'                   // Mongolian vowel separator
        | '\u{200B}'                   // zero-width space
        | '\u{200E}' | '\u{200F}'       // left-to-right, right-to-left marks
        | '\u{202A}'..='\u{202E}'      // embeddings and overrides
        | '\u{2060}'..='\u{2064}'      // word joiner, invisible operators
        | '\u{2066}'..='\u{2069}'      // isolates
        | '\u{2800}'                   // braille blank
        | '\u{3164}' | '\u{FFA0}'       // Hangul fillers
        | '\u{FEFF}'                   // zero-width no-break space
        | '\u{E0000}'..='\u{E007F}'    // tags
    )
}

#[cfg(test)]
mod tests;
