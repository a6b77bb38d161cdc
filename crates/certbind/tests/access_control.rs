//! Users, policies and the audit log: through the native API, the CLI's simulator and the
//! Alibaba SDK, against a real `certbind serve`.

mod common;

use certbind::client::Client;
use common::*;
use serde_json::{json, Value};

struct World {
    server: Server,
    _dir: TempDir,
    root: Client,
    cert: String,
    other_cert: String,
    lb1: String,
    lb2: String,
    l1: String,
    l2: String,
}

fn world(tag: &str) -> World {
    let dir = TempDir::new(tag);
    let server = Server::start(dir.path());
    let root = server.client();
    let ca = Ca::new("Access CA");
    let cert = upload(&root, &ca.issue(&["a.example.com"]), "a");
    let other_cert = upload(&root, &ca.issue(&["b.example.com"]), "b");
    let lb1 = create_lb(&root, "r1", "application");
    let lb2 = create_lb(&root, "r2", "application");
    let l1 = create_listener(&root, &lb1, "HTTPS", free_port(), Some(&cert));
    let l2 = create_listener(&root, &lb2, "HTTPS", free_port(), Some(&cert));
    World { server, _dir: dir, root, cert, other_cert, lb1, lb2, l1, l2 }
}

/// Creates a user with a key and the given policies (name → document).
fn user(w: &World, name: &str, policies: &[(&str, Value)]) -> (Client, String, String) {
    w.root.post("/v1/users", &json!({"name": name})).unwrap();
    for (policy, document) in policies {
        w.root.call("PUT", &format!("/v1/policies/{policy}"), Some(&json!({"document": document}))).unwrap();
        w.root.post(&format!("/v1/users/{name}/policies/{policy}"), &json!({})).unwrap();
    }
    let key = w.root.post(&format!("/v1/users/{name}/access-keys"), &json!({})).unwrap();
    let (id, secret) = (key["key_id"].as_str().unwrap().to_string(), key["secret"].as_str().unwrap().to_string());
    (w.server.client_with(&id, &secret), id, secret)
}

fn lb1_only(w: &World) -> Value {
    json!({"Statement": [{
        "Sid": "lb1",
        "Effect": "Allow",
        "Action": ["certbind:*"],
        "Resource": [
            format!("crn:certbind:*:*:loadbalancer/{}", w.lb1),
            "crn:certbind:*:*:certificate/*",
            "crn:certbind:*:*:job/*",
        ],
    }]})
}

