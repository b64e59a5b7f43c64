//! Webhook signatures: every case answered as the issue asks, and a refusal changes nothing.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use reqwest::StatusCode;
use switchboard::config::{Provider, Settings};
use switchboard::signature::{telnyx_key, twilio_signature, Mode};
use switchboard::time::ManualClock;

use crate::helpers::{test_settings, Spawn, TestApp, PUBLIC_URL, T0};

/// A fixed test key pair (not anyone's real key).
fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&[42u8; 32])
}

fn public_key_b64(key: &SigningKey) -> String {
    BASE64.encode(key.verifying_key().to_bytes())
}

const TWILIO_TOKEN: &str = "twilio-test-token-not-real";

/// A server with a Telnyx public key and a Twilio token configured (so enforcing), at `T0`.
async fn spawn_secured(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let keys = |s: &mut Settings| {
        let key = public_key_b64(&signing_key());
        s.telnyx.public_key = Some(telnyx_key(&key).expect("a valid key"));
        s.twilio.auth_token = Some(TWILIO_TOKEN.to_owned().into());
        tweak(s);
    };
    let clock = Arc::new(ManualClock::at(T0));
    Spawn::default().settings(keys).clock(clock).start().await
}

async fn rejected(app: &TestApp) -> u64 {
    let n = app.metric("switchboard_signature_rejections_total").await;
    n.expect("in /metrics") as u64
}

