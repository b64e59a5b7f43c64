//! Several replicas on one Redis: calls whose callbacks alternate between servers, a replica
//! stopping mid-call, and the job lease moving to the survivor. Each test starts its own
//! `redis-server` (installed by the README's test command) on a free port.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use switchboard::config::Backend;
use switchboard::lease::Lease;
use switchboard::startup::{Application, Overrides, ShutdownHandle};
use switchboard::time::ManualClock;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{
    assert_golden, test_settings, use_slack, wait_for_messages, Collector, TestApp, T0,
};

const CALLER: &str = "+12025550142";
const ADA: &str = "sip:ada@switchboard-demo.sip.example.com";

/// A throwaway redis-server on a free loopback port, stopped on drop.
pub struct Redis {
    child: Child,
    pub url: String,
}

impl Redis {
    pub fn start() -> Redis {
        let port = crate::helpers::free_port();
        Redis::start_on(port)
    }

    /// A redis-server on `port` (again, after one there was stopped).
    pub fn start_on(port: u16) -> Redis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is needed: the README's test command installs it");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis {
            child,
            url: format!("redis://127.0.0.1:{port}/0"),
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) struct Replica {
    pub(crate) app: TestApp,
    stop: ShutdownHandle,
    stopped: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// A server on `redis`, Slack at `slack`, sharing `clock` with its siblings.
pub(crate) async fn replica(
    redis: &Redis,
    slack: &MockServer,
    clock: Arc<ManualClock>,
    tweak: impl FnOnce(&mut switchboard::config::Settings),
) -> Replica {
    if std::env::var_os("TEST_LOG").is_some() {
        std::mem::forget(switchboard::telemetry::init(&test_settings().log));
    }
    let mut settings = test_settings();
    use_slack(&mut settings, slack);
    settings.state.backend = Backend::Redis;
    settings.state.redis_url = redis.url.clone().into();
    tweak(&mut settings);
    settings.validate().expect("valid");
    let notices = Arc::new(Collector::default());
    let overrides = Overrides {
        sinks: vec![notices.clone()],
        clock: Some(clock),
    };
    let app = Application::build_with(settings, overrides)
        .await
        .expect("server on Redis");
    let base = format!("http://127.0.0.1:{}", app.port());
    let stop = app.shutdown_handle();
    let stopped = tokio::spawn(app.run_until_stopped());
    Replica {
        app: TestApp {
            base,
            client: reqwest::Client::new(),
            notices,
        },
        stop,
        stopped,
    }
}

pub(crate) async fn slack_ok() -> MockServer {
    let slack = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&slack)
        .await;
    slack
}

