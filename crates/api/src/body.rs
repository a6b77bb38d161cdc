//! Reading a request body with a hard size limit, as bytes: each dialect decides how to
//! parse it and how to say it was too large.

use axum::body::{Body, Bytes};
use http_body_util::BodyExt;

#[derive(Debug)]
pub enum BodyError {
    /// Over the limit. Kept are the body's first `limit` bytes and its last
    /// [`TAIL_KEPT`]: enough to tell which dialect is speaking (an SDK may put its common
    /// parameters first or last), so it is refused in that dialect's own envelope.
    TooLarge {
        head: Bytes,
        tail: Bytes,
    },
    Unreadable(String),
}

/// How much of an oversized body is read and dropped before the refusal is sent. A client
/// still writing its body when the server answers and closes gets a reset instead of the
/// answer (it cannot read the 413); reading on lets it finish and read why. Beyond this
/// the connection is closed regardless.
const DRAIN_LIMIT: usize = 16 * 1024 * 1024;

/// How much of an oversized body's end is kept.
pub const TAIL_KEPT: usize = 8 * 1024;

pub async fn read_limited(body: Body, limit: usize) -> Result<Bytes, BodyError> {
    let mut body = body;
    let mut kept: Vec<u8> = Vec::new();
    let mut tail: Vec<u8> = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Unreadable(e.to_string()))?;
        let Ok(data) = frame.into_data() else { continue };
        seen += data.len();
        if seen > DRAIN_LIMIT {
            return Err(BodyError::TooLarge { head: Bytes::from(kept), tail: Bytes::from(tail) });
        }
        let room = limit.saturating_sub(kept.len());
        kept.extend_from_slice(&data[..data.len().min(room)]);
        if seen > limit {
            tail.extend_from_slice(&data[data.len().min(room)..]);
            if tail.len() > TAIL_KEPT {
                tail.drain(..tail.len() - TAIL_KEPT);
            }
        }
    }
    match seen > limit {
        true => Err(BodyError::TooLarge { head: Bytes::from(kept), tail: Bytes::from(tail) }),
        false => Ok(Bytes::from(kept)),
    }
}
