//! The edge: the provider's form fields become typed [`Event`]s here, once. Anything missing or
//! malformed becomes a [`BadRequest`] naming the field; unknown extra fields are ignored, because
//! providers add fields.

use std::collections::HashMap;

use crate::call::{CallStatus, DialStatus, Event, RecordingKind, RecordingStatus, ScreenStep};
use crate::domain::{CallSid, FieldError, LineId, Party, ProviderCopy};

/// Most fields a webhook may carry (Telnyx sends about 40).
const MAX_FIELDS: usize = 256;

/// Why a webhook request was refused (answered with 400 and logged).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadRequest {
    #[error("the body is not valid UTF-8")]
    NotUtf8,
    #[error("the body is JSON; the provider's fields come as a form")]
    NotForm,
    #[error("{0}")]
    Json(String),
    #[error("more than {MAX_FIELDS} fields")]
    TooManyFields,
    #[error("{0}: is missing")]
    Missing(&'static str),
    #[error("{0}: {1}")]
    Field(&'static str, FieldError),
    #[error("{0}: `{1}` is not a number of seconds")]
    NotSeconds(&'static str, String),
    #[error("{0}: `{1}` is not one of {2}")]
    NotOneOf(&'static str, String, &'static str),
}

/// Decoded `application/x-www-form-urlencoded` fields (a body or a query string).
#[derive(Debug, Default, Clone)]
pub struct Params(HashMap<String, String>);

impl Params {
    pub fn parse(raw: &[u8]) -> Result<Params, BadRequest> {
        std::str::from_utf8(raw).map_err(|_| BadRequest::NotUtf8)?;
        let mut map = HashMap::new();
        for (k, v) in form_urlencoded::parse(raw) {
            if map.len() >= MAX_FIELDS {
                return Err(BadRequest::TooManyFields);
            }
            map.insert(k.into_owned(), v.into_owned());
        }
        Ok(Params(map))
    }

    /// A field's value, trimmed; `None` when absent or blank.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    fn sid(&self, name: &'static str) -> Result<CallSid, BadRequest> {
        let v = self.text(name).ok_or(BadRequest::Missing(name))?;
        CallSid::parse(v).map_err(|e| BadRequest::Field(name, e))
    }

    fn opt_sid(&self, name: &'static str) -> Result<Option<CallSid>, BadRequest> {
        self.text(name)
            .map(|v| CallSid::parse(v).map_err(|e| BadRequest::Field(name, e)))
            .transpose()
    }

    /// A caller-controlled party; absent is "unknown" (Telnyx omits some for SIP callers).
    fn party(&self, name: &'static str) -> Result<Party, BadRequest> {
        match self.text(name) {
            Some(v) => Party::parse(v).map_err(|e| BadRequest::Field(name, e)),
            None => Ok(Party::unknown()),
        }
    }

    /// Whole seconds; providers send "12", and sometimes "12.0".
    fn secs(&self, name: &'static str) -> Result<Option<u32>, BadRequest> {
        let Some(v) = self.text(name) else {
            return Ok(None);
        };
        let bad = || BadRequest::NotSeconds(name, truncate(v));
        if let Ok(n) = v.parse::<u32>() {
            return Ok(Some(n));
        }
        match v.parse::<f64>() {
            Ok(f) if f.is_finite() && (0.0..=f64::from(u32::MAX)).contains(&f) => {
                Ok(Some(f.round() as u32))
            }
            _ => Err(bad()),
        }
    }
}

/// A provider id (`AccountSid`, `ConferenceSid`) if it is plain: letters, digits, `-`, `_`,
/// `:` and `.` (Telnyx's `v3:…`), at most 128 characters; anything else is dropped, as it would
/// be written into a URL path.
pub fn plain_id(v: Option<&str>) -> Option<Box<str>> {
    v.filter(|v| {
        (1..=128).contains(&v.len())
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':' | b'.'))
            && !v.contains("..")
    })
    .map(Box::from)
}

fn truncate(v: &str) -> String {
    v.chars().take(40).collect()
}

