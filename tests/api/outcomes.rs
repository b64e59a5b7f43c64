//! Facts and outcomes as the people watching see them: every call counted once in `/metrics`
//! under its final outcome, and every fact reaching a sink once, however the provider delivers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use switchboard::sink::{Record, Sink};
use switchboard::time::ManualClock;

use crate::helpers::{spawn_with, Spawn, TestApp, T0};

const CALLER: &str = "+12025550142";
const ADA: &str = "sip:ada@switchboard-demo.sip.example.com";

async fn outcome(app: &TestApp, label: &str) -> f64 {
    let sample = format!("switchboard_calls_total{{outcome=\"{label}\",line=\"main\"}}");
    app.metric(&sample).await.unwrap_or(0.0)
}

/// Rings both rounds out: the caller is in voicemail.
async fn to_voicemail(app: &TestApp, sid: &str) {
    app.inbound(sid, CALLER).await;
    app.dial_action(sid, 1, "no-answer", None).await;
    app.dial_action(sid, 2, "no-answer", None).await;
}

#[tokio::test]
async fn a_voicemail_left_in_the_usual_order_is_counted_once_as_a_voicemail() {
    let app = spawn_with(|_| {}).await;
    to_voicemail(&app, "CA-vm").await;
    // The usual order: the Record action, the call's final status, then the recording.
    app.record_action("CA-vm").await;
    assert_eq!(app.call_status("CA-vm", "completed").await, StatusCode::OK);
    assert_eq!(outcome(&app, "missed").await, 0.0, "not decided yet");
    let status = app
        .recording("CA-vm", "voicemail", "https://rec.example/vm.mp3", "14")
        .await;
    assert_eq!(status, StatusCode::OK);
    // A duplicate of the recording callback changes nothing.
    app.recording("CA-vm", "voicemail", "https://rec.example/vm.mp3", "14")
        .await;
    assert_eq!(outcome(&app, "voicemail").await, 1.0);
    assert_eq!(outcome(&app, "missed").await, 0.0);
}

#[tokio::test]
async fn every_outcome_is_counted_once_under_its_label_after_a_mixed_run() {
    let clock = Arc::new(ManualClock::at(T0));
    let app = Spawn::default()
        .settings(|s| {
            s.limits.max_active_calls = 5;
            s.calls.grace_secs = 60;
            s.calls.sweep_interval_secs = 1;
        })
        .clock(clock.clone())
        .start()
        .await;
    // Answered, twice.
    for sid in ["CA-a1", "CA-a2"] {
        app.inbound(sid, CALLER).await;
        app.leg(sid, &format!("{sid}-leg"), "in-progress", ADA, "2")
            .await;
        app.dial_action(sid, 1, "completed", Some((&format!("{sid}-leg"), "30")))
            .await;
        app.call_status(sid, "completed").await;
    }
    // A voicemail, its recording after the end.
    to_voicemail(&app, "CA-v").await;
    app.record_action("CA-v").await;
    app.call_status("CA-v", "completed").await;
    app.recording("CA-v", "voicemail", "https://rec.example/v.mp3", "9")
        .await;
    // Missed: the provider says no recording was made.
    to_voicemail(&app, "CA-m1").await;
    app.call_status("CA-m1", "completed").await;
    app.post_form(
        "/texml/recording?kind=voicemail",
        &[("CallSid", "CA-m1"), ("RecordingStatus", "absent")],
    )
    .await;
    // Missed: the caller hung up during the prompt and nothing more ever came.
    to_voicemail(&app, "CA-m2").await;
    app.call_status("CA-m2", "completed").await;
    // Abandoned.
    app.inbound("CA-gone", CALLER).await;
    app.call_status("CA-gone", "completed").await;
    // Refused: five live calls held, a sixth arrives.
    for i in 0..6 {
        app.inbound(&format!("CA-live-{i}"), CALLER).await;
    }

    assert_eq!(
        outcome(&app, "missed").await,
        1.0,
        "CA-m2 is not decided yet"
    );
    // Ten minutes pass (a recording can come that late, whatever the grace): CA-m2's voicemail
    // will not come any more.
    clock.advance_secs(599);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        outcome(&app, "missed").await,
        1.0,
        "still within ten minutes"
    );
    clock.advance_secs(2);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while outcome(&app, "missed").await < 2.0 {
        assert!(std::time::Instant::now() < deadline, "CA-m2 never settled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let counted = [
        ("answered", 2.0),
        ("voicemail", 1.0),
        ("missed", 2.0),
        ("abandoned", 1.0),
        ("refused", 1.0),
    ];
    for (label, n) in counted {
        assert_eq!(outcome(&app, label).await, n, "{label}");
    }
    assert_eq!(app.live().await, 5);
}

