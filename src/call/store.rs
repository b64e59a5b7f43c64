//! Where call states live. [`CallStore::apply`] reads a call, lets the caller decide (the pure
//! [`super::transition`], through a closure) and writes the result, atomically per CallSid, so
//! two callbacks for the same call never interleave. The store decides nothing about calls.
//!
//! Memory stays bounded ([`Expiry`]): an ended call is forgotten after a grace period (late
//! callbacks still find it meanwhile), a call whose final callback never arrives is forgotten
//! after a TTL counted from its last change, and a call that ended unsettled (waiting for its
//! voicemail) is held until it settles; [`CallStore::due`] lists those whose grace has passed.

use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

use crate::domain::CallSid;
use crate::time::Millis;

use super::fact::{Fact, Ignored};
use super::state::{Call, Reply};
use super::transition::Step;

/// Decides a call's step from its stored state (`None`: not held). Called once per attempt: a
/// store that retries (Redis, on a lost race) calls it again with the newer state.
pub type Decide<'a> = dyn Fn(Option<&Call>) -> Step + Send + Sync + 'a;

/// What applying one event did, once stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The document the call is on now (meaningful for voice requests).
    pub reply: Reply,
    /// The line whose prompts the document speaks.
    pub line: crate::domain::LineId,
    pub facts: Vec<Fact>,
    pub ignored: Option<Ignored>,
    /// What changes for agents (busy, free after wrap-up).
    pub marks: Vec<super::routing::Mark>,
    /// What happened to the agents' legs (for the ledger).
    pub legs: Vec<super::transition::LegFact>,
    /// Requests for the provider's REST API (conference mode).
    pub commands: Vec<super::conference::Command>,
}

impl From<Step> for Applied {
    fn from(step: Step) -> Applied {
        Applied {
            reply: step.reply,
            line: step.line,
            facts: step.facts,
            ignored: step.ignored,
            marks: step.marks,
            legs: step.legs,
            commands: step.commands,
        }
    }
}

/// The store could not be reached or read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("call store: Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("call store: Redis did not answer within {0:?}")]
    Timeout(std::time::Duration),
    #[error("call store: call {sid} is unreadable: {source}")]
    Corrupt {
        sid: String,
        source: serde_json::Error,
    },
    #[error("call store: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("call store: call {0}: too much contention")]
    Contention(String),
}

/// What a sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Ended calls whose grace period was over.
    pub ended: usize,
    /// Calls that never got their final callback within the TTL.
    pub stale: usize,
}

/// How long a call that ended in voicemail waits for its recording at least: Telnyx delivers the
/// recording "once the call has ended" and its URL lives 10 minutes after the call ended, so a
/// recording callback can come that late and still be worth a notice.
pub const RECORDING_WAIT_MS: u64 = 10 * 60 * 1000;

/// How long a call is held, the same for every store (and for agents' own calls).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    /// After a call ends (and settles).
    pub grace_ms: u64,
    /// After the last change of a call that has not ended.
    pub ttl_ms: u64,
}

impl Expiry {
    pub fn from_secs(grace_secs: u64, ttl_secs: u64) -> Expiry {
        Expiry {
            grace_ms: grace_secs.saturating_mul(1000),
            ttl_ms: ttl_secs.saturating_mul(1000),
        }
    }

    /// When `call`, changed at `now`, may be forgotten. An unsettled call is held like a live
    /// one: it leaves when it settles (or, if nothing ever settles it, after the TTL).
    pub fn until(&self, call: &Call, now: Millis) -> Millis {
        match call.phase {
            super::Phase::Ended {
                at, settled: true, ..
            } => at.max(now).saturating_add(self.grace_ms),
            _ => now.saturating_add(self.ttl_ms),
        }
    }

    /// When an entry that is over, changed at `now`, may be forgotten.
    pub fn after_end(&self, now: Millis) -> Millis {
        now.saturating_add(self.grace_ms)
    }

    /// When an entry still in progress, changed at `now`, may be forgotten.
    pub fn while_live(&self, now: Millis) -> Millis {
        now.saturating_add(self.ttl_ms)
    }

    /// When a call that ended unsettled at `ended_at` should be settled as missed: after the grace
    /// period, but never before [`RECORDING_WAIT_MS`], however short the grace is.
    pub fn settle_by(&self, ended_at: Millis) -> Millis {
        ended_at.saturating_add(self.grace_ms.max(RECORDING_WAIT_MS))
    }
}

