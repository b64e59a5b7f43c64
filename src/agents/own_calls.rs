//! Agents' own calls, reported by their SIP connections as Telnyx Call Control v2 webhooks
//! (`POST /telnyx/events`): `call.initiated` (direction `outgoing`), `call.answered`,
//! `call.hangup`. Each becomes one record, whatever duplicates arrive; an agent on such a call is
//! busy and is not rung for inbound calls until it ends plus their wrap-up: at once on this
//! replica (the roster's busy marking), and on every replica through the presence marks the
//! call service writes.

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::Agents;
use crate::call::routing::{Mark, Routing};
use crate::call::Expiry;
use crate::domain::{CallSid, Party};
use crate::provider::json_text;
use crate::sink::{AgentCallKind, Record};
use crate::time::{secs_between, Millis};

/// The Call Control envelope, reduced to what Switchboard reads. Unknown fields are ignored.
#[derive(Debug, Deserialize)]
pub struct Envelope {
    pub data: Data,
}

#[derive(Debug, Deserialize)]
pub struct Data {
    pub event_type: String,
    pub id: Option<String>,
    pub occurred_at: Option<String>,
    #[serde(default)]
    pub payload: Payload,
}

#[derive(Debug, Default, Deserialize)]
pub struct Payload {
    pub call_control_id: Option<String>,
    pub call_leg_id: Option<String>,
    pub connection_id: Option<serde_json::Value>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub direction: Option<String>,
    /// `call.initiated`: `parked` when the connection parks its calls, else `bridging`.
    pub state: Option<String>,
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    pub hangup_cause: Option<String>,
}

/// What Switchboard made of one event (for the log line and the tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    Applied,
    Duplicate,
    /// Not an agent's outbound call, or an event type Switchboard does not use.
    NotOurs,
}

/// Why an event was refused (answered with 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadEvent {
    #[error("data.payload: needs call_control_id or call_leg_id")]
    NoCallId,
    #[error("data.payload.connection_id: is missing")]
    NoConnection,
}

