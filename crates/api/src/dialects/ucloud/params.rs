//! A UCloud request's parameters: the form body (what the SDK sends), the query, or a
//! JSON object, flattened the way the SDK's encoder flattens (`K.0`, `K.Sub`).

use super::errors::UError;
use crate::dialects::DialectRequest;
use std::collections::BTreeMap;

/// Parameters by name. Sorted by byte order, which is the order UCloud signs in.
#[derive(Debug, Default, Clone)]
pub struct Params {
    map: BTreeMap<String, String>,
}

impl Params {
    pub fn from_request(request: &DialectRequest) -> Params {
        let mut params = Params::default();
        for (k, v) in request.form_pairs().into_iter().chain(request.query_pairs()) {
            params.map.entry(k).or_insert(v);
        }
        let is_json = request
            .header("content-type")
            .map(|ct| ct.to_ascii_lowercase().starts_with("application/json"))
            .unwrap_or(false);
        if is_json {
            if let Ok(serde_json::Value::Object(object)) = serde_json::from_slice(&request.body) {
                for (k, v) in object {
                    flatten(&mut params.map, k, &v);
                }
            }
        }
        params
    }

    #[cfg(test)]
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Params {
        Params { map: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() }
    }

    pub fn all(&self) -> &BTreeMap<String, String> {
        &self.map
    }

    /// A parameter's value; an empty value counts as absent.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.map.get(key).map(String::as_str).filter(|v| !v.is_empty())
    }

    pub fn required(&self, key: &str) -> Result<&str, UError> {
        self.get(key).ok_or_else(|| UError::missing(key))
    }

    /// The first of several names (aliases) that is present, with the name used.
    pub fn first_of<'a>(&'a self, keys: &[&'a str]) -> Option<(&'a str, &'a str)> {
        keys.iter().find_map(|k| self.get(k).map(|v| (*k, v)))
    }

    /// `K.0`, `K.1`, ... in index order (UCloud lists are 0-based).
    pub fn list(&self, key: &str) -> Vec<String> {
        let prefix = format!("{key}.");
        let mut items: Vec<(u64, String)> = self
            .map
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter_map(|(k, v)| k[prefix.len()..].parse::<u64>().ok().map(|i| (i, v.clone())))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        items.sort_by_key(|(i, _)| *i);
        items.into_iter().map(|(_, v)| v).collect()
    }

    pub fn int(&self, key: &str) -> Result<Option<i64>, UError> {
        match self.get(key) {
            None => Ok(None),
            Some(text) => text.trim().parse().map(Some).map_err(|_| UError::invalid(key, "must be an integer")),
        }
    }

    pub fn uint(&self, key: &str, default: u64) -> Result<u64, UError> {
        match self.int(key)? {
            None => Ok(default),
            Some(n) if n >= 0 => Ok(n as u64),
            Some(_) => Err(UError::invalid(key, "must not be negative")),
        }
    }
}

fn flatten(map: &mut BTreeMap<String, String>, key: String, value: &serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Null => {}
        Value::String(s) => {
            map.entry(key).or_insert_with(|| s.clone());
        }
        Value::Bool(b) => {
            map.entry(key).or_insert_with(|| b.to_string());
        }
        Value::Number(n) => {
            let text = match n.as_f64() {
                Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
                _ => n.to_string(),
            };
            map.entry(key).or_insert(text);
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                flatten(map, format!("{key}.{i}"), item);
            }
        }
        Value::Object(object) => {
            for (k, v) in object {
                flatten(map, format!("{key}.{k}"), v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_zero_based_and_in_index_order() {
        let params = Params::from_pairs(&[("SSLIds.10", "c"), ("SSLIds.0", "a"), ("SSLIds.1", "b"), ("SSLId", "x")]);
        assert_eq!(params.list("SSLIds"), vec!["a", "b", "c"]);
        assert_eq!(params.list("Nothing"), Vec::<String>::new());
    }
}
