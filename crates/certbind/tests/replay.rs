//! A captured request is refused when sent again, in every dialect, before and after a
//! restart (`kill -9`): requests made by the official SDKs (and the native client) go
//! through a recording proxy, and their very bytes are sent again to a real
//! `certbind serve`. A TC3 read re-sent naming a write is refused too.

mod common;

use common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What one proxied connection's client sent.
type Recording = Arc<Mutex<Vec<u8>>>;

/// A TCP proxy to `target` that keeps every byte the clients send, one buffer per
/// connection, in the order connections were opened.
struct RecordingProxy {
    port: u16,
    recorded: Arc<Mutex<Vec<Recording>>>,
}

impl RecordingProxy {
    fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let recorded: Arc<Mutex<Vec<Recording>>> = Arc::default();
        let connections = recorded.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else { continue };
                let buffer: Recording = Arc::default();
                connections.lock().unwrap().push(buffer.clone());
                let (mut from_client, mut to_server) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let mut chunk = [0u8; 16384];
                    while let Ok(n) = from_client.read(&mut chunk) {
                        if n == 0 || to_server.write_all(&chunk[..n]).is_err() {
                            break;
                        }
                        buffer.lock().unwrap().extend_from_slice(&chunk[..n]);
                    }
                    let _ = to_server.shutdown(std::net::Shutdown::Write);
                });
                let (mut from_server, mut to_client) = (server, client);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from_server, &mut to_client);
                    let _ = to_client.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        RecordingProxy { port, recorded }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every request sent through the proxy so far, whole, in order.
    fn requests(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for buffer in self.recorded.lock().unwrap().iter() {
            let mut bytes = buffer.lock().unwrap().clone();
            while let Some(request) = take_request(&mut bytes) {
                out.push(request);
            }
        }
        out
    }
}

/// The length of an HTTP/1.1 message's head and its Content-Length.
fn head_and_length(bytes: &[u8]) -> Option<(usize, usize)> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
    let length =
        head.lines().find_map(|l| l.strip_prefix("content-length:")).map(|v| v.trim().parse().unwrap()).unwrap_or(0);
    Some((end, length))
}

fn take_request(bytes: &mut Vec<u8>) -> Option<Vec<u8>> {
    let (head, length) = head_and_length(bytes)?;
    if bytes.len() < head + length {
        return None;
    }
    Some(bytes.drain(..head + length).collect())
}

/// Sends a recorded request as it was and returns the answer's body as JSON.
fn send_again(port: u16, request: &[u8]) -> Value {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(request).unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        if let Some((head, length)) = head_and_length(&answer) {
            if answer.len() >= head + length {
                return serde_json::from_slice(&answer[head..head + length]).unwrap();
            }
        }
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed before the answer: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&chunk[..n]);
    }
}

/// The error code of a dialect's answer, whatever its envelope.
fn error_code_of(answer: &Value) -> String {
    let code = answer["Code"]
        .as_str()
        .or(answer["Response"]["Error"]["Code"].as_str())
        .or(answer["error"]["code"].as_str())
        .map(str::to_string);
    code.or_else(|| answer["RetCode"].as_i64().filter(|c| *c != 0).map(|c| c.to_string()))
        .unwrap_or_else(|| panic!("not an error: {answer}"))
}

/// Replaces one header's value in a recorded request.
fn with_header(request: &[u8], name: &str, value: &str) -> Vec<u8> {
    let (head, _) = head_and_length(request).unwrap();
    let text = String::from_utf8(request[..head].to_vec()).unwrap();
    let replaced: Vec<String> = text
        .split("\r\n")
        .map(|line| match line.split_once(':') {
            Some((n, _)) if n.eq_ignore_ascii_case(name) => format!("{n}: {value}"),
            _ => line.to_string(),
        })
        .collect();
    let mut out = replaced.join("\r\n").into_bytes();
    out.extend_from_slice(&request[head..]);
    out
}

fn load_balancer_count(client: &certbind::client::Client) -> u64 {
    client.get("/v1/load-balancers").unwrap()["total"].as_u64().unwrap()
}

#[test]
fn a_captured_request_is_refused_in_every_dialect_even_after_a_restart() {
    let dir = TempDir::new("replay");
    let mut server = Server::start(dir.path());
    let native = server.client();
    let proxy = RecordingProxy::start(server.api_port);
    let ca = Ca::new("Replay CA");
    let leaf = ca.issue(&["replay.example.com"]);

    // Native: a write and a read through the proxy.
    let through_proxy = certbind::client::Client::new(&proxy.url(), KEY_ID, SECRET);
    through_proxy.post("/v1/load-balancers", &json!({"lb_type": "application", "region": "east"})).unwrap();
    let default_project = default_project_name(&through_proxy);
    let mut labels = vec!["native-write".to_string(), "native-read".to_string()];

    let endpoint = proxy.url();
    let chain = format!("{}{}", leaf.cert_pem, leaf.chain_pem);
    let env = [
        ("CERTBIND_ENDPOINT", endpoint.as_str()),
        ("CERT", chain.as_str()),
        ("KEY", leaf.key_pem.as_str()),
        ("UCLOUD_PROJECT", default_project.as_str()),
    ];
    let captured = run_sdk_script("replay_capture.py", &server, &env);
    labels.extend(captured["labels"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_string()));
    let requests = proxy.requests();
    assert!(requests.len() >= labels.len(), "{} requests recorded for {} calls", requests.len(), labels.len());
    let by_label = |label: &str| -> Vec<u8> {
        let index = labels.iter().position(|l| l == label).unwrap_or_else(|| panic!("no {label}"));
        requests[index].clone()
    };

    // The dialect's own refusal for each request sent again.
    let expected: &[(&str, &str)] = &[
        ("native-write", "RequestReplayed"),
        ("native-read", "RequestReplayed"),
        ("alibaba-acs3", "SignatureNonceUsed"),
        ("alibaba-rpc", "SignatureNonceUsed"),
        ("tencent-tc3", "AuthFailure.SignatureExpire"),
        ("tencent-legacy", "AuthFailure.SignatureExpire"),
        ("ucloud", "171"),
    ];
    let before = load_balancer_count(&native);
    for (label, code) in expected {
        let answer = send_again(server.api_port, &by_label(label));
        assert_eq!(error_code_of(&answer), *code, "{label} sent again: {answer}");
    }
    assert_eq!(load_balancer_count(&native), before, "no replay made a load balancer");

    // A TC3 read re-sent naming a write (the SDK does not sign X-TC-Action), once the
    // instant in which an honest client could have sent both has passed.
    std::thread::sleep(Duration::from_secs(3));
    let delete = with_header(&by_label("tencent-read"), "X-TC-Action", "DeleteCertificate");
    let answer = send_again(server.api_port, &delete);
    assert_eq!(error_code_of(&answer), "AuthFailure.SignatureExpire", "{answer}");
    let certificates = native.get("/v1/certificates").unwrap();
    assert_eq!(certificates["total"], 1, "the certificate was not deleted: {certificates}");

    // Remembered in the store: after kill -9 and a restart, still refused.
    server.restart();
    let native = server.client();
    for (label, code) in expected {
        let answer = send_again(server.api_port, &by_label(label));
        assert_eq!(error_code_of(&answer), *code, "{label} sent again after a restart: {answer}");
    }
    assert_eq!(load_balancer_count(&native), before, "no replay made a load balancer");
}