/// The voice URL: a new call (or a repeated request for a live one).
pub fn incoming(p: &Params) -> Result<(CallSid, Event), BadRequest> {
    Ok((
        p.sid("CallSid")?,
        Event::Incoming {
            from: p.party("From")?,
            to: p.party("To")?,
            account: plain_id(p.text("AccountSid")),
        },
    ))
}

/// The Dial action. `query` is our own query string (`round`).
pub fn dial_ended(p: &Params, query: &Params) -> Result<(CallSid, Event), BadRequest> {
    let sid = p.sid("CallSid")?;
    let raw = p
        .text("DialCallStatus")
        .ok_or(BadRequest::Missing("DialCallStatus"))?;
    let status = DialStatus::parse(raw).map_err(|_| {
        BadRequest::NotOneOf(
            "DialCallStatus",
            truncate(raw),
            "completed, answered, busy, no-answer, failed, canceled",
        )
    })?;
    let round = match query.text("round") {
        None => None,
        Some(r) => Some(r.parse::<u8>().map_err(|_| {
            BadRequest::NotOneOf("round", truncate(r), "the rounds Switchboard wrote")
        })?),
    };
    let group = match query.text("group") {
        None => 0,
        Some(g) => g.parse::<u8>().map_err(|_| {
            BadRequest::NotOneOf("group", truncate(g), "the groups Switchboard wrote")
        })?,
    };
    Ok((
        sid,
        Event::DialEnded {
            round,
            group,
            status,
            dial_sid: p.opt_sid("DialCallSid")?,
            duration_secs: p.secs("DialCallDuration")?,
            from: p.party("From")?,
            to: p.party("To")?,
            line: line(query),
        },
    ))
}

/// The line our own URL names, if it names one well-formed (the policy checks it is known).
fn line(query: &Params) -> Option<LineId> {
    query.text("line").and_then(LineId::parse)
}

/// The menu's action, or its redirect after no input. `query` is our own (`attempt`, `line`).
/// `Digits` absent or empty is no input.
pub fn menu_input(p: &Params, query: &Params) -> Result<(CallSid, Event), BadRequest> {
    let sid = p.sid("CallSid")?;
    let attempt = match query.text("attempt") {
        None => 1,
        Some(a) => a.parse::<u8>().map_err(|_| {
            BadRequest::NotOneOf("attempt", truncate(a), "the attempts Switchboard wrote")
        })?,
    };
    let digits = p
        .text("Digits")
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| Box::from(truncate(d)));
    Ok((
        sid,
        Event::MenuInput {
            attempt,
            digits,
            from: p.party("From")?,
            to: p.party("To")?,
            line: line(query),
        },
    ))
}

/// A screened leg's whisper (`pressed`: false) or the key its agent pressed (true). The request
/// is about the agent's leg (`CallSid`); our own query names the caller's call, the round's
/// `<Dial>` and the agent. `Digits` absent or empty is no key.
pub fn screen(p: &Params, query: &Params, pressed: bool) -> Result<(CallSid, Event), BadRequest> {
    let leg = p.sid("CallSid")?;
    let call = own_call(query)?;
    if let Some(parent) = p.opt_sid("ParentCallSid")? {
        if parent != call {
            return Err(BadRequest::NotOneOf(
                "ParentCallSid",
                truncate(parent.as_str()),
                "the call the screening URL names",
            ));
        }
    }
    let number = |name: &'static str| -> Result<u8, BadRequest> {
        let raw = query.text(name).ok_or(BadRequest::Missing(name))?;
        raw.parse::<u8>()
            .map_err(|_| BadRequest::NotOneOf(name, truncate(raw), "the values Switchboard wrote"))
    };
    let agent = own_agent(query)?;
    Ok((
        call,
        Event::Screen {
            round: number("round")?,
            group: number("group")?,
            agent,
            leg,
            step: step(p, pressed),
        },
    ))
}

/// Where someone is at a press-1 prompt: its document is fetched (`pressed`: false), or they
/// pressed `Digits` (absent or empty: no key).
fn step(p: &Params, pressed: bool) -> ScreenStep {
    match pressed {
        false => ScreenStep::Start,
        true => ScreenStep::Pressed(
            p.text("Digits")
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .map(|d| Box::from(truncate(d))),
        ),
    }
}

