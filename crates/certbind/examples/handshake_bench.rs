//! Load generator for `bench/handshakes.sh`: full TLS handshakes (no session resumption)
//! against one address for a fixed time from several threads, then a JSON line with the
//! rate. The same generator drives certbind and its peer, so the ratio is fair.
//!
//! handshake_bench --addr 127.0.0.1:8443 --sni bench.example.com --threads 2 --seconds 5 [--tls12]

#[path = "support/mod.rs"]
mod support;

use rustls::pki_types::ServerName;
use rustls::ClientConnection;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{arg, full_handshake_config};

fn main() {
    let addr = arg("--addr", "127.0.0.1:8443");
    let sni = arg("--sni", "bench.example.com");
    let threads: usize = arg("--threads", "2").parse().expect("--threads N");
    let seconds: u64 = arg("--seconds", "5").parse().expect("--seconds N");
    let tls12 = std::env::args().any(|a| a == "--tls12");

    let versions: &[&'static rustls::SupportedProtocolVersion] =
        if tls12 { &[&rustls::version::TLS12] } else { &[&rustls::version::TLS13] };
    let config = full_handshake_config(versions);
    let name = ServerName::try_from(sni).expect("server name");

    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (config, name, addr) = (config.clone(), name.clone(), addr.clone());
            let (done, failed, stop) = (done.clone(), failed.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let ok = (|| -> Result<(), Box<dyn std::error::Error>> {
                        let mut sock = TcpStream::connect(&addr)?;
                        sock.set_nodelay(true)?;
                        let mut conn = ClientConnection::new(config.clone(), name.clone())?;
                        while conn.is_handshaking() {
                            conn.complete_io(&mut sock)?;
                        }
                        Ok(())
                    })();
                    match ok {
                        Ok(()) => done.fetch_add(1, Ordering::Relaxed),
                        Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        let _ = worker.join();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let handshakes = done.load(Ordering::Relaxed);
    println!(
        "{{\"handshakes\":{handshakes},\"failed\":{},\"seconds\":{elapsed:.3},\"per_second\":{:.1}}}",
        failed.load(Ordering::Relaxed),
        handshakes as f64 / elapsed
    );
}
