//! Settings: the embedded `config/default.toml`, then an optional file, then `SWITCHBOARD__*`
//! environment variables. Read once into a raw tree of the file's own types (strings, numbers),
//! then parsed once into the types the code uses ([`Settings`]: URLs, keys, decimals, durations,
//! cron schedules, agents). Every problem is reported at once, each naming its key, so an
//! operator never finds out about a typo from a caller. Each section's checks sit next to it.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use ed25519_dalek::VerifyingKey;
use rust_decimal::Decimal;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use crate::call::policy::{Menu, MenuChoice};
use crate::domain::{Agent, Endpoint};
use crate::signature::Mode;
pub use crate::texml::{DialSettings, Provider, ProviderSettings, VoicemailSettings};

/// The embedded demo configuration; also the documentation of every key.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Every setting, parsed and checked.
#[derive(Debug, Clone)]
pub struct Settings {
    pub provider: ProviderSettings,
    pub server: ServerSettings,
    pub log: LogSettings,
    pub paths: PathSettings,
    pub dial: DialSettings,
    pub voicemail: VoicemailSettings,
    pub calls: CallSettings,
    pub state: StateSettings,
    pub security: SecuritySettings,
    pub limits: LimitSettings,
    pub twilio: TwilioSettings,
    pub slack: SlackSettings,
    pub privacy: PrivacySettings,
    pub telnyx: TelnyxSettings,
    pub jobs: JobSettings,
    pub balance: BalanceSettings,
    /// The statically configured agents (rung when no Telnyx API key is set).
    pub agents: Vec<Agent>,
    /// The lines; empty: one implicit line answering every number with every agent.
    pub lines: Vec<LineSettings>,
    /// Opening hours by name.
    pub schedules: std::collections::HashMap<String, crate::call::schedule::Schedule>,
    pub unknown_number: UnknownNumberSettings,
    pub blocking: BlockingSettings,
    pub admin: AdminSettings,
    pub ledger: LedgerSettings,
    pub recordings: RecordingSettings,
    pub reports: ReportSettings,
    pub dashboard: crate::dashboard::settings::DashboardSettings,
    pub conference: ConferenceSettings,
}

/// `[conference]`: how conference-mode lines (`mode = "conference"`) run their rooms.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConferenceSettings {
    /// An organizer who presses 1 after another took the call: `hangup` or `join`.
    pub extra_organizers: crate::call::policy::ExtraOrganizers,
    /// The room is recorded from when the first organizer joins (the caller is told first).
    pub record: bool,
    /// The caller hears "NAME is joining this call" when the first organizer joins.
    pub announce: bool,
    /// What the caller hears while waiting: a file of the audio folder (looped).
    pub hold_audio: String,
    /// Placing an organizer's call, announcing and moving the caller go through this queue; when
    /// full, new requests are dropped (counted and logged).
    pub queue_capacity: usize,
    /// At most this many provider requests at once.
    pub concurrency: usize,
}