fn parse_time(s: Option<&str>) -> Option<Millis> {
    let t = OffsetDateTime::parse(s?.trim(), &Rfc3339).ok()?;
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// What one event changed: what to tell, and the agent's presence.
#[derive(Debug)]
pub struct Applied {
    pub handled: Handled,
    pub records: Vec<Record>,
    pub marks: Vec<Mark>,
}

impl Applied {
    fn not_ours() -> Applied {
        Applied::with(Handled::NotOurs, Vec::new())
    }

    fn with(handled: Handled, records: Vec<Record>) -> Applied {
        Applied {
            handled,
            records,
            marks: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
struct OutCall {
    agent: Box<str>,
    /// The agent's id, for their presence.
    agent_id: Box<str>,
    /// The call as presence names it (`None`: an id presence cannot hold).
    presence_id: Option<CallSid>,
    wrap_up_secs: u32,
    to: Party,
    started_at: Millis,
    answered_at: Option<Millis>,
    ended: bool,
    /// When this entry may be forgotten.
    expires_at: Millis,
}

/// The agents' calls in progress, keyed by call control id.
pub struct OwnCalls {
    calls: DashMap<Box<str>, OutCall>,
    expiry: Expiry,
    /// Connections already said to park their calls (said once each).
    parking_said: DashMap<Box<str>, ()>,
    /// Agents' wrap-up after their own calls (the default line's, or their own).
    routing: Routing,
    /// The longest a call may last: an agent whose hangup never comes is free after it.
    longest_ms: Millis,
}

impl OwnCalls {
    /// `routing` gives the wrap-up after an own call; `time_limit_secs` caps how long one keeps
    /// its agent busy when its hangup never comes.
    pub fn new(expiry: Expiry, routing: Routing, time_limit_secs: u32) -> OwnCalls {
        OwnCalls {
            calls: DashMap::new(),
            expiry,
            parking_said: DashMap::new(),
            routing,
            longest_ms: u64::from(time_limit_secs) * 1000,
        }
    }

    fn ended(call: &OutCall, at: Millis) -> Vec<Mark> {
        let Some(id) = &call.presence_id else {
            return Vec::new();
        };
        vec![Mark::Ended {
            agent: call.agent_id.clone(),
            call: id.clone(),
            at,
            wrap_up_secs: call.wrap_up_secs,
        }]
    }

    /// Applies one event at `now`: updates the busy agents in `roster` and returns the records to
    /// tell and the presence marks to write. An agent's call that arrives *parked* hangs in ringback until a Call Control command
    /// comes, and Switchboard sends none: the connection has call parking enabled; that is said
    /// once per connection, before the call's own record.
    pub fn apply(&self, event: &Data, now: Millis, roster: &Agents) -> Result<Applied, BadEvent> {
        let p = &event.payload;
        let kind = event.event_type.as_str();
        if !matches!(kind, "call.initiated" | "call.answered" | "call.hangup") {
            return Ok(Applied::not_ours());
        }
        let call_id: Box<str> = p
            .call_control_id
            .as_deref()
            .or(p.call_leg_id.as_deref())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or(BadEvent::NoCallId)?
            .into();
        let at = parse_time(event.occurred_at.as_deref()).unwrap_or(now);
        let notification = |agent: &str, to: &Party, kind| Record::AgentCall {
            call_id: call_id.clone(),
            at,
            agent: agent.into(),
            to: to.clone(),
            kind,
        };
        match kind {
            "call.initiated" => {
                if p.direction.as_deref() != Some("outgoing") {
                    return Ok(Applied::not_ours());
                }
                let connection = p
                    .connection_id
                    .as_ref()
                    .and_then(|v| json_text(Some(v)))
                    .ok_or(BadEvent::NoConnection)?;
                let Some(agent) = roster.by_connection(&connection) else {
                    return Ok(Applied::not_ours());
                };
                let to =
                    p.to.as_deref()
                        .and_then(|t| Party::parse(t).ok())
                        .unwrap_or_else(Party::unknown);
                let mut records = Vec::new();
                let parked = p.state.as_deref() == Some("parked");
                if parked
                    && self
                        .parking_said
                        .insert(connection.as_str().into(), ())
                        .is_none()
                {
                    records.push(notification(&agent.name, &to, AgentCallKind::Parked));
                }
                match self.calls.entry(call_id.clone()) {
                    Entry::Occupied(_) => Ok(Applied::with(Handled::Duplicate, records)),
                    Entry::Vacant(slot) => {
                        let started_at = parse_time(p.start_time.as_deref()).unwrap_or(at);
                        let presence_id = CallSid::parse(&call_id).ok();
                        let wrap_up_secs = self.routing.wrap_up_of(&agent);
                        // Presence runs on this server's clock, as every other mark does.
                        let marks = presence_id.iter().map(|id| Mark::Busy {
                            agent: agent.id.clone(),
                            call: id.clone(),
                            at: now,
                            until: now
                                .saturating_add(self.longest_ms)
                                .saturating_add(u64::from(wrap_up_secs) * 1000),
                        });
                        let marks = marks.collect();
                        slot.insert(OutCall {
                            agent: agent.name.clone(),
                            agent_id: agent.id.clone(),
                            presence_id,
                            wrap_up_secs,
                            to: to.clone(),
                            started_at,
                            answered_at: None,
                            ended: false,
                            expires_at: self.expiry.while_live(now),
                        });
                        roster.set_busy(&call_id, &connection);
                        records.push(notification(&agent.name, &to, AgentCallKind::Started));
                        Ok(Applied {
                            handled: Handled::Applied,
                            records,
                            marks,
                        })
                    }
                }
            }
            "call.answered" => {
                let Some(mut call) = self.calls.get_mut(&call_id) else {
                    // Not an outbound call we saw start (e.g. a leg we dialled to an agent).
                    return Ok(Applied::not_ours());
                };
                if call.answered_at.is_some() || call.ended {
                    return Ok(Applied::with(Handled::Duplicate, Vec::new()));
                }
                call.answered_at = Some(at);
                call.expires_at = self.expiry.while_live(now);
                let after_secs = secs_between(call.started_at, at);
                let told = notification(
                    &call.agent,
                    &call.to,
                    AgentCallKind::Answered { after_secs },
                );
                Ok(Applied::with(Handled::Applied, vec![told]))
            }
            _ => {
                let Some(mut call) = self.calls.get_mut(&call_id) else {
                    return Ok(Applied::not_ours());
                };
                if call.ended {
                    return Ok(Applied::with(Handled::Duplicate, Vec::new()));
                }
                call.ended = true;
                call.expires_at = self.expiry.after_end(now);
                roster.clear_busy(&call_id);
                // `end_time` is not always sent; the event's own time is the next best.
                let ended_at = parse_time(p.end_time.as_deref()).unwrap_or(at);
                let talk_secs = call.answered_at.map(|a| secs_between(a, ended_at));
                let cause = p
                    .hangup_cause
                    .as_deref()
                    .filter(|c| !c.is_empty() && c.len() <= 64)
                    .map(Box::from);
                let told = notification(
                    &call.agent,
                    &call.to,
                    AgentCallKind::Finished { talk_secs, cause },
                );
                Ok(Applied {
                    handled: Handled::Applied,
                    records: vec![told],
                    marks: OwnCalls::ended(&call, now),
                })
            }
        }
    }

    /// Forgets ended calls after their grace period and calls whose hangup never came after the
    /// TTL (freeing their agents). Returns how many of the latter there were, and the marks that
    /// free their agents everywhere.
    pub fn sweep(&self, now: Millis, roster: &Agents) -> (usize, Vec<Mark>) {
        let mut stale = 0;
        let mut marks = Vec::new();
        self.calls.retain(|id, call| {
            if call.expires_at > now {
                return true;
            }
            if !call.ended {
                stale += 1;
                roster.clear_busy(id);
                marks.extend(OwnCalls::ended(call, now));
            }
            false
        });
        (stale, marks)
    }

    pub fn len(&self) -> usize {
        self.calls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }
}
