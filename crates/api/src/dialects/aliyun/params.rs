//! Request parameters: query and form body merged (ALB / CAS send everything in the
//! query, NLB writes in a form body), flattened the darabonba way (`Name.N`, `Name.N.Sub`,
//! N from 1), with typed reads that fail as `MissingParam.<Name>` / `IllegalParam.<Name>`.

use super::errors::{AliError, AliResult};
use std::collections::BTreeMap;

/// Parameters of the legacy RPC signature that are not business parameters.
const RPC_COMMON: &[&str] = &[
    "Action",
    "Version",
    "Format",
    "Timestamp",
    "SignatureNonce",
    "SignatureMethod",
    "SignatureVersion",
    "SignatureType",
    "AccessKeyId",
    "Signature",
    "SecurityToken",
];

pub struct Params {
    map: BTreeMap<String, String>,
}

impl Params {
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        let map = pairs.into_iter().filter(|(k, _)| !RPC_COMMON.contains(&k.as_str())).collect();
        Params { map }
    }

    /// The value, if given (an empty value counts as not given).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.map.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    pub fn required(&self, name: &str) -> AliResult<&str> {
        self.get(name).ok_or_else(|| AliError::missing(name))
    }

    pub fn bool(&self, name: &str) -> AliResult<Option<bool>> {
        match self.get(name) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(_) => Err(AliError::illegal(name, "must be true or false")),
        }
    }

    pub fn dry_run(&self) -> AliResult<bool> {
        Ok(self.bool("DryRun")?.unwrap_or(false))
    }

    pub fn client_token(&self) -> AliResult<Option<String>> {
        match self.get("ClientToken") {
            None => Ok(None),
            Some(t) if t.len() <= 64 && t.bytes().all(|b| b.is_ascii_graphic()) => Ok(Some(t.to_string())),
            Some(_) => Err(AliError::illegal("ClientToken", "must be 1 to 64 printable ASCII characters")),
        }
    }

    pub fn int<T: std::str::FromStr>(&self, name: &str) -> AliResult<Option<T>> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v.trim().parse().map(Some).map_err(|_| AliError::illegal(name, "must be an integer")),
        }
    }

    /// An integer in `min..=max`, or `default`.
    pub fn int_in(&self, name: &str, min: u64, max: u64, default: u64) -> AliResult<u64> {
        let v = self.int::<u64>(name)?.unwrap_or(default);
        if v < min || v > max {
            return Err(AliError::illegal(name, &format!("must be between {min} and {max}")));
        }
        Ok(v)
    }

    /// `Name.1`, `Name.2`, ... in index order.
    pub fn list(&self, name: &str) -> AliResult<Vec<String>> {
        self.indexed(name, None)
    }

    /// `Name.1.Field`, `Name.2.Field`, ... in index order.
    pub fn list_field(&self, name: &str, field: &str) -> AliResult<Vec<String>> {
        self.indexed(name, Some(field))
    }

    fn indexed(&self, name: &str, field: Option<&str>) -> AliResult<Vec<String>> {
        let prefix = format!("{name}.");
        let mut items: Vec<(u32, String)> = Vec::new();
        for (key, value) in self.map.range(prefix.clone()..) {
            let Some(rest) = key.strip_prefix(&prefix) else { break };
            let (index, tail) = match rest.split_once('.') {
                Some((i, t)) => (i, Some(t)),
                None => (rest, None),
            };
            if tail != field {
                continue;
            }
            let index: u32 = index
                .parse()
                .ok()
                .filter(|i| (1..=1000).contains(i))
                .ok_or_else(|| AliError::illegal(name, "list indexes start at 1"))?;
            if !value.is_empty() {
                items.push((index, value.clone()));
            }
        }
        items.sort_by_key(|(i, _)| *i);
        Ok(items.into_iter().map(|(_, v)| v).collect())
    }

    /// A page position from `NextToken` (an offset certbind hands out).
    pub fn next_token(&self) -> AliResult<u64> {
        match self.get("NextToken") {
            None => Ok(0),
            Some(t) => t.parse().map_err(|_| AliError::illegal("NextToken", "not a token this server issued")),
        }
    }
}
