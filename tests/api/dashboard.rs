//! The live dashboard: sign-in and what a refusal shows, the event stream (snapshot, changes,
//! heartbeats, resuming), actions, the trusted proxy, a restart with a new password, two replicas
//! on Redis, and the page itself in a headless Chromium (see `browser.rs`).

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use reqwest::StatusCode;
use serde_json::Value;
use switchboard::config::Settings;
use switchboard::dashboard::settings::{Role, User};
use switchboard::time::ManualClock;

use crate::helpers::{Spawn, TestApp, T0};

pub(crate) const PASSWORD: &str = "correct horse battery staple";
pub(crate) const CALLER: &str = "+12025550142";

/// One hash for the whole run (each takes tens of milliseconds).
pub(crate) fn hash() -> String {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| switchboard::dashboard::auth::hash_password(PASSWORD).expect("hash"))
        .clone()
}

/// `ada` (a supervisor) and `wall` (a viewer, for a wall screen), both with [`PASSWORD`].
pub(crate) fn with_users(s: &mut Settings) {
    s.dashboard.users = vec![
        User {
            name: "ada".into(),
            password_hash: hash(),
            role: Role::Supervisor,
        },
        User {
            name: "wall".into(),
            password_hash: hash(),
            role: Role::Viewer,
        },
    ];
    s.dashboard.heartbeat_secs = 1;
}

/// Two lines: support (Ada, Grace, Alan) and a Code of Conduct hotline (Ada, Grace).
pub(crate) const LINES: &str = r#"
[[agents]]
name = "Ada Lovelace"
sip = "sip:ada@example.com"

[[agents]]
name = "Grace Hopper"
sip = "sip:grace@example.com"

[[agents]]
name = "Alan Turing"
sip = "sip:alan@example.com"

[[lines]]
id = "support"
name = "Support line"
numbers = ["+18005550100"]

[[lines]]
id = "coc"
name = "Code of Conduct hotline"
numbers = ["+18005550199"]
agents = ["ada-lovelace", "grace-hopper"]
"#;

async fn spawn_dashboard(clock: Arc<ManualClock>) -> TestApp {
    Spawn::default()
        .settings(crate::lines::lines_from(LINES))
        .settings(with_users)
        .settings(|s| s.privacy.mask_caller_numbers = true)
        .clock(clock)
        .start()
        .await
}

/// A server-sent event.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub name: String,
}

/// A page's event stream, read as a browser would, keeping the sections it was sent.
pub(crate) struct Events {
    body: Pin<Box<dyn Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: String,
    pub heartbeats: usize,
    pub last_id: Option<String>,
    /// The server ended the stream (not: nothing came in time).
    pub ended: bool,
    /// Every section as last sent (an object; a missing one reads as null).
    pub sections: Value,
}

impl Events {
    /// Opens `/dashboard/events` on `base` as `user`; the status when refused.
    pub(crate) async fn open(
        base: &str,
        user: Option<(&str, &str)>,
        last_id: Option<&str>,
    ) -> Result<Events, StatusCode> {
        let mut req = reqwest::Client::new().get(format!("{base}/dashboard/events"));
        if let Some((name, password)) = user {
            req = req.basic_auth(name, Some(password));
        }
        if let Some(id) = last_id {
            req = req.header("Last-Event-ID", id);
        }
        let res = req.send().await.expect("events request");
        if res.status() != StatusCode::OK {
            return Err(res.status());
        }
        assert_eq!(
            res.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        assert_eq!(
            res.headers()["cache-control"].to_str().unwrap(),
            "no-cache, no-transform"
        );
        Ok(Events {
            body: Box::pin(res.bytes_stream()),
            buf: String::new(),
            heartbeats: 0,
            last_id: None,
            ended: false,
            sections: Value::Object(serde_json::Map::new()),
        })
    }

    /// The next event within `within` (heartbeats are counted, not returned); `None` when the
    /// stream ended or nothing came.
    pub(crate) async fn next(&mut self, within: Duration) -> Option<Event> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut name, mut id, mut data) = (String::new(), String::new(), String::new());
                for line in block.lines() {
                    if line.starts_with(':') {
                        self.heartbeats += 1;
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        name = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("id: ") {
                        id = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push_str(v);
                    }
                }
                if name.is_empty() {
                    continue;
                }
                let data: Value = serde_json::from_str(&data).expect("event data is JSON");
                match name.as_str() {
                    "snapshot" => {
                        assert!(data.is_object(), "a snapshot is an object");
                        self.sections = data.clone();
                    }
                    section => {
                        self.sections[section] = data.clone();
                    }
                }
                self.last_id = Some(id);
                return Some(Event { name });
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next()).await;
            match chunk {
                Ok(Some(Ok(bytes))) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(_) => {
                    self.ended = true;
                    return None;
                }
                Err(_) => return None,
            }
        }
    }

    /// Reads events until the sections satisfy `done` (within ten seconds).
    pub(crate) async fn until(&mut self, what: &str, done: impl Fn(&Value) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !done(&self.sections) {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if self.next(left).await.is_none() {
                panic!("the stream never showed {what}: {:#?}", self.sections);
            }
        }
    }
}

