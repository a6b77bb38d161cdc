//! No client, however slow or greedy, starves the others: under `ulimit -n 1024`, 2,000
//! connections that send nothing (raw TCP, TLS handshaken and silent, HTTP/2 with only its
//! preface; on a listener and on the API) are attempted while good clients keep being
//! served, and the idle ones are closed after the idle timeout. Against a real
//! `certbind serve`.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
const IDLE_TIMEOUT_SECS: u64 = 8;

/// A backend answering every HTTP/1.1 request on a connection with a small 200.
fn backend() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 8192];
                let mut seen = Vec::new();
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.drain(..end + 4);
                        if stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n").is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    port
}

fn tls_connect(port: u16, alpn: &[&[u8]]) -> Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>, String> {
    let name = rustls_pki_types::ServerName::try_from("shop.example.com").unwrap();
    let mut conn = rustls::ClientConnection::new(any_server_client_config(alpn), name).map_err(|e| e.to_string())?;
    let mut sock = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(5))).ok();
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).map_err(|e| e.to_string())?;
    }
    Ok(rustls::StreamOwned::new(conn, sock))
}

/// One request over a new connection, as a good client makes it: true on a 200.
fn good_request(stream: &mut dyn ReadWrite, host: &str, path: &str) -> bool {
    let request = format!("GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer.starts_with(b"HTTP/1.1 200")
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn metric(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start).map(|v| v.trim().parse::<f64>().unwrap()))
        .unwrap_or_else(|| panic!("no metric {line_start} in:\n{text}"))
}

fn metrics(server: &Server) -> String {
    ureq::get(&format!("{}/metrics", server.url())).call().unwrap().into_body().read_to_string().unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).saturating_sub(1).min(sorted.len() - 1)]
}

#[test]
fn good_clients_are_served_while_an_attacker_holds_every_connection_it_can() {
    // The test itself holds the attacker's 2,000 connections.
    rlimit::increase_nofile_limit(8192).unwrap();
    let dir = TempDir::new("starvation");
    let options = ServerOptions {
        open_files: Some(1024),
        extra_args: vec!["--idle-timeout-secs".into(), IDLE_TIMEOUT_SECS.to_string()],
        ..Default::default()
    };
    let server = Server::start_with(dir.path(), options);
    let client = server.client();
    let ca = Ca::new("Starvation CA");
    let cert = upload(&client, &ca.issue(&["shop.example.com"]), "shop");
    let lb = create_lb(&client, "east", "application");
    let port = free_port();
    let listener = create_listener(&client, &lb, "HTTPS", port, Some(&cert));
    client
        .post(
            &format!("/v1/listeners/{listener}/backends"),
            &serde_json::json!({"address": format!("127.0.0.1:{}", backend()), "weight": 1}),
        )
        .unwrap();
    let before = metrics(&server);
    let max = metric(&before, "certbind_connection_limit{limit=\"max_connections\"}");
    let open_files = metric(&before, "certbind_connection_limit{limit=\"open_files\"}");
    assert_eq!(open_files, 1024.0, "the server reports the limit it runs under");
    assert!(max <= (1024.0 - 128.0) / 2.0, "the cap fits the open-file limit: {max}");
    let api_port = server.api_port;
    assert!(good_request(&mut tls_connect(port, &[b"http/1.1"]).unwrap(), "shop.example.com", "/"));

    // Good clients: a new connection per request, to the listener and to the API.
    let attacking = Arc::new(AtomicBool::new(true));
    let good = std::thread::spawn({
        let attacking = attacking.clone();
        move || {
            let mut latencies = Vec::new();
            let mut failures = 0;
            while attacking.load(Ordering::Relaxed) {
                for to_api in [false, true] {
                    let started = Instant::now();
                    let served = if to_api {
                        TcpStream::connect(("127.0.0.1", api_port))
                            .map(|mut s| good_request(&mut s, "127.0.0.1", "/healthz"))
                            .unwrap_or(false)
                    } else {
                        tls_connect(port, &[b"http/1.1"])
                            .map(|mut s| good_request(&mut s, "shop.example.com", "/"))
                            .unwrap_or(false)
                    };
                    if served {
                        latencies.push(started.elapsed());
                    } else {
                        failures += 1;
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            (latencies, failures)
        }
    });

    // The attacker: 2,000 connections that never send a request.
    let attack_started = Instant::now();
    let mut held: Vec<Box<dyn ReadWrite>> = Vec::new();
    let mut attempted = 0;
    for _round in 0..10 {
        for _ in 0..40 {
            attempted += 1;
            if let Ok(s) = TcpStream::connect(("127.0.0.1", port)) {
                s.set_read_timeout(Some(Duration::from_secs(5))).ok();
                held.push(Box::new(s));
            }
        }
        for _ in 0..60 {
            attempted += 1;
            if let Ok(s) = tls_connect(port, &[b"http/1.1"]) {
                held.push(Box::new(s));
            }
        }
        for _ in 0..20 {
            attempted += 1;
            if let Ok(mut s) = tls_connect(port, &[b"h2"]) {
                let _ = s.write_all(HTTP2_PREFACE);
                held.push(Box::new(s));
            }
        }
        for i in 0..80 {
            attempted += 1;
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", api_port)) {
                s.set_read_timeout(Some(Duration::from_secs(5))).ok();
                if i % 2 == 0 {
                    let _ = s.write_all(HTTP2_PREFACE);
                }
                held.push(Box::new(s));
            }
        }
    }
    let attack_time = attack_started.elapsed();
    let during = metrics(&server);
    attacking.store(false, Ordering::Relaxed);
    let (mut latencies, failures) = good.join().unwrap();
    latencies.sort();

    let open = metric(&during, "certbind_connections_open{group=\"all\"}");
    let evicted = metric(&during, "certbind_connections_closed_total{reason=\"evicted\"}");
    eprintln!(
        "attack: {attempted} connections attempted in {attack_time:?}, {} connected, server held {open} (cap {max}), \
         {evicted} evicted; good clients: {} served, {failures} failed, p50 {:?}, p99 {:?}, max {:?}",
        held.len(),
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().unwrap(),
    );
    assert_eq!(attempted, 2000);
    assert!(open <= max, "the server never holds more than its cap");
    assert!(evicted >= attempted as f64 - max, "idle connections made room for newcomers");
    assert!(latencies.len() >= 20, "good clients were served during the attack");
    assert_eq!(failures, 0, "every good request was served during the attack");

    // Everything the attacker still holds is idle: closed after the idle timeout,
    // whatever it is (raw TCP, TLS done and silent, HTTP/2 with only its preface).
    let deadline = Instant::now() + Duration::from_secs(IDLE_TIMEOUT_SECS * 3);
    loop {
        let now = metrics(&server);
        // The one connection left is the one asking for the metrics.
        if metric(&now, "certbind_connections_open{group=\"all\"}") <= 1.0 {
            assert!(metric(&now, "certbind_connections_closed_total{reason=\"idle\"}") > 0.0);
            break;
        }
        assert!(Instant::now() < deadline, "idle connections still open:\n{now}");
        std::thread::sleep(Duration::from_millis(250));
    }
    for stream in held.iter_mut().rev().take(100) {
        // An HTTP/2 server speaks first (SETTINGS); past what it said comes the close.
        let mut said = Vec::new();
        let result = stream.read_to_end(&mut said);
        let still_open = matches!(&result, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut));
        assert!(!still_open, "an attacker's connection is still open");
    }
    assert!(good_request(&mut tls_connect(port, &[b"http/1.1"]).unwrap(), "shop.example.com", "/"));
}
