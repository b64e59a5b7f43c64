//! Property tests of the state machine: any sequence of callbacks, duplicated or reordered,
//! never panics, ends in a terminal state once the call completes, stays terminal, and never
//! emits the same notice twice.

use std::sync::Arc;

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

use super::*;
use crate::domain::{Agent, CallSid, Endpoint, Party};

fn party(s: &str) -> Party {
    Party::parse(s).expect("party")
}

fn sid(s: &str) -> CallSid {
    CallSid::parse(s).expect("sid")
}

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
        }),
        (
            1u8..=3,
            dial_status(),
            option::of(leg()),
            option::of(0u32..300)
        )
            .prop_map(|(round, status, leg, duration_secs)| Event::DialEnded {
                round: Some(round),
                status,
                dial_sid: leg.map(|(sid, _)| sid),
                duration_secs,
                from: party("+12025550142"),
                to: party("+18005550100"),
            }),
        (leg(), call_status()).prop_map(|((leg, to), status)| Event::LegStatus { leg, status, to }),
        call_status().prop_map(|status| Event::CallStatus { status }),
        Just(Event::RecordEnded),
        (any::<bool>(), any::<bool>(), option::of(0u32..120)).prop_map(
            |(voicemail, completed, duration_secs)| Event::Recording {
                kind: if voicemail {
                    RecordingKind::Voicemail
                } else {
                    RecordingKind::Conversation
                },
                completed,
                url: Some("https://rec.example/r.mp3".into()),
                duration_secs,
            }
        ),
    ]
}

fn agents(present: bool) -> Targets {
    if !present {
        return Arc::from(Vec::new());
    }
    Arc::from(vec![
        Agent::new("Ada", Endpoint::sip("sip:ada@x.example").expect("sip")).expect("agent"),
        Agent::new("Bob", Endpoint::number("+12025550100").expect("num")).expect("agent"),
    ])
}

/// Plays `events` in order, checking the invariants after each; returns the final state and
/// every notice kind emitted.
fn play(
    events: &[(u64, Event)],
    available: &Targets,
    rounds: u8,
) -> (Option<Call>, Vec<NoticeKind>) {
    let id = sid("CA-prop");
    let ctx = Context {
        rounds,
        available,
        accepting: true,
    };
    let mut call: Option<Call> = None;
    let mut notices: Vec<NoticeKind> = Vec::new();
    let mut now = 0;
    for (gap, event) in events {
        now += gap;
        let was_ended = call.as_ref().is_some_and(Call::is_ended);
        let existed = call.is_some();
        let step = transition(&id, call.as_ref(), event, now, &ctx);
        for effect in step.effects {
            if let Effect::Notify(n) = effect {
                let kind = std::mem::discriminant(&n.kind);
                assert!(
                    notices.iter().all(|k| std::mem::discriminant(k) != kind),
                    "{:?} emitted twice",
                    n.kind
                );
                notices.push(n.kind);
            }
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
    (call, notices)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_sequence_keeps_the_invariants(
        events in vec((0u64..120_000, event()), 0..40),
        present in any::<bool>(),
        rounds in 1u8..=3,
    ) {
        let available = agents(present);
        let (call, _) = play(&events, &available, rounds);
        // However it got there, the caller's final callback ends the call.
        if let Some(call) = call {
            let done = Event::CallStatus { status: CallStatus::Completed };
            let step = transition(&call.sid, Some(&call), &done, u64::MAX / 2, &Context {
                rounds,
                available: &available,
                accepting: true,
            });
            let end = step.next.unwrap_or(call);
            prop_assert!(end.is_ended());
            prop_assert_eq!(end.reply(), Reply::Hangup);
        }
    }

    #[test]
    fn delivering_every_event_twice_changes_nothing(
        events in vec((0u64..120_000, event()), 0..40),
        present in any::<bool>(),
    ) {
        let available = agents(present);
        let doubled: Vec<(u64, Event)> = events
            .iter()
            .flat_map(|(gap, e)| [(*gap, e.clone()), (0, e.clone())])
            .collect();
        prop_assert_eq!(play(&events, &available, 2), play(&doubled, &available, 2));
    }
}
