//! The cost of one `POST /v1/orders`, for profiling: allocations per order
//! (a counting global allocator) and a steady loop to run under
//! `valgrind --tool=callgrind` (deterministic instruction counts).
//!
//! One in-process gateway (`durability = "none"`, so no disk wait) with one
//! HTTP thread (`server.workers = 1`), and one keep-alive HTTP/1.1
//! connection sending orders back to back from a current-thread tokio
//! runtime, each with its own buyer token and Idempotency-Key signed before
//! any counting. The same loop is also run against a bare hyper server on
//! the client's own thread that answers a fixed 201: the difference is the
//! gateway's share.
//!
//! Allocations are counted on the client's thread and on the gateway's HTTP
//! thread (`http-0`, where its requests are parsed, handled and answered):
//! the journal writer and the store writer (SQLite) work on other threads,
//! off the request path.
//!
//! Knobs: `ORDER_PATH_ORDERS` (default 20,000), `ORDER_PATH_WARMUP`
//! (default 2,000). docs/PROFILE.md has the callgrind recipe and results.

use bytes::Bytes;
use flashgate::app::Gateway;
use flashgate::config::{Config, DEV_SESSION_SECRET};
use flashgate::http::auth::SessionKeys;
use flashgate::journal::Durability;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;
use tokio::net::{TcpListener, TcpStream};

// ---- counting allocator ----------------------------------------------------------

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static ALLOCATED_BYTES: AtomicU64 = AtomicU64::new(0);

/// While the measured loops run: the gateway's HTTP threads count too.
static COUNTING: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// The client's thread, while it measures.
    static COUNTED: Cell<bool> = const { Cell::new(false) };
    /// 0: not known yet; 1: one of the gateway's HTTP threads; 2: another.
    static HTTP_THREAD: Cell<u8> = const { Cell::new(0) };
}

fn is_http_thread() -> bool {
    HTTP_THREAD
        .try_with(|known| {
            if known.get() == 0 {
                // Asking for the name may allocate: answer "no" meanwhile.
                known.set(2);
                let current = std::thread::current();
                let http = current.name().is_some_and(|name| name.starts_with("http-"));
                known.set(if http { 1 } else { 2 });
            }
            known.get() == 1
        })
        .unwrap_or(false)
}

