//! RFC 9457 problem details: the one error shape of every HTTP answer.
//!
//! A problem's `type` is a stable URI, `urn:seams:problem:<slug>`, so clients
//! can match on it; titles and details are for people and may change.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The URI prefix of every problem type.
pub const TYPE_PREFIX: &str = "urn:seams:problem:";

/// An RFC 9457 problem details object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// Stable URI identifying the problem type.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// Short human summary of the type.
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// Human explanation of this occurrence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Extension members (for example the offending `field`).
    #[serde(flatten)]
    pub extensions: Map<String, Value>,
}

impl Problem {
    /// A problem of type `urn:seams:problem:<slug>`.
    pub fn new(status: u16, slug: &str, title: impl Into<String>) -> Problem {
        Problem {
            problem_type: format!("{TYPE_PREFIX}{slug}"),
            title: title.into(),
            status,
            detail: None,
            extensions: Map::new(),
        }
    }

    /// Sets the detail.
    pub fn detail(mut self, detail: impl Into<String>) -> Problem {
        self.detail = Some(detail.into());
        self
    }

    /// Adds an extension member.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Problem {
        self.extensions.insert(key.to_owned(), value.into());
        self
    }

    /// The slug after the type prefix, if the type is one of ours.
    pub fn slug(&self) -> Option<&str> {
        self.problem_type.strip_prefix(TYPE_PREFIX)
    }
}
