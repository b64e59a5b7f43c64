//! The call ledger over HTTP, on SQLite and on a real PostgreSQL: a mixed run (answered,
//! answered on the retry, voicemail, abandoned, refused; duplicated and reordered callbacks)
//! leaves exactly one row per call with its outcome, who answered, wait and talk time, and its
//! events; `GET /admin/calls` and `switchboard calls` read it; two replicas sharing Redis and
//! PostgreSQL write each call once; a restart keeps the SQLite file.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use switchboard::config::Settings;
use switchboard::time::ManualClock;

use crate::admin::admin;
use crate::helpers::{scratch_dir, Spawn, TestApp, T0};
use crate::replicas::{replica, slack_ok, Redis};

const CALLER: &str = "+12025550142";
const ADA: &str = "sip:ada@switchboard-demo.sip.example.com";
const GRACE: &str = "sip:grace@switchboard-demo.sip.example.com";

/// A PostgreSQL server of this test's own, on a free port, in a scratch directory; stopped
/// when dropped. Run as the `postgres` user when the tests run as root (initdb refuses root).
pub(crate) struct Postgres {
    child: Child,
    port: u16,
    dir: PathBuf,
}

fn pg_bin(name: &str) -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (tests/run.sh installs it)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin").join(name)))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found.pop().expect("a PostgreSQL bin directory")
}

fn as_postgres(program: PathBuf) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    match root {
        true => {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        }
        false => Command::new(program),
    }
}

