//! The partner's side of tollgate's wire contracts.
//!
//! One [`TokenSource`] per contract, built from what the partner was given:
//!
//! ```no_run
//! # async fn demo() -> Result<(), tollgate_client::Error> {
//! use tollgate_client::ClientCredentials;
//! let tokens = ClientCredentials::new("https://auth.example.com", "my-id", "my-secret")
//!     .audience("orders")
//!     .source()?;
//! let token = tokens.token().await?; // cached, refreshed early, one request for all callers
//! # let _ = token; Ok(()) }
//! ```
//!
//! What every source does, whatever the contract: a cache keyed by all
//! that changes the token ([`CacheKey`]); one request however many callers
//! ask at once; a refresh in the background at 75 % of the lifetime (with
//! jitter) while callers keep the valid token; never a token with less than
//! the margin left; rotated refresh tokens saved durably ([`FileStore`], or
//! your [`RefreshStore`]) before the new access token is used; 429/503
//! waited out per `Retry-After`, other failures retried with capped
//! exponential backoff; typed [`Error`]s naming the contract's error.
//! [`SendWithToken`], [`AuthedClient`] and [`BearerLayer`] attach the token
//! to API calls and retry once on 401.

pub mod contracts;
mod error;
mod key;
mod middleware;
mod options;
mod secret;
mod source;
mod store;
mod token;
mod transport;

pub use contracts::{BearerExchange, ClientCredentials, DeviceCredentials, HeaderLogin, Shape};
pub use error::Error;
pub use key::{CacheKey, Contract};
pub use middleware::{AuthedClient, Bearer, BearerLayer, SendError, SendWithToken};
pub use options::{Options, RetryPolicy};
pub use secret::Secret;
pub use source::{TokenCache, TokenSource};
pub use store::{FileStore, MemoryStore, RefreshStore, StoreError, write_private_file};
pub use token::AccessToken;
