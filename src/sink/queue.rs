//! Delivery off the call path, for any sink that does I/O: a bounded queue and one worker, so
//! items keep their order and a slow or failing destination never delays a caller. What to do
//! with one item is the sink's [`Deliver`]; the queue does the rest:
//!
//! A sink whose destination takes several items at once (a database transaction) sets
//! `DeliveryPolicy::batch`: the worker then hands over whatever is queued, up to that many, in one
//! [`Deliver::attempt_many`], with the same retries and counting per item.
//!
//! - [`Attempt::Delivered`] — done.
//! - [`Attempt::Retry`] — wait (the destination's `Retry-After`, else capped exponential backoff)
//!   and try again, up to `max_attempts`.
//! - [`Attempt::Rejected`] — refused for good; logged with the reason and dropped.
//! - a full queue, or a push after shutdown began: dropped.
//! - at shutdown, whatever is still queued when the flush deadline passes: dropped.
//!
//! Every drop is counted in [`DeliveryStats`] (exposed in `/metrics` under the queue's name) and
//! logged with the running total: never silent.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::retry::backoff;

/// What one delivery attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Delivered,
    /// Refused for good (a 4xx other than 429, say): retrying cannot help.
    Rejected(String),
    /// Failed for now: try again after `after` (`None`: the queue's backoff).
    Retry {
        after: Option<Duration>,
        reason: String,
    },
}

/// How a sink delivers one item (and, for a batching queue, several at once).
#[async_trait]
pub trait Deliver<T: Sync>: Send + Sync + 'static {
    async fn attempt(&self, item: &T) -> Attempt;

    /// Delivers `items` together, all or none. Only called when `DeliveryPolicy::batch` > 1;
    /// by default one after another, stopping at the first that is not delivered.
    async fn attempt_many(&self, items: &[T]) -> Attempt {
        for item in items {
            match self.attempt(item).await {
                Attempt::Delivered => {}
                other => return other,
            }
        }
        Attempt::Delivered
    }
}

#[derive(Debug, Clone)]
pub struct DeliveryPolicy {
    pub capacity: usize,
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Items handed over at once, at most (1: one at a time).
    pub batch: usize,
    /// With `batch` > 1: how long to wait for more items before handing over a batch that is not
    /// full (group commit: fewer, larger transactions at a steady rate). Zero: at once.
    pub linger: Duration,
}

/// What happened to the items of one queue, since start.
#[derive(Debug, Default)]
pub struct DeliveryStats {
    pub queued: AtomicU64,
    pub sent: AtomicU64,
    pub retried: AtomicU64,
    /// Refused by the destination for good.
    pub dropped_rejected: AtomicU64,
    /// Still failing after every attempt.
    pub dropped_failed: AtomicU64,
    /// The queue was full.
    pub dropped_full: AtomicU64,
    /// Still queued when the shutdown flush ran out of time, or pushed after it began.
    pub dropped_shutdown: AtomicU64,
}

impl DeliveryStats {
    fn states(&self) -> [(&'static str, u64); 7] {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        [
            ("queued", n(&self.queued)),
            ("sent", n(&self.sent)),
            ("retried", n(&self.retried)),
            ("dropped_full", n(&self.dropped_full)),
            ("dropped_rejected", n(&self.dropped_rejected)),
            ("dropped_failed", n(&self.dropped_failed)),
            ("dropped_shutdown", n(&self.dropped_shutdown)),
        ]
    }

    /// Items queued and not yet delivered or dropped.
    pub fn pending(&self) -> u64 {
        let done = self.sent.load(Ordering::Relaxed)
            + self.dropped_rejected.load(Ordering::Relaxed)
            + self.dropped_failed.load(Ordering::Relaxed);
        self.queued.load(Ordering::Relaxed).saturating_sub(done)
    }
}

/// The sending side. The only sender: [`DeliveryQueue::shutdown`] drops it, which lets the worker
/// drain what is queued and stop.
pub struct DeliveryQueue<T> {
    /// For logs: "Slack", "ledger"...
    name: &'static str,
    tx: RwLock<Option<mpsc::Sender<T>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
    stats: Arc<DeliveryStats>,
}

