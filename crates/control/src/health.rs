//! Whether the store can take writes now: serving goes on from memory when it cannot, so
//! health checks must tell "serving" from "can take changes". A real write is tried, at
//! most once per [`PROBE_EVERY`] however often the health endpoints are asked.

use crate::{Control, Result};
use certbind_core::{now_unix, CoreError};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const PROBE_EVERY: Duration = Duration::from_secs(2);

/// The last probe: when, and the code of its failure (`None`: writable).
pub(crate) type LastProbe = Mutex<Option<(Instant, Option<&'static str>)>>;

impl Control {
    /// `Ok` when a change could be stored now; otherwise the storage error's code
    /// (`StorageFull`, `StorageReadOnly`, ...).
    pub fn writable(&self) -> std::result::Result<(), &'static str> {
        let mut last = self.inner.last_probe.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, outcome)) = *last {
            if at.elapsed() < PROBE_EVERY {
                return outcome.map_or(Ok(()), Err);
            }
        }
        let outcome = self.probe().err().map(|e| e.code());
        *last = Some((Instant::now(), outcome));
        outcome.map_or(Ok(()), Err)
    }

    fn probe(&self) -> Result<()> {
        self.store().probe_write(now_unix()).map_err(|e| {
            let e = CoreError::from(e);
            tracing::warn!(code = e.code(), error = %e, "the store cannot take writes");
            e
        })
    }
}
