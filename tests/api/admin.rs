//! The admin API and `switchboard lines`: off without a token, refusing a wrong one, closing and
//! reopening a line on two replicas sharing Redis (with the Slack message), surviving a restart
//! with the memory backend's file, and clear answers to bad input.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{json, Value};
use switchboard::admin_client::Server;
use switchboard::agents::cli::{AgentsAction, AgentsArgs, Change as AgentChange};
use switchboard::lines::cli::{Change, LinesAction, LinesArgs};
use switchboard::time::ManualClock;

use crate::helpers::{ringing, wait_for_messages, Spawn, TestApp};
use crate::lines::{call, config, lines_from, MONDAY_MORNING_NY, SUPPORT};
use crate::replicas::{replica, slack_ok, Redis};

pub(crate) const TOKEN: &str = "test-admin-token-0123456789";
const ADA: &str = "sip:ada@switchboard-demo.sip.example.com";

pub(crate) fn with_token(s: &mut switchboard::config::Settings) {
    s.admin.token = Some(TOKEN.to_owned().into());
}

pub(crate) async fn admin(
    app: &TestApp,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let url = format!("{}{path}", app.base);
    let req = match method {
        "GET" => app.client.get(url),
        _ => app.client.post(url),
    };
    let req = req.bearer_auth(TOKEN);
    let req = match body {
        Some(b) => req.json(&b),
        None => req,
    };
    let res = req.send().await.expect("admin answers");
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn line<'a>(list: &'a Value, id: &str) -> &'a Value {
    list["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .find(|l| l["id"] == id)
        .expect("the line is listed")
}

