//! Access policies in the shape the clouds use, and their evaluation.
//!
//! ```json
//! {"Version": "1", "Statement": [
//!   {"Sid": "edge", "Effect": "Allow", "Action": ["alb:*", "certbind:Get*"],
//!    "Resource": "acs:alb:*:*:loadbalancer/alb-1"}]}
//! ```
//! An explicit Deny wins; otherwise an Allow decides; with neither, the request is denied.
//! `*` matches any run of characters (including none) in actions and resources. Actions
//! compare without regard to case (as the clouds' do); resources exactly.

use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("policy document is not valid JSON: {0}")]
    Json(String),
    #[error("policy document: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Effect {
    Allow,
    Deny,
}

/// One string or a list of them, as policy documents allow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn items(&self) -> &[String] {
        match self {
            OneOrMany::One(item) => std::slice::from_ref(item),
            OneOrMany::Many(items) => items,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Statement {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    pub effect: Effect,
    pub action: OneOrMany,
    pub resource: OneOrMany,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct PolicyDocument {
    #[serde(default = "default_version")]
    pub version: String,
    pub statement: Vec<Statement>,
}

fn default_version() -> String {
    "1".to_string()
}

impl PolicyDocument {
    /// Parses and validates a document.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let document: PolicyDocument = serde_json::from_str(text).map_err(|e| PolicyError::Json(e.to_string()))?;
        if document.statement.is_empty() {
            return Err(PolicyError::Invalid("Statement must hold at least one statement".into()));
        }
        if document.statement.len() > 100 {
            return Err(PolicyError::Invalid("at most 100 statements".into()));
        }
        for (i, statement) in document.statement.iter().enumerate() {
            for (field, items) in [("Action", statement.action.items()), ("Resource", statement.resource.items())] {
                if items.is_empty() {
                    return Err(PolicyError::Invalid(format!("statement {i}: {field} must not be empty")));
                }
                if let Some(bad) =
                    items.iter().find(|p| p.is_empty() || p.len() > 512 || p.chars().any(char::is_control))
                {
                    return Err(PolicyError::Invalid(format!("statement {i}: {field} {bad:?} is not a valid pattern")));
                }
            }
        }
        Ok(document)
    }
}

/// A policy as evaluated: its name and document.
#[derive(Debug, Clone)]
pub struct NamedPolicy {
    pub name: String,
    pub document: PolicyDocument,
}

/// What decided a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub allowed: bool,
    /// The deciding statement: policy name and statement (Sid, or its index).
    pub policy: Option<String>,
    pub statement: Option<String>,
    pub reason: String,
}

