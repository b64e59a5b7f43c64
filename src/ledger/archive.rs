//! The recordings archive. A recording the provider reports (a voicemail, a conversation) is
//! downloaded at once, off the call path, with retries inside the provider's ten minutes; streamed
//! into the [`Store`] (a directory, or a bucket) with its size and SHA-256; noted in the ledger;
//! and announced to the sinks (Slack links to our copy with a signed link that expires). Then,
//! under `recordings.delete_from_provider`, the provider's copy is deleted. A download that keeps
//! failing is reported and counted. Retention deletes expired files and marks their rows.
//!
//! Files are named by a hash of the recording's id (`2026/11/<hash>.mp3`), so nothing the
//! provider sends becomes a path.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hmac::{Hmac, Mac};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, Semaphore};

use super::store::Store;
use super::{Ledger, RecordingRow, Stored};
use crate::config::RecordingSettings;
use crate::domain::{CallSid, LineId, Party, ProviderCopy};
use crate::sink::{Record, RecordingFate, Sinks};
use crate::time::{Clock, Millis};

/// Downloads waiting at most; more are dropped (counted, logged, the provider link stays).
const QUEUE: usize = 1024;
/// Downloads at once.
const PARALLEL: usize = 4;

/// Signs and checks the links people get for recordings: `?expires=<unix ms>&sig=<hex>`.
#[derive(Clone)]
pub struct Links {
    key: SecretString,
    base: url::Url,
    ttl_ms: u64,
}

impl Links {
    pub fn new(key: SecretString, public_url: &url::Url, ttl_hours: u64) -> Links {
        Links {
            key,
            base: public_url.clone(),
            ttl_ms: ttl_hours.saturating_mul(3_600_000),
        }
    }

    fn mac(&self, id: &str, expires: Millis) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.key.expose_secret().as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(format!("recording\n{id}\n{expires}").as_bytes());
        mac
    }

    /// A link to recording `id`, valid until the returned instant.
    pub fn link(&self, id: &str, now: Millis) -> (String, Millis) {
        let expires = now.saturating_add(self.ttl_ms);
        let sig = hex(&self.mac(id, expires).finalize().into_bytes());
        let mut url = self.base.clone();
        let base = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base}/recordings/{}", segment(id)));
        url.set_query(Some(&format!("expires={expires}&sig={sig}")));
        (url.to_string(), expires)
    }

    /// Whether `sig` signs `id` until `expires`, and that is not past.
    pub fn verify(&self, id: &str, expires: Millis, sig: &str, now: Millis) -> bool {
        let Some(raw) = unhex(sig) else {
            return false;
        };
        now < expires && self.mac(id, expires).verify_slice(&raw).is_ok()
    }
}

fn segment(raw: &str) -> String {
    url::form_urlencoded::byte_serialize(raw.as_bytes()).collect()
}

/// Lower-case hexadecimal.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || s.len() > 128 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// One recording to archive.
#[derive(Debug, Clone)]
pub struct Job {
    pub call: CallSid,
    pub line: LineId,
    pub from: Party,
    pub kind: &'static str,
    pub url: String,
    pub duration_secs: Option<u32>,
    /// The provider's copy, deleted once archived under `recordings.delete_from_provider`.
    pub copy: Option<ProviderCopy>,
}

