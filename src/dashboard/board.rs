//! What the dashboard shows, as pure functions of what is true now: the live calls and the agents
//! ([`live`]), today's figures per line and in total ([`today`]), and when a line's day started
//! ([`day_start`]). The feed gathers the inputs and sends the results; nothing here reads a
//! store or a clock.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;

use crate::call::routing::Presences;
use crate::call::{Call, Phase};
use crate::domain::{Agent, LineId};
use crate::ledger::report::{LineFigures, Rules, Tally};
use crate::lines::LineView;
use crate::time::Millis;

/// Calls listed per line at most (the counts cover every call): a wall screen shows a few dozen.
pub const CALLS_LISTED: usize = 40;

/// Where a live call is, as the page shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallState {
    /// In the line's menu: waiting.
    Menu,
    /// Agents' phones ring: waiting.
    Ringing,
    /// Talking with an agent.
    Talking,
    /// Leaving a message.
    Voicemail,
}

/// One live call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveCall {
    pub sid: String,
    /// As it may be shown: masked under privacy mode.
    pub caller: String,
    pub state: CallState,
    /// Since when it is in this state's clock: waiting counts from the call's start, talking
    /// from the answer.
    pub since: Millis,
    /// Who it is talking with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// A conference-mode call's room: who is in it, whether it is recorded (for live control).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room: Option<RoomView>,
}

/// A conference room as the page shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoomView {
    pub recording: bool,
    pub participants: Vec<crate::call::conference::Participant>,
}

/// What an agent is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    Available,
    Ringing,
    /// On an inbound call of a line.
    OnCall,
    /// On a call of their own (outbound, Call Control).
    OwnCall,
    WrapUp,
    Away,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentView {
    pub id: String,
    pub name: String,
    pub state: AgentState,
    /// Until when wrap-up lasts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<Millis>,
}

/// Agents by state. "On a call" counts inbound and their own calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AgentCounts {
    pub available: u32,
    pub ringing: u32,
    pub on_call: u32,
    pub wrap_up: u32,
    pub away: u32,
}

impl AgentCounts {
    fn add(&mut self, state: AgentState) {
        match state {
            AgentState::Available => self.available += 1,
            AgentState::Ringing => self.ringing += 1,
            AgentState::OnCall | AgentState::OwnCall => self.on_call += 1,
            AgentState::WrapUp => self.wrap_up += 1,
            AgentState::Away => self.away += 1,
        }
    }
}

/// Calls by state, and the oldest waiting one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CallCounts {
    pub waiting: u32,
    pub in_conversation: u32,
    pub voicemail: u32,
    /// When the longest-waiting call started (the page ticks the wait from it).
    pub longest_wait_since: Option<Millis>,
}

impl CallCounts {
    fn add(&mut self, call: &LiveCall) {
        match call.state {
            CallState::Menu | CallState::Ringing => {
                self.waiting += 1;
                self.longest_wait_since = Some(
                    self.longest_wait_since
                        .map_or(call.since, |s| s.min(call.since)),
                );
            }
            CallState::Talking => self.in_conversation += 1,
            CallState::Voicemail => self.voicemail += 1,
        }
    }

    fn merge(&mut self, other: &CallCounts) {
        self.waiting += other.waiting;
        self.in_conversation += other.in_conversation;
        self.voicemail += other.voicemail;
        self.longest_wait_since = match (self.longest_wait_since, other.longest_wait_since) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LineLive {
    #[serde(flatten)]
    pub line: LineView,
    #[serde(flatten)]
    pub calls_count: CallCounts,
    pub agents_count: AgentCounts,
    /// Waiting calls first (longest first), then the others; at most [`CALLS_LISTED`].
    pub calls: Vec<LiveCall>,
    pub agents: Vec<AgentView>,
}

/// The `live` section: now, per line and in total.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Live {
    pub now: Millis,
    #[serde(flatten)]
    pub calls_count: CallCounts,
    /// Each agent once, whatever how many lines they answer.
    pub agents_count: AgentCounts,
    pub lines: Vec<LineLive>,
}

/// What [`live`] is computed from.
pub struct Inputs<'a> {
    pub now: Millis,
    /// Every line, in configuration order.
    pub lines: &'a [LineView],
    /// The calls held that have not ended.
    pub calls: &'a [Call],
    /// Each line's agents.
    pub roster: &'a HashMap<LineId, Arc<[Agent]>>,
    pub presences: &'a Presences,
    /// Privacy mode: callers' numbers masked.
    pub mask: bool,
}

