//! Alibaba Cloud throttling (`Throttling.User`, HTTP 429 with `x-acs-retry-after`) and
//! overload (`SystemBusy`), against a server started with tiny limits. A test binary of
//! its own, because the limits are set through the environment the server inherits.

mod common;

use common::*;

#[test]
fn throttling_and_system_busy_through_the_official_sdk() {
    // Read once by the server process at start; only this process's servers see it.
    std::env::set_var("CERTBIND_ALIYUN_THROTTLE", "3/60");
    std::env::set_var("CERTBIND_ALIYUN_MAX_IN_FLIGHT", "0");
    let dir = TempDir::new("aliyun-limits");
    let server = Server::start(dir.path());
    let results = run_sdk_script("aliyun_auth.py", &server, &[("MODE", "throttle")]);
    assert_eq!(results["busy"]["code"], "SystemBusy");
    assert_eq!(results["busy"]["status"], 400);
    assert_eq!(results["throttled"]["code"], "Throttling.User");
    assert_eq!(results["throttled"]["status"], 429);
    let retry = results["retry_after_ms"].as_u64().unwrap();
    assert!(retry > 0 && retry <= 60_000, "retry after {retry} ms");
    assert_eq!(results["other_action"]["code"], "SystemBusy");
}
