//! Grants: how a presented credential becomes tokens. One file per grant,
//! over shared helpers (`issue.rs`: client authentication, obligations and
//! minting; `session.rs`: what the user grants share; `incumbent.rs`: an
//! incumbent's tokens). A grant never
//! imports another grant.

pub mod api_key;
pub mod client_credentials;
pub mod exchange;
pub mod incumbent;
pub mod introspect;
pub(crate) mod issue;
pub mod login;
pub mod logout;
pub mod refresh;
pub mod revoke;
pub(crate) mod session;
