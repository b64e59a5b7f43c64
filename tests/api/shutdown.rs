//! Clean shutdown: /readyz turns false first, in-flight requests finish, Slack is flushed, exit 0.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use switchboard::startup::{Application, Overrides};
use switchboard::time::ManualClock;

use crate::helpers::{test_settings, use_slack, T0};

#[tokio::test]
async fn shutdown_drains_a_request_in_flight_and_flushes_slack() {
    let slack = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(300)))
        .mount(&slack)
        .await;
    let mut settings = test_settings();
    use_slack(&mut settings, &slack);
    settings.server.shutdown_delay_secs = 1;
    let overrides = Overrides {
        sinks: vec![],
        clock: Some(Arc::new(ManualClock::at(T0))),
    };
    let app = Application::build_with(settings, overrides)
        .await
        .expect("builds");
    let port = app.port();
    let stop = app.shutdown_handle();
    let running = tokio::spawn(app.run_until_stopped());
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    assert_eq!(
        client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .expect("readyz")
            .status(),
        200
    );

    // A voice request whose body is still on its way when the shutdown starts.
    let body = "CallSid=CA-inflight&From=%2B12025550142&To=%2B18005550100";
    let (first, rest) = body.split_at(20);
    let mut conn = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let head = format!(
        "POST /texml/inbound HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{first}",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.expect("write head");
    tokio::time::sleep(Duration::from_millis(100)).await;

    stop.trigger();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Not ready any more, while still serving during the delay.
    let ready = client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 503);
    // After the delay the listener closes, but the request in flight still completes.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert!(
        TcpStream::connect(("127.0.0.1", port)).await.is_err(),
        "no new connections"
    );
    conn.write_all(rest.as_bytes()).await.expect("write rest");
    let mut answer = String::new();
    conn.read_to_string(&mut answer).await.expect("read answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("<Dial"), "{answer}");

    let stopped = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("stops")
        .expect("task");
    assert!(stopped.is_ok(), "{stopped:?}");
    // The in-flight call's message was delivered before the process would exit.
    assert_eq!(slack.received_requests().await.map(|r| r.len()), Some(1));
}

#[test]
fn the_binary_exits_0_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .env("SWITCHBOARD__SERVER__HOST", "127.0.0.1")
        .env("SWITCHBOARD__SERVER__PORT", "0")
        .env("SWITCHBOARD__SERVER__SHUTDOWN_DELAY_SECS", "0")
        .env("SWITCHBOARD__LOG__FORMAT", "json")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start switchboard");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let line = lines.next().expect("still logging").expect("line");
        if line.contains("switchboard is serving") {
            break;
        }
        assert!(Instant::now() < deadline, "never started");
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let exit = child.wait().expect("wait");
    assert_eq!(exit.code(), Some(0), "{rest:#?}");
    assert!(rest.iter().any(|l| l.contains("SIGTERM")), "{rest:#?}");
    assert!(rest.iter().any(|l| l.contains("\"stopped\"")), "{rest:#?}");
}
