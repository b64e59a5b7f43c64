//! Settings: the embedded `config/default.toml`, then an optional file, then `SWITCHBOARD__*`
//! environment variables. Everything is checked once at start; an error names the key and why,
//! so an operator never finds out about a typo from a caller.

use std::path::{Path, PathBuf};

use std::str::FromStr;

use config::{Config, Environment, File, FileFormat};
use rust_decimal::Decimal;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use crate::notify::slack::Mention;

use crate::domain::{Agent, Endpoint};

/// The embedded demo configuration; also the documentation of every key.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
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
    #[serde(default)]
    pub agents: Vec<AgentSettings>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackSettings {
    pub webhook_url: SecretString,
    pub mention: Mention,
    pub queue_capacity: usize,
    pub timeout_secs: u64,
    pub max_attempts: u32,
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    pub flush_timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacySettings {
    pub mask_caller_numbers: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelnyxSettings {
    pub api_base_url: String,
    pub api_key: SecretString,
    pub public_key: String,
    pub outbound_voice_profile_id: String,
    pub sip_domain: String,
    pub timeout_secs: u64,
    pub max_retries: u32,
    pub retry_base_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSettings {
    pub agents_refresh: String,
    pub balance_check: String,
    pub alert_after_failures: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BalanceSettings {
    pub alert_below: String,
    pub remind_every: String,
}

impl SlackSettings {
    /// The webhook URL, when notifications go to Slack.
    pub fn url(&self) -> Option<&SecretString> {
        (!self.webhook_url.expose_secret().trim().is_empty()).then_some(&self.webhook_url)
    }
}

impl TelnyxSettings {
    /// The API key, when the Telnyx API is used.
    pub fn key(&self) -> Option<&SecretString> {
        (!self.api_key.expose_secret().trim().is_empty()).then_some(&self.api_key)
    }
}

impl BalanceSettings {
    pub fn threshold(&self) -> Result<Decimal, String> {
        Decimal::from_str(self.alert_below.trim()).map_err(|e| e.to_string())
    }

    pub fn remind_every(&self) -> Result<std::time::Duration, String> {
        humantime::parse_duration(self.remind_every.trim()).map_err(|e| e.to_string())
    }
}

/// Whether `expr` is a schedule the job scheduler accepts.
pub fn valid_cron(expr: &str) -> bool {
    tokio_cron_scheduler::Job::new_async(expr, |_, _| Box::pin(async {})).is_ok()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    pub public_url: String,
    pub workers: usize,
    pub shutdown_delay_secs: u64,
    pub shutdown_timeout_secs: u64,
}

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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecuritySettings {
    pub mode: crate::signature::Mode,
    pub max_clock_skew_secs: u64,
    pub trust_forwarded_headers: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    pub max_active_calls: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioSettings {
    pub auth_token: SecretString,
}

impl TwilioSettings {
    /// The auth token, when Twilio signatures are checked.
    pub fn token(&self) -> Option<&SecretString> {
        (!self.auth_token.expose_secret().trim().is_empty()).then_some(&self.auth_token)
    }
}

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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathSettings {
    pub templates: PathBuf,
    pub audio: PathBuf,
}

/// The `record` attribute of `<Dial>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordMode {
    DoNotRecord,
    RecordFromAnswer,
    RecordFromRinging,
    RecordFromAnswerDual,
    RecordFromRingingDual,
}

impl RecordMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordMode::DoNotRecord => "do-not-record",
            RecordMode::RecordFromAnswer => "record-from-answer",
            RecordMode::RecordFromRinging => "record-from-ringing",
            RecordMode::RecordFromAnswerDual => "record-from-answer-dual",
            RecordMode::RecordFromRingingDual => "record-from-ringing-dual",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DialSettings {
    pub ring_timeout_secs: u32,
    pub rounds: u8,
    pub record: RecordMode,
    pub time_limit_secs: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoicemailSettings {
    pub max_length_secs: u32,
    pub silence_timeout_secs: u32,
    pub finish_on_key: String,
    pub play_beep: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallSettings {
    pub grace_secs: u64,
    pub ttl_secs: u64,
    pub sweep_interval_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSettings {
    pub name: String,
    pub sip: Option<String>,
    pub number: Option<String>,
    pub connection_id: Option<String>,
}

/// A configuration that cannot be used. Its message names the key and says why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration: {}", .0.join("; "))]
    Invalid(Vec<String>),
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
        let settings: Settings = builder.add_source(env).build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// The embedded demo configuration, checked.
    pub fn demo() -> Result<Settings, ConfigError> {
        Self::load_with(None, Environment::with_prefix("SWITCHBOARD_UNUSED_IN_DEMO"))
    }

    /// Checks every value; all problems are reported at once, each naming its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut errors = Vec::new();
        let mut check = |ok: bool, key: &str, why: &str| {
            if !ok {
                errors.push(format!("{key}: {why}"));
            }
        };
        match Url::parse(&self.server.public_url) {
            Ok(url) => check(
                matches!(url.scheme(), "http" | "https")
                    && url.host().is_some()
                    && url.query().is_none()
                    && url.fragment().is_none(),
                "server.public_url",
                "must be an absolute http(s) URL without query or fragment",
            ),
            Err(e) => check(
                false,
                "server.public_url",
                &format!("is not a URL ({e}); expected e.g. https://switchboard.example.com"),
            ),
        }
        check(
            !self.server.host.trim().is_empty(),
            "server.host",
            "must not be empty",
        );
        check(
            tracing_subscriber::EnvFilter::try_new(&self.log.level).is_ok(),
            "log.level",
            "is not a valid level or filter (e.g. info, debug, switchboard=debug)",
        );
        check(
            (5..=120).contains(&self.dial.ring_timeout_secs),
            "dial.ring_timeout_secs",
            "must be between 5 and 120",
        );
        check(
            (1..=10).contains(&self.dial.rounds),
            "dial.rounds",
            "must be between 1 and 10",
        );
        check(
            (60..=14400).contains(&self.dial.time_limit_secs),
            "dial.time_limit_secs",
            "must be between 60 and 14400",
        );
        check(
            (1..=3600).contains(&self.voicemail.max_length_secs),
            "voicemail.max_length_secs",
            "must be between 1 and 3600",
        );
        check(
            self.voicemail.silence_timeout_secs <= 3600,
            "voicemail.silence_timeout_secs",
            "must be at most 3600",
        );
        check(
            self.voicemail.finish_on_key.is_empty()
                || (self.voicemail.finish_on_key.len() == 1
                    && self
                        .voicemail
                        .finish_on_key
                        .chars()
                        .all(|c| c.is_ascii_digit() || c == '*' || c == '#')),
            "voicemail.finish_on_key",
            "must be empty or one of 0-9, * and #",
        );
        check(
            self.calls.sweep_interval_secs >= 1,
            "calls.sweep_interval_secs",
            "must be at least 1",
        );
        check(
            self.calls.ttl_secs > u64::from(self.dial.time_limit_secs),
            "calls.ttl_secs",
            "must exceed dial.time_limit_secs (an answered call gets no callbacks while people talk)",
        );
        check(
            self.calls.grace_secs <= self.calls.ttl_secs,
            "calls.grace_secs",
            "must not exceed calls.ttl_secs",
        );
        check(
            self.server.shutdown_delay_secs <= 300 && self.server.shutdown_timeout_secs <= 300,
            "server.shutdown_delay_secs",
            "and server.shutdown_timeout_secs must be at most 300",
        );
        check(
            (1..=3600).contains(&self.security.max_clock_skew_secs),
            "security.max_clock_skew_secs",
            "must be between 1 and 3600",
        );
        if self.state.backend == Backend::Redis {
            let url = self.state.redis_url.expose_secret();
            let ok = Url::parse(url.trim())
                .is_ok_and(|u| matches!(u.scheme(), "redis" | "redis+unix" | "unix"));
            if !ok {
                errors.push(
                    "state.redis_url: must be a redis:// URL (its value is not shown: it may hold a password)"
                        .into(),
                );
            }
        }
        if !(3..=3600).contains(&self.state.lease_ttl_secs) {
            errors.push("state.lease_ttl_secs: must be between 3 and 3600".into());
        }
        if !(1..=3600).contains(&self.state.agents_sync_secs) {
            errors.push("state.agents_sync_secs: must be between 1 and 3600".into());
        }
        if self.state.key_prefix.contains(char::is_whitespace) {
            errors.push("state.key_prefix: must not contain spaces".into());
        }
        let has_key = !self.telnyx.public_key.trim().is_empty();
        if has_key {
            if let Err(why) = crate::signature::telnyx_key(&self.telnyx.public_key) {
                errors.push(format!("telnyx.public_key: {why}"));
            }
        }
        let can_verify = has_key || self.twilio.token().is_some();
        if matches!(
            self.security.mode,
            crate::signature::Mode::Enforce | crate::signature::Mode::Log
        ) && !can_verify
        {
            errors.push(
                "security.mode: enforce and log need telnyx.public_key or twilio.auth_token".into(),
            );
        }
        let mut check = |ok: bool, key: &str, why: &str| {
            if !ok {
                errors.push(format!("{key}: {why}"));
            }
        };
        check(
            self.limits.max_active_calls >= 1,
            "limits.max_active_calls",
            "must be at least 1",
        );
        check(
            self.slack.flush_timeout_secs <= 300,
            "slack.flush_timeout_secs",
            "must be at most 300",
        );
        check(
            (1..=100_000).contains(&self.slack.queue_capacity),
            "slack.queue_capacity",
            "must be between 1 and 100000",
        );
        check(
            (1..=120).contains(&self.slack.timeout_secs),
            "slack.timeout_secs",
            "must be between 1 and 120",
        );
        check(
            (1..=50).contains(&self.slack.max_attempts),
            "slack.max_attempts",
            "must be between 1 and 50",
        );
        check(
            self.slack.retry_base_ms >= 1 && self.slack.retry_base_ms <= self.slack.retry_max_ms,
            "slack.retry_base_ms",
            "must be at least 1 and at most slack.retry_max_ms",
        );
        if let Some(url) = self.slack.url() {
            check(
                Url::parse(url.expose_secret().trim())
                    .is_ok_and(|u| matches!(u.scheme(), "http" | "https")),
                "slack.webhook_url",
                "must be an http(s) URL (its value is not shown: it is a secret)",
            );
        }
        check(
            Url::parse(&self.telnyx.api_base_url)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https")),
            "telnyx.api_base_url",
            "must be an http(s) URL",
        );
        check(
            !self.telnyx.sip_domain.trim().is_empty()
                && !self.telnyx.sip_domain.contains(['@', ':', '/', ' ']),
            "telnyx.sip_domain",
            "must be a host name such as sip.telnyx.com",
        );
        check(
            (1..=120).contains(&self.telnyx.timeout_secs),
            "telnyx.timeout_secs",
            "must be between 1 and 120",
        );
        check(
            self.telnyx.max_retries <= 10,
            "telnyx.max_retries",
            "must be at most 10",
        );
        check(
            valid_cron(&self.jobs.agents_refresh),
            "jobs.agents_refresh",
            "is not a cron schedule (sec min hour day month weekday), e.g. \"0 */10 * * * *\"",
        );
        check(
            valid_cron(&self.jobs.balance_check),
            "jobs.balance_check",
            "is not a cron schedule (sec min hour day month weekday), e.g. \"0 0 * * * *\"",
        );
        check(
            self.jobs.alert_after_failures >= 1,
            "jobs.alert_after_failures",
            "must be at least 1",
        );
        if let Err(e) = self.balance.threshold() {
            errors.push(format!(
                "balance.alert_below: is not a decimal amount such as \"80.00\" ({e})"
            ));
        }
        match self.balance.remind_every() {
            Ok(d) if d.as_secs() >= 60 => {}
            Ok(_) => errors.push("balance.remind_every: must be at least 1m".into()),
            Err(e) => errors.push(format!(
                "balance.remind_every: is not a duration such as 12h or 1d ({e})"
            )),
        }
        for (i, agent) in self.agents.iter().enumerate() {
            if let Err(why) = agent.to_agent() {
                errors.push(format!("agents[{i}]: {why}"));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(errors))
        }
    }

    /// The statically configured agents (already validated).
    pub fn static_agents(&self) -> Vec<Agent> {
        self.agents
            .iter()
            .filter_map(|a| a.to_agent().ok())
            .collect()
    }
}

impl AgentSettings {
    fn to_agent(&self) -> Result<Agent, String> {
        let endpoint = match (&self.sip, &self.number) {
            (Some(sip), None) => Endpoint::sip(sip).map_err(|e| format!("sip: {e}"))?,
            (None, Some(number)) => Endpoint::number(number).map_err(|e| format!("number: {e}"))?,
            _ => return Err("needs exactly one of `sip` or `number`".into()),
        };
        let mut agent = Agent::new(&self.name, endpoint).map_err(|e| format!("name: {e}"))?;
        agent.connection_id = self
            .connection_id
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(Box::from);
        Ok(agent)
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
        assert_eq!(s.dial.record, RecordMode::RecordFromAnswerDual);
        assert_eq!(s.static_agents().len(), 3);
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
        assert_eq!(s.server.public_url, "https://sb.example.com/base");
        assert_eq!(s.dial.rounds, 3);
    }

    #[test]
    fn invalid_values_name_their_keys() {
        let err = Settings::load_with(
            None,
            env(&[
                ("SWITCHBOARD__DIAL__ROUNDS", "0"),
                ("SWITCHBOARD__SERVER__PUBLIC_URL", "not a url"),
            ]),
        )
        .expect_err("invalid")
        .to_string();
        assert!(
            err.contains("dial.rounds: must be between 1 and 10"),
            "{err}"
        );
        assert!(err.contains("server.public_url"), "{err}");
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
}
