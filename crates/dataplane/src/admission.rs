//! Who gets a connection, and for how long: the caps that keep one client from starving
//! the others, shared by every listener and the API.
//!
//! Every accepted connection takes a [`Slot`] in one table. When the table (or the
//! connection's group: one listener, or the API) is full, the connection that has been
//! idle longest is evicted to make room; only when every connection is busy is the new
//! one refused. A connection is idle when it has no request in flight: during its TLS
//! handshake, between keep-alive requests, an HTTP/2 connection without open streams
//! (whatever PINGs it answers), a stream (TCP) connection that carried no byte. A
//! connection idle for longer than the idle timeout is closed, and so is one with a
//! request in flight on which no byte moved for as long (a stalled upload or download,
//! as nginx's body and proxy read timeouts close it). So an attacker holding the
//! maximum of connections, and sending nothing on them, holds them only until good
//! clients need the room, and never longer than the idle timeout.

use certbind_core::ListenerId;
use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// The limits, all configurable on `certbind serve`.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Connections open at once, over every listener and the API.
    pub max_connections: usize,
    /// Connections open at once on one listener (or on the API).
    pub max_connections_per_listener: usize,
    /// Time for a client to finish its TLS handshake.
    pub handshake_timeout: Duration,
    /// Time for an HTTP client to send a request's headers once it started.
    pub header_read_timeout: Duration,
    /// Time a connection may stay without a request in flight (or, for a stream, without a
    /// byte either way) before it is closed.
    pub idle_timeout: Duration,
    /// How often HTTP/2 connections are PINGed, and how long an answer may take before
    /// the connection is taken for dead.
    pub http2_ping_interval: Duration,
    /// Request headers, in bytes, for HTTP/1.1 and HTTP/2 alike.
    pub max_header_bytes: usize,
    /// The process's open-file limit as raised at start (shown, not enforced here).
    pub open_files_limit: u64,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 10_000,
            max_connections_per_listener: 10_000,
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            http2_ping_interval: Duration::from_secs(20),
            max_header_bytes: 64 * 1024,
            open_files_limit: 0,
        }
    }
}

/// What a connection belongs to, for the per-group cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Group {
    Api,
    Listener(ListenerId),
}

/// Counters of what admission did, for `/metrics`.
#[derive(Debug, Default)]
pub struct AdmissionCounters {
    pub evicted: AtomicU64,
    pub refused: AtomicU64,
    pub idle_closed: AtomicU64,
    pub stalled: AtomicU64,
}

/// The table of open connections.
pub struct Admission {
    limits: ConnectionLimits,
    table: Mutex<Table>,
    epoch: Instant,
    pub counters: AdmissionCounters,
}

#[derive(Default)]
struct Table {
    next_id: u64,
    entries: HashMap<u64, (Group, Arc<Activity>)>,
    per_group: HashMap<Group, usize>,
}

impl Table {
    fn count(&self, group: Group) -> usize {
        self.per_group.get(&group).copied().unwrap_or(0)
    }

    fn remove(&mut self, id: u64) -> Option<Arc<Activity>> {
        let (group, activity) = self.entries.remove(&id)?;
        if let Some(count) = self.per_group.get_mut(&group) {
            *count -= 1;
            if *count == 0 {
                self.per_group.remove(&group);
            }
        }
        Some(activity)
    }

    /// The connection idle longest (in `group`, when given), if any is idle.
    fn longest_idle(&self, group: Option<Group>) -> Option<u64> {
        self.entries
            .iter()
            .filter(|(_, (g, activity))| group.is_none_or(|wanted| *g == wanted) && activity.is_idle())
            .min_by_key(|(_, (_, activity))| activity.last_active.load(Ordering::Relaxed))
            .map(|(id, _)| *id)
    }
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission").field("limits", &self.limits).field("open", &self.open(None)).finish()
    }
}

