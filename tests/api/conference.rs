//! Conference mode (Code of Conduct hotlines) over HTTP, against local fakes of the Telnyx TeXML
//! REST API and of Twilio's: the caller waits in a room; every organizer is called through the
//! API; the first to press 1 joins, the others' calls are ended; the caller hears who joins; the
//! room's recording is archived and linked in Slack; a voicemail that answers never joins; two
//! pressing at once, one joins; nobody accepting moves the caller to voicemail in time; the
//! caller hanging up ends every organizer's call.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use switchboard::config::Settings;
use switchboard::time::ManualClock;
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::admin::admin;
use crate::helpers::{Received, Spawn, TestApp, PUBLIC_URL, T0};
use crate::ledger::slack_message;
use crate::lines::lines_from;
use crate::replicas::slack_ok;

const CALLER: &str = "+12025550142";
const HOTLINE: &str = "+18005550199";
const KEY: &str = "KEY-example-not-a-secret";
const APP_ID: &str = "texml-app-example";
const TWILIO_TOKEN: &str = "twilio-token-example-not-a-secret";

/// Three organizers on phones, one conference-mode line (the keys make the file valid alone;
/// each test points them at its fake).
const COC: &str = r#"
[telnyx]
api_key = "KEY-example-not-a-secret"
texml_application_id = "texml-app-example"

[[agents]]
name = "Ada"
number = "+12025550101"

[[agents]]
name = "Bob"
number = "+12025550102"

[[agents]]
name = "Cleo"
number = "+12025550103"

[[lines]]
id = "coc"
name = "Code of Conduct hotline"
numbers = ["+18005550199"]
mode = "conference"
"#;

/// The provider's REST API, faked: every request answered 200 (placing a call answers as
/// Telnyx's spec says, without the new call's id; Twilio's with its `sid`), kept to be read.
pub(crate) async fn fake_api(twilio: bool) -> MockServer {
    let api = MockServer::start().await;
    let count = std::sync::atomic::AtomicUsize::new(0);
    let placed = move |_: &Request| {
        let n = count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        match twilio {
            true => ResponseTemplate::new(201).set_body_json(serde_json::json!({
                "sid": format!("CA-placed-{n}"), "status": "queued"
            })),
            false => ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "from": HOTLINE, "status": "queued", "to": "+12025550101"
            })),
        }
    };
    Mock::given(method("POST"))
        .and(path_regex(r"/Calls(\.json)?$"))
        .respond_with(placed)
        .mount(&api)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(r"/Recordings(\.json)?$"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(serde_json::json!({"sid": "RE-call-1"})),
        )
        .mount(&api)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/rec/"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(vec![7u8; 3000], "audio/mpeg"))
        .mount(&api)
        .await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({})))
        .mount(&api)
        .await;
    api
}

/// One request the fake API received: method, path, and its fields (JSON or form).
#[derive(Debug, Clone)]
pub(crate) struct Sent {
    pub(crate) path: String,
    pub(crate) fields: Value,
    auth: String,
}

pub(crate) async fn sent(api: &MockServer) -> Vec<Sent> {
    api.received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| !r.url.path().starts_with("/rec/"))
        .map(|r| {
            let fields = serde_json::from_slice::<Value>(&r.body).unwrap_or_else(|_| {
                let mut map = serde_json::Map::new();
                for (k, v) in url::form_urlencoded::parse(&r.body) {
                    let v = match map.remove(&*k) {
                        Some(Value::String(before)) => format!("{before} {v}"),
                        _ => v.into_owned(),
                    };
                    map.insert(k.into_owned(), Value::String(v));
                }
                Value::Object(map)
            });
            Sent {
                path: r.url.path().to_owned(),
                fields,
                auth: r
                    .headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned(),
            }
        })
        .collect()
}

/// The requests whose path ends with `suffix`, once there are `n` of them.
pub(crate) async fn wait_for(api: &MockServer, suffix: &str, n: usize) -> Vec<Sent> {
    for _ in 0..200 {
        let got: Vec<Sent> = sent(api)
            .await
            .into_iter()
            .filter(|s| s.path.ends_with(suffix))
            .collect();
        if got.len() >= n {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let all = sent(api).await;
    panic!("fewer than {n} requests to …{suffix}: {all:#?}");
}

fn on_telnyx(api: &MockServer) -> impl FnOnce(&mut Settings) + '_ {
    move |s: &mut Settings| {
        s.telnyx.api_key = Some(KEY.to_owned().into());
        s.telnyx.agents_from_api = false;
        s.telnyx.texml_application_id = APP_ID.into();
        s.telnyx.api_base_url = format!("{}/v2", api.uri()).parse().expect("url");
        s.telnyx.retry_base_ms = 10;
    }
}

fn on_twilio(api: &MockServer) -> impl FnOnce(&mut Settings) + '_ {
    move |s: &mut Settings| {
        s.provider.kind = switchboard::texml::Provider::Twilio;
        s.twilio.auth_token = Some(TWILIO_TOKEN.to_owned().into());
        s.twilio.api_base_url = api.uri().parse().expect("url");
        s.telnyx.retry_base_ms = 10;
        // Signatures are the security tests' business; these requests come unsigned.
        s.security.mode = switchboard::signature::Mode::Off;
        s.security.voice_mode = switchboard::signature::Mode::Off;
    }
}

pub(crate) async fn hotline(
    api: &MockServer,
    twilio: bool,
    clock: Arc<ManualClock>,
    tweak: impl FnOnce(&mut Settings),
) -> TestApp {
    let mut spawn = Spawn::default().settings(lines_from(COC)).clock(clock);
    spawn = match twilio {
        true => spawn.settings(on_twilio(api)),
        false => spawn.settings(on_telnyx(api)),
    };
    spawn
        .settings(|s| {
            crate::admin::with_token(s);
            s.dial.wrap_up_secs = 0;
        })
        .settings(tweak)
        .start()
        .await
}

