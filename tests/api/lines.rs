//! Lines and their hours, configured as an operator writes them (TOML), played over HTTP.

use std::sync::Arc;

use reqwest::StatusCode;
use switchboard::call::{FactKind, Outcome};
use switchboard::config::Settings;
use switchboard::time::ManualClock;

use crate::helpers::{ringing, Spawn, TestApp, T0};

const CALLER: &str = "+12025550142";
pub(crate) const SUPPORT: &str = "+18005550100";
pub(crate) const HOTLINE: &str = "+18005550199";

/// Two lines: support (Ada, Grace) on office hours in New York, a hotline (Alan) always open
/// but closed on `holiday`, forwarding after hours to a phone.
pub(crate) fn config(holiday: &str, support_after_hours: &str) -> String {
    format!(
        r#"
[[agents]]
id = "ada"
name = "Ada Lovelace"
sip = "sip:ada@switchboard-demo.sip.example.com"

[[agents]]
id = "grace"
name = "Grace Hopper"
sip = "sip:grace@switchboard-demo.sip.example.com"

[[agents]]
id = "alan"
name = "Alan Turing"
sip = "sip:alan@switchboard-demo.sip.example.com"

[[lines]]
id = "support"
name = "Support line"
numbers = ["{SUPPORT}"]
agents = ["ada", "grace"]
schedule = "office"
after_hours = "{support_after_hours}"

[[lines]]
id = "hotline"
name = "CoC hotline"
numbers = ["+1 (800) 555-0199"]
agents = ["alan"]
schedule = "event"
after_hours = "forward"
after_hours_forward = ["+12025550111"]

[schedules.office]
time_zone = "America/New_York"
open = [ {{ days = ["mon", "tue", "wed", "thu", "fri"], from = "09:00", to = "17:00" }} ]

[schedules.event]
time_zone = "Europe/Berlin"
open = [ {{ days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], from = "00:00", to = "24:00" }} ]
closed = [ {{ date = "{holiday}" }} ]
"#
    )
}

/// The test server with `toml`'s agents, lines and schedules, its clock at `at`.
pub(crate) async fn spawn_lines(toml: &str, clock: Arc<ManualClock>) -> TestApp {
    Spawn::default()
        .settings(lines_from(toml))
        .clock(clock)
        .start()
        .await
}

