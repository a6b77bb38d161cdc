//! The `certbind` binary's library half: the server wiring and the API client the CLI
//! (and the integration tests) use.

mod api_server;
pub mod client;
mod open_files;
pub mod serve;
