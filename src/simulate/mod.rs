//! `switchboard simulate`: plays calls against any TeXML/TwiML server the way the provider does.
//! It requests the voice URL, interprets each document (Say, Play, Pause, Gather, Dial with
//! Number/Sip, Record, Redirect, Hangup, Reject; anything else is reported), sends the status
//! callbacks a provider sends for each dialled leg, follows action URLs and redirects, and ends
//! with the call's own status callback. A screened leg that answers fetches its whisper and
//! presses 1 (or nothing, when a machine answered; two at once in a race). It only ever contacts
//! the hosts of the URLs it was given.

pub mod doc;
pub mod provider_api;
mod report;
mod room;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use url::Url;

pub use report::{KindStats, Report};

use crate::signature::twilio_signature;
use doc::Element;

/// What the simulated caller and agents do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// Agent `--agent` answers on round `--round`.
    Answer,
    /// Nobody answers; the caller leaves a message.
    Voicemail,
    /// The caller hangs up while the agents ring.
    Abandon,
    /// As `answer`, pressing `--digits` at the Gathers (`1` when no digits are given).
    Gather,
    /// Only the voice request: the call stays ringing (to measure memory per live call).
    Hold,
    /// On round `--round`, agent `--agent`'s voicemail answers and never presses a key: a
    /// screened leg is hung up and the ringing goes on (an unscreened one takes the call).
    Machine,
    /// On round `--round`, agent `--agent` and the next one answer and press 1 at the same
    /// moment: exactly one must be connected.
    Race,
    /// For load: answered on round 1 (50%), answered on round 2 (20%), voicemail (20%),
    /// abandoned (10%), seeded by `--seed`.
    Mix,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NoInput {
    FallThrough,
    Empty,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum VoiceMethod {
    Get,
    Post,
}

#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// The voice URL (the TeXML application's).
    #[arg(long, default_value = "http://127.0.0.1:8080/texml/inbound")]
    pub url: String,
    /// How the voice URL is requested (Telnyx's default is GET).
    #[arg(long, value_enum, default_value = "get")]
    pub method: VoiceMethod,
    /// The application's status callback URL [default: /texml/status on the voice URL's host].
    #[arg(long)]
    pub status_url: Option<String>,
    #[arg(long, value_enum, default_value = "answer")]
    pub scenario: Scenario,
    /// With `answer`, `machine`, `race`: the round of ringing that is answered (1 = the first;
    /// a round rung in waves answers in its first).
    #[arg(long, default_value_t = 1)]
    pub round: u32,
    /// With `answer`, `machine`, `race`: which dialled agent answers (1 = the first noun of the
    /// Dial). A screened agent (a noun with a whisper `url`) presses 1 unless a machine answers.
    #[arg(long, default_value_t = 1)]
    pub agent: usize,
    /// The keys pressed at each Gather in turn, comma-separated; an empty entry (or running out)
    /// presses nothing: `9,,2` presses 9, then nothing, then 2.
    #[arg(long, default_value = "")]
    pub digits: String,
    /// How the provider reports a Gather without a key: it goes on to the next verb
    /// (`fall-through`, what Twilio does and Telnyx may do) or posts the action with empty digits.
    #[arg(long, value_enum, default_value = "fall-through")]
    pub no_input: NoInput,
    /// How long answered calls talk, in (simulated) seconds.
    #[arg(long, default_value_t = 42)]
    pub talk_secs: u32,
    /// Real time each call lingers while its agents ring, while it talks and while the caller
    /// leaves a message (`2s`, `500ms`), so a dashboard can watch; 0: as fast as possible.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub pace: Duration,
    #[arg(long, default_value_t = 1)]
    pub calls: usize,
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Start calls at this many per second (open loop, at most `--concurrency` at once);
    /// 0: each worker starts its next call as soon as the last ended.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Print the whole conversation: each document and each callback.
    #[arg(long)]
    pub trace: bool,
    /// Also write the figures as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Sign requests as Telnyx does: the Ed25519 private key (base64 of its 32-byte seed).
    #[arg(long, env = "SWITCHBOARD_SIM_TELNYX_KEY", hide_env_values = true)]
    pub telnyx_key: Option<String>,
    /// Sign requests as Twilio does: the auth token.
    #[arg(long, env = "SWITCHBOARD_SIM_TWILIO_TOKEN", hide_env_values = true)]
    pub twilio_token: Option<String>,
    #[arg(long, default_value = "+12025550142")]
    pub from: String,
    #[arg(long, default_value = "+18005550100")]
    pub to: String,
    /// Seed of the `mix` scenario.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Conference-mode lines: listen here as the provider's REST API (`127.0.0.1:9099`), where
    /// the server places the organizers' calls (point its `telnyx.api_base_url` at
    /// `http://ADDRESS/v2`, or `twilio.api_base_url` at `http://ADDRESS`). The simulator then
    /// plays the organizers too: their phones ring, one answers and presses 1, the room's
    /// callbacks, the announcement, the recording.
    #[arg(long)]
    pub provider_api: Option<String>,
}

