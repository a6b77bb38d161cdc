//! Proxying through real listeners to real backends started by the test.

mod common;

use certbind_core::model::Protocol;
use common::*;
use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An HTTP/1.1 backend answering with what it received, one `key=value` per line.
async fn echo_http_backend(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind((LOCALHOST, 0)).await.expect("bind backend");
    let address = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: Request<Incoming>| async move {
                    let header = |name: &str| {
                        request.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned()
                    };
                    let body = format!(
                        "backend={name}\nxff={}\nproto={}\nhost={}\nversion={:?}\ntarget={}\n",
                        header("x-forwarded-for"),
                        header("x-forwarded-proto"),
                        header("host"),
                        request.version(),
                        request.uri(),
                    );
                    Ok::<_, Infallible>(Response::new(http_body_util::Full::new(Bytes::from(body))))
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), service).await;
            });
        }
    });
    address
}

/// A TCP backend that echoes every byte.
async fn echo_tcp_backend() -> SocketAddr {
    let listener = TcpListener::bind((LOCALHOST, 0)).await.expect("bind backend");
    let address = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let (mut read, mut write) = tcp.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    address
}

/// An address where nothing listens: connections are refused.
fn dead_backend() -> String {
    format!("127.0.0.1:{}", free_port())
}

async fn https_get(pki: &Pki, port: u16, alpn: &[u8], path: &str) -> (StatusCode, String, Option<Vec<u8>>) {
    let mut options = ClientOptions::sni("proxy.test");
    options.alpn = vec![alpn.to_vec()];
    let tls = tls_connect(pki, &options, port).await.expect("handshake");
    let negotiated = tls.get_ref().1.alpn_protocol().map(|p| p.to_vec());
    let io = TokioIo::new(tls);
    let response = if alpn == b"h2" {
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await.expect("h2 handshake");
        tokio::spawn(connection);
        let request = Request::get(format!("https://proxy.test{path}")).body(Empty::<Bytes>::new()).expect("request");
        sender.send_request(request).await.expect("h2 response")
    } else {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await.expect("h1 handshake");
        tokio::spawn(connection);
        let request = Request::get(path)
            .header("host", "proxy.test")
            .header("x-forwarded-for", "192.0.2.7")
            .body(Empty::<Bytes>::new())
            .expect("request");
        sender.send_request(request).await.expect("h1 response")
    };
    let status = response.status();
    let body = response.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned(), negotiated)
}

