//! Starting the server and speaking to it as the provider does.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use reqwest::StatusCode;
use switchboard::call::FactKind;
use switchboard::config::Settings;
use switchboard::sink::{Record, Sink};
use switchboard::startup::{Application, Overrides};
use switchboard::time::{Clock, ManualClock};

/// The public URL every test server writes into its documents (golden files depend on it).
pub const PUBLIC_URL: &str = "https://switchboard.test";

/// A throw-away sink: records every record the server emits, in order.
#[derive(Default)]
pub struct Collector(Mutex<Vec<Record>>);

impl Collector {
    /// Everything collected so far, emptying the collector.
    pub fn take(&self) -> Vec<Record> {
        std::mem::take(&mut *self.0.lock().expect("collector lock"))
    }

    /// Everything collected so far.
    pub fn all(&self) -> Vec<Record> {
        self.0.lock().expect("collector lock").clone()
    }
}

impl Sink for Collector {
    fn accept(&self, record: &Record) {
        self.0.lock().expect("collector lock").push(record.clone());
    }
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    /// Every record the server emitted (a sink added after the real ones).
    pub notices: Arc<Collector>,
}

pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The demo configuration on port 0, with the repository's templates and audio.
pub fn test_settings() -> Settings {
    let mut s = Settings::demo().expect("demo settings");
    s.server.host = "127.0.0.1".into();
    s.server.port = 0;
    s.server.workers = 1;
    s.server.shutdown_delay_secs = 0;
    s.server.public_url = PUBLIC_URL.parse().expect("url");
    s.paths.templates = repo_path("templates/prompts.toml");
    s.paths.audio = repo_path("audio");
    // Tests that keep line overrides in a file choose their own.
    s.admin.overrides_file = None;
    // Each server its own SQLite ledger. Recordings are archived only where a test serves them
    // (their URLs in the other tests point nowhere).
    s.paths.data = scratch_dir("data");
    s.recordings.archive = false;
    s
}

/// A port nobody listens on now (for a server that must know its own address, or a service).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A new empty directory under the system's temporary directory, unique to this test run.
pub fn scratch_dir(tag: &str) -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("sb-{tag}-{}-{n}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

/// How to start a test server: settings tweaks, a clock, extra sinks. Every `spawn_*` below is
/// one line over it.
/// A change to the test settings.
type Tweak<'a> = Box<dyn FnOnce(&mut Settings) + 'a>;

#[derive(Default)]
pub struct Spawn<'a> {
    tweaks: Vec<Tweak<'a>>,
    clock: Option<Arc<dyn Clock>>,
    sinks: Vec<Arc<dyn Sink>>,
}

impl<'a> Spawn<'a> {
    pub fn settings(mut self, tweak: impl FnOnce(&mut Settings) + 'a) -> Spawn<'a> {
        self.tweaks.push(Box::new(tweak));
        self
    }

    pub fn clock(mut self, clock: Arc<ManualClock>) -> Spawn<'a> {
        self.clock = Some(clock);
        self
    }

    /// One more sink, after the real ones and the collector.
    pub fn sink(mut self, sink: Arc<dyn Sink>) -> Spawn<'a> {
        self.sinks.push(sink);
        self
    }

    /// The settings this server would start with.
    pub fn build_settings(self) -> (Settings, Option<Arc<dyn Clock>>) {
        let mut settings = test_settings();
        for tweak in self.tweaks {
            tweak(&mut settings);
        }
        settings.validate().expect("test settings are valid");
        (settings, self.clock)
    }

    /// Builds and runs the server on port 0; returns it once it listens.
    pub async fn start(mut self) -> TestApp {
        if std::env::var_os("TEST_LOG").is_some() {
            std::mem::forget(switchboard::telemetry::init(
                &Settings::demo().expect("demo").log,
            ));
        }
        let mut sinks: Vec<Arc<dyn Sink>> = std::mem::take(&mut self.sinks);
        let (settings, clock) = self.build_settings();
        let notices = Arc::new(Collector::default());
        sinks.insert(0, notices.clone());
        let overrides = Overrides { sinks, clock };
        let app = Application::build_with(settings, overrides)
            .await
            .expect("server builds");
        let base = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        TestApp {
            base,
            client: reqwest::Client::new(),
            notices,
        }
    }
}