/// Storage of call states. One implementation per backend; the call logic is the same on all.
#[async_trait]
pub trait CallStore: Send + Sync {
    /// Reads call `sid`, runs `decide` on it and stores its `next`, atomically: two events for
    /// one call never interleave, on one replica or several.
    async fn apply(
        &self,
        sid: &CallSid,
        now: Millis,
        decide: &Decide<'_>,
    ) -> Result<Applied, StoreError>;
    /// Calls that ended unsettled and whose grace period has passed at `now`, and conference-mode
    /// calls whose room's timer is due.
    async fn due(&self, now: Millis) -> Result<Vec<CallSid>, StoreError>;
    /// Forgets ended calls past their grace period and stale calls past their TTL.
    async fn sweep(&self, now: Millis) -> Result<Swept, StoreError>;
    /// Calls held that have not ended.
    async fn live(&self, now: Millis) -> Result<usize, StoreError>;
    /// The calls held that have not ended, at most `limit` of them, in no particular order (what
    /// the dashboard shows).
    async fn calls(&self, now: Millis, limit: usize) -> Result<Vec<Call>, StoreError>;
    /// Whether the store answers (readiness).
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Registers the store's own metrics.
    fn register(&self, registry: &mut Registry);
}

struct Slot {
    call: Call,
    expires_at: Millis,
}

/// In-process store (the default): a sharded concurrent map, one lock per shard held only for
/// the duration of a pure transition.
pub struct MemoryStore {
    calls: DashMap<CallSid, Slot>,
    expiry: Expiry,
    /// Calls forgotten without their final callback since start (counted, never silent).
    stale: Counter,
    /// Calls held that have not ended, kept up to date on every change so the capacity check
    /// costs nothing.
    live: AtomicUsize,
    /// Which they are, so the dashboard reads them without walking the ended calls held for
    /// their grace period (tens of thousands under load).
    live_sids: dashmap::DashSet<CallSid>,
}

impl MemoryStore {
    pub fn new(expiry: Expiry) -> MemoryStore {
        MemoryStore {
            calls: DashMap::new(),
            expiry,
            stale: Counter::default(),
            live: AtomicUsize::new(0),
            live_sids: dashmap::DashSet::new(),
        }
    }

    /// Calls held in memory, ended ones included.
    pub fn held(&self) -> usize {
        self.calls.len()
    }

    /// [`CallStore::apply`], without the async wrapper.
    pub fn apply_now(&self, sid: &CallSid, now: Millis, decide: &Decide<'_>) -> Applied {
        match self.calls.entry(sid.clone()) {
            Entry::Occupied(mut slot) => {
                let mut step = decide(Some(&slot.get().call));
                if let Some(call) = step.next.take() {
                    if call.is_ended() && !slot.get().call.is_ended() {
                        self.live.fetch_sub(1, Ordering::Relaxed);
                        self.live_sids.remove(sid);
                    }
                    let expires_at = self.expiry.until(&call, now);
                    slot.insert(Slot { call, expires_at });
                }
                step.into()
            }
            Entry::Vacant(slot) => {
                let mut step = decide(None);
                if let Some(call) = step.next.take() {
                    if !call.is_ended() {
                        self.live.fetch_add(1, Ordering::Relaxed);
                        self.live_sids.insert(sid.clone());
                    }
                    let expires_at = self.expiry.until(&call, now);
                    slot.insert(Slot { call, expires_at });
                }
                step.into()
            }
        }
    }

    /// [`CallStore::sweep`], without the async wrapper.
    pub fn sweep_now(&self, now: Millis) -> Swept {
        let mut swept = Swept::default();
        self.calls.retain(|sid, entry| {
            if entry.expires_at > now {
                return true;
            }
            if entry.call.is_ended() {
                swept.ended += 1;
            } else {
                swept.stale += 1;
                self.live_sids.remove(sid);
            }
            false
        });
        self.stale.inc_by(swept.stale as u64);
        self.live.fetch_sub(swept.stale, Ordering::Relaxed);
        swept
    }

    /// [`CallStore::due`], without the async wrapper.
    pub fn due_now(&self, now: Millis) -> Vec<CallSid> {
        self.calls
            .iter()
            .filter(|e| {
                e.call
                    .unsettled_since()
                    .is_some_and(|at| self.expiry.settle_by(at) <= now)
                    || e.call.conference_due().is_some_and(|due| due <= now)
            })
            .map(|e| e.key().clone())
            .collect()
    }

    /// [`CallStore::calls`], without the async wrapper.
    pub fn calls_now(&self, limit: usize) -> Vec<Call> {
        // The ids first, then each call: never a lock of one map held while taking the other's
        // (the call path takes them in the other order).
        let sids: Vec<CallSid> = self
            .live_sids
            .iter()
            .take(limit)
            .map(|s| s.clone())
            .collect();
        sids.iter()
            .filter_map(|sid| self.calls.get(sid).map(|slot| slot.call.clone()))
            .filter(|call| !call.is_ended())
            .collect()
    }

