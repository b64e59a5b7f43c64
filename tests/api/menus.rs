//! A line's menu over HTTP: the `<Gather>` document, keys routing to another line, to ringing or
//! to voicemail, and no input (Telnyx falling through to the redirect, or posting empty digits)
//! repeating the menu, then taking the default.

use std::sync::Arc;

use switchboard::time::ManualClock;

use crate::helpers::{assert_golden, ringing, Received, TestApp};
use crate::lines::{call, config, spawn_lines, MONDAY_MORNING_NY, SUPPORT};

const ADA: &str = "sip:ada@switchboard-demo.sip.example.com";
const GRACE: &str = "sip:grace@switchboard-demo.sip.example.com";
const ALAN: &str = "sip:alan@switchboard-demo.sip.example.com";

/// The two lines of `lines.rs`, support with a menu: 1 = the hotline, 2 = ring, 0 = voicemail;
/// one retry, then ring.
pub(crate) fn with_menu() -> String {
    config("2026-12-31", "voicemail").replacen(
        "\n[[lines]]\nid = \"hotline\"",
        r#"
[lines.menu]
prompt = "For the Code of Conduct hotline press 1. For support press 2. To leave a message press 0."
options = { "1" = "line:hotline", "2" = "ring", "0" = "voicemail" }
default = "ring"
retries = 1
timeout_secs = 4

[[lines]]
id = "hotline""#,
        1,
    )
}

async fn spawn() -> TestApp {
    spawn_lines(&with_menu(), Arc::new(ManualClock::at(MONDAY_MORNING_NY))).await
}

/// The menu's action (or its redirect) with `digits` (`None`: the field is absent).
async fn press(app: &TestApp, sid: &str, url: &str, digits: Option<&str>) -> Received {
    let path = url.strip_prefix(crate::helpers::PUBLIC_URL).unwrap_or(url);
    let mut form = vec![("CallSid", sid), ("From", "+12025550142"), ("To", SUPPORT)];
    form.extend(digits.map(|d| ("Digits", d)));
    app.post_form(path, &form).await
}

/// The menu document's Gather action, Redirect target, and what it says.
fn menu_of(doc: &Received) -> (String, String, Vec<String>) {
    let xml = roxmltree::Document::parse(&doc.body).expect("well-formed");
    let root = xml.root_element();
    let verbs: Vec<_> = root.children().filter(|n| n.is_element()).collect();
    assert_eq!(verbs.len(), 2, "a Gather, then a Redirect: {}", doc.body);
    let (gather, redirect) = (verbs[0], verbs[1]);
    assert!(gather.has_tag_name("Gather"), "{}", doc.body);
    assert!(redirect.has_tag_name("Redirect"), "{}", doc.body);
    assert_eq!(gather.attribute("numDigits"), Some("1"));
    assert_eq!(gather.attribute("timeout"), Some("4"));
    let says = gather
        .children()
        .filter(|n| n.is_element())
        .map(|n| n.text().unwrap_or_default().to_owned())
        .collect();
    let action = gather.attribute("action").expect("action").to_owned();
    let target = redirect.text().expect("redirect URL").to_owned();
    assert_eq!(action, target, "no input lands where empty digits do");
    (action, target, says)
}