/// The caller's call our own query names (`call`).
fn own_call(query: &Params) -> Result<CallSid, BadRequest> {
    query.sid("call")
}

/// Which call placed to the organizer our own query names (`n`), if it says.
fn own_attempt(query: &Params) -> Option<u8> {
    query.text("n").and_then(|n| n.parse().ok())
}

/// The agent (or organizer) our own query names (`agent`), at most 128 bytes.
fn own_agent(query: &Params) -> Result<Box<str>, BadRequest> {
    query
        .text("agent")
        .filter(|a| a.len() <= 128)
        .map(Box::from)
        .ok_or(BadRequest::Missing("agent"))
}

/// Conference mode: an organizer's call answered (`pressed`: false, its document) or the key
/// they pressed (true). The request is about the organizer's call (`CallSid`); our own query
/// names the caller's call and the organizer.
pub fn organizer(
    p: &Params,
    query: &Params,
    pressed: bool,
) -> Result<(CallSid, Event), BadRequest> {
    Ok((
        own_call(query)?,
        Event::Organizer {
            agent: own_agent(query)?,
            attempt: own_attempt(query),
            leg: p.sid("CallSid")?,
            step: step(p, pressed),
        },
    ))
}

/// Conference mode: a status callback of an organizer's call.
pub fn organizer_status(p: &Params, query: &Params) -> Result<(CallSid, Event), BadRequest> {
    let raw = p
        .text("CallStatus")
        .ok_or(BadRequest::Missing("CallStatus"))?;
    Ok((
        own_call(query)?,
        Event::OrganizerStatus {
            agent: own_agent(query)?,
            attempt: own_attempt(query),
            leg: p.sid("CallSid")?,
            status: CallStatus::parse(raw),
        },
    ))
}

/// Conference mode: a conference status callback (`StatusCallbackEvent`, `ConferenceSid`,
/// `ParticipantLabel`, `CallSid`).
pub fn room(p: &Params, query: &Params) -> Result<(CallSid, Event), BadRequest> {
    let raw = p
        .text("StatusCallbackEvent")
        .ok_or(BadRequest::Missing("StatusCallbackEvent"))?;
    let conference = plain_id(p.text("ConferenceSid")).ok_or(BadRequest::Field(
        "ConferenceSid",
        FieldError::Invalid("is missing or not a plain id"),
    ))?;
    Ok((
        own_call(query)?,
        Event::Room {
            change: crate::call::conference::RoomChange::parse(raw),
            conference,
            label: p
                .text("ParticipantLabel")
                .filter(|l| l.len() <= 160)
                .map(Box::from),
            leg: p.opt_sid("CallSid")?,
        },
    ))
}

/// Conference mode: the caller's `<Dial>` into the room ended (its action).
pub fn room_left(p: &Params, query: &Params) -> Result<(CallSid, Event), BadRequest> {
    let sid = match p.opt_sid("CallSid")? {
        Some(sid) => sid,
        None => own_call(query)?,
    };
    Ok((sid, Event::RoomLeft))
}

/// Conference mode: the announcement document for the caller.
pub fn announce(query: &Params) -> Result<(CallSid, Event), BadRequest> {
    Ok((
        own_call(query)?,
        Event::Announce {
            agent: own_agent(query)?,
        },
    ))
}

/// A document for the call as it is (the REST API moved it here).
pub fn resume(p: &Params) -> Result<(CallSid, Event), BadRequest> {
    Ok((p.sid("CallSid")?, Event::Resume))
}

/// A status callback: for a dialled leg when it names a parent, else for the caller's call. The
/// returned CallSid is always the caller's (the key of the call's state).
pub fn status(p: &Params) -> Result<(CallSid, Event), BadRequest> {
    let sid = p.sid("CallSid")?;
    let raw = p
        .text("CallStatus")
        .ok_or(BadRequest::Missing("CallStatus"))?;
    // A status nobody asked for (dtmf, amd...) is acknowledged and ignored, not refused.
    let status = CallStatus::parse(raw);
    match p.opt_sid("ParentCallSid")? {
        Some(parent) if parent != sid => Ok((
            parent,
            Event::LegStatus {
                leg: sid,
                status,
                to: p.party("To")?,
            },
        )),
        _ => Ok((sid, Event::CallStatus { status })),
    }
}

