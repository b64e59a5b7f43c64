//! The call core's one test harness: names for the usual parties, events built in one line, and
//! [`Script`], which plays timed events through [`transition`] the way a store would.

use crate::domain::{Agent, CallSid, Endpoint, LineId, Party};

use super::event::{CallStatus, DialStatus, Event, RecordingKind, RecordingStatus, ScreenStep};
use super::fact::FactKind;
use super::hours::Override;
use super::policy::{Overrides, Policy, Snapshot};
use super::routing::Presences;
use super::state::{Call, Outcome, Phase, Reply, Targets};
use super::transition::transition;

pub(crate) const CALLER: &str = "+12025550142";
pub(crate) const LINE: &str = "+18005550100";
pub(crate) const ADA: &str = "sip:ada@x.example";
pub(crate) const BOB: &str = "+12025550100";

pub(crate) fn sid(s: &str) -> CallSid {
    CallSid::parse(s).expect("sid")
}

pub(crate) fn party(s: &str) -> Party {
    Party::parse(s).expect("party")
}

/// Ada (SIP) and Bob (a number).
pub(crate) fn agents() -> Targets {
    let agents = vec![
        Agent::new("Ada", Endpoint::sip(ADA).expect("sip")).expect("agent"),
        Agent::new("Bob", Endpoint::number(BOB).expect("num")).expect("agent"),
    ];
    Targets::new(agents.into()).expect("two agents")
}

/// Ada and Bob are free.
pub(crate) fn snapshot() -> Snapshot {
    Snapshot::ringing(Some(agents()))
}

pub(crate) fn incoming() -> Event {
    Event::Incoming {
        from: party(CALLER),
        to: party(LINE),
        account: None,
    }
}

/// The Dial action of `round`; the bridged leg is Ada's first.
pub(crate) fn dial(round: u8, status: DialStatus, duration: Option<u32>) -> Event {
    dial_group(round, 0, status, duration)
}

/// The Dial action of group `group` of `round`.
pub(crate) fn dial_group(round: u8, group: u8, status: DialStatus, duration: Option<u32>) -> Event {
    Event::DialEnded {
        round: Some(round),
        group,
        status,
        dial_sid: Some(sid("LEG-ada-1")),
        duration_secs: duration,
        from: party(CALLER),
        to: party(LINE),
        line: None,
    }
}

/// The caller pressed `digits` (or nothing) at the menu's attempt `attempt`.
pub(crate) fn menu(attempt: u8, digits: Option<&str>) -> Event {
    Event::MenuInput {
        attempt,
        digits: digits.map(Box::from),
        from: party(CALLER),
        to: party(LINE),
        line: None,
    }
}

pub(crate) fn leg(leg_sid: &str, status: CallStatus, to: &str) -> Event {
    Event::LegStatus {
        leg: sid(leg_sid),
        status,
        to: party(to),
    }
}

/// `agent`'s screened leg `leg` of round `round`'s `<Dial>` `group` answered: the whisper.
pub(crate) fn screen_start(round: u8, group: u8, agent: &str, leg: &str) -> Event {
    Event::Screen {
        round,
        group,
        agent: agent.into(),
        leg: sid(leg),
        step: ScreenStep::Start,
    }
}

/// `agent` pressed `digits` (or nothing) at the whisper of leg `leg`.
pub(crate) fn press(round: u8, group: u8, agent: &str, leg: &str, digits: Option<&str>) -> Event {
    Event::Screen {
        round,
        group,
        agent: agent.into(),
        leg: sid(leg),
        step: ScreenStep::Pressed(digits.map(Box::from)),
    }
}

/// A status callback of the caller's own call.
pub(crate) fn parent(status: CallStatus) -> Event {
    Event::CallStatus { status }
}

pub(crate) fn voicemail(url: &str, secs: u32) -> Event {
    Event::Recording {
        kind: RecordingKind::Voicemail,
        status: RecordingStatus::Completed,
        url: Some(url.into()),
        duration_secs: Some(secs),
        copy: None,
    }
}

/// The provider says no voicemail was recorded.
pub(crate) fn absent() -> Event {
    Event::Recording {
        kind: RecordingKind::Voicemail,
        status: RecordingStatus::Absent,
        url: None,
        duration_secs: None,
        copy: None,
    }
}

pub(crate) fn in_progress() -> Event {
    Event::Recording {
        kind: RecordingKind::Voicemail,
        status: RecordingStatus::InProgress,
        url: None,
        duration_secs: None,
        copy: None,
    }
}

pub(crate) fn conversation(url: &str) -> Event {
    Event::Recording {
        kind: RecordingKind::Conversation,
        status: RecordingStatus::Completed,
        url: Some(url.into()),
        duration_secs: Some(60),
        copy: None,
    }
}

/// Timed events for one call, each with the snapshot in force when it arrives.
#[derive(Clone)]
pub(crate) struct Script {
    policy: Policy,
    available: Option<Targets>,
    /// Who is free on other lines (a menu may send the call there).
    elsewhere: Vec<(LineId, Option<Targets>)>,
    manual: Overrides,
    presence: Presences,
    events: Vec<(u64, Event, Snapshot)>,
}

impl Default for Script {
    fn default() -> Self {
        Self::new()
    }
}

