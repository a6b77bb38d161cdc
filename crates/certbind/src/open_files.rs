//! The open-file limit: raised at start to what the system allows, and the connection
//! caps fitted under it, so running out of descriptors never makes every listener and the
//! API unreachable.

use certbind_dataplane::admission::ConnectionLimits;

/// Descriptors kept for everything that is not a client connection: the database, the
/// listening sockets, backend pool connections beyond one per client, logs.
const RESERVED: u64 = 128;

/// Raises the soft open-file limit to the hard one and fits `limits` under it: each
/// proxied connection may hold two descriptors (client and backend). A cap of 0 means
/// "as many as fit".
pub(crate) fn fit_limits(mut limits: ConnectionLimits) -> ConnectionLimits {
    let open_files = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(error) => {
            tracing::warn!(%error, "cannot raise the open-file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map(|(soft, _)| soft).unwrap_or(1024)
        }
    };
    let fits = (open_files.saturating_sub(RESERVED) / 2).max(1) as usize;
    if limits.max_connections == 0 {
        limits.max_connections = fits;
    } else if limits.max_connections > fits {
        tracing::warn!(
            asked = limits.max_connections,
            open_files,
            allowed = fits,
            "--max-connections exceeds what the open-file limit allows; lowered"
        );
        limits.max_connections = fits;
    }
    limits.max_connections_per_listener = limits.max_connections_per_listener.min(limits.max_connections);
    limits.open_files_limit = open_files;
    tracing::info!(
        open_files,
        max_connections = limits.max_connections,
        max_connections_per_listener = limits.max_connections_per_listener,
        "connection limits"
    );
    limits
}
