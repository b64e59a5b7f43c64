//! The dashboard's feed: one background task keeps four sections (`live`, `today`, `voicemails`,
//! `health`) current while pages are connected, and each page's event stream sends what changed.
//!
//! Nothing is done on the call path but noting that something happened ([`DashboardSink`]: two
//! atomic stores). The task wakes every [`TICK`]; when something happened (here, or on another
//! replica), it rebuilds `live` from the call store, the agents' presence and the lines, compares
//! it with what pages have, and publishes it only if it changed. `today` is read from the ledger
//! at most every two seconds, and less often when the query takes longer (it never takes more
//! than a fiftieth of the time). Several pages share one build: a frame's changes are encoded
//! once, and every stream sends the same bytes. A page that falls behind skips to the newest
//! state.
//!
//! With several replicas, each notes on a Redis channel that it handled something (at most once
//! per tick) and, every few seconds, its health; every replica then rebuilds from the shared call
//! store, so a page on any replica sees every call.
//!
//! Events carry `id: <feed>-<seq>`: a page that reconnects (`Last-Event-ID`) to the same feed
//! gets only the sections that changed since; to another replica or after a restart, a new
//! snapshot.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use async_trait::async_trait;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify};

use super::board;
use crate::agents::presence::PresenceStore;
use crate::agents::Agents;
use crate::call::CallStore;
use crate::domain::LineId;
use crate::ledger::archive::Archive;
use crate::ledger::report::Spec;
use crate::ledger::Ledger;
use crate::lines::LineControl;
use crate::sink::queue::DeliveryStats;
use crate::sink::{JobNotice, Record, Sink};
use crate::time::{Clock, Millis};

/// How often the feed looks whether something changed (a wallboard's usual cadence: Twilio
/// Flex refreshes every 1 to 3 seconds; timers tick in the browser in between).
pub(crate) const TICK: Duration = Duration::from_secs(1);
/// `live` is rebuilt at least this often while pages are connected, even when nothing happened:
/// time alone frees agents from wrap-up (the page counts it down meanwhile).
const LIVE_EVERY: Duration = Duration::from_secs(5);
/// `health` is rebuilt this often while pages are connected, and published to other replicas.
const HEALTH_EVERY: Duration = Duration::from_secs(3);
/// `today` at least this often even when nothing happened (the day turns).
const TODAY_AT_LEAST: Duration = Duration::from_secs(30);
/// Other replicas' health is forgotten after this long without news.
const REPLICA_GONE: Duration = Duration::from_secs(20);
/// The recordings store (a bucket, perhaps: each probe is a request) is asked this often at most.
const STORE_PROBE_EVERY: Duration = Duration::from_secs(30);
/// Live calls read at most (a line lists [`board::CALLS_LISTED`]; the counts cover these).
const CALLS_READ: usize = 5000;

/// Where the sections come from.
pub(crate) struct Sources {
    pub store: Arc<dyn CallStore>,
    pub agents: Arc<Agents>,
    pub presence: Arc<PresenceStore>,
    pub lines: Arc<LineControl>,
    pub ledger: Option<Ledger>,
    pub archive: Option<Arc<Archive>>,
    pub spec: Spec,
    pub daily_reset: jiff::civil::Time,
    pub recent_voicemails: u32,
    /// Privacy mode: callers masked.
    pub mask: bool,
    pub clock: Arc<dyn Clock>,
    pub rejected: Counter,
    /// Slack's queue, once the sinks are built (`None` without Slack).
    pub slack: std::sync::OnceLock<Arc<DeliveryStats>>,
    pub ledger_queue: Option<Arc<DeliveryStats>>,
    /// This replica's name, as the health strip shows it.
    pub replica: String,
}

/// One section as pages get it.
#[derive(Debug, Clone)]
pub(crate) struct Section {
    /// The frame it last changed in.
    pub version: u64,
    pub json: Bytes,
    /// What it is compared by (the JSON without the instant it was made).
    key: u64,
}

