//! The one place where failures become HTTP. Every error has a stable code and a sentence a
//! person can act on; causes go to the log (never secrets or patient data).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tillit_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("authentication required")]
    Unauthenticated,
    #[error("wrong username, password or code")]
    BadCredentials,
    #[error("too many attempts; try again in {retry_after} seconds")]
    Throttled { retry_after: u64 },
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("not found")]
    NotFound,
    #[error("request body is larger than the limit of {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("the form has expired or did not come from this site; reload the page and try again")]
    Csrf,
    #[error("the service is temporarily unavailable")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::Unauthenticated | AppError::BadCredentials => StatusCode::UNAUTHORIZED,
            AppError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Forbidden(_) | AppError::Csrf => StatusCode::FORBIDDEN,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            AppError::Unauthenticated => "TIL-AUTH-001",
            AppError::BadCredentials => "TIL-AUTH-002",
            AppError::Throttled { .. } => "TIL-AUTH-003",
            AppError::Csrf => "TIL-AUTH-004",
            AppError::Forbidden(_) => "TIL-AUTHZ-001",
            AppError::BadRequest(_) => "TIL-REQ-001",
            AppError::NotFound => "TIL-REQ-002",
            AppError::PayloadTooLarge(_) => "TIL-REQ-003",
            AppError::UnsupportedMediaType(_) => "TIL-REQ-004",
            AppError::Unavailable(_) => "TIL-SYS-001",
            AppError::Internal(_) => "TIL-SYS-002",
        }
    }

    /// Logs the cause (server side only) for errors the client is not told about.
    fn log(&self) {
        match self {
            AppError::Internal(cause) => {
                tracing::error!(code = self.code(), cause, "request failed")
            }
            AppError::Unavailable(cause) => {
                tracing::warn!(code = self.code(), cause, "request failed")
            }
            _ => {}
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(_) => AppError::NotFound,
            StoreError::Unavailable(m) => AppError::Unavailable(m),
            other => AppError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        self.log();
        let body = serde_json::json!({
            "error": { "code": self.code(), "message": self.to_string() }
        });
        let mut resp = (self.status(), axum::Json(body)).into_response();
        if let AppError::Throttled { retry_after } = self
            && let Ok(v) = HeaderValue::from_str(&retry_after.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if matches!(self, AppError::Unauthenticated) {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tillit\""),
            );
        }
        resp
    }
}

pub type AppResult<T> = Result<T, AppError>;
