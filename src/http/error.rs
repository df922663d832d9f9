//! The one place typed errors become API errors: status, code, message.
//!
//! Body: `{"error":{"code","message","request_id"}}`. 429 and 503 carry
//! `Retry-After`.

use crate::http::auth::AuthError;
use crate::journal::JournalError;
use crate::payments::PaymentError;
use crate::sale::SaleError;
use http::StatusCode;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub retry_after_seconds: Option<u32>,
    /// For 405: the method the path accepts (sent as `Allow`).
    pub allow: Option<&'static str>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after_seconds: None,
            allow: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "INVALID_REQUEST", message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "FORBIDDEN", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }

    pub fn method_not_allowed(allowed: &'static str) -> ApiError {
        ApiError {
            allow: Some(allowed),
            ..ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "INVALID_REQUEST",
                format!("method not allowed; use {allowed}"),
            )
        }
    }

    pub fn payload_too_large(limit_bytes: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            format!("request body exceeds {limit_bytes} bytes"),
        )
    }

    pub fn overloaded(message: impl Into<String>, retry_after_seconds: u32) -> ApiError {
        ApiError {
            retry_after_seconds: Some(retry_after_seconds),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "OVERLOADED", message)
        }
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", message)
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", error.to_string())
    }
}

impl From<JournalError> for ApiError {
    /// The change is in memory but not durable: nothing was acknowledged,
    /// and the node refuses further changes (see `/readyz`).
    fn from(error: JournalError) -> ApiError {
        tracing::error!(%error, "a change could not be made durable");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "the change could not be made durable; it was not applied",
        )
    }
}

impl From<PaymentError> for ApiError {
    fn from(error: PaymentError) -> ApiError {
        match error {
            PaymentError::Sale(error) => error.into(),
            PaymentError::Journal(error) => error.into(),
            PaymentError::Pay(error) => {
                tracing::warn!(%error, "WeChat Pay call failed");
                ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "PAYMENT_UNAVAILABLE",
                    format!("WeChat Pay could not be reached or refused: {error}"),
                )
            }
        }
    }
}

impl From<crate::cluster::ClusterError> for ApiError {
    fn from(error: crate::cluster::ClusterError) -> ApiError {
        use crate::cluster::ClusterError;
        match error {
            ClusterError::Sale(error) => error.into(),
            ClusterError::Journal(error) => error.into(),
            ClusterError::Redis(error) => {
                tracing::warn!(%error, "a cluster call to Redis failed");
                ApiError::overloaded(
                    format!("the cluster's Redis did not serve this: {error}"),
                    1,
                )
            }
            ClusterError::Reconcile(message) => {
                tracing::error!(%message, "cluster leases not reconciled");
                ApiError::overloaded(format!("leases not reconciled with Redis: {message}"), 1)
            }
        }
    }
}

impl From<SaleError> for ApiError {
    fn from(error: SaleError) -> ApiError {
        let message = error.to_string();
        let (status, code) = match error {
            SaleError::Invalid { .. } => (StatusCode::BAD_REQUEST, "INVALID_REQUEST"),
            SaleError::NotFound(_) => (StatusCode::NOT_FOUND, "NOT_FOUND"),
            SaleError::SaleNotLive { .. } => (StatusCode::CONFLICT, "SALE_NOT_LIVE"),
            SaleError::SoldOut | SaleError::InsufficientStock { .. } => {
                (StatusCode::CONFLICT, "SOLD_OUT")
            }
            SaleError::LimitExceeded { .. } => (StatusCode::CONFLICT, "LIMIT_EXCEEDED"),
            SaleError::InvalidState(_)
            | SaleError::IdempotencyInProgress
            | SaleError::PaymentMismatch(_) => (StatusCode::CONFLICT, "INVALID_STATE"),
            SaleError::IdempotencyConflict => {
                (StatusCode::UNPROCESSABLE_ENTITY, "IDEMPOTENCY_CONFLICT")
            }
            SaleError::CapacityReached(_) => (StatusCode::SERVICE_UNAVAILABLE, "OVERLOADED"),
            SaleError::Replay(_) => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL"),
        };
        let retry_after_seconds = (status == StatusCode::SERVICE_UNAVAILABLE).then_some(60);
        ApiError {
            retry_after_seconds,
            ..ApiError::new(status, code, message)
        }
    }
}