async fn https_listener(h: &Harness, pki: &Pki, id: i64, protocol: Protocol, backends: Vec<String>) -> u16 {
    let cert = pki.leaf(&["proxy.test"]);
    let port = free_port();
    h.commit(|e| {
        let mut l = listener(id, protocol, port);
        if protocol.is_tls() {
            l.default_cert = Some(e.add_cert(&cert));
        }
        l.backends = backends.into_iter().map(|a| backend(id, a, 1)).collect();
        e.listeners.push(l);
    })
    .await;
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_proxies_http1_and_http2_with_forwarding_headers() {
    let pki = Pki::new();
    let backend = echo_http_backend("one").await;
    let h = Harness::start().await;
    let port = https_listener(&h, &pki, 1, Protocol::Https, vec![backend.to_string()]).await;

    let (status, body, alpn) = https_get(&pki, port, b"http/1.1", "/h1?x=1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert!(body.contains("xff=192.0.2.7, 127.0.0.1\n"), "{body}");
    assert!(body.contains("proto=https\n"), "{body}");
    assert!(body.contains("host=proxy.test\n"), "{body}");
    assert!(body.contains("target=/h1?x=1\n"), "{body}");

    let (status, body, alpn) = https_get(&pki, port, b"h2", "/h2").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    assert!(body.contains("xff=127.0.0.1\n"), "{body}");
    assert!(body.contains("proto=https\n"), "{body}");
    // The backend speaks HTTP/1.1 and gets the HTTP/2 :authority as Host.
    assert!(body.contains("host=proxy.test\n"), "{body}");
    assert!(body.contains("version=HTTP/1.1\n"), "{body}");
    assert!(body.contains("target=/h2\n"), "{body}");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_listener_proxies_in_the_clear() {
    let pki = Pki::new();
    let backend = echo_http_backend("plain").await;
    let h = Harness::start().await;
    let port = https_listener(&h, &pki, 1, Protocol::Http, vec![backend.to_string()]).await;
    let tcp = TcpStream::connect((LOCALHOST, port)).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.expect("handshake");
    tokio::spawn(connection);
    // Two requests on one connection: keep-alive on both sides.
    for _ in 0..2 {
        sender.ready().await.expect("connection reusable");
        let request = Request::get("/plain").header("host", "plain.test").body(Empty::<Bytes>::new()).expect("request");
        let response = sender.send_request(request).await.expect("response");
        assert_eq!(response.status(), StatusCode::OK);
        let body = response.into_body().collect().await.expect("body").to_bytes();
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains("proto=http\n"), "{body}");
        assert!(body.contains("xff=127.0.0.1\n"), "{body}");
    }
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_round_robin_by_weight() {
    let pki = Pki::new();
    let heavy = echo_http_backend("heavy").await;
    let light = echo_http_backend("light").await;
    let h = Harness::start().await;
    let cert = pki.leaf(&["proxy.test"]);
    let port = free_port();
    h.commit(|e| {
        let mut l = listener(1, Protocol::Https, port);
        l.default_cert = Some(e.add_cert(&cert));
        l.backends = vec![backend(1, heavy.to_string(), 3), backend(1, light.to_string(), 1)];
        e.listeners.push(l);
    })
    .await;
    let mut heavy_count = 0;
    for _ in 0..8 {
        let (status, body, _) = https_get(&pki, port, b"http/1.1", "/").await;
        assert_eq!(status, StatusCode::OK);
        if body.contains("backend=heavy") {
            heavy_count += 1;
        }
    }
    assert_eq!(heavy_count, 6);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_without_backends_completes_the_handshake_then_answers_503() {
    let pki = Pki::new();
    let h = Harness::start().await;
    let port = https_listener(&h, &pki, 1, Protocol::Https, Vec::new()).await;
    for alpn in [&b"http/1.1"[..], b"h2"] {
        let (status, _, _) = https_get(&pki, port, alpn, "/").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }
    // Backends that refuse connections count as none.
    let port = https_listener(&h, &pki, 2, Protocol::Https, vec![dead_backend(), dead_backend()]).await;
    let (status, _, _) = https_get(&pki, port, b"http/1.1", "/").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_that_refuses_is_skipped() {
    let pki = Pki::new();
    let alive = echo_http_backend("alive").await;
    let h = Harness::start().await;
    let port = https_listener(&h, &pki, 1, Protocol::Https, vec![dead_backend(), alive.to_string()]).await;
    for _ in 0..6 {
        let (status, body, _) = https_get(&pki, port, b"h2", "/").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.contains("backend=alive"));
    }
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcpssl_terminates_tls_and_streams_to_the_backend() {
    let pki = Pki::new();
    let backend = echo_tcp_backend().await;
    let h = Harness::start().await;
    let port = https_listener(&h, &pki, 1, Protocol::TcpSsl, vec![dead_backend(), backend.to_string()]).await;
    for _ in 0..3 {
        let mut tls = tls_connect(&pki, &ClientOptions::sni("proxy.test"), port).await.expect("handshake");
        assert_eq!(tls.get_ref().1.alpn_protocol(), None);
        tls.write_all(b"ping over tls").await.expect("write");
        let mut echoed = [0u8; 13];
        tls.read_exact(&mut echoed).await.expect("echo");
        assert_eq!(&echoed, b"ping over tls");
    }
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcpssl_without_backend_closes_after_the_handshake() {
    let pki = Pki::new();
    let h = Harness::start().await;
    let port = https_listener(&h, &pki, 1, Protocol::TcpSsl, vec![dead_backend()]).await;
    let mut tls = tls_connect(&pki, &ClientOptions::sni("proxy.test"), port).await.expect("handshake");
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buf)).await.expect("closed in time");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_forwards_bytes_and_counts_them() {
    let pki = Pki::new();
    let backend = echo_tcp_backend().await;
    let h = Harness::start().await;
    let port = https_listener(&h, &pki, 4, Protocol::Tcp, vec![backend.to_string()]).await;
    let mut tcp = TcpStream::connect((LOCALHOST, port)).await.expect("connect");
    tcp.write_all(b"hello").await.expect("write");
    let mut echoed = [0u8; 5];
    tcp.read_exact(&mut echoed).await.expect("echo");
    assert_eq!(&echoed, b"hello");
    drop(tcp);
    eventually("bytes counted", || {
        let text = h.dataplane.metrics_text();
        text.contains("certbind_listener_bytes_in_total{listener=\"lsn-4\"} 5")
            && text.contains("certbind_listener_bytes_out_total{listener=\"lsn-4\"} 5")
            && text.contains("certbind_listener_active_connections{listener=\"lsn-4\"} 0")
    })
    .await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_accepting_and_drains_within_the_timeout() {
    let pki = Pki::new();
    let backend = echo_tcp_backend().await;
    let drain = Duration::from_millis(800);
    let h = Harness::start_with(drain).await;
    let port = https_listener(&h, &pki, 1, Protocol::Tcp, vec![backend.to_string()]).await;
    let mut held = TcpStream::connect((LOCALHOST, port)).await.expect("connect");
    held.write_all(b"a").await.expect("write");
    let mut one = [0u8; 1];
    held.read_exact(&mut one).await.expect("echo");

    let dataplane = h.dataplane.clone();
    let started = Instant::now();
    let shutdown = tokio::spawn(h.shutdown());
    eventually("port closed", || std::net::TcpStream::connect((LOCALHOST, port)).is_err()).await;
    // The connection in flight still works while draining.
    held.write_all(b"b").await.expect("write while draining");
    held.read_exact(&mut one).await.expect("echo while draining");
    assert_eq!(&one, b"b");
    shutdown.await.expect("shutdown");
    let took = started.elapsed();
    assert!(took >= drain && took < drain + Duration::from_secs(3), "{took:?}");
    // Dropped after the drain timeout.
    let read = tokio::time::timeout(Duration::from_secs(5), held.read(&mut one)).await.expect("closed");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert_eq!(dataplane.listener_runtime(certbind_core::ListenerId(1)).expect("runtime").state, "stopped");
}

/// One GET with a header `x-big` of `size` bytes: the status, or why there was none.
async fn get_with_big_header(pki: &Pki, port: u16, alpn: &[u8], size: usize) -> Result<StatusCode, String> {
    let mut options = ClientOptions::sni("proxy.test");
    options.alpn = vec![alpn.to_vec()];
    let tls = tls_connect(pki, &options, port).await.map_err(|e| e.to_string())?;
    let io = TokioIo::new(tls);
    let big = "b".repeat(size);
    let response = if alpn == b"h2" {
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await.map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let request = Request::get("https://proxy.test/big").header("x-big", big).body(Empty::<Bytes>::new());
        sender.send_request(request.expect("request")).await.map_err(|e| e.to_string())?
    } else {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await.map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let request =
            Request::get("/big").header("host", "proxy.test").header("x-big", big).body(Empty::<Bytes>::new());
        sender.send_request(request.expect("request")).await.map_err(|e| e.to_string())?
    };
    Ok(response.status())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_header_limit_for_http1_and_http2() {
    let pki = Pki::new();
    let backend = echo_http_backend("one").await;
    let h = Harness::start().await;
    let port = https_listener(&h, &pki, 1, Protocol::Https, vec![backend.to_string()]).await;
    // Within the 64 KiB limit (beyond HTTP/2's usual 16 KiB): served over both versions.
    for alpn in [&b"http/1.1"[..], b"h2"] {
        assert_eq!(get_with_big_header(&pki, port, alpn, 40 * 1024).await, Ok(StatusCode::OK), "{alpn:?}");
    }
    // Past it: refused over both (HTTP/1.1 answers 431; over HTTP/2 the request is not
    // taken, whichever side says so first).
    assert_eq!(
        get_with_big_header(&pki, port, b"http/1.1", 100 * 1024).await,
        Ok(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
    );
    let h2 = get_with_big_header(&pki, port, b"h2", 100 * 1024).await;
    assert!(!matches!(h2, Ok(StatusCode::OK)), "HTTP/2 carried 100 KiB of headers: {h2:?}");
    h.shutdown().await;
}
