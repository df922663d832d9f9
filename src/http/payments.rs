//! Payment routes: a buyer's `POST /v1/orders/{id}/pay`, WeChat Pay's
//! `POST /v1/payments/wechat/notify`, and an admin's
//! `POST /admin/v1/orders/{id}/refund`. Thin: the work is in
//! [`crate::payments`].

use crate::http::auth::Role;
use crate::http::body::{bytes_response, json_response, read_body, ResponseBody};
use crate::http::error::ApiError;
use crate::http::storefront::check_order_id;
use crate::http::AppState;
use crate::metrics::PAYMENT_NOTIFICATIONS_TOTAL;
use crate::pay::notify::NOTIFICATION_BYTES_MAX;
use crate::payments::{is_signature_failure, NotifyRejection};
use http::{HeaderMap, Response, StatusCode};
use hyper::body::Incoming;
use std::sync::Arc;

pub async fn pay_order(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    order_id: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    let buyer = state.buyer(headers)?;
    check_order_id(order_id)?;
    let params = state.payments.pay(&buyer, order_id).await?;
    Ok(json_response(StatusCode::OK, &params))
}

/// WeChat Pay judges the answer by its status: 204 is success, anything
/// else makes it send the notification again later, with the body
/// `{"code":"FAIL","message"}` the protocol asks for.
pub async fn wechat_notify(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    body: Incoming,
) -> Result<Response<ResponseBody>, ApiError> {
    let bytes = match read_body(headers, body, NOTIFICATION_BYTES_MAX).await {
        Ok(bytes) => bytes,
        Err(error) => {
            metrics::counter!(PAYMENT_NOTIFICATIONS_TOTAL, "outcome" => "unreadable").increment(1);
            return Ok(fail(error.status, &error.message));
        }
    };
    match state.payments.notify(headers, &bytes).await {
        Ok(()) => {
            let mut response = Response::new(ResponseBody::Full(None));
            *response.status_mut() = StatusCode::NO_CONTENT;
            Ok(response)
        }
        Err(rejection) => {
            let status = match &rejection {
                NotifyRejection::Invalid(error) if is_signature_failure(error) => {
                    StatusCode::UNAUTHORIZED
                }
                NotifyRejection::Invalid(_) | NotifyRejection::Mismatch { .. } => {
                    StatusCode::BAD_REQUEST
                }
                NotifyRejection::Unavailable(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            Ok(fail(status, &rejection.to_string()))
        }
    }
}

fn fail(status: StatusCode, message: &str) -> Response<ResponseBody> {
    let body = serde_json::json!({ "code": "FAIL", "message": message });
    bytes_response(status, "application/json", body.to_string().into())
}

pub async fn refund_order(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    order_id: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    state.admin(headers, Role::Admin)?;
    check_order_id(order_id)?;
    let order = state.payments.refund(order_id).await?;
    Ok(json_response(StatusCode::OK, &order))
}
