//! Per-listener counters, and their Prometheus text rendering (hand-formatted: the format
//! is small and a metrics library would be the largest dependency of the crate).

use certbind_core::serving::ListenerRuntime;
use certbind_core::{CertId, ListenerId};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::snapshot::Snapshot;

/// Why a TLS handshake failed, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HandshakeFailure {
    /// No certificate for the SNI and no default.
    NoCertificate,
    /// The client spoke broken or incompatible TLS.
    ProtocolError,
    /// The client aborted with an alert (typically: it does not trust our certificate).
    PeerAlert,
    /// The handshake did not finish in time.
    Timeout,
    /// The connection broke during the handshake.
    Io,
    Other,
}

impl HandshakeFailure {
    const ALL: [HandshakeFailure; 6] = [
        HandshakeFailure::NoCertificate,
        HandshakeFailure::ProtocolError,
        HandshakeFailure::PeerAlert,
        HandshakeFailure::Timeout,
        HandshakeFailure::Io,
        HandshakeFailure::Other,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            HandshakeFailure::NoCertificate => "no_certificate",
            HandshakeFailure::ProtocolError => "protocol_error",
            HandshakeFailure::PeerAlert => "peer_alert",
            HandshakeFailure::Timeout => "timeout",
            HandshakeFailure::Io => "io",
            HandshakeFailure::Other => "other",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Default)]
pub(crate) struct ListenerMetrics {
    pub(crate) connections: AtomicU64,
    pub(crate) active: AtomicI64,
    pub(crate) handshakes: AtomicU64,
    failures: [AtomicU64; 6],
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
}

