//! How certbind's integer ids look in the Tencent dialect.
//!
//! Every form is a bijection from the core integer id, so no mapping table is needed and
//! the same certificate or listener is the same object in every dialect:
//!
//! - certificate: 8 characters over `0-9A-Za-z` (Tencent's ids look like `FvuXExOA`).
//!   `y = (id * 25214903917 + 3141592653) mod 62^8`, written as 8 base-62 digits, most
//!   significant first. The multiplier is coprime to 62^8, so the map is a permutation of
//!   `[0, 62^8)` and is undone with the modular inverse.
//! - load balancer: `lb-` + 8 characters over `0-9a-z`:
//!   `y = (id * 1103515249 + 12345) mod 36^8` in base 36.
//! - listener: `lbl-` + 8 characters over `0-9a-z`:
//!   `y = (id * 2654435761 + 271828) mod 36^8` in base 36.
//! - deploy record (`DeployRecordId`): the core job id itself.
//! - CLB task (`DescribeTaskStatus.TaskId`): the `RequestId` of the write, a UUID whose
//!   fourth group is `7a5c` and whose last group is the job id in 12 hex digits.
//!
//! Ids at or above the modulus (over 2·10^14 certificates) cannot be shown; every string
//! of the right shape decodes to some id, which then may or may not exist.

use certbind_core::ids::{CertId, JobId, ListenerId, LoadBalancerId};

const B62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const B36: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

struct Scheme {
    alphabet: &'static [u8],
    width: u32,
    mul: u128,
    add: u128,
}

const CERT: Scheme = Scheme { alphabet: B62, width: 8, mul: 25_214_903_917, add: 3_141_592_653 };
const LB: Scheme = Scheme { alphabet: B36, width: 8, mul: 1_103_515_249, add: 12_345 };
const LISTENER: Scheme = Scheme { alphabet: B36, width: 8, mul: 2_654_435_761, add: 271_828 };

impl Scheme {
    fn modulus(&self) -> u128 {
        (self.alphabet.len() as u128).pow(self.width)
    }

    fn encode(&self, id: i64) -> String {
        let m = self.modulus();
        let mut y = ((id.max(0) as u128 % m) * self.mul + self.add) % m;
        let base = self.alphabet.len() as u128;
        let mut out = vec![b'0'; self.width as usize];
        for slot in out.iter_mut().rev() {
            *slot = self.alphabet[(y % base) as usize];
            y /= base;
        }
        String::from_utf8(out).unwrap_or_default()
    }

    fn decode(&self, text: &str) -> Option<i64> {
        if text.len() != self.width as usize {
            return None;
        }
        let base = self.alphabet.len() as u128;
        let mut y: u128 = 0;
        for b in text.bytes() {
            let digit = self.alphabet.iter().position(|c| *c == b)? as u128;
            y = y * base + digit;
        }
        let m = self.modulus();
        let inverse = mod_inverse(self.mul % m, m)?;
        let x = ((y + m - self.add % m) % m) * inverse % m;
        if x == 0 || x > i64::MAX as u128 {
            return None;
        }
        Some(x as i64)
    }
}

fn mod_inverse(a: u128, m: u128) -> Option<u128> {
    let (mut old_r, mut r) = (a as i128, m as i128);
    let (mut old_s, mut s) = (1i128, 0i128);
    while r != 0 {
        let q = old_r / r;
        (old_r, r) = (r, old_r - q * r);
        (old_s, s) = (s, old_s - q * s);
    }
    if old_r != 1 {
        return None;
    }
    Some(old_s.rem_euclid(m as i128) as u128)
}

pub fn cert(id: CertId) -> String {
    CERT.encode(id.0)
}

pub fn parse_cert(text: &str) -> Option<CertId> {
    CERT.decode(text.trim()).map(CertId)
}

pub fn lb(id: LoadBalancerId) -> String {
    format!("lb-{}", LB.encode(id.0))
}

pub fn parse_lb(text: &str) -> Option<LoadBalancerId> {
    text.trim().strip_prefix("lb-").and_then(|rest| LB.decode(rest)).map(LoadBalancerId)
}

pub fn listener(id: ListenerId) -> String {
    format!("lbl-{}", LISTENER.encode(id.0))
}

pub fn parse_listener(text: &str) -> Option<ListenerId> {
    text.trim().strip_prefix("lbl-").and_then(|rest| LISTENER.decode(rest)).map(ListenerId)
}

const TASK_MARK: &str = "7a5c";

/// A `RequestId` that is also the task id of an asynchronous CLB write (job `job`).
pub fn task_request_id(request_id: &str, job: JobId) -> String {
    let hex: String = request_id.chars().filter(|c| c.is_ascii_hexdigit()).collect::<String>().to_ascii_lowercase();
    let hex = format!("{hex:0<16}");
    format!("{}-{}-{}-{TASK_MARK}-{:012x}", &hex[0..8], &hex[8..12], &hex[12..16], job.0)
}

/// The job behind a task id: `Some(None)` for a well-formed request id of a write that
/// finished synchronously, `None` for text that is no request id at all.
pub fn parse_task(text: &str) -> Option<Option<JobId>> {
    let groups: Vec<&str> = text.trim().split('-').collect();
    if groups.len() != 5 || !groups.iter().all(|g| !g.is_empty() && g.bytes().all(|b| b.is_ascii_hexdigit())) {
        return None;
    }
    if groups[3].eq_ignore_ascii_case(TASK_MARK) && groups[4].len() == 12 {
        let id = i64::from_str_radix(groups[4], 16).ok()?;
        return Some(Some(JobId(id)));
    }
    Some(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_have_the_tencent_shape() {
        for id in [1i64, 2, 3, 61, 62, 1000, 123_456_789, 2_821_109_907_455] {
            let c = cert(CertId(id));
            assert_eq!(c.len(), 8);
            assert_eq!(parse_cert(&c), Some(CertId(id)), "{c}");
            let l = lb(LoadBalancerId(id));
            assert!(l.starts_with("lb-") && l.len() == 11);
            assert_eq!(parse_lb(&l), Some(LoadBalancerId(id)));
            let s = listener(ListenerId(id));
            assert!(s.starts_with("lbl-") && s.len() == 12);
            assert_eq!(parse_listener(&s), Some(ListenerId(id)));
        }
        assert_ne!(cert(CertId(1)), cert(CertId(2)));
        assert_eq!(parse_cert("short"), None);
        assert_eq!(parse_lb("lbl-00000000"), None);
        let task = task_request_id("6EF60BEC-0242-43AF-BB20-270359FB54A7", JobId(42));
        assert_eq!(parse_task(&task), Some(Some(JobId(42))));
        assert_eq!(parse_task("6EF60BEC-0242-43AF-BB20-270359FB54A7"), Some(None));
        assert_eq!(parse_task("nope"), None);
    }
}
