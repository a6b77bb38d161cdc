//! A replace over thousands of listeners survives `kill -9` at arbitrary instants: after
//! each restart the job carries on, and at every kill each listener holds exactly one
//! default certificate, the old or the new one, as its job target says.

mod common;

use certbind_control::{Caller, Control, ControlConfig, UploadRequest};
use certbind_core::ids::*;
use certbind_core::model::*;
use certbind_core::secret::MasterKey;
use certbind_store::{NewListener, NewLoadBalancer, SqliteStore, Store};
use common::*;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const LOAD_BALANCERS: usize = 20;
const LISTENERS_PER_LB: usize = 100;

/// Seeds the data directory in-process through the real store: two certificates and
/// LOAD_BALANCERS x LISTENERS_PER_LB TCPSSL listeners bound to the first. The load
/// balancers' addresses are in TEST-NET-3, which this host does not own, so the data plane
/// serves their configuration without opening thousands of sockets (each listener reports
/// its bind failure).
fn seed(dir: &std::path::Path, ca: &Ca) -> (CertId, CertId) {
    let store = Arc::new(SqliteStore::open_dir(dir).unwrap());
    let control =
        Control::new(store.clone(), MasterKey::from_text(MASTER_KEY).unwrap(), ControlConfig::default()).unwrap();
    control.bootstrap(Some((KEY_ID, SECRET))).unwrap();
    let caller: Caller = control.access_key_secret(KEY_ID).unwrap().unwrap().0;
    let upload = |name: &str| {
        let issued = ca.issue(&["crash.example.com"]);
        let request = UploadRequest {
            name: name.to_string(),
            certificate_pem: issued.cert_pem,
            private_key_pem: issued.key_pem,
            ..Default::default()
        };
        control.upload_certificate(&caller, &request, None).unwrap().certificate.id
    };
    let (old, new) = (upload("old"), upload("new"));
    let mut tx = store.write().unwrap();
    let project = tx.default_project(caller.account_id).unwrap().unwrap();
    let revision = tx.next_revision().unwrap();
    for i in 0..LOAD_BALANCERS {
        let lb = tx
            .insert_load_balancer(&NewLoadBalancer {
                account_id: caller.account_id,
                project_id: project.id,
                name: format!("lb{i}"),
                lb_type: LbType::Network,
                region: "crash".into(),
                address: Some(format!("203.0.113.{}", i + 1).parse().unwrap()),
                attributes: json!({}),
            })
            .unwrap();
        for j in 0..LISTENERS_PER_LB {
            let listener = tx
                .insert_listener(&NewListener {
                    account_id: caller.account_id,
                    load_balancer_id: lb.id,
                    name: String::new(),
                    protocol: Protocol::TcpSsl,
                    port: 10_000 + j as u16,
                    attributes: json!({}),
                })
                .unwrap();
            tx.put_binding(&Binding {
                listener_id: listener.id,
                cert_id: old,
                role: BindingRole::Default,
                status: BindingStatus::Associated,
                revision,
            })
            .unwrap();
        }
    }
    tx.commit().unwrap();
    (old, new)
}

/// Reads the data directory as a killed server left it and checks every listener against
/// its job target. Returns (targets still pending, targets total).
fn check_invariants(dir: &std::path::Path, job: JobId, old: CertId, new: CertId) -> (usize, usize) {
    let store = SqliteStore::open_dir(dir).unwrap();
    let mut tx = store.read().unwrap();
    let targets = tx.job_targets(job, 0, 0).unwrap();
    assert_eq!(targets.len(), LOAD_BALANCERS * LISTENERS_PER_LB);
    let mut pending = 0;
    for target in &targets {
        let live: Vec<Binding> = tx
            .listener_bindings(target.listener_id)
            .unwrap()
            .into_iter()
            .filter(|b| b.status != BindingStatus::Dissociating)
            .collect();
        assert_eq!(live.len(), 1, "listener {} must hold exactly one certificate: {live:?}", target.listener_id);
        assert_eq!(live[0].role, BindingRole::Default);
        let expected = match target.status {
            TargetStatus::Pending => {
                pending += 1;
                old
            }
            TargetStatus::Running | TargetStatus::Succeeded => new,
            TargetStatus::Failed => panic!("target failed: {:?}", target.error),
        };
        assert_eq!(
            live[0].cert_id, expected,
            "listener {} disagrees with its target ({:?})",
            target.listener_id, target.status
        );
    }
    (pending, targets.len())
}

#[test]
fn replace_survives_sigkill_at_any_instant() {
    let dir = TempDir::new("crash");
    let ca = Ca::new("Crash CA");
    let (old, new) = seed(dir.path(), &ca);
    let options = || ServerOptions { extra_args: vec!["--apply-batch".into(), "10".into()], ..Default::default() };
    let mut server = Server::start_with(dir.path(), options());
    let answer =
        server.client().post("/v1/replace", &json!({"old_certificate_id": old, "new_certificate_id": new})).unwrap();
    let job = JobId::parse(answer["job_id"].as_str().unwrap()).unwrap();
    assert_eq!(answer["target_count"], LOAD_BALANCERS * LISTENERS_PER_LB);

    let mut kills = 0;
    let mut partial_kills = 0;
    let mut delays = [3u64, 17, 40, 9, 75, 1, 120, 33, 5, 60].iter().cycle();
    loop {
        std::thread::sleep(Duration::from_millis(*delays.next().unwrap()));
        server.kill9();
        kills += 1;
        let (pending, total) = check_invariants(dir.path(), job, old, new);
        if pending > 0 && pending < total {
            partial_kills += 1;
        }
        server = Server::start_with(dir.path(), options());
        let state = server.client().get(&format!("/v1/jobs/{job}")).unwrap()["state"].clone();
        if state == "succeeded" || kills >= 25 {
            break;
        }
    }
    let done = wait_job(&server.client(), &job.to_string());
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["counts"]["succeeded"], LOAD_BALANCERS * LISTENERS_PER_LB);
    server.kill9();
    let (pending, _) = check_invariants(dir.path(), job, old, new);
    assert_eq!(pending, 0);
    eprintln!("{kills} kills, {partial_kills} in the middle of applying targets");
    assert!(partial_kills >= 1, "no kill landed while targets were being applied");
}
