//! The ops config checked against the gateway it watches: the Prometheus
//! alert rules (config/prometheus/alerts.yml) pass `promtool check rules`
//! and their unit tests (alerts_test.yml); a real gateway, driven through
//! orders, a sell-out, shedding, payments, a refund and a forged
//! notification, serves a /metrics that `promtool check metrics` finds
//! clean; and every metric the rules and the Grafana dashboard
//! (config/grafana/flashgate.json) query is in that scrape.
//!
//! promtool is required, never skipped: scripts/install-test-deps.sh
//! installs it.

mod common;

use common::*;
use flashgate::pay::sim::{FailNext, Faults};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use yaml_rust2::{Yaml, YamlLoader};

const ALERTS: &str = "config/prometheus/alerts.yml";
const ALERTS_TEST: &str = "config/prometheus/alerts_test.yml";
const DASHBOARD: &str = "config/grafana/flashgate.json";
const SEVERITIES: [&str; 2] = ["critical", "warning"];

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// Runs promtool with `args` (and `stdin`), failing the test if it is not
/// installed.
fn promtool(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new("promtool")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| {
            panic!("cannot run promtool ({error}): run scripts/install-test-deps.sh")
        });
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        pipe.write_all(input).expect("write to promtool");
    }
    child.wait_with_output().expect("promtool finishes")
}

fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn alert_rules_pass_promtool_check() {
    let output = promtool(&["check", "rules", ALERTS], None);
    assert!(
        output.status.success(),
        "promtool check rules failed:\n{}",
        describe(&output)
    );
}

#[test]
fn alert_rules_unit_tests_pass() {
    let output = promtool(&["test", "rules", ALERTS_TEST], None);
    assert!(
        output.status.success(),
        "promtool test rules failed:\n{}",
        describe(&output)
    );
}

// ---- reading the rules and the dashboard -------------------------------------

fn load_yaml(relative: &str) -> Yaml {
    let text = std::fs::read_to_string(repo_path(relative))
        .unwrap_or_else(|error| panic!("cannot read {relative}: {error}"));
    let mut documents =
        YamlLoader::load_from_str(&text).unwrap_or_else(|error| panic!("{relative}: {error}"));
    assert_eq!(documents.len(), 1, "{relative} holds one YAML document");
    documents.remove(0)
}

fn load_dashboard() -> Value {
    let text = std::fs::read_to_string(repo_path(DASHBOARD))
        .unwrap_or_else(|error| panic!("cannot read {DASHBOARD}: {error}"));
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{DASHBOARD}: {error}"))
}

/// Every alerting rule of alerts.yml.
fn alert_rules() -> Vec<Yaml> {
    let rules: Vec<Yaml> = load_yaml(ALERTS)["groups"]
        .as_vec()
        .expect("alerts.yml has groups")
        .iter()
        .flat_map(|group| group["rules"].as_vec().expect("a group has rules").clone())
        .collect();
    assert!(!rules.is_empty(), "alerts.yml has rules");
    rules
}

fn text<'a>(yaml: &'a Yaml, what: &str) -> &'a str {
    yaml.as_str()
        .filter(|value| !value.trim().is_empty())
        .unwrap_or_else(|| panic!("{what} is missing or empty"))
}

/// Every panel, rows' nested panels included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut all = Vec::new();
    for panel in dashboard["panels"]
        .as_array()
        .expect("the dashboard has panels")
    {
        all.push(panel);
        if let Some(nested) = panel["panels"].as_array() {
            all.extend(nested);
        }
    }
    all
}

/// Every PromQL expression of the dashboard: panel targets and template
/// variable queries.
fn dashboard_expressions(dashboard: &Value) -> Vec<String> {
    let mut expressions: Vec<String> = panels(dashboard)
        .iter()
        .flat_map(|panel| panel["targets"].as_array().into_iter().flatten())
        .filter_map(|target| target["expr"].as_str().map(str::to_owned))
        .collect();
    for variable in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if variable["type"] == "query" {
            let query = &variable["query"];
            let query = query["query"].as_str().or(query.as_str());
            expressions.push(query.expect("a query variable has a query").to_owned());
        }
    }
    expressions
}