impl<T: Send + Sync + 'static> DeliveryQueue<T> {
    /// Starts the worker delivering with `deliver`, and registers the queue's counters in
    /// `registry` as `{metric}_total{state}`.
    pub fn start(
        name: &'static str,
        policy: DeliveryPolicy,
        deliver: impl Deliver<T>,
        registry: &mut Registry,
        metric: &'static str,
    ) -> DeliveryQueue<T> {
        let (tx, rx) = mpsc::channel(policy.capacity.max(1));
        let stats = Arc::new(DeliveryStats::default());
        registry.register_collector(Box::new(StatsCollector {
            metric,
            name,
            stats: stats.clone(),
        }));
        let worker = Worker {
            name,
            deliver,
            policy,
            stats: stats.clone(),
        };
        let handle = tokio::spawn(worker.run(rx));
        DeliveryQueue {
            name,
            tx: RwLock::new(Some(tx)),
            worker: Mutex::new(Some(handle)),
            stats,
        }
    }

    /// What happened to the items so far (read by the dashboard's health strip).
    pub fn stats(&self) -> Arc<DeliveryStats> {
        self.stats.clone()
    }

    /// Queues `item`; never waits. A full queue drops it, counted and logged.
    pub fn push(&self, item: T) {
        let guard = self.tx.read().unwrap_or_else(|p| p.into_inner());
        let Some(tx) = guard.as_ref() else {
            let total = self.stats.dropped_shutdown.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(
                queue = self.name,
                dropped_shutdown_total = total,
                "queue stopped; item dropped"
            );
            return;
        };
        // Counted before it can be delivered, so `pending` never goes below zero.
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        if tx.try_send(item).is_err() {
            self.stats.queued.fetch_sub(1, Ordering::Relaxed);
            let total = self.stats.dropped_full.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(
                queue = self.name,
                dropped_full_total = total,
                "queue full; item dropped"
            );
        }
    }

    /// Stops taking items and gives the queued ones until `deadline` to go out. Returns how many
    /// were left undelivered (counted as dropped and logged).
    pub async fn shutdown(&self, deadline: Duration) -> u64 {
        drop(self.tx.write().unwrap_or_else(|p| p.into_inner()).take());
        let worker = self.worker.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(mut worker) = worker else { return 0 };
        if tokio::time::timeout(deadline, &mut worker).await.is_ok() {
            tracing::info!(queue = self.name, "queue flushed");
            return 0;
        }
        worker.abort();
        let left = self.stats.pending();
        self.stats
            .dropped_shutdown
            .fetch_add(left, Ordering::Relaxed);
        tracing::error!(
            queue = self.name,
            left,
            "items still undelivered at shutdown; dropped"
        );
        left
    }
}

struct Worker<D> {
    name: &'static str,
    deliver: D,
    policy: DeliveryPolicy,
    stats: Arc<DeliveryStats>,
}

impl<D> Worker<D> {
    async fn run<T: Send + Sync>(self, mut rx: mpsc::Receiver<T>)
    where
        D: Deliver<T>,
    {
        let most = self.policy.batch.max(1);
        let mut batch = Vec::with_capacity(most);
        while let Some(first) = rx.recv().await {
            batch.push(first);
            let until = tokio::time::Instant::now() + self.policy.linger;
            while batch.len() < most {
                match rx.try_recv() {
                    Ok(item) => batch.push(item),
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                    Err(mpsc::error::TryRecvError::Empty) if self.policy.linger.is_zero() => break,
                    Err(mpsc::error::TryRecvError::Empty) => {
                        match tokio::time::timeout_at(until, rx.recv()).await {
                            Ok(Some(item)) => batch.push(item),
                            // Closed (shutdown) or lingered long enough: deliver what there is.
                            Ok(None) | Err(_) => break,
                        }
                    }
                }
            }
            self.deliver(&batch).await;
            batch.clear();
        }
    }

