//! Reading a request body with a hard size limit, as bytes: each dialect decides how to
//! parse it and how to say it was too large.

use axum::body::{Body, Bytes};
use http_body_util::BodyExt;

#[derive(Debug)]
pub enum BodyError {
    TooLarge,
    Unreadable(String),
}

/// How much of an oversized body is read and dropped before the refusal is sent. A client
/// still writing its body when the server answers and closes gets a reset instead of the
/// answer (it cannot read the 413); reading on lets it finish and read why. Beyond this
/// the connection is closed regardless.
const DRAIN_LIMIT: usize = 16 * 1024 * 1024;

pub async fn read_limited(body: Body, limit: usize) -> Result<Bytes, BodyError> {
    let mut body = body;
    let mut kept: Vec<u8> = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Unreadable(e.to_string()))?;
        let Ok(data) = frame.into_data() else { continue };
        seen += data.len();
        if seen > DRAIN_LIMIT {
            return Err(BodyError::TooLarge);
        }
        if seen <= limit {
            kept.extend_from_slice(&data);
        }
    }
    match seen > limit {
        true => Err(BodyError::TooLarge),
        false => Ok(Bytes::from(kept)),
    }
}
