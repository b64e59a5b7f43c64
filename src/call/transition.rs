//! The one place that decides what happens next in a call: which document the caller gets,
//! where the call goes, and what happened (the facts).
//!
//! The provider delivers at least once and not always in order, so every arm is written to be
//! idempotent: a duplicate or a late event returns `next: None` (nothing to store) and says why in
//! [`Step::ignored`]. Facts are guarded by [`super::state::Emitted`] so each kind is emitted once.

use crate::domain::{CallSid, LineId, Party, ProviderCopy};
use crate::time::{secs_between, Millis};

use super::conference::{self, Command};
use super::event::{CallStatus, DialStatus, Event, RecordingKind, RecordingStatus, ScreenStep};
use super::fact::{Fact, FactKind, Ignored, MissReason};
use super::policy::{
    is_anonymous, AfterHours, Anonymous, MenuChoice, MenuStep, Policy, Snapshot, Turnaway,
    UnknownNumber,
};
use super::routing::{self, Mark};
use super::state::{
    Call, Intro, Leg, LegStep, Message, Outcome, Phase, Pickup, Reply, Targets, TurnAwayReason,
};

/// At most this many legs are remembered per call (agents × rounds in practice); more are
/// ignored and counted, so a misbehaving peer cannot grow a call without bound.
pub const MAX_LEGS: usize = 64;

/// The result of one transition.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The call's new state; `None` leaves the store as it was (nothing changed, or nothing to
    /// create for an unknown call).
    pub next: Option<Call>,
    /// What happened, in order.
    pub facts: Vec<Fact>,
    /// The document the call is on now (what a voice request is answered with).
    pub reply: Reply,
    /// The line whose prompts the document speaks.
    pub line: LineId,
    /// Why nothing changed, when nothing did.
    pub ignored: Option<Ignored>,
    /// What changes for agents: one took the call, one's conversation ended.
    pub marks: Vec<Mark>,
    /// What happened to the agents' legs, for the ledger.
    pub legs: Vec<LegFact>,
    /// What the provider must be asked to do through its REST API (conference mode).
    pub commands: Vec<Command>,
}

/// What a step did to the agents' legs: a `<Dial>` rang these agents; one of them took the call;
/// a `<Dial>` ended with nobody taking it (its agents missed it). Worked out by comparing the
/// call before and after the step, so each is said once, whatever the provider repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegFact {
    Rang {
        round: u8,
        group: u8,
        /// (id, name) of each agent rung.
        agents: Vec<(Box<str>, Box<str>)>,
    },
    Taken {
        round: u8,
        group: u8,
        agent_id: Option<Box<str>>,
        agent: Option<Box<str>>,
    },
    RangOut {
        round: u8,
        group: u8,
    },
}

/// The `<Dial>` a call is ringing (or the wave of organizers its room is calling), and who took
/// it, if anyone.
fn dial_of(call: &Call) -> Option<(u8, u8, &Targets, Option<&Pickup>)> {
    match &call.phase {
        Phase::Conference(room) if room.talking_since.is_none() || room.host.is_some() => {
            Some((room.round, room.wave, &room.ringing, room.host.as_ref()))
        }
        Phase::Dialing {
            round,
            group,
            ringing,
            pickup,
            ..
        } => Some((*round, *group, ringing, pickup.as_ref())),
        _ => None,
    }
}

/// The leg facts of the step from `before` to `after` on `event`.
fn leg_facts(before: Option<&Call>, after: &Call, event: &Event) -> Vec<LegFact> {
    let was = before.and_then(dial_of);
    let mut facts = Vec::new();
    if let Some((round, group, ringing, _)) = dial_of(after) {
        if was.is_none_or(|(r, g, ..)| (r, g) != (round, group)) {
            let agents = ringing
                .iter()
                .map(|a| (a.id.clone(), a.name.clone()))
                .collect();
            facts.push(LegFact::Rang {
                round,
                group,
                agents,
            });
        }
    }
    let Some((round, group, _, None)) = was else {
        return facts;
    };
    let taken = match &after.phase {
        Phase::Dialing {
            round: r,
            group: g,
            pickup: Some(p),
            ..
        } if (*r, *g) == (round, group) => Some(p),
        Phase::Conference(room) if (room.round, room.wave) == (round, group) => room.host.as_ref(),
        Phase::WrapUp { pickup, .. } => Some(pickup),
        _ => None,
    };
    // A room's wave is over when the room calls another one or sends the caller to voicemail.
    let wave_over = before.is_some_and(|b| matches!(b.phase, Phase::Conference(_)))
        && match &after.phase {
            Phase::Conference(room) => (room.round, room.wave) != (round, group),
            Phase::Voicemail { .. } => true,
            _ => false,
        };
    match taken {
        Some(p) => facts.insert(
            0,
            LegFact::Taken {
                round,
                group,
                agent_id: p.agent_id.clone(),
                agent: p.agent.clone(),
            },
        ),
        None if matches!(event, Event::DialEnded { .. }) || wave_over => {
            facts.insert(0, LegFact::RangOut { round, group })
        }
        None => {}
    }
    facts
}

/// What one arm decided; [`transition`] adds the reply.
pub(super) struct Change {
    pub(super) next: Option<Call>,
    pub(super) facts: Vec<Fact>,
    pub(super) ignored: Option<Ignored>,
    /// The document, when it is not the call's own: the usual one for an unknown call is not
    /// it, or the request is an agent's (a screened leg's whisper).
    pub(super) reply: Option<Reply>,
    pub(super) marks: Vec<Mark>,
    pub(super) commands: Vec<Command>,
}

impl Change {
    pub(super) fn ignored(why: Ignored) -> Change {
        Change {
            next: None,
            facts: Vec::new(),
            ignored: Some(why),
            reply: None,
            marks: Vec::new(),
            commands: Vec::new(),
        }
    }

    pub(super) fn to(call: Call, facts: Vec<Fact>) -> Change {
        Change {
            next: Some(call),
            facts,
            ignored: None,
            reply: None,
            marks: Vec::new(),
            commands: Vec::new(),
        }
    }

    /// Nothing kept; these facts, this document.
    fn gone(facts: Vec<Fact>, reply: Reply) -> Change {
        Change {
            next: None,
            facts,
            ignored: None,
            reply: Some(reply),
            marks: Vec::new(),
            commands: Vec::new(),
        }
    }

    /// Nothing changes; the agent's leg gets `reply`.
    pub(super) fn answer(reply: Reply) -> Change {
        Change::gone(Vec::new(), reply)
    }

    /// Nothing changes, nothing is wrong: the call's own document.
    fn unchanged() -> Change {
        Change {
            next: None,
            facts: Vec::new(),
            ignored: None,
            reply: None,
            marks: Vec::new(),
            commands: Vec::new(),
        }
    }

    /// With these marks.
    pub(super) fn marking(mut self, marks: Vec<Mark>) -> Change {
        self.marks = marks;
        self
    }
}

/// The flag of [`super::state::Emitted`] that says an agent's release was marked.
const RELEASED: u8 = 15;

impl Call {
    /// Emits a fact of `kind` unless one of its kind was already emitted for this call.
    pub(super) fn emit(&mut self, facts: &mut Vec<Fact>, kind: FactKind) {
        if self.emitted.first(kind.flag()) {
            facts.push(Fact {
                from: self.from.clone(),
                to: self.to.clone(),
                line: self.line.clone(),
                kind,
            });
        }
    }

    fn leg(&self, leg: &CallSid) -> Option<&Leg> {
        self.legs.iter().find(|l| &l.sid == leg)
    }

    /// The agent `pickup` names took this call at `pickup.at`: their mark, when known.
    pub(super) fn taken(&self, pickup: &Pickup, policy: &Policy) -> Vec<Mark> {
        let Some(agent) = pickup.agent_id.clone() else {
            return Vec::new();
        };
        let longest = u64::from(policy.time_limit_secs) * 1000;
        let wrap = u64::from(pickup.wrap_up_secs) * 1000;
        vec![Mark::Answered {
            agent,
            call: self.sid.clone(),
            at: pickup.at,
            until: pickup.at.saturating_add(longest + wrap),
        }]
    }

    /// The conversation of `pickup` ended at `now`: its agent's release, once per call.
    pub(super) fn release(&mut self, pickup: &Pickup, now: Millis) -> Vec<Mark> {
        match &pickup.agent_id {
            Some(agent) if self.emitted.first(RELEASED) => vec![Mark::Ended {
                agent: agent.clone(),
                call: self.sid.clone(),
                at: now,
                wrap_up_secs: pickup.wrap_up_secs,
            }],
            _ => Vec::new(),
        }
    }

    /// Goes to voicemail, saying why.
    pub(super) fn send_to_voicemail(
        &mut self,
        intro: Intro,
        reason: MissReason,
        facts: &mut Vec<Fact>,
    ) {
        self.phase = Phase::Voicemail {
            intro,
            recorded: false,
            message: None,
        };
        self.emit(facts, FactKind::SentToVoicemail { reason });
    }

    /// Ends the call with `outcome`.
    pub(super) fn end(
        &mut self,
        outcome: Outcome,
        settled: bool,
        now: Millis,
        facts: &mut Vec<Fact>,
    ) {
        self.phase = Phase::Ended {
            outcome: outcome.clone(),
            at: now,
            settled,
        };
        self.emit(facts, FactKind::Ended { outcome, settled });
    }

    /// Settles an unsettled outcome.
    fn settle(&mut self, outcome: Outcome, facts: &mut Vec<Fact>) {
        if let Phase::Ended {
            outcome: o,
            settled,
            ..
        } = &mut self.phase
        {
            *o = outcome.clone();
            *settled = true;
        }
        self.emit(facts, FactKind::Settled { outcome });
    }
}

