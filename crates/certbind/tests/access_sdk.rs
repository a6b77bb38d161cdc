//! Access control through the clouds' official SDKs, unmodified, against a real
//! `certbind serve`: policies in Tencent's and UCloud's own vocabularies let a user change
//! one load balancer and refuse it another with the dialect's code; a bulk change with one
//! forbidden target is refused as a whole and changes nothing (checked with real TLS
//! handshakes); Deny beats Allow; a second account sees nothing of the first through any
//! SDK; the audit log holds the refused SDK requests, without secrets.

mod common;

use certbind::client::Client;
use certbind_api::dialects::tencent;
use certbind_core::ids::{CertId, ListenerId, LoadBalancerId};
use common::*;
use serde_json::{json, Value};

const SNI: &str = "site.example.com";

struct World {
    server: Server,
    _dir: TempDir,
    root: Client,
    /// Three certificates for the same name: what a listener serves tells them apart.
    issued: [Issued; 3],
    certs: [String; 3],
    lb1: String,
    lb2: String,
    l1: String,
    l2: String,
    ports: [u16; 2],
}

/// Two load balancers in `region`, each with an HTTPS listener serving certificate "a".
fn world(tag: &str, region: &str) -> World {
    let dir = TempDir::new(tag);
    let server = Server::start(dir.path());
    let root = server.client();
    let ca = Ca::new("Access SDK CA");
    let issued = [ca.issue(&[SNI]), ca.issue(&[SNI]), ca.issue(&[SNI])];
    let certs = [upload(&root, &issued[0], "a"), upload(&root, &issued[1], "b"), upload(&root, &issued[2], "c")];
    let lb1 = create_lb(&root, region, "application");
    let lb2 = create_lb(&root, region, "application");
    let ports = [free_port(), free_port()];
    let l1 = create_listener(&root, &lb1, "HTTPS", ports[0], Some(&certs[0]));
    let l2 = create_listener(&root, &lb2, "HTTPS", ports[1], Some(&certs[0]));
    World { server, _dir: dir, root, issued, certs, lb1, lb2, l1, l2, ports }
}

impl World {
    /// Which certificate ("a", "b", "c") each listener presents in a real handshake.
    fn served(&self) -> [&'static str; 2] {
        self.ports.map(|port| {
            let chain = served_chain(port, SNI).unwrap_or_else(|e| panic!("handshake on port {port}: {e}"));
            match self.issued.iter().position(|i| i.der == chain[0]) {
                Some(0) => "a",
                Some(1) => "b",
                Some(2) => "c",
                _ => "unknown",
            }
        })
    }

    fn jobs(&self, kind: &str) -> u64 {
        self.root.get(&format!("/v1/jobs?kind={kind}")).unwrap()["total"].as_u64().unwrap()
    }

    /// Creates a user with a key and the given policies (name → document): (key id, secret).
    fn user(&self, name: &str, policies: &[(&str, Value)]) -> (String, String) {
        self.root.post("/v1/users", &json!({"name": name})).unwrap();
        for (policy, document) in policies {
            self.root.call("PUT", &format!("/v1/policies/{policy}"), Some(&json!({"document": document}))).unwrap();
            self.root.post(&format!("/v1/users/{name}/policies/{policy}"), &json!({})).unwrap();
        }
        let key = self.root.post(&format!("/v1/users/{name}/access-keys"), &json!({})).unwrap();
        (key["key_id"].as_str().unwrap().to_string(), key["secret"].as_str().unwrap().to_string())
    }

