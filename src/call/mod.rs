//! The call logic. [`transition`] is a pure function of (state, event, now): it reads no clock,
//! does no I/O and touches no globals, so every branch of a call flow is a plain unit test. The
//! [`store`] applies it atomically per CallSid; handlers only parse, apply and render.

pub mod event;
pub mod redis_store;
pub mod state;
pub mod store;
pub mod transition;

#[cfg(test)]
mod properties;

pub use event::{CallStatus, DialStatus, Event, RecordingKind};
pub use state::{Answer, Call, Lead, Leg, Message, Outcome, Phase, Reply, Targets};
pub use store::{Applied, CallStore, MemoryStore, StoreError, Swept};
pub use transition::{transition, Context, Effect, Ignored, MissReason, Notice, NoticeKind, Step};

/// Milliseconds since the Unix epoch: the only notion of time the call logic has, always passed in.
pub type Millis = u64;

/// Whole seconds between two instants (0 when `later` is not later).
pub fn secs_between(earlier: Millis, later: Millis) -> u64 {
    later.saturating_sub(earlier) / 1000
}
