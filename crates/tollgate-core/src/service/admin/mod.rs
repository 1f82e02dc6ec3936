//! Provisioning, one file per noun: what the CLI (and later the admin API)
//! does to environments, APIs, clients, users, signing keys, refresh JWTs,
//! API keys, obligations and trusted incumbents; the admin API's own API and
//! audit log (`bootstrap`, `audit`) and its introspection of any token. Each
//! validates and writes through the store; running servers see the change at
//! their next sync.

pub mod api;
pub mod api_key;
pub mod audit;
pub mod bootstrap;
pub mod client;
pub mod env;
pub mod guarded;
pub mod introspect;
pub mod key;
pub mod obligation;
pub mod refresh_jwt;
pub mod trust;
pub mod user;
pub mod user_import;
