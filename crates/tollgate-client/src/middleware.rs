//! Calling the API with the token: for `reqwest`, [`AuthedClient`] (or
//! [`SendWithToken::send_with`] on a request builder); for `tower`,
//! [`BearerLayer`]. Both attach `Authorization: Bearer`, and on a 401 from
//! the API drop that token, get a new one and retry once (a revoked token,
//! or one signed by a key the API has not fetched yet, should cost one
//! retry, not an outage).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tower::{Layer, Service, ServiceExt as _};

use crate::error::Error;
use crate::source::TokenSource;

/// What sending through [`AuthedClient`] can fail with.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No token could be had.
    #[error(transparent)]
    Token(#[from] Error),
    /// The API request itself failed.
    #[error(transparent)]
    Http(#[from] reqwest::Error),
}

/// Sends `reqwest` requests with a source's token.
pub trait SendWithToken {
    /// Sends with `Authorization: Bearer`; on 401, refreshes once and
    /// retries (when the request can be cloned: not for streaming bodies).
    fn send_with(
        self,
        source: &TokenSource,
    ) -> impl Future<Output = Result<reqwest::Response, SendError>> + Send;
}

impl SendWithToken for reqwest::RequestBuilder {
    async fn send_with(self, source: &TokenSource) -> Result<reqwest::Response, SendError> {
        let again = self.try_clone();
        let token = source.token().await?;
        let resp = self.bearer_auth(token.secret()).send().await?;
        if resp.status() != reqwest::StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let Some(again) = again else {
            return Ok(resp);
        };
        source.invalidate(&token);
        let token = source.token().await?;
        Ok(again.bearer_auth(token.secret()).send().await?)
    }
}

/// A `reqwest::Client` and a token source: `client.get(url)` then
/// `.send_with(client.source())`, or [`AuthedClient::send`].
#[derive(Clone, Debug)]
pub struct AuthedClient {
    http: reqwest::Client,
    source: TokenSource,
}

impl AuthedClient {
    /// Wraps `http` with `source`.
    pub fn new(http: reqwest::Client, source: TokenSource) -> Self {
        Self { http, source }
    }

    /// The HTTP client, to build requests.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The token source.
    pub fn source(&self) -> &TokenSource {
        &self.source
    }

    /// Sends `request` with the token (see [`SendWithToken`]).
    pub async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, SendError> {
        request.send_with(&self.source).await
    }
}

/// A `tower` layer adding the source's token to every request, retrying
/// once on 401 with a new token. Request bodies must be `Clone` (the retry
/// resends the request).
#[derive(Clone, Debug)]
pub struct BearerLayer {
    source: TokenSource,
}

impl BearerLayer {
    /// The layer for `source`.
    pub fn new(source: TokenSource) -> Self {
        Self { source }
    }
}

impl<S> Layer<S> for BearerLayer {
    type Service = Bearer<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Bearer {
            inner,
            source: self.source.clone(),
        }
    }
}

/// The service [`BearerLayer`] makes.
#[derive(Clone, Debug)]
pub struct Bearer<S> {
    inner: S,
    source: TokenSource,
}

fn with_token<B>(
    mut req: http::Request<B>,
    token: &crate::AccessToken,
) -> Result<http::Request<B>, Error> {
    let value = http::HeaderValue::from_str(&token.header_value())
        .map_err(|_| Error::Config("the token is not a valid header value".into()))?;
    req.headers_mut().insert(http::header::AUTHORIZATION, value);
    Ok(req)
}

impl<S, B, R> Service<http::Request<B>> for Bearer<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<tower::BoxError>,
    B: Clone + Send + 'static,
    R: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = tower::BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        // The ready service goes into the future; a clone stays (tower's
        // usual swap, so the polled-ready one is the one called).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let source = self.source.clone();
        Box::pin(async move {
            let token = source.token().await?;
            let (parts, body) = req.into_parts();
            let again = {
                let mut r = http::Request::new(body.clone());
                *r.method_mut() = parts.method.clone();
                *r.uri_mut() = parts.uri.clone();
                *r.version_mut() = parts.version;
                *r.headers_mut() = parts.headers.clone();
                r
            };
            let first = with_token(http::Request::from_parts(parts, body), &token)?;
            let resp = inner.call(first).await.map_err(Into::into)?;
            if resp.status() != http::StatusCode::UNAUTHORIZED {
                return Ok(resp);
            }
            source.invalidate(&token);
            let token = source.token().await?;
            let second = with_token(again, &token)?;
            let ready = inner.ready().await.map_err(Into::into)?;
            ready.call(second).await.map_err(Into::into)
        })
    }
}
