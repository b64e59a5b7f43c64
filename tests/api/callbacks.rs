//! At-least-once, out-of-order delivery; unknown calls; bad input.

use reqwest::StatusCode;
use switchboard::call::{FactKind, Outcome};

use crate::helpers::{assert_golden, spawn_app};

const CALLER: &str = "+12025550142";
const ADA: &str = "sip:ada@switchboard-demo.sip.example.com";

#[tokio::test]
async fn duplicated_and_reordered_callbacks_change_nothing() {
    let app = spawn_app().await;
    let first = app.inbound("CA-dup", CALLER).await;
    // A repeated voice request for a live call returns the same document.
    assert_eq!(app.inbound("CA-dup", CALLER).await.body, first.body);
    // Leg callbacks out of order (completed before answered) and each twice.
    for _ in 0..2 {
        app.leg("CA-dup", "LEG-a", "ringing", ADA, "1").await;
        app.leg("CA-dup", "LEG-a", "in-progress", ADA, "2").await;
    }
    assert_eq!(app.inbound("CA-dup", CALLER).await.body, first.body);
    for _ in 0..2 {
        app.leg("CA-dup", "LEG-a", "completed", ADA, "3").await;
        app.leg("CA-dup", "LEG-a", "initiated", ADA, "0").await;
    }
    // The Dial action delivered twice answers the same document both times.
    let after = app
        .dial_action("CA-dup", 1, "completed", Some(("LEG-a", "20")))
        .await;
    assert_golden("after_call", &after);
    assert_golden(
        "after_call",
        &app.dial_action("CA-dup", 1, "completed", Some(("LEG-a", "20")))
            .await,
    );
    for _ in 0..3 {
        assert_eq!(app.call_status("CA-dup", "completed").await, StatusCode::OK);
    }
    // A very late leg callback for the answered leg.
    app.leg("CA-dup", "LEG-a", "in-progress", ADA, "2").await;

    let notices = app.notices_for("CA-dup");
    let kinds: Vec<_> = notices
        .iter()
        .map(|n| match n {
            FactKind::Ringing { .. } => "ringing",
            FactKind::Answered { .. } => "answered",
            FactKind::Ended {
                outcome: Outcome::Answered { .. },
                ..
            } => "finished",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["ringing", "answered", "finished"], "{notices:?}");
    assert!(
        matches!(&notices[2], FactKind::Ended { outcome: Outcome::Answered { talk_secs: 20, agent: Some(a) }, .. } if &**a == "Ada Lovelace")
    );
}

#[tokio::test]
async fn a_repeated_dial_action_for_an_old_round_returns_the_current_document() {
    let app = spawn_app().await;
    app.inbound("CA-old", CALLER).await;
    let round2 = app.dial_action("CA-old", 1, "no-answer", None).await;
    let again = app.dial_action("CA-old", 1, "no-answer", None).await;
    assert_eq!(again.body, round2.body);
    assert_golden("ring_round_2", &again);
}

#[tokio::test]
async fn callbacks_for_an_unknown_call_answer_2xx_and_change_nothing() {
    let app = spawn_app().await;
    assert_eq!(
        app.call_status("CA-nobody", "completed").await,
        StatusCode::OK
    );
    assert_eq!(
        app.leg("CA-nobody", "LEG-x", "ringing", ADA, "0").await,
        StatusCode::OK
    );
    assert_eq!(
        app.recording("CA-nobody", "voicemail", "https://rec.example/x.mp3", "3")
            .await,
        StatusCode::OK
    );
    assert!(app.notices_for("CA-nobody").is_empty());
    assert_eq!(app.live().await, 0);
    // The Record action of an unknown call still closes politely.
    assert_golden("goodbye", &app.record_action("CA-nobody").await);
}

#[tokio::test]
async fn a_dial_action_for_a_forgotten_call_apologises_and_takes_a_message() {
    let app = spawn_app().await;
    assert_golden(
        "apology",
        &app.dial_action("CA-lost", 1, "no-answer", None).await,
    );
    app.record_action("CA-lost").await;
    app.call_status("CA-lost", "completed").await;
    app.recording("CA-lost", "voicemail", "https://rec.example/lost.mp3", "9")
        .await;
    let notices = app.notices_for("CA-lost");
    assert!(
        notices.iter().any(|n| matches!(
            n,
            FactKind::VoicemailLeft {
                duration_secs: 9,
                ..
            }
        )) && matches!(
            notices.last(),
            Some(FactKind::Settled {
                outcome: Outcome::Voicemail(_)
            })
        ),
        "{notices:?}"
    );
}
