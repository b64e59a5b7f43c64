//! The live dashboard for the people who run the lines: what is happening now (calls waiting and
//! talking, agents), today's figures from the ledger, recent voicemails and the service's health,
//! on one page served by the binary and kept current over server-sent events.
//!
//! - [`settings`]: `[dashboard]`: users, the trusted proxy, the day's reset
//! - [`auth`]: who is asking (HTTP Basic with Argon2 hashes, or the proxy's header)
//! - [`board`]: the sections as pure functions of the calls, agents and tallies
//! - `feed`: builds the sections while pages watch, tells other replicas, feeds the streams
//!
//! The routes are in `routes/dashboard.rs`; the page (HTML, CSS, a small script) is embedded from
//! `assets/`.

pub mod auth;
pub mod board;
pub(crate) mod feed;
pub mod settings;