/// The line `id` of the `live` section.
pub(crate) fn line<'a>(s: &'a Value, id: &str) -> &'a Value {
    s["live"]["lines"]
        .as_array()
        .and_then(|l| l.iter().find(|l| l["id"] == id))
        .unwrap_or(&Value::Null)
}

fn agent<'a>(s: &'a Value, line_id: &str, agent: &str) -> &'a Value {
    line(s, line_id)["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["id"] == agent))
        .unwrap_or(&Value::Null)
}

async fn get(app: &TestApp, path: &str, user: Option<(&str, &str)>) -> reqwest::Response {
    let mut req = app.client.get(format!("{}{path}", app.base));
    if let Some((name, password)) = user {
        req = req.basic_auth(name, Some(password));
    }
    req.send().await.expect("request")
}

async fn act(app: &TestApp, path: &str, user: (&str, &str), header: bool) -> reqwest::Response {
    let mut req = app
        .client
        .post(format!("{}{path}", app.base))
        .basic_auth(user.0, Some(user.1));
    if header {
        req = req.header("X-Switchboard-Action", "1");
    }
    req.send().await.expect("request")
}

#[tokio::test]
async fn without_users_the_dashboard_is_off() {
    let app = crate::helpers::spawn_app().await;
    for path in ["/dashboard", "/dashboard/events", "/dashboard/me"] {
        let res = get(&app, path, Some(("ada", PASSWORD))).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn everything_needs_sign_in_and_a_refusal_shows_nothing() {
    let app = spawn_dashboard(Arc::new(ManualClock::at(T0))).await;
    app.inbound("CA-secret", CALLER).await;
    let paths = [
        "/dashboard",
        "/dashboard/app.js",
        "/dashboard/app.css",
        "/dashboard/me",
        "/dashboard/events",
        "/dashboard/recordings/CA-secret-voicemail",
    ];
    for user in [
        None,
        Some(("ada", "wrong password")),
        Some(("mallory", PASSWORD)),
    ] {
        for path in paths {
            let res = get(&app, path, user).await;
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{path} as {user:?}");
            assert!(res.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Basic realm=\"Switchboard dashboard\""));
            let body = res.text().await.unwrap();
            assert_eq!(body, "sign in to see the dashboard\n", "{path}");
        }
        let res = act(
            &app,
            "/dashboard/lines/support/close",
            ("ada", "nope"),
            true,
        )
        .await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    let page = get(&app, "/dashboard", Some(("wall", PASSWORD))).await;
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(page.headers()["cache-control"], "no-store");
    let html = page.text().await.unwrap();
    for hook in [
        "waiting",
        "in-conversation",
        "longest-wait-secs",
        "agents-available",
        "agents-on-call",
        "offered-today",
        "answered-today",
        "abandoned-today",
        "voicemail-today",
    ] {
        assert!(html.contains(&format!("data-metric=\"{hook}\"")), "{hook}");
    }
    let me: Value = get(&app, "/dashboard/me", Some(("wall", PASSWORD)))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me, serde_json::json!({"name": "wall", "role": "viewer"}));
    let refused = app
        .metric("switchboard_dashboard_sign_ins_total{result=\"wrong\"}")
        .await
        .unwrap_or(0.0);
    assert!(refused >= 12.0, "{refused}");
}

#[tokio::test]
async fn the_stream_sends_a_snapshot_then_each_change_and_heartbeats() {
    let clock = Arc::new(ManualClock::at(T0));
    let app = spawn_dashboard(clock.clone()).await;
    let mut events = Events::open(&app.base, Some(("wall", PASSWORD)), None)
        .await
        .expect("stream");
    let first = events.next(Duration::from_secs(5)).await.expect("snapshot");
    assert_eq!(first.name, "snapshot");
    let s = &events.sections;
    assert_eq!(s["live"]["waiting"], 0);
    assert_eq!(s["live"]["agents_count"]["available"], 3);
    assert_eq!(line(s, "coc")["name"], "Code of Conduct hotline");
    assert_eq!(s["today"]["total"]["offered"], 0);
    assert_eq!(s["health"]["replicas"][0]["call_store"], true);

    // A caller on the hotline waits, ringing Ada and Grace; their number is masked.
    app.post_form(
        "/texml/inbound",
        &[
            ("CallSid", "CA-dash-1"),
            ("From", CALLER),
            ("To", "+18005550199"),
            ("CallStatus", "ringing"),
            ("AccountSid", "ACtest"),
        ],
    )
    .await;
    events
        .until("one call waiting on the hotline", |s| {
            line(s, "coc")["waiting"] == 1
        })
        .await;
    let s = &events.sections;
    assert_eq!(s["live"]["waiting"], 1);
    assert_eq!(s["live"]["longest_wait_since"], T0);
    assert_eq!(line(s, "coc")["calls"][0]["caller"], "+1202•••0142");
    assert_eq!(line(s, "coc")["calls"][0]["state"], "ringing");
    assert_eq!(agent(s, "coc", "ada-lovelace")["state"], "ringing");
    assert_eq!(agent(s, "support", "alan-turing")["state"], "available");

    // Ada answers: in conversation; she is on a call on every line she answers.
    clock.advance_secs(12);
    app.leg(
        "CA-dash-1",
        "LEG-ada",
        "in-progress",
        "sip:ada@example.com",
        "2",
    )
    .await;
    events
        .until("the call in conversation", |s| {
            s["live"]["in_conversation"] == 1
        })
        .await;
    let s = &events.sections;
    assert_eq!(s["live"]["waiting"], 0);
    assert_eq!(line(s, "coc")["calls"][0]["agent"], "Ada Lovelace");
    assert_eq!(agent(s, "support", "ada-lovelace")["state"], "on_call");
    assert_eq!(
        s["live"]["agents_count"]["on_call"], 1,
        "Ada once, though on two lines"
    );

    // It ends: today's figures come from the ledger.
    clock.advance_secs(60);
    app.dial_action("CA-dash-1", 1, "completed", Some(("LEG-ada", "60")))
        .await;
    app.call_status("CA-dash-1", "completed").await;
    events
        .until("one call answered today", |s| {
            s["today"]["total"]["answered"] == 1
        })
        .await;
    let s = &events.sections;
    assert_eq!(s["today"]["total"]["offered"], 1);
    assert_eq!(s["today"]["total"]["asa_secs"], 12.0);
    assert_eq!(s["live"]["in_conversation"], 0);
    assert_eq!(agent(s, "coc", "ada-lovelace")["state"], "wrap_up");

    // Heartbeats keep a quiet stream open.
    let before = events.heartbeats;
    let _ = events.next(Duration::from_millis(2500)).await;
    assert!(events.heartbeats > before, "no heartbeat in 2.5 s");

    // Reconnecting to the same feed with the last id: no snapshot again, only what changed.
    let last = events.last_id.clone().expect("an id");
    drop(events);
    let mut again = Events::open(&app.base, Some(("wall", PASSWORD)), Some(&last))
        .await
        .expect("stream");
    app.inbound("CA-dash-2", "+14155550111").await;
    let e = again.next(Duration::from_secs(5)).await.expect("a change");
    assert_eq!(
        e.name, "live",
        "resumed with {last}: the change, no snapshot"
    );
    assert_eq!(again.sections["live"]["waiting"], 1);
    // An id this feed never gave (another replica, a restart): a new snapshot.
    let mut other = Events::open(&app.base, Some(("wall", PASSWORD)), Some("0123456789ab-99"))
        .await
        .expect("stream");
    let e = other.next(Duration::from_secs(5)).await.expect("event");
    assert_eq!(e.name, "snapshot");
    assert_eq!(other.sections["today"]["total"]["answered"], 1);
}

#[tokio::test]
async fn supervisors_close_lines_and_set_agents_away_and_viewers_only_watch() {
    let app = spawn_dashboard(Arc::new(ManualClock::at(T0))).await;
    let mut events = Events::open(&app.base, Some(("wall", PASSWORD)), None)
        .await
        .expect("stream");
    events.next(Duration::from_secs(5)).await.expect("snapshot");

    let viewer = act(
        &app,
        "/dashboard/lines/support/close",
        ("wall", PASSWORD),
        true,
    )
    .await;
    assert_eq!(viewer.status(), StatusCode::FORBIDDEN);
    // Without the page's header (a form on another site could not add it): refused.
    let forged = act(
        &app,
        "/dashboard/lines/support/close",
        ("ada", PASSWORD),
        false,
    )
    .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let unknown = act(&app, "/dashboard/lines/nope/close", ("ada", PASSWORD), true).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);

    let closed = act(
        &app,
        "/dashboard/lines/support/close",
        ("ada", PASSWORD),
        true,
    )
    .await;
    assert_eq!(closed.status(), StatusCode::OK);
    events
        .until("the support line closed", |s| {
            line(s, "support")["open"] == false
        })
        .await;
    assert_eq!(
        line(&events.sections, "support")["override"]["by"],
        "ada (dashboard)"
    );
    let said = app.notices.all().into_iter().any(|r| {
        matches!(r, switchboard::sink::Record::Line { ref by, open: false, .. } if by == "ada (dashboard)")
    });
    assert!(
        said,
        "the change goes to Slack and the log like the admin API's"
    );

    let away = act(
        &app,
        "/dashboard/agents/grace-hopper/away",
        ("ada", PASSWORD),
        true,
    )
    .await;
    assert_eq!(away.status(), StatusCode::OK);
    events
        .until("Grace away", |s| {
            agent(s, "coc", "grace-hopper")["state"] == "away"
        })
        .await;
    assert_eq!(events.sections["live"]["agents_count"]["away"], 1);
    let back = act(
        &app,
        "/dashboard/agents/grace-hopper/available",
        ("ada", PASSWORD),
        true,
    )
    .await;
    assert_eq!(back.status(), StatusCode::OK);
    events
        .until("Grace back", |s| {
            agent(s, "coc", "grace-hopper")["state"] == "available"
        })
        .await;
    // An away agent is not rung.
    let reopened = act(
        &app,
        "/dashboard/lines/support/open",
        ("ada", PASSWORD),
        true,
    )
    .await;
    assert_eq!(reopened.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_proxys_header_is_trusted_from_its_addresses_only() {
    let elsewhere = Spawn::default()
        .settings(|s| {
            s.dashboard.proxy = Some(switchboard::dashboard::settings::ProxyAuth {
                header: "x-forwarded-email".parse().unwrap(),
                from: vec!["10.0.0.0/8".parse().unwrap()],
                supervisors: vec![],
            })
        })
        .start()
        .await;
    let res = elsewhere
        .client
        .get(format!("{}/dashboard/me", elsewhere.base))
        .header("X-Forwarded-Email", "mallory@example.org")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "the header from 127.0.0.1 is ignored"
    );

    let behind = Spawn::default()
        .settings(|s| {
            s.dashboard.proxy = Some(switchboard::dashboard::settings::ProxyAuth {
                header: "x-forwarded-email".parse().unwrap(),
                from: vec!["127.0.0.1/32".parse().unwrap()],
                supervisors: vec!["boss@example.org".into()],
            })
        })
        .start()
        .await;
    for (email, role) in [
        ("boss@example.org", "supervisor"),
        ("dev@example.org", "viewer"),
    ] {
        let me: Value = behind
            .client
            .get(format!("{}/dashboard/me", behind.base))
            .header("X-Forwarded-Email", email)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(me, serde_json::json!({"name": email, "role": role}));
    }
    let res = behind
        .client
        .get(format!("{}/dashboard/me", behind.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "no header, no Basic: refused"
    );
}

#[tokio::test]
async fn a_restart_with_a_new_password_ends_the_stream_and_refuses_the_old_one() {
    use switchboard::startup::{Application, Overrides};
    let port = crate::helpers::free_port();
    let start = |hash: String| {
        let mut s = crate::helpers::test_settings();
        s.server.port = port;
        with_users(&mut s);
        for u in &mut s.dashboard.users {
            u.password_hash = hash.clone();
        }
        async move {
            let app = Application::build_with(s, Overrides::default())
                .await
                .expect("server");
            let stop = app.shutdown_handle();
            let run = tokio::spawn(app.run_until_stopped());
            (stop, run)
        }
    };
    let base = format!("http://127.0.0.1:{port}");
    let (stop, run) = start(hash()).await;
    let mut events = Events::open(&base, Some(("ada", PASSWORD)), None)
        .await
        .expect("stream");
    events.next(Duration::from_secs(5)).await.expect("snapshot");
    stop.trigger();
    // The stream ends with the server's shutdown (the browser then reconnects).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !events.ended {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        assert!(!left.is_zero(), "the stream did not end with the server");
        events.next(left).await;
    }
    run.await.unwrap().unwrap();

    let new = switchboard::dashboard::auth::hash_password("a brand new passphrase").unwrap();
    let (stop, _run) = start(new).await;
    assert_eq!(
        Events::open(&base, Some(("ada", PASSWORD)), None)
            .await
            .err(),
        Some(StatusCode::UNAUTHORIZED),
        "the old password is refused after the restart"
    );
    assert!(
        Events::open(&base, Some(("ada", "a brand new passphrase")), None)
            .await
            .is_ok()
    );
    stop.trigger();
}

#[tokio::test]
async fn a_voicemail_is_listed_and_plays_to_signed_in_users_only() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let audio: Vec<u8> = (0..3000u32).map(|i| (i % 199) as u8).collect();
    let provider = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/rec/vm.mp3"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "audio/mpeg")
                .set_body_bytes(audio.clone()),
        )
        .mount(&provider)
        .await;
    let app = Spawn::default()
        .settings(with_users)
        .settings(|s| s.recordings.archive = true)
        .clock(Arc::new(ManualClock::at(T0)))
        .start()
        .await;
    let mut events = Events::open(&app.base, Some(("wall", PASSWORD)), None)
        .await
        .expect("stream");
    crate::ledger::leave_voicemail(
        &app,
        "CA-vm-dash",
        &format!("{}/rec/vm.mp3", provider.uri()),
    )
    .await;
    events
        .until("an archived voicemail", |s| {
            s["voicemails"]["items"][0]["state"] == "archived"
        })
        .await;
    let item = events.sections["voicemails"]["items"][0].clone();
    assert_eq!(item["id"], "CA-vm-dash-voicemail");
    assert_eq!(item["duration_secs"], 14);
    assert_eq!(item["line"], "main");
    let play = item["play"].as_str().expect("a play link").to_owned();
    assert_eq!(play, "/dashboard/recordings/CA-vm-dash-voicemail");
    let res = get(&app, &play, Some(("wall", PASSWORD))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "audio/mpeg");
    assert_eq!(res.bytes().await.unwrap().to_vec(), audio);
    assert_eq!(
        get(&app, &play, None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    events
        .until("a voicemail counted today", |s| {
            s["today"]["total"]["voicemail"] == 1
        })
        .await;
}

#[tokio::test]
async fn a_page_on_one_replica_sees_the_calls_the_other_takes() {
    use crate::replicas::{replica, slack_ok, Redis};
    let redis = Redis::start();
    let slack = slack_ok().await;
    let clock = Arc::new(ManualClock::at(T0));
    let a = replica(&redis, &slack, clock.clone(), with_users).await;
    let b = replica(&redis, &slack, clock.clone(), with_users).await;
    let mut events = Events::open(&a.app.base, Some(("wall", PASSWORD)), None)
        .await
        .expect("stream");
    events.next(Duration::from_secs(5)).await.expect("snapshot");
    // B takes the calls; the page is on A.
    b.app.inbound("CA-on-b-1", CALLER).await;
    b.app.inbound("CA-on-b-2", "+14155550111").await;
    events
        .until("B's two calls waiting", |s| s["live"]["waiting"] == 2)
        .await;
    b.app
        .leg(
            "CA-on-b-1",
            "LEG-b-1",
            "in-progress",
            "sip:ada@switchboard-demo.sip.example.com",
            "2",
        )
        .await;
    events
        .until("B's call in conversation", |s| {
            s["live"]["in_conversation"] == 1
        })
        .await;
    // And both replicas' health, each under its own name.
    events
        .until("two replicas' health", |s| {
            s["health"]["replicas"]
                .as_array()
                .is_some_and(|r| r.len() == 2)
        })
        .await;
}

#[tokio::test]
async fn the_health_strip_shows_the_last_balance_check() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/balance"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(serde_json::json!({"data": {
                "record_type": "balance",
                "pending": "0.00",
                "balance": "79.99",
                "credit_limit": "0.00",
                "available_credit": "79.99",
                "currency": "USD"
            }})),
        )
        .mount(&api)
        .await;
    let uri = api.uri();
    let app = Spawn::default()
        .settings(with_users)
        .settings(move |s| {
            s.telnyx.api_base_url = format!("{uri}/v2").parse().expect("url");
            s.telnyx.api_key = Some("KEYfake-test-only".to_owned().into());
            s.telnyx.agents_from_api = false;
            // Every second, so the test need not wait for the hour.
            s.jobs.balance_check = switchboard::config::Cron::parse("* * * * * *").expect("cron");
        })
        .start()
        .await;
    let mut events = Events::open(&app.base, Some(("wall", PASSWORD)), None)
        .await
        .expect("stream");
    events
        .until("the balance", |s| {
            s["health"]["balance"]["available"] == "79.99"
        })
        .await;
    assert_eq!(events.sections["health"]["balance"]["currency"], "USD");
}
