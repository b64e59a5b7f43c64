//! Live control of conference-mode calls, shared by the admin API (Bearer token) and the
//! dashboard (supervisors): list a room's participants; mute or unmute, hold or resume, remove
//! one; call someone in (an agent by id, or a number); start or stop recording. Every action goes
//! through the call core (which checks the call is in its room and the participant is there),
//! becomes an event in the ledger and a line in Slack, and is sent to the provider's REST API in
//! the background: the answer is `202 Accepted` once it is queued.
//!
//! | answer | when |
//! |---|---|
//! | 202 `{"action", "call", "who"}` | taken; the provider's request is queued |
//! | 200 `{"unchanged": true}` | already so (muted twice, recording already on) |
//! | 400 | an unknown action, a body that is not `{"agent"}` / `{"number", "name"}` |
//! | 404 | no such live call; no such participant in the room; no such agent |
//! | 409 | the call is not in a conference room (dial mode, voicemail, over), or the room has not started |
//! | 503 | the call store did not answer |

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde::Deserialize;
use serde_json::json;

use super::admin::error;
use super::Context;
use crate::call::conference::{participants, Control, CALLER_LABEL};
use crate::call::{Ignored, Phase};
use crate::domain::{Agent, CallSid, Endpoint};

/// `who` joins the room: an agent by id, or a number (or SIP address) with a name to greet.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Add {
    agent: Option<String>,
    number: Option<String>,
    sip: Option<String>,
    name: Option<String>,
    pub(super) by: Option<String>,
}

/// A participant action's name (`mute`, `unmute`, `hold`, `resume`, `remove`) on `who`.
pub(super) fn participant_action(action: &str, who: &str) -> Result<Control, Refused> {
    let who: Box<str> = who.into();
    Ok(match action {
        "mute" => Control::Mute { who, on: true },
        "unmute" => Control::Mute { who, on: false },
        "hold" => Control::Hold { who, on: true },
        "resume" => Control::Hold { who, on: false },
        "remove" => Control::Remove { who },
        _ => {
            return Err(Refused(
                StatusCode::BAD_REQUEST,
                "the action is one of mute, unmute, hold, resume, remove".into(),
            ))
        }
    })
}

/// A recording action's name (`start`, `stop`).
pub(super) fn recording_action(action: &str) -> Result<Control, Refused> {
    match action {
        "start" => Ok(Control::Record { on: true }),
        "stop" => Ok(Control::Record { on: false }),
        _ => Err(Refused(
            StatusCode::BAD_REQUEST,
            "the action is start or stop".into(),
        )),
    }
}

/// Calling into the room the agent (or the person on a number) an add names.
pub(super) fn added(cx: &Context, add: &Add) -> Result<Control, Refused> {
    agent_of(cx, add).map(|agent| Control::Add { agent })
}

fn agent_of(cx: &Context, add: &Add) -> Result<Agent, Refused> {
    let bad = |m: &str| Err(Refused(StatusCode::BAD_REQUEST, m.to_owned()));
    match (&add.agent, &add.number, &add.sip) {
        (Some(id), None, None) => cx
            .service
            .agent(id.trim())
            .ok_or_else(|| Refused(StatusCode::NOT_FOUND, "no such agent".into())),
        (None, Some(n), None) | (None, None, Some(n)) => {
            let endpoint = match add.number.is_some() {
                true => Endpoint::number(n.trim()),
                false => Endpoint::sip(n.trim()),
            };
            let endpoint = match endpoint {
                Ok(e) => e,
                Err(e) => return bad(&format!("`number`/`sip`: {e}")),
            };
            let name = add
                .name
                .as_deref()
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .unwrap_or("there");
            let mut agent = match Agent::new(name, endpoint) {
                Ok(a) => a,
                Err(e) => return bad(&format!("`name`: {e}")),
            };
            // Not an agent: an id of its own, from a digest of the address called (labels are
            // shown on the dashboard, where numbers may be masked).
            let digest = <sha2::Sha256 as sha2::Digest>::digest(n.trim().as_bytes());
            let key: String = digest[..5].iter().map(|b| format!("{b:02x}")).collect();
            agent.id = format!("guest-{key}").into();
            Ok(agent)
        }
        _ => bad("the body must be {\"agent\": \"id\"} or {\"number\": \"+1…\", \"name\": \"…\"}"),
    }
}

/// A request refused: its status and why.
pub(super) struct Refused(pub(super) StatusCode, pub(super) String);

impl Refused {
    pub(super) fn respond(&self) -> HttpResponse {
        error(self.0, &self.1)
    }
}

/// The call's id from the path, or 404.
fn call_sid(sid: &str) -> Result<CallSid, Refused> {
    CallSid::parse(sid).map_err(|_| Refused(StatusCode::NOT_FOUND, "no such call".into()))
}

/// The room of live call `sid`, with its participants.
pub(super) async fn room(cx: &Context, sid: &str) -> HttpResponse {
    let sid = match call_sid(sid) {
        Ok(s) => s,
        Err(refused) => return refused.respond(),
    };
    let call = match cx.service.call(&sid).await {
        Ok(Some(call)) if !call.is_ended() => call,
        Ok(_) => return error(StatusCode::NOT_FOUND, "no such live call"),
        Err(e) => return unavailable(e),
    };
    let Some(list) = participants(&call) else {
        return error(StatusCode::CONFLICT, "the call is not in a conference room");
    };
    let (room, recording) = match &call.phase {
        Phase::Conference(room) => (room.name.to_string(), room.recording),
        _ => (String::new(), false),
    };
    HttpResponse::Ok().json(json!({
        "call": sid.as_str(),
        "line": call.line.as_str(),
        "room": room,
        "recording": recording,
        "participants": list,
    }))
}

/// Takes `control` on call `sid` for `by`.
pub(super) async fn act(cx: &Context, sid: &str, control: Control, by: &str) -> HttpResponse {
    let sid = match call_sid(sid) {
        Ok(s) => s,
        Err(refused) => return refused.respond(),
    };
    let action = control.label();
    let who = match &control {
        Control::Mute { who, .. } | Control::Hold { who, .. } | Control::Remove { who } => {
            who.to_string()
        }
        Control::Add { agent } => agent.name.to_string(),
        Control::Record { .. } => "the room".into(),
    };
    match cx.service.control(&sid, control, by).await {
        Ok(None) => {
            tracing::info!(call_sid = %sid, action, by, "conference control taken");
            HttpResponse::Accepted().json(json!({ "action": action, "call": sid.as_str(), "who": who }))
        }
        Ok(Some(Ignored::Duplicate)) => HttpResponse::Ok().json(json!({
            "action": action, "call": sid.as_str(), "who": who, "unchanged": true
        })),
        Ok(Some(Ignored::UnknownCall)) => error(StatusCode::NOT_FOUND, "no such live call"),
        Ok(Some(Ignored::NoParticipant)) => error(
            StatusCode::NOT_FOUND,
            &format!("no participant `{who}` in the room (`{CALLER_LABEL}` or `organizer-<agent id>` of one who joined)"),
        ),
        Ok(Some(Ignored::TooManyLegs)) => {
            error(StatusCode::CONFLICT, "the call has called too many people already")
        }
        Ok(Some(_)) => error(
            StatusCode::CONFLICT,
            "the call is not in a conference room, or its room has not started",
        ),
        Err(e) => unavailable(e),
    }
}

fn unavailable(e: crate::call::StoreError) -> HttpResponse {
    tracing::error!(error = %e, "conference control: call store unavailable");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the call store did not answer",
    )
}