/// Decides the next state of call `sid` (`call`, or `None` when the store holds none) on `event`
/// at `now`, under `policy`, given what is true right now (`snapshot`).
pub fn transition(
    sid: &CallSid,
    call: Option<&Call>,
    event: &Event,
    now: Millis,
    policy: &Policy,
    snapshot: &Snapshot,
) -> Step {
    let change = match (event, call) {
        (Event::LegStatus { status, .. } | Event::CallStatus { status }, _)
            if *status == CallStatus::Other =>
        {
            Change::ignored(Ignored::Unrequested)
        }
        // A repeated voice request: the call keeps its document.
        (Event::Incoming { .. }, Some(_)) => Change::ignored(Ignored::Duplicate),
        (Event::Incoming { from, to, account }, None) => {
            let mut change = new_call(sid, from, to, now, policy, snapshot);
            if let Some(call) = change.next.as_mut() {
                call.account = account.clone();
            }
            change
        }
        (e @ Event::DialEnded { .. }, Some(call)) => dial_ended(call, e, now, policy, snapshot),
        (
            Event::DialEnded {
                from, to, status, ..
            },
            None,
        ) => recover(sid, policy.line_of(event), from, to, *status, now),
        (
            Event::MenuInput {
                attempt, digits, ..
            },
            Some(call),
        ) => menu_input(call, *attempt, digits.as_deref(), now, policy, snapshot),
        // The menu of a call we do not know: apologise and take a message.
        (Event::MenuInput { from, to, .. }, None) => recover(
            sid,
            policy.line_of(event),
            from,
            to,
            DialStatus::NoAnswer,
            now,
        ),
        (
            Event::Screen {
                round,
                group,
                agent,
                leg,
                step,
            },
            Some(call),
        ) => screen(call, (*round, *group), agent, leg, step, now, policy),
        // The caller's call is over (and forgotten): the agent is told.
        (Event::Screen { .. }, None) => Change::answer(Reply::CallerGone),
        (Event::LegStatus { leg, status, to }, Some(call)) => {
            leg_status(call, leg, *status, to, now, policy)
        }
        (Event::CallStatus { status }, Some(call)) => call_status(call, *status, now, policy),
        (Event::RecordEnded, Some(call)) => record_ended(call),
        (
            Event::Recording {
                kind,
                status,
                url,
                duration_secs,
                copy,
            },
            Some(call),
        ) => recording(call, *kind, *status, url, *duration_secs, copy),
        (Event::Expired, Some(call)) => match &call.phase {
            Phase::Conference(room) => conference::timer(call, room, now, policy, snapshot),
            Phase::Voicemail { .. } if call.moving.is_some() => conference::move_again(call, now),
            _ => expired(call),
        },
        (
            Event::Organizer {
                agent,
                attempt,
                leg,
                step,
            },
            Some(call),
        ) => conference::organizer(call, agent, *attempt, leg, step, now, policy),
        // The caller's call is over (and forgotten): the organizer is told.
        (Event::Organizer { .. }, None) => Change::answer(Reply::CallerGone),
        (
            Event::OrganizerStatus {
                agent,
                attempt,
                leg,
                status,
            },
            Some(call),
        ) => {
            conference::organizer_status(call, agent, *attempt, leg, *status, now, policy, snapshot)
        }
        (
            Event::OrganizerPlaced {
                leg: None,
                placed: true,
                ..
            },
            Some(_),
        ) => {
            // Placed, but the answer did not say its CallSid: its callbacks will.
            Change::unchanged()
        }
        (
            Event::OrganizerPlaced {
                agent,
                attempt,
                leg,
                placed,
            },
            Some(call),
        ) => {
            let leg = leg.as_ref().filter(|_| *placed);
            conference::organizer_placed(call, agent, *attempt, leg, now, policy, snapshot)
        }
        (
            Event::Room {
                change,
                conference,
                label,
                leg,
            },
            Some(call),
        ) => {
            let label = label
                .as_deref()
                .map(str::to_owned)
                .or_else(|| conference::label_of_leg(call, leg.as_ref()?));
            conference::room_changed(call, *change, conference, label.as_deref(), now, policy)
        }
        (Event::RoomLeft, Some(call)) => conference::room_left(call, now, policy),
        (Event::Announce { agent }, call) => {
            let name = call.and_then(|c| conference::announced_name(c, agent));
            match name {
                Some(name) => Change::answer(Reply::Announce { name }),
                None => Change::answer(Reply::Hangup),
            }
        }
        // The caller fetched the document the REST API moved them to: the move is done.
        (Event::Resume, Some(call)) if call.moving.is_some() => {
            let mut next = call.clone();
            next.moving = None;
            Change::to(next, Vec::new())
        }
        (Event::Resume, Some(_)) => Change::unchanged(),
        (Event::Control { control, by }, Some(call)) => {
            conference::control(call, control, by, policy)
        }
        (Event::RecordingResult { start, ok, sid }, Some(call)) => {
            conference::recording_result(call, *start, *ok, sid.as_deref())
        }
        (_, None) => Change::ignored(Ignored::UnknownCall),
    };
    let mut change = change;
    // A call put on `Dialing` on a conference-mode line waits in its room instead.
    if let Some(next) = change.next.as_mut() {
        conference::seat(call, next, now, policy, &mut change.commands);
    }
    let held = change.next.as_ref().or(call);
    let line = held.map_or_else(|| policy.line_of(event), |c| c.line.clone());
    let reply = match (held, change.reply) {
        (_, Some(reply)) => reply,
        (Some(call), None) => call.reply(),
        (None, None) => unknown_call_reply(event),
    };
    let legs = change
        .next
        .as_ref()
        .map_or_else(Vec::new, |next| leg_facts(call, next, event));
    Step {
        next: change.next,
        facts: change.facts,
        reply,
        line,
        ignored: change.ignored,
        marks: change.marks,
        legs,
        commands: change.commands,
    }
}

/// The document for a voice request about a call the store does not hold (and did not create).
fn unknown_call_reply(event: &Event) -> Reply {
    match event {
        // Only refused when over capacity: new calls are otherwise always taken.
        Event::Incoming { .. } => Reply::Unavailable,
        // The message (if any) is taken; close politely.
        Event::RecordEnded => Reply::Goodbye,
        _ => Reply::Voicemail {
            intro: Intro::Apology,
        },
    }
}

fn new_call(
    sid: &CallSid,
    from: &Party,
    to: &Party,
    now: Millis,
    policy: &Policy,
    snapshot: &Snapshot,
) -> Change {
    let line = policy.line_for(to);
    let gate = &policy.gate;
    // Who may call is decided first: a turned-away caller does not count against capacity.
    if policy.blocked(from) {
        let how = gate.blocked_action;
        return turn_away(sid, line, from, to, now, TurnAwayReason::Blocked, how);
    }
    let anonymous = is_anonymous(from.as_str());
    if anonymous && gate.anonymous == Anonymous::Reject {
        let reason = TurnAwayReason::Anonymous;
        return turn_away(sid, line, from, to, now, reason, Turnaway::Reject);
    }
    if let (None, Some(UnknownNumber::TurnAway(how))) =
        (policy.listed_line(to), &gate.unknown_number)
    {
        let reason = TurnAwayReason::UnknownNumber;
        return turn_away(sid, line, from, to, now, reason, *how);
    }
    if snapshot.live_calls >= policy.max_active_calls {
        // Nothing is stored: a refused caller hears the apology and the call is not tracked.
        let fact = Fact {
            from: from.clone(),
            to: to.clone(),
            line,
            kind: FactKind::Refused {
                live_calls: snapshot.live_calls,
            },
        };
        let mut change = Change::unchanged();
        change.facts.push(fact);
        return change;
    }
    let mut facts = Vec::new();
    // The line's hours are read once, when the call arrives; a call in progress keeps its path.
    if !policy.status(&line, &snapshot.manual, now).open {
        let action = policy.after_hours_of(&line);
        let phase = after_hours_phase(action, &line, now, policy, true);
        let call = Call::new(sid.clone(), line, from.clone(), to.clone(), now, phase);
        return after_hours(call, action);
    }
    // Anonymous callers may be sent straight to voicemail.
    let anonymous_to_voicemail = anonymous && gate.anonymous == Anonymous::Voicemail;
    if !anonymous_to_voicemail && policy.menu_of(&line).is_some() {
        let mut call = Call::new(
            sid.clone(),
            line,
            from.clone(),
            to.clone(),
            now,
            Phase::Menu { attempt: 1 },
        );
        call.greeted = true;
        return Change::to(call, facts);
    }
    let phase = snapshot
        .available
        .as_ref()
        .filter(|_| !anonymous_to_voicemail)
        .and_then(|available| first_dial(sid, &line, 1, available, policy, snapshot, now));
    let Some(phase) = phase else {
        let phase = Phase::Voicemail {
            intro: Intro::Greeting,
            recorded: false,
            message: None,
        };
        let mut call = Call::new(sid.clone(), line, from.clone(), to.clone(), now, phase);
        let reason = match anonymous_to_voicemail {
            true => MissReason::Anonymous,
            false => MissReason::NoAgents,
        };
        call.emit(&mut facts, FactKind::SentToVoicemail { reason });
        return Change::to(call, facts);
    };
    let agents = phase.rung();
    let mut call = Call::new(sid.clone(), line, from.clone(), to.clone(), now, phase);
    call.emit(&mut facts, FactKind::Ringing { agents });
    Change::to(call, facts)
}

/// What a call to a closed line does: the after-hours prompt, then the line's after-hours action.
/// `unanswered`: the call is new (a `<Reject>` can still refuse it without answering); a call the
/// menu sent here is answered already, so `reject` becomes the message.
fn after_hours_phase(
    action: &AfterHours,
    line: &LineId,
    now: Millis,
    policy: &Policy,
    unanswered: bool,
) -> Phase {
    match action {
        AfterHours::Voicemail => Phase::Voicemail {
            intro: Intro::AfterHours,
            recorded: false,
            message: None,
        },
        AfterHours::Forward(targets) => forward(targets.clone(), line, policy),
        AfterHours::Reject if unanswered => Phase::Ended {
            outcome: Outcome::Closed,
            at: now,
            settled: true,
        },
        AfterHours::Message | AfterHours::Reject => Phase::Closing { turned_away: None },
    }
}

/// `call`, on its after-hours phase, is marked after hours and says so.
fn after_hours(mut call: Call, action: &AfterHours) -> Change {
    call.after_hours = true;
    let mut facts = Vec::new();
    let action = action.label();
    call.emit(&mut facts, FactKind::AfterHours { action });
    if call.is_ended() {
        // Rejected before it was answered: nothing to keep, the outcome is final now.
        let outcome = Outcome::Closed;
        call.emit(
            &mut facts,
            FactKind::Ended {
                outcome,
                settled: true,
            },
        );
        return Change::gone(facts, Reply::Reject);
    }
    Change::to(call, facts)
}

/// The caller answered the menu of `attempt` with `digits` (or did not).
fn menu_input(
    call: &Call,
    attempt: u8,
    digits: Option<&str>,
    now: Millis,
    policy: &Policy,
    snapshot: &Snapshot,
) -> Change {
    let current = match call.phase {
        Phase::Menu { attempt } => attempt,
        _ => return Change::ignored(Ignored::Stale),
    };
    if attempt != current {
        return Change::ignored(Ignored::Stale);
    }
    // A call restored under a configuration without this menu rings its line.
    let step = policy
        .menu_of(&call.line)
        .map_or(MenuStep::Go(MenuChoice::Ring), |m| m.step(attempt, digits));
    let mut next = call.clone();
    let mut facts = Vec::new();
    let choice = match step {
        MenuStep::Again(attempt) => {
            next.phase = Phase::Menu { attempt };
            return Change::to(next, facts);
        }
        MenuStep::Go(choice) => choice,
    };
    match choice {
        MenuChoice::Voicemail => {
            next.send_to_voicemail(Intro::PromptOnly, MissReason::Chosen, &mut facts);
            return Change::to(next, facts);
        }
        MenuChoice::Line(line) => {
            // Another line, as if its number had been called: its hours, then its agents.
            next.line = line;
            if !policy.status(&next.line, &snapshot.manual, now).open {
                let action = policy.after_hours_of(&next.line);
                next.phase = after_hours_phase(action, &next.line, now, policy, false);
                return after_hours(next, action);
            }
        }
        MenuChoice::Ring => {}
    }
    let phase = snapshot.available.as_ref().and_then(|available| {
        first_dial(&call.sid, &next.line, 1, available, policy, snapshot, now)
    });
    match phase {
        Some(phase) => {
            let agents = phase.rung();
            next.phase = phase;
            next.emit(&mut facts, FactKind::Ringing { agents });
        }
        None => next.send_to_voicemail(Intro::PromptOnly, MissReason::NoAgents, &mut facts),
    }
    Change::to(next, facts)
}

