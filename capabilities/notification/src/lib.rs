//! notification

pub mod channel;
