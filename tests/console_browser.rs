//! The host console in a real browser: headless Chromium driven over the
//! W3C WebDriver protocol by chromedriver, against a gateway started here.
//!
//! One scenario, as a host lives it: a wrong token is refused; the host
//! signs in, creates a sale through the form (its field checks and the
//! gateway's own refusal shown), starts it, and watches the stock bar and
//! counts move as buyers order through the API, without a reload; pauses it
//! (orders are refused with SALE_NOT_LIVE, the page says paused), sees a
//! refused action's server message, restocks, sees the stream drop when the
//! gateway stops and come back when it restarts on the same port and data
//! (journal replay), and ends the sale. Then an ops token: every sale
//! visible, every action disabled with a note, and the API refuses anyway.
//!
//! Chromium and chromedriver are required, never skipped:
//! scripts/install-test-deps.sh installs them. With
//! `FLASHGATE_CONSOLE_SCREENSHOTS=<dir>` the test saves PNGs there (the ones
//! in docs/console/ come from it); by default it writes nothing.

mod common;
#[path = "common/webdriver.rs"]
mod webdriver;

use common::*;
use flashgate::app::Gateway;
use flashgate::config::Config;
use serde_json::json;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use webdriver::Browser;

const SALE: &str = "live-1124";
const ITEM: &str = "tea-500g";

