//! The contract run: schemathesis (PyPI) generates requests for every
//! operation of docs/openapi.yaml from its schemas and examples, sends them
//! to a real gateway on loopback, and checks every response against the
//! spec: no 5xx, only documented status codes, content types and headers,
//! bodies that match their schema, and a 4xx for every request the spec
//! calls invalid. The spec itself is first validated against the OpenAPI
//! 3.0 meta-schema.
//!
//! The gateway pays through a WeChat Pay simulator whose platform key the
//! test holds. It is seeded first (live, scheduled and paused sales;
//! reserved, paying, paid, cancelled and another buyer's orders), and
//! tests/contract/hooks.py aims about half of the generated ids at that
//! state, so operations reach their 200s and 409s, not only 400 and 404.
//! The hooks also pick the credentials per operation from its `security`
//! (a buyer session token, the admin token of its `x-required-role`, or
//! none) and have positive notification cases signed by [`Signer`], so
//! they get past the signature check to the envelope and resource checks.
//! After the run the test checks that both happened.
//!
//! Bounded and repeatable: a fixed seed, a fixed number of examples per
//! operation, one worker, no stateful phase (the spec has no links), and a
//! hard timeout after which schemathesis is killed and its output shown.
//! Endless `text/event-stream` operations are left out (found by their
//! media type in the spec, plus the streams named in [`STREAM_PATHS`]): a
//! stream does not end, so there is no whole response to check; the event
//! stream tests of tests/http_storefront.rs (and of the admin stats stream,
//! where it is built) cover them.
//!
//! schemathesis is required, never skipped: scripts/install-test-deps.sh
//! installs it in a venv, and scripts/test.sh puts that venv on PATH.

mod common;

use bytes::Bytes;
use common::*;
use flashgate::pay::crypto::{nonce_str, response_message, RsaSigner};
use flashgate::pay::sim::{Faults, SimConfig, SimHandle, Simulator};
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use yaml_rust2::{Yaml, YamlLoader};

const SPEC: &str = "docs/openapi.yaml";
const HOOKS: &str = "tests/contract/hooks.py";
/// The schemathesis release scripts/install-test-deps.sh installs.
const SCHEMATHESIS_VERSION: &str = "4.32.5";
/// Event streams, left out even if the spec should not call them
/// `text/event-stream` (the admin stats stream is being added elsewhere).
const STREAM_PATHS: [&str; 2] = [
    "/v1/sales/{sale_id}/events",
    "/admin/v1/sales/{id}/stats/events",
];
/// Every check that judges a single response against the spec; the ones
/// that probe the spec's rules: a request the spec calls invalid must get a
/// 4xx (`negative_data_rejection`), and so must one without a required
/// header (`missing_required_header`) or without credentials where the
/// spec asks for them (`ignored_auth`); a method the path lacks must get
/// 405 with `Allow` (`unsupported_method`, `allow_header_conformance`).
///
/// Not `positive_data_acceptance` (a request the spec calls valid must not
/// get 400 or 422): the contract answers 400 `INVALID_REQUEST` to rules a
/// JSON Schema cannot hold (an order's `quantity` against its item's
/// `per_user_limit`, distinct `sku_id`s in a sale, `ends_at` after
/// `starts_at`, a restock against the item's stock) and 422 to a reused
/// `Idempotency-Key`, so that check fails on correct answers; the rules a
/// schema can hold are in the spec. Nor the checks that follow links
/// between operations (`use_after_free`, `ensure_resource_availability`):
/// the spec has none, so they could not fail.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_headers_conformance,response_schema_conformance,\
                      negative_data_rejection,missing_required_header,ignored_auth,\
                      unsupported_method,allow_header_conformance";
const SEED: &str = "20261124";
/// Test cases per operation in the fuzzing phase; the run takes about 30 s
/// on a 2-core machine.
const MAX_EXAMPLES: &str = "150";
/// schemathesis is killed after this long.
const RUN_TIMEOUT: Duration = Duration::from_secs(150);

