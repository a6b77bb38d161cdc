//! Connections to backends: TCP connects with failover and passive health, and a small
//! keep-alive pool of HTTP/1.1 connections.
//!
//! Not hyper-util's pooled client: it drops the request when the connect fails, and the
//! data plane needs the request back to try the next backend (and to know which backend
//! refused, to quarantine it).

use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

use crate::backends::{BackendSet, HealthTable};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle connections older than this are not reused: backends commonly close idle
/// keep-alive connections after about a minute, and reusing one mid-close loses the request.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_IDLE_PER_BACKEND: usize = 32;

#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    #[error("no healthy backend")]
    NoHealthyBackend,
    #[error("backend {backend}: {source}")]
    Http { backend: String, source: hyper::Error },
}

/// Connects to the first candidate that accepts, quarantining each one that does not.
pub(crate) async fn connect(backends: &BackendSet, health: &HealthTable) -> Option<(String, TcpStream)> {
    let candidates: Vec<String> = backends.candidates(health).map(str::to_owned).collect();
    for address in candidates {
        if let Some(stream) = connect_one(&address, health).await {
            return Some((address, stream));
        }
    }
    None
}

async fn connect_one(address: &str, health: &HealthTable) -> Option<TcpStream> {
    match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address)).await {
        Ok(Ok(stream)) => {
            // Proxied traffic is latency-sensitive and already buffered by the peers.
            let _ = stream.set_nodelay(true);
            Some(stream)
        }
        Ok(Err(error)) => {
            tracing::warn!(backend = address, %error, "backend refused a connection; skipping it for a while");
            health.mark_down(address);
            None
        }
        Err(_) => {
            tracing::warn!(backend = address, "backend connect timed out; skipping it for a while");
            health.mark_down(address);
            None
        }
    }
}

struct IdleConnection {
    sender: SendRequest<Incoming>,
    since: Instant,
}

/// HTTP/1.1 keep-alive connections to backends, by backend address.
#[derive(Default)]
pub(crate) struct HttpPool {
    idle: Mutex<HashMap<String, Vec<IdleConnection>>>,
}

impl HttpPool {
    /// Sends `request` to the next healthy backend, reusing an idle connection when one
    /// is there, otherwise connecting (and failing over to the next backend on refusal).
    pub(crate) async fn send(
        self: &Arc<Self>,
        backends: &BackendSet,
        health: &HealthTable,
        request: Request<Incoming>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let candidates: Vec<String> = backends.candidates(health).map(str::to_owned).collect();
        let mut request = request;
        for address in candidates {
            while let Some(mut sender) = self.checkout(&address) {
                match sender.try_send_request(request).await {
                    Ok(response) => {
                        self.recycle(address, sender);
                        return Ok(response);
                    }
                    Err(mut error) => match error.take_message() {
                        // The connection went away before the request was written.
                        Some(unsent) => request = unsent,
                        None => return Err(http_error(&address, error.into_error())),
                    },
                }
            }
            let Some(stream) = connect_one(&address, health).await else {
                continue;
            };
            let (mut sender, connection) =
                match hyper::client::conn::http1::handshake::<_, Incoming>(TokioIo::new(stream)).await {
                    Ok(parts) => parts,
                    Err(error) => return Err(http_error(&address, error)),
                };
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%error, "backend connection ended with an error");
                }
            });
            match sender.try_send_request(request).await {
                Ok(response) => {
                    self.recycle(address, sender);
                    return Ok(response);
                }
                Err(mut error) => match error.take_message() {
                    Some(unsent) => request = unsent,
                    None => return Err(http_error(&address, error.into_error())),
                },
            }
        }
        Err(UpstreamError::NoHealthyBackend)
    }

    fn checkout(&self, address: &str) -> Option<SendRequest<Incoming>> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let connections = idle.get_mut(address)?;
        while let Some(connection) = connections.pop() {
            let usable = !connection.sender.is_closed()
                && connection.sender.is_ready()
                && connection.since.elapsed() < IDLE_TIMEOUT;
            if usable {
                return Some(connection.sender);
            }
        }
        None
    }

    /// Returns the connection to the pool once its response has been read in full
    /// (`ready` resolves then), without holding up the response.
    fn recycle(self: &Arc<Self>, address: String, mut sender: SendRequest<Incoming>) {
        let pool = self.clone();
        tokio::spawn(async move {
            if sender.ready().await.is_err() {
                return;
            }
            let mut idle = pool.idle.lock().unwrap_or_else(|p| p.into_inner());
            let connections = idle.entry(address).or_default();
            connections.retain(|c| !c.sender.is_closed());
            if connections.len() < MAX_IDLE_PER_BACKEND {
                connections.push(IdleConnection { sender, since: Instant::now() });
            }
        });
    }
}

fn http_error(backend: &str, source: hyper::Error) -> UpstreamError {
    UpstreamError::Http { backend: backend.to_owned(), source }
}
