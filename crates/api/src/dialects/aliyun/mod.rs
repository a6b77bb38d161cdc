//! The Alibaba Cloud dialect: ALB 2020-06-16, NLB 2022-04-30 and CAS 2020-04-07, as the
//! official Python SDKs speak them (RPC style, `POST /`, parameters in the query or a
//! form body, JSON answers).
//!
//! A request goes: signature claim → access key → timestamp window → signature →
//! nonce → version → action → throttle → the product's handler, which composes
//! [`certbind_control::Control`] calls. Errors use Alibaba's envelope (see `errors`).
//!
//! Ids: CAS `CertId` is the core certificate's integer id; ALB / NLB name it
//! `<CertId>-<region>` (the bare integer is accepted too). Load balancers are
//! `alb-<n>` / `nlb-<n>` (an id of the other product is not found), listeners `lsn-<n>`,
//! jobs `job-<n>` (n = the core ids).

mod cas;
mod errors;
mod guard;
pub(crate) mod ids;
mod lb;
pub(crate) mod params;
pub(crate) mod signature;

use super::DialectRequest;
use crate::ApiState;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use certbind_control::{Caller, Control, Seen};
use errors::{AliError, AliResult};
use params::Params;
use serde_json::Value;

/// Which Alibaba Cloud API a request speaks (from its version).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Product {
    Alb,
    Nlb,
    Cas,
}

impl Product {
    fn from_version(version: &str) -> Option<Product> {
        match version {
            "2020-06-16" => Some(Product::Alb),
            "2022-04-30" => Some(Product::Nlb),
            "2020-04-07" => Some(Product::Cas),
            _ => None,
        }
    }

    fn host_id(self) -> &'static str {
        match self {
            Product::Alb => "alb.aliyuncs.com",
            Product::Nlb => "nlb.aliyuncs.com",
            Product::Cas => "cas.aliyuncs.com",
        }
    }

    fn troubleshoot_name(self) -> &'static str {
        match self {
            Product::Alb => "Alb",
            Product::Nlb => "Nlb",
            Product::Cas => "cas",
        }
    }

    fn lb_prefix(self) -> &'static str {
        match self {
            Product::Nlb => "nlb",
            _ => "alb",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Product::Alb => "alb",
            Product::Nlb => "nlb",
            Product::Cas => "cas",
        }
    }
}

/// Everything a handler needs: who calls, with what, against which product.
pub struct Ctx {
    pub state: ApiState,
    pub caller: Caller,
    pub params: Params,
    pub product: Product,
}

impl Ctx {
    /// Runs a blocking control-plane call on the blocking pool, mapping its error.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Control, &Caller) -> certbind_control::Result<T> + Send + 'static,
    ) -> AliResult<T> {
        let control = self.state.control.clone();
        let caller = self.caller.clone();
        let product = self.product;
        crate::request_id::spawn_blocking(move || f(&control, &caller))
            .await
            .map_err(|_| AliError::system_busy())?
            .map_err(|e| errors::from_core(product, e))
    }

    /// The region a request names, or the server's default.
    pub fn region(&self) -> String {
        self.params
            .get("RegionId")
            .map(str::to_string)
            .unwrap_or_else(|| self.state.control.config().default_region.clone())
    }
}

pub(crate) fn json_body(value: &Value) -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json;charset=utf-8")], serde_json::to_vec(value).unwrap_or_default())
}

pub async fn handle(state: &ApiState, request: DialectRequest) -> Response {
    let mut request_id = crate::request_id::current();
    if request_id.is_empty() {
        request_id = crate::request_id::new_request_id();
    }
    let query = request.query_pairs();
    let version = signed_value(&request, &query, "x-acs-version", "Version");
    let product = version.as_deref().and_then(Product::from_version);
    match serve(state, &request, query, version.as_deref(), product).await {
        Ok(mut body) => {
            if let Value::Object(map) = &mut body {
                map.insert("RequestId".to_string(), Value::String(request_id));
            }
            (StatusCode::OK, json_body(&body)).into_response()
        }
        Err(e) => {
            if e.status.is_server_error() {
                tracing::warn!(code = %e.code, "aliyun request failed");
            }
            e.into_response_for(product.unwrap_or(Product::Alb), &request_id)
        }
    }
}

/// A request body over `limit` bytes, in Alibaba's envelope for the product it names.
pub fn too_large(request: &DialectRequest, limit: usize) -> Response {
    let query = request.query_pairs();
    let product = signed_value(request, &query, "x-acs-version", "Version").as_deref().and_then(Product::from_version);
    let error = AliError::new(413, "RequestEntityTooLarge", format!("The request body exceeds {limit} bytes."));
    error.into_response_for(product.unwrap_or(Product::Alb), &crate::request_id::current())
}

