//! Recordings kept in a bucket, and the provider's copy deleted once archived. The bucket is a
//! small S3 fake on loopback (it keeps what is put, serves ranges, deletes); the providers'
//! recording APIs are wiremock fakes. Time is the injected clock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};
use switchboard::config::Settings;
use switchboard::time::ManualClock;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::admin::admin;
use crate::helpers::{scratch_dir, Spawn, TestApp, T0};
use crate::ledger::{leave_voicemail, slack_message};
use crate::replicas::slack_ok;

/// An S3 bucket in memory: `PUT`, `GET` (with one `Range`), `DELETE` on `/<bucket>/<key>`, and
/// `POST /<bucket>?delete` (DeleteObjects, which `object_store` uses to delete).
#[derive(Clone, Default)]
struct FakeS3 {
    objects: Arc<Mutex<HashMap<String, Vec<u8>>>>,
}

impl FakeS3 {
    fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.objects.lock().expect("lock").keys().cloned().collect();
        keys.sort();
        keys
    }
}

impl Respond for FakeS3 {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let key = req.url.path().to_owned();
        let mut objects = self.objects.lock().expect("lock");
        let tag = |body: &[u8]| format!("\"{:x}\"", Sha256::digest(body));
        match req.method.as_str() {
            "PUT" => {
                let etag = tag(&req.body);
                objects.insert(key, req.body.clone());
                ResponseTemplate::new(200).insert_header("ETag", etag.as_str())
            }
            "DELETE" => {
                objects.remove(&key);
                ResponseTemplate::new(204)
            }
            "POST" if req.url.query() == Some("delete") => {
                let body = String::from_utf8_lossy(&req.body);
                let mut deleted = String::new();
                for part in body.split("<Key>").skip(1) {
                    let name = part.split("</Key>").next().unwrap_or_default();
                    objects.remove(&format!("{key}/{name}"));
                    deleted.push_str(&format!("<Deleted><Key>{name}</Key></Deleted>"));
                }
                ResponseTemplate::new(200).set_body_string(format!(
                    "<DeleteResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">{deleted}</DeleteResult>"
                ))
            }
            "GET" => {
                let Some(body) = objects.get(&key) else {
                    return ResponseTemplate::new(404).set_body_string(
                        "<Error><Code>NoSuchKey</Code><Message>no such key</Message></Error>",
                    );
                };
                let wanted = req
                    .headers
                    .get("range")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|r| r.strip_prefix("bytes="))
                    .and_then(|r| r.split_once('-'))
                    .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)));
                let common = |t: ResponseTemplate| {
                    t.insert_header("ETag", tag(body).as_str())
                        .insert_header("Last-Modified", "Sat, 21 Nov 2026 12:00:00 GMT")
                        .insert_header("Content-Type", "audio/mpeg")
                };
                match wanted {
                    Some((a, b)) if a <= b && b < body.len() => common(ResponseTemplate::new(206))
                        .insert_header(
                            "Content-Range",
                            format!("bytes {a}-{b}/{}", body.len()).as_str(),
                        )
                        .set_body_bytes(body[a..=b].to_vec()),
                    _ => common(ResponseTemplate::new(200)).set_body_bytes(body.clone()),
                }
            }
            _ => ResponseTemplate::new(405),
        }
    }
}

