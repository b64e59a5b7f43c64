//! What the provider tells us, already parsed into typed values.

use crate::domain::{CallSid, FieldError, LineId, Party, ProviderCopy};

/// `CallStatus` of a call or leg. Telnyx reports an answered call as `in-progress` (its migration
/// guide says `answered`; both are accepted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallStatus {
    Queued,
    Initiated,
    Ringing,
    InProgress,
    Completed,
    Busy,
    Failed,
    NoAnswer,
    Canceled,
    /// A status Switchboard does not ask for (`dtmf`, `amd`, or anything new): acknowledged and
    /// ignored, never refused.
    Other,
}

impl CallStatus {
    /// Never fails: what is not a known status is [`CallStatus::Other`].
    pub fn parse(s: &str) -> CallStatus {
        CallStatus::known(s).unwrap_or(CallStatus::Other)
    }

    fn known(s: &str) -> Result<CallStatus, FieldError> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "queued" => CallStatus::Queued,
            "initiated" => CallStatus::Initiated,
            "ringing" => CallStatus::Ringing,
            "in-progress" | "answered" => CallStatus::InProgress,
            "completed" => CallStatus::Completed,
            "busy" => CallStatus::Busy,
            "failed" => CallStatus::Failed,
            "no-answer" => CallStatus::NoAnswer,
            "canceled" | "cancelled" => CallStatus::Canceled,
            _ => return Err(FieldError::Invalid("is not a known call status")),
        })
    }

    /// The call or leg is over.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            CallStatus::Completed
                | CallStatus::Busy
                | CallStatus::Failed
                | CallStatus::NoAnswer
                | CallStatus::Canceled
        )
    }
}

/// `DialCallStatus` of a Dial action request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialStatus {
    /// An agent answered and the bridge has ended.
    Completed,
    /// An agent answered (sent for conferences).
    Answered,
    Busy,
    NoAnswer,
    Failed,
    Canceled,
}

impl DialStatus {
    pub fn parse(s: &str) -> Result<DialStatus, FieldError> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "completed" => DialStatus::Completed,
            "answered" | "in-progress" => DialStatus::Answered,
            "busy" => DialStatus::Busy,
            "no-answer" => DialStatus::NoAnswer,
            "failed" => DialStatus::Failed,
            "canceled" | "cancelled" => DialStatus::Canceled,
            _ => return Err(FieldError::Invalid("is not a known dial status")),
        })
    }

    pub fn answered(self) -> bool {
        matches!(self, DialStatus::Completed | DialStatus::Answered)
    }
}

/// Which recording a recording callback is about; the URL we gave the provider says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingKind {
    /// The caller's message, from `<Record>`.
    Voicemail,
    /// The conversation with an agent, from `<Dial record=...>`.
    Conversation,
    /// A conference-mode call's room, from `<Conference record=...>`.
    Conference,
}

/// `RecordingStatus` of a recording callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingStatus {
    /// The recording is ready at its URL.
    Completed,
    /// There is no recording (nothing was said, or it failed).
    Absent,
    /// Still being recorded (sent only when asked for).
    InProgress,
}

impl RecordingStatus {
    /// Lenient: a missing status means `completed` (what both providers send by default).
    pub fn parse(s: Option<&str>) -> RecordingStatus {
        match s.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
            None | Some("completed") => RecordingStatus::Completed,
            Some("absent" | "failed") => RecordingStatus::Absent,
            Some(_) => RecordingStatus::InProgress,
        }
    }
}