const BUYER: &str = "contract-buyer";
const OTHER_BUYER: &str = "contract-other-buyer";
/// Orders [`seed`] places on `contract-live`.
const SEEDED_ORDERS_LIVE: i64 = 5;

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// `st` from the venv scripts/install-test-deps.sh makes (the pinned
/// release), else from PATH; the test fails if neither has it.
fn schemathesis() -> PathBuf {
    let venv = std::env::var_os("FLASHGATE_TEST_TOOLS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|home| Path::new(&home).join(".cache/flashgate-test-tools"))
        })
        .map(|tools| tools.join("venv/bin/st"));
    let on_path = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("st"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let found = venv
        .into_iter()
        .chain(on_path)
        .find(|candidate| candidate.is_file());
    let st = found.unwrap_or_else(|| {
        panic!(
            "schemathesis (`st`) is not installed: run scripts/install-test-deps.sh \
             (or the suite through scripts/test.sh)"
        )
    });
    let version = Command::new(&st)
        .arg("--version")
        .output()
        .unwrap_or_else(|error| {
            panic!(
                "cannot run {} ({error}): run scripts/install-test-deps.sh",
                st.display()
            )
        });
    let version = String::from_utf8_lossy(&version.stdout).into_owned();
    assert!(
        version.contains(SCHEMATHESIS_VERSION),
        "{} is `{}`, not schemathesis {SCHEMATHESIS_VERSION}: run scripts/install-test-deps.sh",
        st.display(),
        version.trim()
    );
    st
}

// ---- the spec ------------------------------------------------------------------

fn load_spec() -> Yaml {
    let text = std::fs::read_to_string(repo_path(SPEC))
        .unwrap_or_else(|error| panic!("cannot read {SPEC}: {error}"));
    let mut documents =
        YamlLoader::load_from_str(&text).unwrap_or_else(|error| panic!("{SPEC}: {error}"));
    assert_eq!(documents.len(), 1, "{SPEC} holds one YAML document");
    documents.remove(0)
}

/// Every operation as `(METHOD, path)`.
fn operations(spec: &Yaml) -> Vec<(String, String)> {
    let paths = spec["paths"].as_hash().expect("the spec has paths");
    let mut operations = Vec::new();
    for (path, item) in paths {
        let path = path.as_str().expect("a path is a string");
        for (method, _) in item.as_hash().expect("a path item is a map") {
            let method = method.as_str().expect("a method is a string");
            if method != "parameters" {
                operations.push((method.to_uppercase(), path.to_owned()));
            }
        }
    }
    operations
}

/// The paths some operation of which answers `text/event-stream`.
fn stream_paths(spec: &Yaml) -> Vec<String> {
    let paths = spec["paths"].as_hash().expect("the spec has paths");
    let mut streams = Vec::new();
    for (path, item) in paths {
        let streams_here = item
            .as_hash()
            .expect("a path item is a map")
            .values()
            .filter_map(|operation| operation["responses"].as_hash())
            .flat_map(|responses| responses.values())
            .filter_map(|response| response["content"].as_hash())
            .any(|content| content.contains_key(&Yaml::from_str("text/event-stream")));
        if streams_here {
            streams.push(path.as_str().expect("a path is a string").to_owned());
        }
    }
    streams
}

/// The paths the run leaves out: every stream the spec has, and
/// [`STREAM_PATHS`]. (Per path: an event stream's path has no other
/// operation.)
fn excluded_paths(spec: &Yaml) -> Vec<String> {
    let mut excluded = stream_paths(spec);
    for path in STREAM_PATHS {
        if !excluded.iter().any(|known| known == path) {
            excluded.push(path.to_owned());
        }
    }
    excluded
}

/// One regular expression matching exactly the excluded paths.
fn exclusion_regex(paths: &[String]) -> String {
    let escaped: Vec<String> = paths
        .iter()
        .map(|path| {
            path.chars()
                .map(|c| match c {
                    '{' | '}' | '.' | '$' | '^' | '(' | ')' | '|' | '*' | '+' | '?' | '[' | ']'
                    | '\\' => format!("\\{c}"),
                    c => c.to_string(),
                })
                .collect()
        })
        .collect();
    format!("^({})$", escaped.join("|"))
}

#[test]
fn stream_operations_are_found_by_media_type() {
    let spec = load_spec();
    let streams = stream_paths(&spec);
    assert!(
        streams.contains(&"/v1/sales/{sale_id}/events".to_owned()),
        "{streams:?}"
    );
    assert!(!streams.contains(&"/v1/sales/{sale_id}".to_owned()));
    let excluded = excluded_paths(&spec);
    assert!(
        excluded.iter().all(|path| path.ends_with("/events")),
        "{excluded:?}"
    );
    let all = operations(&spec);
    assert!(all.contains(&("POST".into(), "/v1/payments/wechat/notify".into())));
    assert!(all.contains(&("GET".into(), "/v1/sales/{sale_id}/events".into())));
    assert_eq!(
        exclusion_regex(&["/v1/sales/{sale_id}/events".into(), "/a.b".into()]),
        r"^(/v1/sales/\{sale_id\}/events|/a\.b)$"
    );
}

