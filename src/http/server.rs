//! The accept loop: HTTP/1.1 keep-alive connections on hyper, bounded in
//! number, drained gracefully on shutdown.

use crate::http::{handle, AppState};
use crate::metrics as names;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Serves until shutdown is triggered, then stops accepting, lets in-flight
/// requests finish (up to `server.shutdown_grace_seconds`) and returns.
pub async fn serve(listener: TcpListener, state: Arc<AppState>) {
    let graceful = GracefulShutdown::new();
    let connections = Arc::new(AtomicUsize::new(0));
    let connections_max = state.config.server.connections_max;
    // hyper starts this timer when it waits for a request head, so it closes
    // both slow senders and idle keep-alive connections.
    let header_read_timeout = Duration::from_secs(state.config.server.header_read_timeout_seconds);
    let mut shutdown = state.shutdown.clone();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(error) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.triggered() => {
                // /readyz answers 503 on kept-alive connections from now on.
                state.draining.store(true, Ordering::Release);
                break;
            }
        };
        if connections.fetch_add(1, Ordering::AcqRel) >= connections_max {
            connections.fetch_sub(1, Ordering::AcqRel);
            metrics::counter!(names::HTTP_CONNECTIONS_REFUSED_TOTAL).increment(1);
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        let service = service_fn(move |request| handle(Arc::clone(&state), request));
        let connection = http1::Builder::new()
            .keep_alive(true)
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        let connections = Arc::clone(&connections);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
            connections.fetch_sub(1, Ordering::AcqRel);
        });
    }
    drop(listener);
    let grace = Duration::from_secs(state.config.server.shutdown_grace_seconds);
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections closed"),
        _ = tokio::time::sleep(grace) => tracing::warn!("shutdown grace period elapsed; closing"),
    }
}
