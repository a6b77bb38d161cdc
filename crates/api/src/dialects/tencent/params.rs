//! An action's parameters as one JSON object, whatever the transport: the POST body, or
//! the GET query / legacy form unflattened (`Key.0.Sub=v` becomes `{"Key":[{"Sub":"v"}]}`).
//! Getters are lenient about scalars sent as strings, as the SDK does not type-check.

use super::errors::{TcError, TcResult};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Default)]
pub struct Params(pub Map<String, Value>);

/// Rebuilds nested values from flattened `A.0.B` keys.
pub fn unflatten(pairs: &[(String, String)]) -> TcResult<Map<String, Value>> {
    let mut root = Value::Object(Map::new());
    for (key, value) in pairs {
        let mut node = &mut root;
        let segments: Vec<&str> = key.split('.').collect();
        for (i, segment) in segments.iter().enumerate() {
            if segment.is_empty() {
                return Err(TcError::invalid(key, "empty key segment"));
            }
            let Value::Object(map) = node else { return Err(TcError::invalid(key, "conflicting keys")) };
            if i + 1 == segments.len() {
                if map.contains_key(*segment) {
                    return Err(TcError::invalid(key, "given twice"));
                }
                map.insert(segment.to_string(), Value::String(value.clone()));
                break;
            }
            node = map.entry(segment.to_string()).or_insert_with(|| Value::Object(Map::new()));
        }
    }
    match arrays(root) {
        Value::Object(map) => Ok(map),
        _ => Err(TcError::invalid("query", "parameters must be named")),
    }
}

/// Turns objects whose keys are all indices 0..n into arrays, depth first.
fn arrays(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let is_array = !map.is_empty() && map.keys().all(|k| k.bytes().all(|b| b.is_ascii_digit()) && k.len() < 6);
            let mut converted: Vec<(String, Value)> = map.into_iter().map(|(k, v)| (k, arrays(v))).collect();
            if is_array {
                converted.sort_by_key(|(k, _)| k.parse::<usize>().unwrap_or(usize::MAX));
                if converted.iter().enumerate().all(|(i, (k, _))| k.parse::<usize>().ok() == Some(i)) {
                    return Value::Array(converted.into_iter().map(|(_, v)| v).collect());
                }
            }
            Value::Object(converted.into_iter().collect())
        }
        other => other,
    }
}

impl Params {
    /// Refuses parameters the action does not define.
    pub fn allow(&self, known: &[&str]) -> TcResult<()> {
        for key in self.0.keys() {
            if !known.contains(&key.as_str()) {
                return Err(TcError::new(
                    "UnknownParameter",
                    format!("the parameter `{key}` is not defined for this action"),
                ));
            }
        }
        Ok(())
    }

    fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn str(&self, name: &str) -> TcResult<Option<String>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(_) => Err(TcError::invalid(name, "expected a string")),
        }
    }

    pub fn req_str(&self, name: &str) -> TcResult<String> {
        match self.str(name)? {
            Some(s) if !s.is_empty() => Ok(s),
            _ => Err(TcError::missing(name)),
        }
    }

    pub fn int(&self, name: &str) -> TcResult<Option<i64>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| TcError::invalid(name, "expected an integer")),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => {
                s.trim().parse().map(Some).map_err(|_| TcError::invalid(name, "expected an integer"))
            }
            Some(_) => Err(TcError::invalid(name, "expected an integer")),
        }
    }

    pub fn bool(&self, name: &str) -> TcResult<Option<bool>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::Number(n)) => Ok(Some(n.as_i64() != Some(0))),
            Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(Some(true)),
                "false" | "0" | "" => Ok(Some(false)),
                _ => Err(TcError::invalid(name, "expected a boolean")),
            },
            Some(_) => Err(TcError::invalid(name, "expected a boolean")),
        }
    }

    pub fn str_list(&self, name: &str) -> TcResult<Vec<String>> {
        match self.get(name) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    _ => Err(TcError::invalid(name, "expected a list of strings")),
                })
                .collect(),
            Some(_) => Err(TcError::invalid(name, "expected a list")),
        }
    }

    pub fn int_list(&self, name: &str) -> TcResult<Vec<i64>> {
        self.str_list(name)?
            .iter()
            .map(|s| s.trim().parse().map_err(|_| TcError::invalid(name, "expected a list of integers")))
            .collect()
    }

    pub fn obj(&self, name: &str) -> TcResult<Option<Params>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(Params(map.clone()))),
            Some(_) => Err(TcError::invalid(name, "expected an object")),
        }
    }

    pub fn obj_list(&self, name: &str) -> TcResult<Vec<Params>> {
        match self.get(name) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::Object(map) => Ok(Params(map.clone())),
                    _ => Err(TcError::invalid(name, "expected a list of objects")),
                })
                .collect(),
            Some(_) => Err(TcError::invalid(name, "expected a list")),
        }
    }

    /// The raw value, for parameters stored as given (Tags).
    pub fn raw(&self, name: &str) -> Option<Value> {
        self.get(name).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_flattening_is_undone() {
        let pairs: Vec<(String, String)> = [
            ("OldCertificateId", "a"),
            ("ResourceTypes.0", "clb"),
            ("ResourceTypesRegions.0.ResourceType", "clb"),
            ("ResourceTypesRegions.0.Regions.0", "ap-guangzhou"),
            ("ResourceTypesRegions.0.Regions.1", "ap-beijing"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let map = unflatten(&pairs).unwrap();
        assert_eq!(
            Value::Object(map),
            serde_json::json!({"OldCertificateId": "a", "ResourceTypes": ["clb"],
                "ResourceTypesRegions": [{"ResourceType": "clb", "Regions": ["ap-guangzhou", "ap-beijing"]}]})
        );
    }
}
