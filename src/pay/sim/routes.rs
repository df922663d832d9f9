//! The merchant API: each request checked in WeChat's order — headers,
//! signature, route, `mchid` agreement, injected faults (before any state
//! change) — then answered from the ledger. Answers carry `Request-ID`;
//! 2xx JSON and 204 answers are signed, the bill file is not.

use super::api_error::ApiError;
use super::{auth, ids, trade_bill, validate, Shared};
use crate::clock::{now_ms, UnixMs};
use crate::pay::wire::PrepayResponse;
use bytes::Bytes;
use http::header::{CONTENT_LANGUAGE, CONTENT_TYPE};
use http::request::Parts;
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;
use std::time::Duration;

const JSON: &str = "application/json; charset=utf-8";
const FILE: &str = "application/octet-stream";

/// A successful answer before signing.
pub enum Answer {
    /// 200 with a JSON body, signed.
    Json(Vec<u8>),
    /// 204, signed over the empty body.
    NoContent,
    /// 200 with the bill file, unsigned.
    File(Bytes),
}

impl Answer {
    fn json(value: &impl Serialize) -> Self {
        Answer::Json(serde_json::to_vec(value).expect("wire types serialise"))
    }
}

/// One endpoint with its path parameter, percent-decoded.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Prepay,
    QueryByOutTradeNo(String),
    QueryById(String),
    Close(String),
    Refund,
    RefundQuery(String),
    TradeBill,
    BillDownload,
}

impl Route {
    fn resolve(method: &Method, path: &str) -> Option<Route> {
        let segments: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
        let decoded = |segment: &str| percent_decode(segment).filter(|text| !text.is_empty());
        let route = match (method, segments.as_slice()) {
            (&Method::POST, ["v3", "pay", "transactions", "jsapi"]) => Route::Prepay,
            (&Method::GET, ["v3", "pay", "transactions", "out-trade-no", number]) => {
                Route::QueryByOutTradeNo(decoded(number)?)
            }
            (&Method::GET, ["v3", "pay", "transactions", "id", id]) => {
                Route::QueryById(decoded(id)?)
            }
            (&Method::POST, ["v3", "pay", "transactions", "out-trade-no", number, "close"]) => {
                Route::Close(decoded(number)?)
            }
            (&Method::POST, ["v3", "refund", "domestic", "refunds"]) => Route::Refund,
            (&Method::GET, ["v3", "refund", "domestic", "refunds", number]) => {
                Route::RefundQuery(decoded(number)?)
            }
            (&Method::GET, ["v3", "bill", "tradebill"]) => Route::TradeBill,
            (&Method::GET, ["v3", "billdownload", "file"]) => Route::BillDownload,
            _ => return None,
        };
        Some(route)
    }

    /// The name `FailNext::endpoint` uses.
    fn endpoint(&self) -> &'static str {
        match self {
            Route::Prepay => "prepay",
            Route::QueryByOutTradeNo(_) | Route::QueryById(_) => "query",
            Route::Close(_) => "close",
            Route::Refund => "refund",
            Route::RefundQuery(_) => "refund_query",
            Route::TradeBill => "tradebill",
            Route::BillDownload => "billdownload",
        }
    }

    /// Queries name the merchant in `?mchid=` too.
    fn needs_mchid_query(&self) -> bool {
        matches!(self, Route::QueryByOutTradeNo(_) | Route::QueryById(_))
    }
}

pub async fn handle(shared: &Shared, parts: &Parts, body: &[u8]) -> Response<Full<Bytes>> {
    let latency_ms = shared.lock_faults().latency_ms;
    if latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(latency_ms)).await;
    }
    respond(shared, answer(shared, parts, body))
}

fn answer(shared: &Shared, parts: &Parts, body: &[u8]) -> Result<Answer, ApiError> {
    if !auth::has_accept_and_user_agent(&parts.headers) {
        return Err(ApiError::missing_accept_or_user_agent());
    }
    let path = parts.uri.path();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or(path, |path_and_query| path_and_query.as_str());
    let now = now_ms();
    let authorization = shared.auth.verify_request(
        parts.method.as_str(),
        path_and_query,
        &parts.headers,
        body,
        now.div_euclid(1000),
    )?;
    let route = Route::resolve(&parts.method, path).ok_or_else(|| ApiError::not_found(path))?;
    if validate::body_mchid(body).is_some_and(|mchid| mchid != authorization.mchid) {
        return Err(ApiError::mchid_mismatch("post payload"));
    }
    let query = parts.uri.query().unwrap_or_default();
    if route.needs_mchid_query() {
        match query_param(query, "mchid") {
            None => return Err(ApiError::param_query("mchid", "缺少必填参数mchid")),
            Some(mchid) if mchid != authorization.mchid => {
                return Err(ApiError::mchid_mismatch("query"));
            }
            Some(_) => {}
        }
    }
    let injected = shared.lock_faults().decide_api_failure(route.endpoint());
    if let Some(injected) = injected {
        let message = injected.message.as_deref();
        return Err(ApiError::injected(injected.status, &injected.code, message));
    }
    dispatch(shared, route, query, body, now)
}

