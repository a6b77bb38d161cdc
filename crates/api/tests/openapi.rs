//! The OpenAPI document names every operation once, and the policy action each needs.

#[test]
fn every_operation_has_a_unique_operation_id_and_its_policy_action() {
    let document: serde_json::Value = serde_json::from_str(include_str!("../src/native/openapi.json")).unwrap();
    let mut seen = std::collections::HashSet::new();
    for (path, operations) in document["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let id = operation["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path}: no operationId"));
            assert!(seen.insert(id.to_string()), "{id} named twice");
            if path.starts_with("/v1/") {
                let action = operation["x-certbind-action"].as_str().unwrap_or_else(|| panic!("{id}: no action"));
                assert!(action.starts_with("certbind:") && action.len() > 9, "{id}: {action}");
            }
        }
    }
    assert!(seen.contains("CreateAccount") && seen.contains("GetReadiness"));
}