/// schemathesis loads a spec that breaks the OpenAPI 3.0 schema without a
/// word (it tests what it can): validate it first, with the OpenAPI 3.0
/// meta-schema schemathesis ships, run by the venv's Python.
#[test]
fn the_spec_is_valid_openapi_3() {
    let python = schemathesis().with_file_name("python");
    let output = Command::new(&python)
        .args([
            "-c",
            "import sys, schemathesis\n\
             schema = schemathesis.openapi.from_path(sys.argv[1])\n\
             schema.validate()\n\
             print(schema.specification.version)",
        ])
        .arg(repo_path(SPEC))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap_or_else(|error| {
            panic!(
                "cannot run {} ({error}): run scripts/install-test-deps.sh",
                python.display()
            )
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.trim().starts_with("3.0"),
        "{SPEC} is not valid OpenAPI 3.0:\n{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

// ---- the gateway, its WeChat Pay and a notification signer ------------------

const MCHID: &str = "1900000109";
const APPID: &str = "wxd678efh567hg6787";
const APIV3_KEY: &str = "a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb";
const MERCHANT_SERIAL: &str = "5F1C72E2A8931B72A2E13AF8DEE92471EB397115";
const PUBLIC_KEY_ID: &str = "PUB_KEY_ID_0000000000000024101100397200000006";

/// A gateway paying through a WeChat Pay simulator whose platform key the
/// test holds (the embedded one makes its own), so notifications can be
/// signed as WeChat Pay signs them.
struct World {
    gateway: TestGateway,
    simulator: SimHandle,
    platform: Arc<RsaSigner>,
    /// The merchant key files and the data dir; removed on drop.
    _scratch: Scratch,
}

impl World {
    async fn start() -> World {
        let scratch = Scratch::new("contract-world");
        let merchant = RsaSigner::generate().expect("a merchant key");
        let platform_pem = RsaSigner::generate()
            .and_then(|key| key.private_key_pem())
            .expect("a platform key");
        let simulator = within(
            "the WeChat Pay simulator to start",
            Simulator::start(SimConfig {
                listen: "127.0.0.1:0".parse().expect("an address"),
                mchid: MCHID.into(),
                appid: APPID.into(),
                apiv3_key: APIV3_KEY.into(),
                merchant_serial_no: MERCHANT_SERIAL.into(),
                merchant_public_key_pem: merchant.public_key_pem().expect("a public key"),
                platform_signer: RsaSigner::from_pkcs8_pem(&platform_pem).expect("the key"),
                public_key_id: PUBLIC_KEY_ID.into(),
                time_scale: 1.0,
                faults: Faults::default(),
            }),
        )
        .await
        .expect("the simulator starts");
        let key_file = scratch.0.join("apiclient_key.pem");
        let public_key_file = scratch.0.join("wxp_pub.pem");
        std::fs::write(&key_file, merchant.private_key_pem().expect("PEM")).expect("key file");
        std::fs::write(&public_key_file, simulator.public_key_pem()).expect("key file");
        let port = free_port();
        let data_dir = scratch.data_dir();
        let base_url = simulator.base_url();
        let gateway = TestGateway::start_with(|config| {
            config.server.listen = format!("127.0.0.1:{port}");
            config.storage.data_dir = data_dir;
            let pay = &mut config.pay;
            pay.mchid = MCHID.into();
            pay.appid = APPID.into();
            pay.merchant_serial_no = MERCHANT_SERIAL.into();
            pay.merchant_private_key_file = key_file;
            pay.apiv3_key = APIV3_KEY.into();
            pay.wechatpay_public_key_id = PUBLIC_KEY_ID.into();
            pay.wechatpay_public_key_file = public_key_file;
            pay.base_url = base_url;
            pay.backup_base_url = String::new();
            pay.notify_url = format!("http://127.0.0.1:{port}/v1/payments/wechat/notify");
            pay.timeout_ms = 2000;
        })
        .await;
        World {
            gateway,
            simulator,
            platform: Arc::new(RsaSigner::from_pkcs8_pem(&platform_pem).expect("the key")),
            _scratch: scratch,
        }
    }

    async fn stop(self) {
        self.gateway.stop().await;
        self.simulator.shutdown().await;
    }
}

/// The five `Wechatpay-*` headers WeChat Pay would send with `body`.
fn notification_headers(platform: &RsaSigner, body: &[u8]) -> Value {
    let timestamp = now_ms() / 1000;
    let nonce = nonce_str();
    let signature = platform
        .sign(&response_message(timestamp, &nonce, body))
        .expect("signing works");
    json!({
        "Wechatpay-Timestamp": timestamp.to_string(),
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Signature": signature,
        "Wechatpay-Serial": PUBLIC_KEY_ID,
        "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
    })
}

/// A loopback HTTP server for the hooks: any request's body comes back
/// signed, as the JSON object of [`notification_headers`]. Stops on drop.
struct Signer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Signer {
    async fn start(platform: Arc<RsaSigner>) -> Signer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the signer");
        let addr = listener.local_addr().expect("the signer's address");
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let platform = Arc::clone(&platform);
                let service = hyper::service::service_fn(move |request: Request<_>| {
                    let platform = Arc::clone(&platform);
                    async move {
                        let body: hyper::body::Incoming = request.into_body();
                        let bytes = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let headers = notification_headers(&platform, &bytes);
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(
                            headers.to_string(),
                        ))))
                    }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Signer { addr, task }
    }
}

impl Drop for Signer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---- seeding -------------------------------------------------------------------

/// What the gateway holds before the run; the hooks aim at it.
struct Seeded {
    /// Live sales for the storefront routes (`{sale_id}`, a body's `sale_id`).
    sale_ids: Vec<String>,
    /// Sales for the admin routes (`{id}`), which end them sooner or later.
    admin_sale_ids: Vec<String>,
    order_ids: Vec<String>,
}

async fn place(client: &mut Client, buyer: &str, key: &str, sale_id: &str) -> String {
    let order = client
        .order(&buyer_token(buyer), key, sale_id, 1)
        .await
        .expect_json(201);
    order["order_id"].as_str().expect("order_id").to_owned()
}

async fn prepay(client: &mut Client, buyer: &str, order_id: &str) -> String {
    let params = client
        .post_empty(&format!("/v1/orders/{order_id}/pay"), &buyer_token(buyer))
        .await
        .expect_json(200);
    params["prepay_id"].as_str().expect("prepay_id").to_owned()
}

async fn wait_for_status(client: &mut Client, order_id: &str, status: &str) -> Value {
    within(&format!("order {order_id} to become {status}"), async {
        loop {
            let order = client
                .get(&format!("/admin/v1/orders/{order_id}"), ADMIN_TOKEN)
                .await
                .expect_json(200);
            if order["status"] == status {
                return order;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

/// Sales in every state an action can start from, and orders in every
/// state a buyer or an admin can act on.
async fn seed(world: &World) -> Seeded {
    let mut client = world.gateway.client().await;
    // Stock for every order the run may place; a limit it will reach.
    client.live_sale("contract-live", 100_000, 50).await;
    client.live_sale("contract-live-2", 100_000, 5).await;
    client
        .create_sale(&sale_body("contract-scheduled", 10, 2))
        .await
        .expect_json(201);
    client.live_sale("contract-paused", 10, 2).await;
    client
        .sale_action("contract-paused", "pause")
        .await
        .expect_json(200);
    let reserved = place(&mut client, BUYER, "seed-reserved", "contract-live").await;
    let paying = place(&mut client, BUYER, "seed-paying", "contract-live").await;
    prepay(&mut client, BUYER, &paying).await;
    let paid = place(&mut client, BUYER, "seed-paid", "contract-live").await;
    let prepay_id = prepay(&mut client, BUYER, &paid).await;
    world
        .simulator
        .pay(&prepay_id)
        .expect("the simulator takes the payment");
    wait_for_status(&mut client, &paid, "paid").await;
    let cancelled = place(&mut client, BUYER, "seed-cancelled", "contract-live").await;
    client
        .post_empty(
            &format!("/v1/orders/{cancelled}/cancel"),
            &buyer_token(BUYER),
        )
        .await
        .expect_json(200);
    // Someone else's order: a buyer gets 404 for it, an admin sees it.
    let other = place(&mut client, OTHER_BUYER, "seed-other", "contract-live").await;
    Seeded {
        sale_ids: vec!["contract-live".into()],
        admin_sale_ids: ["contract-live-2", "contract-scheduled", "contract-paused"]
            .map(str::to_owned)
            .to_vec(),
        order_ids: vec![reserved, paying, paid, cancelled, other],
    }
}

// ---- running schemathesis -----------------------------------------------------------

struct Run {
    status: Option<ExitStatus>,
    timed_out: bool,
    elapsed: Duration,
    stdout: String,
    stderr: String,
}

impl Run {
    fn describe(&self) -> String {
        format!(
            "exit {:?} after {:.1} s{}\n--- stdout\n{}\n--- stderr\n{}",
            self.status.and_then(|status| status.code()),
            self.elapsed.as_secs_f64(),
            if self.timed_out {
                format!(" (killed: over the {RUN_TIMEOUT:?} limit)")
            } else {
                String::new()
            },
            self.stdout,
            self.stderr
        )
    }
}

fn drain(pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let mut pipe = pipe;
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Runs `command` to its end or to [`RUN_TIMEOUT`], then kills it; blocking.
fn run_bounded(mut command: Command) -> Run {
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| {
            panic!("cannot start schemathesis ({error}): run scripts/install-test-deps.sh")
        });
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let mut timed_out = false;
    let status = loop {
        match child.try_wait().expect("wait for schemathesis") {
            Some(status) => break Some(status),
            None if started.elapsed() > RUN_TIMEOUT => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().ok();
            }
            None => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    Run {
        status,
        timed_out,
        elapsed: started.elapsed(),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

fn schemathesis_command(
    st: &Path,
    gateway: &TestGateway,
    signer: &Signer,
    seeded: &Seeded,
    workdir: &Path,
) -> Command {
    let excluded = excluded_paths(&load_spec());
    let mut command = Command::new(st);
    command
        .current_dir(workdir)
        .args(["--no-color", "run"])
        .arg(repo_path(SPEC))
        .args(["--url", &format!("http://{}", gateway.addr)])
        .args(["--checks", CHECKS])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", MAX_EXAMPLES])
        .args(["--seed", SEED])
        .args(["--workers", "1"])
        .args(["--generation-database", "none"])
        .args(["--request-timeout", "10"])
        .args(["--exclude-path-regex", &exclusion_regex(&excluded)])
        .args(["--continue-on-failure", "--output-truncate", "false"])
        .env("SCHEMATHESIS_HOOKS", repo_path(HOOKS))
        .env("FG_CONTRACT_BUYER_TOKEN", buyer_token(BUYER))
        .env("FG_CONTRACT_OPS_TOKEN", OPS_TOKEN)
        .env("FG_CONTRACT_HOST_TOKEN", HOST_TOKEN)
        .env("FG_CONTRACT_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("FG_CONTRACT_SALE_IDS", seeded.sale_ids.join(","))
        .env(
            "FG_CONTRACT_ADMIN_SALE_IDS",
            seeded.admin_sale_ids.join(","),
        )
        .env("FG_CONTRACT_SKU_IDS", SKU)
        .env("FG_CONTRACT_ORDER_IDS", seeded.order_ids.join(","))
        .env("FG_CONTRACT_SIGNER_URL", format!("http://{}/", signer.addr))
        .env("PYTHONDONTWRITEBYTECODE", "1");
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_response_off_the_spec() {
    let st = schemathesis();
    // schemathesis and Hypothesis write their caches to the working directory.
    let workdir = Scratch::new("contract");
    let world = World::start().await;
    let signer = Signer::start(Arc::clone(&world.platform)).await;
    let seeded = seed(&world).await;
    let command = schemathesis_command(&st, &world.gateway, &signer, &seeded, &workdir.0);
    let run = tokio::task::spawn_blocking(move || run_bounded(command))
        .await
        .expect("the schemathesis runner");
    let report = run.describe();
    assert!(!run.timed_out, "schemathesis overran:\n{report}");
    assert!(
        run.status.is_some_and(|status| status.success()),
        "schemathesis found responses off the spec:\n{report}"
    );
    // A run that tested less passes too: every operation but the streams.
    let spec = load_spec();
    let excluded = excluded_paths(&spec);
    let operations = operations(&spec);
    let tested = operations
        .iter()
        .filter(|(_, path)| !excluded.contains(path))
        .count();
    assert!(
        run.stdout
            .contains(&format!("Selected: {tested}/{}", operations.len()))
            && run.stdout.contains(&format!("Tested: {tested}\n")),
        "schemathesis did not test all {tested} operations but the streams:\n{report}"
    );
    println!("{report}");
    // The hooks aimed the run at the seeded state: it placed orders of its
    // own, and its signed notifications got past the signature check.
    let mut client = world.gateway.client().await;
    let live = client.stats("contract-live").await;
    let created = live["orders"]["created"].as_i64().expect("orders.created");
    assert!(
        created > SEEDED_ORDERS_LIVE,
        "the run placed no order on the seeded sale: {live}"
    );
    println!("the seeded live sale after the run: {live}");
    let metrics = client.get_anonymous("/metrics").await.text();
    let verified: Vec<&str> = metrics
        .lines()
        .filter(|line| {
            line.starts_with("flashgate_payment_notifications_total{")
                && (line.contains("outcome=\"malformed\"") || line.contains("outcome=\"decrypt\""))
        })
        .collect();
    assert!(
        !verified.is_empty(),
        "no generated notification got past the signature check:\n{metrics}"
    );
    println!("{}", verified.join("\n"));
    drop(signer);
    world.stop().await;
}
