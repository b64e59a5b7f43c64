//! Agents' own calls, reported as Call Control v2 webhooks on `POST /telnyx/events`.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{json, Value};
use switchboard::config::Settings;
use switchboard::domain::{Agent, Endpoint};
use switchboard::time::ManualClock;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{
    assert_golden_json, ringing, spawn_with_clock, use_slack, wait_for_messages, TestApp, T0,
};

fn agents_with_connections(s: &mut Settings) {
    let agent = |name: &str, user: &str, conn: &str| {
        let sip = format!("sip:{user}@switchboard-demo.sip.example.com");
        let mut agent = Agent::new(name, Endpoint::sip(&sip).expect("sip")).expect("agent");
        agent.connection_id = Some(conn.into());
        agent
    };
    s.agents = vec![
        agent("Ada Lovelace", "ada", "1001"),
        agent("Grace Hopper", "grace", "1002"),
    ];
}

fn event(id: &str, kind: &str, occurred_at: &str, payload: Value) -> Value {
    json!({
        "data": {
            "record_type": "event",
            "event_type": kind,
            "id": id,
            "occurred_at": occurred_at,
            "payload": payload
        },
        "meta": {"attempt": 1, "delivered_to": "https://switchboard.test/telnyx/events"}
    })
}

fn payload(extra: Value) -> Value {
    let mut p = json!({
        "call_control_id": "v3:out-1",
        "call_leg_id": "leg-out-1",
        "call_session_id": "session-out-1",
        "connection_id": "1001",
        "from": "sip:ada@switchboard-demo.sip.example.com",
        "to": "+12025550177",
        "client_state": null,
        "start_time": "2026-11-21T12:00:00.000000Z"
    });
    if let (Some(p), Some(extra)) = (p.as_object_mut(), extra.as_object()) {
        p.extend(extra.clone());
    }
    p
}

async fn post_event(app: &TestApp, body: &Value) -> StatusCode {
    app.client
        .post(format!("{}/telnyx/events", app.base))
        .json(body)
        .send()
        .await
        .expect("sent")
        .status()
}

async fn ringing_agents(app: &TestApp, sid: &str) -> Vec<String> {
    ringing(&app.inbound(sid, "+12025550142").await)
}

/// A server whose two agents have connection ids, with Slack answering 200, on a clock at T0.
async fn spawn_with_agents() -> (TestApp, MockServer) {
    let (app, slack, _) = spawn_with_agents_at(Arc::new(ManualClock::at(T0))).await;
    (app, slack)
}

async fn spawn_with_agents_at(clock: Arc<ManualClock>) -> (TestApp, MockServer, Arc<ManualClock>) {
    let slack = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&slack)
        .await;
    let app = spawn_with_clock(
        |s| {
            use_slack(s, &slack);
            agents_with_connections(s);
        },
        clock.clone(),
    )
    .await;
    (app, slack, clock)
}

