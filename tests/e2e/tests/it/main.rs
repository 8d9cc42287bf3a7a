//! End-to-end scenarios against the real `shop` binary, each in every mode.

mod api;
mod asyncapi;
mod consistency;
mod contracts;
mod crash;
mod fulfillment;
mod journey;
mod openapi;
mod plans;
mod prometheus;
mod rollout;
mod security;
mod split;
mod tls;
mod traces;
mod versions;
