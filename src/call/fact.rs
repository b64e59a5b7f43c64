//! What the transition says happened: facts for whoever listens (logs, metrics, Slack, and later
//! the ledger and the dashboard), and, apart from them, why an event changed nothing.

use crate::domain::{LineId, Party, ProviderCopy};

use super::state::Outcome;

/// Something that happened to one call. Each kind is emitted at most once per call, whatever
/// duplicates or reordering the provider delivers (see [`super::state::Emitted`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Fact {
    /// Who called.
    pub from: Party,
    /// The number they called.
    pub to: Party,
    /// The line that number belongs to.
    pub line: LineId,
    pub kind: FactKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FactKind {
    /// A call came in and `agents` phones ring (its first round).
    Ringing { agents: usize },
    /// An agent picked up after the caller waited `after_secs`.
    Answered {
        agent: Option<Box<str>>,
        after_secs: u64,
    },
    /// Nobody answered (or could): the caller is asked for a voicemail.
    SentToVoicemail { reason: MissReason },
    /// The caller's message is ready.
    VoicemailLeft {
        url: Box<str>,
        duration_secs: u32,
        /// The provider's copy, when its callback named it.
        copy: Option<ProviderCopy>,
    },
    /// The recording of the conversation with an agent is ready.
    ConversationRecorded {
        url: Box<str>,
        duration_secs: Option<u32>,
        copy: Option<ProviderCopy>,
    },
    /// The recording of a conference-mode call's room is ready (one per recording: a room
    /// recorded again after a stop has several).
    ConferenceRecorded {
        url: Box<str>,
        duration_secs: Option<u32>,
        copy: Option<ProviderCopy>,
    },
    /// An operator acted on a conference-mode call: `action` (`mute`, `unmute`, `hold`,
    /// `resume`, `remove`, `add`, `record_start`, `record_stop`) on `who` (a name), by `by`.
    Controlled {
        action: &'static str,
        who: Box<str>,
        by: Box<str>,
    },
    /// The caller's call is over. `settled` is false when a late voicemail recording may still
    /// change `outcome` (it is then [`Outcome::Missed`]): a [`FactKind::Settled`] follows.
    Ended { outcome: Outcome, settled: bool },
    /// The final outcome of a call that ended unsettled: `Voicemail` when its recording came,
    /// `Missed` when the provider said there is none or the grace period passed.
    Settled { outcome: Outcome },
    /// A new call was turned away: `live_calls` were already held, the most allowed.
    Refused { live_calls: usize },
    /// A call came in while its line was closed; `action` is what it got (voicemail, forward,
    /// message, reject).
    AfterHours { action: &'static str },
    /// A caller was turned away before anyone rang: `reason` is `blocked`, `anonymous` or
    /// `unknown_number`.
    TurnedAway { reason: &'static str },
}

impl FactKind {
    /// Which flag of [`super::state::Emitted`] guards this kind.
    pub(super) fn flag(&self) -> u8 {
        match self {
            FactKind::Ringing { .. } => 0,
            FactKind::Answered { .. } => 1,
            FactKind::SentToVoicemail { .. } => 2,
            FactKind::VoicemailLeft { .. } => 3,
            FactKind::Ended { .. } => 4,
            FactKind::Settled { .. } => 5,
            FactKind::Refused { .. } => 6,
            FactKind::AfterHours { .. } => 7,
            FactKind::TurnedAway { .. } => 8,
            FactKind::ConversationRecorded { .. } => 9,
            // Not guarded (each recording is told once by its id instead).
            FactKind::ConferenceRecorded { .. } => 10,
            FactKind::Controlled { .. } => 11,
        }
    }

    /// The final outcome this fact decides, if it decides one: an `Ended` that is settled, or a
    /// `Settled`. Every call that was taken has exactly one.
    pub fn final_outcome(&self) -> Option<&Outcome> {
        match self {
            FactKind::Ended {
                outcome,
                settled: true,
            }
            | FactKind::Settled { outcome } => Some(outcome),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissReason {
    /// Every round rang out.
    NoAnswer,
    /// No agent was available to ring.
    NoAgents,
    /// Switchboard lost track of the call and recovered by taking a message.
    Recovered,
    /// The caller hid their number, and such callers go straight to voicemail.
    Anonymous,
    /// The caller chose voicemail at the line's menu (or the menu's default is voicemail).
    Chosen,
}

impl MissReason {
    /// In words, for logs and messages.
    pub fn describe(self) -> &'static str {
        match self {
            MissReason::NoAnswer => "nobody answered",
            MissReason::NoAgents => "no agent available",
            MissReason::Recovered => "call state was lost",
            MissReason::Anonymous => "anonymous caller",
            MissReason::Chosen => "chosen at the menu",
        }
    }
}

/// Why an event changed nothing: a diagnostic for the logs, not a fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    /// No call with this CallSid is known (never seen, or already forgotten).
    UnknownCall,
    /// Already applied.
    Duplicate,
    /// About a step the call has already left.
    Stale,
    /// A status that changes nothing (e.g. `ringing` for the caller's own call).
    NotFinal,
    /// The call already has [`super::transition::MAX_LEGS`] legs.
    TooManyLegs,
    /// A recording that is not ready or is empty.
    NoRecording,
    /// A status the call did not ask for (`dtmf`, `amd`, anything unknown).
    Unrequested,
    /// A live-control action about a participant the room does not have.
    NoParticipant,
}

impl Ignored {
    /// The reason's name in metrics.
    pub fn label(self) -> &'static str {
        match self {
            Ignored::UnknownCall => "unknown_call",
            Ignored::Duplicate => "duplicate",
            Ignored::Stale => "stale",
            Ignored::NotFinal => "not_final",
            Ignored::TooManyLegs => "too_many_legs",
            Ignored::NoRecording => "no_recording",
            Ignored::Unrequested => "unrequested",
            Ignored::NoParticipant => "no_participant",
        }
    }
}