/// `[reports]`: how the call reports count.
#[derive(Debug, Clone)]
pub struct ReportSettings {
    /// A caller who hangs up sooner is a short abandon: shown apart, not held against the line.
    pub short_abandon_secs: u64,
    /// Answered within this many seconds counts for the service level.
    pub service_level_secs: u64,
    /// The day of a line without a schedule (and of the agents' figures).
    pub timezone: jiff::tz::TimeZone,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReports {
    short_abandon_secs: u64,
    service_level_secs: u64,
    timezone: String,
}

impl RawReports {
    fn parse(self, p: &mut Problems) -> ReportSettings {
        p.within(
            self.short_abandon_secs,
            0..=600,
            "reports.short_abandon_secs",
        );
        p.within(
            self.service_level_secs,
            1..=3600,
            "reports.service_level_secs",
        );
        let timezone = match jiff::tz::TimeZone::get(self.timezone.trim()) {
            Ok(tz) => tz,
            Err(_) => {
                p.check(
                    false,
                    "reports.timezone",
                    "is not an IANA time zone (e.g. Europe/Berlin)",
                );
                jiff::tz::TimeZone::UTC
            }
        };
        ReportSettings {
            short_abandon_secs: self.short_abandon_secs,
            service_level_secs: self.service_level_secs,
            timezone,
        }
    }
}

impl Settings {
    /// Where archived recordings are: `recordings.dir`, else `recordings/` under `paths.data`.
    pub fn recordings_dir(&self) -> PathBuf {
        self.recordings
            .dir
            .clone()
            .unwrap_or_else(|| self.paths.data.join("recordings"))
    }
}

/// `[recordings]`: the archive of recordings (with the ledger).
#[derive(Debug, Clone)]
pub struct RecordingSettings {
    pub archive: bool,
    /// Where archived files go (`None`: `recordings/` under `paths.data`).
    pub dir: Option<PathBuf>,
    /// A bucket instead of the directory (`s3://…`, `gs://…`, `az://…`).
    pub store: Option<Url>,
    /// The bucket's settings (region, endpoint, …), as `object_store` names them.
    pub store_options: Vec<(String, String)>,
    /// Once archived, delete the provider's copy.
    pub delete_from_provider: bool,
    pub max_attempts: u32,
    pub retry_base_ms: u64,
    pub max_bytes: u64,
    /// Days to keep each kind (0: keep).
    pub retention_days: RetentionDays,
    pub retention_check_secs: u64,
    /// Signs `/recordings/{id}` links for Slack (`None`: the admin token signs them).
    pub link_key: Option<SecretString>,
    pub link_ttl_hours: u64,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionDays {
    pub voicemail: u32,
    pub conversation: u32,
    pub conference: u32,
}

impl RetentionDays {
    /// Days to keep a recording of `kind` (0: keep).
    pub fn of(&self, kind: &str) -> u32 {
        match kind {
            "voicemail" => self.voicemail,
            "conference" => self.conference,
            _ => self.conversation,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecordings {
    archive: bool,
    dir: String,
    store: String,
    #[serde(default)]
    store_options: std::collections::BTreeMap<String, String>,
    delete_from_provider: bool,
    max_attempts: u32,
    retry_base_ms: u64,
    max_bytes: u64,
    retention_days: RetentionDays,
    retention_check_secs: u64,
    link_key: SecretString,
    link_ttl_hours: u64,
}

impl RawRecordings {
    fn parse(self, p: &mut Problems) -> RecordingSettings {
        p.within(self.max_attempts, 1..=20, "recordings.max_attempts");
        p.within(self.retry_base_ms, 1..=60_000, "recordings.retry_base_ms");
        p.check(
            self.max_bytes >= 1024,
            "recordings.max_bytes",
            "must be at least 1024",
        );
        p.within(
            self.retention_check_secs,
            1..=86_400,
            "recordings.retention_check_secs",
        );
        p.within(
            self.link_ttl_hours,
            1..=24 * 366,
            "recordings.link_ttl_hours",
        );
        let link_key = optional_secret(self.link_key);
        if let Some(k) = &link_key {
            p.check(
                k.expose_secret().len() >= 16,
                "recordings.link_key",
                "must be at least 16 characters (its value is not shown)",
            );
        }
        let dir = self.dir.trim();
        let store = match self.store.trim() {
            "" => None,
            url => p.take(Url::parse(url), "recordings.store", |e| {
                format!("must be a bucket URL (s3://bucket/prefix, gs://…, az://…): {e}")
            }),
        };
        if let Some(url) = &store {
            let options: Vec<_> = self.store_options.clone().into_iter().collect();
            if let Err(e) = crate::ledger::store::Store::remote(url, &options) {
                p.0.push(match e.starts_with("recordings.") {
                    true => e,
                    false => format!("recordings.store: {e}"),
                });
            }
        }
        RecordingSettings {
            archive: self.archive,
            dir: (!dir.is_empty()).then(|| PathBuf::from(dir)),
            store,
            store_options: self.store_options.into_iter().collect(),
            delete_from_provider: self.delete_from_provider,
            max_attempts: self.max_attempts,
            retry_base_ms: self.retry_base_ms,
            max_bytes: self.max_bytes,
            retention_days: self.retention_days,
            retention_check_secs: self.retention_check_secs,
            link_key,
            link_ttl_hours: self.link_ttl_hours,
        }
    }
}

/// `[ledger]`: the call history.
#[derive(Debug, Clone)]
pub struct LedgerSettings {
    pub enabled: bool,
    /// `postgres://…` (a secret: it may hold a password); `None`: SQLite in `paths.data`.
    pub url: Option<SecretString>,
    /// Writes waiting for the database, at most (more are dropped, counted and logged).
    pub queue_capacity: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLedger {
    enabled: bool,
    url: SecretString,
    queue_capacity: usize,
}

impl RawLedger {
    fn parse(self, p: &mut Problems) -> LedgerSettings {
        let url = optional_secret(self.url);
        if let Some(u) = &url {
            let u = u.expose_secret().trim();
            p.check(
                u.starts_with("postgres://") || u.starts_with("postgresql://") || u.starts_with("sqlite:"),
                "ledger.url",
                "must be a postgres:// (or sqlite:) URL, or empty for SQLite in paths.data (its value is not shown)",
            );
        }
        p.check(
            self.queue_capacity >= 1,
            "ledger.queue_capacity",
            "must be at least 1",
        );
        LedgerSettings {
            enabled: self.enabled,
            url,
            queue_capacity: self.queue_capacity,
        }
    }
}

/// `[admin]`: the admin API (`/admin/...`) and where line overrides are kept.
#[derive(Debug, Clone)]
pub struct AdminSettings {
    /// The bearer token (a secret); `None`: the admin API is off.
    pub token: Option<SecretString>,
    /// With `state.backend = "memory"`: the file line overrides are saved to (`None`: memory
    /// only, lost at restart).
    pub overrides_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    token: SecretString,
    overrides_file: String,
}

impl RawAdmin {
    fn parse(self, p: &mut Problems) -> AdminSettings {
        let token = optional_secret(self.token);
        if let Some(t) = &token {
            let t = t.expose_secret();
            p.check(
                t.len() >= 16 && t.bytes().all(|b| b.is_ascii_graphic()),
                "admin.token",
                "must be at least 16 visible characters, no spaces (its value is not shown)",
            );
        }
        let file = self.overrides_file.trim();
        AdminSettings {
            token,
            overrides_file: (!file.is_empty()).then(|| PathBuf::from(file)),
        }
    }
}

/// A configuration that cannot be used. Its message names the key and says why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

/// The problems found so far, each `key: why`.
#[derive(Debug, Default)]
pub struct Problems(pub(crate) Vec<String>);

impl Problems {
    /// Records `why` against `key` unless `ok`.
    pub fn check(&mut self, ok: bool, key: &str, why: &str) {
        if !ok {
            self.0.push(format!("{key}: {why}"));
        }
    }

    /// Records that `key` must be within `range` unless `value` is.
    pub fn within<T: PartialOrd + std::fmt::Display>(
        &mut self,
        value: T,
        range: std::ops::RangeInclusive<T>,
        key: &str,
    ) {
        if !range.contains(&value) {
            let why = format!("must be between {} and {}", range.start(), range.end());
            self.0.push(format!("{key}: {why}"));
        }
    }

    /// The value of `parsed`, or `None` with the problem recorded.
    pub(crate) fn take<T, E: std::fmt::Display>(
        &mut self,
        parsed: Result<T, E>,
        key: &str,
        why: impl FnOnce(E) -> String,
    ) -> Option<T> {
        parsed
            .map_err(|e| self.0.push(format!("{key}: {}", why(e))))
            .ok()
    }
}

/// A section that can check its own values.
pub trait Check {
    fn check(&self, problems: &mut Problems);
}

/// A secret that may be left empty ("not configured").
fn optional_secret(s: SecretString) -> Option<SecretString> {
    (!s.expose_secret().trim().is_empty()).then_some(s)
}

fn http_url(s: &str) -> Result<Url, String> {
    let url = Url::parse(s.trim()).map_err(|e| e.to_string())?;
    if matches!(url.scheme(), "http" | "https") && url.host().is_some() {
        Ok(url)
    } else {
        Err("not an http(s) URL".into())
    }
}

// ---------------------------------------------------------------------------------------------
// server

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    host: String,
    port: u16,
    public_url: String,
    workers: usize,
    shutdown_delay_secs: u64,
    shutdown_timeout_secs: u64,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    /// Where the provider reaches us; every URL written into a document starts with it.
    pub public_url: Url,
    pub workers: usize,
    pub shutdown_delay_secs: u64,
    pub shutdown_timeout_secs: u64,
}

impl RawServer {
    fn parse(self, p: &mut Problems) -> Option<ServerSettings> {
        let public_url = p.take(Url::parse(&self.public_url), "server.public_url", |e| {
            format!("is not a URL ({e}); expected e.g. https://switchboard.example.com")
        })?;
        Some(ServerSettings {
            host: self.host,
            port: self.port,
            public_url,
            workers: self.workers,
            shutdown_delay_secs: self.shutdown_delay_secs,
            shutdown_timeout_secs: self.shutdown_timeout_secs,
        })
    }
}

impl Check for ServerSettings {
    fn check(&self, p: &mut Problems) {
        let url = &self.public_url;
        p.check(
            matches!(url.scheme(), "http" | "https")
                && url.host().is_some()
                && url.query().is_none()
                && url.fragment().is_none(),
            "server.public_url",
            "must be an absolute http(s) URL without query or fragment",
        );
        p.check(
            !self.host.trim().is_empty(),
            "server.host",
            "must not be empty",
        );
        p.check(
            self.shutdown_delay_secs <= 300 && self.shutdown_timeout_secs <= 300,
            "server.shutdown_delay_secs",
            "and server.shutdown_timeout_secs must be at most 300",
        );
    }
}

// ---------------------------------------------------------------------------------------------
// log, paths

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

impl Check for LogSettings {
    fn check(&self, p: &mut Problems) {
        p.check(
            tracing_subscriber::EnvFilter::try_new(&self.level).is_ok(),
            "log.level",
            "is not a valid level or filter (e.g. info, debug, switchboard=debug)",
        );
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathSettings {
    pub templates: PathBuf,
    pub audio: PathBuf,
    /// Where Switchboard keeps its own files (the SQLite ledger); created on first start.
    pub data: PathBuf,
}

// ---------------------------------------------------------------------------------------------
// dial, voicemail (their types are the documents' own, in texml), calls, limits

impl Check for DialSettings {
    fn check(&self, p: &mut Problems) {
        p.within(self.ring_timeout_secs, 5..=120, "dial.ring_timeout_secs");
        p.within(self.rounds, 1..=10, "dial.rounds");
        p.within(self.time_limit_secs, 60..=14400, "dial.time_limit_secs");
        p.within(self.screen_timeout_secs, 1..=30, "dial.screen_timeout_secs");
        p.within(self.wrap_up_secs, 0..=3600, "dial.wrap_up_secs");
        p.check(
            self.caller_id.is_empty() || Endpoint::number(&self.caller_id).is_ok(),
            "dial.caller_id",
            "must be empty or an E.164 number such as +18005550100",
        );
    }
}

impl Check for VoicemailSettings {
    fn check(&self, p: &mut Problems) {
        p.within(self.max_length_secs, 1..=3600, "voicemail.max_length_secs");
        p.check(
            self.silence_timeout_secs <= 3600,
            "voicemail.silence_timeout_secs",
            "must be at most 3600",
        );
        let key = &self.finish_on_key;
        p.check(
            key.is_empty()
                || (key.len() == 1
                    && key
                        .chars()
                        .all(|c| c.is_ascii_digit() || c == '*' || c == '#')),
            "voicemail.finish_on_key",
            "must be empty or one of 0-9, * and #",
        );
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallSettings {
    pub grace_secs: u64,
    pub ttl_secs: u64,
    pub sweep_interval_secs: u64,
    pub retry_queue: usize,
}

impl Check for CallSettings {
    fn check(&self, p: &mut Problems) {
        p.check(
            self.sweep_interval_secs >= 1,
            "calls.sweep_interval_secs",
            "must be at least 1",
        );
        p.check(
            self.grace_secs <= self.ttl_secs,
            "calls.grace_secs",
            "must not exceed calls.ttl_secs",
        );
        p.within(self.retry_queue, 1..=1_000_000, "calls.retry_queue");
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    pub max_active_calls: usize,
}

impl Check for LimitSettings {
    fn check(&self, p: &mut Problems) {
        p.check(
            self.max_active_calls >= 1,
            "limits.max_active_calls",
            "must be at least 1",
        );
    }
}

// ---------------------------------------------------------------------------------------------
// state, security

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Memory,
    Redis,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateSettings {
    pub backend: Backend,
    pub redis_url: SecretString,
    pub key_prefix: String,
    pub lease_ttl_secs: u64,
    pub agents_sync_secs: u64,
}

impl Check for StateSettings {
    fn check(&self, p: &mut Problems) {
        if self.backend == Backend::Redis {
            let ok = Url::parse(self.redis_url.expose_secret().trim())
                .is_ok_and(|u| matches!(u.scheme(), "redis" | "redis+unix" | "unix"));
            p.check(
                ok,
                "state.redis_url",
                "must be a redis:// URL (its value is not shown: it may hold a password)",
            );
        }
        p.within(self.lease_ttl_secs, 3..=3600, "state.lease_ttl_secs");
        p.within(self.agents_sync_secs, 1..=3600, "state.agents_sync_secs");
        p.check(
            !self.key_prefix.contains(char::is_whitespace),
            "state.key_prefix",
            "must not contain spaces",
        );
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecuritySettings {
    pub mode: Mode,
    pub voice_mode: Mode,
    pub max_clock_skew_secs: u64,
    pub trust_forwarded_headers: bool,
}

impl Check for SecuritySettings {
    fn check(&self, p: &mut Problems) {
        p.within(
            self.max_clock_skew_secs,
            1..=3600,
            "security.max_clock_skew_secs",
        );
    }
}

// ---------------------------------------------------------------------------------------------
// twilio, slack, privacy

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTwilio {
    auth_token: SecretString,
    api_base_url: String,
    #[serde(default)]
    account_sid: String,
}

#[derive(Debug, Clone)]
pub struct TwilioSettings {
    /// The auth token, when Twilio signatures are checked.
    pub auth_token: Option<SecretString>,
    /// Twilio's REST API (`https://api.twilio.com`).
    pub api_base_url: Url,
    /// The account (`AC…`) conference mode's REST requests are made for, with the auth token;
    /// empty: the account each call came in on.
    pub account_sid: String,
}

/// Who is pinged on incoming calls and new voicemails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mention {
    #[default]
    None,
    Here,
    Channel,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlack {
    webhook_url: SecretString,
    mention: Mention,
    queue_capacity: usize,
    timeout_secs: u64,
    max_attempts: u32,
    retry_base_ms: u64,
    retry_max_ms: u64,
    flush_timeout_secs: u64,
}

#[derive(Debug, Clone)]
pub struct SlackSettings {
    /// The incoming webhook, when notifications go to Slack (a secret: never shown).
    pub webhook_url: Option<SecretString>,
    pub mention: Mention,
    pub queue_capacity: usize,
    pub timeout_secs: u64,
    pub max_attempts: u32,
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    pub flush_timeout_secs: u64,
}

impl RawSlack {
    fn parse(self) -> SlackSettings {
        SlackSettings {
            webhook_url: optional_secret(self.webhook_url),
            mention: self.mention,
            queue_capacity: self.queue_capacity,
            timeout_secs: self.timeout_secs,
            max_attempts: self.max_attempts,
            retry_base_ms: self.retry_base_ms,
            retry_max_ms: self.retry_max_ms,
            flush_timeout_secs: self.flush_timeout_secs,
        }
    }
}

impl Check for SlackSettings {
    fn check(&self, p: &mut Problems) {
        if let Some(url) = &self.webhook_url {
            p.check(
                http_url(url.expose_secret()).is_ok(),
                "slack.webhook_url",
                "must be an http(s) URL (its value is not shown: it is a secret)",
            );
        }
        p.check(
            self.flush_timeout_secs <= 300,
            "slack.flush_timeout_secs",
            "must be at most 300",
        );
        p.within(self.queue_capacity, 1..=100_000, "slack.queue_capacity");
        p.within(self.timeout_secs, 1..=120, "slack.timeout_secs");
        p.within(self.max_attempts, 1..=50, "slack.max_attempts");
        p.check(
            self.retry_base_ms >= 1 && self.retry_base_ms <= self.retry_max_ms,
            "slack.retry_base_ms",
            "must be at least 1 and at most slack.retry_max_ms",
        );
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacySettings {
    pub mask_caller_numbers: bool,
    /// Under `mask_caller_numbers`: how the ledger keeps caller numbers.
    pub ledger_numbers: crate::ledger::Numbers,
    /// The key of `ledger_numbers = "hashed"` (a secret; empty otherwise).
    #[serde(default)]
    pub hash_key: SecretString,
}

impl PrivacySettings {
    /// How the ledger keeps caller numbers: as received unless privacy mode says otherwise.
    pub fn ledger(&self) -> crate::ledger::Keep {
        use crate::ledger::{Keep, Numbers};
        match (self.mask_caller_numbers, self.ledger_numbers) {
            (false, _) | (true, Numbers::Full) => Keep::Full,
            (true, Numbers::Masked) => Keep::Masked,
            (true, Numbers::Hashed) => Keep::Hashed(self.hash_key.clone()),
        }
    }
}

impl Check for PrivacySettings {
    fn check(&self, p: &mut Problems) {
        let hashed =
            self.mask_caller_numbers && self.ledger_numbers == crate::ledger::Numbers::Hashed;
        p.check(
            !hashed || self.hash_key.expose_secret().trim().len() >= 16,
            "privacy.hash_key",
            "must be at least 16 characters with ledger_numbers = \"hashed\" (a secret: SWITCHBOARD__PRIVACY__HASH_KEY)",
        );
    }
}

// ---------------------------------------------------------------------------------------------
// telnyx, jobs, balance

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTelnyx {
    api_base_url: String,
    api_key: SecretString,
    #[serde(default)]
    texml_application_id: String,
    /// Not in the defaults: absent means "when an API key is set".
    #[serde(default)]
    agents_from_api: Option<bool>,
    public_key: String,
    outbound_voice_profile_id: String,
    sip_domain: String,
    timeout_secs: u64,
    max_retries: u32,
    retry_base_ms: u64,
}

#[derive(Debug, Clone)]
pub struct TelnyxSettings {
    pub api_base_url: Url,
    /// The API key, when the Telnyx API is used.
    pub api_key: Option<SecretString>,
    /// The TeXML application the organizers' calls of conference mode are placed through
    /// (`ApplicationSid`); empty: none.
    pub texml_application_id: String,
    /// The agents are the account's credential connections, not `[[agents]]` (default: when an
    /// API key is set). An API key kept only for the balance check sets this to false.
    pub agents_from_api: bool,
    /// The account's public key, when Telnyx webhooks are verified.
    pub public_key: Option<VerifyingKey>,
    /// Only connections on this outbound voice profile are agents (`None`: any).
    pub outbound_voice_profile_id: Option<String>,
    pub sip_domain: String,
    pub timeout_secs: u64,
    pub max_retries: u32,
    pub retry_base_ms: u64,
}

impl RawTelnyx {
    fn parse(self, p: &mut Problems) -> Option<TelnyxSettings> {
        let api_base_url = p.take(http_url(&self.api_base_url), "telnyx.api_base_url", |_| {
            "must be an http(s) URL".into()
        });
        let key = self.public_key.trim();
        let public_key = match key {
            "" => Some(None),
            k => p
                .take(crate::signature::telnyx_key(k), "telnyx.public_key", |e| e)
                .map(Some),
        };
        let profile = self.outbound_voice_profile_id.trim();
        Some(TelnyxSettings {
            api_base_url: api_base_url?,
            agents_from_api: self
                .agents_from_api
                .unwrap_or(!self.api_key.expose_secret().trim().is_empty()),
            api_key: optional_secret(self.api_key),
            texml_application_id: self.texml_application_id.trim().to_owned(),
            public_key: public_key?,
            outbound_voice_profile_id: (!profile.is_empty()).then(|| profile.to_owned()),
            sip_domain: self.sip_domain.trim().to_owned(),
            timeout_secs: self.timeout_secs,
            max_retries: self.max_retries,
            retry_base_ms: self.retry_base_ms,
        })
    }
}

impl Check for TelnyxSettings {
    fn check(&self, p: &mut Problems) {
        p.check(
            !self.agents_from_api || self.api_key.is_some(),
            "telnyx.agents_from_api",
            "needs telnyx.api_key",
        );
        p.check(
            !self.sip_domain.is_empty() && !self.sip_domain.contains(['@', ':', '/', ' ']),
            "telnyx.sip_domain",
            "must be a host name such as sip.telnyx.com",
        );
        p.within(self.timeout_secs, 1..=120, "telnyx.timeout_secs");
        p.check(
            self.max_retries <= 10,
            "telnyx.max_retries",
            "must be at most 10",
        );
    }
}

/// A cron schedule the job scheduler accepts (with seconds: sec min hour day month weekday).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron(String);

impl Cron {
    pub fn parse(expr: &str) -> Result<Cron, String> {
        tokio_cron_scheduler::Job::new_async(expr, |_, _| Box::pin(async {}))
            .map(|_| Cron(expr.to_owned()))
            .map_err(|e| e.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJobs {
    agents_refresh: String,
    balance_check: String,
    alert_after_failures: u32,
}

#[derive(Debug, Clone)]
pub struct JobSettings {
    pub agents_refresh: Cron,
    pub balance_check: Cron,
    pub alert_after_failures: u32,
}

impl RawJobs {
    fn parse(self, p: &mut Problems) -> Option<JobSettings> {
        let cron = |p: &mut Problems, expr: &str, key: &str, example: &str| {
            p.take(Cron::parse(expr), key, |_| {
                format!(
                    "is not a cron schedule (sec min hour day month weekday), e.g. \"{example}\""
                )
            })
        };
        let agents_refresh = cron(
            p,
            &self.agents_refresh,
            "jobs.agents_refresh",
            "0 */10 * * * *",
        );
        let balance_check = cron(p, &self.balance_check, "jobs.balance_check", "0 0 * * * *");
        Some(JobSettings {
            agents_refresh: agents_refresh?,
            balance_check: balance_check?,
            alert_after_failures: self.alert_after_failures,
        })
    }
}

impl Check for JobSettings {
    fn check(&self, p: &mut Problems) {
        p.check(
            self.alert_after_failures >= 1,
            "jobs.alert_after_failures",
            "must be at least 1",
        );
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBalance {
    alert_below: String,
    remind_every: String,
}

#[derive(Debug, Clone)]
pub struct BalanceSettings {
    /// Alert once when available credit falls below this (exact decimal, account currency).
    pub alert_below: Decimal,
    /// While it stays low, remind at most this often.
    pub remind_every: Duration,
}

impl RawBalance {
    fn parse(self, p: &mut Problems) -> Option<BalanceSettings> {
        let alert_below = p.take(
            Decimal::from_str(self.alert_below.trim()),
            "balance.alert_below",
            |e| format!("is not a decimal amount such as \"80.00\" ({e})"),
        );
        let remind_every = p.take(
            humantime::parse_duration(self.remind_every.trim()),
            "balance.remind_every",
            |e| format!("is not a duration such as 12h or 1d ({e})"),
        );
        Some(BalanceSettings {
            alert_below: alert_below?,
            remind_every: remind_every?,
        })
    }
}

impl Check for BalanceSettings {
    fn check(&self, p: &mut Problems) {
        p.check(
            self.remind_every.as_secs() >= 60,
            "balance.remind_every",
            "must be at least 1m",
        );
    }
}

// ---------------------------------------------------------------------------------------------
// agents

/// One `[[agents]]` entry as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentSettings {
    /// How lines name this agent (default: from the name, `Ada Lovelace` → `ada-lovelace`).
    id: Option<String>,
    name: String,
    sip: Option<String>,
    number: Option<String>,
    connection_id: Option<String>,
    /// Press 1 before being put through: "never", "always" or "numbers" (default: the line's).
    screen: Option<crate::domain::Screen>,
    /// Seconds after a call before being rung again (default: the line's).
    wrap_up_secs: Option<u32>,
}

impl AgentSettings {
    fn parse(&self) -> Result<Agent, String> {
        let endpoint = match (&self.sip, &self.number) {
            (Some(sip), None) => Endpoint::sip(sip).map_err(|e| format!("sip: {e}"))?,
            (None, Some(number)) => Endpoint::number(number).map_err(|e| format!("number: {e}"))?,
            _ => return Err("needs exactly one of `sip` or `number`".into()),
        };
        let mut agent = Agent::new(&self.name, endpoint).map_err(|e| format!("name: {e}"))?;
        if let Some(id) = self.id.as_deref().map(str::trim) {
            let ok = !id.is_empty()
                && id.len() <= 64
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !ok {
                return Err("id: must be letters, digits, - _ or . (at most 64)".into());
            }
            agent = agent.with_id(id);
        }
        agent.connection_id = self
            .connection_id
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(Box::from);
        agent.screen = self.screen;
        if let Some(secs) = self.wrap_up_secs {
            if secs > 3600 {
                return Err("wrap_up_secs: must be between 0 and 3600".into());
            }
        }
        agent.wrap_up_secs = self.wrap_up_secs;
        Ok(agent)
    }
}

// ---------------------------------------------------------------------------------------------
// lines and schedules

/// What a line does with a call outside its hours.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AfterHoursAction {
    /// The after-hours prompt, then a voicemail.
    #[default]
    Voicemail,
    /// The after-hours prompt, then ring `after_hours_forward` once, then a voicemail.
    Forward,
    /// The after-hours prompt, then hang up.
    Message,
    /// Refuse the call before answering it (`<Reject>`): not answered, not charged.
    Reject,
}

/// One `[[lines]]` entry as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLine {
    id: String,
    numbers: Vec<String>,
    name: Option<String>,
    agents: Option<Vec<String>>,
    schedule: Option<String>,
    #[serde(default)]
    after_hours: AfterHoursAction,
    #[serde(default)]
    after_hours_forward: Vec<RawForward>,
    #[serde(default)]
    mode: LineMode,
    prompts: Option<PathBuf>,
    menu: Option<RawMenu>,
    screen: Option<crate::domain::Screen>,
    strategy: Option<crate::call::routing::Strategy>,
    wrap_up_secs: Option<u32>,
}

/// One `after_hours_forward` entry: a number or SIP address, or `{ name, number | sip }` (a
/// conference-mode line greets its organizers by name).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum RawForward {
    Plain(String),
    Named {
        name: String,
        #[serde(default)]
        number: Option<String>,
        #[serde(default)]
        sip: Option<String>,
    },
}

/// How a line reaches its agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LineMode {
    /// One `<Dial>` rings the agents; the first to answer (or press 1) is bridged.
    #[default]
    Dial,
    /// The caller waits in a conference room; organizers are called through the REST API, must
    /// press 1, and the first joins the room (Code of Conduct hotlines). See `[conference]`.
    Conference,
}

/// `[lines.menu]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMenu {
    prompt: String,
    options: std::collections::BTreeMap<String, String>,
    #[serde(default = "RawMenu::ring")]
    default: String,
    #[serde(default = "RawMenu::retries")]
    retries: u8,
    #[serde(default = "RawMenu::timeout")]
    timeout_secs: u32,
}

impl RawMenu {
    fn ring() -> String {
        "ring".into()
    }

    fn retries() -> u8 {
        2
    }

    fn timeout() -> u32 {
        5
    }

    fn parse(self, key: &str, p: &mut Problems) -> MenuSettings {
        let choice = |v: &str| -> Result<MenuChoice, String> {
            match v.trim() {
                "ring" => Ok(MenuChoice::Ring),
                "voicemail" => Ok(MenuChoice::Voicemail),
                other => match other.strip_prefix("line:") {
                    Some(id) if !id.trim().is_empty() => {
                        Ok(MenuChoice::Line(crate::domain::LineId::new(id.trim())))
                    }
                    _ => Err(format!(
                        "`{other}` is not a choice: line:<id>, ring or voicemail"
                    )),
                },
            }
        };
        let prompt = self.prompt.trim().to_owned();
        p.check(
            !prompt.is_empty()
                && prompt.chars().count() <= 3000
                && prompt.chars().all(crate::domain::xml_char),
            &format!("{key}.prompt"),
            "must be the text to speak (at most 3000 characters, no control characters)",
        );
        p.within(self.retries, 0..=5, &format!("{key}.retries"));
        p.within(self.timeout_secs, 1..=30, &format!("{key}.timeout_secs"));
        p.check(
            !self.options.is_empty(),
            &format!("{key}.options"),
            "must offer at least one key",
        );
        let mut options = Vec::new();
        for (k, v) in &self.options {
            let mut chars = k.chars();
            let key_char = match (chars.next(), chars.next()) {
                (Some(c), None) if c.is_ascii_digit() || c == '*' || c == '#' => Some(c),
                _ => None,
            };
            p.check(
                key_char.is_some(),
                &format!("{key}.options"),
                &format!("`{k}` is not one key (0-9, * or #)"),
            );
            match choice(v) {
                Ok(c) => options.extend(key_char.map(|k| (k, c))),
                Err(e) => p.check(false, &format!("{key}.options.{k}"), &e),
            }
        }
        let default = p.take(choice(&self.default), &format!("{key}.default"), |e| e);
        MenuSettings {
            menu: Menu {
                options,
                // A bad default is already reported; the rest is still checked.
                default: default.unwrap_or(MenuChoice::Ring),
                retries: self.retries,
            },
            prompt,
            timeout_secs: self.timeout_secs,
        }
    }
}

/// A line's menu: what it says, how long it waits, where each key goes.
#[derive(Debug, Clone)]
pub struct MenuSettings {
    pub menu: Menu,
    pub prompt: String,
    pub timeout_secs: u32,
}

/// A line: the numbers it answers, who answers, when.
#[derive(Debug, Clone)]
pub struct LineSettings {
    pub id: crate::domain::LineId,
    /// The called numbers (`To`) this line answers, as configured.
    pub numbers: Vec<String>,
    /// What people see (Slack, logs); the id when not given.
    pub name: String,
    /// Agent ids; `None`: every agent.
    pub agents: Option<Vec<String>>,
    /// The schedule's name in `[schedules]`; `None`: always open.
    pub schedule: Option<String>,
    pub after_hours: AfterHoursAction,
    /// Rung with `after_hours = "forward"`.
    pub after_hours_forward: Vec<Agent>,
    /// This line's own prompts (a file like `templates/prompts.toml`); `None`: the defaults.
    pub prompts: Option<PathBuf>,
    /// Played before ringing while the line is open.
    pub menu: Option<MenuSettings>,
    /// `[dial]`'s screen, strategy and wrap-up, where this line sets its own.
    pub screen: Option<crate::domain::Screen>,
    pub strategy: Option<crate::call::routing::Strategy>,
    pub wrap_up_secs: Option<u32>,
    /// `dial` (the default) or `conference`.
    pub mode: LineMode,
}

impl RawLine {
    fn parse(self, key: &str, p: &mut Problems) -> Option<LineSettings> {
        let id = crate::domain::LineId::parse(&self.id);
        p.check(
            id.is_some(),
            &format!("{key}.id"),
            "must be letters, digits, - or _ (at most 64)",
        );
        p.check(
            !self.numbers.is_empty(),
            &format!("{key}.numbers"),
            "must list at least one called number",
        );
        let mut forward = Vec::new();
        for (i, target) in self.after_hours_forward.iter().enumerate() {
            let (name, endpoint) = match target {
                RawForward::Plain(t) if t.trim().starts_with("sip") => {
                    (format!("after hours {}", i + 1), Endpoint::sip(t))
                }
                RawForward::Plain(t) => (format!("after hours {}", i + 1), Endpoint::number(t)),
                RawForward::Named {
                    name,
                    number: Some(n),
                    sip: None,
                } => (name.clone(), Endpoint::number(n)),
                RawForward::Named {
                    name,
                    number: None,
                    sip: Some(s),
                } => (name.clone(), Endpoint::sip(s)),
                RawForward::Named { .. } => (
                    String::new(),
                    Err(crate::domain::FieldError::Invalid(
                        "needs a name and exactly one of number or sip",
                    )),
                ),
            };
            match endpoint.and_then(|e| Agent::new(&name, e)) {
                Ok(a) => forward.push(a),
                Err(e) => p.check(
                    false,
                    &format!("{key}.after_hours_forward[{i}]"),
                    &e.to_string(),
                ),
            }
        }
        p.check(
            self.after_hours != AfterHoursAction::Forward || !forward.is_empty(),
            &format!("{key}.after_hours_forward"),
            "must list the numbers to ring when after_hours = \"forward\"",
        );
        let menu = self.menu.map(|m| m.parse(&format!("{key}.menu"), p));
        if let Some(secs) = self.wrap_up_secs {
            p.within(secs, 0..=3600, &format!("{key}.wrap_up_secs"));
        }
        id.map(|id| LineSettings {
            mode: self.mode,
            screen: self.screen,
            strategy: self.strategy,
            wrap_up_secs: self.wrap_up_secs,
            id,
            name: self
                .name
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| self.id.clone()),
            numbers: self.numbers,
            agents: self.agents,
            schedule: self.schedule,
            after_hours: self.after_hours,
            after_hours_forward: forward,
            prompts: self.prompts,
            menu,
        })
    }
}

/// One opening range as written: `{ days = ["mon", …], from = "09:00", to = "17:00" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHours {
    days: Vec<String>,
    from: String,
    to: String,
}

/// One closed day as written: `{ date = "2026-12-25" }` or `{ yearly = "07-04" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClosed {
    date: Option<String>,
    yearly: Option<String>,
}

/// One `[schedules.NAME]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    time_zone: String,
    #[serde(default)]
    open: Vec<RawHours>,
    #[serde(default)]
    closed: Vec<RawClosed>,
}

impl RawSchedule {
    fn parse(&self, key: &str, p: &mut Problems) -> Option<crate::call::schedule::Schedule> {
        use crate::call::schedule::{day_index, minutes, ClosedDay, Hours, Schedule};
        let mut open = Vec::new();
        for (i, h) in self.open.iter().enumerate() {
            let k = format!("{key}.open[{i}]");
            let mut days = [false; 7];
            for d in &h.days {
                match day_index(d) {
                    Ok(n) => days[n] = true,
                    Err(e) => p.check(false, &format!("{k}.days"), &e.to_string()),
                }
            }
            let from = p.take(minutes(&h.from), &format!("{k}.from"), |e| e.to_string());
            let to = p.take(minutes(&h.to), &format!("{k}.to"), |e| e.to_string());
            if let (Some(from), Some(to)) = (from, to) {
                p.check(from < 1440, &format!("{k}.from"), "must be before 24:00");
                open.push(Hours { days, from, to });
            }
        }
        let mut closed = Vec::new();
        for (i, c) in self.closed.iter().enumerate() {
            let k = format!("{key}.closed[{i}]");
            let day = match (&c.date, &c.yearly) {
                (Some(d), None) => ClosedDay::date(d),
                (None, Some(y)) => ClosedDay::yearly(y),
                _ => {
                    p.check(
                        false,
                        &k,
                        "needs exactly one of `date` (YYYY-MM-DD) or `yearly` (MM-DD)",
                    );
                    continue;
                }
            };
            closed.extend(p.take(day, &k, |e| e.to_string()));
        }
        p.take(
            Schedule::new(&self.time_zone, open, closed),
            &format!("{key}.time_zone"),
            |e| e.to_string(),
        )
    }
}

/// `[unknown_number]`: what a call to a number no line lists gets.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnknownNumberSettings {
    /// `line:<id>`, `message` or `reject`; empty: the first line takes it.
    #[serde(default)]
    pub action: String,
}

/// How a turned-away caller is answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TurnawayAction {
    #[default]
    Reject,
    Message,
}

/// What anonymous callers get.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnonymousAction {
    #[default]
    Allow,
    Voicemail,
    Reject,
}

/// `[blocking]`: callers turned away.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockingSettings {
    #[serde(default)]
    pub numbers: Vec<String>,
    #[serde(default)]
    pub prefixes: Vec<String>,
    #[serde(default)]
    pub action: TurnawayAction,
    #[serde(default)]
    pub anonymous: AnonymousAction,
}

impl Check for BlockingSettings {
    fn check(&self, p: &mut Problems) {
        for (i, n) in self.numbers.iter().enumerate() {
            p.check(
                Endpoint::number(n).is_ok(),
                &format!("blocking.numbers[{i}]"),
                "must be an E.164 number such as +12025550666",
            );
        }
        for (i, prefix) in self.prefixes.iter().enumerate() {
            let ok = prefix.starts_with('+')
                && prefix.len() >= 2
                && prefix[1..].chars().all(|c| c.is_ascii_digit());
            p.check(
                ok,
                &format!("blocking.prefixes[{i}]"),
                "must be + and digits, such as +1900",
            );
        }
    }
}

/// Checks that lines name what exists: schedules, agents (when they are known at start), and
/// that no number belongs to two lines.
fn check_lines(
    lines: &[LineSettings],
    schedules: &std::collections::HashMap<String, crate::call::schedule::Schedule>,
    agents: Option<&[Agent]>,
    p: &mut Problems,
) {
    let mut ids = std::collections::HashSet::new();
    let mut numbers = std::collections::HashMap::new();
    for (i, line) in lines.iter().enumerate() {
        let key = format!("lines[{i}]");
        p.check(
            ids.insert(line.id.clone()),
            &format!("{key}.id"),
            "is used by another line",
        );
        for n in &line.numbers {
            let digits: String = n.chars().filter(char::is_ascii_alphanumeric).collect();
            if let Some(other) = numbers.insert(digits, line.id.clone()) {
                p.check(
                    false,
                    &format!("{key}.numbers"),
                    &format!("{n} is already line `{other}`'s"),
                );
            }
        }
        let menu = line.menu.iter().flat_map(|m| {
            let options = m.menu.options.iter().map(|(_, c)| c);
            options.chain(std::iter::once(&m.menu.default))
        });
        for choice in menu {
            if let MenuChoice::Line(id) = choice {
                p.check(
                    lines.iter().any(|l| &l.id == id),
                    &format!("{key}.menu"),
                    &format!("`line:{id}` is not a line's id"),
                );
            }
        }
        if let Some(name) = &line.schedule {
            p.check(
                schedules.contains_key(name),
                &format!("{key}.schedule"),
                &format!("`{name}` is not in [schedules]"),
            );
        }
        if let (Some(wanted), Some(agents)) = (&line.agents, agents) {
            for id in wanted {
                p.check(
                    agents.iter().any(|a| &*a.id == id.as_str()),
                    &format!("{key}.agents"),
                    &format!(
                        "`{id}` is not an agent id (agents: {})",
                        agents.iter().map(|a| &*a.id).collect::<Vec<_>>().join(", ")
                    ),
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// the whole tree

/// The tree as the sources give it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    provider: ProviderSettings,
    server: RawServer,
    log: LogSettings,
    paths: PathSettings,
    dial: DialSettings,
    voicemail: VoicemailSettings,
    calls: CallSettings,
    state: StateSettings,
    security: SecuritySettings,
    limits: LimitSettings,
    twilio: RawTwilio,
    slack: RawSlack,
    privacy: PrivacySettings,
    telnyx: RawTelnyx,
    jobs: RawJobs,
    balance: RawBalance,
    #[serde(default)]
    agents: Vec<AgentSettings>,
    #[serde(default)]
    lines: Vec<RawLine>,
    #[serde(default)]
    schedules: std::collections::HashMap<String, RawSchedule>,
    #[serde(default)]
    unknown_number: UnknownNumberSettings,
    #[serde(default)]
    blocking: BlockingSettings,
    admin: RawAdmin,
    ledger: RawLedger,
    recordings: RawRecordings,
    reports: RawReports,
    dashboard: crate::dashboard::settings::RawDashboard,
    conference: ConferenceSettings,
}

impl RawSettings {
    fn parse(self) -> Result<Settings, ConfigError> {
        let mut p = Problems::default();
        let server = self.server.parse(&mut p);
        let telnyx = self.telnyx.parse(&mut p);
        let jobs = self.jobs.parse(&mut p);
        let balance = self.balance.parse(&mut p);
        let mut agents = Vec::new();
        for (i, agent) in self.agents.iter().enumerate() {
            if let Some(a) = p.take(agent.parse(), &format!("agents[{i}]"), |e| e) {
                agents.push(a);
            }
        }
        let mut schedules = std::collections::HashMap::new();
        for (name, raw) in &self.schedules {
            if let Some(schedule) = raw.parse(&format!("schedules.{name}"), &mut p) {
                schedules.insert(name.clone(), schedule);
            }
        }
        let lines: Vec<LineSettings> = self
            .lines
            .into_iter()
            .enumerate()
            .filter_map(|(i, l)| l.parse(&format!("lines[{i}]"), &mut p))
            .collect();
        let slack = self.slack.parse();
        let twilio_api = p.take(
            http_url(&self.twilio.api_base_url),
            "twilio.api_base_url",
            |_| "must be an http(s) URL".into(),
        );
        // Every section that parsed is checked now, so all problems are reported at once.
        let parsed: [Option<&dyn Check>; 4] = [
            server.as_ref().map(|s| s as &dyn Check),
            telnyx.as_ref().map(|s| s as &dyn Check),
            jobs.as_ref().map(|s| s as &dyn Check),
            balance.as_ref().map(|s| s as &dyn Check),
        ];
        let plain: [&dyn Check; 9] = [
            &self.privacy,
            &self.log,
            &self.dial,
            &self.voicemail,
            &self.calls,
            &self.limits,
            &self.state,
            &self.security,
            &slack,
        ];
        for section in plain.into_iter().chain(parsed.into_iter().flatten()) {
            section.check(&mut p);
        }
        let (Some(server), Some(telnyx), Some(jobs), Some(balance), Some(twilio_api)) =
            (server, telnyx, jobs, balance, twilio_api)
        else {
            return Err(ConfigError::Invalid(p.0));
        };
        let settings = Settings {
            provider: self.provider,
            server,
            log: self.log,
            paths: self.paths,
            dial: self.dial,
            voicemail: self.voicemail,
            calls: self.calls,
            state: self.state,
            security: self.security,
            limits: self.limits,
            twilio: TwilioSettings {
                auth_token: optional_secret(self.twilio.auth_token),
                api_base_url: twilio_api,
                account_sid: self.twilio.account_sid.trim().to_owned(),
            },
            slack,
            privacy: self.privacy,
            telnyx,
            jobs,
            balance,
            agents,
            lines,
            schedules,
            unknown_number: self.unknown_number,
            blocking: self.blocking,
            admin: self.admin.parse(&mut p),
            ledger: self.ledger.parse(&mut p),
            recordings: self.recordings.parse(&mut p),
            reports: self.reports.parse(&mut p),
            dashboard: self.dashboard.parse(&mut p),
            conference: self.conference,
        };
        settings.blocking.check(&mut p);
        settings.cross_section().check(&mut p);
        p.into_result(settings)
    }
}

impl Problems {
    fn into_result<T>(self, value: T) -> Result<T, ConfigError> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(ConfigError::Invalid(self.0))
        }
    }
}

impl Settings {
    /// Loads the embedded defaults, then `file` when given, then the environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        Self::load_with(file, Environment::with_prefix("SWITCHBOARD"))
    }

    /// As [`Settings::load`] with the environment source given, so tests need not touch the
    /// process environment.
    pub fn load_with(file: Option<&Path>, env: Environment) -> Result<Settings, ConfigError> {
        let mut builder =
            Config::builder().add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml));
        if let Some(path) = file {
            builder = builder.add_source(File::from(path).required(true));
        }
        let env = env.prefix_separator("__").separator("__").try_parsing(true);
        let raw: RawSettings = builder.add_source(env).build()?.try_deserialize()?;
        raw.parse()
    }

    /// The embedded demo configuration, checked.
    pub fn demo() -> Result<Settings, ConfigError> {
        Self::load_with(None, Environment::with_prefix("SWITCHBOARD_UNUSED_IN_DEMO"))
    }

    /// Checks every value (again, after a program changed some); all problems at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut p = Problems::default();
        let sections: [&dyn Check; 14] = [
            &self.privacy,
            &self.server,
            &self.log,
            &self.dial,
            &self.voicemail,
            &self.calls,
            &self.limits,
            &self.state,
            &self.security,
            &self.slack,
            &self.telnyx,
            &self.jobs,
            &self.balance,
            &self.cross_section(),
        ];
        for section in sections {
            section.check(&mut p);
        }
        p.into_result(())
    }

    fn cross_section(&self) -> CrossSection<'_> {
        CrossSection(self)
    }
}

/// Checks that involve several sections.
struct CrossSection<'a>(&'a Settings);

impl Check for CrossSection<'_> {
    fn check(&self, p: &mut Problems) {
        let s = self.0;
        p.check(
            s.calls.ttl_secs > u64::from(s.dial.time_limit_secs),
            "calls.ttl_secs",
            "must exceed dial.time_limit_secs (an answered call gets no callbacks while people talk)",
        );
        let can_delete = match s.provider.kind {
            crate::texml::Provider::Telnyx => s.telnyx.api_key.is_some(),
            crate::texml::Provider::Twilio => s.twilio.auth_token.is_some(),
        };
        p.check(
            !s.recordings.delete_from_provider || can_delete,
            "recordings.delete_from_provider",
            "needs telnyx.api_key (Telnyx) or twilio.auth_token (Twilio)",
        );
        let can_verify = s.telnyx.public_key.is_some() || s.twilio.auth_token.is_some();
        p.check(
            !matches!(s.security.mode, Mode::Enforce | Mode::Log) || can_verify,
            "security.mode",
            "enforce and log need telnyx.public_key or twilio.auth_token",
        );
        // Conference mode places calls through the provider's REST API: it needs its keys.
        if s.lines.iter().any(|l| l.mode == LineMode::Conference) {
            let (ok, needs) = match s.provider.kind {
                crate::texml::Provider::Telnyx => (
                    s.telnyx.api_key.is_some() && !s.telnyx.texml_application_id.is_empty(),
                    "needs telnyx.api_key and telnyx.texml_application_id",
                ),
                crate::texml::Provider::Twilio => (
                    s.twilio.auth_token.is_some(),
                    "needs twilio.auth_token (and twilio.account_sid, or the calls' own account)",
                ),
            };
            p.check(ok, "lines.mode", &format!("\"conference\" {needs}"));
        }
        p.check(
            crate::audio::AudioDir::valid_name(&s.conference.hold_audio),
            "conference.hold_audio",
            "must be a plain file name in the audio folder",
        );
        p.within(
            s.conference.queue_capacity,
            1..=1_000_000,
            "conference.queue_capacity",
        );
        p.within(s.conference.concurrency, 1..=256, "conference.concurrency");
        // With agents from the API, their ids are known only once read.
        let known = (!s.telnyx.agents_from_api).then_some(s.agents.as_slice());
        check_lines(&s.lines, &s.schedules, known, p);
        let action = s.unknown_number.action.trim();
        let ok = match action.strip_prefix("line:") {
            Some(id) => s.lines.iter().any(|l| l.id.as_str() == id),
            None => matches!(action, "" | "message" | "reject"),
        };
        p.check(
            ok,
            "unknown_number.action",
            "must be line:<a line's id>, message or reject",
        );
        let mut ids = std::collections::HashSet::new();
        for a in &s.agents {
            p.check(
                ids.insert(&a.id),
                "agents",
                &format!("two agents have the id `{}`", a.id),
            );
        }
        p.check(
            !matches!(s.security.voice_mode, Mode::Enforce | Mode::Log) || can_verify,
            "security.voice_mode",
            "enforce and log need telnyx.public_key or twilio.auth_token",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Environment {
        let map = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Environment::with_prefix("SWITCHBOARD").source(Some(map))
    }

    #[test]
    fn embedded_demo_configuration_is_valid() {
        let s = Settings::demo().expect("demo config");
        assert_eq!(s.server.port, 8080);
        assert_eq!(s.dial.rounds, 2);
        assert_eq!(
            s.dial.record,
            crate::texml::RecordMode::RecordFromAnswerDual
        );
        assert_eq!(s.agents.len(), 3);
        assert_eq!(s.balance.alert_below, Decimal::new(8000, 2));
        assert_eq!(s.balance.remind_every, Duration::from_secs(86_400));
        assert!(s.telnyx.api_key.is_none() && s.slack.webhook_url.is_none());
    }

    /// Settings from the embedded defaults plus `toml`.
    fn with_file(toml: &str) -> Result<Settings, ConfigError> {
        let path = std::env::temp_dir().join(format!(
            "sb-config-{}-{}.toml",
            std::process::id(),
            toml.len()
        ));
        std::fs::write(&path, toml).expect("write");
        let loaded = Settings::load_with(Some(&path), env(&[]));
        std::fs::remove_file(&path).ok();
        loaded
    }

    #[test]
    fn a_menu_is_checked_key_by_key() {
        let line = |menu: &str| {
            format!(
                "[[lines]]\nid = \"support\"\nnumbers = [\"+18005550100\"]\n\n[lines.menu]\n{menu}\n"
            )
        };
        let ok = with_file(&line(
            "prompt = \"Press 1\"\noptions = { \"1\" = \"line:support\", \"#\" = \"voicemail\" }",
        ))
        .expect("a good menu");
        let menu = ok.lines[0].menu.as_ref().expect("menu");
        assert_eq!((menu.menu.retries, menu.timeout_secs), (2, 5), "defaults");
        assert_eq!(menu.menu.default, MenuChoice::Ring);
        let err = with_file(&line(
            "prompt = \"\"\noptions = { \"12\" = \"ring\", \"2\" = \"line:nope\", \"3\" = \"dance\" }\nretries = 9\ntimeout_secs = 0\ndefault = \"later\"",
        ))
        .expect_err("a bad menu")
        .to_string();
        for key in [
            "lines[0].menu.prompt",
            "`12` is not one key",
            "`line:nope` is not a line's id",
            "lines[0].menu.options.3",
            "lines[0].menu.retries",
            "lines[0].menu.timeout_secs",
            "lines[0].menu.default",
        ] {
            assert!(err.contains(key), "{key} in {err}");
        }
        let err = with_file("[admin]\ntoken = \"short\"\n").expect_err("short token");
        assert!(err.to_string().contains("admin.token"), "{err}");
        assert!(
            !err.to_string().contains("short"),
            "the token is not shown: {err}"
        );
    }

    #[test]
    fn environment_overrides_nested_keys() {
        let s = Settings::load_with(
            None,
            env(&[
                ("SWITCHBOARD__SERVER__PORT", "9001"),
                (
                    "SWITCHBOARD__SERVER__PUBLIC_URL",
                    "https://sb.example.com/base",
                ),
                ("SWITCHBOARD__DIAL__ROUNDS", "3"),
            ]),
        )
        .expect("valid");
        assert_eq!(s.server.port, 9001);
        assert_eq!(s.server.public_url.as_str(), "https://sb.example.com/base");
        assert_eq!(s.dial.rounds, 3);
    }

    #[test]
    fn every_invalid_value_is_named_at_once() {
        let err = Settings::load_with(
            None,
            env(&[
                ("SWITCHBOARD__DIAL__ROUNDS", "0"),
                ("SWITCHBOARD__SERVER__PUBLIC_URL", "not a url"),
                ("SWITCHBOARD__BALANCE__ALERT_BELOW", "lots"),
                ("SWITCHBOARD__JOBS__BALANCE_CHECK", "hourly"),
                ("SWITCHBOARD__TELNYX__PUBLIC_KEY", "not-a-key"),
            ]),
        )
        .expect_err("invalid")
        .to_string();
        for key in [
            "dial.rounds: must be between 1 and 10",
            "server.public_url",
            "balance.alert_below",
            "jobs.balance_check",
            "telnyx.public_key",
        ] {
            assert!(err.contains(key), "{key}: {err}");
        }
    }

    #[test]
    fn wrong_types_and_unknown_keys_are_refused() {
        let err = Settings::load_with(None, env(&[("SWITCHBOARD__SERVER__PORT", "eighty")]))
            .expect_err("bad port")
            .to_string();
        assert!(err.contains("port"), "{err}");
        let err = Settings::load_with(None, env(&[("SWITCHBOARD__DIAL__RINGS", "3")]))
            .expect_err("unknown key")
            .to_string();
        assert!(err.contains("rings"), "{err}");
        let err = Settings::load_with(None, env(&[("SWITCHBOARD__DIAL__RECORD", "always")]))
            .expect_err("bad enum")
            .to_string();
        assert!(err.contains("always"), "{err}");
    }

    #[test]
    fn recording_stores_and_provider_deletion_are_checked() {
        let ok = with_file(
            "[recordings]\nstore = \"s3://calls/sb\"\n\
             [recordings.store_options]\nregion = \"eu-west-1\"\n",
        )
        .expect("an S3 bucket");
        assert_eq!(
            ok.recordings.store.as_ref().map(|u| u.as_str()),
            Some("s3://calls/sb")
        );
        assert_eq!(
            ok.recordings.store_options,
            vec![("region".to_owned(), "eu-west-1".to_owned())]
        );
        let err = with_file(
            "[recordings]\nstore = \"ftp://files.example/x\"\ndelete_from_provider = true\n\
             [recordings.store_options]\ncolour = \"blue\"\n",
        )
        .expect_err("refused")
        .to_string();
        assert!(err.contains("recordings.store: ftp: not a bucket"), "{err}");
        assert!(
            err.contains("recordings.delete_from_provider: needs telnyx.api_key"),
            "{err}"
        );
        let err = with_file(
            "[recordings]\nstore = \"s3://calls\"\n[recordings.store_options]\ncolour = \"blue\"\n",
        )
        .expect_err("unknown option")
        .to_string();
        assert!(err.contains("recordings.store_options.colour"), "{err}");
    }

    #[test]
    fn a_program_changing_settings_is_checked_again() {
        let mut s = Settings::demo().expect("demo");
        s.dial.rounds = 11;
        s.calls.ttl_secs = 10;
        let err = s.validate().expect_err("invalid").to_string();
        assert!(
            err.contains("dial.rounds") && err.contains("calls.ttl_secs"),
            "{err}"
        );
    }
}