/// Each message's header, grouped by the CallSid in its context line.
fn by_call(messages: &[Value]) -> HashMap<String, Vec<String>> {
    let mut calls: HashMap<String, Vec<String>> = HashMap::new();
    for m in messages {
        let context = m["blocks"][2]["elements"][0]["text"].as_str().unwrap_or("");
        let sid = context.split('`').nth(1).unwrap_or("?").to_owned();
        let header = m["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        calls.entry(sid).or_default().push(header);
    }
    calls
}

#[tokio::test]
async fn callbacks_alternating_between_two_replicas_end_every_call_with_each_message_once() {
    let redis = Redis::start();
    let slack = slack_ok().await;
    let clock = Arc::new(ManualClock::at(T0));
    let a = replica(&redis, &slack, clock.clone(), |_| {}).await;
    let b = replica(&redis, &slack, clock.clone(), |_| {}).await;
    let (a, b) = (&a.app, &b.app);
    for i in 0..4 {
        let sid = format!("CA-answered-{i}");
        let leg = format!("LEG-{i}");
        // Every step goes to the other replica than the step before it...
        a.inbound(&sid, CALLER).await;
        b.leg(&sid, &leg, "ringing", ADA, "1").await;
        // ...and some arrive at both at the same moment.
        let (x, y) = tokio::join!(
            a.leg(&sid, &leg, "in-progress", ADA, "2"),
            b.leg(&sid, &leg, "in-progress", ADA, "2"),
        );
        assert_eq!((x, y), (StatusCode::OK, StatusCode::OK));
        clock.advance_secs(30);
        let after = b
            .dial_action(&sid, 1, "completed", Some((&leg, "30")))
            .await;
        assert_golden("after_call", &after);
        let (x, y) = tokio::join!(
            a.call_status(&sid, "completed"),
            b.call_status(&sid, "completed")
        );
        assert_eq!((x, y), (StatusCode::OK, StatusCode::OK));
    }
    for i in 0..3 {
        let sid = format!("CA-voicemail-{i}");
        b.inbound(&sid, CALLER).await;
        a.dial_action(&sid, 1, "no-answer", None).await;
        let (x, y) = tokio::join!(
            b.dial_action(&sid, 2, "no-answer", None),
            a.dial_action(&sid, 2, "no-answer", None),
        );
        assert_golden("voicemail", &x);
        assert_golden("voicemail", &y);
        a.record_action(&sid).await;
        b.call_status(&sid, "completed").await;
        let (x, y) = tokio::join!(
            a.recording(&sid, "voicemail", "https://rec.example/vm.mp3", "9"),
            b.recording(&sid, "voicemail", "https://rec.example/vm.mp3", "9"),
        );
        assert_eq!((x, y), (StatusCode::OK, StatusCode::OK));
    }
    a.inbound("CA-gone", CALLER).await;
    b.call_status("CA-gone", "completed").await;

    let messages = wait_for_messages(&slack, 4 * 3 + 3 * 3 + 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        slack.received_requests().await.map(|r| r.len()),
        Some(23),
        "no message twice"
    );
    let calls = by_call(&messages);
    for i in 0..4 {
        assert_eq!(
            calls[&format!("CA-answered-{i}")],
            [
                ":telephone_receiving: Incoming call",
                ":white_check_mark: Call answered",
                ":telephone_receiver: Call finished"
            ]
        );
    }
    for i in 0..3 {
        assert_eq!(
            calls[&format!("CA-voicemail-{i}")],
            [
                ":telephone_receiving: Incoming call",
                ":warning: Missed call",
                ":incoming_envelope: New voicemail"
            ]
        );
    }
    assert_eq!(calls["CA-gone"].len(), 2);
    // Both replicas see the same (shared) count of live calls: none.
    assert_eq!((a.live().await, b.live().await), (0, 0));
}

#[tokio::test]
async fn a_call_survives_its_replica_stopping() {
    let redis = Redis::start();
    let slack = slack_ok().await;
    let clock = Arc::new(ManualClock::at(T0));
    let a = replica(&redis, &slack, clock.clone(), |_| {}).await;
    let b = replica(&redis, &slack, clock.clone(), |_| {}).await;
    a.app.inbound("CA-moved", CALLER).await;
    a.app.dial_action("CA-moved", 1, "no-answer", None).await;
    a.stop.trigger();
    a.stopped.await.expect("task").expect("clean stop");
    // The provider's next request reaches the other replica, which knows the call.
    assert_golden(
        "voicemail",
        &b.app.dial_action("CA-moved", 2, "no-answer", None).await,
    );
    assert_golden("goodbye", &b.app.record_action("CA-moved").await);
    b.app.call_status("CA-moved", "completed").await;
    b.app
        .recording("CA-moved", "voicemail", "https://rec.example/m.mp3", "5")
        .await;
    let messages = wait_for_messages(&slack, 3).await;
    assert_eq!(
        by_call(&messages)["CA-moved"],
        [
            ":telephone_receiving: Incoming call",
            ":warning: Missed call",
            ":incoming_envelope: New voicemail"
        ]
    );
}

#[tokio::test]
async fn readiness_follows_redis_and_calls_still_get_a_document() {
    let redis = Redis::start();
    let slack = slack_ok().await;
    let a = replica(&redis, &slack, Arc::new(ManualClock::at(T0)), |_| {}).await;
    let readyz = || a.app.client.get(format!("{}/readyz", a.app.base)).send();
    assert_eq!(readyz().await.expect("readyz").status(), StatusCode::OK);
    drop(redis);
    let res = readyz().await.expect("readyz");
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.text().await.expect("text").contains("Redis"));
    // A caller still hears something: the apology, then voicemail.
    assert_golden("apology", &a.app.inbound("CA-no-redis", CALLER).await);
}

