//! TeXML (TwiML-compatible) documents as typed values, written by one quick-xml writer. No string
//! formatting builds XML anywhere: caller-controlled text reaches a document only through the
//! writer's escaping, so it can never break or inject markup.

pub mod prompts;
pub mod render;
mod writer;

pub use prompts::{display_name_text, Prompt, Prompts, TemplateError};
pub use render::{Renderer, Urls};

use serde::Deserialize;

use crate::domain::Endpoint;

/// The `record` attribute of `<Dial>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordMode {
    DoNotRecord,
    RecordFromAnswer,
    RecordFromRinging,
    RecordFromAnswerDual,
    RecordFromRingingDual,
}

impl RecordMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordMode::DoNotRecord => "do-not-record",
            RecordMode::RecordFromAnswer => "record-from-answer",
            RecordMode::RecordFromRinging => "record-from-ringing",
            RecordMode::RecordFromAnswerDual => "record-from-answer-dual",
            RecordMode::RecordFromRingingDual => "record-from-ringing-dual",
        }
    }
}

/// Which provider reads the documents: each accepts a slightly different dialect.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Telnyx TeXML: any number of nouns per `<Dial>`; `fromDisplayName`; the `alice` voice.
    #[default]
    Telnyx,
    /// Twilio TwiML: at most ten `<Number>`s per `<Dial>`, one `<Sip>` alone unless Enhanced
    /// Programmable SIP Features is on; no `fromDisplayName`; Polly and Google voices.
    Twilio,
}

/// `[provider]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    pub kind: Provider,
    /// Twilio only: the account has Enhanced Programmable SIP Features (several `<Sip>`, and
    /// `<Sip>` with `<Number>`, in one `<Dial>`).
    pub twilio_enhanced_sip: bool,
    /// At most this many legs in one `<Dial>` (0: only the provider's own limits). A larger
    /// team is rung in waves within each round.
    #[serde(default)]
    pub max_legs_per_dial: usize,
}

/// How agents are rung (`[dial]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DialSettings {
    pub ring_timeout_secs: u32,
    pub rounds: u8,
    pub record: RecordMode,
    pub time_limit_secs: u32,
    /// The number agents on phone numbers see calling (`callerId`, E.164, owned by the account);
    /// empty: the provider's default.
    #[serde(default)]
    pub caller_id: String,
    /// Whose legs must press 1 before the caller is put through (lines and agents may differ).
    #[serde(default)]
    pub screen: crate::domain::Screen,
    /// How long a screened agent has to press 1 after the prompt, in seconds.
    #[serde(default = "DialSettings::screen_timeout")]
    pub screen_timeout_secs: u32,
    /// The order agents are rung in (lines may differ).
    #[serde(default)]
    pub strategy: crate::call::routing::Strategy,
    /// Seconds after a call before its agent is rung again (lines and agents may differ).
    #[serde(default = "DialSettings::wrap_up")]
    pub wrap_up_secs: u32,
}

impl DialSettings {
    fn screen_timeout() -> u32 {
        8
    }

    fn wrap_up() -> u32 {
        15
    }
}

/// How a voicemail is taken (`[voicemail]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoicemailSettings {
    pub max_length_secs: u32,
    pub silence_timeout_secs: u32,
    pub finish_on_key: String,
    pub play_beep: bool,
}

/// A whole document: `<Response>` and its verbs, in order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Response {
    pub verbs: Vec<Verb>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Verb {
    Say(Say),
    Play(Play),
    Dial(Dial),
    Record(Record),
    /// `<Gather>` of one key, speaking its verbs (the caller may press during them).
    Gather(Gather),
    /// `<Redirect method="POST">`: fetch the next document from this URL.
    Redirect(String),
    /// `<Dial>` into a conference room.
    Room(RoomDial),
    /// `<Play loop="0">`: this audio, over and over (hold audio).
    Loop(String),
    Hangup,
    /// `<Reject reason="rejected"/>`: refuse an unanswered call.
    Reject,
}

/// One key pressed, posted to `action` (Telnyx uses the application's method: the route takes
/// both). `timeout_secs` counts from the end of the prompts.
#[derive(Debug, Clone, PartialEq)]
pub struct Gather {
    pub action: String,
    pub timeout_secs: u32,
    pub verbs: Vec<Verb>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Say {
    pub text: String,
    pub voice: Option<String>,
    pub language: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Play {
    pub url: String,
}

/// `<Dial>` ringing every noun at once; the first to answer is bridged.
#[derive(Debug, Clone, PartialEq)]
pub struct Dial {
    pub action: String,
    pub timeout_secs: u32,
    pub time_limit_secs: u32,
    pub record: RecordMode,
    pub recording_status_callback: Option<String>,
    /// Telnyx `fromDisplayName`: what the agents' phones show while ringing.
    pub from_display_name: Option<String>,
    /// `callerId`: the number phone agents see (set only when the `<Dial>` rings a number).
    pub caller_id: Option<String>,
    pub nouns: Vec<DialNoun>,
}

/// `<Sip>` or `<Number>` with a status callback for every leg event.
#[derive(Debug, Clone, PartialEq)]
pub struct DialNoun {
    pub endpoint: Endpoint,
    pub status_callback: String,
    /// The whisper: a document run on the agent's leg once it answers, before the bridge
    /// (screening). `None`: bridged as soon as it answers.
    pub url: Option<String>,
}

/// `<Dial>` with one `<Conference>`: the caller waiting in a room, or an organizer joining it.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomDial {
    /// The Dial action: requested when this participant's time in the room is over.
    pub action: String,
    pub time_limit_secs: u32,
    /// The conference's name (opaque).
    pub name: String,
    /// `participantLabel`: the REST API can address the participant by it.
    pub label: String,
    /// `startConferenceOnEnter`: false while waiting for someone who starts it (hold audio).
    pub start_on_enter: bool,
    /// `endConferenceOnExit`: the room ends when this participant leaves.
    pub end_on_exit: bool,
    /// `waitUrl`: the document played until the conference starts.
    pub wait_url: Option<String>,
    /// `statusCallback` for the room's events (start, end, join, leave).
    pub status_callback: String,
}

/// Room events we ask the provider to report.
pub const ROOM_EVENTS: &str = "start end join leave";

/// Leg events we ask the provider to report.
pub const LEG_EVENTS: &str = "initiated ringing answered completed";

#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub action: String,
    pub max_length_secs: u32,
    pub timeout_secs: u32,
    pub finish_on_key: Option<String>,
    pub play_beep: bool,
    pub recording_status_callback: String,
}

impl Response {
    pub fn new(verbs: Vec<Verb>) -> Response {
        Response { verbs }
    }

    /// The document as UTF-8 XML, with declaration and two-space indentation.
    pub fn to_xml(&self) -> Result<Vec<u8>, std::io::Error> {
        writer::write(self)
    }
}