pub async fn spawn_app() -> TestApp {
    Spawn::default().start().await
}

pub async fn spawn_with(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    Spawn::default().settings(tweak).start().await
}

pub async fn spawn_with_clock(
    tweak: impl FnOnce(&mut Settings),
    clock: Arc<ManualClock>,
) -> TestApp {
    Spawn::default().settings(tweak).clock(clock).start().await
}

/// What the server sent back to a provider request: status, content type and body.
pub struct Received {
    pub status: StatusCode,
    pub content_type: String,
    pub body: String,
}

impl TestApp {
    async fn answer(&self, req: reqwest::RequestBuilder) -> Received {
        let res = req.send().await.expect("request sent");
        let status = res.status();
        let content_type = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = res.text().await.expect("body");
        Received {
            status,
            content_type,
            body,
        }
    }

    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> Received {
        self.answer(self.client.post(format!("{}{path}", self.base)).form(form))
            .await
    }

    /// The provider posting `form` to `url`, absolute as a document or API request wrote it
    /// (under [`PUBLIC_URL`]).
    pub async fn post_to(&self, url: &str, form: &[(&str, &str)]) -> Received {
        let path = url
            .strip_prefix(PUBLIC_URL)
            .unwrap_or_else(|| panic!("{url} is not under {PUBLIC_URL}"));
        self.post_form(path, form).await
    }

    pub async fn get_query(&self, path: &str, query: &[(&str, &str)]) -> Received {
        self.answer(self.client.get(format!("{}{path}", self.base)).query(query))
            .await
    }

    /// The voice URL, as Telnyx requests it by default (GET with query parameters).
    pub async fn inbound(&self, sid: &str, from: &str) -> Received {
        self.get_query("/texml/inbound", &inbound_fields(sid, from))
            .await
    }

    /// The voice URL as a form POST.
    pub async fn inbound_post(&self, sid: &str, from: &str) -> Received {
        self.post_form("/texml/inbound", &inbound_fields(sid, from))
            .await
    }

    /// A Dial action of `round` (the URL Switchboard wrote in the document).
    pub async fn dial_action(
        &self,
        sid: &str,
        round: u8,
        status: &str,
        bridged: Option<(&str, &str)>,
    ) -> Received {
        let mut form = vec![
            ("AccountSid", "ACtest"),
            ("CallSid", sid),
            ("From", "+12025550142"),
            ("To", "+18005550100"),
            ("DialCallStatus", status),
        ];
        if let Some((leg, duration)) = bridged {
            form.push(("DialCallSid", leg));
            form.push(("DialCallDuration", duration));
        }
        self.post_form(&format!("/texml/dial?round={round}"), &form)
            .await
    }

    /// The Dial action of group `group` of `round` (a round of several `<Dial>`s, under Twilio).
    pub async fn dial_action_group(
        &self,
        sid: &str,
        round: u8,
        group: u8,
        status: &str,
    ) -> Received {
        let form = [
            ("AccountSid", "ACtest"),
            ("CallSid", sid),
            ("From", "+12025550142"),
            ("To", "+18005550100"),
            ("DialCallStatus", status),
        ];
        let path = match group {
            0 => format!("/texml/dial?round={round}"),
            g => format!("/texml/dial?round={round}&group={g}"),
        };
        self.post_form(&path, &form).await
    }

    /// A status callback for a dialled leg.
    pub async fn leg(
        &self,
        parent: &str,
        leg: &str,
        status: &str,
        to: &str,
        seq: &str,
    ) -> StatusCode {
        self.post_form(
            "/texml/status",
            &[
                ("AccountSid", "ACtest"),
                ("CallSid", leg),
                ("ParentCallSid", parent),
                ("CallStatus", status),
                ("CallbackSource", "call-progress-events"),
                ("From", "+18005550100"),
                ("To", to),
                ("SequenceNumber", seq),
                ("Timestamp", "2026-11-21 12:00:00.000000Z"),
            ],
        )
        .await
        .status
    }