impl Postgres {
    pub(crate) fn start() -> Postgres {
        let port = crate::helpers::free_port();
        let dir = scratch_dir("pg");
        let _ = Command::new("chown")
            .args(["-R", "postgres"])
            .arg(&dir)
            .status();
        let data = dir.join("data");
        let init = as_postgres(pg_bin("initdb"))
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("initdb runs");
        assert!(init.success(), "initdb failed");
        let child = as_postgres(pg_bin("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(&dir)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("postgres starts");
        Postgres { child, port, dir }
    }

    /// A new empty database `name`; its URL.
    pub(crate) async fn database(&self, name: &str) -> String {
        sqlx::any::install_default_drivers();
        let admin = format!("postgres://postgres@127.0.0.1:{}/postgres", self.port);
        let mut last = None;
        for _ in 0..100 {
            match sqlx::AnyPool::connect(&admin).await {
                Ok(pool) => {
                    sqlx::query(&format!("CREATE DATABASE {name}"))
                        .execute(&pool)
                        .await
                        .expect("database created");
                    pool.close().await;
                    return format!("postgres://postgres@127.0.0.1:{}/{name}", self.port);
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("PostgreSQL never answered: {last:?}");
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn with_ledger(url: Option<String>) -> impl FnOnce(&mut Settings) {
    move |s| {
        crate::admin::with_token(s);
        s.limits.max_active_calls = 4;
        s.dial.wrap_up_secs = 0;
        s.ledger.url = url.map(Into::into);
    }
}

/// The calls the ledger lists, once `n` of them have an outcome (the writes are queued).
async fn settled(app: &TestApp, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        let (status, body) =
            admin(app, "GET", "/admin/calls?from=2026-01-01T00:00:00Z", None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let calls = body["calls"].as_array().cloned().unwrap_or_default();
        if calls.iter().filter(|c| !c["outcome"].is_null()).count() >= n {
            return calls;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the ledger never had {n} settled calls");
}

fn row<'a>(calls: &'a [Value], sid: &str) -> &'a Value {
    let rows: Vec<&Value> = calls.iter().filter(|c| c["call_sid"] == sid).collect();
    assert_eq!(rows.len(), 1, "one row for {sid}: {calls:#?}");
    rows[0]
}

/// Plays the mixed run on `app`, moving `clock`.
async fn mixed_run(app: &TestApp, clock: &ManualClock) {
    // Answered by Ada after 4 s, 60 s of talk; the leg callback and the final status twice.
    app.inbound("CA-answered", CALLER).await;
    clock.advance_secs(4);
    app.leg("CA-answered", "LEG-ada", "in-progress", ADA, "2")
        .await;
    app.leg("CA-answered", "LEG-ada", "in-progress", ADA, "2")
        .await;
    clock.advance_secs(60);
    app.dial_action("CA-answered", 1, "completed", Some(("LEG-ada", "60")))
        .await;
    app.call_status("CA-answered", "completed").await;
    app.call_status("CA-answered", "completed").await;

    // Nobody in round 1; Grace answers round 2 (after 25 s), talks 30 s.
    app.inbound("CA-retry", CALLER).await;
    clock.advance_secs(20);
    app.dial_action("CA-retry", 1, "no-answer", None).await;
    clock.advance_secs(5);
    app.leg("CA-retry", "LEG-grace", "in-progress", GRACE, "2")
        .await;
    clock.advance_secs(30);
    app.dial_action("CA-retry", 2, "completed", Some(("LEG-grace", "30")))
        .await;
    app.call_status("CA-retry", "completed").await;

    // Voicemail, the recording's callback before the call's final status (reordered).
    app.inbound("CA-voicemail", CALLER).await;
    app.dial_action("CA-voicemail", 1, "no-answer", None).await;
    app.dial_action("CA-voicemail", 2, "no-answer", None).await;
    app.record_action("CA-voicemail").await;
    app.recording(
        "CA-voicemail",
        "voicemail",
        "https://rec.example/vm.mp3",
        "14",
    )
    .await;
    app.call_status("CA-voicemail", "completed").await;

    // The caller hangs up after 7 s of ringing.
    app.inbound("CA-abandoned", CALLER).await;
    clock.advance_secs(7);
    app.call_status("CA-abandoned", "completed").await;

    // Four calls held, the fifth refused.
    for i in 0..4 {
        app.inbound(&format!("CA-held-{i}"), CALLER).await;
    }
    app.inbound("CA-refused", CALLER).await;
    for i in 0..4 {
        app.call_status(&format!("CA-held-{i}"), "completed").await;
    }
}

async fn a_mixed_run_leaves_one_row_per_call(url: Option<String>) {
    let clock = Arc::new(ManualClock::at(T0));
    let app = Spawn::default()
        .settings(with_ledger(url))
        .clock(clock.clone())
        .start()
        .await;
    mixed_run(&app, &clock).await;
    let calls = settled(&app, 9).await;
    assert_eq!(calls.len(), 9, "{calls:#?}");

    let answered = row(&calls, "CA-answered");
    assert_eq!(answered["outcome"], "answered");
    assert_eq!(answered["answered_by"], "Ada Lovelace");
    assert_eq!(
        (answered["wait_secs"].clone(), answered["talk_secs"].clone()),
        (4.into(), 60.into())
    );
    assert_eq!(answered["started_at"], "2026-11-21T12:00:00Z");
    assert_eq!(answered["line"], "main");
    assert_eq!(answered["caller"], CALLER);

    let retry = row(&calls, "CA-retry");
    assert_eq!(retry["outcome"], "answered");
    assert_eq!(retry["answered_by"], "Grace Hopper");
    assert_eq!(
        (retry["wait_secs"].clone(), retry["talk_secs"].clone()),
        (25.into(), 30.into())
    );

    let vm = row(&calls, "CA-voicemail");
    assert_eq!(vm["outcome"], "voicemail");
    assert_eq!(vm["detail"], "nobody answered");
    assert!(vm["answered_by"].is_null());

    let abandoned = row(&calls, "CA-abandoned");
    assert_eq!(
        (abandoned["outcome"].clone(), abandoned["wait_secs"].clone()),
        ("abandoned".into(), 7.into())
    );
    assert_eq!(row(&calls, "CA-refused")["outcome"], "refused");

    // One call with its events, in order, each once.
    let (status, one) = admin(&app, "GET", "/admin/calls/CA-answered", None).await;
    assert_eq!(status, StatusCode::OK, "{one}");
    let kinds: Vec<&str> = one["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(kinds, ["ringing", "answered", "ended"]);
    let (_, vm) = admin(&app, "GET", "/admin/calls/CA-voicemail", None).await;
    let kinds: Vec<&str> = vm["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or_default())
        .collect();
    assert!(
        kinds.contains(&"voicemail_left") && kinds.contains(&"sent_to_voicemail"),
        "{kinds:?}"
    );

    // The day's report: short abandons (under 10 s: the one that waited 7 s and the four held
    // calls) apart; 2 answered of 3 counted, both within 60 s.
    let (status, report) = admin(&app, "GET", "/admin/report?day=2026-11-21", None).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let main = &report["lines"][0];
    assert_eq!(main["line"], "main");
    assert_eq!(main["from"], "2026-11-21T00:00:00Z");
    let counts: Vec<i64> = [
        "offered",
        "answered",
        "abandoned",
        "short_abandoned",
        "voicemail",
        "missed",
        "refused",
    ]
    .iter()
    .map(|k| main[*k].as_i64().unwrap_or(-1))
    .collect();
    assert_eq!(counts, [8, 2, 0, 5, 1, 0, 1], "{main}");
    assert_eq!(main["answer_rate"], 0.6667);
    assert_eq!(main["service_level"], 0.6667);
    assert_eq!(main["asa_secs"], 14.5);
    assert_eq!(main["avg_talk_secs"], 45.0);
    // Every agent was rung by the Dials of every call but the refused one (CA-retry and
    // CA-voicemail twice each): 10; the three Dials that rang out are each one's misses; a Dial
    // someone else took, or the caller hung up on, is no miss.
    let agents: Vec<(String, i64, i64, i64, i64)> = report["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .map(|a| {
            let n = |k: &str| a[k].as_i64().unwrap_or(-1);
            let name = a["agent"].as_str().unwrap_or_default().to_owned();
            (name, n("rung"), n("answered"), n("missed"), n("talk_secs"))
        })
        .collect();
    assert_eq!(
        agents,
        [
            ("Ada Lovelace".to_owned(), 10, 1, 3, 60),
            ("Grace Hopper".to_owned(), 10, 1, 3, 30),
            ("Alan Turing".to_owned(), 10, 0, 3, 0),
        ]
    );
    let (status, _) = admin(&app, "GET", "/admin/report?day=2026-11-20", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = admin(&app, "GET", "/admin/report?day=tomorrow", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = admin(&app, "GET", "/admin/report?day=2026-11-21&line=nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Filters, and clear answers to bad ones.
    let (_, only) = admin(
        &app,
        "GET",
        "/admin/calls?from=2026-01-01T00:00:00Z&outcome=answered",
        None,
    )
    .await;
    assert_eq!(only["calls"].as_array().map(Vec::len), Some(2));
    let (status, body) = admin(&app, "GET", "/admin/calls?from=yesterday", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = admin(&app, "GET", "/admin/calls/CA-nobody", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let refused = app
        .client
        .get(format!("{}/admin/calls", app.base))
        .send()
        .await
        .expect("sent");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_mixed_run_on_sqlite_leaves_one_row_per_call() {
    a_mixed_run_leaves_one_row_per_call(None).await;
}

#[tokio::test]
async fn a_mixed_run_on_postgresql_leaves_one_row_per_call() {
    let pg = Postgres::start();
    let url = pg.database("mixed").await;
    a_mixed_run_leaves_one_row_per_call(Some(url)).await;
}

#[tokio::test]
async fn two_replicas_on_redis_and_postgresql_write_each_call_once() {
    let pg = Postgres::start();
    let url = pg.database("replicas").await;
    let redis = Redis::start();
    let slack = slack_ok().await;
    let clock = Arc::new(ManualClock::at(T0));
    let a = replica(
        &redis,
        &slack,
        clock.clone(),
        with_ledger(Some(url.clone())),
    )
    .await;
    let b = replica(&redis, &slack, clock.clone(), with_ledger(Some(url))).await;
    let (a, b) = (&a.app, &b.app);
    // Every callback delivered to both replicas: only the winning transition's facts are
    // written, so each fact is written once between them.
    for i in 0..5 {
        let sid = format!("CA-both-{i}");
        a.inbound(&sid, CALLER).await;
        b.inbound(&sid, CALLER).await;
        clock.advance_secs(3);
        for app in [a, b] {
            app.leg(&sid, &format!("LEG-{i}"), "in-progress", ADA, "2")
                .await;
        }
        clock.advance_secs(10);
        for app in [b, a] {
            app.dial_action(&sid, 1, "completed", Some((&format!("LEG-{i}"), "10")))
                .await;
            app.call_status(&sid, "completed").await;
        }
    }
    let calls = settled(b, 5).await;
    assert_eq!(calls.len(), 5);
    for c in &calls {
        assert_eq!(
            (c["outcome"].clone(), c["talk_secs"].clone()),
            ("answered".into(), 10.into())
        );
    }
    let sample = "switchboard_ledger_writes_total{state=\"sent\"}";
    let sent =
        || async { a.metric(sample).await.unwrap_or(0.0) + b.metric(sample).await.unwrap_or(0.0) };
    // The rows above may be one replica's; the other's last writes can still be in its queue
    // (it lingers up to 50 ms for company): wait for them, then a little more for any extra.
    for _ in 0..100 {
        if sent().await >= 25.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // ringing, answered, ended, and the legs rung and taken: five writes per call, once in all.
    assert_eq!(sent().await, 25.0);
}

#[tokio::test]
async fn the_sqlite_ledger_survives_a_restart_and_the_cli_reads_it() {
    let data = scratch_dir("restart");
    let clock = Arc::new(ManualClock::at(T0));
    let start = || {
        let data = data.clone();
        Spawn::default()
            .settings(move |s| {
                with_ledger(None)(s);
                s.paths.data = data;
            })
            .clock(clock.clone())
            .start()
    };
    let app = start().await;
    app.inbound("CA-before", CALLER).await;
    clock.advance_secs(9);
    app.call_status("CA-before", "completed").await;
    settled(&app, 1).await;
    drop(app);
    let app = start().await;
    let calls = settled(&app, 1).await;
    assert_eq!(row(&calls, "CA-before")["outcome"], "abandoned");

    // The CLI reads the same file, masked under privacy mode.
    let mut settings = crate::helpers::test_settings();
    settings.paths.data = data.clone();
    settings.privacy.mask_caller_numbers = true;
    let args = |csv| switchboard::ledger::cli::CallsArgs {
        since: "2026-11-21T00:00:00Z".into(),
        until: None,
        line: None,
        outcome: None,
        limit: 10,
        csv,
    };
    let table = switchboard::ledger::cli::run(&settings, args(false), T0 + 60_000)
        .await
        .expect("table");
    assert!(table.starts_with("STARTED"), "{table}");
    assert!(
        table.contains("2026-11-21T12:00:00Z  main  +1202•••0142  abandoned"),
        "{table}"
    );
    let csv = switchboard::ledger::cli::run(&settings, args(true), T0 + 60_000)
        .await
        .expect("csv");
    let report = switchboard::ledger::cli::report(
        &settings,
        switchboard::ledger::cli::ReportArgs {
            day: Some("2026-11-21".into()),
            from: None,
            to: None,
            line: None,
            json: false,
        },
        T0 + 60_000,
    )
    .await
    .expect("report");
    assert!(report.starts_with("LINE"), "{report}");
    assert!(
        report.contains("main  1        0         0 (+1 short)"),
        "{report}"
    );
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("call_sid,line,caller,called,started_at,answered_at,answered_by,ended_at,outcome,wait_secs,talk_secs,detail"));
    assert_eq!(
        lines.next(),
        Some("CA-before,main,+1202•••0142,+18005550100,2026-11-21T12:00:00Z,,,2026-11-21T12:00:09Z,abandoned,9,,")
    );
}

/// Call `sid` goes to voicemail and leaves the recording at `url` (delivered twice).
pub(crate) async fn leave_voicemail(app: &TestApp, sid: &str, url: &str) {
    app.inbound(sid, CALLER).await;
    app.dial_action(sid, 1, "no-answer", None).await;
    app.dial_action(sid, 2, "no-answer", None).await;
    app.record_action(sid).await;
    app.call_status(sid, "completed").await;
    app.recording(sid, "voicemail", url, "14").await;
    app.recording(sid, "voicemail", url, "14").await;
}

/// The Slack message whose text contains `needle`, once it came.
pub(crate) async fn slack_message(slack: &wiremock::MockServer, needle: &str) -> String {
    for _ in 0..200 {
        let received = slack.received_requests().await.unwrap_or_default();
        for r in received {
            let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            if let Some(text) = body["text"].as_str().filter(|t| t.contains(needle)) {
                return text.to_owned();
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no Slack message with {needle:?}");
}

#[tokio::test]
async fn a_voicemail_is_archived_served_to_a_signed_link_and_deleted_after_retention() {
    use sha2::{Digest, Sha256};
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    // The provider's copy: the first download fails (503), the retry gets it.
    let audio: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let provider = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/rec/vm.mp3"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&provider)
        .await;
    Mock::given(method("GET"))
        .and(path("/rec/vm.mp3"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(audio.clone(), "audio/mpeg"))
        .with_priority(2)
        .mount(&provider)
        .await;
    Mock::given(method("GET"))
        .and(path("/rec/gone.mp3"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&provider)
        .await;
    let slack = slack_ok().await;
    let clock = Arc::new(ManualClock::at(T0));
    let data = scratch_dir("archive");
    let app = Spawn::default()
        .settings(|s| {
            with_ledger(None)(s);
            crate::helpers::use_slack(s, &slack);
            s.paths.data = data.clone();
            s.recordings.archive = true;
            s.recordings.retry_base_ms = 10;
            s.recordings.max_attempts = 3;
            s.recordings.retention_days.voicemail = 30;
            s.recordings.retention_check_secs = 1;
        })
        .clock(clock.clone())
        .start()
        .await;

    let leave = |sid: &'static str, file: &'static str| {
        let app = &app;
        let url = format!("{}/rec/{file}", provider.uri());
        // The provider delivers the recording twice: still one download.
        async move { leave_voicemail(app, sid, &url).await }
    };
    leave("CA-vm", "vm.mp3").await;

    // Slack links to our copy, signed, for a week.
    let text = slack_message(&slack, "Voicemail saved").await;
    // Slack's mrkdwn escapes `&` as `&amp;` (and shows it as `&`).
    let start = text
        .find("https://switchboard.test/recordings/")
        .expect("our link");
    let end = start + text[start..].find('|').expect("link end");
    let link = text[start..end].replace("&amp;", "&");
    assert!(
        text.contains("this link works until <!date^1795867200^"),
        "{text}"
    );
    assert!(
        link.starts_with("https://switchboard.test/recordings/CA-vm-voicemail?expires="),
        "{link}"
    );
    let local = link.replace("https://switchboard.test", &app.base);
    let got = app.client.get(&local).send().await.expect("sent");
    assert_eq!(got.status(), StatusCode::OK);
    assert_eq!(got.headers()["content-type"], "audio/mpeg");
    assert_eq!(got.headers()["cache-control"], "private, no-store");
    let body = got.bytes().await.expect("body");
    assert_eq!(body.as_ref(), audio.as_slice());
    // Ranges, for players that seek.
    let part = app
        .client
        .get(&local)
        .header("range", "bytes=10-19")
        .send()
        .await
        .expect("sent");
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.bytes().await.expect("body").as_ref(), &audio[10..20]);

    // The ledger has it, with its SHA-256 (once the queued call row is written too); downloaded
    // once, after one retry.
    let mut call = Value::Null;
    for _ in 0..100 {
        (_, call) = admin(&app, "GET", "/admin/calls/CA-vm", None).await;
        if call["events"].is_array() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let kinds: Vec<&str> = call["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or_default())
        .collect();
    assert!(kinds.contains(&"recording.archived"), "{kinds:?}");
    let archived = call["events"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["kind"] == "recording.archived"))
        .expect("archived event");
    let sha = Sha256::digest(&audio);
    let sha: String = sha.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(archived["data"]["sha256"], sha.as_str());
    assert_eq!(archived["data"]["bytes"], 5000);
    let downloads = provider
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == "/rec/vm.mp3")
        .count();
    assert_eq!(downloads, 2, "one failure, one success");

    // Without a valid link or the token: refused.
    let plain = format!("{}/recordings/CA-vm-voicemail", app.base);
    let refused = app.client.get(&plain).send().await.expect("sent");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let forged = local.replace("&sig=", "&sig=00");
    assert_eq!(
        app.client.get(&forged).send().await.expect("sent").status(),
        StatusCode::UNAUTHORIZED
    );
    let with_token = app
        .client
        .get(&plain)
        .bearer_auth(crate::admin::TOKEN)
        .send()
        .await
        .expect("sent");
    assert_eq!(with_token.status(), StatusCode::OK);

    // An answered call's conversation recording is archived too.
    app.inbound("CA-talk", CALLER).await;
    app.leg("CA-talk", "LEG-ada", "in-progress", ADA, "2").await;
    app.dial_action("CA-talk", 1, "completed", Some(("LEG-ada", "30")))
        .await;
    app.call_status("CA-talk", "completed").await;
    let url = format!("{}/rec/vm.mp3", provider.uri());
    app.recording("CA-talk", "conversation", &url, "30").await;
    let text = slack_message(&slack, "Conversation saved").await;
    assert!(
        text.contains("/recordings/CA-talk-conversation?expires="),
        "{text}"
    );

    // A recording that cannot be downloaded is reported and counted.
    leave("CA-gone", "gone.mp3").await;
    let text = slack_message(&slack, "Voicemail not archived").await;
    assert!(
        text.contains("after 3 attempts") && text.contains("/rec/gone.mp3"),
        "{text}"
    );
    let failed = app
        .metric("switchboard_recordings_total{fate=\"failed\"}")
        .await;
    assert_eq!(failed, Some(1.0));

    // The CLI lists them and copies them out, checked against their SHA-256; the one that was
    // never archived is fetched from the provider's link (here: still 404).
    let mut settings = crate::helpers::test_settings();
    settings.paths.data = data.clone();
    let out = scratch_dir("copied");
    let window = || switchboard::ledger::cli::Window {
        since: "2026-11-21T00:00:00Z".into(),
        until: None,
    };
    let cli = |action| switchboard::ledger::cli::RecordingsArgs { action };
    let list = switchboard::ledger::cli::recordings(
        &settings,
        cli(switchboard::ledger::cli::RecordingsAction::List(window())),
        T0 + 60_000,
    )
    .await
    .expect("list");
    assert!(
        list.contains(&format!(
            "CA-vm    voicemail     archived  5000   {}",
            &sha[..16]
        )),
        "{list}"
    );
    assert!(list.contains("CA-gone  voicemail     failed"), "{list}");
    let copied = switchboard::ledger::cli::recordings(
        &settings,
        cli(switchboard::ledger::cli::RecordingsAction::Download {
            window: window(),
            to: out.clone(),
        }),
        T0 + 60_000,
    )
    .await
    .expect("download");
    assert!(
        copied.contains("CA-vm    voicemail     CA-vm-voicemail.mp3       copied, SHA-256 checked"),
        "{copied}"
    );
    assert!(
        copied.contains("not archived; the provider's link answered 404"),
        "{copied}"
    );
    assert_eq!(
        std::fs::read(out.join("CA-vm-voicemail.mp3")).expect("copied"),
        audio
    );

    // Thirty days later, retention deletes it: the link answers 410, the ledger says so.
    clock.advance_secs(30 * 86_400 + 1);
    let mut status = StatusCode::OK;
    for _ in 0..100 {
        status = app
            .client
            .get(&plain)
            .bearer_auth(crate::admin::TOKEN)
            .send()
            .await
            .expect("sent")
            .status();
        if status == StatusCode::GONE {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, StatusCode::GONE);
    let (_, call) = admin(&app, "GET", "/admin/calls/CA-vm", None).await;
    assert!(call["events"]
        .as_array()
        .expect("events")
        .iter()
        .any(|e| e["kind"] == "recording.deleted"));
    assert_eq!(
        app.metric("switchboard_recordings_total{fate=\"deleted\"}")
            .await,
        Some(1.0)
    );
}

#[tokio::test]
async fn under_privacy_mode_the_ledger_can_keep_only_a_keyed_hash_of_the_caller() {
    let app = Spawn::default()
        .settings(|s| {
            with_ledger(None)(s);
            s.privacy.mask_caller_numbers = true;
            s.privacy.ledger_numbers = switchboard::ledger::Numbers::Hashed;
            s.privacy.hash_key = "a-test-hash-key-0123456789".to_owned().into();
        })
        .start()
        .await;
    for sid in ["CA-h1", "CA-h2"] {
        app.inbound(sid, CALLER).await;
        app.call_status(sid, "completed").await;
    }
    app.inbound("CA-h3", "+447700900123").await;
    app.call_status("CA-h3", "completed").await;
    let calls = settled(&app, 3).await;
    let caller = |sid| {
        row(&calls, sid)["caller"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        caller("CA-h1").starts_with("hmac-sha256:"),
        "{}",
        caller("CA-h1")
    );
    assert_eq!(caller("CA-h1").len(), "hmac-sha256:".len() + 32);
    assert_eq!(
        caller("CA-h1"),
        caller("CA-h2"),
        "the same caller, the same hash"
    );
    assert_ne!(caller("CA-h1"), caller("CA-h3"));
    assert!(!caller("CA-h1").contains("2025550142"));

    // Without a key, hashed is refused at start.
    let mut settings = crate::helpers::test_settings();
    settings.privacy.mask_caller_numbers = true;
    settings.privacy.ledger_numbers = switchboard::ledger::Numbers::Hashed;
    let refused = settings.validate().expect_err("no key");
    assert!(
        refused.to_string().contains("privacy.hash_key"),
        "{refused}"
    );
}
