//! Conference mode (a line's `mode = "conference"`, for Code of Conduct hotlines): the caller
//! waits in a conference room with hold audio while Switchboard calls the organizers through the
//! provider's REST API. An organizer whose phone answers is greeted by name and must press 1; the
//! first to press it joins the room (the conference starts, and is recorded from then on), the
//! caller hears who is joining, and the other organizers' calls are ended. Nobody accepting
//! within the line's ring time, or every organizer's call ending, moves the caller out of the
//! room to the voicemail flow; the caller hanging up ends every organizer's call.
//!
//! ```text
//!   Incoming ─▶ Conference { wave 0 called } ─ wave rang out / every leg ended ─▶ next wave,
//!                 │        ▲                                                    next round, or
//!                 │        └──────────────────────────────────────────────────  Voicemail
//!                 │ an organizer pressed 1 (host) ── joins (participant-join): talking
//!                 ▼
//!   caller's <Dial> ends (the conference ended) ─▶ WrapUp · caller hangs up ─▶ Ended
//! ```
//!
//! Everything here is pure, like the rest of the call core: what must be asked of the provider
//! (call an organizer, end a leg, announce, move the caller) comes out as [`Command`]s, which the
//! call service hands to a background worker.

use serde::{Deserialize, Serialize};

use crate::domain::{Agent, CallSid, Party};
use crate::time::{secs_between, Millis};

use super::event::{CallStatus, ScreenStep};
use super::fact::{FactKind, Ignored, MissReason};
use super::policy::{ExtraOrganizers, Policy, Snapshot};
use super::routing::{self, Mark};
use super::state::{Call, Intro, Outcome, Phase, Pickup, Reply, Targets};
use super::transition::{first_dial, Change};

/// How long an organizer who pressed 1 has to appear in the room before the caller is moved on
/// (their call into the conference failed, or its callbacks were lost).
pub const JOIN_GRACE_MS: u64 = 30_000;

/// At most this many organizers' calls are remembered per call (more are not placed).
pub const MAX_ORGANIZERS: usize = 64;

/// The participant label of the caller in the room (labels stand in for CallSids in the
/// provider's participant API, so the caller can be addressed before its CallSid there is known).
pub const CALLER_LABEL: &str = "caller";

/// The conference a conference-mode call waits in, and the organizers it calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Room {
    /// The conference's name: opaque (derived from the CallSid, never the caller's number).
    pub name: Box<str>,
    /// `ConferenceSid`, once a conference callback named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conference: Option<Box<str>>,
    /// Which round of the line's rounds is calling, and which wave of it.
    pub round: u8,
    pub wave: u8,
    /// This round's organizers, in the strategy's order (its waves are cut from it).
    pub targets: Targets,
    /// The wave being called.
    pub ringing: Targets,
    /// How long each wave's calls ring.
    pub ring_secs: u32,
    /// When the current step gives up: the wave rang out, or the accepted organizer never
    /// joined. `None` once an organizer is in the room.
    pub due: Option<Millis>,
    /// Every organizer called for this call, with their call's state.
    pub organizers: Vec<Organizer>,
    /// The first organizer who pressed 1: the call is theirs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<Pickup>,
    /// When the host appeared in the room (the conversation, and its recording, began).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub talking_since: Option<Millis>,
    /// The caller was told who is joining.
    #[serde(default)]
    pub announced: bool,
    /// Participants (labels) muted, or on hold, by an operator.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub muted: Vec<Box<str>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<Box<str>>,
    /// The room is being recorded (asked of the REST API); the recording's id once known.
    #[serde(default)]
    pub recording: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_sid: Option<Box<str>>,
}

/// A caller being moved out of the room to voicemail through the REST API: asked again (and,
/// from the second time, the room ended, whose Dial action also leads to voicemail) until their
/// call fetches its new document, at most [`MOVE_TRIES`] times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Moving {
    pub due: Millis,
    pub tries: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conference: Option<Box<str>>,
}

/// How many times a caller's move to voicemail is asked of the provider.
pub const MOVE_TRIES: u8 = 4;
/// How long a move may take before it is asked again.
pub const MOVE_WAIT_MS: u64 = 10_000;

/// The wave of the people an operator pulled into a room: not part of any round.
pub const INVITED: u8 = u8::MAX;

/// A live-control action on a conference-mode call (the admin API, the dashboard). `who` is a
/// participant label: `caller`, `organizer-<agent id>`.
#[derive(Debug, Clone, PartialEq)]
pub enum Control {
    Mute {
        who: Box<str>,
        on: bool,
    },
    /// On hold (hears the hold audio; the others do not hear them), or back.
    Hold {
        who: Box<str>,
        on: bool,
    },
    Remove {
        who: Box<str>,
    },
    /// Call someone (an agent, or a number) into the room: they are greeted and press 1.
    Add {
        agent: Agent,
    },
    Record {
        on: bool,
    },
}

impl Control {
    /// The action's name in the ledger, Slack and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Control::Mute { on: true, .. } => "mute",
            Control::Mute { on: false, .. } => "unmute",
            Control::Hold { on: true, .. } => "hold",
            Control::Hold { on: false, .. } => "resume",
            Control::Remove { .. } => "remove",
            Control::Add { .. } => "add",
            Control::Record { on: true } => "record_start",
            Control::Record { on: false } => "record_stop",
        }
    }
}

/// What an operator sees of a participant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Participant {
    pub label: String,
    pub name: String,
    /// `waiting` (the caller before anyone joined), `in_room`, `ringing`, `answered` (hearing
    /// the prompt), `joining` (pressed 1), `left`.
    pub state: &'static str,
    pub muted: bool,
    pub held: bool,
}

/// One organizer's call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Organizer {
    /// The agent's id (their presence is kept under it).
    pub id: Box<str>,
    pub name: Box<str>,
    /// Their call's CallSid, once the provider said it (API answer, status callback, document).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leg: Option<CallSid>,
    pub round: u8,
    pub wave: u8,
    pub state: OrganizerState,
}

/// Where an organizer's call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrganizerState {
    /// Placed; ringing (as far as we know).
    Calling,
    /// Their phone answered: they (or their voicemail) hear the greeting and the press-1 prompt.
    Answered,
    /// They pressed 1 and are being put in the room.
    Accepted,
    /// In the room.
    Joined,
    /// Left the room.
    Left,
    /// Pressed something else, or nothing: their call is hung up.
    Declined,
    /// Their call is over without them joining (rang out, busy, failed, hung up, ended by us).
    Ended,
}

impl OrganizerState {
    /// Their call may still be live and is not in the room: ending it is ours to do.
    fn pending(self) -> bool {
        matches!(self, OrganizerState::Calling | OrganizerState::Answered)
    }

    fn over(self) -> bool {
        matches!(
            self,
            OrganizerState::Left | OrganizerState::Declined | OrganizerState::Ended
        )
    }
}

/// What a conference status callback reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomChange {
    Join,
    Leave,
    Start,
    End,
    /// Anything else (`speaker`, `mute`, `hold`, `announcement-end`...): acknowledged, ignored.
    Other,
}

impl RoomChange {
    /// `StatusCallbackEvent` as either provider names it (`participant-join`, `conference-end`,
    /// Twilio's `join`...). Never fails.
    pub fn parse(s: &str) -> RoomChange {
        match s.trim().to_ascii_lowercase().as_str() {
            "participant-join" | "join" => RoomChange::Join,
            "participant-leave" | "leave" => RoomChange::Leave,
            "conference-start" | "start" => RoomChange::Start,
            "conference-end" | "end" => RoomChange::End,
            _ => RoomChange::Other,
        }
    }
}

/// Something the provider must be asked to do, through its REST API, for call `call`.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub call: CallSid,
    /// The provider's account of the call (Telnyx's REST paths name it).
    pub account: Option<Box<str>>,
    pub order: Order,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Order {
    /// Call an organizer; their call's document greets them and asks for 1. `from`: the number
    /// the caller called (the hotline's, which the account owns).
    Call {
        agent: Agent,
        /// Which of the room's records it is (the URLs name it, so each call placed is told
        /// apart from another to the same organizer).
        attempt: u8,
        from: Party,
        ring_secs: u32,
    },
    /// End an organizer's call (`answered`: it was answered, else it may still ring).
    Hangup { leg: CallSid, answered: bool },
    /// Tell the caller (the participant labelled [`CALLER_LABEL`]) that `agent` is joining.
    Announce {
        conference: Box<str>,
        agent: Box<str>,
    },
    /// Move the caller out of the room to the voicemail document.
    ToVoicemail,
    /// End conference `conference` (everyone leaves it; the caller's Dial action follows).
    EndRoom { conference: Box<str> },
    /// Mute or unmute, hold or resume participant `who` (a label).
    Participant {
        conference: Box<str>,
        who: Box<str>,
        change: ParticipantChange,
    },
    /// Take participant `who` out of the room (their call ends).
    Remove { conference: Box<str>, who: Box<str> },
    /// Start recording the caller's call (the room as they hear it), or stop recording
    /// `recording` (`None`: the provider's current one).
    Record {
        on: bool,
        recording: Option<Box<str>>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParticipantChange {
    Muted(bool),
    Held(bool),
}

impl Order {
    /// The order's name in logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Order::Call { .. } => "call",
            Order::Hangup { .. } => "hangup",
            Order::Announce { .. } => "announce",
            Order::ToVoicemail => "to_voicemail",
            Order::EndRoom { .. } => "end_room",
            Order::Participant {
                change: ParticipantChange::Muted(_),
                ..
            } => "mute",
            Order::Participant {
                change: ParticipantChange::Held(_),
                ..
            } => "hold",
            Order::Remove { .. } => "remove",
            Order::Record { on: true, .. } => "record_start",
            Order::Record { on: false, .. } => "record_stop",
        }
    }
}

