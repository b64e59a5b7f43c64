//! Black-box tests: each starts the real server on port 0 and plays calls over HTTP exactly as the
//! provider would. One binary, several modules, so the suite links once.

mod admin;
mod archive_stores;
mod audio_and_health;
mod bad_input;
mod browser;
mod call_flow;
mod callbacks;
mod conference;
mod dashboard;
mod helpers;
mod jobs;
mod ledger;
mod lines;
mod menus;
mod outbound;
mod outcomes;
mod providers;
mod replicas;
mod screening;
mod security;
mod shutdown;
mod simulate;
mod slack;
mod startup;
