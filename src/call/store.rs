//! Where call states live. [`CallStore::apply`] runs [`transition`] atomically for one CallSid,
//! so two callbacks for the same call never interleave. Memory stays bounded: an ended call is
//! forgotten after a grace period (late callbacks still find it meanwhile), and a call whose final
//! callback never arrives is forgotten after a TTL counted from its last change.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use async_trait::async_trait;
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

use crate::domain::CallSid;

use super::state::{Call, Lead, Phase, Reply};
use super::transition::{transition, Context, Effect};
use super::{Event, Millis};

/// What applying one event did.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The document the call is on now (meaningful for voice requests).
    pub reply: Reply,
    pub effects: Vec<Effect>,
    /// How the call ended, when this event ended it.
    pub ended: Option<&'static str>,
}

/// The store could not be reached or read (Redis down, corrupt entry).
#[derive(Debug, thiserror::Error)]
#[error("call store: {0}")]
pub struct StoreError(pub String);

/// What ending `before` → `after` means for the outcome counters.
pub fn ended(before: Option<&Call>, after: &Call) -> Option<&'static str> {
    match (before.and_then(Call::outcome), after.outcome()) {
        (None, Some(outcome)) => Some(outcome.label()),
        _ => None,
    }
}

/// What a sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Ended calls whose grace period was over.
    pub ended: usize,
    /// Calls that never got their final callback within the TTL.
    pub stale: usize,
}

/// Storage of call states. One implementation per backend; the call logic is the same on all.
#[async_trait]
pub trait CallStore: Send + Sync {
    /// Applies `event` to call `sid` at `now`, atomically: two events for one call never
    /// interleave, on one replica or several.
    async fn apply(
        &self,
        sid: &CallSid,
        event: &Event,
        now: Millis,
        ctx: &Context<'_>,
    ) -> Result<Applied, StoreError>;
    /// Forgets ended calls past their grace period and stale calls past their TTL.
    async fn sweep(&self, now: Millis) -> Result<Swept, StoreError>;
    /// Calls held that have not ended.
    async fn live(&self, now: Millis) -> Result<usize, StoreError>;
    /// Calls forgotten without their final callback since start (this replica's sweeps).
    fn stale_total(&self) -> u64;
    /// Whether the store answers (readiness).
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// The reply for a voice request about a call the store does not hold.
pub fn orphan_reply(event: &Event) -> Reply {
    match event {
        // Only refused when over capacity: new calls are otherwise always taken.
        Event::Incoming { .. } => Reply::Unavailable,
        // The message (if any) is taken; close politely.
        Event::RecordEnded => Reply::Goodbye,
        _ => Reply::Voicemail {
            lead: Lead::Apology,
        },
    }
}

struct Slot {
    call: Call,
    expires_at: Millis,
}

/// In-process store (the default): a sharded concurrent map, one lock per shard held only for
/// the duration of a pure transition.
pub struct MemoryStore {
    calls: DashMap<CallSid, Slot>,
    grace_ms: u64,
    ttl_ms: u64,
    /// Calls forgotten without their final callback since start (counted, never silent).
    stale_total: AtomicU64,
    /// Calls held that have not ended, kept up to date on every change so the capacity check
    /// costs nothing.
    live: AtomicUsize,
}

impl MemoryStore {
    pub fn new(grace_secs: u64, ttl_secs: u64) -> MemoryStore {
        MemoryStore {
            calls: DashMap::new(),
            grace_ms: grace_secs.saturating_mul(1000),
            ttl_ms: ttl_secs.saturating_mul(1000),
            stale_total: AtomicU64::new(0),
            live: AtomicUsize::new(0),
        }
    }

    fn expiry(&self, call: &Call, now: Millis) -> Millis {
        match call.phase {
            Phase::Ended { at, .. } => at.max(now).saturating_add(self.grace_ms),
            _ => now.saturating_add(self.ttl_ms),
        }
    }

    /// Calls held in memory, ended ones included.
    pub fn held(&self) -> usize {
        self.calls.len()
    }
}

#[async_trait]
impl CallStore for MemoryStore {
    async fn apply(
        &self,
        sid: &CallSid,
        event: &Event,
        now: Millis,
        ctx: &Context<'_>,
    ) -> Result<Applied, StoreError> {
        Ok(self.apply_now(sid, event, now, ctx))
    }

    async fn sweep(&self, now: Millis) -> Result<Swept, StoreError> {
        Ok(self.sweep_now(now))
    }

    async fn live(&self, _now: Millis) -> Result<usize, StoreError> {
        Ok(self.live.load(Ordering::Relaxed))
    }

