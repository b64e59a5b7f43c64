//! Slack messages as the channel receives them (Slack is a wiremock server), and their delivery.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use switchboard::time::ManualClock;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{
    assert_golden_json, metric_in, spawn_with_clock, use_slack, wait_for_messages, TestApp, T0,
};

const CALLER: &str = "+12025550142";
const GRACE: &str = "sip:grace@switchboard-demo.sip.example.com";

async fn slack_ok() -> MockServer {
    let slack = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/services/T000/B000/fake"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&slack)
        .await;
    slack
}

#[tokio::test]
async fn each_call_outcome_posts_its_exact_message() {
    let slack = slack_ok().await;
    let clock = Arc::new(ManualClock::at(T0));
    let app = spawn_with_clock(|s| use_slack(s, &slack), clock.clone()).await;

    // Answered by Grace after 7 s; they talk 2 min 5 s.
    app.inbound("CA-answered", CALLER).await;
    clock.advance_secs(7);
    app.leg("CA-answered", "LEG-g", "in-progress", GRACE, "2")
        .await;
    clock.advance_secs(125);
    app.dial_action("CA-answered", 1, "completed", Some(("LEG-g", "125")))
        .await;
    app.call_status("CA-answered", "completed").await;
    // Nobody answers; a 14 s voicemail.
    app.inbound("CA-voicemail", CALLER).await;
    clock.advance_secs(20);
    app.dial_action("CA-voicemail", 1, "no-answer", None).await;
    clock.advance_secs(20);
    app.dial_action("CA-voicemail", 2, "no-answer", None).await;
    clock.advance_secs(20);
    app.record_action("CA-voicemail").await;
    app.call_status("CA-voicemail", "completed").await;
    app.recording(
        "CA-voicemail",
        "voicemail",
        "https://rec.example/vm.mp3?a=1&b=<2>",
        "14",
    )
    .await;
    // The caller gives up after 12 s.
    app.inbound("CA-abandoned", CALLER).await;
    clock.advance_secs(12);
    app.call_status("CA-abandoned", "completed").await;

    let messages = wait_for_messages(&slack, 8).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        slack.received_requests().await.map(|r| r.len()),
        Some(8),
        "no extra message"
    );
    for m in &messages {
        assert!(m["text"].is_string(), "fallback text");
        assert_eq!(m["blocks"].as_array().map(Vec::len), Some(3));
    }
    assert_golden_json("call_outcomes", &Value::Array(messages));
}

#[tokio::test]
async fn duplicated_callbacks_post_each_message_once() {
    let slack = slack_ok().await;
    let app = spawn_with_clock(|s| use_slack(s, &slack), Arc::new(ManualClock::at(T0))).await;
    for _ in 0..3 {
        app.inbound("CA-dup", CALLER).await;
        app.leg("CA-dup", "LEG-g", "in-progress", GRACE, "2").await;
    }
    for _ in 0..3 {
        app.dial_action("CA-dup", 1, "completed", Some(("LEG-g", "30")))
            .await;
        app.call_status("CA-dup", "completed").await;
        app.leg("CA-dup", "LEG-g", "completed", GRACE, "3").await;
    }
    // A second call marks the end: once its message is in, everything before it is too.
    app.inbound("CA-sentinel", CALLER).await;
    let messages = wait_for_messages(&slack, 4).await;
    let headers: Vec<_> = messages
        .iter()
        .map(|m| {
            m["blocks"][0]["text"]["text"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(
        headers,
        [
            ":telephone_receiving: Incoming call",
            ":white_check_mark: Call answered",
            ":telephone_receiver: Call finished",
            ":telephone_receiving: Incoming call",
        ]
    );
    assert!(messages[3]["blocks"][2]["elements"][0]["text"]
        .as_str()
        .is_some_and(|t| t.contains("CA-sentinel")));
}

#[tokio::test]
async fn masked_numbers_and_a_no_agent_call() {
    let slack = slack_ok().await;
    let app = spawn_with_clock(
        |s| {
            use_slack(s, &slack);
            s.privacy.mask_caller_numbers = true;
            s.slack.mention = switchboard::sink::slack::Mention::Here;
            s.agents.clear();
        },
        Arc::new(ManualClock::at(T0)),
    )
    .await;
    app.inbound("CA-private", CALLER).await;
    let messages = wait_for_messages(&slack, 1).await;
    let text = messages[0].to_string();
    assert!(text.contains("+1202•••0142"), "{text}");
    assert!(!text.contains(CALLER), "{text}");
    assert_golden_json("missed_no_agents_masked", &messages[0]);
}

#[tokio::test]
async fn a_429_waits_for_retry_after_then_delivers_once() {
    let slack = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&slack)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&slack)
        .await;
    let app = spawn_with_clock(|s| use_slack(s, &slack), Arc::new(ManualClock::at(T0))).await;
    let started = Instant::now();
    app.inbound("CA-429", CALLER).await;
    let messages = wait_for_messages(&slack, 2).await;
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "waited Retry-After"
    );
    assert_eq!(messages[0], messages[1], "the same message, retried");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let fates = fates(&app).await;
    assert_eq!(
        (fates["sent"], fates["retried"], dropped(&fates)),
        (1, 1, 0)
    );
}