#[tokio::test]
async fn a_callback_that_arrives_while_redis_is_away_is_applied_when_it_is_back() {
    let redis = Redis::start();
    let port: u16 = redis
        .url
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches("/0").parse().ok())
        .expect("port");
    let slack = slack_ok().await;
    let a = replica(&redis, &slack, Arc::new(ManualClock::at(T0)), |_| {}).await;
    a.app.inbound("CA-away", CALLER).await;
    drop(redis);
    // Answered 200 (Telnyx would send anything else to the failover URL), and kept.
    assert_eq!(
        a.app.call_status("CA-away", "completed").await,
        StatusCode::OK
    );
    let queued = "switchboard_callbacks_deferred_total{fate=\"queued\"}";
    assert_eq!(a.app.metric(queued).await, Some(1.0));
    // Redis is back (empty: the call is gone with it, so the callback finds an unknown call,
    // which is what the provider's own retry would find too): the callback is applied, once.
    let _back = Redis::start_on(port);
    let applied = "switchboard_callbacks_deferred_total{fate=\"applied\"}";
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.app.metric(applied).await != Some(1.0) {
        assert!(
            Instant::now() < deadline,
            "the kept callback was never applied"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let unknown = "switchboard_events_ignored_total{reason=\"unknown_call\"}";
    assert_eq!(a.app.metric(unknown).await, Some(1.0));
    // And the replica is ready again.
    let readyz = a.app.client.get(format!("{}/readyz", a.app.base)).send();
    assert_eq!(readyz.await.expect("readyz").status(), StatusCode::OK);
}

#[tokio::test]
async fn the_job_lease_has_one_holder_and_moves_when_it_dies() {
    let redis = Redis::start();
    let conn = switchboard::call::redis_store::connect(&redis.url)
        .await
        .expect("redis");
    let ttl = Duration::from_millis(800);
    let first = Lease::redis(conn.clone(), "test:lease".into(), ttl);
    let second = Lease::redis(conn.clone(), "test:lease".into(), ttl);
    assert!(first.renew().await);
    assert!(!second.renew().await, "one holder at a time");
    assert!(first.renew().await, "the holder renews");
    // The holder dies (stops renewing): after the TTL the other takes over.
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    assert!(second.renew().await);
    assert!(!first.renew().await);
}

#[tokio::test]
async fn the_job_lease_moves_to_the_surviving_replica() {
    let redis = Redis::start();
    let slack = slack_ok().await;
    let clock = Arc::new(ManualClock::at(T0));
    let short_lease = |s: &mut switchboard::config::Settings| s.state.lease_ttl_secs = 3;
    let a = replica(&redis, &slack, clock.clone(), short_lease).await;
    let b = replica(&redis, &slack, clock.clone(), short_lease).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while (holds(&a.app).await, holds(&b.app).await) == (false, false) {
        assert!(Instant::now() < deadline, "nobody took the lease");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (a_holds, b_holds) = (holds(&a.app).await, holds(&b.app).await);
    assert!(a_holds != b_holds, "exactly one holder");
    let (leader, survivor) = if a_holds { (a, b) } else { (b, a) };
    leader.stop.trigger();
    leader.stopped.await.expect("task").expect("clean stop");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !holds(&survivor.app).await {
        assert!(
            Instant::now() < deadline,
            "the survivor never took the lease"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether `app` holds the job lease, as `/metrics` says.
async fn holds(app: &TestApp) -> bool {
    app.metric("switchboard_job_lease_held").await == Some(1.0)
}