/// The flashgate metric names a PromQL expression reads: identifiers that
/// start with `flashgate_`, outside string literals (label values) and
/// `$variables`. Identifiers may hold `:` (recording rules); an identifier
/// is never split, so `xflashgate_a` is not a use of `flashgate_a`.
fn metric_names(expression: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut chars = expression.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        match c {
            '"' | '\'' | '`' => {
                let mut escaped = false;
                for (_, inner) in chars.by_ref() {
                    if c != '`' && inner == '\\' && !escaped {
                        escaped = true;
                        continue;
                    }
                    if inner == c && !escaped {
                        break;
                    }
                    escaped = false;
                }
            }
            '#' => break, // a comment runs to the end of the expression's line
            _ if c.is_ascii_alphabetic() || c == '_' || c == ':' || c == '$' => {
                let mut end = start + c.len_utf8();
                while let Some(&(at, next)) = chars.peek() {
                    if !(next.is_ascii_alphanumeric() || next == '_' || next == ':') {
                        break;
                    }
                    end = at + next.len_utf8();
                    chars.next();
                }
                let identifier = &expression[start..end];
                if identifier.starts_with("flashgate_") {
                    names.insert(identifier.to_owned());
                }
            }
            _ => {}
        }
    }
    names
}

#[test]
fn the_metric_name_tokenizer_reads_names_and_skips_strings() {
    let names = metric_names(
        r#"histogram_quantile(0.99, sum by (le) (rate(flashgate_a_bucket{route!~"flashgate_b|x\"flashgate_c"}[$__rate_interval]))) / on() flashgate_d:ratio + xflashgate_e + $flashgate_f"#,
    );
    let expected: BTreeSet<String> = ["flashgate_a_bucket", "flashgate_d:ratio"]
        .map(String::from)
        .into();
    assert_eq!(names, expected);
}

#[test]
fn every_alert_has_for_severity_and_instructions_and_a_unit_test() {
    let tests = load_yaml(ALERTS_TEST);
    let cases: Vec<&Yaml> = tests["tests"]
        .as_vec()
        .expect("alerts_test.yml has tests")
        .iter()
        .flat_map(|test| test["alert_rule_test"].as_vec().into_iter().flatten())
        .collect();
    let mut names = BTreeSet::new();
    for rule in alert_rules() {
        let name = text(
            &rule["alert"],
            "an alerting rule's name (alerts.yml holds alerts only)",
        );
        assert!(names.insert(name.to_owned()), "{name} is defined twice");
        text(&rule["expr"], &format!("{name}'s expr"));
        let wait = text(&rule["for"], &format!("{name}'s for:"));
        let digits = wait.trim_end_matches(|c: char| c.is_ascii_alphabetic());
        assert!(
            !digits.is_empty()
                && digits.chars().all(|c| c.is_ascii_digit())
                && ["s", "m", "h"].contains(&&wait[digits.len()..]),
            "{name}: for: {wait} is not a duration"
        );
        let severity = text(&rule["labels"]["severity"], &format!("{name}'s severity"));
        assert!(
            SEVERITIES.contains(&severity),
            "{name}: severity {severity}"
        );
        text(
            &rule["annotations"]["summary"],
            &format!("{name}'s summary"),
        );
        let description = text(
            &rule["annotations"]["description"],
            &format!("{name}'s description"),
        );
        assert!(
            description.len() >= 80,
            "{name}: a description ops can act on: {description}"
        );
        let of_this = |case: &&&Yaml| case["alertname"].as_str() == Some(name);
        let fires = cases.iter().filter(of_this).any(|case| {
            case["exp_alerts"]
                .as_vec()
                .is_some_and(|alerts| !alerts.is_empty())
        });
        let quiet = cases.iter().filter(of_this).any(|case| {
            case["exp_alerts"]
                .as_vec()
                .is_some_and(|alerts| alerts.is_empty())
        });
        assert!(
            fires && quiet,
            "{name}: alerts_test.yml proves it fires and stays quiet"
        );
    }
}

#[test]
fn the_dashboard_is_importable_and_every_panel_queries_prometheus() {
    let dashboard = load_dashboard();
    for key in ["uid", "title"] {
        assert!(
            dashboard[key]
                .as_str()
                .is_some_and(|value| !value.is_empty()),
            "the dashboard has a {key}"
        );
    }
    assert!(
        dashboard["schemaVersion"].as_u64().is_some(),
        "a schemaVersion"
    );
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("templating variables");
    let datasource = variables
        .iter()
        .find(|variable| variable["name"] == "datasource")
        .expect("a datasource variable");
    assert_eq!(datasource["type"], "datasource");
    assert_eq!(datasource["query"], "prometheus");
    for variable in variables
        .iter()
        .filter(|variable| variable["type"] == "query")
    {
        assert_eq!(variable["datasource"]["uid"], "${datasource}", "{variable}");
    }
    let mut ids = BTreeSet::new();
    for panel in panels(&dashboard) {
        let title = panel["title"].as_str().expect("every panel has a title");
        let id = panel["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("{title}: an id"));
        assert!(ids.insert(id), "panel id {id} is used twice ({title})");
        for key in ["x", "y", "w", "h"] {
            assert!(
                panel["gridPos"][key].as_u64().is_some(),
                "{title}: gridPos.{key}"
            );
        }
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["type"], "prometheus", "{title}");
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title} has a query");
        let mut ref_ids = BTreeSet::new();
        for target in targets {
            assert!(
                target["expr"]
                    .as_str()
                    .is_some_and(|expr| !expr.trim().is_empty()),
                "{title}: a target without an expr"
            );
            assert_eq!(target["datasource"]["uid"], "${datasource}", "{title}");
            let ref_id = target["refId"].as_str().expect("refId");
            assert!(ref_ids.insert(ref_id), "{title}: refId {ref_id} twice");
        }
    }
}