#[tokio::test]
async fn an_agents_outbound_call_is_reported_once_and_keeps_them_off_inbound_calls() {
    let (app, slack, clock) = spawn_with_agents_at(Arc::new(ManualClock::at(T0))).await;

    let initiated = event(
        "ev-1",
        "call.initiated",
        "2026-11-21T12:00:00.000000Z",
        payload(json!({"direction": "outgoing", "state": "bridging", "caller_id_name": "Ada"})),
    );
    assert_eq!(post_event(&app, &initiated).await, StatusCode::OK);
    assert_eq!(
        post_event(&app, &initiated).await,
        StatusCode::OK,
        "duplicate"
    );
    // While Ada is on her call, inbound calls ring only Grace.
    assert_eq!(
        ringing_agents(&app, "CA-in-1").await,
        ["sip:grace@switchboard-demo.sip.example.com"]
    );
    let answered = event(
        "ev-2",
        "call.answered",
        "2026-11-21T12:00:09.500000Z",
        payload(json!({"state": "answered"})),
    );
    assert_eq!(post_event(&app, &answered).await, StatusCode::OK);
    assert_eq!(
        post_event(&app, &answered).await,
        StatusCode::OK,
        "duplicate"
    );
    // No end_time: the hangup event's own time is used.
    let hangup = event(
        "ev-3",
        "call.hangup",
        "2026-11-21T12:03:19.500000Z",
        payload(
            json!({"hangup_cause": "normal_clearing", "hangup_source": "callee", "sip_hangup_cause": "200"}),
        ),
    );
    clock.advance_secs(200);
    assert_eq!(post_event(&app, &hangup).await, StatusCode::OK);
    assert_eq!(post_event(&app, &hangup).await, StatusCode::OK, "duplicate");
    // Ada wraps up for 15 s (the default), then is free again.
    clock.advance_secs(14);
    assert_eq!(ringing_agents(&app, "CA-in-2").await.len(), 1);
    clock.advance_secs(1);
    assert_eq!(ringing_agents(&app, "CA-in-3").await.len(), 2);

    let messages = wait_for_messages(&slack, 5).await;
    let outbound: Vec<Value> = messages
        .into_iter()
        .filter(|m| {
            m["blocks"][2]["elements"][0]["text"]
                .as_str()
                .is_some_and(|t| t.contains("v3:out-1"))
        })
        .collect();
    assert_eq!(outbound.len(), 3, "{outbound:#?}");
    assert_golden_json("outbound_call", &Value::Array(outbound));
}

#[tokio::test]
async fn unanswered_outbound_calls_say_why_they_ended() {
    let (app, slack) = spawn_with_agents().await;
    let p = |extra: Value| {
        let mut p = payload(extra);
        p["call_control_id"] = json!("v3:out-2");
        p["connection_id"] = json!(1002);
        p
    };
    post_event(
        &app,
        &event(
            "e1",
            "call.initiated",
            "2026-11-21T12:00:00Z",
            p(json!({"direction": "outgoing"})),
        ),
    )
    .await;
    post_event(
        &app,
        &event(
            "e2",
            "call.hangup",
            "2026-11-21T12:00:30Z",
            p(json!({"hangup_cause": "user_busy", "end_time": "2026-11-21T12:00:29Z"})),
        ),
    )
    .await;
    let messages = wait_for_messages(&slack, 2).await;
    assert_eq!(
        messages[1]["blocks"][1]["text"]["text"],
        "*Grace Hopper*'s call to *+12025550177* ended unanswered (user busy)."
    );
}

#[tokio::test]
async fn events_that_are_not_agents_outbound_calls_change_nothing() {
    let (app, slack) = spawn_with_agents().await;
    let cases = [
        // The legs Switchboard itself dials to agents arrive as incoming calls on their connection.
        event(
            "x1",
            "call.initiated",
            "2026-11-21T12:00:00Z",
            payload(json!({"direction": "incoming"})),
        ),
        // An outbound call from a connection that is not an agent's.
        event(
            "x2",
            "call.initiated",
            "2026-11-21T12:00:00Z",
            payload(
                json!({"direction": "outgoing", "connection_id": "9999", "call_control_id": "v3:other"}),
            ),
        ),
        // Answered and hangup for a call never seen starting.
        event(
            "x3",
            "call.answered",
            "2026-11-21T12:00:00Z",
            payload(json!({"call_control_id": "v3:unknown"})),
        ),
        event(
            "x4",
            "call.hangup",
            "2026-11-21T12:00:00Z",
            payload(json!({"call_control_id": "v3:unknown"})),
        ),
        // Event types Switchboard does not use.
        event(
            "x5",
            "call.dtmf.received",
            "2026-11-21T12:00:00Z",
            payload(json!({"digit": "1"})),
        ),
    ];
    for body in &cases {
        assert_eq!(post_event(&app, body).await, StatusCode::OK, "{body}");
    }
    assert_eq!(ringing_agents(&app, "CA-in").await.len(), 2);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let received = slack.received_requests().await.unwrap_or_default();
    assert_eq!(received.len(), 1, "only the inbound call's message");
}

