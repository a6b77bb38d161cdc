//! One system behind all dialects (GUIDE section 4): against one `certbind serve`, the
//! official SDKs (tests/sdk/cross_dialect.py, unmodified SDKs) upload a certificate through
//! Tencent SSL, find it through Alibaba CAS and UCloud, bind it through the Alibaba ALB and
//! UCloud ULB APIs, rotate it through Tencent's one-click update to a certificate uploaded
//! through UCloud, and retire it through CAS. Every dialect id is checked against the core
//! id through the native API, and real TLS handshakes show what each listener serves.

mod common;

use certbind_api::dialects::tencent::ids as tencent_ids;
use certbind_core::ids::{CertId, ListenerId, LoadBalancerId};
use common::*;
use serde_json::{json, Value};

fn text(value: &Value, key: &str) -> String {
    value[key].as_str().unwrap_or_else(|| panic!("no {key} in {value}")).to_string()
}

/// The number after `prefix` in a dialect id such as `ssl-7` or `alb-3`.
fn number(id: &str, prefix: &str) -> i64 {
    id.strip_prefix(prefix)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{id} is not of the form {prefix}<n>"))
}

fn served_leaf(port: u16) -> Vec<u8> {
    let chain = served_chain(port, "shop.example.com").unwrap_or_else(|e| panic!("handshake on port {port}: {e}"));
    assert_eq!(chain.len(), 2, "the listener on {port} serves the leaf and its issuer");
    chain[0].clone()
}

fn sha256_hex(der: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, der))
}

/// `(cert, role, status)` of every binding of a listener, sorted.
fn sorted_bindings(client: &certbind::client::Client, listener: &str) -> Vec<(String, String, String)> {
    let mut all = bindings(client, listener);
    all.sort();
    all
}