/// A live call as the page shows it; `None` for a call that is only finishing (after-call
/// prompt, closing message).
pub fn live_call(call: &Call, mask: bool) -> Option<LiveCall> {
    let (state, since, agent) = match &call.phase {
        Phase::Menu { .. } => (CallState::Menu, call.started_at, None),
        Phase::Dialing { pickup: None, .. } => (CallState::Ringing, call.started_at, None),
        Phase::Dialing {
            pickup: Some(p), ..
        } => (
            CallState::Talking,
            p.at,
            Some(p.agent.as_deref().unwrap_or("an agent").to_owned()),
        ),
        Phase::Conference(room) => match (&room.host, room.talking_since) {
            (Some(host), Some(since)) => (
                CallState::Talking,
                since,
                Some(host.agent.as_deref().unwrap_or("an organizer").to_owned()),
            ),
            _ => (CallState::Ringing, call.started_at, None),
        },
        Phase::Voicemail { .. } => (CallState::Voicemail, call.started_at, None),
        Phase::WrapUp { .. } | Phase::Closing { .. } | Phase::Ended { .. } => return None,
    };
    let caller = match mask {
        true => crate::sink::mask::mask(call.from.as_str()),
        false => call.from.as_str().to_owned(),
    };
    let room = match &call.phase {
        Phase::Conference(room) => Some(RoomView {
            recording: room.recording,
            participants: crate::call::conference::participants(call).unwrap_or_default(),
        }),
        _ => None,
    };
    Some(LiveCall {
        sid: call.sid.as_str().to_owned(),
        caller,
        state,
        since,
        agent,
        room,
    })
}

/// Who is talking and who is ringing, by agent id, from the live calls.
struct Activity<'a> {
    talking: HashSet<&'a str>,
    ringing: HashSet<&'a str>,
    inbound: HashSet<&'a str>,
}

impl<'a> Activity<'a> {
    fn of(calls: &'a [Call]) -> Activity<'a> {
        let mut a = Activity {
            talking: HashSet::new(),
            ringing: HashSet::new(),
            inbound: HashSet::new(),
        };
        for call in calls {
            a.inbound.insert(call.sid.as_str());
            match &call.phase {
                Phase::Dialing {
                    pickup: Some(p), ..
                } => {
                    if let Some(id) = p.agent_id.as_deref() {
                        a.talking.insert(id);
                    }
                }
                Phase::Dialing {
                    pickup: None,
                    ringing,
                    ..
                } => a.ringing.extend(ringing.iter().map(|agent| &*agent.id)),
                Phase::Conference(room) => {
                    use crate::call::conference::OrganizerState as S;
                    for o in &room.organizers {
                        match o.state {
                            S::Joined | S::Accepted => a.talking.insert(&*o.id),
                            S::Calling | S::Answered => a.ringing.insert(&*o.id),
                            _ => false,
                        };
                    }
                }
                _ => {}
            }
        }
        a
    }
}

/// What `agent` is doing at `now`. Never "available" while on a call: a call the live calls
/// show, or the presence a replica wrote, both say busy.
pub fn agent_state(
    agent: &Agent,
    presences: &Presences,
    activity_talking: bool,
    activity_ringing: bool,
    inbound_call: impl Fn(&str) -> bool,
    now: Millis,
) -> (AgentState, Option<Millis>) {
    let p = presences.get(&agent.id).cloned().unwrap_or_default();
    let busy = p.busy_until > now;
    if activity_talking {
        return (AgentState::OnCall, None);
    }
    if let (Some(call), true) = (&p.on_call, busy) {
        return match inbound_call(call.as_str()) {
            true => (AgentState::OnCall, None),
            false => (AgentState::OwnCall, None),
        };
    }
    if p.away {
        return (AgentState::Away, None);
    }
    if busy {
        return (AgentState::WrapUp, Some(p.busy_until));
    }
    if activity_ringing {
        return (AgentState::Ringing, None);
    }
    (AgentState::Available, None)
}

/// The `live` section.
pub fn live(i: &Inputs<'_>) -> Live {
    let activity = Activity::of(i.calls);
    let mut by_line: HashMap<&LineId, Vec<LiveCall>> = HashMap::new();
    for call in i.calls {
        if let Some(c) = live_call(call, i.mask) {
            by_line.entry(&call.line).or_default().push(c);
        }
    }
    let mut total = CallCounts::default();
    let mut everyone: HashMap<&str, AgentState> = HashMap::new();
    let mut lines = Vec::with_capacity(i.lines.len());
    for view in i.lines {
        let id = LineId::new(&view.id);
        let mut calls = by_line.remove(&id).unwrap_or_default();
        let mut counts = CallCounts::default();
        for c in &calls {
            counts.add(c);
        }
        total.merge(&counts);
        // Waiting first, longest wait first; then talking, longest first.
        calls.sort_by_key(|c| {
            (
                !matches!(c.state, CallState::Menu | CallState::Ringing),
                c.since,
            )
        });
        calls.truncate(CALLS_LISTED);
        let mut agents_count = AgentCounts::default();
        let agents: Vec<AgentView> = i
            .roster
            .get(&id)
            .map(|a| a.iter())
            .into_iter()
            .flatten()
            .map(|agent| {
                let (state, until) = agent_state(
                    agent,
                    i.presences,
                    activity.talking.contains(&*agent.id),
                    activity.ringing.contains(&*agent.id),
                    |sid| activity.inbound.contains(sid),
                    i.now,
                );
                agents_count.add(state);
                everyone.insert(&agent.id, state);
                AgentView {
                    id: agent.id.to_string(),
                    name: agent.name.to_string(),
                    state,
                    until,
                }
            })
            .collect();
        lines.push(LineLive {
            line: view.clone(),
            calls_count: counts,
            agents_count,
            calls,
            agents,
        });
    }
    // Calls on a line no longer configured still count in the total.
    for calls in by_line.values() {
        for c in calls {
            total.add(c);
        }
    }
    let mut agents_count = AgentCounts::default();
    for state in everyone.values() {
        agents_count.add(*state);
    }
    Live {
        now: i.now,
        calls_count: total,
        agents_count,
        lines,
    }
}

/// One line's figures since its day started.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LineToday {
    pub id: String,
    /// When its day started (RFC 3339).
    pub since: String,
    #[serde(flatten)]
    pub figures: LineFigures,
}

