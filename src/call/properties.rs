//! Property tests of the state machine: any sequence of callbacks, duplicated or reordered,
//! never panics, ends in a terminal state once the call completes, stays terminal, and never
//! emits the same fact twice, and decides exactly one final outcome per call. Over several calls
//! sharing agents: at most one agent is ever connected to a call, and no `<Dial>` rings an agent
//! who is busy or away.

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

use super::policy::DialLimits;
use super::testing::{agents, party, sid};
use super::*;
use crate::domain::{CallSid, Party};

fn call_status() -> impl Strategy<Value = CallStatus> {
    prop_oneof![
        Just(CallStatus::Queued),
        Just(CallStatus::Initiated),
        Just(CallStatus::Ringing),
        Just(CallStatus::InProgress),
        Just(CallStatus::Completed),
        Just(CallStatus::Busy),
        Just(CallStatus::Failed),
        Just(CallStatus::NoAnswer),
        Just(CallStatus::Canceled),
        Just(CallStatus::Other),
    ]
}

fn dial_status() -> impl Strategy<Value = DialStatus> {
    prop_oneof![
        Just(DialStatus::Completed),
        Just(DialStatus::Answered),
        Just(DialStatus::Busy),
        Just(DialStatus::NoAnswer),
        Just(DialStatus::Failed),
        Just(DialStatus::Canceled),
    ]
}

fn leg() -> impl Strategy<Value = (CallSid, Party)> {
    prop_oneof![
        Just((sid("LEG-a"), party("sip:ada@x.example"))),
        Just((sid("LEG-b"), party("+12025550100"))),
        Just((sid("LEG-c"), party("sip:nobody@x.example"))),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        Just(Event::Incoming {
            from: party("+12025550142"),
            to: party("+18005550100"),
            account: None,
        }),
        (
            1u8..=3,
            0u8..3,
            dial_status(),
            option::of(leg()),
            option::of(0u32..300)
        )
            .prop_map(
                |(round, group, status, leg, duration_secs)| Event::DialEnded {
                    round: Some(round),
                    group,
                    status,
                    dial_sid: leg.map(|(sid, _)| sid),
                    duration_secs,
                    from: party("+12025550142"),
                    to: party("+18005550100"),
                    line: None,
                }
            ),
        (leg(), call_status()).prop_map(|((leg, to), status)| Event::LegStatus { leg, status, to }),
        call_status().prop_map(|status| Event::CallStatus { status }),
        Just(Event::RecordEnded),
        (any::<bool>(), recording_status(), option::of(0u32..120)).prop_map(
            |(voicemail, status, duration_secs)| Event::Recording {
                kind: if voicemail {
                    RecordingKind::Voicemail
                } else {
                    RecordingKind::Conversation
                },
                status,
                url: Some("https://rec.example/r.mp3".into()),
                duration_secs,
                copy: None,
            }
        ),
        Just(Event::Expired),
    ]
}

fn recording_status() -> impl Strategy<Value = RecordingStatus> {
    prop_oneof![
        Just(RecordingStatus::Completed),
        Just(RecordingStatus::Absent),
        Just(RecordingStatus::InProgress),
    ]
}

fn available(present: bool) -> Snapshot {
    Snapshot::ringing(present.then(agents))
}

