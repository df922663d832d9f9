//! The accept loop and the HTTP threads: HTTP/1.1 keep-alive connections on
//! hyper, bounded in number, drained gracefully on shutdown.
//!
//! One task accepts (on the main runtime) and hands each connection to one
//! of `server.workers` HTTP threads, the one serving the fewest connections
//! at that moment. Each HTTP thread runs a current-thread tokio runtime of
//! its own, and a connection stays on its thread for its whole life: its
//! requests are parsed, handled and answered there, and what a request
//! allocates is freed by the thread that allocated it. On tokio's
//! work-stealing runtime a connection's task moved between workers, and
//! `perf` showed the cost in a `flash` burst: glibc's arena locks contended
//! (`__lll_lock_wait_private` and the futex wake-ups of their waiters, about
//! 5% of the workers' samples) and about 12% more CPU per order
//! (docs/PERFORMANCE.md, run G). What a thread does not get back is
//! balance: a connection with slow requests delays the other connections of
//! its thread instead of being stolen from. The timers, the payment sweeps
//! and the cluster's tasks stay on the main runtime.

use crate::http::{handle, AppState};
use crate::metrics as names;
use crate::sched::ThreadPolicy;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// Serves until shutdown is triggered, then stops accepting, lets in-flight
/// requests finish (up to `server.shutdown_grace_seconds`) and returns.
pub async fn serve(listener: TcpListener, threads: HttpThreads, state: Arc<AppState>) {
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
        let Some(counted) = Counted::within(&connections, connections_max) else {
            metrics::counter!(names::HTTP_CONNECTIONS_REFUSED_TOTAL).increment(1);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        // Off this runtime's reactor; the HTTP thread registers it with its own.
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!(%error, "cannot hand over an accepted connection");
                continue;
            }
        };
        let state = Arc::clone(&state);
        let watcher = graceful.watcher();
        threads.spawn_connection(async move {
            // Counted until this future ends, whichever way: finished,
            // failed, panicked or dropped with its thread.
            let _counted = counted;
            let stream = match tokio::net::TcpStream::from_std(stream) {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::warn!(%error, "cannot register an accepted connection");
                    return;
                }
            };
            let service = service_fn(move |request| handle(Arc::clone(&state), request));
            let connection = http1::Builder::new()
                .keep_alive(true)
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(error) = watcher.watch(connection).await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let grace = Duration::from_secs(state.config.server.shutdown_grace_seconds);
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections closed"),
        _ = tokio::time::sleep(grace) => tracing::warn!("shutdown grace period elapsed; closing"),
    }
    // Whatever is still open closes with its thread's runtime.
    let _ = tokio::task::spawn_blocking(move || threads.stop()).await;
}

/// The HTTP threads, each a current-thread runtime serving the connections
/// handed to it. Dropping this stops them and drops what they still serve.
pub struct HttpThreads {
    threads: Vec<HttpThread>,
}

struct HttpThread {
    runtime: tokio::runtime::Handle,
    /// Connections this thread serves now.
    serving: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
    join: Option<JoinHandle<()>>,
}

impl HttpThreads {
    /// `count` threads (`server.workers`); 0 means one per core. Each puts
    /// itself under `policy` (`server.http_thread_policy`, see
    /// [`crate::sched`]); a refusal is logged and the thread serves as it is.
    pub fn start(count: usize, policy: ThreadPolicy) -> std::io::Result<HttpThreads> {
        let count = match count {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            count => count,
        };
        let mut threads = HttpThreads {
            threads: Vec::with_capacity(count),
        };
        for index in 0..count {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let handle = runtime.handle().clone();
            let (stop, stopped) = oneshot::channel::<()>();
            let join = std::thread::Builder::new()
                .name(format!("http-{index}"))
                .spawn(move || {
                    if let Err(error) = policy.apply_here() {
                        tracing::warn!(%error, ?policy, "cannot set an HTTP thread's scheduling policy; it stays as it was");
                    }
                    // Until stopped, or until the accept loop is gone. The
                    // journal answers this thread's requests through its relay.
                    runtime.block_on(async move {
                        crate::journal::relay::install_here();
                        let _ = stopped.await;
                    });
                    // Connections still open are dropped, not waited for.
                    runtime.shutdown_background();
                })?;
            threads.threads.push(HttpThread {
                runtime: handle,
                serving: Arc::new(AtomicUsize::new(0)),
                stop: Some(stop),
                join: Some(join),
            });
        }
        Ok(threads)
    }

    /// Runs `connection` on the thread serving the fewest connections,
    /// counted there until the future ends.
    fn spawn_connection(&self, connection: impl Future<Output = ()> + Send + 'static) {
        let thread = self
            .threads
            .iter()
            .min_by_key(|thread| thread.serving.load(Ordering::Acquire))
            .expect("at least one HTTP thread");
        let serving = Counted::add(&thread.serving);
        thread.runtime.spawn(async move {
            let _serving = serving;
            connection.await;
        });
    }

    /// Stops every thread and waits for it to end.
    fn stop(mut self) {
        self.stop_all();
    }

    fn stop_all(&mut self) {
        for thread in &mut self.threads {
            if let Some(stop) = thread.stop.take() {
                let _ = stop.send(());
            }
        }
        for thread in &mut self.threads {
            if let Some(join) = thread.join.take() {
                let _ = join.join();
            }
        }
    }
}

/// One unit of a count, given back when dropped.
struct Counted(Arc<AtomicUsize>);

impl Counted {
    fn add(count: &Arc<AtomicUsize>) -> Counted {
        count.fetch_add(1, Ordering::AcqRel);
        Counted(Arc::clone(count))
    }

    /// A unit, unless the count is at `max` already.
    fn within(count: &Arc<AtomicUsize>, max: usize) -> Option<Counted> {
        let before = count.fetch_add(1, Ordering::AcqRel);
        let counted = Counted(Arc::clone(count));
        (before < max).then_some(counted)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for HttpThreads {
    fn drop(&mut self) {
        self.stop_all();
    }
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