#[test]
fn a_user_may_act_only_where_its_policies_allow() {
    let w = world("access-native");
    let (alice, _, _) = user(&w, "alice", &[("lb1-only", lb1_only(&w))]);
    let associate = |listener: &str| {
        alice.post(&format!("/v1/listeners/{listener}/associate"), &json!({"certificate_ids": [w.other_cert]}))
    };
    let job = associate(&w.l1).unwrap();
    assert_eq!(wait_job(&alice, job["job_id"].as_str().unwrap())["state"], "succeeded");
    match associate(&w.l2) {
        Err(certbind::client::ClientError::Api { status, code, message, .. }) => {
            assert_eq!((status, code.as_str()), (403, "Forbidden"));
            assert!(message.contains("certbind:AssociateCertificates"), "{message}");
            assert!(message.contains(&format!("loadbalancer/{}", w.lb2)), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(bindings(&w.root, &w.l2).len(), 1, "the refused request changed nothing");
    // Reads follow the same rule; lists need an allow on every object of the kind.
    assert!(alice.get(&format!("/v1/load-balancers/{}", w.lb1)).is_ok());
    assert_eq!(error_code(alice.get(&format!("/v1/load-balancers/{}", w.lb2))).0, 403);
    assert_eq!(error_code(alice.get("/v1/load-balancers")).0, 403);
    // User and policy management is the root's (or whoever a policy allows).
    assert_eq!(error_code(alice.post("/v1/users", &json!({"name": "mallory"}))).0, 403);

    // An explicit Deny beats the Allow.
    let deny = json!({"Statement": [{"Sid": "no-dissociate", "Effect": "Deny",
        "Action": "certbind:Dissociate*", "Resource": "*"}]});
    w.root.call("PUT", "/v1/policies/no-dissociate", Some(&json!({"document": deny}))).unwrap();
    w.root.post("/v1/users/alice/policies/no-dissociate", &json!({})).unwrap();
    let (status, code) = error_code(
        alice.post(&format!("/v1/listeners/{}/dissociate", w.l1), &json!({"certificate_ids": [w.other_cert]})),
    );
    assert_eq!((status, code.as_str()), (403, "Forbidden"));

    // The simulator says which statement decides, in any vocabulary.
    let sim = w
        .root
        .post(
            "/v1/policy-simulation",
            &json!({"user": "alice", "action": "certbind:DissociateCertificates", "resource": format!("crn:certbind:r1:1:loadbalancer/{}", w.lb1)}),
        )
        .unwrap();
    assert_eq!((sim["allowed"].clone(), sim["statement"].clone()), (json!(false), json!("no-dissociate")));
    let sim = w
        .root
        .post(
            "/v1/policy-simulation",
            &json!({"user": "alice", "action": "certbind:GetListener", "resource": format!("crn:certbind:r1:1:loadbalancer/{}", w.lb1)}),
        )
        .unwrap();
    assert_eq!((sim["allowed"].clone(), sim["statement"].clone()), (json!(true), json!("lb1")));
    let bad =
        w.root.call("PUT", "/v1/policies/bad", Some(&json!({"document": {"Statement": [{"Effect": "Perhaps"}]}})));
    assert_eq!(error_code(bad).1, "InvalidParameter");
}

#[test]
fn a_bulk_replace_with_one_forbidden_target_changes_nothing() {
    let w = world("access-bulk");
    let (alice, _, _) = user(&w, "alice", &[("lb1-only", lb1_only(&w))]);
    let body = json!({"old_certificate_id": w.cert, "new_certificate_id": w.other_cert});
    let (status, code) = error_code(alice.post("/v1/replace", &body));
    assert_eq!((status, code.as_str()), (403, "Forbidden"));
    assert_eq!(w.root.get("/v1/jobs?kind=replace").unwrap()["total"], 0, "no job was created");
    for listener in [&w.l1, &w.l2] {
        assert_eq!(bindings(&w.root, listener)[0].0, w.cert);
    }
    // The dry run says which targets are not allowed.
    let mut dry = body.clone();
    dry["dry_run"] = json!(true);
    let report = alice.post("/v1/replace", &dry).unwrap();
    assert_eq!(report["target_count"], 2);
    let forbidden = report["forbidden"].as_array().unwrap();
    assert_eq!(forbidden.len(), 1, "{report}");
    assert!(forbidden[0].as_str().unwrap().ends_with(&format!("loadbalancer/{}", w.lb2)));
    // Scoped to the allowed load balancer, the same user may.
    let mut scoped = body.clone();
    scoped["load_balancer_id"] = json!(w.lb1);
    let job = alice.post("/v1/replace", &scoped).unwrap();
    assert_eq!(wait_job(&alice, job["job_id"].as_str().unwrap())["state"], "succeeded");
}

#[test]
fn user_keys_rotate_and_refuse_when_disabled_or_deleted() {
    let w = world("access-keys");
    let (alice, key, _) = user(&w, "alice", &[("lb1-only", lb1_only(&w))]);
    assert!(alice.get(&format!("/v1/listeners/{}", w.l1)).is_ok());
    let second = w.root.post("/v1/users/alice/access-keys", &json!({})).unwrap();
    let (status, code) = error_code(w.root.post("/v1/users/alice/access-keys", &json!({})));
    assert_eq!((status, code.as_str()), (400, "InvalidParameter"), "at most two active keys");
    w.root.patch(&format!("/v1/users/alice/access-keys/{key}"), &json!({"enabled": false})).unwrap();
    assert_eq!(error_code(alice.get(&format!("/v1/listeners/{}", w.l1))).0, 401);
    let rotated = w.server.client_with(second["key_id"].as_str().unwrap(), second["secret"].as_str().unwrap());
    assert!(rotated.get(&format!("/v1/listeners/{}", w.l1)).is_ok());
    w.root.delete(&format!("/v1/users/alice/access-keys/{key}")).unwrap();
    assert_eq!(error_code(alice.get(&format!("/v1/listeners/{}", w.l1))).0, 401);
    w.root.delete("/v1/users/alice").unwrap();
    assert_eq!(error_code(rotated.get(&format!("/v1/listeners/{}", w.l1))).0, 401, "a deleted user's keys are gone");
}

#[test]
fn the_audit_log_records_writes_and_refusals_without_secrets() {
    let w = world("access-audit");
    let (alice, key, secret) = user(&w, "alice", &[("lb1-only", lb1_only(&w))]);
    let _ = alice.post(&format!("/v1/listeners/{}/associate", w.l2), &json!({"certificate_ids": [w.other_cert]}));
    let _ = w.server.client_with(&key, "wrong-secret").get("/v1/account");
    let log = w.root.get("/v1/audit-log?limit=1000").unwrap();
    let items = log["items"].as_array().unwrap();
    let denied = items
        .iter()
        .find(|e| e["outcome"] == "denied" && e["user"] == "alice" && e["action"] == "certbind:AssociateCertificates")
        .unwrap_or_else(|| panic!("no denied entry for alice: {log}"));
    assert_eq!(denied["key_id"], json!(key));
    assert_eq!(denied["dialect"], "native");
    assert_eq!(denied["error_code"], "Forbidden");
    assert!(denied["request_id"].as_str().is_some_and(|r| !r.is_empty()));
    assert!(denied["source"].as_str().is_some_and(|s| s.starts_with("127.0.0.1:")));
    assert!(items.iter().any(|e| e["outcome"] == "denied" && e["error_code"] == "Unauthenticated"));
    assert!(items.iter().any(|e| e["outcome"] == "allowed" && e["action"] == "certbind:CreateUser"));
    let text = log.to_string();
    assert!(!text.contains(&secret) && !text.contains(SECRET), "no secret in the audit log");
    let filtered = w.root.get("/v1/audit-log?user=alice&outcome=denied").unwrap();
    assert!(filtered["total"].as_u64().unwrap() >= 1);
    // A user without the right to read the audit log cannot.
    assert_eq!(error_code(alice.get("/v1/audit-log")).0, 403);
}

#[test]
fn cloud_vocabulary_policies_govern_sdk_calls() {
    let w = world("access-aliyun");
    let policy = json!({"Statement": [{
        "Effect": "Allow",
        "Action": "alb:*",
        "Resource": format!("acs:alb:*:*:loadbalancer/alb-{}", w.lb1.trim_start_matches("lb-")),
    }]});
    let (_, key, secret) = user(&w, "bob", &[("alb-lb1", policy)]);
    let cert_number = w.other_cert.trim_start_matches("cert-").to_string();
    let result = run_sdk_script(
        "access_aliyun.py",
        &w.server,
        &[
            ("USER_KEY_ID", &key),
            ("USER_SECRET", &secret),
            ("ALLOWED_LISTENER", &w.l1),
            ("DENIED_LISTENER", &w.l2),
            ("CERT_ID", &cert_number),
        ],
    );
    assert_eq!(result["refused"]["code"], "Forbidden.LoadBalancer");
    let log = w.root.get("/v1/audit-log?user=bob&outcome=denied").unwrap();
    let entry = &log["items"][0];
    assert_eq!(entry["dialect"], "aliyun");
    assert_eq!(entry["action"], "alb:AssociateAdditionalCertificatesWithListener");
    assert_eq!(entry["error_code"], "Forbidden.LoadBalancer");
    assert!(
        entry["resources"].as_array().unwrap().iter().any(|r| r == &json!(format!("ListenerId={}", w.l2))),
        "the entry names the refused listener: {entry}"
    );
}

#[test]
fn only_the_operators_root_key_or_a_policy_allowing_it_creates_accounts() {
    let w = world("access-accounts");
    // A user without any policy, and one whose policies allow everything but accounts.
    let (nobody, nobody_id, nobody_secret) = user(&w, "nobody", &[]);
    let (ops, _, _) = user(&w, "ops", &[("lb1-only", lb1_only(&w))]);
    for (who, client) in [("no policy", &nobody), ("lb1 only", &ops)] {
        let (status, code) = error_code(client.post("/v1/accounts", &json!({"name": format!("minted-{}", who.len())})));
        assert_eq!((status, code.as_str()), (403, "Forbidden"), "a user with {who} minted an account");
    }
    // The CLI says the same.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_certbind"))
        .args(["account", "create", "minted-by-cli"])
        .env("CERTBIND_API", w.server.url())
        .env("CERTBIND_ACCESS_KEY_ID", &nobody_id)
        .env("CERTBIND_ACCESS_KEY_SECRET", &nobody_secret)
        .output()
        .unwrap();
    assert!(!out.status.success(), "certbind account create succeeded for a user without a policy");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Forbidden"), "{}", String::from_utf8_lossy(&out.stderr));

    // A policy that names the action lets a user do it; the root key always may.
    let allow = json!({"Statement": [{"Effect": "Allow", "Action": ["certbind:CreateAccount"],
        "Resource": ["crn:certbind::1:account/*"]}]});
    let (admin, _, _) = user(&w, "admin", &[("accounts", allow)]);
    let made = admin.post("/v1/accounts", &json!({"name": "tenant-a"})).unwrap();
    let (tenant_key, tenant_secret) =
        (made["access_key"]["key_id"].as_str().unwrap(), made["access_key"]["secret"].as_str().unwrap());
    w.root.post("/v1/accounts", &json!({"name": "tenant-b"})).unwrap();

    // Another account's root key may not, and refusals made nothing.
    let tenant = w.server.client_with(tenant_key, tenant_secret);
    let (status, code) = error_code(tenant.post("/v1/accounts", &json!({"name": "tenant-c"})));
    assert_eq!((status, code.as_str()), (403, "Forbidden"));
    let denied = w.root.get("/v1/audit-log?outcome=denied").unwrap();
    let refused =
        denied["items"].as_array().unwrap().iter().filter(|e| e["action"] == "certbind:CreateAccount").count();
    assert!(refused >= 3, "the refusals are audited, named as policies name them: {denied}");
    let (status, code) = error_code(w.root.get("/v1/audit-log?outcome=bogus"));
    assert_eq!((status, code.as_str()), (400, "InvalidParameter"));
}