/// Plays `events` in order, checking the invariants after each; returns the final state and
/// every fact emitted.
fn play(
    events: &[(u64, Event)],
    snapshot: &Snapshot,
    policy: &Policy,
) -> (Option<Call>, Vec<FactKind>) {
    let id = sid("CA-prop");
    let mut call: Option<Call> = None;
    let mut facts: Vec<FactKind> = Vec::new();
    let mut now = 0;
    for (gap, event) in events {
        now += gap;
        let was_ended = call.as_ref().is_some_and(Call::is_ended);
        let existed = call.is_some();
        let step = transition(&id, call.as_ref(), event, now, policy, snapshot);
        for fact in step.facts {
            let kind = std::mem::discriminant(&fact.kind);
            assert!(
                facts.iter().all(|k| std::mem::discriminant(k) != kind),
                "{:?} emitted twice",
                fact.kind
            );
            facts.push(fact.kind);
        }
        if let Some(next) = step.next {
            call = Some(next);
        }
        let is_ended = call.as_ref().is_some_and(Call::is_ended);
        assert!(
            !was_ended || is_ended,
            "an ended call came back to life on {event:?}"
        );
        if let Event::CallStatus { status } = event {
            if status.is_final() && existed {
                assert!(is_ended, "the call completed but is not ended");
            }
        }
    }
    let finals = facts.iter().filter(|f| f.final_outcome().is_some()).count();
    assert!(finals <= 1, "more than one final outcome: {facts:?}");
    (call, facts)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_sequence_keeps_the_invariants(
        events in vec((0u64..120_000, event()), 0..40),
        present in any::<bool>(),
        rounds in 1u8..=3,
        twilio in any::<bool>(),
    ) {
        let snapshot = available(present);
        let limits = if twilio { DialLimits::twilio(false) } else { DialLimits::default() };
        let policy = Policy::default().with_rounds(rounds).with_limits(limits);
        let (call, facts) = play(&events, &snapshot, &policy);
        // However it got there, the caller's final callback ends the call, and once the grace
        // period has passed its outcome is decided: exactly one final outcome per call.
        if let Some(call) = call {
            let done = Event::CallStatus { status: CallStatus::Completed };
            let step = transition(&call.sid, Some(&call), &done, u64::MAX / 2, &policy, &snapshot);
            let mut all: Vec<FactKind> = facts;
            all.extend(step.facts.into_iter().map(|f| f.kind));
            let end = step.next.unwrap_or(call);
            prop_assert!(end.is_ended());
            prop_assert_eq!(end.reply(), Reply::Hangup);
            let step = transition(&end.sid, Some(&end), &Event::Expired, u64::MAX / 2, &policy, &snapshot);
            all.extend(step.facts.into_iter().map(|f| f.kind));
            let end = step.next.unwrap_or(end);
            prop_assert_eq!(end.unsettled_since(), None);
            let finals = all.iter().filter(|f| f.final_outcome().is_some()).count();
            prop_assert_eq!(finals, 1, "{:?}", all);
        }
    }

    #[test]
    fn delivering_every_event_twice_changes_nothing(
        events in vec((0u64..120_000, event()), 0..40),
        present in any::<bool>(),
        twilio in any::<bool>(),
    ) {
        let limits = if twilio { DialLimits::twilio(false) } else { DialLimits::default() };
        let policy = Policy::default().with_limits(limits);
        let snapshot = available(present);
        let doubled: Vec<(u64, Event)> = events
            .iter()
            .flat_map(|(gap, e)| [(*gap, e.clone()), (0, e.clone())])
            .collect();
        prop_assert_eq!(play(&events, &snapshot, &policy), play(&doubled, &snapshot, &policy));
    }
}

/// Who-rings properties over several calls sharing three agents: Ada on a SIP phone (not
/// screened), Bob and Cy on numbers (screened). Agents' presence is carried from step to step as
/// the call service carries it (each step's marks applied), and every event reads it.
mod who_rings {
    use std::collections::{HashMap, HashSet};

    use super::*;
    use crate::call::routing::{Mark, Presence, Presences, Routing, Strategy as Order};
    use crate::domain::{Agent, Endpoint};

    const CALLS: usize = 3;

    fn team() -> Vec<Agent> {
        vec![
            Agent::new("Ada", Endpoint::sip("sip:ada@x.example").expect("sip")).expect("agent"),
            Agent::new("Bob", Endpoint::number("+12025550101").expect("num")).expect("agent"),
            Agent::new("Cy", Endpoint::number("+12025550102").expect("num")).expect("agent"),
        ]
    }

    /// The leg that rings agent `agent` for call `call` (one per call and agent: the provider's
    /// leg of another round has another sid, which changes nothing here).
    fn leg_of(call: usize, agent: usize) -> CallSid {
        sid(&format!("LEG-{call}-{agent}"))
    }

    /// What can happen, to which call: the caller's events, any leg's callback, a whisper
    /// fetched or answered with any key (1 most of the time), delivered any number of times.
    #[derive(Debug, Clone)]
    enum Happening {
        Incoming,
        LegStatus(usize, CallStatus),
        DialEnded(u8, u8, DialStatus, Option<usize>),
        Whisper(u8, u8, usize),
        Pressed(u8, u8, usize, Option<&'static str>),
        CallStatus(CallStatus),
        /// An operator sets an agent away (or available): no call event.
        Away(usize, bool),
    }

    fn happening() -> impl Strategy<Value = Happening> {
        let agent = 0usize..3;
        let key = prop_oneof![3 => Just(Some("1")), 1 => Just(Some("2")), 1 => Just(None)];
        prop_oneof![
            1 => Just(Happening::Incoming),
            4 => (agent.clone(), call_status()).prop_map(|(a, s)| Happening::LegStatus(a, s)),
            3 => (1u8..=3, 0u8..3, dial_status(), option::of(agent.clone()))
                .prop_map(|(r, g, s, a)| Happening::DialEnded(r, g, s, a)),
            2 => (1u8..=3, 0u8..3, agent.clone()).prop_map(|(r, g, a)| Happening::Whisper(r, g, a)),
            5 => (1u8..=3, 0u8..3, agent, key).prop_map(|(r, g, a, k)| Happening::Pressed(r, g, a, k)),
            1 => call_status().prop_map(Happening::CallStatus),
            1 => (0usize..3, any::<bool>()).prop_map(|(a, away)| Happening::Away(a, away)),
        ]
    }

