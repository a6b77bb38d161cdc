//! Snapshots built from the changes since the previous one: a change to one binding of a
//! listener with many certificates is served through real handshakes, each name serves
//! exactly what the whole state says, and the data plane reads the whole state only at
//! start.

mod common;

use certbind_core::model::Protocol;
use common::*;

/// The snapshot builds the data plane reports, (from the whole state, from changes).
fn builds(h: &Harness) -> (u64, u64) {
    let text = h.dataplane.metrics_text();
    let count = |from: &str| {
        let prefix = format!("certbind_snapshot_builds_total{{from=\"{from}\"}} ");
        let line = text.lines().find_map(|l| l.strip_prefix(prefix.as_str())).expect("builds metric");
        line.trim().parse::<u64>().expect("count")
    };
    (count("state"), count("changes"))
}

async fn serves(pki: &Pki, port: u16, sni: &str, verify_as: &str, expected: &TestCert) {
    let options = ClientOptions::sni(sni).verify_as(verify_as);
    let stream = tls_connect(pki, &options, port).await.expect("handshake");
    assert_eq!(served_leaf(&stream), expected.leaf_der(), "SNI {sni}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binding_changes_on_a_large_listener_are_served_from_the_changes_alone() {
    let pki = Pki::new();
    let names: Vec<String> = (0..200).map(|i| format!("host{i}.many.test")).collect();
    let certs: Vec<TestCert> = names.iter().map(|n| pki.leaf(&[n.as_str()])).collect();
    let other = pki.leaf(&["other.test"]);
    let (port, other_port) = (free_port(), free_port());
    let h = Harness::start().await;
    h.commit(|e| {
        let mut l = listener(1, Protocol::Https, port);
        l.default_cert = Some(e.add_cert(&certs[0]));
        l.additional_certs = certs[1..].iter().map(|c| e.add_cert(c)).collect();
        e.listeners.push(l);
        let mut l = listener(2, Protocol::Https, other_port);
        l.default_cert = Some(e.add_cert(&other));
        e.listeners.push(l);
    })
    .await;
    let (from_state, from_changes) = builds(&h);

    // Replace one certificate among 200.
    let rotated = pki.leaf(&["host100.many.test"]);
    h.commit(|e| {
        let id = e.add_cert(&rotated);
        let l = e.listener(1);
        l.additional_certs.retain(|c| *c != certs[100].id);
        l.additional_certs.push(id);
    })
    .await;
    serves(&pki, port, "host100.many.test", "host100.many.test", &rotated).await;
    serves(&pki, port, "host99.many.test", "host99.many.test", &certs[99]).await;

    // A new default: the old one stays as an additional certificate.
    let new_default = pki.leaf(&["default.many.test"]);
    h.commit(|e| {
        let id = e.add_cert(&new_default);
        let l = e.listener(1);
        l.additional_certs.push(certs[0].id);
        l.default_cert = Some(id);
    })
    .await;
    serves(&pki, port, "unknown.test", "default.many.test", &new_default).await;
    serves(&pki, port, "host0.many.test", "host0.many.test", &certs[0]).await;

    // Dissociate one: its name falls back to the default.
    h.commit(|e| e.listener(1).additional_certs.retain(|c| *c != certs[7].id)).await;
    serves(&pki, port, "host7.many.test", "default.many.test", &new_default).await;

    // A change of the listener itself (its port) arrives whole.
    let moved = free_port();
    h.commit(|e| e.listener(1).port = moved).await;
    eventually("the listener moves", || std::net::TcpStream::connect(("127.0.0.1", moved)).is_ok()).await;
    serves(&pki, moved, "host100.many.test", "host100.many.test", &rotated).await;
    serves(&pki, moved, "host7.many.test", "default.many.test", &new_default).await;

    // The untouched listener serves as before; nothing re-read the whole state.
    serves(&pki, other_port, "other.test", "other.test", &other).await;
    let (state_after, changes_after) = builds(&h);
    assert_eq!(state_after, from_state, "no build from the whole state after the first");
    assert!(changes_after >= from_changes + 4, "builds from changes: {from_changes} -> {changes_after}");

    // A listener deleted from the changes closes its port.
    h.commit(|e| e.listeners.retain(|l| l.listener_id.0 != 2)).await;
    eventually("the deleted listener's port closes", || {
        std::net::TcpStream::connect(("127.0.0.1", other_port)).is_err()
    })
    .await;
    h.shutdown().await;
}
