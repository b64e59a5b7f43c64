//! Switchboard: a call-center backend that answers Telnyx TeXML (and Twilio TwiML) requests from
//! a per-call state machine.
//!
//! # Layout
//!
//! In dependency order, leaves first:
//!
//! - [`time`]: milliseconds, injected clocks
//! - [`domain`]: validated newtypes (CallSid, Party, Endpoint, Agent, LineId)
//! - [`call`]: the pure call core: state, events, policy, facts, `transition`, and the stores
//!   that apply it atomically (memory, Redis)
//! - [`texml`]: typed documents, prompt templates, rendering a call's reply
//! - [`webhook`], [`signature`]: the edge: provider fields into typed events; signatures
//! - [`config`]: settings, parsed once into the types above
//! - [`agents`]: who answers each line, who is busy, where the list comes from, sharing it
//! - [`sink`]: where facts go: log, outcome metrics, Slack, over one generic delivery queue
//! - [`provider`], [`jobs`]: the Telnyx REST API, and the scheduled jobs that use it
//! - [`lease`]: which replica runs the jobs
//! - [`ledger`]: the call history in SQLite or PostgreSQL, written by a sink
//! - [`dashboard`]: the live page for supervisors and wall screens, fed over server-sent events
//! - [`lines`]: lines' state for operators, and the overrides they set (memory + file, or Redis)
//! - `service`: the call path: snapshot → store + transition → facts to sinks → reply
//! - `routes`: the HTTP boundary and its context; `metrics`: the registry and HTTP metrics
//! - `wiring`: settings into the core's policy, the renderer and the signature verifier
//! - [`startup`]: builds the application and runs it; `shutdown`: signals; [`telemetry`]: logs,
//!   off the request path
//! - [`audio`]: the prompt files, served safely
//! - [`simulate`]: `switchboard simulate`, a provider stand-in that plays calls
//! - [`admin_client`]: the admin API from a terminal (`switchboard lines`, `switchboard agents`)

#![warn(unreachable_pub)]

pub mod admin_client;
pub mod agents;
pub mod audio;
pub mod call;
pub mod conference;
pub mod config;
pub mod dashboard;
pub mod domain;
pub mod jobs;
pub mod lease;
pub mod ledger;
pub mod lines;
mod metrics;
pub mod provider;
mod retry;
mod routes;
mod service;
mod shutdown;
pub mod signature;
pub mod simulate;
pub mod sink;
pub mod startup;
pub mod telemetry;
pub mod texml;
pub mod time;
pub mod webhook;
mod wiring;
