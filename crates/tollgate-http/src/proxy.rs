//! The gate as a reverse proxy: a listener of its own (`gate_proxy_listen`)
//! in front of the provider's API (`gate_proxy_upstream`). Each request is
//! decided by the same verification core as `/gate/check`; an allowed one
//! goes on to the upstream with the caller's identity in headers, a refused
//! one is answered here as RFC 6750 says, and never reaches the upstream.
//!
//! What the upstream receives:
//! - the request as the client sent it (method, path and query, `Host`,
//!   `Authorization`, body streamed as it arrives), over pooled
//!   connections;
//! - without the hop-by-hop headers (RFC 9110 §7.6.1) and without any
//!   header named like an identity header: a client cannot speak for the
//!   gate;
//! - with the identity headers (`X-Client-Id`, `X-Subject`, `X-Scopes`, or
//!   the policy's names), set only when the route identified a caller;
//! - with `X-Forwarded-For` (the peer appended), `X-Forwarded-Proto` and
//!   `X-Forwarded-Host` (the client's `Host`; a client's own value is
//!   replaced).
//!
//! The answer streams back the same way. A WebSocket (or any `Upgrade`)
//! handshake the gate allows is passed through: once the upstream answers
//! 101, bytes are copied both ways until either end closes. An upstream
//! that cannot be reached is 502; one that has not answered within
//! `gate_proxy_timeout` is 504.
//!
//! The environment whose tokens and routes apply is the listener's
//! (`gate_proxy_env`), never one the request names: the proxy sits in front
//! of one API.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{self, HeaderName};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tollgate_gate::decide::{KeyHeader, Request as GateRequest};
use tollgate_gate::forward;
use tollgate_gate::{Decision, Denial, Gate, Invalid};

use crate::AppState;
use crate::contracts::api_keys::ApiKeys;
use crate::gate::{answered, key_header, outcome_of, record};
use crate::ops::Outcome;

/// Where a proxy sends what it allows, and how long it waits.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// `http://host:port`, optionally with a path prefix the request's path
    /// is appended to.
    pub base: Uri,
    /// The environment whose tokens and routes apply.
    pub env: String,
    /// How long the upstream may take to answer (its headers).
    pub timeout: Duration,
    /// Whether the listener is reached over TLS (`X-Forwarded-Proto`).
    pub tls: bool,
}

/// Why an upstream URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("gate_proxy_upstream '{url}': {why}")]
pub struct BadUpstream {
    url: String,
    why: &'static str,
}

impl Upstream {
    /// Parses `url`: `http://` with a host; no query (the request's own
    /// query is kept). HTTPS to the upstream is not offered: the gate and
    /// the API it guards sit on one private network.
    pub fn parse(url: &str, env: &str, timeout: Duration, tls: bool) -> Result<Self, BadUpstream> {
        let bad = |why| BadUpstream {
            url: url.to_string(),
            why,
        };
        let base: Uri = url.parse().map_err(|_| bad("not a URL"))?;
        if base.scheme_str() != Some("http") {
            return Err(bad("must start with http://"));
        }
        if base.authority().is_none() {
            return Err(bad("has no host"));
        }
        if base.query().is_some() {
            return Err(bad("must not have a query"));
        }
        Ok(Self {
            base,
            env: env.to_string(),
            timeout,
            tls,
        })
    }

    /// The upstream URI for a request target (path and query).
    fn uri_for(&self, target: &str) -> Option<Uri> {
        let prefix = self.base.path().trim_end_matches('/');
        let authority = self.base.authority()?;
        format!("http://{authority}{prefix}{target}").parse().ok()
    }
}

/// What the proxy's handler needs.
#[derive(Clone)]
struct Proxy {
    state: AppState,
    gate: Arc<Gate>,
    upstream: Arc<Upstream>,
    client: Client<HttpConnector, Body>,
}

/// The proxy's router: every method and path goes through [`forward`].
/// Served by [`crate::server::serve`] on a listener of its own, with the
/// request log (so denials are logged with their reason and counted).
pub fn router(state: AppState, gate: Arc<Gate>, upstream: Upstream) -> Router {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(upstream.timeout));
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector);
    let proxy = Proxy {
        state: state.clone(),
        gate,
        upstream: Arc::new(upstream),
        client,
    };
    Router::new()
        .fallback(forward)
        .with_state(proxy)
        .layer(axum::middleware::from_fn_with_state(
            state,
            crate::ops::request_log,
        ))
}

/// Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection, not
/// the message, and are not forwarded either way.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes the hop-by-hop headers and those `Connection` names.
fn strip_hop_by_hop(h: &mut HeaderMap) {
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named.iter().chain(HOP_BY_HOP.iter()) {
        h.remove(n);
    }
}

/// Whether the request asks to switch protocols (`Connection: upgrade`
/// with an `Upgrade` header): the value to send on, if so.
fn upgrade_of(h: &HeaderMap) -> Option<HeaderValue> {
    let asks = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    asks.then(|| h.get(header::UPGRADE).cloned()).flatten()
}

async fn forward(
    State(p): State<Proxy>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let target = req
        .uri()
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_string();
    let mut auths = req.headers().get_all(header::AUTHORIZATION).iter();
    let first = auths.next().cloned();
    // The environment's API-key setting (header name, counting), if the
    // environment exists; a key header is then read like the check does.
    let env = p.state.core.env(&p.upstream.env);
    let keys = env
        .as_ref()
        .and_then(|env| crate::contracts::setting::<ApiKeys>(&p.state, env))
        .map(|k| (k.header.clone(), k.count_limit));
    let decision = if auths.next().is_some() {
        // Two credentials: which one the upstream reads is unknown.
        Decision::Deny(Denial::InvalidToken(Invalid::Malformed))
    } else {
        let (api_key, count_api_key_calls) = match &keys {
            Some((header, count)) => (key_header(req.headers(), header), *count),
            None => (KeyHeader::Absent, false),
        };
        let asked = GateRequest {
            env: &p.upstream.env,
            method: req.method().as_str(),
            target: &target,
            authorization: first.as_ref().and_then(|v| v.to_str().ok()),
            api_key,
            count_api_key_calls,
        };
        let started = std::time::Instant::now();
        let decision = p.gate.decide(&asked).await;
        record(&p.state, &p.gate, &asked, &decision, started);
        decision
    };
    // The key is a secret the upstream does not need once the gate has
    // named its client: it is not passed on.
    let key_name = keys.map(|(header, _)| header);
    let answer = p
        .gate
        .with_policy(|pol| forward::answer(&decision, &pol.settings.headers));
    let (code, client_id) = outcome_of(&decision);
    let outcome = |code: &'static str, client_id: Option<String>| Outcome {
        contract: "gate",
        endpoint: "proxy",
        env: p.upstream.env.clone(),
        code,
        client_id,
    };
    let mut resp = if let Decision::Deny(d) = &decision {
        // The log line names the reason; never the token.
        tracing::info!(
            env = %p.upstream.env,
            method = %req.method(),
            path = %req.uri().path(),
            reason = d.as_str(),
            "gate: request refused"
        );
        answered(answer)
    } else {
        let identity = answer.headers;
        let mut req = req;
        if let Some(name) = &key_name {
            req.headers_mut().remove(name);
        }
        match pass(&p, peer, req, &target, &identity).await {
            Ok(r) => r,
            Err(status) => {
                let mut r = status.into_response();
                r.extensions_mut().insert(outcome(
                    if status == StatusCode::GATEWAY_TIMEOUT {
                        "upstream_timeout"
                    } else {
                        "upstream_unreachable"
                    },
                    client_id,
                ));
                return r;
            }
        }
    };
    resp.extensions_mut().insert(outcome(code, client_id));
    resp
}