    /// A status callback for the caller's own call.
    pub async fn call_status(&self, sid: &str, status: &str) -> StatusCode {
        self.post_form(
            "/texml/status",
            &[
                ("AccountSid", "ACtest"),
                ("CallSid", sid),
                ("CallStatus", status),
                ("From", "+12025550142"),
                ("To", "+18005550100"),
                ("CallDuration", "61"),
            ],
        )
        .await
        .status
    }

    /// The Record action.
    pub async fn record_action(&self, sid: &str) -> Received {
        self.post_form(
            "/texml/voicemail",
            &[
                ("CallSid", sid),
                ("RecordingUrl", "https://rec.example/vm.mp3"),
                ("RecordingDuration", "14"),
                ("Digits", "hangup"),
            ],
        )
        .await
    }

    /// A recording status callback of `kind` (voicemail or conversation).
    pub async fn recording(&self, sid: &str, kind: &str, url: &str, secs: &str) -> StatusCode {
        let recording_sid = format!("RE-{sid}-{kind}");
        self.post_form(
            &format!("/texml/recording?kind={kind}"),
            &[
                ("AccountSid", "ACtest"),
                ("CallSid", sid),
                ("RecordingSid", &recording_sid),
                ("RecordingStatus", "completed"),
                ("RecordingUrl", url),
                ("RecordingDuration", secs),
                ("RecordingChannels", "1"),
            ],
        )
        .await
        .status
    }

    /// `GET /metrics`, as text.
    pub async fn metrics(&self) -> String {
        let res = self
            .client
            .get(format!("{}/metrics", self.base))
            .send()
            .await;
        res.expect("metrics answer")
            .text()
            .await
            .expect("metrics body")
    }

    /// One sample of `/metrics`, by its name with labels as written (e.g.
    /// `switchboard_calls_total{outcome="missed",line="main"}`); `None` when absent.
    pub async fn metric(&self, sample: &str) -> Option<f64> {
        metric_in(&self.metrics().await, sample)
    }

    /// Calls in progress, as the store counts them.
    pub async fn live(&self) -> usize {
        let live = self.metric("switchboard_live_calls").await;
        live.expect("live calls in /metrics") as usize
    }

    /// The facts emitted for inbound call `sid`, in order.
    pub fn notices_for(&self, sid: &str) -> Vec<FactKind> {
        facts_for(&self.notices.all(), sid)
    }
}

/// The facts among `records` about inbound call `sid`, in order.
pub fn facts_for(records: &[Record], sid: &str) -> Vec<FactKind> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Call { sid: s, fact, .. } if s.as_str() == sid => Some(fact.kind.clone()),
            _ => None,
        })
        .collect()
}

/// The value of `sample` in a `/metrics` exposition.
pub fn metric_in(text: &str, sample: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(sample)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

fn inbound_fields<'a>(sid: &'a str, from: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("AccountSid", "ACtest"),
        ("CallSid", sid),
        ("CallSidLegacy", "v3:legacy"),
        ("CallerId", from),
        ("CallingPartyType", "pstn"),
        ("CallStatus", "in-progress"),
        ("ConnectionId", "1234567890"),
        ("From", from),
        ("To", "+18005550100"),
    ]
}

/// Compares `body` with `tests/golden/{name}.xml` to the byte. `UPDATE_GOLDEN=1` rewrites the
/// file instead (review the diff before committing it).
pub fn assert_golden(name: &str, answer: &Received) {
    assert_eq!(answer.status, StatusCode::OK, "{name}: {}", answer.body);
    assert_eq!(
        answer.content_type, "application/xml; charset=utf-8",
        "{name}"
    );
    let path = repo_path(&format!("tests/golden/{name}.xml"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &answer.body).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    });
    assert_eq!(
        answer.body,
        expected,
        "document differs from {}",
        path.display()
    );
}

