//! Alibaba Cloud's error envelope (`RequestId`, `HostId`, `Code`, `Message`, `Recommend`)
//! and the one function mapping core errors to ALB / NLB / CAS codes.

use super::Product;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use certbind_core::{CoreError, ErrorKind, StorageFailure};

#[derive(Debug)]
pub struct AliError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    /// Milliseconds, for `Throttling.User` (`x-acs-retry-after`).
    pub retry_after_ms: Option<u64>,
}

pub type AliResult<T> = Result<T, AliError>;

impl AliError {
    pub fn new(status: u16, code: impl Into<String>, message: impl Into<String>) -> Self {
        AliError {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            code: code.into(),
            message: message.into(),
            retry_after_ms: None,
        }
    }

    pub fn missing(name: &str) -> Self {
        Self::new(400, format!("MissingParam.{name}"), format!("The parameter {name} is required."))
    }

    pub fn illegal(name: &str, why: &str) -> Self {
        Self::new(400, format!("IllegalParam.{name}"), format!("The parameter {name} is invalid: {why}."))
    }

    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(400, "InvalidParameter", message)
    }

    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(404, format!("ResourceNotFound.{what}"), format!("The specified resource {id} is not found."))
    }

    pub fn dry_run() -> Self {
        Self::new(400, "DryRunOperation", "Request validation has been passed with DryRun flag set.")
    }

    pub fn system_busy() -> Self {
        Self::new(400, "SystemBusy", "System is busy, please try again later.")
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    pub fn into_response_for(self, product: Product, request_id: &str) -> Response {
        let body = serde_json::json!({
            "RequestId": request_id,
            "HostId": product.host_id(),
            "Code": self.code,
            "Message": self.message,
            "Recommend": format!(
                "https://api.aliyun.com/troubleshoot?q={}&product={}",
                self.code,
                product.troubleshoot_name()
            ),
        });
        let mut response = (self.status, super::json_body(&body)).into_response();
        if let Some(ms) = self.retry_after_ms {
            if let Ok(value) = HeaderValue::from_str(&ms.max(1).to_string()) {
                response.headers_mut().insert("x-acs-retry-after", value);
            }
        }
        response
    }
}

/// The certificate id as ALB / NLB show it: `<CertId>-<region>` is accepted as input;
/// messages name the integer.
fn cert_name(native: &str) -> String {
    native.strip_prefix("cert-").unwrap_or(native).to_string()
}

/// The dialect's id for a native id string (`lsn-3`, `lb-4`, `cert-5`, `job-6`).
fn dialect_id(product: Product, native: &str) -> String {
    if let Some(n) = native.strip_prefix("lb-") {
        return format!("{}-{n}", product.lb_prefix());
    }
    if native.starts_with("cert-") {
        return cert_name(native);
    }
    native.to_string()
}

