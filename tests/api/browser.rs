//! The dashboard in a real browser: Debian's headless Chromium, driven over WebDriver by
//! chromedriver (both installed by `tests/run.sh` when missing). It signs in, watches the
//! simulator's calls arrive, talk and end without a reload, acts as a supervisor, and leaves
//! screenshots in the test output directory (`target/tmp/`).

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::StatusCode;
use switchboard::simulate::{run, Scenario, SimulateArgs};

use crate::dashboard::{with_users, CALLER, LINES, PASSWORD};
use crate::helpers::{free_port, Spawn, TestApp};

/// Where Debian puts them; `CHROMIUM` and `CHROMEDRIVER` say otherwise.
fn program(var: &str, default: &str) -> String {
    let path = std::env::var(var).unwrap_or_else(|_| default.to_owned());
    assert!(
        std::path::Path::new(&path).exists(),
        "{path} is missing: the dashboard test needs Debian's chromium and chromium-driver \
         (bash tests/run.sh installs them; or set {var})"
    );
    path
}

/// A chromedriver on a free port, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start() -> Driver {
        let port = free_port();
        // In a process group of its own, with the browsers it starts: a failing test (which
        // never closes its session) still takes them all down.
        let child = Command::new(program("CHROMEDRIVER", "/usr/bin/chromedriver"))
            .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".into()])
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        // Dropped (killed and waited for) if it never listens.
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return driver;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not listen on {port}");
    }

    /// A headless Chromium session.
    async fn browser(&self) -> Client {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": program("CHROMIUM", "/usr/bin/chromium"),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1280,720", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--force-color-profile=srgb",
                    "--force-prefers-reduced-motion"
                ]
            }),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a Chromium session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sizes the window so that the page itself is `width`×`height` (the window's frame aside).
async fn viewport(browser: &Client, width: u32, height: u32) {
    browser
        .set_window_size(width, height)
        .await
        .expect("window size");
    let inner = browser
        .execute("return [window.innerWidth, window.innerHeight];", vec![])
        .await
        .expect("inner size");
    let got = |i: usize| inner[i].as_u64().unwrap_or(0) as u32;
    let (w, h) = (
        width + width.saturating_sub(got(0)),
        height + height.saturating_sub(got(1)),
    );
    browser.set_window_size(w, h).await.expect("window size");
}

/// The text of the first element `css` selects, once there.
async fn text(browser: &Client, css: &str) -> Option<String> {
    let found = browser.find(Locator::Css(css)).await.ok()?;
    found.text().await.ok()
}

/// Waits (up to fifteen seconds) until `css`'s text is `want`; the page is never reloaded.
async fn shows(browser: &Client, css: &str, want: &str) {
    let mut last = None;
    for _ in 0..150 {
        last = text(browser, css).await;
        if last.as_deref() == Some(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{css} shows {last:?}, not {want:?}");
}

/// The page on `port`, signed in as ada: the browser sends these credentials, as after the
/// sign-in prompt, to every request of the page (its script and event stream too).
fn as_ada(port: impl std::fmt::Display) -> String {
    format!(
        "http://ada:{}@127.0.0.1:{port}/dashboard",
        PASSWORD.replace(' ', "%20")
    )
}

/// The figure `metric` of all lines.
fn total(metric: &str) -> String {
    format!("[data-scope=\"total\"] [data-metric=\"{metric}\"]")
}

/// The figure `metric` of line `line`'s card.
fn of_line(line: &str, metric: &str) -> String {
    format!("[data-line=\"{line}\"] [data-metric=\"{metric}\"]")
}

fn sim(app: &TestApp, scenario: Scenario, to: &str) -> SimulateArgs {
    let mut a = SimulateArgs::for_url(&format!("{}/texml/inbound", app.base));
    a.scenario = scenario;
    a.to = to.to_owned();
    a
}

fn output_dir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&dir).expect("output directory");
    dir
}

#[tokio::test]
async fn the_page_in_chromium_follows_the_calls_live() {
    let port = free_port();
    let app = Arc::new(
        Spawn::default()
            .settings(crate::lines::lines_from(LINES))
            .settings(with_users)
            .settings(move |s| {
                s.server.port = port;
                s.server.public_url = format!("http://127.0.0.1:{port}").parse().expect("url");
                s.privacy.mask_caller_numbers = true;
                // The simulator's callers hang up at once: count them as abandons all the same.
                s.reports.short_abandon_secs = 0;
                // Agents free again at once, so the mixed run's calls find them.
                s.dial.wrap_up_secs = 0;
            })
            .start()
            .await,
    );
    // Without credentials: 401, and nothing of the page.
    let refused = reqwest::get(format!("{}/dashboard", app.base))
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    let driver = Driver::start().await;
    let browser = driver.browser().await;
    // Signing in: the browser sends these credentials, as after the sign-in prompt, to every
    // request of the page (its script and event stream too).
    browser.goto(&as_ada(port)).await.expect("the page");
    assert_eq!(browser.title().await.unwrap(), "Switchboard · live");
    viewport(&browser, 1280, 720).await;
    shows(&browser, "#conn", "live").await;
    shows(&browser, &total("waiting"), "0").await;
    shows(&browser, &total("agents-available"), "3").await;
    shows(&browser, &total("offered-today"), "0").await;
    shows(&browser, "#who", "ada · supervisor").await;

    // Two callers wait on the hotline (the simulator leaves them ringing).
    let mut held = sim(&app, Scenario::Hold, "+18005550199");
    held.calls = 2;
    let report = run(held).await.expect("held calls");
    assert_eq!(report.errors, 0);
    shows(&browser, &total("waiting"), "2").await;
    shows(&browser, &of_line("coc", "waiting"), "2").await;
    shows(&browser, &of_line("support", "waiting"), "0").await;
    let caller = text(&browser, "[data-line=\"coc\"] .calls li span")
        .await
        .unwrap();
    assert!(caller.starts_with("+1202•••0142"), "masked: {caller}");
    assert!(!caller.contains(CALLER));

    // A support call is answered and talks for a while (real seconds, --pace).
    let mut talk = sim(&app, Scenario::Answer, "+18005550100");
    talk.pace = Duration::from_secs(4);
    let talking = tokio::spawn(run(talk));
    shows(&browser, &total("in-conversation"), "1").await;
    shows(&browser, &of_line("support", "in-conversation"), "1").await;
    shows(&browser, &total("agents-on-call"), "1").await;
    assert_eq!(talking.await.unwrap().expect("answered").errors, 0);
    shows(&browser, &total("in-conversation"), "0").await;
    shows(&browser, &total("answered-today"), "1").await;

    // A mixed run: answered, voicemail, abandoned; the page counts what the simulator played.
    let mut mixed = sim(&app, Scenario::Mix, "+18005550100");
    mixed.calls = 30;
    let report = run(mixed).await.expect("mixed calls");
    assert_eq!(report.errors, 0);
    let count = |o: &str| report.outcomes.get(o).copied().unwrap_or(0);
    let (answered, voicemail, abandoned) =
        (count("answered"), count("voicemail"), count("abandoned"));
    assert!(
        answered > 0 && voicemail > 0 && abandoned > 0,
        "{:?}",
        report.outcomes
    );
    shows(
        &browser,
        &total("answered-today"),
        &(answered + 1).to_string(),
    )
    .await;
    shows(&browser, &total("voicemail-today"), &voicemail.to_string()).await;
    shows(&browser, &total("abandoned-today"), &abandoned.to_string()).await;
    shows(
        &browser,
        &total("offered-today"),
        &(answered + 1 + voicemail + abandoned).to_string(),
    )
    .await;
    shows(&browser, &total("waiting"), "2").await;

    // The screenshot after the mixed run, at 1280×720.
    let shot = browser.screenshot().await.expect("screenshot");
    let path = output_dir().join("dashboard.png");
    std::fs::write(&path, &shot).expect("screenshot written");
    eprintln!("dashboard screenshot: {}", path.display());
    // The other theme (headless Chromium prefers light), kept for the next visit.
    browser
        .find(Locator::Css("#theme"))
        .await
        .expect("the theme button")
        .click()
        .await
        .expect("click");
    let theme = browser
        .execute(
            "return document.documentElement.getAttribute('data-theme');",
            vec![],
        )
        .await
        .expect("theme");
    assert_eq!(theme, "dark");
    let dark = browser.screenshot().await.expect("screenshot");
    std::fs::write(output_dir().join("dashboard-dark.png"), &dark).expect("written");

    // A supervisor closes the hotline from the page.
    browser
        .find(Locator::Css("[data-line=\"coc\"] .line-act"))
        .await
        .expect("the hotline's button")
        .click()
        .await
        .expect("click");
    // As rendered (the badge is in capitals).
    shows(&browser, "[data-line=\"coc\"] .badge", "CLOSED").await;

    // On a phone: one column, still every figure.
    viewport(&browser, 390, 844).await;
    shows(&browser, &total("waiting"), "2").await;
    let wider = browser
        .execute(
            "return document.documentElement.scrollWidth - window.innerWidth;",
            vec![],
        )
        .await
        .expect("widths");
    assert!(
        wider.as_i64().is_some_and(|w| w <= 0),
        "the page is wider than the phone by {wider}px"
    );
    let phone = browser.screenshot().await.expect("screenshot");
    std::fs::write(output_dir().join("dashboard-phone.png"), &phone).expect("written");

    browser.close().await.expect("browser closes");
}

#[tokio::test]
async fn the_page_reconnects_after_a_restart_and_says_when_the_password_changed() {
    use switchboard::startup::{Application, Overrides, ShutdownHandle};
    let port = free_port();
    let start = |hash: String| async move {
        let mut s = crate::helpers::test_settings();
        s.server.port = port;
        with_users(&mut s);
        for u in &mut s.dashboard.users {
            u.password_hash = hash.clone();
        }
        let app = Application::build_with(s, Overrides::default())
            .await
            .expect("server");
        let stop: ShutdownHandle = app.shutdown_handle();
        (stop, tokio::spawn(app.run_until_stopped()))
    };
    let (stop, run) = start(crate::dashboard::hash()).await;
    let driver = Driver::start().await;
    let browser = driver.browser().await;
    browser.goto(&as_ada(port)).await.expect("the page");
    shows(&browser, "#conn", "live").await;

    // A restart with the same password: the page finds its way back and follows the new server.
    stop.trigger();
    run.await.unwrap().unwrap();
    let (stop, run) = start(crate::dashboard::hash()).await;
    let app = TestApp {
        base: format!("http://127.0.0.1:{port}"),
        client: reqwest::Client::new(),
        notices: Default::default(),
    };
    app.inbound("CA-after-restart", CALLER).await;
    shows(&browser, &total("waiting"), "1").await;
    shows(&browser, "#conn", "live").await;

    // A restart with a new password: the old one is refused, and the page says so.
    stop.trigger();
    run.await.unwrap().unwrap();
    let other = switchboard::dashboard::auth::hash_password("another passphrase").unwrap();
    let (stop, _run) = start(other).await;
    shows(&browser, "#conn", "signed out · reload to sign in").await;
    browser.close().await.expect("browser closes");
    stop.trigger();
}

#[tokio::test]
async fn a_supervisor_mutes_a_conference_caller_from_the_page() {
    use crate::conference::{ada_in_the_room, fake_api, hotline, wait_for};
    let api = fake_api(false).await;
    let clock = Arc::new(switchboard::time::ManualClock::at(crate::helpers::T0));
    let app = hotline(&api, false, clock, with_users).await;
    ada_in_the_room(&app, &api, "CA-page").await;

    let driver = Driver::start().await;
    let browser = driver.browser().await;
    let port = app.base.rsplit(':').next().expect("port");
    browser.goto(&as_ada(port)).await.expect("the page");
    viewport(&browser, 1280, 720).await;
    shows(&browser, "#conn", "live").await;
    // The room, with who is in it.
    let caller = "[data-call=\"CA-page\"] [data-participant=\"caller\"]";
    let organizer = "[data-call=\"CA-page\"] [data-participant=\"organizer-ada\"]";
    shows(&browser, &format!("{caller} small"), "in the room").await;
    shows(&browser, &format!("{organizer} span"), "Ada").await;
    // Mute, from the page: the provider is asked, and the page shows it.
    browser
        .find(Locator::Css(&format!("{caller} button")))
        .await
        .expect("the mute button")
        .click()
        .await
        .expect("click");
    let muted = wait_for(&api, "/Conferences/CF-room-1/Participants/caller", 2).await;
    assert_eq!(muted[1].fields["Muted"], true);
    shows(&browser, &format!("{caller} small"), "in the room · muted").await;
    shows(&browser, &format!("{caller} button"), "Unmute").await;
    let shot = browser.screenshot().await.expect("screenshot");
    let path = output_dir().join("conference.png");
    std::fs::write(&path, &shot).expect("screenshot written");
    eprintln!("conference screenshot: {}", path.display());
    browser.close().await.expect("closed");
}