    /// Calls held that have not ended.
    pub fn live_now(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl CallStore for MemoryStore {
    async fn apply(
        &self,
        sid: &CallSid,
        now: Millis,
        decide: &Decide<'_>,
    ) -> Result<Applied, StoreError> {
        Ok(self.apply_now(sid, now, decide))
    }

    async fn due(&self, now: Millis) -> Result<Vec<CallSid>, StoreError> {
        Ok(self.due_now(now))
    }

    async fn sweep(&self, now: Millis) -> Result<Swept, StoreError> {
        Ok(self.sweep_now(now))
    }

    async fn live(&self, _now: Millis) -> Result<usize, StoreError> {
        Ok(self.live_now())
    }

    async fn calls(&self, _now: Millis, limit: usize) -> Result<Vec<Call>, StoreError> {
        Ok(self.calls_now(limit))
    }

    fn register(&self, registry: &mut Registry) {
        register_stale(registry, &self.stale);
    }
}

/// The stale-call counter, under the same name on every store.
pub(super) fn register_stale(registry: &mut Registry, counter: &Counter) {
    registry.register(
        "stale_calls",
        "Calls forgotten without their final callback",
        counter.clone(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::testing::*;
    use crate::call::{transition, CallStatus, Event, Policy, Snapshot};

    fn apply(store: &MemoryStore, sid: &CallSid, event: &Event, now: Millis) -> Applied {
        apply_with(store, sid, event, now, &snapshot())
    }

    fn apply_with(
        store: &MemoryStore,
        sid: &CallSid,
        event: &Event,
        now: Millis,
        snapshot: &Snapshot,
    ) -> Applied {
        let policy = Policy::default();
        store.apply_now(sid, now, &|call| {
            transition(sid, call, event, now, &policy, snapshot)
        })
    }

    #[test]
    fn a_repeated_voice_request_gets_the_same_reply() {
        let store = MemoryStore::new(Expiry::from_secs(60, 3600));
        let sid = sid("CA1");
        let first = apply(&store, &sid, &incoming(), 0);
        let nobody = Snapshot::ringing(None);
        let again = apply_with(&store, &sid, &incoming(), 1000, &nobody);
        assert_eq!(first.reply, again.reply);
        assert_eq!(store.live_now(), 1);
    }

    #[test]
    fn ended_calls_leave_after_the_grace_period_and_stale_ones_after_the_ttl() {
        let store = MemoryStore::new(Expiry::from_secs(60, 3600));
        let (ended, stale) = (sid("CA-ended"), sid("CA-stale"));
        apply(&store, &ended, &incoming(), 0);
        apply(&store, &stale, &incoming(), 0);
        apply(&store, &ended, &parent(CallStatus::Completed), 10_000);
        assert_eq!((store.live_now(), store.held()), (1, 2));

        assert_eq!(store.sweep_now(69_999), Swept::default());
        assert_eq!(store.sweep_now(70_000), Swept { ended: 1, stale: 0 });
        assert_eq!(store.held(), 1);
        let listed: Vec<_> = store.calls_now(10).into_iter().map(|c| c.sid).collect();
        assert_eq!(listed, vec![stale.clone()], "only the live call is listed");
        assert_eq!(store.sweep_now(3_600_000), Swept { ended: 0, stale: 1 });
        assert_eq!((store.held(), store.stale.get()), (0, 1));
        assert_eq!(store.live_now(), 0);
        assert!(store.calls_now(10).is_empty());
    }

    #[test]
    fn a_call_waiting_for_its_voicemail_is_due_after_the_grace_period_and_kept_until_settled() {
        let store = MemoryStore::new(Expiry::from_secs(60, 3600));
        let id = sid("CA-vm");
        apply_with(&store, &id, &incoming(), 0, &Snapshot::ringing(None));
        apply(&store, &id, &parent(CallStatus::Completed), 10_000);
        // The grace is 60 s, but a recording may come up to 10 minutes after the end.
        assert_eq!(store.due_now(609_999), Vec::<CallSid>::new());
        assert_eq!(store.due_now(610_000), vec![id.clone()]);
        // Not swept while unsettled, even past its grace period.
        assert_eq!(store.sweep_now(620_000), Swept::default());
        let settled = apply(&store, &id, &Event::Expired, 620_000);
        assert_eq!(settled.facts.len(), 1);
        assert!(store.due_now(620_000).is_empty());
        assert_eq!(store.sweep_now(680_000), Swept { ended: 1, stale: 0 });
    }

    #[test]
    fn refused_and_unknown_calls_are_not_stored() {
        let store = MemoryStore::new(Expiry::from_secs(60, 3600));
        let applied = apply(&store, &sid("CA-nobody"), &Event::RecordEnded, 0);
        assert_eq!(applied.reply, Reply::Goodbye);
        let full = Snapshot {
            live_calls: 10_000,
            ..snapshot()
        };
        let applied = apply_with(&store, &sid("CA-late"), &incoming(), 0, &full);
        assert_eq!(applied.reply, Reply::Unavailable);
        assert_eq!(store.held(), 0);
    }
}
