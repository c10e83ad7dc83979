//! Sealpost's HTTP contract suite: one binary, one module per topic (SPEC + docs/api.md).
#![allow(clippy::unwrap_used)]

mod architecture;
mod auth;
mod batch;
mod cli;
mod codes;
mod create;
mod email_sms;
mod events;
mod expiry;
mod helpers;
mod idempotency;
mod lifecycle;
mod listing;
mod notify_failures;
mod openapi;
mod page;
mod pepper;
mod preview;
mod replies;
mod restart;
mod revoke;
mod self_service;
mod sending;
mod upload;
mod webhooks;
