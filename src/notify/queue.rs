//! Slack delivery off the call path: a bounded queue and one worker, so messages keep their order
//! and a slow or failing Slack never delays a caller.
//!
//! - 2xx: delivered.
//! - 429: wait `Retry-After` (capped), then retry.
//! - 5xx, timeouts, network errors: retry with capped exponential backoff.
//! - any other 4xx: Slack refused the message for good; log Slack's reason and drop it.
//! - after `max_attempts`, or when the queue is full: drop it.
//!
//! Every drop is counted in [`DeliveryStats`] and logged with the running total: never silent.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::retry::{backoff, retry_after};

#[derive(Debug, Default)]
pub struct DeliveryStats {
    pub queued: AtomicU64,
    pub sent: AtomicU64,
    pub retried: AtomicU64,
    /// Refused by Slack with a 4xx other than 429.
    pub dropped_rejected: AtomicU64,
    /// Still failing after every attempt.
    pub dropped_failed: AtomicU64,
    /// The queue was full.
    pub dropped_full: AtomicU64,
    /// Still queued when the shutdown flush ran out of time, or pushed after it began.
    pub dropped_shutdown: AtomicU64,
}

impl DeliveryStats {
    pub fn dropped(&self) -> u64 {
        self.dropped_rejected.load(Ordering::Relaxed)
            + self.dropped_failed.load(Ordering::Relaxed)
            + self.dropped_full.load(Ordering::Relaxed)
            + self.dropped_shutdown.load(Ordering::Relaxed)
    }

    /// Messages queued and not yet delivered or dropped.
    pub fn pending(&self) -> u64 {
        let done = self.sent.load(Ordering::Relaxed)
            + self.dropped_rejected.load(Ordering::Relaxed)
            + self.dropped_failed.load(Ordering::Relaxed);
        self.queued.load(Ordering::Relaxed).saturating_sub(done)
    }
}

#[derive(Debug, Clone)]
pub struct DeliveryPolicy {
    pub capacity: usize,
    pub timeout: Duration,
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

/// The sending side, held by the notifier. The only sender: [`SlackQueue::shutdown`] drops it,
/// which lets the worker drain what is queued and stop.
pub struct SlackQueue {
    tx: RwLock<Option<mpsc::Sender<Value>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
    pub stats: Arc<DeliveryStats>,
}

impl SlackQueue {
    /// Starts the worker posting to `url`. It ends when every `SlackQueue` clone is dropped and
    /// the queue is empty.
    pub fn start(url: SecretString, policy: DeliveryPolicy) -> SlackQueue {
        let (tx, rx) = mpsc::channel(policy.capacity.max(1));
        let stats = Arc::new(DeliveryStats::default());
        let http = reqwest::Client::builder()
            .timeout(policy.timeout)
            .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        let worker = Worker {
            http,
            url,
            policy,
            stats: stats.clone(),
        };
        let handle = tokio::spawn(worker.run(rx));
        SlackQueue {
            tx: RwLock::new(Some(tx)),
            worker: Mutex::new(Some(handle)),
            stats,
        }
    }

    /// Queues `message`; never waits. A full queue drops it, counted and logged.
    pub fn push(&self, message: Value) {
        let guard = self.tx.read().unwrap_or_else(|p| p.into_inner());
        let Some(tx) = guard.as_ref() else {
            let total = self.stats.dropped_shutdown.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(
                dropped_shutdown_total = total,
                "Slack queue stopped; message dropped"
            );
            return;
        };
        // Counted before it can be delivered, so `pending` never goes below zero.
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        if tx.try_send(message).is_err() {
            self.stats.queued.fetch_sub(1, Ordering::Relaxed);
            let total = self.stats.dropped_full.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(
                dropped_full_total = total,
                "Slack queue full; message dropped"
            );
        }
    }

    /// Stops taking messages and gives the queued ones until `deadline` to go out. Returns how
    /// many were left undelivered (counted as dropped and logged).
    pub async fn shutdown(&self, deadline: Duration) -> u64 {
        drop(self.tx.write().unwrap_or_else(|p| p.into_inner()).take());
        let worker = self.worker.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(mut worker) = worker else { return 0 };
        if tokio::time::timeout(deadline, &mut worker).await.is_ok() {
            tracing::info!("Slack queue flushed");
            return 0;
        }
        worker.abort();
        let left = self.stats.pending();
        self.stats
            .dropped_shutdown
            .fetch_add(left, Ordering::Relaxed);
        tracing::error!(
            left,
            "Slack messages still undelivered at shutdown; dropped"
        );
        left
    }
}

struct Worker {
    http: reqwest::Client,
    url: SecretString,
    policy: DeliveryPolicy,
    stats: Arc<DeliveryStats>,
}

enum Attempt {
    Delivered,
    Rejected(StatusCode, String),
    RetryAfter(Duration, String),
}

impl Worker {
    async fn run(self, mut rx: mpsc::Receiver<Value>) {
        while let Some(message) = rx.recv().await {
            self.deliver(&message).await;
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        backoff(self.policy.backoff_base, attempt, self.policy.backoff_max)
    }

    async fn attempt(&self, message: &Value, attempt: u32) -> Attempt {
        let sent = self
            .http
            .post(self.url.expose_secret())
            .json(message)
            .send()
            .await;
        let res = match sent {
            Ok(res) => res,
            // The error's URL is the secret webhook: never log it.
            Err(e) => {
                return Attempt::RetryAfter(self.backoff(attempt), e.without_url().to_string())
            }
        };
        let status = res.status();
        if status.is_success() {
            return Attempt::Delivered;
        }
        let retry_after = retry_after(res.headers());
        let reason: String = res
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect();
        if status == StatusCode::TOO_MANY_REQUESTS {
            let wait = retry_after.unwrap_or(Duration::from_secs(1));
            Attempt::RetryAfter(wait, format!("429 {reason}"))
        } else if status.is_server_error() {
            Attempt::RetryAfter(self.backoff(attempt), format!("{status} {reason}"))
        } else {
            Attempt::Rejected(status, reason)
        }
    }

    async fn deliver(&self, message: &Value) {
        let mut attempt = 1;
        loop {
            match self.attempt(message, attempt).await {
                Attempt::Delivered => {
                    self.stats.sent.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Attempt::Rejected(status, reason) => {
                    let total = self.stats.dropped_rejected.fetch_add(1, Ordering::Relaxed) + 1;
                    tracing::warn!(%status, %reason, dropped_rejected_total = total, "Slack refused a message; dropped");
                    return;
                }
                Attempt::RetryAfter(wait, reason) if attempt < self.policy.max_attempts => {
                    self.stats.retried.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%reason, attempt, wait_ms = wait.as_millis() as u64, "Slack delivery will be retried");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Attempt::RetryAfter(_, reason) => {
                    let total = self.stats.dropped_failed.fetch_add(1, Ordering::Relaxed) + 1;
                    tracing::error!(%reason, attempts = attempt, dropped_failed_total = total, "Slack delivery failed on every attempt; dropped");
                    return;
                }
            }
        }
    }
}
