//! Conformance: the official UCloud SDK (`ucloud-sdk-python3`, unmodified) against a real
//! `certbind serve`: certificates, ULBs, VServers, application listeners, bindings,
//! UpdateSSLBinding in each of its four scopes (each followed by real TLS handshakes on
//! every listener), and every refusal as the SDK raises it.

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;

struct Fixture {
    server: Server,
    input: std::path::PathBuf,
    _dir: TempDir,
}

impl Fixture {
    fn run(&self, phase: &str, args: Option<Value>) -> Value {
        let args = args.map(|a| a.to_string()).unwrap_or_default();
        run_sdk_script(
            "ucloud_ulb.py",
            &self.server,
            &[
                ("CERTBIND_UCLOUD_PHASE", phase),
                ("CERTBIND_UCLOUD_INPUT", self.input.to_str().unwrap()),
                ("CERTBIND_UCLOUD_ARGS", &args),
            ],
        )
    }
}

/// Which certificate each listener serves for `sni`, by name ("a", "b", ...).
fn served(ports: &BTreeMap<&str, u16>, listeners: &[&str], sni: &str, certs: &[(&str, &Issued)]) -> Vec<String> {
    listeners
        .iter()
        .map(|l| {
            let chain = served_chain(ports[l], sni).unwrap_or_else(|e| panic!("handshake with {l}: {e}"));
            certs
                .iter()
                .find(|(_, issued)| issued.der == chain[0])
                .map(|(name, _)| format!("{l}={name}"))
                .unwrap_or_else(|| format!("{l}=unknown"))
        })
        .collect()
}

fn expect(pairs: &[(&str, &str)]) -> Vec<String> {
    pairs.iter().map(|(l, c)| format!("{l}={c}")).collect()
}

#[test]
fn ucloud_sdk_binds_certificates_and_update_ssl_binding_moves_exactly_its_scope() {
    let dir = TempDir::new("sdk-ucloud");
    let server = Server::start(&dir.path().join("data"));
    let ca1 = Ca::new("certbind UCloud test CA 1");
    let ca2 = Ca::new("certbind UCloud test CA 2");
    let a = ca1.issue(&["site.example"]);
    let b = ca2.issue(&["site.example"]);
    let c = ca1.issue(&["extra.example"]);
    let d = ca2.issue(&["site.example"]);
    let e = ca1.issue(&["temp.example"]);
    let names = ["l1", "l2", "l3", "l4", "l5", "http", "tcp", "spare"];
    let ports: BTreeMap<&str, u16> = names.iter().map(|n| (*n, free_port())).collect();
    let pem = |i: &Issued| json!({"cert": i.cert_pem, "key": i.key_pem, "chain": i.chain_pem});
    let input = dir.path().join("input.json");
    let mut data = json!({
        "certs": {"a": pem(&a), "b": pem(&b), "c": pem(&c), "d": pem(&d), "e": pem(&e)},
        "ports": ports,
    });
    std::fs::write(&input, data.to_string()).unwrap();
    let fixture = Fixture { server, input: input.clone(), _dir: dir };

    let ids = fixture.run("setup", None);
    data["ids"] = ids.clone();
    std::fs::write(&input, data.to_string()).unwrap();
    let ssl = |n: &str| ids["ssl"][n].as_str().unwrap().to_string();
    let lb = |n: &str| ids["ulb"][n].as_str().unwrap().to_string();
    let ls = |n: &str| ids["listener"][n].as_str().unwrap().to_string();

    let certs = [("a", &a), ("b", &b), ("c", &c), ("d", &d)];
    let all = ["l1", "l2", "l3", "l4", "l5"];
    let check = |wanted: &[(&str, &str)]| {
        assert_eq!(served(&ports, &all, "site.example", &certs), expect(wanted));
        // The extension certificate stays on l4 whatever happens to its default.
        assert_eq!(served(&ports, &["l4"], "extra.example", &certs), expect(&[("l4", "c")]));
    };
    check(&[("l1", "a"), ("l2", "a"), ("l3", "a"), ("l4", "a"), ("l5", "d")]);

    // Every refusal, once; none changes what is served.
    let codes = fixture.run("errors", None);
    let expected = json!({
        "bad_signature": 171,
        "missing_signature": 171,
        "unknown_public_key": 172,
        "unknown_action": 161,
        "missing_param": 230,
        "invalid_param": 230,
        "unknown_ssl": 4021,
        "ssl_of_other_project": 4021,
        "unknown_ulb": 4022,
        "unknown_vserver": 4023,
        "vserver_of_other_ulb": 4023,
        "certificate_unparseable": 4030,
        "key_mismatch": 4031,
        "bind_to_http_vserver": 4040,
        "ownership_mismatch": 4041,
        "old_not_bound_in_scope": 4042,
        "delete_bound_ssl": 4043,
        "unbind_default": 4044,
        "port_in_use": 4050,
    });
    assert_eq!(codes, expected);
    check(&[("l1", "a"), ("l2", "a"), ("l3", "a"), ("l4", "a"), ("l5", "d")]);

    // Only ListenerId: that listener.
    fixture.run("update", Some(json!({"OldSSLId": ssl("a"), "NewSSLId": ssl("b"), "ListenerId": ls("l1")})));
    check(&[("l1", "b"), ("l2", "a"), ("l3", "a"), ("l4", "a"), ("l5", "d")]);

    // Only LoadBalancerId: every listener of that load balancer (a VServer and an
    // application listener).
    fixture.run("update", Some(json!({"OldSSLId": ssl("a"), "NewSSLId": ssl("b"), "LoadBalancerId": lb("ulb2")})));
    check(&[("l1", "b"), ("l2", "a"), ("l3", "b"), ("l4", "b"), ("l5", "d")]);

    // Both, through the seed document's aliases ULBId / VServerId: that listener.
    fixture.run(
        "update",
        Some(json!({"invoke": true, "OldSSLId": ssl("a"), "NewSSLId": ssl("b"), "ULBId": lb("ulb1"), "VServerId": ls("l2")})),
    );
    check(&[("l1", "b"), ("l2", "b"), ("l3", "b"), ("l4", "b"), ("l5", "d")]);

    // Neither: every listener of the project, and nothing in another project.
    fixture.run("update", Some(json!({"OldSSLId": ssl("b"), "NewSSLId": ssl("a")})));
    check(&[("l1", "a"), ("l2", "a"), ("l3", "a"), ("l4", "a"), ("l5", "d")]);
}
