//! The state of one inbound call, and which document it is on.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::domain::{Agent, CallSid, Party};

use super::Millis;

/// The agents one `<Dial>` rings. Shared, not copied: every call that rang the same list points
/// at the same allocation, and a ringing call keeps the list it rang even when the roster changes.
pub type Targets = Arc<[Agent]>;

/// Everything Switchboard remembers about one inbound call, keyed by the caller's CallSid.
/// Kept small on purpose (memory per live call is a product target): texts are boxed strings,
/// the agent list is shared, and legs are bounded by [`super::transition::MAX_LEGS`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Call {
    pub sid: CallSid,
    pub from: Party,
    pub to: Party,
    pub started_at: Millis,
    pub phase: Phase,
    /// The dialled legs seen so far, keyed by their own CallSid.
    pub legs: Vec<Leg>,
    /// Which notices were already emitted: each is emitted at most once per call, whatever
    /// duplicates the provider sends.
    pub sent: Sent,
    /// URL of the conversation's recording, when the provider reported one.
    pub recording: Option<Box<str>>,
}

/// Where the call is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Phase {
    /// The caller heard the greeting (round 1) or the busy prompt (later rounds) and every agent in
    /// `targets` rings; `answer` is set once one of them picked up (they are talking).
    Dialing {
        round: u8,
        targets: Targets,
        answer: Option<Answer>,
    },
    /// The bridge with an agent ended; the caller hears the after-call prompt.
    WrapUp {
        answer: Answer,
        talk_secs: Option<u32>,
    },
    /// Nobody answered (or nobody could): the caller is asked for a message. `recorded` once
    /// `<Record>` has finished; `message` once the recording is ready.
    Voicemail {
        lead: Lead,
        recorded: bool,
        message: Option<Message>,
    },
    /// The caller's call is over. Kept for a grace period so late callbacks still find it.
    Ended { outcome: Outcome, at: Millis },
}

/// Who answered, and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// The agent's name; `None` when the provider's answer could not be tied to a known agent.
    pub agent: Option<Box<str>>,
    pub at: Millis,
    pub leg: Option<CallSid>,
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
    Finished {
        agent: Option<Box<str>>,
        talk_secs: u64,
    },
    /// Nobody answered and the caller left a message.
    Voicemail(Message),
    /// Nobody answered and the caller left no message (a late recording may still turn this into
    /// `Voicemail`).
    Missed,
    /// The caller hung up before anyone answered.
    Abandoned,
}

/// What the caller hears before the voicemail prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Lead {
    /// The greeting: nobody was available, so the call went straight to voicemail.
    Greeting,
    /// Nothing more: the busy prompt of the rounds before was enough.
    Nothing,
    /// An apology: Switchboard lost track of the call and recovers by taking a message.
    Apology,
}

/// One dialled leg (an agent's phone ringing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Leg {
    pub sid: CallSid,
    pub agent: Option<Box<str>>,
    /// Bits of [`Leg::INITIATED`] .. [`Leg::ENDED`]: which statuses were seen, so a duplicate
    /// changes nothing and a late one still counts, whatever order they arrive in.
    pub seen: u8,
}

impl Leg {
    pub const INITIATED: u8 = 1;
    pub const RINGING: u8 = 2;
    pub const ANSWERED: u8 = 4;
    pub const ENDED: u8 = 8;
}

/// The set of notices already emitted for a call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent(u8);

impl Sent {
    /// Marks `bit` as sent; true when it was not sent before.
    pub fn first(&mut self, bit: u8) -> bool {
        let first = self.0 & bit == 0;
        self.0 |= bit;
        first
    }
}

/// The document a call is on: what a voice request for it is answered with. Rendering it is the
/// job of [`crate::texml`]; a repeated request gets the same reply, hence the same document.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// Greeting (round 1) or busy prompt (later rounds), then ring `targets`.
    Ring {
        round: u8,
        targets: Targets,
        caller: Party,
    },
    /// `lead`, the voicemail prompt, `<Record>`, goodbye, hang up.
    Voicemail { lead: Lead },
    /// The after-call prompt, hang up.
    AfterCall,
    /// Goodbye, hang up.
    Goodbye,
    /// Just hang up: the call is over.
    Hangup,
    /// Too many calls at once: ask the caller to call back later, hang up.
    Unavailable,
}

impl Outcome {
    /// The outcome's name in metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Finished { .. } => "answered",
            Outcome::Voicemail(_) => "voicemail",
            Outcome::Missed => "missed",
            Outcome::Abandoned => "abandoned",
        }
    }
}

impl Call {
    /// How the call ended, if it has.
    pub fn outcome(&self) -> Option<&Outcome> {
        match &self.phase {
            Phase::Ended { outcome, .. } => Some(outcome),
            _ => None,
        }
    }

    pub fn new(sid: CallSid, from: Party, to: Party, now: Millis, phase: Phase) -> Call {
        Call {
            sid,
            from,
            to,
            started_at: now,
            phase,
            legs: Vec::new(),
            sent: Sent::default(),
            recording: None,
        }
    }

    pub fn reply(&self) -> Reply {
        match &self.phase {
            Phase::Dialing { round, targets, .. } => Reply::Ring {
                round: *round,
                targets: targets.clone(),
                caller: self.from.clone(),
            },
            Phase::WrapUp { .. } => Reply::AfterCall,
            Phase::Voicemail {
                recorded: false,
                lead,
                ..
            } => Reply::Voicemail { lead: *lead },
            Phase::Voicemail { recorded: true, .. } => Reply::Goodbye,
            Phase::Ended { .. } => Reply::Hangup,
        }
    }

    pub fn is_ended(&self) -> bool {
        matches!(self.phase, Phase::Ended { .. })
    }
}
