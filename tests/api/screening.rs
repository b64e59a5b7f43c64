//! Who rings, and how, over HTTP as the provider drives it: press-1 screening (a voicemail that
//! answers never gets the caller; two agents pressing 1 at once make one winner, also across two
//! replicas), a team larger than a `<Dial>` rung in waves under Twilio, busy agents and wrap-up,
//! and the ring strategies.

use std::sync::Arc;

use switchboard::call::FactKind;
use switchboard::domain::{Agent, Endpoint, Screen};
use switchboard::time::ManualClock;

use crate::helpers::{
    assert_golden, gather_action, legs, ringing, spawn_with, spawn_with_clock, Received, TestApp,
};
use crate::replicas::{replica, slack_ok, Redis};

const CALLER: &str = "+12025550142";
/// 2026-11-21 12:00 UTC.
const T0: u64 = 1_795_262_400_000;

fn number_agent(name: &str, number: &str) -> Agent {
    Agent::new(name, Endpoint::number(number).expect("number")).expect("agent")
}

fn answered(app: &TestApp, sid: &str) -> Vec<Option<Box<str>>> {
    app.notices_for(sid)
        .into_iter()
        .filter_map(|f| match f {
            FactKind::Answered { agent, .. } => Some(agent),
            _ => None,
        })
        .collect()
}

/// Two agents on phone numbers (screened by default).
fn two_mobiles(s: &mut switchboard::config::Settings) {
    s.agents = vec![
        number_agent("Mo Bile", "+12025550101"),
        number_agent("Cel Lular", "+12025550102"),
    ];
}

fn whisper_url(ring: &Received, to: &str) -> String {
    legs(ring)
        .into_iter()
        .find(|(target, _)| target == to)
        .and_then(|(_, url)| url)
        .unwrap_or_else(|| panic!("{to} is not screened in {}", ring.body))
}

#[tokio::test]
async fn a_screened_agent_who_does_not_press_1_never_gets_the_caller() {
    let app = spawn_with(two_mobiles).await;
    let ring = app.inbound("CA-vm", CALLER).await;
    // The voicemail of Mo's mobile answers the leg...
    app.leg("CA-vm", "LEG-mo", "in-progress", "+12025550101", "2")
        .await;
    let prompt = app
        .whisper(
            &whisper_url(&ring, "+12025550101"),
            "CA-vm",
            "LEG-mo",
            "+12025550101",
        )
        .await;
    // ...hears the prompt and presses nothing: Telnyx may request the action with no digits
    // (Twilio falls through to the <Hangup/> after the Gather). Either way the leg hangs up.
    let action = gather_action(&prompt);
    assert!(prompt.body.trim_end().ends_with("<Hangup/>\n</Response>"));
    let no_key = app
        .press(&action, "CA-vm", "LEG-mo", "+12025550101", None)
        .await;
    assert_golden("hangup", &no_key);
    assert!(answered(&app, "CA-vm").is_empty(), "no answered notice");
    // The provider ends the Dial as "completed" on that leg: not an answer, round 2 rings.
    let next = app
        .dial_action("CA-vm", 1, "completed", Some(("LEG-mo", "9")))
        .await;
    assert_eq!(legs(&next).len(), 2, "{}", next.body);
    assert!(next.body.contains("round=2"), "{}", next.body);
    assert!(answered(&app, "CA-vm").is_empty());
    assert_eq!(
        app.metric("switchboard_screenings_total{answer=\"declined\"}")
            .await,
        Some(1.0)
    );
}

#[tokio::test]
async fn a_screened_agent_who_presses_1_takes_the_call() {
    let app = spawn_with(two_mobiles).await;
    let ring = app.inbound("CA-yes", CALLER).await;
    let url = whisper_url(&ring, "+12025550102");
    let prompt = app.whisper(&url, "CA-yes", "LEG-cel", "+12025550102").await;
    assert!(
        prompt.body.contains("Press 1 to take it"),
        "{}",
        prompt.body
    );
    let accepted = app
        .press(
            &gather_action(&prompt),
            "CA-yes",
            "LEG-cel",
            "+12025550102",
            Some("1"),
        )
        .await;
    assert_golden("screen_accept", &accepted);
    assert_eq!(answered(&app, "CA-yes"), [Some("Cel Lular".into())]);
    // The bridge ends: the caller hears the after-call prompt; the call is Cel's.
    let after = app
        .dial_action("CA-yes", 1, "completed", Some(("LEG-cel", "42")))
        .await;
    assert_golden("after_call", &after);
}

