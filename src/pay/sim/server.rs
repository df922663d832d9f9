//! The simulator's HTTP/1.1 transport: a bounded accept loop, bodies read
//! up to a bound, then the request handed whole to the merchant API
//! ([`super::routes`]) or the control plane ([`super::control`]). Drained
//! gracefully on shutdown, like the gateway's own server.

use super::api_error::ApiError;
use super::{control, routes, Shared};
use crate::shutdown::Shutdown;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Open connections; more are closed at once.
pub const CONNECTIONS_MAX: usize = 1024;
/// Request bodies past this are answered 413 (prepay bodies are < 2 KiB).
pub const REQUEST_BODY_BYTES_MAX: usize = 64 * 1024;
/// Closes slow senders and idle keep-alive connections.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long shutdown waits for open requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

pub async fn serve(listener: TcpListener, shared: Arc<Shared>, mut shutdown: Shutdown) {
    let graceful = GracefulShutdown::new();
    let connections = Arc::new(AtomicUsize::new(0));
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(error) => {
                    tracing::debug!(%error, "simulator accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.triggered() => break,
        };
        if connections.fetch_add(1, Ordering::AcqRel) >= CONNECTIONS_MAX {
            connections.fetch_sub(1, Ordering::AcqRel);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        let service = service_fn(move |request| handle(Arc::clone(&shared), request));
        let connection = http1::Builder::new()
            .keep_alive(true)
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        let connections = Arc::clone(&connections);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "simulator connection ended with an error");
            }
            connections.fetch_sub(1, Ordering::AcqRel);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(SHUTDOWN_GRACE) => tracing::debug!("simulator shutdown grace elapsed"),
    }
}

async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, REQUEST_BODY_BYTES_MAX).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            let error = ApiError::body_too_large(REQUEST_BODY_BYTES_MAX);
            return Ok(routes::respond(&shared, Err(error)));
        }
        Err(error) => {
            tracing::debug!(%error, "simulator request body unreadable");
            let error = ApiError::param("/", "请求主体读取失败");
            return Ok(routes::respond(&shared, Err(error)));
        }
    };
    tracing::debug!(method = %parts.method, uri = %parts.uri, "simulator request");
    if parts.uri.path().starts_with(control::PREFIX) {
        return Ok(control::handle(&shared, &parts, &body));
    }
    Ok(routes::handle(&shared, &parts, &body).await)
}