/// A caller who may not call: refused before anyone rings, with `<Reject>` or a short message.
fn turn_away(
    sid: &CallSid,
    line: LineId,
    from: &Party,
    to: &Party,
    now: Millis,
    reason: TurnAwayReason,
    how: Turnaway,
) -> Change {
    let phase = Phase::Closing {
        turned_away: Some(reason),
    };
    let mut call = Call::new(sid.clone(), line, from.clone(), to.clone(), now, phase);
    let mut facts = Vec::new();
    let label = reason.label();
    call.emit(&mut facts, FactKind::TurnedAway { reason: label });
    match how {
        Turnaway::Message => Change::to(call, facts),
        Turnaway::Reject => {
            let outcome = Outcome::TurnedAway { reason };
            call.emit(
                &mut facts,
                FactKind::Ended {
                    outcome,
                    settled: true,
                },
            );
            Change::gone(facts, Reply::Reject)
        }
    }
}

/// Round `round` of call `sid` on `line` starts: those of `available` who are free now, in the
/// line's strategy's order, its first `<Dial>` ringing. `None`: nobody is free.
pub(super) fn first_dial(
    sid: &CallSid,
    line: &LineId,
    round: u8,
    available: &Targets,
    policy: &Policy,
    snapshot: &Snapshot,
    now: Millis,
) -> Option<Phase> {
    let routing = policy.routing_of(line);
    let free = Targets::new(routing::free(available, &snapshot.presence, now).into())?;
    // A ring-all that fits in one `<Dial>` rings everyone at once: its order is the roster's.
    let rotates = policy.waves(line, false, &free).len() > 1;
    let turn = if rotates { routing::turn_of(sid) } else { 0 };
    let ordered = routing::order(routing.strategy, &free, &snapshot.presence, turn);
    // Everyone, in roster order (the usual case): share the roster's list instead of a copy per
    // call.
    let same = ordered.len() == available.len()
        && ordered
            .iter()
            .zip(available.iter())
            .all(|(a, b)| a.id == b.id);
    let targets = match same {
        true => available.clone(),
        false => Targets::new(ordered.into())?,
    };
    let waves = policy.waves(line, false, &targets);
    let ring_secs = policy.wave_secs(line, false, waves.len());
    Some(dialing(round, targets, waves, ring_secs, routing.screen))
}

/// After hours: `targets` (no agents, the line's forward numbers) ring once, all at once.
fn forward(targets: Targets, line: &LineId, policy: &Policy) -> Phase {
    let waves = policy.waves(line, true, &targets);
    let ring_secs = policy.wave_secs(line, true, waves.len());
    let screen = policy.routing_of(line).screen;
    dialing(1, targets, waves, ring_secs, screen)
}

fn dialing(
    round: u8,
    targets: Targets,
    waves: Vec<Targets>,
    ring_secs: u32,
    screen: crate::domain::Screen,
) -> Phase {
    let ringing = waves.first().cloned().unwrap_or_else(|| targets.clone());
    Phase::Dialing {
        round,
        ring_secs,
        groups: u8::try_from(waves.len()).unwrap_or(u8::MAX),
        group: 0,
        targets,
        ringing,
        pickup: None,
        screen,
    }
}

impl Phase {
    /// How many agents a round rings.
    fn rung(&self) -> usize {
        match self {
            Phase::Dialing { targets, .. } => targets.len(),
            _ => 0,
        }
    }
}

fn dial_ended(
    call: &Call,
    event: &Event,
    now: Millis,
    policy: &Policy,
    snapshot: &Snapshot,
) -> Change {
    let Event::DialEnded {
        round,
        group,
        status,
        dial_sid,
        duration_secs,
        ..
    } = event
    else {
        return Change::ignored(Ignored::Stale);
    };
    let Phase::Dialing {
        round: current,
        group: current_group,
        targets,
        ringing,
        pickup,
        ..
    } = &call.phase
    else {
        // The call already left the Dial this action is about.
        return Change::ignored(Ignored::Stale);
    };
    if round.is_some_and(|r| r != *current || *group != *current_group) {
        return Change::ignored(Ignored::Stale);
    }
    let routing = policy.routing_of(&call.line);
    let mut next = call.clone();
    let mut facts = Vec::new();
    let mut marks = Vec::new();
    // The leg the provider bridged is the truth about who answered; a leg callback may have been
    // lost or may still be on its way.
    let bridged = dial_sid.as_ref().and_then(|leg| call.leg(leg));
    let pickup = match pickup {
        Some(p) => Some(Pickup {
            agent: bridged
                .and_then(|l| l.agent.clone())
                .or_else(|| p.agent.clone()),
            ..p.clone()
        }),
        // A screened leg is connected only once its agent pressed 1 (then `pickup` is set): one
        // that answered and hung up without (a voicemail) is no answer, whatever the status says.
        // A leg that cannot be told apart (its callbacks lost or late) counts as screened when
        // everyone in the `<Dial>` was: an unscreened agent may be who answered.
        None if status.answered() => {
            let agent = bridged
                .and_then(|l| l.id.as_deref())
                .and_then(|id| ringing.iter().find(|a| &*a.id == id));
            let screened = match (bridged, agent) {
                (_, Some(agent)) => routing.screens(agent),
                (Some(_), None) => false,
                (None, None) => ringing.iter().all(|a| routing.screens(a)),
            };
            (!screened).then(|| {
                let talked_ms = u64::from(duration_secs.unwrap_or(0)) * 1000;
                let pickup = Pickup {
                    agent: bridged.and_then(|l| l.agent.clone()),
                    at: now.saturating_sub(talked_ms).max(call.started_at),
                    leg: dial_sid.clone(),
                    agent_id: agent.map(|a| a.id.clone()),
                    wrap_up_secs: agent.map_or(routing.wrap_up_secs, |a| routing.wrap_up_of(a)),
                };
                let fact = FactKind::Answered {
                    agent: pickup.agent.clone(),
                    after_secs: secs_between(call.started_at, pickup.at),
                };
                next.emit(&mut facts, fact);
                marks.extend(call.taken(&pickup, policy));
                pickup
            })
        }
        None => None,
    };
    if let Some(pickup) = pickup {
        // The conversation is over: the caller hears the after-call prompt.
        marks.extend(next.release(&pickup, now));
        next.phase = Phase::WrapUp {
            pickup,
            talk_secs: *duration_secs,
        };
        return Change::to(next, facts).marking(marks);
    }
    // The round goes on with its next `<Dial>` that still has someone free to ring (an agent
    // may have taken another call meanwhile).
    let forward = call.after_hours;
    let waves = policy.waves(&call.line, forward, targets);
    let wave = waves
        .iter()
        .enumerate()
        .skip(usize::from(*current_group) + 1)
        .find_map(|(i, wave)| {
            let free = match forward {
                true => wave.to_vec(),
                false => routing::free(wave, &snapshot.presence, now),
            };
            Targets::new(free.into()).map(|t| (i, t))
        });
    match (wave, &snapshot.available) {
        (Some((i, wave)), _) => {
            if let Phase::Dialing { group, ringing, .. } = &mut next.phase {
                *group = u8::try_from(i).unwrap_or(u8::MAX);
                *ringing = wave;
            }
        }
        (None, Some(available)) if *current < policy.rounds && !forward => {
            match first_dial(
                &call.sid,
                &call.line,
                current + 1,
                available,
                policy,
                snapshot,
                now,
            ) {
                Some(phase) => next.phase = phase,
                None => next.send_to_voicemail(Intro::PromptOnly, MissReason::NoAnswer, &mut facts),
            }
        }
        (None, _) => next.send_to_voicemail(Intro::PromptOnly, MissReason::NoAnswer, &mut facts),
    }
    Change::to(next, facts)
}

/// A Dial action for a call we do not know (forgotten, or state lost in a restart). The caller is
/// still on the line: thank them if they talked, otherwise apologise and take a message.
fn recover(
    sid: &CallSid,
    line: LineId,
    from: &Party,
    to: &Party,
    status: DialStatus,
    now: Millis,
) -> Change {
    let mut facts = Vec::new();
    let phase = if status.answered() {
        Phase::WrapUp {
            pickup: Pickup {
                agent: None,
                at: now,
                leg: None,
                agent_id: None,
                wrap_up_secs: 0,
            },
            talk_secs: None,
        }
    } else {
        Phase::Voicemail {
            intro: Intro::Apology,
            recorded: false,
            message: None,
        }
    };
    let mut call = Call::new(sid.clone(), line, from.clone(), to.clone(), now, phase);
    if !status.answered() {
        let reason = MissReason::Recovered;
        call.emit(&mut facts, FactKind::SentToVoicemail { reason });
    }
    let mut change = Change::to(call, facts);
    change.ignored = Some(Ignored::UnknownCall);
    change
}

fn leg_status(
    call: &Call,
    leg: &CallSid,
    status: CallStatus,
    to: &Party,
    now: Millis,
    policy: &Policy,
) -> Change {
    let step = match status {
        CallStatus::Queued | CallStatus::Initiated => LegStep::Initiated,
        CallStatus::Ringing => LegStep::Ringing,
        CallStatus::InProgress => LegStep::Answered,
        _ => LegStep::Ended,
    };
    let routing = policy.routing_of(&call.line);
    let mut next = call.clone();
    let index = match next.legs.iter().position(|l| &l.sid == leg) {
        Some(i) => i,
        None if next.legs.len() >= MAX_LEGS => return Change::ignored(Ignored::TooManyLegs),
        None => {
            let agent = match &call.phase {
                Phase::Dialing { targets, .. } => {
                    targets.iter().find(|a| a.endpoint.matches(to.as_str()))
                }
                _ => None,
            };
            next.legs.push(Leg {
                sid: leg.clone(),
                agent: agent.map(|a| a.name.clone()),
                id: agent.map(|a| a.id.clone()),
                seen: Default::default(),
            });
            next.legs.len() - 1
        }
    };
    let entry = &mut next.legs[index];
    if !entry.seen.first(step as u8) {
        return Change::ignored(Ignored::Duplicate);
    }
    let (agent, id) = (entry.agent.clone(), entry.id.clone());
    let mut facts = Vec::new();
    let mut marks = Vec::new();
    if step == LegStep::Answered {
        let known = match &call.phase {
            Phase::Dialing { targets, .. } => id
                .as_deref()
                .and_then(|id| targets.iter().find(|a| &*a.id == id)),
            _ => None,
        };
        // A screened leg that answers is not yet anyone taking the call: its agent (or their
        // voicemail) hears the whisper first, and only pressing 1 connects.
        let screened = match known {
            Some(a) => routing.screens(a),
            None => routing.screens_unknown(to.as_str()),
        };
        let wrap_up_secs = known.map_or(routing.wrap_up_secs, |a| routing.wrap_up_of(a));
        match &mut next.phase {
            Phase::Dialing { pickup, .. } if pickup.is_none() && !screened => {
                let taken = Pickup {
                    agent: agent.clone(),
                    at: now,
                    leg: Some(leg.clone()),
                    agent_id: id.clone(),
                    wrap_up_secs,
                };
                marks.extend(call.taken(&taken, policy));
                *pickup = Some(taken);
                let after_secs = secs_between(call.started_at, now);
                next.emit(&mut facts, FactKind::Answered { agent, after_secs });
            }
            // The Dial action overtook this callback: fill in who it was.
            Phase::WrapUp { pickup, .. } if pickup.agent.is_none() => {
                pickup.agent = agent;
                pickup.leg = Some(leg.clone());
                pickup.agent_id = id;
                pickup.wrap_up_secs = wrap_up_secs;
            }
            _ => {}
        }
    }
    Change::to(next, facts).marking(marks)
}