/// Both agents press 1 at the same moment; returns the two answers.
async fn both_press(a: &TestApp, b: &TestApp, sid: &str, ring: &Received) -> [Received; 2] {
    let (mo, cel) = (
        whisper_url(ring, "+12025550101"),
        whisper_url(ring, "+12025550102"),
    );
    let (p1, p2) = tokio::join!(
        a.whisper(&mo, sid, "LEG-mo", "+12025550101"),
        b.whisper(&cel, sid, "LEG-cel", "+12025550102"),
    );
    let (k1, k2) = (gather_action(&p1), gather_action(&p2));
    let (r1, r2) = tokio::join!(
        a.press(&k1, sid, "LEG-mo", "+12025550101", Some("1")),
        b.press(&k2, sid, "LEG-cel", "+12025550102", Some("1")),
    );
    [r1, r2]
}

fn one_winner(answers: &[Received; 2]) {
    let won: Vec<bool> = answers
        .iter()
        .map(|r| !r.body.contains("<Hangup/>"))
        .collect();
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
    let loser = answers.iter().find(|r| r.body.contains("<Hangup/>"));
    assert!(
        loser.is_some_and(|r| r.body.contains("Another agent took this call")),
        "the other hears who was faster"
    );
}

#[tokio::test]
async fn two_agents_accepting_at_once_make_one_winner() {
    // No wrap-up: the winner of one call rings for the next at once.
    let app = spawn_with(|s| {
        two_mobiles(s);
        s.dial.wrap_up_secs = 0;
    })
    .await;
    for i in 0..5 {
        let sid = format!("CA-race-{i}");
        let ring = app.inbound(&sid, CALLER).await;
        one_winner(&both_press(&app, &app, &sid, &ring).await);
        assert_eq!(answered(&app, &sid).len(), 1);
        // The winner is busy until this call ends.
        app.call_status(&sid, "completed").await;
    }
}

#[tokio::test]
async fn two_agents_accepting_at_once_on_two_replicas_make_one_winner() {
    let redis = Redis::start();
    let slack = slack_ok().await;
    let clock = Arc::new(ManualClock::at(T0));
    let a = replica(&redis, &slack, clock.clone(), two_mobiles).await;
    let b = replica(&redis, &slack, clock, two_mobiles).await;
    let (a, b) = (&a.app, &b.app);
    let ring = a.inbound("CA-race-r", CALLER).await;
    one_winner(&both_press(a, b, "CA-race-r", &ring).await);
    let told = answered(a, "CA-race-r").len() + answered(b, "CA-race-r").len();
    assert_eq!(told, 1, "one answered notice between the replicas");
}

#[tokio::test]
async fn twenty_five_numbers_under_twilio_ring_in_waves_of_ten_within_the_round() {
    let app = spawn_with(|s| {
        s.provider.kind = switchboard::config::Provider::Twilio;
        s.agents = (0..25)
            .map(|i| number_agent(&format!("Agent {i:02}"), &format!("+1202555{:04}", 200 + i)))
            .collect();
    })
    .await;
    let mut answer = app.inbound("CA-25", CALLER).await;
    let mut rung = Vec::new();
    let mut dials = 0;
    for group in 1..=10u8 {
        let round_1 = answer.body.contains("round=1");
        if !round_1 {
            break;
        }
        let nouns = legs(&answer);
        assert!(nouns.len() <= 10, "{} numbers in one <Dial>", nouns.len());
        assert!(
            nouns.iter().all(|(_, url)| url.is_some()),
            "numbers are screened"
        );
        rung.extend(nouns.into_iter().map(|(n, _)| n));
        dials += 1;
        answer = app
            .dial_action_group("CA-25", 1, group - 1, "no-answer")
            .await;
    }
    assert_eq!(dials, 3);
    rung.sort();
    rung.dedup();
    assert_eq!(rung.len(), 25, "every agent rung once within round 1");
    // Round 2 opens with the busy prompt once, not per wave.
    assert!(answer.body.contains("round=2") && answer.body.contains("busy"));
}

