//! End-to-end scenarios against the real `shop` binary, each in every mode.

mod api;
mod crash;
mod journey;
