//! Settings: the embedded `config/default.toml`, then an optional file, then `SWITCHBOARD__*`
//! environment variables. Everything is checked once at start; an error names the key and why,
//! so an operator never finds out about a typo from a caller.

use std::path::{Path, PathBuf};

use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;
use url::Url;

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
    #[serde(default)]
    pub agents: Vec<AgentSettings>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    pub public_url: String,
    pub workers: usize,
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
        Agent::new(&self.name, endpoint).map_err(|e| format!("name: {e}"))
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
