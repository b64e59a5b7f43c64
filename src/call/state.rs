//! The state of one inbound call, and which document it is on.
//!
//! ```text
//!            Incoming (agents free)            Incoming (nobody free)
//!   (none) ─────────────────────────▶ Dialing ◀──┐      │
//!                                      │  │  │   │ DialEnded, no pickup: the round's next
//!              DialEnded, picked up ◀──┘  │  └───┘ group, or a new round while agents are free
//!                     │                   │ DialEnded, no pickup, no round or agent left
//!                     ▼                   ▼                 ▼
//!                  WrapUp             Voicemail ◀───────────┘
//!                     │                   │ (RecordEnded: goodbye; Recording: message kept)
//!                     └──── CallStatus final (from any phase) ────▶ Ended { settled }
//!                                                                      │ Recording / Expired
//!                                                                      ▼
//!                                                        Ended { settled: true }
//! ```
//!
//! A missed call ends *unsettled*: its voicemail recording usually arrives after the caller's
//! final status. It settles as a voicemail when the recording comes, as missed when the provider
//! says there is none or when the grace period passes ([`super::Event::Expired`]).

use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::domain::{Agent, CallSid, LineId, Party, Screen};
use crate::time::Millis;

/// The agents one `<Dial>` rings: never empty, so no document can ring nobody. Shared, not
/// copied: every call that rang the same list points at the same allocation, and a ringing call
/// keeps the list it rang even when the roster changes.
#[derive(Debug, Clone, PartialEq)]
pub struct Targets(Arc<[Agent]>);

impl Targets {
    /// `None` when `agents` is empty: there is nobody to ring.
    pub fn new(agents: Arc<[Agent]>) -> Option<Targets> {
        (!agents.is_empty()).then_some(Targets(agents))
    }
}

impl std::ops::Deref for Targets {
    type Target = [Agent];

    fn deref(&self) -> &[Agent] {
        &self.0
    }
}

impl Serialize for Targets {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Targets {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Targets, D::Error> {
        let agents = Vec::<Agent>::deserialize(d)?;
        Targets::new(agents.into()).ok_or_else(|| serde::de::Error::custom("no agent to ring"))
    }
}

/// Everything Switchboard remembers about one inbound call, keyed by the caller's CallSid.
/// Kept small on purpose (memory per live call is a product target): texts are boxed strings,
/// the agent list is shared, and legs are bounded by [`super::transition::MAX_LEGS`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Call {
    pub sid: CallSid,
    /// The line it came in on: whose agents ring, for every round of the call.
    pub line: LineId,
    pub from: Party,
    pub to: Party,
    pub started_at: Millis,
    pub phase: Phase,
    /// The dialled legs seen so far, keyed by their own CallSid.
    pub legs: Vec<Leg>,
    /// Which facts were already emitted: each kind at most once per call, whatever duplicates
    /// the provider sends.
    pub emitted: Emitted,
    /// URL of the conversation's recording, when the provider reported one.
    pub recording: Option<Box<str>>,
    /// It came in outside its line's hours (forwarded calls ring once, then voicemail).
    #[serde(default)]
    pub after_hours: bool,
    /// The caller was welcomed by the line's menu: ringing opens without the greeting.
    #[serde(default)]
    pub greeted: bool,
    /// The provider's account the call came in on (`AccountSid`): conference mode's REST
    /// requests name it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<Box<str>>,
    /// The conference recordings already reported (their ids), so a repeated callback is
    /// told once; a conference may be recorded more than once (stopped and started again).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recordings: Vec<Box<str>>,
    /// Conference mode: the caller is being moved out of the room to voicemail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moving: Option<super::conference::Moving>,
}

/// Where the call is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Phase {
    /// The caller hears the line's menu (`attempt` 1, then again after no or invalid input)
    /// and may press a key.
    Menu { attempt: u8 },
    /// The caller heard the greeting (round 1) or the busy prompt (later rounds) and the agents
    /// of `targets` ring: all at once, or `ringing` (group `group` of `groups`, for `ring_secs`)
    /// when the provider limits what one `<Dial>` may hold. `pickup` is set once one of them
    /// picked up (they are talking).
    Dialing {
        round: u8,
        targets: Targets,
        group: u8,
        groups: u8,
        ringing: Targets,
        ring_secs: u32,
        pickup: Option<Pickup>,
        /// The line's screening rule (an agent may have their own): whose legs must press 1.
        #[serde(default)]
        screen: Screen,
    },
    /// Conference mode: the caller waits in a conference room while organizers are called
    /// through the REST API, then talks there with the one who pressed 1 first.
    Conference(Box<super::conference::Room>),
    /// The bridge with an agent ended; the caller hears the after-call prompt.
    WrapUp {
        pickup: Pickup,
        talk_secs: Option<u32>,
    },
    /// Nobody answered (or nobody could): the caller is asked for a message. `recorded` once
    /// `<Record>` has finished; `message` once the recording is ready.
    Voicemail {
        intro: Intro,
        recorded: bool,
        message: Option<Message>,
    },
    /// The caller hears a closing message, then the call hangs up: the after-hours prompt
    /// (`after_hours = "message"`), or the turned-away prompt (a blocked or unknown caller).
    Closing { turned_away: Option<TurnAwayReason> },
    /// The caller's call is over. Kept for a grace period so late callbacks still find it.
    /// `settled` is false while a late voicemail recording may still change the outcome.
    Ended {
        outcome: Outcome,
        at: Millis,
        settled: bool,
    },
}