impl Section {
    fn empty() -> Section {
        Section {
            version: 0,
            json: Bytes::from_static(b"null"),
            key: 0,
        }
    }
}

/// The section names, in the order of [`Frame::sections`].
pub(crate) const NAMES: [&str; 4] = ["live", "today", "voicemails", "health"];

/// What every stream sends from.
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    pub seq: u64,
    /// When it was made (a page connecting waits for one made after it came).
    pub built: Instant,
    pub sections: [Section; 4],
    /// The events of the sections that changed in this frame, made once for every page that saw
    /// the frame before (most of them): they all send these same bytes.
    pub delta: Bytes,
}

/// A queue's state for the health strip.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct QueueHealth {
    pub pending: u64,
    pub dropped: u64,
}

impl QueueHealth {
    fn of(stats: &DeliveryStats) -> QueueHealth {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        QueueHealth {
            pending: stats.pending(),
            dropped: n(&stats.dropped_full)
                + n(&stats.dropped_failed)
                + n(&stats.dropped_rejected)
                + n(&stats.dropped_shutdown),
        }
    }
}

/// The last balance check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct BalanceSeen {
    pub available: String,
    pub currency: String,
    pub at: Millis,
}

/// One replica's health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ReplicaHealth {
    pub replica: String,
    pub signature_rejections: u64,
    pub slack: Option<QueueHealth>,
    pub ledger: Option<QueueHealth>,
    pub call_store: bool,
    /// `None`: no ledger.
    pub ledger_db: Option<bool>,
    /// `None`: no recordings archive.
    pub recordings_store: Option<bool>,
    pub balance: Option<BalanceSeen>,
    pub at: Millis,
}

/// What replicas tell each other on the channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Note {
    replica: String,
    /// Present every few seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    health: Option<ReplicaHealth>,
}

/// One voicemail as the page lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct VoicemailView {
    id: String,
    line: String,
    caller: String,
    at: Millis,
    duration_secs: Option<u64>,
    state: String,
    /// Where the page plays it (only archived copies).
    play: Option<String>,
}

/// The Redis side, with several replicas.
pub(crate) struct Bus {
    pub url: String,
    pub conn: redis::aio::ConnectionManager,
    pub channel: String,
}

pub(crate) struct Feed {
    sources: Sources,
    /// This feed's id in event ids (a restart or another replica has another).
    pub(crate) id: String,
    frames: watch::Sender<Arc<Frame>>,
    /// Something happened here since the last build, and since the last note to other replicas.
    dirty: AtomicBool,
    unpublished: AtomicBool,
    /// Another replica said something happened.
    remote_dirty: AtomicBool,
    /// A build is wanted now, whatever changed (a page connected).
    forced: AtomicBool,
    wake: Notify,
    /// Milliseconds since `epoch` of the last fact seen here (for `today`).
    last_fact: AtomicU64,
    epoch: Instant,
    streams: AtomicUsize,
    balance: Mutex<Option<BalanceSeen>>,
    others: Mutex<HashMap<String, (Instant, ReplicaHealth)>>,
    /// The recordings store's last answer, and when.
    store_probe: Mutex<Option<(Instant, bool)>>,
    stopping: watch::Sender<bool>,
    bus: Option<Bus>,
    streams_gauge: Gauge,
    builds: Counter,
    failures: Counter,
}

