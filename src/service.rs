//! The call service: the whole call path between the routes and the call core. For each event it
//! gathers what is true now (who is free on the call's line, how many calls are live), lets the
//! store apply the pure transition atomically, hands the facts to the sinks, and returns the
//! document. It also settles and sweeps calls in the background, and takes the agents' own call
//! events. It decides nothing itself: decisions are [`crate::call::transition`]'s.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::agents::own_calls::{BadEvent, Data, Handled, OwnCalls};
use crate::agents::Agents;
use crate::call::{transition, CallStore, Event, Ignored, Policy, Reply, Snapshot, StoreError};
use crate::domain::CallSid;
use crate::sink::{Record, Sinks};
use crate::time::Clock;

pub(crate) struct CallService {
    store: Arc<dyn CallStore>,
    agents: Arc<Agents>,
    own_calls: OwnCalls,
    policy: Policy,
    sinks: Sinks,
    clock: Arc<dyn Clock>,
    /// `live_calls` in `/metrics`: set from the store just before each scrape (-1: unreachable).
    live_calls: Gauge,
}

impl CallService {
    pub(crate) fn new(
        store: Arc<dyn CallStore>,
        agents: Arc<Agents>,
        own_calls: OwnCalls,
        policy: Policy,
        sinks: Sinks,
        clock: Arc<dyn Clock>,
        registry: &mut Registry,
    ) -> CallService {
        let live_calls = Gauge::default();
        registry.register(
            "live_calls",
            "Inbound calls in progress (-1: the call store is unreachable)",
            live_calls.clone(),
        );
        store.register(registry);
        CallService {
            store,
            agents,
            own_calls,
            policy,
            sinks,
            clock,
            live_calls,
        }
    }

    /// Applies one event to call `sid`; returns the document the call is on.
    pub(crate) async fn apply(&self, sid: &CallSid, event: &Event) -> Result<Reply, StoreError> {
        let now = self.clock.now_ms();
        // Only a new call needs the live count (one more round trip with Redis).
        let live_calls = match event {
            Event::Incoming { .. } => self.store.live(now).await?,
            _ => 0,
        };
        let (policy, agents) = (&self.policy, &self.agents);
        let decide = |call: Option<&crate::call::Call>| {
            let line = match call {
                Some(call) => call.line.clone(),
                None => policy.line_of(event),
            };
            let snapshot = Snapshot {
                available: agents.available(&line),
                live_calls,
            };
            transition(sid, call, event, now, policy, &snapshot)
        };
        let applied = self.store.apply(sid, now, &decide).await?;
        if let Some(why) = applied.ignored {
            diagnose(why, event);
        }
        for fact in applied.facts {
            self.sinks.accept(Record::Call {
                sid: sid.clone(),
                at: now,
                fact,
            });
        }
        Ok(applied.reply)
    }

    /// One event of an agent's own call (Call Control): busy marking and its record.
    pub(crate) fn agent_call(&self, event: &Data) -> Result<Handled, BadEvent> {
        let now = self.clock.now_ms();
        let (handled, record) = self.own_calls.apply(event, now, &self.agents)?;
        if let Some(record) = record {
            self.sinks.accept(record);
        }
        Ok(handled)
    }

    /// Whether the store answers (readiness).
    pub(crate) async fn store_answers(&self) -> bool {
        self.store.ping().await.is_ok()
    }

    /// Calls in progress, as the store counts them.
    pub(crate) async fn live(&self) -> Result<usize, StoreError> {
        self.store.live(self.clock.now_ms()).await
    }

    /// Reads what `/metrics` shows but nobody pushes (the live calls).
    pub(crate) async fn refresh_gauges(&self) {
        let live = self.live().await.map_or(-1, |n| n as i64);
        self.live_calls.set(live);
    }

    /// Settles the calls whose voicemail never came, then forgets finished and stale calls.
    pub(crate) async fn sweep(&self) {
        let now = self.clock.now_ms();
        match self.store.due(now).await {
            Ok(due) => {
                for sid in due {
                    if let Err(e) = self.apply(&sid, &Event::Expired).await {
                        tracing::warn!(call_sid = %sid, error = %e, "could not settle a call; will try again");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not list calls to settle; will try again"),
        }
        match self.store.sweep(now).await {
            Ok(swept) => {
                if swept.stale > 0 {
                    tracing::warn!(
                        stale = swept.stale,
                        "forgot calls whose final callback never arrived"
                    );
                }
                if swept.ended > 0 {
                    tracing::debug!(ended = swept.ended, "forgot finished calls");
                }
            }
            Err(e) => tracing::warn!(error = %e, "sweep failed; will try again"),
        }
        let stale_own = self.own_calls.sweep(now, &self.agents);
        if stale_own > 0 {
            tracing::warn!(
                stale_own,
                "forgot agents' calls whose hangup never arrived; their agents are free again"
            );
        }
    }

    /// Sweeps every `every` until the task is stopped.
    pub(crate) async fn keep_swept(self: Arc<Self>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.sweep().await;
        }
    }
}

/// Logs why an event changed nothing: loudly when it may hide a problem.
fn diagnose(why: Ignored, event: &Event) {
    let event = event.name();
    match why {
        Ignored::UnknownCall => tracing::warn!(event, "callback for an unknown call"),
        Ignored::TooManyLegs => tracing::warn!("leg ignored: the call already has too many legs"),
        why => tracing::debug!(?why, event, "callback changed nothing"),
    }
}
