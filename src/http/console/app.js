// flashgate host console: sign in with an admin token, list and create
// sales, watch one sale's stock and orders live, and start, pause, restock
// and end it. Plain browser JavaScript, nothing to build.
//
// The token lives in sessionStorage and travels only in the Authorization
// header, never in a URL. That rules out EventSource (it cannot send
// headers), so the live stream is read with fetch() and a ReadableStream
// and parsed here; it reconnects with backoff and says when it dropped and
// when it came back.
"use strict";

const TOKEN_KEY = "flashgate.console.token";
const SALE_ID_PATTERN = /^[A-Za-z0-9_-]{1,32}$/;
const PRICE_PATTERN = /^\d{1,8}(\.\d{1,2})?$/;
const TITLE_CHARS_MAX = 200;
const HOLD_SECONDS_MIN = 60;
const HOLD_SECONDS_MAX = 3600;
const PRICE_YUAN_MAX = 10000000;
// Reconnect backoff: 0.5 s doubling to 8 s.
const RECONNECT_DELAY_MS_MIN = 500;
const RECONNECT_DELAY_MS_MAX = 8000;
// The server sends a comment every 15 s when nothing changes; silence
// beyond this means the connection is dead even if no error surfaced.
const STREAM_SILENCE_MS_MAX = 25000;
// Order rates are measured over this window of stats samples.
const RATE_WINDOW_MS = 10000;
const SAMPLES_MAX = 64;

const $ = (id) => document.getElementById(id);

const state = {
  token: null,
  role: null,
  sales: [],
  saleId: null,
  stream: null,
};

// ---- API ---------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const headers = { Authorization: "Bearer " + state.token };
  const init = { method, headers, cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    throw new ApiError(0, "NETWORK", "the gateway could not be reached (" + error.message + ")");
  }
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch (_) {
    json = null;
  }
  if (!response.ok) {
    const error = json && json.error;
    throw new ApiError(
      response.status,
      error ? error.code : "HTTP_" + response.status,
      error ? error.message : "HTTP " + response.status,
    );
  }
  return json;
}

const canAct = () => state.role === "host" || state.role === "admin";

// ---- sign in and out ---------------------------------------------------

async function signIn(token) {
  state.token = token;
  const session = await api("GET", "/admin/v1/session");
  state.role = session.role;
  sessionStorage.setItem(TOKEN_KEY, token);
  $("sign-in-view").hidden = true;
  $("console-view").hidden = false;
  $("session-bar").hidden = false;
  $("role-badge").textContent = state.role;
  $("role-badge").dataset.role = state.role;
  $("role-note").hidden = canAct();
  $("new-sale").disabled = !canAct();
  await loadSales();
}

function signOut() {
  closeStream();
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  state.role = null;
  state.sales = [];
  state.saleId = null;
  $("token-input").value = "";
  $("sign-in-error").textContent = "";
  $("console-view").hidden = true;
  $("session-bar").hidden = true;
  $("sign-in-view").hidden = false;
  $("sale-detail").hidden = true;
  $("create-form").hidden = true;
  $("sale-placeholder").hidden = false;
  $("sales-list").replaceChildren();
  setStreamState("idle", "No sale open");
  $("token-input").focus();
}

async function onSignIn(event) {
  event.preventDefault();
  const token = $("token-input").value.trim();
  $("sign-in-error").textContent = "";
  if (!token) {
    $("sign-in-error").textContent = "Enter your admin token.";
    return;
  }
  try {
    await signIn(token);
  } catch (error) {
    state.token = null;
    $("sign-in-error").textContent = "Sign-in refused: " + error.message;
  }
}

// ---- the sale list -----------------------------------------------------

async function loadSales() {
  $("sales-error").textContent = "";
  try {
    const list = await api("GET", "/admin/v1/sales");
    state.sales = list.sales;
  } catch (error) {
    $("sales-error").textContent = error.message;
    return;
  }
  renderSales();
  const current = state.sales.find((sale) => sale.sale_id === state.saleId);
  if (current) renderSale(current);
}

function renderSales() {
  const list = $("sales-list");
  list.replaceChildren(
    ...state.sales.map((sale) => {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.saleId = sale.sale_id;
      button.setAttribute("aria-current", String(sale.sale_id === state.saleId));
      const title = document.createElement("span");
      title.textContent = sale.title;
      const status = document.createElement("span");
      status.className = "small-status";
      status.dataset.status = sale.status;
      status.textContent = sale.status.replace("_", " ");
      button.append(title, status);
      button.addEventListener("click", () => selectSale(sale.sale_id));
      item.append(button);
      return item;
    }),
  );
  $("sales-empty").hidden = state.sales.length > 0;
}