/// The caller calls the hotline.
pub(crate) async fn call(app: &TestApp, sid: &str) -> Received {
    let form = [
        ("AccountSid", "ACtest"),
        ("CallSid", sid),
        ("From", CALLER),
        ("To", HOTLINE),
    ];
    app.post_form("/texml/inbound", &form).await
}

/// The provider requesting `url` (absolute, as we wrote it) for call `leg`, with `digits`.
pub(crate) async fn fetch(app: &TestApp, url: &str, leg: &str, digits: Option<&str>) -> Received {
    let mut form = vec![
        ("AccountSid", "ACtest"),
        ("CallSid", leg),
        ("CallStatus", "in-progress"),
        ("From", HOTLINE),
    ];
    if let Some(d) = digits {
        form.push(("Digits", d));
    }
    app.post_to(url, &form).await
}

/// Call `sid` on the hotline: Ada's phone answers, she presses 1, and the caller's and her joins
/// are reported.
pub(crate) async fn ada_in_the_room(app: &TestApp, api: &MockServer, sid: &str) {
    call(app, sid).await;
    let calls: Vec<Placed> = wait_for(api, "/Calls", 3)
        .await
        .iter()
        .map(placed)
        .collect();
    let ada = calls
        .iter()
        .find(|p| p.to.ends_with("0101"))
        .expect("Ada called");
    let hello = fetch(app, &ada.url, "L-ada", None).await;
    let action = crate::helpers::gather_action(&hello);
    fetch(app, &action, "L-ada", Some("1")).await;
    room_event(app, sid, "participant-join", "caller", sid).await;
    room_event(app, sid, "participant-join", "organizer-ada", "L-ada").await;
}

/// A status callback of an organizer's call, to the URL the placing request named.
async fn leg_status(app: &TestApp, status_callback: &str, leg: &str, status: &str) -> StatusCode {
    let form = [
        ("AccountSid", "ACtest"),
        ("CallSid", leg),
        ("CallStatus", status),
    ];
    app.post_to(status_callback, &form).await.status
}

/// A conference status callback for call `sid`'s room.
pub(crate) async fn room_event(app: &TestApp, sid: &str, event: &str, label: &str, leg: &str) {
    let form = [
        ("AccountSid", "ACtest"),
        ("ConferenceSid", "CF-room-1"),
        ("FriendlyName", "hotline"),
        ("StatusCallbackEvent", event),
        ("ParticipantLabel", label),
        ("CallSid", leg),
    ];
    let path = format!("/texml/conference/events?call={sid}");
    assert_eq!(app.post_form(&path, &form).await.status, StatusCode::OK);
}

/// An organizer's placed call: where the API was asked to send its document and callbacks.
pub(crate) struct Placed {
    pub(crate) to: String,
    pub(crate) url: String,
    pub(crate) status_callback: String,
}

pub(crate) fn placed(s: &Sent) -> Placed {
    let f = |k: &str| s.fields[k].as_str().unwrap_or_default().to_owned();
    Placed {
        to: f("To"),
        url: f("Url"),
        status_callback: f("StatusCallback"),
    }
}

fn doc(answer: &Received) -> roxmltree::Document<'_> {
    roxmltree::Document::parse(&answer.body).expect("well-formed XML")
}

fn says(answer: &Received) -> Vec<String> {
    doc(answer)
        .descendants()
        .filter(|n| n.has_tag_name("Say"))
        .filter_map(|n| n.text().map(str::to_owned))
        .collect()
}

/// The `<Conference>`'s attributes `names`, in order (`"<none>"` for one it lacks).
fn conference_attrs<const N: usize>(answer: &Received, names: [&str; N]) -> [String; N] {
    names.map(|n| conference_attr(answer, n).unwrap_or_else(|| "<none>".into()))
}

fn conference_attr(answer: &Received, name: &str) -> Option<String> {
    doc(answer)
        .descendants()
        .find(|n| n.has_tag_name("Conference"))
        .and_then(|n| n.attribute(name))
        .map(str::to_owned)
}

