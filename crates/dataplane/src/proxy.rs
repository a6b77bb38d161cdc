//! What a listener does with a connection once it is accepted (and, for TLS listeners,
//! once the handshake is done): reverse-proxy HTTP to a backend, or stream bytes.

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri, Version};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::backends::BackendSet;
use crate::upstream::{self, UpstreamError};
use crate::Shared;

pub(crate) type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// The scheme the client spoke, for `X-Forwarded-Proto`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Headers that describe one hop and must not be forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 8] =
    ["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "http2-settings"];

/// Forwards one request to one of `backends` and relays the answer; never fails: every
/// problem becomes a status code the client can act on.
pub(crate) async fn forward_request(
    shared: &Shared,
    backends: Option<Arc<BackendSet>>,
    mut request: Request<Incoming>,
    client: SocketAddr,
    scheme: Scheme,
) -> Response<ProxyBody> {
    let Some(backends) = backends.filter(|b| !b.is_empty()) else {
        return plain_response(StatusCode::SERVICE_UNAVAILABLE, "no healthy backend\n");
    };
    if let Err(status) = prepare_request(&mut request, client, scheme) {
        return plain_response(status, "bad request\n");
    }
    match shared.http_pool.send(&backends, &shared.health, request).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, body.boxed())
        }
        Err(UpstreamError::NoHealthyBackend) => plain_response(StatusCode::SERVICE_UNAVAILABLE, "no healthy backend\n"),
        Err(error) => {
            tracing::warn!(%error, "proxying a request failed");
            plain_response(StatusCode::BAD_GATEWAY, "bad gateway\n")
        }
    }
}

/// Turns the client's request (HTTP/1.x or HTTP/2) into the HTTP/1.1 request the backend
/// gets: origin-form target, a Host header, no hop-by-hop headers, forwarding headers.
fn prepare_request<B>(request: &mut Request<B>, client: SocketAddr, scheme: Scheme) -> Result<(), StatusCode> {
    let authority = request.uri().authority().map(|a| a.as_str().to_owned());
    let target = request.uri().path_and_query().map(|pq| pq.as_str()).unwrap_or("/");
    let target: Uri = target.parse().map_err(|_| StatusCode::BAD_REQUEST)?;
    *request.uri_mut() = target;
    *request.version_mut() = Version::HTTP_11;

    let headers = request.headers_mut();
    strip_hop_by_hop(headers);
    // HTTP/2 carries the host as the :authority pseudo-header. An HTTP/1.0 request may
    // have neither; it goes on without one and the backend decides.
    if let (false, Some(host)) = (headers.contains_key(header::HOST), authority) {
        let host = HeaderValue::from_str(&host).map_err(|_| StatusCode::BAD_REQUEST)?;
        headers.insert(header::HOST, host);
    }
    // HTTP/2 may split cookies over several fields; HTTP/1.1 wants one (RFC 9113 §8.2.3).
    let cookies: Vec<HeaderValue> = headers.get_all(header::COOKIE).iter().cloned().collect();
    if cookies.len() > 1 {
        let joined = join_values(&cookies, "; ");
        headers.insert(header::COOKIE, joined.ok_or(StatusCode::BAD_REQUEST)?);
    }

    let client_ip = client.ip().to_canonical().to_string();
    let mut chain: Vec<HeaderValue> = headers.get_all(&X_FORWARDED_FOR).iter().cloned().collect();
    chain.push(HeaderValue::from_str(&client_ip).map_err(|_| StatusCode::BAD_REQUEST)?);
    let forwarded_for = join_values(&chain, ", ").ok_or(StatusCode::BAD_REQUEST)?;
    headers.insert(X_FORWARDED_FOR.clone(), forwarded_for);
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(scheme.as_str()));
    Ok(())
}

fn join_values(values: &[HeaderValue], separator: &str) -> Option<HeaderValue> {
    let mut joined: Vec<u8> = Vec::new();
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            joined.extend_from_slice(separator.as_bytes());
        }
        joined.extend_from_slice(value.as_bytes());
    }
    HeaderValue::from_bytes(&joined).ok()
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Headers the Connection header names are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// The response with `guard` kept alive until its body is done (or dropped).
pub(crate) fn holding<G: Send + Sync + 'static>(response: Response<ProxyBody>, guard: G) -> Response<ProxyBody> {
    response.map(|body| {
        body.map_frame(move |frame| {
            let _kept = &guard;
            frame
        })
        .boxed()
    })
}

pub(crate) fn plain_response(status: StatusCode, body: &'static str) -> Response<ProxyBody> {
    let body = Full::new(Bytes::from_static(body.as_bytes())).map_err(|never| match never {}).boxed();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

/// Streams bytes between the client and a backend until either side closes. With no
/// backend reachable the client connection is simply closed.
pub(crate) async fn forward_stream<S>(shared: &Shared, backends: Option<Arc<BackendSet>>, mut client: S)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let connected = match backends {
        Some(backends) => upstream::connect(&backends, &shared.health).await,
        None => None,
    };
    let Some((address, mut backend)) = connected else {
        tracing::debug!("no healthy backend; closing the client connection");
        // A clean close (TLS close_notify) rather than a reset.
        let _ = client.shutdown().await;
        return;
    };
    if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut backend).await {
        tracing::debug!(backend = address, %error, "stream forwarding ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prepared(request: Request<()>, scheme: Scheme) -> Request<()> {
        let mut request = request;
        let client: SocketAddr = "[::ffff:192.0.2.9]:4000".parse().expect("addr");
        prepare_request(&mut request, client, scheme).expect("valid request");
        request
    }

    #[test]
    fn forwarding_headers_are_appended_and_hop_by_hop_ones_dropped() {
        let request = Request::get("/a?b=c")
            .header("host", "site.test")
            .header("x-forwarded-for", "198.51.100.1")
            .header("x-forwarded-proto", "gopher")
            .header("connection", "keep-alive, x-secret-hop")
            .header("x-secret-hop", "1")
            .header("te", "trailers")
            .header("upgrade", "websocket")
            .body(())
            .expect("request");
        let request = prepared(request, Scheme::Https);
        let headers = request.headers();
        assert_eq!(headers["x-forwarded-for"], "198.51.100.1, 192.0.2.9");
        assert_eq!(headers["x-forwarded-proto"], "https");
        assert_eq!(headers["host"], "site.test");
        for gone in ["connection", "x-secret-hop", "te", "upgrade"] {
            assert!(!headers.contains_key(gone), "{gone} forwarded");
        }
        assert_eq!(request.uri(), "/a?b=c");
        assert_eq!(request.version(), Version::HTTP_11);
    }

    #[test]
    fn http2_request_gets_host_from_authority_and_one_cookie_header() {
        let request = Request::get("https://site.test:8443/x")
            .version(Version::HTTP_2)
            .header("cookie", "a=1")
            .header("cookie", "b=2")
            .body(())
            .expect("request");
        let request = prepared(request, Scheme::Http);
        let headers = request.headers();
        assert_eq!(headers["host"], "site.test:8443");
        assert_eq!(headers.get_all("cookie").iter().count(), 1);
        assert_eq!(headers["cookie"], "a=1; b=2");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(request.uri(), "/x");
    }

    #[test]
    fn request_without_any_host_goes_on_without_one() {
        let request = prepared(Request::get("/x").version(Version::HTTP_10).body(()).expect("request"), Scheme::Http);
        assert!(!request.headers().contains_key("host"));
        assert_eq!(request.headers()["x-forwarded-for"], "192.0.2.9");
    }
}