/// Maps a core error to the product's code, HTTP status and message (ids in the
/// product's own forms). Internal details never reach the caller.
pub fn from_core(product: Product, e: CoreError) -> AliError {
    let lb_word = "LoadBalancer";
    match e {
        CoreError::NotFound { what, id } => {
            let shown = dialect_id(product, &id);
            match what {
                "listener" => AliError::not_found("Listener", &shown),
                "certificate" => AliError::not_found("Certificate", &shown),
                "load balancer" => AliError::not_found(lb_word, &shown),
                "job" => AliError::not_found("Job", &shown),
                _ => AliError::not_found("Resource", &shown),
            }
        }
        CoreError::InvalidArgument { field, reason } => {
            AliError::invalid_parameter(format!("Invalid parameter {field}: {reason}."))
        }
        CoreError::Certificate(c) => AliError::invalid_parameter(format!("The certificate is invalid: {c}.")),
        CoreError::DuplicateCertificate { existing } => AliError::new(
            400,
            "ResourceAlreadyExist.Certificate",
            format!("The specified resource {} already exists.", cert_name(&existing)),
        ),
        CoreError::CertificateInUse { cert, listeners } => AliError::new(
            400,
            "OperationDenied.CertificateInUse",
            format!(
                "The operation is not allowed because of certificate {} is used by {listeners} listener(s).",
                cert_name(&cert)
            ),
        ),
        CoreError::ListenerNotTls { listener, protocol } => {
            let code = match product {
                Product::Nlb => "OperationDenied.ListenerProtocolNotSupport",
                _ => "OperationDenied.HttpListenerNotSupport",
            };
            AliError::new(
                400,
                code,
                format!("The operation is not allowed because of listener {listener} uses protocol {protocol}."),
            )
        }
        CoreError::DefaultCertificateNotDissociable { cert, listener } => AliError::new(
            400,
            "OperationDenied.DefaultCertificateUsed",
            format!(
                "The operation is not allowed because of certificate {} is the default certificate of listener {listener}.",
                cert_name(&cert)
            ),
        ),
        CoreError::CertificateNotBound { cert, listener } => AliError::new(
            400,
            "ResourceNotAssociated.Certificate",
            format!("The specified resource {} is not associated with {listener}.", cert_name(&cert)),
        ),
        CoreError::TooManyCertificates { max, given } => AliError::invalid_parameter(format!(
            "Invalid parameter Certificates: at most {max} certificates per request, {given} given."
        )),
        CoreError::AdditionalCertificateQuotaExceeded { load_balancer, max, would_be } => AliError::new(
            400,
            "ResourceQuotaExceeded.LoadBalancerCertificatesNum",
            format!(
                "The quota of LoadBalancerCertificatesNum is exceeded for resource {}, usage {would_be}/{max}.",
                dialect_id(product, &load_balancer)
            ),
        ),
        CoreError::DefaultCertificateRequired { protocol } => AliError::new(
            400,
            "OperationFailed.DefaultCertificateNotFound",
            format!("The operation failed because of a {protocol} listener needs a default certificate."),
        ),
        CoreError::ProtocolNotAllowed { protocol, .. } => AliError::illegal("ListenerProtocol", &protocol),
        CoreError::PortInUse { port, load_balancer, .. } => AliError::new(
            400,
            "ResourceAlreadyExist.Listener",
            format!(
                "The specified resource listener on port {port} of {} already exists.",
                dialect_id(product, &load_balancer)
            ),
        ),
        CoreError::LoadBalancerNotEmpty { load_balancer, listeners } => AliError::new(
            400,
            "IncorrectStatus.LoadBalancer",
            format!(
                "The status of LoadBalancer [{}] is incorrect: it still has {listeners} listener(s).",
                dialect_id(product, &load_balancer)
            ),
        ),
        CoreError::ListenerBusy { listener } => AliError::new(
            400,
            "ResourceInConfiguring.Listener",
            format!("The specified resource {listener} is configuring, please try again later."),
        ),
        CoreError::IdempotencyConflict { .. } => AliError::new(
            400,
            "IdempotenceParamNotMatch",
            "The request uses the same client token as a previous, but non-identical request.",
        ),
        e @ (CoreError::OwnershipMismatch { .. }
        | CoreError::OldCertificateNotBound { .. }
        | CoreError::SameCertificate { .. }) => AliError::invalid_parameter(e.to_string()),
        CoreError::Unauthenticated(m) => AliError::new(401, "InvalidAccessKeyId.NotFound", m),
        // A policy refused a load balancer (the seed's code), or anything else (RAM); the
        // message names the denied action and resource.
        CoreError::Forbidden(m) if m.contains(":loadbalancer/") => AliError::new(403, "Forbidden.LoadBalancer", m),
        CoreError::Forbidden(m) => AliError::new(403, "Forbidden.RAM", m),
        CoreError::Storage { failure, detail } => {
            crate::request_id::log_storage_failure(failure, &detail);
            let code = match failure {
                StorageFailure::Full => "ServiceUnavailable.StorageFull",
                StorageFailure::ReadOnly => "ServiceUnavailable.StorageReadOnly",
                StorageFailure::Busy => "ServiceUnavailable.StorageBusy",
                StorageFailure::Unavailable => "ServiceUnavailable.StorageUnavailable",
            };
            AliError::new(503, code, CoreError::Storage { failure, detail: String::new() }.to_string())
        }
        e @ CoreError::Internal(_) => {
            debug_assert_eq!(e.kind(), ErrorKind::Internal);
            tracing::error!(request_id = %crate::request_id::current(), error = %e, "internal error in the aliyun dialect");
            AliError::internal("The request processing has failed due to some unknown error.")
        }
    }
}