impl SimulateArgs {
    /// The defaults, for `url` (as the command line gives them).
    pub fn for_url(url: &str) -> SimulateArgs {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: SimulateArgs,
        }
        let mut args = Wrapper::parse_from(["simulate"]).args;
        args.url = url.to_owned();
        args
    }
}

/// What one call is told to do.
#[derive(Debug, Clone, Copy)]
struct Plan {
    name: &'static str,
    /// The Dial round that is answered (0: none).
    answer_round: u32,
    agent: usize,
    abandon: bool,
    gather: bool,
    hold: bool,
    /// The answering phone is a voicemail box: it never presses a key at a whisper.
    machine: bool,
    /// Two agents answer and press 1 at once.
    race: bool,
}

fn plan(args: &SimulateArgs, call: u64) -> Plan {
    let base = Plan {
        name: "answer",
        answer_round: args.round.max(1),
        agent: args.agent.max(1),
        abandon: false,
        gather: false,
        hold: false,
        machine: false,
        race: false,
    };
    match args.scenario {
        Scenario::Answer => base,
        Scenario::Gather => Plan {
            name: "gather",
            gather: true,
            ..base
        },
        Scenario::Voicemail => Plan {
            name: "voicemail",
            answer_round: 0,
            ..base
        },
        Scenario::Abandon => Plan {
            name: "abandon",
            abandon: true,
            ..base
        },
        Scenario::Hold => Plan {
            name: "hold",
            hold: true,
            ..base
        },
        Scenario::Machine => Plan {
            name: "machine",
            machine: true,
            ..base
        },
        Scenario::Race => Plan {
            name: "race",
            race: true,
            ..base
        },
        Scenario::Mix => {
            // A small, seeded, dependency-free mixer (splitmix64).
            let mut z = args
                .seed
                .wrapping_add(call.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            match (z ^ (z >> 31)) % 10 {
                0..=4 => Plan {
                    answer_round: 1,
                    ..base
                },
                5 | 6 => Plan {
                    answer_round: 2,
                    ..base
                },
                7 | 8 => Plan {
                    name: "voicemail",
                    answer_round: 0,
                    ..base
                },
                _ => Plan {
                    name: "abandon",
                    abandon: true,
                    ..base
                },
            }
        }
    }
}

/// Where one call went: the keys pressed, the lines its action URLs name, what rang, how it
/// ended (`line support → pressed 1 → line hotline → ring 1 → answered`).
#[derive(Default)]
struct Walk {
    steps: Vec<String>,
    line: Option<String>,
}

impl Walk {
    fn step(&mut self, step: String) {
        self.steps.push(step);
    }

    /// How the call ended, unless the last step said it already (`voicemail`).
    fn end(&mut self, outcome: &str) {
        if self.steps.last().map(String::as_str) != Some(outcome) {
            self.steps.push(outcome.to_owned());
        }
    }

    /// Notes the line an action URL names (`line=`), when it changes.
    fn line_of(&mut self, action: &str) {
        let line = Url::parse("http://x/")
            .and_then(|base| base.join(action))
            .ok()
            .and_then(|u| {
                u.query_pairs()
                    .find(|(k, _)| k == "line")
                    .map(|(_, v)| v.into_owned())
            });
        if let Some(line) = line.filter(|l| self.line.as_ref() != Some(l)) {
            self.steps.push(format!("line {line}"));
            self.line = Some(line);
        }
    }

    fn path(&self) -> String {
        self.steps.join(" → ")
    }
}

/// The round a `<Dial>` belongs to, from its action URL (`round=`), when it says.
fn dial_round(dial: &Element) -> Option<u32> {
    let action = Url::parse("http://x/")
        .ok()?
        .join(dial.attr("action")?)
        .ok()?;
    let round = action.query_pairs().find(|(k, _)| k == "round")?.1;
    round.parse().ok()
}

/// Which of a `<Dial>`'s `nouns` legs go off-hook in `round`: agent `--agent` (the last if
/// fewer), and in a race the one after it too.
fn answerers(plan: &Plan, round: u32, nouns: usize) -> Vec<usize> {
    if plan.answer_round != round || nouns == 0 {
        return Vec::new();
    }
    let first = (plan.agent - 1).min(nouns - 1);
    match plan.race && first + 1 < nouns {
        true => vec![first, first + 1],
        false => vec![first],
    }
}

/// Shared by every simulated call.
struct Sim {
    args: SimulateArgs,
    http: reqwest::Client,
    voice_url: Url,
    status_url: Url,
    allowed: HashSet<(String, u16)>,
    telnyx: Option<SigningKey>,
    report: Mutex<Report>,
    run_id: u64,
    trace: Mutex<Vec<String>>,
    /// The provider's REST API, faked (`--provider-api`).
    api: Option<provider_api::FakeApi>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    Post,
}

fn host_of(url: &Url) -> (String, u16) {
    (
        url.host_str().unwrap_or_default().to_owned(),
        url.port_or_known_default().unwrap_or(0),
    )
}

/// Plays `args.calls` calls, `args.concurrency` at a time, and returns the figures.
pub async fn run(args: SimulateArgs) -> Result<Report, String> {
    let voice_url = Url::parse(&args.url).map_err(|e| format!("--url: {e}"))?;
    let status_url = match &args.status_url {
        Some(u) => Url::parse(u).map_err(|e| format!("--status-url: {e}"))?,
        None => voice_url
            .join("/texml/status")
            .map_err(|e| format!("--url: {e}"))?,
    };
    let telnyx = match &args.telnyx_key {
        Some(k) => {
            let seed: [u8; 32] = BASE64
                .decode(k.trim())
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or("--telnyx-key: must be base64 of a 32-byte Ed25519 private key")?;
            Some(SigningKey::from_bytes(&seed))
        }
        None => None,
    };
    let allowed = [host_of(&voice_url), host_of(&status_url)]
        .into_iter()
        .collect();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(args.concurrency.max(1))
        .build()
        .map_err(|e| e.to_string())?;
    let api = match &args.provider_api {
        Some(listen) => {
            let api = provider_api::FakeApi::start(listen)?;
            eprintln!(
                "simulate: the provider's REST API (fake) listens at {}",
                api.base
            );
            Some(api)
        }
        None => None,
    };
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let sim = Arc::new(Sim {
        args: args.clone(),
        http,
        voice_url,
        status_url,
        allowed,
        telnyx,
        report: Mutex::new(Report::default()),
        run_id,
        trace: Mutex::new(Vec::new()),
        api,
    });
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..args.concurrency.max(1))
        .map(|_| {
            let sim = sim.clone();
            let next = next.clone();
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= sim.args.calls as u64 {
                        break;
                    }
                    if sim.args.rate > 0.0 {
                        let due = started + Duration::from_secs_f64(n as f64 / sim.args.rate);
                        tokio::time::sleep_until(due.into()).await;
                    }
                    let outcome = sim.play(n).await;
                    sim.record_outcome(outcome);
                }
            })
        })
        .collect();
    for w in workers {
        w.await.map_err(|e| e.to_string())?;
    }
    if let Some(api) = &sim.api {
        api.stop().await;
    }
    let mut report = std::mem::take(&mut *sim.report.lock().unwrap_or_else(|p| p.into_inner()));
    report.finish(args.calls, args.concurrency, started.elapsed());
    report.trace = std::mem::take(&mut *sim.trace.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(report)
}