#[tokio::test]
async fn the_menu_greets_and_each_key_routes() {
    let app = spawn().await;
    let doc = call(&app, "CA-menu-1", SUPPORT).await;
    assert_golden("menu", &doc);
    let (action, _, says) = menu_of(&doc);
    assert!(
        action.ends_with("/texml/menu?attempt=1&line=support"),
        "{action}"
    );
    assert_eq!(says.len(), 1, "the menu's prompt is its welcome: {says:?}");
    assert!(says[0].starts_with("For the Code of Conduct hotline press 1"));

    // 1: the hotline's agent rings, and the Dial action names the line.
    let doc = press(&app, "CA-menu-1", &action, Some("1")).await;
    assert_eq!(ringing(&doc), [ALAN]);
    assert!(
        doc.body.contains("round=1&amp;line=hotline"),
        "{}",
        doc.body
    );
    assert!(
        !doc.body.contains("<Say"),
        "no second greeting: {}",
        doc.body
    );

    // 2: support's own agents.
    let doc = call(&app, "CA-menu-2", SUPPORT).await;
    let (action, _, _) = menu_of(&doc);
    assert_eq!(
        ringing(&press(&app, "CA-menu-2", &action, Some("2")).await),
        [ADA, GRACE]
    );

    // 0: voicemail, with the voicemail prompt only.
    call(&app, "CA-menu-3", SUPPORT).await;
    let doc = press(&app, "CA-menu-3", &action, Some("0")).await;
    assert!(doc.body.contains("<Record"), "{}", doc.body);
    assert!(!doc.body.contains("Thank you for calling"), "{}", doc.body);

    let lines = |sid: &str| {
        app.notices
            .all()
            .into_iter()
            .filter_map(|r| match r {
                switchboard::sink::Record::Call { sid: s, fact, .. } if s.as_str() == sid => {
                    Some(fact.line.as_str().to_owned())
                }
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        lines("CA-menu-1"),
        ["hotline"],
        "facts carry the line chosen"
    );
    assert_eq!(lines("CA-menu-2"), ["support"]);
}

#[tokio::test]
async fn no_input_repeats_the_menu_then_takes_the_default_whichever_way_the_provider_says_it() {
    let app = spawn().await;
    // Telnyx falling through: the Redirect, no Digits at all.
    let doc = call(&app, "CA-quiet-1", SUPPORT).await;
    let (_, redirect, _) = menu_of(&doc);
    let again = press(&app, "CA-quiet-1", &redirect, None).await;
    let (action, _, says) = menu_of(&again);
    assert!(action.contains("attempt=2"), "{action}");
    assert_eq!(says[0], "Sorry, that was not one of the choices.");
    assert!(says[1].starts_with("For the Code of Conduct hotline press 1"));
    // The action posted with empty digits (Twilio's actionOnEmptyResult, or Telnyx's other way).
    let rung = press(&app, "CA-quiet-1", &action, Some("")).await;
    assert_eq!(ringing(&rung), [ADA, GRACE], "the default after one retry");

    // A key that is no option counts as no input; a late repeat of attempt 1 changes nothing.
    let doc = call(&app, "CA-quiet-2", SUPPORT).await;
    let (first, _, _) = menu_of(&doc);
    let again = press(&app, "CA-quiet-2", &first, Some("7")).await;
    let (second, _, _) = menu_of(&again);
    let late = press(&app, "CA-quiet-2", &first, Some("1")).await;
    assert_eq!(
        late.body, again.body,
        "a stale attempt gets the current document"
    );
    assert!(
        app.metric("switchboard_events_ignored_total{reason=\"stale\"}")
            .await
            >= Some(1.0)
    );
    // GET works too (Telnyx uses the application's method for the Gather action).
    let path = second
        .strip_prefix(crate::helpers::PUBLIC_URL)
        .expect("ours");
    let (path, query) = path.split_once('?').expect("query");
    let mut q: Vec<(&str, &str)> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    q.extend([
        ("CallSid", "CA-quiet-2"),
        ("From", "+12025550142"),
        ("To", SUPPORT),
        ("Digits", "1"),
    ]);
    assert_eq!(ringing(&app.get_query(path, &q).await), [ALAN]);
}

#[tokio::test]
async fn a_menu_action_for_a_call_switchboard_lost_still_gets_a_voice() {
    let app = spawn().await;
    let doc = press(
        &app,
        "CA-lost",
        "/texml/menu?attempt=2&line=support",
        Some("1"),
    )
    .await;
    assert_eq!(doc.status, reqwest::StatusCode::OK);
    assert!(
        doc.body.contains("<Record"),
        "apology and voicemail: {}",
        doc.body
    );
}

#[tokio::test]
async fn under_twilio_the_menu_speaks_a_voice_twilio_knows_and_posts_by_default() {
    let clock = Arc::new(ManualClock::at(MONDAY_MORNING_NY));
    let app = crate::helpers::Spawn::default()
        .settings(crate::lines::lines_from(&with_menu()))
        .settings(|s| s.provider.kind = switchboard::config::Provider::Twilio)
        .clock(clock)
        .start()
        .await;
    let doc = call(&app, "CA-twilio-menu", SUPPORT).await;
    assert_golden("twilio/menu", &doc);
    let xml = roxmltree::Document::parse(&doc.body).expect("well-formed");
    let gather = xml
        .descendants()
        .find(|n| n.has_tag_name("Gather"))
        .expect("gather");
    // Twilio's Gather posts its action by default; Telnyx uses the application's method.
    assert_eq!(gather.attribute("method"), None);
    let say = gather
        .children()
        .find(|n| n.has_tag_name("Say"))
        .expect("say");
    assert_eq!(say.attribute("voice"), Some("Polly.Joanna"));
}