impl Job {
    /// The archived recording's id: one voicemail and one conversation per call; a conference
    /// room may be recorded more than once (stopped and started again), so its id names the
    /// provider's recording when the callback did.
    pub fn id(&self) -> String {
        match (&self.copy, self.kind) {
            (Some(copy), "conference") => {
                format!("{}-conference-{}", self.call.as_str(), copy.sid)
            }
            _ => format!("{}-{}", self.call.as_str(), self.kind),
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FateLabels {
    fate: &'static str,
}

/// Deletes the provider's copy of a recording (`recordings.delete_from_provider`).
#[derive(Clone)]
pub enum ProviderCopies {
    /// Telnyx's TeXML REST API, with the API key:
    /// `DELETE {api_base_url}/texml/Accounts/{AccountSid}/Recordings/{RecordingSid}.json`.
    Telnyx { base: url::Url, key: SecretString },
    /// Twilio's REST API, with the account's auth token:
    /// `DELETE {api_base_url}/2010-04-01/Accounts/{AccountSid}/Recordings/{RecordingSid}.json`.
    Twilio { base: url::Url, token: SecretString },
}

impl ProviderCopies {
    fn request(&self, http: &reqwest::Client, copy: &ProviderCopy) -> reqwest::RequestBuilder {
        let (base, path) = match self {
            ProviderCopies::Telnyx { base, .. } => (base, "texml/Accounts"),
            ProviderCopies::Twilio { base, .. } => (base, "2010-04-01/Accounts"),
        };
        let url = format!(
            "{}/{path}/{}/Recordings/{}.json",
            base.as_str().trim_end_matches('/'),
            segment(&copy.account),
            segment(&copy.sid),
        );
        match self {
            ProviderCopies::Telnyx { key, .. } => http.delete(url).bearer_auth(key.expose_secret()),
            ProviderCopies::Twilio { token, .. } => http
                .delete(url)
                .basic_auth(&*copy.account, Some(token.expose_secret())),
        }
    }

    /// Deletes `copy`; one already gone (404) counts as deleted.
    async fn delete(&self, http: &reqwest::Client, copy: &ProviderCopy) -> Result<(), String> {
        let res = self
            .request(http, copy)
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        match res.status() {
            s if s.is_success() || s == reqwest::StatusCode::NOT_FOUND => Ok(()),
            s => Err(format!("the provider answered {s}")),
        }
    }
}

pub struct Archive {
    ledger: Ledger,
    store: Store,
    copies: Option<ProviderCopies>,
    http: reqwest::Client,
    settings: RecordingSettings,
    links: Option<Links>,
    clock: Arc<dyn Clock>,
    sinks: OnceLock<Sinks>,
    /// archived, failed, deleted, dropped (`recordings_total`).
    fates: Family<FateLabels, Counter>,
    tx: mpsc::Sender<Job>,
}

impl Archive {
    /// Starts the download worker: recordings go to `store`; `copies`, when given, deletes the
    /// provider's copy once archived.
    pub fn start(
        ledger: Ledger,
        store: Store,
        copies: Option<ProviderCopies>,
        settings: RecordingSettings,
        links: Option<Links>,
        clock: Arc<dyn Clock>,
        registry: &mut Registry,
    ) -> Arc<Archive> {
        let fates = Family::default();
        registry.register(
            "recordings",
            "Recordings: archived, failed (provider copy only), deleted (retention), dropped \
             (queue full), provider_deleted, provider_kept (deleting the provider's copy failed)",
            fates.clone(),
        );
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        let (tx, rx) = mpsc::channel(QUEUE);
        let archive = Arc::new(Archive {
            ledger,
            store,
            copies,
            http,
            settings,
            links,
            clock,
            sinks: OnceLock::new(),
            fates,
            tx,
        });
        tokio::spawn(archive.clone().work(rx));
        archive
    }

    /// Where announcements go (set once the sinks exist: the ledger's sink is one of them).
    pub fn set_sinks(&self, sinks: Sinks) {
        let _ = self.sinks.set(sinks);
    }

    pub fn links(&self) -> Option<&Links> {
        self.links.as_ref()
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Queues `job`; never waits. A full queue drops it, counted and logged.
    pub fn submit(&self, job: Job) {
        if let Err(e) = self.tx.try_send(job) {
            self.count("dropped");
            let job = e.into_inner();
            tracing::error!(call_sid = %job.call, kind = job.kind, "recording not archived: the download queue is full");
        }
    }

    fn count(&self, fate: &'static str) {
        self.fates.get_or_create(&FateLabels { fate }).inc();
    }

    fn tell(&self, job: &Job, fate: RecordingFate) {
        if let Some(sinks) = self.sinks.get() {
            sinks.accept(Record::Recording {
                at: self.clock.now_ms(),
                call: job.call.clone(),
                line: job.line.clone(),
                from: job.from.clone(),
                kind: job.kind,
                fate,
            });
        }
    }

    async fn work(self: Arc<Self>, mut rx: mpsc::Receiver<Job>) {
        let permits = Arc::new(Semaphore::new(PARALLEL));
        while let Some(job) = rx.recv().await {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let archive = self.clone();
            tokio::spawn(async move {
                archive.archive(job).await;
                drop(permit);
            });
        }
    }

    /// Archives one recording: noted once (a duplicate is skipped), downloaded with retries.
    async fn archive(&self, job: Job) {
        let id = job.id();
        let noted = self
            .ledger
            .recording_received(&job, self.clock.now_ms())
            .await;
        match noted {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::error!(call_sid = %job.call, error = %e, "recording not noted in the ledger; downloading anyway")
            }
        }
        let downloaded = self
            .retrying(&job, "recording download failed; retrying", || {
                self.download(&job.url, &id)
            })
            .await;
        let (reason, attempts) = match downloaded {
            (Ok(stored), attempts) => return self.archived(&job, &id, stored, attempts).await,
            (Err(reason), attempts) => (reason, attempts),
        };
        self.count("failed");
        let now = self.clock.now_ms();
        if let Err(e) = self
            .ledger
            .recording_failed(&id, attempts, &reason, now)
            .await
        {
            tracing::error!(error = %e, "recording failure not noted in the ledger");
        }
        let data = serde_json::json!({ "id": id, "attempts": attempts, "reason": reason });
        let _ = self
            .ledger
            .note(job.call.as_str(), "recording.failed", now, &data)
            .await;
        let fate = RecordingFate::Failed {
            id,
            attempts,
            reason,
            provider_url: job.url.clone(),
        };
        self.tell(&job, fate);
    }

    /// `attempt` until it succeeds or `recordings.max_attempts` are spent, `retry_base_ms` apart
    /// and doubling (at most a minute); its outcome and how many attempts it took.
    async fn retrying<T, F, Fut>(
        &self,
        job: &Job,
        retrying: &str,
        mut attempt: F,
    ) -> (Result<T, String>, u32)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, String>>,
    {
        let mut attempts = 0;
        let mut delay = Duration::from_millis(self.settings.retry_base_ms);
        loop {
            attempts += 1;
            match attempt().await {
                Ok(done) => return (Ok(done), attempts),
                Err(e) if attempts >= self.settings.max_attempts => return (Err(e), attempts),
                Err(e) => {
                    tracing::warn!(call_sid = %job.call, attempt = attempts, error = %e, "{retrying}");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(60));
                }
            }
        }
    }

    async fn archived(&self, job: &Job, id: &str, stored: Stored, attempts: u32) {
        let now = self.clock.now_ms();
        let days = self.settings.retention_days.of(job.kind);
        let delete_after = (days > 0).then(|| now.saturating_add(u64::from(days) * 86_400_000));
        if let Err(e) = self
            .ledger
            .recording_archived(id, &stored, attempts, delete_after, now)
            .await
        {
            tracing::error!(error = %e, "archived recording not noted in the ledger");
        }
        let data = serde_json::json!({
            "id": id, "bytes": stored.bytes, "sha256": stored.sha256, "path": stored.path,
            "store": stored.store,
        });
        let _ = self
            .ledger
            .note(job.call.as_str(), "recording.archived", now, &data)
            .await;
        self.count("archived");
        let link = self.links.as_ref().map(|l| l.link(id, now));
        self.tell(
            job,
            RecordingFate::Archived {
                id: id.to_owned(),
                bytes: stored.bytes,
                sha256: stored.sha256,
                link: link.as_ref().map(|(l, _)| l.clone()),
                link_expires: link.map(|(_, t)| t),
            },
        );
        if let (Some(copies), Some(copy)) = (&self.copies, &job.copy) {
            self.delete_provider_copy(copies, job, id, copy).await;
        }
    }

    /// Deletes the provider's copy of an archived recording, with the download's retries.
    async fn delete_provider_copy(
        &self,
        copies: &ProviderCopies,
        job: &Job,
        id: &str,
        copy: &ProviderCopy,
    ) {
        let (outcome, attempts) = self
            .retrying(job, "provider's copy not deleted; retrying", || {
                copies.delete(&self.http, copy)
            })
            .await;
        let now = self.clock.now_ms();
        match outcome {
            Ok(()) => {
                self.count("provider_deleted");
                if let Err(e) = self.ledger.provider_copy_deleted(id, now).await {
                    tracing::error!(error = %e, "deleted provider copy not noted in the ledger");
                }
                let data = serde_json::json!({ "id": id, "recording_sid": copy.sid });
                let _ = self
                    .ledger
                    .note(job.call.as_str(), "recording.provider_deleted", now, &data)
                    .await;
            }
            Err(reason) => {
                self.count("provider_kept");
                tracing::error!(call_sid = %job.call, id, attempts, error = %reason, "the provider's copy of an archived recording was not deleted; it stays at the provider");
                let data = serde_json::json!({
                    "id": id, "recording_sid": copy.sid, "attempts": attempts, "reason": reason,
                });
                let _ = self
                    .ledger
                    .note(job.call.as_str(), "recording.provider_kept", now, &data)
                    .await;
            }
        }
    }

    /// One download into the archive directory, hashed as it streams.
    async fn download(&self, url: &str, id: &str) -> Result<Stored, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("bad URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err("not an http(s) URL".into());
        }
        let mut res = self
            .http
            .get(parsed.clone())
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        if !res.status().is_success() {
            return Err(format!("the provider answered {}", res.status()));
        }
        let content_type = res
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_ascii_lowercase())
            .filter(|v| v.starts_with("audio/"))
            .unwrap_or_else(|| "audio/mpeg".to_owned());
        let ext = extension(&content_type, parsed.path());
        let month = jiff::Timestamp::from_millisecond(self.clock.now_ms() as i64)
            .map(|t| t.strftime("%Y/%m").to_string())
            .unwrap_or_else(|_| "undated".to_owned());
        let name = hex(&Sha256::digest(id.as_bytes())[..12]);
        let relative = format!("{month}/{name}.{ext}");
        // Nothing is visible in the store until the writer is shut down.
        let mut file = self.store.writer(&relative)?;
        let mut hash = Sha256::new();
        let mut bytes: u64 = 0;
        let written: Result<(), String> = async {
            while let Some(chunk) = res.chunk().await.map_err(|e| e.without_url().to_string())? {
                bytes += chunk.len() as u64;
                if bytes > self.settings.max_bytes {
                    return Err(format!(
                        "larger than recordings.max_bytes ({})",
                        self.settings.max_bytes
                    ));
                }
                hash.update(&chunk);
                file.write_all(&chunk).await.map_err(|e| e.to_string())?;
            }
            match bytes {
                0 => Err("the recording is empty".into()),
                _ => file
                    .shutdown()
                    .await
                    .map_err(|e| format!("{}: {e}", self.store.name())),
            }
        }
        .await;
        if let Err(e) = written {
            let _ = file.abort().await;
            return Err(e);
        }
        Ok(Stored {
            store: self.store.name().to_owned(),
            path: relative,
            content_type,
            bytes,
            sha256: hex(&hash.finalize()),
        })
    }

