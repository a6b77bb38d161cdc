//! Resource names in each cloud's form, so that a policy written in any of them governs
//! the same object whichever entry point a request comes through:
//!
//! | object | Alibaba | Tencent | UCloud |
//! |---|---|---|---|
//! | load balancer | `acs:{alb,nlb}:{region}:{account}:loadbalancer/{alb-N,nlb-N}` | `qcs::clb:{region}:uin/{account}:clb/{lb-…}` | `ucs:ulb:{region}:{account}:ulb/ulb-N` |
//! | listener | `acs:{alb,nlb}:{region}:{account}:listener/lsn-N` | `qcs::clb:{region}:uin/{account}:listener/{lbl-…}` | `ucs:ulb:{region}:{account}:vserver/vserver-N` |
//! | certificate | `acs:cas::{account}:certificate/N` | `qcs::ssl::uin/{account}:certificate/{8 chars}` | `ucs:ulb::{account}:ssl/ssl-N` |
//!
//! (The native form, `crn:certbind:…`, comes from the control plane itself.)

use super::{aliyun, tencent, ucloud};
use certbind_control::Resource;
use certbind_core::ids::AccountId;
use certbind_core::model::LbType;

pub fn cloud_names(resource: &Resource, account: AccountId) -> Vec<String> {
    let a = account.0;
    let product = |t: &LbType| match t {
        LbType::Application => aliyun::Product::Alb,
        LbType::Network => aliyun::Product::Nlb,
    };
    let service = |t: &LbType| match t {
        LbType::Application => "alb",
        LbType::Network => "nlb",
    };
    match resource {
        Resource::LoadBalancer { id, lb_type, region } => vec![
            format!("acs:{}:{region}:{a}:loadbalancer/{}", service(lb_type), aliyun::ids::lb(product(lb_type), *id)),
            format!("qcs::clb:{region}:uin/{a}:clb/{}", tencent::ids::lb(*id)),
            format!("ucs:ulb:{region}:{a}:ulb/{}", ucloud::ids::ulb(*id)),
        ],
        Resource::Listener { id, lb_type, region, .. } => vec![
            format!("acs:{}:{region}:{a}:listener/{}", service(lb_type), aliyun::ids::listener(*id)),
            format!("qcs::clb:{region}:uin/{a}:listener/{}", tencent::ids::listener(*id)),
            format!("ucs:ulb:{region}:{a}:vserver/{}", ucloud::ids::vserver(*id)),
        ],
        Resource::Certificate { id } => vec![
            format!("acs:cas::{a}:certificate/{}", id.0),
            format!("qcs::ssl::uin/{a}:certificate/{}", tencent::ids::cert(*id)),
            format!("ucs:ulb::{a}:ssl/{}", ucloud::ids::ssl(*id)),
        ],
        Resource::All { kind } => {
            vec![format!("acs:*:*:{a}:{kind}/*"), format!("qcs::*:*:uin/{a}:{kind}/*"), format!("ucs:*:*:{a}:{kind}/*")]
        }
        Resource::Job { .. } | Resource::User { .. } | Resource::Policy { .. } | Resource::Account { .. } => Vec::new(),
    }
}