/// `*`-glob match. `case_insensitive` for actions.
pub fn glob_matches(pattern: &str, text: &str, case_insensitive: bool) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = if case_insensitive {
        (pattern.to_lowercase().chars().collect(), text.to_lowercase().chars().collect())
    } else {
        (pattern.chars().collect(), text.chars().collect())
    };
    // Iterative wildcard matching with backtracking to the last star: linear-ish, no
    // recursion, so a hostile pattern cannot blow the stack.
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Evaluates a request: any of `actions` (the names it goes by) on every one of
/// `resources` (each given as all the names it goes by). Every resource must be allowed
/// and none denied.
pub fn evaluate(policies: &[NamedPolicy], actions: &[String], resources: &[Vec<String>]) -> Decision {
    let statement_matches = |statement: &Statement, names: &[String]| {
        statement.action.items().iter().any(|p| actions.iter().any(|a| glob_matches(p, a, true)))
            && statement.resource.items().iter().any(|p| names.iter().any(|n| glob_matches(p, n, false)))
    };
    let label = |i: usize, s: &Statement| s.sid.clone().unwrap_or_else(|| format!("#{i}"));
    // Deny first, over every resource.
    for names in resources {
        for policy in policies {
            for (i, statement) in policy.document.statement.iter().enumerate() {
                if statement.effect == Effect::Deny && statement_matches(statement, names) {
                    return Decision {
                        allowed: false,
                        policy: Some(policy.name.clone()),
                        statement: Some(label(i, statement)),
                        reason: format!("explicitly denied on {}", names.first().cloned().unwrap_or_default()),
                    };
                }
            }
        }
    }
    let mut last = None;
    for names in resources {
        let allow = policies.iter().find_map(|policy| {
            policy.document.statement.iter().enumerate().find_map(|(i, statement)| {
                (statement.effect == Effect::Allow && statement_matches(statement, names))
                    .then(|| (policy.name.clone(), label(i, statement)))
            })
        });
        match allow {
            Some(found) => last = Some(found),
            None => {
                return Decision {
                    allowed: false,
                    policy: None,
                    statement: None,
                    reason: format!("no statement allows it on {}", names.first().cloned().unwrap_or_default()),
                }
            }
        }
    }
    match last {
        Some((policy, statement)) => {
            Decision { allowed: true, policy: Some(policy), statement: Some(statement), reason: "allowed".into() }
        }
        None => Decision { allowed: false, policy: None, statement: None, reason: "no resource given".into() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(text: &str) -> NamedPolicy {
        NamedPolicy { name: "p".into(), document: PolicyDocument::parse(text).unwrap() }
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn globs() {
        assert!(glob_matches("alb:*", "alb:CreateListener", true));
        assert!(glob_matches("ALB:create*", "alb:CreateListener", true));
        assert!(!glob_matches("alb:Create", "alb:CreateListener", true));
        assert!(glob_matches("acs:alb:*:*:loadbalancer/alb-1", "acs:alb:cn:7:loadbalancer/alb-1", false));
        assert!(!glob_matches("acs:alb:*:*:loadbalancer/alb-1", "acs:alb:cn:7:loadbalancer/alb-12", false));
        assert!(glob_matches("*", "", false));
        assert!(glob_matches("a*b*c", "aXXbYYc", false));
        assert!(!glob_matches("a*b*c", "aXXbYY", false));
        assert!(!glob_matches("Loadbalancer/*", "loadbalancer/x", false), "resources are case-sensitive");
    }

    #[test]
    fn deny_wins_and_no_allow_denies() {
        let allow_all = policy(r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#);
        let deny_one = policy(
            r#"{"Statement":[{"Sid":"no-lb2","Effect":"Deny","Action":"alb:*","Resource":"*loadbalancer/alb-2"}]}"#,
        );
        let actions = names(&["alb:CreateListener", "certbind:CreateListener"]);
        let lb1 = vec![names(&["acs:alb:r:1:loadbalancer/alb-1"])];
        let lb2 = vec![names(&["acs:alb:r:1:loadbalancer/alb-2"])];
        let both = vec![lb1[0].clone(), lb2[0].clone()];
        let policies = [allow_all, deny_one];
        assert!(evaluate(&policies, &actions, &lb1).allowed);
        let denied = evaluate(&policies, &actions, &lb2);
        assert!(!denied.allowed);
        assert_eq!(denied.statement.as_deref(), Some("no-lb2"));
        assert!(!evaluate(&policies, &actions, &both).allowed, "one denied resource denies the whole request");
        assert!(!evaluate(&[], &actions, &lb1).allowed, "no statement: denied");
    }

    #[test]
    fn a_statement_matches_any_name_of_the_action_or_resource() {
        let native = policy(
            r#"{"Statement":[{"Effect":"Allow","Action":"certbind:CreateListener","Resource":"crn:certbind:*:*:loadbalancer/lb-1"}]}"#,
        );
        let actions = names(&["alb:CreateListener", "certbind:CreateListener"]);
        let resource = vec![names(&["acs:alb:r:1:loadbalancer/alb-1", "crn:certbind:r:1:loadbalancer/lb-1"])];
        assert!(evaluate(&[native], &actions, &resource).allowed);
    }

    #[test]
    fn documents_are_validated() {
        assert!(matches!(PolicyDocument::parse("{"), Err(PolicyError::Json(_))));
        assert!(PolicyDocument::parse(r#"{"Statement":[]}"#).is_err());
        assert!(PolicyDocument::parse(r#"{"Statement":[{"Effect":"Maybe","Action":"*","Resource":"*"}]}"#).is_err());
        assert!(PolicyDocument::parse(r#"{"Statement":[{"Effect":"Allow","Action":[],"Resource":"*"}]}"#).is_err());
        assert!(PolicyDocument::parse(r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Extra":1}]}"#)
            .is_err());
    }
}