fn key_of(bytes: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

impl Feed {
    pub(crate) fn new(sources: Sources, bus: Option<Bus>, registry: &mut Registry) -> Arc<Feed> {
        let streams_gauge = Gauge::default();
        registry.register(
            "dashboard_streams",
            "Dashboard pages connected to this replica's event stream",
            streams_gauge.clone(),
        );
        let builds = Counter::default();
        registry.register(
            "dashboard_builds",
            "Dashboard frames built (only while pages are connected)",
            builds.clone(),
        );
        let failures = Counter::default();
        registry.register(
            "dashboard_source_failures",
            "Dashboard sections that could not be read (the page keeps the last ones)",
            failures.clone(),
        );
        let frame = Frame {
            seq: 0,
            built: Instant::now(),
            sections: [
                Section::empty(),
                Section::empty(),
                Section::empty(),
                Section::empty(),
            ],
            delta: Bytes::new(),
        };
        let id = crate::ledger::archive::hex(&argon2::password_hash::generate_salt()[..6]);
        Arc::new(Feed {
            sources,
            id,
            frames: watch::Sender::new(Arc::new(frame)),
            dirty: AtomicBool::new(true),
            unpublished: AtomicBool::new(false),
            remote_dirty: AtomicBool::new(false),
            forced: AtomicBool::new(false),
            wake: Notify::new(),
            last_fact: AtomicU64::new(0),
            epoch: Instant::now(),
            streams: AtomicUsize::new(0),
            balance: Mutex::new(None),
            others: Mutex::new(HashMap::new()),
            store_probe: Mutex::new(None),
            stopping: watch::Sender::new(false),
            bus,
            streams_gauge,
            builds,
            failures,
        })
    }

    /// Slack's queue counters, once Slack's sink is built.
    pub(crate) fn set_slack(&self, stats: Arc<DeliveryStats>) {
        let _ = self.sources.slack.set(stats);
    }

    /// The sink the call path hands records to.
    pub(crate) fn sink(self: &Arc<Self>) -> Arc<dyn Sink> {
        Arc::new(DashboardSink(self.clone()))
    }

    fn since_epoch(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Something happened (cheap: the call path calls it).
    fn noticed(&self, record: &Record) {
        if let Record::Job {
            kind:
                JobNotice::BalanceChecked {
                    available,
                    currency,
                },
            at,
        } = record
        {
            *self.balance.lock().unwrap_or_else(|p| p.into_inner()) = Some(BalanceSeen {
                available: available.to_string(),
                currency: currency.clone(),
                at: *at,
            });
        }
        self.last_fact.store(self.since_epoch(), Ordering::Relaxed);
        self.dirty.store(true, Ordering::Relaxed);
        self.unpublished.store(true, Ordering::Relaxed);
    }

    /// The newest frame, and a receiver of the next ones.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Arc<Frame>> {
        self.frames.subscribe()
    }

    /// Asks for a build now, whatever changed.
    pub(crate) fn force(&self) {
        self.forced.store(true, Ordering::Relaxed);
        self.wake.notify_one();
    }

    /// Streams end: the server is stopping.
    pub(crate) fn stop_streams(&self) {
        self.stopping.send_replace(true);
    }

    pub(crate) fn stopping(&self) -> watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    /// A stream opened; the guard counts it until it ends.
    pub(crate) fn opened(self: &Arc<Self>) -> StreamGuard {
        self.streams.fetch_add(1, Ordering::Relaxed);
        self.streams_gauge.inc();
        StreamGuard(self.clone())
    }

    /// Builds while pages are connected, until the task is stopped.
    pub(crate) async fn keep_building(self: Arc<Self>) {
        let mut last_live: Option<Instant> = None;
        let mut last_health: Option<Instant> = None;
        let mut today = TodayPace::default();
        // A steady cadence, whatever a build takes (a late tick is delayed, not caught up).
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = self.wake.notified() => {}
            }
            let forced = self.forced.swap(false, Ordering::Relaxed);
            if self.streams.load(Ordering::Relaxed) == 0 && !forced {
                continue;
            }
            let started = Instant::now();
            let dirty = self.dirty.swap(false, Ordering::Relaxed)
                | self.remote_dirty.swap(false, Ordering::Relaxed);
            let mut frame = (**self.frames.borrow()).clone();
            let seq = frame.seq + 1;
            let mut changed = false;
            let older = |at: Option<Instant>, d: Duration| at.is_none_or(|t| t.elapsed() >= d);
            if forced || dirty || older(last_live, LIVE_EVERY) {
                last_live = Some(started);
                if let Some((key, json)) = self.live().await {
                    changed |= update(&mut frame.sections[0], seq, key, json);
                }
            }
            if self.sources.ledger.is_some() && today.due(forced, self.last_fact(), &self.epoch) {
                let began = Instant::now();
                if let Some((key, json)) = self.today().await {
                    changed |= update(&mut frame.sections[1], seq, key, json);
                }
                if let Some((key, json)) = self.voicemails().await {
                    changed |= update(&mut frame.sections[2], seq, key, json);
                }
                today.done(began, self.since_epoch_of(began));
            }
            if forced || older(last_health, HEALTH_EVERY) {
                last_health = Some(started);
                let (key, json) = self.health_section().await;
                changed |= update(&mut frame.sections[3], seq, key, json);
            }
            if changed || forced {
                if changed {
                    frame.seq = seq;
                    frame.delta = changes(&self.id, &frame, seq - 1);
                }
                frame.built = Instant::now();
                self.builds.inc();
                self.frames.send_replace(Arc::new(frame));
            }
        }
    }

    fn last_fact(&self) -> u64 {
        self.last_fact.load(Ordering::Relaxed)
    }

    fn since_epoch_of(&self, at: Instant) -> u64 {
        u64::try_from(at.duration_since(self.epoch).as_millis()).unwrap_or(0)
    }

    /// The `live` section and its key (the JSON without its instant), or `None` when a source
    /// did not answer.
    async fn live(&self) -> Option<(u64, Bytes)> {
        let s = &self.sources;
        let now = s.clock.now_ms();
        let read = async {
            let calls = s.store.calls(now, CALLS_READ).await?;
            let presences = s.presence.all().await?;
            let lines = s.lines.list().await?;
            Ok::<_, crate::call::StoreError>((calls, presences, lines))
        };
        let (calls, presences, lines) = match read.await {
            Ok(read) => read,
            Err(e) => {
                self.failures.inc();
                tracing::warn!(error = %e, "dashboard: live calls unreadable");
                return None;
            }
        };
        let roster: HashMap<LineId, Arc<[crate::domain::Agent]>> = s
            .spec
            .lines
            .iter()
            .map(|(id, ..)| (id.clone(), s.agents.all(id)))
            .collect();
        let mut live = board::live(&board::Inputs {
            now,
            lines: &lines,
            calls: &calls,
            roster: &roster,
            presences: &presences,
            mask: s.mask,
        });
        live.now = 0;
        let key = key_of(&serde_json::to_vec(&live).ok()?);
        live.now = now;
        Some((key, Bytes::from(serde_json::to_vec(&live).ok()?)))
    }

    async fn today(&self) -> Option<(u64, Bytes)> {
        let s = &self.sources;
        let ledger = s.ledger.as_ref()?;
        let now = s.clock.now_ms();
        let mut tallies = Vec::with_capacity(s.spec.lines.len());
        for (id, _, zone) in &s.spec.lines {
            let since = board::day_start(now, zone, s.daily_reset);
            let to = since.saturating_add(48 * 3_600_000);
            match ledger.tally(id.as_str(), since, to, &s.spec.rules).await {
                Ok(t) => tallies.push((id.clone(), since, t)),
                Err(e) => {
                    self.failures.inc();
                    tracing::warn!(error = %e, "dashboard: today's figures unreadable");
                    return None;
                }
            }
        }
        let json = serde_json::to_vec(&board::today(&tallies, &s.spec.rules)).ok()?;
        Some((key_of(&json), Bytes::from(json)))
    }

    async fn voicemails(&self) -> Option<(u64, Bytes)> {
        let s = &self.sources;
        let ledger = s.ledger.as_ref()?;
        let rows = match ledger.recent_voicemails(s.recent_voicemails).await {
            Ok(rows) => rows,
            Err(e) => {
                self.failures.inc();
                tracing::warn!(error = %e, "dashboard: voicemails unreadable");
                return None;
            }
        };
        let items: Vec<VoicemailView> = rows
            .into_iter()
            .map(|r| VoicemailView {
                play: (r.state == "archived" && s.archive.is_some()).then(|| {
                    let id: String =
                        url::form_urlencoded::byte_serialize(r.id.as_bytes()).collect();
                    format!("/dashboard/recordings/{id}")
                }),
                caller: crate::ledger::shown_caller(&r.caller, s.mask),
                id: r.id,
                line: r.line,
                at: r.received_at,
                duration_secs: r.duration_secs,
                state: r.state,
            })
            .collect();
        let json = serde_json::to_vec(&serde_json::json!({ "items": items })).ok()?;
        Some((key_of(&json), Bytes::from(json)))
    }

    /// Whether the recordings store answers, asked at most every [`STORE_PROBE_EVERY`].
    async fn recordings_reachable(&self, archive: &Archive) -> bool {
        let last = *self.store_probe.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, ok)) = last.filter(|(at, _)| at.elapsed() < STORE_PROBE_EVERY) {
            return ok;
        }
        let ok = archive.store().reachable().await;
        *self.store_probe.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), ok));
        ok
    }

    /// This replica's health now.
    async fn own_health(&self) -> ReplicaHealth {
        let s = &self.sources;
        let ledger_db = match &s.ledger {
            Some(l) => Some(l.ping().await.is_ok()),
            None => None,
        };
        let recordings_store = match &s.archive {
            Some(a) => Some(self.recordings_reachable(a).await),
            None => None,
        };
        ReplicaHealth {
            replica: s.replica.clone(),
            signature_rejections: s.rejected.get(),
            slack: s.slack.get().map(|q| QueueHealth::of(q)),
            ledger: s.ledger_queue.as_deref().map(QueueHealth::of),
            call_store: s.store.ping().await.is_ok(),
            ledger_db,
            recordings_store,
            balance: self
                .balance
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            at: s.clock.now_ms(),
        }
    }

    /// Every replica's health (this one's first), and the newest balance any of them saw; keyed
    /// without the instants they were taken at.
    async fn health_section(&self) -> (u64, Bytes) {
        let own = self.own_health().await;
        let mut replicas = vec![own];
        {
            let mut others = self.others.lock().unwrap_or_else(|p| p.into_inner());
            others.retain(|_, (at, _)| at.elapsed() < REPLICA_GONE);
            let mut theirs: Vec<_> = others.values().map(|(_, h)| h.clone()).collect();
            theirs.sort_by(|a, b| a.replica.cmp(&b.replica));
            replicas.extend(theirs);
        }
        let balance = replicas
            .iter()
            .filter_map(|r| r.balance.as_ref())
            .max_by_key(|b| b.at)
            .cloned();
        let mut section = serde_json::json!({ "replicas": replicas, "balance": balance });
        let json = Bytes::from(serde_json::to_vec(&section).unwrap_or_default());
        if let Some(list) = section["replicas"].as_array_mut() {
            for r in list {
                r["at"] = serde_json::Value::Null;
            }
        }
        (
            key_of(&serde_json::to_vec(&section).unwrap_or_default()),
            json,
        )
    }

    /// Tells other replicas what happened here (at most once a tick) and, every few seconds,
    /// this replica's health; until the task is stopped.
    pub(crate) async fn keep_publishing(self: Arc<Self>) {
        let Some(bus) = &self.bus else { return };
        let mut last_health: Option<Instant> = None;
        loop {
            tokio::time::sleep(TICK).await;
            let health_due = last_health.is_none_or(|t| t.elapsed() >= HEALTH_EVERY);
            let happened = self.unpublished.swap(false, Ordering::Relaxed);
            if !happened && !health_due {
                continue;
            }
            let health = match health_due {
                true => {
                    last_health = Some(Instant::now());
                    Some(self.own_health().await)
                }
                false => None,
            };
            let note = Note {
                replica: self.sources.replica.clone(),
                health,
            };
            let Ok(payload) = serde_json::to_string(&note) else {
                continue;
            };
            let mut conn = bus.conn.clone();
            let sent: Result<i64, _> = redis::cmd("PUBLISH")
                .arg(&bus.channel)
                .arg(payload)
                .query_async(&mut conn)
                .await;
            if let Err(e) = sent {
                self.failures.inc();
                tracing::warn!(error = %e, "dashboard: could not tell other replicas");
            }
        }
    }

    /// Listens to other replicas, reconnecting when Redis goes away; until the task is stopped.
    pub(crate) async fn keep_listening(self: Arc<Self>) {
        use futures_util::StreamExt;
        let Some(bus) = &self.bus else { return };
        let mut backoff = Duration::from_millis(500);
        loop {
            let listened = async {
                let client = redis::Client::open(bus.url.as_str())?;
                let mut pubsub = client.get_async_pubsub().await?;
                pubsub.subscribe(&bus.channel).await?;
                tracing::debug!(channel = %bus.channel, "dashboard: listening to other replicas");
                let mut messages = pubsub.on_message();
                while let Some(msg) = messages.next().await {
                    let Ok(payload) = msg.get_payload::<String>() else {
                        continue;
                    };
                    self.heard(&payload);
                }
                Ok::<_, redis::RedisError>(())
            };
            match listened.await {
                Ok(()) => tracing::warn!("dashboard: the replicas' channel closed; reconnecting"),
                Err(e) => {
                    tracing::warn!(error = %e, "dashboard: the replicas' channel failed; reconnecting")
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    }

    fn heard(&self, payload: &str) {
        let Ok(note) = serde_json::from_str::<Note>(payload) else {
            tracing::debug!("dashboard: unreadable note from another replica ignored");
            return;
        };
        if note.replica == self.sources.replica {
            return;
        }
        self.remote_dirty.store(true, Ordering::Relaxed);
        if let Some(health) = note.health {
            self.others
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(note.replica, (Instant::now(), health));
        }
    }
}

/// Replaces `section` with `json` if its key differs; true when it did.
fn update(section: &mut Section, seq: u64, key: u64, json: Bytes) -> bool {
    if section.version != 0 && section.key == key {
        return false;
    }
    *section = Section {
        version: seq,
        json,
        key,
    };
    true
}

/// When `today` is read again: soon after something happened (the ledger writes within a few
/// tens of milliseconds), at least two seconds apart and fifty times as long as the last read
/// took (so it never takes more than a fiftieth of the time), and every half minute anyway.
#[derive(Debug, Default)]
struct TodayPace {
    /// When the last read began and how long it took (milliseconds since the feed's epoch).
    began: Option<(Instant, u64)>,
    took: Duration,
}

impl TodayPace {
    fn due(&self, forced: bool, last_fact: u64, _epoch: &Instant) -> bool {
        let Some((began, began_ms)) = self.began else {
            return true;
        };
        if forced {
            return true;
        }
        let gap = (self.took * 50).max(Duration::from_secs(2));
        let since = began.elapsed();
        // A fact up to a second before the last read began may not have been written yet.
        let news = last_fact + 1000 >= began_ms;
        (news && since >= gap) || since >= TODAY_AT_LEAST
    }

    fn done(&mut self, began: Instant, began_ms: u64) {
        self.took = began.elapsed();
        self.began = Some((began, began_ms));
    }
}

/// Counts a stream while it lives.
pub(crate) struct StreamGuard(Arc<Feed>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::Relaxed);
        self.0.streams_gauge.dec();
    }
}

