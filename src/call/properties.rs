//! Property tests of the state machine: any sequence of callbacks, duplicated or reordered,
//! never panics, ends in a terminal state once the call completes, stays terminal, and never
//! emits the same fact twice, and decides exactly one final outcome per call.

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