#[tokio::test]
async fn an_agent_on_a_call_is_not_rung_until_it_ends_plus_wrap_up() {
    let clock = Arc::new(ManualClock::at(T0));
    let app = spawn_with_clock(|s| s.dial.wrap_up_secs = 15, clock.clone()).await;
    let ada = "sip:ada@switchboard-demo.sip.example.com";
    assert!(ringing(&app.inbound("CA-1", CALLER).await).contains(&ada.to_owned()));
    app.leg("CA-1", "LEG-ada", "in-progress", ada, "2").await;
    // Ada talks: a second call rings the others only.
    let second = app.inbound("CA-2", CALLER).await;
    assert_eq!(ringing(&second).len(), 2);
    assert!(!ringing(&second).contains(&ada.to_owned()));
    // The conversation ends at +60 s; wrap-up until +75 s.
    clock.advance_secs(60);
    app.dial_action("CA-1", 1, "completed", Some(("LEG-ada", "55")))
        .await;
    app.call_status("CA-1", "completed").await;
    clock.advance_secs(14);
    assert!(!ringing(&app.inbound("CA-3", CALLER).await).contains(&ada.to_owned()));
    clock.advance_secs(1);
    assert!(ringing(&app.inbound("CA-4", CALLER).await).contains(&ada.to_owned()));
}

#[tokio::test]
async fn sequential_rings_one_agent_at_a_time_in_the_configured_order() {
    let app =
        spawn_with(|s| s.dial.strategy = switchboard::call::routing::Strategy::Sequential).await;
    let mut order = Vec::new();
    let mut answer = app.inbound("CA-seq", CALLER).await;
    for group in 0..3u8 {
        let rung = ringing(&answer);
        assert_eq!(rung.len(), 1, "{}", answer.body);
        assert!(
            answer.body.contains("timeout=\"20\""),
            "each for the whole ring time"
        );
        order.extend(rung);
        answer = app.dial_action_group("CA-seq", 1, group, "no-answer").await;
    }
    let user = |uri: &String| uri.split(['@', ':']).nth(1).unwrap_or_default().to_owned();
    assert_eq!(
        order.iter().map(user).collect::<Vec<_>>(),
        ["ada", "grace", "alan"]
    );
}

#[tokio::test]
async fn round_robin_starts_after_the_agent_who_answered_last() {
    let app = spawn_with(|s| {
        s.dial.strategy = switchboard::call::routing::Strategy::RoundRobin;
        s.dial.wrap_up_secs = 0;
    })
    .await;
    let first = ringing(&app.inbound("CA-rr-1", CALLER).await);
    assert!(first[0].contains("ada"));
    // Grace answers the first call (after Ada rang out).
    let grace = app.dial_action_group("CA-rr-1", 1, 0, "no-answer").await;
    assert!(ringing(&grace)[0].contains("grace"));
    let grace_uri = ringing(&grace)[0].clone();
    app.leg("CA-rr-1", "LEG-g", "in-progress", &grace_uri, "2")
        .await;
    app.dial_action_group("CA-rr-1", 1, 1, "completed").await;
    app.call_status("CA-rr-1", "completed").await;
    // The next call starts after Grace: Alan.
    let next = ringing(&app.inbound("CA-rr-2", CALLER).await);
    assert!(next[0].contains("alan"), "{next:?}");
}

#[tokio::test]
async fn an_agent_can_opt_out_of_screening_and_a_line_can_screen_everyone() {
    let app = spawn_with(|s| {
        s.dial.screen = Screen::Always;
        let mut desk = number_agent("Desk", "+12025550103");
        desk.screen = Some(Screen::Never);
        s.agents.push(desk);
    })
    .await;
    let ring = app.inbound("CA-mix", CALLER).await;
    for (target, url) in legs(&ring) {
        assert_eq!(url.is_some(), target != "+12025550103", "{target}");
    }
}
