//! Which listener sockets are open: reconciled against each published snapshot. A listener
//! added is bound, one removed (or moved to another address, port or protocol) stops
//! accepting and drains, one that cannot be bound is reported with the OS reason and
//! retried later. Never a crash.

use certbind_core::model::Protocol;
use certbind_core::serving::ListenerRuntime;
use certbind_core::ListenerId;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::listener::{accept_loop, ListenerTask};
use crate::listener_map::ListenerMap;
use crate::snapshot::{Snapshot, SocketSpec};
use crate::tls::server_config;
use crate::Shared;

pub(crate) const STATE_SERVING: &str = "serving";
pub(crate) const STATE_BIND_FAILED: &str = "bind_failed";
pub(crate) const STATE_STOPPED: &str = "stopped";
/// UDP and QUIC listeners: accepted by the control plane, not served by this data plane.
pub(crate) const STATE_UNSUPPORTED: &str = "unsupported";

const LISTEN_BACKLOG: u32 = 1024;
/// Up to this many listeners that failed to bind are retried on every publish.
const RETRY_ON_PUBLISH_MAX: usize = 64;
/// New bind failures logged individually per reconcile; the rest are counted.
const LOGGED_BIND_FAILURES: usize = 20;
/// How long a reconcile waits for stopped sockets to close before binding new ones (a
/// port moving from one listener to another in one revision must be free first).
const RELEASE_WAIT: Duration = Duration::from_secs(2);

struct OpenSocket {
    spec: SocketSpec,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    released: oneshot::Receiver<()>,
}

/// Owned by the data plane's run loop, the only place sockets change.
pub(crate) struct Sockets {
    shared: Arc<Shared>,
    listen_ip: IpAddr,
    drain_timeout: Duration,
    open: HashMap<ListenerId, OpenSocket>,
    /// Sockets stopped and still draining their connections.
    draining: Vec<JoinHandle<()>>,
    /// Listeners whose socket could not be bound, with what they asked for and why. They
    /// are retried on the retry tick, not on every publish: a host with many listeners it
    /// cannot bind must not pay for all of them on each revision.
    failed: HashMap<ListenerId, (SocketSpec, ListenerRuntime)>,
    /// The listeners as of the last reconcile: a snapshot that changes only certificates
    /// or backends (a rotation) leaves sockets alone, and finding that out compares only
    /// the listeners the two snapshots do not share.
    reconciled: ListenerMap,
}

impl Sockets {
    pub(crate) fn new(shared: Arc<Shared>, listen_ip: IpAddr, drain_timeout: Duration) -> Sockets {
        Sockets {
            shared,
            listen_ip,
            drain_timeout,
            open: HashMap::new(),
            draining: Vec::new(),
            failed: HashMap::new(),
            reconciled: ListenerMap::default(),
        }
    }

    /// Whether some listener waits for its port; the run loop then retries periodically.
    pub(crate) fn has_bind_failures(&self) -> bool {
        !self.failed.is_empty()
    }

