//! Time and identity as injected dependencies, so decisions stay pure and
//! tests control both.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// Now, in UTC.
    fn now(&self) -> OffsetDateTime;

    /// Now as RFC 3339 text.
    fn now_rfc3339(&self) -> String {
        rfc3339(self.now())
    }
}

/// Formats `t` as RFC 3339 (UTC, with fraction).
pub fn rfc3339(t: OffsetDateTime) -> String {
    // Formatting a valid UTC time as RFC 3339 fails only for years outside
    // 0..=9999, which a clock does not produce.
    t.format(&Rfc3339).expect("RFC 3339 formats any clock time")
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A source of new unique ids.
pub trait Ids: Send + Sync + 'static {
    /// A new id.
    fn new_id(&self) -> uuid::Uuid;
}

/// UUID v7: time-ordered, so ids sort roughly by creation and index well.
#[derive(Debug, Clone, Copy, Default)]
pub struct UuidV7Ids;

impl Ids for UuidV7Ids {
    fn new_id(&self) -> uuid::Uuid {
        uuid::Uuid::now_v7()
    }
}
