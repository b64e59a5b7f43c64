//! The provider's REST API for calls and conferences, as conference mode uses it: place a call,
//! update a call (end it, or give it a new document), update a conference participant
//! (announce, mute, hold), remove one, add one, and start or stop a call's recording.
//!
//! Telnyx: the TeXML REST API under `{telnyx.api_base_url}/texml/Accounts/{AccountSid}/…`, JSON
//! bodies, `Authorization: Bearer <api_key>`; placing a call names the TeXML application
//! (`ApplicationSid`). Twilio: `{twilio.api_base_url}/2010-04-01/Accounts/{AccountSid}/….json`,
//! form bodies, HTTP Basic with the account and its auth token. Paths, field names and answers
//! follow Telnyx's OpenAPI-generated SDK (team-telnyx/telnyx-python, `resources/texml/accounts`)
//! and Twilio's API reference. 429 and 5xx answers (and network errors) are retried a bounded
//! number of times, honouring `Retry-After`.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use crate::retry::{next_try, retry_after};
use crate::texml::Provider;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("{provider} API answered {status}: {detail}")]
    Status {
        provider: &'static str,
        status: u16,
        detail: String,
    },
    #[error("{0} API unreachable: {1}")]
    Network(&'static str, String),
    #[error("no account to make the request for (the call's AccountSid was not known)")]
    NoAccount,
    #[error("{0} API is not configured: {1}")]
    NotConfigured(&'static str, &'static str),
    #[error("`{0}` cannot be a path segment")]
    BadId(String),
}

impl ApiError {
    /// The resource is gone or was never there (a call that already ended): nothing to do.
    pub fn is_gone(&self) -> bool {
        matches!(self, ApiError::Status { status, .. } if matches!(status, 404 | 410))
    }

    /// The HTTP status the API answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// How a request authenticates and where it goes.
pub struct VoiceApi {
    http: reqwest::Client,
    provider: Provider,
    telnyx_base: String,
    telnyx_key: Option<SecretString>,
    application: String,
    twilio_base: String,
    twilio_account: String,
    twilio_token: Option<SecretString>,
    max_retries: u32,
    retry_base: Duration,
}

/// What a request carries: named fields, sent as JSON (Telnyx) or a form (Twilio). A name may
/// repeat (Twilio's `StatusCallbackEvent`); as JSON, repeated values are joined with spaces.
pub type Fields = Vec<(&'static str, String)>;

impl VoiceApi {
    pub fn new(settings: &crate::config::Settings) -> VoiceApi {
        let t = &settings.telnyx;
        VoiceApi {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(t.timeout_secs))
                .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
                .build()
                .unwrap_or_default(),
            provider: settings.provider.kind,
            telnyx_base: t.api_base_url.as_str().trim_end_matches('/').to_owned(),
            telnyx_key: t.api_key.clone(),
            application: t.texml_application_id.clone(),
            twilio_base: settings
                .twilio
                .api_base_url
                .as_str()
                .trim_end_matches('/')
                .to_owned(),
            twilio_account: settings.twilio.account_sid.clone(),
            twilio_token: settings.twilio.auth_token.clone(),
            max_retries: t.max_retries,
            retry_base: Duration::from_millis(t.retry_base_ms),
        }
    }

    pub fn provider(&self) -> Provider {
        self.provider
    }

    fn name(&self) -> &'static str {
        match self.provider {
            Provider::Telnyx => "Telnyx",
            Provider::Twilio => "Twilio",
        }
    }

    /// The account a request is made for: Twilio's configured one, else the call's.
    fn account<'a>(&'a self, call_account: Option<&'a str>) -> Result<&'a str, ApiError> {
        match self.provider {
            Provider::Twilio if !self.twilio_account.is_empty() => Ok(&self.twilio_account),
            _ => call_account
                .filter(|a| !a.is_empty())
                .ok_or(ApiError::NoAccount),
        }
    }

