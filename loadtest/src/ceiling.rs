//! The ceiling: a hyper HTTP/1.1 endpoint that does no work. It reads each
//! request's body and answers a fixed 201 with an order-shaped JSON body of
//! the gateway's size, so the client parses the same bytes either way.
//!
//! It runs in this process on a tokio runtime of its own (its own worker
//! threads, as many as the gateway's by default), so the rounds against it
//! measure what this machine's HTTP stack and this load generator can do
//! with the gateway's work taken out. flashgate's throughput is quoted as a
//! ratio of it, measured in the same run.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tokio::sync::watch;

/// The answer: the size and shape of a gateway's 201 to `POST /v1/orders`.
const ORDER_BODY: &[u8] = br#"{"order_id":"FG19ab0000000000000000001","sale_id":"lt-19ab0000000-t0","sku_id":"sku-000","quantity":1,"amount":"99.00","currency":"CNY","status":"reserved","created_at":"2026-11-24T12:00:01.337Z","expires_at":"2026-11-24T12:15:01.337Z"}"#;

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// An HTTP/1.1 endpoint in this process: the ceiling, or the conventional
/// design ([`crate::conventional`]).
pub struct Endpoint {
    pub addr: SocketAddr,
    /// Taken when the endpoint stops (or is dropped).
    runtime: Option<Runtime>,
    stop: watch::Sender<bool>,
}

impl Endpoint {
    /// The ceiling: binds 127.0.0.1:0 and serves on `threads` worker threads.
    pub fn ceiling(threads: usize) -> Result<Endpoint, String> {
        Endpoint::serve(threads, "ceiling", answer)
    }

    /// Binds 127.0.0.1:0 and answers every request with `handler`, on
    /// `threads` worker threads named `name` (the CPU breakdown's name).
    pub(crate) fn serve<H, F>(threads: usize, name: &str, handler: H) -> Result<Endpoint, String>
    where
        H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send + 'static,
    {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name(name)
            .enable_all()
            .build()
            .map_err(|error| format!("the {name}'s runtime: {error}"))?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.set_nonblocking(true).map(|()| listener))
            .map_err(|error| format!("the {name} cannot listen: {error}"))?;
        let addr = listener
            .local_addr()
            .map_err(|error| format!("the {name}'s address: {error}"))?;
        let (stop, stopped) = watch::channel(false);
        let listener = {
            let _entered = runtime.enter();
            TcpListener::from_std(listener).map_err(|error| format!("the {name}: {error}"))?
        };
        runtime.spawn(accept_loop(listener, stopped, handler));
        Ok(Endpoint {
            addr,
            runtime: Some(runtime),
            stop,
        })
    }

    /// Runs `task` on this endpoint's runtime (a connection made there
    /// keeps its driver there).
    pub(crate) async fn on_runtime<T: Send + 'static>(
        &self,
        task: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, String> {
        let runtime = self.runtime.as_ref().ok_or("the endpoint has stopped")?;
        runtime
            .spawn(task)
            .await
            .map_err(|error| format!("a task on the endpoint's runtime failed: {error}"))
    }

    /// Stops accepting and drops the runtime without blocking the caller's
    /// (possibly async) thread.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Endpoint {
    /// Also on a run that fails half-way: a runtime dropped in the tool's
    /// async context would panic, so it is shut down in the background.
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

async fn accept_loop<H, F>(listener: TcpListener, mut stopped: watch::Receiver<bool>, handler: H)
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send + 'static,
{
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped.changed() => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(handler);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let read = request.into_body().collect().await;
    if read.is_err() {
        let mut response = Response::new(Full::new(Bytes::from_static(ORDER_BODY)));
        *response.status_mut() = StatusCode::BAD_REQUEST;
        return Ok(response);
    }
    Ok(order_created())
}

/// The ceiling's 201: the bytes a client reads for an order made (the
/// conventional endpoint answers its orders with it too).
pub(crate) fn order_created() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(ORDER_BODY)));
    *response.status_mut() = StatusCode::CREATED;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(
        REQUEST_ID.clone(),
        HeaderValue::from_static("fg-0000000000000001"),
    );
    response
}