/// A throw-away sink: the kind of each fact, per call.
#[derive(Default)]
struct Tally(Mutex<Vec<(String, String)>>);

impl Sink for Tally {
    fn accept(&self, record: &Record) {
        if let Record::Call { sid, fact, .. } = record {
            let kind = format!("{:?}", fact.kind);
            let kind = kind.split([' ', '{', '(']).next().unwrap_or("").to_owned();
            self.0.lock().expect("tally").push((sid.to_string(), kind));
        }
    }
}

impl Tally {
    fn of(&self, sid: &str) -> Vec<String> {
        let all = self.0.lock().expect("tally");
        all.iter()
            .filter(|(s, _)| s == sid)
            .map(|(_, k)| k.clone())
            .collect()
    }
}

/// One answered call and one voicemail, each callback sent `times` times, the voicemail's
/// callbacks in the usual order or with the recording first.
async fn play(app: &TestApp, tag: &str, times: usize, recording_first: bool) {
    let (answered, vm) = (format!("CA-{tag}-a"), format!("CA-{tag}-v"));
    let leg = format!("{answered}-leg");
    for _ in 0..times {
        app.inbound(&answered, CALLER).await;
    }
    for _ in 0..times {
        app.leg(&answered, &leg, "ringing", ADA, "1").await;
        app.leg(&answered, &leg, "in-progress", ADA, "2").await;
    }
    for _ in 0..times {
        app.dial_action(&answered, 1, "completed", Some((&leg, "20")))
            .await;
        app.call_status(&answered, "completed").await;
    }
    for _ in 0..times {
        to_voicemail(app, &vm).await;
    }
    for _ in 0..times {
        if recording_first {
            app.recording(&vm, "voicemail", "https://rec.example/t.mp3", "5")
                .await;
        }
        app.record_action(&vm).await;
        app.call_status(&vm, "completed").await;
        app.recording(&vm, "voicemail", "https://rec.example/t.mp3", "5")
            .await;
    }
}

#[tokio::test]
async fn a_throw_away_sink_sees_every_fact_once_under_duplicated_and_reordered_callbacks() {
    let tally = Arc::new(Tally::default());
    let app = Spawn::default().sink(tally.clone()).start().await;
    play(&app, "once", 1, false).await;
    play(&app, "thrice", 3, false).await;
    play(&app, "early", 3, true).await;

    let answered = ["Ringing", "Answered", "Ended"];
    assert_eq!(tally.of("CA-once-a"), answered);
    assert_eq!(tally.of("CA-thrice-a"), answered);
    let usual = [
        "Ringing",
        "SentToVoicemail",
        "Ended",
        "VoicemailLeft",
        "Settled",
    ];
    assert_eq!(tally.of("CA-once-v"), usual);
    assert_eq!(tally.of("CA-thrice-v"), usual);
    // The recording overtook the end: the call ends settled, with no Settled fact after.
    let early = ["Ringing", "SentToVoicemail", "VoicemailLeft", "Ended"];
    assert_eq!(tally.of("CA-early-v"), early);
    // Each call is counted once.
    assert_eq!(outcome(&app, "answered").await, 3.0);
    assert_eq!(outcome(&app, "voicemail").await, 3.0);
}