    /// Delivers `items` (one, or a batch), retrying as the policy says; counts each item.
    async fn deliver<T: Sync>(&self, items: &[T])
    where
        D: Deliver<T>,
    {
        let name = self.name;
        let n = items.len() as u64;
        let mut attempt = 1;
        loop {
            let tried = match items {
                [one] => self.deliver.attempt(one).await,
                many => self.deliver.attempt_many(many).await,
            };
            match tried {
                Attempt::Delivered => {
                    self.stats.sent.fetch_add(n, Ordering::Relaxed);
                    return;
                }
                Attempt::Rejected(reason) => {
                    let total = self.stats.dropped_rejected.fetch_add(n, Ordering::Relaxed) + n;
                    tracing::warn!(queue = name, %reason, dropped_rejected_total = total, "delivery refused; item dropped");
                    return;
                }
                Attempt::Retry { after, reason } if attempt < self.policy.max_attempts => {
                    let p = &self.policy;
                    let wait =
                        after.unwrap_or_else(|| backoff(p.backoff_base, attempt, p.backoff_max));
                    self.stats.retried.fetch_add(n, Ordering::Relaxed);
                    tracing::debug!(queue = name, %reason, attempt, wait_ms = wait.as_millis() as u64, "delivery will be retried");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Attempt::Retry { reason, .. } => {
                    let total = self.stats.dropped_failed.fetch_add(n, Ordering::Relaxed) + n;
                    tracing::error!(queue = name, %reason, attempts = attempt, dropped_failed_total = total, "delivery failed on every attempt; item dropped");
                    return;
                }
            }
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

/// Reads a queue's counters at scrape time.
#[derive(Debug)]
struct StatsCollector {
    metric: &'static str,
    name: &'static str,
    stats: Arc<DeliveryStats>,
}

impl Collector for StatsCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let help = format!(
            "{} deliveries by fate: queued, sent, retried, and each kind of drop",
            self.name
        );
        let kind = ConstCounter::new(0u64).metric_type();
        let mut family = enc.encode_descriptor(self.metric, &help, None, kind)?;
        for (state, value) in self.stats.states() {
            ConstCounter::new(value).encode(family.encode_family(&StateLabels { state })?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails `fail_first` times with a retry, then delivers; records what it delivered.
    struct Flaky {
        fail_first: u32,
        calls: AtomicU64,
        delivered: Arc<Mutex<Vec<u32>>>,
    }

    #[async_trait]
    impl Deliver<u32> for Flaky {
        async fn attempt(&self, item: &u32) -> Attempt {
            if *item == 13 {
                return Attempt::Rejected("unlucky".into());
            }
            if self.calls.fetch_add(1, Ordering::Relaxed) < u64::from(self.fail_first) {
                return Attempt::Retry {
                    after: None,
                    reason: "down".into(),
                };
            }
            self.delivered.lock().expect("lock").push(*item);
            Attempt::Delivered
        }
    }

    /// Records the size of each batch it is handed; the first waits for `go`.
    struct Batches {
        sizes: Arc<Mutex<Vec<usize>>>,
        go: Arc<tokio::sync::Notify>,
    }

    #[async_trait]
    impl Deliver<u32> for Batches {
        async fn attempt(&self, item: &u32) -> Attempt {
            self.attempt_many(std::slice::from_ref(item)).await
        }

        async fn attempt_many(&self, items: &[u32]) -> Attempt {
            let first = self.sizes.lock().expect("lock").is_empty();
            self.sizes.lock().expect("lock").push(items.len());
            if first {
                self.go.notified().await;
            }
            Attempt::Delivered
        }
    }

    #[tokio::test]
    async fn a_batching_queue_hands_over_what_queued_up_at_most_batch_at_once() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let go = Arc::new(tokio::sync::Notify::new());
        let policy = DeliveryPolicy {
            capacity: 100,
            max_attempts: 1,
            backoff_base: Duration::from_millis(1),
            backoff_max: Duration::from_millis(1),
            batch: 4,
            linger: Duration::ZERO,
        };
        let deliver = Batches {
            sizes: sizes.clone(),
            go: go.clone(),
        };
        let queue = DeliveryQueue::start("b", policy, deliver, &mut Registry::default(), "b");
        queue.push(0);
        while sizes.lock().expect("lock").is_empty() {
            tokio::task::yield_now().await;
        }
        // While the first is being delivered, nine more queue up.
        for i in 1..10 {
            queue.push(i);
        }
        go.notify_one();
        assert_eq!(queue.shutdown(Duration::from_secs(5)).await, 0);
        assert_eq!(*sizes.lock().expect("lock"), [1, 4, 4, 1]);
        assert_eq!(queue.stats.sent.load(Ordering::Relaxed), 10);
    }

    #[tokio::test]
    async fn a_lingering_queue_waits_for_company_before_handing_over() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let go = Arc::new(tokio::sync::Notify::new());
        go.notify_one();
        let policy = DeliveryPolicy {
            capacity: 100,
            max_attempts: 1,
            backoff_base: Duration::from_millis(1),
            backoff_max: Duration::from_millis(1),
            batch: 10,
            linger: Duration::from_millis(500),
        };
        let deliver = Batches {
            sizes: sizes.clone(),
            go,
        };
        let queue = DeliveryQueue::start("l", policy, deliver, &mut Registry::default(), "l");
        for i in 0..3 {
            queue.push(i);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(800)).await;
        queue.push(3);
        assert_eq!(queue.shutdown(Duration::from_secs(5)).await, 0);
        assert_eq!(*sizes.lock().expect("lock"), [3, 1]);
    }

    #[tokio::test]
    async fn items_keep_their_order_through_retries_and_every_fate_is_counted() {
        let delivered = Arc::new(Mutex::new(Vec::new()));
        let policy = DeliveryPolicy {
            capacity: 10,
            max_attempts: 5,
            backoff_base: Duration::from_millis(1),
            backoff_max: Duration::from_millis(5),
            batch: 1,
            linger: Duration::ZERO,
        };
        let flaky = Flaky {
            fail_first: 2,
            calls: AtomicU64::new(0),
            delivered: delivered.clone(),
        };
        let mut registry = Registry::default();
        let queue = DeliveryQueue::start("test", policy, flaky, &mut registry, "test_items");
        for i in [1, 2, 13, 3] {
            queue.push(i);
        }
        assert_eq!(queue.shutdown(Duration::from_secs(5)).await, 0);
        queue.push(4);
        assert_eq!(*delivered.lock().expect("lock"), vec![1, 2, 3]);
        let s = &queue.stats;
        assert_eq!(s.states().map(|(_, n)| n), [4, 3, 2, 0, 1, 0, 1]);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        assert!(
            text.contains("test_items_total{state=\"sent\"} 3"),
            "{text}"
        );
    }
}