/// Where an agent is in a screened leg's whisper.
#[derive(Debug, Clone, PartialEq)]
pub enum ScreenStep {
    /// Their phone answered: the provider asks what to play them.
    Start,
    /// They pressed this key (`None`: none).
    Pressed(Option<Box<str>>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The provider fetched the voice URL for this call (`account`: its `AccountSid`).
    Incoming {
        from: Party,
        to: Party,
        account: Option<Box<str>>,
    },
    /// The `<Dial>` of round `round` (its group `group`, 0 when a round is one `<Dial>`) ended
    /// and the provider requests its action URL. `round` is `None` when the request did not say
    /// (then the current round and group are meant).
    DialEnded {
        round: Option<u8>,
        group: u8,
        status: DialStatus,
        dial_sid: Option<CallSid>,
        duration_secs: Option<u32>,
        from: Party,
        to: Party,
        /// The line the action URL names (the call's, when a menu moved it off its number's).
        line: Option<LineId>,
    },
    /// The caller pressed a key at the menu of `attempt` (`digits`), or pressed nothing
    /// (`None`: the action came with empty digits, or the document fell through to its redirect).
    MenuInput {
        attempt: u8,
        digits: Option<Box<str>>,
        from: Party,
        to: Party,
        /// The line the action URL names (the call's, when a menu moved it off its number's).
        line: Option<LineId>,
    },
    /// The whisper of a screened leg: its agent (`agent`, an id) answered a leg of round
    /// `round`'s `<Dial>` `group` (`Start`, the provider fetches the leg's `url`), or pressed a
    /// key at its prompt (`Pressed`; `None`: no key).
    Screen {
        round: u8,
        group: u8,
        agent: Box<str>,
        leg: CallSid,
        step: ScreenStep,
    },
    /// A status callback for one dialled leg (an agent's phone).
    LegStatus {
        leg: CallSid,
        status: CallStatus,
        to: Party,
    },
    /// A status callback for the caller's own call.
    CallStatus { status: CallStatus },
    /// `<Record>` finished and the provider requests its action URL.
    RecordEnded,
    /// A recording status callback.
    Recording {
        kind: RecordingKind,
        status: RecordingStatus,
        url: Option<Box<str>>,
        duration_secs: Option<u32>,
        /// The provider's copy (to delete once archived), when the callback names it.
        copy: Option<ProviderCopy>,
    },
    /// The grace period of an ended call whose outcome was not settled has passed, or a
    /// conference-mode call's wave rang out (from the sweeper, never from the provider).
    Expired,
    /// Conference mode: an organizer's call (`leg`) answered and its document is fetched
    /// (`Start`), or they pressed a key (`Pressed`).
    /// `attempt`: which call placed to them (our URLs say; `None` from an older URL).
    Organizer {
        agent: Box<str>,
        attempt: Option<u8>,
        leg: CallSid,
        step: ScreenStep,
    },
    /// Conference mode: a status callback of an organizer's call.
    OrganizerStatus {
        agent: Box<str>,
        attempt: Option<u8>,
        leg: CallSid,
        status: CallStatus,
    },
    /// Conference mode: the REST API placed the call to an organizer (`leg`: its CallSid, when
    /// the answer said it) or could not (`placed: false`).
    OrganizerPlaced {
        agent: Box<str>,
        attempt: Option<u8>,
        leg: Option<CallSid>,
        placed: bool,
    },
    /// Conference mode: a conference status callback (someone joined or left the room).
    Room {
        change: super::conference::RoomChange,
        conference: Box<str>,
        label: Option<Box<str>>,
        /// The participant's call (`CallSid`), which says who it is when no label came.
        leg: Option<CallSid>,
    },
    /// Conference mode: the caller's `<Dial>` into the room ended.
    RoomLeft,
    /// Conference mode: the announcement document ("NAME is joining") is fetched.
    Announce { agent: Box<str> },
    /// A document fetched for the call as it is (the caller was moved by the REST API).
    Resume,
    /// Conference mode: an operator's live-control action (`by`: who, for the record).
    Control {
        control: super::conference::Control,
        by: Box<str>,
    },
    /// Conference mode: the REST API started (`start`) or stopped the room's recording, or
    /// failed to (`ok: false`); `sid`: the recording's id, when known.
    RecordingResult {
        start: bool,
        ok: bool,
        sid: Option<Box<str>>,
    },
}

impl Event {
    /// The event's name for logs, without its caller-controlled fields.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Incoming { .. } => "incoming",
            Event::DialEnded { .. } => "dial-ended",
            Event::MenuInput { .. } => "menu-input",
            Event::Screen {
                step: ScreenStep::Start,
                ..
            } => "screen",
            Event::Screen { .. } => "screen-input",
            Event::LegStatus { .. } => "leg-status",
            Event::CallStatus { .. } => "call-status",
            Event::RecordEnded => "record-ended",
            Event::Recording { .. } => "recording",
            Event::Expired => "expired",
            Event::Organizer {
                step: ScreenStep::Start,
                ..
            } => "organizer",
            Event::Organizer { .. } => "organizer-input",
            Event::OrganizerStatus { .. } => "organizer-status",
            Event::OrganizerPlaced { .. } => "organizer-placed",
            Event::Room { .. } => "room",
            Event::RoomLeft => "room-left",
            Event::Announce { .. } => "announce",
            Event::Resume => "resume",
            Event::Control { .. } => "control",
            Event::RecordingResult { .. } => "recording-result",
        }
    }
}
