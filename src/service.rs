//! The call service: the whole call path between the routes and the call core. For each event it
//! gathers what is true now (who is free on the call's line, how many calls are live), lets the
//! store apply the pure transition atomically, hands the facts to the sinks, and returns the
//! document. It also settles and sweeps calls in the background, and takes the agents' own call
//! events. It decides nothing itself: decisions are [`crate::call::transition`]'s.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::agents::own_calls::{BadEvent, Data, Handled, OwnCalls};
use crate::agents::presence::PresenceStore;
use crate::agents::Agents;
use crate::call::routing::Mark;
use crate::call::{transition, CallStore, Event, Ignored, Policy, Reply, Snapshot, StoreError};
use crate::domain::{CallSid, LineId};
use crate::lines::LineOverrides;
use crate::sink::{Record, Sinks};
use crate::time::{Clock, Millis};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AnswerLabels {
    answer: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FateLabels {
    fate: &'static str,
}

/// A callback that arrived while the store did not answer, kept to be applied later.
struct Deferred {
    sid: CallSid,
    event: Event,
    /// When it arrived: it is applied as of then.
    at: Millis,
}

/// What the call service is built from.
pub(crate) struct Parts {
    pub(crate) store: Arc<dyn CallStore>,
    pub(crate) agents: Arc<Agents>,
    pub(crate) own_calls: OwnCalls,
    pub(crate) policy: Policy,
    /// Operators' overrides of lines' hours.
    pub(crate) overrides: Arc<LineOverrides>,
    /// Agents on a call, wrapping up or away.
    pub(crate) presence: Arc<PresenceStore>,
    pub(crate) sinks: Sinks,
    pub(crate) clock: Arc<dyn Clock>,
    /// Callbacks kept at most while the store does not answer.
    pub(crate) deferred_capacity: usize,
    /// Conference mode's requests to the provider (`None`: no line is in conference mode).
    pub(crate) requests: Option<crate::conference::Requests>,
}

pub(crate) struct CallService {
    store: Arc<dyn CallStore>,
    agents: Arc<Agents>,
    own_calls: OwnCalls,
    policy: Policy,
    overrides: Arc<LineOverrides>,
    presence: Arc<PresenceStore>,
    sinks: Sinks,
    clock: Arc<dyn Clock>,
    /// Presence changes that could not be written (`presence_marks_failed_total`).
    marks_failed: Counter,
    /// What screened agents' keys did: accepted, declined, too_late, caller_gone, prompted.
    screenings: Family<AnswerLabels, Counter>,
    /// `live_calls` in `/metrics`: set from the store just before each scrape (-1: unreachable).
    live_calls: Gauge,
    /// Events that changed nothing, by reason (`events_ignored_total`).
    ignored: Family<ReasonLabels, Counter>,
    /// Callbacks that arrived while the store did not answer, oldest first, at most
    /// `deferred_capacity`: applied in order once it answers again.
    deferred: Mutex<VecDeque<Deferred>>,
    deferred_capacity: usize,
    /// What became of them: queued, applied, dropped (`callbacks_deferred_total`).
    deferred_fates: Family<FateLabels, Counter>,
    requests: Option<crate::conference::Requests>,
}

impl CallService {
    pub(crate) fn new(parts: Parts, registry: &mut Registry) -> CallService {
        let Parts {
            store,
            agents,
            own_calls,
            policy,
            overrides,
            presence,
            sinks,
            clock,
            deferred_capacity,
            requests,
        } = parts;
        let marks_failed = Counter::default();
        registry.register(
            "presence_marks_failed",
            "Agent busy/free changes that could not be written (the agent frees at the cap)",
            marks_failed.clone(),
        );
        let screenings = Family::default();
        registry.register(
            "screenings",
            "Screened legs: prompted, accepted, declined, too_late, caller_gone",
            screenings.clone(),
        );
        let live_calls = Gauge::default();
        registry.register(
            "live_calls",
            "Inbound calls in progress (-1: the call store is unreachable)",
            live_calls.clone(),
        );
        let ignored = Family::default();
        registry.register(
            "events_ignored",
            "Provider events that changed nothing, by reason",
            ignored.clone(),
        );
        let deferred_fates = Family::default();
        registry.register(
            "callbacks_deferred",
            "Callbacks kept while the call store did not answer: queued, applied, dropped",
            deferred_fates.clone(),
        );
        store.register(registry);
        CallService {
            store,
            agents,
            own_calls,
            policy,
            overrides,
            presence,
            sinks,
            clock,
            marks_failed,
            screenings,
            live_calls,
            ignored,
            deferred: Mutex::new(VecDeque::new()),
            deferred_capacity,
            deferred_fates,
            requests,
        }
    }

    /// What time it is for the call path.
    pub(crate) fn now(&self) -> Millis {
        self.clock.now_ms()
    }

    /// Applies one event to call `sid` now; returns the document the call is on.
    pub(crate) async fn apply(
        &self,
        sid: &CallSid,
        event: &Event,
    ) -> Result<(Reply, LineId), StoreError> {
        let (reply, line, _) = self.apply_at(sid, event, self.clock.now_ms()).await?;
        Ok((reply, line))
    }

    /// An operator's live-control action on conference call `sid`: `None` when it was taken
    /// (the provider's request is queued), else why not.
    pub(crate) async fn control(
        &self,
        sid: &CallSid,
        control: crate::call::conference::Control,
        by: &str,
    ) -> Result<Option<Ignored>, StoreError> {
        let event = Event::Control {
            control,
            by: by.into(),
        };
        let (_, _, ignored) = self.apply_at(sid, &event, self.clock.now_ms()).await?;
        Ok(ignored)
    }

    /// Call `sid` as the store holds it now (`None`: not held).
    pub(crate) async fn call(
        &self,
        sid: &CallSid,
    ) -> Result<Option<crate::call::Call>, StoreError> {
        let seen = Mutex::new(None);
        let now = self.clock.now_ms();
        let peek = |call: Option<&crate::call::Call>| {
            *seen.lock().unwrap_or_else(|p| p.into_inner()) = call.cloned();
            crate::call::Step {
                next: None,
                facts: Vec::new(),
                reply: Reply::Hangup,
                line: LineId::main(),
                ignored: None,
                marks: Vec::new(),
                legs: Vec::new(),
                commands: Vec::new(),
            }
        };
        self.store.apply(sid, now, &peek).await?;
        Ok(seen.into_inner().unwrap_or_else(|p| p.into_inner()))
    }

    /// Applies one event to call `sid` as of `now`.
    async fn apply_at(
        &self,
        sid: &CallSid,
        event: &Event,
        now: Millis,
    ) -> Result<(Reply, LineId, Option<Ignored>), StoreError> {
        // Only a new call needs the live count (one more round trip with Redis).
        let live_calls = match event {
            Event::Incoming { .. } => self.store.live(now).await?,
            _ => 0,
        };
        // Only the events that may look at a line's hours need the operators' overrides.
        let manual = match event {
            Event::Incoming { .. } | Event::MenuInput { .. } => self.overrides.all().await?,
            _ => Default::default(),
        };
        // Only the events that may ring someone need who is busy.
        let presence = match event {
            Event::Incoming { .. }
            | Event::MenuInput { .. }
            | Event::DialEnded { .. }
            | Event::OrganizerStatus { .. }
            | Event::OrganizerPlaced { .. }
            | Event::Expired => self.presence.all().await?,
            _ => Default::default(),
        };
        let (policy, agents) = (&self.policy, &self.agents);
        let decide = |call: Option<&crate::call::Call>| {
            let line = policy.line_needed(call, event);
            let snapshot = Snapshot {
                available: agents.available(&line),
                live_calls,
                manual: manual.clone(),
                presence: presence.clone(),
            };
            transition(sid, call, event, now, policy, &snapshot)
        };
        let applied = self.store.apply(sid, now, &decide).await?;
        if let Event::Screen { .. } = event {
            let answer = match applied.reply {
                Reply::Screen { .. } => "prompted",
                Reply::Accept => "accepted",
                Reply::TooLate => "too_late",
                Reply::CallerGone => "caller_gone",
                _ => "declined",
            };
            self.screenings
                .get_or_create(&AnswerLabels { answer })
                .inc();
        }
        for mark in &applied.marks {
            self.mark(mark).await;
        }
        if let Some(why) = applied.ignored {
            let reason = why.label();
            // An operator's refused action is answered to them, not a provider's oddity.
            let reason = match event {
                Event::Control { .. } => "control_refused",
                _ => reason,
            };
            self.ignored.get_or_create(&ReasonLabels { reason }).inc();
            diagnose(why, event);
        }
        for fact in applied.facts {
            self.sinks.accept(Record::Call {
                sid: sid.clone(),
                at: now,
                fact,
            });
        }
        for fact in applied.legs {
            self.sinks.accept(Record::Leg {
                sid: sid.clone(),
                at: now,
                line: applied.line.clone(),
                fact,
            });
        }
        for command in applied.commands {
            match &self.requests {
                Some(requests) => requests.send(command),
                None => tracing::error!(call_sid = %sid, order = command.order.label(),
                    "a conference request without the provider's API configured: dropped"),
            }
        }
        Ok((applied.reply, applied.line, applied.ignored))
    }

    /// Writes one change of an agent's presence. A failure is counted and logged, not the
    /// caller's problem: the agent is then free again at the mark's cap at the latest.
    pub(crate) async fn mark(&self, mark: &Mark) {
        if let Err(e) = self.presence.mark(mark).await {
            self.marks_failed.inc();
            tracing::error!(agent = mark.agent(), error = %e, "agent presence not updated");
        }
    }

    /// Agent `id`, when there is one.
    pub(crate) fn agent(&self, id: &str) -> Option<crate::domain::Agent> {
        self.agents.by_id(id)
    }

    /// Every agent with their presence, in roster order (for the admin API).
    pub(crate) async fn agents_now(
        &self,
    ) -> Result<Vec<(crate::domain::Agent, crate::call::routing::Presence)>, StoreError> {
        let presences = self.presence.all().await?;
        Ok(self
            .agents
            .everyone()
            .iter()
            .map(|a| (a.clone(), presences.get(&a.id).cloned().unwrap_or_default()))
            .collect())
    }

    /// Sets agent `id` away (or available again) by hand, and says so to the sinks. `None`: no
    /// such agent.
    pub(crate) async fn set_away(
        &self,
        id: &str,
        away: bool,
        by: &str,
    ) -> Result<Option<(crate::domain::Agent, crate::call::routing::Presence)>, StoreError> {
        let Some(agent) = self.agents.by_id(id) else {
            return Ok(None);
        };
        let mark = Mark::Away {
            agent: agent.id.clone(),
            away,
        };
        let presence = self.presence.mark(&mark).await?;
        self.sinks.accept(Record::Away {
            at: self.clock.now_ms(),
            agent: agent.name.to_string(),
            away,
            by: by.to_owned(),
        });
        Ok(Some((agent, presence)))
    }

    /// One event of an agent's own call (Call Control): busy marking and its record.
    pub(crate) async fn agent_call(&self, event: &Data) -> Result<Handled, BadEvent> {
        let now = self.clock.now_ms();
        let applied = self.own_calls.apply(event, now, &self.agents)?;
        for mark in &applied.marks {
            self.mark(mark).await;
        }
        for record in applied.records {
            self.sinks.accept(record);
        }
        Ok(applied.handled)
    }

    /// Keeps a callback the store could not take (it did not answer), to apply it, as of `at`,
    /// once it answers again. A full queue drops it: counted and logged.
    pub(crate) fn defer(&self, sid: CallSid, event: Event, at: Millis) {
        let mut queue = self.deferred.lock().unwrap_or_else(|p| p.into_inner());
        if queue.len() >= self.deferred_capacity {
            drop(queue);
            self.deferred_fate("dropped");
            tracing::error!(call_sid = %sid, event = event.name(), capacity = self.deferred_capacity,
                "call store away and the retry queue is full: callback dropped");
            return;
        }
        queue.push_back(Deferred { sid, event, at });
        drop(queue);
        self.deferred_fate("queued");
    }

    fn deferred_fate(&self, fate: &'static str) {
        self.deferred_fates
            .get_or_create(&FateLabels { fate })
            .inc();
    }

    /// Applies the kept callbacks in order, until the store fails again. Returns how many are
    /// still waiting.
    pub(crate) async fn apply_deferred(&self) -> usize {
        loop {
            let next = {
                let mut queue = self.deferred.lock().unwrap_or_else(|p| p.into_inner());
                queue.pop_front()
            };
            let Some(d) = next else { return 0 };
            match self.apply_at(&d.sid, &d.event, d.at).await {
                Ok(_) => self.deferred_fate("applied"),
                Err(_) => {
                    let mut queue = self.deferred.lock().unwrap_or_else(|p| p.into_inner());
                    queue.push_front(d);
                    return queue.len();
                }
            }
        }
    }

    /// Retries the kept callbacks every `every` until the task is stopped.
    pub(crate) async fn keep_retrying(self: Arc<Self>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let waiting = self.apply_deferred().await;
            if waiting > 0 {
                tracing::warn!(
                    waiting,
                    "call store still away: callbacks wait to be applied"
                );
            }
        }
    }

    /// At shutdown: one last try; what is left is dropped, counted and logged.
    pub(crate) async fn flush_deferred(&self, deadline: Duration) {
        let left = tokio::time::timeout(deadline, self.apply_deferred())
            .await
            .unwrap_or_else(|_| self.deferred.lock().map_or(0, |q| q.len()));
        if left > 0 {
            for _ in 0..left {
                self.deferred_fate("dropped");
            }
            tracing::error!(
                left,
                "callbacks still waiting for the call store at shutdown: dropped"
            );
        }
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

    /// Settles the calls whose voicemail never came, and moves on conference rooms whose timer
    /// is due.
    pub(crate) async fn settle_due(&self) {
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
    }

    /// Settles what is due, then forgets finished and stale calls.
    pub(crate) async fn sweep(&self) {
        self.settle_due().await;
        let now = self.clock.now_ms();
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
        let (stale_own, marks) = self.own_calls.sweep(now, &self.agents);
        for mark in &marks {
            self.mark(mark).await;
        }
        if stale_own > 0 {
            tracing::warn!(
                stale_own,
                "forgot agents' calls whose hangup never arrived; their agents are free again"
            );
        }
    }

    /// Sweeps every `every` until the task is stopped; in between, looks for what is due every
    /// second (a conference room's timer is counted in seconds).
    pub(crate) async fn keep_swept(self: Arc<Self>, every: Duration) {
        let step = Duration::from_secs(1).min(every);
        let mut tick = tokio::time::interval(step);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut since_sweep = Duration::ZERO;
        loop {
            tick.tick().await;
            since_sweep += step;
            if since_sweep >= every {
                since_sweep = Duration::ZERO;
                self.sweep().await;
            } else {
                self.settle_due().await;
            }
        }
    }
}

#[async_trait::async_trait]
impl crate::conference::Report for CallService {
    /// What the provider's API said about a call, applied like a callback (kept for later when
    /// the store does not answer).
    async fn report(&self, call: &CallSid, event: Event) {
        let at = self.clock.now_ms();
        if let Err(e) = self.apply(call, &event).await {
            tracing::warn!(call_sid = %call, error = %e, "call store away: the provider's answer waits");
            self.defer(call.clone(), event, at);
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
