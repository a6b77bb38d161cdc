//! `certbind serve`: its options, the log set-up, and the runtime it runs in.

use certbind::serve::{serve, ServeOptions};
use certbind_dataplane::admission::ConnectionLimits;
use clap::{Args, ValueEnum};
use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args)]
pub(crate) struct ServeArgs {
    #[arg(long, default_value = "./certbind-data")]
    data_dir: PathBuf,
    #[arg(long, default_value = "127.0.0.1:7480")]
    api_addr: SocketAddr,
    /// Where listeners bind their ports (unless their load balancer has its own address).
    #[arg(long, default_value = "0.0.0.0")]
    listen_ip: IpAddr,
    /// Region for requests that carry none.
    #[arg(long, default_value = "local")]
    default_region: String,
    /// Additional (SNI) certificates allowed per load balancer.
    #[arg(long, default_value_t = 25)]
    max_additional_certs_per_lb: u32,
    /// Seconds in-flight connections get to finish at shutdown.
    #[arg(long, default_value_t = 10)]
    drain_timeout_secs: u64,
    /// Job targets applied per store transaction (larger is faster, smaller commits progress more often).
    #[arg(long, default_value_t = 20000)]
    apply_batch: u64,
    /// Seconds a listener may fail to load what it should serve before its pending changes
    /// are rolled back to what it serves and their targets fail.
    #[arg(long, default_value_t = 60)]
    lagging_timeout_secs: u64,
    /// Connections open at once over every listener and the API (0: as many as the
    /// open-file limit allows, which certbind raises to the system's maximum at start).
    #[arg(long, default_value_t = 0)]
    max_connections: usize,
    /// Connections open at once on one listener, and on the API.
    #[arg(long, default_value_t = 10_000)]
    max_connections_per_listener: usize,
    /// Seconds a client has to finish its TLS handshake.
    #[arg(long, default_value_t = 10)]
    handshake_timeout_secs: u64,
    /// Seconds an HTTP client has to send a request's headers.
    #[arg(long, default_value_t = 10)]
    header_read_timeout_secs: u64,
    /// Seconds a connection may stay without a request in flight (a stream: without a byte).
    #[arg(long, default_value_t = 60)]
    idle_timeout_secs: u64,
    /// Seconds between HTTP/2 PINGs; a PING unanswered for as long closes the connection.
    #[arg(long, default_value_t = 20)]
    http2_ping_interval_secs: u64,
    /// Request header bytes allowed, for HTTP/1.1 and HTTP/2 alike.
    #[arg(long, default_value_t = 64 * 1024)]
    max_header_bytes: usize,
    /// Seconds a UCloud request (whose signature carries no time) is remembered; a write
    /// sent again within them is refused as a replay. 0 remembers none.
    #[arg(long, default_value_t = 300)]
    ucloud_replay_window_secs: u64,
    /// Log lines as text (coloured only on a terminal) or as JSON objects.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn init_log(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().init(),
    }
}

pub(crate) fn run(args: ServeArgs) -> ExitCode {
    init_log(args.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let secs = |s: u64| Duration::from_secs(s.max(1));
    let options = ServeOptions {
        data_dir: args.data_dir,
        api_addr: args.api_addr,
        listen_ip: args.listen_ip,
        default_region: args.default_region,
        max_additional_per_lb: args.max_additional_certs_per_lb,
        drain_timeout: Duration::from_secs(args.drain_timeout_secs),
        apply_batch: args.apply_batch.max(1),
        lagging_timeout: secs(args.lagging_timeout_secs),
        untimed_replay_window: Duration::from_secs(args.ucloud_replay_window_secs),
        limits: ConnectionLimits {
            max_connections: args.max_connections,
            max_connections_per_listener: args.max_connections_per_listener.max(1),
            handshake_timeout: secs(args.handshake_timeout_secs),
            header_read_timeout: secs(args.header_read_timeout_secs),
            idle_timeout: secs(args.idle_timeout_secs),
            http2_ping_interval: secs(args.http2_ping_interval_secs),
            max_header_bytes: args.max_header_bytes,
            open_files_limit: 0,
        },
    };
    match runtime.block_on(serve(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
