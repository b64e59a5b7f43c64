//! Bad input never gets a panic or a 5xx. The provider is answered as it needs: a voice request
//! with a 200 and the apology document (Telnyx only plays a 200's document), a callback with a 200
//! (anything else sends it to the failover URL); each is logged and counted in `/metrics`. Call
//! Control events get a 400 naming the problem (Telnyx does not retry a 4xx). Extra fields are
//! fine.

use reqwest::StatusCode;

use crate::helpers::{assert_golden, spawn_app, spawn_with};

const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";

#[tokio::test]
async fn a_table_of_bad_requests() {
    let app = spawn_app().await;
    let long = "x".repeat(300);
    let long_sid = format!("CallSid={long}&CallStatus=completed");
    /// (method, path, content type, body, status, what the answer says)
    type Row<'a> = (&'a str, &'a str, &'a str, Vec<u8>, u16, &'a str);
    let rows: Vec<Row> = vec![
        // (method, path, content type, body, status, what the answer says)
        ("GET", "/texml/inbound?From=%2B1", "", vec![], 200, "<Response>"),
        ("POST", "/texml/inbound", FORM, b"From=%2B12025550142".to_vec(), 200, "<Response>"),
        ("POST", "/texml/inbound", FORM, b"CallSid=CA1&From=%00".to_vec(), 200, "<Response>"),
        // A JSON body is never read as form fields.
        ("POST", "/texml/inbound", JSON, b"CallSid=CA1&From=%2B12025550142".to_vec(), 200, "<Response>"),
        ("POST", "/texml/dial?round=1", FORM, b"CallSid=CA1".to_vec(), 200, "<Response>"),
        ("POST", "/texml/dial?round=1", FORM, b"CallSid=CA1&DialCallStatus=exploded".to_vec(), 200, "<Response>"),
        ("POST", "/texml/dial?round=one", FORM, b"CallSid=CA1&DialCallStatus=busy".to_vec(), 200, "<Response>"),
        ("POST", "/texml/dial?round=1", FORM, b"CallSid=CA1&DialCallStatus=busy&DialCallDuration=-5".to_vec(), 200, "<Response>"),
        ("POST", "/texml/status", FORM, b"CallSid=CA1".to_vec(), 200, ""),
        ("POST", "/texml/status", FORM, b"CallStatus=completed".to_vec(), 200, ""),
        ("POST", "/texml/status", FORM, long_sid.into_bytes(), 200, ""),
        ("POST", "/texml/status", FORM, b"CallSid=CA\xff\xfe&CallStatus=completed".to_vec(), 200, ""),
        ("POST", "/texml/status", FORM, b"CallSid=%&&&==&CallStatus".to_vec(), 200, ""),
        ("POST", "/texml/recording?kind=sideways", FORM, b"CallSid=CA1&RecordingUrl=https%3A%2F%2Fr.example%2Fa".to_vec(), 200, ""),
        ("POST", "/texml/recording", FORM, b"CallSid=CA1&RecordingUrl=https%3A%2F%2Fr.example%2Fa".to_vec(), 200, ""),
        ("POST", "/texml/recording?kind=voicemail", FORM, b"CallSid=CA1&RecordingUrl=javascript%3Aalert(1)".to_vec(), 200, ""),
        ("POST", "/texml/recording?kind=voicemail", FORM, b"CallSid=CA1&RecordingUrl=https%3A%2F%2Fr.example%2Fa&RecordingDuration=NaN".to_vec(), 200, ""),
        ("POST", "/telnyx/events", JSON, b"{\"data\": ".to_vec(), 400, "bad request: EOF while parsing"),
        ("POST", "/telnyx/events", JSON, b"[1, 2, 3]".to_vec(), 400, "bad request: invalid type"),
        ("POST", "/telnyx/events", JSON, b"{\"data\": {\"event_type\": 7}}".to_vec(), 400, "bad request: invalid type"),
        ("POST", "/texml/status", FORM, vec![b'a'; 100 * 1024], 413, ""),
        ("GET", "/texml/status", "", vec![], 404, "not found"),
        ("DELETE", "/texml/inbound", "", vec![], 404, "not found"),
        // A status nobody asked for is acknowledged, ignored and counted, not refused.
        ("POST", "/texml/status", FORM, b"CallSid=CA1&CallStatus=dtmf&Digits=1".to_vec(), 200, ""),
        // Extra fields are ignored: providers add fields.
        ("POST", "/texml/status", FORM, b"CallSid=CA1&CallStatus=ringing&NewField=1&Another=%F0%9F%93%9E".to_vec(), 200, ""),
        ("POST", "/telnyx/events", JSON, b"{\"data\": {\"event_type\": \"call.speak.ended\", \"new\": {\"x\": 1}}, \"extra\": true}".to_vec(), 200, ""),
    ];
    for (method, path, ctype, body, status, says) in rows {
        let mut req = app.client.request(
            reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
            format!("{}{path}", app.base),
        );
        if !ctype.is_empty() {
            req = req.header("content-type", ctype);
        }
        let res = req.body(body).send().await.expect("sent");
        let got = res.status();
        let text = res.text().await.unwrap_or_default();
        assert_eq!(got.as_u16(), status, "{method} {path}: {text}");
        assert!(text.contains(says), "{method} {path}: {text}");
        if text.contains("<Response>") {
            roxmltree::Document::parse(&text)
                .expect("a refused voice request still gets valid XML");
        }
    }
    // Nothing above created a call, and every unusable webhook was counted by route.
    assert_eq!(app.live().await, 0);
    let bad = |route: &str| format!("switchboard_bad_requests_total{{route=\"{route}\"}}");
    for (route, n) in [
        ("/texml/inbound", 4.0),
        ("/texml/dial", 4.0),
        ("/texml/status", 5.0),
        ("/texml/recording", 4.0),
        ("/telnyx/events", 3.0),
    ] {
        assert_eq!(app.metric(&bad(route)).await, Some(n), "{route}");
    }
    let unrequested = "switchboard_events_ignored_total{reason=\"unrequested\"}";
    assert_eq!(app.metric(unrequested).await, Some(1.0));
}

#[tokio::test]
async fn past_the_live_call_cap_new_callers_are_asked_to_call_back() {
    let app = spawn_with(|s| s.limits.max_active_calls = 2).await;
    app.inbound("CA-1", "+12025550101").await;
    app.inbound("CA-2", "+12025550102").await;
    let third = app.inbound("CA-3", "+12025550103").await;
    assert_golden("unavailable", &third);
    let refused = app
        .metric("switchboard_calls_total{outcome=\"refused\",line=\"main\"}")
        .await;
    assert_eq!(refused, Some(1.0));
    // Calls already live carry on.
    let round2 = app.dial_action("CA-1", 1, "no-answer", None).await;
    assert!(round2.body.contains("round=2"));
    // When one ends, a new caller gets through.
    assert_eq!(app.call_status("CA-2", "completed").await, StatusCode::OK);
    let fourth = app.inbound("CA-4", "+12025550104").await;
    assert!(fourth.body.contains("<Dial"), "{}", fourth.body);
    assert_eq!(app.live().await, 2);
}
