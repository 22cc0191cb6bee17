//! Listeners: the HTTPS server (rustls, HTTP/1.1 and HTTP/2) and the optional plain-HTTP
//! listener that does nothing but redirect to HTTPS.

use crate::state::AppState;
use axum::Router;
use axum::extract::ConnectInfo;
use hyper::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// Accepts TLS connections until `shutdown` resolves.
pub async fn serve_https(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    state: AppState,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let handshake_timeout =
        Duration::from_secs(u64::from(state.config.limits.handshake_timeout_seconds));
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        let metrics = state.metrics.clone();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let stream = match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    metrics.tls_handshake_failures.inc();
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    metrics.tls_handshake_failures.inc();
                    return;
                }
            };
            metrics.open_connections.inc();
            let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                // HTTP/2 carries the host in :authority; give handlers one place to look.
                if !req.headers().contains_key(hyper::header::HOST)
                    && let Some(authority) = req
                        .uri()
                        .authority()
                        .and_then(|a| hyper::header::HeaderValue::from_str(a.as_str()).ok())
                {
                    req.headers_mut().insert(hyper::header::HOST, authority);
                }
                app.clone().oneshot(req)
            });
            let conn = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
            if let Err(e) = conn {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            metrics.open_connections.dec();
        });
    }
}

/// Plain HTTP: every request gets a permanent redirect to the same path on `https_base`.
/// Nothing else is served here, and the Host header is not trusted for the target.
pub async fn serve_redirect(
    listener: TcpListener,
    https_base: String,
    shutdown: impl Future<Output = ()>,
) {
    let base: Arc<str> = Arc::from(https_base.trim_end_matches('/'));
    tokio::pin!(shutdown);
    loop {
        let (tcp, _) = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let base = base.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let path = req
                    .uri()
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_string();
                let location = format!("{base}{path}");
                async move {
                    hyper::Response::builder()
                        .status(hyper::StatusCode::PERMANENT_REDIRECT)
                        .header(hyper::header::LOCATION, location)
                        .header(hyper::header::CONTENT_LENGTH, "0")
                        .body(http_body_util::Empty::<bytes::Bytes>::new())
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}