#[tokio::test]
async fn server_errors_are_retried_and_bad_requests_dropped_and_counted() {
    let slack = MockServer::start().await;
    // Message 1: two 500s, then accepted. Message 2: refused for good (400). Message 3: accepted.
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500).set_body_string("rollup_error"))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&slack)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&slack)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_string("invalid_blocks"))
        .up_to_n_times(1)
        .with_priority(3)
        .mount(&slack)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .with_priority(4)
        .mount(&slack)
        .await;
    let app = spawn_with_clock(|s| use_slack(s, &slack), Arc::new(ManualClock::at(T0))).await;
    app.inbound("CA-1", CALLER).await;
    app.inbound("CA-2", CALLER).await;
    app.inbound("CA-3", CALLER).await;
    let messages = wait_for_messages(&slack, 5).await;
    let sid = |m: &Value| {
        m["blocks"][2]["elements"][0]["text"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    let order: Vec<bool> = messages.iter().map(|m| sid(m).contains("CA-1")).collect();
    assert_eq!(
        order,
        [true, true, true, false, false],
        "retries keep the order"
    );
    assert!(sid(&messages[3]).contains("CA-2") && sid(&messages[4]).contains("CA-3"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let fates = fates(&app).await;
    assert_eq!(
        (fates["sent"], fates["retried"], fates["dropped_rejected"]),
        (2, 2, 1)
    );
}

#[tokio::test]
async fn a_slow_slack_does_not_slow_the_voice_webhook() {
    let slack = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(2)))
        .mount(&slack)
        .await;
    let app = spawn_with_clock(|s| use_slack(s, &slack), Arc::new(ManualClock::at(T0))).await;
    let mut slowest = Duration::ZERO;
    for i in 0..5 {
        let started = Instant::now();
        let answer = app.inbound(&format!("CA-slow-{i}"), CALLER).await;
        slowest = slowest.max(started.elapsed());
        assert_eq!(answer.status, StatusCode::OK);
    }
    // Five messages would take 10 s to deliver; every document came back long before one did.
    assert!(
        slowest < Duration::from_millis(500),
        "slowest voice answer {slowest:?}"
    );
    wait_for_messages(&slack, 1).await;
}

#[tokio::test]
async fn a_full_queue_drops_and_counts() {
    let slack = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(500)))
        .mount(&slack)
        .await;
    let app = spawn_with_clock(
        |s| {
            use_slack(s, &slack);
            s.slack.queue_capacity = 1;
        },
        Arc::new(ManualClock::at(T0)),
    )
    .await;
    for i in 0..6 {
        app.inbound(&format!("CA-full-{i}"), CALLER).await;
    }
    let fates = fates(&app).await;
    let (queued, dropped) = (fates["queued"], fates["dropped_full"]);
    assert_eq!(queued + dropped, 6);
    assert!(
        dropped >= 4,
        "at most one in flight and one waiting: dropped {dropped}"
    );
}

/// Slack deliveries by fate, as `/metrics` shows them.
async fn fates(app: &TestApp) -> std::collections::HashMap<&'static str, u64> {
    let text = app.metrics().await;
    [
        "queued",
        "sent",
        "retried",
        "dropped_full",
        "dropped_rejected",
        "dropped_failed",
        "dropped_shutdown",
    ]
    .into_iter()
    .map(|state| {
        let sample = format!("switchboard_notifications_total{{state=\"{state}\"}}");
        (
            state,
            metric_in(&text, &sample).expect("in /metrics") as u64,
        )
    })
    .collect()
}

fn dropped(fates: &std::collections::HashMap<&'static str, u64>) -> u64 {
    fates
        .iter()
        .filter(|(k, _)| k.starts_with("dropped"))
        .map(|(_, v)| v)
        .sum()
}