/// A settings change that takes `toml`'s agents, lines, schedules and who may call.
pub(crate) fn lines_from(toml: &str) -> impl FnOnce(&mut Settings) {
    let path = std::env::temp_dir().join(format!(
        "sb-lines-{}-{}.toml",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::write(&path, toml).expect("write config");
    let loaded = Settings::load_with(Some(&path), config::Environment::with_prefix("SB_UNUSED"))
        .expect("the lines configuration is valid");
    std::fs::remove_file(&path).ok();
    move |s| {
        s.agents = loaded.agents;
        s.lines = loaded.lines;
        s.schedules = loaded.schedules;
        s.unknown_number = loaded.unknown_number;
        s.blocking = loaded.blocking;
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

pub(crate) async fn call(app: &TestApp, sid: &str, to: &str) -> crate::helpers::Received {
    let form = [("CallSid", sid), ("From", CALLER), ("To", to)];
    app.post_form("/texml/inbound", &form).await
}

/// Monday 2026-11-23, 10:00 in New York.
pub(crate) const MONDAY_MORNING_NY: u64 = 1_795_446_000_000;

#[tokio::test]
async fn each_line_rings_only_its_own_agents() {
    let app = spawn_lines(
        &config("2026-12-31", "voicemail"),
        Arc::new(ManualClock::at(MONDAY_MORNING_NY)),
    )
    .await;
    assert_eq!(
        ringing(&call(&app, "CA-s", SUPPORT).await),
        [
            "sip:ada@switchboard-demo.sip.example.com",
            "sip:grace@switchboard-demo.sip.example.com"
        ]
    );
    assert_eq!(
        ringing(&call(&app, "CA-h", HOTLINE).await),
        ["sip:alan@switchboard-demo.sip.example.com"]
    );
    // The line is kept for the whole call: round 2 rings the same line's agents.
    let round2 = app.dial_action("CA-h", 1, "no-answer", None).await;
    assert_eq!(
        ringing(&round2),
        ["sip:alan@switchboard-demo.sip.example.com"]
    );
}

#[tokio::test]
async fn outside_office_hours_the_after_hours_action_is_taken() {
    // T0 is Saturday: the support line is closed.
    let vm = spawn_lines(
        &config("2026-12-31", "voicemail"),
        Arc::new(ManualClock::at(T0)),
    )
    .await;
    let doc = call(&vm, "CA-vm", SUPPORT).await;
    assert!(
        doc.body.contains("We are closed right now") && doc.body.contains("<Record"),
        "{}",
        doc.body
    );
    assert!(ringing(&doc).is_empty());
    assert_eq!(
        vm.notices_for("CA-vm"),
        [FactKind::AfterHours {
            action: "voicemail"
        }]
    );

    let msg = spawn_lines(
        &config("2026-12-31", "message"),
        Arc::new(ManualClock::at(T0)),
    )
    .await;
    let doc = call(&msg, "CA-msg", SUPPORT).await;
    assert!(
        doc.body.contains("We are closed right now") && doc.body.contains("<Hangup/>"),
        "{}",
        doc.body
    );
    msg.call_status("CA-msg", "completed").await;
    assert_eq!(
        msg.metric("switchboard_calls_total{outcome=\"closed\",line=\"support\"}")
            .await,
        Some(1.0)
    );

    let reject = spawn_lines(
        &config("2026-12-31", "reject"),
        Arc::new(ManualClock::at(T0)),
    )
    .await;
    let doc = call(&reject, "CA-rej", SUPPORT).await;
    let xml = roxmltree::Document::parse(&doc.body).expect("xml");
    let first = xml
        .root_element()
        .children()
        .find(|n| n.is_element())
        .expect("a verb");
    assert_eq!(
        first.tag_name().name(),
        "Reject",
        "not answered, not charged: {}",
        doc.body
    );
    assert_eq!(reject.live().await, 0);
    assert_eq!(
        reject.notices_for("CA-rej"),
        [
            FactKind::AfterHours { action: "reject" },
            FactKind::Ended {
                outcome: Outcome::Closed,
                settled: true
            }
        ]
    );
}

#[tokio::test]
async fn a_holiday_today_forwards_then_takes_a_voicemail() {
    // 2026-11-21 is the hotline's holiday (in Berlin); it forwards after hours.
    let app = spawn_lines(
        &config("2026-11-21", "voicemail"),
        Arc::new(ManualClock::at(T0)),
    )
    .await;
    let doc = call(&app, "CA-fwd", HOTLINE).await;
    assert!(doc.body.contains("We are closed right now"), "{}", doc.body);
    assert!(
        doc.body.contains("<Number") && doc.body.contains("+12025550111"),
        "{}",
        doc.body
    );
    // Nobody answers the forward: a voicemail, never another round.
    let next = app.dial_action("CA-fwd", 1, "no-answer", None).await;
    assert_eq!(next.status, StatusCode::OK);
    assert!(next.body.contains("<Record"), "{}", next.body);
    assert!(ringing(&next).is_empty());
    // The other line is not on holiday (and the support line is closed on Saturday anyway).
    assert_eq!(
        app.notices_for("CA-fwd")[0],
        FactKind::AfterHours { action: "forward" }
    );
}

#[test]
fn a_line_naming_what_does_not_exist_refuses_to_start() {
    let bad = config("2026-12-31", "voicemail")
        .replace("schedule = \"office\"", "schedule = \"offfice\"")
        .replace("agents = [\"alan\"]", "agents = [\"alan\", \"nobody\"]")
        .replace("Europe/Berlin", "Europe/Berlinn");
    let path = std::env::temp_dir().join(format!("sb-lines-bad-{}.toml", std::process::id()));
    std::fs::write(&path, bad).expect("write");
    let err = Settings::load_with(Some(&path), config::Environment::with_prefix("SB_UNUSED"))
        .expect_err("invalid")
        .to_string();
    std::fs::remove_file(&path).ok();
    for key in [
        "lines[0].schedule",
        "lines[1].agents",
        "schedules.event.time_zone",
    ] {
        assert!(err.contains(key), "{key}: {err}");
    }
}

#[tokio::test]
async fn unknown_numbers_and_blocked_callers_take_their_action_and_are_counted() {
    let gate = r#"
[unknown_number]
action = "reject"

[blocking]
numbers = ["+12025550666"]
prefixes = ["+1900"]
action = "message"
anonymous = "voicemail"
"#;
    let toml = config("2026-12-31", "voicemail") + gate;
    let app = spawn_lines(&toml, Arc::new(ManualClock::at(MONDAY_MORNING_NY))).await;
    let from = |sid: &str, caller: &str, to: &str| {
        let form = [
            ("CallSid", sid.to_owned()),
            ("From", caller.to_owned()),
            ("To", to.to_owned()),
        ];
        let client = app.client.clone();
        let url = format!("{}/texml/inbound", app.base);
        async move {
            client
                .post(url)
                .form(&form)
                .send()
                .await
                .expect("sent")
                .text()
                .await
                .expect("body")
        }
    };
    // A number no line lists: rejected before it is answered.
    let doc = from("CA-unknown", CALLER, "+18005550000").await;
    assert!(doc.contains("<Reject"), "{doc}");
    // A blocked number, and a blocked prefix: the turned-away message, then hang up.
    let doc = from("CA-blocked", "+12025550666", SUPPORT).await;
    assert!(
        doc.contains("cannot take your call") && doc.contains("<Hangup/>"),
        "{doc}"
    );
    let doc = from("CA-premium", "+19005550123", SUPPORT).await;
    assert!(doc.contains("cannot take your call"), "{doc}");
    app.call_status("CA-blocked", "completed").await;
    app.call_status("CA-premium", "completed").await;
    // An anonymous caller: straight to voicemail, nobody rung.
    let doc = from("CA-anon", "anonymous", SUPPORT).await;
    assert!(doc.contains("<Record") && !doc.contains("<Dial"), "{doc}");
    // Every refusal is counted by reason; no refused caller reached an agent.
    let count = |outcome: &str, line: &str| {
        format!("switchboard_calls_total{{outcome=\"{outcome}\",line=\"{line}\"}}")
    };
    assert_eq!(
        app.metric(&count("unknown_number", "support")).await,
        Some(1.0)
    );
    assert_eq!(app.metric(&count("blocked", "support")).await, Some(2.0));
    assert_eq!(
        app.notices_for("CA-anon"),
        [FactKind::SentToVoicemail {
            reason: switchboard::call::MissReason::Anonymous
        }]
    );
}

#[tokio::test]
async fn a_line_speaks_its_own_prompts() {
    let shipped = std::fs::read_to_string(crate::helpers::repo_path("templates/prompts.toml"))
        .expect("prompts");
    let own = shipped.replace("audio = \"greeting.wav\"\n", "").replace(
        "Thank you for calling. Please hold while we connect you to an agent.",
        "You reached the Code of Conduct hotline.",
    );
    let path = std::env::temp_dir().join(format!("sb-hotline-prompts-{}.toml", std::process::id()));
    std::fs::write(&path, own).expect("write prompts");
    let toml = config("2026-12-31", "voicemail").replace(
        "after_hours_forward = [\"+12025550111\"]",
        &format!(
            "after_hours_forward = [\"+12025550111\"]\nprompts = \"{}\"",
            path.display()
        ),
    );
    let app = spawn_lines(&toml, Arc::new(ManualClock::at(MONDAY_MORNING_NY))).await;
    let hotline = call(&app, "CA-own", HOTLINE).await;
    assert!(
        hotline
            .body
            .contains("You reached the Code of Conduct hotline."),
        "{}",
        hotline.body
    );
    let support = call(&app, "CA-default", SUPPORT).await;
    assert!(
        support.body.contains("audio/greeting.wav"),
        "{}",
        support.body
    );
    std::fs::remove_file(&path).ok();
}