/// Where a conference call went after its room.
enum Room {
    /// The caller hung up while the organizers rang.
    Abandoned,
    /// The next document: the caller's Dial action (after the room) or where the API moved them
    /// (voicemail). `recording`: the room's recording callback, when it was recorded.
    Next(Box<Next>),
}

struct Next {
    url: Url,
    doc: Element,
    answered: bool,
    recording: Option<Url>,
}

/// How one request went.
struct Fetched {
    status: u16,
    body: String,
}

impl Sim {
    /// `--pace`: a call stays where it is this long (real time).
    async fn linger(&self) {
        if !self.args.pace.is_zero() {
            tokio::time::sleep(self.args.pace).await;
        }
    }

    fn note(&self, line: String) {
        if self.args.trace {
            self.trace
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(line);
        }
    }

    fn record_path(&self, path: String) {
        self.note(format!("path: {path}"));
        let mut report = self.report.lock().unwrap_or_else(|p| p.into_inner());
        *report.paths.entry(path).or_default() += 1;
    }

    fn record_outcome(&self, outcome: Result<String, String>) {
        let mut report = self.report.lock().unwrap_or_else(|p| p.into_inner());
        match outcome {
            Ok(o) => *report.outcomes.entry(o).or_default() += 1,
            Err(e) => {
                *report.outcomes.entry("error".into()).or_default() += 1;
                report.error(e);
            }
        }
    }

