//! Reading a request body with a hard size limit, as bytes: each dialect decides how to
//! parse it and how to say it was too large.

use axum::body::{Body, Bytes};
use http_body_util::{BodyExt, Limited};

#[derive(Debug)]
pub enum BodyError {
    TooLarge,
    Unreadable(String),
}

pub async fn read_limited(body: Body, limit: usize) -> Result<Bytes, BodyError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(BodyError::TooLarge),
        Err(e) => Err(BodyError::Unreadable(e.to_string())),
    }
}