/// The Record action.
pub fn record_ended(p: &Params) -> Result<(CallSid, Event), BadRequest> {
    Ok((p.sid("CallSid")?, Event::RecordEnded))
}

/// A recording status callback. `query` says which recording (`kind`), as we wrote it; the
/// provider's `RecordingSource` is the fallback.
pub fn recording(p: &Params, query: &Params) -> Result<(CallSid, Event), BadRequest> {
    // A conference recording's callback may name another participant's call, or none: our own
    // query names the caller's.
    let sid = match query.text("call") {
        Some(_) => own_call(query)?,
        None => p.sid("CallSid")?,
    };
    let kind = match (query.text("kind"), p.text("RecordingSource")) {
        (Some("voicemail"), _) | (None, Some("RecordVerb")) => RecordingKind::Voicemail,
        (Some("conversation"), _) | (None, Some("DialVerb")) => RecordingKind::Conversation,
        (Some("conference"), _) | (None, Some("Conference")) => RecordingKind::Conference,
        (Some(other), _) => {
            return Err(BadRequest::NotOneOf(
                "kind",
                truncate(other),
                "voicemail, conversation, conference",
            ))
        }
        (None, _) => return Err(BadRequest::Missing("kind")),
    };
    let status = RecordingStatus::parse(p.text("RecordingStatus"));
    let url = match p.text("RecordingUrl") {
        Some(u) if u.len() > 2048 => {
            return Err(BadRequest::Field("RecordingUrl", FieldError::TooLong))
        }
        Some(u) if !(u.starts_with("https://") || u.starts_with("http://")) => {
            return Err(BadRequest::Field(
                "RecordingUrl",
                FieldError::Invalid("is not an http(s) URL"),
            ))
        }
        other => other.map(Box::from),
    };
    Ok((
        sid,
        Event::Recording {
            kind,
            status,
            url,
            duration_secs: p.secs("RecordingDuration")?,
            copy: ProviderCopy::of(p.text("AccountSid"), p.text("RecordingSid")),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(s: &str) -> Params {
        Params::parse(s.as_bytes()).expect("form")
    }

    #[test]
    fn legs_are_keyed_by_their_parent() {
        let (sid, event) = status(&params(
            "CallSid=LEG1&ParentCallSid=CA1&CallStatus=in-progress&To=sip%3Aada%40x.example",
        ))
        .expect("valid");
        assert_eq!(sid.as_str(), "CA1");
        assert!(matches!(
            event,
            Event::LegStatus {
                status: CallStatus::InProgress,
                ..
            }
        ));
        let (sid, event) = status(&params("CallSid=CA1&CallStatus=completed")).expect("valid");
        assert_eq!(sid.as_str(), "CA1");
        assert_eq!(
            event,
            Event::CallStatus {
                status: CallStatus::Completed
            }
        );
    }

    #[test]
    fn bad_fields_are_named() {
        let err = status(&params("CallStatus=completed")).expect_err("no sid");
        assert_eq!(err.to_string(), "CallSid: is missing");
        let (_, event) = status(&params("CallSid=CA1&CallStatus=dtmf")).expect("acknowledged");
        assert_eq!(
            event,
            Event::CallStatus {
                status: CallStatus::Other
            }
        );
        let err = dial_ended(
            &params("CallSid=CA1&DialCallStatus=no-answer&DialCallDuration=soon"),
            &Params::default(),
        )
        .expect_err("secs");
        assert_eq!(
            err.to_string(),
            "DialCallDuration: `soon` is not a number of seconds"
        );
        assert_eq!(
            Params::parse(b"a=\xff").expect_err("utf8"),
            BadRequest::NotUtf8
        );
    }

    #[test]
    fn numbers_are_parsed_leniently_and_extra_fields_ignored() {
        let (_, event) = dial_ended(
            &params("CallSid=CA1&DialCallStatus=completed&DialCallDuration=12.0&Unknown=1"),
            &params("round=2"),
        )
        .expect("valid");
        assert!(matches!(
            event,
            Event::DialEnded {
                round: Some(2),
                duration_secs: Some(12),
                ..
            }
        ));
    }
}