    fn resolve(&self, base: &Url, target: &str) -> Result<Url, String> {
        let url = base
            .join(target.trim())
            .map_err(|e| format!("bad URL {target:?}: {e}"))?;
        if !self.allowed.contains(&host_of(&url)) {
            return Err(format!(
                "refused to contact {} (only the hosts of --url and --status-url)",
                url.host_str().unwrap_or("?")
            ));
        }
        Ok(url)
    }

    /// One HTTP request as the provider makes it, signed when a key is given; timed by `kind`.
    async fn request(
        &self,
        kind: &str,
        url: &Url,
        method: Method,
        params: &[(&str, String)],
    ) -> Result<Fetched, String> {
        let form = {
            let mut s = form_urlencoded::Serializer::new(String::new());
            for (k, v) in params {
                s.append_pair(k, v);
            }
            s.finish()
        };
        let (full_url, body) = match method {
            Method::Get => {
                let mut u = url.clone();
                let query = match u.query() {
                    Some(q) if !q.is_empty() => format!("{q}&{form}"),
                    _ => form,
                };
                u.set_query(Some(&query));
                (u, String::new())
            }
            Method::Post => (url.clone(), form),
        };
        let mut req = match method {
            Method::Get => self.http.get(full_url.clone()),
            Method::Post => self
                .http
                .post(full_url.clone())
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body.clone()),
        };
        if let Some(key) = &self.telnyx {
            let ts = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
                .to_string();
            let signed = format!("{ts}|{body}");
            let sig = BASE64.encode(key.sign(signed.as_bytes()).to_bytes());
            req = req
                .header("telnyx-timestamp", ts)
                .header("telnyx-signature-ed25519", sig);
        }
        if let Some(token) = &self.args.twilio_token {
            let fields: Vec<(String, String)> = match method {
                Method::Get => Vec::new(),
                Method::Post => params
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect(),
            };
            req = req.header(
                "x-twilio-signature",
                twilio_signature(token, full_url.as_str(), &fields),
            );
        }
        self.note(format!(
            "→ {} {} {}",
            if method == Method::Get { "GET" } else { "POST" },
            url,
            params
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        ));
        let started = Instant::now();
        let sent = req.send().await;
        let result = match sent {
            Ok(res) => {
                let status = res.status().as_u16();
                let body = res.text().await.unwrap_or_default();
                Ok(Fetched { status, body })
            }
            Err(e) => Err(format!("{kind}: {}", e.without_url())),
        };
        let elapsed = started.elapsed();
        let mut report = self.report.lock().unwrap_or_else(|p| p.into_inner());
        let ok = matches!(&result, Ok(a) if (200..300).contains(&a.status));
        report.observe(kind, elapsed, ok);
        drop(report);
        match &result {
            Ok(a) if a.body.trim().is_empty() => self.note(format!("← {}", a.status)),
            Ok(a) => self.note(format!("← {}\n{}", a.status, a.body.trim_end())),
            Err(e) => self.note(format!("← error: {e}")),
        }
        let answered = result?;
        if !(200..300).contains(&answered.status) {
            return Err(format!("{kind}: {} answered {}", url, answered.status));
        }
        Ok(answered)
    }

    /// Requests a document and parses it.
    async fn document(
        &self,
        kind: &str,
        url: &Url,
        method: Method,
        params: &[(&str, String)],
    ) -> Result<Element, String> {
        let answered = self.request(kind, url, method, params).await?;
        doc::parse(&answered.body).map_err(|e| format!("{kind}: {url}: {e}"))
    }

    /// Follows `target` (relative to `base`) to the next document: an action URL or a redirect.
    async fn follow(
        &self,
        kind: &str,
        base: &Url,
        target: &str,
        method: Method,
        params: &[(&str, String)],
    ) -> Result<(Url, Element), String> {
        let next = self.resolve(base, target)?;
        let doc = self.document(kind, &next, method, params).await?;
        Ok((next, doc))
    }

    fn method_of(el: &Element, attr: &str) -> Method {
        match el.attr(attr).map(str::to_ascii_uppercase).as_deref() {
            Some("GET") => Method::Get,
            _ => Method::Post,
        }
    }

    /// Plays call number `n`; returns its outcome.
    async fn play(&self, n: u64) -> Result<String, String> {
        let plan = plan(&self.args, n);
        let sid = format!("SIM{}-{n}", self.run_id);
        let from = self.args.from.clone();
        let to = self.args.to.clone();
        let common = |status: &str| {
            vec![
                ("AccountSid", "ACsimulator".to_owned()),
                ("CallSid", sid.clone()),
                ("From", from.clone()),
                ("To", to.clone()),
                ("CallStatus", status.to_owned()),
                ("Direction", "inbound".to_owned()),
            ]
        };
        self.note(format!("=== call {sid} ({})", plan.name));
        let voice_method = match self.args.method {
            VoiceMethod::Get => Method::Get,
            VoiceMethod::Post => Method::Post,
        };
        let mut url = self.voice_url.clone();
        let mut doc = self
            .document("voice", &url, voice_method, &common("ringing"))
            .await?;
        if plan.hold {
            return Ok("held".into());
        }
        let mut outcome = "hangup".to_owned();
        let mut round = 0u32;
        let mut walk = Walk::default();
        let digits = match (plan.gather, self.args.digits.trim()) {
            (true, "") => "1",
            (_, d) => d,
        };
        let mut keys = digits
            .split(',')
            .map(str::trim)
            .filter(|_| !digits.is_empty());
        let mut recording: Option<(Url, Method)> = None;
        let mut room_recording: Option<Url> = None;
        let mut documents = 1;
        'documents: loop {
            if documents > 32 {
                return Err(format!("call {sid}: more than 32 documents (a loop?)"));
            }
            for verb in &doc.children {
                match verb.name.as_str() {
                    "Say" | "Play" | "Pause" => {}
                    "Gather" => {
                        let target = verb.attr("action").unwrap_or(url.as_str()).to_owned();
                        walk.line_of(&target);
                        let key = keys.next().filter(|k| !k.is_empty());
                        walk.step(match key {
                            Some(k) => format!("pressed {k}"),
                            None => "no key".to_owned(),
                        });
                        if key.is_none() && self.args.no_input == NoInput::FallThrough {
                            continue;
                        }
                        let mut params = common("in-progress");
                        params.push(("Digits", key.unwrap_or_default().to_owned()));
                        let method = Self::method_of(verb, "method");
                        (url, doc) = self
                            .follow("gather", &url, &target, method, &params)
                            .await?;
                        documents += 1;
                        continue 'documents;
                    }
                    "Dial" if verb.children.iter().any(|c| c.name == "Conference") => {
                        let next = self
                            .conference(&url, verb, &sid, n, &plan, &mut walk)
                            .await?;
                        match next {
                            Room::Abandoned => {
                                walk.end("abandoned");
                                self.record_path(walk.path());
                                return Ok("abandoned".into());
                            }
                            Room::Next(next) => {
                                let Next {
                                    url: u,
                                    doc: d,
                                    answered,
                                    recording: r,
                                } = *next;
                                if answered {
                                    outcome = "answered".into();
                                }
                                if r.is_some() {
                                    room_recording = r;
                                }
                                (url, doc) = (u, d);
                                documents += 1;
                                continue 'documents;
                            }
                        }
                    }
                    "Dial" => {
                        round = dial_round(verb).unwrap_or(round + 1);
                        let nouns: Vec<&Element> = verb
                            .children
                            .iter()
                            .filter(|c| matches!(c.name.as_str(), "Number" | "Sip"))
                            .collect();
                        walk.line_of(verb.attr("action").unwrap_or_default());
                        walk.step(format!("ring {}", nouns.len()));
                        for other in verb
                            .children
                            .iter()
                            .filter(|c| !matches!(c.name.as_str(), "Number" | "Sip"))
                        {
                            self.unsupported(&other.name);
                        }
                        let legs: Vec<String> = (0..nouns.len())
                            .map(|i| format!("{sid}-R{round}-D{documents}-L{i}"))
                            .collect();
                        for (i, noun) in nouns.iter().enumerate() {
                            self.leg(&url, noun, &legs[i], &sid, "initiated", 0).await?;
                            self.leg(&url, noun, &legs[i], &sid, "ringing", 1).await?;
                        }
                        self.linger().await;
                        if plan.abandon {
                            for (i, noun) in nouns.iter().enumerate() {
                                self.leg(&url, noun, &legs[i], &sid, "canceled", 2).await?;
                            }
                            self.request(
                                "status",
                                &self.status_url,
                                Method::Post,
                                &common("completed"),
                            )
                            .await?;
                            return Ok("abandoned".into());
                        }
                        let answerers = answerers(&plan, round, nouns.len());
                        let winner = self
                            .answer(&url, &nouns, &legs, &sid, &answerers, &plan, &mut walk)
                            .await?;
                        if winner.is_some() {
                            self.linger().await;
                        }
                        for (i, noun) in nouns.iter().enumerate() {
                            let status = match winner {
                                Some(k) if k == i => continue,
                                _ if answerers.contains(&i) => "completed",
                                Some(_) => "canceled",
                                None => "no-answer",
                            };
                            self.leg(&url, noun, &legs[i], &sid, status, 3).await?;
                        }
                        let mut params = common("in-progress");
                        match winner {
                            Some(k) => {
                                self.leg(&url, nouns[k], &legs[k], &sid, "completed", 4)
                                    .await?;
                                params.push(("DialCallStatus", "completed".into()));
                                params.push(("DialCallSid", legs[k].clone()));
                                params.push(("DialCallDuration", self.args.talk_secs.to_string()));
                                outcome = "answered".into();
                            }
                            None => params.push(("DialCallStatus", "no-answer".into())),
                        }
                        if let Some(action) = verb.attr("action") {
                            let method = Self::method_of(verb, "method");
                            (url, doc) = self
                                .follow("dial-action", &url, action, method, &params)
                                .await?;
                            documents += 1;
                            continue 'documents;
                        }
                    }
                    "Record" => {
                        outcome = "voicemail".into();
                        walk.step("voicemail".into());
                        if let Some(cb) = verb.attr("recordingStatusCallback") {
                            let cb_url = self.resolve(&url, cb)?;
                            recording = Some((
                                cb_url,
                                Self::method_of(verb, "recordingStatusCallbackMethod"),
                            ));
                        }
                        self.linger().await;
                        if let Some(action) = verb.attr("action") {
                            let mut params = common("in-progress");
                            params.push((
                                "RecordingUrl",
                                format!("https://recordings.invalid/{sid}.mp3"),
                            ));
                            params.push(("RecordingDuration", "12".into()));
                            params.push(("Digits", "hangup".into()));
                            let method = Self::method_of(verb, "method");
                            (url, doc) = self
                                .follow("record-action", &url, action, method, &params)
                                .await?;
                            documents += 1;
                            continue 'documents;
                        }
                    }
                    "Redirect" => {
                        let method = Self::method_of(verb, "method");
                        let params = common("in-progress");
                        (url, doc) = self
                            .follow("redirect", &url, &verb.text, method, &params)
                            .await?;
                        documents += 1;
                        continue 'documents;
                    }
                    "Reject" => {
                        outcome = "rejected".into();
                        break 'documents;
                    }
                    "Hangup" => break 'documents,
                    other => self.unsupported(other),
                }
            }
            break;
        }
        let mut done = common("completed");
        done.push(("CallDuration", "60".into()));
        self.request("status", &self.status_url, Method::Post, &done)
            .await?;
        walk.end(&outcome);
        self.record_path(walk.path());
        if let (Some(cb), Some(api)) = (room_recording, &self.api) {
            let mut params = common("completed");
            params.push(("RecordingSid", format!("RESIM-room-{n}")));
            params.push(("RecordingStatus", "completed".into()));
            params.push(("RecordingUrl", format!("{}/rec/{sid}.mp3", api.base)));
            params.push(("RecordingDuration", self.args.talk_secs.to_string()));
            params.push(("RecordingSource", "StartCallRecordingAPI".into()));
            self.request("recording", &cb, Method::Post, &params)
                .await?;
        }
        if let Some((cb, method)) = recording {
            let mut params = common("completed");
            params.push(("RecordingSid", format!("RE{n}")));
            params.push(("RecordingStatus", "completed".into()));
            params.push((
                "RecordingUrl",
                format!("https://recordings.invalid/{sid}.mp3"),
            ));
            params.push(("RecordingDuration", "12".into()));
            params.push(("RecordingSource", "RecordVerb".into()));
            self.request("recording", &cb, method, &params).await?;
        }
        Ok(outcome)
    }

    /// The legs in `answerers` go off-hook. An unscreened one is connected at once; a screened
    /// one (a whisper `url`) hears the whisper and presses 1, or nothing if a machine answered;
    /// in a race both press at the same moment. Returns the leg connected, if any.
    #[allow(clippy::too_many_arguments)]
    async fn answer(
        &self,
        base: &Url,
        nouns: &[&Element],
        legs: &[String],
        parent: &str,
        answerers: &[usize],
        plan: &Plan,
        walk: &mut Walk,
    ) -> Result<Option<usize>, String> {
        for &i in answerers {
            self.leg(base, nouns[i], &legs[i], parent, "in-progress", 2)
                .await?;
        }
        if let Some(&i) = answerers.iter().find(|&&i| nouns[i].attr("url").is_none()) {
            return Ok(Some(i));
        }
        if answerers.is_empty() {
            return Ok(None);
        }
        let press = (!plan.machine).then_some("1");
        let mut whispers = Vec::new();
        for &i in answerers {
            whispers.push((i, self.whisper(base, nouns[i], &legs[i], parent).await?));
        }
        let presses = whispers.iter().map(|(i, (url, doc))| async move {
            let heard = self.press(url, doc, &legs[*i], parent, press).await;
            (*i, heard)
        });
        let mut connected = Vec::new();
        for (i, heard) in futures_util::future::join_all(presses).await {
            if heard? {
                connected.push(i);
            }
        }
        let key = press.map_or("no key".to_owned(), |k| format!("pressed {k}"));
        match (answerers.len(), connected.as_slice()) {
            (_, [_, _, ..]) => {
                return Err(format!(
                    "call {parent}: {} agents connected to one call",
                    connected.len()
                ))
            }
            (1, []) => walk.step(format!("screened, {key}, hung up")),
            (1, [_]) => walk.step(format!("screened, {key}")),
            (n, [_]) => walk.step(format!("{n} pressed 1 at once, 1 connected")),
            (n, []) => walk.step(format!("{n} screened, {key}, none connected")),
        }
        if plan.race && answerers.len() > 1 && connected.is_empty() {
            return Err(format!("call {parent}: a race of accepts connected nobody"));
        }
        Ok(connected.first().copied())
    }

    /// The whisper document a screened leg's phone fetches once it answers.
    async fn whisper(
        &self,
        base: &Url,
        noun: &Element,
        leg: &str,
        parent: &str,
    ) -> Result<(Url, Element), String> {
        let target = noun.attr("url").unwrap_or_default();
        let params = self.leg_params(leg, parent, "in-progress", &noun.text);
        self.follow(
            "screen",
            base,
            target,
            Self::method_of(noun, "method"),
            &params,
        )
        .await
    }

    /// Plays a whisper document as the agent's phone: presses `key` at its Gather (or nothing)
    /// and follows the answer. True when the leg is left connected (the documents end without
    /// `<Hangup>`).
    async fn press(
        &self,
        url: &Url,
        doc: &Element,
        leg: &str,
        parent: &str,
        key: Option<&str>,
    ) -> Result<bool, String> {
        let (mut url, mut doc) = (url.clone(), doc.clone());
        for _ in 0..4 {
            let mut next = None;
            for verb in &doc.children {
                match verb.name.as_str() {
                    "Gather" => {
                        if key.is_none() && self.args.no_input == NoInput::FallThrough {
                            continue;
                        }
                        let target = verb.attr("action").unwrap_or(url.as_str()).to_owned();
                        let mut params = self.leg_params(leg, parent, "in-progress", "");
                        params.push(("Digits", key.unwrap_or_default().to_owned()));
                        next = Some((target, Self::method_of(verb, "method"), params));
                        break;
                    }
                    "Hangup" | "Reject" => return Ok(false),
                    "Say" | "Play" | "Pause" => {}
                    other => self.unsupported(other),
                }
            }
            let Some((target, method, params)) = next else {
                return Ok(true);
            };
            (url, doc) = self
                .follow("screen-answer", &url, &target, method, &params)
                .await?;
        }
        Err(format!(
            "call {parent}: leg {leg}: more than 4 whisper documents"
        ))
    }

    fn leg_params(
        &self,
        leg: &str,
        parent: &str,
        status: &str,
        to: &str,
    ) -> Vec<(&'static str, String)> {
        vec![
            ("AccountSid", "ACsimulator".to_owned()),
            ("CallSid", leg.to_owned()),
            ("ParentCallSid", parent.to_owned()),
            ("CallStatus", status.to_owned()),
            ("Direction", "outbound-dial".to_owned()),
            ("From", self.args.to.clone()),
            ("To", to.to_owned()),
        ]
    }

    fn unsupported(&self, verb: &str) {
        self.note(format!(
            "!! <{verb}> is not supported by the simulator; skipped"
        ));
        let mut report = self.report.lock().unwrap_or_else(|p| p.into_inner());
        *report.unsupported.entry(verb.to_owned()).or_default() += 1;
    }

    /// A status callback for one dialled leg, if the noun asks for it (and for that event).
    async fn leg(
        &self,
        base: &Url,
        noun: &Element,
        leg: &str,
        parent: &str,
        status: &str,
        seq: u32,
    ) -> Result<(), String> {
        let Some(cb) = noun.attr("statusCallback") else {
            return Ok(());
        };
        let event = match status {
            "in-progress" => "answered",
            "initiated" | "ringing" => status,
            _ => "completed",
        };
        let wanted = noun.attr("statusCallbackEvent").unwrap_or("completed");
        if !wanted.split_whitespace().any(|e| e == event) {
            return Ok(());
        }
        let url = self.resolve(base, cb)?;
        let params = vec![
            ("AccountSid", "ACsimulator".to_owned()),
            ("CallSid", leg.to_owned()),
            ("ParentCallSid", parent.to_owned()),
            ("CallStatus", status.to_owned()),
            ("CallbackSource", "call-progress-events".to_owned()),
            ("From", self.args.to.clone()),
            ("To", noun.text.clone()),
            ("SequenceNumber", seq.to_string()),
        ];
        self.request(
            "leg-status",
            &url,
            Self::method_of(noun, "statusCallbackMethod"),
            &params,
        )
        .await
        .map(|_| ())
    }
}
