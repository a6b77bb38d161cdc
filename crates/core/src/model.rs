//! The objects certbind manages. These are plain values read from and written to the
//! store; the rules that relate them live in `plan`.

use crate::ids::*;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name { $(#[serde(rename = $text)] $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Case-insensitive parse of the canonical name.
            pub fn parse(text: &str) -> Option<Self> {
                $(if text.eq_ignore_ascii_case($text) { return Some($name::$variant); })+
                None
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// A listener's protocol. HTTPS, QUIC and TCPSSL terminate TLS and carry certificates.
    Protocol { Http => "HTTP", Https => "HTTPS", Quic => "QUIC", Tcp => "TCP", TcpSsl => "TCPSSL", Udp => "UDP" }
);

impl Protocol {
    pub fn is_tls(self) -> bool {
        matches!(self, Protocol::Https | Protocol::Quic | Protocol::TcpSsl)
    }
}

text_enum!(
    /// Application load balancers carry every protocol; network load balancers only layer 4.
    LbType { Application => "application", Network => "network" }
);

impl LbType {
    pub fn allows(self, protocol: Protocol) -> bool {
        match self {
            LbType::Application => true,
            LbType::Network => matches!(protocol, Protocol::Tcp | Protocol::Udp | Protocol::TcpSsl),
        }
    }
}

text_enum!(
    /// The role a certificate plays on a listener.
    BindingRole { Default => "default", Additional => "additional" }
);

text_enum!(
    /// A binding's progress. A binding that is gone is Dissociated: it has no row.
    BindingStatus { Associating => "Associating", Associated => "Associated", Dissociating => "Dissociating" }
);

text_enum!(
    JobKind {
        CreateListener => "create_listener",
        SetDefault => "set_default",
        Associate => "associate",
        Dissociate => "dissociate",
        Replace => "replace",
        OneClickUpdate => "one_click_update",
    }
);

text_enum!(
    JobState { Pending => "pending", Running => "running", Succeeded => "succeeded", Failed => "failed" }
);

impl JobState {
    pub fn is_final(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Failed)
    }
}

text_enum!(
    /// A job target's progress. `Running` means its change is committed and the job waits
    /// for the data plane to serve it.
    TargetStatus { Pending => "pending", Running => "running", Succeeded => "succeeded", Failed => "failed" }
);

text_enum!(
    /// What one job target does to one listener.
    TargetAction {
        Activate => "activate",
        SetDefault => "set_default",
        Associate => "associate",
        Dissociate => "dissociate",
        Replace => "replace",
    }
);

text_enum!(
    KeyAlgorithm { Rsa => "RSA", EcdsaP256 => "EC_P256", EcdsaP384 => "EC_P384" }
);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Account {
    pub id: AccountId,
    pub name: String,
    pub created_at: i64,
}

/// An access key. The secret signs requests in every dialect, so the server must be able
/// to recompute signatures: it is kept encrypted under the master key, never hashed.
#[derive(Clone, Serialize, Deserialize)]
pub struct AccessKey {
    pub key_id: String,
    pub account_id: AccountId,
    #[serde(skip)]
    pub secret: String,
    pub enabled: bool,
    pub created_at: i64,
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKey")
            .field("key_id", &self.key_id)
            .field("account_id", &self.account_id)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Project {
    pub id: ProjectId,
    pub account_id: AccountId,
    pub name: String,
    pub is_default: bool,
    pub created_at: i64,
}

/// A stored certificate: everything parsed from it, never its private key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Certificate {
    pub id: CertId,
    pub account_id: AccountId,
    pub project_id: ProjectId,
    pub name: String,
    pub common_name: Option<String>,
    pub sans: Vec<String>,
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    pub not_before: i64,
    pub not_after: i64,
    pub fingerprint_sha256: String,
    pub key_algorithm: KeyAlgorithm,
    pub key_bits: u32,
    /// Leaf then intermediates, PEM.
    pub chain_pem: String,
    pub allow_download: bool,
    /// Dialect attributes stored and returned as given (tags, notification switches, ...).
    pub attributes: serde_json::Value,
    pub created_at: i64,
}

impl Certificate {
    /// The host names this certificate answers for: its DNS SANs, or its CN without any.
    pub fn host_names(&self) -> Vec<String> {
        crate::names::served_names(self.common_name.as_deref(), &self.sans)
    }

    pub fn validity(&self, now: i64) -> Validity {
        Validity::at(self.not_before, self.not_after, now)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Validity {
    Valid,
    Expired,
    NotYetValid,
}

impl Validity {
    pub fn at(not_before: i64, not_after: i64, now: i64) -> Validity {
        if now < not_before {
            Validity::NotYetValid
        } else if now > not_after {
            Validity::Expired
        } else {
            Validity::Valid
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadBalancer {
    pub id: LoadBalancerId,
    pub account_id: AccountId,
    pub project_id: ProjectId,
    pub name: String,
    pub lb_type: LbType,
    pub region: String,
    /// The load balancer's own address (its VIP); listeners bind it instead of the
    /// server's listen IP when set.
    pub address: Option<IpAddr>,
    pub attributes: serde_json::Value,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Listener {
    pub id: ListenerId,
    pub account_id: AccountId,
    pub load_balancer_id: LoadBalancerId,
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
    pub attributes: serde_json::Value,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Binding {
    pub listener_id: ListenerId,
    pub cert_id: CertId,
    pub role: BindingRole,
    pub status: BindingStatus,
    /// The store revision at which this binding last changed.
    pub revision: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backend {
    pub id: BackendId,
    pub listener_id: ListenerId,
    pub address: String,
    pub weight: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TargetCounts {
    pub total: u64,
    pub pending: u64,
    pub running: u64,
    pub succeeded: u64,
    pub failed: u64,
}

impl TargetCounts {
    pub fn add(&mut self, status: TargetStatus, n: u64) {
        self.total += n;
        match status {
            TargetStatus::Pending => self.pending += n,
            TargetStatus::Running => self.running += n,
            TargetStatus::Succeeded => self.succeeded += n,
            TargetStatus::Failed => self.failed += n,
        }
    }
}

/// Target counts for one (resource type, region) pair.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupCounts {
    pub resource_type: LbType,
    pub region: String,
    #[serde(flatten)]
    pub counts: TargetCounts,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub id: JobId,
    pub account_id: AccountId,
    pub kind: JobKind,
    pub state: JobState,
    pub old_cert_id: Option<CertId>,
    pub new_cert_id: Option<CertId>,
    pub client_token: Option<String>,
    pub error: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub counts: TargetCounts,
    pub groups: Vec<GroupCounts>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobTarget {
    pub job_id: JobId,
    pub seq: i64,
    pub listener_id: ListenerId,
    pub load_balancer_id: LoadBalancerId,
    pub resource_type: LbType,
    pub region: String,
    pub action: TargetAction,
    pub old_cert_id: Option<CertId>,
    pub new_cert_id: Option<CertId>,
    pub status: TargetStatus,
    pub error: Option<String>,
}

/// A user of an account: signs with its own access keys, may do what its policies allow.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub account_id: AccountId,
    pub name: String,
    pub created_at: i64,
}

/// A named policy document of an account, attachable to users.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Policy {
    pub id: PolicyId,
    pub account_id: AccountId,
    pub name: String,
    pub document: serde_json::Value,
    pub created_at: i64,
}

/// One audited request: every write and every denied request. Never a secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: i64,
    pub account_id: Option<AccountId>,
    /// The user's name; `None` for the account's root keys or an unknown signer.
    pub user: Option<String>,
    pub key_id: Option<String>,
    pub source: Option<String>,
    /// "native", "aliyun", "tencent" or "ucloud".
    pub dialect: String,
    pub action: String,
    pub resources: Vec<String>,
    /// "allowed", "denied", "failed" (with `error_code`).
    pub outcome: String,
    pub error_code: Option<String>,
    pub request_id: String,
}