// ---- a real scrape -----------------------------------------------------------

/// `# TYPE` of each metric family of a Prometheus text scrape.
fn families(scrape: &str) -> Vec<(String, String)> {
    scrape
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .map(|rest| {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name type");
            (name.to_owned(), kind.to_owned())
        })
        .collect()
}

/// Whether `name`, as PromQL reads it, is a series of an exported family.
fn is_exported(name: &str, families: &[(String, String)]) -> bool {
    families.iter().any(|(family, kind)| {
        name == family
            || (kind == "histogram"
                && ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|suffix| name.strip_suffix(suffix) == Some(family.as_str())))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_after_real_traffic_passes_promtool_and_holds_every_queried_metric() {
    let gateway = TestGateway::start_with(|config| {
        // HELD requests held open shed the next; the rest of the test has
        // fewer in flight (its one client and the simulator's notifications).
        config.server.requests_in_flight_max = HELD;
    })
    .await;
    let mut client = gateway.client().await;
    orders_and_refusals(&mut client).await;
    shed_one_request(&gateway, &mut client).await;
    payments(&gateway, &mut client).await;

    client.get_anonymous("/readyz").await.expect_json(200);
    let scrape = client.get_anonymous("/metrics").await.text();
    gateway.stop().await;

    let output = promtool(&["check", "metrics"], Some(scrape.as_bytes()));
    let complaints = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && complaints.trim().is_empty(),
        "promtool check metrics complains about /metrics:\n{}\n--- scrape\n{scrape}",
        describe(&output)
    );

    // Ready, and why not: each reason exported, none set.
    assert_eq!(gauge(&scrape, "flashgate_ready"), 1, "ready after traffic");
    for reason in ["draining", "journal_unavailable", "store_lagging"] {
        let series = format!("flashgate_unready{{reason=\"{reason}\"}} ");
        let value = scrape
            .lines()
            .find_map(|line| line.strip_prefix(&series))
            .unwrap_or_else(|| panic!("no {series}in /metrics:\n{scrape}"));
        assert_eq!(value.trim(), "0", "{series}");
    }

    let families = families(&scrape);
    let dashboard = load_dashboard();
    let mut used: Vec<(String, &str)> = Vec::new();
    for expression in dashboard_expressions(&dashboard) {
        used.extend(
            metric_names(&expression)
                .into_iter()
                .map(|name| (name, DASHBOARD)),
        );
    }
    for rule in alert_rules() {
        let expression = text(&rule["expr"], "an expr");
        used.extend(
            metric_names(expression)
                .into_iter()
                .map(|name| (name, ALERTS)),
        );
    }
    assert!(
        used.len() >= 20,
        "the tokenizer found the queries' metrics: {used:?}"
    );
    let missing: Vec<_> = used
        .iter()
        .filter(|(name, _)| !is_exported(name, &families))
        .collect();
    assert!(
        missing.is_empty(),
        "queried but not in /metrics: {missing:?}\n--- scrape\n{scrape}"
    );
}

/// Orders that succeed, replay, sell out, and requests refused.
async fn orders_and_refusals(client: &mut Client) {
    client.live_sale("ops-sale", 2, 1).await;
    let first = client
        .order(&buyer_token("o_ann"), "k1", "ops-sale", 1)
        .await;
    first.expect_json(201);
    let replay = client
        .order(&buyer_token("o_ann"), "k1", "ops-sale", 1)
        .await;
    replay.expect_json(200);
    client
        .order(&buyer_token("o_bob"), "k2", "ops-sale", 1)
        .await
        .expect_json(201);
    let sold_out = client
        .order(&buyer_token("o_cat"), "k3", "ops-sale", 1)
        .await;
    assert_error(&sold_out, 409, "SOLD_OUT");
    let anonymous = client.get_anonymous("/v1/sales/ops-sale").await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.text());
}

/// The gateway's `server.requests_in_flight_max` in the scrape test.
const HELD: usize = 4;

