//! Ids as Alibaba Cloud shows them, over the core's integer ids.

use super::Product;
use certbind_core::ids::*;

fn digits(text: &str) -> Option<i64> {
    if text.is_empty() || text.len() > 18 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `<CertId>-<region>` or a bare `<CertId>`.
pub fn parse_cert_ref(text: &str) -> Option<CertId> {
    let head = text.split_once('-').map(|(h, _)| h).unwrap_or(text);
    digits(head).map(CertId)
}

pub fn cert_ref(id: CertId, region: &str) -> String {
    format!("{}-{region}", id.0)
}

pub fn parse_lb(product: Product, text: &str) -> Option<LoadBalancerId> {
    text.strip_prefix(product.lb_prefix()).and_then(|t| t.strip_prefix('-')).and_then(digits).map(LoadBalancerId)
}

pub fn lb(product: Product, id: LoadBalancerId) -> String {
    format!("{}-{}", product.lb_prefix(), id.0)
}

pub fn parse_listener(text: &str) -> Option<ListenerId> {
    text.strip_prefix("lsn-").and_then(digits).map(ListenerId)
}

pub fn listener(id: ListenerId) -> String {
    format!("lsn-{}", id.0)
}

pub fn parse_job(text: &str) -> Option<JobId> {
    text.strip_prefix("job-").and_then(digits).map(JobId)
}

pub fn job(id: JobId) -> String {
    format!("job-{}", id.0)
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn iso(unix: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::OffsetDateTime::from_unix_timestamp(unix).ok().and_then(|t| t.format(&format).ok()).unwrap_or_default()
}

/// Unix seconds as `YYYY-MM-DD`.
pub fn date(unix: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::OffsetDateTime::from_unix_timestamp(unix).ok().and_then(|t| t.format(&format).ok()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_references_take_the_region_form_and_the_bare_id() {
        assert_eq!(parse_cert_ref("12-cn-hangzhou"), Some(CertId(12)));
        assert_eq!(parse_cert_ref("12"), Some(CertId(12)));
        assert_eq!(parse_cert_ref("abc-cn-hangzhou"), None);
        assert_eq!(parse_cert_ref(""), None);
        assert_eq!(parse_cert_ref("99999999999999999999-x"), None);
    }

    #[test]
    fn load_balancer_ids_belong_to_one_product() {
        assert_eq!(parse_lb(Product::Alb, "alb-7"), Some(LoadBalancerId(7)));
        assert_eq!(parse_lb(Product::Nlb, "alb-7"), None);
        assert_eq!(lb(Product::Nlb, LoadBalancerId(7)), "nlb-7");
        assert_eq!(parse_listener("lsn-3"), Some(ListenerId(3)));
        assert_eq!(parse_job(&job(JobId(9))), Some(JobId(9)));
        assert_eq!(iso(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