impl Admission {
    pub fn new(limits: ConnectionLimits) -> Arc<Self> {
        Arc::new(Admission {
            limits,
            table: Mutex::new(Table::default()),
            epoch: Instant::now(),
            counters: AdmissionCounters::default(),
        })
    }

    pub fn limits(&self) -> &ConnectionLimits {
        &self.limits
    }

    /// Connections open now, in all and in `group`.
    pub fn open(&self, group: Option<Group>) -> usize {
        let table = self.lock();
        match group {
            Some(group) => table.count(group),
            None => table.entries.len(),
        }
    }

    /// A slot for a new connection of `group`, evicting the longest-idle connection when
    /// a cap is reached; `None` when every connection in the way is busy.
    pub fn admit(self: &Arc<Self>, group: Group) -> Option<Slot> {
        let now = self.now_ms();
        let mut table = self.lock();
        while table.count(group) >= self.limits.max_connections_per_listener
            || table.entries.len() >= self.limits.max_connections
        {
            let scope = (table.count(group) >= self.limits.max_connections_per_listener).then_some(group);
            let Some(victim) = table.longest_idle(scope) else {
                self.counters.refused.fetch_add(1, Ordering::Relaxed);
                return None;
            };
            if let Some(activity) = table.remove(victim) {
                activity.evict();
                self.counters.evicted.fetch_add(1, Ordering::Relaxed);
            }
        }
        let id = table.next_id;
        table.next_id += 1;
        let activity = Arc::new(Activity::new(now, self.epoch));
        table.entries.insert(id, (group, activity.clone()));
        *table.per_group.entry(group).or_insert(0) += 1;
        drop(table);
        Some(Slot { admission: self.clone(), id, activity })
    }

    /// The limits and what admission did, in Prometheus text format.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write as _;
        let l = &self.limits;
        let (open, api) = {
            let table = self.lock();
            (table.entries.len(), table.count(Group::Api))
        };
        let _ = writeln!(out, "# HELP certbind_connection_limit Connection limits in force (counts, seconds, bytes).");
        let _ = writeln!(out, "# TYPE certbind_connection_limit gauge");
        for (name, value) in [
            ("max_connections", l.max_connections as f64),
            ("max_connections_per_listener", l.max_connections_per_listener as f64),
            ("handshake_timeout_seconds", l.handshake_timeout.as_secs_f64()),
            ("header_read_timeout_seconds", l.header_read_timeout.as_secs_f64()),
            ("idle_timeout_seconds", l.idle_timeout.as_secs_f64()),
            ("http2_ping_interval_seconds", l.http2_ping_interval.as_secs_f64()),
            ("max_header_bytes", l.max_header_bytes as f64),
            ("open_files", l.open_files_limit as f64),
        ] {
            let _ = writeln!(out, "certbind_connection_limit{{limit=\"{name}\"}} {value}");
        }
        let _ = writeln!(out, "# HELP certbind_connections_open Connections holding a slot now.");
        let _ = writeln!(out, "# TYPE certbind_connections_open gauge");
        let _ = writeln!(out, "certbind_connections_open{{group=\"all\"}} {open}");
        let _ = writeln!(out, "certbind_connections_open{{group=\"api\"}} {api}");
        let _ = writeln!(out, "# HELP certbind_connections_closed_total Connections admission closed or turned away.");
        let _ = writeln!(out, "# TYPE certbind_connections_closed_total counter");
        for (reason, counter) in [
            ("evicted", &self.counters.evicted),
            ("refused", &self.counters.refused),
            ("idle", &self.counters.idle_closed),
            ("stalled", &self.counters.stalled),
        ] {
            let _ = writeln!(
                out,
                "certbind_connections_closed_total{{reason=\"{reason}\"}} {}",
                counter.load(Ordering::Relaxed)
            );
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
}

/// What a connection is doing, as eviction and the idle timeout see it.
pub struct Activity {
    epoch: Instant,
    /// Requests in flight (HTTP), from the request's arrival to its response's last byte.
    busy: AtomicUsize,
    /// When a request last started or ended, or a stream last carried a byte
    /// (milliseconds since the table's epoch).
    last_active: AtomicU64,
    /// When a byte last moved either way (milliseconds since the table's epoch).
    last_byte: AtomicU64,
    evicted: AtomicBool,
    wake: Notify,
}

impl Activity {
    fn new(now_ms: u64, epoch: Instant) -> Self {
        Activity {
            epoch,
            busy: AtomicUsize::new(0),
            last_active: AtomicU64::new(now_ms),
            last_byte: AtomicU64::new(now_ms),
            evicted: AtomicBool::new(false),
            wake: Notify::new(),
        }
    }