/// A screened leg's whisper (`Start`) or the key its agent pressed: exactly one agent, the first
/// to press 1 while the call still waits in this `<Dial>`, takes it.
fn screen(
    call: &Call,
    (round, group): (u8, u8),
    agent_id: &str,
    leg: &CallSid,
    step: &ScreenStep,
    now: Millis,
    policy: &Policy,
) -> Change {
    let (targets, pickup) = match &call.phase {
        Phase::Dialing {
            round: r,
            group: g,
            ringing,
            pickup,
            ..
        } if (*r, *g) == (round, group) => (ringing, pickup),
        // Another agent's call now (or it just was), or a `<Dial>` that already ended.
        Phase::Dialing {
            pickup: Some(_), ..
        }
        | Phase::WrapUp { .. } => return Change::answer(Reply::TooLate),
        Phase::Dialing { .. } => return Change::answer(Reply::Decline),
        _ => return Change::answer(Reply::CallerGone),
    };
    match pickup {
        Some(p) if p.leg.as_ref() == Some(leg) => return Change::answer(Reply::Accept),
        Some(_) => return Change::answer(Reply::TooLate),
        None => {}
    }
    let Some(agent) = targets.iter().find(|a| &*a.id == agent_id) else {
        return Change::answer(Reply::Decline);
    };
    let pressed = match step {
        ScreenStep::Start => {
            return Change::answer(Reply::Screen {
                call: call.sid.clone(),
                round,
                group,
                agent: agent.id.clone(),
                caller: call.from.clone(),
            })
        }
        ScreenStep::Pressed(digits) => digits.as_deref().map(str::trim),
    };
    if pressed != Some("1") {
        return Change::answer(Reply::Decline);
    }
    let routing = policy.routing_of(&call.line);
    let taken = Pickup {
        agent: Some(agent.name.clone()),
        at: now,
        leg: Some(leg.clone()),
        agent_id: Some(agent.id.clone()),
        wrap_up_secs: routing.wrap_up_of(agent),
    };
    let mut next = call.clone();
    let mut facts = Vec::new();
    let marks = call.taken(&taken, policy);
    if let Phase::Dialing { pickup, .. } = &mut next.phase {
        *pickup = Some(taken);
    }
    let after_secs = secs_between(call.started_at, now);
    let fact = FactKind::Answered {
        agent: Some(agent.name.clone()),
        after_secs,
    };
    next.emit(&mut facts, fact);
    let mut change = Change::to(next, facts).marking(marks);
    change.reply = Some(Reply::Accept);
    change
}

fn call_status(call: &Call, status: CallStatus, now: Millis, policy: &Policy) -> Change {
    if !status.is_final() {
        return Change::ignored(Ignored::NotFinal);
    }
    let answered = |pickup: &Pickup, talk_secs: Option<u32>| Outcome::Answered {
        agent: pickup.agent.clone(),
        talk_secs: talk_secs.map_or_else(|| secs_between(pickup.at, now), u64::from),
    };
    let (outcome, settled) = match &call.phase {
        Phase::Ended { .. } => return Change::ignored(Ignored::Duplicate),
        Phase::Conference(room) => return conference::caller_gone(call, room, now, policy),
        Phase::Dialing { pickup: None, .. } | Phase::Menu { .. } => {
            let waited_secs = secs_between(call.started_at, now);
            (Outcome::Abandoned { waited_secs }, true)
        }
        Phase::Dialing {
            pickup: Some(pickup),
            ..
        } => (answered(pickup, None), true),
        Phase::WrapUp { pickup, talk_secs } => (answered(pickup, *talk_secs), true),
        Phase::Voicemail {
            message: Some(m), ..
        } => (Outcome::Voicemail(m.clone()), true),
        // The recording callback usually comes after the final status: not settled yet.
        Phase::Voicemail { message: None, .. } => (Outcome::Missed, false),
        Phase::Closing { turned_away: None } => (Outcome::Closed, true),
        Phase::Closing {
            turned_away: Some(reason),
        } => (Outcome::TurnedAway { reason: *reason }, true),
    };
    let mut next = call.clone();
    let mut facts = Vec::new();
    let marks = match &call.phase {
        Phase::Dialing {
            pickup: Some(pickup),
            ..
        }
        | Phase::WrapUp { pickup, .. } => next.release(pickup, now),
        _ => Vec::new(),
    };
    next.end(outcome, settled, now, &mut facts);
    Change::to(next, facts).marking(marks)
}

fn record_ended(call: &Call) -> Change {
    match &call.phase {
        Phase::Voicemail {
            recorded: false,
            intro,
            message,
        } => {
            let mut next = call.clone();
            next.phase = Phase::Voicemail {
                intro: *intro,
                recorded: true,
                message: message.clone(),
            };
            next.moving = None;
            Change::to(next, Vec::new())
        }
        Phase::Voicemail { recorded: true, .. } => Change::ignored(Ignored::Duplicate),
        _ => Change::ignored(Ignored::Stale),
    }
}

fn recording(
    call: &Call,
    kind: RecordingKind,
    status: RecordingStatus,
    url: &Option<Box<str>>,
    duration_secs: Option<u32>,
    copy: &Option<ProviderCopy>,
) -> Change {
    let ready = url
        .as_ref()
        .filter(|_| status == RecordingStatus::Completed && duration_secs != Some(0));
    let mut next = call.clone();
    let mut facts = Vec::new();
    let Some(url) = ready else {
        // No message is coming: a missed call that waited for one is settled as missed.
        let said_none = status != RecordingStatus::InProgress;
        if kind == RecordingKind::Voicemail && said_none && call.unsettled_since().is_some() {
            next.settle(Outcome::Missed, &mut facts);
            return Change::to(next, facts);
        }
        return Change::ignored(Ignored::NoRecording);
    };
    if kind == RecordingKind::Conference {
        let id: Box<str> = copy.as_ref().map_or_else(|| url.clone(), |c| c.sid.clone());
        if call.recordings.contains(&id) {
            return Change::ignored(Ignored::Duplicate);
        }
        if next.recordings.len() >= 16 {
            next.recordings.remove(0);
        }
        next.recordings.push(id);
        // Told once per recording (by its id), not once per call: a room may be recorded again.
        facts.push(super::fact::Fact {
            from: call.from.clone(),
            to: call.to.clone(),
            line: call.line.clone(),
            kind: FactKind::ConferenceRecorded {
                url: url.clone(),
                duration_secs,
                copy: copy.clone(),
            },
        });
        return Change::to(next, facts);
    }
    if kind == RecordingKind::Conversation {
        if call.recording.is_some() {
            return Change::ignored(Ignored::Duplicate);
        }
        next.recording = Some(url.clone());
        let fact = FactKind::ConversationRecorded {
            url: url.clone(),
            duration_secs,
            copy: copy.clone(),
        };
        next.emit(&mut facts, fact);
        return Change::to(next, facts);
    }
    let message = Message {
        url: url.clone(),
        duration_secs: duration_secs.unwrap_or(0),
    };
    let left = FactKind::VoicemailLeft {
        url: message.url.clone(),
        duration_secs: message.duration_secs,
        copy: copy.clone(),
    };
    match &mut next.phase {
        Phase::Voicemail { message: m, .. } if m.is_none() => {
            *m = Some(message);
            next.emit(&mut facts, left);
        }
        Phase::Ended { settled: false, .. } => {
            next.emit(&mut facts, left);
            next.settle(Outcome::Voicemail(message), &mut facts);
        }
        Phase::Voicemail { .. } | Phase::Ended { .. } => {
            return Change::ignored(Ignored::Duplicate)
        }
        _ => return Change::ignored(Ignored::Stale),
    }
    Change::to(next, facts)
}

