//! Documents each provider accepts: golden files of every step under Twilio (Telnyx's are the
//! ones in tests/golden/), a mixed run under Twilio with every document checked against Twilio's
//! limits, and Telnyx's rules for what agents' phones show.

use std::collections::HashSet;

use reqwest::StatusCode;
use switchboard::config::{Provider, Settings};
use switchboard::domain::{Agent, Endpoint};
use switchboard::texml::prompts::display_name_char;

use crate::helpers::{assert_golden, spawn_with, Received};

const CALLER: &str = "+12025550142";

fn twilio(s: &mut Settings) {
    s.provider.kind = Provider::Twilio;
}

/// Twilio's limits on one document: a `<Dial>` holds one `<Sip>` alone (without Enhanced
/// Programmable SIP Features), at most ten `<Number>`s; no `fromDisplayName`; voices Twilio
/// documents; a timeout of at least 5 s. Returns the Dial's targets.
fn check_twilio(doc: &Received) -> Vec<String> {
    assert_eq!(doc.status, StatusCode::OK, "{}", doc.body);
    let xml = roxmltree::Document::parse(&doc.body).expect("well-formed XML");
    let mut targets = Vec::new();
    for dial in xml.descendants().filter(|n| n.has_tag_name("Dial")) {
        let sips = dial.children().filter(|n| n.has_tag_name("Sip")).count();
        let numbers = dial.children().filter(|n| n.has_tag_name("Number")).count();
        assert!(
            sips <= 1 && (sips == 0 || numbers == 0),
            "one <Sip> alone: {}",
            doc.body
        );
        assert!(numbers <= 10, "at most ten <Number>s: {}", doc.body);
        assert!(dial.attribute("fromDisplayName").is_none(), "{}", doc.body);
        let timeout: u32 = dial
            .attribute("timeout")
            .expect("timeout")
            .parse()
            .expect("n");
        assert!(timeout >= 5, "{}", doc.body);
        targets.extend(
            dial.children()
                .filter(|n| n.is_element())
                .filter_map(|n| n.text())
                .map(str::to_owned),
        );
    }
    assert!(xml.descendants().filter(|n| n.has_tag_name("Dial")).count() <= 1);
    for say in xml.descendants().filter(|n| n.has_tag_name("Say")) {
        let voice = say.attribute("voice").unwrap_or("man");
        assert!(
            matches!(voice, "man" | "woman")
                || voice.starts_with("Polly.")
                || voice.starts_with("Google."),
            "a voice Twilio documents: {voice}"
        );
    }
    targets
}

#[tokio::test]
async fn under_twilio_every_step_has_its_golden_document() {
    let app = spawn_with(twilio).await;
    // Three SIP agents without Enhanced Programmable SIP Features: one <Dial> each, the round's
    // 20 s shared out; the greeting or busy prompt only before a round's first <Dial>.
    let sid = "CA-tw";
    let steps = [
        (None, "twilio/ring_round_1"),
        (Some((1, 0, "no-answer")), "twilio/ring_round_1_group_1"),
        (Some((1, 1, "no-answer")), ""),
        (Some((1, 2, "busy")), "twilio/ring_round_2"),
        (Some((2, 0, "no-answer")), ""),
        (Some((2, 1, "failed")), ""),
        (Some((2, 2, "no-answer")), "twilio/voicemail"),
    ];
    for (action, golden) in steps {
        let doc = match action {
            None => app.inbound(sid, CALLER).await,
            Some((round, group, status)) => app.dial_action_group(sid, round, group, status).await,
        };
        check_twilio(&doc);
        if !golden.is_empty() {
            assert_golden(golden, &doc);
        }
    }
    assert_golden("twilio/goodbye", &app.record_action(sid).await);
    app.call_status(sid, "completed").await;
    assert_golden("twilio/hangup", &app.inbound(sid, CALLER).await);
    // An answered call.
    app.inbound("CA-tw-a", CALLER).await;
    let after = app
        .dial_action("CA-tw-a", 1, "completed", Some(("LEG-1", "30")))
        .await;
    assert_golden("twilio/after_call", &after);
    // A call Switchboard lost track of; no agent at all; too many calls.
    let lost = app.dial_action("CA-tw-lost", 1, "no-answer", None).await;
    check_twilio(&lost);
    assert_golden("twilio/apology", &lost);
    let nobody = spawn_with(|s| {
        twilio(s);
        s.agents.clear();
    })
    .await;
    assert_golden(
        "twilio/no_agents",
        &nobody.inbound("CA-tw-none", CALLER).await,
    );
    let full = spawn_with(|s| {
        twilio(s);
        s.limits.max_active_calls = 1;
    })
    .await;
    full.inbound("CA-tw-1", CALLER).await;
    let unavailable = full.inbound("CA-tw-2", CALLER).await;
    check_twilio(&unavailable);
    assert_golden("twilio/unavailable", &unavailable);
}

