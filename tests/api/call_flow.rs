//! Whole calls, played end to end, with every document pinned by a golden file.

use reqwest::StatusCode;
use switchboard::call::{FactKind, MissReason, Outcome};
use switchboard::domain::{Agent, Endpoint};

use crate::helpers::{assert_golden, spawn_app, spawn_with};

const CALLER: &str = "+12025550142";
const ADA: &str = "sip:ada@switchboard-demo.sip.example.com";
const GRACE: &str = "sip:grace@switchboard-demo.sip.example.com";
const ALAN: &str = "sip:alan@switchboard-demo.sip.example.com";

#[tokio::test]
async fn answered_on_the_first_round() {
    let app = spawn_app().await;
    assert_golden("ring_round_1", &app.inbound("CA-first", CALLER).await);
    for (leg, to) in [("LEG-a", ADA), ("LEG-g", GRACE), ("LEG-t", ALAN)] {
        assert_eq!(
            app.leg("CA-first", leg, "initiated", to, "0").await,
            StatusCode::OK
        );
        assert_eq!(
            app.leg("CA-first", leg, "ringing", to, "1").await,
            StatusCode::OK
        );
    }
    assert_eq!(
        app.leg("CA-first", "LEG-g", "in-progress", GRACE, "2")
            .await,
        StatusCode::OK
    );
    for leg in ["LEG-a", "LEG-t"] {
        app.leg("CA-first", leg, "canceled", ADA, "2").await;
    }
    let after = app
        .dial_action("CA-first", 1, "completed", Some(("LEG-g", "42")))
        .await;
    assert_golden("after_call", &after);
    assert_eq!(
        app.call_status("CA-first", "completed").await,
        StatusCode::OK
    );

    let notices = app.notices_for("CA-first");
    assert_eq!(notices.len(), 3, "{notices:?}");
    assert_eq!(notices[0], FactKind::Ringing { agents: 3 });
    assert!(
        matches!(&notices[1], FactKind::Answered { agent: Some(a), .. } if &**a == "Grace Hopper"),
        "{notices:?}"
    );
    assert_eq!(
        notices[2],
        FactKind::Ended {
            outcome: Outcome::Answered {
                agent: Some("Grace Hopper".into()),
                talk_secs: 42
            },
            settled: true
        }
    );
    assert_eq!(app.live().await, 0);
}

#[tokio::test]
async fn answered_on_the_second_round() {
    let app = spawn_app().await;
    app.inbound_post("CA-second", CALLER).await;
    app.leg("CA-second", "LEG-a1", "ringing", ADA, "1").await;
    app.leg("CA-second", "LEG-a1", "no-answer", ADA, "2").await;
    assert_golden(
        "ring_round_2",
        &app.dial_action("CA-second", 1, "no-answer", None).await,
    );
    app.leg("CA-second", "LEG-t2", "ringing", ALAN, "1").await;
    app.leg("CA-second", "LEG-t2", "in-progress", ALAN, "2")
        .await;
    // The caller hangs up first this time: no Dial action document matters any more.
    assert_eq!(
        app.call_status("CA-second", "completed").await,
        StatusCode::OK
    );
    assert_golden(
        "hangup",
        &app.dial_action("CA-second", 2, "completed", Some(("LEG-t2", "30")))
            .await,
    );

    let notices = app.notices_for("CA-second");
    assert_eq!(notices.len(), 3, "{notices:?}");
    assert!(
        matches!(&notices[1], FactKind::Answered { agent: Some(a), .. } if &**a == "Alan Turing")
    );
    assert!(
        matches!(&notices[2], FactKind::Ended { outcome: Outcome::Answered { agent: Some(a), .. }, .. } if &**a == "Alan Turing")
    );
}

#[tokio::test]
async fn nobody_answers_and_the_caller_leaves_a_voicemail() {
    let app = spawn_app().await;
    app.inbound("CA-vm", CALLER).await;
    app.dial_action("CA-vm", 1, "no-answer", None).await;
    assert_golden(
        "voicemail",
        &app.dial_action("CA-vm", 2, "no-answer", None).await,
    );
    assert_golden("goodbye", &app.record_action("CA-vm").await);
    assert_eq!(app.call_status("CA-vm", "completed").await, StatusCode::OK);
    // The recording is ready after the call ended, as it usually is.
    let status = app
        .recording("CA-vm", "voicemail", "https://rec.example/vm-1.mp3", "14")
        .await;
    assert_eq!(status, StatusCode::OK);

    let message = switchboard::call::Message {
        url: "https://rec.example/vm-1.mp3".into(),
        duration_secs: 14,
    };
    assert_eq!(
        &app.notices_for("CA-vm")[1..],
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
                duration_secs: 14,
                copy: switchboard::domain::ProviderCopy::of(
                    Some("ACtest"),
                    Some("RE-CA-vm-voicemail")
                ),
            },
            FactKind::Settled {
                outcome: Outcome::Voicemail(message)
            },
        ]
    );
}