    /// The URL of a resource under the account, from its path `segments` (`["Calls", sid]`):
    /// each is one path segment, encoded (a `/` in an id cannot reach another resource; `.` and
    /// `..` are refused). Twilio's end in `.json`; of Telnyx's, only the recording resources do
    /// (`json`).
    fn url(&self, account: &str, segments: &[&str], json: bool) -> Result<String, ApiError> {
        let mut path = String::new();
        for segment in std::iter::once(account).chain(segments.iter().copied()) {
            if segment.is_empty() || segment == "." || segment == ".." {
                return Err(ApiError::BadId(segment.chars().take(40).collect()));
            }
            path.push('/');
            path.extend(url::form_urlencoded::byte_serialize(segment.as_bytes()));
        }
        Ok(match self.provider {
            Provider::Telnyx => format!(
                "{}/texml/Accounts{path}{}",
                self.telnyx_base,
                if json { ".json" } else { "" }
            ),
            Provider::Twilio => format!("{}/2010-04-01/Accounts{path}.json", self.twilio_base),
        })
    }

    /// Places a call to `to` (a number or SIP address) from `from`, whose document is fetched
    /// from `url` when it answers, with status callbacks to `status_callback`, ringing at most
    /// `timeout_secs`. Returns the new call's CallSid when the answer says it.
    pub async fn place_call(
        &self,
        account: Option<&str>,
        to: &str,
        from: &str,
        url: &str,
        status_callback: &str,
        timeout_secs: u32,
    ) -> Result<Option<String>, ApiError> {
        let account = self.account(account)?;
        let mut fields: Fields = vec![
            ("To", to.to_owned()),
            ("From", from.to_owned()),
            ("Url", url.to_owned()),
            ("StatusCallback", status_callback.to_owned()),
            ("StatusCallbackMethod", "POST".to_owned()),
            ("Timeout", timeout_secs.to_string()),
        ];
        match self.provider {
            Provider::Telnyx => {
                if self.application.is_empty() {
                    return Err(ApiError::NotConfigured(
                        "Telnyx",
                        "telnyx.texml_application_id is empty",
                    ));
                }
                fields.push(("ApplicationSid", self.application.clone()));
                fields.push(("UrlMethod", "POST".to_owned()));
            }
            Provider::Twilio => fields.push(("Method", "POST".to_owned())),
        }
        for event in ["initiated", "ringing", "answered", "completed"] {
            fields.push(("StatusCallbackEvent", event.to_owned()));
        }
        // Not repeated once it may have been sent: a second request could place a second call.
        let url = self.url(account, &["Calls"], false)?;
        let answer = self.send(Method::POST, &url, &fields, false).await?;
        Ok(["sid", "call_sid", "CallSid"]
            .iter()
            .find_map(|k| answer.get(*k).or_else(|| answer.get("data")?.get(*k)))
            .and_then(Value::as_str)
            .map(str::to_owned))
    }

    /// Updates a resource of the account: a call (`["Calls", sid]`: `Status` ends it, `Url`
    /// gives it a new document), a conference (`["Conferences", sid]`: `Status=completed` ends
    /// it), a participant (`["Conferences", sid, "Participants", label]`: announce, mute, hold).
    pub async fn update(
        &self,
        account: Option<&str>,
        resource: &[&str],
        fields: &Fields,
    ) -> Result<(), ApiError> {
        let account = self.account(account)?;
        let url = self.url(account, resource, false)?;
        self.send(Method::POST, &url, fields, true).await.map(drop)
    }

    /// Updates call `sid`.
    pub async fn update_call(
        &self,
        account: Option<&str>,
        sid: &str,
        fields: &Fields,
    ) -> Result<(), ApiError> {
        self.update(account, &["Calls", sid], fields).await
    }

    /// Ends call `sid`: Telnyx documents `Status=completed` for any live call; Twilio cancels a
    /// call that still rings with `canceled` (which does nothing to an answered one) and ends an
    /// answered one with `completed`, so a call not known to be answered gets both, in turn.
    pub async fn end_call(
        &self,
        account: Option<&str>,
        sid: &str,
        answered: bool,
    ) -> Result<(), ApiError> {
        let status = |s: &str| vec![("Status", s.to_owned())];
        if self.provider == Provider::Twilio && !answered {
            match self.update_call(account, sid, &status("canceled")).await {
                Err(e) if !e.is_gone() => return Err(e),
                _ => {}
            }
        }
        self.update_call(account, sid, &status("completed")).await
    }

