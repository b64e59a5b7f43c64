//! The one place that decides what happens next in a call.
//!
//! The provider delivers at least once and not always in order, so every arm is written to be
//! idempotent: a duplicate or a late event returns `next: None` (nothing to store) and says why in
//! an [`Effect::Ignored`]. Notices are guarded by [`super::state::Sent`] so each is emitted once.

use crate::domain::{CallSid, Party};

use super::event::{CallStatus, DialStatus, Event, RecordingKind};
use super::state::{Answer, Call, Lead, Leg, Message, Outcome, Phase, Targets};
use super::{secs_between, Millis};

/// At most this many legs are remembered per call (agents × rounds in practice); more are
/// ignored and counted, so a misbehaving peer cannot grow a call without bound.
pub const MAX_LEGS: usize = 64;

/// What the transition needs to know besides the call: the policy and the agents free right now.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    /// How many times every agent is rung before voicemail.
    pub rounds: u8,
    /// The agents that would ring if a round started now.
    pub available: &'a Targets,
    /// Whether a new call may be taken (false past `limits.max_active_calls`).
    pub accepting: bool,
}

/// The result of one transition.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The call's new state; `None` leaves the store as it was (nothing changed, or nothing to
    /// create for an unknown call).
    pub next: Option<Call>,
    pub effects: Vec<Effect>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Tell the people watching (Slack, logs).
    Notify(Notice),
    /// The event changed nothing, and why.
    Ignored(Ignored),
}

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
    /// The call already has [`MAX_LEGS`] legs.
    TooManyLegs,
    /// A recording that is not ready or is empty.
    NoRecording,
    /// A new call while Switchboard holds as many live calls as it may.
    OverCapacity,
}