#[tokio::test]
async fn a_coc_call_rings_three_organizers_one_joins_announced_recorded_archived_and_linked() {
    let api = fake_api(false).await;
    let slack = slack_ok().await;
    let clock = Arc::new(ManualClock::at(T0));
    let app = hotline(&api, false, clock.clone(), |s| {
        crate::helpers::use_slack(s, &slack);
        s.recordings.archive = true;
        s.recordings.retry_base_ms = 10;
    })
    .await;

    // The caller: the greeting, "this call is recorded", then the room, with hold audio.
    let answer = call(&app, "CA-coc").await;
    assert_eq!(answer.status, StatusCode::OK);
    let greeting = doc(&answer).root_element().first_element_child().map(|n| {
        (
            n.tag_name().name().to_owned(),
            n.text().unwrap_or_default().to_owned(),
        )
    });
    assert_eq!(
        greeting,
        Some((
            "Play".into(),
            "https://switchboard.test/audio/greeting.wav".into()
        ))
    );
    assert_eq!(says(&answer), ["This call is recorded."], "{}", answer.body);
    let room = doc(&answer)
        .descendants()
        .find(|n| n.has_tag_name("Conference"))
        .and_then(|n| n.text().map(str::to_owned))
        .expect("a room");
    assert!(
        room.starts_with("hotline-") && !room.contains("5550142"),
        "{room}"
    );
    assert_eq!(
        conference_attrs(
            &answer,
            [
                "startConferenceOnEnter",
                "endConferenceOnExit",
                "participantLabel"
            ]
        ),
        ["false", "true", "caller"]
    );
    let hold = conference_attr(&answer, "waitUrl").expect("hold");
    let music = fetch(&app, &hold, "CA-coc", None).await;
    assert!(
        music
            .body
            .contains(r#"<Play loop="0">https://switchboard.test/audio/hold.wav</Play>"#),
        "{}",
        music.body
    );

    // Three calls placed through the TeXML API, with the application, the key, the hotline's
    // number, and our documents.
    let calls = wait_for(&api, "/v2/texml/Accounts/ACtest/Calls", 3).await;
    let mut to: Vec<String> = calls.iter().map(|c| placed(c).to).collect();
    to.sort();
    assert_eq!(to, ["+12025550101", "+12025550102", "+12025550103"]);
    for c in &calls {
        assert_eq!(c.auth, format!("Bearer {KEY}"));
        assert_eq!(c.fields["ApplicationSid"], APP_ID);
        assert_eq!(c.fields["From"], HOTLINE);
        assert_eq!(
            c.fields["StatusCallbackEvent"],
            "initiated ringing answered completed"
        );
        assert!(c.fields["Timeout"].is_u64(), "{:?}", c.fields);
    }
    let by = |n: &str| {
        calls
            .iter()
            .map(placed)
            .find(|p| p.to.ends_with(n))
            .expect("placed")
    };
    let (ada, bob, cleo) = (by("0101"), by("0102"), by("0103"));
    assert!(
        ada.url.starts_with(
            "https://switchboard.test/texml/conference/organizer?call=CA-coc&agent=ada"
        ),
        "{}",
        ada.url
    );

    // Bob's and Cleo's phones ring; Ada's answers: she hears who the call is for.
    leg_status(&app, &bob.status_callback, "L-bob", "ringing").await;
    leg_status(&app, &cleo.status_callback, "L-cleo", "ringing").await;
    let hello = fetch(&app, &ada.url, "L-ada", None).await;
    assert_eq!(
        says(&hello),
        ["Hello Ada. Code of Conduct hotline call. Press 1 to join."]
    );
    let gather = crate::helpers::gather_action(&hello);
    // She presses 1: into the room, recorded from then on; her leaving ends it.
    let join = fetch(&app, &gather, "L-ada", Some("1")).await;
    // Recorded through the API once she is in the room (below), not by the document.
    assert_eq!(
        conference_attrs(
            &join,
            [
                "participantLabel",
                "startConferenceOnEnter",
                "endConferenceOnExit",
                "record"
            ]
        ),
        ["organizer-ada", "true", "true", "do-not-record"]
    );
    // The other two calls are ended.
    let ended = wait_for(&api, "/Calls/L-cleo", 1).await;
    assert_eq!(ended[0].fields["Status"], "completed");
    wait_for(&api, "/Calls/L-bob", 1).await;
    // Bob answers anyway and presses 1: too late.
    let late = fetch(&app, &bob.url, "L-bob", None).await;
    assert_eq!(says(&late), ["Another agent took this call. Thank you."]);

    // The room's callbacks: the caller, then Ada: the caller is told who is joining.
    room_event(&app, "CA-coc", "participant-join", "caller", "CA-coc").await;
    room_event(&app, "CA-coc", "participant-join", "organizer-ada", "L-ada").await;
    room_event(&app, "CA-coc", "participant-join", "organizer-ada", "L-ada").await;
    wait_for(&api, "/Conferences/CF-room-1/Participants/caller", 1).await;
    // A moment for a second one, were the repeated join to announce again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let announce = wait_for(&api, "/Conferences/CF-room-1/Participants/caller", 1).await;
    assert_eq!(announce.len(), 1, "announced once: {announce:?}");
    let url = announce[0].fields["AnnounceUrl"]
        .as_str()
        .expect("url")
        .to_owned();
    let said = fetch(&app, &url, "CA-coc", None).await;
    assert_eq!(says(&said), ["Ada is joining this call."]);
    // And the room is recorded from now on: the caller's call, through the API.
    let record = wait_for(
        &api,
        "/v2/texml/Accounts/ACtest/Calls/CA-coc/Recordings.json",
        1,
    )
    .await;
    assert_eq!(
        record[0].fields["RecordingStatusCallback"],
        "https://switchboard.test/texml/recording?kind=conference&call=CA-coc"
    );

    // Live control over the admin API: each action reaches the API and the ledger.
    control_actions(&app, &api, &slack, "CA-coc").await;

    // They talk; Ada leaves, the room ends; the caller's Dial action, then the hangup.
    clock.advance_secs(300);
    room_event(
        &app,
        "CA-coc",
        "participant-leave",
        "organizer-ada",
        "L-ada",
    )
    .await;
    let left = fetch(
        &app,
        &format!("{PUBLIC_URL}/texml/conference/left?call=CA-coc"),
        "CA-coc",
        None,
    )
    .await;
    assert!(
        says(&left).iter().any(|s| s.contains("Goodbye")),
        "{}",
        left.body
    );
    app.call_status("CA-coc", "completed").await;

    // The room's recording: archived, and Slack links our copy.
    let recording = format!("{}/rec/room.mp3", api.uri());
    for _ in 0..2 {
        let form = [
            ("AccountSid", "ACtest"),
            ("CallSid", "L-ada"),
            ("ConferenceSid", "CF-room-1"),
            ("RecordingSid", "RE-room-1"),
            ("RecordingUrl", recording.as_str()),
            ("RecordingStatus", "completed"),
            ("RecordingDuration", "298"),
        ];
        let path = "/texml/recording?kind=conference&call=CA-coc";
        assert_eq!(app.post_form(path, &form).await.status, StatusCode::OK);
    }
    let text = slack_message(&slack, "Conference saved").await;
    assert!(
        text.contains("https://switchboard.test/recordings/"),
        "{text}"
    );
    let answered = slack_message(&slack, "answered").await;
    assert!(answered.contains("Ada"), "{answered}");

    // The ledger: answered by Ada, the recording archived once. (Its writes are batched and
    // the archive's are its own: each kind is waited for.)
    for kind in ["recording.archived", "ended"] {
        crate::archive_stores::events_until(&app, "CA-coc", kind).await;
    }
    let events = crate::archive_stores::events_until(&app, "CA-coc", "conference_recorded").await;
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert!(kinds.contains(&"answered"), "{kinds:?}");
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == "conference_recorded")
            .count(),
        1,
        "{kinds:?}"
    );
    let (_, row) = admin(&app, "GET", "/admin/calls/CA-coc", None).await;
    assert_eq!(row["answered_by"], "Ada", "{row}");
    assert_eq!(row["outcome"], "answered", "{row}");
}