#[tokio::test]
async fn a_mixed_run_under_twilio_keeps_to_its_limits() {
    let team = |s: &mut Settings| {
        twilio(s);
        let sip = |n: usize| {
            Agent::new(
                &format!("SIP {n}"),
                Endpoint::sip(&format!("sip:a{n}@pbx.example")).expect("sip"),
            )
            .expect("agent")
        };
        let num = |n: usize| {
            Agent::new(
                &format!("Phone {n}"),
                Endpoint::number(&format!("+1202555{n:04}")).expect("num"),
            )
            .expect("agent")
        };
        s.agents = (0..3).map(sip).chain((0..12).map(num)).collect();
        s.dial.caller_id = "+18005550100".into();
    };
    let app = spawn_with(team).await;
    let mut documents = 0;
    // Nobody answers: both rounds walk every group (3 SIP alone, 10 numbers, 2 numbers).
    let mut rung = Vec::new();
    let doc = app.inbound("CA-mix-vm", CALLER).await;
    rung.extend(check_twilio(&doc));
    for round in 1..=2u8 {
        for group in 0..5u8 {
            let doc = app
                .dial_action_group("CA-mix-vm", round, group, "no-answer")
                .await;
            documents += 1;
            rung.extend(check_twilio(&doc));
        }
    }
    // Every agent rang once a round, in both rounds.
    assert_eq!(rung.len(), 30, "{rung:?}");
    assert_eq!(rung.iter().collect::<HashSet<_>>().len(), 15);
    // Answered on the number group of round 1, then abandoned on round 2's second SIP.
    app.inbound("CA-mix-a", CALLER).await;
    for group in 0..3u8 {
        check_twilio(
            &app.dial_action_group("CA-mix-a", 1, group, "no-answer")
                .await,
        );
        documents += 1;
    }
    let numbers = app.inbound("CA-mix-a", CALLER).await;
    assert!(
        numbers.body.contains("callerId=\"+18005550100\""),
        "{}",
        numbers.body
    );
    check_twilio(
        &app.dial_action("CA-mix-a", 1, "completed", Some(("LEG-n", "40")))
            .await,
    );
    app.inbound("CA-mix-ab", CALLER).await;
    app.call_status("CA-mix-ab", "completed").await;
    check_twilio(&app.dial_action_group("CA-mix-ab", 1, 0, "no-answer").await);
    assert!(documents >= 13);
}

#[tokio::test]
async fn a_sip_caller_under_telnyx_shows_within_telnyxs_characters() {
    let app = spawn_with(|_| {}).await;
    let doc = app
        .inbound("CA-sip", "sip:alice.o'hara@example.com;transport=tls")
        .await;
    let xml = roxmltree::Document::parse(&doc.body).expect("XML");
    let dial = xml
        .descendants()
        .find(|n| n.has_tag_name("Dial"))
        .expect("dial");
    let shown = dial.attribute("fromDisplayName").expect("shown");
    assert_eq!(shown, "alice.ohara");
    assert!(shown.chars().all(display_name_char));
    // Nothing left to show: the attribute is left out.
    let doc = app.inbound("CA-sip-2", "sip:@@;;").await;
    assert!(!doc.body.contains("fromDisplayName"), "{}", doc.body);
}

#[tokio::test]
async fn status_callbacks_nobody_asked_for_are_acknowledged_and_change_nothing() {
    let app = spawn_with(|_| {}).await;
    let ada = "sip:ada@switchboard-demo.sip.example.com";
    app.inbound("CA-dtmf", CALLER).await;
    for status in ["dtmf", "amd", "machine-start"] {
        assert_eq!(
            app.leg("CA-dtmf", "LEG-a", status, ada, "3").await,
            StatusCode::OK
        );
        assert_eq!(app.call_status("CA-dtmf", status).await, StatusCode::OK);
    }
    // The call still rings round 1, and ends normally.
    assert!(app
        .inbound("CA-dtmf", CALLER)
        .await
        .body
        .contains("round=1"));
    let ignored = "switchboard_events_ignored_total{reason=\"unrequested\"}";
    assert_eq!(app.metric(ignored).await, Some(6.0));
    assert_eq!(app.live().await, 1);
    app.call_status("CA-dtmf", "completed").await;
    assert_eq!(app.live().await, 0);
}