    fn stale_total(&self) -> u64 {
        self.stale_total.load(Ordering::Relaxed)
    }
}

impl MemoryStore {
    /// [`CallStore::apply`], without the async wrapper.
    pub fn apply_now(
        &self,
        sid: &CallSid,
        event: &Event,
        now: Millis,
        ctx: &Context<'_>,
    ) -> Applied {
        match self.calls.entry(sid.clone()) {
            Entry::Occupied(mut slot) => {
                let step = transition(sid, Some(&slot.get().call), event, now, ctx);
                let mut ended_as = None;
                if let Some(call) = step.next {
                    ended_as = ended(Some(&slot.get().call), &call);
                    if ended_as.is_some() {
                        self.live.fetch_sub(1, Ordering::Relaxed);
                    }
                    let expires_at = self.expiry(&call, now);
                    slot.insert(Slot { call, expires_at });
                }
                Applied {
                    reply: slot.get().call.reply(),
                    effects: step.effects,
                    ended: ended_as,
                }
            }
            Entry::Vacant(slot) => {
                let step = transition(sid, None, event, now, ctx);
                let reply = match step.next {
                    Some(call) => {
                        let reply = call.reply();
                        if !call.is_ended() {
                            self.live.fetch_add(1, Ordering::Relaxed);
                        }
                        let expires_at = self.expiry(&call, now);
                        slot.insert(Slot { call, expires_at });
                        reply
                    }
                    None => orphan_reply(event),
                };
                Applied {
                    reply,
                    effects: step.effects,
                    ended: None,
                }
            }
        }
    }

    /// [`CallStore::sweep`], without the async wrapper.
    pub fn sweep_now(&self, now: Millis) -> Swept {
        let mut swept = Swept::default();
        self.calls.retain(|_, entry| {
            if entry.expires_at > now {
                return true;
            }
            if entry.call.is_ended() {
                swept.ended += 1;
            } else {
                swept.stale += 1;
            }
            false
        });
        self.stale_total
            .fetch_add(swept.stale as u64, Ordering::Relaxed);
        self.live.fetch_sub(swept.stale, Ordering::Relaxed);
        swept
    }

    /// Calls held that have not ended.
    pub fn live_now(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::call::{CallStatus, Targets};
    use crate::domain::{Agent, Endpoint, Party};

    fn ctx(available: &Targets) -> Context<'_> {
        Context {
            rounds: 2,
            available,
            accepting: true,
        }
    }

    fn agents() -> Targets {
        Arc::from(vec![Agent::new(
            "Ada",
            Endpoint::sip("sip:ada@x.example").expect("sip"),
        )
        .expect("agent")])
    }

    fn incoming() -> Event {
        Event::Incoming {
            from: Party::parse("+12025550142").expect("party"),
            to: Party::parse("+18005550100").expect("party"),
        }
    }

    #[test]
    fn a_repeated_voice_request_gets_the_same_reply() {
        let store = MemoryStore::new(60, 3600);
        let avail = agents();
        let sid = CallSid::parse("CA1").expect("sid");
        let first = store.apply_now(&sid, &incoming(), 0, &ctx(&avail));
        let again = store.apply_now(&sid, &incoming(), 1000, &ctx(&Arc::from(Vec::new())));
        assert_eq!(first.reply, again.reply);
        assert_eq!(store.live_now(), 1);
    }

    #[test]
    fn ended_calls_leave_after_the_grace_period_and_stale_ones_after_the_ttl() {
        let store = MemoryStore::new(60, 3600);
        let avail = agents();
        let ended = CallSid::parse("CA-ended").expect("sid");
        let stale = CallSid::parse("CA-stale").expect("sid");
        store.apply_now(&ended, &incoming(), 0, &ctx(&avail));
        store.apply_now(&stale, &incoming(), 0, &ctx(&avail));
        let done = Event::CallStatus {
            status: CallStatus::Completed,
        };
        store.apply_now(&ended, &done, 10_000, &ctx(&avail));
        assert_eq!((store.live_now(), store.held()), (1, 2));

        assert_eq!(store.sweep_now(69_999), Swept::default());
        assert_eq!(store.sweep_now(70_000), Swept { ended: 1, stale: 0 });
        assert_eq!(store.held(), 1);
        assert_eq!(store.sweep_now(3_600_000), Swept { ended: 0, stale: 1 });
        assert_eq!(
            (store.held(), store.stale_total.load(Ordering::Relaxed)),
            (0, 1)
        );
        assert_eq!(store.live_now(), 0);
    }

    #[test]
    fn past_capacity_new_calls_are_refused_politely_and_not_stored() {
        let store = MemoryStore::new(60, 3600);
        let avail = agents();
        let full = Context {
            accepting: false,
            ..ctx(&avail)
        };
        let sid = CallSid::parse("CA-late").expect("sid");
        let applied = store.apply_now(&sid, &incoming(), 0, &full);
        assert_eq!(applied.reply, Reply::Unavailable);
        assert_eq!(
            applied.effects,
            vec![Effect::Ignored(crate::call::Ignored::OverCapacity)]
        );
        assert_eq!(store.held(), 0);
    }

    #[test]
    fn unknown_calls_are_not_stored() {
        let store = MemoryStore::new(60, 3600);
        let avail = agents();
        let sid = CallSid::parse("CA-nobody").expect("sid");
        let applied = store.apply_now(&sid, &Event::RecordEnded, 0, &ctx(&avail));
        assert_eq!(applied.reply, Reply::Goodbye);
        assert_eq!(store.held(), 0);
    }
}
