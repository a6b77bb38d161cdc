//! `serving_changes` against `serving_state` on the real SQLite file: a reader that starts
//! from a whole state and applies every delta it is given sees exactly the whole state,
//! after every kind of write certbind makes, in any order, with settling in between.

use certbind_core::ids::*;
use certbind_core::model::*;
use certbind_store::{
    ChangePoint, NewCertificate, NewListener, NewLoadBalancer, ServingDelta, ServingListener, SqliteStore, Store, Tx,
};
use std::collections::BTreeMap;

/// What a listener serves, in a form two readings can be compared by.
#[derive(Debug, Clone, PartialEq)]
struct Served {
    address: Option<std::net::IpAddr>,
    port: u16,
    protocol: Protocol,
    default: Option<CertId>,
    additional: Vec<CertId>,
    backends: Vec<(String, u32)>,
}

fn served(l: &ServingListener) -> Served {
    let mut additional = l.additional_certs.clone();
    additional.sort();
    Served {
        address: l.address,
        port: l.port,
        protocol: l.protocol,
        default: l.default_cert,
        additional,
        backends: l.backends.iter().map(|b| (b.address.clone(), b.weight)).collect(),
    }
}

type Model = BTreeMap<ListenerId, Served>;

/// What a data plane does with a delta, on the model.
fn apply(model: &mut Model, delta: &ServingDelta) {
    for id in &delta.removed {
        model.remove(id);
    }
    for l in &delta.listeners {
        model.insert(l.listener_id, served(l));
    }
    for change in &delta.bindings {
        let entry = model.get_mut(&change.listener_id).expect("binding change of a known listener");
        if entry.default == Some(change.cert_id) {
            entry.default = None;
        }
        entry.additional.retain(|c| *c != change.cert_id);
        if change.served {
            match change.role {
                BindingRole::Default => entry.default = Some(change.cert_id),
                BindingRole::Additional => {
                    entry.additional.push(change.cert_id);
                    entry.additional.sort();
                }
            }
        }
    }
}

/// A small deterministic generator: the sequence is the same on every run.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n.max(1)
    }
}