    /// Deletes the recordings whose retention ended; returns how many.
    pub async fn expire(&self) -> usize {
        let now = self.clock.now_ms();
        let expired = match self.ledger.expired_recordings(now).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "expired recordings not listed; will try again");
                return 0;
            }
        };
        let mut deleted = 0;
        for row in expired {
            if !kept_in(&self.store, &row) {
                tracing::error!(id = row.id, store = ?row.store, "expired recording is in another store than recordings.store; not deleted");
                continue;
            }
            if let Some(path) = &row.path {
                if let Err(e) = self.store.delete(path).await {
                    tracing::error!(id = row.id, error = %e, "expired recording not deleted; will try again");
                    continue;
                }
            }
            if let Err(e) = self.ledger.recording_deleted(&row.id, now).await {
                tracing::error!(id = row.id, error = %e, "deleted recording not marked; will try again");
                continue;
            }
            let data = serde_json::json!({ "id": row.id, "reason": "retention" });
            let _ = self
                .ledger
                .note(&row.call_sid, "recording.deleted", now, &data)
                .await;
            self.count("deleted");
            tracing::info!(
                id = row.id,
                call_sid = row.call_sid,
                "recording deleted (retention)"
            );
            deleted += 1;
        }
        deleted
    }

    /// Runs [`Archive::expire`] every `recordings.retention_check_secs`.
    pub async fn keep_expiring(self: Arc<Self>) {
        let every = Duration::from_secs(self.settings.retention_check_secs);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.expire().await;
        }
    }
}

