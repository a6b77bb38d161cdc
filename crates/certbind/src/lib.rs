//! The `certbind` binary's library half: the server wiring and the API client the CLI
//! (and the integration tests) use.

pub mod client;
pub mod serve;