/// Holds HELD orders in flight (head and half a body each) and sees the
/// next request shed, then lets them finish.
async fn shed_one_request(gateway: &TestGateway, client: &mut Client) {
    client.live_sale("ops-shed", 10, 1).await;
    let body = json!({ "sale_id": "ops-shed", "sku_id": SKU, "quantity": 1 }).to_string();
    let (first_half, second_half) = body.as_bytes().split_at(body.len() / 2);
    let mut held = Vec::new();
    for held_number in 0..HELD {
        let buyer = format!("o_held{held_number}");
        let mut stream = raw_connect(gateway.addr).await;
        let head = raw_head(
            "POST",
            "/v1/orders",
            &[
                format!("authorization: {}", bearer(&buyer_token(&buyer))),
                format!("idempotency-key: {buyer}"),
                "content-type: application/json".into(),
                format!("content-length: {}", body.len()),
            ],
        );
        raw_write(&mut stream, head.as_bytes()).await;
        raw_write(&mut stream, first_half).await;
        held.push(stream);
    }
    // Scrapes bypass admission: wait until every held order is in flight,
    // or a request below could take a place first and a held one be shed
    // instead (then fewer are held and nothing below is refused).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let all_held = format!("\nflashgate_http_requests_in_flight {HELD}\n");
    loop {
        let metrics = client.get_anonymous("/metrics").await.text();
        if metrics.contains(&all_held) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the {HELD} held orders never all showed in flight:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let reply = client.get("/v1/sales/ops-shed", OPS_TOKEN).await;
        if reply.status == 503 {
            assert_error(&reply, 503, "OVERLOADED");
            break;
        }
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert!(
            tokio::time::Instant::now() < deadline,
            "no request was shed while {HELD} were in flight"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for mut stream in held {
        raw_write(&mut stream, second_half).await;
        raw_read_response(&mut stream).await.expect_json(201);
    }
}

/// A payment retried once and then paid by notification, a prepay WeChat
/// Pay refuses, a refund, and a notification with a forged signature.
async fn payments(gateway: &TestGateway, client: &mut Client) {
    let simulator = gateway.simulator();
    client.live_sale("ops-pay", 10, 1).await;
    let paid = place(client, "o_payer", "ops-pay").await;
    simulator.set_faults(Faults {
        fail_next: vec![fail_next(500, "SYSTEM_ERROR")],
        ..Faults::default()
    });
    let params = client
        .post_empty(&format!("/v1/orders/{paid}/pay"), &buyer_token("o_payer"))
        .await
        .expect_json(200);
    let prepay_id = params["prepay_id"].as_str().expect("prepay_id");
    simulator
        .pay(prepay_id)
        .expect("the simulator takes the payment");
    wait_for_status(client, &paid, "paid").await;

    let refused = place(client, "o_refused", "ops-pay").await;
    simulator.set_faults(Faults {
        fail_next: vec![fail_next(400, "PARAM_ERROR")],
        ..Faults::default()
    });
    let reply = client
        .post_empty(
            &format!("/v1/orders/{refused}/pay"),
            &buyer_token("o_refused"),
        )
        .await;
    assert_error(&reply, 502, "PAYMENT_UNAVAILABLE");
    simulator.set_faults(Faults::default());

    client
        .post_empty(&format!("/admin/v1/orders/{paid}/refund"), ADMIN_TOKEN)
        .await
        .expect_json(200);
    wait_for_status(client, &paid, "refunded").await;

    let forged = client
        .request(
            hyper::Method::POST,
            "/v1/payments/wechat/notify",
            &[
                ("wechatpay-timestamp", &(now_ms() / 1000).to_string()),
                ("wechatpay-nonce", "forgednonce0"),
                ("wechatpay-signature", "WECHATPAY/SIGNTEST/AAAA"),
                (
                    "wechatpay-serial",
                    "PUB_KEY_ID_0000000000000000000000000000000000",
                ),
                ("wechatpay-signature-type", "WECHATPAY2-SHA256-RSA2048"),
            ],
            Some(br#"{"id":"forged","resource":{}}"#),
        )
        .await;
    assert_eq!(forged.status, 401, "{}", forged.text());
}

fn fail_next(status: u16, code: &str) -> FailNext {
    FailNext {
        endpoint: "prepay".into(),
        count: 1,
        status,
        code: code.into(),
        message: None,
    }
}

async fn place(client: &mut Client, buyer: &str, sale_id: &str) -> String {
    let order = client
        .order(&buyer_token(buyer), &format!("key-{buyer}"), sale_id, 1)
        .await
        .expect_json(201);
    order["order_id"].as_str().expect("order_id").to_owned()
}

async fn wait_for_status(client: &mut Client, order_id: &str, status: &str) {
    within(&format!("order {order_id} to become {status}"), async {
        loop {
            let order = client
                .get(&format!("/admin/v1/orders/{order_id}"), ADMIN_TOKEN)
                .await
                .expect_json(200);
            if order["status"] == status {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}