fn open(name: &str) -> (SqliteStore, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("certbind-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    (SqliteStore::open_dir(&dir).unwrap(), dir)
}

fn load_balancer(tx: &mut dyn Tx, account: AccountId, project: ProjectId) -> LoadBalancer {
    tx.insert_load_balancer(&NewLoadBalancer {
        account_id: account,
        project_id: project,
        name: "lb".into(),
        lb_type: LbType::Application,
        region: "r".into(),
        address: None,
        attributes: serde_json::json!({}),
    })
    .unwrap()
}

fn whole(store: &SqliteStore) -> (Model, ChangePoint) {
    let state = store.read().unwrap().serving_state().unwrap();
    (state.listeners.iter().map(|l| (l.listener_id, served(l))).collect(), state.changes)
}

#[test]
fn applying_every_delta_to_a_whole_state_gives_the_whole_state() {
    let (store, dir) = open("serving-changes");
    let (account, lb, certs) = {
        let mut tx = store.write().unwrap();
        let account = tx.insert_account("a").unwrap();
        let project = tx.insert_project(account.id, "default", true).unwrap();
        let lb = load_balancer(&mut *tx, account.id, project.id);
        let certs: Vec<CertId> = (0..12)
            .map(|i| {
                let cert = NewCertificate {
                    account_id: account.id,
                    project_id: project.id,
                    name: format!("c{i}"),
                    common_name: Some(format!("c{i}.example.com")),
                    sans: vec![format!("c{i}.example.com")],
                    subject: String::new(),
                    issuer: String::new(),
                    serial: i.to_string(),
                    not_before: 0,
                    not_after: 10,
                    fingerprint_sha256: format!("fp{i}"),
                    key_algorithm: KeyAlgorithm::EcdsaP256,
                    key_bits: 256,
                    chain_pem: String::new(),
                    allow_download: false,
                    attributes: serde_json::json!({}),
                };
                tx.insert_certificate(&cert, &mut |_| Ok(Vec::new())).unwrap().id
            })
            .collect();
        tx.commit().unwrap();
        (account.id, lb, certs)
    };

    let (mut model, mut point) = whole(&store);
    let mut rng = Lcg(7);
    let mut ports = 1000u16;
    let (mut listener_deltas, mut binding_only_deltas) = (0, 0);
    for step in 0..400 {
        let mut tx = store.write().unwrap();
        let (listeners, _) = tx.list_listeners(account, &Default::default()).unwrap();
        let pick = |rng: &mut Lcg| listeners.get(rng.below(listeners.len())).map(|l| l.id);
        let cert = certs[rng.below(certs.len())];
        let revision = tx.next_revision().unwrap();
        let put = |tx: &mut dyn Tx, listener, cert, role, status| {
            tx.put_binding(&Binding { listener_id: listener, cert_id: cert, role, status, revision }).unwrap()
        };
        match rng.below(10) {
            // A new listener with a default certificate.
            0 | 1 => {
                ports += 1;
                let protocol = [Protocol::Https, Protocol::TcpSsl, Protocol::Http][rng.below(3)];
                let l = tx
                    .insert_listener(&NewListener {
                        account_id: account,
                        load_balancer_id: lb.id,
                        name: format!("l{step}"),
                        protocol,
                        port: ports,
                        attributes: serde_json::json!({}),
                    })
                    .unwrap();
                if protocol.is_tls() {
                    put(&mut *tx, l.id, cert, BindingRole::Default, BindingStatus::Associating);
                }
            }
            // Associate or dissociate an additional certificate, as the runner does.
            2..=4 => {
                if let Some(l) = pick(&mut rng) {
                    let bindings = tx.listener_bindings(l).unwrap();
                    match bindings.iter().find(|b| b.cert_id == cert) {
                        None => put(&mut *tx, l, cert, BindingRole::Additional, BindingStatus::Associating),
                        Some(b) if b.role == BindingRole::Additional && b.status != BindingStatus::Dissociating => {
                            put(&mut *tx, l, cert, BindingRole::Additional, BindingStatus::Dissociating)
                        }
                        _ => {}
                    }
                }
            }
            // Replace the default: the new one in, the old one out, in one revision.
            5 => {
                if let Some(l) = pick(&mut rng) {
                    let bindings = tx.listener_bindings(l).unwrap();
                    let default = bindings
                        .iter()
                        .find(|b| b.role == BindingRole::Default && b.status != BindingStatus::Dissociating);
                    if let Some(old) = default.filter(|b| b.cert_id != cert).cloned() {
                        if bindings.iter().all(|b| b.cert_id != cert) {
                            put(&mut *tx, l, cert, BindingRole::Default, BindingStatus::Associating);
                            put(&mut *tx, l, old.cert_id, BindingRole::Default, BindingStatus::Dissociating);
                        }
                    }
                }
            }
            6 => {
                if let Some(l) = pick(&mut rng) {
                    tx.insert_backend(l, &format!("127.0.0.1:{}", 2000 + step), 1 + rng.below(5) as u32).unwrap();
                }
            }
            7 => {
                if let Some(l) = pick(&mut rng) {
                    if let Some(b) = tx.list_backends(l).unwrap().first() {
                        tx.delete_backend(l, b.id).unwrap();
                    }
                }
            }
            8 => {
                if let Some(l) = pick(&mut rng) {
                    tx.delete_listener(account, l).unwrap();
                }
            }
            _ => {
                let mut lb = tx.get_load_balancer(account, lb.id).unwrap().unwrap();
                lb.address = match lb.address {
                    None => Some("127.0.0.9".parse().unwrap()),
                    Some(_) => None,
                };
                tx.update_load_balancer(&lb).unwrap();
            }
        }
        tx.commit().unwrap();

        let delta = store.read().unwrap().serving_changes(point).unwrap().expect("history kept");
        match delta.listeners.is_empty() && delta.removed.is_empty() {
            true => binding_only_deltas += usize::from(!delta.bindings.is_empty()),
            false => listener_deltas += 1,
        }
        apply(&mut model, &delta);
        point = delta.changes;
        let (expected, expected_point) = whole(&store);
        assert_eq!(model, expected, "after step {step}");
        assert_eq!(point, expected_point, "after step {step}");

        // Settling (what the runner does once a revision is served) changes nothing served.
        if rng.below(2) == 0 {
            let mut tx = store.write().unwrap();
            tx.settle(point.revision, &[]).unwrap();
            tx.commit().unwrap();
            let delta = store.read().unwrap().serving_changes(point).unwrap().expect("history kept");
            assert!(delta.listeners.is_empty() && delta.removed.is_empty() && delta.bindings.is_empty(), "{delta:?}");
            point = delta.changes;
        }
    }
    assert!(listener_deltas > 50 && binding_only_deltas > 50, "{listener_deltas} / {binding_only_deltas}");
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_reader_behind_the_kept_history_is_told_to_read_everything() {
    let (store, dir) = open("serving-pruned");
    let start = store.read().unwrap().serving_state().unwrap().changes;
    let mut tx = store.write().unwrap();
    let account = tx.insert_account("a").unwrap();
    let project = tx.insert_project(account.id, "default", true).unwrap();
    let lb = load_balancer(&mut *tx, account.id, project.id);
    // More listener changes than are kept; settling prunes the oldest.
    for port in 0..10_050u16 {
        let listener = NewListener {
            account_id: account.id,
            load_balancer_id: lb.id,
            name: String::new(),
            protocol: Protocol::Http,
            port: 1 + port,
            attributes: serde_json::json!({}),
        };
        tx.insert_listener(&listener).unwrap();
    }
    tx.next_revision().unwrap();
    tx.settle(0, &[]).unwrap();
    tx.commit().unwrap();
    assert!(store.read().unwrap().serving_changes(start).unwrap().is_none());
    // A reader within the kept history still gets its changes.
    let now = store.read().unwrap().serving_state().unwrap().changes;
    let delta = store.read().unwrap().serving_changes(now).unwrap().expect("recent history kept");
    assert!(delta.listeners.is_empty() && delta.removed.is_empty() && delta.bindings.is_empty());
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn settling_prunes_old_listener_changes_a_slice_at_a_time() {
    let (store, dir) = open("serving-pruned-slices");
    let mut tx = store.write().unwrap();
    let account = tx.insert_account("a").unwrap();
    let project = tx.insert_project(account.id, "default", true).unwrap();
    let lb = load_balancer(&mut *tx, account.id, project.id);
    // 14,000 listener changes: 4,000 beyond the 10,000 kept.
    for port in 0..14_000u16 {
        let listener = NewListener {
            account_id: account.id,
            load_balancer_id: lb.id,
            name: String::new(),
            protocol: Protocol::Http,
            port: 1 + port,
            attributes: serde_json::json!({}),
        };
        tx.insert_listener(&listener).unwrap();
    }
    tx.next_revision().unwrap();
    tx.commit().unwrap();
    let latest = store.read().unwrap().serving_state().unwrap().changes;
    let settle = || {
        let mut tx = store.write().unwrap();
        tx.settle(latest.revision, &[]).unwrap();
        tx.commit().unwrap();
    };
    // Pruning shows only in the file: readers that far behind read everything anyway.
    let db = rusqlite::Connection::open(dir.join("certbind.db")).unwrap();
    let history = || -> (i64, i64) {
        let rows = db.query_row("SELECT COUNT(*) FROM listener_changes", [], |r| r.get(0)).unwrap();
        let pruned =
            db.query_row("SELECT value FROM meta WHERE key = 'listener_changes_pruned'", [], |r| r.get(0)).unwrap();
        (rows, pruned)
    };
    let first = latest.listener_change - 14_000;
    assert_eq!(history(), (14_000, 0));
    // One settle prunes the oldest 2,000, not all 4,000 at once; then the rest; then none.
    settle();
    assert_eq!(history(), (12_000, first + 2_000));
    settle();
    assert_eq!(history(), (10_000, first + 4_000));
    settle();
    assert_eq!(history(), (10_000, first + 4_000));
    // A reader within the kept history still gets its changes.
    assert!(store.read().unwrap().serving_changes(latest).unwrap().is_some());
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
