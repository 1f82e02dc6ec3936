//! Serving: plain HTTP through `axum::serve`, or HTTPS with rustls (aws-lc-rs)
//! for deployments without a TLS-terminating proxy. Both shut down gracefully.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

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

/// Serves `app` on `listener` until `shutdown` resolves, then lets in-flight
/// requests finish for up to `grace`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> Result<(), ServeError> {
    let Some(tls) = tls else {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = axum::serve(listener, app).with_graceful_shutdown(async move {
            shutdown.await;
            let _ = tx.send(());
        });
        let mut server = std::pin::pin!(server.into_future());
        tokio::select! {
            r = &mut server => return r.map_err(ServeError::Io),
            _ = rx => {}
        }
        return match tokio::time::timeout(grace, server).await {
            Ok(r) => r.map_err(ServeError::Io),
            Err(_) => {
                tracing::warn!("shutdown deadline passed with requests in flight");
                Ok(())
            }
        };
    };
    let acceptor = TlsAcceptor::from(tls);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, _) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let service = TowerToHyperService::new(app.clone());
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(tcp).await else { return };
                    let conn = hyper::server::conn::http1::Builder::new()
                        .timer(hyper_util::rt::TokioTimer::new())
                        .header_read_timeout(Duration::from_secs(30))
                        .serve_connection(TokioIo::new(stream), service);
                    let _ = watcher.watch(conn).await;
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown deadline passed with requests in flight");
    }
    Ok(())
}