    fn is_idle(&self) -> bool {
        self.busy.load(Ordering::Relaxed) == 0
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn touch(&self) {
        self.last_active.store(self.now_ms(), Ordering::Relaxed);
    }

    fn evict(&self) {
        self.evicted.store(true, Ordering::Release);
        // A stored permit wakes the connection even if it is not waiting yet.
        self.wake.notify_one();
    }

    /// Marks a request in flight until the guard drops.
    pub fn begin_request(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::Relaxed);
        self.touch();
        Busy(self.clone())
    }
}

/// A request in flight; dropping it ends the request.
pub struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why a connection was closed by admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    Evicted,
    Idle,
    /// A request in flight, and no byte either way for the idle timeout.
    Stalled,
}

/// One connection's place in the table, freed when dropped.
pub struct Slot {
    admission: Arc<Admission>,
    id: u64,
    pub activity: Arc<Activity>,
}

impl Slot {
    /// Resolves when the connection must close: evicted to make room, idle past the idle
    /// timeout, or stalled as long. Run it beside the connection's work and drop the work
    /// when it wins.
    pub async fn closed(&self) -> Closed {
        let timeout = self.admission.limits.idle_timeout;
        loop {
            if self.activity.evicted.load(Ordering::Acquire) {
                return Closed::Evicted;
            }
            let wait = if self.activity.is_idle() {
                let last = Duration::from_millis(self.activity.last_active.load(Ordering::Relaxed));
                let idle_for = self.activity.epoch.elapsed().saturating_sub(last);
                if idle_for >= timeout {
                    self.admission.counters.idle_closed.fetch_add(1, Ordering::Relaxed);
                    return Closed::Idle;
                }
                timeout - idle_for
            } else {
                let last = self
                    .activity
                    .last_byte
                    .load(Ordering::Relaxed)
                    .max(self.activity.last_active.load(Ordering::Relaxed));
                let stalled_for = self.activity.epoch.elapsed().saturating_sub(Duration::from_millis(last));
                if stalled_for >= timeout {
                    self.admission.counters.stalled.fetch_add(1, Ordering::Relaxed);
                    return Closed::Stalled;
                }
                timeout - stalled_for
            };
            let _ = tokio::time::timeout(wait, self.activity.wake.notified()).await;
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.admission.lock().remove(self.id);
    }
}

/// A connection that tells its activity when bytes move: every connection, so a request
/// in flight that stalls is seen; for a stream (TCP, TCPSSL), bytes are its only activity.
pub struct Touching<S> {
    inner: S,
    activity: Arc<Activity>,
    /// A stream: bytes count as activity (it is idle only while nothing moves). HTTP:
    /// they do not (PINGs would keep an idle connection alive), but a request is stalled
    /// while none move.
    stream: bool,
}

impl<S> Touching<S> {
    /// A stream connection: idle only while no byte moves.
    pub fn stream(inner: S, activity: Arc<Activity>) -> Self {
        Touching { inner, activity, stream: true }
    }

    /// An HTTP connection: idle without a request in flight; stalled while one is and no
    /// byte moves.
    pub fn http(inner: S, activity: Arc<Activity>) -> Self {
        Touching { inner, activity, stream: false }
    }