#[tokio::test]
async fn malformed_events_get_a_clear_400() {
    let slack = MockServer::start().await;
    let app = spawn_with_clock(|s| use_slack(s, &slack), Arc::new(ManualClock::at(T0))).await;
    let post_raw = |body: &'static str| {
        app.client
            .post(format!("{}/telnyx/events", app.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for (body, message) in [
        ("{not json", "bad request: key must be a string"),
        ("{\"data\": {}}", "bad request: missing field `event_type`"),
        (
            "{\"data\": {\"event_type\": \"call.hangup\", \"payload\": {}}}",
            "bad request: data.payload: needs call_control_id or call_leg_id",
        ),
        (
            "{\"data\": {\"event_type\": \"call.initiated\", \"payload\": {\"call_control_id\": \"c\", \"direction\": \"outgoing\"}}}",
            "bad request: data.payload.connection_id: is missing",
        ),
    ] {
        let res = post_raw(body).await.expect("sent");
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{body}");
        let text = res.text().await.expect("text");
        assert!(text.starts_with(message), "{body}: {text}");
    }
}

#[tokio::test]
async fn calls_that_arrive_parked_are_flagged_once_per_connection() {
    let (app, slack) = spawn_with_agents().await;
    for (id, call) in [("ev-p1", "v3:parked-1"), ("ev-p2", "v3:parked-2")] {
        let parked = event(
            id,
            "call.initiated",
            "2026-11-21T12:00:00.000000Z",
            payload(json!({"direction": "outgoing", "state": "parked", "call_control_id": call})),
        );
        assert_eq!(post_event(&app, &parked).await, StatusCode::OK);
    }
    // Two calls started (each reported), one warning for Ada's connection.
    let messages = wait_for_messages(&slack, 3).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let messages = if messages.len() < 3 {
        wait_for_messages(&slack, 3).await
    } else {
        messages
    };
    let headers: Vec<&str> = messages
        .iter()
        .filter_map(|m| m["blocks"][0]["text"]["text"].as_str())
        .collect();
    let warnings = headers.iter().filter(|h| h.contains("parked")).count();
    assert_eq!(warnings, 1, "{headers:?}");
    let warning = messages
        .iter()
        .find(|m| {
            m["blocks"][0]["text"]["text"]
                .as_str()
                .is_some_and(|h| h.contains("parked"))
        })
        .expect("warning");
    let body = warning["blocks"][1]["text"]["text"].as_str().expect("body");
    assert!(
        body.contains("*Ada Lovelace*") && body.contains("Disable call parking"),
        "{body}"
    );
}

#[tokio::test]
async fn an_outbound_call_reported_to_one_replica_keeps_the_agent_off_the_others() {
    use crate::replicas::{replica, slack_ok, Redis};
    let redis = Redis::start();
    let slack = slack_ok().await;
    let clock = Arc::new(ManualClock::at(T0));
    let a = replica(&redis, &slack, clock.clone(), agents_with_connections).await;
    let b = replica(&redis, &slack, clock.clone(), agents_with_connections).await;
    let (a, b) = (&a.app, &b.app);
    let initiated = event(
        "ev-1",
        "call.initiated",
        "2026-11-21T12:00:00.000000Z",
        payload(json!({"direction": "outgoing", "state": "bridging"})),
    );
    assert_eq!(post_event(a, &initiated).await, StatusCode::OK);
    assert_eq!(
        ringing_agents(b, "CA-b-1").await,
        ["sip:grace@switchboard-demo.sip.example.com"],
        "B knows Ada is on her own call"
    );
    clock.advance_secs(60);
    let hangup = event(
        "ev-3",
        "call.hangup",
        "2026-11-21T12:01:00.000000Z",
        payload(json!({"hangup_cause": "normal_clearing"})),
    );
    assert_eq!(post_event(a, &hangup).await, StatusCode::OK);
    clock.advance_secs(14);
    assert_eq!(ringing_agents(b, "CA-b-2").await.len(), 1, "wrap-up");
    clock.advance_secs(1);
    assert_eq!(ringing_agents(b, "CA-b-3").await.len(), 2);
}
