//! Serving: plain HTTP, or HTTPS with rustls (aws-lc-rs) for deployments
//! without a TLS-terminating proxy, through one accept loop that bounds what
//! a connection may hold ([`Limits`]). Both shut down gracefully.
//!
//! Where each limit is enforced, and why there:
//!
//! - **Connections**: a slot of a semaphore is taken *before* each accept.
//!   At the cap the loop stops accepting, so a burst waits in the kernel's
//!   listen backlog and is served as slots free, instead of being accepted
//!   and dropped (which a client sees as an error it may not retry).
//! - **TLS handshake**: the acceptor's future runs under a timeout.
//! - **Request head and idle keep-alive**: measured on the socket by
//!   [`Watched`]. hyper's own `header_read_timeout` starts as soon as hyper
//!   waits for a request, idle keep-alive time included, so it cannot allow
//!   a kept-alive connection a minute of idleness and a slow head ten
//!   seconds; `Watched` knows which of the two it is waiting for.
//! - **Request body**: must arrive within `body_read_timeout` of the head;
//!   [`within_read_deadline`], a step of [`crate::edge`], bounds the handler's reads
//!   and answers 408 (inside the request log, so the log shows the 408).
//! - **Upgraded connections** (a WebSocket the gate's proxy passes
//!   through): once a handler has answered 101, the socket belongs to the
//!   two ends and `Watched` no longer times its reads; the connection cap
//!   still counts it.
//!
//! Shutdown: the accept loop stops, every connection is told (a watch
//! channel) and closes once its request in flight is answered, and the
//! loop waits, up to the grace, until every connection slot is back.

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Reading or parsing the certificate or key failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// Socket error.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// What one connection may hold, and how many there may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A request's complete head must arrive within this: counted from the
    /// accept (or the end of the TLS handshake) for a connection's first
    /// request, from the request's first byte on a kept-alive connection.
    pub header_read_timeout: Duration,
    /// The whole request body must arrive within this of the head.
    pub body_read_timeout: Duration,
    /// A kept-alive connection waiting longer than this for its next
    /// request is closed.
    pub idle_timeout: Duration,
    /// A TLS handshake must complete within this.
    pub tls_handshake_timeout: Duration,
    /// Connections served at once; further ones wait to be accepted.
    pub max_connections: usize,
}

impl Limits {
    /// The defaults (docs/OPERATIONS.md says why these values).
    pub const DEFAULT: Limits = Limits {
        header_read_timeout: Duration::from_secs(10),
        body_read_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(75),
        tls_handshake_timeout: Duration::from_secs(10),
        max_connections: 4096,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// After an accept error that is not about one connection (out of file
/// descriptors, of memory), accepting again at once would only spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(500);

/// Loads a PEM certificate chain and private key into a rustls config.
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, ServeError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|e| ServeError::Tls(format!("cannot read {}: {e}", p.display())))
    };
    let certs = CertificateDer::pem_slice_iter(&read(cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ServeError::Tls(format!("{}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(ServeError::Tls(format!(
            "no certificate in {}",
            cert.display()
        )));
    }
    let key = match PrivateKeyDer::from_pem_slice(&read(key)?) {
        Ok(k) => k,
        Err(pem::Error::NoItemsFound) => {
            return Err(ServeError::Tls(format!(
                "no private key in {}",
                key.display()
            )));
        }
        Err(e) => return Err(ServeError::Tls(format!("{}: {e}", key.display()))),
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServeError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ServeError::Tls(e.to_string()))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Serves `app` on `listener` (over TLS when `tls` is given) within
/// `limits` until `shutdown` resolves, then lets in-flight requests finish
/// for up to `grace`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
    limits: Limits,
) -> Result<(), ServeError> {
    let acceptor = tls.map(TlsAcceptor::from);
    let (stop, stopping) = watch::channel(false);
    // Bounded by u32 so that shutdown can wait for all slots at once.
    let cap = limits
        .max_connections
        .clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
    let slots = Arc::new(Semaphore::new(cap));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(s) => s,
                // The semaphore is never closed.
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::select! {
                        () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                        () = &mut shutdown => break,
                    }
                }
            },
            () = &mut shutdown => break,
        };
        // The slot is held from the accept: shutdown waits for (bounded)
        // handshakes too, and they see the stop once they are served.
        let stopping = stopping.clone();
        let app = app.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _slot = slot;
            connection(tcp, peer, acceptor, app, limits, stopping).await;
        });
    }
    drop(listener);
    // No receiver left is fine: no connection is open.
    let _ = stop.send(true);
    let all = u32::try_from(cap).unwrap_or(u32::MAX);
    if tokio::time::timeout(grace, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("shutdown deadline passed with requests in flight");
    }
    Ok(())
}

