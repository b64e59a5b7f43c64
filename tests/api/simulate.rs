//! `switchboard simulate` driving whole calls against a spawned server, for each scenario, against
//! a server enforcing signatures, and against another TeXML server (wiremock).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ed25519_dalek::SigningKey;
use switchboard::call::{FactKind, MissReason, Outcome};
use switchboard::signature::telnyx_key;
use switchboard::simulate::{run, Scenario, SimulateArgs};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{spawn_with, TestApp};

/// A server whose documents point at itself (public URL = its own address), as the simulator
/// only follows URLs on the host it was given.
async fn spawn_self_addressed(tweak: impl FnOnce(&mut switchboard::config::Settings)) -> TestApp {
    let port = crate::helpers::free_port();
    spawn_with(move |s| {
        s.server.port = port;
        s.server.public_url = format!("http://127.0.0.1:{port}").parse().expect("url");
        tweak(s);
    })
    .await
}

fn args(app: &TestApp, scenario: Scenario) -> SimulateArgs {
    let mut a = SimulateArgs::for_url(&format!("{}/texml/inbound", app.base));
    a.scenario = scenario;
    a
}

fn kinds(app: &TestApp, prefix: &str) -> Vec<FactKind> {
    app.notices
        .take()
        .into_iter()
        .filter_map(|n| match n {
            switchboard::sink::Record::Call { sid, fact, .. }
                if sid.as_str().starts_with(prefix) =>
            {
                Some(fact.kind)
            }
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn answered_on_round_two_by_the_third_agent() {
    let app = spawn_self_addressed(|_| {}).await;
    let mut a = args(&app, Scenario::Answer);
    a.round = 2;
    a.agent = 3;
    a.trace = true;
    let report = run(a).await.expect("runs");
    assert_eq!(report.errors, 0, "{:?}", report.first_errors);
    assert_eq!(report.outcomes.get("answered"), Some(&1));
    let notices = kinds(&app, "SIM");
    assert!(
        matches!(&notices[1], FactKind::Answered { agent: Some(a), .. } if &**a == "Alan Turing"),
        "{notices:?}"
    );
    assert!(matches!(
        &notices[2],
        FactKind::Ended {
            outcome: Outcome::Answered { talk_secs: 42, .. },
            ..
        }
    ));
    // The trace shows each document and callback.
    let trace = report.trace.join("\n");
    assert!(trace.contains("/texml/dial?round=2"), "{trace}");
    assert!(trace.contains("CallStatus=in-progress"), "{trace}");
    assert_eq!(app.live().await, 0);
}

#[tokio::test]
async fn nobody_answers_and_a_voicemail_is_left() {
    let app = spawn_self_addressed(|_| {}).await;
    let mut a = args(&app, Scenario::Voicemail);
    a.method = switchboard::simulate::VoiceMethod::Post;
    let report = run(a).await.expect("runs");
    assert_eq!(report.errors, 0, "{:?}", report.first_errors);
    assert_eq!(report.outcomes.get("voicemail"), Some(&1));
    let notices = kinds(&app, "SIM");
    assert_eq!(notices.len(), 5, "{notices:?}");
    assert_eq!(
        notices[1],
        FactKind::SentToVoicemail {
            reason: MissReason::NoAnswer
        }
    );
    assert!(notices.iter().any(|n| matches!(
        n,
        FactKind::VoicemailLeft {
            duration_secs: 12,
            ..
        }
    )));
    assert!(matches!(
        notices.last(),
        Some(FactKind::Settled {
            outcome: Outcome::Voicemail(_)
        }) | Some(FactKind::Ended {
            outcome: Outcome::Voicemail(_),
            settled: true
        })
    ));
    assert!(report.kinds["recording"].count == 1 && report.kinds["record-action"].count == 1);
}

#[tokio::test]
async fn the_caller_hangs_up_while_agents_ring() {
    let app = spawn_self_addressed(|_| {}).await;
    let report = run(args(&app, Scenario::Abandon)).await.expect("runs");
    assert_eq!(report.outcomes.get("abandoned"), Some(&1));
    let notices = kinds(&app, "SIM");
    assert!(
        matches!(
            notices.as_slice(),
            [
                FactKind::Ringing { .. },
                FactKind::Ended {
                    outcome: Outcome::Abandoned { .. },
                    ..
                }
            ]
        ),
        "{notices:?}"
    );
}

#[tokio::test]
async fn a_mix_of_calls_in_parallel_ends_every_call() {
    // Agents are busy while they talk and for their wrap-up: none here, so that the three demo
    // agents are free again at once and the mix keeps its shape.
    let app = spawn_self_addressed(|s| s.dial.wrap_up_secs = 0).await;
    let mut a = args(&app, Scenario::Mix);
    a.calls = 60;
    a.concurrency = 8;
    let report = run(a).await.expect("runs");
    assert_eq!(report.errors, 0, "{:?}", report.first_errors);
    assert_eq!(report.outcomes.values().sum::<usize>(), 60);
    assert!(report.outcomes.len() >= 3, "{:?}", report.outcomes);
    assert!(report.kinds["all"].count > 60 && report.requests_per_sec > 0.0);
    assert_eq!(app.live().await, 0, "every call ended");
}

#[tokio::test]
async fn signed_requests_pass_a_server_in_enforce_mode() {
    let key = SigningKey::from_bytes(&[9u8; 32]);
    let public = BASE64.encode(key.verifying_key().to_bytes());
    let app = spawn_self_addressed(move |s| s.telnyx.public_key = telnyx_key(&public).ok()).await;
    let mut a = args(&app, Scenario::Answer);
    let unsigned = run(a.clone()).await.expect("runs");
    assert_eq!(unsigned.outcomes.get("error"), Some(&1));
    assert!(
        unsigned.first_errors[0].contains("403"),
        "{:?}",
        unsigned.first_errors
    );
    a.telnyx_key = Some(BASE64.encode(key.to_bytes()));
    let signed = run(a).await.expect("runs");
    assert_eq!(signed.errors, 0, "{:?}", signed.first_errors);
    assert_eq!(signed.outcomes.get("answered"), Some(&1));
}

#[tokio::test]
async fn digits_for_a_gather_on_another_texml_server_and_unsupported_verbs_reported() {
    let texml = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/voice"))
        .respond_with(ResponseTemplate::new(200).set_body_string(
            r#"<Response><Gather action="/menu" numDigits="1"><Say>Press 1</Say></Gather><Hangup/></Response>"#,
        ))
        .mount(&texml)
        .await;
    Mock::given(method("POST"))
        .and(path("/menu"))
        .and(body_string_contains("Digits=7"))
        .respond_with(ResponseTemplate::new(200).set_body_string(
            r#"<Response><Say>Thanks</Say><Enqueue>support</Enqueue><Redirect method="GET">/bye</Redirect></Response>"#,
        ))
        .expect(1)
        .mount(&texml)
        .await;
    Mock::given(method("GET"))
        .and(path("/bye"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<Response><Hangup/></Response>"))
        .mount(&texml)
        .await;
    Mock::given(method("POST"))
        .and(path("/texml/status"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&texml)
        .await;
    let mut a = SimulateArgs::for_url(&format!("{}/voice", texml.uri()));
    a.scenario = Scenario::Gather;
    a.digits = "7".into();
    let report = run(a).await.expect("runs");
    assert_eq!(report.errors, 0, "{:?}", report.first_errors);
    assert_eq!(report.unsupported.get("Enqueue"), Some(&1));
    assert_eq!(report.kinds["redirect"].count, 1);
    assert_eq!(report.outcomes.get("hangup"), Some(&1));
}

#[tokio::test]
async fn it_never_contacts_another_host() {
    let texml = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string(
            r#"<Response><Redirect>http://example.com/elsewhere</Redirect></Response>"#,
        ))
        .mount(&texml)
        .await;
    let report = run(SimulateArgs::for_url(&format!("{}/voice", texml.uri())))
        .await
        .expect("runs");
    assert_eq!(report.outcomes.get("error"), Some(&1));
    assert!(report.first_errors[0].contains("refused to contact example.com"));
    assert_eq!(texml.received_requests().await.map(|r| r.len()), Some(1));
}

#[tokio::test]
async fn held_calls_stay_live() {
    let app = spawn_self_addressed(|_| {}).await;
    let mut a = args(&app, Scenario::Hold);
    a.calls = 5;
    let report = run(a).await.expect("runs");
    assert_eq!(report.outcomes.get("held"), Some(&5));
    assert_eq!(report.kinds["all"].count, 5, "only the voice requests");
    assert_eq!(app.live().await, 5);
}

#[tokio::test]
async fn the_command_prints_figures_and_writes_json() {
    let app = spawn_self_addressed(|_| {}).await;
    let json = std::env::temp_dir().join(format!("sim-{}.json", std::process::id()));
    let url = format!("{}/texml/inbound", app.base);
    let json_arg = json.display().to_string();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args([
                "simulate",
                "--url",
                &url,
                "--scenario",
                "mix",
                "--calls",
                "20",
            ])
            .args(["--concurrency", "4", "--json", &json_arg])
            .output()
            .expect("runs")
    })
    .await
    .expect("joined");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("20 calls in"), "{stdout}");
    assert!(stdout.contains("p99 ms"), "{stdout}");
    let figures: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json written")).expect("json");
    assert_eq!(figures["calls"], 20);
    assert_eq!(figures["errors"], 0);
    assert!(figures["kinds"]["voice"]["p99_ms"].as_f64().is_some());
    std::fs::remove_file(json).ok();
}

#[tokio::test]
async fn a_call_to_a_line_with_a_menu_reports_its_line_keys_and_branch() {
    // The menu line of menus.rs, always open (the simulator runs on the real clock).
    let toml = crate::menus::with_menu()
        .replace("schedule = \"office\"\n", "")
        .replace("2026-12-31", "2001-01-01");
    let app = spawn_self_addressed(crate::lines::lines_from(&toml)).await;
    let mut a = args(&app, Scenario::Answer);
    a.to = crate::lines::SUPPORT.into();
    a.digits = ",1".into();
    let report = run(a.clone()).await.expect("runs");
    assert_eq!(report.errors, 0, "{:?}", report.first_errors);
    assert_eq!(
        report.paths.keys().collect::<Vec<_>>(),
        ["line support → no key → pressed 1 → line hotline → ring 1 → answered"]
    );
    assert!(report.render().contains("path ×1: line support → no key"));
    // The provider posting empty digits instead; an invalid key, then nothing: the default.
    a.digits = "9,".into();
    a.no_input = switchboard::simulate::NoInput::Empty;
    a.scenario = Scenario::Voicemail;
    let report = run(a).await.expect("runs");
    assert_eq!(
        report.paths.keys().collect::<Vec<_>>(),
        ["line support → pressed 9 → no key → ring 2 → ring 2 → voicemail"]
    );
}

/// Agents on phone numbers (screened by default), rung again at once after a call.
fn mobiles(count: usize) -> impl FnOnce(&mut switchboard::config::Settings) {
    move |s| {
        s.dial.wrap_up_secs = 0;
        s.agents = (0..count)
            .map(|i| {
                let number = format!("+1202555{:04}", 300 + i);
                let phone = switchboard::domain::Endpoint::number(&number).expect("number");
                switchboard::domain::Agent::new(&format!("Mobile {i:02}"), phone).expect("agent")
            })
            .collect();
    }
}

fn answered_by(app: &TestApp) -> Vec<Option<Box<str>>> {
    kinds(app, "SIM")
        .into_iter()
        .filter_map(|k| match k {
            FactKind::Answered { agent, .. } => Some(agent),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn the_simulator_plays_screening_an_answering_machine_and_two_accepts_at_once() {
    let app = spawn_self_addressed(mobiles(3)).await;
    // An agent who presses 1 is connected.
    let report = run(args(&app, Scenario::Answer)).await.expect("runs");
    assert_eq!(report.errors, 0, "{:?}", report.first_errors);
    assert_eq!(
        report.paths.keys().collect::<Vec<_>>(),
        ["ring 3 → screened, pressed 1 → answered"]
    );
    assert_eq!(answered_by(&app), [Some("Mobile 00".into())]);

    // A voicemail box answers round 1 and presses nothing, either way the provider reports it:
    // hung up, round 2 rings, the caller leaves a message, and nobody "answered".
    for no_input in [
        switchboard::simulate::NoInput::FallThrough,
        switchboard::simulate::NoInput::Empty,
    ] {
        let mut a = args(&app, Scenario::Machine);
        a.no_input = no_input;
        let report = run(a).await.expect("runs");
        assert_eq!(report.errors, 0, "{:?}", report.first_errors);
        assert_eq!(
            report.paths.keys().collect::<Vec<_>>(),
            ["ring 3 → screened, no key, hung up → ring 3 → voicemail"],
            "{no_input:?}"
        );
        assert!(answered_by(&app).is_empty(), "{no_input:?}");
    }

    // Two agents press 1 at the same moment, ten times: always exactly one is connected (the
    // simulator fails the call if both are), the other hears "another agent took this call".
    let mut a = args(&app, Scenario::Race);
    a.calls = 10;
    a.concurrency = 2;
    a.trace = true;
    let report = run(a).await.expect("runs");
    assert_eq!(report.errors, 0, "{:?}", report.first_errors);
    assert_eq!(
        report.paths.keys().collect::<Vec<_>>(),
        ["ring 3 → 2 pressed 1 at once, 1 connected → answered"]
    );
    assert_eq!(answered_by(&app).len(), 10, "one answered notice per call");
    let trace = report.trace.join("\n");
    assert_eq!(trace.matches("Another agent took this call").count(), 10);
    assert_eq!(app.live().await, 0);
}

#[tokio::test]
async fn the_simulator_rings_a_large_team_in_waves() {
    let app = spawn_self_addressed(|s| {
        mobiles(25)(s);
        s.provider.kind = switchboard::config::Provider::Twilio;
    })
    .await;
    let report = run(args(&app, Scenario::Voicemail)).await.expect("runs");
    assert_eq!(report.errors, 0, "{:?}", report.first_errors);
    assert_eq!(
        report.paths.keys().collect::<Vec<_>>(),
        ["ring 10 → ring 10 → ring 5 → ring 10 → ring 10 → ring 5 → voicemail"]
    );
    // Round 2's first wave: its third agent presses 1.
    let mut a = args(&app, Scenario::Answer);
    a.round = 2;
    a.agent = 3;
    let report = run(a).await.expect("runs");
    assert_eq!(report.errors, 0, "{:?}", report.first_errors);
    assert_eq!(
        report.paths.keys().collect::<Vec<_>>(),
        ["ring 10 → ring 10 → ring 5 → ring 10 → screened, pressed 1 → answered"]
    );
    assert_eq!(answered_by(&app).len(), 1);
}
