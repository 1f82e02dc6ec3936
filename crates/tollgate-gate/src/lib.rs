//! tollgate's gate: decides whether a request to the provider's API may
//! pass, from its method, path and bearer token or API key.
//!
//! Pure code, no HTTP server: the front ends (forward-auth `/gate/check` in
//! `tollgate serve`; later a reverse proxy and a tower layer) hand in what
//! they read from the wire and turn the [`Decision`] into their answer.
//!
//! - [`policy`]: the `[[gate.route]]` policy (TOML), validated with errors
//!   naming the line; method + path pattern → public, or audience and
//!   permissions; unmatched routes are denied.
//! - [`path`]: request paths made comparable (percent-decoding, refusing
//!   dot segments and encoded slashes) and route patterns.
//! - [`source`]: where keys and revocations come from ([`KeySource`]); the
//!   in-process one reads the core's snapshot ([`CoreKeys`]).
//! - [`remote`]: a remote issuer's metadata, JWKS and deny list over HTTP
//!   ([`RemoteKeys`]: single flight, rate limit, negative cache, refresh).
//! - [`decide`]: the one verification core ([`Gate`]): signature, issuer,
//!   `exp`/`nbf` with leeway, audience, deny list, then the route's
//!   permissions.
//! - [`cache`]: decisions keyed by token *and* route, bounded in size and by
//!   the token's expiry, dropped when the key source's generation moves.
//! - [`forward`]: what the forward-auth dialects (nginx `auth_request`,
//!   Traefik ForwardAuth, Envoy `ext_authz` HTTP) send, and the RFC 6750
//!   answer.

pub mod cache;
pub mod decide;
pub mod forward;
pub mod path;
pub mod policy;
pub mod remote;
pub mod source;

pub use decide::{Decision, Denial, Gate, Identity, Invalid, KeyHeader, KeyRefused};
pub use policy::{Policy, PolicyError, Route, Rule, Settings};
pub use remote::{RemoteError, RemoteKeys, RemoteOptions};
pub use source::{CoreKeys, KeySource, SourceError};