impl ListenerMetrics {
    pub(crate) fn handshake_failed(&self, reason: HandshakeFailure) {
        self.failures[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a connection as active until the guard drops, whatever way it ends.
    pub(crate) fn connection_opened(self: &Arc<Self>) -> ActiveGuard {
        self.connections.fetch_add(1, Ordering::Relaxed);
        self.active.fetch_add(1, Ordering::Relaxed);
        ActiveGuard(self.clone())
    }
}

pub(crate) struct ActiveGuard(Arc<ListenerMetrics>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// All listeners' counters, plus the data plane's own.
#[derive(Debug, Default)]
pub(crate) struct MetricsRegistry {
    listeners: Mutex<HashMap<ListenerId, Arc<ListenerMetrics>>>,
    /// Snapshots built from the whole serving state.
    pub(crate) snapshot_builds: AtomicU64,
    /// Snapshots built from the changes since the previous one.
    pub(crate) snapshot_builds_from_changes: AtomicU64,
    pub(crate) snapshot_build_failures: AtomicU64,
}

impl MetricsRegistry {
    /// The listener's counters; kept across socket restarts of the same listener.
    pub(crate) fn listener(&self, id: ListenerId) -> Arc<ListenerMetrics> {
        let mut listeners = self.listeners.lock().unwrap_or_else(|p| p.into_inner());
        listeners.entry(id).or_default().clone()
    }

    /// Forgets listeners that no longer exist.
    pub(crate) fn retain(&self, keep: impl Fn(&ListenerId) -> bool) {
        let mut listeners = self.listeners.lock().unwrap_or_else(|p| p.into_inner());
        listeners.retain(|id, _| keep(id));
    }

    pub(crate) fn render(
        &self,
        snapshot: &Snapshot,
        served_revision: i64,
        runtime: &HashMap<ListenerId, ListenerRuntime>,
    ) -> String {
        let listeners: BTreeMap<ListenerId, Arc<ListenerMetrics>> = {
            let map = self.listeners.lock().unwrap_or_else(|p| p.into_inner());
            map.iter().map(|(id, m)| (*id, m.clone())).collect()
        };
        let mut out = String::new();

        let per_listener =
            |out: &mut String, name: &str, kind: &str, help: &str, value: &dyn Fn(&ListenerMetrics) -> i64| {
                header(out, name, kind, help);
                for (id, m) in &listeners {
                    let _ = writeln!(out, "{name}{{listener=\"{}\"}} {}", escape(&id.to_string()), value(m));
                }
            };
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed) as i64;
        per_listener(&mut out, "certbind_listener_connections_total", "counter", "Connections accepted.", &|m| {
            load(&m.connections)
        });
        per_listener(&mut out, "certbind_listener_active_connections", "gauge", "Connections open now.", &|m| {
            m.active.load(Ordering::Relaxed)
        });
        per_listener(&mut out, "certbind_listener_handshakes_total", "counter", "TLS handshakes completed.", &|m| {
            load(&m.handshakes)
        });
        header(&mut out, "certbind_listener_handshake_failures_total", "counter", "TLS handshakes failed, by reason.");
        for (id, m) in &listeners {
            for reason in HandshakeFailure::ALL {
                let _ = writeln!(
                    out,
                    "certbind_listener_handshake_failures_total{{listener=\"{}\",reason=\"{}\"}} {}",
                    escape(&id.to_string()),
                    reason.as_str(),
                    m.failures[reason.index()].load(Ordering::Relaxed)
                );
            }
        }
        per_listener(
            &mut out,
            "certbind_listener_bytes_in_total",
            "counter",
            "Bytes read from clients (TLS records included).",
            &|m| load(&m.bytes_in),
        );
        per_listener(
            &mut out,
            "certbind_listener_bytes_out_total",
            "counter",
            "Bytes written to clients (TLS records included).",
            &|m| load(&m.bytes_out),
        );

        header(&mut out, "certbind_listener_up", "gauge", "1 when the listener's socket is accepting connections.");
        let runtime: BTreeMap<_, _> = runtime.iter().collect();
        for (id, rt) in &runtime {
            let up = i64::from(rt.state == crate::sockets::STATE_SERVING);
            let _ = writeln!(
                out,
                "certbind_listener_up{{listener=\"{}\",state=\"{}\"}} {up}",
                escape(&id.to_string()),
                escape(&rt.state)
            );
        }

        header(&mut out, "certbind_listener_certificates_stale", "gauge", "1 when the listener still serves an older revision's certificates because the current ones failed to load.");
        let views: BTreeMap<_, _> = snapshot.listeners.iter().collect();
        for (id, view) in &views {
            if view.certs.is_some() {
                let stale = i64::from(view.cert_error.is_some());
                let _ = writeln!(
                    out,
                    "certbind_listener_certificates_stale{{listener=\"{}\"}} {stale}",
                    escape(&id.to_string())
                );
            }
        }

        header(
            &mut out,
            "certbind_certificate_not_after_seconds",
            "gauge",
            "Expiry (not_after, seconds since the epoch) of each certificate being served.",
        );
        let mut expiry: BTreeMap<CertId, i64> = BTreeMap::new();
        for view in snapshot.listeners.values() {
            for cert in view.certs.iter().flat_map(|set| set.certs()) {
                expiry.insert(cert.id, cert.not_after);
            }
        }
        for (id, not_after) in expiry {
            let _ = writeln!(
                out,
                "certbind_certificate_not_after_seconds{{cert=\"{}\"}} {not_after}",
                escape(&id.to_string())
            );
        }

        header(
            &mut out,
            "certbind_served_revision",
            "gauge",
            "Store revision of the snapshot being served (-1 before the first).",
        );
        let _ = writeln!(out, "certbind_served_revision {served_revision}");
        header(
            &mut out,
            "certbind_snapshot_builds_total",
            "counter",
            "Snapshots built and published, from the whole serving state or from the changes since the previous one.",
        );
        let _ = writeln!(
            out,
            "certbind_snapshot_builds_total{{from=\"state\"}} {}",
            self.snapshot_builds.load(Ordering::Relaxed)
        );
        let from_changes = self.snapshot_builds_from_changes.load(Ordering::Relaxed);
        let _ = writeln!(out, "certbind_snapshot_builds_total{{from=\"changes\"}} {from_changes}");
        header(
            &mut out,
            "certbind_snapshot_build_failures_total",
            "counter",
            "Snapshot builds that failed in whole or in part (the previous state kept serving).",
        );
        let _ = writeln!(
            out,
            "certbind_snapshot_build_failures_total {}",
            self.snapshot_build_failures.load(Ordering::Relaxed)
        );
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Label value escaping per the exposition format.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}