    /// The call event of `happening` (`None` for an operator's change).
    fn event(call: usize, happening: &Happening, team: &[Agent]) -> Option<Event> {
        let caller = party("+12025550142");
        let endpoint = |a: usize| party(team[a].endpoint.as_str());
        Some(match happening {
            Happening::Incoming => Event::Incoming {
                from: caller,
                to: party("+18005550100"),
                account: None,
            },
            Happening::LegStatus(a, status) => Event::LegStatus {
                leg: leg_of(call, *a),
                status: *status,
                to: endpoint(*a),
            },
            Happening::DialEnded(round, group, status, a) => Event::DialEnded {
                round: Some(*round),
                group: *group,
                status: *status,
                dial_sid: a.map(|a| leg_of(call, a)),
                duration_secs: Some(30),
                from: caller,
                to: party("+18005550100"),
                line: None,
            },
            Happening::Whisper(round, group, a) | Happening::Pressed(round, group, a, _) => {
                let step = match happening {
                    Happening::Pressed(.., key) => ScreenStep::Pressed(key.map(Box::from)),
                    _ => ScreenStep::Start,
                };
                Event::Screen {
                    round: *round,
                    group: *group,
                    agent: team[*a].id.clone(),
                    leg: leg_of(call, *a),
                    step,
                }
            }
            Happening::CallStatus(status) => Event::CallStatus { status: *status },
            Happening::Away(..) => return None,
        })
    }

    fn order() -> impl Strategy<Value = Order> {
        prop_oneof![
            Just(Order::Ringall),
            Just(Order::Sequential),
            Just(Order::RoundRobin),
            Just(Order::LongestIdle),
        ]
    }

    /// The `<Dial>` a call is on, if it is ringing one.
    fn dial_of(call: Option<&Call>) -> Option<(u8, u8)> {
        match call.map(|c| &c.phase) {
            Some(Phase::Dialing { round, group, .. }) => Some((*round, *group)),
            _ => None,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1500))]

        #[test]
        fn one_agent_per_call_and_nobody_rung_while_busy(
            script in vec((0..CALLS, 0u64..20_000, happening(), 1usize..=2), 1..60),
            strategy in order(),
            max_legs in 0usize..=2,
            wrap_up_secs in prop_oneof![Just(0u32), Just(15)],
        ) {
            let team = team();
            let routing = Routing { strategy, wrap_up_secs, ..Routing::default() };
            let limits = DialLimits::default().with_max_legs(max_legs);
            let policy = Policy::default().with_routing(routing).with_limits(limits);
            let everyone = Targets::new(team.clone().into());
            let mut calls: Vec<Option<Call>> = vec![None; CALLS];
            let mut presences: HashMap<Box<str>, Presence> = HashMap::new();
            // Per call: the agents connected to it (accepted, or answered unscreened).
            let mut connected: Vec<HashSet<Box<str>>> = vec![HashSet::new(); CALLS];
            let mut now = 0;
            for (n, gap, happening, times) in &script {
                now += gap;
                let id = sid(&format!("CA-{n}"));
                let Some(event) = event(*n, happening, &team) else {
                    if let Happening::Away(a, away) = happening {
                        let mark = Mark::Away { agent: team[*a].id.clone(), away: *away };
                        let p = presences.remove(&team[*a].id).unwrap_or_default();
                        presences.insert(team[*a].id.clone(), mark.apply(p));
                    }
                    continue;
                };
                for _ in 0..*times {
                    let before = presences.clone();
                    let snapshot = Snapshot {
                        available: everyone.clone(),
                        presence: Presences::new(before.clone()),
                        ..Snapshot::default()
                    };
                    let call = calls[*n].as_ref();
                    let dial = dial_of(call);
                    let step = transition(&id, call, &event, now, &policy, &snapshot);
                    for mark in &step.marks {
                        if let Mark::Answered { agent, call, .. } = mark {
                            prop_assert_eq!(call, &id);
                            connected[*n].insert(agent.clone());
                        }
                        let p = presences.remove(mark.agent()).unwrap_or_default();
                        presences.insert(mark.agent().into(), mark.apply(p));
                    }
                    if step.reply == Reply::Accept {
                        if let Event::Screen { agent, .. } = &event {
                            connected[*n].insert(agent.clone());
                        }
                    }
                    prop_assert!(
                        connected[*n].len() <= 1,
                        "call {} connected to {:?} after {:?}", n, connected[*n], event
                    );
                    if let Some(next) = step.next {
                        // A `<Dial>` decided now rings only agents free before it.
                        if let Phase::Dialing { round, group, ringing, .. } = &next.phase {
                            if dial_of(Some(&next)) != dial || call.is_none() {
                                for agent in ringing.iter() {
                                    let free = before.get(&agent.id).is_none_or(|p| p.free(now));
                                    prop_assert!(
                                        free,
                                        "{} rung by call {} (round {}, wave {}) while busy: {:?}",
                                        agent.id, n, round, group, before.get(&agent.id)
                                    );
                                }
                            }
                        }
                        calls[*n] = Some(next);
                    }
                }
            }
        }
    }
}