function summaryOf(saleId) {
  return state.sales.find((sale) => sale.sale_id === saleId);
}

function selectSale(saleId) {
  const sale = summaryOf(saleId);
  if (!sale) return;
  state.saleId = saleId;
  $("create-form").hidden = true;
  $("sale-placeholder").hidden = true;
  $("sale-detail").hidden = false;
  $("action-error").textContent = "";
  $("action-error").dataset.code = "";
  renderSales();
  buildItems(sale);
  renderSale(sale);
  openStream(saleId);
}

// ---- one sale ------------------------------------------------------------

function buildItems(sale) {
  const template = $("item-template");
  $("items").replaceChildren(
    ...sale.items.map((item) => {
      const node = template.content.firstElementChild.cloneNode(true);
      node.dataset.sku = item.sku_id;
      node.querySelector(".item-title").textContent = item.title;
      node.querySelector(".item-price").textContent = "¥" + item.price + " · limit " + item.per_user_limit;
      const restock = node.querySelector(".restock");
      restock.dataset.sku = item.sku_id;
      restock.disabled = !canAct();
      restock.addEventListener("click", () => confirmRestock(item));
      return node;
    }),
  );
  for (const button of document.querySelectorAll("#sale-actions button")) {
    button.disabled = !canAct();
  }
  $("action-note").hidden = canAct();
}

/// Draws a sale from its summary (list) or stats (stream) counts.
function renderSale(sale) {
  $("sale-title").textContent = sale.title || summaryOf(sale.sale_id)?.title || sale.sale_id;
  $("sale-id").textContent = sale.sale_id;
  renderStatus(sale.status);
  for (const item of sale.items) renderItemCounts(item);
}

function renderStatus(status) {
  const badge = $("sale-status");
  badge.dataset.status = status;
  badge.textContent = status.replace("_", " ");
  const summary = summaryOf(state.saleId);
  if (summary && summary.status !== status) {
    summary.status = status;
    renderSales();
  }
}

function renderItemCounts(item) {
  const node = document.querySelector(`#items .item[data-sku="${CSS.escape(item.sku_id)}"]`);
  if (!node) return;
  const sold = item.reserved + item.paid;
  const share = item.stock > 0 ? item.remaining / item.stock : 0;
  node.dataset.remaining = item.remaining;
  node.dataset.stock = item.stock;
  node.dataset.low = String(share > 0 && share < 0.2);
  node.dataset.soldOut = String(item.remaining === 0);
  node.querySelector(".item-remaining").textContent = item.remaining;
  node.querySelector(".item-stock").textContent = item.stock;
  node.querySelector(".item-sold").textContent = sold;
  node.querySelector(".item-reserved").textContent = item.reserved;
  node.querySelector(".item-paid").textContent = item.paid;
  const bar = node.querySelector(".bar");
  bar.setAttribute("aria-valuemax", item.stock);
  bar.setAttribute("aria-valuenow", item.remaining);
  // CSSOM, not a style attribute: allowed under the page's CSP.
  node.querySelector(".bar-fill").style.width = (share * 100).toFixed(1) + "%";
}

/// Applies a `stats` snapshot: counts, totals and rates.
function applyStats(stats, receivedAt) {
  if (stats.sale_id !== state.saleId) return;
  renderStatus(stats.status);
  for (const item of stats.items) renderItemCounts(item);
  const refused = Object.values(stats.rejects).reduce((sum, count) => sum + count, 0);
  $("orders-created").textContent = stats.orders.created;
  $("orders-paid").textContent = stats.orders.paid;
  $("orders-rejected").textContent = refused;
  const stream = state.stream;
  if (!stream) return;
  stream.samples.push({ at: receivedAt, stats });
  pruneSamples(stream.samples, receivedAt);
  renderRates(stream.samples, receivedAt);
}

/// Keeps the samples of the rate window and the last one before it (the
/// state at the window's start: nothing changed until the next sample).
function pruneSamples(samples, now) {
  while (samples.length > SAMPLES_MAX || (samples.length > 1 && samples[1].at <= now - RATE_WINDOW_MS)) {
    samples.shift();
  }
}