/// A common value (action, version) from where the request's signature covers it: the
/// `x-acs-*` header under ACS3 (which signs every header the SDK sets, these included),
/// the query parameter under the legacy RPC signature (which signs the query, not the
/// headers).
fn signed_value(request: &DialectRequest, query: &[(String, String)], header: &str, param: &str) -> Option<String> {
    if request.header("authorization").is_some() {
        request.header(header).map(str::to_string)
    } else {
        query.iter().find(|(k, _)| k == param).map(|(_, v)| v.clone())
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` to unix seconds.
fn parse_timestamp(text: &str) -> Option<i64> {
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::PrimitiveDateTime::parse(text, &format).ok().map(|t| t.assume_utc().unix_timestamp())
}

async fn serve(
    state: &ApiState,
    request: &DialectRequest,
    query: Vec<(String, String)>,
    version: Option<&str>,
    product: Option<Product>,
) -> AliResult<Value> {
    let form = request.form_pairs();
    let claim = signature::claim(request, &query)?;

    let control = state.control.clone();
    let key_id = claim.key_id.clone();
    let found = crate::request_id::spawn_blocking(move || control.access_key_secret(&key_id))
        .await
        .map_err(|_| AliError::system_busy())?
        .map_err(|e| errors::from_core(product.unwrap_or(Product::Alb), e))?;
    let Some((caller, secret)) = found else {
        return Err(AliError::new(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found."));
    };

    let timestamp = claim.timestamp.as_deref().ok_or_else(|| AliError::missing("Timestamp"))?;
    let at = parse_timestamp(timestamp).ok_or_else(|| {
        AliError::new(400, "InvalidTimeStamp.Format", "Specified time stamp or date value is not well formatted.")
    })?;
    if (certbind_core::now_unix() - at).unsigned_abs() > guard::WINDOW.as_secs() {
        return Err(AliError::new(
            400,
            "InvalidTimeStamp.Expired",
            "Specified time stamp or date value is expired, it must be within 15 minutes of the server time.",
        ));
    }

    signature::verify(&claim, request, &query, &form, &secret)?;

    let nonce = claim.nonce.as_deref().filter(|n| !n.is_empty()).ok_or_else(|| AliError::missing("SignatureNonce"))?;
    if nonce.len() > 128 {
        return Err(AliError::illegal("SignatureNonce", "at most 128 characters"));
    }
    // A nonce is remembered in the store for as long as its timestamp is valid: a
    // captured request is refused after a restart and on every node.
    let (control, key) = (state.control.clone(), format!("{}\n{nonce}", claim.key_id));
    let valid_until = at + guard::WINDOW.as_secs() as i64;
    let action = signed_value(request, &query, "x-acs-action", "Action").unwrap_or_default();
    let read = ["List", "Get", "Describe"].iter().any(|verb| action.starts_with(verb));
    let seen =
        crate::request_id::spawn_blocking(move || control.seen_request("aliyun-nonce", &key, "", valid_until, read))
            .await
            .map_err(|_| AliError::system_busy())?
            .map_err(|e| errors::from_core(product.unwrap_or(Product::Alb), e))?;
    if seen != Seen::First {
        return Err(AliError::new(400, "SignatureNonceUsed", "Specified signature nonce was used already."));
    }

    let Some(product) = product else {
        return match version {
            None => Err(AliError::missing("Version")),
            Some(_) => Err(AliError::new(400, "InvalidVersion", "Specified parameter Version is not valid.")),
        };
    };
    let action = signed_value(request, &query, "x-acs-action", "Action").ok_or_else(|| AliError::missing("Action"))?;
    let known = match product {
        Product::Alb => lb::ALB_ACTIONS.contains(&action.as_str()),
        Product::Nlb => lb::NLB_ACTIONS.contains(&action.as_str()),
        Product::Cas => cas::ACTIONS.contains(&action.as_str()),
    };
    if !known {
        return Err(AliError::new(
            404,
            "InvalidAction.NotFound",
            format!(
                "Specified api {} is not found, please check your url and method.",
                action.chars().take(64).collect::<String>()
            ),
        ));
    }
    // Policies name this action in Alibaba's vocabulary (`alb:CreateListener`).
    let caller = caller.acting_as(format!("{}:{action}", product.name()));
    if let Err(ms) = guard::throttle(caller.account_id.0, product.name(), &action) {
        let mut e = AliError::new(429, "Throttling.User", "Request was denied due to user flow control.");
        e.retry_after_ms = Some(ms);
        return Err(e);
    }
    let Some(_slot) = guard::enter() else {
        return Err(AliError::system_busy());
    };

    let ctx = Ctx { state: state.clone(), caller, params: Params::new(query.into_iter().chain(form)), product };
    match product {
        Product::Cas => cas::handle(&ctx, &action).await,
        Product::Alb | Product::Nlb => lb::handle(&ctx, &action).await,
    }
}