fn telnyx_headers(key: &SigningKey, ts_secs: u64, body: &[u8]) -> [(&'static str, String); 2] {
    let mut signed = format!("{ts_secs}|").into_bytes();
    signed.extend_from_slice(body);
    [
        (
            "telnyx-signature-ed25519",
            BASE64.encode(key.sign(&signed).to_bytes()),
        ),
        ("telnyx-timestamp", ts_secs.to_string()),
    ]
}

const NOW_SECS: u64 = T0 / 1000;
const FORM: &str = "CallSid=CA-sig&From=%2B12025550142&To=%2B18005550100";

async fn post(
    app: &TestApp,
    path: &str,
    body: &str,
    ctype: &str,
    headers: &[(&str, String)],
) -> reqwest::Response {
    let mut req = app
        .client
        .post(format!("{}{path}", app.base))
        .header("content-type", ctype)
        .body(body.to_owned());
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    req.send().await.expect("sent")
}

const FORM_TYPE: &str = "application/x-www-form-urlencoded";

#[tokio::test]
async fn each_telnyx_signature_case() {
    let s = spawn_secured(|s| s.security.voice_mode = Mode::Enforce).await;
    let key = signing_key();
    let other = SigningKey::from_bytes(&[7u8; 32]);
    let good = telnyx_headers(&key, NOW_SECS, FORM.as_bytes());
    let forged = {
        let mut h = good.clone();
        h[0].1 = telnyx_headers(&key, NOW_SECS, b"CallSid=CA-other")[0]
            .1
            .clone();
        h
    };
    type Headers = Vec<(&'static str, String)>;
    let cases: Vec<(&str, Headers, StatusCode)> = vec![
        ("missing", vec![], StatusCode::FORBIDDEN),
        ("forged", forged.to_vec(), StatusCode::FORBIDDEN),
        (
            "stale",
            telnyx_headers(&key, NOW_SECS - 301, FORM.as_bytes()).to_vec(),
            StatusCode::FORBIDDEN,
        ),
        (
            "future",
            telnyx_headers(&key, NOW_SECS + 301, FORM.as_bytes()).to_vec(),
            StatusCode::FORBIDDEN,
        ),
        (
            "wrong key",
            telnyx_headers(&other, NOW_SECS, FORM.as_bytes()).to_vec(),
            StatusCode::FORBIDDEN,
        ),
        (
            "garbage",
            vec![
                ("telnyx-signature-ed25519", "%%%".into()),
                ("telnyx-timestamp", NOW_SECS.to_string()),
            ],
            StatusCode::FORBIDDEN,
        ),
        ("no timestamp", vec![good[0].clone()], StatusCode::FORBIDDEN),
    ];
    for (name, headers, status) in cases {
        let res = post(&s, "/texml/inbound", FORM, FORM_TYPE, &headers).await;
        assert_eq!(res.status(), status, "{name}");
    }
    // Refused requests changed nothing and told nobody.
    assert_eq!(s.live().await, 0);
    assert!(s.notices.take().is_empty());
    assert_eq!(rejected(&s).await, 7);
    // Within the allowed skew, the real thing passes.
    let res = post(&s, "/texml/inbound", FORM, FORM_TYPE, &good).await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = post(
        &s,
        "/texml/inbound",
        FORM,
        FORM_TYPE,
        &telnyx_headers(&key, NOW_SECS - 299, FORM.as_bytes()),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK, "a retry 299 s later");
    assert_eq!(s.live().await, 1);
}

#[tokio::test]
async fn telnyx_json_events_and_form_callbacks_are_verified_over_the_raw_bytes() {
    let s = spawn_secured(|_| {}).await;
    let key = signing_key();
    // Odd spacing and key order: re-serializing would change the bytes and break the signature.
    let json = r#"{ "data" : {"payload": {"call_control_id": "v3:x"}, "event_type":"call.dtmf.received", "id":"e1"} }"#;
    let headers = telnyx_headers(&key, NOW_SECS, json.as_bytes());
    let res = post(&s, "/telnyx/events", json, "application/json", &headers).await;
    assert_eq!(res.status(), StatusCode::OK);
    let tampered = json.replace("e1", "e2");
    let res = post(
        &s,
        "/telnyx/events",
        &tampered,
        "application/json",
        &headers,
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    let status = "CallSid=CA-x&CallStatus=completed";
    let res = post(
        &s,
        "/texml/status",
        status,
        FORM_TYPE,
        &telnyx_headers(&key, NOW_SECS, status.as_bytes()),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = post(&s, "/texml/status", status, FORM_TYPE, &[]).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

fn twilio_params(form: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(form.as_bytes())
        .into_owned()
        .collect()
}

#[tokio::test]
async fn twilio_signatures_are_checked_over_the_public_url() {
    // Twilio signs every request, voice requests included: `auto` enforces on them too.
    let s = spawn_secured(|s| s.provider.kind = Provider::Twilio).await;
    let url = format!("{PUBLIC_URL}/texml/dial?round=1");
    let form = "CallSid=CA-tw&DialCallStatus=no-answer&From=%2B12025550142";
    let sig = twilio_signature(TWILIO_TOKEN, &url, &twilio_params(form));
    let unknown_call_apology = StatusCode::OK;
    let res = post(
        &s,
        "/texml/dial?round=1",
        form,
        FORM_TYPE,
        &[("x-twilio-signature", sig.clone())],
    )
    .await;
    assert_eq!(res.status(), unknown_call_apology);
    // Signed for another URL (as if the server's own address were used): refused.
    let local = format!("{}/texml/dial?round=1", s.base);
    let wrong_url = twilio_signature(TWILIO_TOKEN, &local, &twilio_params(form));
    let res = post(
        &s,
        "/texml/dial?round=1",
        form,
        FORM_TYPE,
        &[("x-twilio-signature", wrong_url)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // A field changed after signing: refused.
    let res = post(
        &s,
        "/texml/dial?round=1",
        &form.replace("no-answer", "completed"),
        FORM_TYPE,
        &[("x-twilio-signature", sig)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // GET voice requests are signed over the URL with its query string.
    let query = "CallSid=CA-get&From=%2B12025550142";
    let sig = twilio_signature(
        TWILIO_TOKEN,
        &format!("{PUBLIC_URL}/texml/inbound?{query}"),
        &[],
    );
    let res = s
        .client
        .get(format!("{}/texml/inbound?{query}", s.base))
        .header("x-twilio-signature", sig)
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_url_is_the_signed_one() {
    let s = spawn_secured(|s| s.security.trust_forwarded_headers = true).await;
    let form = "CallSid=CA-proxy&CallStatus=completed";
    let signed_url = "https://calls.example.org/switchboard/texml/status";
    let sig = twilio_signature(TWILIO_TOKEN, signed_url, &twilio_params(form));
    let forwarded = [
        ("x-forwarded-proto", "https".to_string()),
        ("x-forwarded-host", "calls.example.org".to_string()),
        ("x-forwarded-prefix", "/switchboard".to_string()),
        ("x-twilio-signature", sig.clone()),
    ];
    let res = post(&s, "/texml/status", form, FORM_TYPE, &forwarded).await;
    assert_eq!(res.status(), StatusCode::OK);
    // Without trust, the same request is checked against server.public_url and refused.
    let untrusting = spawn_secured(|_| {}).await;
    let res = post(&untrusting, "/texml/status", form, FORM_TYPE, &forwarded).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn log_mode_counts_but_lets_through() {
    let s = spawn_secured(|s| s.security.mode = Mode::Log).await;
    let res = post(&s, "/texml/inbound", FORM, FORM_TYPE, &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(rejected(&s).await, 1);
    assert_eq!(s.live().await, 1);
}

#[test]
fn enforce_without_a_key_is_a_configuration_error() {
    let mut settings = test_settings();
    settings.security.mode = Mode::Enforce;
    let err = settings.validate().expect_err("no key").to_string();
    assert!(
        err.contains("security.mode: enforce and log need telnyx.public_key or twilio.auth_token"),
        "{err}"
    );
    let env = config::Environment::with_prefix("SWITCHBOARD").source(Some(
        [(
            "SWITCHBOARD__TELNYX__PUBLIC_KEY".to_owned(),
            "bm90IGEga2V5".to_owned(),
        )]
        .into(),
    ));
    let err = Settings::load_with(None, env)
        .expect_err("bad key")
        .to_string();
    assert!(
        err.contains("telnyx.public_key: must decode to 32 bytes"),
        "{err}"
    );
}

/// The first forgery the provider audit found: one Telnyx signature over an empty body (a GET,
/// or an empty POST) let in any fields written in the query string.
#[tokio::test]
async fn a_telnyx_signature_over_an_empty_body_does_not_vouch_for_query_fields() {
    let key = signing_key();
    let empty_sig = telnyx_headers(&key, NOW_SECS, b"");
    let get = |app: &TestApp, sid: &str| {
        let mut req = app.client.get(format!(
            "{}/texml/inbound?CallSid={sid}&From=%2B12025550199",
            app.base
        ));
        for (k, v) in &empty_sig {
            req = req.header(*k, v);
        }
        req.send()
    };
    // Voice requests enforced: both forged calls are refused.
    let strict = spawn_secured(|s| s.security.voice_mode = Mode::Enforce).await;
    for sid in ["CA-forged-1", "CA-forged-2"] {
        let res = get(&strict, sid).await.expect("sent");
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert!(res.text().await.expect("text").contains("query string"));
    }
    assert_eq!(strict.live().await, 0);
    // A callback with its fields in the query and an empty signed body: refused (callbacks
    // enforce by default).
    let res = strict
        .client
        .post(format!(
            "{}/texml/status?CallSid=CA-live&CallStatus=completed",
            strict.base
        ))
        .header(empty_sig[0].0, empty_sig[0].1.clone())
        .header(empty_sig[1].0, empty_sig[1].1.clone())
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // The default for voice requests under Telnyx (which does not document signing them): the
    // same request is let through, and counted and logged.
    let lenient = spawn_secured(|_| {}).await;
    let res = get(&lenient, "CA-let-through").await.expect("sent");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(rejected(&lenient).await, 1);
    // With the POST voice method the fields are in the signed body: accepted when enforcing.
    let form = "CallSid=CA-post&From=%2B12025550142&To=%2B18005550100";
    let headers = telnyx_headers(&key, NOW_SECS, form.as_bytes());
    let res = post(&strict, "/texml/inbound", form, FORM_TYPE, &headers).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(strict.live().await, 1);
}

/// The second forgery: a Twilio signature over a URL let in any body labelled JSON, which was
/// then read as form fields.
#[tokio::test]
async fn a_json_body_is_bound_by_its_hash_and_never_read_as_form_fields() {
    let s = spawn_secured(|s| s.provider.kind = Provider::Twilio).await;
    let query = "CallSid=CA-tw-get&From=%2B12025550142";
    let url_sig = twilio_signature(
        TWILIO_TOKEN,
        &format!("{PUBLIC_URL}/texml/inbound?{query}"),
        &[],
    );
    // The signature of a GET, replayed on a POST with a forged body labelled JSON: refused.
    let forged = "CallSid=CA-forged&From=%2B12025550199";
    let res = post(
        &s,
        &format!("/texml/inbound?{query}"),
        forged,
        "application/json",
        &[("x-twilio-signature", url_sig)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(s.live().await, 0);
    // A JSON body whose hash the signed URL carries passes the check, but is still not read as
    // a form: the caller hears the apology, no call is created from it.
    let body = r#"{"CallSid": "CA-json"}"#;
    let hash: String = {
        use sha2::Digest;
        sha2::Sha256::digest(body.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let path = format!("/texml/inbound?bodySHA256={hash}");
    let sig = twilio_signature(TWILIO_TOKEN, &format!("{PUBLIC_URL}{path}"), &[]);
    let res = post(
        &s,
        &path,
        body,
        "application/json",
        &[("x-twilio-signature", sig.clone())],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res
        .text()
        .await
        .expect("text")
        .contains("something went wrong"));
    assert_eq!(s.live().await, 0);
    // The same signature with another body: refused.
    let res = post(
        &s,
        &path,
        r#"{"CallSid": "CA-other"}"#,
        "application/json",
        &[("x-twilio-signature", sig)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}
