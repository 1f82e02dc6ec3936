//! Wire contracts. One module per contract: it owns its routes, translates
//! its wire format to a core request and back, and maps core outcomes to its
//! own error format. To add a contract, add a module here with a `routes()`
//! function and merge it in [`crate::router`].
//!
//! | module | contract | compatible with |
//! |---|---|---|
//! | [`oauth2`] | RFC 6749 token endpoint `POST /oauth/token` (form or JSON body), RFC 7662 introspection, RFC 7009 revocation | any OAuth 2.0 client; Sportradar's and the JSON client_credentials samples |
//! | [`discovery`] | RFC 8414 metadata and RFC 7517 JWKS | any OAuth 2.0 / JWT verifier |
//! | [`bearer_exchange`] (`bearer-exchange`) | refresh JWT as Bearer → `{"token","expireAt"}` | Cloudbet Odds API v2 |

pub mod bearer_exchange;
pub mod discovery;
pub mod oauth2;

use axum::http::{HeaderValue, header};
use axum::response::Response;

/// Adds `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1).
pub(crate) fn no_store(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}