/// The conference name of call `sid`: a digest of it, so the name is the same whichever replica
/// or repeated request computes it, and says nothing about the caller.
pub fn room_name(sid: &CallSid) -> Box<str> {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(sid.as_str().as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("hotline-{hex}").into()
}

impl Room {
    /// Organizer `id`'s latest call (an organizer is called again in a later round).
    fn organizer(&self, id: &str) -> Option<&Organizer> {
        self.organizers.iter().rev().find(|o| &*o.id == id)
    }

    fn organizer_mut(&mut self, id: &str) -> Option<&mut Organizer> {
        self.organizers.iter_mut().rev().find(|o| &*o.id == id)
    }

    /// The record of organizer `id`'s call that a request is about: the attempt its URL names
    /// (each call placed has its own), else the one with CallSid `leg`, else their latest whose
    /// CallSid is not known yet, else their latest.
    fn find(&self, id: &str, attempt: Option<u8>, leg: &CallSid) -> Option<usize> {
        let mine = |o: &Organizer| &*o.id == id;
        if let Some(i) = attempt.map(usize::from) {
            return self.organizers.get(i).filter(|o| mine(o)).map(|_| i);
        }
        self.organizers
            .iter()
            .rposition(|o| mine(o) && o.leg.as_ref() == Some(leg))
            .or_else(|| {
                self.organizers
                    .iter()
                    .rposition(|o| mine(o) && o.leg.is_none())
            })
            .or_else(|| self.organizers.iter().rposition(mine))
    }

    /// The host's record.
    fn is_host(&self, i: usize) -> bool {
        let o = &self.organizers[i];
        self.host.as_ref().is_some_and(|h| {
            h.agent_id.as_deref() == Some(&*o.id) && o.leg.is_some() && h.leg == o.leg
        })
    }

    /// The ends of the conversations of those who joined besides the host (a second organizer,
    /// someone pulled in) and have not left, when the room is over: their presence is freed.
    fn release_guests(&self, call: &Call, now: Millis, wrap_up_secs: u32) -> Vec<Mark> {
        let host = self.host.as_ref().and_then(|h| h.leg.clone());
        self.organizers
            .iter()
            .filter(|o| {
                matches!(o.state, OrganizerState::Accepted | OrganizerState::Joined)
                    && !(o.leg.is_some() && o.leg == host)
            })
            .filter_map(|o| guest_release(o, call, now, wrap_up_secs))
            .collect()
    }

    /// Calls every organizer of `wave` (those not already called in this round and wave).
    fn call_wave(&mut self, call: &Call, wave: &Targets, now: Millis, out: &mut Vec<Command>) {
        for agent in wave.iter() {
            if self.organizers.len() >= MAX_ORGANIZERS {
                tracing::warn!(call_sid = %call.sid, "conference: too many organizers called; not calling more");
                break;
            }
            let already = self
                .organizers
                .iter()
                .any(|o| o.id == agent.id && (o.round, o.wave) == (self.round, self.wave));
            if already {
                continue;
            }
            out.push(self.place(call, agent, self.wave, self.ring_secs));
        }
        self.ringing = wave.clone();
        self.due = Some(now.saturating_add(u64::from(self.ring_secs) * 1000 + 5_000));
    }

    /// A new record of a call to `agent` (in wave `wave` of this round), and the order to place
    /// it, ringing `ring_secs`: the record's index is the attempt its URLs name.
    fn place(&mut self, call: &Call, agent: &Agent, wave: u8, ring_secs: u32) -> Command {
        let attempt = u8::try_from(self.organizers.len()).unwrap_or(u8::MAX);
        self.organizers.push(Organizer {
            id: agent.id.clone(),
            name: agent.name.clone(),
            leg: None,
            round: self.round,
            wave,
            state: OrganizerState::Calling,
        });
        let order = Order::Call {
            agent: agent.clone(),
            attempt,
            from: call.to.clone(),
            ring_secs,
        };
        command(call, order)
    }

    /// Ends every organizer's call that is still ringing or hearing the prompt (`but`: except
    /// this organizer's).
    fn hang_up_pending(&mut self, call: &Call, but: Option<&str>, out: &mut Vec<Command>) {
        for o in &mut self.organizers {
            if !o.state.pending() || but == Some(&*o.id) {
                continue;
            }
            let answered = o.state == OrganizerState::Answered;
            // Answered ones hear the prompt: they learn they are too late if they press 1; a
            // ringing one is ended now.
            if answered && but.is_some() {
                continue;
            }
            o.state = OrganizerState::Ended;
            if let Some(leg) = &o.leg {
                let answered_leg = Order::Hangup {
                    leg: leg.clone(),
                    answered,
                };
                out.push(command(call, answered_leg));
            }
        }
    }
}

impl Call {
    /// When the conference call needs a look even if nothing is reported: its wave rang out,
    /// its accepted organizer was not reported in the room, or its move to voicemail was not
    /// followed yet.
    pub fn conference_due(&self) -> Option<Millis> {
        match &self.phase {
            Phase::Conference(room) => room.due,
            Phase::Voicemail {
                recorded: false, ..
            } => self.moving.as_ref().map(|m| m.due),
            _ => None,
        }
    }
}

/// The caller of `call` is moved to voicemail now (`next` is already on it).
fn move_out(call: &Call, room: &Room, next: &mut Call, now: Millis, out: &mut Vec<Command>) {
    out.push(command(call, Order::ToVoicemail));
    next.moving = Some(Moving {
        due: now.saturating_add(MOVE_WAIT_MS),
        tries: 1,
        conference: room.conference.clone(),
    });
}

/// The caller's move to voicemail was not followed in time: asked again, and the room ended
/// (its Dial action leads to voicemail too); given up after [`MOVE_TRIES`].
pub(super) fn move_again(call: &Call, now: Millis) -> Change {
    let Some(moving) = call.moving.as_ref().filter(|m| m.due <= now) else {
        return Change::ignored(Ignored::Stale);
    };
    let mut next = call.clone();
    let mut commands = Vec::new();
    if moving.tries >= MOVE_TRIES {
        tracing::error!(call_sid = %call.sid, tries = moving.tries, "conference: the caller could not be moved to voicemail");
        next.moving = None;
        return Change::to(next, Vec::new());
    }
    tracing::warn!(call_sid = %call.sid, tries = moving.tries, "conference: the caller's move to voicemail not followed yet; asking again");
    commands.push(command(call, Order::ToVoicemail));
    if let Some(conference) = moving.conference.clone() {
        commands.push(command(call, Order::EndRoom { conference }));
    }
    next.moving = Some(Moving {
        due: now.saturating_add(MOVE_WAIT_MS),
        tries: moving.tries + 1,
        conference: moving.conference.clone(),
    });
    let mut change = Change::to(next, Vec::new());
    change.commands = commands;
    change
}

/// Seats a call that was just put on `Dialing` on a conference-mode line in its room instead:
/// the same organizers (free now, in the strategy's order), called through the REST API in
/// waves. `before` is the call before the step (its room, if it had one, is kept).
pub(super) fn seat(
    before: Option<&Call>,
    next: &mut Call,
    now: Millis,
    policy: &Policy,
    out: &mut Vec<Command>,
) {
    if policy.conference_of(&next.line).is_none() {
        return;
    }
    let Phase::Dialing {
        round,
        targets,
        pickup: None,
        ..
    } = &next.phase
    else {
        return;
    };
    let (round, targets) = (*round, targets.clone());
    let kept = before.and_then(|c| match &c.phase {
        Phase::Conference(room) => Some(room.as_ref().clone()),
        _ => None,
    });
    let waves = policy.conference_waves(&next.line, next.after_hours, &targets);
    let ring_secs = policy.wave_secs(&next.line, next.after_hours, waves.len());
    let Some(first) = waves.into_iter().next() else {
        return;
    };
    let mut room = kept.unwrap_or_else(|| Room {
        name: room_name(&next.sid),
        conference: None,
        round,
        wave: 0,
        targets: targets.clone(),
        ringing: first.clone(),
        ring_secs,
        due: None,
        organizers: Vec::new(),
        host: None,
        talking_since: None,
        announced: false,
        muted: Vec::new(),
        held: Vec::new(),
        recording: false,
        recording_sid: None,
    });
    room.round = round;
    room.wave = 0;
    room.targets = targets;
    room.ring_secs = ring_secs;
    room.call_wave(next, &first, now, out);
    next.phase = Phase::Conference(Box::new(room));
}

/// The room's next wave, the line's next round, or voicemail: the current wave is over (rang
/// out, or every call of it ended) and nobody accepted.
fn advance(
    call: &Call,
    mut room: Room,
    now: Millis,
    policy: &Policy,
    snapshot: &Snapshot,
) -> Change {
    let mut commands = Vec::new();
    let mut next = call.clone();
    let mut facts = Vec::new();
    // Whatever of this wave still rings is given up.
    room.hang_up_pending(call, None, &mut commands);
    let forward = call.after_hours;
    let waves = policy.conference_waves(&call.line, forward, &room.targets);
    let later = waves
        .iter()
        .enumerate()
        .skip(usize::from(room.wave) + 1)
        .find_map(|(i, wave)| {
            let free = match forward {
                true => wave.to_vec(),
                false => routing::free(wave, &snapshot.presence, now),
            };
            Targets::new(free.into()).map(|t| (i, t))
        });
    if let Some((i, wave)) = later {
        room.wave = u8::try_from(i).unwrap_or(u8::MAX);
        room.call_wave(call, &wave, now, &mut commands);
        next.phase = Phase::Conference(Box::new(room));
        let mut change = Change::to(next, facts);
        change.commands = commands;
        return change;
    }
    // The line's next round: who is free now, in the strategy's order (as a `<Dial>` round).
    let round = (room.round < policy.rounds && !forward)
        .then_some(snapshot.available.as_ref())
        .flatten()
        .and_then(|available| {
            let line = &call.line;
            first_dial(
                &call.sid,
                line,
                room.round + 1,
                available,
                policy,
                snapshot,
                now,
            )
        });
    if let Some(Phase::Dialing { targets, .. }) = round {
        let waves = policy.conference_waves(&call.line, false, &targets);
        if let Some(first) = waves.first() {
            room.round += 1;
            room.wave = 0;
            room.ring_secs = policy.wave_secs(&call.line, false, waves.len());
            room.targets = targets;
            room.call_wave(call, first, now, &mut commands);
            next.phase = Phase::Conference(Box::new(room));
            let mut change = Change::to(next, facts);
            change.commands = commands;
            return change;
        }
    }
    next.send_to_voicemail(Intro::PromptOnly, MissReason::NoAnswer, &mut facts);
    move_out(call, &room, &mut next, now, &mut commands);
    let mut change = Change::to(next, facts);
    change.commands = commands;
    change
}

/// The timer: the wave rang out (its calls' own timeouts usually said so first), or the
/// organizer who accepted was not reported in the room.
pub(super) fn timer(
    call: &Call,
    room: &Room,
    now: Millis,
    policy: &Policy,
    snapshot: &Snapshot,
) -> Change {
    if room.due.is_none_or(|due| due > now) {
        return Change::ignored(Ignored::Stale);
    }
    let mut room = room.clone();
    if let Some(host) = &room.host {
        // Pressed 1, their call still up, but no join reported (the room's callback lost or
        // late): they are taken to be in the room, rather than pulling the caller out of a
        // conversation. (Had their call ended, the host would have been given up already.)
        tracing::warn!(call_sid = %call.sid, "conference: no join reported for the organizer who accepted; taking them to be in the room");
        let agent = host.agent_id.clone().unwrap_or_default();
        let mut commands = Vec::new();
        room.talking_since = Some(host.at);
        room.due = None;
        started(call, &mut room, &agent, policy, &mut commands);
        let mut next = call.clone();
        next.phase = Phase::Conference(Box::new(room));
        let mut change = Change::to(next, Vec::new());
        change.commands = commands;
        return change;
    }
    advance(call, room, now, policy, snapshot)
}

/// The host is in the room: the recording starts and the caller is told who joined (each once).
fn started(call: &Call, room: &mut Room, agent: &str, policy: &Policy, out: &mut Vec<Command>) {
    let rules = policy.conference_of(&call.line);
    if rules.is_some_and(|c| c.record) && !room.recording && room.recording_sid.is_none() {
        room.recording = true;
        let order = Order::Record {
            on: true,
            recording: None,
        };
        out.push(command(call, order));
    }
    if rules.is_some_and(|c| c.announce) && !room.announced {
        if let Some(conference) = room.conference.clone() {
            room.announced = true;
            let order = Order::Announce {
                conference,
                agent: agent.into(),
            };
            out.push(command(call, order));
        }
    }
}

/// An organizer's call (`leg`, attempt `attempt`): its document (`Start`, their phone answered)
/// or the key they pressed.
pub(super) fn organizer(
    call: &Call,
    agent: &str,
    attempt: Option<u8>,
    leg: &CallSid,
    step: &ScreenStep,
    now: Millis,
    policy: &Policy,
) -> Change {
    let Phase::Conference(room) = &call.phase else {
        // Voicemail, over, or never a conference: this organizer is too late.
        return Change::answer(Reply::CallerGone);
    };
    let Some(i) = room.find(agent, attempt, leg) else {
        return Change::answer(Reply::Decline);
    };
    let organizer = &room.organizers[i];
    if organizer.leg.as_ref().is_some_and(|known| known != leg) {
        // A second call to the same organizer for one attempt (a request to place it repeated):
        // hung up.
        return Change::answer(Reply::Decline);
    }
    let extra = policy
        .conference_of(&call.line)
        .map_or(ExtraOrganizers::Hangup, |c| c.extra_organizers);
    let is_host = room.is_host(i)
        && room
            .host
            .as_ref()
            .is_some_and(|h| h.leg.as_ref() == Some(leg));
    let invited = organizer.wave == INVITED;
    let joinable = room.host.is_none() || extra == ExtraOrganizers::Join || is_host || invited;
    let mut next_room = room.as_ref().clone();
    next_room.organizers[i]
        .leg
        .get_or_insert_with(|| leg.clone());
    match step {
        ScreenStep::Start => {
            if is_host {
                return Change::answer(join_reply(call, room, agent, true));
            }
            if !joinable {
                return Change::answer(Reply::TooLate);
            }
            if organizer.state.over() {
                return Change::answer(Reply::CallerGone);
            }
            let mut next = call.clone();
            let o = &mut next_room.organizers[i];
            if o.state == OrganizerState::Calling {
                o.state = OrganizerState::Answered;
            }
            next.phase = Phase::Conference(Box::new(next_room));
            let mut change = Change::to(next, Vec::new());
            change.reply = Some(Reply::Organizer {
                call: call.sid.clone(),
                agent: organizer.id.clone(),
                name: organizer.name.clone(),
            });
            change
        }
        ScreenStep::Pressed(digits) => {
            let pressed = digits.as_deref().map(str::trim);
            if is_host || (organizer.state == OrganizerState::Accepted && pressed == Some("1")) {
                // A repeated key press: the same document.
                return Change::answer(join_reply(call, room, agent, is_host));
            }
            if pressed != Some("1") {
                let mut next = call.clone();
                let o = &mut next_room.organizers[i];
                if o.state.pending() {
                    o.state = OrganizerState::Declined;
                }
                next.phase = Phase::Conference(Box::new(next_room));
                let mut change = Change::to(next, Vec::new());
                change.reply = Some(Reply::Decline);
                return change;
            }
            if !joinable {
                return Change::answer(Reply::TooLate);
            }
            if organizer.state.over() {
                return Change::answer(Reply::CallerGone);
            }
            let mut next = call.clone();
            let mut facts = Vec::new();
            let mut commands = Vec::new();
            let routing = policy.routing_of(&call.line);
            let wrap_up_secs = room
                .targets
                .iter()
                .find(|a| &*a.id == agent)
                .map_or(routing.wrap_up_secs, |a| routing.wrap_up_of(a));
            let taken = Pickup {
                agent: Some(organizer.name.clone()),
                at: now,
                leg: Some(leg.clone()),
                agent_id: Some(organizer.id.clone()),
                wrap_up_secs,
            };
            // A number pulled in is not an agent: it has no presence to mark.
            let marks = match invited && organizer.id.starts_with("guest-") {
                true => Vec::new(),
                false => call.taken(&taken, policy),
            };
            next_room.organizers[i].state = OrganizerState::Accepted;
            let host = next_room.host.is_none();
            if host {
                next_room.host = Some(taken);
                next_room.due = Some(now.saturating_add(JOIN_GRACE_MS));
                if extra == ExtraOrganizers::Hangup {
                    next_room.hang_up_pending(call, Some(agent), &mut commands);
                }
                let fact = FactKind::Answered {
                    agent: Some(organizer.name.clone()),
                    after_secs: secs_between(call.started_at, now),
                };
                next.emit(&mut facts, fact);
            }
            let reply = join_reply(call, &next_room, agent, host);
            next.phase = Phase::Conference(Box::new(next_room));
            let mut change = Change::to(next, facts).marking(marks);
            change.reply = Some(reply);
            change.commands = commands;
            change
        }
    }
}

fn join_reply(call: &Call, room: &Room, agent: &str, host: bool) -> Reply {
    Reply::JoinRoom {
        call: call.sid.clone(),
        room: room.name.clone(),
        agent: agent.into(),
        host,
    }
}

/// Who call `leg` is in the room, by the label we gave them: the caller, or an organizer whose
/// call it is (for conference callbacks that carry no label).
pub(super) fn label_of_leg(call: &Call, leg: &CallSid) -> Option<String> {
    if *leg == call.sid {
        return Some(CALLER_LABEL.to_owned());
    }
    match &call.phase {
        Phase::Conference(room) => room
            .organizers
            .iter()
            .find(|o| o.leg.as_ref() == Some(leg))
            .map(|o| organizer_label(&o.id)),
        _ => None,
    }
}

/// The participant label of organizer `agent` in the room.
pub fn organizer_label(agent: &str) -> String {
    format!("organizer-{agent}")
}

/// A status callback of an organizer's call (`leg`, attempt `attempt`).
#[allow(clippy::too_many_arguments)]
pub(super) fn organizer_status(
    call: &Call,
    agent: &str,
    attempt: Option<u8>,
    leg: &CallSid,
    status: CallStatus,
    now: Millis,
    policy: &Policy,
    snapshot: &Snapshot,
) -> Change {
    // Ending this call, when it is still up.
    let hang_up = || {
        let order = Order::Hangup {
            leg: leg.clone(),
            answered: status == CallStatus::InProgress,
        };
        (!status.is_final() && status != CallStatus::Other).then(|| command(call, order))
    };
    let Phase::Conference(room) = &call.phase else {
        // The caller is no longer waiting: a call that still rings is ended.
        let mut change = Change::ignored(Ignored::Stale);
        change.commands.extend(hang_up());
        return change;
    };
    let mut next_room = room.as_ref().clone();
    let Some(i) = next_room.find(agent, attempt, leg) else {
        return Change::ignored(Ignored::Stale);
    };
    let is_host = next_room.is_host(i);
    let o = &mut next_room.organizers[i];
    let mut commands = Vec::new();
    let newly = match &o.leg {
        Some(known) if known != leg => {
            // A second call to the same organizer for one attempt: ended, not counted.
            let mut change = Change::ignored(Ignored::Duplicate);
            change.commands.extend(hang_up());
            return change;
        }
        Some(_) => false,
        None => {
            o.leg = Some(leg.clone());
            true
        }
    };
    let state = o.state;
    if newly && state.over() {
        // Given up (or declined) before its CallSid was known: ended now that it is.
        commands.extend(hang_up());
    }
    let new_state = match status {
        s if s.is_final() => match state {
            OrganizerState::Joined | OrganizerState::Left => OrganizerState::Left,
            _ => OrganizerState::Ended,
        },
        CallStatus::InProgress if state == OrganizerState::Calling => OrganizerState::Answered,
        _ => state,
    };
    if !newly && new_state == state {
        return Change::ignored(Ignored::Duplicate);
    }
    o.state = new_state;
    let mut marks = Vec::new();
    if status.is_final() && is_host && next_room.talking_since.is_none() {
        // The organizer who accepted hung up before joining: keep calling the others.
        if let Some(host) = next_room.host.take() {
            let mut next = call.clone();
            marks = next.release(&host, now);
        }
    }
    let mut change = wave_check(call, next_room, now, policy, snapshot).marking(marks);
    commands.append(&mut change.commands);
    change.commands = commands;
    change
}

/// The REST API answered the call to an organizer (attempt `attempt`): placed, with its CallSid
/// (`Some`), or could not place it (`None`: it counts as a call that ended).
pub(super) fn organizer_placed(
    call: &Call,
    agent: &str,
    attempt: Option<u8>,
    leg: Option<&CallSid>,
    now: Millis,
    policy: &Policy,
    snapshot: &Snapshot,
) -> Change {
    match leg {
        // Like its first status callback ("queued").
        Some(leg) => organizer_status(
            call,
            agent,
            attempt,
            leg,
            CallStatus::Queued,
            now,
            policy,
            snapshot,
        ),
        None => {
            let Phase::Conference(room) = &call.phase else {
                return Change::ignored(Ignored::Stale);
            };
            let mut next_room = room.as_ref().clone();
            let i = match attempt.map(usize::from) {
                Some(i) if next_room.organizers.get(i).is_some_and(|o| &*o.id == agent) => i,
                _ => match next_room.organizers.iter().rposition(|o| &*o.id == agent) {
                    Some(i) => i,
                    None => return Change::ignored(Ignored::Stale),
                },
            };
            let o = &mut next_room.organizers[i];
            if o.state.over() {
                return Change::ignored(Ignored::Duplicate);
            }
            o.state = OrganizerState::Ended;
            wave_check(call, next_room, now, policy, snapshot)
        }
    }
}

/// After an organizer's call changed: the next wave when every call of this one is over and
/// nobody accepted, else the room as it is now.
fn wave_check(
    call: &Call,
    room: Room,
    now: Millis,
    policy: &Policy,
    snapshot: &Snapshot,
) -> Change {
    let wave_over = room.host.is_none()
        && room
            .organizers
            .iter()
            .filter(|o| (o.round, o.wave) == (room.round, room.wave))
            .all(|o| o.state.over());
    if wave_over {
        return advance(call, room, now, policy, snapshot);
    }
    let mut next = call.clone();
    next.phase = Phase::Conference(Box::new(room));
    Change::to(next, Vec::new())
}

/// The end of a guest's conversation (not the host's: the host is released with the call), unless
/// they are not an agent (a number pulled in has no presence).
fn guest_release(o: &Organizer, call: &Call, now: Millis, wrap_up_secs: u32) -> Option<Mark> {
    (o.wave != INVITED || !o.id.starts_with("guest-")).then(|| Mark::Ended {
        agent: o.id.clone(),
        call: call.sid.clone(),
        at: now,
        wrap_up_secs,
    })
}

/// A command about `call`, in its provider account.
fn command(call: &Call, order: Order) -> Command {
    Command {
        call: call.sid.clone(),
        account: call.account.clone(),
        order,
    }
}

/// A conference status callback: who joined or left the room.
pub(super) fn room_changed(
    call: &Call,
    change: RoomChange,
    conference: &str,
    label: Option<&str>,
    now: Millis,
    policy: &Policy,
) -> Change {
    let Phase::Conference(room) = &call.phase else {
        return Change::ignored(Ignored::Stale);
    };
    let mut next_room = room.as_ref().clone();
    let mut commands = Vec::new();
    let mut marks = Vec::new();
    let mut changed = false;
    if next_room.conference.is_none() && !conference.is_empty() {
        next_room.conference = Some(conference.into());
        changed = true;
    }
    let organizer = label.and_then(|l| l.strip_prefix("organizer-"));
    match (change, organizer) {
        (RoomChange::Join, Some(id)) => {
            if let Some(o) = next_room.organizer_mut(id) {
                if o.state != OrganizerState::Joined {
                    o.state = OrganizerState::Joined;
                    changed = true;
                }
            }
            let is_host = next_room
                .host
                .as_ref()
                .is_some_and(|h| h.agent_id.as_deref() == Some(id));
            if is_host && next_room.talking_since.is_none() {
                next_room.talking_since = Some(now);
                next_room.due = None;
                changed = true;
            }
            if is_host {
                started(call, &mut next_room, id, policy, &mut commands);
            }
        }
        (RoomChange::Leave, Some(id)) => {
            let host = next_room.host.as_ref().and_then(|h| h.agent_id.clone());
            let wrap_up_secs = policy.routing_of(&call.line).wrap_up_secs;
            if let Some(o) = next_room.organizer_mut(id) {
                if matches!(o.state, OrganizerState::Joined | OrganizerState::Accepted) {
                    o.state = OrganizerState::Left;
                    changed = true;
                    // A guest's conversation is over (the host's ends with the room).
                    if host.as_deref() != Some(id) {
                        marks.extend(guest_release(o, call, now, wrap_up_secs));
                    }
                }
            }
        }
        _ => {}
    }
    if !changed {
        return Change::ignored(Ignored::Duplicate);
    }
    let mut next = call.clone();
    next.phase = Phase::Conference(Box::new(next_room));
    let mut change = Change::to(next, Vec::new()).marking(marks);
    change.commands = commands;
    change
}

/// The caller's `<Dial>` into the room ended: the conference is over for them (the host left,
/// or the room ended before anyone joined).
pub(super) fn room_left(call: &Call, now: Millis, policy: &Policy) -> Change {
    let Phase::Conference(room) = &call.phase else {
        // Moved to voicemail (or over): the call keeps its document.
        return Change::ignored(Ignored::Stale);
    };
    let mut room = room.as_ref().clone();
    let mut next = call.clone();
    let mut facts = Vec::new();
    let mut commands = Vec::new();
    room.hang_up_pending(call, None, &mut commands);
    let wrap_up_secs = policy.routing_of(&call.line).wrap_up_secs;
    let guests = room.release_guests(call, now, wrap_up_secs);
    match (room.host.clone(), room.talking_since) {
        (Some(host), Some(since)) => {
            let mut marks = next.release(&host, now);
            marks.extend(guests);
            next.phase = Phase::WrapUp {
                pickup: host,
                talk_secs: u32::try_from(secs_between(since, now)).ok(),
            };
            let mut change = Change::to(next, facts).marking(marks);
            change.commands = commands;
            change
        }
        (host, _) => {
            let mut marks = match &host {
                Some(host) => next.release(host, now),
                None => Vec::new(),
            };
            marks.extend(guests);
            next.send_to_voicemail(Intro::PromptOnly, MissReason::NoAnswer, &mut facts);
            let mut change = Change::to(next, facts).marking(marks);
            change.commands = commands;
            change
        }
    }
}

/// The caller hung up while in the room: every organizer's call that is not in the room ends.
pub(super) fn caller_gone(call: &Call, room: &Room, now: Millis, policy: &Policy) -> Change {
    let mut room = room.clone();
    let mut commands = Vec::new();
    room.hang_up_pending(call, None, &mut commands);
    let wrap_up_secs = policy.routing_of(&call.line).wrap_up_secs;
    let guests = room.release_guests(call, now, wrap_up_secs);
    // Accepted organizers are on their way in; their calls end too.
    for o in &mut room.organizers {
        if o.state == OrganizerState::Accepted {
            o.state = OrganizerState::Ended;
            if let Some(leg) = &o.leg {
                commands.push(command(
                    call,
                    Order::Hangup {
                        leg: leg.clone(),
                        answered: true,
                    },
                ));
            }
        }
    }
    let mut next = call.clone();
    let mut facts = Vec::new();
    let (outcome, marks) = match (&room.host, room.talking_since) {
        (Some(host), Some(since)) => (
            Outcome::Answered {
                agent: host.agent.clone(),
                talk_secs: secs_between(since, now),
            },
            next.release(host, now),
        ),
        (host, _) => (
            Outcome::Abandoned {
                waited_secs: secs_between(call.started_at, now),
            },
            host.as_ref()
                .map_or_else(Vec::new, |h| next.release(h, now)),
        ),
    };
    next.end(outcome, true, now, &mut facts);
    let mut marks = marks;
    marks.extend(guests);
    let mut change = Change::to(next, facts).marking(marks);
    change.commands = commands;
    change
}

/// An operator's action on the room of `call`.
pub(super) fn control(call: &Call, control: &Control, by: &str, policy: &Policy) -> Change {
    let Phase::Conference(room) = &call.phase else {
        return Change::ignored(Ignored::Stale);
    };
    let mut room = room.as_ref().clone();
    let mut commands = Vec::new();
    let who_name = |room: &Room, who: &str| -> Option<Box<str>> {
        if who == CALLER_LABEL {
            return Some("the caller".into());
        }
        let id = who.strip_prefix("organizer-")?;
        room.organizer(id)
            .filter(|o| matches!(o.state, OrganizerState::Joined | OrganizerState::Accepted))
            .map(|o| o.name.clone())
    };
    let who = match control {
        Control::Mute { who, on } | Control::Hold { who, on } => {
            let Some(name) = who_name(&room, who) else {
                return Change::ignored(Ignored::NoParticipant);
            };
            let Some(conference) = room.conference.clone() else {
                return Change::ignored(Ignored::Stale);
            };
            let (list, change) = match control {
                Control::Mute { .. } => (&mut room.muted, ParticipantChange::Muted(*on)),
                _ => (&mut room.held, ParticipantChange::Held(*on)),
            };
            let was = list.iter().any(|l| l == who);
            if was == *on {
                return Change::ignored(Ignored::Duplicate);
            }
            match on {
                true => list.push(who.clone()),
                false => list.retain(|l| l != who),
            }
            let order = Order::Participant {
                conference,
                who: who.clone(),
                change,
            };
            commands.push(command(call, order));
            name
        }
        Control::Remove { who } => {
            let Some(name) = who_name(&room, who) else {
                return Change::ignored(Ignored::NoParticipant);
            };
            let Some(conference) = room.conference.clone() else {
                return Change::ignored(Ignored::Stale);
            };
            let order = Order::Remove {
                conference,
                who: who.clone(),
            };
            commands.push(command(call, order));
            name
        }
        Control::Add { agent } => {
            if room.organizers.len() >= MAX_ORGANIZERS {
                return Change::ignored(Ignored::TooManyLegs);
            }
            let busy = room
                .organizers
                .iter()
                .any(|o| o.id == agent.id && !o.state.over());
            if busy {
                return Change::ignored(Ignored::Duplicate);
            }
            commands.push(room.place(call, agent, INVITED, policy.ring_secs));
            agent.name.clone()
        }
        Control::Record { on } => {
            if room.recording == *on {
                return Change::ignored(Ignored::Duplicate);
            }
            room.recording = *on;
            let recording = match on {
                true => None,
                false => room.recording_sid.take(),
            };
            commands.push(command(call, Order::Record { on: *on, recording }));
            "the room".into()
        }
    };
    let mut next = call.clone();
    next.phase = Phase::Conference(Box::new(room));
    let fact = super::fact::Fact {
        from: call.from.clone(),
        to: call.to.clone(),
        line: call.line.clone(),
        kind: FactKind::Controlled {
            action: control.label(),
            who,
            by: by.into(),
        },
    };
    let mut change = Change::to(next, vec![fact]);
    change.commands = commands;
    change
}

/// What the REST API said about starting (`start`) or stopping the room's recording: done
/// (`ok`; a start's id when its answer said it) or failed (a failed start is off; a failed stop is
/// still on, and both are said).
pub(super) fn recording_result(call: &Call, start: bool, ok: bool, sid: Option<&str>) -> Change {
    let stop_it = |sid: Option<&str>| {
        let mut change = Change::ignored(Ignored::Stale);
        if let Some(sid) = sid {
            let order = Order::Record {
                on: false,
                recording: Some(sid.into()),
            };
            change.commands.push(command(call, order));
        }
        change
    };
    let Phase::Conference(room) = &call.phase else {
        // The call left its room: a recording just started is stopped.
        return match (start, ok) {
            (true, true) => stop_it(sid),
            _ => Change::ignored(Ignored::Stale),
        };
    };
    let mut room = room.as_ref().clone();
    let mut facts = Vec::new();
    match (start, ok, room.recording) {
        // Started, as asked: its id, for stopping it.
        (true, true, true) => match sid {
            Some(sid) if room.recording_sid.as_deref() != Some(sid) => {
                room.recording_sid = Some(sid.into());
            }
            _ => return Change::ignored(Ignored::Duplicate),
        },
        // Started, but stopped meanwhile: stopped too.
        (true, true, false) => return stop_it(sid),
        (true, false, true) => {
            room.recording = false;
            room.recording_sid = None;
            facts.push(provider_said(call, "record_start_failed"));
        }
        (false, false, _) => {
            room.recording = true;
            room.recording_sid = sid.map(Box::from);
            facts.push(provider_said(call, "record_stop_failed"));
        }
        _ => return Change::ignored(Ignored::Duplicate),
    }
    let mut next = call.clone();
    next.phase = Phase::Conference(Box::new(room));
    Change::to(next, facts)
}

/// A fact that the provider failed an operator's recording action.
fn provider_said(call: &Call, action: &'static str) -> super::fact::Fact {
    super::fact::Fact {
        from: call.from.clone(),
        to: call.to.clone(),
        line: call.line.clone(),
        kind: FactKind::Controlled {
            action,
            who: "the room".into(),
            by: "the provider".into(),
        },
    }
}

/// Who is in (or on the way into) the room of `call`, for an operator. `None`: not a
/// conference-mode call in its room.
pub fn participants(call: &Call) -> Option<Vec<Participant>> {
    let Phase::Conference(room) = &call.phase else {
        return None;
    };
    let flags = |label: &str| {
        (
            room.muted.iter().any(|l| &**l == label),
            room.held.iter().any(|l| &**l == label),
        )
    };
    let (muted, held) = flags(CALLER_LABEL);
    let mut list = vec![Participant {
        label: CALLER_LABEL.to_owned(),
        name: "the caller".to_owned(),
        state: match room.talking_since {
            Some(_) => "in_room",
            None => "waiting",
        },
        muted,
        held,
    }];
    for o in &room.organizers {
        let state = match o.state {
            OrganizerState::Calling => "ringing",
            OrganizerState::Answered => "answered",
            OrganizerState::Accepted => "joining",
            OrganizerState::Joined => "in_room",
            OrganizerState::Left => "left",
            OrganizerState::Declined | OrganizerState::Ended => continue,
        };
        let label = organizer_label(&o.id);
        let (muted, held) = flags(&label);
        list.retain(|p| p.label != label);
        list.push(Participant {
            label,
            name: o.name.to_string(),
            state,
            muted,
            held,
        });
    }
    Some(list)
}

/// The name the announcement says for `agent` (`None`: not an organizer of this call).
pub(super) fn announced_name(call: &Call, agent: &str) -> Option<Box<str>> {
    match &call.phase {
        Phase::Conference(room) => room.organizer(agent).map(|o| o.name.clone()),
        Phase::WrapUp { pickup, .. } if pickup.agent_id.as_deref() == Some(agent) => {
            pickup.agent.clone()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::event::Event;
    use crate::call::policy::{AfterHours, ConferenceRules, LinePolicy};
    use crate::call::routing::Strategy;
    use crate::call::state::Lead;
    use crate::call::testing::{agents, incoming, party, sid, snapshot, CALLER, LINE};
    use crate::call::transition::transition;
    use crate::domain::{Agent, Endpoint, LineId};

    const CALL: &str = "CA1";

    /// Ada, Bob and Cleo, all on numbers.
    fn three() -> Targets {
        let a = |name: &str, n: &str| Agent::new(name, Endpoint::number(n).expect("n")).expect("a");
        Targets::new(
            vec![
                a("Ada", "+12025550101"),
                a("Bob", "+12025550102"),
                a("Cleo", "+12025550103"),
            ]
            .into(),
        )
        .expect("three")
    }

    fn policy(extra: ExtraOrganizers, strategy: Strategy) -> Policy {
        Policy::default().with_lines(vec![LinePolicy {
            id: LineId::new("coc"),
            numbers: vec![crate::call::policy::called(LINE)],
            schedule: None,
            after_hours: AfterHours::Voicemail,
            menu: None,
            routing: crate::call::routing::Routing {
                strategy,
                ..Default::default()
            },
            conference: Some(ConferenceRules {
                extra_organizers: extra,
                announce: true,
                record: true,
            }),
        }])
    }

    /// A call played through the transition, as the store would, keeping what it asked of the
    /// provider.
    struct Run {
        policy: Policy,
        snapshot: Snapshot,
        call: Option<Call>,
        commands: Vec<Command>,
        facts: Vec<FactKind>,
    }

    impl Run {
        fn new(policy: Policy) -> Run {
            let mut snapshot = snapshot();
            snapshot.available = Some(three());
            Run {
                policy,
                snapshot,
                call: None,
                commands: Vec::new(),
                facts: Vec::new(),
            }
        }

        fn at(&mut self, secs: u64, event: Event) -> Reply {
            self.step_ms(secs * 1000, event).reply
        }

        /// The whole step of `event` at `ms`, applied.
        fn step_ms(&mut self, ms: u64, event: Event) -> crate::call::Step {
            let step = transition(
                &sid(CALL),
                self.call.as_ref(),
                &event,
                ms,
                &self.policy,
                &self.snapshot,
            );
            if let Some(next) = &step.next {
                self.call = Some(next.clone());
            }
            self.commands.extend(step.commands.iter().cloned());
            self.facts.extend(step.facts.iter().map(|f| f.kind.clone()));
            step
        }

        fn room(&self) -> &Room {
            match &self.call.as_ref().expect("call").phase {
                Phase::Conference(room) => room,
                other => panic!("not in a room: {other:?}"),
            }
        }

        /// The orders given since the last look, in words.
        fn orders(&mut self) -> Vec<String> {
            self.commands
                .drain(..)
                .map(|c| match c.order {
                    Order::Call { agent, .. } => format!("call {}", agent.id),
                    Order::Hangup { leg, .. } => format!("hangup {leg}"),
                    Order::Announce { agent, .. } => format!("announce {agent}"),
                    Order::ToVoicemail => "to voicemail".into(),
                    Order::Participant { who, change, .. } => format!("{change:?} {who}"),
                    Order::Remove { who, .. } => format!("remove {who}"),
                    Order::Record { on, .. } => format!("record {on}"),
                    Order::EndRoom { .. } => "end room".into(),
                })
                .collect()
        }
    }

    fn organizer(agent: &str, leg: &str) -> Event {
        Event::Organizer {
            agent: agent.into(),
            attempt: None,
            leg: sid(leg),
            step: ScreenStep::Start,
        }
    }

    fn press(agent: &str, leg: &str, digits: Option<&str>) -> Event {
        Event::Organizer {
            agent: agent.into(),
            attempt: None,
            leg: sid(leg),
            step: ScreenStep::Pressed(digits.map(Box::from)),
        }
    }

    fn status(agent: &str, leg: &str, status: CallStatus) -> Event {
        Event::OrganizerStatus {
            agent: agent.into(),
            attempt: None,
            leg: sid(leg),
            status,
        }
    }

    fn joined(label: &str) -> Event {
        Event::Room {
            change: RoomChange::Join,
            conference: "CF1".into(),
            label: Some(label.into()),
            leg: None,
        }
    }

    fn incoming_on(account: &str) -> Event {
        Event::Incoming {
            from: party(CALLER),
            to: party(LINE),
            account: Some(account.into()),
        }
    }

    #[test]
    fn the_caller_waits_in_a_room_while_every_organizer_is_called() {
        let mut run = Run::new(policy(ExtraOrganizers::Hangup, Strategy::Ringall));
        let reply = run.at(0, incoming_on("AC1"));
        let Reply::Conference { room, lead, .. } = reply else {
            panic!("not a room: {reply:?}");
        };
        assert_eq!(lead, Lead::Greeting);
        assert!(
            room.starts_with("hotline-") && !room.contains("2025550142"),
            "{room}"
        );
        assert_eq!(run.orders(), ["call ada", "call bob", "call cleo"]);
        assert_eq!(run.facts, [FactKind::Ringing { agents: 3 }]);
        assert!(run.commands.is_empty());
        // The same voice request again: the same room, nobody called twice.
        let again = run.at(1, incoming_on("AC1"));
        assert!(matches!(again, Reply::Conference { room: r, .. } if r == room));
        assert!(run.orders().is_empty());
        assert_eq!(
            run.call.as_ref().and_then(|c| c.account.as_deref()),
            Some("AC1")
        );
    }

    #[test]
    fn the_first_to_press_1_joins_the_others_are_ended_or_told_too_late() {
        let mut run = Run::new(policy(ExtraOrganizers::Hangup, Strategy::Ringall));
        run.at(0, incoming());
        run.orders();
        run.at(1, status("bob", "L2", CallStatus::Ringing));
        run.at(1, status("cleo", "L3", CallStatus::Ringing));
        // Ada's and Bob's phones answer; both hear who it is for.
        let greet = run.at(4, organizer("ada", "L1"));
        assert!(
            matches!(greet, Reply::Organizer { ref name, .. } if &**name == "Ada"),
            "{greet:?}"
        );
        run.at(5, organizer("bob", "L2"));
        // Ada presses 1 first: she joins as host; Cleo's ringing call is ended; Bob, hearing
        // the prompt, is left to learn he is too late.
        let join = run.at(6, press("ada", "L1", Some("1")));
        assert!(matches!(join, Reply::JoinRoom { host: true, ref agent, .. } if &**agent == "ada"));
        assert_eq!(run.orders(), ["hangup L3"]);
        assert!(run.facts.contains(&FactKind::Answered {
            agent: Some("Ada".into()),
            after_secs: 6
        }));
        assert_eq!(run.at(7, press("bob", "L2", Some("1"))), Reply::TooLate);
        // Ada's voice request repeated: the same room.
        assert!(matches!(
            run.at(7, press("ada", "L1", Some("1"))),
            Reply::JoinRoom { host: true, .. }
        ));
        // She appears in the room: the caller is told who is joining.
        run.at(8, joined("caller"));
        run.at(9, joined("organizer-ada"));
        assert_eq!(run.orders(), ["record true", "announce ada"]);
        assert_eq!(run.room().talking_since, Some(9000));
        // The join repeated: nothing more.
        run.at(10, joined("organizer-ada"));
        assert!(run.orders().is_empty());
        // The announcement says her name.
        assert_eq!(
            run.at(
                10,
                Event::Announce {
                    agent: "ada".into()
                }
            ),
            Reply::Announce { name: "Ada".into() }
        );
        // Ada leaves; the room ends; the caller's Dial action: after-call, then the end.
        assert_eq!(run.at(70, Event::RoomLeft), Reply::AfterCall);
        run.at(72, crate::call::testing::parent(CallStatus::Completed));
        assert!(run.facts.contains(&FactKind::Ended {
            outcome: Outcome::Answered {
                agent: Some("Ada".into()),
                talk_secs: 61
            },
            settled: true
        }));
    }

    #[test]
    fn a_voicemail_that_answers_never_joins_and_a_wave_of_ended_calls_sends_the_caller_to_voicemail(
    ) {
        let mut run = Run::new(policy(ExtraOrganizers::Hangup, Strategy::Ringall));
        run.at(0, incoming());
        run.orders();
        // Ada's voicemail answers: it hears the prompt and presses nothing.
        assert!(matches!(
            run.at(3, organizer("ada", "L1")),
            Reply::Organizer { .. }
        ));
        assert_eq!(run.at(12, press("ada", "L1", None)), Reply::Decline);
        assert!(run.room().host.is_none());
        run.at(13, status("ada", "L1", CallStatus::Completed));
        run.at(14, status("bob", "L2", CallStatus::Busy));
        assert!(matches!(
            run.call.as_ref().map(|c| &c.phase),
            Some(Phase::Conference(_))
        ));
        // The last one rings out: the caller is moved to voicemail.
        run.at(25, status("cleo", "L3", CallStatus::NoAnswer));
        // The round repeats (two rounds by default) with everyone free again.
        assert_eq!(run.orders(), ["call ada", "call bob", "call cleo"]);
        assert_eq!(run.room().round, 2);
        for (agent, leg) in [("ada", "L4"), ("bob", "L5"), ("cleo", "L6")] {
            run.at(50, status(agent, leg, CallStatus::NoAnswer));
        }
        assert_eq!(run.orders(), ["to voicemail"]);
        assert_eq!(
            run.call.as_ref().map(Call::reply),
            Some(Reply::Voicemail {
                intro: crate::call::Intro::PromptOnly
            })
        );
        // Moved by the API, the caller's request gets the voicemail document.
        assert!(matches!(run.at(51, Event::Resume), Reply::Voicemail { .. }));
        // An organizer who answers now is told the caller is no longer waiting.
        assert_eq!(run.at(52, organizer("ada", "L7")), Reply::CallerGone);
    }

    #[test]
    fn nobody_accepting_within_the_ring_time_moves_the_caller_out_by_the_timer() {
        let mut run = Run::new(policy(ExtraOrganizers::Hangup, Strategy::Ringall).with_rounds(1));
        run.at(0, incoming());
        run.orders();
        run.at(1, status("ada", "L1", CallStatus::Ringing));
        let due = run.room().due.expect("due");
        assert_eq!(due, (20 + 5) * 1000);
        // Not yet due: nothing happens.
        run.at(10, Event::Expired);
        assert!(run.orders().is_empty());
        // Due (no callback said the calls ended): the ringing call is ended, voicemail.
        run.at(25, Event::Expired);
        assert_eq!(run.orders(), ["hangup L1", "to voicemail"]);
        assert!(run.facts.contains(&FactKind::SentToVoicemail {
            reason: MissReason::NoAnswer
        }));
    }

    #[test]
    fn the_caller_hanging_up_ends_every_organizer_call() {
        let mut run = Run::new(policy(ExtraOrganizers::Hangup, Strategy::Ringall));
        run.at(0, incoming());
        run.orders();
        run.at(1, status("ada", "L1", CallStatus::Ringing));
        run.at(1, status("bob", "L2", CallStatus::Ringing));
        run.at(2, organizer("cleo", "L3"));
        run.at(8, crate::call::testing::parent(CallStatus::Completed));
        assert_eq!(run.orders(), ["hangup L1", "hangup L2", "hangup L3"]);
        assert!(run.facts.contains(&FactKind::Ended {
            outcome: Outcome::Abandoned { waited_secs: 8 },
            settled: true
        }));
        // A call whose CallSid arrives only now is ended too.
        run.at(
            9,
            Event::OrganizerPlaced {
                agent: "ada".into(),
                attempt: None,
                leg: Some(sid("L9")),
                placed: true,
            },
        );
        assert_eq!(run.orders(), ["hangup L9"]);
    }

    #[test]
    fn two_pressing_at_once_one_joins_and_extra_organizers_may_join_too() {
        for (extra, second) in [
            (ExtraOrganizers::Hangup, Reply::TooLate),
            (
                ExtraOrganizers::Join,
                Reply::JoinRoom {
                    call: sid(CALL),
                    room: room_name(&sid(CALL)),
                    agent: "bob".into(),
                    host: false,
                },
            ),
        ] {
            let mut run = Run::new(policy(extra, Strategy::Ringall));
            run.at(0, incoming());
            run.at(3, organizer("ada", "L1"));
            run.at(3, organizer("bob", "L2"));
            run.at(1, status("cleo", "L3", CallStatus::Ringing));
            run.orders();
            assert!(matches!(
                run.at(5, press("ada", "L1", Some("1"))),
                Reply::JoinRoom { host: true, .. }
            ));
            assert_eq!(
                run.at(5, press("bob", "L2", Some("1"))),
                second,
                "{extra:?}"
            );
            // With "join", Cleo's call keeps ringing; with "hangup", it ended at Ada's press.
            let orders = run.orders();
            match extra {
                ExtraOrganizers::Hangup => assert_eq!(orders, ["hangup L3"]),
                ExtraOrganizers::Join => assert!(orders.is_empty(), "{orders:?}"),
            }
            let answered = run
                .facts
                .iter()
                .filter(|f| matches!(f, FactKind::Answered { .. }))
                .count();
            assert_eq!(answered, 1);
        }
    }

    #[test]
    fn one_at_a_time_strategies_call_wave_by_wave() {
        let mut run =
            Run::new(policy(ExtraOrganizers::Hangup, Strategy::Sequential).with_rounds(1));
        run.at(0, incoming());
        assert_eq!(run.orders(), ["call ada"]);
        run.at(20, status("ada", "L1", CallStatus::NoAnswer));
        assert_eq!(run.orders(), ["call bob"]);
        // Bob's call never reports: the timer moves on to Cleo.
        let due = run.room().due.expect("due");
        run.at(due / 1000, Event::Expired);
        assert_eq!(run.orders(), ["call cleo"]);
        run.at(
            70,
            Event::OrganizerPlaced {
                agent: "cleo".into(),
                attempt: None,
                leg: None,
                placed: false,
            },
        );
        assert_eq!(run.orders(), ["to voicemail"]);
    }

    #[test]
    fn busy_organizers_are_not_called_and_a_dial_line_is_untouched() {
        // Another call's organizer: busy, so not called.
        let mut run = Run::new(policy(ExtraOrganizers::Hangup, Strategy::Ringall));
        run.snapshot.presence = std::sync::Arc::new(
            [(
                Box::<str>::from("bob"),
                crate::call::routing::Presence {
                    busy_until: 60_000,
                    ..Default::default()
                },
            )]
            .into_iter()
            .collect(),
        );
        run.at(0, incoming());
        assert_eq!(run.orders(), ["call ada", "call cleo"]);
        // A line in dial mode rings with <Dial> as before.
        let mut run = Run::new(Policy::default());
        run.snapshot.available = Some(agents());
        assert!(matches!(run.at(0, incoming()), Reply::Ring { .. }));
        assert!(run.orders().is_empty());
    }

    #[test]
    fn live_control_checks_the_room_and_says_what_it_did() {
        let mut run = Run::new(policy(ExtraOrganizers::Hangup, Strategy::Ringall));
        let control = |control: Control| Event::Control {
            control,
            by: "ops".into(),
        };
        let mute = |who: &str, on| {
            control(Control::Mute {
                who: who.into(),
                on,
            })
        };
        run.at(0, incoming_on("AC1"));
        // Before the room started (no ConferenceSid yet): refused, nothing asked.
        let early = run.step_ms(1000, mute("caller", true));
        assert_eq!(early.ignored, Some(Ignored::Stale));
        run.at(3, organizer("ada", "L1"));
        run.at(4, press("ada", "L1", Some("1")));
        run.at(5, joined("caller"));
        run.at(6, joined("organizer-ada"));
        run.at(
            6,
            Event::RecordingResult {
                start: true,
                ok: true,
                sid: Some("RE1".into()),
            },
        );
        run.orders();
        run.facts.clear();
        run.at(10, mute("caller", true));
        assert_eq!(run.orders(), ["Muted(true) caller"]);
        // Again: nothing more.
        let again = run.step_ms(11_000, mute("caller", true));
        assert_eq!(again.ignored, Some(Ignored::Duplicate));
        // Bob never joined: not a participant.
        let bob = run.step_ms(11_000, mute("organizer-bob", true));
        assert_eq!(bob.ignored, Some(Ignored::NoParticipant));
        run.at(
            12,
            control(Control::Hold {
                who: "organizer-ada".into(),
                on: true,
            }),
        );
        run.at(13, control(Control::Record { on: false }));
        run.at(14, control(Control::Record { on: true }));
        assert_eq!(
            run.orders(),
            ["Held(true) organizer-ada", "record false", "record true"]
        );
        // Dana, pulled in, joins though the line hangs up on extra organizers.
        let dana = Agent::new("Dana", Endpoint::number("+12025550177").expect("n")).expect("a");
        run.at(15, control(Control::Add { agent: dana }));
        assert_eq!(run.orders(), ["call dana"]);
        run.at(20, organizer("dana", "L9"));
        assert!(matches!(
            run.at(21, press("dana", "L9", Some("1"))),
            Reply::JoinRoom { host: false, .. }
        ));
        let said: Vec<_> = run
            .facts
            .iter()
            .filter_map(|f| match f {
                FactKind::Controlled { action, who, by } => Some(format!("{by}: {action} {who}")),
                _ => None,
            })
            .collect();
        assert_eq!(
            said,
            [
                "ops: mute the caller",
                "ops: hold Ada",
                "ops: record_stop the room",
                "ops: record_start the room",
                "ops: add Dana"
            ]
        );
        let list = participants(run.call.as_ref().expect("call")).expect("room");
        let caller = list.iter().find(|p| p.label == "caller").expect("caller");
        assert!(caller.muted && caller.state == "in_room");
        assert!(list.iter().any(|p| p.label == "organizer-ada" && p.held));
    }

    fn status_n(agent: &str, n: u8, leg: &str, status: CallStatus) -> Event {
        Event::OrganizerStatus {
            agent: agent.into(),
            attempt: Some(n),
            leg: sid(leg),
            status,
        }
    }

    #[test]
    fn calls_known_only_from_late_callbacks_are_ended_and_a_second_call_for_one_attempt_too() {
        let mut run = Run::new(policy(ExtraOrganizers::Hangup, Strategy::Ringall));
        run.at(0, incoming());
        run.orders();
        // Telnyx's answers carry no CallSid: nothing is known of Bob's and Cleo's calls when
        // Ada accepts, so nothing can be ended yet.
        run.at(3, organizer("ada", "L1"));
        run.at(4, press("ada", "L1", Some("1")));
        assert!(run.orders().is_empty());
        // Cleo's first callback names her call: it is ended at once.
        run.at(5, status_n("cleo", 2, "L3", CallStatus::Ringing));
        assert_eq!(run.orders(), ["hangup L3"]);
        // A second call for Bob's one attempt (a request to place it that was repeated): ended,
        // and it does not count as Bob's.
        run.at(5, status_n("bob", 1, "L2", CallStatus::Ringing));
        run.orders();
        run.at(6, status_n("bob", 1, "L2b", CallStatus::Ringing));
        assert_eq!(run.orders(), ["hangup L2b"]);
        run.at(7, status_n("bob", 1, "L2b", CallStatus::NoAnswer));
        assert!(run.room().host.is_some());
    }

    #[test]
    fn a_late_callback_of_an_earlier_call_does_not_unseat_the_host() {
        let mut run = Run::new(policy(ExtraOrganizers::Hangup, Strategy::Ringall));
        run.at(0, incoming());
        // Round 1 rings out with Ada's first call never reporting.
        run.at(20, status_n("bob", 1, "L2", CallStatus::NoAnswer));
        run.at(20, status_n("cleo", 2, "L3", CallStatus::NoAnswer));
        run.at(26, Event::Expired);
        assert_eq!(run.room().round, 2);
        run.orders();
        // Round 2: Ada (attempt 3) accepts.
        let answer = Event::Organizer {
            agent: "ada".into(),
            attempt: Some(3),
            leg: sid("L4"),
            step: ScreenStep::Start,
        };
        run.at(30, answer);
        let pressed = Event::Organizer {
            agent: "ada".into(),
            attempt: Some(3),
            leg: sid("L4"),
            step: ScreenStep::Pressed(Some("1".into())),
        };
        assert!(matches!(
            run.at(31, pressed),
            Reply::JoinRoom { host: true, .. }
        ));
        // Her round-1 call's final callback comes late: she is still the host.
        run.at(32, status_n("ada", 0, "L1", CallStatus::NoAnswer));
        assert_eq!(
            run.room().host.as_ref().and_then(|h| h.leg.clone()),
            Some(sid("L4"))
        );
    }

    #[test]
    fn without_a_join_callback_the_host_is_taken_to_be_in_the_room() {
        let mut run = Run::new(policy(ExtraOrganizers::Hangup, Strategy::Ringall));
        run.at(0, incoming());
        run.at(2, joined("caller"));
        run.at(3, organizer("ada", "L1"));
        run.at(4, press("ada", "L1", Some("1")));
        run.orders();
        // The join is never reported: after the grace, not voicemail, but talking.
        run.at(4 + JOIN_GRACE_MS / 1000, Event::Expired);
        assert_eq!(run.orders(), ["record true", "announce ada"]);
        assert_eq!(run.room().talking_since, Some(4000));
        assert_eq!(run.call.as_ref().and_then(Call::conference_due), None);
    }

    #[test]
    fn a_move_to_voicemail_not_followed_is_asked_again_then_the_room_ended() {
        let mut run = Run::new(policy(ExtraOrganizers::Hangup, Strategy::Ringall).with_rounds(1));
        run.at(0, incoming());
        run.at(1, joined("caller"));
        for (agent, n, leg) in [("ada", 0, "L1"), ("bob", 1, "L2"), ("cleo", 2, "L3")] {
            run.at(20, status_n(agent, n, leg, CallStatus::NoAnswer));
        }
        run.orders();
        assert_eq!(
            run.call.as_ref().and_then(Call::conference_due),
            Some(30_000)
        );
        // Not followed (the request was lost): asked again, and the room ended.
        run.at(30, Event::Expired);
        assert_eq!(run.orders(), ["to voicemail", "end room"]);
        // Followed: nothing more.
        assert!(matches!(run.at(31, Event::Resume), Reply::Voicemail { .. }));
        assert_eq!(run.call.as_ref().and_then(Call::conference_due), None);
        run.at(45, Event::Expired);
        assert!(run.orders().is_empty());
    }

    #[test]
    fn a_second_organizer_is_freed_when_the_room_ends() {
        let mut run = Run::new(policy(ExtraOrganizers::Join, Strategy::Ringall));
        run.at(0, incoming());
        run.at(3, organizer("ada", "L1"));
        run.at(3, organizer("bob", "L2"));
        run.step_ms(4000, press("ada", "L1", Some("1")));
        let second = run.step_ms(5000, press("bob", "L2", Some("1")));
        assert!(second
            .marks
            .iter()
            .any(|m| matches!(m, Mark::Answered { agent, .. } if &**agent == "bob")));
        run.at(6, joined("organizer-ada"));
        run.at(6, joined("organizer-bob"));
        let left = run.step_ms(60_000, Event::RoomLeft);
        let ended: Vec<&str> = left
            .marks
            .iter()
            .filter_map(|m| match m {
                Mark::Ended { agent, .. } => Some(&**agent),
                _ => None,
            })
            .collect();
        assert_eq!(ended, ["ada", "bob"]);
    }

    #[test]
    fn room_events_are_parsed_from_either_providers_names() {
        for (raw, change) in [
            ("participant-join", RoomChange::Join),
            ("join", RoomChange::Join),
            ("participant-leave", RoomChange::Leave),
            ("conference-end", RoomChange::End),
            ("end", RoomChange::End),
            ("conference-start", RoomChange::Start),
            ("participant-speech-start", RoomChange::Other),
            ("announcement-end", RoomChange::Other),
        ] {
            assert_eq!(RoomChange::parse(raw), change, "{raw}");
        }
    }
}