/// The ledger's event kinds for call `sid`, once `kind` is among them.
pub(crate) async fn events_until(app: &TestApp, sid: &str, kind: &str) -> Vec<Value> {
    for _ in 0..200 {
        let (_, call) = admin(app, "GET", &format!("/admin/calls/{sid}"), None).await;
        let events = call["events"].as_array().cloned().unwrap_or_default();
        if events.iter().any(|e| e["kind"] == kind) {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, call) = admin(app, "GET", &format!("/admin/calls/{sid}"), None).await;
    panic!("no {kind} event for {sid}: {call}");
}

fn archive_on(s: &mut Settings) {
    crate::admin::with_token(s);
    s.dial.wrap_up_secs = 0;
    s.recordings.archive = true;
    s.recordings.retry_base_ms = 10;
    s.recordings.max_attempts = 2;
    s.recordings.delete_from_provider = true;
}

#[tokio::test]
async fn recordings_go_to_an_s3_bucket_and_the_telnyx_copy_is_deleted() {
    let audio: Vec<u8> = (0..7000u32).map(|i| (i * 7 % 256) as u8).collect();
    let bucket = FakeS3::default();
    let s3 = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(bucket.clone())
        .mount(&s3)
        .await;
    let telnyx = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/rec/vm.mp3"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(audio.clone(), "audio/mpeg"))
        .mount(&telnyx)
        .await;
    Mock::given(method("DELETE"))
        .and(path(
            "/v2/texml/Accounts/ACtest/Recordings/RE-CA-s3-voicemail.json",
        ))
        .and(header("authorization", "Bearer KEY-example-not-a-secret"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&telnyx)
        .await;
    Mock::given(method("DELETE"))
        .and(path(
            "/v2/texml/Accounts/ACtest/Recordings/RE-CA-kept-voicemail.json",
        ))
        .respond_with(ResponseTemplate::new(500))
        .expect(2)
        .mount(&telnyx)
        .await;
    let slack = slack_ok().await;
    let clock = Arc::new(ManualClock::at(T0));
    let data = scratch_dir("bucket");
    let store = "s3://recordings/switchboard";
    let options = vec![
        ("endpoint".to_owned(), s3.uri()),
        ("allow_http".to_owned(), "true".to_owned()),
        ("region".to_owned(), "us-east-1".to_owned()),
        ("access_key_id".to_owned(), "AKIDEXAMPLE".to_owned()),
        (
            "secret_access_key".to_owned(),
            "example-secret-not-a-secret".to_owned(),
        ),
    ];
    let bucket_settings = {
        let options = options.clone();
        let data = data.clone();
        move |s: &mut Settings| {
            s.paths.data = data;
            s.recordings.store = Some(store.parse().expect("url"));
            s.recordings.store_options = options;
        }
    };
    let telnyx_api = format!("{}/v2", telnyx.uri());
    let app = Spawn::default()
        .settings(|s| {
            archive_on(s);
            crate::helpers::use_slack(s, &slack);
            bucket_settings.clone()(s);
            s.telnyx.api_key = Some("KEY-example-not-a-secret".to_owned().into());
            s.telnyx.api_base_url = telnyx_api.parse().expect("url");
            s.recordings.retention_days.voicemail = 1;
            s.recordings.retention_check_secs = 1;
        })
        .clock(clock.clone())
        .start()
        .await;

    let url = format!("{}/rec/vm.mp3", telnyx.uri());
    leave_voicemail(&app, "CA-s3", &url).await;
    let text = slack_message(&slack, "Voicemail saved").await;
    let start = text
        .find("https://switchboard.test/recordings/")
        .expect("our link");
    let end = start + text[start..].find('|').expect("link end");
    let link = text[start..end]
        .replace("&amp;", "&")
        .replace("https://switchboard.test", &app.base);

    // In the bucket, under its prefix, once; nothing written under the data directory.
    let keys = bucket.keys();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(
        keys[0].starts_with("/recordings/switchboard/2026/11/") && keys[0].ends_with(".mp3"),
        "{keys:?}"
    );
    assert_eq!(bucket.objects.lock().expect("lock")[&keys[0]], audio);
    assert!(!data.join("recordings").join("2026").exists());

    // Served from the bucket: whole, one range, and not again to a client that has it.
    let got = app.client.get(&link).send().await.expect("sent");
    assert_eq!(got.status(), StatusCode::OK);
    assert_eq!(got.headers()["content-type"], "audio/mpeg");
    assert_eq!(got.headers()["accept-ranges"], "bytes");
    let etag = got.headers()["etag"].to_str().expect("etag").to_owned();
    let sha: String = Sha256::digest(&audio)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(etag, format!("\"{sha}\""));
    assert_eq!(got.bytes().await.expect("body").as_ref(), audio.as_slice());
    let part = app
        .client
        .get(&link)
        .header("range", "bytes=100-149")
        .send()
        .await
        .expect("sent");
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.headers()["content-range"], "bytes 100-149/7000");
    assert_eq!(part.bytes().await.expect("body").as_ref(), &audio[100..150]);
    let unsatisfiable = app
        .client
        .get(&link)
        .header("range", "bytes=9000-9100")
        .send()
        .await
        .expect("sent");
    assert_eq!(unsatisfiable.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(unsatisfiable.headers()["content-range"], "bytes */7000");
    let cached = app
        .client
        .get(&link)
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("sent");
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);

    // The ledger says where; then the provider's copy was deleted, and that is an event too.
    let events = events_until(&app, "CA-s3", "recording.provider_deleted").await;
    let archived = events
        .iter()
        .find(|e| e["kind"] == "recording.archived")
        .expect("archived");
    assert_eq!(archived["data"]["store"], store);
    assert_eq!(archived["data"]["sha256"], sha.as_str());
    let deleted = events
        .iter()
        .find(|e| e["kind"] == "recording.provider_deleted")
        .expect("deleted");
    assert_eq!(deleted["data"]["recording_sid"], "RE-CA-s3-voicemail");

    // A provider that refuses to delete: retried, then counted and noted; the archive is intact.
    leave_voicemail(&app, "CA-kept", &url).await;
    let events = events_until(&app, "CA-kept", "recording.provider_kept").await;
    let kept = events
        .iter()
        .find(|e| e["kind"] == "recording.provider_kept")
        .expect("kept");
    assert_eq!(kept["data"]["attempts"], 2);
    assert_eq!(
        app.metric("switchboard_recordings_total{fate=\"provider_deleted\"}")
            .await,
        Some(1.0)
    );
    assert_eq!(
        app.metric("switchboard_recordings_total{fate=\"provider_kept\"}")
            .await,
        Some(1.0)
    );
    assert_eq!(bucket.keys().len(), 2);

    // The CLI copies them out of the bucket, checked against their SHA-256.
    let mut settings = crate::helpers::test_settings();
    bucket_settings(&mut settings);
    let out = scratch_dir("from-bucket");
    let copied = switchboard::ledger::cli::recordings(
        &settings,
        switchboard::ledger::cli::RecordingsArgs {
            action: switchboard::ledger::cli::RecordingsAction::Download {
                window: switchboard::ledger::cli::Window {
                    since: "2026-11-21T00:00:00Z".into(),
                    until: None,
                },
                to: out.clone(),
            },
        },
        T0 + 60_000,
    )
    .await
    .expect("download");
    assert_eq!(
        copied.matches("copied, SHA-256 checked").count(),
        2,
        "{copied}"
    );
    assert_eq!(
        std::fs::read(out.join("CA-s3-voicemail.mp3")).expect("copied"),
        audio
    );

    // A day later retention deletes both from the bucket; the links answer 410.
    clock.advance_secs(86_400 + 1);
    let mut status = StatusCode::OK;
    for _ in 0..100 {
        status = app.client.get(&link).send().await.expect("sent").status();
        if status == StatusCode::GONE && bucket.keys().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, StatusCode::GONE);
    assert_eq!(bucket.keys(), Vec::<String>::new());
    telnyx.verify().await;
}

#[tokio::test]
async fn under_twilio_the_archived_recording_is_deleted_at_twilio() {
    let audio = b"ID3 a short voicemail".to_vec();
    let twilio = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/rec/vm.mp3"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(audio.clone(), "audio/mpeg"))
        .mount(&twilio)
        .await;
    // Basic auth: the account named by the callback, and the auth token.
    let basic = "Basic QUN0ZXN0OmV4YW1wbGUtYXV0aC10b2tlbi1ub3QtYS1zZWNyZXQ=";
    Mock::given(method("DELETE"))
        .and(path(
            "/2010-04-01/Accounts/ACtest/Recordings/RE-CA-tw-voicemail.json",
        ))
        .and(header("authorization", basic))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&twilio)
        .await;
    let api = twilio.uri();
    let app = Spawn::default()
        .settings(|s| {
            archive_on(s);
            s.provider.kind = switchboard::texml::Provider::Twilio;
            // All agents in one <Dial>, as under Telnyx (one round, then voicemail).
            s.provider.twilio_enhanced_sip = true;
            s.twilio.auth_token = Some("example-auth-token-not-a-secret".to_owned().into());
            s.twilio.api_base_url = api.parse().expect("url");
            s.security.mode = switchboard::signature::Mode::Off;
            s.security.voice_mode = switchboard::signature::Mode::Off;
        })
        .start()
        .await;
    let url = format!("{}/rec/vm.mp3", twilio.uri());
    leave_voicemail(&app, "CA-tw", &url).await;
    let events = events_until(&app, "CA-tw", "recording.provider_deleted").await;
    assert!(
        events.iter().any(|e| e["kind"] == "recording.archived"),
        "{events:?}"
    );
    // Kept locally (no bucket configured), under the data directory.
    let (_, call) = admin(&app, "GET", "/admin/calls/CA-tw", None).await;
    let archived = call["events"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["kind"] == "recording.archived"))
        .cloned()
        .expect("archived");
    assert_eq!(archived["data"]["store"], "local");
    twilio.verify().await;
}