    fn moved(&self) {
        let now = self.activity.now_ms();
        self.activity.last_byte.store(now, Ordering::Relaxed);
        if self.stream {
            self.activity.last_active.store(now, Ordering::Relaxed);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Touching<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.moved();
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Touching<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, data);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.moved();
        }
        result
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per_listener: usize) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: total,
            max_connections_per_listener: per_listener,
            ..ConnectionLimits::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_table_evicts_the_longest_idle_connection_and_never_a_busy_one() {
        let admission = Admission::new(limits(3, 3));
        let group = Group::Api;
        let first = admission.admit(group).expect("room");
        tokio::time::advance(Duration::from_millis(10)).await;
        let second = admission.admit(group).expect("room");
        tokio::time::advance(Duration::from_millis(10)).await;
        let third = admission.admit(group).expect("room");
        let _busy = first.activity.begin_request();

        // The first is busy, so the second (idle longest) makes room.
        let _fourth = admission.admit(group).expect("room made");
        assert_eq!(second.closed().await, Closed::Evicted);
        assert_eq!(admission.open(None), 3);

        // With everyone busy, a newcomer is refused.
        let _b3 = third.activity.begin_request();
        let _b4 = _fourth.activity.begin_request();
        assert!(admission.admit(group).is_none());
        assert_eq!(admission.counters.refused.load(Ordering::Relaxed), 1);
        drop(second);
        assert_eq!(admission.open(None), 3, "an evicted slot is not counted twice");
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_listener_evicts_within_itself_only() {
        let admission = Admission::new(limits(10, 1));
        let (a, b) = (Group::Listener(ListenerId(1)), Group::Listener(ListenerId(2)));
        let on_a = admission.admit(a).expect("room");
        tokio::time::advance(Duration::from_millis(10)).await;
        let on_b = admission.admit(b).expect("room");
        let _again_b = admission.admit(b).expect("room made on b");
        assert_eq!(on_b.closed().await, Closed::Evicted);
        assert!(!on_a.activity.evicted.load(Ordering::Relaxed), "another listener's connection stays");
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_on_which_no_byte_moves_for_the_idle_timeout_is_stalled() {
        let admission = Admission::new(ConnectionLimits { idle_timeout: Duration::from_secs(5), ..limits(10, 10) });
        let slot = admission.admit(Group::Api).expect("room");
        let _busy = slot.activity.begin_request();
        let (client, server) = tokio::io::duplex(64);
        let mut io = Touching::http(server, slot.activity.clone());
        let mut client = client;
        let started = Instant::now();
        let closing = tokio::spawn(async move { (slot.closed().await, Instant::now()) });
        // A byte every 4 s keeps a slow request going.
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_secs(4)).await;
            tokio::io::AsyncWriteExt::write_all(&mut client, b"x").await.expect("write");
            let mut byte = [0u8; 1];
            tokio::io::AsyncReadExt::read_exact(&mut io, &mut byte).await.expect("read");
            assert!(!closing.is_finished(), "closed while bytes moved");
        }
        // Then nothing for 5 s: stalled.
        let (why, at) = closing.await.expect("join");
        assert_eq!(why, Closed::Stalled);
        assert!(at - started >= Duration::from_secs(25));
        assert_eq!(admission.counters.stalled.load(Ordering::Relaxed), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_a_request_closes_after_the_idle_timeout() {
        let admission = Admission::new(ConnectionLimits { idle_timeout: Duration::from_secs(5), ..limits(10, 10) });
        let slot = admission.admit(Group::Api).expect("room");
        let busy = slot.activity.begin_request();
        let started = Instant::now();
        let closing = tokio::spawn(async move { (slot.closed().await, Instant::now()) });
        tokio::time::advance(Duration::from_secs(4)).await;
        // Still busy: a request in flight is not idle.
        assert!(!closing.is_finished());
        drop(busy);
        let (why, at) = closing.await.expect("join");
        assert_eq!(why, Closed::Idle);
        assert!(at - started >= Duration::from_secs(9), "idle counted from the request's end");
    }
}