fn dispatch(
    shared: &Shared,
    route: Route,
    query: &str,
    body: &[u8],
    now: UnixMs,
) -> Result<Answer, ApiError> {
    match route {
        Route::Prepay => {
            let valid = validate::prepay(body)?;
            let request = &valid.request;
            if request.appid != shared.merchant.appid || request.mchid != shared.merchant.mchid {
                return Err(ApiError::appid_mchid_not_match());
            }
            let prepay_id =
                shared
                    .lock_ledger()
                    .prepay(request, &valid.raw, valid.time_expire_ms, now)?;
            Ok(Answer::json(&PrepayResponse { prepay_id }))
        }
        Route::QueryByOutTradeNo(number) => {
            let transaction = shared.lock_ledger().transaction(&number, now);
            Ok(Answer::json(
                &transaction.ok_or_else(ApiError::order_not_exist)?,
            ))
        }
        Route::QueryById(id) => {
            let transaction = shared.lock_ledger().transaction_by_id(&id, now);
            Ok(Answer::json(
                &transaction.ok_or_else(ApiError::order_not_exist)?,
            ))
        }
        Route::Close(number) => {
            validate::close(body)?;
            shared.lock_ledger().close(&number, now)?;
            Ok(Answer::NoContent)
        }
        Route::Refund => {
            let request = validate::refund(body)?;
            let outcome = shared.lock_ledger().refund(&request, now)?;
            if outcome.created {
                shared.start_refund(&outcome.refund.out_refund_no);
            }
            Ok(Answer::json(&outcome.refund))
        }
        Route::RefundQuery(number) => {
            let refund = shared.lock_ledger().refund_by_number(&number);
            let refund = refund.ok_or_else(|| ApiError::resource_not_exists("退款单不存在"))?;
            Ok(Answer::json(&refund))
        }
        Route::TradeBill => {
            trade_bill::request(shared, query, now).map(|response| Answer::json(&response))
        }
        Route::BillDownload => trade_bill::download(shared, query, now).map(Answer::File),
    }
}

/// The HTTP answer: `Request-ID: <hex>-<0 | internal code>` on all, signature
/// headers on 2xx JSON and 204.
pub fn respond(shared: &Shared, result: Result<Answer, ApiError>) -> Response<Full<Bytes>> {
    let request_hex = ids::request_hex();
    let answer = match result {
        Ok(answer) => answer,
        Err(error) => return error_response(&request_hex, &error),
    };
    let (status, body, content_type, signed) = match answer {
        Answer::Json(body) => (StatusCode::OK, Bytes::from(body), Some(JSON), true),
        Answer::NoContent => (StatusCode::NO_CONTENT, Bytes::new(), None, true),
        Answer::File(bytes) => (StatusCode::OK, bytes, Some(FILE), false),
    };
    let mut response = Response::builder()
        .status(status)
        .header("Request-ID", format!("{request_hex}-0"))
        .header(CONTENT_LANGUAGE, "zh-CN");
    if let Some(content_type) = content_type {
        response = response.header(CONTENT_TYPE, content_type);
    }
    if signed {
        let signature = match shared.auth.sign(&body, now_ms().div_euclid(1000)) {
            Ok(signature) => signature,
            Err(error) => {
                tracing::warn!(%error, "simulator answer not signed");
                return error_response(&request_hex, &ApiError::system_error());
            }
        };
        for (name, value) in signature.pairs() {
            response = response.header(name, value);
        }
    }
    response
        .body(Full::new(body))
        .expect("status and headers are valid")
}

fn error_response(request_hex: &str, error: &ApiError) -> Response<Full<Bytes>> {
    tracing::debug!(status = error.status, code = %error.code, message = %error.message, "simulator error answer");
    Response::builder()
        .status(error.status)
        .header(
            "Request-ID",
            format!("{request_hex}-{}", error.internal_code),
        )
        .header(CONTENT_LANGUAGE, "zh-CN")
        .header(CONTENT_TYPE, JSON)
        .body(Full::new(Bytes::from(error.body())))
        .expect("status and headers are valid")
}

/// The first value of `name` in a raw query string, percent-decoded.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .find(|(key, _)| *key == name)
        .and_then(|(_, value)| percent_decode(value))
}

/// `%XX` escapes decoded; `None` for a broken escape or non-UTF-8 result.
pub fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = std::str::from_utf8(bytes.get(index + 1..index + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
#[path = "routes_tests.rs"]
mod tests;