/// 2026-11-21 12:00:00 UTC: the fixed start of every test clock.
pub const T0: u64 = 1_795_262_400_000;

/// Slack as a wiremock server; its webhook URL set in `settings`, retries fast.
pub fn use_slack(settings: &mut Settings, slack: &wiremock::MockServer) {
    settings.slack.webhook_url = Some(format!("{}/services/T000/B000/fake", slack.uri()).into());
    settings.slack.retry_base_ms = 20;
    settings.slack.retry_max_ms = 200;
}

/// Waits (up to 10 s) until `server` has received at least `n` requests; returns their JSON
/// bodies in order.
pub async fn wait_for_messages(server: &wiremock::MockServer, n: usize) -> Vec<serde_json::Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let received = server.received_requests().await.unwrap_or_default();
        if received.len() >= n {
            return received
                .iter()
                .map(|r| serde_json::from_slice(&r.body).expect("a JSON body"))
                .collect();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "expected {n} requests, got {}",
            received.len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Compares `value` with `tests/golden/slack/{name}.json` (`UPDATE_GOLDEN=1` rewrites it).
pub fn assert_golden_json(name: &str, value: &serde_json::Value) {
    let path = repo_path(&format!("tests/golden/slack/{name}.json"));
    let pretty = serde_json::to_string_pretty(value).expect("json") + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
        std::fs::write(&path, &pretty).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    });
    assert_eq!(pretty, expected, "message differs from {}", path.display());
}

/// The SIP URIs a voice document rings, in order.
pub fn ringing(answer: &Received) -> Vec<String> {
    let doc = roxmltree::Document::parse(&answer.body).expect("well-formed XML");
    doc.descendants()
        .filter(|n| n.has_tag_name("Sip"))
        .filter_map(|n| n.text().map(str::to_owned))
        .collect()
}

/// Every leg a voice document rings: its target (SIP URI or number) and its whisper URL, if the
/// leg is screened.
pub fn legs(answer: &Received) -> Vec<(String, Option<String>)> {
    let doc = roxmltree::Document::parse(&answer.body).expect("well-formed XML");
    doc.descendants()
        .filter(|n| n.has_tag_name("Sip") || n.has_tag_name("Number"))
        .map(|n| {
            (
                n.text().unwrap_or_default().to_owned(),
                n.attribute("url").map(str::to_owned),
            )
        })
        .collect()
}

/// The `action` of a document's `<Gather>`.
pub fn gather_action(answer: &Received) -> String {
    let doc = roxmltree::Document::parse(&answer.body).expect("well-formed XML");
    doc.descendants()
        .find(|n| n.has_tag_name("Gather"))
        .and_then(|n| n.attribute("action"))
        .unwrap_or_else(|| panic!("no Gather in {}", answer.body))
        .to_owned()
}

impl TestApp {
    /// The provider fetching a screened leg's whisper `url` (absolute, as the document wrote it)
    /// for leg `leg` to `to`, a child of `parent`.
    pub async fn whisper(&self, url: &str, parent: &str, leg: &str, to: &str) -> Received {
        self.follow(url, parent, leg, to, None).await
    }

    /// The agent on leg `leg` pressed `digits` (`None`: the provider requested the action with
    /// none) at the whisper whose Gather action is `action`.
    pub async fn press(
        &self,
        action: &str,
        parent: &str,
        leg: &str,
        to: &str,
        digits: Option<&str>,
    ) -> Received {
        self.follow(action, parent, leg, to, digits).await
    }

    async fn follow(
        &self,
        url: &str,
        parent: &str,
        leg: &str,
        to: &str,
        digits: Option<&str>,
    ) -> Received {
        let mut form = vec![
            ("AccountSid", "ACtest"),
            ("CallSid", leg),
            ("ParentCallSid", parent),
            ("CallStatus", "in-progress"),
            ("From", "+18005550100"),
            ("To", to),
        ];
        if let Some(d) = digits {
            form.push(("Digits", d));
        }
        self.post_to(url, &form).await
    }
}
