//! The aliyun dialect (being built).

use super::DialectRequest;
use crate::ApiState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

pub async fn handle(_state: &ApiState, _request: DialectRequest) -> Response {
    (StatusCode::NOT_IMPLEMENTED, "this dialect is not served yet\n").into_response()
}
