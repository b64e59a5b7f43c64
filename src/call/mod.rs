//! The call logic. [`transition`] is a pure function of (call, event, now, policy, snapshot): it
//! reads no clock, does no I/O and touches no globals, so every branch of a call flow is a plain
//! unit test. It returns the call's next state, its document ([`Reply`]) and what happened
//! ([`Fact`]s). A [`CallStore`] applies it atomically per CallSid; the call service
//! ([`crate::service`]) hands the facts to the sinks.
//!
//! - [`state`]: the call, its phases and its documents (with the flow drawn out)
//! - [`event`]: what the provider tells us, typed
//! - [`policy`]: the operator's rules, and a snapshot of the moment
//! - [`schedule`], [`hours`]: opening hours, and whether a line is open now (with overrides)
//! - [`routing`]: who rings in what order, who is free, whose legs press 1 first
//! - [`fact`]: what happened, and why an event changed nothing
//! - [`transition`]: the decisions
//! - [`store`], [`redis_store`]: where calls live, in memory or in Redis

pub mod conference;
pub mod event;
pub mod fact;
pub mod hours;
pub mod policy;
pub mod redis_store;
pub mod routing;
pub mod schedule;
pub mod state;
pub mod store;
pub mod transition;

#[cfg(test)]
mod properties;
#[cfg(test)]
pub(crate) mod testing;

pub use event::{CallStatus, DialStatus, Event, RecordingKind, RecordingStatus, ScreenStep};
pub use fact::{Fact, FactKind, Ignored, MissReason};
pub use policy::{Policy, Snapshot};
pub use state::{Call, Intro, Lead, Message, Outcome, Phase, Pickup, Reply, Targets};
pub use store::{Applied, CallStore, Decide, Expiry, MemoryStore, StoreError, Swept};
pub use transition::{transition, LegFact, Step};