#[tokio::test]
async fn an_organizers_voicemail_never_joins_and_the_caller_goes_to_voicemail_when_every_call_ended(
) {
    let api = fake_api(false).await;
    let app = hotline(&api, false, Arc::new(ManualClock::at(T0)), |s| {
        s.dial.rounds = 1;
    })
    .await;
    call(&app, "CA-vm").await;
    let calls: Vec<Placed> = wait_for(&api, "/Accounts/ACtest/Calls", 3)
        .await
        .iter()
        .map(placed)
        .collect();
    // Ada's voicemail answers: it hears the prompt, presses nothing, its call hangs up.
    let ada = calls.iter().find(|p| p.to.ends_with("0101")).expect("ada");
    let hello = fetch(&app, &ada.url, "L-ada", None).await;
    let gather = crate::helpers::gather_action(&hello);
    let nothing = fetch(&app, &gather, "L-ada", None).await;
    assert!(
        nothing.body.contains("<Hangup/>") && !nothing.body.contains("Conference"),
        "{}",
        nothing.body
    );
    // Every call ends without anyone pressing 1: the caller leaves the room for voicemail.
    let others: Vec<&Placed> = calls.iter().filter(|p| !p.to.ends_with("0101")).collect();
    for (p, leg, status) in [
        (ada, "L-ada", "completed"),
        (others[0], "L-2", "busy"),
        (others[1], "L-3", "no-answer"),
    ] {
        leg_status(&app, &p.status_callback, leg, status).await;
    }
    let moved = wait_for(&api, "/Calls/CA-vm", 1).await;
    assert_eq!(
        moved[0].fields["Url"],
        "https://switchboard.test/texml/conference/resume"
    );
    let vm = fetch(
        &app,
        moved[0].fields["Url"].as_str().expect("url"),
        "CA-vm",
        None,
    )
    .await;
    assert!(vm.body.contains("<Record"), "{}", vm.body);
    let (_, _) = (app, api);
}

