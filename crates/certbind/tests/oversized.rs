//! A body over the 1 MiB limit is refused in the envelope of the dialect that sent it, so
//! each official SDK raises its own error with a specific code, and nothing is made.

mod common;

use common::*;

#[test]
fn an_oversized_body_is_refused_in_each_dialects_envelope() {
    let dir = TempDir::new("oversized");
    let server = Server::start(dir.path());
    let client = server.client();
    let default_project = default_project_name(&client);
    let seen = run_sdk_script("oversized.py", &server, &[("UCLOUD_PROJECT", &default_project)]);
    assert_eq!(seen["alibaba-acs3"], serde_json::json!(["RequestEntityTooLarge", 413]), "{seen}");
    assert_eq!(seen["alibaba-rpc"], serde_json::json!(["RequestEntityTooLarge", 413]), "{seen}");
    assert_eq!(seen["tencent"], "RequestSizeLimitExceeded", "{seen}");
    assert_eq!(seen["ucloud"][0], 230, "{seen}");
    assert!(seen["ucloud"][1].as_str().unwrap().contains("exceeds 1048576 bytes"), "{seen}");
    assert_eq!(client.get("/v1/load-balancers").unwrap()["total"], 0, "nothing was made");
    assert_eq!(client.get("/v1/certificates").unwrap()["total"], 0, "nothing was made");
}