/// The `today` section.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Today {
    /// Over every line, each in its own day.
    pub total: LineFigures,
    pub lines: Vec<LineToday>,
    pub service_level_secs: u64,
}

/// The `today` section from each line's tally since its day started.
pub fn today(tallies: &[(LineId, Millis, Tally)], rules: &Rules) -> Today {
    let mut total = Tally::default();
    let lines = tallies
        .iter()
        .map(|(id, since, tally)| {
            total.merge(tally);
            LineToday {
                id: id.as_str().to_owned(),
                since: crate::lines::rfc3339(*since),
                figures: tally.figures(),
            }
        })
        .collect();
    Today {
        total: total.figures(),
        lines,
        service_level_secs: rules.service_level_secs,
    }
}

/// When the day that holds `now` started in `zone`, days starting at `reset` (local time). On a
/// day when `reset` does not exist (a DST gap), the first instant after it.
pub fn day_start(now: Millis, zone: &jiff::tz::TimeZone, reset: jiff::civil::Time) -> Millis {
    let Ok(ts) = jiff::Timestamp::from_millisecond(i64::try_from(now).unwrap_or(i64::MAX)) else {
        return now;
    };
    let local = ts.to_zoned(zone.clone());
    let start_of = |date: jiff::civil::Date| {
        date.to_datetime(reset)
            .to_zoned(zone.clone())
            .map(|z| z.timestamp())
            .unwrap_or(ts)
    };
    let today = start_of(local.date());
    let start = match today <= ts {
        true => today,
        false => local.date().yesterday().map(start_of).unwrap_or(today),
    };
    u64::try_from(start.as_millisecond()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::routing::Presence;
    use crate::call::testing::*;
    use crate::call::{transition, CallStatus, Event, Policy, Snapshot};
    use crate::domain::CallSid;

    const T0: Millis = 1_795_262_400_000; // 2026-11-21T12:00:00Z

    fn view(id: &str) -> LineView {
        LineView {
            id: id.into(),
            name: format!("Line {id}"),
            open: true,
            why: crate::call::hours::Why::AlwaysOpen,
            until: None,
            manual: None,
        }
    }

    /// The call after `events`, each a second apart from `at`.
    fn call_after(sid: &str, events: &[Event], at: Millis, snapshot: &Snapshot) -> Call {
        let policy = Policy::default();
        let sid = CallSid::parse(sid).unwrap();
        let mut call: Option<Call> = None;
        for (n, e) in events.iter().enumerate() {
            let step = transition(
                &sid,
                call.as_ref(),
                e,
                at + n as u64 * 1000,
                &policy,
                snapshot,
            );
            if let Some(next) = step.next {
                call = Some(next);
            }
        }
        call.expect("a call")
    }

    #[test]
    fn calls_waiting_and_talking_agents_ringing_and_on_call() {
        let snap = snapshot();
        let waiting = call_after("CA-wait", &[incoming()], T0, &snap);
        let early = call_after("CA-early", &[incoming()], T0 - 30_000, &snap);
        let ada = snap.available.as_ref().unwrap()[0].clone();
        let talking = call_after(
            "CA-talk",
            &[incoming(), leg("LEG-1", CallStatus::InProgress, ADA)],
            T0 - 60_000,
            &snap,
        );
        assert!(
            matches!(
                talking.phase,
                Phase::Dialing {
                    pickup: Some(_),
                    ..
                }
            ),
            "{:?}",
            talking.phase
        );
        let roster: HashMap<LineId, Arc<[Agent]>> = [(
            LineId::main(),
            snap.available.as_ref().unwrap().to_vec().into(),
        )]
        .into();
        let lines = [view("main")];
        let calls = [waiting, early, talking];
        let presences = Presences::default();
        let live = live(&Inputs {
            now: T0 + 5_000,
            lines: &lines,
            calls: &calls,
            roster: &roster,
            presences: &presences,
            mask: true,
        });
        assert_eq!(live.calls_count.waiting, 2);
        assert_eq!(live.calls_count.in_conversation, 1);
        assert_eq!(live.calls_count.longest_wait_since, Some(T0 - 30_000));
        let line = &live.lines[0];
        assert_eq!(line.calls[0].sid, "CA-early", "longest wait first");
        assert_eq!(line.calls[2].state, CallState::Talking);
        assert_eq!(line.calls[2].agent.as_deref(), Some(&*ada.name));
        assert!(
            line.calls[0].caller.contains("•••"),
            "{}",
            line.calls[0].caller
        );
        let ada_view = line.agents.iter().find(|a| a.id == *ada.id).unwrap();
        assert_eq!(ada_view.state, AgentState::OnCall);
        // Everyone else rings for the waiting calls.
        assert!(line
            .agents
            .iter()
            .filter(|a| a.id != *ada.id)
            .all(|a| a.state == AgentState::Ringing));
        assert_eq!(live.agents_count.on_call, 1);
    }

    #[test]
    fn presence_decides_wrap_up_away_and_own_calls() {
        let agent = Agent::new(
            "Grace",
            crate::domain::Endpoint::sip("sip:grace@example.com").unwrap(),
        )
        .unwrap();
        let now = T0;
        let with = |p: Presence| -> Presences { Arc::new([(agent.id.clone(), p)].into()) };
        let state = |p: Presence, inbound: bool| {
            agent_state(&agent, &with(p), false, true, |_| inbound, now).0
        };
        let on = Presence {
            on_call: Some(CallSid::parse("v3:own").unwrap()),
            busy_until: now + 60_000,
            ..Presence::default()
        };
        assert_eq!(state(on.clone(), false), AgentState::OwnCall);
        assert_eq!(state(on.clone(), true), AgentState::OnCall);
        let wrap = Presence {
            busy_until: now + 10_000,
            ..Presence::default()
        };
        assert_eq!(
            agent_state(&agent, &with(wrap.clone()), false, false, |_| false, now),
            (AgentState::WrapUp, Some(now + 10_000))
        );
        let away = Presence {
            away: true,
            ..Presence::default()
        };
        assert_eq!(state(away, false), AgentState::Away);
        // A call's end frees them: ringing again.
        let done = Presence {
            busy_until: now - 1,
            ..on
        };
        assert_eq!(state(done, false), AgentState::Ringing);
        // Talking on a live call wins over anything the presence says.
        let away = Presence {
            away: true,
            ..Presence::default()
        };
        assert_eq!(
            agent_state(&agent, &with(away), true, false, |_| true, now).0,
            AgentState::OnCall
        );
    }

    #[test]
    fn ended_calls_are_not_live() {
        let snap = snapshot();
        let ended = call_after(
            "CA-gone",
            &[incoming(), parent(CallStatus::Completed)],
            T0,
            &snap,
        );
        assert_eq!(live_call(&ended, false), None);
    }

    #[test]
    fn a_day_starts_at_the_reset_in_the_lines_zone() {
        let ny = jiff::tz::TimeZone::get("America/New_York").unwrap();
        let midnight = jiff::civil::Time::midnight();
        // 2026-11-21T12:00Z is 07:00 in New York: the day began at 05:00Z.
        assert_eq!(day_start(T0, &ny, midnight), T0 - 7 * 3_600_000);
        // A reset at 08:00 local has not come yet: the day began yesterday at 08:00 (13:00Z).
        let eight = jiff::civil::time(8, 0, 0, 0);
        assert_eq!(day_start(T0, &ny, eight), T0 - 23 * 3_600_000);
        // The spring-forward day (2026-03-08, 02:00 does not exist) starts at 03:00 EDT.
        let march = 1_772_928_000_000; // 2026-03-08T00:00Z
        let two = jiff::civil::time(2, 30, 0, 0);
        assert_eq!(
            day_start(march + 12 * 3_600_000, &ny, two),
            march + 7 * 3_600_000 + 1_800_000
        );
    }
}