/// Sends an allowed request on and streams the answer back; an error is
/// the status to answer (502, 504).
async fn pass(
    p: &Proxy,
    peer: SocketAddr,
    mut req: Request,
    target: &str,
    identity: &[(String, String)],
) -> Result<Response, StatusCode> {
    let uri = p.upstream.uri_for(target).ok_or(StatusCode::BAD_GATEWAY)?;
    let upgrade = upgrade_of(req.headers());
    // Taken before the request is sent on: the client's side of a switch.
    let client_side = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));
    let host = req.headers().get(header::HOST).cloned();
    let h = req.headers_mut();
    strip_hop_by_hop(h);
    for (name, value) in identity {
        let Ok(n) = HeaderName::from_bytes(name.as_bytes()) else {
            continue;
        };
        // Every identity name goes, whatever the client put there.
        h.remove(&n);
        if !value.is_empty()
            && let Ok(v) = HeaderValue::from_str(value)
        {
            h.insert(n, v);
        }
    }
    append_forwarded_for(h, peer);
    h.insert(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static(if p.upstream.tls { "https" } else { "http" }),
    );
    match host {
        Some(v) => {
            h.insert(HeaderName::from_static("x-forwarded-host"), v);
        }
        None => {
            h.remove("x-forwarded-host");
        }
    }
    if let Some(u) = &upgrade {
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert(header::UPGRADE, u.clone());
    }
    *req.uri_mut() = uri;
    *req.version_mut() = axum::http::Version::HTTP_11;
    let sent = tokio::time::timeout(p.upstream.timeout, p.client.request(req)).await;
    let mut resp = match sent {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "gate: upstream unreachable");
            return Err(StatusCode::BAD_GATEWAY);
        }
        Err(_) => {
            tracing::warn!(
                after_ms = p.upstream.timeout.as_millis(),
                "gate: upstream did not answer in time"
            );
            return Err(StatusCode::GATEWAY_TIMEOUT);
        }
    };
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client_side) = client_side {
            let upstream_side = hyper::upgrade::on(&mut resp);
            tokio::spawn(async move {
                match (client_side.await, upstream_side.await) {
                    (Ok(c), Ok(u)) => {
                        let (mut c, mut u) = (TokioIo::new(c), TokioIo::new(u));
                        if let Err(e) = tokio::io::copy_bidirectional(&mut c, &mut u).await {
                            tracing::debug!(error = %e, "gate: upgraded connection ended");
                        }
                    }
                    _ => tracing::debug!("gate: an upgrade did not complete"),
                }
            });
            let (parts, _) = resp.into_parts();
            return Ok(Response::from_parts(parts, Body::empty()));
        }
        // A 101 nobody asked for cannot be relayed.
        return Err(StatusCode::BAD_GATEWAY);
    }
    strip_hop_by_hop(resp.headers_mut());
    Ok(resp.map(Body::new))
}

/// Appends the peer to `X-Forwarded-For` (one header, comma-separated, as
/// nginx's `$proxy_add_x_forwarded_for` does).
fn append_forwarded_for(h: &mut HeaderMap, peer: SocketAddr) {
    let name = HeaderName::from_static("x-forwarded-for");
    let prior: Vec<&str> = h
        .get_all(&name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let ip = peer.ip().to_string();
    let value = if prior.is_empty() {
        ip
    } else {
        format!("{}, {ip}", prior.join(", "))
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        h.insert(name, v);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn upstream_urls_are_http_with_a_host_and_keep_their_prefix() {
        let t = Duration::from_secs(1);
        let u = Upstream::parse("http://127.0.0.1:9000/api/", "default", t, false).unwrap();
        assert_eq!(
            u.uri_for("/v2/odds?x=1").unwrap().to_string(),
            "http://127.0.0.1:9000/api/v2/odds?x=1"
        );
        let u = Upstream::parse("http://api.internal", "default", t, false).unwrap();
        assert_eq!(u.uri_for("/").unwrap().to_string(), "http://api.internal/");
        for bad in [
            "https://x",
            "ftp://x",
            "/relative",
            "http://x/?q=1",
            "not a url",
        ] {
            assert!(Upstream::parse(bad, "default", t, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_dropped() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret-hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        let names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["x-kept"]);
    }

    #[test]
    fn upgrades_are_recognised_only_with_both_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert_eq!(upgrade_of(&h), None);
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert_eq!(upgrade_of(&h), Some(HeaderValue::from_static("websocket")));
    }

    #[test]
    fn the_peer_is_appended_to_x_forwarded_for() {
        let mut h = HeaderMap::new();
        let peer: SocketAddr = "10.0.0.7:5555".parse().unwrap();
        append_forwarded_for(&mut h, peer);
        assert_eq!(h["x-forwarded-for"], "10.0.0.7");
        h.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.9"));
        append_forwarded_for(&mut h, peer);
        assert_eq!(h["x-forwarded-for"], "203.0.113.9, 10.0.0.7");
    }
}