/// A gateway on `port` with its data in `scratch`, so that it can be
/// stopped and started again with the same state.
async fn start_gateway(scratch: &Scratch, port: u16) -> Gateway {
    let mut config = Config::default();
    config.server.listen = format!("127.0.0.1:{port}");
    config.pay.simulator_listen = "127.0.0.1:0".into();
    config.server.shutdown_grace_seconds = 5;
    config.storage.data_dir = scratch.data_dir();
    let deadline = Instant::now() + WAIT;
    loop {
        // The port was just released by the previous gateway; retry a bind race.
        match Gateway::start(config.clone()).await {
            Ok(gateway) => return gateway,
            Err(error) if Instant::now() < deadline => {
                eprintln!("gateway start on {port} failed, retrying: {error}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => panic!("the gateway did not start on port {port}: {error}"),
        }
    }
}

/// Saves a PNG when `FLASHGATE_CONSOLE_SCREENSHOTS` names a directory.
async fn screenshot(browser: &Browser, name: &str) {
    let Some(dir) = std::env::var_os("FLASHGATE_CONSOLE_SCREENSHOTS") else {
        return;
    };
    // Let the stock bar's 0.25 s transition settle.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir).expect("create the screenshot dir");
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, browser.screenshot().await)
        .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
}

/// A JavaScript condition on the item card of [`ITEM`].
fn item_is(condition: &str) -> String {
    format!(
        "const e = document.querySelector('#items .item[data-sku=\"{ITEM}\"]'); \
         return e !== null && ({condition});"
    )
}

async fn confirm(browser: &Browser) {
    browser
        .wait_until(
            "the confirmation dialog",
            "return document.getElementById('confirm-dialog').open;",
        )
        .await;
    browser.find("#confirm-ok").await.click().await;
}

async fn sign_in(browser: &Browser, token: &str) {
    browser.find("#token-input").await.type_text(token).await;
    browser.find("#sign-in").await.click().await;
}

async fn orders(gateway: SocketAddr, buyers: std::ops::Range<u32>) -> Vec<Reply> {
    let mut client = Client::connect(gateway).await;
    let mut replies = Vec::new();
    for buyer in buyers {
        let token = buyer_token(&format!("o_buyer_{buyer}"));
        let body = json!({ "sale_id": SALE, "sku_id": ITEM, "quantity": 1 });
        replies.push(
            client
                .order_body(&token, &format!("k-{buyer}"), &body.to_string())
                .await,
        );
    }
    replies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_runs_a_sale_from_the_console_and_ops_only_watch() {
    let started = Instant::now();
    let scratch = Scratch::new("console");
    let port = free_port();
    let mut gateway = start_gateway(&scratch, port).await;
    let addr = gateway.local_addr;
    let browser = Browser::start().await;

    // /console redirects to the page; a wrong token is refused with the gateway's message.
    browser.navigate(&format!("http://{addr}/console")).await;
    assert_eq!(
        browser.current_url().await,
        format!("http://{addr}/console/")
    );
    browser
        .wait_until(
            "the page's script",
            "return document.body.dataset.ready === 'true';",
        )
        .await;
    screenshot(&browser, "sign-in").await;
    sign_in(&browser, "not-a-known-token").await;
    browser
        .wait_for_text("#sign-in-error", "Sign-in refused: unknown admin token")
        .await;
    sign_in(&browser, HOST_TOKEN).await;
    browser.wait_for_text("#role-badge", "host").await;
    browser
        .wait_until(
            "the empty sale list",
            "return !document.getElementById('sales-empty').hidden;",
        )
        .await;

    // The form checks its fields before anything is sent.
    browser.find("#new-sale").await.click().await;
    browser
        .find("#create-sale-id")
        .await
        .type_text("no spaces!")
        .await;
    browser
        .find("#create-title")
        .await
        .type_text("Double 11 encore")
        .await;
    browser.find("#create-hold").await.type_text("30").await;
    let row = "#create-items .create-item";
    browser
        .find(&format!("{row} [data-field=sku_id]"))
        .await
        .type_text(ITEM)
        .await;
    browser
        .find(&format!("{row} [data-field=title]"))
        .await
        .type_text("West Lake Longjing 500 g")
        .await;
    browser
        .find(&format!("{row} [data-field=price]"))
        .await
        .type_text("99.999")
        .await;
    browser
        .find(&format!("{row} [data-field=stock]"))
        .await
        .type_text("20")
        .await;
    browser
        .find(&format!("{row} [data-field=per_user_limit]"))
        .await
        .type_text("2")
        .await;
    browser.find("#create-submit").await.click().await;
    browser
        .wait_for_text(
            "[data-error-for=sale_id]",
            "1–32 characters: letters, digits, _ or -.",
        )
        .await;
    browser
        .wait_for_text(
            "[data-error-for=hold_seconds]",
            "A whole number of seconds, 60–3600.",
        )
        .await;
    browser
        .wait_for_text(
            &format!("{row} [data-error-for=price]"),
            "Yuan above 0, at most 2 decimals.",
        )
        .await;
    browser.find("#create-sale-id").await.type_text(SALE).await;
    browser.find("#create-hold").await.type_text("600").await;
    browser
        .find(&format!("{row} [data-field=price]"))
        .await
        .type_text("99.00")
        .await;
    browser.find("#create-submit").await.click().await;
    browser.wait_for_text("#sale-status", "scheduled").await;
    browser
        .wait_for_text("#sale-title", "Double 11 encore")
        .await;
    let mut api = Client::connect(addr).await;
    let sale = api
        .get(&format!("/v1/sales/{SALE}"), OPS_TOKEN)
        .await
        .expect_json(200);
    assert_eq!(sale["hold_seconds"], 600, "{sale}");
    assert_eq!(sale["items"][0]["price"], "99.00", "{sale}");
    assert_eq!(sale["items"][0]["per_user_limit"], 2, "{sale}");

    // The gateway's own refusal reaches the form: the id is taken.
    browser.find("#new-sale").await.click().await;
    browser.find("#create-sale-id").await.type_text(SALE).await;
    browser.find("#create-title").await.type_text("Again").await;
    browser
        .find(&format!("{row} [data-field=sku_id]"))
        .await
        .type_text("x")
        .await;
    browser
        .find(&format!("{row} [data-field=title]"))
        .await
        .type_text("X")
        .await;
    browser
        .find(&format!("{row} [data-field=price]"))
        .await
        .type_text("1")
        .await;
    browser
        .find(&format!("{row} [data-field=stock]"))
        .await
        .type_text("1")
        .await;
    browser.find("#create-submit").await.click().await;
    browser
        .wait_until(
            "the gateway's refusal of a taken sale id",
            "const t = document.getElementById('create-error').textContent; \
             return t.startsWith('The gateway refused the sale: ') && t.includes('already exists');",
        )
        .await;
    browser
        .find(&format!("#sales-list button[data-sale-id=\"{SALE}\"]"))
        .await
        .click()
        .await;

    // Start: confirmed in the dialog, then live, the stream with it.
    browser.find("#action-start").await.click().await;
    confirm(&browser).await;
    browser.wait_for_text("#sale-status", "live").await;
    browser.wait_for_text("#stream-state", "● Live").await;

    // Orders through the API move the bar and the counts without a reload.
    for reply in orders(addr, 0..6).await {
        reply.expect_json(201);
    }
    browser
        .wait_until(
            "the stock bar to show 14 of 20 left",
            &item_is(
                "e.dataset.remaining === '14' && e.dataset.stock === '20' \
                 && parseFloat(e.querySelector('.bar-fill').style.width) === 70 \
                 && e.querySelector('.item-sold').textContent === '6' \
                 && e.querySelector('.item-reserved').textContent === '6' \
                 && e.querySelector('.item-paid').textContent === '0'",
            ),
        )
        .await;
    browser.wait_for_text("#orders-created", "6").await;
    for reply in orders(addr, 6..10).await {
        reply.expect_json(201);
    }
    browser
        .wait_until(
            "the stock to drain to 10",
            &item_is("e.dataset.remaining === '10'"),
        )
        .await;
    browser
        .wait_until(
            "an order rate above zero",
            "return Number(document.getElementById('orders-rate').textContent) > 0;",
        )
        .await;
    screenshot(&browser, "live-sale").await;

    // Pause: the page says so and orders are refused.
    browser.find("#action-pause").await.click().await;
    confirm(&browser).await;
    browser.wait_for_text("#sale-status", "paused").await;
    for reply in orders(addr, 10..11).await {
        assert_error(&reply, 409, "SALE_NOT_LIVE");
    }
    browser.wait_for_text("#orders-rejected", "1").await;

    // A refused action shows the gateway's message.
    browser.find("#action-pause").await.click().await;
    confirm(&browser).await;
    browser
        .wait_for_text("#action-error", "cannot pause a sale that is paused")
        .await;
    let code = browser
        .execute(
            "return document.getElementById('action-error').dataset.code;",
            json!([]),
        )
        .await;
    assert_eq!(code, "INVALID_STATE");

    // Restock through the dialog: the stock grows.
    browser
        .find(&format!(".restock[data-sku=\"{ITEM}\"]"))
        .await
        .click()
        .await;
    browser
        .wait_until(
            "the restock dialog",
            "return document.getElementById('confirm-dialog').open;",
        )
        .await;
    browser.find("#restock-add").await.type_text("5").await;
    browser.find("#confirm-ok").await.click().await;
    browser
        .wait_until(
            "the stock to grow to 25 with 15 left",
            &item_is("e.dataset.stock === '25' && e.dataset.remaining === '15'"),
        )
        .await;
    browser.find("#action-start").await.click().await;
    confirm(&browser).await;
    browser.wait_for_text("#sale-status", "live").await;

    // The gateway stops: the stream drops and the page says so; it comes
    // back on the same port with the same journal, and so does the stream.
    gateway.shutdown().await;
    browser
        .wait_until(
            "the stream to show it dropped",
            "return document.getElementById('stream-state').dataset.state === 'reconnecting' \
             && document.getElementById('stream-note').textContent.startsWith('stream dropped at ');",
        )
        .await;
    gateway = start_gateway(&scratch, port).await;
    browser
        .wait_until(
            "the stream to come back",
            "return document.getElementById('stream-state').dataset.state === 'live' \
             && document.getElementById('stream-state').dataset.backAt !== '' \
             && document.getElementById('stream-note').textContent.includes(', back at ');",
        )
        .await;
    for reply in orders(addr, 11..12).await {
        reply.expect_json(201);
    }
    browser
        .wait_until(
            "the counts after the restart and one more order",
            &item_is("e.dataset.stock === '25' && e.dataset.remaining === '14'"),
        )
        .await;

    // End: the stream closes for good and the final counts stay.
    browser.find("#action-end").await.click().await;
    confirm(&browser).await;
    browser.wait_for_text("#sale-status", "ended").await;
    browser.wait_for_text("#stream-state", "Sale ended").await;
    let refused = orders(addr, 12..13).await;
    assert_error(&refused[0], 409, "SALE_NOT_LIVE");

    // Ops: a second, live sale to watch; everything visible, nothing actionable.
    let mut api = Client::connect(addr).await;
    let mut other = sale_body("ops-watch", 8, 1);
    other["title"] = json!("Evening rerun");
    api.create_sale(&other).await.expect_json(201);
    api.start_sale("ops-watch").await.expect_json(200);
    browser.find("#sign-out").await.click().await;
    browser
        .wait_until(
            "the sign-in form after signing out",
            "return !document.getElementById('sign-in-view').hidden \
             && sessionStorage.length === 0;",
        )
        .await;
    sign_in(&browser, OPS_TOKEN).await;
    browser.wait_for_text("#role-badge", "ops").await;
    browser
        .wait_until(
            "both sales in the list",
            "return document.querySelectorAll('#sales-list button').length === 2;",
        )
        .await;
    browser
        .find("#sales-list button[data-sale-id=\"ops-watch\"]")
        .await
        .click()
        .await;
    browser.wait_for_text("#sale-status", "live").await;
    browser.wait_for_text("#stream-state", "● Live").await;
    for css in [
        "#action-start",
        "#action-pause",
        "#action-end",
        ".restock",
        "#new-sale",
    ] {
        assert!(
            !browser.find(css).await.is_enabled().await,
            "{css} is enabled for ops"
        );
    }
    let notes = browser
        .execute(
            "return [document.getElementById('role-note').hidden, \
                     document.getElementById('action-note').hidden];",
            json!([]),
        )
        .await;
    assert_eq!(notes, json!([false, false]), "the ops notes are shown");
    let note = browser.find("#action-note").await.text().await;
    assert_eq!(note, "This token's role cannot act on sales.");
    screenshot(&browser, "ops-view").await;
    assert_error(
        &api.post_empty("/admin/v1/sales/ops-watch/pause", OPS_TOKEN)
            .await,
        403,
        "FORBIDDEN",
    );
    // The token was never put in a URL.
    let urls = browser
        .execute(
            "return performance.getEntriesByType('resource').map(e => e.name) \
               .concat([location.href]);",
            json!([]),
        )
        .await;
    for url in urls.as_array().expect("urls") {
        let url = url.as_str().unwrap_or_default();
        assert!(
            !url.contains(OPS_TOKEN) && !url.contains(HOST_TOKEN),
            "token in {url}"
        );
    }

    drop(browser);
    gateway.shutdown().await;
    eprintln!("console scenario took {:?}", started.elapsed());
}
