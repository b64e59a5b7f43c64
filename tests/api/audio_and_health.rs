//! The audio folder as the provider fetches it, and the health endpoints.

use reqwest::StatusCode;

use crate::helpers::{repo_path, spawn_app};

#[tokio::test]
async fn prompts_are_served_with_type_length_range_and_cache_headers() {
    let app = spawn_app().await;
    let on_disk = std::fs::read(repo_path("audio/greeting.wav")).expect("greeting.wav");
    let res = app
        .client
        .get(format!("{}/audio/greeting.wav", app.base))
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), StatusCode::OK);
    let header = |name: &str| {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    assert!(
        header("content-type").starts_with("audio/"),
        "{}",
        header("content-type")
    );
    assert_eq!(header("content-length"), on_disk.len().to_string());
    assert_eq!(header("cache-control"), "public, max-age=86400");
    assert!(!header("etag").is_empty() && !header("last-modified").is_empty());
    assert_eq!(header("accept-ranges"), "bytes");
    assert_eq!(
        res.bytes().await.expect("body").as_ref(),
        on_disk.as_slice()
    );

    let part = app
        .client
        .get(format!("{}/audio/greeting.wav", app.base))
        .header("range", "bytes=4-11")
        .send()
        .await
        .expect("range");
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        part.headers()
            .get("content-range")
            .and_then(|v| v.to_str().ok()),
        Some(format!("bytes 4-11/{}", on_disk.len()).as_str())
    );
    assert_eq!(part.bytes().await.expect("body").as_ref(), &on_disk[4..12]);
}

#[tokio::test]
async fn nothing_outside_the_audio_folder_is_served() {
    let app = spawn_app().await;
    for path in [
        "/audio/make.sh",
        "/audio/..%2FCargo.toml",
        "/audio/%2e%2e%2fCargo.toml",
        "/audio/../Cargo.toml",
        "/audio/.%2e/templates/prompts.toml",
        "/audio/nope.wav",
        "/audio/",
    ] {
        let res = app
            .client
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .expect("get");
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn health_and_readiness() {
    let app = spawn_app().await;
    let get = |p: &str| app.client.get(format!("{}{p}", app.base)).send();
    assert_eq!(
        get("/healthz").await.expect("healthz").status(),
        StatusCode::OK
    );
    assert_eq!(
        get("/readyz").await.expect("readyz").status(),
        StatusCode::OK
    );
    assert_eq!(
        get("/nowhere").await.expect("404").status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn metrics_count_requests_outcomes_and_live_calls() {
    let app = crate::helpers::spawn_app().await;
    app.inbound("CA-m1", "+12025550142").await;
    app.inbound("CA-m2", "+12025550142").await;
    app.call_status("CA-m2", "completed").await;
    app.post_form("/texml/status", &[("CallSid", "CA-x")]).await;
    let res = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .expect("metrics");
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/openmetrics-text")));
    let text = res.text().await.expect("body");
    for line in [
        "switchboard_http_requests_total{route=\"/texml/inbound\",status=\"200\"} 2",
        "switchboard_http_requests_total{route=\"/texml/status\",status=\"200\"} 2",
        "switchboard_bad_requests_total{route=\"/texml/status\"} 1",
        "switchboard_calls_total{outcome=\"abandoned\",line=\"main\"} 1",
        "switchboard_live_calls 1",
        "switchboard_ready 1",
        "switchboard_agents_known 3",
        "switchboard_signature_rejections_total 0",
        "switchboard_webhook_duration_seconds_count{route=\"/texml/inbound\"} 2",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    assert!(text.ends_with("# EOF\n"));
}