/// Rates per minute over the last RATE_WINDOW_MS: orders made, and units
/// taken per item (reserved + paid + released only grows, restocks aside).
/// Re-rendered every second, so a quiet sale's rate falls to 0.
function renderRates(samples, now) {
  if (samples.length === 0) return;
  const base = samples[0];
  const last = samples[samples.length - 1];
  const windowStart = Math.max(base.at, now - RATE_WINDOW_MS);
  const minutes = Math.max(now - windowStart, 1000) / 60000;
  const perMinute = (delta) => Math.round(delta / minutes);
  $("orders-rate").textContent = perMinute(last.stats.orders.created - base.stats.orders.created);
  const taken = (counts) => counts.reserved + counts.paid + counts.released;
  for (const item of last.stats.items) {
    const before = base.stats.items.find((other) => other.sku_id === item.sku_id);
    const node = document.querySelector(`#items .item[data-sku="${CSS.escape(item.sku_id)}"]`);
    if (node && before) node.querySelector(".item-rate").textContent = perMinute(taken(item) - taken(before));
  }
}

function tickRates() {
  const stream = state.stream;
  if (!stream) return;
  const now = Date.now();
  pruneSamples(stream.samples, now);
  renderRates(stream.samples, now);
}

// ---- the live stream -----------------------------------------------------

function setStreamState(name, text) {
  const badge = $("stream-state");
  badge.dataset.state = name;
  badge.textContent = text;
}

const clock = (date) => date.toLocaleTimeString([], { hour12: false });

function closeStream() {
  const stream = state.stream;
  if (!stream) return;
  stream.closed = true;
  stream.abort.abort();
  clearTimeout(stream.retryTimer);
  clearTimeout(stream.silenceTimer);
  state.stream = null;
}

function openStream(saleId) {
  closeStream();
  const stream = {
    saleId,
    closed: false,
    abort: new AbortController(),
    delayMs: RECONNECT_DELAY_MS_MIN,
    droppedAt: null,
    retryTimer: null,
    silenceTimer: null,
    samples: [],
  };
  state.stream = stream;
  $("stream-note").textContent = "connecting…";
  setStreamState("connecting", "Connecting…");
  connect(stream);
}

async function connect(stream) {
  let outcome;
  try {
    outcome = await readStream(stream);
  } catch (error) {
    outcome = { dropped: true, reason: error.name === "AbortError" ? "no data for too long" : error.message };
  }
  if (stream.closed) return;
  if (outcome.ended) {
    setStreamState("ended", "Sale ended");
    $("stream-note").textContent = "the sale has ended; final counts shown";
    await finalStats(stream);
    return;
  }
  if (outcome.fatal) {
    setStreamState("failed", "Stream refused");
    $("stream-note").textContent = outcome.reason;
    return;
  }
  if (!stream.droppedAt) stream.droppedAt = new Date();
  const delay = stream.delayMs;
  stream.delayMs = Math.min(stream.delayMs * 2, RECONNECT_DELAY_MS_MAX);
  setStreamState("reconnecting", "Reconnecting…");
  $("stream-note").textContent =
    "stream dropped at " + clock(stream.droppedAt) + " (" + outcome.reason + "); retrying in " +
    (delay / 1000).toFixed(1) + " s";
  stream.abort = new AbortController();
  stream.retryTimer = setTimeout(() => connect(stream), delay);
}

/// One connection: resolves `{ended}` after the sale's end, `{fatal}` when
/// retrying cannot help, `{dropped}` otherwise.
async function readStream(stream) {
  let response;
  try {
    response = await fetch(`/admin/v1/sales/${encodeURIComponent(stream.saleId)}/stats/events`, {
      headers: { Authorization: "Bearer " + state.token, Accept: "text/event-stream" },
      cache: "no-store",
      signal: stream.abort.signal,
    });
  } catch (error) {
    if (stream.closed) return { dropped: true, reason: "closed" };
    return { dropped: true, reason: "gateway unreachable" };
  }
  if (response.status === 204) return { ended: true };
  if (response.status === 401 || response.status === 403 || response.status === 404) {
    const body = await response.json().catch(() => null);
    return { fatal: true, reason: body && body.error ? body.error.message : "HTTP " + response.status };
  }
  if (!response.ok || !response.body) return { dropped: true, reason: "HTTP " + response.status };
  stream.delayMs = RECONNECT_DELAY_MS_MIN;
  const backAt = new Date();
  setStreamState("live", "● Live");
  $("stream-note").textContent = stream.droppedAt
    ? "dropped at " + clock(stream.droppedAt) + ", back at " + clock(backAt)
    : "live since " + clock(backAt);
  $("stream-state").dataset.backAt = stream.droppedAt ? backAt.toISOString() : "";
  stream.droppedAt = null;
  let ended = false;
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  const armSilence = () => {
    clearTimeout(stream.silenceTimer);
    stream.silenceTimer = setTimeout(() => stream.abort.abort(), STREAM_SILENCE_MS_MAX);
  };
  armSilence();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    armSilence();
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = parseEvent(block);
      if (!event) continue;
      if (event.name === "stats") applyStats(JSON.parse(event.data), Date.now());
      if (event.name === "status") {
        const status = JSON.parse(event.data).status;
        renderStatus(status);
        ended = status === "ended";
      }
    }
  }
  clearTimeout(stream.silenceTimer);
  return ended ? { ended: true } : { dropped: true, reason: "the gateway closed the stream" };
}

