//! Per-node request guards: per account and action throttling (`Throttling.User`), and a
//! bound on requests in flight (`SystemBusy`). Nonces are remembered in the store
//! (`Control::judge_replay`), for every node and across restarts.
//!
//! Tunable through the environment (read once):
//! - `CERTBIND_ALIYUN_THROTTLE=<requests>/<seconds>` (default `200/60`, as the ALB
//!   documents for its certificate APIs);
//! - `CERTBIND_ALIYUN_MAX_IN_FLIGHT=<n>` (default 256).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a signed request stays valid either side of now, and so how long its nonce
/// is remembered past its timestamp.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);

struct Limits {
    throttle_requests: u32,
    throttle_window: Duration,
    max_in_flight: usize,
}

fn limits() -> &'static Limits {
    static LIMITS: OnceLock<Limits> = OnceLock::new();
    LIMITS.get_or_init(|| {
        let (throttle_requests, throttle_window) = std::env::var("CERTBIND_ALIYUN_THROTTLE")
            .ok()
            .and_then(|v| {
                let (n, s) = v.split_once('/')?;
                Some((n.trim().parse().ok()?, Duration::from_secs(s.trim().parse().ok().filter(|s| *s > 0)?)))
            })
            .unwrap_or((200, Duration::from_secs(60)));
        let max_in_flight =
            std::env::var("CERTBIND_ALIYUN_MAX_IN_FLIGHT").ok().and_then(|v| v.trim().parse().ok()).unwrap_or(256);
        Limits { throttle_requests, throttle_window, max_in_flight }
    })
}

/// Per (account, product:action): when the current window started and how many requests
/// it has admitted.
type Windows = HashMap<(i64, String), (Instant, u32)>;

/// Counts one request of `action` by `account`; `Err(ms)` (time until the window frees
/// up) when over the limit.
pub fn throttle(account: i64, product: &str, action: &str) -> Result<(), u64> {
    static WINDOWS: OnceLock<Mutex<Windows>> = OnceLock::new();
    let limits = limits();
    let windows = WINDOWS.get_or_init(|| Mutex::new(HashMap::new()));
    let mut map = windows.lock().unwrap_or_else(|p| p.into_inner());
    let now = Instant::now();
    if map.len() > 100_000 {
        map.retain(|_, (start, _)| now.duration_since(*start) < limits.throttle_window);
    }
    let entry = map.entry((account, format!("{product}:{action}"))).or_insert((now, 0));
    if now.duration_since(entry.0) >= limits.throttle_window {
        *entry = (now, 0);
    }
    if entry.1 >= limits.throttle_requests {
        let left = limits.throttle_window.saturating_sub(now.duration_since(entry.0));
        return Err(left.as_millis().max(1) as u64);
    }
    entry.1 += 1;
    Ok(())
}

static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// A slot among the requests in flight, released on drop.
pub struct InFlight(());

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::AcqRel);
    }
}

pub fn enter() -> Option<InFlight> {
    let max = limits().max_in_flight;
    let before = IN_FLIGHT.fetch_add(1, Ordering::AcqRel);
    let slot = InFlight(());
    if before >= max {
        drop(slot);
        return None;
    }
    Some(slot)
}