#[tokio::test]
async fn the_admin_api_is_off_without_a_token_and_refuses_a_wrong_one() {
    let off = Spawn::default().start().await;
    let res = off
        .client
        .get(format!("{}/admin/lines", off.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("answer");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    let on = Spawn::default().settings(with_token).start().await;
    let url = format!("{}/admin/lines", on.base);
    let none = on.client.get(&url).send().await.expect("answer");
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    assert!(none.headers().contains_key("www-authenticate"));
    let wrong = on
        .client
        .get(&url)
        .bearer_auth("not-the-token-at-all")
        .send()
        .await;
    assert_eq!(wrong.expect("answer").status(), StatusCode::UNAUTHORIZED);
    let close = on
        .client
        .post(format!("{}/admin/lines/main/close", on.base))
        .send()
        .await
        .expect("answer");
    assert_eq!(
        close.status(),
        StatusCode::UNAUTHORIZED,
        "no change without the token"
    );
    // Without lines, the implicit one is listed, always open.
    let (status, list) = admin(&on, "GET", "/admin/lines", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(line(&list, "main")["why"], "always_open");
}

#[tokio::test]
async fn an_operator_closes_and_reopens_a_line_on_two_replicas_sharing_redis() {
    let redis = Redis::start();
    let slack = slack_ok().await;
    let clock = Arc::new(ManualClock::at(MONDAY_MORNING_NY));
    let toml = config("2026-12-31", "voicemail");
    let a = replica(&redis, &slack, clock.clone(), |s| {
        lines_from(&toml)(s);
        with_token(s);
    })
    .await;
    let b = replica(&redis, &slack, clock.clone(), |s| {
        lines_from(&toml)(s);
        with_token(s);
    })
    .await;
    let (a, b) = (&a.app, &b.app);

    let (_, list) = admin(b, "GET", "/admin/lines", None).await;
    let support = line(&list, "support");
    assert_eq!(
        (support["open"].clone(), support["why"].clone()),
        (json!(true), json!("hours"))
    );
    assert_eq!(
        support["until"], "2026-11-23T22:00:00Z",
        "closes at 17:00 in New York"
    );

    // Closed on A for two hours: B sends a call to the after-hours path.
    let body = json!({ "until": "2h", "by": "Ops on call" });
    let (status, view) = admin(a, "POST", "/admin/lines/support/close", Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["open"], false);
    assert_eq!(view["why"], "manual");
    assert_eq!(view["until"], "2026-11-23T17:00:00Z");
    let doc = call(b, "CA-closed", SUPPORT).await;
    assert!(doc.body.contains("We are closed right now"), "{}", doc.body);
    assert!(
        doc.body.contains("<Record"),
        "after hours: voicemail: {}",
        doc.body
    );
    let (_, list) = admin(b, "GET", "/admin/lines", None).await;
    assert_eq!(line(&list, "support")["override"]["by"], "Ops on call");
    assert_eq!(line(&list, "hotline")["open"], true, "only that line");

    let messages = wait_for_messages(&slack, 1).await;
    let closed = messages
        .iter()
        .find(|m| m["text"].as_str().unwrap_or("").contains("Line closed"))
        .expect("the change is posted to Slack");
    let text = closed["text"].as_str().expect("text");
    assert!(
        text.contains("*Support line* closed by Ops on call until"),
        "{text}"
    );

    // Reopened on B: A rings the line's agents again.
    let (status, view) = admin(b, "POST", "/admin/lines/support/open", None).await;
    assert_eq!(
        (status, view["why"].clone()),
        (StatusCode::OK, json!("hours"))
    );
    let doc = call(a, "CA-open", SUPPORT).await;
    assert_eq!(ringing(&doc)[0], ADA);

    // Closed without a time: until the schedule next opens (Tuesday 09:00 in New York).
    let (_, view) = admin(a, "POST", "/admin/lines/support/close", None).await;
    assert_eq!(view["until"], "2026-11-24T14:00:00Z");
    clock.advance_secs(24 * 3600);
    let (_, list) = admin(b, "GET", "/admin/lines", None).await;
    assert_eq!(
        line(&list, "support")["why"],
        "hours",
        "the schedule decides again"
    );
    assert!(line(&list, "support")["override"].is_null());

    // The CLI, against replica B.
    let args = |action| LinesArgs {
        server: Server {
            url: b.base.clone(),
            token: Some(TOKEN.into()),
        },
        action,
    };
    let table = switchboard::lines::cli::run(args(None))
        .await
        .expect("list");
    assert!(table.starts_with("LINE"), "{table}");
    assert!(table.contains("support  Support line  open"), "{table}");
    let change = Change {
        line: "hotline".into(),
        until: Some("30m".into()),
        by: Some("cli test".into()),
    };
    let table = switchboard::lines::cli::run(args(Some(LinesAction::Close(change))))
        .await
        .expect("close");
    assert!(
        table.contains("hotline  CoC hotline  closed  manual"),
        "{table}"
    );
    let (_, list) = admin(a, "GET", "/admin/lines", None).await;
    assert_eq!(line(&list, "hotline")["override"]["by"], "cli test");
    let wrong = LinesArgs {
        server: Server {
            url: b.base.clone(),
            token: Some("wrong-token-wrong-token".into()),
        },
        action: None,
    };
    let refused = switchboard::lines::cli::run(wrong).await;
    assert!(refused.is_err_and(|e| e.starts_with("401")));
}

#[tokio::test]
async fn a_closure_survives_a_restart_with_the_memory_backend() {
    let file = std::env::temp_dir().join(format!("sb-overrides-{}.json", std::process::id()));
    std::fs::remove_file(&file).ok();
    let clock = Arc::new(ManualClock::at(MONDAY_MORNING_NY));
    let toml = config("2026-12-31", "message");
    let start = || {
        let toml = toml.clone();
        let file = file.clone();
        Spawn::default()
            .settings(move |s| {
                lines_from(&toml)(s);
                with_token(s);
                s.admin.overrides_file = Some(file);
            })
            .clock(clock.clone())
            .start()
    };
    let first = start().await;
    let (status, _) = admin(&first, "POST", "/admin/lines/support/close", None).await;
    assert_eq!(status, StatusCode::OK);
    let second = start().await;
    let (_, list) = admin(&second, "GET", "/admin/lines", None).await;
    assert_eq!(line(&list, "support")["why"], "manual");
    let doc = call(&second, "CA-after-restart", SUPPORT).await;
    assert!(doc.body.contains("We are closed right now"), "{}", doc.body);
    std::fs::remove_file(&file).ok();
}

#[tokio::test]
async fn bad_admin_requests_get_clear_answers() {
    let app = Spawn::default()
        .settings(|s| {
            lines_from(&config("2026-12-31", "voicemail"))(s);
            with_token(s);
        })
        .start()
        .await;
    let cases = [
        ("/admin/lines/nope/close", json!({}), StatusCode::NOT_FOUND),
        (
            "/admin/lines/support/close",
            json!({ "until": "soon" }),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/admin/lines/support/close",
            json!({ "until": "2001-01-01T00:00:00Z" }),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/admin/lines/support/close",
            json!({ "when": "2h" }),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (path, body, want) in cases {
        let (status, answer) = admin(&app, "POST", path, Some(body.clone())).await;
        assert_eq!(status, want, "{path} {body}: {answer}");
        assert!(answer["error"].is_string(), "{answer}");
    }
    let (_, list) = admin(&app, "GET", "/admin/lines", None).await;
    assert!(
        line(&list, "support")["override"].is_null(),
        "nothing changed"
    );
}

#[tokio::test]
async fn an_agent_set_away_is_never_rung_until_available_and_slack_is_told() {
    let slack = slack_ok().await;
    let app = Spawn::default()
        .settings(|s| {
            with_token(s);
            crate::helpers::use_slack(s, &slack);
        })
        .start()
        .await;
    let (status, view) = admin(
        &app,
        "POST",
        "/admin/agents/ada-lovelace/away",
        Some(json!({"by": "Ops"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(
        (view["away"].clone(), view["free"].clone()),
        (json!(true), json!(false))
    );
    for i in 0..3 {
        let rung = ringing(&call(&app, &format!("CA-away-{i}"), "+18005550100").await);
        assert_eq!(rung.len(), 2, "{rung:?}");
        assert!(!rung.contains(&ADA.to_owned()));
    }
    let (_, list) = admin(&app, "GET", "/admin/agents", None).await;
    let ada = list["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .find(|a| a["id"] == "ada-lovelace")
        .expect("listed");
    assert_eq!(ada["away"], json!(true));

    // The CLI lists her away, and sets her available again.
    let cli = |action| AgentsArgs {
        server: Server {
            url: app.base.clone(),
            token: Some(TOKEN.into()),
        },
        action,
    };
    let table = switchboard::agents::cli::run(cli(None))
        .await
        .expect("list");
    assert!(table.starts_with("AGENT"), "{table}");
    assert!(
        table.contains("ada-lovelace  Ada Lovelace  away"),
        "{table}"
    );
    let back = AgentsAction::Available(AgentChange {
        agent: "ada-lovelace".into(),
        by: Some("cli test".into()),
    });
    let table = switchboard::agents::cli::run(cli(Some(back)))
        .await
        .expect("available");
    assert!(
        table.contains("ada-lovelace  Ada Lovelace  free"),
        "{table}"
    );
    assert!(ringing(&call(&app, "CA-back", "+18005550100").await).contains(&ADA.to_owned()));
    let texts: Vec<String> = wait_for_messages(&slack, 6)
        .await
        .iter()
        .map(|m| m["text"].as_str().unwrap_or_default().to_owned())
        .filter(|t| t.contains("Agent"))
        .collect();
    assert!(
        texts
            .iter()
            .any(|t| t.contains("*Ada Lovelace* is away") && t.contains("Ops")),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.contains("Agent available") && t.contains("cli test")),
        "{texts:?}"
    );
    let gone = AgentsAction::Away(AgentChange {
        agent: "nobody".into(),
        by: None,
    });
    let refused = switchboard::agents::cli::run(cli(Some(gone))).await;
    assert_eq!(refused, Err("404 Not Found: no such agent".into()));
    let (status, body) = admin(&app, "POST", "/admin/agents/nobody/away", None).await;
    assert_eq!(
        (status, body["error"].clone()),
        (StatusCode::NOT_FOUND, json!("no such agent"))
    );
}