    /// The denied audit entry of `user` for `action`, checked for its key and dialect.
    fn denied(&self, user: &str, key: &str, dialect: &str, action: &str, code: &str) -> Value {
        let log = self.root.get(&format!("/v1/audit-log?user={user}&outcome=denied&limit=1000")).unwrap();
        let entry = log["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["action"] == action)
            .unwrap_or_else(|| panic!("no denied {action} of {user} in the audit log: {log}"))
            .clone();
        assert_eq!(entry["dialect"], dialect, "{entry}");
        assert_eq!(entry["key_id"], key, "{entry}");
        assert_eq!(entry["error_code"], code, "{entry}");
        assert!(entry["request_id"].as_str().is_some_and(|r| !r.is_empty()), "{entry}");
        entry
    }

    /// No secret (the users' nor the root's) anywhere in the audit log.
    fn assert_no_secret_logged(&self, secrets: &[&str]) {
        let text = self.root.get("/v1/audit-log?limit=1000").unwrap().to_string();
        for secret in secrets.iter().chain([&SECRET]) {
            assert!(!text.contains(secret), "a secret is in the audit log");
        }
    }
}

fn lb_id(native: &str) -> LoadBalancerId {
    LoadBalancerId::parse(native).unwrap()
}

fn listener_id(native: &str) -> ListenerId {
    ListenerId::parse(native).unwrap()
}

fn cert_id(native: &str) -> CertId {
    CertId::parse(native).unwrap()
}

/// UCloud's forms of the core ids (`ssl-N`, `ulb-N`, `vserver-N`).
fn uc_ssl(id: CertId) -> String {
    format!("ssl-{}", id.0)
}

fn uc_ulb(id: LoadBalancerId) -> String {
    format!("ulb-{}", id.0)
}

#[test]
fn tencent_policies_allow_one_load_balancer_and_refuse_the_other() {
    let w = world("access-sdk-tc", "ap-guangzhou");
    let (lb1, lb2) = (tencent::ids::lb(lb_id(&w.lb1)), tencent::ids::lb(lb_id(&w.lb2)));
    let (l1, l2) = (tencent::ids::listener(listener_id(&w.l1)), tencent::ids::listener(listener_id(&w.l2)));
    let [a, b, c] = w.certs.clone().map(|id| tencent::ids::cert(cert_id(&id)));
    let allow = json!({"Statement": [{
        "Sid": "lb1",
        "Effect": "Allow",
        "Action": ["clb:*", "ssl:*"],
        "Resource": [format!("qcs::clb:*:uin/*:clb/{lb1}"), "qcs::ssl::uin/*:certificate/*".to_string()],
    }]});
    let deny = json!({"Statement": [{
        "Sid": "no-listener-changes",
        "Effect": "Deny",
        "Action": "clb:ModifyListener",
        "Resource": "*",
    }]});
    let (key, secret) = w.user("carol", &[("tc-lb1", allow.clone())]);
    let (deny_key, deny_secret) = w.user("dave", &[("tc-lb1", allow), ("tc-no-modify", deny)]);
    let env = |phase: &'static str| {
        vec![
            ("TC_PHASE", phase.to_string()),
            ("USER_KEY_ID", key.clone()),
            ("USER_SECRET", secret.clone()),
            ("DENY_KEY_ID", deny_key.clone()),
            ("DENY_SECRET", deny_secret.clone()),
            ("LB1", lb1.clone()),
            ("LB2", lb2.clone()),
            ("L1", l1.clone()),
            ("L2", l2.clone()),
            ("OLD", a.clone()),
            ("NEW", b.clone()),
            ("THIRD", c.clone()),
        ]
    };
    let run = |phase| {
        let env = env(phase);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        run_sdk_script("access_tencent.py", &w.server, &env)
    };

    // Refused: LB2, the one-click update spanning LB1 and LB2, and (Deny) even LB1.
    let refused = run("refused");
    let bulk = refused["bulk"].as_str().unwrap();
    assert!(bulk.contains("ssl:UpdateCertificateInstance") && bulk.contains(&format!(":clb/{lb2}")), "{bulk}");
    // The native name in the reason keeps its native id.
    assert!(bulk.contains(&format!(":loadbalancer/{}", w.lb2)), "{bulk}");
    assert_eq!(w.served(), ["a", "a"], "the refused requests changed nothing");
    assert_eq!(w.jobs("one_click_update"), 0, "no deploy record for the refused update");

    // Allowed: LB1's listener with ModifyListener, then a one-click update whose only
    // listener is on LB1.
    run("allowed");
    assert_eq!(w.served(), ["c", "a"]);

    for (user, user_key, action) in [
        ("carol", &key, "ssl:UpdateCertificateInstance"),
        ("carol", &key, "clb:ModifyListener"),
        ("dave", &deny_key, "clb:ModifyListener"),
    ] {
        w.denied(user, user_key, "tencent", action, "AuthFailure.UnauthorizedOperation");
    }
    w.assert_no_secret_logged(&[&secret, &deny_secret]);
}

