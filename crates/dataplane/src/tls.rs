//! The TLS side of a listener: one rustls `ServerConfig` per listener socket whose
//! certificate resolver reads the current snapshot on every handshake. Certificate
//! changes therefore never touch the socket or the config, and the handshake path takes
//! no lock: one arc-swap load and two hash lookups.

use certbind_core::ListenerId;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use std::io;
use std::sync::Arc;

use crate::metrics::HandshakeFailure;
use crate::Shared;

/// Resolves a listener's certificate from whatever snapshot is current at handshake time.
pub(crate) struct ListenerResolver {
    listener: ListenerId,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ListenerResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerResolver").field("listener", &self.listener).finish_non_exhaustive()
    }
}

impl ResolvesServerCert for ListenerResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let snapshot = self.shared.snapshot.load();
        let certs = snapshot.listeners.get(&self.listener)?.certs.as_ref()?;
        let now = certbind_core::now_unix();
        let schemes = client_hello.signature_schemes();
        let usable = |cert: &crate::certset::LoadedCert| cert.key.key.choose_scheme(schemes).is_some();
        certs.select_usable(client_hello.server_name(), now, usable).map(|cert| cert.key.clone())
    }
}

/// The config a TLS listener's socket keeps for its whole life.
pub(crate) fn server_config(
    provider: Arc<CryptoProvider>,
    listener: ListenerId,
    shared: Arc<Shared>,
    alpn_http: bool,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(ListenerResolver { listener, shared }));
    if alpn_http {
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    }
    Ok(Arc::new(config))
}

/// Maps a failed `TlsAcceptor::accept` to a metric reason. tokio-rustls wraps rustls
/// errors in `io::ErrorKind::InvalidData`.
pub(crate) fn classify_handshake_error(error: &io::Error) -> HandshakeFailure {
    let tls = error.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match tls {
        // rustls's own wording when the resolver returns nothing (server/hs.rs).
        Some(rustls::Error::General(message)) if message.contains("no server certificate") => {
            HandshakeFailure::NoCertificate
        }
        Some(rustls::Error::AlertReceived(_)) => HandshakeFailure::PeerAlert,
        Some(
            rustls::Error::InvalidMessage(_)
            | rustls::Error::PeerIncompatible(_)
            | rustls::Error::PeerMisbehaved(_)
            | rustls::Error::InappropriateMessage { .. }
            | rustls::Error::InappropriateHandshakeMessage { .. }
            | rustls::Error::NoApplicationProtocol
            | rustls::Error::DecryptError
            | rustls::Error::PeerSentOversizedRecord,
        ) => HandshakeFailure::ProtocolError,
        Some(_) => HandshakeFailure::Other,
        None => match error.kind() {
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => HandshakeFailure::Io,
            // Garbage that is not TLS at all surfaces as InvalidData without a rustls error.
            io::ErrorKind::InvalidData => HandshakeFailure::ProtocolError,
            _ => HandshakeFailure::Other,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrapped(error: rustls::Error) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, error)
    }

    #[test]
    fn handshake_errors_map_to_metric_reasons() {
        let no_cert = wrapped(rustls::Error::General("no server certificate chain resolved".into()));
        assert_eq!(classify_handshake_error(&no_cert), HandshakeFailure::NoCertificate);
        let alert = wrapped(rustls::Error::AlertReceived(rustls::AlertDescription::BadCertificate));
        assert_eq!(classify_handshake_error(&alert), HandshakeFailure::PeerAlert);
        let garbage = wrapped(rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType));
        assert_eq!(classify_handshake_error(&garbage), HandshakeFailure::ProtocolError);
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert_eq!(classify_handshake_error(&reset), HandshakeFailure::Io);
        let eof = io::Error::from(io::ErrorKind::UnexpectedEof);
        assert_eq!(classify_handshake_error(&eof), HandshakeFailure::Io);
    }
}
