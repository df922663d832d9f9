//! The control plane under `/sim/v1/`: unsigned test plumbing so a test or
//! the load test can drive a simulator in another process — the buyer's
//! payment, faults, the delivery log, orders, refunds and planted payments.
//! It is no part of WeChat Pay's protocol and has no authentication: bind
//! the simulator to a loopback address.
//!
//! | method and path | body | answer |
//! | --- | --- | --- |
//! | `POST /sim/v1/pay` | `{"prepay_id"}` or `{"out_trade_no"}` | 200 transaction; 404 unknown; 409 refused |
//! | `PUT /sim/v1/faults` | `Faults` (missing keys = off) | 200 the faults in force; 400 invalid |
//! | `GET /sim/v1/faults` | | 200 the faults in force |
//! | `GET /sim/v1/deliveries` | | 200 every notification attempt |
//! | `GET /sim/v1/orders/{out_trade_no}` | | 200 transaction; 404 |
//! | `GET /sim/v1/refunds/{out_refund_no}` | | 200 refund; 404 |
//! | `POST /sim/v1/planted-payments` | `PlantedPayment` | 201 transaction; 409 number taken |
//!
//! Errors are `{"code","message"}` JSON.

use super::faults::Faults;
use super::routes::percent_decode;
use super::{PlantedPayment, Shared, SimError};
use crate::clock::now_ms;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::request::Parts;
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use serde::{Deserialize, Serialize};
use serde_json::json;

pub const PREFIX: &str = "/sim/";

/// `POST /sim/v1/pay`: exactly one of the two.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PayRequest {
    prepay_id: Option<String>,
    out_trade_no: Option<String>,
}

pub fn handle(shared: &Shared, parts: &Parts, body: &[u8]) -> Response<Full<Bytes>> {
    let path = parts.uri.path();
    let Some(rest) = path.strip_prefix("/sim/v1/") else {
        return error(StatusCode::NOT_FOUND, "NOT_FOUND", path);
    };
    let segments: Vec<&str> = rest.split('/').collect();
    match (&parts.method, segments.as_slice()) {
        (&Method::POST, ["pay"]) => pay(shared, body),
        (&Method::PUT, ["faults"]) => set_faults(shared, body),
        (&Method::GET, ["faults"]) => ok(StatusCode::OK, &shared.faults()),
        (&Method::GET, ["deliveries"]) => ok(StatusCode::OK, &shared.notifier.deliveries()),
        (&Method::GET, ["orders", number]) => {
            let number = percent_decode(number).unwrap_or_default();
            match shared.lock_ledger().transaction(&number, now_ms()) {
                Some(transaction) => ok(StatusCode::OK, &transaction),
                None => error(StatusCode::NOT_FOUND, "ORDER_NOT_EXIST", &number),
            }
        }
        (&Method::GET, ["refunds", number]) => {
            let number = percent_decode(number).unwrap_or_default();
            match shared.lock_ledger().refund_by_number(&number) {
                Some(refund) => ok(StatusCode::OK, &refund),
                None => error(StatusCode::NOT_FOUND, "RESOURCE_NOT_EXISTS", &number),
            }
        }
        (&Method::POST, ["planted-payments"]) => plant(shared, body),
        _ => error(StatusCode::NOT_FOUND, "NOT_FOUND", path),
    }
}

fn pay(shared: &Shared, body: &[u8]) -> Response<Full<Bytes>> {
    let request: PayRequest = match serde_json::from_slice(body) {
        Ok(request) => request,
        Err(problem) => return error(StatusCode::BAD_REQUEST, "PARAM_ERROR", &problem.to_string()),
    };
    let key = match (request.prepay_id, request.out_trade_no) {
        (Some(key), None) | (None, Some(key)) => key,
        _ => {
            let message = "give exactly one of prepay_id and out_trade_no";
            return error(StatusCode::BAD_REQUEST, "PARAM_ERROR", message);
        }
    };
    match shared.pay(&key) {
        Ok(transaction) => ok(StatusCode::OK, &transaction),
        Err(refused) => sim_error(&refused),
    }
}

fn set_faults(shared: &Shared, body: &[u8]) -> Response<Full<Bytes>> {
    let faults: Faults = match serde_json::from_slice(body) {
        Ok(faults) => faults,
        Err(problem) => return error(StatusCode::BAD_REQUEST, "PARAM_ERROR", &problem.to_string()),
    };
    if let Err(problem) = faults.validate() {
        return error(StatusCode::BAD_REQUEST, "PARAM_ERROR", &problem);
    }
    *shared.lock_faults() = faults;
    ok(StatusCode::OK, &shared.faults())
}

fn plant(shared: &Shared, body: &[u8]) -> Response<Full<Bytes>> {
    let planted: PlantedPayment = match serde_json::from_slice(body) {
        Ok(planted) => planted,
        Err(problem) => return error(StatusCode::BAD_REQUEST, "PARAM_ERROR", &problem.to_string()),
    };
    match shared.lock_ledger().plant(&planted, now_ms()) {
        Ok(transaction) => ok(StatusCode::CREATED, &transaction),
        Err(refused) => sim_error(&refused),
    }
}

fn sim_error(refused: &SimError) -> Response<Full<Bytes>> {
    let status = match refused {
        SimError::UnknownOrder(_) => StatusCode::NOT_FOUND,
        SimError::InvalidPlant(_) | SimError::Config(_) => StatusCode::BAD_REQUEST,
        SimError::Full(_) | SimError::Listen { .. } => StatusCode::SERVICE_UNAVAILABLE,
        SimError::OrderClosed(_)
        | SimError::AlreadyPaid(_)
        | SimError::PaymentDeadlinePassed(_)
        | SimError::PrepayExpired(_)
        | SimError::OrderExists(_) => StatusCode::CONFLICT,
    };
    error(status, refused.code(), &refused.to_string())
}

fn ok(status: StatusCode, value: &impl Serialize) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(value).expect("control answers serialise");
    json_response(status, body)
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(&json!({"code": code, "message": message}))
        .expect("an error body serialises");
    json_response(status, body)
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("status and headers are valid")
}
