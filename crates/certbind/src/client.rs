//! A client for the native API, signing each request with an access key.

use certbind_api::{sign_native_request, Signed, NATIVE_AUTH_SCHEME, NONCE_HEADER};
use serde_json::Value;
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("{code}: {message} (HTTP {status}, request {request_id})")]
    Api { status: u16, code: String, message: String, request_id: String },
    #[error("cannot reach certbind at {url}: {reason}")]
    Transport { url: String, reason: String },
    #[error("{0}")]
    Config(String),
}

impl ClientError {
    /// The API error code, when the server answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

#[derive(Clone)]
pub struct Client {
    base: String,
    key_id: String,
    secret: String,
    agent: ureq::Agent,
}

impl Client {
    pub fn new(base: &str, key_id: &str, secret: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .new_agent();
        Client {
            base: base.trim_end_matches('/').to_string(),
            key_id: key_id.to_string(),
            secret: secret.to_string(),
            agent,
        }
    }

    /// From `CERTBIND_API` (default `http://127.0.0.1:7480`), `CERTBIND_ACCESS_KEY_ID` and
    /// `CERTBIND_ACCESS_KEY_SECRET`.
    pub fn from_env(api: Option<&str>) -> Result<Self, ClientError> {
        let base = api.map(str::to_string).or_else(|| std::env::var("CERTBIND_API").ok());
        let base = base.unwrap_or_else(|| "http://127.0.0.1:7480".to_string());
        let key_id = std::env::var("CERTBIND_ACCESS_KEY_ID")
            .map_err(|_| ClientError::Config("set CERTBIND_ACCESS_KEY_ID and CERTBIND_ACCESS_KEY_SECRET".into()))?;
        let secret = std::env::var("CERTBIND_ACCESS_KEY_SECRET")
            .map_err(|_| ClientError::Config("set CERTBIND_ACCESS_KEY_SECRET".into()))?;
        Ok(Client::new(&base, &key_id, &secret))
    }

    pub fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.call("GET", path, None)
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.call("POST", path, Some(body))
    }

    pub fn patch(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.call("PATCH", path, Some(body))
    }

    pub fn delete(&self, path: &str) -> Result<Value, ClientError> {
        self.call("DELETE", path, None)
    }

    /// Sends a signed request; `path` may carry a query string.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, ClientError> {
        self.call_raw(method, path, body.map(|b| b.to_string().into_bytes()).unwrap_or_default())
    }

    pub fn call_raw(&self, method: &str, path: &str, body: Vec<u8>) -> Result<Value, ClientError> {
        let (path_only, query) = path.split_once('?').unwrap_or((path, ""));
        let date = certbind_core::now_unix();
        let nonce = new_nonce();
        let signed = Signed { method, path: path_only, query, date, nonce: &nonce, body: &body };
        let authorization = sign_native_request(&self.key_id, &self.secret, &signed);
        debug_assert!(authorization.starts_with(NATIVE_AUTH_SCHEME));
        let url = format!("{}{}", self.base, path);
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("authorization", authorization)
            .header("x-certbind-date", date.to_string())
            .header(NONCE_HEADER, nonce.as_str())
            .header("content-type", "application/json")
            .body(body)
            .map_err(|e| ClientError::Config(e.to_string()))?;
        let mut response = self
            .agent
            .run(request)
            .map_err(|e| ClientError::Transport { url: self.base.clone(), reason: e.to_string() })?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(256 * 1024 * 1024)
            .read_to_string()
            .map_err(|e| ClientError::Transport { url: self.base.clone(), reason: e.to_string() })?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if (200..300).contains(&status) {
            return Ok(value);
        }
        let error = &value["error"];
        Err(ClientError::Api {
            status,
            code: error["code"].as_str().unwrap_or("Unknown").to_string(),
            message: error["message"].as_str().map(str::to_string).unwrap_or_else(|| value.to_string()),
            request_id: error["request_id"].as_str().unwrap_or("").to_string(),
        })
    }
}

/// 16 random bytes, hex: a request's nonce.
fn new_nonce() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    // The system generator does not fail on Linux; a fixed nonce would only be refused.
    let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
    hex::encode(bytes)
}