/// Who picked up (and, when screened, pressed 1), and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pickup {
    /// The agent's name; `None` when the provider's answer could not be tied to a known agent.
    pub agent: Option<Box<str>>,
    pub at: Millis,
    pub leg: Option<CallSid>,
    /// The agent's id, which their presence is kept under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<Box<str>>,
    /// Their wrap-up after this call, in seconds.
    #[serde(default)]
    pub wrap_up_secs: u32,
}

/// A voicemail message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub url: Box<str>,
    pub duration_secs: u32,
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    /// An agent answered; they talked this long.
    Answered {
        agent: Option<Box<str>>,
        talk_secs: u64,
    },
    /// Nobody answered and the caller left a message.
    Voicemail(Message),
    /// Nobody answered and the caller left no message.
    Missed,
    /// The caller hung up after waiting this long, before anyone answered.
    Abandoned { waited_secs: u64 },
    /// The line was closed: the caller heard the after-hours message, or was rejected.
    Closed,
    /// The caller was turned away: `blocked`, `anonymous` or `unknown_number`.
    TurnedAway { reason: TurnAwayReason },
}

/// Why a caller was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TurnAwayReason {
    /// The caller's number or its prefix is blocked.
    Blocked,
    /// The caller hid their number and anonymous callers are rejected.
    Anonymous,
    /// The called number is no line's, and such calls are turned away.
    UnknownNumber,
}

impl TurnAwayReason {
    pub fn label(self) -> &'static str {
        match self {
            TurnAwayReason::Blocked => "blocked",
            TurnAwayReason::Anonymous => "anonymous",
            TurnAwayReason::UnknownNumber => "unknown_number",
        }
    }
}

impl Outcome {
    /// The outcome's name in metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Answered { .. } => "answered",
            Outcome::Voicemail(_) => "voicemail",
            Outcome::Missed => "missed",
            Outcome::Abandoned { .. } => "abandoned",
            Outcome::Closed => "closed",
            Outcome::TurnedAway { reason } => reason.label(),
        }
    }
}

/// What the caller hears before the voicemail prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Intro {
    /// The greeting: nobody was available, so the call went straight to voicemail.
    Greeting,
    /// No more than the voicemail prompt: the caller already heard the greeting or busy prompt
    /// while the agents rang.
    PromptOnly,
    /// An apology: Switchboard lost track of the call and recovers by taking a message.
    Apology,
    /// The after-hours prompt: the line is closed.
    AfterHours,
}

/// One dialled leg (an agent's phone ringing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Leg {
    pub sid: CallSid,
    /// The agent's name, when the leg's `To` is a known agent's.
    pub agent: Option<Box<str>>,
    /// Their id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Box<str>>,
    /// Which statuses were seen, so a duplicate changes nothing and a late one still counts,
    /// whatever order they arrive in.
    pub seen: Seen,
}

/// A small set of flags, stored as two bytes: which statuses a leg has seen, which facts a call
/// has emitted. One shape for both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Flags(u16);

impl Flags {
    /// How many flags there are room for.
    pub const CAPACITY: u8 = 16;

    /// Sets flag number `index` (0 to 15); true when it was not set before.
    pub fn first(&mut self, index: u8) -> bool {
        debug_assert!(index < Self::CAPACITY);
        let bit = 1u16 << (index % Self::CAPACITY);
        let first = self.0 & bit == 0;
        self.0 |= bit;
        first
    }
}

/// The statuses a leg has seen.
pub type Seen = Flags;
/// The fact kinds a call has emitted.
pub type Emitted = Flags;

/// The status of a leg, as one of [`Seen`]'s flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegStep {
    Initiated = 0,
    Ringing = 1,
    Answered = 2,
    Ended = 3,
}

