//! The Telnyx REST API (v2): credential connections (the agents) and the account balance.
//! 429 and 5xx answers are retried a bounded number of times, honouring `Retry-After`.

use std::str::FromStr;
use std::time::Duration;

use reqwest::StatusCode;
use rust_decimal::Decimal;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use crate::config::TelnyxSettings;
use crate::retry::{next_try, retry_after};

/// Pages read at most when listing (at 250 a page: 250,000 connections).
const MAX_PAGES: u32 = 1000;
const PAGE_SIZE: u32 = 250;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("Telnyx API answered {status}: {detail}")]
    Status { status: u16, detail: String },
    #[error("Telnyx API unreachable: {0}")]
    Network(String),
    #[error("Telnyx API answer not understood: {0}")]
    Decode(String),
    #[error("Telnyx API listed more than {MAX_PAGES} pages")]
    TooManyPages,
}

pub struct Telnyx {
    http: reqwest::Client,
    base: String,
    key: SecretString,
    max_retries: u32,
    retry_base: Duration,
}

/// One credential connection: an agent's SIP account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialConnection {
    pub id: String,
    pub active: bool,
    pub user_name: Option<String>,
    pub connection_name: Option<String>,
    pub outbound_voice_profile_id: Option<String>,
    /// `inbound.sip_uri_calling_preference`: `disabled`, `unrestricted` or `internal` (absent:
    /// not said).
    pub sip_uri_calling: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balance {
    pub available_credit: Decimal,
    pub currency: String,
}

#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    data: Vec<Value>,
    meta: Option<Meta>,
}

#[derive(Deserialize)]
struct Meta {
    page_number: Option<u32>,
    total_pages: Option<u32>,
}

/// Ids and amounts arrive as strings (sometimes numbers): keep their text exactly.
pub fn json_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.trim().to_owned()).filter(|s| !s.is_empty()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl CredentialConnection {
    fn from_json(v: &Value) -> Result<CredentialConnection, ApiError> {
        Ok(CredentialConnection {
            id: json_text(v.get("id"))
                .ok_or_else(|| ApiError::Decode("a credential connection has no id".into()))?,
            active: v.get("active").and_then(Value::as_bool).unwrap_or(false),
            user_name: json_text(v.get("user_name")),
            connection_name: json_text(v.get("connection_name")),
            outbound_voice_profile_id: json_text(
                v.get("outbound")
                    .and_then(|o| o.get("outbound_voice_profile_id")),
            ),
            sip_uri_calling: json_text(
                v.get("inbound")
                    .and_then(|i| i.get("sip_uri_calling_preference")),
            ),
        })
    }
}

impl Telnyx {
    pub fn new(settings: &TelnyxSettings, key: SecretString) -> Telnyx {
        Telnyx {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(settings.timeout_secs))
                .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
                .build()
                .unwrap_or_default(),
            base: settings
                .api_base_url
                .as_str()
                .trim_end_matches('/')
                .to_owned(),
            key,
            max_retries: settings.max_retries,
            retry_base: Duration::from_millis(settings.retry_base_ms),
        }
    }

    async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, ApiError> {
        let url = format!("{}{path}", self.base);
        let mut attempt = 0;
        loop {
            let sent = self
                .http
                .get(&url)
                .bearer_auth(self.key.expose_secret())
                .query(query)
                .send()
                .await;
            let (error, wait) = match sent {
                Ok(res) if res.status().is_success() => {
                    return res
                        .json::<T>()
                        .await
                        .map_err(|e| ApiError::Decode(e.without_url().to_string()))
                }
                Ok(res) => {
                    let status = res.status();
                    let retry_after = retry_after(res.headers());
                    let detail = error_detail(status, &res.text().await.unwrap_or_default());
                    let error = ApiError::Status {
                        status: status.as_u16(),
                        detail,
                    };
                    let retryable =
                        status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
                    if !retryable {
                        return Err(error);
                    }
                    (error, retry_after)
                }
                Err(e) => (ApiError::Network(e.without_url().to_string()), None),
            };
            let Some(wait) = next_try(attempt, self.max_retries, wait, self.retry_base) else {
                return Err(error);
            };
            tracing::debug!(%error, attempt, wait_ms = wait.as_millis() as u64, "Telnyx API call will be retried");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// Every credential connection, across all pages.
    pub async fn credential_connections(&self) -> Result<Vec<CredentialConnection>, ApiError> {
        let mut all = Vec::new();
        for number in 1..=MAX_PAGES {
            let page: Page = self
                .get(
                    "/credential_connections",
                    &[
                        ("page[number]", number.to_string()),
                        ("page[size]", PAGE_SIZE.to_string()),
                    ],
                )
                .await?;
            let empty = page.data.is_empty();
            for item in &page.data {
                all.push(CredentialConnection::from_json(item)?);
            }
            let total = page.meta.as_ref().and_then(|m| m.total_pages).unwrap_or(1);
            let current = page
                .meta
                .as_ref()
                .and_then(|m| m.page_number)
                .unwrap_or(number);
            if empty || current >= total {
                return Ok(all);
            }
        }
        Err(ApiError::TooManyPages)
    }

    /// The account balance; amounts are decimal strings, parsed exactly.
    pub async fn balance(&self) -> Result<Balance, ApiError> {
        let body: Value = self.get("/balance", &[]).await?;
        let data = body
            .get("data")
            .ok_or_else(|| ApiError::Decode("balance: no data".into()))?;
        let available = json_text(data.get("available_credit"))
            .ok_or_else(|| ApiError::Decode("balance: no available_credit".into()))?;
        Ok(Balance {
            available_credit: Decimal::from_str(&available)
                .map_err(|e| ApiError::Decode(format!("balance: available_credit: {e}")))?,
            currency: json_text(data.get("currency")).unwrap_or_else(|| "USD".into()),
        })
    }
}

/// The first error's code, title and detail from a Telnyx error body, else the start of the
/// body, else the status's reason phrase.
fn error_detail(status: StatusCode, body: &str) -> String {
    if body.trim().is_empty() {
        return status.canonical_reason().unwrap_or("no detail").to_owned();
    }
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let first = parsed
        .as_ref()
        .and_then(|v| v.get("errors"))
        .and_then(|e| e.get(0));
    match first {
        Some(e) => {
            let part = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("");
            format!("{} {} {}", part("code"), part("title"), part("detail"))
                .trim()
                .to_owned()
        }
        None => body.chars().take(200).collect(),
    }
}
