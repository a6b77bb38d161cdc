//! Alibaba Cloud conformance: ALB 2020-06-16, NLB 2022-04-30 and CAS 2020-04-07 driven by
//! the official Python SDKs (tests/sdk/aliyun_*.py), unmodified, against a real
//! `certbind serve`, with both signature versions. Between steps, real TLS handshakes
//! with each certificate's host name as SNI prove what the listener serves.

mod common;

use common::*;
use serde_json::Value;
use std::net::TcpListener;
use std::path::Path;

struct Certs {
    dir: std::path::PathBuf,
    der: std::collections::HashMap<&'static str, Vec<u8>>,
}

/// Leaf certificates a.example.com .. e.example.com (with their chain), written where the
/// scripts read them (`CERT_DIR/<name>.crt` and `.key`).
fn make_certs(base: &Path) -> Certs {
    let dir = base.join("certs");
    std::fs::create_dir_all(&dir).unwrap();
    let ca = Ca::new("certbind aliyun test root").intermediate("certbind aliyun test intermediate");
    let mut der = std::collections::HashMap::new();
    for name in ["a", "b", "c", "d", "e"] {
        let issued = ca.issue(&[&format!("{name}.example.com")]);
        std::fs::write(dir.join(format!("{name}.crt")), format!("{}{}", issued.cert_pem, issued.chain_pem)).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), &issued.key_pem).unwrap();
        der.insert(name, issued.der);
    }
    Certs { dir, der }
}

/// The leaf certificate the listener on `port` presents for `sni`.
fn served_leaf(port: u16, sni: &str) -> Vec<u8> {
    let chain = served_chain(port, sni).unwrap_or_else(|e| panic!("handshake with {sni} on {port}: {e}"));
    assert_eq!(chain.len(), 2, "the listener serves the leaf and its intermediate");
    chain[0].clone()
}

fn assert_serves(port: u16, certs: &Certs, expectations: &[(&str, &str)]) {
    for (sni, cert) in expectations {
        assert!(served_leaf(port, sni) == certs.der[cert], "{sni} on port {port} should be served certificate {cert}");
    }
}

fn statuses(value: &Value) -> Vec<String> {
    value.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
}