#[test]
fn uploaded_in_tencent_bound_in_alibaba_and_ucloud_rotated_in_tencent_retired_in_alibaba() {
    let dir = TempDir::new("cross-dialect");
    let server = Server::start(&dir.path().join("data"));
    let native = server.client();
    let ca = Ca::new("certbind cross-dialect root").intermediate("certbind cross-dialect intermediate");
    let v1 = ca.issue(&["shop.example.com"]);
    let v2 = ca.issue(&["shop.example.com"]);
    let (alb_port, ulb_port) = (free_port(), free_port());
    let (alb_text, ulb_text) = (alb_port.to_string(), ulb_port.to_string());
    // UCloud's SDK always sends a ProjectId: the default project's name reaches the
    // project where the Tencent and Alibaba dialects keep everything.
    let projects = native.get("/v1/projects").unwrap();
    let default_project = projects["items"]
        .as_array()
        .and_then(|items| items.iter().find(|p| p["is_default"] == true))
        .map(|p| text(p, "name"))
        .unwrap_or_else(|| panic!("no default project: {projects}"));
    let run = |phase: &str, ids: &Value| {
        let ids = ids.to_string();
        run_sdk_script(
            "cross_dialect.py",
            &server,
            &[
                ("CROSS_PHASE", phase),
                ("IDS", &ids),
                ("V1_CERT", &v1.cert_pem),
                ("V1_KEY", &v1.key_pem),
                ("V2_CERT", &v2.cert_pem),
                ("V2_KEY", &v2.key_pem),
                ("CHAIN", &v1.chain_pem),
                ("ALB_PORT", &alb_text),
                ("ULB_PORT", &ulb_text),
                ("UCLOUD_PROJECT", &default_project),
            ],
        )
    };

    // 1 and 2: V1 uploaded through Tencent, found through CAS and UCloud, bound through
    // ALB and ULB.
    let setup = run("setup", &json!({}));
    eprintln!("setup: {setup}");
    let v1_id = setup["v1_cas"].as_i64().expect("CAS CertId");
    assert_eq!(number(&text(&setup, "v1_ssl"), "ssl-"), v1_id, "UCloud's id names the same certificate");
    assert_eq!(tencent_ids::parse_cert(&text(&setup, "v1_tc")), Some(CertId(v1_id)), "so does Tencent's");
    let shown = native.get(&format!("/v1/certificates/cert-{v1_id}")).unwrap();
    let cert = &shown["certificate"];
    assert_eq!(cert["name"], "cross-v1", "{shown}");
    assert_eq!(cert["common_name"], "shop.example.com");
    assert_eq!(cert["fingerprint_sha256"], sha256_hex(&v1.der));
    let mut bound: Vec<String> = shown["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| format!("{} {} {}", text(b, "listener_id"), text(b, "role"), text(b, "status")))
        .collect();
    bound.sort();
    let all = native.get("/v1/certificates").unwrap();
    assert_eq!(all["total"], 1, "one upload, one certificate: {all}");

    let alb_listener = text(&setup, "alb_listener");
    let alb_lb = LoadBalancerId(number(&text(&setup, "alb"), "alb-"));
    let ulb = LoadBalancerId(number(&text(&setup, "ulb"), "ulb-"));
    let alb_detail = native.get(&format!("/v1/listeners/{alb_listener}")).unwrap();
    assert_eq!(alb_detail["load_balancer_id"], alb_lb.to_string());
    assert_eq!(alb_detail["port"], alb_port);
    let alb_listener_id = ListenerId(number(&alb_listener, "lsn-"));
    // The UCloud VServer is the core listener on its ULB's port.
    let on_ulb = native.get(&format!("/v1/listeners?load_balancer_id={ulb}")).unwrap();
    let items = on_ulb["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{on_ulb}");
    assert_eq!(items[0]["port"], ulb_port);
    let ulb_listener = text(&items[0], "id");
    let ulb_listener_id = ListenerId(number(&ulb_listener, "lsn-"));
    let lbs = native.get("/v1/load-balancers").unwrap();
    let regions: Vec<&str> = lbs["items"].as_array().unwrap().iter().map(|lb| lb["region"].as_str().unwrap()).collect();
    let alb_region = text(&setup, "alb_region");
    assert_eq!(regions, [alb_region.as_str(), "cn-bj2"], "{lbs}");
    // UCloud names the ALB listener `vserver-<n>`; its own keeps the id it was created with.
    let mut expected_targets = vec![format!("vserver-{}", alb_listener_id.0), text(&setup, "vserver")];
    expected_targets.sort();
    let targets: Vec<String> =
        setup["v1_targets"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect();
    assert_eq!(targets, expected_targets);
    let mut expected_bound =
        vec![format!("{alb_listener} default Associated"), format!("{ulb_listener} default Associated")];
    expected_bound.sort();
    assert_eq!(bound, expected_bound, "V1 is the default of both listeners");
    for listener in [&alb_listener, &ulb_listener] {
        assert_eq!(
            sorted_bindings(&native, listener),
            [(format!("cert-{v1_id}"), "default".to_string(), "Associated".to_string())],
            "{listener}"
        );
    }
    assert!(served_leaf(alb_port) == v1.der, "the ALB listener serves V1");
    assert!(served_leaf(ulb_port) == v1.der, "the UCloud VServer serves V1");

    // 3: V2 uploaded through UCloud; V1 -> V2 everywhere through Tencent.
    let mut ids = setup.clone();
    let rotated = run("rotate", &ids);
    eprintln!("rotate: {rotated}");
    let v2_id = number(&text(&rotated, "v2_ssl"), "ssl-");
    assert_ne!(v2_id, v1_id);
    assert_eq!(tencent_ids::parse_cert(&text(&rotated, "v2_tc")), Some(CertId(v2_id)));
    let shown = native.get(&format!("/v1/certificates/cert-{v2_id}")).unwrap();
    let cert = &shown["certificate"];
    assert_eq!(cert["name"], "cross-v2", "{shown}");
    assert_eq!(cert["fingerprint_sha256"], sha256_hex(&v2.der));
    let mut both = vec![alb_region.clone(), "cn-bj2".to_string()];
    both.sort();
    assert_eq!(rotated["regions"], json!(both), "the update spans both regions");
    // The deploy record's details: both listeners, in Tencent's forms, succeeded.
    let mut details: Vec<Value> = rotated["details"].as_array().unwrap().clone();
    details.sort_by_key(|d| d["Port"].as_u64());
    let mut expected = vec![
        json!({
            "ListenerId": tencent_ids::listener(alb_listener_id),
            "InstanceId": tencent_ids::lb(alb_lb),
            "Region": alb_region,
            "Status": 1,
            "CertId": tencent_ids::cert(CertId(v2_id)),
            "OldCertId": tencent_ids::cert(CertId(v1_id)),
            "Protocol": "HTTPS",
            "Port": alb_port,
        }),
        json!({
            "ListenerId": tencent_ids::listener(ulb_listener_id),
            "InstanceId": tencent_ids::lb(ulb),
            "Region": "cn-bj2",
            "Status": 1,
            "CertId": tencent_ids::cert(CertId(v2_id)),
            "OldCertId": tencent_ids::cert(CertId(v1_id)),
            "Protocol": "HTTPS",
            "Port": ulb_port,
        }),
    ];
    expected.sort_by_key(|d| d["Port"].as_u64());
    assert_eq!(details, expected);
    let job = native.get(&format!("/v1/jobs/job-{}", rotated["record"])).unwrap();
    assert_eq!(job["state"], "succeeded", "the deploy record is the core job: {job}");
    assert!(served_leaf(alb_port) == v2.der, "the ALB listener serves V2");
    assert!(served_leaf(ulb_port) == v2.der, "the UCloud VServer serves V2");

    // 4 and 5: V2 as Alibaba and UCloud show it, refusals in each dialect's envelope, V1
    // retired through CAS.
    ids["v2_ssl"] = rotated["v2_ssl"].clone();
    ids["v2_tc"] = rotated["v2_tc"].clone();
    ids["ulb_listener"] = json!(ulb_listener);
    ids["details"] = json!(details);
    let jobs_before = native.get("/v1/jobs").unwrap()["total"].clone();
    let after = run("after", &ids);
    eprintln!("after: {after}");
    assert_eq!(after["v2_cas"], v2_id, "CAS shows V2 under the core id");
    let mut relations = vec![
        json!([format!("vserver-{}", alb_listener_id.0), format!("ulb-{}", alb_lb.0), true]),
        json!([text(&setup, "vserver"), text(&setup, "ulb"), true]),
    ];
    relations.sort_by_key(|r| r[0].as_str().unwrap().to_string());
    assert_eq!(after["relations"], json!(relations));
    let v2_tencent = tencent_ids::cert(CertId(v2_id));
    assert_eq!(
        after["tencent_listeners"],
        json!({
            tencent_ids::listener(alb_listener_id): ["HTTPS", alb_port, v2_tencent],
            tencent_ids::listener(ulb_listener_id): ["HTTPS", ulb_port, v2_tencent],
        })
    );
    let e = &after["errors"];
    assert_eq!(e["ucloud_delete_ssl"]["code"], 4043, "{e}");
    assert_eq!(e["ucloud_unbind_alb_default"]["code"], 4044, "{e}");
    assert_eq!(e["aliyun_delete"]["code"], "OperationDenied.CertificateInUse");
    assert_eq!(e["aliyun_delete"]["status"], 400);
    assert_eq!(e["aliyun_delete_v2_signature"]["code"], "OperationDenied.CertificateInUse");
    assert_eq!(e["tencent_delete"]["code"], "FailedOperation.BoundResources");
    assert_eq!(e["aliyun_dissociate_ucloud_default"]["code"], "OperationDenied.DefaultCertificateUsed");
    assert_eq!(e["aliyun_dissociate_ucloud_default"]["status"], 400);
    let aliyun_dissociate = e["aliyun_dissociate_ucloud_default"]["message"].as_str().unwrap();
    assert!(aliyun_dissociate.contains(&ulb_listener), "{aliyun_dissociate}");
    let aliyun_delete = e["aliyun_delete"]["message"].as_str().unwrap();
    assert!(aliyun_delete.contains(&format!("certificate {v2_id} ")), "{aliyun_delete}");
    // Each message names V2 (and the listener) in the dialect's own form, never the core's.
    let ucloud_delete = e["ucloud_delete_ssl"]["message"].as_str().unwrap();
    assert!(ucloud_delete.contains(&format!("ssl-{v2_id}")), "{ucloud_delete}");
    let ucloud_unbind = e["ucloud_unbind_alb_default"]["message"].as_str().unwrap();
    assert!(ucloud_unbind.contains(&format!("vserver-{}", alb_listener_id.0)), "{ucloud_unbind}");
    let tencent_delete = e["tencent_delete"]["message"].as_str().unwrap();
    assert!(tencent_delete.contains(&tencent_ids::cert(CertId(v2_id))), "{tencent_delete}");
    for message in [ucloud_delete, ucloud_unbind, tencent_delete, aliyun_delete, aliyun_dissociate] {
        assert!(!message.contains("cert-"), "a core id in a dialect's message: {message}");
    }
    assert_eq!(after["v1_gone_ucloud"]["code"], 4021);
    assert_eq!(after["v1_gone_tencent"], "FailedOperation.CertificateNotFound");

    // Nothing the refusals touched changed (not even a job was made); V1 is gone
    // everywhere, V2 still serves.
    assert_eq!(native.get("/v1/jobs").unwrap()["total"], jobs_before);
    let (status, code) = error_code(native.get(&format!("/v1/certificates/cert-{v1_id}")));
    assert_eq!((status, code.as_str()), (404, "CertificateNotFound"));
    assert!(native.get(&format!("/v1/certificates/cert-{v2_id}")).is_ok());
    for listener in [&alb_listener, &ulb_listener] {
        assert_eq!(
            sorted_bindings(&native, listener),
            [(format!("cert-{v2_id}"), "default".to_string(), "Associated".to_string())],
            "{listener}"
        );
    }
    assert!(served_leaf(alb_port) == v2.der);
    assert!(served_leaf(ulb_port) == v2.der);
}