/// The grace period passed: a call still waiting for its voicemail settles as missed.
fn expired(call: &Call) -> Change {
    if call.unsettled_since().is_none() {
        return Change::ignored(Ignored::Stale);
    }
    let mut next = call.clone();
    let mut facts = Vec::new();
    next.settle(Outcome::Missed, &mut facts);
    Change::to(next, facts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::testing::*;

    #[test]
    fn leg_facts_say_who_was_rung_who_took_it_and_which_dial_rang_out_once_each() {
        let (id, policy, snap) = (sid("CA1"), Policy::default(), snapshot());
        let mut call = None;
        let mut legs = Vec::new();
        for (secs, event) in [
            (0, incoming()),
            (20, dial(1, DialStatus::NoAnswer, None)),
            (20, dial(1, DialStatus::NoAnswer, None)),
            (25, screen_start(2, 0, "bob", "LEG-bob")),
            (26, press(2, 0, "bob", "LEG-bob", Some("1"))),
            (26, press(2, 0, "bob", "LEG-bob", Some("1"))),
        ] {
            let step = transition(&id, call.as_ref(), &event, secs * 1000, &policy, &snap);
            legs.extend(step.legs);
            call = step.next.or(call);
        }
        let rang = |round| LegFact::Rang {
            round,
            group: 0,
            agents: vec![("ada".into(), "Ada".into()), ("bob".into(), "Bob".into())],
        };
        assert_eq!(
            legs,
            [
                rang(1),
                LegFact::RangOut { round: 1, group: 0 },
                rang(2),
                LegFact::Taken {
                    round: 2,
                    group: 0,
                    agent_id: Some("bob".into()),
                    agent: Some("Bob".into()),
                },
            ]
        );
    }

    #[test]
    fn answered_on_the_first_round() {
        let script = Script::new()
            .at(0, incoming())
            .at(1, leg("LEG-ada-1", CallStatus::Initiated, ADA))
            .at(1, leg("LEG-bob-1", CallStatus::Ringing, BOB))
            .at(5, leg("LEG-ada-1", CallStatus::InProgress, ADA))
            .at(65, dial(1, DialStatus::Completed, Some(60)))
            .at(67, parent(CallStatus::Completed));
        let (call, facts) = script.play();
        let ada = Some(Box::from("Ada"));
        let talked = Outcome::Answered {
            agent: ada.clone(),
            talk_secs: 60,
        };
        assert_eq!(
            facts,
            vec![
                FactKind::Ringing { agents: 2 },
                FactKind::Answered {
                    agent: ada,
                    after_secs: 5
                },
                FactKind::Ended {
                    outcome: talked.clone(),
                    settled: true
                },
            ]
        );
        assert_eq!(outcome(&call), Some(&talked));
    }

    /// Each row: the phase a call is in, an event, the phase it goes to (`None`: unchanged) and
    /// the facts emitted.
    #[test]
    fn every_phase_and_event() {
        fn ringing() -> Script {
            Script::new().at(0, incoming())
        }
        fn in_voicemail() -> Script {
            ringing()
                .at(20, dial(1, DialStatus::NoAnswer, None))
                .at(40, dial(2, DialStatus::NoAnswer, None))
        }
        fn vm_missed() -> Script {
            in_voicemail().at(50, parent(CallStatus::Completed))
        }
        type Row = (
            &'static str,
            fn() -> Script,
            Event,
            Option<&'static str>,
            Vec<&'static str>,
        );
        let rows: Vec<Row> = vec![
            (
                "ringing",
                ringing,
                dial(1, DialStatus::NoAnswer, None),
                Some("dialing 2"),
                vec![],
            ),
            (
                "ringing",
                ringing,
                dial(2, DialStatus::NoAnswer, None),
                None,
                vec![],
            ),
            (
                "ringing",
                ringing,
                dial(1, DialStatus::Completed, Some(9)),
                Some("wrap-up"),
                vec!["answered"],
            ),
            (
                "ringing",
                ringing,
                parent(CallStatus::Ringing),
                None,
                vec![],
            ),
            (
                "ringing",
                ringing,
                parent(CallStatus::Completed),
                Some("ended abandoned"),
                vec!["ended abandoned"],
            ),
            ("ringing", ringing, Event::RecordEnded, None, vec![]),
            (
                "ringing",
                ringing,
                voicemail("https://r.example/1", 9),
                None,
                vec![],
            ),
            ("ringing", ringing, Event::Expired, None, vec![]),
            (
                "ringing",
                ringing,
                conversation("https://r.example/c"),
                Some("dialing 1"),
                vec!["conversation recorded"],
            ),
            (
                "voicemail",
                in_voicemail,
                Event::RecordEnded,
                Some("voicemail recorded"),
                vec![],
            ),
            (
                "voicemail",
                in_voicemail,
                dial(2, DialStatus::NoAnswer, None),
                None,
                vec![],
            ),
            (
                "voicemail",
                in_voicemail,
                voicemail("https://r.example/1", 9),
                Some("voicemail"),
                vec!["voicemail left"],
            ),
            ("voicemail", in_voicemail, absent(), None, vec![]),
            (
                "voicemail",
                in_voicemail,
                parent(CallStatus::Completed),
                Some("ended missed unsettled"),
                vec!["ended missed unsettled"],
            ),
            (
                "missed",
                vm_missed,
                voicemail("https://r.example/1", 9),
                Some("ended voicemail"),
                vec!["voicemail left", "settled voicemail"],
            ),
            (
                "missed",
                vm_missed,
                absent(),
                Some("ended missed"),
                vec!["settled missed"],
            ),
            (
                "missed",
                vm_missed,
                voicemail("https://r.example/1", 0),
                Some("ended missed"),
                vec!["settled missed"],
            ),
            ("missed", vm_missed, in_progress(), None, vec![]),
            (
                "missed",
                vm_missed,
                Event::Expired,
                Some("ended missed"),
                vec!["settled missed"],
            ),
            (
                "missed",
                vm_missed,
                parent(CallStatus::Completed),
                None,
                vec![],
            ),
            ("missed", vm_missed, Event::RecordEnded, None, vec![]),
        ];
        for (from, setup, event, to, expected) in rows {
            let (before, _) = setup().play();
            let before = before.expect("set up");
            let step = transition(
                &before.sid,
                Some(&before),
                &event,
                100_000,
                &Policy::default(),
                &snapshot(),
            );
            let after = step.next.as_ref().map(describe);
            assert_eq!(after.as_deref(), to, "{from} + {event:?}");
            let facts: Vec<String> = step.facts.iter().map(|f| name(&f.kind)).collect();
            assert_eq!(facts, expected, "{from} + {event:?}");
            assert_eq!(
                step.ignored.is_some(),
                step.next.is_none(),
                "{from} + {event:?}"
            );
        }
    }

    #[test]
    fn each_step_answers_with_its_document() {
        let (policy, available) = (Policy::default(), snapshot());
        let id = sid("CA1");
        let step = |call: Option<&Call>, event: &Event| {
            transition(&id, call, event, 0, &policy, &available)
        };
        let call = step(None, &incoming()).next.expect("created");
        assert!(matches!(call.reply(), Reply::Ring { round: 1, .. }));
        let call = step(Some(&call), &dial(1, DialStatus::NoAnswer, None))
            .next
            .expect("round 2");
        assert!(matches!(call.reply(), Reply::Ring { round: 2, .. }));
        let s = step(Some(&call), &dial(2, DialStatus::NoAnswer, None));
        assert_eq!(
            s.reply,
            Reply::Voicemail {
                intro: Intro::PromptOnly
            }
        );
        let call = s.next.expect("voicemail");
        let s = step(Some(&call), &Event::RecordEnded);
        assert_eq!(s.reply, Reply::Goodbye);
        let s = step(s.next.as_ref(), &parent(CallStatus::Completed));
        assert_eq!(s.reply, Reply::Hangup);
        // A repeated request for the same step gets the same document.
        let again = step(s.next.as_ref(), &parent(CallStatus::Completed));
        assert_eq!(
            (again.reply, again.ignored),
            (Reply::Hangup, Some(Ignored::Duplicate))
        );
    }

    #[test]
    fn answered_on_the_second_round() {
        let (call, facts) = Script::new()
            .at(0, incoming())
            .at(20, dial(1, DialStatus::NoAnswer, None))
            .at(28, leg("LEG-bob-2", CallStatus::InProgress, BOB))
            // Bob is on a phone number: screened, he takes the call by pressing 1.
            .at(30, press(2, 0, "bob", "LEG-bob-2", Some("1")))
            .at(90, parent(CallStatus::Completed))
            .play();
        assert_eq!(facts.len(), 3);
        assert_eq!(
            facts[1],
            FactKind::Answered {
                agent: Some("Bob".into()),
                after_secs: 30
            }
        );
        let expected = Outcome::Answered {
            agent: Some("Bob".into()),
            talk_secs: 60,
        };
        assert_eq!(outcome(&call), Some(&expected));
    }

    #[test]
    fn a_voicemail_after_the_final_status_settles_the_call_as_voicemail() {
        let (call, facts) = Script::new()
            .at(0, incoming())
            .at(20, dial(1, DialStatus::NoAnswer, None))
            .at(40, dial(2, DialStatus::Busy, None))
            .at(70, Event::RecordEnded)
            .at(71, parent(CallStatus::Completed))
            // The recording callback usually arrives after the call ended.
            .at(75, voicemail("https://rec.example/1.mp3", 25))
            .play();
        let message = Message {
            url: "https://rec.example/1.mp3".into(),
            duration_secs: 25,
        };
        assert_eq!(
            &facts[1..],
            &[
                FactKind::SentToVoicemail {
                    reason: MissReason::NoAnswer
                },
                FactKind::Ended {
                    outcome: Outcome::Missed,
                    settled: false
                },
                FactKind::VoicemailLeft {
                    url: message.url.clone(),
                    duration_secs: 25,
                    copy: None,
                },
                FactKind::Settled {
                    outcome: Outcome::Voicemail(message.clone())
                },
            ]
        );
        assert_eq!(outcome(&call), Some(&Outcome::Voicemail(message)));
        // Exactly one final outcome, whatever the order.
        let finals = facts.iter().filter(|f| f.final_outcome().is_some()).count();
        assert_eq!(finals, 1);
    }

    #[test]
    fn a_voicemail_before_the_final_status_ends_the_call_settled() {
        let (_, facts) = Script::new()
            .at(0, incoming())
            .at(20, dial(1, DialStatus::NoAnswer, None))
            .at(40, dial(2, DialStatus::NoAnswer, None))
            .at(60, voicemail("https://rec.example/1.mp3", 12))
            .at(61, parent(CallStatus::Completed))
            .play();
        let names: Vec<String> = facts.iter().map(name).collect();
        assert_eq!(
            names,
            [
                "ringing",
                "sent to voicemail",
                "voicemail left",
                "ended voicemail"
            ]
        );
    }

    #[test]
    fn caller_hanging_up_while_agents_ring_is_abandoned_and_nothing_else_is_sent() {
        let (call, facts) = Script::new()
            .at(0, incoming())
            .at(12, parent(CallStatus::Completed))
            // The provider cancels the legs and may still request the Dial action.
            .at(12, leg("LEG-ada-1", CallStatus::Canceled, ADA))
            .at(13, dial(1, DialStatus::NoAnswer, None))
            .at(13, parent(CallStatus::Completed))
            .play();
        let abandoned = Outcome::Abandoned { waited_secs: 12 };
        assert_eq!(
            &facts[1..],
            &[FactKind::Ended {
                outcome: abandoned.clone(),
                settled: true
            }]
        );
        assert_eq!(outcome(&call), Some(&abandoned));
        assert_eq!(call.expect("call").reply(), Reply::Hangup);
    }

    #[test]
    fn no_agents_goes_straight_to_voicemail_after_the_greeting() {
        let (call, facts) = Script::new().available(None).at(0, incoming()).play();
        assert_eq!(
            facts,
            vec![FactKind::SentToVoicemail {
                reason: MissReason::NoAgents
            }]
        );
        assert_eq!(
            call.expect("call").reply(),
            Reply::Voicemail {
                intro: Intro::Greeting
            }
        );
    }

    #[test]
    fn nobody_free_for_the_next_round_goes_to_voicemail() {
        let (call, facts) = Script::new()
            .at(0, incoming())
            .available(None)
            .at(20, dial(1, DialStatus::NoAnswer, None))
            .play();
        assert_eq!(
            facts[1],
            FactKind::SentToVoicemail {
                reason: MissReason::NoAnswer
            }
        );
        assert!(matches!(call.expect("call").phase, Phase::Voicemail { .. }));
    }

    #[test]
    fn past_capacity_a_new_call_is_refused_and_not_stored() {
        let policy = Policy::default().with_max_active_calls(2);
        let full = Snapshot {
            live_calls: 2,
            ..snapshot()
        };
        let step = transition(&sid("CA-late"), None, &incoming(), 0, &policy, &full);
        assert_eq!(step.next, None);
        assert_eq!(step.reply, Reply::Unavailable);
        assert_eq!(
            step.facts.iter().map(|f| &f.kind).collect::<Vec<_>>(),
            [&FactKind::Refused { live_calls: 2 }]
        );
        let below = Snapshot {
            live_calls: 1,
            ..snapshot()
        };
        let step = transition(&sid("CA-ok"), None, &incoming(), 0, &policy, &below);
        assert!(matches!(step.reply, Reply::Ring { .. }));
    }

    #[test]
    fn duplicated_and_reordered_callbacks_change_nothing() {
        let once = Script::new()
            .at(0, incoming())
            .at(5, leg("LEG-ada-1", CallStatus::InProgress, ADA))
            .at(65, dial(1, DialStatus::Completed, Some(60)))
            .at(66, parent(CallStatus::Completed));
        let (expected_call, expected_facts) = once.play();
        let (call, facts) = Script::new()
            .at(0, incoming())
            .at(0, incoming())
            .at(5, leg("LEG-ada-1", CallStatus::InProgress, ADA))
            // Duplicates of everything, and an old round's action.
            .at(6, leg("LEG-ada-1", CallStatus::InProgress, ADA))
            .at(65, dial(1, DialStatus::Completed, Some(60)))
            .at(65, dial(1, DialStatus::Completed, Some(60)))
            .at(66, parent(CallStatus::Completed))
            .at(66, parent(CallStatus::Completed))
            .at(67, leg("LEG-ada-1", CallStatus::InProgress, ADA))
            .play();
        assert_eq!(facts, expected_facts);
        assert_eq!(outcome(&call), outcome(&expected_call));
    }

    #[test]
    fn a_dial_action_that_overtakes_the_answered_callback_still_names_the_agent() {
        let (call, facts) = Script::new()
            .at(0, incoming())
            .at(1, leg("LEG-ada-1", CallStatus::Ringing, ADA))
            .at(65, dial(1, DialStatus::Completed, Some(60)))
            .at(66, leg("LEG-ada-1", CallStatus::InProgress, ADA))
            .at(67, parent(CallStatus::Completed))
            .play();
        assert_eq!(
            facts[1],
            FactKind::Answered {
                agent: Some("Ada".into()),
                after_secs: 5
            }
        );
        let expected = Outcome::Answered {
            agent: Some("Ada".into()),
            talk_secs: 60,
        };
        assert_eq!(outcome(&call), Some(&expected));
    }

    #[test]
    fn events_for_unknown_calls_are_ignored_except_voice_requests() {
        let (policy, available) = (Policy::default(), snapshot());
        let id = sid("CA-unknown");
        for event in [
            parent(CallStatus::Completed),
            leg("LEG", CallStatus::Ringing, ADA),
            voicemail("https://rec.example/x", 3),
            Event::Expired,
        ] {
            let step = transition(&id, None, &event, 0, &policy, &available);
            assert_eq!((step.next, step.facts), (None, vec![]), "{event:?}");
            assert_eq!(step.ignored, Some(Ignored::UnknownCall));
        }
        let step = transition(&id, None, &Event::RecordEnded, 0, &policy, &available);
        assert_eq!((step.next, step.reply), (None, Reply::Goodbye));
        // A Dial action for a forgotten call recovers: apologise and take a message.
        let step = transition(
            &id,
            None,
            &dial(1, DialStatus::NoAnswer, None),
            0,
            &policy,
            &available,
        );
        assert_eq!(
            step.reply,
            Reply::Voicemail {
                intro: Intro::Apology
            }
        );
        assert_eq!(
            step.facts[0].kind,
            FactKind::SentToVoicemail {
                reason: MissReason::Recovered
            }
        );
        let step = transition(
            &id,
            None,
            &dial(1, DialStatus::Completed, Some(3)),
            0,
            &policy,
            &available,
        );
        assert_eq!(step.reply, Reply::AfterCall);
    }

    #[test]
    fn one_round_configured_goes_to_voicemail_after_it() {
        let (call, _) = Script::new()
            .policy(Policy::default().with_rounds(1))
            .at(0, incoming())
            .at(9, dial(1, DialStatus::NoAnswer, None))
            .play();
        assert!(matches!(call.expect("call").phase, Phase::Voicemail { .. }));
    }

    #[test]
    fn a_conversation_recording_is_kept_once_and_said_once_for_the_archive() {
        let (call, facts) = Script::new()
            .at(0, incoming())
            .at(5, leg("LEG-ada-1", CallStatus::InProgress, ADA))
            .at(65, dial(1, DialStatus::Completed, Some(60)))
            .at(66, parent(CallStatus::Completed))
            .at(70, conversation("https://rec.example/talk.mp3"))
            .at(71, conversation("https://rec.example/other.mp3"))
            .play();
        assert_eq!(
            call.expect("call").recording.as_deref(),
            Some("https://rec.example/talk.mp3")
        );
        // Ringing, answered, ended; then the recording, once (the second is a duplicate).
        assert_eq!(facts.len(), 4, "{facts:?}");
        assert!(matches!(
            &facts[3],
            FactKind::ConversationRecorded { url, duration_secs: Some(60), .. }
                if &**url == "https://rec.example/talk.mp3"
        ));
    }

    #[test]
    fn under_twilios_limits_a_round_rings_its_groups_one_dial_after_the_other() {
        use crate::call::policy::DialLimits;
        let twilio = Policy::default().with_limits(DialLimits::twilio(false));
        let script = Script::new().policy(twilio).at(0, incoming());
        let ring = |call: &Option<Call>| match call.as_ref().map(Call::reply) {
            Some(Reply::Ring {
                round,
                group,
                targets,
                ring_secs,
                ..
            }) => (
                round,
                group,
                targets[0].name.to_string(),
                targets.len(),
                ring_secs,
            ),
            other => panic!("not ringing: {other:?}"),
        };
        let (call, facts) = script.play();
        // Ada (SIP) alone, then Bob (a number): the round's 20 s shared out.
        assert_eq!(ring(&call), (1, 0, "Ada".into(), 1, 10));
        assert_eq!(facts, [FactKind::Ringing { agents: 2 }]);
        let script = script.at(10, dial_group(1, 0, DialStatus::NoAnswer, None));
        assert_eq!(ring(&script.play().0), (1, 1, "Bob".into(), 1, 10));
        // A late or repeated action for the group already left changes nothing.
        let script = script.at(11, dial_group(1, 0, DialStatus::NoAnswer, None));
        assert_eq!(ring(&script.play().0), (1, 1, "Bob".into(), 1, 10));
        let script = script.at(20, dial_group(1, 1, DialStatus::NoAnswer, None));
        assert_eq!(ring(&script.play().0), (2, 0, "Ada".into(), 1, 10));
        let script = script
            .at(30, dial_group(2, 0, DialStatus::Busy, None))
            .at(40, dial_group(2, 1, DialStatus::NoAnswer, None));
        let (call, facts) = script.play();
        assert!(matches!(call.expect("call").phase, Phase::Voicemail { .. }));
        assert_eq!(
            facts.last(),
            Some(&FactKind::SentToVoicemail {
                reason: MissReason::NoAnswer
            })
        );
    }

    #[test]
    fn groups_follow_each_providers_limits() {
        use crate::call::policy::DialLimits;
        use crate::domain::{Agent, Endpoint};
        let sip = |n: usize| {
            Agent::new(
                &format!("s{n}"),
                Endpoint::sip(&format!("sip:s{n}@x.example")).expect("sip"),
            )
            .expect("agent")
        };
        let num = |n: usize| {
            Agent::new(
                &format!("n{n}"),
                Endpoint::number(&format!("+1202555{n:04}")).expect("num"),
            )
            .expect("agent")
        };
        let mut team: Vec<_> = (0..12).map(num).collect();
        team.splice(4..4, (0..3).map(sip));
        let team = Targets::new(team.into()).expect("team");
        let sizes = |limits: DialLimits| -> Vec<usize> {
            limits.groups(&team).iter().map(|g| g.len()).collect()
        };
        assert_eq!(sizes(DialLimits::default()), [15]);
        assert_eq!(sizes(DialLimits::twilio(false)), [1, 1, 1, 10, 2]);
        assert_eq!(sizes(DialLimits::twilio(true)), [13, 2]);
        for limits in [DialLimits::twilio(false), DialLimits::twilio(true)] {
            for g in limits.groups(&team) {
                let sips = g
                    .iter()
                    .filter(|a| matches!(a.endpoint, Endpoint::Sip(_)))
                    .count();
                assert!(g.len() - sips <= 10);
                if limits.one_sip_per_dial {
                    assert!(sips == 0 || g.len() == 1);
                }
            }
        }
        // One group is the very list, not a copy.
        assert!(std::ptr::eq(
            &team[0],
            &DialLimits::default().groups(&team)[0][0]
        ));
        let min = Policy::default().ring_secs_each(15);
        assert_eq!(min, Policy::MIN_RING_SECS);
    }

    #[test]
    fn a_closed_line_takes_its_after_hours_action() {
        use crate::call::policy::{AfterHours, LinePolicy};
        use crate::call::schedule::{ClosedDay, Schedule};
        use crate::domain::LineId;
        // Closed all of 1970-01-01 (the Script's clock starts there), in UTC.
        let closed_today = || {
            let day = ClosedDay::date("1970-01-01").expect("date");
            Some(std::sync::Arc::new(
                Schedule::new("UTC", vec![], vec![day]).expect("schedule"),
            ))
        };
        let policy = |after_hours| {
            Policy::default().with_lines(vec![LinePolicy {
                id: LineId::new("support"),
                numbers: vec![crate::call::policy::called(LINE)],
                schedule: closed_today(),
                after_hours,
                menu: None,
                routing: Default::default(),
                conference: None,
            }])
        };
        let run = |after_hours| Script::new().policy(policy(after_hours)).at(0, incoming());
        let (call, facts) = run(AfterHours::Voicemail).play();
        let call = call.expect("call");
        assert_eq!(
            (call.line.as_str(), call.reply()),
            (
                "support",
                Reply::Voicemail {
                    intro: Intro::AfterHours
                }
            )
        );
        assert_eq!(
            facts,
            [FactKind::AfterHours {
                action: "voicemail"
            }]
        );
        let (call, _) = run(AfterHours::Message)
            .at(9, parent(CallStatus::Completed))
            .play();
        assert_eq!(outcome(&call), Some(&Outcome::Closed));
        let (call, facts) = run(AfterHours::Reject).play();
        assert_eq!(call, None, "a rejected call is not kept");
        assert_eq!(facts.len(), 2);
        // Forward: one <Dial> of the forward list, then voicemail, never a second round.
        let (call, _) = run(AfterHours::Forward(agents()))
            .at(20, dial(1, DialStatus::NoAnswer, None))
            .play();
        assert!(matches!(call.expect("call").phase, Phase::Voicemail { .. }));
        // An open line rings as usual; a number no line lists goes to the first line.
        let open = Policy::default().with_lines(vec![LinePolicy {
            id: LineId::new("hotline"),
            numbers: vec!["18005550199".into()],
            schedule: None,
            after_hours: AfterHours::Reject,
            menu: None,
            routing: Default::default(),
            conference: None,
        }]);
        let (call, _) = Script::new().policy(open).at(0, incoming()).play();
        let call = call.expect("call");
        assert_eq!(call.line.as_str(), "hotline");
        assert!(matches!(call.reply(), Reply::Ring { .. }));
    }

    /// Support (the number the Script calls) with a menu: 1 = line:sales, 2 = ring, 0 =
    /// voicemail, default ring after two retries; sales is always open, rings `sales_after`.
    fn menu_policy(default: MenuChoice, sales_after: AfterHours) -> Policy {
        use crate::call::policy::{LinePolicy, Menu};
        use crate::domain::LineId;
        let menu = Menu {
            options: vec![
                ('1', MenuChoice::Line(LineId::new("sales"))),
                ('2', MenuChoice::Ring),
                ('0', MenuChoice::Voicemail),
            ],
            default,
            retries: 2,
        };
        Policy::default().with_lines(vec![
            LinePolicy {
                id: LineId::new("support"),
                numbers: vec![crate::call::policy::called(LINE)],
                schedule: None,
                after_hours: AfterHours::Voicemail,
                menu: Some(menu),
                routing: Default::default(),
                conference: None,
            },
            LinePolicy {
                id: LineId::new("sales"),
                numbers: vec!["18005550111".into()],
                schedule: None,
                after_hours: sales_after,
                menu: None,
                routing: Default::default(),
                conference: None,
            },
        ])
    }

    fn grace() -> Targets {
        let grace = crate::domain::Agent::new(
            "Grace",
            crate::domain::Endpoint::number("+12025550177").expect("number"),
        )
        .expect("agent");
        Targets::new(vec![grace].into()).expect("one")
    }

    #[test]
    fn a_menu_greets_then_routes_the_key_pressed() {
        let policy = || menu_policy(MenuChoice::Ring, AfterHours::Voicemail);
        let script = Script::new().policy(policy()).at(0, incoming());
        let (call, facts) = script.play();
        let call = call.expect("call");
        assert_eq!(call.reply(), Reply::Menu { attempt: 1 });
        assert!(facts.is_empty(), "nothing rang yet: {facts:?}");
        // 2: ring this line's agents, without greeting again.
        let (call, facts) = script.clone().at(4, menu(1, Some("2"))).play();
        let call = call.expect("call");
        assert!(matches!(
            call.reply(),
            Reply::Ring {
                round: 1,
                lead: crate::call::Lead::Nothing,
                ..
            }
        ));
        assert_eq!(call.line.as_str(), "support");
        assert_eq!(facts, [FactKind::Ringing { agents: 2 }]);
        // 1: the sales line, its agents.
        let (call, facts) = script
            .clone()
            .on_line("sales", Some(grace()))
            .at(4, menu(1, Some("1")))
            .play();
        let call = call.expect("call");
        assert_eq!(call.line.as_str(), "sales");
        match call.reply() {
            Reply::Ring { targets, .. } => assert_eq!(targets[0].name.as_ref(), "Grace"),
            other => panic!("{other:?}"),
        }
        assert_eq!(facts, [FactKind::Ringing { agents: 1 }]);
        // 0: voicemail, without the greeting again.
        let (call, facts) = script.clone().at(4, menu(1, Some(" 0 "))).play();
        assert_eq!(
            call.expect("call").reply(),
            Reply::Voicemail {
                intro: Intro::PromptOnly
            }
        );
        assert_eq!(
            facts,
            [FactKind::SentToVoicemail {
                reason: MissReason::Chosen
            }]
        );
        // 2 with nobody free: voicemail.
        let (call, _) = script
            .clone()
            .available(None)
            .at(4, menu(1, Some("2")))
            .play();
        assert!(matches!(call.expect("call").phase, Phase::Voicemail { .. }));
    }

    #[test]
    fn no_or_invalid_input_repeats_the_menu_then_takes_the_default() {
        let table: [(&[Option<&str>], &str); 6] = [
            (&[None], "menu 2"),
            (&[Some("7")], "menu 2"),
            (&[Some("12")], "menu 2"),
            (&[Some("#")], "menu 2"),
            (&[None, Some("9")], "menu 3"),
            (&[None, None, None], "dialing 1"),
        ];
        for (inputs, want) in table {
            let mut script = Script::new()
                .policy(menu_policy(MenuChoice::Ring, AfterHours::Voicemail))
                .at(0, incoming());
            for (i, digits) in inputs.iter().enumerate() {
                let attempt = u8::try_from(i + 1).expect("small");
                script = script.at(5 * (i as u64 + 1), menu(attempt, *digits));
            }
            let (call, _) = script.play();
            assert_eq!(describe(&call.expect("call")), want, "{inputs:?}");
        }
        // The default may be voicemail; a valid key on the last attempt still counts.
        let (call, facts) = Script::new()
            .policy(menu_policy(MenuChoice::Voicemail, AfterHours::Voicemail))
            .at(0, incoming())
            .at(5, menu(1, None))
            .at(10, menu(2, None))
            .at(15, menu(3, None))
            .play();
        assert_eq!(describe(&call.expect("call")), "voicemail");
        assert_eq!(
            facts,
            [FactKind::SentToVoicemail {
                reason: MissReason::Chosen
            }]
        );
    }

    #[test]
    fn a_repeated_or_late_menu_action_changes_nothing() {
        let script = Script::new()
            .policy(menu_policy(MenuChoice::Ring, AfterHours::Voicemail))
            .at(0, incoming())
            .at(5, menu(1, None));
        let (call, _) = script.play();
        let call = call.expect("call");
        let policy = menu_policy(MenuChoice::Ring, AfterHours::Voicemail);
        // Attempt 1 again (a redelivery, or the redirect after an action with empty digits).
        let step = transition(
            &call.sid,
            Some(&call),
            &menu(1, Some("2")),
            6_000,
            &policy,
            &snapshot(),
        );
        assert_eq!(step.ignored, Some(Ignored::Stale));
        assert_eq!(step.reply, Reply::Menu { attempt: 2 });
        // After the call moved on to ringing, a menu action changes nothing either.
        let (call, _) = script.clone().at(9, menu(2, Some("2"))).play();
        let call = call.expect("call");
        let step = transition(
            &call.sid,
            Some(&call),
            &menu(2, Some("0")),
            10_000,
            &policy,
            &snapshot(),
        );
        assert_eq!(step.ignored, Some(Ignored::Stale));
        assert!(matches!(step.reply, Reply::Ring { .. }));
        // A caller who hangs up during the menu abandoned the call.
        let (call, _) = script.at(12, parent(CallStatus::Completed)).play();
        assert!(matches!(
            outcome(&call),
            Some(Outcome::Abandoned { waited_secs: 12 })
        ));
    }

    #[test]
    fn a_menu_choice_of_a_closed_line_takes_that_lines_after_hours_path() {
        use crate::call::hours::Override;
        let closed = Override {
            open: false,
            until: None,
            at: 0,
            by: "test".into(),
        };
        let run = |after| {
            Script::new()
                .policy(menu_policy(MenuChoice::Ring, after))
                .manual("sales", closed.clone())
                .at(0, incoming())
                .at(4, menu(1, Some("1")))
                .play()
        };
        let (call, facts) = run(AfterHours::Voicemail);
        let call = call.expect("call");
        assert_eq!(call.line.as_str(), "sales");
        assert_eq!(
            call.reply(),
            Reply::Voicemail {
                intro: Intro::AfterHours
            }
        );
        assert_eq!(
            facts,
            [FactKind::AfterHours {
                action: "voicemail"
            }]
        );
        // The call is answered already: `reject` becomes the after-hours message.
        let (call, _) = run(AfterHours::Reject);
        assert_eq!(call.expect("call").reply(), Reply::Closed);
    }

    #[test]
    fn an_operators_override_closes_and_reopens_a_line() {
        use crate::call::hours::Override;
        let closed = |until| Override {
            open: false,
            until,
            at: 0,
            by: "test".into(),
        };
        let policy = || menu_policy(MenuChoice::Ring, AfterHours::Message);
        // Closed: the after-hours path, not the menu.
        let (call, facts) = Script::new()
            .policy(policy())
            .manual("support", closed(None))
            .at(0, incoming())
            .play();
        let after_hours = Reply::Voicemail {
            intro: Intro::AfterHours,
        };
        assert_eq!(call.expect("call").reply(), after_hours);
        assert_eq!(
            facts,
            [FactKind::AfterHours {
                action: "voicemail"
            }]
        );
        // Closed until 10 s: a call at 10 s gets the menu.
        let (call, _) = Script::new()
            .policy(policy())
            .manual("support", closed(Some(10_000)))
            .at(10, incoming())
            .play();
        assert_eq!(call.expect("call").reply(), Reply::Menu { attempt: 1 });
        // Held open on a holiday.
        let holiday = crate::call::schedule::ClosedDay::date("1970-01-01").expect("date");
        let schedule =
            crate::call::schedule::Schedule::new("UTC", vec![], vec![holiday]).expect("s");
        let mut lines: Vec<_> = policy().lines.to_vec();
        lines[0].schedule = Some(std::sync::Arc::new(schedule));
        let holiday = Script::new().policy(Policy::default().with_lines(lines));
        let (call, _) = holiday.clone().at(0, incoming()).play();
        assert_eq!(call.expect("call").reply(), after_hours);
        let open = Override {
            open: true,
            ..closed(None)
        };
        let (call, _) = holiday.manual("support", open).at(0, incoming()).play();
        assert_eq!(call.expect("call").reply(), Reply::Menu { attempt: 1 });
    }

    #[test]
    fn anonymous_callers_sent_to_voicemail_skip_the_menu() {
        let mut policy = menu_policy(MenuChoice::Ring, AfterHours::Voicemail);
        policy.gate.anonymous = Anonymous::Voicemail;
        let incoming = Event::Incoming {
            from: party("anonymous"),
            to: party(LINE),
            account: None,
        };
        let step = transition(&sid("CA1"), None, &incoming, 0, &policy, &snapshot());
        let (call, facts): (_, Vec<_>) =
            (step.next, step.facts.into_iter().map(|f| f.kind).collect());
        assert!(matches!(call.expect("call").phase, Phase::Voicemail { .. }));
        assert_eq!(
            facts,
            [FactKind::SentToVoicemail {
                reason: MissReason::Anonymous
            }]
        );
    }

    #[test]
    fn legs_are_bounded() {
        let mut script = Script::new().at(0, incoming());
        for i in 0..MAX_LEGS {
            script = script.at(
                1,
                leg(&format!("LEG{i}"), CallStatus::Ringing, "sip:x@y.example"),
            );
        }
        let (call, _) = script.play();
        let call = call.expect("call");
        assert_eq!(call.legs.len(), MAX_LEGS);
        let e = leg("LEG-extra", CallStatus::Ringing, "sip:x@y.example");
        let step = transition(
            &call.sid,
            Some(&call),
            &e,
            1,
            &Policy::default(),
            &snapshot(),
        );
        assert_eq!(step.ignored, Some(Ignored::TooManyLegs));
    }

    fn screen_everyone() -> Policy {
        Policy::default().with_routing(routing::Routing {
            screen: crate::domain::Screen::Always,
            ..Default::default()
        })
    }

    fn answered(facts: &[FactKind]) -> Vec<Option<Box<str>>> {
        facts
            .iter()
            .filter_map(|f| match f {
                FactKind::Answered { agent, .. } => Some(agent.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_screened_agents_voicemail_never_takes_the_call() {
        // Bob is on a number (screened by default); his voicemail answers, hears the whisper,
        // presses nothing; the provider ends the Dial as if answered.
        let (call, facts, replies) = Script::new()
            .at(0, incoming())
            .at(5, leg("LEG-bob-1", CallStatus::InProgress, BOB))
            .at(5, screen_start(1, 0, "bob", "LEG-bob-1"))
            .at(13, press(1, 0, "bob", "LEG-bob-1", None))
            .at(14, leg("LEG-bob-1", CallStatus::Completed, BOB))
            .play_all();
        assert!(matches!(replies[2], Reply::Screen { ref agent, .. } if &**agent == "bob"));
        assert_eq!(replies[3], Reply::Decline);
        assert!(answered(&facts).is_empty(), "{facts:?}");
        let call = call.expect("call");
        assert!(matches!(call.phase, Phase::Dialing { pickup: None, .. }));
        // The Dial ends "completed" on Bob's leg: no answer, the next round rings.
        let step = transition(
            &sid("CA1"),
            Some(&call),
            &Event::DialEnded {
                round: Some(1),
                group: 0,
                status: DialStatus::Completed,
                dial_sid: Some(sid("LEG-bob-1")),
                duration_secs: Some(8),
                from: party(CALLER),
                to: party(LINE),
                line: None,
            },
            20_000,
            &Policy::default(),
            &snapshot(),
        );
        assert!(
            matches!(step.reply, Reply::Ring { round: 2, .. }),
            "{:?}",
            step.reply
        );
        assert!(step.facts.is_empty() && step.marks.is_empty());
    }

    #[test]
    fn a_screened_agent_who_presses_1_takes_the_call_and_is_busy_until_wrap_up() {
        let script = Script::new()
            .at(0, incoming())
            .at(6, leg("LEG-bob-1", CallStatus::InProgress, BOB))
            .at(6, screen_start(1, 0, "bob", "LEG-bob-1"))
            .at(9, press(1, 0, "bob", "LEG-bob-1", Some("1")));
        let (call, facts, replies) = script.play_all();
        assert_eq!(replies.last(), Some(&Reply::Accept));
        assert_eq!(answered(&facts), [Some("Bob".into())]);
        let pickup = match call.expect("call").phase {
            Phase::Dialing {
                pickup: Some(p), ..
            } => p,
            other => panic!("{other:?}"),
        };
        assert_eq!(pickup.agent_id.as_deref(), Some("bob"));
        assert_eq!(pickup.at, 9_000);
        let (_, facts) = script
            .at(69, dial(1, DialStatus::Completed, Some(60)))
            .at(70, parent(CallStatus::Completed))
            .play();
        assert!(matches!(
            facts.last(),
            Some(FactKind::Ended {
                outcome: Outcome::Answered { .. },
                ..
            })
        ));
    }

    #[test]
    fn two_agents_pressing_1_at_once_make_one_winner() {
        let script = Script::new()
            .policy(screen_everyone())
            .at(0, incoming())
            .at(5, screen_start(1, 0, "ada", "LEG-ada-1"))
            .at(5, screen_start(1, 0, "bob", "LEG-bob-1"))
            .at(8, press(1, 0, "bob", "LEG-bob-1", Some("1")))
            .at(8, press(1, 0, "ada", "LEG-ada-1", Some("1")))
            // Bob's key again (a retried request): still his.
            .at(9, press(1, 0, "bob", "LEG-bob-1", Some("1")))
            // Ada's phone answers again late: told at once.
            .at(10, screen_start(1, 0, "ada", "LEG-ada-1"));
        let (_, facts, replies) = script.play_all();
        assert_eq!(
            replies[3..],
            [Reply::Accept, Reply::TooLate, Reply::Accept, Reply::TooLate]
        );
        assert_eq!(answered(&facts), [Some("Bob".into())]);
    }

    #[test]
    fn an_agent_pressing_1_after_the_caller_left_hears_so() {
        let (call, facts, replies) = Script::new()
            .at(0, incoming())
            .at(6, screen_start(1, 0, "bob", "LEG-bob-1"))
            .at(7, parent(CallStatus::Completed))
            .at(9, press(1, 0, "bob", "LEG-bob-1", Some("1")))
            .play_all();
        assert_eq!(replies.last(), Some(&Reply::CallerGone));
        assert!(answered(&facts).is_empty());
        assert!(matches!(outcome(&call), Some(Outcome::Abandoned { .. })));
        // Forgotten already: the same.
        let step = transition(
            &sid("CA-gone"),
            None,
            &press(1, 0, "bob", "LEG-bob-1", Some("1")),
            9_000,
            &Policy::default(),
            &snapshot(),
        );
        assert_eq!((step.reply, step.next), (Reply::CallerGone, None));
    }

    #[test]
    fn a_key_for_a_dial_already_over_or_another_key_hangs_up_that_leg() {
        let (_, facts, replies) = Script::new()
            .at(0, incoming())
            .at(20, dial(1, DialStatus::NoAnswer, None))
            .at(21, press(1, 0, "bob", "LEG-bob-1", Some("1")))
            .at(25, press(2, 0, "bob", "LEG-bob-2", Some("2")))
            .at(26, press(2, 0, "nobody", "LEG-x-2", Some("1")))
            .play_all();
        assert_eq!(
            replies[2..],
            [Reply::Decline, Reply::Decline, Reply::Decline]
        );
        assert!(answered(&facts).is_empty());
    }

    #[test]
    fn an_unscreened_agent_answering_marks_them_busy_and_the_end_frees_them_after_wrap_up() {
        let script = Script::new()
            .at(0, incoming())
            .at(5, leg("LEG-ada-1", CallStatus::InProgress, ADA))
            .at(65, dial(1, DialStatus::Completed, Some(60)))
            .at(67, parent(CallStatus::Completed));
        let id = sid("CA1");
        let policy = Policy::default();
        let mut call = None;
        let mut marks = Vec::new();
        for (secs, event) in [
            (0, incoming()),
            (5, leg("LEG-ada-1", CallStatus::InProgress, ADA)),
            (65, dial(1, DialStatus::Completed, Some(60))),
            (67, parent(CallStatus::Completed)),
        ] {
            let step = transition(
                &id,
                call.as_ref(),
                &event,
                secs * 1000,
                &policy,
                &snapshot(),
            );
            marks.extend(step.marks);
            call = step.next.or(call);
        }
        assert_eq!(
            marks,
            [
                Mark::Answered {
                    agent: "ada".into(),
                    call: id.clone(),
                    at: 5_000,
                    until: 5_000 + 14_400_000 + 15_000,
                },
                Mark::Ended {
                    agent: "ada".into(),
                    call: id,
                    at: 65_000,
                    wrap_up_secs: 15,
                },
            ]
        );
        assert_eq!(script.play().1.len(), 3);
    }

    fn presence_of(entries: &[(&str, routing::Presence)]) -> routing::Presences {
        std::sync::Arc::new(
            entries
                .iter()
                .map(|(id, p)| (Box::from(*id), p.clone()))
                .collect(),
        )
    }

    #[test]
    fn busy_and_away_agents_are_not_rung_and_nobody_free_is_voicemail() {
        let busy = routing::Presence {
            busy_until: 60_000,
            ..Default::default()
        };
        let away = routing::Presence {
            away: true,
            ..Default::default()
        };
        let ringing = |call: &Option<Call>| match call.as_ref().map(Call::reply) {
            Some(Reply::Ring { targets, .. }) => {
                targets.iter().map(|a| a.id.to_string()).collect::<Vec<_>>()
            }
            other => panic!("{other:?}"),
        };
        let (call, _) = Script::new()
            .presence(presence_of(&[("ada", busy.clone())]))
            .at(0, incoming())
            .play();
        assert_eq!(ringing(&call), ["bob"]);
        // Round 2 at 70 s: Ada's wrap-up is over, she rings again.
        let (call, _) = Script::new()
            .presence(presence_of(&[("ada", busy.clone())]))
            .at(0, incoming())
            .at(70, dial(1, DialStatus::NoAnswer, None))
            .play();
        assert_eq!(ringing(&call), ["ada", "bob"]);
        let (call, facts) = Script::new()
            .presence(presence_of(&[("ada", busy), ("bob", away)]))
            .at(0, incoming())
            .play();
        assert!(matches!(call.expect("call").phase, Phase::Voicemail { .. }));
        assert_eq!(
            facts.last(),
            Some(&FactKind::SentToVoicemail {
                reason: MissReason::NoAgents
            })
        );
    }

    fn team(n: usize) -> Targets {
        let agents: Vec<crate::domain::Agent> = (0..n)
            .map(|i| {
                let e = crate::domain::Endpoint::number(&format!("+1202555{:04}", 100 + i))
                    .expect("number");
                crate::domain::Agent::new(&format!("Agent {i:02}"), e).expect("agent")
            })
            .collect();
        Targets::new(agents.into()).expect("team")
    }

    /// Every `<Dial>` of round 1, as the ids each rings, walking the Dial actions.
    fn waves_of(
        policy: Policy,
        available: Targets,
        presence: routing::Presences,
    ) -> Vec<Vec<String>> {
        let mut script = Script::new()
            .policy(policy)
            .available(Some(available))
            .presence(presence)
            .at(0, incoming());
        let mut waves = Vec::new();
        for t in 1..100 {
            match script.play().0.as_ref().map(Call::reply) {
                Some(Reply::Ring {
                    round: 1,
                    group,
                    targets,
                    ..
                }) => {
                    waves.push(targets.iter().map(|a| a.id.to_string()).collect());
                    script = script.at(t, dial_group(1, group, DialStatus::NoAnswer, None));
                }
                _ => break,
            }
        }
        waves
    }

    #[test]
    fn a_team_larger_than_a_dial_rings_in_waves_starting_somewhere_else_each_call() {
        use crate::call::policy::DialLimits;
        let policy = Policy::default().with_limits(DialLimits::twilio(false));
        let waves = waves_of(policy.clone(), team(25), Default::default());
        assert_eq!(waves.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 5]);
        let mut all: Vec<String> = waves.concat();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 25, "everyone rung once in the round");
        // The operator's own cap (Telnyx account limits).
        let capped = Policy::default().with_limits(DialLimits::default().with_max_legs(4));
        let waves = waves_of(capped, team(10), Default::default());
        assert_eq!(waves.iter().map(Vec::len).collect::<Vec<_>>(), [4, 4, 2]);
        // Where the first wave starts depends on the call.
        let first = |sid: &str| {
            let step = transition(
                &crate::call::testing::sid(sid),
                None,
                &incoming(),
                0,
                &policy,
                &Snapshot::ringing(Some(team(25))),
            );
            match step.reply {
                Reply::Ring { targets, .. } => targets[0].id.to_string(),
                other => panic!("{other:?}"),
            }
        };
        let starts: std::collections::HashSet<String> =
            (0..30).map(|i| first(&format!("CA-{i}"))).collect();
        assert!(starts.len() > 5, "{starts:?}");
    }

    #[test]
    fn a_wave_skips_agents_who_became_busy_meanwhile() {
        use crate::call::policy::DialLimits;
        let policy = Policy::default().with_limits(DialLimits::default().with_max_legs(2));
        let first = waves_of(policy.clone(), team(4), Default::default());
        // Someone of the second wave takes another call while the first wave rings.
        let taken = first[1][0].clone();
        let busy = routing::Presence {
            busy_until: u64::MAX,
            ..Default::default()
        };
        let mut script = Script::new()
            .policy(policy)
            .available(Some(team(4)))
            .at(0, incoming());
        script = script
            .presence(presence_of(&[(&taken, busy)]))
            .at(1, dial_group(1, 0, DialStatus::NoAnswer, None));
        match script.play().0.as_ref().map(Call::reply) {
            Some(Reply::Ring {
                group: 1, targets, ..
            }) => {
                assert_eq!(targets.len(), 1);
                assert_ne!(&*targets[0].id, taken.as_str());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn each_strategy_rings_in_its_order_one_at_a_time() {
        let with = |strategy| {
            Policy::default().with_routing(routing::Routing {
                strategy,
                ..Default::default()
            })
        };
        let ended = |t| routing::Presence {
            last_ended: Some(t),
            last_answered: Some(t - 1),
            ..Default::default()
        };
        let history = presence_of(&[("agent-00", ended(50)), ("agent-02", ended(10))]);
        let order = |strategy| {
            waves_of(with(strategy), team(4), history.clone())
                .into_iter()
                .map(|w| {
                    assert_eq!(w.len(), 1, "one at a time");
                    w[0].clone()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            order(routing::Strategy::Sequential),
            ["agent-00", "agent-01", "agent-02", "agent-03"]
        );
        // Agent 00 answered last: start after them.
        assert_eq!(
            order(routing::Strategy::RoundRobin),
            ["agent-01", "agent-02", "agent-03", "agent-00"]
        );
        assert_eq!(
            order(routing::Strategy::LongestIdle),
            ["agent-01", "agent-03", "agent-02", "agent-00"]
        );
        // Each rings for the whole ring time.
        let (call, _) = Script::new()
            .policy(with(routing::Strategy::Sequential))
            .at(0, incoming())
            .play();
        assert!(matches!(
            call.as_ref().map(Call::reply),
            Some(Reply::Ring { ring_secs: 20, .. })
        ));
    }
}