fn product_flow(product: &str) {
    let dir = TempDir::new(&format!("aliyun-{product}"));
    let server = Server::start(&dir.path().join("data"));
    let certs = make_certs(dir.path());
    let tls_port = free_port();
    let ports: Vec<String> = (0..3).map(|_| free_port().to_string()).collect();
    let tls = tls_port.to_string();
    let cert_dir = certs.dir.to_string_lossy().to_string();
    let base = [
        ("PRODUCT", product),
        ("CERT_DIR", cert_dir.as_str()),
        ("TLS_PORT", tls.as_str()),
        ("PLAIN_PORT", ports[0].as_str()),
    ];
    let run = |phase: &str, ids: &str, extra: &[(&str, &str)]| {
        let mut env: Vec<(&str, &str)> = base.to_vec();
        env.push(("PHASE", phase));
        env.push(("IDS", ids));
        env.extend_from_slice(extra);
        run_sdk_script("aliyun_flow.py", &server, &env)
    };

    // Upload through CAS, create the load balancer and listeners, associate b and c.
    let setup = run("setup", "{}", &[]);
    eprintln!("{product} setup: {setup}");
    let mut ids = setup["ids"].clone();
    assert_eq!(statuses(&setup["create_job"]).last().unwrap(), "Succeeded");
    assert_eq!(statuses(&setup["assoc_job"]).last().unwrap(), "Succeeded");
    assert_eq!(statuses(&setup["assoc_seen"]).last().unwrap(), "Associated");
    assert!(ids["lb"].as_str().unwrap().starts_with(&format!("{product}-")));
    // The default answers for names nothing else covers; each additional one for its own.
    assert_serves(
        tls_port,
        &certs,
        &[("a.example.com", "a"), ("b.example.com", "b"), ("c.example.com", "c"), ("other.example.com", "a")],
    );

    // Dissociate b, move the default from a to d.
    let dissociated = run("dissociate", &ids.to_string(), &[]);
    eprintln!("{product} dissociate: {dissociated}");
    assert_eq!(statuses(&dissociated["dissoc_job"]).last().unwrap(), "Succeeded");
    assert_eq!(statuses(&dissociated["update_job"]).last().unwrap(), "Succeeded");
    assert_eq!(statuses(&dissociated["dissoc_seen"]).last().unwrap(), "absent");
    assert_serves(
        tls_port,
        &certs,
        &[("b.example.com", "d"), ("a.example.com", "d"), ("c.example.com", "c"), ("d.example.com", "d")],
    );

    // Every error code, provoked once. The busy port is held here so that listener
    // cannot bind.
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_port = busy.local_addr().unwrap().port().to_string();
    let errors = run(
        "errors",
        &ids.to_string(),
        &[("SPARE_PORT", ports[1].as_str()), ("QUOTA_PORT", ports[2].as_str()), ("BUSY_PORT", busy_port.as_str())],
    );
    drop(busy);
    eprintln!("{product} errors: {errors}");
    let e = &errors["errors"];
    let plain_code = if product == "alb" {
        "OperationDenied.HttpListenerNotSupport"
    } else {
        "OperationDenied.ListenerProtocolNotSupport"
    };
    for (name, code, status) in [
        ("dry_run", "DryRunOperation", 400),
        ("dry_run_v2", "DryRunOperation", 400),
        ("dry_run_invalid", "ResourceAlreadyAssociated.Certificate", 400),
        ("token_mismatch", "IdempotenceParamNotMatch", 400),
        ("already_associated", "ResourceAlreadyAssociated.Certificate", 400),
        ("not_associated", "ResourceNotAssociated.Certificate", 400),
        ("default_used", "OperationDenied.DefaultCertificateUsed", 400),
        ("listener_not_found", "ResourceNotFound.Listener", 404),
        ("cert_not_found", "ResourceNotFound.Certificate", 404),
        ("plain_listener", plain_code, 400),
        ("no_default", "OperationFailed.DefaultCertificateNotFound", 400),
        ("too_many", "InvalidParameter", 400),
        ("missing_param", "MissingParam.ListenerId", 400),
        ("illegal_port", "IllegalParam.ListenerPort", 400),
        ("illegal_dry_run", "IllegalParam.DryRun", 400),
        ("illegal_protocol", "IllegalParam.ListenerProtocol", 400),
        ("other_products_listener", "ResourceNotFound.Listener", 404),
        ("other_products_lb", "ResourceNotFound.LoadBalancer", 404),
        ("create_dry_run", "DryRunOperation", 400),
        ("missing_vpc", "MissingParam.VpcId", 400),
        ("configuring", "ResourceInConfiguring.Listener", 400),
        ("incorrect_status", "IncorrectStatus.Listener", 400),
        ("quota", "ResourceQuotaExceeded.LoadBalancerCertificatesNum", 400),
        ("cas_missing_name", "MissingParam.Name", 400),
        ("cas_bad_pem", "InvalidParameter", 400),
        ("cas_illegal_id", "IllegalParam.CertId", 400),
        ("cas_not_found", "ResourceNotFound.Certificate", 404),
        ("cas_in_use", "OperationDenied.CertificateInUse", 400),
    ] {
        assert_eq!(e[name]["code"], code, "{name}: {}", e[name]);
        assert_eq!(e[name]["status"], status, "{name}: {}", e[name]);
    }
    // Messages name the resources in the product's own id forms.
    let listener = ids["listener"].as_str().unwrap().to_string();
    assert!(e["listener_not_found"]["message"].as_str().unwrap().contains("lsn-999999"));
    assert!(e["default_used"]["message"].as_str().unwrap().contains(&listener));
    assert!(e["configuring"]["message"].as_str().unwrap().contains(&listener));
    assert!(e["quota"]["message"].as_str().unwrap().contains("26/25"));
    // The quota listener serves what its 25 associations added (copies of e).
    let quota_port: u16 = ports[2].parse().unwrap();
    assert_serves(quota_port, &certs, &[("e.example.com", "e"), ("a.example.com", "a")]);
    // The failed and dry-run writes changed nothing that is served.
    assert_serves(tls_port, &certs, &[("c.example.com", "c"), ("d.example.com", "d"), ("e.example.com", "e")]);

    ids["busy"] = errors["busy"].clone();
    let cleaned = run("cleanup", &ids.to_string(), &[]);
    assert_eq!(cleaned["cleaned"], true);
    assert!(served_chain(tls_port, "c.example.com").is_err(), "a deleted listener serves nothing");
}

#[test]
fn alb_and_cas_through_the_official_sdks() {
    product_flow("alb");
}

#[test]
fn nlb_and_cas_through_the_official_sdks() {
    product_flow("nlb");
}

#[test]
fn signatures_nonces_timestamps_and_actions_are_checked() {
    let dir = TempDir::new("aliyun-auth");
    let server = Server::start(dir.path());
    let results = run_sdk_script("aliyun_auth.py", &server, &[("MODE", "auth")]);
    for (name, code) in [
        ("wrong_secret_acs3", "SignatureDoesNotMatch"),
        ("wrong_secret_v2", "SignatureDoesNotMatch"),
        ("unknown_key_acs3", "InvalidAccessKeyId.NotFound"),
        ("unknown_key_v2", "InvalidAccessKeyId.NotFound"),
        ("expired_acs3", "InvalidTimeStamp.Expired"),
        ("expired_v2", "InvalidTimeStamp.Expired"),
        ("invalid_action", "InvalidAction.NotFound"),
        ("invalid_action_v2", "InvalidAction.NotFound"),
        ("invalid_version", "InvalidVersion"),
    ] {
        assert_eq!(results[name]["code"], code, "{name}: {}", results[name]);
    }
    assert_eq!(results["replay_acs3"], "SignatureNonceUsed");
    assert_eq!(results["replay_v2"], "SignatureNonceUsed");
    assert_eq!(results["tampered_acs3"], "SignatureDoesNotMatch");
    assert_eq!(results["tampered_v2"], "SignatureDoesNotMatch");
    assert_eq!(results["unsigned"], "MissingParam.Signature");
    assert_eq!(results["garbled"], "IncompleteSignature");
    assert_eq!(results["unsigned_action"], "IncompleteSignature");
}