    /// Opens, keeps and closes sockets to match `snapshot`. Listeners that failed to bind
    /// before are tried again with `retry_failed`, when their address changed, or on any
    /// publish while they are few.
    pub(crate) async fn reconcile(&mut self, snapshot: &Snapshot, retry_failed: bool) {
        self.draining.retain(|task| !task.is_finished());
        // A few failed listeners are retried on every publish (a freed port comes up with
        // the next change); many are left to the periodic retry.
        let retry_failed = retry_failed || (!self.failed.is_empty() && self.failed.len() <= RETRY_ON_PUBLISH_MAX);
        let unchanged = snapshot.listeners.len() == self.reconciled.len()
            && snapshot.listeners.ids_differing_from(&self.reconciled).all(|id| {
                let socket = |map: &ListenerMap| map.get(&id).map(|view| view.socket);
                socket(&snapshot.listeners) == socket(&self.reconciled)
            });
        self.reconciled = snapshot.listeners.clone();
        if unchanged && !retry_failed {
            return;
        }

        // Close first, so a port handed from one listener to another can be bound below.
        let obsolete: Vec<ListenerId> = self
            .open
            .iter()
            .filter(|(id, socket)| snapshot.listeners.get(id).is_none_or(|view| view.socket != socket.spec))
            .map(|(id, _)| *id)
            .collect();
        let mut releases = Vec::new();
        for id in obsolete {
            if let Some(socket) = self.open.remove(&id) {
                let _ = socket.stop.send(true);
                releases.push(socket.released);
                self.draining.push(socket.task);
            }
        }
        let all_released = async {
            for released in releases {
                let _ = released.await;
            }
        };
        if tokio::time::timeout(RELEASE_WAIT, all_released).await.is_err() {
            tracing::warn!("stopped listener sockets were slow to close");
        }

        let mut statuses = HashMap::with_capacity(snapshot.listeners.len());
        let mut failed = HashMap::new();
        // New bind failures are logged one by one up to a point, then summed up: a host
        // given thousands of listeners it cannot bind must not drown its log.
        let mut new_failures = 0usize;
        // In id order, so that of two listeners claiming one address the older one
        // deterministically gets it.
        let mut views: Vec<_> = snapshot.listeners.iter().collect();
        views.sort_by_key(|(id, _)| **id);
        for (id, view) in views {
            let address = SocketAddr::new(view.socket.address.unwrap_or(self.listen_ip), view.socket.port);
            let known_failure = self.failed.get(id).filter(|(spec, _)| *spec == view.socket && !retry_failed);
            let status = if let Some(open) = self.open.get(id) {
                debug_assert_eq!(open.spec, view.socket);
                runtime(STATE_SERVING, address, None)
            } else if let Some((spec, status)) = known_failure {
                failed.insert(*id, (*spec, status.clone()));
                status.clone()
            } else {
                match self.open_socket(*id, view.socket, address) {
                    Ok(socket) => {
                        tracing::info!(listener = %id, %address, protocol = %view.socket.protocol, "listening");
                        self.open.insert(*id, socket);
                        runtime(STATE_SERVING, address, None)
                    }
                    Err(OpenError::Unsupported) => runtime(
                        STATE_UNSUPPORTED,
                        address,
                        Some(format!("{} listeners are not served by this data plane", view.socket.protocol)),
                    ),
                    Err(OpenError::Bind(error)) => {
                        if self.failed.contains_key(id) {
                            tracing::debug!(listener = %id, %address, %error, "listener still cannot bind");
                        } else {
                            new_failures += 1;
                            if new_failures <= LOGGED_BIND_FAILURES {
                                tracing::error!(listener = %id, %address, %error, "cannot bind listener");
                            }
                        }
                        let status = runtime(STATE_BIND_FAILED, address, Some(error.to_string()));
                        failed.insert(*id, (view.socket, status.clone()));
                        status
                    }
                    Err(OpenError::Tls(error)) => {
                        tracing::error!(listener = %id, %error, "cannot build TLS config");
                        runtime(STATE_BIND_FAILED, address, Some(format!("TLS configuration: {error}")))
                    }
                }
            };
            statuses.insert(*id, status);
        }
        if new_failures > LOGGED_BIND_FAILURES {
            tracing::error!(
                more = new_failures - LOGGED_BIND_FAILURES,
                "more listeners cannot bind; see each listener's runtime status"
            );
        }
        self.failed = failed;
        self.shared.metrics.retain(|id| snapshot.listeners.contains_key(id));
        *self.shared.runtime.lock().unwrap_or_else(|p| p.into_inner()) = statuses;
    }

    fn open_socket(&self, id: ListenerId, spec: SocketSpec, address: SocketAddr) -> Result<OpenSocket, OpenError> {
        let tls = match spec.protocol {
            Protocol::Http | Protocol::Tcp => None,
            Protocol::Https | Protocol::TcpSsl => {
                let alpn_http = spec.protocol == Protocol::Https;
                let config = server_config(self.shared.provider.clone(), id, self.shared.clone(), alpn_http)
                    .map_err(OpenError::Tls)?;
                Some(TlsAcceptor::from(config))
            }
            Protocol::Udp | Protocol::Quic => return Err(OpenError::Unsupported),
        };
        let socket = bind(address).map_err(OpenError::Bind)?;
        let task = Arc::new(ListenerTask {
            id,
            protocol: spec.protocol,
            shared: self.shared.clone(),
            metrics: self.shared.metrics.listener(id),
            tls,
            drain_timeout: self.drain_timeout,
        });
        let (stop, stop_rx) = watch::channel(false);
        let (released_tx, released) = oneshot::channel();
        let task = tokio::spawn(accept_loop(task, socket, stop_rx, released_tx));
        Ok(OpenSocket { spec, stop, task, released })
    }

    /// Stops every socket and waits for their drains (each bounded by the drain timeout).
    pub(crate) async fn shutdown(mut self) {
        for socket in self.open.values() {
            let _ = socket.stop.send(true);
        }
        let mut tasks: Vec<JoinHandle<()>> = self.open.drain().map(|(_, s)| s.task).collect();
        tasks.append(&mut self.draining);
        {
            let mut runtime = self.shared.runtime.lock().unwrap_or_else(|p| p.into_inner());
            for status in runtime.values_mut() {
                if status.state == STATE_SERVING {
                    status.state = STATE_STOPPED.to_owned();
                }
            }
        }
        for task in tasks {
            if let Err(error) = task.await {
                tracing::error!(%error, "listener task failed");
            }
        }
    }
}

#[derive(Debug)]
enum OpenError {
    Unsupported,
    Bind(io::Error),
    Tls(rustls::Error),
}

fn runtime(state: &str, address: SocketAddr, reason: Option<String>) -> ListenerRuntime {
    ListenerRuntime { state: state.to_owned(), address: address.to_string(), reason }
}

/// SO_REUSEADDR so a port freed by a stopped listener (its connections in TIME_WAIT)
/// can be bound again at once; it does not let two listening sockets share a port.
fn bind(address: SocketAddr) -> io::Result<TcpListener> {
    let socket = match address {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}