/// The document a call is on: what a voice request for it is answered with. Rendering it is the
/// job of [`crate::texml`]; a repeated request gets the same reply, hence the same document.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// Greeting (round 1) or busy prompt (later rounds) before a round's first `<Dial>`, then
    /// ring `targets` for `ring_secs`. Legs `screen` says are screened carry the whisper URL.
    Ring {
        call: CallSid,
        round: u8,
        group: u8,
        targets: Targets,
        caller: Party,
        ring_secs: u32,
        /// What opens round 1.
        lead: Lead,
        screen: Screen,
    },
    /// To an agent whose phone answered a screened leg: who is calling, press 1 to take it (a
    /// `<Gather>` of one key whose action names the call, the round's `<Dial>` and the agent);
    /// no key hangs up that leg.
    Screen {
        call: CallSid,
        round: u8,
        group: u8,
        agent: Box<str>,
        caller: Party,
    },
    /// To the agent who pressed 1 first: nothing more (the document ends, the provider bridges).
    Accept,
    /// Conference mode, to the caller: `lead`, the recording notice, then wait in conference
    /// `room` with hold audio until an organizer joins.
    Conference {
        call: CallSid,
        room: Box<str>,
        lead: Lead,
    },
    /// Conference mode, to an organizer whose phone answered: hello `name`, which line, press 1
    /// to join (a `<Gather>` whose action names the call and the organizer); no key hangs up.
    Organizer {
        call: CallSid,
        agent: Box<str>,
        name: Box<str>,
    },
    /// Conference mode, to an organizer who pressed 1: into conference `room` (`host`: the first,
    /// whose leaving ends the room; else a second organizer).
    JoinRoom {
        call: CallSid,
        room: Box<str>,
        agent: Box<str>,
        host: bool,
    },
    /// Conference mode, to the caller: `name` is joining this call.
    Announce { name: Box<str> },
    /// To an agent who pressed 1 too late: another agent took the call; hang up.
    TooLate,
    /// To an agent whose caller is no longer waiting: say so; hang up.
    CallerGone,
    /// To an agent who pressed another key, or none: hang up that leg.
    Decline,
    /// The line's menu (after the retry prompt from `attempt` 2), a `<Gather>` of one key whose
    /// action says `attempt`.
    Menu { attempt: u8 },
    /// `intro`, the voicemail prompt, `<Record>`, goodbye, hang up.
    Voicemail { intro: Intro },
    /// The after-call prompt, hang up.
    AfterCall,
    /// Goodbye, hang up.
    Goodbye,
    /// Just hang up: the call is over.
    Hangup,
    /// Too many calls at once: ask the caller to call back later, hang up.
    Unavailable,
    /// The line is closed: the after-hours prompt, hang up.
    Closed,
    /// The caller may not call: the turned-away prompt, hang up.
    TurnedAway,
    /// Refuse the call before answering it.
    Reject,
}

/// What the caller hears before the first `<Dial>` of round 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lead {
    Greeting,
    /// Forwarded after hours: the after-hours prompt.
    AfterHours,
    /// Nothing: the line's menu welcomed the caller.
    Nothing,
}

impl Call {
    pub fn new(
        sid: CallSid,
        line: LineId,
        from: Party,
        to: Party,
        now: Millis,
        phase: Phase,
    ) -> Call {
        Call {
            sid,
            line,
            from,
            to,
            started_at: now,
            phase,
            legs: Vec::new(),
            emitted: Emitted::default(),
            recording: None,
            after_hours: false,
            greeted: false,
            account: None,
            recordings: Vec::new(),
            moving: None,
        }
    }

    /// How the call ended, if it has.
    pub fn outcome(&self) -> Option<&Outcome> {
        match &self.phase {
            Phase::Ended { outcome, .. } => Some(outcome),
            _ => None,
        }
    }

    pub fn is_ended(&self) -> bool {
        matches!(self.phase, Phase::Ended { .. })
    }

    /// Ended, with an outcome a late recording may still change; `Some(at)` says since when.
    pub fn unsettled_since(&self) -> Option<Millis> {
        match self.phase {
            Phase::Ended {
                settled: false, at, ..
            } => Some(at),
            _ => None,
        }
    }

    /// What opens the first document that rings: the greeting, the after-hours prompt (a
    /// forwarded call), or nothing (the menu welcomed the caller).
    fn lead(&self) -> Lead {
        match (self.after_hours, self.greeted) {
            (true, _) => Lead::AfterHours,
            (false, true) => Lead::Nothing,
            (false, false) => Lead::Greeting,
        }
    }

    pub fn reply(&self) -> Reply {
        match &self.phase {
            Phase::Conference(room) => Reply::Conference {
                call: self.sid.clone(),
                room: room.name.clone(),
                lead: self.lead(),
            },
            Phase::Dialing {
                round,
                group,
                ringing,
                ring_secs,
                screen,
                ..
            } => Reply::Ring {
                call: self.sid.clone(),
                screen: *screen,
                round: *round,
                group: *group,
                targets: ringing.clone(),
                caller: self.from.clone(),
                ring_secs: *ring_secs,
                lead: self.lead(),
            },
            Phase::Menu { attempt } => Reply::Menu { attempt: *attempt },
            Phase::WrapUp { .. } => Reply::AfterCall,
            Phase::Voicemail {
                recorded: false,
                intro,
                ..
            } => Reply::Voicemail { intro: *intro },
            Phase::Voicemail { recorded: true, .. } => Reply::Goodbye,
            Phase::Closing { turned_away: None } => Reply::Closed,
            Phase::Closing {
                turned_away: Some(_),
            } => Reply::TurnedAway,
            Phase::Ended { .. } => Reply::Hangup,
        }
    }
}