#[tokio::test]
async fn two_organizers_pressing_1_at_once_one_joins() {
    let api = fake_api(false).await;
    let app = hotline(&api, false, Arc::new(ManualClock::at(T0)), |_| {}).await;
    call(&app, "CA-race").await;
    let calls: Vec<Placed> = wait_for(&api, "/Calls", 3)
        .await
        .iter()
        .map(placed)
        .collect();
    let mut actions = Vec::new();
    for (i, p) in calls.iter().enumerate() {
        let leg = format!("L-{i}");
        let hello = fetch(&app, &p.url, &leg, None).await;
        actions.push((crate::helpers::gather_action(&hello), leg));
    }
    let presses = actions
        .iter()
        .map(|(action, leg)| fetch(&app, action, leg, Some("1")));
    let answers = futures_util::future::join_all(presses).await;
    let joined = answers
        .iter()
        .filter(|a| a.body.contains("<Conference"))
        .count();
    let too_late = answers
        .iter()
        .filter(|a| says(a) == ["Another agent took this call. Thank you."])
        .count();
    assert_eq!(
        (joined, too_late),
        (1, 2),
        "{:#?}",
        answers.iter().map(|a| &a.body).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn nobody_accepting_moves_the_caller_to_voicemail_within_the_ring_time() {
    let api = fake_api(false).await;
    let clock = Arc::new(ManualClock::at(T0));
    let app = hotline(&api, false, clock.clone(), |s| {
        s.dial.rounds = 1;
        s.dial.ring_timeout_secs = 30;
    })
    .await;
    call(&app, "CA-wait").await;
    let calls: Vec<Placed> = wait_for(&api, "/Calls", 3)
        .await
        .iter()
        .map(placed)
        .collect();
    // Each call was placed to ring for the line's ring time.
    let placed_calls = wait_for(&api, "/Calls", 3).await;
    assert!(placed_calls.iter().all(|c| c.fields["Timeout"] == 30));
    // Before the ring time: still waiting.
    clock.advance_secs(29);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(sent(&api)
        .await
        .iter()
        .all(|s| !s.path.ends_with("/Calls/CA-wait")));
    // The calls never report anything (their callbacks lost; Telnyx's answers carry no
    // CallSid): the room's timer moves the caller.
    clock.advance_secs(7);
    let moved = wait_for(&api, "/Calls/CA-wait", 1).await;
    assert!(moved[0].fields["Url"]
        .as_str()
        .expect("url")
        .ends_with("/texml/conference/resume"));
    // A call whose first callback comes only now is ended at once.
    leg_status(&app, &calls[0].status_callback, "L-late", "ringing").await;
    let ended = wait_for(&api, "/Calls/L-late", 1).await;
    assert_eq!(ended[0].fields["Status"], "completed");
    // The move not followed (the caller's call never fetched the new document): asked again,
    // ten seconds later.
    clock.advance_secs(11);
    wait_for(&api, "/Calls/CA-wait", 2).await;
    // Followed: asked no more.
    fetch(
        &app,
        moved[0].fields["Url"].as_str().expect("url"),
        "CA-wait",
        None,
    )
    .await;
    clock.advance_secs(11);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let moves = sent(&api)
        .await
        .iter()
        .filter(|s| s.path.ends_with("/Calls/CA-wait"))
        .count();
    assert_eq!(moves, 2);
}

#[tokio::test]
async fn the_caller_hanging_up_ends_every_organizer_call() {
    let api = fake_api(false).await;
    let app = hotline(&api, false, Arc::new(ManualClock::at(T0)), |_| {}).await;
    call(&app, "CA-gone").await;
    let calls: Vec<Placed> = wait_for(&api, "/Calls", 3)
        .await
        .iter()
        .map(placed)
        .collect();
    leg_status(&app, &calls[0].status_callback, "L-0", "ringing").await;
    leg_status(&app, &calls[1].status_callback, "L-1", "ringing").await;
    // The third is answered and hears the prompt.
    let hello = fetch(&app, &calls[2].url, "L-2", None).await;
    app.call_status("CA-gone", "completed").await;
    for i in 0..3 {
        let ended = wait_for(&api, &format!("/Calls/L-{i}"), 1).await;
        assert_eq!(ended[0].fields["Status"], "completed", "L-{i}");
    }
    // Pressing 1 now (at the prompt the third heard): the caller is gone.
    let late = fetch(
        &app,
        &crate::helpers::gather_action(&hello),
        "L-2",
        Some("1"),
    )
    .await;
    assert_eq!(says(&late), ["The caller is no longer waiting. Thank you."]);
}

#[tokio::test]
async fn under_twilio_the_calls_api_is_a_form_with_basic_auth_and_ringing_calls_are_canceled() {
    let api = fake_api(true).await;
    let app = hotline(&api, true, Arc::new(ManualClock::at(T0)), |_| {}).await;
    call(&app, "CA-tw").await;
    let calls = wait_for(&api, "/2010-04-01/Accounts/ACtest/Calls.json", 3).await;
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("ACtest:{TWILIO_TOKEN}"));
    for c in &calls {
        assert_eq!(c.auth, format!("Basic {basic}"));
        assert_eq!(c.fields["Method"], "POST");
        assert!(c.fields.get("ApplicationSid").is_none());
        assert_eq!(
            c.fields["StatusCallbackEvent"],
            "initiated ringing answered completed"
        );
    }
    // Twilio answers with each call's sid: an organizer known only by it is ended by it.
    let first = placed(&calls[0]);
    let hello = fetch(&app, &first.url, "CA-placed-0", None).await;
    let gather = crate::helpers::gather_action(&hello);
    fetch(&app, &gather, "CA-placed-0", Some("1")).await;
    // The two others never reported anything: canceled (ringing), then completed.
    let canceled = wait_for_status(&api, "canceled", 2).await;
    let mut legs: Vec<&str> = canceled.iter().map(|s| s.path.as_str()).collect();
    legs.sort();
    assert_eq!(
        legs,
        [
            "/2010-04-01/Accounts/ACtest/Calls/CA-placed-1.json",
            "/2010-04-01/Accounts/ACtest/Calls/CA-placed-2.json"
        ]
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let canceled = wait_for_status(&api, "canceled", 2).await;
    assert_eq!(canceled.len(), 2, "{canceled:?}");
    let completed = wait_for_status(&api, "completed", 2).await;
    assert!(completed.iter().all(|s| s.path.ends_with(".json")));
    // The announcement: Twilio's participant resource, addressed by the caller's label.
    room_event(&app, "CA-tw", "participant-join", "caller", "CA-tw").await;
    let agent = url::Url::parse(&first.url)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "agent")
        .map(|(_, v)| v.into_owned())
        .expect("agent");
    room_event(
        &app,
        "CA-tw",
        "participant-join",
        &format!("organizer-{agent}"),
        "CA-placed-0",
    )
    .await;
    let announce = wait_for(
        &api,
        "/2010-04-01/Accounts/ACtest/Conferences/CF-room-1/Participants/caller.json",
        1,
    )
    .await;
    assert!(announce[0].fields["AnnounceUrl"]
        .as_str()
        .expect("url")
        .contains("/texml/conference/announce?call=CA-tw"));
}

async fn wait_for_status(api: &MockServer, status: &str, n: usize) -> Vec<Sent> {
    for _ in 0..200 {
        let got: Vec<Sent> = sent(api)
            .await
            .into_iter()
            .filter(|s| s.fields["Status"] == status)
            .collect();
        if got.len() >= n {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("fewer than {n} Status={status}: {:#?}", sent(api).await);
}

/// An admin request with the token; the status and JSON answer.
async fn admin_post(app: &TestApp, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    admin(app, "POST", path, body).await
}

/// Every live-control action on call `sid` (in its room with Ada), checked at the fake API and
/// in the ledger.
async fn control_actions(app: &TestApp, api: &MockServer, slack: &MockServer, sid: &str) {
    let base = format!("/admin/calls/{sid}");
    let (status, room) = admin(app, "GET", &format!("{base}/participants"), None).await;
    assert_eq!(status, StatusCode::OK, "{room}");
    let who: Vec<(String, String)> = room["participants"]
        .as_array()
        .expect("participants")
        .iter()
        .map(|p| {
            (
                p["label"].as_str().unwrap_or_default().to_owned(),
                p["state"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert!(who.contains(&("caller".into(), "in_room".into())), "{room}");
    assert!(
        who.contains(&("organizer-ada".into(), "in_room".into())),
        "{room}"
    );
    assert_eq!(room["recording"], true);

    let by = Some(serde_json::json!({"by": "ops"}));
    let participant = "/v2/texml/Accounts/ACtest/Conferences/CF-room-1/Participants/caller";
    let (status, _) =
        admin_post(app, &format!("{base}/participants/caller/mute"), by.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let muted = wait_for(api, participant, 2).await;
    assert_eq!(muted[1].fields["Muted"], true, "{muted:?}");
    // Muting again changes nothing and asks nothing.
    let (status, again) =
        admin_post(app, &format!("{base}/participants/caller/mute"), by.clone()).await;
    assert_eq!(
        (status, &again["unchanged"]),
        (StatusCode::OK, &Value::Bool(true))
    );
    admin_post(
        app,
        &format!("{base}/participants/caller/unmute"),
        by.clone(),
    )
    .await;
    let unmuted = wait_for(api, participant, 3).await;
    assert_eq!(unmuted[2].fields["Muted"], false);
    let ada = "/v2/texml/Accounts/ACtest/Conferences/CF-room-1/Participants/organizer-ada";
    admin_post(
        app,
        &format!("{base}/participants/organizer-ada/hold"),
        by.clone(),
    )
    .await;
    let held = wait_for(api, ada, 1).await;
    assert_eq!(held[0].fields["Hold"], true);
    assert_eq!(
        held[0].fields["HoldUrl"],
        "https://switchboard.test/texml/conference/hold"
    );
    admin_post(
        app,
        &format!("{base}/participants/organizer-ada/resume"),
        by.clone(),
    )
    .await;
    assert_eq!(wait_for(api, ada, 2).await[1].fields["Hold"], false);

    // Recording: stop (by the id the start answered), then start again.
    admin_post(app, &format!("{base}/recording/stop"), by.clone()).await;
    let stopped = wait_for(api, &format!("/Calls/{sid}/Recordings/RE-call-1.json"), 1).await;
    assert_eq!(stopped[0].fields["Status"], "stopped");
    admin_post(app, &format!("{base}/recording/start"), by.clone()).await;
    wait_for(api, &format!("/Calls/{sid}/Recordings.json"), 2).await;

    // Pull someone in: called like an organizer, they press 1 and join as a second one.
    let (status, added) = admin_post(
        app,
        &format!("{base}/participants"),
        Some(serde_json::json!({"number": "+12025550177", "name": "Dana", "by": "ops"})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{added}");
    let calls = wait_for(api, "/v2/texml/Accounts/ACtest/Calls", 4).await;
    let dana = calls
        .iter()
        .map(placed)
        .find(|p| p.to == "+12025550177")
        .expect("Dana called");
    let hello = fetch(app, &dana.url, "L-dana", None).await;
    assert_eq!(
        says(&hello),
        ["Hello Dana. Code of Conduct hotline call. Press 1 to join."]
    );
    let join = fetch(
        app,
        &crate::helpers::gather_action(&hello),
        "L-dana",
        Some("1"),
    )
    .await;
    assert_eq!(
        conference_attr(&join, "endConferenceOnExit").as_deref(),
        Some("false")
    );
    let label = conference_attr(&join, "participantLabel").expect("label");
    room_event(app, sid, "participant-join", &label, "L-dana").await;
    let (status, _) = admin_post(
        app,
        &format!("{base}/participants/{label}/remove"),
        by.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let removed = wait_for(
        api,
        &format!("/Conferences/CF-room-1/Participants/{label}"),
        1,
    )
    .await;
    let deletes = api
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.method.as_str() == "DELETE" && r.url.path().ends_with(&label))
        .count();
    assert_eq!((removed.len(), deletes), (1, 1));

    // Refusals: an unknown participant, an unknown action, an unknown call.
    let (status, _) = admin_post(
        app,
        &format!("{base}/participants/organizer-zed/mute"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = admin_post(app, &format!("{base}/participants/caller/shout"), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = admin_post(app, "/admin/calls/CA-nobody/recording/stop", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The ledger has each action, in order; Slack says them.
    let expected = [
        "mute the caller",
        "unmute the caller",
        "hold Ada",
        "resume Ada",
        "record_stop the room",
        "record_start the room",
        "add Dana",
        "remove Dana",
    ];
    let mut actions = Vec::new();
    for _ in 0..100 {
        let (_, call) = admin(app, "GET", &format!("/admin/calls/{sid}"), None).await;
        actions = call["events"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter(|e| e["kind"] == "control")
            .map(|e| {
                let d = &e["data"];
                format!(
                    "{} {}",
                    d["action"].as_str().unwrap_or(""),
                    d["who"].as_str().unwrap_or("")
                )
            })
            .collect();
        if actions.len() >= expected.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // (The clock stands still in this test: events at one instant are listed by id.)
    actions.sort();
    let mut expected = expected.to_vec();
    expected.sort();
    assert_eq!(actions, expected);
    let text = slack_message(slack, "muted the caller").await;
    assert!(text.contains("ops"), "{text}");
}

#[tokio::test]
async fn the_dashboard_shows_the_room_and_a_supervisor_controls_it() {
    use crate::dashboard::{with_users, Events, PASSWORD};
    let api = fake_api(false).await;
    let app = hotline(&api, false, Arc::new(ManualClock::at(T0)), with_users).await;
    ada_in_the_room(&app, &api, "CA-dash").await;

    // The page's stream shows the call's room: the caller and Ada in it, recorded.
    let mut events = Events::open(&app.base, Some(("wall", PASSWORD)), None)
        .await
        .expect("stream");
    let room_of = |s: &Value| -> Option<Value> {
        s["live"]["lines"]
            .as_array()?
            .iter()
            .flat_map(|l| l["calls"].as_array().cloned().unwrap_or_default())
            .find(|c| c["sid"] == "CA-dash")
            .map(|c| c["room"].clone())
    };
    events
        .until("the room", |s| {
            room_of(s).is_some_and(|r| {
                r["recording"] == true
                    && r["participants"].as_array().is_some_and(|p| {
                        p.iter()
                            .any(|p| p["label"] == "organizer-ada" && p["state"] == "in_room")
                    })
            })
        })
        .await;

    let post = |user: &'static str, path: String, action: bool| {
        let mut req = app
            .client
            .post(format!("{}{path}", app.base))
            .basic_auth(user, Some(PASSWORD));
        if action {
            req = req.header("X-Switchboard-Action", "1");
        }
        req.send()
    };
    // A viewer may not; without the action header nobody may.
    let mute = "/dashboard/calls/CA-dash/participants/caller/mute".to_owned();
    assert_eq!(
        post("wall", mute.clone(), true)
            .await
            .expect("sent")
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post("ada", mute.clone(), false)
            .await
            .expect("sent")
            .status(),
        StatusCode::FORBIDDEN
    );
    // A supervisor mutes the caller: the API is asked, the page shows it, the ledger says who.
    assert_eq!(
        post("ada", mute, true).await.expect("sent").status(),
        StatusCode::ACCEPTED
    );
    let muted = wait_for(&api, "/Conferences/CF-room-1/Participants/caller", 2).await;
    assert_eq!(muted[1].fields["Muted"], true);
    events
        .until("the caller muted", |s| {
            room_of(s).is_some_and(|r| {
                r["participants"].as_array().is_some_and(|p| {
                    p.iter()
                        .any(|p| p["label"] == "caller" && p["muted"] == true)
                })
            })
        })
        .await;
    let stop = "/dashboard/calls/CA-dash/recording/stop".to_owned();
    assert_eq!(
        post("ada", stop, true).await.expect("sent").status(),
        StatusCode::ACCEPTED
    );
    wait_for(&api, "/Calls/CA-dash/Recordings/RE-call-1.json", 1).await;
    let events = crate::archive_stores::events_until(&app, "CA-dash", "control").await;
    let by: Vec<&str> = events
        .iter()
        .filter(|e| e["kind"] == "control")
        .filter_map(|e| e["data"]["by"].as_str())
        .collect();
    assert!(by.contains(&"ada (dashboard)"), "{events:?}");
}

#[tokio::test]
async fn the_simulator_plays_conference_calls_against_its_own_fake_of_the_provider_api() {
    use switchboard::simulate::{run, Scenario, SimulateArgs};
    let port = crate::helpers::free_port();
    let api_port = crate::helpers::free_port();
    let api_base = format!("http://127.0.0.1:{api_port}");
    let app = Spawn::default()
        .settings(lines_from(COC))
        .settings(|s| {
            s.server.port = port;
            s.server.public_url = format!("http://127.0.0.1:{port}").parse().expect("url");
            s.telnyx.api_key = Some(KEY.to_owned().into());
            s.telnyx.agents_from_api = false;
            s.telnyx.texml_application_id = APP_ID.into();
            s.telnyx.api_base_url = format!("{api_base}/v2").parse().expect("url");
            s.dial.wrap_up_secs = 0;
            s.dial.rounds = 1;
            crate::admin::with_token(s);
            s.recordings.archive = true;
        })
        .start()
        .await;
    let args = |scenario: Scenario, agent: usize| {
        let mut a = SimulateArgs::for_url(&format!("{}/texml/inbound", app.base));
        a.scenario = scenario;
        a.agent = agent;
        a.to = HOTLINE.into();
        a.method = switchboard::simulate::VoiceMethod::Post;
        a.provider_api = Some(format!("127.0.0.1:{api_port}"));
        a
    };
    // Bob answers and presses 1: announced, recorded, answered.
    let mut answer = args(Scenario::Answer, 2);
    answer.trace = true;
    let report = run(answer).await.expect("runs");
    assert_eq!(report.errors, 0, "{:?}", report.first_errors);
    assert_eq!(
        report.outcomes.get("answered"),
        Some(&1),
        "{:?}",
        report.outcomes
    );
    let path = report.paths.keys().next().expect("a path").clone();
    assert_eq!(
        path,
        "room, call 3 → pressed 1 → announced \"Bob is joining this call.\" → recorded → answered"
    );
    // The room's recording, downloaded from the fake API, is archived.
    let sid = report
        .trace
        .iter()
        .find_map(|l| {
            l.strip_prefix("=== call ")
                .and_then(|l| l.split(' ').next())
        })
        .expect("the call's sid")
        .to_owned();
    crate::archive_stores::events_until(&app, &sid, "recording.archived").await;

    // Every other way a conference call goes, each once.
    for (scenario, agent, outcome, path) in [
        (
            Scenario::Voicemail,
            1,
            "voicemail",
            "room, call 3 → moved → voicemail",
        ),
        (
            Scenario::Machine,
            1,
            "voicemail",
            "room, call 3 → voicemail box answered → moved → voicemail",
        ),
        (
            Scenario::Race,
            1,
            "answered",
            "room, call 3 → race → pressed 1 → announced",
        ),
        (
            Scenario::Abandon,
            1,
            "abandoned",
            "room, call 3 → abandoned",
        ),
    ] {
        let report = run(args(scenario, agent)).await.expect("runs");
        assert_eq!(report.errors, 0, "{scenario:?}: {:?}", report.first_errors);
        assert_eq!(
            report.outcomes.get(outcome),
            Some(&1),
            "{scenario:?}: {:?}",
            report.outcomes
        );
        let got = report.paths.keys().next().expect("a path");
        assert!(got.starts_with(path), "{scenario:?}: {got}");
    }
    assert_eq!(app.live().await, 0);
}

#[tokio::test]
async fn the_example_coc_hotline_calls_the_after_hours_list_at_night_and_the_organizers_by_day() {
    let api = fake_api(false).await;
    let env: std::collections::HashMap<String, String> =
        [("SWITCHBOARD__TELNYX__API_KEY".to_owned(), KEY.to_owned())]
            .into_iter()
            .collect();
    let example = Settings::load_with(
        Some(&crate::helpers::repo_path("config/coc-hotline.toml")),
        config::Environment::with_prefix("SWITCHBOARD").source(Some(env)),
    )
    .expect("the example configuration is valid");
    // 06:00 in Chicago: the hotline is closed, the on-call list is called.
    let clock = Arc::new(ManualClock::at(T0));
    let app = Spawn::default()
        .settings(|s| {
            let test = std::mem::replace(s, example);
            s.server = test.server;
            s.paths.data = test.paths.data;
            s.paths.audio = test.paths.audio;
            s.admin.overrides_file = None;
            s.recordings.archive = false;
        })
        .settings(on_telnyx(&api))
        .clock(clock.clone())
        .start()
        .await;
    let form = [
        ("AccountSid", "ACtest"),
        ("CallSid", "CA-night"),
        ("From", "anonymous"),
        ("To", "+15555550100"),
    ];
    let answer = app.post_form("/texml/inbound", &form).await;
    assert_eq!(
        says(&answer),
        [
            "You have reached the Code of Conduct hotline outside conference hours. We are reaching the organizer on call.",
            "This call is recorded, so the organizers can follow up on it.",
            "Thank you. Goodbye.",
        ],
        "{}",
        answer.body
    );
    let night: Vec<Placed> = wait_for(&api, "/Calls", 2)
        .await
        .iter()
        .map(placed)
        .collect();
    let mut to: Vec<&str> = night.iter().map(|p| p.to.as_str()).collect();
    to.sort();
    assert_eq!(to, ["+15555550111", "+15555550112"]);
    let naomi = night
        .iter()
        .find(|p| p.to.ends_with("0111"))
        .expect("Naomi");
    let hello = fetch(&app, &naomi.url, "L-naomi", None).await;
    assert_eq!(
        says(&hello),
        ["Hello Naomi. Code of Conduct hotline call. Press 1 to join."]
    );
    // 09:00 in Chicago: the organizers.
    clock.set(T0 + 3 * 3600 * 1000);
    let form = [
        ("AccountSid", "ACtest"),
        ("CallSid", "CA-day"),
        ("From", CALLER),
        ("To", "+15555550100"),
    ];
    let answer = app.post_form("/texml/inbound", &form).await;
    assert!(
        says(&answer)[0].starts_with("You have reached the Code of Conduct hotline. An organizer"),
        "{}",
        answer.body
    );
    let calls = wait_for(&api, "/Calls", 5).await;
    let mut day: Vec<String> = calls.iter().skip(2).map(|c| placed(c).to).collect();
    day.sort();
    assert_eq!(day, ["+15555550101", "+15555550102", "+15555550103"]);
}

#[tokio::test]
async fn on_two_replicas_sharing_redis_two_organizers_pressing_at_once_one_joins() {
    use crate::replicas::{replica, Redis};
    let redis = Redis::start();
    let api = fake_api(false).await;
    let slack = slack_ok().await;
    let clock = Arc::new(ManualClock::at(T0));
    let tweak = |s: &mut Settings| {
        lines_from(COC)(s);
        on_telnyx(&api)(s);
        s.dial.wrap_up_secs = 0;
    };
    let one = replica(&redis, &slack, clock.clone(), tweak).await;
    let two = replica(&redis, &slack, clock.clone(), tweak).await;
    call(&one.app, "CA-redis").await;
    let calls: Vec<Placed> = wait_for(&api, "/Calls", 3)
        .await
        .iter()
        .map(placed)
        .collect();
    // Each organizer's phone answers on a different replica; both press 1 at once.
    let hello_a = fetch(&one.app, &calls[0].url, "L-a", None).await;
    let hello_b = fetch(&two.app, &calls[1].url, "L-b", None).await;
    let (action_a, action_b) = (
        crate::helpers::gather_action(&hello_a),
        crate::helpers::gather_action(&hello_b),
    );
    let (a, b) = tokio::join!(
        fetch(&one.app, &action_a, "L-a", Some("1")),
        fetch(&two.app, &action_b, "L-b", Some("1")),
    );
    let joined = [&a, &b]
        .iter()
        .filter(|r| r.body.contains("<Conference"))
        .count();
    assert_eq!(joined, 1, "{}\n{}", a.body, b.body);
    // The room lives in Redis: the other replica sees who joined and answers a repeated press
    // with the same document.
    let (winner, leg, replica_app) = match a.body.contains("<Conference") {
        true => (&hello_a, "L-a", &two.app),
        false => (&hello_b, "L-b", &one.app),
    };
    let again = fetch(
        replica_app,
        &crate::helpers::gather_action(winner),
        leg,
        Some("1"),
    )
    .await;
    assert!(again.body.contains("<Conference"), "{}", again.body);
}
