//! The API's own accept loop: the same connection table, deadlines and header limit as
//! the listeners, so no client of the API (however slow or greedy) starves the others or
//! the listeners, and the same graceful drain at shutdown.

use axum::extract::ConnectInfo;
use axum::Router;
use certbind_dataplane::admission::{Admission, Closed, Group};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt;

/// Pause after an accept error (typically out of file descriptors) instead of spinning.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Serves `router` on `listener` until `stop` turns true, then lets open requests finish
/// for up to `drain_timeout`.
pub async fn serve_api(
    listener: TcpListener,
    router: Router,
    admission: Arc<Admission>,
    mut stop: watch::Receiver<bool>,
    drain_timeout: Duration,
) {
    let http = Arc::new(certbind_dataplane::http_server(admission.limits()));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let Some(slot) = admission.admit(Group::Api) else {
                        tracing::debug!(%peer, "API connection refused: every connection is busy");
                        continue;
                    };
                    let connection = serve_connection(tcp, peer, router.clone(), http.clone(), slot.activity.clone(), stop.clone());
                    connections.spawn(async move {
                        tokio::select! {
                            _ = connection => {}
                            closed = slot.closed() => {
                                tracing::debug!(%peer, evicted = (closed == Closed::Evicted), "API connection closed by admission");
                            }
                        }
                    });
                }
                Err(error) => {
                    tracing::warn!(%error, "API accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let all_done = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(drain_timeout, all_done).await.is_err() {
        connections.shutdown().await;
    }
}

async fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    router: Router,
    http: Arc<hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>>,
    activity: Arc<certbind_dataplane::admission::Activity>,
    mut stop: watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    let activity_for_io = activity.clone();
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        let router = router.clone();
        // In flight from here to the response's last byte (the body holds the guard).
        let busy = activity.begin_request();
        request.extensions_mut().insert(ConnectInfo(peer));
        async move {
            let response = match router.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            Ok::<_, Infallible>(response.map(|body| {
                axum::body::Body::new(body.map_frame(move |frame| {
                    let _kept = &busy;
                    frame
                }))
            }))
        }
    });
    let io = certbind_dataplane::admission::Touching::http(tcp, activity_for_io);
    let connection = http.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = stopped(&mut stop) => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%peer, %error, "API connection ended with an error");
    }
}

/// Resolves once stop is requested (or the sender is gone, which means the same).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}