fn count(bytes: usize) {
    let counted = COUNTED.try_with(Cell::get).unwrap_or(false)
        || (COUNTING.load(Ordering::Relaxed) && is_http_thread());
    if counted {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        ALLOCATED_BYTES.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counters are plain atomics and the thread-local never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn counters() -> (u64, u64) {
    (
        ALLOCATIONS.load(Ordering::Relaxed),
        ALLOCATED_BYTES.load(Ordering::Relaxed),
    )
}

// ---- client --------------------------------------------------------------------

const HOST_TOKEN: &str = "dev-host-token";
const SALE_ID: &str = "order-path";
const SKU_ID: &str = "hot-sku";

type Sender = SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Sender {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    sender
}

async fn exchange(sender: &mut Sender, request: Request<Full<Bytes>>) -> (StatusCode, Bytes) {
    sender.ready().await.expect("ready");
    let response = sender.send_request(request).await.expect("response");
    let (parts, body) = response.into_parts();
    (parts.status, body.collect().await.expect("body").to_bytes())
}

async fn admin_call(sender: &mut Sender, host: &HeaderValue, path: &str, body: String) {
    let request = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(HOST, host.clone())
        .header(AUTHORIZATION, format!("Bearer {HOST_TOKEN}"))
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    let (status, body) = exchange(sender, request).await;
    assert!(status.is_success(), "{path}: {status} {body:?}");
}

struct Pool {
    requests: Vec<(HeaderValue, HeaderValue)>,
    body: Bytes,
}

fn sign(count: usize) -> Pool {
    let keys = SessionKeys::new(DEV_SESSION_SECRET.as_bytes());
    let exp = flashgate::clock::now_ms() / 1000 + 24 * 3600;
    let requests = (0..count)
        .map(|index| {
            let token = keys.issue(&format!("o_path_{index:09}"), exp);
            (
                HeaderValue::from_str(&format!("Bearer {token}")).expect("token"),
                HeaderValue::from_str(&format!("k{index:09}")).expect("key"),
            )
        })
        .collect();
    let body = format!(r#"{{"sale_id":"{SALE_ID}","sku_id":"{SKU_ID}","quantity":1}}"#);
    Pool {
        requests,
        body: Bytes::from(body),
    }
}

/// Sends `requests` orders; returns (allocations, bytes, seconds) over them.
async fn run_orders(
    sender: &mut Sender,
    host: &HeaderValue,
    pool: &[(HeaderValue, HeaderValue)],
    body: &Bytes,
    expect: StatusCode,
) -> (u64, u64, f64) {
    let (allocations, bytes) = counters();
    let started = Instant::now();
    for (auth, key) in pool {
        let request = Request::builder()
            .method(Method::POST)
            .uri("/v1/orders")
            .header(HOST, host.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(AUTHORIZATION, auth.clone())
            .header("idempotency-key", key.clone())
            .body(Full::new(body.clone()))
            .expect("request");
        let (status, answer) = exchange(sender, request).await;
        assert_eq!(status, expect, "{answer:?}");
    }
    let seconds = started.elapsed().as_secs_f64();
    let (allocations_after, bytes_after) = counters();
    (
        allocations_after - allocations,
        bytes_after - bytes,
        seconds,
    )
}

/// A server that answers every request with the same 201 and a body the
/// size of an order view: the client's and hyper's share of the cost.
async fn bare_server(answer: Bytes) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let _ = stream.set_nodelay(true);
            let answer = answer.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: Request<_>| {
                    let answer = answer.clone();
                    async move {
                        let _ = http_body_util::BodyExt::collect(request.into_body()).await;
                        let mut response = Response::new(Full::new(answer));
                        *response.status_mut() = StatusCode::CREATED;
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return; // `cargo test --benches` lists benches; nothing to list
    }
    let orders = env_or("ORDER_PATH_ORDERS", 20_000);
    let warmup = env_or("ORDER_PATH_WARMUP", 2_000);
    let pool = sign(warmup + orders);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let data_dir = std::env::temp_dir().join(format!("fg-order-path-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    runtime.block_on(async {
        let mut config = Config::default();
        config.server.listen = "127.0.0.1:0".into();
        config.storage.data_dir = data_dir.clone();
        config.storage.durability = Durability::None;
        config.server.workers = 1;
        let gateway = Gateway::start(config).await.expect("gateway");
        let host = HeaderValue::from_str(&gateway.local_addr.to_string()).expect("host");
        let mut sender = connect(gateway.local_addr).await;
        let sale = serde_json::json!({
            "sale_id": SALE_ID, "title": "order path", "hold_seconds": 900,
            "items": [{"sku_id": SKU_ID, "title": "Hot", "price": "99.00",
                       "stock": 10_000_000, "per_user_limit": 1}],
        });
        admin_call(&mut sender, &host, "/admin/v1/sales", sale.to_string()).await;
        let start = format!("/admin/v1/sales/{SALE_ID}/start");
        admin_call(&mut sender, &host, &start, String::new()).await;

        let (warm, measured) = pool.requests.split_at(warmup);
        COUNTED.with(|counted| counted.set(true));
        COUNTING.store(true, Ordering::Relaxed);
        run_orders(&mut sender, &host, warm, &pool.body, StatusCode::CREATED).await;
        let gateway_cost =
            run_orders(&mut sender, &host, measured, &pool.body, StatusCode::CREATED).await;

        let answer = Bytes::from(vec![b'x'; 420]);
        let mut bare = connect(bare_server(answer).await).await;
        run_orders(&mut bare, &host, warm, &pool.body, StatusCode::CREATED).await;
        let bare_cost = run_orders(&mut bare, &host, measured, &pool.body, StatusCode::CREATED).await;
        COUNTED.with(|counted| counted.set(false));
        COUNTING.store(false, Ordering::Relaxed);

        let per = |value: u64| value as f64 / measured.len() as f64;
        println!("flashgate order path: {} orders after {warmup} warm-up, one connection, one HTTP thread", measured.len());
        println!("                              allocs/order  bytes/order   us/order");
        for (name, (allocations, bytes, seconds)) in
            [("gateway + client", gateway_cost), ("bare hyper + client", bare_cost)]
        {
            println!(
                "  {name:<26} {:>12.1} {:>12.0} {:>10.1}",
                per(allocations),
                per(bytes),
                seconds * 1e6 / measured.len() as f64
            );
        }
        println!(
            "  {:<26} {:>12.1} {:>12.0}",
            "gateway's share",
            per(gateway_cost.0) - per(bare_cost.0),
            per(gateway_cost.1) - per(bare_cost.1)
        );
        gateway.shutdown().await;
    });
    let _ = std::fs::remove_dir_all(&data_dir);
}