/// Whether recording `row` is kept in `store` (rows from before stores were recorded: local).
pub fn kept_in(store: &Store, row: &RecordingRow) -> bool {
    row.store.as_deref().unwrap_or("local") == store.name()
}

/// A file extension for `content_type`, else the URL's own, else `bin`.
fn extension(content_type: &str, path: &str) -> String {
    let known = match content_type {
        "audio/mpeg" | "audio/mp3" => Some("mp3"),
        "audio/wav" | "audio/x-wav" | "audio/wave" => Some("wav"),
        "audio/ogg" => Some("ogg"),
        _ => None,
    };
    if let Some(ext) = known {
        return ext.to_owned();
    }
    let from_url = path
        .rsplit('/')
        .next()
        .and_then(|f| f.rsplit_once('.'))
        .map(|(_, e)| e);
    match from_url {
        Some(e) if (1..=4).contains(&e.len()) && e.chars().all(|c| c.is_ascii_alphanumeric()) => {
            e.to_ascii_lowercase()
        }
        _ => "bin".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_verifies_until_it_expires_and_only_for_its_recording() {
        let base: url::Url = "https://sb.example/switchboard".parse().expect("url");
        let links = Links::new("a-link-key-0123456789".to_owned().into(), &base, 1);
        let (link, expires) = links.link("CA1-voicemail", 1_000);
        assert_eq!(expires, 1_000 + 3_600_000);
        assert!(link.starts_with(
            "https://sb.example/switchboard/recordings/CA1-voicemail?expires=3601000&sig="
        ));
        let sig = link.rsplit_once("sig=").expect("sig").1;
        assert!(links.verify("CA1-voicemail", expires, sig, expires - 1));
        assert!(
            !links.verify("CA1-voicemail", expires, sig, expires),
            "expired"
        );
        assert!(
            !links.verify("CA2-voicemail", expires, sig, 2_000),
            "another recording"
        );
        assert!(
            !links.verify("CA1-voicemail", expires + 1, sig, 2_000),
            "another expiry"
        );
        assert!(!links.verify("CA1-voicemail", expires, "zz", 2_000));
    }

    #[test]
    fn extensions_come_from_the_type_then_the_url() {
        assert_eq!(extension("audio/mpeg", "/r/x"), "mp3");
        assert_eq!(extension("audio/x-wav", "/r/x.mp3"), "wav");
        assert_eq!(extension("audio/flac", "/r/x.FLAC"), "flac");
        assert_eq!(extension("audio/whatever", "/r/x.../etc"), "bin");
    }
}
