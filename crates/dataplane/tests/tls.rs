//! TLS listeners over real handshakes on loopback: SNI selection, the full chain, both
//! TLS versions, hot swap under load, failed builds, sockets and metrics.

mod common;

use certbind_core::model::Protocol;
use certbind_core::ListenerId;
use common::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_selects_exact_then_wildcard_and_falls_back_to_the_default() {
    let pki = Pki::new();
    let default = pki.leaf(&["default.test"]);
    let exact = pki.leaf(&["www.example.com"]);
    let wildcard = pki.leaf(&["*.example.com"]);
    let port = free_port();
    let h = Harness::start().await;
    h.commit(|e| {
        let mut l = listener(1, Protocol::Https, port);
        l.default_cert = Some(e.add_cert(&default));
        l.additional_certs = vec![e.add_cert(&exact), e.add_cert(&wildcard)];
        e.listeners.push(l);
    })
    .await;

    let cases: [(ClientOptions, &TestCert); 5] = [
        (ClientOptions::sni("www.example.com"), &exact),
        (ClientOptions::sni("WWW.Example.COM").verify_as("www.example.com"), &exact),
        (ClientOptions::sni("api.example.com"), &wildcard),
        // Wildcards cover exactly one label: a deeper name is unknown.
        (ClientOptions::sni("a.b.example.com").verify_as("default.test"), &default),
        (ClientOptions::sni("unknown.test").verify_as("default.test"), &default),
    ];
    for (options, expected) in cases {
        let stream = tls_connect(&pki, &options, port).await.expect("handshake");
        assert_eq!(served_leaf(&stream), expected.leaf_der(), "SNI {:?}", options.sni);
    }
    let stream = tls_connect(&pki, &ClientOptions::no_sni("default.test"), port).await.expect("handshake without SNI");
    assert_eq!(served_leaf(&stream), default.leaf_der());
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_chain_is_sent_over_tls12_and_tls13() {
    let pki = Pki::new();
    let cert = pki.leaf(&["chain.test"]);
    let port = free_port();
    let h = Harness::start().await;
    h.commit(|e| {
        let mut l = listener(1, Protocol::Https, port);
        l.default_cert = Some(e.add_cert(&cert));
        e.listeners.push(l);
    })
    .await;
    for (version, expected) in [
        (&rustls::version::TLS12, rustls::ProtocolVersion::TLSv1_2),
        (&rustls::version::TLS13, rustls::ProtocolVersion::TLSv1_3),
    ] {
        let mut options = ClientOptions::sni("chain.test");
        options.versions = vec![version];
        // Clients trust only the root: verification itself needs the intermediate.
        let stream = tls_connect(&pki, &options, port).await.expect("handshake");
        let connection = stream.get_ref().1;
        assert_eq!(connection.protocol_version(), Some(expected));
        let chain = connection.peer_certificates().expect("chain");
        assert_eq!(chain.len(), 2);
        assert_eq!(chain[0].as_ref(), cert.leaf_der());
        assert_eq!(chain[1].as_ref(), pki.intermediate_der.as_slice());
    }
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_certificates_for_one_name_a_client_gets_one_whose_key_it_can_use() {
    let pki = Pki::new();
    let y = year_offset(0);
    let default = pki.leaf(&["default.test"]);
    // Both serve the name; the P-384 one expires later, so it wins where both are usable.
    let p256 = pki.leaf_with(&["dual.example.com"], (y - 1, 1, 1), (y + 2, 1, 1), &rcgen::PKCS_ECDSA_P256_SHA256);
    let p384 = pki.leaf_with(&["dual.example.com"], (y - 1, 1, 1), (y + 3, 1, 1), &rcgen::PKCS_ECDSA_P384_SHA384);
    let port = free_port();
    let h = Harness::start().await;
    h.commit(|e| {
        let mut l = listener(1, Protocol::Https, port);
        l.default_cert = Some(e.add_cert(&default));
        l.additional_certs = vec![e.add_cert(&p256), e.add_cert(&p384)];
        e.listeners.push(l);
    })
    .await;
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let mut any = ClientOptions::sni("dual.example.com");
        any.versions = vec![version];
        let stream = tls_connect(&pki, &any, port).await.expect("handshake");
        assert_eq!(served_leaf(&stream), p384.leaf_der(), "{version:?}");
        // A client that can verify only P-256 signatures gets the P-256 certificate, not a
        // failed handshake.
        let mut p256_only = any.clone();
        p256_only.signature_schemes = Some(vec![rustls::SignatureScheme::ECDSA_NISTP256_SHA256]);
        let stream = tls_connect(&pki, &p256_only, port).await.expect("handshake offering only P-256");
        assert_eq!(served_leaf(&stream), p256.leaf_der(), "{version:?}");
    }
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_certificate_with_latest_expiry_wins_over_expired_and_not_yet_valid() {
    let pki = Pki::new();
    let default = pki.leaf(&["default.test"]);
    let expired = pki.leaf_between(&["dup.example.com"], (2001, 1, 1), (2002, 1, 1));
    let valid = pki.leaf_between(&["dup.example.com"], (2020, 1, 1), (year_offset(2), 1, 1));
    // Expires last of all but is not valid yet.
    let future = pki.leaf_between(&["dup.example.com"], (year_offset(1), 1, 1), (year_offset(20), 1, 1));
    let valid_longer = pki.leaf_between(&["*.example.com"], (2020, 1, 1), (year_offset(3), 1, 1));
    let port = free_port();
    let h = Harness::start().await;
    h.commit(|e| {
        let mut l = listener(1, Protocol::Https, port);
        l.default_cert = Some(e.add_cert(&default));
        l.additional_certs = vec![e.add_cert(&expired), e.add_cert(&future), e.add_cert(&valid)];
        e.listeners.push(l);
    })
    .await;
    let stream = tls_connect(&pki, &ClientOptions::sni("dup.example.com"), port).await.expect("handshake");
    assert_eq!(served_leaf(&stream), valid.leaf_der());

    // A valid wildcard expiring later beats the valid exact name.
    h.commit(|e| {
        let id = e.add_cert(&valid_longer);
        e.listener(1).additional_certs.push(id);
    })
    .await;
    let stream = tls_connect(&pki, &ClientOptions::sni("dup.example.com"), port).await.expect("handshake");
    assert_eq!(served_leaf(&stream), valid_longer.leaf_der());
    h.shutdown().await;
}

/// Several clients handshake without pause while revisions replace the default
/// certificate and associate and dissociate an SNI certificate: no handshake fails, and
/// each one that starts after revision R is reported served gets what R (or a later
/// revision) serves for its SNI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_swap_under_load_fails_no_handshake_and_serves_each_new_revision() {
    const CLIENTS: usize = 4;
    const STEPS: usize = 24;
    const EXTRA: &str = "extra.swap.test";
    let pki = Arc::new(Pki::new());
    let port = free_port();
    let h = Harness::start().await;
    let first = pki.leaf(&["swap.test"]);
    let revision = h
        .commit(|e| {
            let mut l = listener(1, Protocol::Https, port);
            l.default_cert = Some(e.add_cert(&first));
            e.listeners.push(l);
        })
        .await;
    // Per revision: the leaf served without SNI and the one served for EXTRA.
    let first_leaf = first.leaf_der().to_vec();
    let mut expected: Vec<(i64, Vec<u8>, Vec<u8>)> = vec![(revision, first_leaf.clone(), first_leaf)];

    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let pki = pki.clone();
        let stop = stop.clone();
        let served = h.dataplane.served_revision();
        clients.push(tokio::spawn(async move {
            // Half the clients send no SNI, half ask for the SNI certificate; every
            // certificate of this test also covers swap.test, so both verify.
            let with_sni = client % 2 == 1;
            let options = if with_sni {
                ClientOptions::sni(EXTRA).verify_as("swap.test")
            } else {
                ClientOptions::no_sni("swap.test")
            };
            let config = client_config(&pki, &options);
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let started_after = *served.borrow();
                let stream = tls_connect_with(config.clone(), &options, port)
                    .await
                    .unwrap_or_else(|e| panic!("handshake failed during hot swap: {e}"));
                seen.push((with_sni, started_after, served_leaf(&stream)));
            }
            seen
        }));
    }

    let mut default_leaf = first.leaf_der().to_vec();
    let mut extra_leaf: Option<Vec<u8>> = None;
    for step in 0..STEPS {
        let revision = match step % 3 {
            // Replace the default.
            0 => {
                let next = pki.leaf(&["swap.test"]);
                default_leaf = next.leaf_der().to_vec();
                h.commit(|e| {
                    let id = e.add_cert(&next);
                    e.listener(1).default_cert = Some(id);
                })
                .await
            }
            // Associate a new SNI certificate.
            1 => {
                let extra = pki.leaf(&[EXTRA, "swap.test"]);
                extra_leaf = Some(extra.leaf_der().to_vec());
                h.commit(|e| {
                    let id = e.add_cert(&extra);
                    e.listener(1).additional_certs = vec![id];
                })
                .await
            }
            // Dissociate it.
            _ => {
                extra_leaf = None;
                h.commit(|e| e.listener(1).additional_certs.clear()).await
            }
        };
        let sni_leaf = extra_leaf.clone().unwrap_or_else(|| default_leaf.clone());
        expected.push((revision, default_leaf.clone(), sni_leaf));
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for client in clients {
        for (with_sni, started_after, leaf) in client.await.expect("client task") {
            total += 1;
            let newest_at_start = expected
                .iter()
                .map(|(revision, _, _)| *revision)
                .filter(|revision| *revision <= started_after)
                .max()
                .expect("a revision was served before the handshake");
            let acceptable = expected
                .iter()
                .filter(|(revision, _, _)| *revision >= newest_at_start)
                .any(|(_, no_sni, sni)| if with_sni { *sni == leaf } else { *no_sni == leaf });
            assert!(
                acceptable,
                "a handshake (SNI: {with_sni}) started after revision {started_after} was served got an older revision's certificate"
            );
        }
    }
    assert!(total >= STEPS, "clients made only {total} handshakes");
    let metrics = h.dataplane.metrics_text();
    for reason in ["no_certificate", "protocol_error", "peer_alert", "timeout", "io", "other"] {
        assert!(metrics.contains(&format!("{{listener=\"lsn-1\",reason=\"{reason}\"}} 0")), "{metrics}");
    }
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_fetched_once_and_cached_across_revisions() {
    let pki = Pki::new();
    let a = pki.leaf(&["a.test"]);
    let b = pki.leaf(&["b.test"]);
    let (port1, port2) = (free_port(), free_port());
    let h = Harness::start().await;
    let calls_before = h.material_calls();
    h.commit(|e| {
        let mut l = listener(1, Protocol::Https, port1);
        l.default_cert = Some(e.add_cert(&a));
        e.listeners.push(l);
    })
    .await;
    assert_eq!(h.material_calls(), calls_before + 1);
    // A second listener sharing the certificate, and an unrelated change: no new fetch.
    h.commit(|e| {
        let mut l = listener(2, Protocol::Https, port2);
        l.default_cert = Some(a.id);
        e.listeners.push(l);
    })
    .await;
    h.commit(|e| e.listener(2).port = port2).await;
    assert_eq!(h.material_calls(), calls_before + 1);
    h.commit(|e| {
        let id = e.add_cert(&b);
        e.listener(2).additional_certs.push(id);
    })
    .await;
    assert_eq!(h.material_calls(), calls_before + 2);
    let stream = tls_connect(&pki, &ClientOptions::sni("b.test"), port2).await.expect("handshake");
    assert_eq!(served_leaf(&stream), b.leaf_der());
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_whose_new_certificate_fails_keeps_serving_the_previous_one() {
    let pki = Pki::new();
    let old = pki.leaf(&["keep.test"]);
    let broken = pki.leaf(&["keep.test"]);
    let other_old = pki.leaf(&["other.test"]);
    let other_new = pki.leaf(&["other.test"]);
    let (port1, port2) = (free_port(), free_port());
    let h = Harness::start().await;
    let good = h
        .commit(|e| {
            let mut l = listener(1, Protocol::Https, port1);
            l.default_cert = Some(e.add_cert(&old));
            e.listeners.push(l);
            let mut l = listener(2, Protocol::Https, port2);
            l.default_cert = Some(e.add_cert(&other_old));
            e.listeners.push(l);
        })
        .await;

    let bad = h
        .commit(|e| {
            let id = e.add_cert(&broken);
            e.broken.insert(id);
            e.listener(1).default_cert = Some(id);
            let id = e.add_cert(&other_new);
            e.listener(2).default_cert = Some(id);
        })
        .await;
    // Listener 1 keeps its old certificate, listener 2 moves on.
    let stream = tls_connect(&pki, &ClientOptions::sni("keep.test"), port1).await.expect("handshake");
    assert_eq!(served_leaf(&stream), old.leaf_der());
    let stream = tls_connect(&pki, &ClientOptions::sni("other.test"), port2).await.expect("handshake");
    assert_eq!(served_leaf(&stream), other_new.leaf_der());
    assert_eq!(h.dataplane.listener_served_revision(ListenerId(1)), Some(good));
    assert_eq!(h.dataplane.listener_served_revision(ListenerId(2)), Some(bad));
    let runtime = h.dataplane.listener_runtime(ListenerId(1)).expect("runtime");
    assert_eq!(runtime.state, "serving");
    let reason = runtime.reason.expect("failure reported");
    assert!(reason.contains(&broken.id.to_string()), "{reason}");
    let metrics = h.dataplane.metrics_text();
    assert!(metrics.contains("certbind_listener_certificates_stale{listener=\"lsn-1\"} 1"), "{metrics}");
    assert!(!metrics.contains("certbind_snapshot_build_failures_total 0"), "{metrics}");

    // The material becomes available: the retry picks it up without a new revision.
    h.commit_nowait(|e| {
        e.broken.clear();
    });
    eventually("listener 1 serves the new certificate", || {
        h.dataplane.listener_served_revision(ListenerId(1)) > Some(good)
    })
    .await;
    let stream = tls_connect(&pki, &ClientOptions::sni("keep.test"), port1).await.expect("handshake");
    assert_eq!(served_leaf(&stream), broken.leaf_der());
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_read_failure_keeps_serving_and_does_not_advance_the_revision() {
    let pki = Pki::new();
    let cert = pki.leaf(&["stay.test"]);
    let port = free_port();
    let h = Harness::start().await;
    let good = h
        .commit(|e| {
            let mut l = listener(1, Protocol::Https, port);
            l.default_cert = Some(e.add_cert(&cert));
            e.listeners.push(l);
        })
        .await;
    let next = h.commit_nowait(|e| *e.fail_state = true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(*h.dataplane.served_revision().borrow(), good);
    let stream = tls_connect(&pki, &ClientOptions::sni("stay.test"), port).await.expect("handshake");
    assert_eq!(served_leaf(&stream), cert.leaf_der());
    // Recovers once the state can be read again.
    let recovered = h.commit_nowait(|e| *e.fail_state = false);
    assert_eq!(recovered, next + 1);
    h.wait_served(recovered).await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_without_any_certificate_fails_and_is_counted() {
    let pki = Pki::new();
    let port = free_port();
    let h = Harness::start().await;
    h.commit(|e| e.listeners.push(listener(7, Protocol::Https, port))).await;
    let result = tls_connect(&pki, &ClientOptions::sni("none.test"), port).await;
    assert!(result.is_err());
    eventually("failure counted", || {
        h.dataplane
            .metrics_text()
            .contains("certbind_listener_handshake_failures_total{listener=\"lsn-7\",reason=\"no_certificate\"} 1")
    })
    .await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_expose_handshakes_bytes_and_certificate_expiry() {
    let pki = Pki::new();
    let cert = pki.leaf(&["metrics.test"]);
    let port = free_port();
    let h = Harness::start().await;
    h.commit(|e| {
        let mut l = listener(3, Protocol::Https, port);
        l.default_cert = Some(e.add_cert(&cert));
        e.listeners.push(l);
    })
    .await;
    for _ in 0..2 {
        let stream = tls_connect(&pki, &ClientOptions::sni("metrics.test"), port).await.expect("handshake");
        drop(stream);
    }
    eventually("handshakes counted", || {
        h.dataplane.metrics_text().contains("certbind_listener_handshakes_total{listener=\"lsn-3\"} 2")
    })
    .await;
    let text = h.dataplane.metrics_text();
    assert!(text.contains("# TYPE certbind_listener_handshakes_total counter"));
    assert!(
        text.contains(&format!("certbind_certificate_not_after_seconds{{cert=\"{}\"}} {}", cert.id, cert.not_after))
    );
    let bytes_out = text
        .lines()
        .find(|l| l.starts_with("certbind_listener_bytes_out_total{listener=\"lsn-3\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<u64>().ok())
        .expect("bytes out");
    assert!(bytes_out > 500, "the chain alone is larger: {bytes_out}");
    assert!(text.contains("certbind_listener_up{listener=\"lsn-3\",state=\"serving\"} 1"));
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_conflict_is_reported_as_bind_failed_and_retried() {
    let pki = Pki::new();
    let cert = pki.leaf(&["conflict.test"]);
    let occupant = std::net::TcpListener::bind((LOCALHOST, 0)).expect("occupy");
    let port = occupant.local_addr().expect("addr").port();
    let free = free_port();
    let h = Harness::start().await;
    h.commit(|e| {
        let mut l = listener(1, Protocol::Https, port);
        l.default_cert = Some(e.add_cert(&cert));
        e.listeners.push(l);
        let mut l = listener(2, Protocol::Https, free);
        l.default_cert = Some(cert.id);
        e.listeners.push(l);
        e.listeners.push(listener(3, Protocol::Udp, free_port()));
    })
    .await;
    let runtime = h.dataplane.listener_runtime(ListenerId(1)).expect("runtime");
    assert_eq!(runtime.state, "bind_failed");
    assert_eq!(runtime.address, format!("127.0.0.1:{port}"));
    assert!(runtime.reason.as_deref().unwrap_or("").to_lowercase().contains("in use"), "{runtime:?}");
    // The others are unaffected.
    assert_eq!(h.dataplane.listener_runtime(ListenerId(2)).expect("runtime").state, "serving");
    assert_eq!(h.dataplane.listener_runtime(ListenerId(3)).expect("runtime").state, "unsupported");
    tls_connect(&pki, &ClientOptions::sni("conflict.test"), free).await.expect("handshake");

    // Once the port is free, a later reconcile binds it.
    drop(occupant);
    h.commit(|_| {}).await;
    assert_eq!(h.dataplane.listener_runtime(ListenerId(1)).expect("runtime").state, "serving");
    tls_connect(&pki, &ClientOptions::sni("conflict.test"), port).await.expect("handshake");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_listener_closes_its_port_and_a_moved_one_reopens() {
    let pki = Pki::new();
    let cert = pki.leaf(&["move.test"]);
    let (port, moved) = (free_port(), free_port());
    let h = Harness::start().await;
    h.commit(|e| {
        let mut l = listener(1, Protocol::Https, port);
        l.default_cert = Some(e.add_cert(&cert));
        e.listeners.push(l);
    })
    .await;
    tls_connect(&pki, &ClientOptions::sni("move.test"), port).await.expect("handshake");
    h.commit(|e| e.listener(1).port = moved).await;
    assert!(tokio::net::TcpStream::connect((LOCALHOST, port)).await.is_err());
    tls_connect(&pki, &ClientOptions::sni("move.test"), moved).await.expect("handshake");
    assert_eq!(h.dataplane.listener_runtime(ListenerId(1)).expect("runtime").address, format!("127.0.0.1:{moved}"));
    h.commit(|e| e.listeners.clear()).await;
    assert!(tokio::net::TcpStream::connect((LOCALHOST, moved)).await.is_err());
    assert_eq!(h.dataplane.listener_runtime(ListenerId(1)), None);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_with_its_own_address_binds_it() {
    let pki = Pki::new();
    let cert = pki.leaf(&["vip.test"]);
    let port = free_port();
    let h = Harness::start().await;
    h.commit(|e| {
        let mut l = listener(1, Protocol::Https, port);
        l.address = Some("127.0.0.2".parse().expect("ip"));
        l.default_cert = Some(e.add_cert(&cert));
        e.listeners.push(l);
    })
    .await;
    let runtime = h.dataplane.listener_runtime(ListenerId(1)).expect("runtime");
    assert_eq!(runtime.address, format!("127.0.0.2:{port}"));
    if runtime.state == "serving" {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.2", port)).await.expect("connect vip");
        drop(tcp);
    } else {
        // Some sandboxes only route 127.0.0.1; then the failure must be reported, not crash.
        assert_eq!(runtime.state, "bind_failed");
    }
    h.shutdown().await;
}
