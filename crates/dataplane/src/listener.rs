//! One listener socket's life: accept, per-connection handshake and proxying, and the
//! drain when it is stopped.

use certbind_core::model::Protocol;
use certbind_core::ListenerId;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::admission::{Activity, Closed, Group, Touching};
use crate::backends::BackendSet;
use crate::counted::Counted;
use crate::metrics::{HandshakeFailure, ListenerMetrics};
use crate::proxy::{self, Scheme};
use crate::tls::classify_handshake_error;
use crate::Shared;

/// Pause after an accept error (typically out of file descriptors) instead of spinning.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// What every connection of one listener socket shares.
pub(crate) struct ListenerTask {
    pub(crate) id: ListenerId,
    pub(crate) protocol: Protocol,
    pub(crate) shared: Arc<Shared>,
    pub(crate) metrics: Arc<ListenerMetrics>,
    /// Set for TLS protocols.
    pub(crate) tls: Option<TlsAcceptor>,
    pub(crate) drain_timeout: Duration,
}

impl ListenerTask {
    /// The listener's backends in the snapshot current now: each connection (TCP) or
    /// request (HTTP) takes the latest.
    fn backends(&self) -> Option<Arc<BackendSet>> {
        let snapshot = self.shared.snapshot.load();
        snapshot.listeners.get(&self.id).map(|view| view.backends.clone())
    }

    async fn handshake<S>(&self, acceptor: &TlsAcceptor, stream: S) -> Option<TlsStream<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let deadline = self.shared.admission.limits().handshake_timeout;
        match tokio::time::timeout(deadline, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => {
                self.metrics.handshakes.fetch_add(1, Ordering::Relaxed);
                Some(tls)
            }
            Ok(Err(error)) => {
                let reason = classify_handshake_error(&error);
                self.metrics.handshake_failed(reason);
                tracing::debug!(listener = %self.id, reason = reason.as_str(), %error, "TLS handshake failed");
                None
            }
            Err(_) => {
                self.metrics.handshake_failed(HandshakeFailure::Timeout);
                tracing::debug!(listener = %self.id, "TLS handshake timed out");
                None
            }
        }
    }
}

/// Accepts until `stop` turns true, then closes the socket (signalling `released`, so the
/// port can be reused at once) and drains the open connections for up to the drain
/// timeout before dropping what remains.
pub(crate) async fn accept_loop(
    task: Arc<ListenerTask>,
    socket: TcpListener,
    mut stop: watch::Receiver<bool>,
    released: oneshot::Sender<()>,
) {
    let connection_stop = stop.clone();
    let mut connections: JoinSet<()> = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop_requested(&mut stop) => break,
            accepted = socket.accept() => match accepted {
                Ok((tcp, peer)) => {
                    connections.spawn(serve_connection(task.clone(), tcp, peer, connection_stop.clone()));
                }
                Err(error) => {
                    tracing::warn!(listener = %task.id, %error, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            },
            Some(finished) = connections.join_next(), if !connections.is_empty() => {
                if let Err(error) = finished {
                    tracing::error!(listener = %task.id, %error, "connection task failed");
                }
            }
        }
    }
    drop(socket);
    let _ = released.send(());
    drain(&task, connections).await;
}

async fn drain(task: &ListenerTask, mut connections: JoinSet<()>) {
    if connections.is_empty() {
        return;
    }
    let all_done = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(task.drain_timeout, all_done).await.is_err() {
        tracing::info!(listener = %task.id, remaining = connections.len(), "drain timeout reached; dropping connections");
        connections.shutdown().await;
    }
}

/// Resolves once stop is requested (or the stop sender is gone, which means the same).
pub(crate) async fn stop_requested(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// One client connection, in a slot of the connection table: it ends when its work is
/// done, or when admission closes it (evicted for a newcomer, or idle too long).
async fn serve_connection(task: Arc<ListenerTask>, tcp: TcpStream, peer: SocketAddr, stop: watch::Receiver<bool>) {
    let Some(slot) = task.shared.admission.admit(Group::Listener(task.id)) else {
        tracing::debug!(listener = %task.id, %peer, "connection refused: every connection is busy");
        return;
    };
    let _active = task.metrics.connection_opened();
    let _ = tcp.set_nodelay(true);
    let stream = Counted::new(tcp, task.metrics.clone());
    let activity = slot.activity.clone();
    let work = async move {
        match (task.protocol, task.tls.clone()) {
            (Protocol::Https, Some(acceptor)) => {
                if let Some(tls) = task.handshake(&acceptor, stream).await {
                    let io = Touching::http(tls, activity.clone());
                    serve_http(task, io, peer, Scheme::Https, stop, activity).await;
                }
            }
            (Protocol::TcpSsl, Some(acceptor)) => {
                if let Some(tls) = task.handshake(&acceptor, stream).await {
                    let backends = task.backends();
                    proxy::forward_stream(&task.shared, backends, Touching::stream(tls, activity)).await;
                }
            }
            (Protocol::Http, _) => {
                let io = Touching::http(stream, activity.clone());
                serve_http(task, io, peer, Scheme::Http, stop, activity).await
            }
            (Protocol::Tcp, _) => {
                let backends = task.backends();
                proxy::forward_stream(&task.shared, backends, Touching::stream(stream, activity)).await;
            }
            // Never bound (see sockets); nothing to do if it ever gets here.
            _ => {}
        }
    };
    tokio::select! {
        _ = work => {}
        closed = slot.closed() => {
            tracing::debug!(%peer, evicted = (closed == Closed::Evicted), "connection closed by admission");
        }
    }
}

/// HTTP/1.1 or HTTP/2 (by ALPN or preface) on one client connection; on stop, finishes
/// the requests in flight and closes.
async fn serve_http<S>(
    task: Arc<ListenerTask>,
    io: S,
    peer: SocketAddr,
    scheme: Scheme,
    mut stop: watch::Receiver<bool>,
    activity: Arc<Activity>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service_task = task.clone();
    let service = service_fn(move |request| {
        let task = service_task.clone();
        // In flight from here to the response's last byte (the body holds the guard).
        let busy = activity.begin_request();
        async move {
            let backends = task.backends();
            let response = proxy::forward_request(&task.shared, backends, request, peer, scheme).await;
            Ok::<_, Infallible>(proxy::holding(response, busy))
        }
    });
    let connection = task.shared.http_server.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = stop_requested(&mut stop) => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(listener = %task.id, %error, "HTTP connection ended with an error");
    }
}
