//! The Tencent Cloud dialect driven by the official Python SDKs (tencentcloud-sdk-python-ssl
//! and -clb, unmodified), against a real `certbind serve`; listeners are checked with real
//! TLS handshakes.

mod common;

use common::*;
use serde_json::Value;

fn leaf_of(issued: &Issued) -> Vec<u8> {
    issued.der.clone()
}

fn served_leaf(port: u16, sni: &str) -> Vec<u8> {
    served_chain(port, sni).unwrap_or_else(|e| panic!("handshake on port {port}: {e}"))[0].clone()
}

fn text(value: &Value, key: &str) -> String {
    value[key].as_str().unwrap_or_else(|| panic!("no {key} in {value}")).to_string()
}

#[test]
fn one_click_update_across_regions_with_region_filter_and_rollback() {
    let dir = TempDir::new("tc-flow");
    let server = Server::start(dir.path());
    let ca = Ca::new("Flow CA");
    // The old certificate expires in ten days: FilterExpiring finds it until the update
    // switches its expiry reminder off.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let old = ca.issue_valid(&["flow.example.com"], Some((now - 86400, now + 10 * 86400)));
    let new = ca.issue(&["flow.example.com"]);
    let (https_port, tcpssl_port) = (free_port(), free_port());
    let (https, tcpssl) = (https_port.to_string(), tcpssl_port.to_string());

    let setup = run_sdk_script(
        "tencent_flow.py",
        &server,
        &[
            ("TC_PHASE", "setup"),
            ("OLD_CERT", &old.cert_pem),
            ("OLD_KEY", &old.key_pem),
            ("PORT_HTTPS", &https),
            ("PORT_TCPSSL", &tcpssl),
        ],
    );
    let (old_id, lb1, lb2, l1, l2) =
        (text(&setup, "old"), text(&setup, "lb1"), text(&setup, "lb2"), text(&setup, "l1"), text(&setup, "l2"));
    assert_eq!(served_leaf(https_port, "flow.example.com"), leaf_of(&old));
    assert_eq!(served_leaf(tcpssl_port, "flow.example.com"), leaf_of(&old));
    // One system: the native API sees the same certificate and load balancers.
    let native = server.client();
    let certs = native.get("/v1/certificates").unwrap();
    assert!(certs["items"].as_array().unwrap().iter().any(|c| c["name"] == "flow-old"), "{certs}");
    let lbs = native.get("/v1/load-balancers").unwrap();
    let regions: Vec<&str> = lbs["items"].as_array().unwrap().iter().map(|lb| lb["region"].as_str().unwrap()).collect();
    assert_eq!(regions, ["ap-guangzhou", "ap-beijing"]);

    // Only ap-guangzhou: the HTTPS listener moves, the Beijing TCP_SSL listener stays.
    let first = run_sdk_script(
        "tencent_flow.py",
        &server,
        &[
            ("TC_PHASE", "update_region"),
            ("OLD_ID", &old_id),
            ("NEW_CERT", &new.cert_pem),
            ("NEW_KEY", &new.key_pem),
            ("L1", &l1),
            ("LB1", &lb1),
        ],
    );
    let new_id = text(&first, "new");
    assert_eq!(served_leaf(https_port, "flow.example.com"), leaf_of(&new));
    assert_eq!(served_leaf(tcpssl_port, "flow.example.com"), leaf_of(&old));

    // Then everything (over GET): the Beijing listener follows.
    let second = run_sdk_script(
        "tencent_flow.py",
        &server,
        &[("TC_PHASE", "update_all"), ("OLD_ID", &old_id), ("NEW_ID", &new_id), ("L2", &l2)],
    );
    assert_eq!(served_leaf(https_port, "flow.example.com"), leaf_of(&new));
    assert_eq!(served_leaf(tcpssl_port, "flow.example.com"), leaf_of(&new));

    // Rolling the second record back restores the old certificate on its listener only.
    let record = second["record"].as_i64().expect("record id").to_string();
    run_sdk_script(
        "tencent_flow.py",
        &server,
        &[
            ("TC_PHASE", "rollback"),
            ("RECORD", &record),
            ("OLD_ID", &old_id),
            ("NEW_ID", &new_id),
            ("L2", &l2),
            ("LB2", &lb2),
        ],
    );
    assert_eq!(served_leaf(tcpssl_port, "flow.example.com"), leaf_of(&old));
    assert_eq!(served_leaf(https_port, "flow.example.com"), leaf_of(&new));
}

#[test]
fn every_action_and_error_code_through_the_sdk() {
    let dir = TempDir::new("tc-actions");
    let server = Server::start(dir.path());
    let ca = Ca::new("Actions CA");
    let a = ca.issue(&["alpha.example.com"]);
    let b = ca.issue(&["bravo.example.com"]);
    let c = ca.issue(&["charlie.example.com"]);
    let e = ca.issue(&["bravo.example.com"]);
    let intermediate = ca.intermediate("Actions Intermediate");
    let chained = intermediate.issue(&["chain.example.com"]);
    let stranger = Ca::new("Unrelated CA");
    let (port1, port2) = (free_port().to_string(), free_port().to_string());
    let result = run_sdk_script(
        "tencent_actions.py",
        &server,
        &[
            ("A_CERT", &a.cert_pem),
            ("A_KEY", &a.key_pem),
            ("B_CERT", &b.cert_pem),
            ("B_KEY", &b.key_pem),
            ("C_CERT", &c.cert_pem),
            ("E_CERT", &e.cert_pem),
            ("E_KEY", &e.key_pem),
            ("CHAIN_LEAF", &chained.cert_pem),
            ("CHAIN_KEY", &chained.key_pem),
            ("CHAIN_WRONG", &stranger.pem),
            ("PORT1", &port1),
            ("PORT2", &port2),
        ],
    );
    let codes: Vec<&str> = result["codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    for expected in [
        "AuthFailure.SecretIdNotFound",
        "AuthFailure.SignatureFailure",
        "AuthFailure.SignatureExpire",
        "AuthFailure.InvalidAuthorization",
        "InvalidAction",
        "MissingParameter",
        "InvalidParameter",
        "InvalidParameterValue",
        "UnknownParameter",
        "ResourceNotFound",
        "FailedOperation.CertificateNotFound",
        "FailedOperation.CertificateMatchError",
        "FailedOperation.CertificateParseError",
        "InvalidParameterValue.IntermediateCertNotSame",
        "FailedOperation.CertificateHostResourceTypeInvalid",
        "FailedOperation.CertificateExists",
        "FailedOperation.CertificateDeployInstanceEmpty",
        "FailedOperation.CertificateDeployHasPendingRecord",
        "FailedOperation.BoundResources",
        "FailedOperation.CertificateDeployNotExist",
        "FailedOperation.CertificateDeployRetryStatusInvalid",
        "FailedOperation.CertificateDeployRollbackStatusInvalid",
        "LimitExceeded.RateLimitExceeded",
    ] {
        assert!(codes.contains(&expected), "{expected} was not provoked: {codes:?}");
    }
}