    /// Takes participant `who` out of conference `conference` (their call ends).
    pub async fn remove_participant(
        &self,
        account: Option<&str>,
        conference: &str,
        who: &str,
    ) -> Result<(), ApiError> {
        let account = self.account(account)?;
        let url = self.url(
            account,
            &["Conferences", conference, "Participants", who],
            false,
        )?;
        self.send(Method::DELETE, &url, &Vec::new(), true)
            .await
            .map(drop)
    }

    /// Starts recording call `sid` (both directions, one channel), with recording callbacks to
    /// `callback`. Returns the recording's id when the answer says it.
    pub async fn start_recording(
        &self,
        account: Option<&str>,
        sid: &str,
        callback: &str,
    ) -> Result<Option<String>, ApiError> {
        let account = self.account(account)?;
        let channels = match self.provider {
            Provider::Telnyx => "single",
            Provider::Twilio => "mono",
        };
        let fields: Fields = vec![
            ("RecordingChannels", channels.to_owned()),
            ("RecordingStatusCallback", callback.to_owned()),
            ("RecordingStatusCallbackMethod", "POST".to_owned()),
            ("RecordingStatusCallbackEvent", "completed".to_owned()),
            ("RecordingTrack", "both".to_owned()),
        ];
        let url = self.url(account, &["Calls", sid, "Recordings"], true)?;
        let answer = self.send(Method::POST, &url, &fields, true).await?;
        Ok(answer.get("sid").and_then(Value::as_str).map(str::to_owned))
    }

    /// Stops recording `recording` of call `sid`; `None` (its id never came): under Twilio its
    /// current recording (`Twilio.CURRENT`), under Telnyx each of the call's recordings that is
    /// in progress or paused, as the call's recordings list says.
    pub async fn stop_recording(
        &self,
        account: Option<&str>,
        sid: &str,
        recording: Option<&str>,
    ) -> Result<(), ApiError> {
        let account = self.account(account)?;
        let recordings: Vec<String> = match (recording, self.provider) {
            (Some(r), _) => vec![r.to_owned()],
            (None, Provider::Twilio) => vec!["Twilio.CURRENT".to_owned()],
            (None, Provider::Telnyx) => {
                let url = self.url(account, &["Calls", sid, "Recordings"], true)?;
                let list = self.send(Method::GET, &url, &Vec::new(), true).await?;
                list.get("recordings")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter(|r| {
                        matches!(
                            r.get("status").and_then(Value::as_str),
                            Some("in-progress" | "paused")
                        )
                    })
                    .filter_map(|r| r.get("sid").and_then(Value::as_str).map(str::to_owned))
                    .collect()
            }
        };
        for recording in recordings {
            let url = self.url(account, &["Calls", sid, "Recordings", &recording], true)?;
            let fields: Fields = vec![("Status", "stopped".to_owned())];
            self.send(Method::POST, &url, &fields, true).await?;
        }
        Ok(())
    }