/// One SSE block (without its blank line): `{name, data}`, or null for a
/// comment or `retry:` only.
function parseEvent(block) {
  let name = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line === "" || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") name = value;
    else if (field === "data") data.push(value);
  }
  return data.length ? { name, data: data.join("\n") } : null;
}

async function finalStats(stream) {
  try {
    const stats = await api("GET", `/admin/v1/sales/${encodeURIComponent(stream.saleId)}/stats`);
    if (!stream.closed) applyStats(stats, Date.now());
  } catch (error) {
    $("stream-note").textContent = "the sale has ended; final counts unavailable: " + error.message;
  }
}

// ---- actions -------------------------------------------------------------

/// Asks in the page's dialog; resolves true on Confirm.
function confirmInDialog(text, withRestock) {
  const dialog = $("confirm-dialog");
  $("confirm-text").textContent = text;
  $("restock-field").hidden = !withRestock;
  $("restock-error").textContent = "";
  return new Promise((resolve) => {
    const finish = (answer) => {
      $("confirm-ok").removeEventListener("click", ok);
      $("confirm-cancel").removeEventListener("click", cancel);
      dialog.removeEventListener("cancel", cancel);
      dialog.close();
      resolve(answer);
    };
    const ok = () => {
      if (withRestock && !validRestock()) return;
      finish(true);
    };
    const cancel = (event) => {
      if (event) event.preventDefault();
      finish(false);
    };
    $("confirm-ok").addEventListener("click", ok);
    $("confirm-cancel").addEventListener("click", cancel);
    dialog.addEventListener("cancel", cancel);
    dialog.showModal();
    (withRestock ? $("restock-add") : $("confirm-ok")).focus();
  });
}

function validRestock() {
  const text = $("restock-add").value.trim();
  const ok = /^\d+$/.test(text) && Number(text) >= 1;
  $("restock-error").textContent = ok ? "" : "A whole number of at least 1.";
  return ok;
}

function showActionError(error) {
  $("action-error").textContent = error ? error.message : "";
  $("action-error").dataset.code = error ? error.code : "";
}

const ACTION_WORDS = { start: "Start (go live)", pause: "Pause", end: "End" };

async function onSaleAction(action) {
  const saleId = state.saleId;
  const sale = summaryOf(saleId);
  if (!sale || !canAct()) return;
  showActionError(null);
  if (!(await confirmInDialog(`${ACTION_WORDS[action]} “${sale.title}”?`, false))) return;
  try {
    const view = await api("POST", `/admin/v1/sales/${encodeURIComponent(saleId)}/${action}`);
    renderStatus(view.status);
    // Resuming an ended stream is not possible; any other action keeps it.
    if (action === "start" && (!state.stream || state.stream.saleId !== saleId)) openStream(saleId);
  } catch (error) {
    showActionError(error);
  }
}

async function confirmRestock(item) {
  const saleId = state.saleId;
  if (!canAct()) return;
  showActionError(null);
  if (!(await confirmInDialog(`Restock “${item.title}”: how many units to add?`, true))) return;
  const add = Number($("restock-add").value.trim());
  try {
    const path = `/admin/v1/sales/${encodeURIComponent(saleId)}/items/${encodeURIComponent(item.sku_id)}/restock`;
    const stats = await api("POST", path, { add });
    applyStats(stats, Date.now());
  } catch (error) {
    showActionError(error);
  }
}

// ---- creating a sale -------------------------------------------------------

function showCreateForm() {
  if (!canAct()) return;
  closeStream();
  state.saleId = null;
  renderSales();
  setStreamState("idle", "No sale open");
  $("sale-detail").hidden = true;
  $("sale-placeholder").hidden = true;
  const form = $("create-form");
  form.reset();
  clearFieldErrors(form);
  $("create-error").textContent = "";
  $("create-items").replaceChildren();
  addItemRow();
  form.hidden = false;
  $("create-sale-id").focus();
}