/// Errors about one connection that went away before it was accepted.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// One accepted connection: the TLS handshake if any, then HTTP/1.1.
async fn connection(
    tcp: TcpStream,
    peer: std::net::SocketAddr,
    acceptor: Option<TlsAcceptor>,
    app: Router,
    limits: Limits,
    stopping: watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    let Some(acceptor) = acceptor else {
        return http(tcp, peer, app, limits, stopping).await;
    };
    match tokio::time::timeout(limits.tls_handshake_timeout, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => http(tls, peer, app, limits, stopping).await,
        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!("TLS handshake timed out"),
    }
}

/// Serves HTTP/1.1 on `io` until the client leaves, a limit closes the
/// connection, or shutdown does.
async fn http<IO>(
    io: IO,
    peer: std::net::SocketAddr,
    app: Router,
    limits: Limits,
    mut stopping: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::default());
    let io = Watched::new(io, activity.clone(), &limits);
    let body_timeout = limits.body_read_timeout;
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        let busy = Busy::begin(&activity);
        // The peer, for per-source throttling (axum's `ConnectInfo`).
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        req.extensions_mut().insert(ReadDeadline {
            at: Instant::now() + body_timeout,
            after: body_timeout,
        });
        let call = app.clone().oneshot(req);
        let activity = activity.clone();
        async move {
            let response = call.await;
            if response
                .as_ref()
                .is_ok_and(|r| r.status() == StatusCode::SWITCHING_PROTOCOLS)
            {
                activity.upgraded.store(true, Ordering::Release);
            }
            drop(busy);
            response
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        // `Watched` bounds the head and idleness instead (module docs).
        .header_read_timeout(None)
        // Header names go out as the vendors write them (`Set-Authorization`,
        // `Content-Type`), not in the lower case `http` stores them in:
        // HTTP says names are case-insensitive, but hand-written clients
        // of the vendor contracts match them case-sensitively.
        .title_case_headers(true)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let stop = async {
        // A dropped sender is a stop too; the guard is dropped here.
        let _ = stopping.wait_for(|stop| *stop).await;
    };
    let done = tokio::select! {
        closed = conn.as_mut() => Some(closed),
        () = stop => None,
    };
    let closed = match done {
        Some(closed) => closed,
        None => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = closed {
        tracing::debug!(error = %e, "connection closed");
    }
}

/// What the request side of one connection is doing, as its service sees it.
#[derive(Debug, Default)]
struct Activity {
    /// Requests handed to the router so far.
    started: AtomicU64,
    /// Requests the router has not answered yet (HTTP/1.1: at most one).
    in_flight: AtomicUsize,
    /// The connection task, when its last read found it busy. hyper reads
    /// while a handler runs (to notice a client going away) and, after
    /// answering, waits for the socket rather than reading again; without
    /// this wake-up the idle clock would not start until the client sent
    /// something.
    reader: Mutex<Option<Waker>>,
    /// A handler answered 101: the socket now carries another protocol
    /// between the two ends, whose silences are theirs to time.
    upgraded: AtomicBool,
}

/// One request being handled; dropped once the router has answered.
struct Busy(Arc<Activity>);

impl Busy {
    fn begin(activity: &Arc<Activity>) -> Self {
        activity.started.fetch_add(1, Ordering::AcqRel);
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy(activity.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        let reader = self.0.reader.lock().ok().and_then(|mut w| w.take());
        if let Some(w) = reader {
            w.wake();
        }
    }
}

/// What a connection's reads wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Its first request, since the accept: bounded by the header timeout.
    Fresh,
    /// The next request on a kept-alive connection: the idle timeout.
    Idle,
    /// The rest of a head whose first byte came: the header timeout.
    Head,
    /// A request is being handled: the body has its own deadline and the
    /// handler's time is not the client's fault, so nothing here.
    Busy,
}

/// The connection's socket (or TLS stream), failing a read with `TimedOut`
/// when the client has not sent what the phase waits for in time; hyper
/// then closes the connection.
struct Watched<IO> {
    io: IO,
    activity: Arc<Activity>,
    /// `activity.started` when the phase was last brought up to date.
    seen: u64,
    phase: Phase,
    deadline: Pin<Box<Sleep>>,
    header_read_timeout: Duration,
    idle_timeout: Duration,
}

impl<IO> Watched<IO> {
    fn new(io: IO, activity: Arc<Activity>, limits: &Limits) -> Self {
        Watched {
            io,
            activity,
            seen: 0,
            phase: Phase::Fresh,
            deadline: Box::pin(tokio::time::sleep(limits.header_read_timeout)),
            header_read_timeout: limits.header_read_timeout,
            idle_timeout: limits.idle_timeout,
        }
    }

    /// Follows what the service did since the last read: a request handed
    /// over makes the connection busy; one answered (or several, pipelined)
    /// starts the idle clock.
    fn refresh(&mut self) {
        let started = self.activity.started.load(Ordering::Acquire);
        if self.activity.in_flight.load(Ordering::Acquire) > 0 {
            self.phase = Phase::Busy;
        } else if self.phase == Phase::Busy || started != self.seen {
            self.phase = Phase::Idle;
            self.deadline
                .as_mut()
                .reset(Instant::now() + self.idle_timeout);
        }
        self.seen = started;
    }

    /// Bytes arrived: on a kept-alive connection, a new request's head is
    /// starting and gets the header timeout from now.
    fn received(&mut self) {
        match self.phase {
            Phase::Idle => {
                self.phase = Phase::Head;
                self.deadline
                    .as_mut()
                    .reset(Instant::now() + self.header_read_timeout);
            }
            // The first request's head counts from the accept.
            Phase::Fresh => self.phase = Phase::Head,
            Phase::Head | Phase::Busy => {}
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.activity.upgraded.load(Ordering::Acquire) {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        }
        this.refresh();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.received();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let waiting = match this.phase {
                    Phase::Fresh | Phase::Head => "request head",
                    Phase::Idle => "next request (idle)",
                    Phase::Busy => {
                        if let Ok(mut w) = this.activity.reader.lock() {
                            match &*w {
                                Some(old) if old.will_wake(cx.waker()) => {}
                                _ => *w = Some(cx.waker().clone()),
                            }
                        }
                        return Poll::Pending;
                    }
                };
                match this.deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("timed out waiting for the {waiting}"),
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// When a request's body must have arrived; [`serve`] puts one on every
/// request and [`within_read_deadline`] holds the body to it.
#[derive(Debug, Clone, Copy)]
pub struct ReadDeadline {
    at: Instant,
    after: Duration,
}

/// Around `run` (a step of [`crate::edge`]): a request body that has not fully arrived by its
/// [`ReadDeadline`] fails the handler's read, and the answer becomes 408
/// with `Connection: close` (the rest of the body may still be on its way,
/// so the connection cannot be reused). Whatever the contract made of the
/// failed read is replaced: its error map has no word for a timeout.
pub async fn within_read_deadline<F, Fut>(req: Request, run: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let Some(deadline) = req.extensions().get::<ReadDeadline>().copied() else {
        return run(req).await;
    };
    if req.body().is_end_stream() {
        return run(req).await;
    }
    let expired = Arc::new(AtomicBool::new(false));
    let req = req.map(|inner| {
        Body::new(DeadlineBody {
            inner,
            at: deadline.at,
            sleep: None,
            expired: expired.clone(),
        })
    });
    let response = run(req).await;
    if !expired.load(Ordering::Acquire) {
        return response;
    }
    let mut refused = crate::env::refused(
        StatusCode::REQUEST_TIMEOUT,
        &format!(
            "the request body did not arrive within {}s",
            deadline.after.as_secs()
        ),
    );
    refused
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    refused
}

/// A request body that fails once its deadline passes before it has ended.
struct DeadlineBody {
    inner: Body,
    at: Instant,
    /// Made on the first wait only: most bodies arrive with their head.
    sleep: Option<Pin<Box<Sleep>>>,
    expired: Arc<AtomicBool>,
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        let at = this.at;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.expired.store(true, Ordering::Release);
                Poll::Ready(Some(Err(axum::Error::new(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "request body timed out",
                )))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
