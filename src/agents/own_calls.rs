//! Agents' own calls, reported by their SIP connections as Telnyx Call Control v2 webhooks
//! (`POST /telnyx/events`): `call.initiated` (direction `outgoing`), `call.answered`,
//! `call.hangup`. Each becomes one record, whatever duplicates arrive; an agent on such a call is
//! busy and is not rung for inbound calls until it ends.

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::Agents;
use crate::call::Expiry;
use crate::domain::Party;
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

#[derive(Debug, Clone)]
struct OutCall {
    agent: Box<str>,
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
}

impl OwnCalls {
    pub fn new(expiry: Expiry) -> OwnCalls {
        OwnCalls {
            calls: DashMap::new(),
            expiry,
            parking_said: DashMap::new(),
        }
    }

    /// Applies one event at `now`: updates the busy agents in `roster` and returns the records to
    /// tell. An agent's call that arrives *parked* hangs in ringback until a Call Control command
    /// comes, and Switchboard sends none: the connection has call parking enabled; that is said
    /// once per connection, before the call's own record.
    pub fn apply(
        &self,
        event: &Data,
        now: Millis,
        roster: &Agents,
    ) -> Result<(Handled, Vec<Record>), BadEvent> {
        let p = &event.payload;
        let kind = event.event_type.as_str();
        if !matches!(kind, "call.initiated" | "call.answered" | "call.hangup") {
            return Ok((Handled::NotOurs, Vec::new()));
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
                    return Ok((Handled::NotOurs, Vec::new()));
                }
                let connection = p
                    .connection_id
                    .as_ref()
                    .and_then(|v| json_text(Some(v)))
                    .ok_or(BadEvent::NoConnection)?;
                let Some(agent) = roster.by_connection(&connection) else {
                    return Ok((Handled::NotOurs, Vec::new()));
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
                    Entry::Occupied(_) => Ok((Handled::Duplicate, records)),
                    Entry::Vacant(slot) => {
                        let started_at = parse_time(p.start_time.as_deref()).unwrap_or(at);
                        slot.insert(OutCall {
                            agent: agent.name.clone(),
                            to: to.clone(),
                            started_at,
                            answered_at: None,
                            ended: false,
                            expires_at: self.expiry.while_live(now),
                        });
                        roster.set_busy(&call_id, &connection);
                        records.push(notification(&agent.name, &to, AgentCallKind::Started));
                        Ok((Handled::Applied, records))
                    }
                }
            }
            "call.answered" => {
                let Some(mut call) = self.calls.get_mut(&call_id) else {
                    // Not an outbound call we saw start (e.g. a leg we dialled to an agent).
                    return Ok((Handled::NotOurs, Vec::new()));
                };
                if call.answered_at.is_some() || call.ended {
                    return Ok((Handled::Duplicate, Vec::new()));
                }
                call.answered_at = Some(at);
                call.expires_at = self.expiry.while_live(now);
                let after_secs = secs_between(call.started_at, at);
                Ok((
                    Handled::Applied,
                    vec![notification(
                        &call.agent,
                        &call.to,
                        AgentCallKind::Answered { after_secs },
                    )],
                ))
            }
            _ => {
                let Some(mut call) = self.calls.get_mut(&call_id) else {
                    return Ok((Handled::NotOurs, Vec::new()));
                };
                if call.ended {
                    return Ok((Handled::Duplicate, Vec::new()));
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
                Ok((
                    Handled::Applied,
                    vec![notification(
                        &call.agent,
                        &call.to,
                        AgentCallKind::Finished { talk_secs, cause },
                    )],
                ))
            }
        }
    }

    /// Forgets ended calls after their grace period and calls whose hangup never came after the
    /// TTL (freeing their agents). Returns how many of the latter there were.
    pub fn sweep(&self, now: Millis, roster: &Agents) -> usize {
        let mut stale = 0;
        self.calls.retain(|id, call| {
            if call.expires_at > now {
                return true;
            }
            if !call.ended {
                stale += 1;
                roster.clear_busy(id);
            }
            false
        });
        stale
    }

    pub fn len(&self) -> usize {
        self.calls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }
}