function addItemRow() {
  const row = $("create-item-template").content.firstElementChild.cloneNode(true);
  const index = $("create-items").children.length;
  row.dataset.index = index;
  for (const input of row.querySelectorAll("input")) {
    input.id = `create-item-${index}-${input.dataset.field}`;
    input.previousElementSibling.htmlFor = input.id;
  }
  row.querySelector(".remove-item").addEventListener("click", () => {
    if ($("create-items").children.length > 1) row.remove();
  });
  $("create-items").append(row);
}

function clearFieldErrors(root) {
  for (const error of root.querySelectorAll(".field-error")) error.textContent = "";
  for (const input of root.querySelectorAll("input")) input.removeAttribute("aria-invalid");
}

function fieldError(root, field, message) {
  root.querySelector(`[data-error-for="${field}"]`).textContent = message;
  const input = root.querySelector(`[name="${field}"], [data-field="${field}"]`);
  if (input) input.setAttribute("aria-invalid", "true");
}

const wholeNumber = (text) => /^\d+$/.test(text) ? Number(text) : NaN;

/// The request body, or null after marking every invalid field.
function readCreateForm() {
  const form = $("create-form");
  clearFieldErrors(form);
  let valid = true;
  const fail = (root, field, message) => {
    fieldError(root, field, message);
    valid = false;
  };
  const saleId = $("create-sale-id").value.trim();
  const title = $("create-title").value.trim();
  const hold = wholeNumber($("create-hold").value.trim());
  if (!SALE_ID_PATTERN.test(saleId)) fail(form, "sale_id", "1–32 characters: letters, digits, _ or -.");
  if (!title || title.length > TITLE_CHARS_MAX) fail(form, "title", `1–${TITLE_CHARS_MAX} characters.`);
  if (!(hold >= HOLD_SECONDS_MIN && hold <= HOLD_SECONDS_MAX)) {
    fail(form, "hold_seconds", `A whole number of seconds, ${HOLD_SECONDS_MIN}–${HOLD_SECONDS_MAX}.`);
  }
  const skus = new Set();
  const items = [...$("create-items").children].map((row) => {
    const value = (field) => row.querySelector(`[data-field="${field}"]`).value.trim();
    const item = {
      sku_id: value("sku_id"),
      title: value("title"),
      price: value("price"),
      stock: wholeNumber(value("stock")),
      per_user_limit: wholeNumber(value("per_user_limit")),
    };
    if (!SALE_ID_PATTERN.test(item.sku_id)) fail(row, "sku_id", "1–32 of letters, digits, _ or -.");
    else if (skus.has(item.sku_id)) fail(row, "sku_id", "Used by another item.");
    skus.add(item.sku_id);
    if (!item.title || item.title.length > TITLE_CHARS_MAX) fail(row, "title", "Required.");
    const price = Number(item.price);
    if (!PRICE_PATTERN.test(item.price) || !(price > 0) || price > PRICE_YUAN_MAX) {
      fail(row, "price", "Yuan above 0, at most 2 decimals.");
    }
    if (Number.isNaN(item.stock)) fail(row, "stock", "A whole number, 0 or more.");
    if (!(item.per_user_limit >= 1)) fail(row, "per_user_limit", "A whole number, 1 or more.");
    return item;
  });
  return valid ? { sale_id: saleId, title, hold_seconds: hold, items } : null;
}

async function onCreate(event) {
  event.preventDefault();
  $("create-error").textContent = "";
  const body = readCreateForm();
  if (!body) {
    $("create-error").textContent = "Fix the fields marked above.";
    return;
  }
  $("create-submit").disabled = true;
  try {
    const sale = await api("POST", "/admin/v1/sales", body);
    $("create-form").hidden = true;
    await loadSales();
    selectSale(sale.sale_id);
  } catch (error) {
    $("create-error").textContent = "The gateway refused the sale: " + error.message;
  } finally {
    $("create-submit").disabled = false;
  }
}

function cancelCreate() {
  $("create-form").hidden = true;
  $("sale-placeholder").hidden = false;
}

// ---- start -----------------------------------------------------------------

function init() {
  $("sign-in-form").addEventListener("submit", onSignIn);
  $("sign-out").addEventListener("click", signOut);
  $("refresh-sales").addEventListener("click", loadSales);
  $("new-sale").addEventListener("click", showCreateForm);
  $("create-form").addEventListener("submit", onCreate);
  $("create-add-item").addEventListener("click", addItemRow);
  $("create-cancel").addEventListener("click", cancelCreate);
  for (const button of document.querySelectorAll("#sale-actions button")) {
    button.addEventListener("click", () => onSaleAction(button.dataset.action));
  }
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) {
    signIn(saved).catch(() => signOut());
  } else {
    $("token-input").focus();
  }
  setInterval(tickRates, 1000);
  document.body.dataset.ready = "true";
}

init();
