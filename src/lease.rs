//! The job lease: with several replicas, one at a time runs the scheduled jobs. With the memory
//! backend there is one replica, and it always holds the lease.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::Script;

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::call::redis_store::bounded;
use crate::call::StoreError;

/// Holds the lease if free or already ours (renewing it), else returns 0.
const TAKE_OR_RENEW: &str = r"
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if holder then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
";

/// Deletes the lease only if it is ours.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// The right to run the scheduled jobs: a Redis key with an expiry, renewed by its holder every
/// third of its TTL. When the holder dies, the key expires and another replica takes it.
pub struct Lease {
    redis: Option<(ConnectionManager, String)>,
    /// Who we are: pod name (HOSTNAME), process id and start time.
    me: String,
    ttl: Duration,
    holding: AtomicBool,
    /// `job_lease_held` in `/metrics`: 1 while this replica runs the jobs.
    held: Gauge,
}

impl Lease {
    /// The single-replica lease: always held.
    pub fn solo() -> Lease {
        Lease {
            redis: None,
            me: String::new(),
            ttl: Duration::from_secs(30),
            holding: AtomicBool::new(true),
            held: gauge(1),
        }
    }

    pub fn redis(conn: ConnectionManager, key: String, ttl: Duration) -> Lease {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "switchboard".into());
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        Lease {
            redis: Some((conn, key)),
            me: format!("{host}-{}-{started}", std::process::id()),
            ttl,
            holding: AtomicBool::new(false),
            held: gauge(0),
        }
    }

    /// Whether this replica runs the jobs now.
    pub fn holding(&self) -> bool {
        self.holding.load(Ordering::Relaxed)
    }

    /// How often [`Lease::renew`] should run.
    pub fn renew_every(&self) -> Duration {
        self.ttl / 3
    }

    /// Takes the lease if it is free, renews it if it is ours. Returns whether we hold it; a
    /// Redis error counts as not holding it (better no job run than two).
    pub async fn renew(&self) -> bool {
        let Some((conn, key)) = &self.redis else {
            return true;
        };
        let mut conn = conn.clone();
        let held = bounded(async {
            Script::new(TAKE_OR_RENEW)
                .key(key)
                .arg(&self.me)
                .arg(self.ttl.as_millis() as u64)
                .invoke_async::<i64>(&mut conn)
                .await
                .map_err(StoreError::from)
        })
        .await;
        let now = held.as_ref().is_ok_and(|h| *h == 1);
        let before = self.holding.swap(now, Ordering::Relaxed);
        self.held.set(i64::from(now));
        match (before, now, &held) {
            (false, true, _) => {
                tracing::info!(holder = %self.me, "took the job lease: this replica runs the scheduled jobs")
            }
            (true, false, Ok(_)) => tracing::warn!("lost the job lease to another replica"),
            (_, false, Err(e)) => {
                tracing::warn!(error = %e, "job lease not renewed: Redis unreachable")
            }
            _ => {}
        }
        now
    }

    /// Gives the lease up (at shutdown), so another replica takes over at once.
    pub async fn release(&self) {
        if let Some((conn, key)) = &self.redis {
            let mut conn = conn.clone();
            let _ = bounded(async {
                Script::new(RELEASE)
                    .key(key)
                    .arg(&self.me)
                    .invoke_async::<i64>(&mut conn)
                    .await
                    .map_err(StoreError::from)
            })
            .await;
            self.holding.store(false, Ordering::Relaxed);
            self.held.set(0);
        }
    }

    /// Keeps the lease: renews it (or takes it when free) every third of its TTL, until the task
    /// is stopped. Nothing to do with one replica.
    pub async fn keep(self: std::sync::Arc<Self>) {
        if self.redis.is_none() {
            return;
        }
        let mut tick = tokio::time::interval(self.renew_every());
        loop {
            tick.tick().await;
            self.renew().await;
        }
    }

    /// Registers `job_lease_held`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "job_lease_held",
            "1 while this replica holds the job lease (runs the scheduled jobs)",
            self.held.clone(),
        );
    }
}

fn gauge(value: i64) -> Gauge {
    let g = Gauge::default();
    g.set(value);
    g
}