impl Script {
    /// The default policy (two rounds), Ada and Bob free.
    pub(crate) fn new() -> Script {
        Script {
            policy: Policy::default(),
            available: Some(agents()),
            elsewhere: Vec::new(),
            manual: Overrides::default(),
            presence: Presences::default(),
            events: Vec::new(),
        }
    }

    /// Who is free on `line`, when a menu sends the call there.
    pub(crate) fn on_line(mut self, line: &str, available: Option<Targets>) -> Script {
        self.elsewhere.push((LineId::new(line), available));
        self
    }

    /// An operator's override of `line` for the events that follow.
    pub(crate) fn manual(mut self, line: &str, o: Override) -> Script {
        let mut map = (*self.manual).clone();
        map.insert(LineId::new(line), o);
        self.manual = std::sync::Arc::new(map);
        self
    }

    pub(crate) fn policy(mut self, policy: Policy) -> Script {
        self.policy = policy;
        self
    }

    /// What agents are doing, for the events that follow.
    pub(crate) fn presence(mut self, presence: Presences) -> Script {
        self.presence = presence;
        self
    }

    /// Who is free for the events that follow.
    pub(crate) fn available(mut self, available: Option<Targets>) -> Script {
        self.available = available;
        self
    }

    /// `event` at `secs` seconds.
    pub(crate) fn at(mut self, secs: u64, event: Event) -> Script {
        let snapshot = Snapshot {
            manual: self.manual.clone(),
            presence: self.presence.clone(),
            ..Snapshot::ringing(self.available.clone())
        };
        self.events.push((secs, event, snapshot));
        self
    }

    /// Plays every event into call `CA1`, keeping what each step stores; returns the final state
    /// and every fact emitted, in order (checking each names the caller and the line).
    pub(crate) fn play(&self) -> (Option<Call>, Vec<FactKind>) {
        let (call, facts, _) = self.play_all();
        (call, facts)
    }

    /// As [`Script::play`], with each step's document, in order.
    pub(crate) fn play_all(&self) -> (Option<Call>, Vec<FactKind>, Vec<Reply>) {
        let id = sid("CA1");
        let mut call: Option<Call> = None;
        let mut facts = Vec::new();
        let mut replies = Vec::new();
        for (secs, event, snapshot) in &self.events {
            // The line the transition may ring, as the call service works it out.
            let needed = self.policy.line_needed(call.as_ref(), event);
            let snapshot = match self.elsewhere.iter().find(|(l, _)| *l == needed) {
                Some((_, available)) => Snapshot {
                    available: available.clone(),
                    ..snapshot.clone()
                },
                None => snapshot.clone(),
            };
            let step = transition(
                &id,
                call.as_ref(),
                event,
                secs * 1000,
                &self.policy,
                &snapshot,
            );
            for f in step.facts {
                assert_eq!((f.from.as_str(), f.to.as_str()), (CALLER, LINE));
                facts.push(f.kind);
            }
            replies.push(step.reply);
            if let Some(next) = step.next {
                call = Some(next);
            }
        }
        (call, facts, replies)
    }
}

pub(crate) fn outcome(call: &Option<Call>) -> Option<&Outcome> {
    call.as_ref()?.outcome()
}

/// A phase in a few words, for table tests.
pub(crate) fn describe(call: &Call) -> String {
    match &call.phase {
        Phase::Dialing {
            round, group: 0, ..
        } => format!("dialing {round}"),
        Phase::Dialing { round, group, .. } => format!("dialing {round}.{group}"),
        Phase::Menu { attempt } => format!("menu {attempt}"),
        Phase::Conference(room) => match (&room.host, room.talking_since) {
            (_, Some(_)) => "talking in room".into(),
            (Some(_), None) => "host joining".into(),
            (None, None) => format!("room {}.{}", room.round, room.wave),
        },
        Phase::WrapUp { .. } => "wrap-up".into(),
        Phase::Voicemail { recorded: true, .. } => "voicemail recorded".into(),
        Phase::Voicemail { .. } => "voicemail".into(),
        Phase::Closing { .. } => "closing".into(),
        Phase::Ended {
            outcome, settled, ..
        } => format!(
            "ended {}{}",
            outcome.label(),
            if *settled { "" } else { " unsettled" }
        ),
    }
}

/// A fact in a few words, for table tests.
pub(crate) fn name(kind: &FactKind) -> String {
    match kind {
        FactKind::Ringing { .. } => "ringing".into(),
        FactKind::Answered { .. } => "answered".into(),
        FactKind::SentToVoicemail { .. } => "sent to voicemail".into(),
        FactKind::VoicemailLeft { .. } => "voicemail left".into(),
        FactKind::ConversationRecorded { .. } => "conversation recorded".into(),
        FactKind::ConferenceRecorded { .. } => "conference recorded".into(),
        FactKind::Controlled { action, .. } => format!("controlled {action}"),
        FactKind::Ended { outcome, settled } => format!(
            "ended {}{}",
            outcome.label(),
            if *settled { "" } else { " unsettled" }
        ),
        FactKind::Settled { outcome } => format!("settled {}", outcome.label()),
        FactKind::Refused { .. } => "refused".into(),
        FactKind::AfterHours { action } => format!("after hours {action}"),
        FactKind::TurnedAway { reason } => format!("turned away {reason}"),
    }
}
