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