#[tokio::test]
async fn caller_hangs_up_while_agents_ring() {
    let app = spawn_app().await;
    app.inbound("CA-gone", CALLER).await;
    app.leg("CA-gone", "LEG-a", "ringing", ADA, "1").await;
    assert_eq!(
        app.call_status("CA-gone", "completed").await,
        StatusCode::OK
    );
    app.leg("CA-gone", "LEG-a", "canceled", ADA, "2").await;
    // A late Dial action changes nothing: the call is over.
    assert_golden(
        "hangup",
        &app.dial_action("CA-gone", 1, "no-answer", None).await,
    );
    assert_eq!(
        app.call_status("CA-gone", "completed").await,
        StatusCode::OK
    );

    let notices = app.notices_for("CA-gone");
    assert_eq!(notices.len(), 2, "nothing after the abandon: {notices:?}");
    assert!(matches!(
        notices[1],
        FactKind::Ended {
            outcome: Outcome::Abandoned { .. },
            settled: true
        }
    ));
}

#[tokio::test]
async fn no_agents_goes_straight_to_voicemail() {
    let app = spawn_with(|s| s.agents.clear()).await;
    assert_golden("no_agents", &app.inbound("CA-empty", CALLER).await);
    assert_eq!(
        app.notices_for("CA-empty"),
        vec![FactKind::SentToVoicemail {
            reason: MissReason::NoAgents
        }]
    );
}

#[tokio::test]
async fn get_and_post_voice_requests_get_the_same_document() {
    let app = spawn_app().await;
    let get = app.inbound("CA-get", CALLER).await;
    let post = app.inbound_post("CA-post", CALLER).await;
    assert_eq!(get.status, StatusCode::OK);
    assert_eq!(get.body, post.body);
    assert_golden("ring_round_1", &post);
}

#[tokio::test]
async fn a_caller_number_cannot_break_or_inject_xml() {
    let app = spawn_app().await;
    let hostile = r#"+1202<&"'></Dial><Hangup/>"#;
    let answer = app.inbound("CA-hostile", hostile).await;
    assert_eq!(answer.status, StatusCode::OK);
    let doc = roxmltree::Document::parse(&answer.body).expect("well-formed XML");
    let verbs: Vec<_> = doc
        .root_element()
        .children()
        .filter(|n| n.is_element())
        .map(|n| n.tag_name().name().to_owned())
        .collect();
    assert_eq!(verbs, ["Play", "Dial"], "{}", answer.body);
    let dial = doc
        .descendants()
        .find(|n| n.has_tag_name("Dial"))
        .expect("dial");
    // The number is data, never markup; agents see it within Telnyx's characters.
    assert_eq!(dial.attribute("fromDisplayName"), Some("+1202DialHangup"));
    assert_eq!(dial.children().filter(|n| n.is_element()).count(), 3);
}

#[tokio::test]
async fn finished_calls_are_forgotten_after_the_grace_period() {
    let app = spawn_with(|s| {
        s.calls.grace_secs = 1;
        s.calls.sweep_interval_secs = 1;
    })
    .await;
    app.inbound("CA-sweep", CALLER).await;
    app.call_status("CA-sweep", "completed").await;
    assert_eq!(app.live().await, 0);
    // Within the grace period the call is remembered: a repeated voice request just hangs up.
    assert_golden("hangup", &app.inbound("CA-sweep", CALLER).await);
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    // Forgotten: the same CallSid is now a new call.
    assert_golden("ring_round_1", &app.inbound("CA-sweep", CALLER).await);
}

#[tokio::test]
async fn agents_on_phone_numbers_ring_with_number_nouns() {
    let app = spawn_with(|s| {
        let sip = Endpoint::sip(ADA).expect("sip");
        let number = Endpoint::number("+12025550199").expect("number");
        s.agents = vec![
            Agent::new("Ada Lovelace", sip).expect("agent"),
            Agent::new("Night shift", number).expect("agent"),
        ];
        s.dial.record = switchboard::texml::RecordMode::DoNotRecord;
        s.dial.ring_timeout_secs = 30;
    })
    .await;
    let ring = app.inbound("CA-mixed", CALLER).await;
    assert_golden("ring_mixed", &ring);
    // The number is screened (dial.screen = "numbers"): its answering is not yet an answer.
    app.leg("CA-mixed", "LEG-n", "in-progress", "+1 202 555 0199", "2")
        .await;
    assert_eq!(app.notices_for("CA-mixed").len(), 1);
    let whisper = crate::helpers::legs(&ring)[1].1.clone().expect("screened");
    let prompt = app
        .whisper(&whisper, "CA-mixed", "LEG-n", "+12025550199")
        .await;
    assert_golden("screen", &prompt);
    let action = crate::helpers::gather_action(&prompt);
    let accepted = app
        .press(&action, "CA-mixed", "LEG-n", "+12025550199", Some("1"))
        .await;
    assert_golden("screen_accept", &accepted);
    let notices = app.notices_for("CA-mixed");
    assert!(
        matches!(&notices[1], FactKind::Answered { agent: Some(a), .. } if &**a == "Night shift"),
        "{notices:?}"
    );
}