/// Something worth telling the people who watch the line, about one call.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// Who called.
    pub from: Party,
    /// The number they called (which line: support, hotline...).
    pub line: Party,
    pub kind: NoticeKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NoticeKind {
    /// A call came in and `agents` phones ring.
    Ringing { agents: usize },
    /// An agent answered after the caller waited `after_secs`.
    Answered {
        agent: Option<Box<str>>,
        after_secs: u64,
    },
    /// Nobody answered; the caller goes to voicemail.
    Missed { reason: MissReason },
    /// The caller left a message.
    Voicemail { url: Box<str>, duration_secs: u32 },
    /// The caller hung up while agents rang, after waiting `waited_secs`.
    Abandoned { waited_secs: u64 },
    /// An answered call ended.
    Finished {
        agent: Option<Box<str>>,
        talk_secs: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissReason {
    /// Every round rang out.
    NoAnswer,
    /// No agent was available to ring.
    NoAgents,
    /// Switchboard lost track of the call and recovered by taking a message.
    Recovered,
}

impl NoticeKind {
    fn bit(&self) -> u8 {
        match self {
            NoticeKind::Ringing { .. } => 1,
            NoticeKind::Answered { .. } => 2,
            NoticeKind::Missed { .. } => 4,
            NoticeKind::Voicemail { .. } => 8,
            NoticeKind::Abandoned { .. } => 16,
            NoticeKind::Finished { .. } => 32,
        }
    }
}

impl Step {
    fn ignored(why: Ignored) -> Step {
        Step {
            next: None,
            effects: vec![Effect::Ignored(why)],
        }
    }

    fn changed(call: Call, effects: Vec<Effect>) -> Step {
        Step {
            next: Some(call),
            effects,
        }
    }
}

impl Call {
    /// Queues `notice` unless a notice of its kind was already emitted for this call.
    fn notify(&mut self, effects: &mut Vec<Effect>, kind: NoticeKind) {
        if self.sent.first(kind.bit()) {
            effects.push(Effect::Notify(Notice {
                from: self.from.clone(),
                line: self.to.clone(),
                kind,
            }));
        }
    }

    fn agent_of_leg(&self, leg: &CallSid) -> Option<Box<str>> {
        self.legs
            .iter()
            .find(|l| &l.sid == leg)
            .and_then(|l| l.agent.clone())
    }

    /// Goes to voicemail, telling the watchers the call was missed.
    fn send_to_voicemail(&mut self, lead: Lead, reason: MissReason, effects: &mut Vec<Effect>) {
        self.phase = Phase::Voicemail {
            lead,
            recorded: false,
            message: None,
        };
        self.notify(effects, NoticeKind::Missed { reason });
    }
}

/// Decides the next state of call `sid` (`call`, or `None` when it is unknown) on `event` at `now`.
pub fn transition(
    sid: &CallSid,
    call: Option<&Call>,
    event: &Event,
    now: Millis,
    ctx: &Context<'_>,
) -> Step {
    match event {
        Event::Incoming { from, to } => match call {
            // A repeated voice request: the call keeps its document.
            Some(_) => Step::ignored(Ignored::Duplicate),
            None if !ctx.accepting => Step::ignored(Ignored::OverCapacity),
            None => incoming(sid, from, to, now, ctx),
        },
        Event::DialEnded {
            round,
            status,
            dial_sid,
            duration_secs,
            from,
            to,
        } => match call {
            Some(call) => dial_ended(call, *round, *status, dial_sid, *duration_secs, now, ctx),
            None => recover(sid, from, to, *status, now),
        },
        Event::LegStatus { leg, status, to } => match call {
            Some(call) => leg_status(call, leg, *status, to, now),
            None => Step::ignored(Ignored::UnknownCall),
        },
        Event::CallStatus { status } => match call {
            Some(call) => call_status(call, *status, now),
            None => Step::ignored(Ignored::UnknownCall),
        },
        Event::RecordEnded => match call {
            Some(call) => record_ended(call),
            None => Step::ignored(Ignored::UnknownCall),
        },
        Event::Recording {
            kind,
            completed,
            url,
            duration_secs,
        } => match call {
            Some(call) => recording(call, *kind, *completed, url, *duration_secs),
            None => Step::ignored(Ignored::UnknownCall),
        },
    }
}

fn incoming(sid: &CallSid, from: &Party, to: &Party, now: Millis, ctx: &Context<'_>) -> Step {
    let mut effects = Vec::new();
    if ctx.available.is_empty() {
        let phase = Phase::Voicemail {
            lead: Lead::Greeting,
            recorded: false,
            message: None,
        };
        let mut call = Call::new(sid.clone(), from.clone(), to.clone(), now, phase);
        call.notify(
            &mut effects,
            NoticeKind::Missed {
                reason: MissReason::NoAgents,
            },
        );
        return Step::changed(call, effects);
    }
    let phase = Phase::Dialing {
        round: 1,
        targets: ctx.available.clone(),
        answer: None,
    };
    let mut call = Call::new(sid.clone(), from.clone(), to.clone(), now, phase);
    let agents = ctx.available.len();
    call.notify(&mut effects, NoticeKind::Ringing { agents });
    Step::changed(call, effects)
}

fn dial_ended(
    call: &Call,
    round: Option<u8>,
    status: DialStatus,
    dial_sid: &Option<CallSid>,
    duration_secs: Option<u32>,
    now: Millis,
    ctx: &Context<'_>,
) -> Step {
    let Phase::Dialing {
        round: current,
        answer,
        ..
    } = &call.phase
    else {
        // The call already left the Dial this action is about.
        return Step::ignored(Ignored::Stale);
    };
    if round.is_some_and(|r| r != *current) {
        return Step::ignored(Ignored::Stale);
    }
    let mut next = call.clone();
    let mut effects = Vec::new();
    // The leg the provider bridged is the truth about who answered; a leg callback may have been
    // lost or may still be on its way.
    let bridged_agent = dial_sid.as_ref().and_then(|leg| call.agent_of_leg(leg));
    let answer = match answer {
        Some(a) => Some(Answer {
            agent: bridged_agent.or_else(|| a.agent.clone()),
            ..a.clone()
        }),
        None if status.answered() => {
            let talked_ms = u64::from(duration_secs.unwrap_or(0)) * 1000;
            let answer = Answer {
                agent: bridged_agent,
                at: now.saturating_sub(talked_ms).max(call.started_at),
                leg: dial_sid.clone(),
            };
            let notice = NoticeKind::Answered {
                agent: answer.agent.clone(),
                after_secs: secs_between(call.started_at, answer.at),
            };
            next.notify(&mut effects, notice);
            Some(answer)
        }
        None => None,
    };
    if let Some(answer) = answer {
        next.phase = Phase::WrapUp {
            answer,
            talk_secs: duration_secs,
        };
    } else if *current < ctx.rounds && !ctx.available.is_empty() {
        next.phase = Phase::Dialing {
            round: current + 1,
            targets: ctx.available.clone(),
            answer: None,
        };
    } else {
        next.send_to_voicemail(Lead::Nothing, MissReason::NoAnswer, &mut effects);
    }
    Step::changed(next, effects)
}

/// A Dial action for a call we do not know (forgotten, or state lost in a restart). The caller is
/// still on the line: thank them if they talked, otherwise apologise and take a message.
fn recover(sid: &CallSid, from: &Party, to: &Party, status: DialStatus, now: Millis) -> Step {
    let mut effects = vec![Effect::Ignored(Ignored::UnknownCall)];
    let phase = if status.answered() {
        Phase::WrapUp {
            answer: Answer {
                agent: None,
                at: now,
                leg: None,
            },
            talk_secs: None,
        }
    } else {
        Phase::Voicemail {
            lead: Lead::Apology,
            recorded: false,
            message: None,
        }
    };
    let mut call = Call::new(sid.clone(), from.clone(), to.clone(), now, phase);
    if !status.answered() {
        let reason = MissReason::Recovered;
        call.notify(&mut effects, NoticeKind::Missed { reason });
    }
    Step::changed(call, effects)
}

fn leg_status(call: &Call, leg: &CallSid, status: CallStatus, to: &Party, now: Millis) -> Step {
    let bit = match status {
        CallStatus::Queued | CallStatus::Initiated => Leg::INITIATED,
        CallStatus::Ringing => Leg::RINGING,
        CallStatus::InProgress => Leg::ANSWERED,
        _ => Leg::ENDED,
    };
    let mut next = call.clone();
    let index = match next.legs.iter().position(|l| &l.sid == leg) {
        Some(i) => i,
        None if next.legs.len() >= MAX_LEGS => return Step::ignored(Ignored::TooManyLegs),
        None => {
            let agent = match &call.phase {
                Phase::Dialing { targets, .. } => targets
                    .iter()
                    .find(|a| a.endpoint.matches(to.as_str()))
                    .map(|a| a.name.clone()),
                _ => None,
            };
            next.legs.push(Leg {
                sid: leg.clone(),
                agent,
                seen: 0,
            });
            next.legs.len() - 1
        }
    };
    let entry = &mut next.legs[index];
    if entry.seen & bit != 0 {
        return Step::ignored(Ignored::Duplicate);
    }
    entry.seen |= bit;
    let agent = entry.agent.clone();
    let mut effects = Vec::new();
    if bit == Leg::ANSWERED {
        match &mut next.phase {
            Phase::Dialing { answer, .. } if answer.is_none() => {
                *answer = Some(Answer {
                    agent: agent.clone(),
                    at: now,
                    leg: Some(leg.clone()),
                });
                let after_secs = secs_between(call.started_at, now);
                next.notify(&mut effects, NoticeKind::Answered { agent, after_secs });
            }
            // The Dial action overtook this callback: fill in who it was.
            Phase::WrapUp { answer, .. } if answer.agent.is_none() => {
                answer.agent = agent;
                answer.leg = Some(leg.clone());
            }
            _ => {}
        }
    }
    Step::changed(next, effects)
}

fn call_status(call: &Call, status: CallStatus, now: Millis) -> Step {
    if !status.is_final() {
        return Step::ignored(Ignored::NotFinal);
    }
    let mut next = call.clone();
    let mut effects = Vec::new();
    let outcome = match &call.phase {
        Phase::Ended { .. } => return Step::ignored(Ignored::Duplicate),
        Phase::Dialing { answer: None, .. } => {
            let waited_secs = secs_between(call.started_at, now);
            next.notify(&mut effects, NoticeKind::Abandoned { waited_secs });
            Outcome::Abandoned
        }
        Phase::Dialing {
            answer: Some(answer),
            ..
        } => finished(&mut next, answer, None, now, &mut effects),
        Phase::WrapUp { answer, talk_secs } => {
            finished(&mut next, answer, *talk_secs, now, &mut effects)
        }
        Phase::Voicemail {
            message: Some(m), ..
        } => Outcome::Voicemail(m.clone()),
        Phase::Voicemail { message: None, .. } => Outcome::Missed,
    };
    next.phase = Phase::Ended { outcome, at: now };
    Step::changed(next, effects)
}

fn finished(
    next: &mut Call,
    answer: &Answer,
    talk_secs: Option<u32>,
    now: Millis,
    effects: &mut Vec<Effect>,
) -> Outcome {
    let talk_secs = talk_secs.map_or_else(|| secs_between(answer.at, now), u64::from);
    let notice = NoticeKind::Finished {
        agent: answer.agent.clone(),
        talk_secs,
    };
    next.notify(effects, notice);
    Outcome::Finished {
        agent: answer.agent.clone(),
        talk_secs,
    }
}

fn record_ended(call: &Call) -> Step {
    match &call.phase {
        Phase::Voicemail {
            recorded: false,
            lead,
            message,
        } => {
            let mut next = call.clone();
            next.phase = Phase::Voicemail {
                lead: *lead,
                recorded: true,
                message: message.clone(),
            };
            Step::changed(next, Vec::new())
        }
        Phase::Voicemail { recorded: true, .. } => Step::ignored(Ignored::Duplicate),
        _ => Step::ignored(Ignored::Stale),
    }
}

fn recording(
    call: &Call,
    kind: RecordingKind,
    completed: bool,
    url: &Option<Box<str>>,
    duration_secs: Option<u32>,
) -> Step {
    let Some(url) = url
        .as_ref()
        .filter(|_| completed && duration_secs != Some(0))
    else {
        return Step::ignored(Ignored::NoRecording);
    };
    let mut next = call.clone();
    let mut effects = Vec::new();
    if kind == RecordingKind::Conversation {
        if call.recording.is_some() {
            return Step::ignored(Ignored::Duplicate);
        }
        next.recording = Some(url.clone());
        return Step::changed(next, effects);
    }
    let message = Message {
        url: url.clone(),
        duration_secs: duration_secs.unwrap_or(0),
    };
    match &mut next.phase {
        Phase::Voicemail { message: m, .. } if m.is_none() => *m = Some(message.clone()),
        Phase::Ended { outcome, .. } if *outcome == Outcome::Missed => {
            *outcome = Outcome::Voicemail(message.clone());
        }
        Phase::Voicemail { .. } | Phase::Ended { .. } => return Step::ignored(Ignored::Duplicate),
        _ => return Step::ignored(Ignored::Stale),
    }
    let notice = NoticeKind::Voicemail {
        url: message.url,
        duration_secs: message.duration_secs,
    };
    next.notify(&mut effects, notice);
    Step::changed(next, effects)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::call::Reply;
    use crate::domain::{Agent, Endpoint};

    fn sid(s: &str) -> CallSid {
        CallSid::parse(s).expect("sid")
    }

    fn party(s: &str) -> Party {
        Party::parse(s).expect("party")
    }

    fn agents() -> Targets {
        Arc::from(vec![
            Agent::new("Ada", Endpoint::sip("sip:ada@x.example").expect("sip")).expect("agent"),
            Agent::new("Bob", Endpoint::number("+12025550100").expect("num")).expect("agent"),
        ])
    }

    fn none() -> Targets {
        Arc::from(Vec::new())
    }

    /// Plays `events` (with their times in seconds) into a fresh call and returns the final state
    /// and every notice emitted, in order.
    fn play(available: &Targets, events: &[(u64, Event)]) -> (Option<Call>, Vec<NoticeKind>) {
        let ctx = Context {
            rounds: 2,
            available,
            accepting: true,
        };
        let id = sid("CA1");
        let mut call: Option<Call> = None;
        let mut notices = Vec::new();
        for (secs, event) in events {
            let step = transition(&id, call.as_ref(), event, secs * 1000, &ctx);
            for e in step.effects {
                if let Effect::Notify(n) = e {
                    assert_eq!(
                        (n.from.as_str(), n.line.as_str()),
                        ("+12025550142", "+18005550100")
                    );
                    notices.push(n.kind);
                }
            }
            if let Some(next) = step.next {
                call = Some(next);
            }
        }
        (call, notices)
    }

    fn incoming() -> Event {
        Event::Incoming {
            from: party("+12025550142"),
            to: party("+18005550100"),
        }
    }

    fn dial(round: u8, status: DialStatus, duration: Option<u32>) -> Event {
        Event::DialEnded {
            round: Some(round),
            status,
            dial_sid: Some(sid("LEG-ada-1")),
            duration_secs: duration,
            from: party("+12025550142"),
            to: party("+18005550100"),
        }
    }

    fn leg(leg_sid: &str, status: CallStatus, to: &str) -> Event {
        Event::LegStatus {
            leg: sid(leg_sid),
            status,
            to: party(to),
        }
    }

    fn parent(status: CallStatus) -> Event {
        Event::CallStatus { status }
    }

    fn voicemail(url: &str, secs: u32) -> Event {
        Event::Recording {
            kind: RecordingKind::Voicemail,
            completed: true,
            url: Some(url.into()),
            duration_secs: Some(secs),
        }
    }

    fn outcome(call: &Option<Call>) -> Option<&Outcome> {
        match &call.as_ref()?.phase {
            Phase::Ended { outcome, .. } => Some(outcome),
            _ => None,
        }
    }

    #[test]
    fn answered_on_the_first_round() {
        let (call, notices) = play(
            &agents(),
            &[
                (0, incoming()),
                (
                    1,
                    leg("LEG-ada-1", CallStatus::Initiated, "sip:ada@x.example"),
                ),
                (1, leg("LEG-bob-1", CallStatus::Ringing, "+12025550100")),
                (
                    5,
                    leg("LEG-ada-1", CallStatus::InProgress, "sip:ada@x.example"),
                ),
                (65, dial(1, DialStatus::Completed, Some(60))),
                (67, parent(CallStatus::Completed)),
            ],
        );
        let ada = Some(Box::from("Ada"));
        assert_eq!(
            notices,
            vec![
                NoticeKind::Ringing { agents: 2 },
                NoticeKind::Answered {
                    agent: ada.clone(),
                    after_secs: 5
                },
                NoticeKind::Finished {
                    agent: ada.clone(),
                    talk_secs: 60
                },
            ]
        );
        assert_eq!(
            outcome(&call),
            Some(&Outcome::Finished {
                agent: ada,
                talk_secs: 60
            })
        );
    }

    #[test]
    fn each_step_answers_with_its_document() {
        let avail = agents();
        let ctx = Context {
            rounds: 2,
            available: &avail,
            accepting: true,
        };
        let id = sid("CA1");
        let step = transition(&id, None, &incoming(), 0, &ctx);
        let call = step.next.expect("created");
        assert!(matches!(call.reply(), Reply::Ring { round: 1, .. }));
        let call = transition(
            &id,
            Some(&call),
            &dial(1, DialStatus::NoAnswer, None),
            20,
            &ctx,
        )
        .next
        .expect("round 2");
        assert!(matches!(call.reply(), Reply::Ring { round: 2, .. }));
        let call = transition(
            &id,
            Some(&call),
            &dial(2, DialStatus::NoAnswer, None),
            40,
            &ctx,
        )
        .next
        .expect("voicemail");
        assert_eq!(
            call.reply(),
            Reply::Voicemail {
                lead: Lead::Nothing
            }
        );
        let call = transition(&id, Some(&call), &Event::RecordEnded, 60, &ctx)
            .next
            .expect("recorded");
        assert_eq!(call.reply(), Reply::Goodbye);
        let call = transition(&id, Some(&call), &parent(CallStatus::Completed), 61, &ctx)
            .next
            .expect("ended");
        assert_eq!(call.reply(), Reply::Hangup);
    }

    #[test]
    fn answered_on_the_second_round() {
        let (call, notices) = play(
            &agents(),
            &[
                (0, incoming()),
                (20, dial(1, DialStatus::NoAnswer, None)),
                (30, leg("LEG-bob-2", CallStatus::InProgress, "+12025550100")),
                (90, parent(CallStatus::Completed)),
            ],
        );
        assert_eq!(notices.len(), 3);
        assert_eq!(
            notices[1],
            NoticeKind::Answered {
                agent: Some("Bob".into()),
                after_secs: 30
            }
        );
        assert_eq!(
            outcome(&call),
            Some(&Outcome::Finished {
                agent: Some("Bob".into()),
                talk_secs: 60
            })
        );
    }

    #[test]
    fn voicemail_after_every_round_rang_out() {
        let (call, notices) = play(
            &agents(),
            &[
                (0, incoming()),
                (20, dial(1, DialStatus::NoAnswer, None)),
                (40, dial(2, DialStatus::Busy, None)),
                (70, Event::RecordEnded),
                (71, parent(CallStatus::Completed)),
                // The recording callback usually arrives after the call ended.
                (75, voicemail("https://rec.example/1.mp3", 25)),
            ],
        );
        let message = Message {
            url: "https://rec.example/1.mp3".into(),
            duration_secs: 25,
        };
        assert_eq!(
            &notices[1..],
            &[
                NoticeKind::Missed {
                    reason: MissReason::NoAnswer
                },
                NoticeKind::Voicemail {
                    url: message.url.clone(),
                    duration_secs: 25
                }
            ]
        );
        assert_eq!(outcome(&call), Some(&Outcome::Voicemail(message)));
    }

    #[test]
    fn caller_hanging_up_while_agents_ring_is_abandoned_and_nothing_else_is_sent() {
        let (call, notices) = play(
            &agents(),
            &[
                (0, incoming()),
                (12, parent(CallStatus::Completed)),
                // The provider cancels the legs and may still request the Dial action.
                (
                    12,
                    leg("LEG-ada-1", CallStatus::Canceled, "sip:ada@x.example"),
                ),
                (13, dial(1, DialStatus::NoAnswer, None)),
                (13, parent(CallStatus::Completed)),
            ],
        );
        assert_eq!(&notices[1..], &[NoticeKind::Abandoned { waited_secs: 12 }]);
        assert_eq!(outcome(&call), Some(&Outcome::Abandoned));
        assert_eq!(call.expect("call").reply(), Reply::Hangup);
    }

    #[test]
    fn no_agents_goes_straight_to_voicemail_after_the_greeting() {
        let (call, notices) = play(&none(), &[(0, incoming())]);
        assert_eq!(
            notices,
            vec![NoticeKind::Missed {
                reason: MissReason::NoAgents
            }]
        );
        assert_eq!(
            call.expect("call").reply(),
            Reply::Voicemail {
                lead: Lead::Greeting
            }
        );
    }

    #[test]
    fn duplicated_and_reordered_callbacks_change_nothing() {
        let once = [
            (0, incoming()),
            (
                5,
                leg("LEG-ada-1", CallStatus::InProgress, "sip:ada@x.example"),
            ),
            (65, dial(1, DialStatus::Completed, Some(60))),
            (66, parent(CallStatus::Completed)),
        ];
        let (expected_call, expected_notices) = play(&agents(), &once);
        let noisy = [
            (0, incoming()),
            (0, incoming()),
            (
                5,
                leg("LEG-ada-1", CallStatus::InProgress, "sip:ada@x.example"),
            ),
            // Duplicates of everything, and an old round's action.
            (
                6,
                leg("LEG-ada-1", CallStatus::InProgress, "sip:ada@x.example"),
            ),
            (65, dial(1, DialStatus::Completed, Some(60))),
            (65, dial(1, DialStatus::Completed, Some(60))),
            (66, parent(CallStatus::Completed)),
            (66, parent(CallStatus::Completed)),
            (
                67,
                leg("LEG-ada-1", CallStatus::InProgress, "sip:ada@x.example"),
            ),
        ];
        let (call, notices) = play(&agents(), &noisy);
        assert_eq!(notices, expected_notices);
        assert_eq!(outcome(&call), outcome(&expected_call));
    }

    #[test]
    fn a_dial_action_that_overtakes_the_answered_callback_still_names_the_agent() {
        let (call, notices) = play(
            &agents(),
            &[
                (0, incoming()),
                (
                    1,
                    leg("LEG-ada-1", CallStatus::Ringing, "sip:ada@x.example"),
                ),
                (65, dial(1, DialStatus::Completed, Some(60))),
                (
                    66,
                    leg("LEG-ada-1", CallStatus::InProgress, "sip:ada@x.example"),
                ),
                (67, parent(CallStatus::Completed)),
            ],
        );
        assert_eq!(
            notices[1],
            NoticeKind::Answered {
                agent: Some("Ada".into()),
                after_secs: 5
            }
        );
        assert_eq!(
            outcome(&call),
            Some(&Outcome::Finished {
                agent: Some("Ada".into()),
                talk_secs: 60
            })
        );
    }

    #[test]
    fn events_for_unknown_calls_are_ignored_except_voice_requests() {
        let avail = agents();
        let ctx = Context {
            rounds: 2,
            available: &avail,
            accepting: true,
        };
        let id = sid("CA-unknown");
        for event in [
            parent(CallStatus::Completed),
            leg("LEG", CallStatus::Ringing, "sip:ada@x.example"),
            Event::RecordEnded,
            voicemail("https://rec.example/x", 3),
        ] {
            assert_eq!(
                transition(&id, None, &event, 0, &ctx),
                Step::ignored(Ignored::UnknownCall)
            );
        }
        // A Dial action for a forgotten call recovers: apologise and take a message.
        let step = transition(&id, None, &dial(1, DialStatus::NoAnswer, None), 0, &ctx);
        let call = step.next.expect("recovered");
        assert_eq!(
            call.reply(),
            Reply::Voicemail {
                lead: Lead::Apology
            }
        );
        let step = transition(&id, None, &dial(1, DialStatus::Completed, Some(3)), 0, &ctx);
        assert_eq!(step.next.expect("recovered").reply(), Reply::AfterCall);
    }

    #[test]
    fn one_round_configured_goes_to_voicemail_after_it() {
        let avail = agents();
        let ctx = Context {
            rounds: 1,
            available: &avail,
            accepting: true,
        };
        let id = sid("CA1");
        let call = transition(&id, None, &incoming(), 0, &ctx)
            .next
            .expect("call");
        let call = transition(
            &id,
            Some(&call),
            &dial(1, DialStatus::NoAnswer, None),
            9,
            &ctx,
        )
        .next
        .expect("voicemail");
        assert!(matches!(call.phase, Phase::Voicemail { .. }));
    }

    #[test]
    fn legs_are_bounded() {
        let avail = agents();
        let ctx = Context {
            rounds: 2,
            available: &avail,
            accepting: true,
        };
        let id = sid("CA1");
        let mut call = transition(&id, None, &incoming(), 0, &ctx)
            .next
            .expect("call");
        for i in 0..MAX_LEGS {
            let e = leg(&format!("LEG{i}"), CallStatus::Ringing, "sip:x@y.example");
            call = transition(&id, Some(&call), &e, 1, &ctx).next.expect("leg");
        }
        let e = leg("LEG-extra", CallStatus::Ringing, "sip:x@y.example");
        assert_eq!(
            transition(&id, Some(&call), &e, 1, &ctx),
            Step::ignored(Ignored::TooManyLegs)
        );
    }
}