/// Notes that something happened; never blocks.
struct DashboardSink(Arc<Feed>);

#[async_trait]
impl Sink for DashboardSink {
    fn accept(&self, record: &Record) {
        self.0.noticed(record);
    }
}

/// One server-sent event.
pub(crate) fn event(name: &str, id: &str, data: &[&[u8]]) -> Bytes {
    let mut out = Vec::with_capacity(64 + data.iter().map(|d| d.len()).sum::<usize>());
    out.extend_from_slice(b"id: ");
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(b"\nevent: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    for d in data {
        out.extend_from_slice(d);
    }
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// The whole frame as one `snapshot` event.
pub(crate) fn snapshot(feed: &str, frame: &Frame) -> Bytes {
    let mut parts: Vec<&[u8]> = vec![b"{"];
    for (i, (name, section)) in NAMES.iter().zip(&frame.sections).enumerate() {
        if i > 0 {
            parts.push(b",");
        }
        parts.push(b"\"");
        parts.push(name.as_bytes());
        parts.push(b"\":");
        parts.push(&section.json);
    }
    parts.push(b"}");
    event("snapshot", &format!("{feed}-{}", frame.seq), &parts)
}

/// The sections that changed after `seen`, one event each.
pub(crate) fn changes(feed: &str, frame: &Frame, seen: u64) -> Bytes {
    let id = format!("{feed}-{}", frame.seq);
    let mut out = Vec::new();
    for (name, section) in NAMES.iter().zip(&frame.sections) {
        if section.version > seen {
            out.extend_from_slice(&event(name, &id, &[&section.json]));
        }
    }
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> Frame {
        let section = |version, json: &'static str| Section {
            version,
            json: Bytes::from_static(json.as_bytes()),
            key: 0,
        };
        Frame {
            seq: 7,
            built: Instant::now(),
            sections: [
                section(7, "{\"waiting\":1}"),
                section(3, "{\"total\":{}}"),
                section(1, "{\"items\":[]}"),
                section(6, "{}"),
            ],
            delta: Bytes::new(),
        }
    }

    #[test]
    fn a_snapshot_holds_every_section_and_changes_only_the_newer_ones() {
        let f = frame();
        let snap = String::from_utf8(snapshot("abc", &f).to_vec()).unwrap();
        assert_eq!(
            snap,
            "id: abc-7\nevent: snapshot\ndata: {\"live\":{\"waiting\":1},\"today\":{\"total\":{}},\"voicemails\":{\"items\":[]},\"health\":{}}\n\n"
        );
        let serde: serde_json::Value =
            serde_json::from_str(snap.lines().nth(2).unwrap().trim_start_matches("data: "))
                .unwrap();
        assert_eq!(serde["live"]["waiting"], 1);
        let since = String::from_utf8(changes("abc", &f, 5).to_vec()).unwrap();
        assert_eq!(
            since,
            "id: abc-7\nevent: live\ndata: {\"waiting\":1}\n\nid: abc-7\nevent: health\ndata: {}\n\n"
        );
        assert!(changes("abc", &f, 7).is_empty());
    }

    #[test]
    fn today_is_read_again_after_news_and_not_too_often() {
        let epoch = Instant::now();
        let mut pace = TodayPace::default();
        assert!(pace.due(false, 0, &epoch), "first read");
        let began = Instant::now() - Duration::from_secs(2);
        pace.done(began, 10_000);
        pace.took = Duration::from_millis(10);
        assert!(!pace.due(false, 5_000, &epoch), "nothing new since");
        assert!(
            pace.due(false, 9_500, &epoch),
            "a fact just before the last read (maybe not written yet), two seconds ago"
        );
        assert!(pace.due(true, 0, &epoch), "forced");
        // 50 × 100 ms = 5 s > the 2 s since.
        pace.took = Duration::from_millis(100);
        assert!(
            !pace.due(false, 9_500, &epoch),
            "a slow query waits fifty times as long"
        );
        pace.took = Duration::from_millis(30);
        assert!(
            pace.due(false, 9_500, &epoch),
            "50 × 30 ms is less than 2 s"
        );
    }
}
