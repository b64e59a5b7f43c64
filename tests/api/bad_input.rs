//! Bad input gets a clear 4xx naming the problem, never a panic or a 5xx; extra fields are fine.

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
        ("GET", "/texml/inbound?From=%2B1", "", vec![], 400, "<Response>"),
        ("POST", "/texml/inbound", FORM, b"From=%2B12025550142".to_vec(), 400, "<Response>"),
        ("POST", "/texml/inbound", FORM, b"CallSid=CA1&From=%00".to_vec(), 400, "<Response>"),
        ("POST", "/texml/dial?round=1", FORM, b"CallSid=CA1".to_vec(), 400, "<Response>"),
        ("POST", "/texml/dial?round=1", FORM, b"CallSid=CA1&DialCallStatus=exploded".to_vec(), 400, "<Response>"),
        ("POST", "/texml/dial?round=one", FORM, b"CallSid=CA1&DialCallStatus=busy".to_vec(), 400, "<Response>"),
        ("POST", "/texml/dial?round=1", FORM, b"CallSid=CA1&DialCallStatus=busy&DialCallDuration=-5".to_vec(), 400, "<Response>"),
        ("POST", "/texml/status", FORM, b"CallSid=CA1".to_vec(), 400, "CallStatus: is missing"),
        ("POST", "/texml/status", FORM, b"CallStatus=completed".to_vec(), 400, "CallSid: is missing"),
        ("POST", "/texml/status", FORM, b"CallSid=CA1&CallStatus=exploded".to_vec(), 400, "CallStatus: `exploded` is not one of"),
        ("POST", "/texml/status", FORM, long_sid.into_bytes(), 400, "CallSid: is longer than 256 characters"),
        ("POST", "/texml/status", FORM, b"CallSid=CA\xff\xfe&CallStatus=completed".to_vec(), 400, "the body is not valid UTF-8"),
        ("POST", "/texml/status", FORM, b"CallSid=%&&&==&CallStatus".to_vec(), 400, "CallStatus: is missing"),
        ("POST", "/texml/recording?kind=sideways", FORM, b"CallSid=CA1&RecordingUrl=https%3A%2F%2Fr.example%2Fa".to_vec(), 400, "kind: `sideways` is not one of"),
        ("POST", "/texml/recording", FORM, b"CallSid=CA1&RecordingUrl=https%3A%2F%2Fr.example%2Fa".to_vec(), 400, "kind: is missing"),
        ("POST", "/texml/recording?kind=voicemail", FORM, b"CallSid=CA1&RecordingUrl=javascript%3Aalert(1)".to_vec(), 400, "RecordingUrl: is not an http(s) URL"),
        ("POST", "/texml/recording?kind=voicemail", FORM, b"CallSid=CA1&RecordingUrl=https%3A%2F%2Fr.example%2Fa&RecordingDuration=NaN".to_vec(), 400, "RecordingDuration: `NaN` is not a number of seconds"),
        ("POST", "/telnyx/events", JSON, b"{\"data\": ".to_vec(), 400, "bad request: EOF while parsing"),
        ("POST", "/telnyx/events", JSON, b"[1, 2, 3]".to_vec(), 400, "bad request: invalid type"),
        ("POST", "/telnyx/events", JSON, b"{\"data\": {\"event_type\": 7}}".to_vec(), 400, "bad request: invalid type"),
        ("POST", "/texml/status", FORM, vec![b'a'; 100 * 1024], 413, ""),
        ("GET", "/texml/status", "", vec![], 404, "not found"),
        ("DELETE", "/texml/inbound", "", vec![], 404, "not found"),
        // Extra fields are ignored: providers add fields.
        ("POST", "/texml/status", FORM, b"CallSid=CA1&CallStatus=ringing&NewField=1&Another=%F0%9F%93%9E".to_vec(), 204, ""),
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
    // Nothing above created a call.
    assert_eq!(app.live().await, 0);
}

#[tokio::test]
async fn past_the_live_call_cap_new_callers_are_asked_to_call_back() {
    let app = spawn_with(|s| s.limits.max_active_calls = 2).await;
    app.inbound("CA-1", "+12025550101").await;
    app.inbound("CA-2", "+12025550102").await;
    let third = app.inbound("CA-3", "+12025550103").await;
    assert_golden("unavailable", &third);
    let refused = app
        .metric("switchboard_calls_total{outcome=\"refused\"}")
        .await;
    assert_eq!(refused, Some(1.0));
    // Calls already live carry on.
    let round2 = app.dial_action("CA-1", 1, "no-answer", None).await;
    assert!(round2.body.contains("round=2"));
    // When one ends, a new caller gets through.
    assert_eq!(
        app.call_status("CA-2", "completed").await,
        StatusCode::NO_CONTENT
    );
    let fourth = app.inbound("CA-4", "+12025550104").await;
    assert!(fourth.body.contains("<Dial"), "{}", fourth.body);
    assert_eq!(app.live().await, 2);
}