    /// Sends one request, retrying 429 and a connection that could not be made, and (`again`:
    /// when repeating it is harmless) 5xx and other network errors.
    async fn send(
        &self,
        method: Method,
        url: &str,
        fields: &Fields,
        again: bool,
    ) -> Result<Value, ApiError> {
        let provider = self.name();
        let mut attempt = 0;
        loop {
            let request = self.http.request(method.clone(), url);
            let request = match self.provider {
                Provider::Telnyx => {
                    let key = self
                        .telnyx_key
                        .as_ref()
                        .ok_or(ApiError::NotConfigured("Telnyx", "telnyx.api_key is empty"))?;
                    request.bearer_auth(key.expose_secret())
                }
                Provider::Twilio => {
                    let token = self.twilio_token.as_ref().ok_or(ApiError::NotConfigured(
                        "Twilio",
                        "twilio.auth_token is empty",
                    ))?;
                    request.basic_auth(account_of_url(url), Some(token.expose_secret()))
                }
            };
            // A GET or DELETE carries no body; a POST its fields, as each provider takes them.
            let request = match (method == Method::POST, self.provider) {
                (false, _) => request,
                (true, Provider::Telnyx) => request.json(&json_body(fields)),
                (true, Provider::Twilio) => request.form(fields),
            };
            let (error, wait) = match request.send().await {
                Ok(res) if res.status().is_success() => {
                    let body = res.bytes().await.unwrap_or_default();
                    return Ok(serde_json::from_slice(&body).unwrap_or(Value::Null));
                }
                Ok(res) => {
                    let status = res.status();
                    let wait = retry_after(res.headers());
                    let body = res.text().await.unwrap_or_default();
                    let error = ApiError::Status {
                        provider,
                        status: status.as_u16(),
                        detail: body.chars().take(200).collect(),
                    };
                    let retry = status == StatusCode::TOO_MANY_REQUESTS
                        || (again && status.is_server_error());
                    if !retry {
                        return Err(error);
                    }
                    (error, wait)
                }
                Err(e) => {
                    let connect = e.is_connect();
                    let error = ApiError::Network(provider, e.without_url().to_string());
                    if !again && !connect {
                        return Err(error);
                    }
                    (error, None)
                }
            };
            let Some(wait) = next_try(attempt, self.max_retries, wait, self.retry_base) else {
                return Err(error);
            };
            tracing::debug!(%error, attempt, wait_ms = wait.as_millis() as u64, "provider API request will be retried");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }
}

/// The fields sent as JSON integers.
const INTEGERS: [&str; 1] = ["Timeout"];

/// The account a Twilio URL is for (its Basic user name).
fn account_of_url(url: &str) -> &str {
    url.split("/Accounts/")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default()
}

/// Fields as a JSON object: a repeated name's values joined with spaces (Telnyx takes
/// `StatusCallbackEvent` as one space-separated string); `true`/`false` as booleans; the
/// integer fields (`Timeout`) as integers.
fn json_body(fields: &Fields) -> Value {
    let mut map = Map::new();
    for (k, v) in fields {
        let value = match map.get(*k) {
            Some(Value::String(before)) => Value::String(format!("{before} {v}")),
            _ => match v.as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                n if INTEGERS.contains(k) => n
                    .parse::<u64>()
                    .map_or_else(|_| Value::String(n.to_owned()), Value::from),
                _ => Value::String(v.clone()),
            },
        };
        map.insert((*k).to_owned(), value);
    }
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_fields_join_and_flags_are_booleans_in_json() {
        let fields: Fields = vec![
            ("StatusCallbackEvent", "initiated".into()),
            ("StatusCallbackEvent", "completed".into()),
            ("Muted", "true".into()),
            ("Timeout", "25".into()),
            ("To", "1234".into()),
        ];
        assert_eq!(
            json_body(&fields),
            serde_json::json!({
                "StatusCallbackEvent": "initiated completed",
                "Muted": true,
                "Timeout": 25,
                "To": "1234",
            })
        );
    }
}

#[cfg(test)]
mod paths {
    use super::*;

    fn api(provider: Provider) -> VoiceApi {
        let mut settings = crate::config::Settings::demo().expect("demo");
        settings.provider.kind = provider;
        VoiceApi::new(&settings)
    }

    #[test]
    fn ids_are_one_path_segment_each_and_dot_segments_are_refused() {
        let telnyx = api(Provider::Telnyx);
        assert_eq!(
            telnyx.url("AC1", &["Calls", "v3:a/b"], false).expect("url"),
            "https://api.telnyx.com/v2/texml/Accounts/AC1/Calls/v3%3Aa%2Fb"
        );
        assert_eq!(
            telnyx
                .url("AC1", &["Calls", "CA1", "Recordings"], true)
                .expect("url"),
            "https://api.telnyx.com/v2/texml/Accounts/AC1/Calls/CA1/Recordings.json"
        );
        assert!(telnyx.url("AC1", &["Calls", ".."], false).is_err());
        assert!(telnyx.url("..", &["Calls"], false).is_err());
        let twilio = api(Provider::Twilio);
        assert_eq!(
            twilio
                .url("AC1", &["Conferences", "CF1", "Participants", "caller"], false)
                .expect("url"),
            "https://api.twilio.com/2010-04-01/Accounts/AC1/Conferences/CF1/Participants/caller.json"
        );
    }
}
