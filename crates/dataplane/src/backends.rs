//! Choosing a backend: round robin by weight, skipping backends that recently refused a
//! connection (passive health: no probes, the traffic itself is the probe).

use certbind_core::model::Backend;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a backend that refused a connection is skipped.
pub(crate) const QUARANTINE: Duration = Duration::from_secs(10);

/// A listener's backends as one snapshot serves them. The cursor lives here, so a rebuild
/// that leaves the backend list unchanged reuses the same value (see `same_backends`)
/// and the rotation carries on.
#[derive(Debug, Default)]
pub(crate) struct BackendSet {
    /// Backends with a weight above zero (zero means drained), in the given order.
    entries: Vec<(String, u32)>,
    /// `cumulative[i]` is the sum of the weights of entries `0..=i`.
    cumulative: Vec<u64>,
    cursor: AtomicU64,
}

impl BackendSet {
    pub(crate) fn new(backends: &[Backend]) -> BackendSet {
        let mut set = BackendSet::default();
        let mut total = 0u64;
        for backend in backends.iter().filter(|b| b.weight > 0) {
            total += u64::from(backend.weight);
            set.entries.push((backend.address.clone(), backend.weight));
            set.cumulative.push(total);
        }
        set
    }

    /// Whether this set was built from exactly `backends`.
    pub(crate) fn same_backends(&self, backends: &[Backend]) -> bool {
        let mut given = backends.iter().filter(|b| b.weight > 0);
        let same = self
            .entries
            .iter()
            .all(|(address, weight)| given.next().is_some_and(|b| &b.address == address && b.weight == *weight));
        same && given.next().is_none()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The backends to try for one connection or request, best first: the next weighted
    /// round-robin slot, then the others in order as fallbacks; backends in quarantine are
    /// left out.
    pub(crate) fn candidates<'a>(&'a self, health: &'a HealthTable) -> impl Iterator<Item = &'a str> + 'a {
        let n = self.entries.len();
        let start = match self.cumulative.last() {
            Some(&total) if total > 0 => {
                let slot = self.cursor.fetch_add(1, Ordering::Relaxed) % total;
                // First entry whose cumulative weight exceeds the slot.
                self.cumulative.partition_point(|&c| c <= slot)
            }
            _ => 0,
        };
        (0..n)
            .filter_map(move |k| self.entries.get((start + k) % n))
            .map(|(address, _)| address.as_str())
            .filter(move |address| health.is_available(address))
    }
}

/// Backends that refused a connection, and until when they are skipped. Shared by all
/// listeners: one backend address is one server whichever listener reaches it.
#[derive(Debug)]
pub(crate) struct HealthTable {
    quarantine: Duration,
    down_until: Mutex<HashMap<String, Instant>>,
}

impl HealthTable {
    pub(crate) fn new(quarantine: Duration) -> HealthTable {
        HealthTable { quarantine, down_until: Mutex::new(HashMap::new()) }
    }

    pub(crate) fn is_available(&self, address: &str) -> bool {
        let mut down = self.down_until.lock().unwrap_or_else(|p| p.into_inner());
        match down.get(address) {
            None => true,
            Some(until) if Instant::now() >= *until => {
                down.remove(address);
                true
            }
            Some(_) => false,
        }
    }

    pub(crate) fn mark_down(&self, address: &str) {
        let until = Instant::now() + self.quarantine;
        let mut down = self.down_until.lock().unwrap_or_else(|p| p.into_inner());
        down.insert(address.to_owned(), until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use certbind_core::ids::BackendId;
    use certbind_core::ListenerId;

    fn backend(address: &str, weight: u32) -> Backend {
        Backend { id: BackendId(1), listener_id: ListenerId(1), address: address.into(), weight }
    }

    fn first(set: &BackendSet, health: &HealthTable) -> Option<String> {
        set.candidates(health).next().map(str::to_owned)
    }

    #[test]
    fn round_robin_follows_weights() {
        let set = BackendSet::new(&[backend("a:1", 3), backend("b:1", 1), backend("c:1", 0)]);
        let health = HealthTable::new(QUARANTINE);
        let picks: Vec<_> = (0..8).filter_map(|_| first(&set, &health)).collect();
        assert_eq!(picks.iter().filter(|p| *p == "a:1").count(), 6);
        assert_eq!(picks.iter().filter(|p| *p == "b:1").count(), 2);
    }

    #[test]
    fn quarantined_backend_is_skipped_then_returns() {
        let set = BackendSet::new(&[backend("a:1", 1), backend("b:1", 1)]);
        let health = HealthTable::new(Duration::from_millis(50));
        health.mark_down("a:1");
        for _ in 0..4 {
            assert_eq!(first(&set, &health).as_deref(), Some("b:1"));
        }
        std::thread::sleep(Duration::from_millis(60));
        let picks: Vec<_> = (0..4).filter_map(|_| first(&set, &health)).collect();
        assert!(picks.iter().any(|p| p == "a:1"));
    }

    #[test]
    fn all_down_or_no_weight_means_no_candidate() {
        let health = HealthTable::new(QUARANTINE);
        assert_eq!(first(&BackendSet::new(&[backend("a:1", 0)]), &health), None);
        let set = BackendSet::new(&[backend("a:1", 1)]);
        health.mark_down("a:1");
        assert_eq!(first(&set, &health), None);
    }

    #[test]
    fn same_backends_ignores_drained_ones() {
        let set = BackendSet::new(&[backend("a:1", 1), backend("b:1", 0)]);
        assert!(set.same_backends(&[backend("a:1", 1)]));
        assert!(!set.same_backends(&[backend("a:1", 2)]));
        assert!(!set.same_backends(&[backend("a:1", 1), backend("b:1", 1)]));
        assert!(!set.same_backends(&[]));
    }
}