#[test]
fn ucloud_policies_allow_one_ulb_and_refuse_the_other() {
    let w = world("access-sdk-uc", "cn-bj2");
    let (ulb1, ulb2) = (uc_ulb(lb_id(&w.lb1)), uc_ulb(lb_id(&w.lb2)));
    let vs2 = format!("vserver-{}", listener_id(&w.l2).0);
    let [a, b, _] = w.certs.clone().map(|id| uc_ssl(cert_id(&id)));
    let policy = json!({"Statement": [{
        "Effect": "Allow",
        "Action": "ulb:*",
        "Resource": format!("ucs:ulb:*:*:ulb/{ulb1}"),
    }]});
    let (key, secret) = w.user("erin", &[("ulb1-only", policy)]);
    let run = |phase: &str| {
        run_sdk_script(
            "access_ucloud.py",
            &w.server,
            &[
                ("UC_PHASE", phase),
                ("USER_KEY_ID", &key),
                ("USER_SECRET", &secret),
                ("ULB1", &ulb1),
                ("ULB2", &ulb2),
                ("VS2", &vs2),
                ("SSL_A", &a),
                ("SSL_B", &b),
            ],
        )
    };

    let refused = run("refused");
    let project_wide = refused["project_wide"].as_str().unwrap();
    assert!(project_wide.contains(&format!(":ulb/{ulb2}")), "{project_wide}");
    assert!(project_wide.contains(&format!(":loadbalancer/{}", w.lb2)), "{project_wide}");
    assert_eq!(w.served(), ["a", "a"], "the refused requests changed nothing");
    assert_eq!(w.jobs("replace"), 0, "no job for the refused requests");

    run("allowed");
    assert_eq!(w.served(), ["b", "a"]);

    w.denied("erin", &key, "ucloud", "ulb:UpdateSSLBinding", "4062");
    w.assert_no_secret_logged(&[&secret]);
}

#[test]
fn a_second_account_sees_nothing_of_the_first_through_any_sdk() {
    let dir = TempDir::new("access-sdk-tenants");
    let server = Server::start(dir.path());
    let root = server.client();
    let created = root.post("/v1/accounts", &json!({"name": "tenant-two"})).unwrap();
    let (other_key, other_secret) = (
        created["access_key"]["key_id"].as_str().unwrap().to_string(),
        created["access_key"]["secret"].as_str().unwrap().to_string(),
    );
    let other = server.client_with(&other_key, &other_secret);
    let ca = Ca::new("Tenants CA");
    // Each account: a certificate of the same name and a load balancer in each cloud's region.
    let setup = |client: &Client| {
        let cert = cert_id(&upload(client, &ca.issue(&[SNI]), "site"));
        let lbs =
            ["ap-guangzhou", "cn-bj2", "cn-hangzhou"].map(|region| lb_id(&create_lb(client, region, "application")));
        (cert, lbs)
    };
    let (cert, [tc_lb, uc_lb, ali_lb]) = setup(&root);
    let (other_cert, [other_tc_lb, other_uc_lb, other_ali_lb]) = setup(&other);
    let tc_listener = create_listener(&root, &tc_lb.to_string(), "HTTPS", free_port(), Some(&cert.to_string()));
    let user_env = [("OTHER_KEY_ID", other_key.as_str()), ("OTHER_SECRET", other_secret.as_str())];
    let with = |extra: &[(&str, &str)]| -> Vec<(String, String)> {
        user_env.iter().chain(extra).map(|(k, v)| (k.to_string(), v.to_string())).collect()
    };
    let run = |script: &str, env: Vec<(String, String)>| {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        run_sdk_script(script, &server, &env)
    };

    let tc = run(
        "access_tencent.py",
        with(&[
            ("TC_PHASE", "isolation"),
            ("CERT", &tencent::ids::cert(cert)),
            ("OTHER_CERT", &tencent::ids::cert(other_cert)),
            ("LB1", &tencent::ids::lb(tc_lb)),
            ("L1", &tencent::ids::listener(listener_id(&tc_listener))),
            ("OTHER_LB", &tencent::ids::lb(other_tc_lb)),
        ]),
    );
    assert_eq!(tc["listeners"], "ResourceNotFound", "{tc}");
    let uc = run(
        "access_ucloud.py",
        with(&[
            ("UC_PHASE", "isolation"),
            ("SSL_A", &uc_ssl(cert)),
            ("OTHER_SSL", &uc_ssl(other_cert)),
            ("ULB1", &uc_ulb(uc_lb)),
            ("OTHER_ULB", &uc_ulb(other_uc_lb)),
        ]),
    );
    assert!(uc["describe_ulb"].as_str().is_some(), "{uc}");
    let alb = |id: LoadBalancerId| format!("alb-{}", id.0);
    let ali = run(
        "access_aliyun_isolation.py",
        with(&[
            ("CERT_ID", &cert.0.to_string()),
            ("OTHER_CERT_ID", &other_cert.0.to_string()),
            ("ALB_ID", &alb(ali_lb)),
            ("OTHER_ALB_ID", &alb(other_ali_lb)),
        ]),
    );
    assert_eq!(ali["load_balancer"], "ResourceNotFound.LoadBalancer", "{ali}");
    // Nothing of the first account changed, and the second sees its own only.
    assert_eq!(root.get("/v1/certificates").unwrap()["items"].as_array().unwrap().len(), 1);
    assert_eq!(other.get("/v1/load-balancers").unwrap()["items"].as_array().unwrap().len(), 3);
}
