//! What certbind does with a request's bytes before anything reaches the store, as one
//! function per layer for the fuzz targets (`fuzz/`) and their corpus regression test:
//! telling the dialect apart, reading its signature, checking it, and parsing its
//! parameters. Nothing here touches a store; every outcome (an answer or an error in the
//! dialect's terms) is fine, a panic is the bug.

use super::{aliyun, classify, tencent, ucloud, Dialect, DialectRequest};
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};

/// The secret every fuzzed signature is checked against.
const SECRET: &str = "fuzz-secret";

/// A request from raw parts; `None` when HTTP itself would not have delivered it.
pub fn request(method: &str, uri: &str, headers: &[(&str, &[u8])], body: &[u8]) -> Option<DialectRequest> {
    let method = Method::from_bytes(method.as_bytes()).ok()?;
    let uri: Uri = uri.parse().ok()?;
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(HeaderName::from_bytes(name.as_bytes()).ok()?, HeaderValue::from_bytes(value).ok()?);
    }
    Some(DialectRequest { method, uri, headers: map, body: Bytes::copy_from_slice(body), peer: None })
}

/// Classifies the request and runs its dialect's signature reading, checking and
/// parameter parsing; returns the dialect found.
pub fn parse(request: &DialectRequest) -> Option<Dialect> {
    let dialect = classify(request)?;
    match dialect {
        Dialect::Tencent => parse_tencent(request),
        Dialect::Aliyun => parse_aliyun(request),
        Dialect::Ucloud => parse_ucloud(request),
    }
    Some(dialect)
}

fn parse_tencent(request: &DialectRequest) {
    let Ok(incoming) = tencent::signature::read(request) else { return };
    let _ = incoming.verify(SECRET);
    let _ = incoming.replay_identity();
    let Ok(fields) = incoming.params(request) else { return };
    let params = tencent::params::Params(fields);
    for name in params.0.keys().cloned().collect::<Vec<_>>() {
        let _ = params.str(&name);
        let _ = params.int(&name);
        let _ = params.bool(&name);
        let _ = params.str_list(&name);
        let _ = params.int_list(&name);
        let _ = params.obj_list(&name);
    }
}

fn parse_aliyun(request: &DialectRequest) {
    let query = request.query_pairs();
    let form = request.form_pairs();
    if let Ok(claim) = aliyun::signature::claim(request, &query) {
        let _ = aliyun::signature::verify(&claim, request, &query, &form, SECRET);
    }
    let params = aliyun::params::Params::new(query.into_iter().chain(form));
    let _ = params.dry_run();
    let _ = params.client_token();
    let _ = params.bool("DryRun");
}

fn parse_ucloud(request: &DialectRequest) {
    let params = ucloud::params::Params::from_request(request);
    let _ = ucloud::signature::sign(params.all(), SECRET);
}
